"""Fully connected layers."""

from __future__ import annotations

import torch.nn as nn
import torch.nn.functional as F

from ..fx_importer import Builder
from ..registry import converts


# F.linear(input, weight, bias=None)
@converts(F.linear)
def linear(b: Builder, input, weight, bias=None):
    return b.op("linear", [input, weight] + ([bias] if bias is not None else []))


@converts(nn.Linear)
def linear_module(b: Builder, m: nn.Linear, input):
    bias = b.const(m.bias, "bias") if m.bias is not None else None
    return linear(b, input, b.const(m.weight, "weight"), bias)
