"""Normalization layers (inference form: running statistics)."""

from __future__ import annotations

import numpy as np
import torch.nn as nn
import torch.nn.functional as F

from ...errors import TranspileError
from ..fx_importer import Builder
from ..registry import converts


# F.batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False,
#              momentum=0.1, eps=1e-05)
@converts(F.batch_norm)
def batch_norm(
    b: Builder,
    input,
    running_mean,
    running_var,
    weight=None,
    bias=None,
    training=False,
    momentum=0.1,
    eps=1e-5,
):
    if running_mean is None or running_var is None or training:
        raise TranspileError(
            f"batch_norm at {b.where()} uses batch statistics (training=True or "
            "track_running_stats=False); only inference-mode BatchNorm with running statistics "
            "can be converted."
        )
    c = input.shape[1]
    weight = weight if weight is not None else b.const(np.ones(c, np.float32), "bn_weight")
    bias = bias if bias is not None else b.const(np.zeros(c, np.float32), "bn_bias")
    return b.op(
        "batch_norm",
        [input, running_mean, running_var, weight, bias],
        eps=float(eps),
        momentum=float(momentum if momentum is not None else 0.1),
        axis=1,
    )


@converts(nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
def batch_norm_module(b: Builder, m: nn.modules.batchnorm._BatchNorm, input):
    if m.running_mean is None:
        raise TranspileError(
            f"{type(m).__name__} at {b.where()} has track_running_stats=False: it normalizes "
            "with batch statistics even in eval mode, which cannot be converted."
        )
    c = m.num_features
    weight = m.weight if m.weight is not None else np.ones(c, np.float32)
    bias = m.bias if m.bias is not None else np.zeros(c, np.float32)
    return batch_norm(
        b,
        input,
        b.const(m.running_mean, "running_mean"),
        b.const(m.running_var, "running_var"),
        b.const(weight, "bn_weight"),
        b.const(bias, "bn_bias"),
        False,
        m.momentum,
        m.eps,
    )


def _affine(b: Builder, weight, bias, shape, what: str):
    """The affine parameters, ones/zeros where the module has none."""
    w = weight if weight is not None else b.const(np.ones(shape, np.float32), f"{what}_weight")
    bb = bias if bias is not None else b.const(np.zeros(shape, np.float32), f"{what}_bias")
    return w, bb


# F.layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-05)
@converts(F.layer_norm)
def layer_norm(b: Builder, input, normalized_shape, weight=None, bias=None, eps=1e-5):
    shape = tuple(int(d) for d in b.static(normalized_shape, "normalized_shape"))
    w, bb = _affine(b, weight, bias, shape, "ln")
    axes = tuple(range(input.rank - len(shape), input.rank))
    return b.op("layer_norm", [input, w, bb], axes=axes, eps=float(eps))


@converts(nn.LayerNorm)
def layer_norm_module(b: Builder, m: nn.LayerNorm, input):
    weight = b.const(m.weight, "ln_weight") if m.weight is not None else None
    bias = b.const(m.bias, "ln_bias") if getattr(m, "bias", None) is not None else None
    return layer_norm(b, input, m.normalized_shape, weight, bias, m.eps)


# F.group_norm(input, num_groups, weight=None, bias=None, eps=1e-05)
@converts(F.group_norm)
def group_norm(b: Builder, input, num_groups, weight=None, bias=None, eps=1e-5):
    c = input.shape[1]
    w, bb = _affine(b, weight, bias, (c,), "gn")
    return b.op("group_norm", [input, w, bb], groups=int(num_groups), eps=float(eps), axis=1)


@converts(nn.GroupNorm)
def group_norm_module(b: Builder, m: nn.GroupNorm, input):
    weight = b.const(m.weight, "gn_weight") if m.weight is not None else None
    bias = b.const(m.bias, "gn_bias") if m.bias is not None else None
    return group_norm(b, input, m.num_groups, weight, bias, m.eps)


# F.instance_norm(input, running_mean=None, running_var=None, weight=None, bias=None,
#                 use_input_stats=True, momentum=0.1, eps=1e-05): group norm with one channel each
@converts(F.instance_norm)
def instance_norm(
    b: Builder,
    input,
    running_mean=None,
    running_var=None,
    weight=None,
    bias=None,
    use_input_stats=True,
    momentum=0.1,
    eps=1e-5,
):
    if not use_input_stats:
        return batch_norm(b, input, running_mean, running_var, weight, bias, False, momentum, eps)
    return group_norm(b, input, input.shape[1], weight, bias, eps)


@converts(nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d)
def instance_norm_module(b: Builder, m: nn.modules.instancenorm._InstanceNorm, input):
    weight = b.const(m.weight, "in_weight") if m.weight is not None else None
    bias = b.const(m.bias, "in_bias") if m.bias is not None else None
    if m.track_running_stats and m.running_mean is not None:
        return batch_norm(
            b,
            input,
            b.const(m.running_mean, "running_mean"),
            b.const(m.running_var, "running_var"),
            weight,
            bias,
            False,
            m.momentum,
            m.eps,
        )
    return group_norm(b, input, input.shape[1], weight, bias, m.eps)
