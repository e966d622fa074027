"""Pooling over 1-3 spatial axes: max, average, adaptive average and adaptive max."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ...errors import TranspileError
from ..fx_importer import Builder
from ..registry import converts
from ._util import pair


def _stride(stride, kernel):
    return pair(stride, len(kernel)) if stride not in (None, [], ()) else kernel


# F.max_pool{1,2,3}d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
#                    return_indices=False)
@converts(
    F.max_pool1d,
    F.max_pool2d,
    F.max_pool3d,
    torch.max_pool1d,
    torch.max_pool2d,
    torch.max_pool3d,
    *(getattr(F, f"_max_pool{n}d") for n in (1, 2, 3) if hasattr(F, f"_max_pool{n}d")),
)
def max_pool(
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
    n = input.rank - 2
    kernel = pair(kernel_size, n)
    return b.op(
        "max_pool",
        [input],
        kernel=kernel,
        stride=_stride(stride, kernel),
        padding=pair(padding, n),
        dilation=pair(dilation, n),
        ceil_mode=bool(ceil_mode),
    )


@converts(nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d)
def max_pool_module(b: Builder, m: nn.modules.pooling._MaxPoolNd, input):
    return max_pool(
        b, input, m.kernel_size, m.stride, m.padding, m.dilation, m.ceil_mode, m.return_indices
    )


# F.avg_pool{1,2,3}d(input, kernel_size, stride=None, padding=0, ceil_mode=False,
#                    count_include_pad=True, divisor_override=None)
@converts(
    F.avg_pool1d,
    F.avg_pool2d,
    F.avg_pool3d,
    torch._C._nn.avg_pool2d,
    torch._C._nn.avg_pool3d,
    torch.avg_pool1d,
)
def avg_pool(
    b: Builder,
    input,
    kernel_size,
    stride=None,
    padding=0,
    ceil_mode=False,
    count_include_pad=True,
    divisor_override=None,
):
    n = input.rank - 2
    kernel = pair(kernel_size, n)
    return b.op(
        "avg_pool",
        [input],
        kernel=kernel,
        stride=_stride(stride, kernel),
        padding=pair(padding, n),
        ceil_mode=bool(ceil_mode),
        count_include_pad=bool(count_include_pad),
        divisor_override=divisor_override,
    )


@converts(nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d)
def avg_pool_module(b: Builder, m: nn.modules.pooling._AvgPoolNd, input):
    return avg_pool(
        b,
        input,
        m.kernel_size,
        m.stride,
        m.padding,
        m.ceil_mode,
        m.count_include_pad,
        getattr(m, "divisor_override", None),
    )


def _adaptive(op: str):
    def convert(b: Builder, input, output_size, return_indices=False):
        if return_indices:
            raise TranspileError(f"{op}(return_indices=True) at {b.where()} is not supported")
        n = input.rank - 2
        out = b.out_type.shape[2:]
        if None in out or (None in input.shape[2:] and any(o != 1 for o in out)):
            raise TranspileError(
                f"{op} at {b.where()} with output size {output_size} on an input of dynamic "
                "spatial size cannot be converted; pass example_inputs with a fixed size."
            )
        return b.op(op, [input], output_size=tuple(out[:n]))

    def convert_module(b: Builder, m, input):
        return convert(b, input, m.output_size, getattr(m, "return_indices", False))

    return convert, convert_module


_avg, _avg_module = _adaptive("adaptive_avg_pool")
converts(
    F.adaptive_avg_pool1d,
    F.adaptive_avg_pool2d,
    F.adaptive_avg_pool3d,
    torch._C._nn.adaptive_avg_pool2d,
    torch._C._nn.adaptive_avg_pool3d,
    torch.adaptive_avg_pool1d,
)(_avg)
converts(nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d)(_avg_module)
_max, _max_module = _adaptive("adaptive_max_pool")
converts(
    F.adaptive_max_pool1d,
    F.adaptive_max_pool2d,
    F.adaptive_max_pool3d,
    *(
        getattr(F, f"_adaptive_max_pool{n}d")
        for n in (1, 2, 3)
        if hasattr(F, f"_adaptive_max_pool{n}d")
    ),
)(_max)
converts(nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d)(_max_module)
