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
