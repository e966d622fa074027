"""Pooling over 1-3 spatial axes: max, average, adaptive average and adaptive max."""

from __future__ import annotations

import itertools

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ...errors import TranspileError
from ...ir import TensorType
from ..fx_importer import Builder
from ..registry import converts
from ._util import batched, pair


def _stride(stride, kernel):
    return pair(stride, len(kernel)) if stride not in (None, [], ()) else kernel


def _pool_n(fn) -> int:
    """The number of spatial axes a torch pooling function or module works on."""
    name = getattr(fn, "__name__", None) or type(fn).__name__
    for n in (1, 2, 3):
        if f"{n}d" in name.lower():
            return n
    raise TranspileError(f"internal: no spatial rank in {name}")


# F.max_pool{1,2,3}d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
#                    return_indices=False); unbatched inputs (C, *spatial) too
def _max_pool(n: int, with_indices: bool = False):
    def convert(
        b: Builder,
        input,
        kernel_size,
        stride=None,
        padding=0,
        dilation=1,
        ceil_mode=False,
        return_indices=False,
    ):
        kernel = pair(kernel_size, n)
        attrs = {
            "kernel": kernel,
            "stride": _stride(stride, kernel),
            "padding": pair(padding, n),
            "dilation": pair(dilation, n),
            "ceil_mode": bool(ceil_mode),
        }
        what = f"max_pool{n}d"
        if not (return_indices or with_indices):
            return batched(b, input, n, what, lambda x, t: b.op("max_pool", [x], t, **attrs))
        types = _pool_types(b, input, n, attrs, what)
        return batched(b, input, n, what, lambda x, t: _with_indices(b, x, t, attrs), types)

    return convert


def _pool_types(b: Builder, input, n: int, attrs: dict, what: str) -> tuple:
    """The (values, indices) types of max pooling with indices (the traced node is a tuple)."""
    spatial = input.shape[-n:]
    if None in spatial:
        raise TranspileError(
            f"{what}(return_indices=True) at {b.where()} on an input of dynamic spatial size; "
            "pass example_inputs with a fixed size."
        )
    out = []
    for size, k, s, p, d in zip(
        spatial, attrs["kernel"], attrs["stride"], attrs["padding"], attrs["dilation"], strict=True
    ):
        span = size + 2 * p - d * (k - 1) - 1
        o = (-(-span // s) if attrs["ceil_mode"] else span // s) + 1
        if attrs["ceil_mode"] and (o - 1) * s >= size + p:
            o -= 1  # PyTorch: the last window starts inside the input or its left padding
        out.append(o)
    lead = tuple(input.shape[:-n])
    return (
        TensorType((*lead, *out), input.type.dtype),
        TensorType((*lead, *out), "int64"),
    )


def _with_indices(b: Builder, x, types: tuple, attrs: dict) -> tuple:
    """Max pooling and PyTorch's indices of the maxima: per (sample, channel), the flat index
    into the unpadded spatial input (``h * W + w`` in 2-d), the first maximum in window order.

    Built from existing ops, one kernel tap at a time: the taps are strided slices of the input
    padded with -inf; a later tap wins only where it is strictly greater (PyTorch's scan order),
    and its indices are a constant. Exact for spatial sizes below 2**24 (float32 indices)."""
    n = len(attrs["kernel"])
    spatial = x.shape[2:]
    if int(np.prod(spatial)) >= 2**24:
        raise TranspileError(
            f"max pooling indices at {b.where()}: the spatial input has {int(np.prod(spatial))} "
            "elements, more than the 2**24 the converted model counts exactly"
        )
    values_t, index_t = types
    values = b.op("max_pool", [x], values_t, **attrs)
    out = values_t.shape[2:]
    pads = []
    for size, o, k, s, p, d in zip(
        spatial,
        out,
        attrs["kernel"],
        attrs["stride"],
        attrs["padding"],
        attrs["dilation"],
        strict=True,
    ):
        pads.append((p, max(0, (k - 1) * d + (o - 1) * s + 1 - size - p)))
    flat = np.pad(
        np.arange(int(np.prod(spatial)), dtype=np.float32).reshape(spatial),
        pads,
        constant_values=-1,
    )
    padded_shape = (
        *x.shape[:2],
        *(sz + lo + hi for sz, (lo, hi) in zip(spatial, pads, strict=True)),
    )
    xp = b.op(
        "pad",
        [x],
        TensorType(padded_shape, x.type.dtype),
        pads=((0, 0), (0, 0), *pads),
        mode="constant",
        value=float("-inf"),
    )
    tap_t = TensorType(values_t.shape, x.type.dtype)
    best = index = None
    for tap in itertools.product(*(range(k) for k in attrs["kernel"])):
        axes = list(zip(tap, attrs["dilation"], out, attrs["stride"], strict=True))
        starts = tuple(t * d for t, d, _, _ in axes)
        stops = tuple(t * d + (o - 1) * s + 1 for t, d, o, s in axes)
        window = tuple(slice(t * d, t * d + (o - 1) * s + 1, s) for t, d, o, s in axes)
        taps = b.op(
            "slice",
            [xp],
            tap_t,
            axes=tuple(range(2, 2 + n)),
            starts=starts,
            stops=stops,
            steps=tuple(attrs["stride"]),
        )
        where = b.const(flat[window][None, None], "pool_index")
        if best is None:  # the first tap: its indices broadcast to (N, C, *out)
            wins = b.op("greater", [taps, taps], TensorType(values_t.shape, "bool"))
            best, index = taps, b.op("where", [wins, where, where], tap_t)
            continue
        wins = b.op("greater", [taps, best], TensorType(values_t.shape, "bool"))
        index = b.op("where", [wins, where, index], tap_t)
        best = b.op("maximum", [best, taps], tap_t)
    return values, b.op("cast", [index], index_t, dtype="int64")


for _fn in (
    F.max_pool1d,
    F.max_pool2d,
    F.max_pool3d,
    torch.max_pool1d,
    torch.max_pool2d,
    torch.max_pool3d,
    *(getattr(F, f"_max_pool{n}d") for n in (1, 2, 3) if hasattr(F, f"_max_pool{n}d")),
):
    converts(_fn)(_max_pool(_pool_n(_fn)))
for _fn in (F.max_pool1d_with_indices, F.max_pool2d_with_indices, F.max_pool3d_with_indices):
    converts(_fn)(_max_pool(_pool_n(_fn), with_indices=True))


@converts(nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d)
def max_pool_module(b: Builder, m: nn.modules.pooling._MaxPoolNd, input):
    return _max_pool(_pool_n(m))(
        b, input, m.kernel_size, m.stride, m.padding, m.dilation, m.ceil_mode, m.return_indices
    )


# F.avg_pool{1,2,3}d(input, kernel_size, stride=None, padding=0, ceil_mode=False,
#                    count_include_pad=True, divisor_override=None)
def _avg_pool(n: int):
    def convert(
        b: Builder,
        input,
        kernel_size,
        stride=None,
        padding=0,
        ceil_mode=False,
        count_include_pad=True,
        divisor_override=None,
    ):
        kernel = pair(kernel_size, n)
        attrs = {
            "kernel": kernel,
            "stride": _stride(stride, kernel),
            "padding": pair(padding, n),
            "ceil_mode": bool(ceil_mode),
            "count_include_pad": bool(count_include_pad),
            "divisor_override": divisor_override,
        }
        return batched(b, input, n, f"avg_pool{n}d", lambda x, t: b.op("avg_pool", [x], t, **attrs))

    return convert


for _fn in (
    F.avg_pool1d,
    F.avg_pool2d,
    F.avg_pool3d,
    torch._C._nn.avg_pool2d,
    torch._C._nn.avg_pool3d,
    torch.avg_pool1d,
):
    converts(_fn)(_avg_pool(_pool_n(_fn)))


@converts(nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d)
def avg_pool_module(b: Builder, m: nn.modules.pooling._AvgPoolNd, input):
    return _avg_pool(_pool_n(m))(
        b,
        input,
        m.kernel_size,
        m.stride,
        m.padding,
        m.ceil_mode,
        m.count_include_pad,
        getattr(m, "divisor_override", None),
    )


def _adaptive(op: str, n: int):
    def convert(b: Builder, input, output_size, return_indices=False):
        if return_indices:
            raise TranspileError(f"{op}(return_indices=True) at {b.where()} is not supported")

        def build(x, t):
            out = t.shape[2:]
            if None in out or (None in x.shape[2:] and any(o != 1 for o in out)):
                raise TranspileError(
                    f"{op} at {b.where()} with output size {output_size} on an input of dynamic "
                    "spatial size cannot be converted; pass example_inputs with a fixed size."
                )
            return b.op(op, [x], t, output_size=tuple(out))

        return batched(b, input, n, f"{op}{n}d", build)

    return convert


def _adaptive_module(op: str):
    def convert_module(b: Builder, m, input):
        fn = _adaptive(op, _pool_n(m))
        return fn(b, input, m.output_size, getattr(m, "return_indices", False))

    return convert_module


for _op, _fns in (
    (
        "adaptive_avg_pool",
        (
            F.adaptive_avg_pool1d,
            F.adaptive_avg_pool2d,
            F.adaptive_avg_pool3d,
            torch._C._nn.adaptive_avg_pool2d,
            torch._C._nn.adaptive_avg_pool3d,
            torch.adaptive_avg_pool1d,
        ),
    ),
    (
        "adaptive_max_pool",
        (
            F.adaptive_max_pool1d,
            F.adaptive_max_pool2d,
            F.adaptive_max_pool3d,
            *(
                getattr(F, f"_adaptive_max_pool{n}d")
                for n in (1, 2, 3)
                if hasattr(F, f"_adaptive_max_pool{n}d")
            ),
        ),
    ),
):
    for _fn in _fns:
        converts(_fn)(_adaptive(_op, _pool_n(_fn)))
converts(nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d)(
    _adaptive_module("adaptive_avg_pool")
)
converts(nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d)(
    _adaptive_module("adaptive_max_pool")
)
