"""Pooling over 1-3 spatial axes: max, average, adaptive average and adaptive max."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ...errors import TranspileError
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
def _max_pool(n: int):
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
        if return_indices:
            raise TranspileError(f"max_pool(return_indices=True) at {b.where()} is not supported")
        kernel = pair(kernel_size, n)
        attrs = {
            "kernel": kernel,
            "stride": _stride(stride, kernel),
            "padding": pair(padding, n),
            "dilation": pair(dilation, n),
            "ceil_mode": bool(ceil_mode),
        }
        return batched(b, input, n, f"max_pool{n}d", lambda x, t: b.op("max_pool", [x], t, **attrs))

    return convert


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
