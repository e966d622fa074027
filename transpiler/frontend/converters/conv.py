"""Convolutions. Padding stays as torch gave it; passes/normalize_padding makes it explicit."""

from __future__ import annotations

import torch.nn as nn
import torch.nn.functional as F

from ..fx_importer import Builder
from ..registry import converts
from ._util import pair


# F.conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1)
@converts(F.conv2d)
def conv2d(b: Builder, input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    if not isinstance(padding, str):
        padding = pair(padding)
    inputs = [input, weight] + ([bias] if bias is not None else [])
    return b.op(
        "conv2d",
        inputs,
        stride=pair(stride),
        padding=padding,
        dilation=pair(dilation),
        groups=int(groups),
    )


@converts(nn.Conv2d)
def conv2d_module(b: Builder, m: nn.Conv2d, input):
    bias = b.const(m.bias, "bias") if m.bias is not None else None
    padding = m.padding if isinstance(m.padding, str) else pair(m.padding)
    inputs = [input, b.const(m.weight, "weight")] + ([bias] if bias is not None else [])
    return b.op(
        "conv2d",
        inputs,
        stride=pair(m.stride),
        padding=padding,
        dilation=pair(m.dilation),
        groups=int(m.groups),
        padding_mode=m.padding_mode,
    )
