"""Shape and axis ops: reshape/view/flatten, mean, softmax."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from ...errors import TranspileError
from ...ir import TensorType, Value
from ..fx_importer import DYNAMIC, Builder
from ..registry import converts
from ._util import axes, axis, dynamic_target, keeps_batch
from .indexing import _slice


def _reshape_to_traced(b: Builder, input):
    """Reshape to the traced output shape; the one dynamic dimension (if any) becomes -1."""
    shape = b.out_type.shape
    if shape == input.shape:
        return input
    keeps_batch(b, [input], shape, "reshape")
    return b.op("reshape", [input], shape=dynamic_target(b, input, shape))


@converts(
    "view",
    "reshape",
    torch.reshape,
    "flatten",
    torch.flatten,
    nn.Flatten,
    nn.Unflatten,
    "squeeze",
    torch.squeeze,
    "unsqueeze",
    torch.unsqueeze,
    "view_as",
    "reshape_as",
    "unflatten",
    torch.unflatten,
)
def reshape(b: Builder, input, *args, **kwargs):
    if isinstance(input, nn.Module):  # nn.Flatten / nn.Unflatten: the module comes first
        input = args[0]
    else:
        _check_target(b, args[0] if len(args) == 1 else args)
    return _reshape_to_traced(b, input)


def _check_target(b: Builder, target: Any) -> None:
    """The traced shape is the result's shape: refuse a target size computed from a dynamic
    size (``x.shape[0] // 2``) where the two runs gave the same result size (folding it would
    be wrong at other batch sizes)."""
    out = b.out_type.shape if b.out_type is not None else ()
    if not isinstance(target, list | tuple) or len(target) != len(out):
        return
    for k, d in enumerate(target):
        if d is DYNAMIC and out[k] is not None:
            raise TranspileError(
                f"reshape at {b.where()} to a size computed from a dynamic input size (axis "
                f"{k}) that is {out[k]} at both batch sizes the model was traced with; the "
                "converted model cannot follow it. Compute it from static sizes, or use "
                "tracer='export'."
            )


def _reduce(kind: str):
    # torch.mean/sum/amax/amin(input, dim=None, keepdim=False, ...)
    def convert(b: Builder, input, dim=None, keepdim=False, *args, **kwargs):
        dim = kwargs.get("axis", dim)
        return b.op(
            "reduce", [input], kind=kind, axes=axes(dim, input.rank), keepdims=bool(keepdim)
        )

    return convert


converts(torch.mean, "mean")(_reduce("mean"))
converts(torch.sum, "sum")(_reduce("sum"))
converts(torch.amax, "amax")(_reduce("max"))
converts(torch.amin, "amin")(_reduce("min"))


# torch.max(input, dim, keepdim=False) -> (values, indices); torch.max(a, b) elementwise
def _max_min(kind: str):
    def convert(b: Builder, input, dim=None, keepdim=False, *, out=None):
        if isinstance(dim, Value):  # torch.max(a, b)
            return b.op("maximum" if kind == "max" else "minimum", [input, dim])
        rank = input.rank
        if dim is None:
            return b.op("reduce", [input], kind=kind, axes=tuple(range(rank)), keepdims=False)
        shape = list(input.shape)
        ax = axis(dim, rank)
        if keepdim:
            shape[ax] = 1
        else:
            del shape[ax]
        out_type = TensorType(tuple(shape), input.type.dtype)
        values = b.op("reduce", [input], out_type, kind=kind, axes=(ax,), keepdims=bool(keepdim))
        index_type = TensorType(out_type.shape, "int64")
        indices = b.op(
            "arg_reduce", [input], index_type, kind=kind, axes=(ax,), keepdims=bool(keepdim)
        )
        return (values, indices)

    return convert


converts(torch.max, "max")(_max_min("max"))
converts(torch.min, "min")(_max_min("min"))


# torch.argmax/argmin(input, dim=None, keepdim=False)
def _arg(kind: str):
    def convert(b: Builder, input, dim=None, keepdim=False, *, out=None):
        if dim is None:
            raise TranspileError(
                f"arg{kind} without dim at {b.where()} indexes the flattened batch; pass dim"
            )
        ax = axis(dim, input.rank)
        return b.op("arg_reduce", [input], kind=kind, axes=(ax,), keepdims=bool(keepdim))

    return convert


converts(torch.argmax, "argmax")(_arg("max"))
converts(torch.argmin, "argmin")(_arg("min"))


@converts(torch.maximum)
def maximum(b: Builder, input, other):
    return b.op("maximum", [input, other])


@converts(torch.minimum)
def minimum(b: Builder, input, other):
    return b.op("minimum", [input, other])


def _softmax(op: str):
    # F.softmax / F.log_softmax(input, dim=None, _stacklevel=3, dtype=None)
    def convert(b: Builder, input, dim=None, _stacklevel=3, dtype=None):
        if dim is None:
            raise TranspileError(f"{op} at {b.where()} without dim; pass dim explicitly")
        return b.op(op, [input], axis=axis(dim, input.rank))

    def convert_module(b: Builder, m, input):
        return convert(b, input, m.dim)

    return convert, convert_module


_fn, _module = _softmax("softmax")
converts(F.softmax, torch.softmax, "softmax")(_fn)
converts(nn.Softmax)(_module)
_fn, _module = _softmax("log_softmax")
converts(F.log_softmax, torch.log_softmax, "log_softmax")(_fn)
converts(nn.LogSoftmax)(_module)


# F.pad(input, pad, mode='constant', value=None): `pad` lists the last dimension first
@converts(F.pad, torch._C._nn.pad)
def pad(b: Builder, input, pad, mode="constant", value=None):
    pad = b.static(pad, "padding")
    if len(pad) % 2 or len(pad) // 2 > input.rank:
        raise TranspileError(f"F.pad at {b.where()}: bad padding {pad}")
    if mode not in ("constant", "reflect", "replicate", "circular"):
        raise TranspileError(f"F.pad mode {mode!r} at {b.where()} is not supported")
    if any(p < 0 for p in pad) and mode != "constant":
        raise TranspileError(
            f"F.pad(mode={mode!r}) with negative padding at {b.where()} is not supported "
            "(negative constant padding, i.e. cropping, is): crop by slicing first"
        )
    pairs = [(0, 0)] * input.rank
    for i in range(len(pad) // 2):
        pairs[input.rank - 1 - i] = (int(pad[2 * i]), int(pad[2 * i + 1]))
    for ax, (before, after) in enumerate(pairs):  # negative padding crops (a slice)
        if before < 0 or after < 0:
            if ax == 0 and input.shape[0] is None:
                raise TranspileError(f"F.pad at {b.where()} crops the batch axis")
            stop = after if after < 0 else None
            input = _slice(b, input, ax, max(0, -before), stop)
    pairs = [(max(0, p), max(0, q)) for p, q in pairs]
    if all(p == (0, 0) for p in pairs):
        return input
    return b.op("pad", [input], pads=tuple(pairs), mode=mode, value=float(value or 0.0))


# Tensor.permute(*dims) / torch.permute(input, dims)
@converts("permute", torch.permute)
def permute(b: Builder, input, *dims):
    dims = dims[0] if len(dims) == 1 and isinstance(dims[0], list | tuple) else dims
    perm = tuple(axis(d, input.rank) for d in dims)
    if perm == tuple(range(input.rank)):
        return input
    return b.op("transpose", [input], perm=perm)


# torch.movedim(input, source, destination) / Tensor.moveaxis
@converts(torch.movedim, torch.moveaxis, "movedim", "moveaxis")
def movedim(b: Builder, input, source, destination):
    src = [source] if isinstance(source, int) else list(source)
    dst = [destination] if isinstance(destination, int) else list(destination)
    src = [axis(d, input.rank) for d in src]
    dst = [axis(d, input.rank) for d in dst]
    rest = iter(a for a in range(input.rank) if a not in src)
    perm = [0] * input.rank
    placed = dict(zip(dst, src, strict=True))
    for k in range(input.rank):
        perm[k] = placed[k] if k in placed else next(rest)
    return permute(b, input, perm)


# Tensor.transpose(dim0, dim1) / torch.transpose(input, dim0, dim1)
@converts("transpose", torch.transpose, torch.swapaxes, "swapaxes")
def transpose(b: Builder, input, dim0, dim1):
    perm = list(range(input.rank))
    i, j = axis(dim0, input.rank), axis(dim1, input.rank)
    perm[i], perm[j] = perm[j], perm[i]
    return permute(b, input, perm)


def _shuffle(b: Builder, input, split: tuple, perm: tuple):
    """reshape -> permute -> reshape, as PyTorch defines pixel (un)shuffle."""
    x = b.op("reshape", [input], TensorType(split, input.type.dtype), shape=_target(split))
    moved = tuple(split[p] for p in perm)
    x = b.op("transpose", [x], TensorType(moved, input.type.dtype), perm=perm)
    return b.op("reshape", [x], shape=_target(b.out_type.shape))


# F.pixel_shuffle(input, upscale_factor): (N, C r^2, H, W) -> (N, C, H r, W r), in PyTorch's
# channel order (not TF's depth_to_space order)
@converts(F.pixel_shuffle, torch.pixel_shuffle)
def pixel_shuffle(b: Builder, input, upscale_factor):
    n, c, h, w = input.shape
    r = int(upscale_factor)
    return _shuffle(b, input, (n, c // (r * r), r, r, h, w), (0, 1, 4, 2, 5, 3))


# F.pixel_unshuffle(input, downscale_factor): the inverse
@converts(F.pixel_unshuffle, torch.pixel_unshuffle)
def pixel_unshuffle(b: Builder, input, downscale_factor):
    n, c, h, w = input.shape
    r = int(downscale_factor)
    return _shuffle(b, input, (n, c, h // r, r, w // r, r), (0, 1, 3, 5, 2, 4))


@converts(nn.PixelShuffle)
def pixel_shuffle_module(b: Builder, m: nn.PixelShuffle, input):
    return pixel_shuffle(b, input, m.upscale_factor)


@converts(nn.PixelUnshuffle)
def pixel_unshuffle_module(b: Builder, m: nn.PixelUnshuffle, input):
    return pixel_unshuffle(b, input, m.downscale_factor)


def _target(shape) -> tuple:
    return tuple(-1 if d is None else d for d in shape)
