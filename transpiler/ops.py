"""The canonical IR op set: each op declared once with its inputs, attributes and layout class.

Layout classes (what the layout pass asks instead of keeping lists of op names):

- ``spatial``: computes over N, C and spatial axes; runs channels-last (``data_format``).
- ``elementwise``: any layout, all tensor inputs in the same layout (broadcasting included).
- ``axis``: any layout; the attributes named in ``axis_attrs`` carry axes and are remapped by
  one generic rule: ``"axis"`` (one axis index), ``"axes"`` (a set of axes, kept sorted),
  ``"per_axis"`` (one entry per axis, reordered with them). Real special cases (cat's shared
  layout, layer_norm's affine constants, slice's paired start/stop/step, pad's consumer
  preference, reduce's output without the reduced axes, broadcast_to's reference input) have
  their own rule in ``passes/layout/policy.py``.
- ``last_axis``: works on the last axis (linear); that axis must stay in place.
- ``fixed``: runs in PyTorch's logical layout (matmul, einsum: their axis roles live in
  the equation/shape, not in attributes): the layout pass gives them their inputs in
  PyTorch's layout and their output is in PyTorch's layout.
- ``reshape``: reinterprets the element order; handled specially by the layout pass.
- ``transpose``: an explicit permutation; absorbed into the layout where possible.

Attributes: ``_op(..., key=default)`` declares each attribute (``R``: required). Nodes get the
defaults filled in when they are built (``Graph.make_node``), and list values become tuples,
so readers index ``node.attrs[key]`` and never restate a default.

Implementations register against the declaration through one ``OpImplTable`` per consumer:
``EVALUATORS`` (``@evaluates``, transpiler/interpreter.py), ``RULES`` (``@emits``,
backends/keras_source/rules.py) and ``LOWERINGS`` (``@lowers``, backends/tf_graph/lowering.py).
A table refuses an undeclared op; looking up a missing op, or an implementation failing on a
node, raises a ``TranspileError`` naming the table, the node and its PyTorch module.

Checklist for adding an op (tests/test_op_table.py checks the last five):

1. declare it here with ``_op(name, layout_class, min_inputs, max_inputs, **attrs)`` (and
   ``axis_attrs`` for the ``axis`` class);
2. a converter producing it (transpiler/frontend/converters/);
3. an evaluator: ``@evaluates`` in transpiler/interpreter.py;
4. a Keras rule: ``@emits`` in backends/keras_source/rules.py;
5. a TF lowering: ``@lowers`` in backends/tf_graph/lowering.py;
6. a layout rule: its layout class (or a special case in passes/layout/policy.py);
7. a catalog case in tests/ops/cases.py that produces it.

A unary elementwise op such as ``sin`` is one name in each of the unary lists (here, the
interpreter's ``_UNARY``, the Keras rules' and TF lowerings' unary tables), one converter
entry and one catalog case.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from .errors import TranspileError

if TYPE_CHECKING:  # pragma: no cover
    from .ir import Node

__all__ = [
    "OpSpec",
    "OPS",
    "op_spec",
    "OpImplTable",
    "with_defaults",
    "declared_attr",
    "reshape_sources",
    "reshape_target",
]

_REQUIRED = object()


@dataclass(frozen=True)
class OpSpec:
    name: str
    layout: str
    min_inputs: int = 1
    max_inputs: int | None = 1  # None: variadic
    attrs: dict[str, Any] = field(default_factory=dict)  # name -> default (_REQUIRED if none)
    # layout class "axis": attribute name -> "axis" | "axes" | "per_axis" (see the docstring)
    axis_attrs: dict[str, str] = field(default_factory=dict)

    def check(self, node: Node) -> None:
        from .ir import IRVerificationError

        n = len(node.inputs)
        if n < self.min_inputs or (self.max_inputs is not None and n > self.max_inputs):
            raise IRVerificationError(
                f"node `{node.format()}`: {self.name} takes {self.min_inputs}..{self.max_inputs} "
                f"inputs, got {n}"
            )
        for key, default in self.attrs.items():
            if default is _REQUIRED and key not in node.attrs:
                raise IRVerificationError(f"node `{node.format()}`: missing attribute {key!r}")
        unknown = set(node.attrs) - set(self.attrs)
        if unknown:
            raise IRVerificationError(
                f"node `{node.format()}`: unknown attributes {sorted(unknown)} for {self.name}"
            )

    def with_defaults(self, attrs: dict[str, Any]) -> dict[str, Any]:
        """``attrs`` with every declared default filled in and lists turned into tuples."""
        out = {k: d for k, d in self.attrs.items() if d is not _REQUIRED}
        out.update({k: _frozen(v) for k, v in attrs.items()})
        return out


def _frozen(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return tuple(_frozen(v) for v in value)
    return value


def declared_attr(node: Node, key: str) -> Any:
    """``node.attrs[key]``, or the declared default where a pass consumed the attribute (e.g.
    normalize_padding drops ``padding_mode`` once the padding is explicit)."""
    if key in node.attrs:
        return node.attrs[key]
    default = OPS[node.op].attrs[key]
    if default is _REQUIRED:
        raise KeyError(key)
    return default


def with_defaults(op: str, attrs: dict[str, Any]) -> dict[str, Any]:
    """Attributes for a new ``op`` node: defaults filled, lists as tuples (an undeclared op
    keeps its attributes as given; ``Graph.verify`` names it)."""
    spec = OPS.get(op)
    return spec.with_defaults(attrs) if spec else {k: _frozen(v) for k, v in attrs.items()}


OPS: dict[str, OpSpec] = {}


def _op(
    name: str,
    layout: str,
    min_inputs: int = 1,
    max_inputs: int | None = 1,
    axis_attrs: dict[str, str] | None = None,
    **attrs: Any,
):
    OPS[name] = OpSpec(name, layout, min_inputs, max_inputs, attrs, dict(axis_attrs or {}))


R = _REQUIRED
SPATIAL = {"data_format": "channels_first"}  # the layout pass sets "channels_last"

# Convolution / pooling over 1, 2 or 3 spatial axes (the rank comes from the input; tuples
# have one entry per spatial axis). `padding` is what torch gave (ints, "same", "valid") until
# normalize_padding makes it "valid" or "same", with any other padding an explicit `pad`.
_op(
    "conv",  # inputs: x, weight (O, I/groups, *k) [, bias]
    "spatial",
    2,
    3,
    stride=R,
    padding="valid",
    dilation=R,
    groups=1,
    padding_mode="zeros",
    **SPATIAL,
)
_op(
    "conv_transpose",  # inputs: x, weight (I, O/groups, *k) [, bias]
    "spatial",
    2,
    3,
    stride=R,
    padding=R,  # torch's padding crops the full output; normalize_padding makes it explicit
    output_padding=R,
    dilation=R,
    groups=1,
    **SPATIAL,
)
# One kernel per sample: x (N, C, *s), kernels (N, O, C, *k) -> (N, O, *s'); 'valid' padding.
_op("conv_per_sample", "spatial", 2, 2, stride=R, dilation=R, **SPATIAL)
_op("max_pool", "spatial", kernel=R, stride=R, padding=R, dilation=R, ceil_mode=False, **SPATIAL)
_op(
    "avg_pool",
    "spatial",
    kernel=R,
    stride=R,
    padding=R,
    ceil_mode=False,
    count_include_pad=True,
    divisor_override=None,
    **SPATIAL,
)
_op("adaptive_avg_pool", "spatial", output_size=R, **SPATIAL)
_op("adaptive_max_pool", "spatial", output_size=R, **SPATIAL)

# Normalization: `axis` is the channel axis. Inputs: x, mean, var, weight, bias.
_op("batch_norm", "axis", 5, 5, axis_attrs={"axis": "axis"}, eps=1e-5, momentum=0.1, axis=1)

# Linear algebra. Inputs: x, weight (out, in) [, bias].
_op("linear", "last_axis", 2, 3)
_op("matmul", "fixed", 2, 2)  # numpy matmul semantics; runs in PyTorch's layout
_op("einsum", "fixed", 1, None, equation=R)

# Resampling of the spatial axes. Two semantics, chosen by `coord`:
# - coord None: PyTorch's F.interpolate. mode: nearest, nearest-exact, linear (bi/trilinear);
#   scales: torch's coordinate scale per axis (in/out, or 1/scale_factor), None when from sizes.
#   (PyTorch's bicubic, A = -0.75 with borders clamped, is ONNX's cubic Resize: the frontends
#   give it coord half_pixel or align_corners.)
# - coord an ONNX coordinate_transformation_mode (half_pixel, pytorch_half_pixel, align_corners,
#   asymmetric, tf_half_pixel_for_nn, half_pixel_symmetric): ONNX's Resize, as its reference
#   computes it (backends/_planning.py resize_taps). mode: nearest (nearest_mode), linear or
#   cubic (cubic_a); exclude_outside, antialias; factors: ONNX's scale per axis (out/in).
_op(
    "resize",
    "spatial",
    sizes=R,
    mode=R,
    align_corners=False,
    scales=None,
    coord=None,
    factors=None,
    nearest_mode="round_prefer_floor",
    cubic_a=-0.75,
    exclude_outside=False,
    antialias=False,
    **SPATIAL,
)
# F.grid_sample: inputs x (N, C, H, W), grid (N, Ho, Wo, 2) of (x, y) in [-1, 1] -> (N, C, Ho, Wo).
# mode: bilinear, nearest; padding_mode: zeros, border, reflection. Runs in PyTorch's layout.
_op("grid_sample", "fixed", 2, 2, mode="bilinear", padding_mode="zeros", align_corners=False)

# Unary elementwise.
for _name in ("relu", "relu6", "silu", "sigmoid", "tanh", "hardswish", "hardsigmoid"):
    _op(_name, "elementwise")
_op("leaky_relu", "elementwise", negative_slope=0.01)
_op("gelu", "elementwise", approximate="none")
_op("identity", "elementwise")
for _name in ("abs", "neg", "exp", "log", "sqrt", "rsqrt", "square", "reciprocal", "erf", "mish"):
    _op(_name, "elementwise")
for _name in ("trunc", "sin", "cos"):
    _op(_name, "elementwise")
_op("elu", "elementwise", alpha=1.0)
_op("softplus", "elementwise", beta=1.0, threshold=20.0)
_op("clamp", "elementwise", min=None, max=None)

# Binary elementwise with numpy broadcasting; scalars are 0-d constants.
for _name in ("add", "sub", "mul", "div", "pow", "maximum", "minimum"):
    _op(_name, "elementwise", 2, 2)
# a // b as PyTorch computes it for floats (torch.div(a, b, rounding_mode="floor")): from the
# exact remainder, so quotients on integer boundaries agree with PyTorch's
_op("floor_divide", "elementwise", 2, 2)

# Axis-carrying.
AXIS, AXES = {"axis": "axis"}, {"axes": "axes"}
_op("cat", "axis", 1, None, axis_attrs=AXIS, axis=R)
_op("softmax", "axis", axis_attrs=AXIS, axis=R)
_op("log_softmax", "axis", axis_attrs=AXIS, axis=R)
# kind: mean, sum, max, min
_op("reduce", "axis", axis_attrs=AXES, kind=R, axes=R, keepdims=False)
# the int64 index of the first max (kind "max") or min along the one axis in `axes`
_op("arg_reduce", "axis", axis_attrs=AXES, kind=R, axes=R, keepdims=False)
# inputs: x, weight, bias (normalized shape)
_op("layer_norm", "axis", 3, 3, axis_attrs=AXES, axes=R, eps=1e-5)
# inputs: x, weight (C,), bias (C,)
_op("group_norm", "axis", 3, 3, axis_attrs=AXIS, groups=R, eps=1e-5, axis=1)
# inputs: x, weight (C,) or (1,)
_op("prelu", "axis", 2, 2, axis_attrs=AXIS, axis=1)
# broadcast_to: target shape; -1 keeps x's size, None takes the batch size of the optional
# second input (a graph input) - e.g. a class token expanded to the dynamic batch
_op("broadcast_to", "axis", 1, 2, axis_attrs={"shape": "per_axis"}, shape=R)
# pads: one (before, after) pair per axis, in axis order. mode: constant/reflect/replicate/circular
_op("pad", "axis", axis_attrs={"pads": "per_axis"}, pads=R, mode="constant", value=0.0)

# slice: per listed axis, start/stop/step (stop None = to the end; negative = from the end)
_op("slice", "axis", axis_attrs={"axes": "axes"}, axes=R, starts=R, stops=R, steps=R)

# Integer / boolean tensors and sequence-model ops.
_op("cast", "elementwise", dtype=R)  # to a numpy dtype name: "float32", "int64", "bool"
for _name in ("floor", "ceil", "round", "logical_not", "selu", "log_sigmoid"):
    _op(_name, "elementwise")
# comparisons (bool result) and logic; remainder: Python's modulo (the divisor's sign)
for _name in ("equal", "not_equal", "less", "less_equal", "greater", "greater_equal"):
    _op(_name, "elementwise", 2, 2)
for _name in ("logical_and", "logical_or", "remainder"):
    _op(_name, "elementwise", 2, 2)
_op("where", "elementwise", 3, 3)  # inputs: condition (bool), x, y
# embedding: inputs ids (integer), table (num, dim) -> ids.shape + (dim,)
_op("embedding", "fixed", 2, 2)
# take: x indexed along `axis` by integer indices (any shape): index_select, x[:, [0, 2, 1]]
_op("take", "fixed", 2, 2, axis=R)
_op("cumsum", "fixed", axis=R)
_op("flip", "fixed", axes=R)
_op("roll", "fixed", shifts=R, axes=R)  # torch.roll with dims (one shift per axis)

# -- sequence and transformer models (issue 12, s2-hf-text) --
# take_along_axis: torch.gather / take_along_dim; inputs x, int64 indices of x's rank (sizes
# may differ from x's off `axis`: the output takes the indices' shape)
_op("take_along_axis", "fixed", 2, 2, axis=R)
# triangle: torch.triu (upper=True) / tril of the last two axes, `diagonal` as torch's
_op("triangle", "fixed", upper=R, diagonal=0)
# topk: outputs (values, int64 indices) of the k largest (smallest) along `axis`, sorted;
# torch.sort is topk with k = the axis' size
_op("topk", "fixed", k=R, axis=R, largest=True)

# Recurrent: one layer of nn.LSTM / nn.GRU / nn.RNN, one or both directions, batch-first.
# Inputs: x (N, T, I); per direction w_ih (G*H, I), w_hh (G*H, H) [, b_ih (G*H,), b_hh (G*H,)]
# in PyTorch's gate order (LSTM i,f,g,o; GRU r,z,n); then, with initial_state, per direction
# h0 (N, H) [, c0 (N, H) for lstm]. Outputs (Keras' order): the sequence (N, T, D*H), then per
# direction h_n (N, H) [, c_n (N, H)]. mode: lstm, gru, rnn_tanh, rnn_relu.
_op(
    "rnn",
    "fixed",
    3,
    None,
    mode=R,
    hidden_size=R,
    bidirectional=False,
    bias=True,
    initial_state=False,
)

# Shape.
# target shape; -1 marks a dynamic dimension: one -1 is inferred (numpy's rule); several -1
# (dynamic sizes beyond the batch, issue 12) take, in order, the sizes of the input's dynamic
# axes (those None in its IR type), which the reshape neither merges nor splits
_op("reshape", "reshape", shape=R)
_op("transpose", "transpose", perm=R, reason="")

del _name


def reshape_sources(node: Node) -> tuple[int, ...] | None:
    """For a reshape with several -1 in its target: the input axes (dynamic in the IR) whose
    runtime sizes fill them, in order; None when the target has at most one -1."""
    target = tuple(node.attrs["shape"])
    if sum(d == -1 for d in target) < 2:
        return None
    sources = tuple(i for i, d in enumerate(node.inputs[0].shape) if d is None)
    if len(sources) != sum(d == -1 for d in target):
        raise TranspileError(
            f"internal: reshape to {target} of a value with dynamic axes {sources} at "
            f"{node.source.describe() if node.source else '<unknown>'}"
        )
    return sources


def reshape_target(target: tuple, sources: tuple[int, ...] | None, sizes: Any) -> list:
    """``target`` with its -1 entries filled from ``sizes`` (the input's runtime shape, ints or
    scalar tensors) at ``sources``; unchanged when ``sources`` is None."""
    if sources is None:
        return list(target)
    fill = iter(sources)
    return [sizes[next(fill)] if d == -1 else d for d in target]


def op_spec(name: str) -> OpSpec:
    return OPS[name]


F = TypeVar("F", bound=Callable[..., Any])


class OpImplTable(Generic[F]):
    """One implementation per declared op, for one consumer of the IR (the interpreter, a
    backend). ``register(*ops)`` is the decorator; ``apply(node, *args)`` runs the entry for
    ``node.op`` and turns any failure into a ``TranspileError`` naming the table, the node and
    its PyTorch module."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._impls: dict[str, F] = {}

    def register(self, *ops: str) -> Callable[[F], F]:
        unknown = [op for op in ops if op not in OPS]
        if unknown:
            raise TranspileError(
                f"{self.name}: ops {unknown} are not declared in transpiler/ops.py; declare "
                "them there first"
            )

        def decorate(fn: F) -> F:
            for op in ops:
                self._impls[op] = fn
            return fn

        return decorate

    def lookup(self, op: str) -> F:
        fn = self._impls.get(op)
        if fn is None:
            raise TranspileError(f"{self.name} has no entry for IR op {op!r}")
        return fn

    def missing(self, ops) -> list[str]:
        """The ops among ``ops`` with no entry, sorted."""
        return sorted({op for op in ops if op not in self._impls})

    def apply(self, node: Node, *args: Any) -> Any:
        fn = self.lookup(node.op)
        try:
            return fn(node, *args)
        except TranspileError:
            raise
        except Exception as exc:  # noqa: BLE001 - re-raised with the node named
            where = node.source.describe() if node.source else "no PyTorch module"
            raise TranspileError(
                f"{self.name} failed on node `{node.format()}` (from {where}): "
                f"{type(exc).__name__}: {exc}"
            ) from exc

    # read-only mapping behaviour (``op in table``, ``table[op]``, ``table.get(op)``)
    def __contains__(self, op: object) -> bool:
        return op in self._impls

    def __getitem__(self, op: str) -> F:
        return self.lookup(op)

    def get(self, op: str, default: Any = None) -> Any:
        return self._impls.get(op, default)

    def __iter__(self) -> Iterator[str]:
        return iter(self._impls)

    def __len__(self) -> int:
        return len(self._impls)

    def keys(self):
        return self._impls.keys()
