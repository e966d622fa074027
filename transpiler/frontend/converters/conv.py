"""Convolutions (1-3 spatial axes) and transposed convolutions.

Padding stays as torch gave it; passes/normalize_padding makes it explicit.
"""

from __future__ import annotations

import numpy as np
import torch.nn as nn
import torch.nn.functional as F

from ...errors import TranspileError
from ...ir import TensorType
from ..fx_importer import Builder
from ..registry import converts
from ._util import batched, pair


def _check_weight(b: Builder, weight, what: str) -> None:
    if not b.graph.is_constant(weight):
        raise TranspileError(
            f"{what} at {b.where()} has a kernel computed in forward(); dynamic kernels are not "
            "supported yet: make the weight a parameter or buffer."
        )


def _conv(b: Builder, input, weight, bias, stride, padding, dilation, groups, mode="zeros"):
    n = weight.rank - 2
    if 0 in weight.shape:
        raise TranspileError(f"conv{n}d at {b.where()} has a zero-size weight {weight.shape}")
    if input.rank == n + 1:  # PyTorch's unbatched form (C, *spatial)
        return batched(
            b,
            input,
            n,
            f"conv{n}d",
            lambda x, t: _with_type(
                b, t, _conv, x, weight, bias, stride, padding, dilation, groups, mode
            ),
        )
    if not b.graph.is_constant(weight) and (
        None in weight.shape or None in input.shape[1:] or not isinstance(groups, int)
    ):
        return _per_sample_conv(b, input, weight, bias, stride, padding, dilation, n)
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


def _per_sample_conv(b: Builder, merged, weight, bias, stride, padding, dilation, n):
    """The groups=batch trick (CondConv): x.reshape(1, B*C, H, W) convolved with per-sample
    kernels (B*O, C, k, k), groups=B. Rebuilt on the unmerged tensors so the batch stays
    dynamic: conv_per_sample(x (B, C, H, W), kernels (B, O, C, k, k)).

    Per-sample depthwise kernels (B*O, 1, k, k) with groups=B*C (dynamic depthwise filters)
    become dense per-sample kernels whose off-group taps are zero: exact, at C times the
    multiply-adds of a depthwise convolution."""
    where = f"per-sample convolution at {b.where()}"
    src = merged.producer
    if n != 2 or src is None or src.op != "reshape" or src.inputs[0].shape[0] is not None:
        raise TranspileError(f"{where}: only x.reshape(1, B*C, H, W) with 2-D kernels is supported")
    x = src.inputs[0]
    c = x.shape[1]
    x_a, w_a = b.example_args[0], b.example_args[1]
    args = b.example_args
    groups_a = args[6] if len(args) > 6 else b.example_kwargs.get("groups", 1)
    batch_a = x_a.shape[1] // c
    depthwise = groups_a == batch_a * c and w_a.shape[1] == 1 and c > 1
    if not depthwise and (groups_a is None or groups_a != batch_a or w_a.shape[1] != c):
        raise TranspileError(
            f"{where}: only one group per sample (groups == batch) or depthwise per-sample "
            "kernels (groups == batch * channels) are supported"
        )
    out_ch = w_a.shape[0] // batch_a
    k = tuple(w_a.shape[2:])
    if isinstance(padding, str):
        raise TranspileError(f"{where}: string padding is not supported here")
    pads = pair(padding, 2)
    if any(pads):
        x = b.op(
            "pad",
            [x],
            TensorType((None, c, x.shape[2] + 2 * pads[0], x.shape[3] + 2 * pads[1]), x.type.dtype),
            pads=((0, 0), (0, 0), (pads[0], pads[0]), (pads[1], pads[1])),
            mode="constant",
            value=0.0,
        )
    if depthwise:  # (B*O, 1, k, k) -> (B, O, 1, k, k) * mask (O, C, 1, 1) -> (B, O, C, k, k)
        mult = out_ch // c
        per = b.op(
            "reshape",
            [weight],
            TensorType((None, out_ch, 1, *k), weight.type.dtype),
            shape=(-1, out_ch, 1, *k),
        )
        mask = np.zeros((out_ch, c, 1, 1), np.float32)
        mask[np.arange(out_ch), np.arange(out_ch) // mult] = 1.0
        kernels = b.op(
            "mul",
            [per, b.const(mask, "depthwise_mask")],
            TensorType((None, out_ch, c, *k), weight.type.dtype),
        )
    else:
        kernels = b.op(
            "reshape",
            [weight],
            TensorType((None, out_ch, c, *k), weight.type.dtype),
            shape=(-1, out_ch, c, *k),
        )
    h, w = b.out_type.shape[2:]
    y = b.op(
        "conv_per_sample",
        [x, kernels],
        TensorType((None, out_ch, h, w), x.type.dtype),
        stride=pair(stride, 2),
        dilation=pair(dilation, 2),
    )
    if bias is not None:
        bias5 = b.op(
            "reshape",
            [bias],
            TensorType((None, out_ch, 1, 1), bias.type.dtype),
            shape=(-1, out_ch, 1, 1),
        )
        y = b.op("add", [y, bias5], y.type)
    return b.op("reshape", [y], shape=(1, -1, h, w))  # the merged layout the model expects


def _with_type(b: Builder, out_type, fn, *args):
    """``fn(b, *args)`` building for ``out_type`` instead of the traced node's output type."""
    saved, b.out_type = b.out_type, out_type
    try:
        return fn(b, *args)
    finally:
        b.out_type = saved


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
    n = weight.rank - 2
    _check_weight(b, weight, f"conv_transpose{n}d")
    if input.rank == n + 1:  # PyTorch's unbatched form (C, *spatial)
        args = (weight, bias, stride, padding, output_padding, groups, dilation)
        return batched(
            b,
            input,
            n,
            f"conv_transpose{n}d",
            lambda x, t: _with_type(b, t, conv_transpose, x, *args),
        )
    if input.rank != n + 2:
        raise TranspileError(
            f"conv_transpose{n}d at {b.where()} takes a rank-{n + 2} input, got {input.rank}"
        )
    if max(pair(dilation, n)) > 1:  # TF's CPU kernels have no dilated transposed convolution
        weight, dilation = _dilated_kernel(b, weight, pair(dilation, n)), 1
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
    output_padding = m.output_padding
    if output_size is not None:
        output_padding = _output_padding(b, m, input, output_size)
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
        output_padding,
        m.groups,
        m.dilation,
    )


def _dilated_kernel(b: Builder, weight, dilation: tuple[int, ...]):
    """The kernel of a dilated convolution as an undilated one: zeros between the taps (the
    same sums, so exact; the output size formula is unchanged)."""
    w = b.graph.constant(weight)
    k = w.shape[2:]
    big = np.zeros((*w.shape[:2], *(d * (s - 1) + 1 for d, s in zip(dilation, k, strict=True))))
    big[(slice(None), slice(None), *(slice(None, None, d) for d in dilation))] = w
    return b.const(big.astype(w.dtype), "weight_dilated")


def _output_padding(b: Builder, m: nn.modules.conv._ConvTransposeNd, input, output_size):
    """``output_size=`` as the output padding PyTorch derives from it (the extra rows/columns
    at the end beyond the smallest output the stride allows)."""
    n = len(m.kernel_size)
    size = [int(s) for s in b.static(list(output_size), "output_size")][-n:]
    spatial = input.shape[-n:]
    if None in spatial:
        raise TranspileError(
            f"{type(m).__name__}(output_size=...) at {b.where()} on an input of dynamic spatial "
            "size; pass example_inputs with a fixed size."
        )
    pads = []
    for k in range(n):
        smallest = (
            (spatial[k] - 1) * m.stride[k]
            - 2 * m.padding[k]
            + m.dilation[k] * (m.kernel_size[k] - 1)
            + 1
        )
        pads.append(size[k] - smallest)
    return tuple(pads)
