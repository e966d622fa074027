"""Binary arithmetic with broadcasting (tensors and scalars) and concatenation."""

from __future__ import annotations

import operator

import torch

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
converts(operator.truediv, torch.div, torch.true_divide, "div", operator.itruediv, "div_")(
    _binary("div")
)


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
