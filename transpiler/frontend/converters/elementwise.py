"""Binary arithmetic with broadcasting (tensors and scalars) and concatenation."""

from __future__ import annotations

import operator

import torch

from ...errors import TranspileError
from ...ir import Value
from ..fx_importer import Builder
from ..registry import converts
from ._util import axis


def _operand(b: Builder, x, like: Value) -> Value:
    return x if isinstance(x, Value) else b.scalar(x, like)


def _binary(op: str):
    def convert(b: Builder, input, other, *, alpha=1, **kwargs):
        like = input if isinstance(input, Value) else other
        if alpha != 1:  # torch.add(x, y, alpha=a) == x + a*y
            other = _scaled(b, _operand(b, other, like), alpha)
        return b.op(op, [_operand(b, input, like), _operand(b, other, like)])

    return convert


def _scaled(b: Builder, v: Value, alpha) -> Value:
    return b.op("mul", [v, b.scalar(alpha, v)], out_type=v.type)


converts(operator.add, torch.add, "add", operator.iadd, "add_")(_binary("add"))
converts(operator.sub, torch.sub, torch.subtract, "sub", operator.isub, "sub_")(_binary("sub"))
converts(operator.mul, torch.mul, torch.multiply, "mul", operator.imul, "mul_")(_binary("mul"))
converts(torch.true_divide, operator.truediv, operator.itruediv)(_binary("div"))


# torch.div(input, other, *, rounding_mode=None): None, "floor" or "trunc"
@converts(torch.div, torch.divide, "div", "div_", "divide")
def div(b: Builder, input, other, *, rounding_mode=None, out=None):
    if rounding_mode is None:
        return _binary("div")(b, input, other)
    if rounding_mode not in ("floor", "trunc"):
        raise TranspileError(f"torch.div(rounding_mode={rounding_mode!r}) at {b.where()}")
    if not b.out_type.is_float:
        raise TranspileError(
            f"integer division with rounding_mode={rounding_mode!r} at {b.where()} is not "
            "supported; divide float tensors."
        )
    like = input if isinstance(input, Value) else other
    a, d = _operand(b, input, like), _operand(b, other, like)
    if rounding_mode == "floor":
        return b.op("floor_divide", [a, d])
    return b.op("trunc", [b.op("div", [a, d])])


# a // b, torch.floor_divide(input, other)
@converts(operator.floordiv, operator.ifloordiv, torch.floor_divide, "floor_divide")
def floor_divide(b: Builder, input, other, *, out=None):
    return div(b, input, other, rounding_mode="floor")


# torch.trunc / torch.fix (floor, ceil and round: converters/tensors.py)
@converts(torch.trunc, torch.fix, "trunc", "fix")
def trunc(b: Builder, input, *, out=None):
    return b.op("trunc", [input])


converts(torch.pow, operator.pow, "pow")(_binary("pow"))


@converts(torch.rsub)
def rsub(b: Builder, input, other, alpha=1):  # other - alpha * input
    return _binary("sub")(b, other, input if alpha == 1 else _scaled(b, input, alpha))


# torch.cat(tensors, dim=0)
@converts(torch.cat, torch.concat, torch.concatenate)
def cat(b: Builder, tensors, dim=0, axis_=None):
    tensors = [t for t in tensors if not (isinstance(t, Value) and 0 in t.shape)]
    rank = b.out_type.rank
    if len(tensors) == 1:
        return tensors[0]
    return b.op("cat", list(tensors), axis=axis(dim, rank))


# F.normalize(input, p=2.0, dim=1, eps=1e-12): input / max(||input||_p along dim, eps)
@converts(torch.nn.functional.normalize)
def normalize(b: Builder, input, p=2.0, dim=1, eps=1e-12, out=None):
    from ...errors import TranspileError
    from ...ir import TensorType

    p = float(b.static(p, "the norm order"))
    if p == 0 or p != p:
        raise TranspileError(f"F.normalize with p={p} at {b.where()} is not supported")
    ax = axis(dim, input.rank)
    reduced = TensorType(
        tuple(1 if i == ax else d for i, d in enumerate(input.shape)), input.type.dtype
    )
    if p in (float("inf"), float("-inf")):  # max (min) of |x|
        kind = "max" if p > 0 else "min"
        magnitude = b.op("abs", [input], input.type)
        norm = b.op("reduce", [magnitude], reduced, kind=kind, axes=(ax,), keepdims=True)
    elif p == 2:
        powered = b.op("square", [input], input.type)
        norm = b.op("reduce", [powered], reduced, kind="sum", axes=(ax,), keepdims=True)
        norm = b.op("sqrt", [norm], reduced)
    else:  # (sum |x|^p)^(1/p)
        powered = b.op("abs", [input], input.type)
        if p != 1:
            powered = b.op("pow", [powered, b.scalar(p)], input.type)
        norm = b.op("reduce", [powered], reduced, kind="sum", axes=(ax,), keepdims=True)
        if p != 1:
            norm = b.op("pow", [norm, b.scalar(1.0 / p)], reduced)
    norm = b.op("maximum", [norm, b.scalar(float(eps))], reduced)
    return b.op("div", [input, norm], input.type)
