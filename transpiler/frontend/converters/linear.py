"""Fully connected layers."""

from __future__ import annotations

import operator

import torch
import torch.nn as nn
import torch.nn.functional as F

from ...errors import TranspileError
from ..fx_importer import Builder
from ..registry import converts
from ._util import keeps_batch


# F.linear(input, weight, bias=None)
@converts(F.linear)
def linear(b: Builder, input, weight, bias=None):
    if 0 in weight.shape or 0 in input.shape:
        raise TranspileError(
            f"linear at {b.where()} has a zero-size weight {tuple(weight.shape)} or input "
            f"{tuple(input.shape)}: nothing to compute; remove the layer or give it features."
        )
    if not b.graph.is_constant(weight):  # a weight computed in forward: x @ W^T (+ b)
        wt = b.op("transpose", [weight], _t_type(weight), perm=_swap_last(weight.rank))
        y = b.op("matmul", [input, wt], b.out_type if bias is None else None)
        return y if bias is None else b.op("add", [y, bias])
    return b.op("linear", [input, weight] + ([bias] if bias is not None else []))


def _swap_last(rank: int) -> tuple[int, ...]:
    return (*range(rank - 2), rank - 1, rank - 2)


def _t_type(v):
    from ...ir import TensorType

    return TensorType(tuple(v.shape[i] for i in _swap_last(v.rank)), v.type.dtype)


@converts(nn.Linear)
def linear_module(b: Builder, m: nn.Linear, input):
    bias = b.const(m.bias, "bias") if m.bias is not None else None
    return linear(b, input, b.const(m.weight, "weight"), bias)


# torch.matmul(input, other) / torch.bmm / the @ operator
@converts(torch.matmul, torch.bmm, operator.matmul, "matmul", "bmm", torch.mm, "mm")
def matmul(b: Builder, input, other):
    return b.op("matmul", [input, other])


# torch.einsum(equation, *operands)
@converts(torch.einsum, torch.functional.einsum)
def einsum(b: Builder, equation, *operands):
    if len(operands) == 1 and isinstance(operands[0], list | tuple):
        operands = tuple(operands[0])
    keeps_batch(b, operands, b.out_type.shape, "einsum")
    return b.op("einsum", list(operands), equation=str(equation).replace(" ", ""))
