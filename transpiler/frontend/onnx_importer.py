"""ONNX frontend: an ``.onnx`` file (or ``onnx.ModelProto``) -> the same IR as the torch frontends.

The shape of the fx importer, with an ONNX runtime in place of PyTorch:

1. load the model (opsets below 13 are upgraded with ``onnx.version_converter``), name every node;
2. pick the input signature: declared dims, symbolic ones (``dim_param``, 0 or absent) dynamic;
   the example inputs (given, or synthesized from the declared shapes: a dynamic first dim -> 1);
3. run the model with every intermediate value exposed (onnxruntime, else
   ``onnx.reference.ReferenceEvaluator``) on the example inputs and, when the first dim of an
   input is dynamic, on a second batch size: a dim that differs between the runs is dynamic
   (``None`` in the IR), the others are static;
4. fold: a value that does not depend on the input *values* (initializers, ``Constant``,
   ``ConstantOfShape``, shape subgraphs such as torch.onnx's Shape->Gather->Unsqueeze->Concat
   chains) is a constant; one computed from input *shapes* that differs between the runs (a
   reshape target holding the batch) is a "partial" tuple with ``None`` for the dynamic dims;
   converters read their own output shapes from the runs, so a Reshape to such a target becomes
   a static shape with -1 for the batch; any other value computed from input shapes that
   differs between the runs (ViT's class token expanded to the batch) is data: converted like
   the values computed from the inputs;
5. one converter per ONNX op type (``onnx_ops.py``) builds IR; unsupported ops are listed all at
   once with their node names before anything is built.

Layer names come from ONNX node names: ``/layer1/layer1.0/conv1/Conv`` -> module path
``layer1.0.conv1`` (``SourceInfo(module_type=<OpType>, torch_op="onnx <OpType>")``).
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import TranspileError, UnsupportedOpError
from ..ir import Graph, SourceInfo, TensorType, Value
from ..verify import Reference
from .fx_importer import Builder
from .onnx_views import simplify_views

__all__ = [
    "OnnxImported",
    "OnnxReference",
    "import_onnx",
    "is_onnx_model",
    "load_onnx",
    "run_onnx",
    "MIN_OPSET",
]

MIN_OPSET = 13
CONTROL_FLOW = {"If", "Loop", "Scan", "SequenceMap"}
# ops whose output depends only on the *shape* of their input: the dependence on values stops
SHAPE_ONLY = {"Shape", "Size"}


def is_onnx_model(model: Any) -> bool:
    """A path ending in ``.onnx`` or an ``onnx.ModelProto`` (without importing onnx)."""
    if isinstance(model, str | os.PathLike):
        return str(model).lower().endswith(".onnx")
    onnx = sys.modules.get("onnx")
    return onnx is not None and isinstance(model, onnx.ModelProto)


def _onnx() -> Any:
    try:
        import onnx
    except ImportError as exc:  # pragma: no cover - onnx is installed here
        raise TranspileError(
            "ONNX models need the `onnx` package: pip install 'transpiler[onnx]'."
        ) from exc
    return onnx


def load_onnx(model: Any) -> Any:
    """A checked ``ModelProto`` at opset >= 13 with every node named (a copy: the user's model
    is not changed)."""
    onnx = _onnx()
    if isinstance(model, str | os.PathLike):
        path = Path(model)
        if not path.is_file():
            raise TranspileError(f"ONNX file {str(path)!r} does not exist.")
        try:
            proto = onnx.load(str(path))
        except Exception as exc:  # noqa: BLE001
            raise TranspileError(
                f"could not read ONNX file {str(path)!r}: {type(exc).__name__}: {exc}"
            ) from exc
    else:
        proto = onnx.ModelProto()
        proto.CopyFrom(model)
    opset = _default_opset(proto)
    newest = onnx.defs.onnx_opset_version()
    if opset > newest:
        raise TranspileError(
            f"the model uses ONNX opset {opset}; the installed onnx supports up to {newest}: "
            "upgrade onnx."
        )
    if opset < MIN_OPSET:
        try:
            proto = onnx.version_converter.convert_version(proto, MIN_OPSET)
        except Exception as exc:  # noqa: BLE001
            raise TranspileError(
                f"the model uses ONNX opset {opset}; upgrading it to opset {MIN_OPSET} failed "
                f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}). "
                "Re-export it with opset >= 13."
            ) from exc
    try:
        onnx.checker.check_model(proto)
    except Exception as exc:  # noqa: BLE001
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TranspileError(f"the ONNX model is not valid: {first}") from exc
    seen: set[str] = set()
    for k, node in enumerate(proto.graph.node):
        if not node.name or node.name in seen:
            node.name = f"{node.name or node.op_type}_{k}"
        seen.add(node.name)
    return proto


def _default_opset(proto: Any) -> int:
    for entry in proto.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return int(entry.version)
    return MIN_OPSET


# -- running the ONNX model -----------------------------------------------------------------------


def _np_dtype(elem_type: int) -> np.dtype:
    from onnx import helper

    return np.dtype(helper.tensor_dtype_to_np_dtype(elem_type))


def runtime_name() -> str:
    try:
        import onnxruntime

        return f"onnxruntime {onnxruntime.__version__}"
    except ImportError:
        return "onnx.reference.ReferenceEvaluator"


def run_onnx(
    proto: Any, feeds: dict[str, np.ndarray], intermediates: bool = True
) -> dict[str, np.ndarray]:
    """Run ``proto``: every node output by name (``intermediates``), else the graph outputs.
    onnxruntime (optimizations off, so every intermediate exists) when installed, else
    ``onnx.reference.ReferenceEvaluator``."""
    onnx = _onnx()
    model = onnx.ModelProto()
    model.CopyFrom(proto)
    names = [o.name for o in proto.graph.output]
    if intermediates:
        known = set(names)
        for node in proto.graph.node:
            for o in node.output:
                if o and o not in known:
                    known.add(o)
                    names.append(o)
                    model.graph.output.append(onnx.ValueInfoProto(name=o))
    try:
        import onnxruntime as ort
    except ImportError:
        ort = None
    if ort is not None:
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        opts.log_severity_level = 3
        try:
            session = ort.InferenceSession(
                model.SerializeToString(), opts, providers=["CPUExecutionProvider"]
            )
            outs = session.run(names, feeds)
            return dict(zip(names, outs, strict=True))
        except Exception:  # noqa: BLE001 - e.g. an op ORT lacks: try the reference evaluator
            pass
    from onnx.reference import ReferenceEvaluator

    try:
        evaluator = ReferenceEvaluator(proto)
        if intermediates:
            values = evaluator.run(None, feeds, intermediate=True)
            return {k: np.asarray(v) for k, v in values.items() if not isinstance(v, list)}
        outs = evaluator.run(None, feeds)
        return dict(zip([o.name for o in proto.graph.output], outs, strict=True))
    except Exception as exc:  # noqa: BLE001
        raise TranspileError(
            f"running the ONNX model on the example inputs failed ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}); check that example_inputs match "
            "its inputs' shapes and dtypes."
        ) from exc


# -- the input signature --------------------------------------------------------------------------


@dataclass(frozen=True)
class InputSpec:
    name: str
    dims: tuple[int | None, ...]  # None: symbolic (dim_param, 0 or absent)
    dtype: np.dtype


def input_specs(proto: Any) -> list[InputSpec]:
    inits = {t.name for t in proto.graph.initializer}
    specs = []
    for inp in proto.graph.input:
        if inp.name in inits:
            continue
        tt = inp.type.tensor_type
        if not inp.type.HasField("tensor_type") or not tt.HasField("shape"):
            raise TranspileError(
                f"ONNX input {inp.name!r} has no tensor shape; only tensor inputs with a "
                "declared rank are supported."
            )
        dims = tuple(
            int(d.dim_value) if d.HasField("dim_value") and d.dim_value > 0 else None
            for d in tt.shape.dim
        )
        specs.append(InputSpec(inp.name, dims, _np_dtype(tt.elem_type)))
    return specs


def _random(shape: tuple[int, ...], dtype: np.dtype, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if dtype.kind == "f":
        return rng.standard_normal(shape).astype(dtype)
    if dtype.kind == "b":
        return np.zeros(shape, dtype)
    return np.zeros(shape, dtype)  # integer inputs (indices): zeros are always in range


def example_arrays(specs: list[InputSpec], example_inputs: Any) -> list[np.ndarray]:
    """The example inputs as numpy arrays in the model's dtypes; synthesized when None."""
    if example_inputs is None:
        arrays = []
        for k, spec in enumerate(specs):
            if None in spec.dims[1:]:
                axis = spec.dims.index(None, 1)
                raise TranspileError(
                    f"ONNX input {spec.name!r} has a symbolic dimension {axis} besides the batch; "
                    "pass example_inputs with the sizes to convert for."
                )
            shape = tuple(1 if d is None else d for d in spec.dims)
            arrays.append(_random(shape, spec.dtype, k))
        return arrays
    items = list(example_inputs) if isinstance(example_inputs, tuple | list) else [example_inputs]
    if len(items) != len(specs):
        raise TranspileError(
            f"example_inputs has {len(items)} tensor(s) but the ONNX model takes {len(specs)} "
            f"({', '.join(s.name for s in specs)}); pass one array per input, in order."
        )
    arrays = []
    for spec, x in zip(specs, items, strict=True):
        if hasattr(x, "detach"):  # a torch.Tensor
            x = x.detach().cpu().numpy()
        if not isinstance(x, np.ndarray):
            raise TranspileError(
                f"example input for {spec.name!r} is a {type(x).__name__}; pass numpy arrays "
                "(or torch tensors)."
            )
        ok = x.ndim == len(spec.dims) and all(
            d is None or d == s for d, s in zip(spec.dims, x.shape, strict=True)
        )
        if not ok:
            want = tuple("?" if d is None else d for d in spec.dims)
            raise TranspileError(
                f"example input for {spec.name!r} has shape {tuple(x.shape)}, the model declares "
                f"{want}."
            )
        arrays.append(np.ascontiguousarray(x.astype(spec.dtype, copy=False)))
    return arrays


def other_batch_arrays(specs: list[InputSpec], arrays: list[np.ndarray]) -> list[np.ndarray]:
    """The second input set: another batch size where an input's first dim is symbolic, else
    the same shapes with other values."""
    from ..signature import other_batch

    out = []
    for k, (spec, x) in enumerate(zip(specs, arrays, strict=True)):
        shape = tuple(x.shape)
        if spec.dims and spec.dims[0] is None:
            shape = (other_batch(shape[0]), *shape[1:])
        out.append(_random(shape, spec.dtype, 100 + k))
    return out


# -- names ----------------------------------------------------------------------------------------


def module_path(node_name: str, op_type: str) -> str:
    """``/layer1/layer1.0/conv1/Conv`` -> ``layer1.0.conv1``; plain names are kept."""
    parts = [p for p in node_name.split("/") if p]
    if len(parts) <= 1:
        return node_name.strip("/")
    parts = parts[:-1]  # the last part names the op (Conv, Conv_1, ...)
    path = ""
    for p in parts:
        path = p if not path or p.startswith(path + ".") else f"{path}.{p}"
    return path


def torch_scopes(node: Any) -> tuple[str | None, dict[str, tuple[str, str]]]:
    """The PyTorch module path and classes ``torch.onnx.export(dynamo=True)`` recorded in a
    node's metadata (``pkg.torch.onnx.name_scopes`` / ``class_hierarchy``: the module stack
    down to the aten op): ("layer1.0.bn1", {"layer1.0": ("BasicBlock", "torchvision...")}).
    (None, {}) when absent (the TorchScript exporter records only node names)."""
    import ast

    meta = {p.key: p.value for p in node.metadata_props}
    try:
        scopes = ast.literal_eval(meta.get("pkg.torch.onnx.name_scopes", "None"))
        classes = ast.literal_eval(meta.get("pkg.torch.onnx.class_hierarchy", "None"))
    except (ValueError, SyntaxError):
        return None, {}
    if not isinstance(scopes, list) or not isinstance(classes, list):
        return None, {}
    if len(scopes) != len(classes) or len(scopes) < 2:
        return None, {}
    modules = {}
    for path, cls in zip(scopes[:-1], classes[:-1], strict=True):  # the last: the aten op
        module, _, short = str(cls).rpartition(".")
        modules[str(path)] = (short, module)
    return str(scopes[-2]), modules


# -- the import -----------------------------------------------------------------------------------


@dataclass
class OnnxImported:
    """What the ONNX frontend produced, plus what the numeric check reuses."""

    graph: Graph
    proto: Any  # the loaded (upgraded, named) model
    input_names: list[str]
    output_names: list[str]
    input_sets: list[list[np.ndarray]]  # the example inputs, then another batch size
    references: list[list[np.ndarray]]  # the ONNX outputs per input set
    runtime: str
    notes: list[str] = field(default_factory=list)
    dynamic_batch: bool = True  # an input's first dim is symbolic

    @property
    def output_shapes(self) -> tuple[list[tuple[int, ...]], ...]:
        """The outputs' shapes in the two import runs (what the structural check compares)."""
        return tuple([tuple(r.shape) for r in refs] for refs in self.references)


class Partial(tuple):
    """A value computed from input shapes that holds the dynamic batch (``None`` entries)."""


class OnnxBuilder(Builder):
    """``Builder`` plus the current ONNX node and helpers for constant operands."""

    def __init__(self, graph: Graph, opset: int) -> None:
        super().__init__(graph)
        self.opset = opset
        self.node: Any = None
        self.out_types: list[TensorType | None] = []

    def where(self) -> str:
        if self.node is None:
            return "<unknown>"
        return f"ONNX node {self.node.name!r} ({self.node.op_type})"

    def value(self, x: Any) -> Value:
        """An operand as a Value: constants become weights."""
        if isinstance(x, Value):
            return x
        if isinstance(x, Partial):
            raise TranspileError(
                f"{self.where()} uses a tensor computed from the dynamic batch size as data; "
                "only shapes may depend on the batch size. Export with a static batch, or pass "
                "example_inputs."
            )
        if x is None:
            raise TranspileError(f"{self.where()}: a required input is missing")
        return self.const(np.asarray(x))

    def constant(self, x: Any, what: str) -> np.ndarray:
        """An operand that must be known at conversion time (weights, axes, pads)."""
        if isinstance(x, Value) or isinstance(x, Partial):
            raise TranspileError(
                f"{self.where()}: {what} is computed from the inputs; only a constant {what} "
                "(an initializer or a folded subgraph) is supported."
            )
        return np.asarray(x)


def _subgraph_inputs(node: Any) -> list[str]:
    """Names a node reads, including outer-scope names used inside its subgraphs."""
    names = [i for i in node.input if i]
    for attr in node.attribute:
        graphs = list(attr.graphs) + ([attr.g] if attr.HasField("g") else [])
        for g in graphs:
            for inner in g.node:
                names.extend(_subgraph_inputs(inner))
    return names


def _dependence(proto: Any, inputs: list[str]) -> tuple[set[str], set[str]]:
    """(names depending on the inputs at all, names depending on input *values*)."""
    anyhow, values = set(inputs), set(inputs)
    for node in proto.graph.node:
        reads = _subgraph_inputs(node)
        outs = [o for o in node.output if o]
        if any(r in anyhow for r in reads):
            anyhow.update(outs)
        if node.op_type not in SHAPE_ONLY and any(r in values for r in reads):
            values.update(outs)
    return anyhow, values


def _tensor_type(a: np.ndarray, b: np.ndarray | None) -> TensorType:
    if b is not None and b.ndim == a.ndim:
        shape = tuple(int(x) if x == y else None for x, y in zip(a.shape, b.shape, strict=True))
    else:
        shape = tuple(int(x) for x in a.shape)
    dtype = "float32" if a.dtype.kind == "f" else a.dtype.name
    return TensorType(shape, dtype)


def _merge(a: np.ndarray, b: np.ndarray | None) -> Any:
    """A shape-derived value seen in both runs: equal -> a constant; an integer vector whose
    entries differ (the batch) -> a Partial; anything else cannot be folded (None)."""
    if b is None or (a.shape == b.shape and np.array_equal(a, b)):
        return a
    if a.shape == b.shape and a.ndim <= 1 and a.dtype.kind in "iu":
        return Partial(
            int(x) if x == y else None for x, y in zip(a.ravel(), b.ravel(), strict=True)
        )
    return None


def _precheck(proto: Any, depends: set[str]) -> None:
    from .onnx_ops import ONNX_CONVERTERS

    missing: list[dict[str, str]] = []
    for node in proto.graph.node:
        if not any(o in depends for o in node.output if o):
            continue
        domain = node.domain or ""
        if domain not in ("", "ai.onnx"):
            reason = f"custom domain {domain!r}"
        elif node.op_type in CONTROL_FLOW:
            reason = "control flow that depends on the inputs (only foldable control flow works)"
        elif node.op_type not in ONNX_CONVERTERS:
            reason = "no converter"
        else:
            continue
        missing.append(
            {
                "target": f"onnx {node.op_type}",
                "module_path": node.name,
                "module_type": node.op_type,
                "source_line": "",
                "reason": reason,
            }
        )
    if missing:
        lines = [
            f"  - {m['module_type']} (node {m['module_path']!r}): {m['reason']}" for m in missing
        ]
        raise UnsupportedOpError(
            f"{len(missing)} unsupported ONNX operation(s); nothing was written:\n"
            + "\n".join(lines)
            + "\nRe-export the model without these ops, or add a converter to "
            "transpiler/frontend/onnx_ops.py (see README, 'ONNX models').",
            missing,
        )


def import_onnx(model: Any, example_inputs: Any = None) -> OnnxImported:
    """Load, run and convert an ONNX model into the IR (see the module docstring)."""
    from .onnx_ops import ONNX_CONVERTERS

    proto = load_onnx(model)
    specs = input_specs(proto)
    if not specs:
        raise TranspileError("the ONNX model has no inputs; nothing to convert.")
    input_names = [s.name for s in specs]
    inputs_a = example_arrays(specs, example_inputs)
    for spec, x in zip(specs, inputs_a, strict=True):
        if x.size == 0:
            raise TranspileError(f"ONNX input {spec.name!r} is empty {x.shape}; not supported.")
    inputs_b = other_batch_arrays(specs, inputs_a)
    run_a = run_onnx(proto, dict(zip(input_names, inputs_a, strict=True)))
    run_b = run_onnx(proto, dict(zip(input_names, inputs_b, strict=True)))
    output_names = [o.name for o in proto.graph.output]

    depends, value_depends = _dependence(proto, input_names)
    # values computed from the batch size that are data, not shape vectors (ViT's class token
    # `expand(N, -1, -1)`: an Expand of a constant to a batch-sized shape): converted like the
    # values computed from the inputs (the Expand as broadcast_to with the batch of the first
    # input, as the PyTorch frontends convert that expand), their ops checked with theirs
    batch_data = {
        o for o in depends - value_depends if o in run_a and _merge(run_a[o], run_b.get(o)) is None
    }
    _precheck(proto, value_depends | batch_data)

    graph = Graph()
    # module path -> (class, Python module): known where torch.onnx.export (dynamo) recorded
    # them in each node's metadata; the structured Keras writer groups by class (issue 13)
    graph.meta["modules"] = {}
    opset = _default_opset(proto)
    b = OnnxBuilder(graph, opset)
    env: dict[str, Any] = {}
    for init in proto.graph.initializer:
        from onnx import numpy_helper

        env[init.name] = numpy_helper.to_array(init)
    for spec, x, other in zip(specs, inputs_a, inputs_b, strict=True):
        v = Value(graph.fresh_name("input"), _tensor_type(x, other), torch_ref=spec.name)
        graph.inputs.append(v)
        graph.input_names.append(spec.name)
        env[spec.name] = v

    for node in proto.graph.node:
        outs = list(node.output)
        if not any(o in value_depends or o in batch_data for o in outs if o):
            for o in outs:  # a constant, or a shape vector holding the batch (a Partial)
                if o and o in run_a:
                    env[o] = _merge(run_a[o], run_b.get(o)) if o in depends else run_a[o]
            continue
        b.node = node
        path, classes = torch_scopes(node)
        graph.meta["modules"].update(classes)
        if path is None:
            path = module_path(node.name, node.op_type)
        b.source = SourceInfo(path, node.op_type, f"onnx {node.op_type}", node.name)
        b.out_types = [_tensor_type(run_a[o], run_b.get(o)) if o in run_a else None for o in outs]
        b.out_type = b.out_types[0] if b.out_types else None
        if any(t is not None and 0 in t.shape for t in b.out_types):
            raise TranspileError(f"{b.where()} produces an empty tensor; not supported.")
        args = [env.get(i) if i else None for i in node.input]
        for a in args:
            if isinstance(a, _NotConverted):
                raise TranspileError(
                    f"{b.where()} reads output {a.index} of {a.node.name!r} ({a.node.op_type}), "
                    "which is not supported (only its first output is)."
                )
        attrs = _attributes(node)
        try:
            result = ONNX_CONVERTERS[node.op_type](b, attrs, *args)
        except TranspileError:
            raise
        except Exception as exc:  # noqa: BLE001 - name the node
            raise TranspileError(
                f"converting {b.where()} failed: {type(exc).__name__}: {exc}"
            ) from exc
        results = list(result) if isinstance(result, list | tuple) else [result]
        results += [None] * (len(outs) - len(results))
        for k, (o, r, t) in enumerate(zip(outs, results, b.out_types, strict=True)):
            if not o:
                continue
            if r is None:  # an optional output the converter does not produce
                env[o] = _NotConverted(node, k)
                continue
            if isinstance(r, Value) and r.producer is not None and r.torch_ref is None:
                r.torch_ref = o
            if isinstance(r, Value) and t is not None and r.shape != t.shape:
                raise TranspileError(
                    f"internal: the converter of {b.where()} produced shape {r.shape}, ONNX "
                    f"gives {t.shape}"
                )
            env[o] = r
    graph.outputs = _outputs(graph, b, env, output_names)
    simplify_views(graph)
    graph.meta["model_class"] = _model_name(proto, model)
    graph.meta["output_names"] = output_names
    graph.meta["frontend"] = "onnx"
    references = [[run[n] for n in output_names] for run in (run_a, run_b)]
    dynamic = any(s.dims and s.dims[0] is None for s in specs)
    notes = []
    if not dynamic:
        notes.append("the ONNX model declares a static batch size: converted for that size only")
    return OnnxImported(
        graph,
        proto,
        input_names,
        output_names,
        [inputs_a, inputs_b],
        references,
        runtime_name(),
        notes,
        dynamic,
    )


class OnnxReference(Reference):
    """The numeric check's reference for an ONNX import: the ONNX model run by onnxruntime
    (else onnx.reference), in float32; the diagnosis names ONNX nodes."""

    unit = "ONNX node"

    def __init__(self, imported: OnnxImported) -> None:
        self.imported = imported
        self.name = imported.runtime
        self.producer = {o: n for n in imported.proto.graph.node for o in n.output if o}

    def _feeds(self, inputs: Sequence[Any]) -> dict[str, np.ndarray]:
        arrays = [x.detach().cpu().numpy() if hasattr(x, "detach") else x for x in inputs]
        return dict(zip(self.imported.input_names, arrays, strict=True))

    def outputs(self, inputs: list[Any], what: str) -> tuple[list[Any], None]:
        run = run_onnx(self.imported.proto, self._feeds(inputs), intermediates=False)
        refs = [run[n] for n in self.imported.output_names]
        return [r.astype(np.float32) if r.dtype.kind == "f" else r for r in refs], None

    def label(self, float64: bool) -> str:
        return f"{self.name.split()[0]} float32"

    def values(self, inputs: list[Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        return run_onnx(self.imported.proto, self._feeds(inputs)), {}

    def locate(self, node: Any) -> tuple[str, str] | None:
        onnx_node = self.producer.get(node.output.torch_ref)
        return None if onnx_node is None else (onnx_node.name, onnx_node.op_type)


@dataclass
class _NotConverted:
    node: Any
    index: int


def _attributes(node: Any) -> dict[str, Any]:
    from onnx import helper

    out = {}
    for attr in node.attribute:
        v = helper.get_attribute_value(attr)
        if isinstance(v, bytes):
            v = v.decode("utf-8", "replace")
        elif isinstance(v, list) and v and isinstance(v[0], bytes):
            v = [x.decode("utf-8", "replace") for x in v]
        out[attr.name] = v
    return out


def _outputs(
    graph: Graph, b: OnnxBuilder, env: dict[str, Any], names: Sequence[str]
) -> list[Value]:
    values: list[Value] = []
    for name in names:
        v = env.get(name)
        if isinstance(v, _NotConverted):
            raise TranspileError(
                f"ONNX output {name!r} is output {v.index} of {v.node.name!r} "
                f"({v.node.op_type}), which is not supported (only its first output is)."
            )
        if not isinstance(v, Value) or graph.is_constant(v):
            raise TranspileError(
                f"ONNX output {name!r} does not depend on the inputs; only outputs computed from "
                "the inputs are supported."
            )
        if v.producer is None or any(v is u for u in values):  # an input or a repeated output
            b.node, b.out_type = None, v.type
            b.source = SourceInfo("", "Identity", "onnx Identity", "")
            v = b.op("identity", [v], v.type)
            v.torch_ref = name
        values.append(v)
    return values


def _model_name(proto: Any, model: Any) -> str:
    if isinstance(model, str | os.PathLike):
        stem = Path(model).stem
    else:
        stem = proto.graph.name or "OnnxModel"
    return re.sub(r"\W", "_", stem) or "OnnxModel"
