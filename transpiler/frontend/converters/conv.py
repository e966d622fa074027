"""Convolutions (1-3 spatial axes) and transposed convolutions.

Padding stays as torch gave it; passes/normalize_padding makes it explicit.
"""

from __future__ import annotations

import torch.nn as nn
import torch.nn.functional as F

from ...errors import TranspileError
from ..fx_importer import Builder
from ..registry import converts
from ._util import pair


def _check_weight(b: Builder, weight, what: str) -> None:
    if not b.graph.is_constant(weight):
        raise TranspileError(
            f"{what} at {b.where()} has a kernel computed in forward(); dynamic kernels are not "
            "supported yet: make the weight a parameter or buffer."
        )


def _conv(b: Builder, input, weight, bias, stride, padding, dilation, groups, mode="zeros"):
    n = input.rank - 2
    if not b.graph.is_constant(weight) and (
        None in weight.shape or None in input.shape[1:] or not isinstance(groups, int)
    ):
        raise TranspileError(
            f"conv{n}d at {b.where()} has per-sample kernels computed in forward() (the "
            "groups=batch trick); this is not supported yet. A kernel computed in forward() that "
            "is shared by the whole batch is supported."
        )
    if not isinstance(padding, str):
        padding = pair(padding, n)
    inputs = [input, weight] + ([bias] if bias is not None else [])
    return b.op(
        "conv",
        inputs,
        stride=pair(stride, n),
        padding=padding,
        dilation=pair(dilation, n),
        groups=int(groups),
        padding_mode=mode,
    )


# F.conv{1,2,3}d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1)
@converts(F.conv1d, F.conv2d, F.conv3d)
def conv(b: Builder, input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    return _conv(b, input, weight, bias, stride, padding, dilation, groups)


@converts(nn.Conv1d, nn.Conv2d, nn.Conv3d)
def conv_module(b: Builder, m: nn.modules.conv._ConvNd, input):
    bias = b.const(m.bias, "bias") if m.bias is not None else None
    return _conv(
        b,
        input,
        b.const(m.weight, "weight"),
        bias,
        m.stride,
        m.padding,
        m.dilation,
        m.groups,
        m.padding_mode,
    )


# F.conv_transpose{1,2,3}d(input, weight, bias=None, stride=1, padding=0, output_padding=0,
#                          groups=1, dilation=1)
@converts(F.conv_transpose1d, F.conv_transpose2d, F.conv_transpose3d)
def conv_transpose(
    b: Builder,
    input,
    weight,
    bias=None,
    stride=1,
    padding=0,
    output_padding=0,
    groups=1,
    dilation=1,
):
    n = input.rank - 2
    _check_weight(b, weight, f"conv_transpose{n}d")
    inputs = [input, weight] + ([bias] if bias is not None else [])
    return b.op(
        "conv_transpose",
        inputs,
        stride=pair(stride, n),
        padding=pair(padding, n),
        output_padding=pair(output_padding, n),
        dilation=pair(dilation, n),
        groups=int(groups),
    )


@converts(nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
def conv_transpose_module(b: Builder, m: nn.modules.conv._ConvTransposeNd, input, output_size=None):
    if output_size is not None:
        raise TranspileError(f"{type(m).__name__}(output_size=...) at {b.where()} is not supported")
    if m.padding_mode != "zeros":
        raise TranspileError(f"{type(m).__name__} padding_mode={m.padding_mode!r} at {b.where()}")
    bias = b.const(m.bias, "bias") if m.bias is not None else None
    return conv_transpose(
        b,
        input,
        b.const(m.weight, "weight"),
        bias,
        m.stride,
        m.padding,
        m.output_padding,
        m.groups,
        m.dilation,
    )
