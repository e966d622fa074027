"""Pooling: max, average and adaptive average over 2-D spatial axes."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ...errors import TranspileError
from ..fx_importer import Builder
from ..registry import converts
from ._util import pair


# F.max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
#              return_indices=False)
@converts(F.max_pool2d, torch.max_pool2d, getattr(F, "_max_pool2d", F.max_pool2d))
def max_pool2d(
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
        raise TranspileError(f"max_pool2d(return_indices=True) at {b.where()} is not supported")
    kernel = pair(kernel_size)
    return b.op(
        "max_pool2d",
        [input],
        kernel=kernel,
        stride=pair(stride) if stride not in (None, [], ()) else kernel,
        padding=pair(padding),
        dilation=pair(dilation),
        ceil_mode=bool(ceil_mode),
    )


@converts(nn.MaxPool2d)
def max_pool2d_module(b: Builder, m: nn.MaxPool2d, input):
    return max_pool2d(
        b, input, m.kernel_size, m.stride, m.padding, m.dilation, m.ceil_mode, m.return_indices
    )


# F.avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False,
#              count_include_pad=True, divisor_override=None)
@converts(F.avg_pool2d, torch._C._nn.avg_pool2d)
def avg_pool2d(
    b: Builder,
    input,
    kernel_size,
    stride=None,
    padding=0,
    ceil_mode=False,
    count_include_pad=True,
    divisor_override=None,
):
    kernel = pair(kernel_size)
    return b.op(
        "avg_pool2d",
        [input],
        kernel=kernel,
        stride=pair(stride) if stride not in (None, [], ()) else kernel,
        padding=pair(padding),
        ceil_mode=bool(ceil_mode),
        count_include_pad=bool(count_include_pad),
        divisor_override=divisor_override,
    )


@converts(nn.AvgPool2d)
def avg_pool2d_module(b: Builder, m: nn.AvgPool2d, input):
    return avg_pool2d(
        b,
        input,
        m.kernel_size,
        m.stride,
        m.padding,
        m.ceil_mode,
        m.count_include_pad,
        m.divisor_override,
    )


# F.adaptive_avg_pool2d(input, output_size)
@converts(F.adaptive_avg_pool2d, torch._C._nn.adaptive_avg_pool2d)
def adaptive_avg_pool2d(b: Builder, input, output_size):
    out = b.out_type.shape[-2:]
    if None in out or (None in input.shape[-2:] and out != (1, 1)):
        raise TranspileError(
            f"adaptive_avg_pool2d at {b.where()} with output size {output_size} on an input of "
            "dynamic spatial size cannot be converted; pass example_inputs with a fixed size."
        )
    return b.op("adaptive_avg_pool2d", [input], output_size=tuple(out))


@converts(nn.AdaptiveAvgPool2d)
def adaptive_avg_pool2d_module(b: Builder, m: nn.AdaptiveAvgPool2d, input):
    return adaptive_avg_pool2d(b, input, m.output_size)
