"""The canonical IR op set: each op declared once with its inputs, attributes and layout class.

Layout classes (what the layout pass asks instead of keeping lists of op names):

- ``spatial``: computes over N, C and spatial axes; runs channels-last (``data_format``).
- ``elementwise``: any layout, all tensor inputs in the same layout (broadcasting included).
- ``axis``: any layout; the ``axis``/``axes``/``pads`` attributes are remapped to it.
- ``last_axis``: works on the last axis (linear); that axis must stay in place.
- ``reshape``: reinterprets the element order; handled specially by the layout pass.
- ``transpose``: an explicit permutation; absorbed into the layout where possible.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from .ir import Node

__all__ = ["OpSpec", "OPS", "op_spec"]

_REQUIRED = object()


@dataclass(frozen=True)
class OpSpec:
    name: str
    layout: str
    min_inputs: int = 1
    max_inputs: int | None = 1  # None: variadic
    attrs: dict[str, Any] = field(default_factory=dict)  # name -> default (_REQUIRED if none)
    pure: bool = True

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

    def attr(self, node: Node, key: str) -> Any:
        value = node.attrs.get(key, self.attrs[key])
        return None if value is _REQUIRED else value


OPS: dict[str, OpSpec] = {}


def _op(name: str, layout: str, min_inputs: int = 1, max_inputs: int | None = 1, **attrs: Any):
    OPS[name] = OpSpec(name, layout, min_inputs, max_inputs, attrs)


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
_op("batch_norm", "axis", 5, 5, eps=1e-5, momentum=0.1, axis=1)

# Linear algebra. Inputs: x, weight (out, in) [, bias].
_op("linear", "last_axis", 2, 3)
_op("matmul", "fixed", 2, 2)  # numpy matmul semantics; runs in PyTorch's layout
_op("einsum", "fixed", 1, None, equation=R)

# Resampling of the spatial axes. mode: nearest, nearest-exact, linear (bi/trilinear).
# scales: torch's coordinate scale per axis (in/out, or 1/scale_factor), None when from sizes.
_op("resize", "spatial", sizes=R, mode=R, align_corners=False, scales=None, **SPATIAL)

# Unary elementwise.
for _name in ("relu", "relu6", "silu", "sigmoid", "tanh", "hardswish", "hardsigmoid"):
    _op(_name, "elementwise")
_op("leaky_relu", "elementwise", negative_slope=0.01)
_op("gelu", "elementwise", approximate="none")
_op("identity", "elementwise")
for _name in ("abs", "neg", "exp", "log", "sqrt", "rsqrt", "square", "reciprocal", "erf", "mish"):
    _op(_name, "elementwise")
for _name in ("floor", "ceil", "trunc", "round"):  # round: half to even, as torch.round
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
_op("cat", "axis", 1, None, axis=R)
_op("softmax", "axis", axis=R)
_op("log_softmax", "axis", axis=R)
_op("reduce", "axis", kind=R, axes=R, keepdims=False)  # kind: mean, sum, max, min
# the int64 index of the first max (kind "max") or min along the one axis in `axes`
_op("arg_reduce", "axis", kind=R, axes=R, keepdims=False)
_op("layer_norm", "axis", 3, 3, axes=R, eps=1e-5)  # inputs: x, weight, bias (normalized shape)
_op("group_norm", "axis", 3, 3, groups=R, eps=1e-5, axis=1)  # inputs: x, weight (C,), bias (C,)
_op("prelu", "axis", 2, 2, axis=1)  # inputs: x, weight (C,) or (1,)
# broadcast_to: target shape; -1 keeps x's size, None takes the batch size of the optional
# second input (a graph input) - e.g. a class token expanded to the dynamic batch
_op("broadcast_to", "axis", 1, 2, shape=R)
# pads: one (before, after) pair per axis, in axis order. mode: constant/reflect/replicate/circular
_op("pad", "axis", pads=R, mode="constant", value=0.0)

# slice: per listed axis, start/stop/step (stop None = to the end; negative = from the end)
_op("slice", "axis", axes=R, starts=R, stops=R, steps=R)

# Shape.
_op("reshape", "reshape", shape=R)  # target shape; -1 marks the one dynamic dimension
_op("transpose", "transpose", perm=R, reason="")

del _name


def op_spec(name: str) -> OpSpec:
    return OPS[name]
