"""Shape and axis ops: reshape/view/flatten, mean, softmax."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ...errors import TranspileError
from ..fx_importer import Builder
from ..registry import converts
from ._util import axes, axis


def _reshape_to_traced(b: Builder, input):
    """Reshape to the traced output shape; the one dynamic dimension (if any) becomes -1."""
    shape = b.out_type.shape
    if shape == input.shape:
        return input
    if sum(d is None for d in shape) > 1:
        raise TranspileError(
            f"reshape at {b.where()} to {shape} has several dynamic dimensions; pass "
            "example_inputs so that only the batch dimension is dynamic."
        )
    return b.op("reshape", [input], shape=tuple(-1 if d is None else d for d in shape))


@converts("view", "reshape", torch.reshape, "flatten", torch.flatten, nn.Flatten, nn.Unflatten)
def reshape(b: Builder, input, *args, **kwargs):
    if isinstance(input, nn.Module):  # nn.Flatten / nn.Unflatten: the module comes first
        input = args[0]
    return _reshape_to_traced(b, input)


# torch.mean(input, dim=None, keepdim=False, *, dtype=None)
@converts(torch.mean, "mean")
def mean(b: Builder, input, dim=None, keepdim=False, *, dtype=None):
    return b.op("mean", [input], axes=axes(dim, input.rank), keepdims=bool(keepdim))


# F.softmax(input, dim=None, _stacklevel=3, dtype=None)
@converts(F.softmax, torch.softmax, "softmax")
def softmax(b: Builder, input, dim=None, _stacklevel=3, dtype=None):
    if dim is None:
        raise TranspileError(f"softmax at {b.where()} without dim; pass dim explicitly")
    return b.op("softmax", [input], axis=axis(dim, input.rank))


@converts(nn.Softmax)
def softmax_module(b: Builder, m: nn.Softmax, input):
    return softmax(b, input, m.dim)
