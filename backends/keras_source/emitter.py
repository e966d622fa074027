"""Write the IR (after the pipeline) as a standalone, readable Keras 3 module.

A line-based writer (not ``ast``: comments are the point). One statement per layer, named after
the PyTorch module path, with a comment whenever the PyTorch module changes. Output is
deterministic: nodes in graph order, no timestamps, no absolute paths; formatted like black/ruff
(4-space indent, double quotes, long calls split one argument per line, lines <= 100).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from transpiler import __version__
from transpiler.errors import TranspileError
from transpiler.ir import Graph, Node, Value

from .._naming import Namespace as _Namespace
from .._naming import node_hint as _node_hint
from .._naming import sanitize_text
from .._naming import torch_short as _torch_short
from .custom_layers import HELPER_NAMES, SOURCES, STDLIB_IMPORTS
from .rules import RULES, KerasCall, Literal
from .structure import (
    STRUCTURES,
    Stmt,
    call_arguments,
    constant_hint,
    layer_hint,
    node_paths,
    write_structured,
)

__all__ = ["emit_source", "EmittedModule", "Namespace", "sanitize_text", "WEIGHTS_FILE"]

WEIGHTS_FILE = "model.weights.h5"
MAX_LINE = 100
_RESERVED = {
    "keras",
    "layers",
    "ops",
    "os",
    "model",
    "inputs",
    "outputs",
    "weights_path",
    "build_model",
    "load_model",
    "WEIGHTS_FILE",
    *SOURCES,
    *HELPER_NAMES,
}


class Namespace(_Namespace):
    """Unique, safe identifiers that never shadow the generated module's own names."""

    def __init__(self) -> None:
        super().__init__(_RESERVED)


def _lit(v: Any) -> str:
    if isinstance(v, Literal):
        return v.text
    if isinstance(v, bool) or v is None:
        return repr(v)
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, float):
        if not np.isfinite(v):
            return f'float("{v}")'
        return repr(v)
    if isinstance(v, int):
        return repr(v)
    if isinstance(v, tuple | list):
        items = [_lit(x) for x in v]
        if isinstance(v, tuple):
            return f"({items[0]},)" if len(items) == 1 else f"({', '.join(items)})"
        return f"[{', '.join(items)}]"
    raise TranspileError(f"internal: cannot write {type(v).__name__} {v!r} into Keras source")


def _call_lines(target: str, ctor: str, args: list[str], call_arg: str, indent: str) -> list[str]:
    one = f"{indent}{target} = {ctor}({', '.join(args)})({call_arg})"
    if len(one) <= MAX_LINE:
        return [one]
    head = f"{indent}{target} = {ctor}({', '.join(args)})("
    if len(head) <= MAX_LINE and len(f"{indent}    {call_arg}") <= MAX_LINE:
        return [head, f"{indent}    {call_arg}", f"{indent})"]  # as ruff splits: the last call
    inner = f"{indent}    {', '.join(args)}"
    if len(inner) <= MAX_LINE:
        return [f"{indent}{target} = {ctor}(", inner, f"{indent})({call_arg})"]
    return [
        f"{indent}{target} = {ctor}(",
        *[f"{indent}    {a}," for a in args],
        f"{indent})({call_arg})",
    ]


@dataclass
class EmittedModule:
    source: str
    layer_weights: dict[str, list[np.ndarray]] = field(default_factory=dict)
    # IR value name -> Keras layer name whose output carries it (for per-layer diagnosis)
    value_layers: dict[str, str] = field(default_factory=dict)
    # PyTorch module path -> Keras layer names it became (for the report)
    module_layers: dict[str, list[str]] = field(default_factory=dict)


def _comment(node: Node) -> str:
    if node.op == "transpose":
        return f"# transpose: {sanitize_text(node.attrs['reason'])}"
    src = node.source
    if src.torch_op.startswith("onnx "):  # the ONNX frontend: op type and node name
        where = f" node {sanitize_text(src.source_line)}" if src.source_line else ""
        return f"# onnx: {sanitize_text(src.module_type)}{where}"
    parts = [f"{sanitize_text(src.module_path or '<top>')} ({sanitize_text(src.module_type)})"]
    if not src.torch_op.startswith("call_module"):
        line = f" at {sanitize_text(src.source_line)}" if src.source_line else ""
        parts[0] = f"{_torch_short(src.torch_op)} in {parts[0]}{line}"
    for folded in node.meta.get("folded", []):
        parts.append(f"{sanitize_text(folded.module_path)} ({folded.module_type}, folded)")
    if node.meta.get("flatten_permuted"):
        parts.append("weight columns permuted for the NHWC flatten")
    return f"# torch: {' + '.join(parts)}"


def _shape_doc(v: Value) -> str:
    return (
        "("
        + ", ".join(
            "N" if i == 0 and d is None else ("?" if d is None else str(d))
            for i, d in enumerate(v.shape)
        )
        + ")"
    )


def emit_source(
    graph: Graph,
    *,
    model_name: str,
    input_layouts: list[str],
    output_layouts: list[str],
    structure: str = "modules",
) -> EmittedModule:
    """The module's source and weights; ``structure``: "flat" or "modules" (see structure.py)."""
    if structure not in STRUCTURES:
        raise TranspileError(
            f"unknown structure {structure!r}; valid choices: {', '.join(map(repr, STRUCTURES))}."
        )
    ns = Namespace()
    # issue 13: every layer call also recorded as a Stmt, for the structured writer
    stmts: list[Stmt] = []
    keys: dict[int, int] = {}  # id(IR value) -> key of the Stmt whose output carries it
    paths = node_paths(graph)
    structurable = True
    out = EmittedModule(source="")
    var: dict[int, str] = {}
    body: list[str] = []
    used_custom: set[str] = set()
    used_modules: set[str] = set()
    indent = "    "

    input_vars = []
    for v, raw in zip(graph.inputs, graph.input_names, strict=True):
        name = ns.create(raw)
        var[id(v)] = name
        input_vars.append(name)
        shape = _lit(tuple(v.shape[1:]))
        dtype = "" if v.type.dtype == "float32" else f", dtype={_lit(v.type.dtype)}"
        if v.shape and v.shape[0] is not None:  # a static batch (torch.export specialized it)
            dtype += f", batch_size={v.shape[0]}"
        body.append(f"{indent}{name} = keras.Input(shape={shape}{dtype}, name={_lit(name)})")
        out.value_layers[v.name] = name
        keys[id(v)] = len(stmts)
        args = [("shape", shape)]
        if v.type.dtype != "float32":
            args.append(("dtype", _lit(v.type.dtype)))
        if v.shape and v.shape[0] is not None:
            args.append(("batch_size", str(v.shape[0])))
        stmts.append(Stmt("keras.Input", args, [], False, name, None, None, name))

    comments = [_comment(n) if n.source or n.op == "transpose" else None for n in graph.nodes]
    for k in range(len(graph.nodes) - 2, -1, -1):  # a helper node shares its module's comment
        node, nxt = graph.nodes[k], graph.nodes[k + 1]
        if node.outputs[0].torch_ref is None and node.source and nxt.source == node.source:
            comments[k] = comments[k + 1]
    last_comment = None
    for k, (node, comment) in enumerate(zip(graph.nodes, comments, strict=True)):
        comment_node, at = node, k
        while comment_node.outputs[0].torch_ref is None and at + 1 < len(graph.nodes):
            nxt = graph.nodes[at + 1]  # a helper node is commented as the node it serves
            if not (comment_node.source and nxt.source == comment_node.source):
                break
            comment_node, at = nxt, at + 1
        calls: list[KerasCall] = RULES.apply(node, graph)
        if comment and comment != last_comment:
            limit = MAX_LINE - len(indent)
            short = comment if len(comment) <= limit else comment[: limit - 3] + "..."
            body.append(indent + short)
            last_comment = comment
        name = ns.create(layer_hint(node, _node_hint(node), paths[k]))
        last_key: int | None = None
        for call in calls:
            # the node's main layer carries its name; helper layers get a suffix
            layer_name = ns.create(f"{name}_{call.suffix}") if call.suffix else name
            used_modules.add(call.ctor.split(".")[0])
            if call.custom:
                if call.custom not in SOURCES:
                    raise TranspileError(f"internal: unknown custom layer {call.custom}")
                used_custom.add(call.custom)
            ins, in_keys = [], []
            tensors = [u for u in call.inputs if not graph.is_constant(u)]
            for v in call.inputs:
                if graph.is_constant(v) and id(v) not in var:
                    # a weight used as a tensor (e.g. ViT's class token): a Constant layer
                    anchor = tensors[0] if tensors else graph.inputs[0]
                    anchor_name = name if anchor is node.output else var[id(anchor)]
                    anchor_key = last_key if anchor is node.output else keys[id(anchor)]
                    var[id(v)] = _emit_constant(
                        v, graph, ns, body, out, anchor_name, indent, paths[k]
                    )
                    keys[id(v)] = len(stmts)
                    layer = var[id(v)]
                    stmts.append(
                        Stmt(
                            "Constant",
                            _constant_args(graph.constant(v)),
                            [anchor_key],
                            False,
                            layer,
                            node,
                            comment_node,
                            layer,
                            paths[k],
                        )
                    )
                    used_custom.add("Constant")
                if v is node.outputs[0]:
                    ins.append(name)  # the previous call's output
                    in_keys.append(last_key)
                elif id(v) in var:
                    ins.append(var[id(v)])
                    in_keys.append(keys[id(v)])
                else:
                    raise TranspileError(f"internal: %{v.name} used before it is defined")
            if call.state_inputs:
                ins, states = ins[: -call.state_inputs], ins[-call.state_inputs :]
                ins.append(f"initial_state=[{', '.join(states)}]")
            call_arg = f"[{', '.join(ins)}]" if call.list_input else ", ".join(ins)
            pairs = call_arguments(call.ctor, call.args, call.kwargs)
            args = [_lit(v) if k is None else f"{k}={_lit(v)}" for k, v in pairs]
            args.append(f"name={_lit(layer_name)}")
            target = name
            if call.output_suffixes:
                extra = [ns.create(f"{name}_{s}") for s in call.output_suffixes]
                for v, extra_name in zip(node.outputs[1:], extra, strict=True):
                    var[id(v)] = extra_name
                target = ", ".join([name, *extra])
            if call.output_suffixes or call.state_inputs:
                structurable = False  # multi-output layers: the structured writer keeps to flat
            body.extend(_call_lines(target, call.ctor, args, call_arg, indent))
            last_key = len(stmts)
            stmts.append(
                Stmt(
                    call.ctor,
                    [(k, _lit(v)) for k, v in pairs],
                    in_keys,
                    call.list_input,
                    layer_name,
                    node,
                    comment_node,
                    name,
                    paths[k],
                )
            )
            if call.weights:
                out.layer_weights[layer_name] = call.weights
            if node.source and node.source.module_path:
                out.module_layers.setdefault(node.source.module_path, []).append(layer_name)
            for folded in node.meta.get("folded", []) if not call.suffix else []:
                out.module_layers.setdefault(folded.module_path, []).append(layer_name)
            final_layer = layer_name
        var[id(node.outputs[0])] = name
        for v in node.outputs:  # a multi-output layer's outputs share its statement
            keys[id(v)] = last_key
        if len(node.outputs) == 1:  # a multi-output layer's .output is a list: not a probe
            out.value_layers[node.output.name] = final_layer

    outputs = [var[id(o)] for o in graph.outputs]
    ins = input_vars[0] if len(input_vars) == 1 else f"[{', '.join(input_vars)}]"
    outs = outputs[0] if len(outputs) == 1 else f"[{', '.join(outputs)}]"
    model_id = _lit(ns.create(model_name))
    body.append(f"{indent}return keras.Model(inputs={ins}, outputs={outs}, name={model_id})")
    functions: list[str] = []
    if structure == "modules" and structurable:
        body, functions = write_structured(
            stmts,
            [keys[id(o)] for o in graph.outputs],
            graph.meta.get("modules", {}),
            f"keras.Model(inputs={{ins}}, outputs={{outs}}, name={model_id})",
            reserved=_RESERVED,
        )

    header = _header(graph, model_name, input_layouts, output_layouts)
    if functions:  # issue 13: the structured form's convention, said once
        header = header.replace("\nInputs:", _STRUCTURE_NOTE + "\nInputs:", 1)
    uses_ops = any(re.search(r"\bops\b", SOURCES[c]) for c in used_custom)
    names = [n for n in ("layers", "ops") if n in used_modules or (n == "ops" and uses_ops)]
    extra = {m for c in used_custom for m in STDLIB_IMPORTS.get(c, ())}
    stdlib = sorted({"os", *extra} - {"numpy"})
    imports = "".join(f"import {m}\n" for m in stdlib) + "\nimport keras\n"
    if "numpy" in extra:
        imports += "import numpy as np\n"
    if names:
        imports += f"from keras import {', '.join(names)}\n"
    blocks = [f'WEIGHTS_FILE = "{WEIGHTS_FILE}"\n']
    blocks += [SOURCES[c] for c in sorted(used_custom)]
    blocks += functions
    blocks.append(
        "def build_model():\n"
        f'{indent}"""The architecture, without weights."""\n' + "\n".join(body) + "\n"
    )
    blocks.append(_LOAD_MODEL)
    out.source = header + "\n" + imports + "\n" + "\n\n".join(blocks)  # isort: one blank line
    return out


def _constant_args(arr: np.ndarray) -> list[tuple[str, str]]:
    """The Constant layer's arguments: its shape, and the dtype of an integer/bool constant
    (weights are stored as float32; the integers met here are small indices and sizes)."""
    args = [("shape", _lit(tuple(arr.shape)))]
    if arr.dtype.kind != "f":
        args.append(("cast", _lit(arr.dtype.name)))
    return args


def _emit_constant(
    v: Value,
    graph: Graph,
    ns: Namespace,
    body: list[str],
    out: EmittedModule,
    anchor: str,
    indent: str,
    path: str = "",
) -> str:
    name = ns.create(constant_hint(v, path))
    arr = graph.constant(v)
    body.extend(
        _call_lines(
            name,
            "Constant",
            [*(f"{k}={v}" for k, v in _constant_args(arr)), f"name={_lit(name)}"],
            anchor,
            indent,
        )
    )
    out.layer_weights[name] = [np.asarray(arr, dtype=np.float32)]
    return name


def _header(
    graph: Graph, model_name: str, input_layouts: list[str], output_layouts: list[str]
) -> str:
    def layout_note(v: Value, lay: str) -> str:
        if not (v.type.is_float and 3 <= v.rank <= 5):
            return ""
        return ", channels-last (NHWC)" if lay == "nhwc" else ", PyTorch layout (NCHW)"

    lines = [
        f'"""{sanitize_text(model_name)} as a Keras 3 model, generated from '
        f"{'ONNX' if graph.meta.get('frontend') == 'onnx' else 'PyTorch'} by transpiler "
        f"{__version__}.",
        "",
        "Generated code: do not edit; regenerate it instead. Runs on any Keras 3 backend.",
        "",
        "Inputs:",
    ]
    for v, raw, lay in zip(graph.inputs, graph.input_names, input_layouts, strict=True):
        lines.append(
            f"    {sanitize_text(raw, 60)}: {v.type.dtype} {_shape_doc(v)}{layout_note(v, lay)}"
        )
    lines.append("Outputs:")
    for k, (v, lay) in enumerate(zip(graph.outputs, output_layouts, strict=True)):
        names = graph.meta.get("output_names") or []
        name = f" {sanitize_text(names[k], 60)}" if k < len(names) else ""
        lines.append(f"    [{k}]{name}: {v.type.dtype} {_shape_doc(v)}{layout_note(v, lay)}")
    batch = str(graph.meta.get("batch") or "dynamic")
    if batch.startswith("static"):
        lines.append(f"Batch: {batch} (the inputs' batch_size; the PyTorch model has no other).")
    elif batch != "dynamic":
        lines.append(f"Batch: {batch}: the PyTorch model is valid in that range only; this model")
        lines.append("    was checked inside it only and does not refuse other sizes itself.")
    lines.append(f"Weights: {WEIGHTS_FILE} beside this file (load_model() reads it).")
    lines.append('"""')
    return "\n".join(lines) + "\n"


_STRUCTURE_NOTE = """
Each function below is a PyTorch module class; ``name`` is the module's path in the model, and
its Keras layers are named ``name`` + "_" + their path inside it (as build_model() calls them).
"""
_LOAD_MODEL = '''def load_model(weights_path=None):
    """build_model() with the converted weights (default: the file beside this module)."""
    model = build_model()
    if weights_path is None:
        weights_path = os.path.join(os.path.dirname(os.path.abspath(__file__)), WEIGHTS_FILE)
    model.load_weights(weights_path)
    return model
'''
