"""The generated module as the PyTorch module tree: one Keras function per module class.

The emitter records every layer call as a :class:`Stmt` (constructor, argument texts, input
statements, Keras layer name, IR node). ``write_structured`` turns that flat list into

- one Python function per PyTorch module class whose instances have the same structure
  (``def bottleneck(x, *, filters, strides, downsample=False, name)``), parameterized by the
  argument texts that differ between the instances; nested modules call nested functions;
- ``build_model()``, the top module's forward, calling them.

Keras layer names do not change: a function receives the instance's layer-name prefix (its
sanitized module path) as ``name`` and names each layer ``f"{name}_{rest}"``, where ``rest`` is
the part of the flat name after that prefix. So the flat and structured forms build the same
layers with the same names and weights.

How instances share a function: their *skeletons* must be equal -- the same statements
(constructor, argument keywords, layer-name rest), wired the same way. Instances whose skeleton
lacks a contiguous block of the richest instance's statements (a ResNet downsample path, the
explicit pad of a strided conv), where the block's one output is replaced by one of its
inputs, share the function through a flag (``if downsample: identity = ...``). Keras keyword
arguments left at their default in some instances (``strides``, ``padding``) are written out
with the default there. Anything else becomes a variant (``bottleneck_1``). A module whose
statements are not contiguous, or whose layer names do not extend its prefix, is written inline.

Local variable names are relative to the function: a value continuing a chain reuses its
input's name (``x = layers.ReLU(...)(x)``), a chain started beside a live input is ``out``, and
other values are named after their layer's name rest (``identity``, ``cv1``, ``q``).
Everything is ordered by statement order: the output is deterministic.
"""

from __future__ import annotations

import builtins
import difflib
import json
import keyword
import re
from dataclasses import dataclass, field
from typing import Any

from transpiler.ir import Graph, Node, Value

__all__ = [
    "STRUCTURES",
    "Stmt",
    "write_structured",
    "node_paths",
    "layer_hint",
    "constant_hint",
    "call_arguments",
]

STRUCTURES = ("modules", "flat")
MAX_LINE = 100
MAX_NAME = 32  # local variable names stay short (the full path is in the layer name)
_CONTAINERS = {"Sequential", "ModuleList", "ModuleDict"}
_CHAIN = re.compile(r"(x|out)(_\d+)?")
_LOCAL_WORDS = {"x", "out", "identity", "name", "inputs"}  # never function names: locals use them
# Keras keyword arguments that rules leave out at their default; written out where instances differ
_SOFT = {
    "strides": "1",
    "padding": '"valid"',
    "dilation_rate": "1",
    "use_bias": "True",
    "groups": "1",
    "depth_multiplier": "1",
}
# positional argument names of the constructors rules call positionally (custom layers: parsed)
_POSITIONAL = {
    "layers.Conv1D": ("filters", "kernel_size"),
    "layers.Conv2D": ("filters", "kernel_size"),
    "layers.Conv3D": ("filters", "kernel_size"),
    "layers.Conv1DTranspose": ("filters", "kernel_size"),
    "layers.Conv2DTranspose": ("filters", "kernel_size"),
    "layers.Conv3DTranspose": ("filters", "kernel_size"),
    "layers.DepthwiseConv1D": ("kernel_size",),
    "layers.DepthwiseConv2D": ("kernel_size",),
    "layers.Dense": ("units",),
    "layers.MaxPooling1D": ("pool_size",),
    "layers.MaxPooling2D": ("pool_size",),
    "layers.MaxPooling3D": ("pool_size",),
    "layers.AveragePooling1D": ("pool_size",),
    "layers.AveragePooling2D": ("pool_size",),
    "layers.AveragePooling3D": ("pool_size",),
    "layers.UpSampling1D": ("size",),
    "layers.UpSampling2D": ("size",),
    "layers.UpSampling3D": ("size",),
    "layers.Reshape": ("target_shape",),
    "layers.Permute": ("dims",),
}


@dataclass
class Stmt:
    """One Keras layer call: ``<out> = ctor(*args, name=layer)(inputs)``.

    ``args`` holds (keyword or None for positional, source text); ``inputs`` are the indices
    of the statements whose outputs it takes; ``node`` is the IR node (None for inputs),
    ``comment_node`` the node whose torch source the statement's comment names.
    """

    ctor: str
    args: list[tuple[str | None, str]]
    inputs: list[int]
    list_input: bool
    layer: str
    node: Node | None
    comment_node: Node | None
    hint: str
    path: str = ""  # the module path the statement belongs to (node_paths)


def sanitize_prefix(path: str) -> str:
    """A module path as the flat emitter's Namespace spells it ("layer1.0" -> "layer1_0")."""
    base = re.sub(r"[^0-9A-Za-z_]+", "_", path).strip("_")
    base = re.sub(r"_+", "_", base)
    return f"m_{base}" if base[:1].isdigit() else base


def _text(s: str, limit: int = 120) -> str:
    t = s.encode("unicode_escape").decode("ascii").replace('"""', '\\"\\"\\"')
    return t if len(t) <= limit else t[: limit - 3] + "..."


def _identifier(hint: str, limit: int = MAX_NAME) -> str:
    base = re.sub(r"[^0-9A-Za-z_]+", "_", hint).strip("_")
    base = re.sub(r"_+", "_", base)[:limit].strip("_") or "v"
    if base[0].isdigit():
        base = f"v{base}"
    return base


def snake_case(name: str) -> str:
    """``C3k2`` -> ``c3k2``, ``PSABlock`` -> ``psa_block``, ``EncoderBlock`` -> ``encoder_block``"""
    s = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name)
    s = re.sub(r"(?<=[A-Z])(?=[A-Z][a-z])", "_", s)
    return _identifier(s.lower(), 40)


class _Names:
    """Unique, safe identifiers within one scope."""

    def __init__(self, used: set[str]) -> None:
        self.used = set(used)

    def create(self, hint: str) -> str:
        base = _identifier(hint)
        if keyword.iskeyword(base) or keyword.issoftkeyword(base):
            base = f"{base}_"
        name, k = base, 1
        while name in self.used:
            name, k = f"{base}_{k}", k + 1
        self.used.add(name)
        return name


# ----------------------------------------------------------------------------- the module tree


@dataclass
class _Instance:
    path: str
    prefix: str
    start: int
    end: int  # inclusive
    cls_key: tuple[str, str]  # (python module, class name)
    children: list[_Instance] = field(default_factory=list)
    items: list[Any] = field(default_factory=list)  # statement indices and child _Instances
    ext: list[int] = field(default_factory=list)  # statement keys read from outside
    outs: list[int] = field(default_factory=list)  # statement keys read after the span
    height: int = 1
    # filled by grouping
    function: _Function | None = None
    call_values: dict[str, str] = field(default_factory=dict)

    def rest(self, parent_prefix: str) -> str | None:
        return _rest(self.prefix, parent_prefix)


def _rest(layer: str, prefix: str) -> str | None:
    """``layer`` after ``prefix + "_"`` ("" when equal); None when it does not extend it."""
    if not prefix:
        return None
    if layer == prefix:
        return ""
    if layer.startswith(prefix + "_") and len(layer) > len(prefix) + 1:
        return layer[len(prefix) + 1 :]
    return None


def node_paths(graph: Graph) -> list[str]:
    """Each node's module path, for layer names and grouping.

    A layout transpose carries the source of the op it serves; it belongs to the common module
    of its input's producer and that op (the model's first NCHW->NHWC permute stays top level).
    A node without a source takes the common module of its neighbours.
    """
    made: dict[int, str] = {}
    paths: list[str | None] = []
    for node in graph.nodes:
        p = node.source.module_path if node.source is not None else None
        if node.op == "transpose" and "reason" in node.attrs:
            p = _common(made.get(id(node.inputs[0]), ""), p or "")
        paths.append(p)
        for v in node.outputs:
            made[id(v)] = p or ""
    known = [i for i, p in enumerate(paths) if p is not None]
    for i, p in enumerate(paths):
        if p is None:
            before = [paths[j] for j in known if j < i]
            after = [paths[j] for j in known if j > i]
            paths[i] = _common(before[-1], after[0]) if before and after else ""
    return [p or "" for p in paths]


def _common(a: str, b: str) -> str:
    parts = []
    for x, y in zip(a.split("."), b.split("."), strict=False):
        if x != y:
            break
        parts.append(x)
    return ".".join(parts)


def call_arguments(ctor: str, args: tuple, kwargs: dict) -> list[tuple[str | None, Any]]:
    """A layer call's arguments as (keyword or None, value): a custom layer's by keyword
    (``Scalar(op="multiply", value=0.5)``), Keras layers' as the rules wrote them."""
    names = () if ctor.startswith("layers.") else _custom_positional(ctor)
    pairs: list[tuple[str | None, Any]] = [
        (names[n] if n < len(names) else None, a) for n, a in enumerate(args)
    ]
    return pairs + list(kwargs.items())


def constant_hint(v: Value, path: str) -> str:
    """A weight used as a tensor, named inside its module (after its torch attribute if known)."""
    base = v.name if v.torch_ref is None else v.torch_ref
    return f"{path}_{base}" if path else base


def layer_hint(node: Node, hint: str, path: str) -> str:
    """The flat layer-name hint, with a layout transpose named inside its module."""
    if node.op != "transpose" or "reason" not in node.attrs:
        return hint
    reason = str(node.attrs["reason"])
    if not any(w in reason for w in ("channels", "graph", "io_layout")):
        hint = "permute"  # moves axes for an op (matmul in PyTorch's layout): not NCHW<->NHWC
    return f"{path}_{hint}" if path else hint


def _under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix + ".")


def _class_of(path: str, stmts: list[Stmt], paths: list[str], modules: dict) -> tuple[str, str]:
    info = modules.get(path)
    if info:
        return (str(info[1]), str(info[0]))
    onnx = any(
        s.node is not None and s.node.source is not None and s.node.source.torch_op[:5] == "onnx "
        for s, p in zip(stmts, paths, strict=True)
        if _under(p, path)
    )
    if onnx:
        return _onnx_class(path, any(p.startswith(path + ".") for p in paths))
    for s, p in zip(stmts, paths, strict=True):
        if p == path and s.node is not None and s.node.source is not None:
            return ("", s.node.source.module_type)
    return ("", "")


ONNX_CLASS = "<onnx>"  # a module known from ONNX node names only: its class was not recorded


def _onnx_class(path: str, has_children: bool) -> tuple[str, str]:
    """A class key for a module the ONNX exporter left only a path for (TorchScript exporter
    names: ``/layer1/layer1.0/conv1/Conv``): one op's nodes stay inline like a torch layer;
    other modules are keyed by their attribute name (``layer1.0`` -> ``layer_block``,
    ``downsample`` -> ``downsample``), and instances group by structure as usual."""
    parts = path.split(".")
    if not has_children:
        return ("torch.nn.onnx", parts[-1])
    attrs = [p for p in parts if not p.isdigit()]
    base = re.sub(r"\d+$", "", attrs[-1] if attrs else "") or "module"
    return (ONNX_CLASS, f"{base}_block" if parts[-1].isdigit() else base)


def _candidates(stmts: list[Stmt], paths: list[str], modules: dict) -> list[_Instance]:
    """Module instances that become function calls, outermost first, in statement order."""
    spans: dict[str, list[int]] = {}
    for i, p in enumerate(paths):
        parts = p.split(".") if p else []
        for k in range(1, len(parts) + 1):
            spans.setdefault(".".join(parts[:k]), []).append(i)
    found = []
    for path, idx in spans.items():
        start, end = idx[0], idx[-1]
        if len(idx) != end - start + 1 or len(idx) < 2:
            continue  # not contiguous (a shared module called twice), or a single statement
        cls = _class_of(path, stmts, paths, modules)
        if cls[1] in _CONTAINERS:
            cls = _container_key(path, stmts, paths, modules)
        if not cls[1]:
            continue
        if cls[0].startswith("torch.nn.") and len(idx) <= 3:
            continue  # a torch layer written as a few statements (pad + conv): inline
        prefix = sanitize_prefix(path)
        if not prefix or any(_rest(stmts[i].layer, prefix) is None for i in idx):
            continue
        found.append(_Instance(path, prefix, start, end, cls))
    # a container (Sequential) is a function only where its owner has several alike
    # (Detect's cv2.0, cv2.1, cv2.2); ResNet's layer1 or YOLO's model stay inline
    count: dict[tuple[str, str], int] = {}
    for inst in found:
        count[inst.cls_key] = count.get(inst.cls_key, 0) + 1

    def holds_layers(c: _Instance) -> bool:  # a statement of its own, not only module calls
        inner = [i for i in found if i.path.startswith(c.path + ".") and "." not in i.cls_key[1]]
        covered = {k for i in inner for k in range(i.start, i.end + 1)}
        return any(k not in covered for k in range(c.start, c.end + 1))

    found = [
        i for i in found if "." not in i.cls_key[1] or (count[i.cls_key] > 1 and holds_layers(i))
    ]
    found.sort(key=lambda c: (c.start, -c.end, c.path.count(".")))
    return found


def _container_key(
    path: str, stmts: list[Stmt], paths: list[str], modules: dict
) -> tuple[str, str]:
    """A container's key: its owner's class and attribute ("Detect.cv2" for model.23.cv2.0)."""
    parts = path.split(".")
    for k in range(len(parts) - 1, 0, -1):
        owner = ".".join(parts[:k])
        mod, cls = _class_of(owner, stmts, paths, modules)
        if cls and cls not in _CONTAINERS:
            attr = "_".join(p for p in parts[k:] if not p.isdigit())
            return (mod, f"{cls}.{attr}") if attr else ("", "")
    return ("", "")


def _nest(found: list[_Instance], root: _Instance) -> None:
    stack = [root]
    for inst in found:
        while not (stack[-1].start <= inst.start and inst.end <= stack[-1].end):
            stack.pop()
        parent = stack[-1]
        if parent is not root and _rest(inst.prefix, parent.prefix) is None:
            continue  # its layer names cannot be spelled from the parent's prefix: inline
        parent.children.append(inst)
        stack.append(inst)


def _fill(inst: _Instance, stmts: list[Stmt], users: list[list[int]], graph_outs: set[int]) -> None:
    """Items, inputs read from outside, outputs read after, height: bottom-up."""
    for child in inst.children:
        _fill(child, stmts, users, graph_outs)
    inst.height = 1 + max((c.height for c in inst.children), default=0)
    children = {c.start: c for c in inst.children}
    i = inst.start
    seen: set[int] = set()
    while i <= inst.end:
        child = children.get(i)
        if child is not None:
            inst.items.append(child)
            uses = child.ext
            i = child.end + 1
        else:
            inst.items.append(i)
            uses = stmts[i].inputs
            i += 1
        for k in uses:
            if k < inst.start and k not in seen:
                seen.add(k)
                inst.ext.append(k)
    inst.outs = [
        k
        for k in range(inst.start, inst.end + 1)
        if k in graph_outs or any(u > inst.end for u in users[k])
    ]


# ----------------------------------------------------------------------------- skeletons


@dataclass
class _Function:
    name: str
    cls_key: tuple[str, str]
    template: _Instance  # the richest instance: its items are the function's statements
    members: list[tuple[_Instance, dict[int, int]]] = field(default_factory=list)
    blocks: dict[tuple[int, int], tuple] = field(default_factory=dict)  # (i, j) -> substitute ref
    flags: dict[tuple[int, int], str] = field(default_factory=dict)
    # per template item: [(arg key, literal text or None, param name or None)]
    slots: dict[int, list[tuple[Any, str | None, str | None]]] = field(default_factory=dict)
    params: list[str] = field(default_factory=list)
    exprs: dict[str, str] = field(default_factory=dict)  # derived params/flags -> expression
    defaults: dict[str, str] = field(default_factory=dict)  # optional params -> default text
    inputs: list[str] = field(default_factory=list)
    # template item -> (the usual child function, the other one): C3k2's m.0 is a Bottleneck,
    # or a C3k where c3k=True; written ``if c3k: ... else: ...`` under the flag flags[("alt", t)]
    alts: dict[int, tuple[_Function, _Function]] = field(default_factory=dict)
    alt_slots: dict[int, dict[int, list]] = field(default_factory=dict)  # t -> id(fn) -> slots


def _refs(inst: _Instance, stmts: list[Stmt]) -> dict[int, tuple]:
    ref: dict[int, tuple] = {k: ("in", n) for n, k in enumerate(inst.ext)}
    for j, item in enumerate(inst.items):
        outs = item.outs if isinstance(item, _Instance) else [item]
        for o, k in enumerate(outs):
            ref[k] = ("it", j, o)
    return ref


def _item_inputs(item: Any, stmts: list[Stmt]) -> list[int]:
    return item.ext if isinstance(item, _Instance) else stmts[item].inputs


def _bare_sig(item: Any, inst: _Instance, stmts: list[Stmt]) -> tuple:
    """An item's signature without its wiring."""
    if isinstance(item, _Instance):
        return ("call", id(item.function), item.rest(inst.prefix), len(item.ext), len(item.outs))
    s = stmts[item]
    keys = tuple(
        k if k is not None else n
        for n, (k, _) in enumerate(s.args)
        if not (k in _SOFT and s.ctor.startswith("layers."))
    )
    # the arity is part of the signature: a Concatenate of 3 inputs is not one of 4 (C2f)
    return ("stmt", s.ctor, keys, s.list_input, len(s.inputs), _rest(s.layer, inst.prefix))


def _skeleton(inst: _Instance, stmts: list[Stmt]) -> tuple:
    ref = _refs(inst, stmts)
    sig = tuple(
        (_bare_sig(item, inst, stmts), tuple(ref[k] for k in _item_inputs(item, stmts)))
        for item in inst.items
    )
    return (sig, tuple(ref[k] for k in inst.outs), len(inst.ext))


def _values(item: Any, stmts: list[Stmt]) -> dict[Any, str]:
    if isinstance(item, _Instance):
        return dict(item.call_values)
    return {k if k is not None else n: text for n, (k, text) in enumerate(stmts[item].args)}


def _alternative(x: Any, y: Any, a: _Instance, b: _Instance) -> bool:
    """Two child calls that differ only in the function called (same name rest and arity)."""
    return (
        isinstance(x, _Instance)
        and isinstance(y, _Instance)
        and x.function is not y.function
        and x.rest(a.prefix) == y.rest(b.prefix)
        and len(x.ext) == len(y.ext)
        and len(x.outs) == len(y.outs)
    )


def _merge(a: _Instance, b: _Instance, stmts: list[Stmt]) -> tuple[dict, dict, dict] | None:
    """How ``b`` is ``a`` without some blocks and with some child calls calling another
    function: ({block: substitute ref}, a item -> b item, {a item: b's function})."""
    sa = [_bare_sig(i, a, stmts) for i in a.items]
    sb = [_bare_sig(i, b, stmts) for i in b.items]
    if len(a.ext) != len(b.ext) or len(a.outs) != len(b.outs):
        return None
    ops = difflib.SequenceMatcher(None, sa, sb, autojunk=False).get_opcodes()
    mapping: dict[int, int] = {}
    blocks: list[tuple[int, int]] = []
    alts: dict[int, _Function] = {}
    for tag, i1, i2, j1, j2 in ops:
        if tag == "equal":
            mapping.update({i1 + d: j1 + d for d in range(i2 - i1)})
        elif tag == "delete":
            blocks.append((i1, i2))
        elif (
            tag == "replace"
            and i2 - i1 == j2 - j1
            and all(_alternative(a.items[i1 + d], b.items[j1 + d], a, b) for d in range(i2 - i1))
        ):
            mapping.update({i1 + d: j1 + d for d in range(i2 - i1)})
            alts.update({i1 + d: b.items[j1 + d].function for d in range(i2 - i1)})
        else:
            return None
    ref_a, ref_b = _refs(a, stmts), _refs(b, stmts)
    wires_a = [[ref_a[k] for k in _item_inputs(i, stmts)] for i in a.items]
    outs_a = [ref_a[k] for k in a.outs]
    wires_b = [[ref_b[k] for k in _item_inputs(i, stmts)] for i in b.items]
    outs_b = [ref_b[k] for k in b.outs]
    inverse = {j: i for i, j in mapping.items()}
    subst: dict[tuple, tuple] = {}
    found: dict[tuple[int, int], tuple] = {}
    for i1, i2 in blocks:
        inside = range(i1, i2)
        leaving = {
            (u, p, r)
            for u, w in enumerate(wires_a)
            if u not in inside
            for p, r in enumerate(w)
            if r[0] == "it" and r[1] in inside
        }
        leaving |= {(None, p, r) for p, r in enumerate(outs_a) if r[0] == "it" and r[1] in inside}
        if len({r for _, _, r in leaving}) != 1:
            return None
        out_ref = next(iter(leaving))[2]
        subs = set()
        for u, p, _ in leaving:
            if u is not None and u not in mapping:
                return None
            rb = outs_b[p] if u is None else wires_b[mapping[u]][p]
            subs.add(rb if rb[0] == "in" else ("it", inverse.get(rb[1], -1), rb[2]))
        if len(subs) != 1:
            return None
        sub = subs.pop()
        if sub[0] == "it" and not 0 <= sub[1] < i1:
            return None
        subst[out_ref] = sub
        found[(i1, i2)] = sub

    def move(r: tuple) -> tuple | None:
        r = subst.get(r, r)
        if r[0] == "in":
            return r
        return ("it", mapping[r[1]], r[2]) if r[1] in mapping else None

    for u, w in enumerate(wires_a):
        if u in mapping and [move(r) for r in w] != wires_b[mapping[u]]:
            return None
    if [move(r) for r in outs_a] != outs_b:
        return None
    return found, mapping, alts


def _group(instances: list[_Instance], stmts: list[Stmt], names: _Names) -> list[_Function]:
    """Functions for the instances of one class at one height (variants where needed)."""
    buckets: dict[tuple, list[_Instance]] = {}
    for inst in instances:
        buckets.setdefault(_skeleton(inst, stmts), []).append(inst)
    pending = list(buckets.values())
    functions = []
    while pending:
        base = max(pending, key=lambda b: len(b[0].items))  # first of the richest
        pending.remove(base)
        a = base[0]
        fn = _Function("", a.cls_key, a)
        fn.members = [(m, {i: i for i in range(len(a.items))}) for m in base]
        for other in list(pending):
            merged = _merge(a, other[0], stmts)
            if merged is None:
                continue
            blocks, mapping, alts = merged
            if any(fn.blocks.get(k, v) != v for k, v in blocks.items()) or _overlap(
                [*fn.blocks, *blocks]
            ):
                continue
            if any(t in fn.alts and fn.alts[t][1] is not f for t, f in alts.items()):
                continue  # two alternatives at most
            fn.blocks.update(blocks)
            fn.alts.update({t: (a.items[t].function, f) for t, f in alts.items()})
            # the same mapping holds for every member of the bucket (equal skeletons)
            fn.members += [(m, mapping) for m in other]
            pending.remove(other)
        fn.members.sort(key=lambda m: m[0].start)
        functions.append(fn)
    functions.sort(key=lambda f: f.members[0][0].start)
    for fn in functions:
        fn.name = names.create("_".join(snake_case(p) for p in fn.cls_key[1].split(".")) or "block")
        _parameterize(fn, stmts, names.used)
        for inst, _ in fn.members:
            inst.function = fn
    return functions


def _overlap(blocks: list[tuple[int, int]]) -> bool:
    spans = sorted(set(blocks))
    return any(b[0] < a[1] for a, b in zip(spans, spans[1:], strict=False))


def _parameterize(fn: _Function, stmts: list[Stmt], module_names: set[str]) -> None:
    """Literal texts where all members agree, parameters where they differ."""
    a = fn.template
    params: dict[str, list[str | None]] = {}
    scope = _Names({"name", "x", *module_names})
    for t, item in enumerate(a.items):
        present = [(inst.items[m[t]] if t in m else None) for inst, m in fn.members]
        if t not in fn.alts:
            fn.slots[t] = _slots(item, present, a, stmts, params, scope)
            continue
        # C3k2's m.0: the usual function's arguments, then the other one's
        usual, other = fn.alts[t]
        counts = [
            sum(1 for i in present if i is not None and i.function is f) for f in (usual, other)
        ]
        if counts[1] > counts[0]:
            usual, other = other, usual
            fn.alts[t] = (usual, other)
        fn.alt_slots[t] = {}
        for f in (usual, other):
            sub = [i if i is not None and i.function is f else None for i in present]
            first = next(i for i in sub if i is not None)
            fn.alt_slots[t][id(f)] = _slots(first, sub, a, stmts, params, scope)
        fn.slots[t] = []
    fn.params = list(params)
    fn.defaults = {p: "None" for p, vec in params.items() if None in vec}
    for t, (_, other) in sorted(fn.alts.items()):
        base = snake_case(other.cls_key[1].split(".")[-1]) or "variant"
        # not the function's own name: the flag would hide it (C3k2's c3k -> use_c3k)
        flag = scope.create(f"use_{base}" if base in scope.used else base)
        fn.flags[("alt", t)] = flag
        fn.defaults[flag] = "False"
    for block in sorted(fn.blocks):
        first = a.items[block[0]]
        rest = (
            first.rest(a.prefix)
            if isinstance(first, _Instance)
            else _rest(stmts[first].layer, a.prefix)
        )
        flag = scope.create(re.sub(r"_\d+$", "", rest or "") or "branch")
        fn.flags[block] = flag
        fn.defaults[flag] = "False"

    def flag_vector(key: tuple) -> list[str]:
        if key[0] == "alt":
            other = fn.alts[key[1]][1]
            return [str(inst.items[m[key[1]]].function is other) for inst, m in fn.members]
        return ["True" if key[0] in m else "False" for _, m in fn.members]

    flags = {flag: flag_vector(key) for key, flag in fn.flags.items()}
    _derive(fn, params, flags, fn.slots)
    _resolve(fn)
    fn.params = [p for p in params if p not in fn.exprs]
    for n, (inst, _) in enumerate(fn.members):
        ordered = {
            p: vec[n]
            for p, vec in params.items()
            if p not in fn.exprs and vec[n] is not None and vec[n] != fn.defaults.get(p)
        }
        ordered |= {f: vec[n] for f, vec in flags.items() if f not in fn.exprs and vec[n] == "True"}
        inst.call_values = ordered


def _slots(
    item: Any,
    present: list[Any],
    a: _Instance,
    stmts: list[Stmt],
    params: dict[str, list[str | None]],
    scope: _Names,
) -> list[tuple[Any, str | None, str | None]]:
    """One template item's arguments: (key, literal text, None) where the members agree,
    (key, None, parameter) where they differ; ``present``: each member's item (None: absent)."""
    values = [_values(i, stmts) if i is not None else None for i in present]
    keys: list[Any] = []
    for v in values:
        for k in v or {}:
            if k not in keys:
                keys.append(k)
    soft_ok = not isinstance(item, _Instance) and stmts[item].ctor.startswith("layers.")
    defaults = item.function.defaults if isinstance(item, _Instance) else {}
    slots = []
    for key in keys:
        vec = []
        for v in values:
            if v is None:
                vec.append(None)
            elif key in v:
                vec.append(v[key])
            elif soft_ok and key in _SOFT:
                vec.append(_soft_default(key, values))
            else:
                vec.append(defaults.get(key, "None"))
        if key == "padding" and soft_ok and stmts[item].ctor in _CONVS:
            _pointwise_padding(vec, values)
        texts = {x for x in vec if x is not None}
        if len(texts) == 1:
            text = texts.pop()
            missing_everywhere = all(v is None or key not in v for v in values)
            if not missing_everywhere:
                slots.append((key, text, None))
            continue
        pname = _find_param(params, vec)
        if pname is None:
            pname = _param_name(key, item, a, stmts, params, scope)
            params[pname] = list(vec)
        else:
            params[pname] = [
                p if p is not None else q for p, q in zip(params[pname], vec, strict=True)
            ]
        slots.append((key, None, pname))
    return slots


_CONVS = {"layers.Conv1D", "layers.Conv2D", "layers.Conv3D"}
_ONES = re.compile(r"1|\((1, )*1,?\)")


def _pointwise_padding(vec: list[str | None], values: list[dict | None]) -> None:
    """A 1x1 conv pads nothing with "same" or "valid" alike (at any stride): its padding takes
    the value the other instances with its stride have, so ``padding`` can follow from
    ``strides`` (YOLO's Conv: ``"valid" if strides != (1, 1) else "same"``)."""
    kernels = [None if v is None else str(v.get(1, v.get("kernel_size", ""))) for v in values]
    pointwise = [k is not None and bool(_ONES.fullmatch(k)) for k in kernels]
    if not any(pointwise) or all(pointwise):
        return
    default = _soft_default("strides", values)
    strides = [None if v is None else v.get("strides", default) for v in values]
    by_stride: dict[str, set[str]] = {}
    for p, st, text in zip(pointwise, strides, vec, strict=True):
        if not p and st is not None and text is not None:
            by_stride.setdefault(st, set()).add(text)
    for n, (p, st) in enumerate(zip(pointwise, strides, strict=True)):
        if p and len(by_stride.get(st, ())) == 1:
            vec[n] = next(iter(by_stride[st]))


def _derive(fn: _Function, params: dict, flags: dict, slots: dict) -> None:
    """Parameters and flags that follow from a two-valued parameter become expressions of it.

    ResNet's strided bottlenecks: ``strides`` is (1, 1) or (2, 2); ``padding`` ("same" or
    "valid") and the explicit-pad flag follow from it, so they are written as
    ``"valid" if strides != (1, 1) else "same"`` and ``if strides != (1, 1):``, and ``strides``
    defaults to its most common value.
    """
    uses: dict[str, int] = {}
    for row in slots.values():
        for _, _, pname in row:
            if pname is not None:
                uses[pname] = uses.get(pname, 0) + 1
    both = {**params, **flags}
    # two instances agree on anything by chance (cspdarknet's stages 1 and 4: "if stop != 64:"
    # for two more blocks); a stride deciding the padding is the rule, not chance
    bases = [
        p
        for p, vec in params.items()
        if None not in vec and len(set(vec)) == 2 and (len(fn.members) > 2 or "strides" in p)
    ]
    # strides before padding: a keyword string follows from a number, not the other way
    bases.sort(key=lambda p: (params[p][0].startswith('"'), -uses.get(p, 0)))
    used_as_base: set[str] = set()
    for base in bases:
        if base in fn.exprs:
            continue
        vec = both[base]
        common = max(dict.fromkeys(vec), key=vec.count)  # the first of the most frequent
        derived = False
        for name, other in both.items():
            if name == base or name in fn.exprs or name in used_as_base:
                continue
            when = {}
            for b, q in zip(vec, other, strict=True):
                if q is not None:
                    when.setdefault(b == common, set()).add(q)
            if len(when) != 2 or any(len(v) != 1 for v in when.values()):
                continue
            if name not in flags and not all(q.startswith('"') for v in when.values() for q in v):
                continue  # only flags and keyword strings: numbers may agree by chance
            q_common, q_other = when[True].pop(), when[False].pop()
            if q_common == q_other:
                continue
            if name in flags:
                op = "!=" if q_other == "True" else "=="
                fn.exprs[name] = f"{base} {op} {common}"
            else:
                fn.exprs[name] = f"{q_other} if {base} != {common} else {q_common}"
            fn.defaults.pop(name, None)
            derived = True
        if derived:
            fn.defaults[base] = common
            used_as_base.add(base)
    _derive_ratios(fn, params)


_INT = re.compile(r"-?\d+")
_STRING_OR_NAME = re.compile(r'("(?:[^"\\]|\\.)*")|\b([A-Za-z_]\w*)\b')


def _resolve(fn: _Function) -> None:
    """Expressions written in parameters only: one derived from a parameter that was itself
    derived later (a flag ``stop != 64`` where ``stop`` became ``filters // 2``) is rewritten in
    terms of the remaining parameters (``filters // 2 != 64``)."""

    def expand(text: str, seen: frozenset[str]) -> str:
        def sub(m: re.Match) -> str:
            word = m.group(2)
            if word is None or word not in fn.exprs or word in seen:
                return m.group(0)
            inner = expand(fn.exprs[word], seen | {word})
            return inner if _ATOM.fullmatch(inner) else f"({inner})"

        return _STRING_OR_NAME.sub(sub, text)

    fn.exprs = {k: expand(e, frozenset({k})) for k, e in fn.exprs.items()}


_ATOM = re.compile(r"[A-Za-z_]\w*|-?\d+")


def _derive_ratios(fn: _Function, params: dict) -> None:
    """Integer parameters that are a fixed multiple or fraction of an earlier one, for every
    instance (C3k2's hidden channels = filters // 2), become ``filters // 2``."""
    if len(fn.members) < 2:
        return
    ints = {
        p: [None if t is None else int(t) for t in vec]
        for p, vec in params.items()
        if p not in fn.exprs
        and sum(t is not None for t in vec) >= 2
        and all(t is None or _INT.fullmatch(t) for t in vec)
    }
    names = list(ints)
    for i, q in enumerate(names):
        for p in names[:i]:
            if p in fn.exprs or None in ints[p]:
                continue  # p is known for every member; q may be for some (an alternative's)
            pairs = [(x, y) for x, y in zip(ints[p], ints[q], strict=True) if y is not None]
            pv, qv = [x for x, _ in pairs], [y for _, y in pairs]
            if len(set(pv)) < 2 or 0 in pv or 0 in qv:
                continue
            if all(b % a == 0 for a, b in zip(pv, qv, strict=True)):
                ks = {b // a for a, b in zip(pv, qv, strict=True)}
                op = "*"
            elif all(a % b == 0 for a, b in zip(pv, qv, strict=True)):
                ks = {a // b for a, b in zip(pv, qv, strict=True)}
                op = "//"
            else:
                continue
            if len(ks) == 1 and (k := ks.pop()) > 1:
                fn.exprs[q] = f"{p} {op} {k}"
                break


def _soft_default(key: str, values: list[dict | None]) -> str:
    for v in values:
        text = (v or {}).get(key)
        if text and text.startswith("(") and key in ("strides", "dilation_rate"):
            n = text.count(",") + (0 if text.endswith(",)") else 1)
            return "(" + ", ".join(["1"] * n) + ("," if n == 1 else "") + ")"
    return _SOFT[key]


def _find_param(params: dict[str, list[str | None]], vec: list[str | None]) -> str | None:
    for name, have in params.items():
        if all(p is None or q is None or p == q for p, q in zip(have, vec, strict=True)):
            if any(p is not None and q is not None for p, q in zip(have, vec, strict=True)):
                return name
    return None


def _param_name(
    key: Any, item: Any, a: _Instance, stmts: list[Stmt], params: dict, scope: _Names
) -> str:
    if isinstance(key, str):
        base = key
    else:
        s = stmts[item]
        known = _POSITIONAL.get(s.ctor) or _custom_positional(s.ctor)
        base = known[key] if key < len(known) else f"arg{key}"
    if base in scope.used:
        rest = (
            item.rest(a.prefix)
            if isinstance(item, _Instance)
            else _rest(stmts[item].layer, a.prefix)
        )
        base = f"{rest}_{base}" if rest else base
    return scope.create(base)


_CUSTOM_ARGS: dict[str, tuple[str, ...]] = {}


def _custom_positional(ctor: str) -> tuple[str, ...]:
    if ctor not in _CUSTOM_ARGS:
        from .custom_layers import SOURCES

        m = re.search(r"def __init__\(self,?([^)]*)\)", SOURCES.get(ctor, ""))
        names = []
        for part in (m.group(1) if m else "").split(","):
            part = part.strip().split("=")[0].strip()
            if part and not part.startswith("*"):
                names.append(part)
        _CUSTOM_ARGS[ctor] = tuple(names)
    return _CUSTOM_ARGS[ctor]


# ----------------------------------------------------------------------------- writing


def _call_text(target: str, head: str, args: list[str], tail: str, indent: str) -> list[str]:
    lead = f"{indent}{target} = " if target else f"{indent}"
    one = f"{lead}{head}({', '.join(args)}){tail}"
    if len(one) <= MAX_LINE:
        return [one]
    if tail.startswith("(") and tail.endswith(")"):  # as ruff splits: the last call first
        first = f"{lead}{head}({', '.join(args)})("
        if len(first) <= MAX_LINE and len(f"{indent}    {tail[1:-1]}") <= MAX_LINE:
            return [first, f"{indent}    {tail[1:-1]}", f"{indent})"]
    inner = f"{indent}    {', '.join(args)}"
    if len(inner) <= MAX_LINE:
        return [f"{lead}{head}(", inner, f"{indent}){tail}"]
    return [f"{lead}{head}(", *[f"{indent}    {a}," for a in args], f"{indent}){tail}"]


def _comment(node: Node | None, prefix_path: str) -> str | None:
    if node is None or (node.source is None and node.op != "transpose"):
        return None
    if node.meta.get("note"):  # a step of a decomposed module (attention's q/k/v, scores)
        return f"# {_text(str(node.meta['note']))}"
    if node.op == "transpose":
        reason = re.sub(r"graph (in|out)put \d+", r"graph \1puts", node.attrs.get("reason", ""))
        return f"# transpose: {_text(_relative(reason, prefix_path))}"
    src = node.source
    if src.torch_op.startswith("onnx "):  # the ONNX frontend: op type and node name
        at = f" node {_text(src.source_line)}" if src.source_line else ""
        return f"# onnx: {_text(src.module_type)}{at}"

    def where(path: str, mtype: str) -> str:
        rel = _relative_path(path, prefix_path)
        return f"{_text(rel)} ({_text(mtype)})" if rel else f"({_text(mtype)})"

    first = where(src.module_path, src.module_type)
    if not src.torch_op.startswith("call_module"):
        short = src.torch_op.rsplit(".", 1)[-1].rsplit(" ", 1)[-1].strip("_")
        line = f" at {_text(src.source_line)}" if src.source_line else ""
        if first.startswith("("):
            first = first[1:-1]
        first = f"{_text(short)} in {first}{line}"
    parts = [first]
    for folded in node.meta.get("folded", []):
        parts.append(f"{where(folded.module_path, folded.module_type)[:-1]}, folded)")
    if node.meta.get("flatten_permuted"):
        parts.append("weight columns permuted for the NHWC flatten")
    return f"# torch: {' + '.join(parts)}"


# "# torch: <op> in <module> at <file:line>": an op's comment (not a module's, not a fold)
_OP_COMMENT = re.compile(r"# torch: (\w+) in ([^+]* at [^+]*)")


def _relative_path(path: str, base: str) -> str:
    if not base:
        return path
    if path == base:
        return ""
    return path[len(base) + 1 :] if path.startswith(base + ".") else path


def _relative(text: str, base: str) -> str:
    return text.replace(base + ".", "") if base else text


class _Writer:
    """Writes one function (or build_model's body) from a template instance."""

    def __init__(self, fn: _Function | None, inst: _Instance, stmts: list[Stmt], used: set[str]):
        self.fn, self.inst, self.stmts = fn, inst, stmts
        self.names = _Names(used - _LOCAL_WORDS)
        self.lines: list[str] = []
        self.indent = "    "
        self.last_comment: str | None = None
        self.seen_comments: set[str] = set()
        # the last "# torch: <op> in <where>" line: (index, its comment, ops listed, where)
        self.merge: tuple[int, str, list[str], str] | None = None
        self.bound: dict[str, tuple] = {}  # variable name -> the value it holds now
        self.hoisted: set[str] = set()  # derived parameters assigned at the top

    def param(self, name: str) -> str:
        """A parameter's name, or the expression it follows from (a conditional expression is
        a local assigned at the top: ``padding = "valid" if strides != (1, 1) else "same"``)."""
        expr = self.fn.exprs.get(name) if self.fn else None
        if expr is None or name in self.hoisted:
            return name
        return expr

    def layer_name(self, layer: str) -> str:
        if not self.inst.prefix:
            return json.dumps(layer)
        rest = _rest(layer, self.inst.prefix)
        return "name" if rest == "" else f'f"{{name}}_{rest}"'

    def run(self, root_inputs: dict[int, str] | None = None) -> dict[tuple, str]:
        inst, fn = self.inst, self.fn
        ref = _refs(inst, self.stmts)
        var: dict[tuple, str] = {}
        if fn is not None:
            for n in range(len(inst.ext)):
                var[("in", n)] = self.names.create("x")
                self.bound[var[("in", n)]] = ("in", n)
            fn.inputs = [var[("in", n)] for n in range(len(inst.ext))]
            for p in [*fn.params, *fn.flags.values()]:
                self.names.used.add(p)
            in_slots = {p for row in fn.slots.values() for _, _, p in row if p is not None}
            in_slots |= {
                p for alt in fn.alt_slots.values() for row in alt.values() for _, _, p in row if p
            }
            for p, expr in fn.exprs.items():
                if " if " in expr and p in in_slots:
                    self.hoisted.add(p)
                    self.names.used.add(p)
                    self.lines.append(f"{self.indent}{p} = {expr}")
        wires = [[ref[k] for k in _item_inputs(i, self.stmts)] for i in inst.items]
        outs = [ref[k] for k in inst.outs]
        last_use: dict[tuple, int] = {}
        for u, w in enumerate(wires):
            for r in w:
                last_use[r] = u
        for r in outs:
            last_use[r] = len(inst.items)
        if fn is None:  # the model's inputs are named in keras.Model(inputs=...) at the end
            for j, item in enumerate(inst.items):
                if not isinstance(item, _Instance) and self.stmts[item].node is None:
                    last_use[("it", j, 0)] = len(inst.items)
        blocks = dict(fn.blocks) if fn else {}
        for (_, i2), sub in blocks.items():
            last_use[sub] = max(last_use.get(sub, -1), i2 - 1)
        block_at = {i1: (i1, i2) for i1, i2 in blocks}
        block_out: dict[int, tuple] = {}
        for i1, i2 in blocks:
            for u, w in enumerate(wires):
                for r in w:
                    if r[0] == "it" and i1 <= r[1] < i2 and not i1 <= u < i2:
                        block_out[i2 - 1] = r
            for r in outs:
                if r[0] == "it" and i1 <= r[1] < i2:
                    block_out[i2 - 1] = r
        in_block_end, keep = -1, False
        for j, item in enumerate(inst.items):
            if j in block_at:
                i1, i2 = block_at[j]
                sub = blocks[(i1, i2)]
                target = block_out[i2 - 1]
                if last_use.get(sub, -1) <= i2 - 1 and sub in var:
                    var[target] = var[sub]
                    self.bound[var[sub]] = target
                else:
                    users = [
                        (u, p)
                        for u, ws in enumerate(wires)
                        for p, r in enumerate(ws)
                        if r == target
                    ]
                    hint = "out" if users == [(i2, 0)] else self._hint(inst.items[i2 - 1])
                    var[target] = self.names.create(hint)
                    self.bound[var[target]] = target
                    self.lines.append(f"{self.indent}{var[target]} = {var[sub]}")
                # a comment shared by the block and what follows it (the explicit pad of a
                # strided conv, then the conv) is said once, above the ``if``
                shared = self._own_comment(inst.items[i1])
                after = self._own_comment(inst.items[i2]) if i2 < len(inst.items) else None
                keep = shared is not None and shared == after
                if keep and shared != self.last_comment:
                    limit = MAX_LINE - len(self.indent)
                    short = shared if len(shared) <= limit else shared[: limit - 3] + "..."
                    self.lines.append(self.indent + short)
                self.lines.append(f"{self.indent}if {self.param(fn.flags[(i1, i2)])}:")
                self.indent += "    "
                self.last_comment = shared if keep else None
                in_block_end = i2 - 1
            names = self._targets(j, item, wires, last_use, var, block_out, root_inputs)
            self._emit(j, item, wires[j], names, var)
            for o, name in enumerate(names):
                var[("it", j, o)] = name
                self.bound[name] = ("it", j, o)
            if j == in_block_end:
                self.indent = self.indent[:-4]
                if not keep:
                    self.last_comment = None
        self.outs = [var[r] for r in outs]
        return var

    def _hint(self, item: Any) -> str:
        if isinstance(item, _Instance):
            return item.rest(self.inst.prefix) or item.prefix
        s = self.stmts[item]
        if s.node is not None and s.node.meta.get("local"):
            return str(s.node.meta["local"])
        rest = _rest(s.layer, self.inst.prefix) or s.layer
        # a local named after what the op does: "split", not aten's "split_with_sizes"
        return re.sub(r"(^|_)unsafe_", r"\1", rest).replace("_with_sizes", "")

    def _targets(self, j, item, wires, last_use, var, block_out, root_inputs) -> list[str]:
        if not isinstance(item, _Instance) and self.stmts[item].node is None:
            if root_inputs is not None:  # keras.Model(inputs=...): "inputs", or the input names
                n_inputs = sum(1 for s in self.stmts if s.node is None)
                name = self.names.create("inputs" if n_inputs == 1 else self.stmts[item].hint)
                root_inputs[item] = name
                return [name]
        n_out = len(item.outs) if isinstance(item, _Instance) else 1
        if j in block_out and ("it", j, 0) == block_out[j]:
            return [var[block_out[j]]]
        if n_out != 1:
            base = self._hint(item)
            return [self.names.create(f"{base}_{o}") for o in range(n_out)]
        w = wires[j]
        node = None if isinstance(item, _Instance) else self.stmts[item].node
        if node is not None and node.meta.get("local"):  # q, k, v, scores, attn
            local = _identifier(str(node.meta["local"]))
            if w and w[0] in var and var[w[0]] == local and last_use.get(w[0]) == j:
                return [local]
            ref = self.bound.get(local)
            if ref is None and local not in self.names.used:
                self.names.used.add(local)
                return [local]
            if ref is not None and last_use.get(ref, -1) <= j:
                return [local]
            return [self.names.create(local)]
        if w and last_use.get(w[0]) == j and w[0] in var and w.count(w[0]) == 1:
            if len(w) == 1 or _CHAIN.fullmatch(var[w[0]]):
                return [var[w[0]]]  # a chain: the input is not used again
        users = [
            (u, p) for u, ws in enumerate(wires) for p, r in enumerate(ws) if r == ("it", j, 0)
        ]
        chain = users == [(j + 1, 0)] and last_use.get(("it", j, 0)) == j + 1
        merge = not isinstance(item, _Instance) and self.stmts[item].list_input
        if chain or merge:
            # the main path: "x" where free (build_model), else "out"
            for name in ("x", "out"):
                ref = self.bound.get(name)
                if name not in self.names.used or (ref and last_use.get(ref, -1) <= j):
                    self.names.used.add(name)
                    return [name]
            return [self.names.create("out")]
        return [self.names.create(self._hint(item))]

    def _own_comment(self, item: Any) -> str | None:
        """The comment line a statement carries (None: a module call, or none)."""
        if isinstance(item, _Instance):
            return None
        s = self.stmts[item]
        own = s.node is not None and s.node.meta.get("note")
        if not own and s.comment_node is not None and s.comment_node.meta.get("note"):
            return None  # a helper of a noted step: the step's own note comes with it
        return _comment(s.node if own else s.comment_node, self.inst.path)

    def _merge_comment(self, comment: str) -> bool:
        """One comment per torch source line: the ops of consecutive statements from the same
        line are listed in the comment above the first (``# torch: split, sub, add in Detect at
        head.py:201``), when nothing else came between. True when ``comment`` was merged."""
        match = _OP_COMMENT.fullmatch(comment)
        if not match or self.merge is None:
            return False
        at, last, op_names, where = self.merge
        if (
            last != self.last_comment
            or where != match[2]
            or not self.lines[at].startswith(self.indent + "#")
        ):
            return False
        names = op_names if match[1] in op_names else [*op_names, match[1]]
        line = f"{self.indent}# torch: {', '.join(names)} in {where}"
        if len(line) > MAX_LINE:
            return False
        self.lines[at] = line
        self.merge = (at, comment, names, where)
        return True

    def _emit(self, j: int, item: Any, wire: list[tuple], names: list[str], var) -> None:
        ins = [var[r] for r in wire]
        target = ", ".join(names)
        slots = self.fn.slots.get(j, []) if self.fn else None
        if isinstance(item, _Instance):
            self.last_comment = None
            rest = item.rest(self.inst.prefix)
            where = (
                f"name={json.dumps(item.prefix)}" if rest is None else f'name=f"{{name}}_{rest}"'
            )

            def call(function: _Function, slots: list | None, indent: str) -> list[str]:
                args = list(ins)
                if slots is None:
                    args += [f"{k}={v}" for k, v in item.call_values.items()]
                else:
                    args += [f"{k}={v if v is not None else self.param(p)}" for k, v, p in slots]
                return _call_text(target, function.name, [*args, where], "", indent)

            if self.fn is None or j not in self.fn.alts:
                self.lines += call(item.function, slots, self.indent)
                return
            usual, other = self.fn.alts[j]
            inner = self.indent + "    "
            self.lines.append(f"{self.indent}if {self.param(self.fn.flags[('alt', j)])}:")
            self.lines += call(other, self.fn.alt_slots[j][id(other)], inner)
            self.lines.append(f"{self.indent}else:")
            self.lines += call(usual, self.fn.alt_slots[j][id(usual)], inner)
            return
        s = self.stmts[item]
        comment = self._own_comment(item)
        if comment and " at " in comment and comment in self.seen_comments:
            comment = None  # the same torch line again (a loop in forward): said once
        if comment and comment != self.last_comment:
            self.seen_comments.add(comment)
            if not self._merge_comment(comment):
                limit = MAX_LINE - len(self.indent)
                short = comment if len(comment) <= limit else comment[: limit - 3] + "..."
                self.lines.append(self.indent + short)
                match = _OP_COMMENT.fullmatch(comment)
                self.merge = (len(self.lines) - 1, comment, [match[1]], match[2]) if match else None
            self.last_comment = comment
        if slots is None:
            pairs = [(k, t) for k, t in s.args]
        else:
            pairs = [
                (k if isinstance(k, str) else None, t if t is not None else self.param(p))
                for k, t, p in slots
            ]
        args = [t if k is None else f"{k}={t}" for k, t in pairs]
        args.append(f"name={self.layer_name(s.layer)}")
        if s.node is None:
            tail = ""
        else:
            tail = f"([{', '.join(ins)}])" if s.list_input else f"({', '.join(ins)})"
        self.lines += _call_text(target, s.ctor, args, tail, self.indent)


def _split_top(text: str) -> list[str]:
    """Split "a=[x, y], b=1" at top-level commas."""
    parts, depth, cur = [], 0, ""
    for ch in text:
        depth += ch in "([{"
        depth -= ch in ")]}"
        if ch == "," and depth == 0:
            parts.append(cur.strip())
            cur = ""
        else:
            cur += ch
    return [*parts, cur.strip()] if cur.strip() else parts


def write_structured(
    stmts: list[Stmt],
    output_keys: list[int],
    modules: dict,
    model_call: str,
    reserved: set[str],
) -> tuple[list[str], list[str]]:
    """build_model()'s body lines and the function definitions (each a source block)."""
    paths = [s.path for s in stmts]
    users: list[list[int]] = [[] for _ in stmts]
    for i, s in enumerate(stmts):
        for k in s.inputs:
            users[k].append(i)
    root = _Instance("", "", 0, len(stmts) - 1, ("", ""))
    _nest(_candidates(stmts, paths, modules), root)
    _fill(root, stmts, users, set(output_keys))
    root.outs = list(dict.fromkeys(output_keys))

    by_height: dict[int, list[_Instance]] = {}

    def collect(inst: _Instance) -> None:
        for c in inst.children:
            collect(c)
            by_height.setdefault(c.height, []).append(c)

    collect(root)
    module_names = _Names(set(reserved) | set(dir(builtins)) | _LOCAL_WORDS)
    module_names.used |= {s.hint for s in stmts if s.node is None}  # the model's input names
    functions: list[_Function] = []
    pending = sorted((i for h in by_height.values() for i in h), key=lambda i: (i.height, i.start))
    while pending:
        # a class is grouped once every instance's children have their functions: all its
        # instances at once, whatever their heights (C3k2 holding a Bottleneck or a C3k)
        classes: dict[tuple[str, str], list[_Instance]] = {}
        for inst in pending:
            classes.setdefault(inst.cls_key, []).append(inst)
        ready = [
            group
            for group in classes.values()
            if all(c.function is not None for i in group for c in i.children)
        ]
        if not ready:  # a class nested in itself: its instances height by height
            low = min(i.height for i in pending)
            ready = [[i for i in g if i.height == low] for g in classes.values()]
            ready = [g for g in ready if g]
        for group in ready:
            group.sort(key=lambda i: i.start)
            functions += _group(group, stmts, module_names)
        done = {id(i) for g in ready for i in g}
        pending = [i for i in pending if id(i) not in done]

    blocks = []
    for fn in functions:
        w = _Writer(fn, fn.template, stmts, module_names.used)
        w.run()
        head = ", ".join(
            [*fn.inputs, "*"]
            + [p for p in fn.params if p not in fn.defaults]
            + [
                f"{p}={fn.defaults[p]}"
                for p in [*fn.params, *fn.flags.values()]
                if p in fn.defaults and p not in fn.exprs
            ]
            + ["name"]
        )
        mod, cls = fn.cls_key
        what = f"{_text(mod)}.{_text(cls)}" if mod else _text(cls)
        doc = f'    """PyTorch {what}."""'
        if mod == ONNX_CLASS:
            where = _text(fn.members[0][0].path, 60)
            doc = f'    """Modules like {where} (ONNX node names: their class is not recorded)."""'
        if len(doc) > MAX_LINE:
            doc = f'    """PyTorch\n    {what}.\n    """'
        doc = [doc]
        sig = _call_text("", f"def {fn.name}", [head], ":", "")
        if len(sig) > 1:
            sig = _call_text("", f"def {fn.name}", head.split(", "), ":", "")
        ret = ", ".join(w.outs)
        blocks.append("\n".join([*sig, *doc, *w.lines, f"    return {ret}"]) + "\n")

    w = _Writer(None, root, stmts, module_names.used)
    root_inputs: dict[int, str] = {}
    w.run(root_inputs=root_inputs)
    ins = list(root_inputs.values())
    outs = w.outs
    call = model_call.format(
        ins=ins[0] if len(ins) == 1 else f"[{', '.join(ins)}]",
        outs=outs[0] if len(outs) == 1 else f"[{', '.join(outs)}]",
    )
    head, _, rest = call.partition("(")
    parts = rest[:-1].split(", ") if "[" not in rest else _split_top(rest[:-1])
    body = [*w.lines, *_call_text("", f"return {head}", parts, "", "    ")]
    return body, blocks
