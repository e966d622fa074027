"""Ops of sequence and transformer models (issue 12): gather / take_along_dim, tril / triu,
topk / sort, repeat_interleave (grouped-query attention), RMSNorm (nn.RMSNorm, F.rms_norm)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ...errors import TranspileError
from ...ir import TensorType, Value
from ..fx_importer import Builder
from ..registry import converts
from ._util import axis as norm_axis
from .tensors import cast_to


def _index_value(b: Builder, index) -> Value:
    if isinstance(index, torch.Tensor):
        return b.const(index.long(), "index")
    if not isinstance(index, Value):
        raise TranspileError(f"an index of type {type(index).__name__} at {b.where()}")
    return cast_to(b, index, "int64")


# torch.gather(input, dim, index) / Tensor.gather(dim, index)
@converts(torch.gather, "gather")
def gather(b: Builder, input, dim, index, *, sparse_grad=False, out=None):
    idx = _index_value(b, index)
    if idx.rank != input.rank:
        raise TranspileError(f"gather at {b.where()}: index rank {idx.rank} != input rank")
    ax = norm_axis(dim, input.rank)
    return b.op("take_along_axis", [_prefix_like(b, input, idx, ax), idx], axis=ax)


def _prefix_like(b: Builder, x: Value, idx: Value, ax: int) -> Value:
    """torch.gather reads x only where the index has entries (an index smaller than x off
    `axis` takes a prefix): x cut to the index's static sizes, so the shapes agree."""
    from .indexing import _slice

    for d in range(x.rank):
        if d != ax and idx.shape[d] is not None and idx.shape[d] != x.shape[d]:
            if x.shape[d] is None:
                raise TranspileError(f"gather at {b.where()}: an index cut to a dynamic size")
            x = _slice(b, x, d, 0, idx.shape[d])
    return x


# torch.take_along_dim(input, indices, dim=None)
@converts(torch.take_along_dim, "take_along_dim")
def take_along_dim(b: Builder, input, indices, dim=None, *, out=None):
    if dim is None:
        raise TranspileError(f"take_along_dim without dim (flattened) at {b.where()}")
    idx = _index_value(b, indices)
    if idx.rank != input.rank:
        raise TranspileError(f"take_along_dim at {b.where()}: index rank differs from input's")
    ax = norm_axis(dim, input.rank)
    if any(i != ax and d != input.shape[i] for i, d in enumerate(idx.shape)):
        raise TranspileError(f"take_along_dim at {b.where()} broadcasts its indices")
    return b.op("take_along_axis", [input, idx], axis=ax)


# torch.tril / torch.triu(input, diagonal=0)
def _triangle(upper: bool):
    def convert(b: Builder, input, diagonal=0, *, out=None):
        if input.rank < 2:
            raise TranspileError(f"{'triu' if upper else 'tril'} of a rank-{input.rank} tensor")
        return b.op("triangle", [input], upper=upper, diagonal=int(diagonal))

    return convert


converts(torch.triu, "triu")(_triangle(True))
converts(torch.tril, "tril")(_triangle(False))


def _topk_op(b: Builder, input: Value, k: int, ax: int, largest: bool) -> tuple[Value, Value]:
    if input.shape[ax] is None:
        raise TranspileError(f"topk/sort along a dynamic dimension at {b.where()}")
    shape = list(input.shape)
    shape[ax] = k
    values = TensorType(tuple(shape), input.type.dtype)
    indices = TensorType(tuple(shape), "int64")
    out = b.op_multi("topk", [input], [values, indices], k=k, axis=ax, largest=largest)
    return out[0], out[1]


# torch.topk(input, k, dim=-1, largest=True, sorted=True) -> (values, indices)
@converts(torch.topk, "topk")
def topk(b: Builder, input, k, dim=-1, largest=True, sorted=True, *, out=None):
    return _topk_op(b, input, int(k), norm_axis(dim, input.rank), bool(largest))


# torch.sort(input, dim=-1, descending=False, stable=False) -> (values, indices)
@converts(torch.sort, "sort")
def sort(b: Builder, input, dim=-1, descending=False, stable=False, *, out=None):
    ax = norm_axis(dim, input.rank)
    return _topk_op(b, input, int(input.shape[ax] or 0), ax, bool(descending))


# torch.argsort(input, dim=-1, descending=False, stable=False): sort's indices
@converts(torch.argsort, "argsort")
def argsort(b: Builder, input, dim=-1, descending=False, stable=False):
    return sort(b, input, dim, descending)[1]


# torch.repeat_interleave(input, repeats: int, dim): each slice repeated in place, as
# unsqueeze + expand + reshape (grouped-query attention's key/value heads)
@converts(torch.repeat_interleave, "repeat_interleave")
def repeat_interleave(b: Builder, input, repeats=None, dim=None, *, output_size=None):
    if not isinstance(repeats, int) or dim is None:
        raise TranspileError(
            f"repeat_interleave at {b.where()}: only an int count along a given dim converts"
        )
    ax = norm_axis(dim, input.rank)
    if ax == 0 or input.shape[ax] is None:
        raise TranspileError(f"repeat_interleave along a dynamic dimension at {b.where()}")
    shape = tuple(input.shape)
    split = (*shape[: ax + 1], 1, *shape[ax + 1 :])
    x = b.op(
        "reshape", [input], TensorType(split, input.type.dtype), shape=_target(split, input.shape)
    )
    wide = (*shape[: ax + 1], repeats, *shape[ax + 1 :])
    target = tuple(-1 if i != ax + 1 else repeats for i in range(len(wide)))
    x = b.op("broadcast_to", [x], TensorType(wide, input.type.dtype), shape=target)
    return b.op("reshape", [x], shape=_target(b.out_type.shape, wide))


def _target(shape: tuple, source: tuple) -> tuple:
    """A reshape target (see ops.py: several -1 take the source's dynamic sizes in order)."""
    if sum(d is None for d in shape) != sum(d is None for d in source) and (
        sum(d is None for d in shape) > 1
    ):
        raise TranspileError("a reshape that merges or splits a dynamic dimension")
    return tuple(-1 if d is None else d for d in shape)


def _rms_norm(b: Builder, x: Value, shape, weight, eps) -> Value:
    n = len(shape) if isinstance(shape, list | tuple) else 1
    axes = tuple(range(x.rank - n, x.rank))
    if eps is None:
        eps = float(torch.finfo(torch.float32).eps)
    kept = TensorType(tuple(1 if i in axes else d for i, d in enumerate(x.shape)), x.type.dtype)
    sq = b.op("square", [x], x.type)
    mean = b.op("reduce", [sq], kept, kind="mean", axes=axes, keepdims=True)
    inv = b.op("rsqrt", [b.op("add", [mean, b.scalar(float(eps))], kept)], kept)
    y = b.op("mul", [x, inv], x.type)
    if weight is not None:
        w = weight if isinstance(weight, Value) else b.const(weight, "weight")
        y = b.op("mul", [y, w], x.type)
    return y


# nn.RMSNorm(normalized_shape, eps=None): x * rsqrt(mean(x^2) + eps) * weight
@converts(nn.RMSNorm)
def rms_norm_module(b: Builder, m: nn.RMSNorm, input):
    return _rms_norm(b, input, m.normalized_shape, m.weight, m.eps)


# F.rms_norm(input, normalized_shape, weight=None, eps=None)
@converts(F.rms_norm)
def rms_norm(b: Builder, input, normalized_shape, weight=None, eps=None):
    return _rms_norm(b, input, normalized_shape, weight, eps)


__all__ = ["gather", "take_along_dim", "topk", "sort", "repeat_interleave", "np"]


# nn.LSTMCell / nn.GRUCell / nn.RNNCell: one time step, written out in PyTorch's equations with
# the IR's linear and elementwise ops (a Python loop over time unrolls into one step per call)
def _cell_linear(b: Builder, x: Value, weight, bias) -> Value:
    inputs = [x, b.const(weight, "weight")] + ([b.const(bias, "bias")] if bias is not None else [])
    n = weight.shape[0]
    return b.op("linear", inputs, TensorType((*x.shape[:-1], n), x.type.dtype))


def _gates(b: Builder, v: Value, count: int) -> list[Value]:
    from .indexing import _slice

    size = v.shape[-1] // count
    return [_slice(b, v, v.rank - 1, k * size, (k + 1) * size) for k in range(count)]


def _cell_inputs(b: Builder, m: nn.RNNCellBase, x: Value, what: str) -> None:
    if x.rank != 2:
        raise TranspileError(f"{what} at {b.where()}: an unbatched (1-d) input; add a batch axis")


def _hidden_part(b: Builder, m: nn.RNNCellBase, h: Value | None, like: Value) -> Value:
    """h @ W_hh^T + b_hh; with no state (zeros), just b_hh (or None without bias)."""
    if h is not None:
        return _cell_linear(b, h, m.weight_hh, m.bias_hh)
    return b.const(m.bias_hh, "bias") if m.bias_hh is not None else None


def _plus(b: Builder, a: Value, c: Value | None) -> Value:
    return a if c is None else b.op("add", [a, c], a.type)


@converts(nn.LSTMCell)
def lstm_cell(b: Builder, m: nn.LSTMCell, input, hx=None):
    _cell_inputs(b, m, input, "LSTMCell")
    h, c = (None, None) if hx is None else hx
    gi = _cell_linear(b, input, m.weight_ih, m.bias_ih)
    gates = _plus(b, gi, _hidden_part(b, m, h, gi))
    i, f, g, o = _gates(b, gates, 4)
    i, f, o = (b.op("sigmoid", [v], v.type) for v in (i, f, o))
    g = b.op("tanh", [g], g.type)
    new_c = b.op("mul", [i, g], i.type)
    if c is not None:
        new_c = b.op("add", [b.op("mul", [f, c], f.type), new_c], i.type)
    new_h = b.op("mul", [o, b.op("tanh", [new_c], new_c.type)], o.type)
    return new_h, new_c


@converts(nn.GRUCell)
def gru_cell(b: Builder, m: nn.GRUCell, input, hx=None):
    _cell_inputs(b, m, input, "GRUCell")
    gi = _gates(b, _cell_linear(b, input, m.weight_ih, m.bias_ih), 3)
    hidden = _hidden_part(b, m, hx, input)
    gh = _gates(b, hidden, 3) if hidden is not None and hidden.rank == 2 else None
    if gh is None:  # no state: W_hh h = 0, only the bias (a constant, split here)
        bias = m.bias_hh.detach() if m.bias_hh is not None else None
        size = m.hidden_size
        gh = (
            [None] * 3
            if bias is None
            else [b.const(bias[k * size : (k + 1) * size]) for k in range(3)]
        )
    r = b.op("sigmoid", [_plus(b, gi[0], gh[0])], gi[0].type)
    z = b.op("sigmoid", [_plus(b, gi[1], gh[1])], gi[1].type)
    hn = b.op("mul", [r, gh[2]], r.type) if gh[2] is not None else None
    n = b.op("tanh", [_plus(b, gi[2], hn)], gi[2].type)
    keep = b.op("sub", [b.scalar(1.0), z], z.type)
    out = b.op("mul", [keep, n], n.type)
    if hx is not None:
        out = b.op("add", [out, b.op("mul", [z, hx], z.type)], n.type)
    return out


@converts(nn.RNNCell)
def rnn_cell(b: Builder, m: nn.RNNCell, input, hx=None):
    _cell_inputs(b, m, input, "RNNCell")
    gi = _cell_linear(b, input, m.weight_ih, m.bias_ih)
    pre = _plus(b, gi, _hidden_part(b, m, hx, gi))
    return b.op("relu" if m.nonlinearity == "relu" else "tanh", [pre], pre.type)
