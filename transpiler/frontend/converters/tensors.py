"""Integer and boolean tensors, embeddings, indexing with index tensors, and the smaller math ops
sequence models use: casts, comparisons and logic, where/masked_fill, cumsum, flip, roll, stack,
selu/logsigmoid, floor/round/remainder, std/var, clamp_min/clamp_max, addmm."""

from __future__ import annotations

import operator

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ...errors import TranspileError
from ...ir import TensorType, Value
from ..fx_importer import Builder, DimRef, torch_dtype_name
from ..registry import converts
from ._util import axes as norm_axes
from ._util import axis as norm_axis
from ._util import beyond_batch, broadcast_sized

_SUPPORTED = ("float32", "int64", "int32", "bool")


def _dtype_name(b: Builder) -> str:
    name = b.out_type.dtype
    if name not in _SUPPORTED:
        raise TranspileError(f"a {name} tensor at {b.where()}: supported dtypes are {_SUPPORTED}")
    return name


def _operand(b: Builder, x, like: Value) -> Value:
    if isinstance(x, Value):
        return x
    if isinstance(x, torch.Tensor):
        return b.const(x)
    return b.scalar(x, like)


def cast_to(b: Builder, x: Value, dtype: str) -> Value:
    if x.type.dtype == dtype:
        return x
    return b.op("cast", [x], TensorType(x.shape, dtype), dtype=dtype)


# Tensor.to(dtype) / .float() / .long() / .int() / .bool() / .type(dtype) / .type_as(other)
@converts("to", "float", "long", "int", "bool", "type", "type_as", "double", "half")
def cast(b: Builder, input, *args, **kwargs):
    if b.out_type is None:
        raise TranspileError(f"a cast at {b.where()} that does not return a tensor")
    return cast_to(b, input, _dtype_name(b))


def _binary(op: str):
    def convert(b: Builder, input, other, *args, **kwargs):
        like = input if isinstance(input, Value) else other
        x, y = _operand(b, input, like), _operand(b, other, like)
        if op in ("logical_and", "logical_or"):
            x, y = cast_to(b, x, "bool"), cast_to(b, y, "bool")
        return b.op(op, [x, y])

    return convert


for _op, _targets in {
    "equal": (torch.eq, operator.eq, "eq", "__eq__"),
    "not_equal": (torch.ne, operator.ne, "ne", "__ne__"),
    "less": (torch.lt, operator.lt, "lt", "__lt__"),
    "less_equal": (torch.le, operator.le, "le", "__le__"),
    "greater": (torch.gt, operator.gt, "gt", "__gt__"),
    "greater_equal": (torch.ge, operator.ge, "ge", "__ge__"),
    "logical_and": (torch.logical_and, operator.and_, "logical_and", "__and__"),
    "logical_or": (torch.logical_or, operator.or_, "logical_or", "__or__"),
    "remainder": (torch.remainder, operator.mod, "remainder", "__mod__"),
}.items():
    converts(*_targets)(_binary(_op))


@converts(torch.logical_not, operator.invert, "logical_not", "__invert__", "bitwise_not")
def logical_not(b: Builder, input):
    if input.type.dtype != "bool":
        raise TranspileError(f"~ on a {input.type.dtype} tensor at {b.where()} (only bool)")
    return b.op("logical_not", [input])


def _unary(op: str):
    def convert(b: Builder, input, *args, **kwargs):
        return b.op(op, [input])

    return convert


for _op, _targets in {
    "floor": (torch.floor, "floor"),
    "ceil": (torch.ceil, "ceil"),
    "selu": (F.selu, torch.selu),
    "log_sigmoid": (F.logsigmoid,),
}.items():
    converts(*_targets)(_unary(_op))


@converts(nn.SELU)
def selu_module(b: Builder, m, input):
    return b.op("selu", [input])


@converts(nn.LogSigmoid)
def logsigmoid_module(b: Builder, m, input):
    return b.op("log_sigmoid", [input])


@converts(torch.round, "round")
def round_(b: Builder, input, *, decimals=0):
    if decimals:
        raise TranspileError(f"round(decimals={decimals}) at {b.where()} is not supported")
    return b.op("round", [input])


# torch.where(condition, input, other); Tensor.masked_fill(mask, value)
@converts(torch.where, "where")
def where(b: Builder, condition, input=None, other=None):
    if input is None:
        raise TranspileError(f"torch.where(condition) (indices) at {b.where()} is not supported")
    like = input if isinstance(input, Value) else other
    if not isinstance(like, Value):
        like = condition
    cond = cast_to(b, _operand(b, condition, like), "bool")
    x, y = _operand(b, input, like), _operand(b, other, like)
    dtype = b.out_type.dtype
    if not isinstance(input, Value) and not isinstance(other, Value):
        x, y = b.scalar(input), b.scalar(other)  # two numbers: float32 (torch's default)
        if dtype != "float32":
            x, y = b.const(np.asarray(input, dtype)), b.const(np.asarray(other, dtype))
    return b.op("where", [cond, cast_to(b, x, dtype), cast_to(b, y, dtype)])


@converts("masked_fill", torch.masked_fill, "masked_fill_")
def masked_fill(b: Builder, input, mask, value):
    value = b.static(value, "the fill value")
    fill = b.const(value) if isinstance(value, torch.Tensor) else b.scalar(value, input)
    return b.op("where", [cast_to(b, mask, "bool"), cast_to(b, fill, input.type.dtype), input])


# torch.clamp_min / clamp_max
@converts(torch.clamp_min, "clamp_min", "clamp_min_")
def clamp_min(b: Builder, input, min):
    if isinstance(min, Value):
        return b.op("maximum", [input, min])
    return b.op("clamp", [input], min=float(min), max=None)


@converts(torch.clamp_max, "clamp_max", "clamp_max_")
def clamp_max(b: Builder, input, max):
    if isinstance(max, Value):
        return b.op("minimum", [input, max])
    return b.op("clamp", [input], min=None, max=float(max))


# torch.cumsum(input, dim, dtype=None)
@converts(torch.cumsum, "cumsum")
def cumsum(b: Builder, input, dim, *, dtype=None):
    ax = norm_axis(dim, input.rank)
    out = b.out_type.dtype
    x = cast_to(b, input, out) if out != input.type.dtype else input
    return b.op("cumsum", [x], axis=ax)


@converts(torch.diff, "diff")
def diff(b: Builder, input, n=1, dim=-1, prepend=None, append=None):
    """torch.diff: ``n`` times, the slice [1:] minus the slice [:-1] along ``dim`` of
    (prepend, input, append) concatenated (GPT-2's packed-sequence check on position ids)."""
    ax = norm_axis(dim, input.rank)
    if input.type.dtype == "bool":
        raise TranspileError(f"torch.diff of a bool tensor at {b.where()} is not supported")
    parts = [p for p in (prepend, input, append) if p is not None]
    if any(not isinstance(p, Value) for p in parts):
        raise TranspileError(f"torch.diff at {b.where()}: prepend/append must be tensors")
    x = input
    if len(parts) > 1:
        sizes = [p.shape[ax] for p in parts]
        total = None if None in sizes else sum(sizes)
        shape = tuple(total if k == ax else d for k, d in enumerate(input.shape))
        x = b.op("cat", parts, TensorType(shape, input.type.dtype), axis=ax)
    for _ in range(int(b.static(n, "diff's n"))):
        n_ax = x.shape[ax]
        shape = tuple(
            (n_ax - 1 if n_ax is not None else None) if k == ax else d
            for k, d in enumerate(x.shape)
        )
        t = TensorType(shape, x.type.dtype)
        hi = b.op("slice", [x], t, axes=(ax,), starts=(1,), stops=(None,), steps=(1,))
        lo = b.op("slice", [x], t, axes=(ax,), starts=(0,), stops=(-1,), steps=(1,))
        x = b.op("sub", [hi, lo], t)
    return x


@converts(torch.flip, "flip")
def flip(b: Builder, input, *dims, **kwargs):
    dims = kwargs.get("dims", dims)
    dims = dims[0] if len(dims) == 1 and isinstance(dims[0], list | tuple) else dims
    return b.op("flip", [input], axes=norm_axes(tuple(dims), input.rank))


@converts(torch.roll, "roll")
def roll(b: Builder, input, shifts, dims=None):
    if dims is None:
        raise TranspileError(f"torch.roll without dims (flattened) at {b.where()}")
    shifts = shifts if isinstance(shifts, list | tuple) else (shifts,)
    dims = dims if isinstance(dims, list | tuple) else (dims,)
    ax = tuple(norm_axis(d, input.rank) for d in dims)
    return b.op("roll", [input], shifts=tuple(int(s) for s in shifts), axes=ax)


# torch.stack(tensors, dim=0): each unsqueezed, then concatenated
@converts(torch.stack, "stack")
def stack(b: Builder, tensors, dim=0):
    rank = b.out_type.rank
    ax = norm_axis(dim, rank)
    pieces = []
    for t in tensors:
        shape = (*t.shape[:ax], 1, *t.shape[ax:])
        target = tuple(-1 if d is None else d for d in shape)  # unsqueeze: keeps every dim
        pieces.append(b.op("reshape", [t], TensorType(shape, t.type.dtype), shape=target))
    if len(pieces) == 1:
        return pieces[0]
    return b.op("cat", pieces, axis=ax)


# torch.std / torch.var(input, dim=None, *, correction=1, keepdim=False)
def _moment(kind: str):
    def convert(b: Builder, input, dim=None, unbiased=None, keepdim=False, *, correction=None):
        if isinstance(dim, bool):  # torch.std(x, unbiased)
            dim, unbiased = None, dim
        corr = correction if correction is not None else (0 if unbiased is False else 1)
        ax = norm_axes(dim, input.rank)
        count = 1
        for a in ax:
            if input.shape[a] is None:
                raise TranspileError(f"{kind} over a dynamic dimension at {b.where()}")
            count *= input.shape[a]
        kept = TensorType(
            tuple(1 if i in ax else d for i, d in enumerate(input.shape)), input.type.dtype
        )
        if count <= corr:
            raise TranspileError(f"{kind} of {count} value(s) with correction {corr}")
        mean = b.op("reduce", [input], kept, kind="mean", axes=ax, keepdims=True)
        sq = b.op("square", [b.op("sub", [input, mean], input.type)], input.type)
        total = b.op("reduce", [sq], kind="sum", axes=ax, keepdims=bool(keepdim))
        var = b.op("mul", [total, b.scalar(1.0 / (count - corr))])
        return b.op("sqrt", [var]) if kind == "std" else var

    return convert


converts(torch.std, "std")(_moment("std"))
converts(torch.var, "var")(_moment("var"))


# F.embedding(input, weight, padding_idx=None, ...) / nn.Embedding (padding_idx only matters
# for training in PyTorch; the forward is a plain lookup)
@converts(F.embedding)
def embedding(b: Builder, input, weight, padding_idx=None, max_norm=None, *args, **kwargs):
    if max_norm is not None:
        raise TranspileError(f"F.embedding with max_norm at {b.where()} is not supported")
    if not isinstance(weight, Value) or not b.graph.is_constant(weight):
        raise TranspileError(f"an embedding table computed in forward() at {b.where()}")
    return b.op("embedding", [input, weight])


@converts(nn.Embedding)
def embedding_module(b: Builder, m: nn.Embedding, input):
    if m.max_norm is not None:
        raise TranspileError(f"nn.Embedding with max_norm at {b.where()} is not supported")
    return b.op("embedding", [input, b.const(m.weight, "embedding")])


# torch.index_select(input, dim, index)
@converts(torch.index_select, "index_select")
def index_select(b: Builder, input, dim, index):
    return take(b, input, norm_axis(dim, input.rank), index)


def take(b: Builder, x: Value, axis: int, index) -> Value:
    if isinstance(index, list | tuple):
        index = b.const(np.asarray(index, dtype=np.int64))
    elif isinstance(index, torch.Tensor):
        index = b.const(index.long())
    shape = (*x.shape[:axis], *index.shape, *x.shape[axis + 1 :])
    return b.op("take", [x, index], TensorType(shape, x.type.dtype), axis=axis)


# torch.addmm(input, mat1, mat2, *, beta=1, alpha=1): GPT-2's Conv1D
@converts(torch.addmm, "addmm")
def addmm(b: Builder, input, mat1, mat2, *, beta=1, alpha=1):
    if beta != 1 or alpha != 1:
        raise TranspileError(f"addmm with beta/alpha at {b.where()} is not supported")
    if b.graph.is_constant(mat2) and b.graph.is_constant(input) and input.rank == 1:
        w = b.const(np.ascontiguousarray(b.graph.constant(mat2).T), "weight")
        return b.op("linear", [mat1, w, input])
    prod = b.op("matmul", [mat1, mat2])
    return b.op("add", [prod, input])


# torch.arange: reached only when a bound depends on the input's shape (static bounds fold)
@converts(torch.arange)
def arange(b: Builder, *args, **kwargs):
    ends = [a for a in (args[:1] if len(args) == 1 else args[1:2])]
    args = [a for a in b.example_args]
    start, step = (args[0], args[2] if len(args) > 2 else 1) if len(args) > 1 else (0, 1)
    if ends and isinstance(ends[0], DimRef) and not isinstance(start, Value | DimRef):
        # torch.arange(start, x.size(1), step) over a dynamic length: a cumulative sum of
        # ones broadcast to that length (read off x at run time), minus one, scaled, shifted
        if (beyond_batch(b, ends[0]) or b.graph.inputs[0].shape[0] is not None) and step == 1:
            dtype = b.out_type.dtype
            one = b.const(np.ones((1,), dtype))
            ones = broadcast_sized(b, one, [ends[0]], "torch.arange")
            count = b.op("sub", [b.op("cumsum", [ones], axis=0), b.scalar(1, ones)])
            if start == 0:
                return count
            if not isinstance(start, int) or start < 0:
                raise TranspileError(
                    f"torch.arange at {b.where()} from {start!r} to a dynamic size"
                )
            return b.op("slice", [count], axes=(0,), starts=(start,), stops=(None,), steps=(1,))
    batch = b.graph.inputs[0].shape[0] if b.graph.inputs else 0
    if b.out_type.shape == (None,) and (start, step) == (0, 1) and batch is None:
        # torch.arange(batch_size): a cumulative sum of ones over the dynamic batch, minus one
        dtype = b.out_type.dtype
        one = b.const(np.ones((1,), dtype))
        ones = b.op("broadcast_to", [one, b.graph.inputs[0]], shape=(None,))
        return b.op("sub", [b.op("cumsum", [ones], axis=0), b.scalar(1, ones)])
    if None in b.out_type.shape:
        raise TranspileError(
            f"torch.arange at {b.where()} runs up to a dynamic size; pass example_inputs with "
            "the sizes you need"
        )
    dtype = {k: v for k, v in b.example_kwargs.items() if k == "dtype"}
    return b.const(torch.arange(*b.example_args, **dtype), "arange")


__all__ = ["cast_to", "take", "torch_dtype_name"]
