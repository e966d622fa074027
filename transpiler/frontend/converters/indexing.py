"""Indexing and splitting: x[...], chunk, split, narrow, select, unbind, expand."""

from __future__ import annotations

import math
import operator
from fractions import Fraction
from typing import Any

import numpy as np
import torch

from ...errors import TranspileError
from ...ir import TensorType, Value
from ..fx_importer import DYNAMIC, Builder
from ..registry import converts
from ._util import axis as norm_axis
from ._util import dynamic_target, keeps_batch


def _slice(b: Builder, x: Value, ax: int, start: int, stop: int | None, step: int = 1) -> Value:
    shape = list(x.shape)
    if shape[ax] is not None:
        shape[ax] = len(range(*slice(start, stop, step).indices(shape[ax])))
    elif start >= 0 and stop is not None and stop >= 0:
        shape[ax] = len(range(start, stop, step))
    out = TensorType(tuple(shape), x.type.dtype)
    return b.op("slice", [x], out, axes=(ax,), starts=(start,), stops=(stop,), steps=(step,))


def fraction_slice(b: Builder, x: Value, ax: int, m: int, lo: int, hi: int) -> Value | None:
    """Rows ``lo/m .. hi/m`` of ``x``'s dynamic axis ``ax`` (whose size ``m`` divides): the axis
    reshaped to ``(m, size/m)``, ``lo:hi`` taken on the ``m`` axis, the two merged back.
    ``x[B:2B]`` of a ``2B`` axis is ``m=2, lo=1, hi=2``. None when ``x`` has another dynamic
    axis (the reshape could not name both)."""
    shape = tuple(x.shape)
    if shape[ax] is not None or sum(d is None for d in shape) != 1:
        return None
    if (lo, hi) == (0, m):
        return x
    split = (*shape[:ax], m, None, *shape[ax + 1 :])
    target = (*shape[:ax], m, -1, *shape[ax + 1 :])
    y = b.op("reshape", [x], TensorType(split, x.type.dtype), shape=target)
    y = _slice(b, y, ax, lo, hi if hi < m else None)
    merged = tuple(-1 if d is None else d for d in shape)
    return b.op("reshape", [y], TensorType(shape, x.type.dtype), shape=merged)


def _reshape_to(b: Builder, x: Value, shape: tuple) -> Value:
    if tuple(shape) == tuple(x.shape):
        return x
    keeps_batch(b, [x], shape, "indexing")
    target = dynamic_target(b, x, tuple(shape), "indexing")
    return b.op("reshape", [x], TensorType(tuple(shape), x.type.dtype), shape=target)


# operator.getitem(obj, index): a tuple/list of tensors (chunk, split), or x[...] on a tensor
@converts(operator.getitem)
def getitem(b: Builder, obj, index):
    if isinstance(obj, list | tuple):
        item = obj[index]
        if item is None:
            raise TranspileError(
                f"the value taken at {b.where()} (e.g. argmax indices) is not supported"
            )
        return item
    if not isinstance(obj, Value):
        raise TranspileError(f"indexing a {type(obj).__name__} at {b.where()}")
    index = index if isinstance(index, tuple) else (index,)
    advanced = [i for i in index if isinstance(i, Value | list | torch.Tensor)]
    if len(advanced) > 1:
        return _multi_index(b, obj, index)
    if len(advanced) > 1:
        raise TranspileError(
            f"indexing with several index tensors/lists at {b.where()} is not supported"
        )
    if any(isinstance(i, Value) and i.type.dtype == "bool" for i in advanced):
        raise TranspileError(
            f"boolean mask indexing at {b.where()} has a data-dependent shape; use "
            "torch.where or masked_fill instead"
        )
    if advanced and any(isinstance(i, int) for i in index):
        raise TranspileError(
            f"indexing at {b.where()} mixes an integer with an index tensor/list (NumPy's "
            "dimension reordering); index in two steps"
        )
    index = tuple(_index_entry(b, k, i, bool(advanced)) for k, i in enumerate(index))
    n_ellipsis = sum(i is Ellipsis for i in index)
    used = sum(1 for i in index if i is not None and i is not Ellipsis)
    if n_ellipsis:
        k = index.index(Ellipsis)
        index = index[:k] + (slice(None),) * (obj.rank - used) + index[k + 1 :]
    x, ax = obj, 0
    for i in index:
        if i is None:
            continue
        if isinstance(i, _RunSlice):
            x = _run_slice(b, x, ax, i.k)
        elif isinstance(i, slice):
            start, stop, step = i.start or 0, i.stop, i.step or 1
            if step < 1:
                raise TranspileError(f"negative slice step at {b.where()} is not supported")
            if (start, stop, step) != (0, None, 1):
                if stop is not None and x.shape[ax] is not None and stop >= x.shape[ax]:
                    stop = None
                x = _slice(b, x, ax, start, stop, step)
        elif isinstance(i, int):
            x = _slice(b, x, ax, i, i + 1 if i != -1 else None)
        elif isinstance(i, Value | list | torch.Tensor):  # one index tensor: a take
            from .tensors import take

            k = i.rank if isinstance(i, Value) else np.ndim(i)
            x = take(b, x, ax, i)
            ax += k - 1
        else:
            raise TranspileError(f"index {i!r} at {b.where()} is not supported")
        ax += 1
    return _reshape_to(b, x, b.out_type.shape)


class _RunSlice:
    """A slice of ``x[...]`` whose bounds differ between the import's two runs (``f[:n]``,
    ``f[n:]`` with ``n = x.shape[0]``): position ``k`` of the index, resolved from the runs."""

    def __init__(self, k: int) -> None:
        self.k = k


def _index_entry(b: Builder, k: int, i: Any, advanced: bool) -> Any:
    """Entry ``k`` of ``x[...]``: a tensor as is, a slice whose bounds depend on the batch
    marked for the runs (``_RunSlice``; not next to an index tensor), anything else static."""
    if isinstance(i, Value):
        return i
    if isinstance(i, slice) and any(v is DYNAMIC for v in (i.start, i.stop)) and not advanced:
        return _RunSlice(k)
    return b.static(i, "an index")


def _run_slice(b: Builder, x: Value, ax: int, k: int) -> Value:
    """``x[..., lo:hi, ...]`` on the dynamic axis ``ax`` with bounds that depend on the batch:
    exact when, in both runs, they are the same fractions ``p``, ``q`` of the axis, and the
    axis is ``k`` times the batch with the common denominator ``m`` dividing ``k`` (every batch
    size then cuts at ``p`` and ``q``): ``fraction_slice``. Refused otherwise."""
    runs = []
    for args in (b.example_args, b.other_args):
        index = args[1] if len(args) > 1 else None
        index = index if isinstance(index, tuple) else (index,)
        t = args[0] if args else None
        cut = index[k] if k < len(index) else None
        if isinstance(t, torch.Tensor) and isinstance(cut, slice) and cut.step in (None, 1):
            lo, hi, _ = cut.indices(int(t.shape[ax]))
            runs.append((Fraction(lo, int(t.shape[ax])), Fraction(hi, int(t.shape[ax]))))
    same = len(runs) == 2 and runs[0] == runs[1] and runs[0][0] < runs[0][1]
    p, q = runs[0] if same else (Fraction(0), Fraction(0))
    m = math.lcm(p.denominator, q.denominator)
    multiple = _batch_multiple(b, x, ax) if same else None
    out = None
    if multiple is not None and multiple % m == 0:
        out = fraction_slice(b, x, ax, m, int(p * m), int(q * m))
    if out is None:
        raise TranspileError(
            f"a slice at {b.where()} has bounds that depend on a dynamic input size; only "
            "bounds that are fixed fractions of an axis that is a multiple of the batch convert "
            "(f[:n] and f[n:] of f = torch.cat([a, b]) with n = a.shape[0])."
        )
    return out


def _multi_index(b: Builder, x: Value, index: tuple) -> Value:
    """x[i0, i1, ..., ik-1] (index tensors on the leading axes, broadcast together): one take
    along the flattened leading axes at i0 * s1 * ... + ... + ik-1 (HF's mask functions)."""
    from .tensors import take

    k = len(index)
    while k and isinstance(index[k - 1], slice) and index[k - 1] == slice(None):
        k -= 1
    lead = index[:k]
    if not all(isinstance(i, Value | list | torch.Tensor) for i in lead):
        raise TranspileError(
            f"indexing at {b.where()} with index tensors that are not all on the leading axes"
        )
    if None in x.shape[1:k]:
        raise TranspileError(f"indexing at {b.where()} with index tensors over dynamic sizes")
    idx = [i if isinstance(i, Value) else b.const(np.asarray(i, dtype=np.int64)) for i in lead]
    linear = idx[0]
    for j in range(1, k):
        linear = b.op("mul", [linear, b.scalar(int(x.shape[j]), linear)], _bshape(linear))
        linear = b.op("add", [linear, idx[j]], _bshape(linear, idx[j]))
    rest = x.shape[k:]
    flat_shape = (None if any(d is None for d in x.shape[:k]) else int(np.prod(x.shape[:k])), *rest)
    flat = _reshape_to(b, x, flat_shape)
    return take(b, flat, 0, linear)


def _bshape(a: Value, c: Value | None = None) -> TensorType:
    """The broadcast type of one or two integer values (None dims stay dynamic)."""
    if c is None:
        return a.type
    r = max(a.rank, c.rank)
    sa, sc = (1,) * (r - a.rank) + a.shape, (1,) * (r - c.rank) + c.shape
    shape = tuple(
        p if q == 1 else (q if p == 1 else (p if p is not None else q))
        for p, q in zip(sa, sc, strict=True)
    )
    return TensorType(shape, a.type.dtype)


def _pieces(b: Builder, x: Value, sizes: list[int], dim: int) -> list[Value]:
    ax = norm_axis(dim, x.rank)
    out, start = [], 0
    for size in sizes:
        stop = start + size
        out.append(_slice(b, x, ax, start, None if stop == x.shape[ax] else stop))
        start = stop
    return out


def _batch_multiple(b: Builder, x: Value, ax: int) -> int | None:
    """``k`` when ``x``'s dynamic axis ``ax`` is ``k`` times the batch in both of the import's
    runs (two inputs concatenated on the batch: ``k = 2``); None when it is not, or the runs
    have the same batch (the one-line form's dynamic spatial sizes)."""
    xa = b.example_args[0] if b.example_args else None
    xb = b.other_args[0] if b.other_args else None
    if b.batches is None or not isinstance(xa, torch.Tensor) or not isinstance(xb, torch.Tensor):
        return None
    (na, nb), sa, sb = b.batches, int(xa.shape[ax]), int(xb.shape[ax])
    if na == nb or sa % na or sb % nb or sa // na != sb // nb:
        return None
    return sa // na


def _dynamic_pieces(b: Builder, x: Value, ax: int, count: int, what: str) -> list[Value]:
    """``count`` equal pieces of ``x``'s dynamic axis ``ax`` (``fraction_slice``), where that
    axis is ``k`` times the batch with ``count`` dividing ``k`` (so every batch size cuts into
    ``count`` equal pieces, as PyTorch's chunk / split do)."""
    k = _batch_multiple(b, x, ax)
    pieces = None
    if k is not None and count > 0 and k % count == 0:
        pieces = [fraction_slice(b, x, ax, count, i, i + 1) for i in range(count)]
    if pieces is None or any(p is None for p in pieces):
        raise TranspileError(
            f"{what} along a dynamic dimension at {b.where()}: only a cut into equal pieces of "
            "an axis that is a multiple of the batch (two inputs concatenated on the batch, "
            "chunked in two), with no other dynamic axis, converts; the number of pieces must "
            "not depend on the batch size."
        )
    return pieces


# torch.chunk(input, chunks, dim=0)
@converts(torch.chunk, "chunk")
def chunk(b: Builder, input, chunks, dim=0):
    ax = norm_axis(dim, input.rank)
    n = b.static(input.shape[ax], "the chunked dimension")
    if n is None:
        return _dynamic_pieces(b, input, ax, chunks, "chunk")
    size = -(-n // chunks)
    sizes = [min(size, n - k) for k in range(0, n, size)]
    return _pieces(b, input, sizes, ax)


# torch.split(tensor, split_size_or_sections, dim=0)
@converts(torch.split, "split", torch.functional.split)
def split(b: Builder, tensor, split_size_or_sections, dim=0):
    ax = norm_axis(dim, tensor.rank)
    n = tensor.shape[ax]
    if n is None:
        return _split_dynamic(b, tensor, ax)
    if isinstance(split_size_or_sections, int):
        s = split_size_or_sections
        sizes = [min(s, n - k) for k in range(0, n, s)]
    else:
        sizes = list(b.static(split_size_or_sections, "split sizes"))
    return _pieces(b, tensor, sizes, ax)


def _split_dynamic(b: Builder, x: Value, ax: int) -> list[Value]:
    """torch.split of a dynamic axis: equal pieces (``_dynamic_pieces``) when, in both runs,
    the pieces are equal and as many (``torch.split(f, n)`` of ``f``, ``3n`` long)."""
    out = b.example_out
    xa, xb = (b.example_args[0], b.other_args[0]) if b.other_args else (None, None)
    size_a, size_b = (b.example_args[1:2] or [None])[0], (b.other_args[1:2] or [None])[0]
    count = len(out) if isinstance(out, list | tuple) else 0
    equal = (
        isinstance(xa, torch.Tensor)
        and isinstance(xb, torch.Tensor)
        and isinstance(size_a, int)
        and isinstance(size_b, int)
        and count > 0
        and xa.shape[ax] == count * size_a
        and xb.shape[ax] == count * size_b
    )
    return _dynamic_pieces(b, x, ax, count if equal else 0, "split")


# torch.unbind(input, dim=0)
@converts(torch.unbind, "unbind")
def unbind(b: Builder, input, dim=0):
    ax = norm_axis(dim, input.rank)
    if input.shape[ax] is None:
        raise TranspileError(
            f"unbind along the dynamic (batch) dimension at {b.where()}: the number of results "
            "would depend on the batch size; unbind another dimension."
        )
    shape = input.shape[:ax] + input.shape[ax + 1 :]
    return [_reshape_to(b, p, shape) for p in _pieces(b, input, [1] * input.shape[ax], ax)]


# torch.narrow(input, dim, start, length)
@converts(torch.narrow, "narrow")
def narrow(b: Builder, input, dim, start, length):
    ax = norm_axis(dim, input.rank)
    return _slice(b, input, ax, start, start + length)


# torch.select(input, dim, index)
@converts(torch.select, "select")
def select(b: Builder, input, dim, index):
    ax = norm_axis(dim, input.rank)
    piece = _slice(b, input, ax, index, index + 1 if index != -1 else None)
    return _reshape_to(b, piece, b.out_type.shape)


# Tensor.expand(*sizes) / expand_as(other) / torch.broadcast_to(input, size)
@converts("expand", "expand_as", torch.broadcast_to, "broadcast_to")
def expand(b: Builder, input, *sizes):
    if tuple(b.out_type.shape) == tuple(input.shape):
        return input
    x = input
    if x.rank < b.out_type.rank:  # expand adds leading axes
        x = _reshape_to(b, x, (1,) * (b.out_type.rank - x.rank) + tuple(x.shape))
    # -1: keep x's size; None: the batch size of the reference input (e.g. ViT's class token
    # expanded to the batch: x.shape[0] is dynamic, the token is not)
    target, needs_ref = [], False
    for d, s in zip(b.out_type.shape, x.shape, strict=True):
        if d is None and s == 1:
            target.append(None)
            needs_ref = True
        else:
            target.append(-1 if d is None or d == s else d)
    ref = [b.graph.inputs[0]] if needs_ref else []
    if needs_ref and b.graph.inputs[0].shape[0] is not None:
        raise TranspileError(f"expand at {b.where()} to a dynamic size other than the batch")
    return b.op("broadcast_to", [x, *ref], shape=tuple(target))


def _filled(b: Builder, value) -> Value:
    """A constant of the traced output's shape; a dynamic (batch) size comes from the input."""
    shape = b.out_type.shape
    arr = np.full([1 if d is None else d for d in shape], value, dtype=np.dtype(b.out_type.dtype))
    if None not in shape:
        return b.const(arr, "filled")
    if any(d is None for d in shape[1:]) or b.graph.inputs[0].shape[0] is not None:
        raise TranspileError(
            f"a tensor created at {b.where()} has a dynamic size other than "
            "the batch; pass example_inputs with fixed sizes"
        )
    const = b.const(arr, "filled")
    return b.op("broadcast_to", [const, b.graph.inputs[0]], shape=(None, *shape[1:]))


# torch.zeros/ones/full(size, ...) and Tensor.new_zeros/new_ones/new_full, *_like: only reached
# when a size depends on the input (e.g. torch.zeros(x.shape[0], 10)); static ones are folded
@converts(torch.zeros, "new_zeros", torch.zeros_like)
def zeros(b: Builder, *args, **kwargs):
    return _filled(b, 0)


@converts(torch.ones, "new_ones", torch.ones_like)
def ones(b: Builder, *args, **kwargs):
    return _filled(b, 1)


@converts(torch.full, "new_full", torch.full_like)
def full(b: Builder, *args, fill_value=None, **kwargs):
    if fill_value is None:
        fill_value = args[-1] if not isinstance(args[0], Value) or len(args) > 2 else args[1]
    return _filled(b, b.static(fill_value, "the fill value"))
