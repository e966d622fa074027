"""Activations: module, functional and method forms all reduce to one IR op each."""

from __future__ import annotations

import operator

import torch
import torch.nn as nn
import torch.nn.functional as F

from ...errors import TranspileError
from ...ir import Value
from ..fx_importer import Builder
from ..registry import converts


def _unary(op: str):
    def convert(b: Builder, input, *args, **kwargs):  # inplace flags and the like are irrelevant
        return b.op(op, [input])

    def convert_module(b: Builder, m, input):
        return b.op(op, [input])

    return convert, convert_module


for _op, _fns, _mods, _methods in [
    ("relu", (F.relu, torch.relu, torch.relu_, F.relu_), (nn.ReLU,), ("relu", "relu_")),
    ("relu6", (F.relu6,), (nn.ReLU6,), ()),
    ("silu", (F.silu,), (nn.SiLU,), ()),
    ("sigmoid", (torch.sigmoid, F.sigmoid), (nn.Sigmoid,), ("sigmoid", "sigmoid_")),
    ("tanh", (torch.tanh, F.tanh), (nn.Tanh,), ("tanh", "tanh_")),
    ("hardswish", (F.hardswish,), (nn.Hardswish,), ()),
    ("hardsigmoid", (F.hardsigmoid,), (nn.Hardsigmoid,), ()),
    ("neg", (torch.neg, torch.negative, operator.neg), (), ("neg", "negative")),
    ("exp", (torch.exp,), (), ("exp",)),
    ("log", (torch.log,), (), ("log",)),
    ("sqrt", (torch.sqrt,), (), ("sqrt",)),
    ("rsqrt", (torch.rsqrt,), (), ("rsqrt",)),
    ("square", (torch.square,), (), ("square",)),
    ("reciprocal", (torch.reciprocal,), (), ("reciprocal",)),
    ("erf", (torch.erf, torch.special.erf), (), ("erf",)),
    ("mish", (F.mish,), (nn.Mish,), ()),
    ("sin", (torch.sin,), (), ("sin",)),
    ("cos", (torch.cos,), (), ("cos",)),
    ("identity", (torch.clone, torch.Tensor.detach), (), ("clone", "detach", "float")),
]:
    _fn, _mod = _unary(_op)
    converts(*_fns, *_methods)(_fn)
    converts(*_mods)(_mod)


@converts(torch.abs, torch.absolute, "abs", "absolute")
def abs_(b: Builder, input):
    """abs; of an integer tensor, max(x, -x) (TFLite's ABS takes no int64: T5's relative
    positions over a dynamic length)."""
    if input.type.is_float:
        return b.op("abs", [input])
    return b.op("maximum", [input, b.op("neg", [input])])


# F.leaky_relu(input, negative_slope=0.01, inplace=False)
@converts(F.leaky_relu, torch._C._nn.leaky_relu)
def leaky_relu(b: Builder, input, negative_slope=0.01, inplace=False):
    return b.op("leaky_relu", [input], negative_slope=float(negative_slope))


@converts(nn.LeakyReLU)
def leaky_relu_module(b: Builder, m: nn.LeakyReLU, input):
    return leaky_relu(b, input, m.negative_slope)


# F.gelu(input, approximate='none')
@converts(F.gelu)
def gelu(b: Builder, input, approximate="none"):
    if approximate not in ("none", "tanh"):
        raise TranspileError(f"gelu(approximate={approximate!r}) at {b.where()} is unknown")
    return b.op("gelu", [input], approximate=approximate)


@converts(nn.GELU)
def gelu_module(b: Builder, m: nn.GELU, input):
    return gelu(b, input, m.approximate)


# torch.clamp(input, min=None, max=None); F.hardtanh(input, min_val=-1.0, max_val=1.0)
@converts(torch.clamp, torch.clip, "clamp", "clip", "clamp_", "clip_")
def clamp(b: Builder, input, min=None, max=None):
    if isinstance(min, Value) or isinstance(max, Value):  # min(max(x, lo), hi), as torch
        x = input
        if min is not None:
            lo = min if isinstance(min, Value) else b.scalar(float(min))
            x = b.op("maximum", [x, lo])
        if max is not None:
            hi = max if isinstance(max, Value) else b.scalar(float(max))
            x = b.op("minimum", [x, hi])
        return x
    if (min, max) == (0.0, 6.0) or (min, max) == (0, 6):
        return b.op("relu6", [input])
    if (min, max) in ((0, None), (0.0, None)):
        return b.op("relu", [input])
    lo = None if min is None else float(min)
    hi = None if max is None else float(max)
    return b.op("clamp", [input], min=lo, max=hi)


@converts(F.hardtanh)
def hardtanh(b: Builder, input, min_val=-1.0, max_val=1.0, inplace=False):
    return clamp(b, input, min_val, max_val)


@converts(nn.Hardtanh)
def hardtanh_module(b: Builder, m: nn.Hardtanh, input):
    return clamp(b, input, m.min_val, m.max_val)


# F.elu(input, alpha=1.0, inplace=False)
@converts(F.elu)
def elu(b: Builder, input, alpha=1.0, inplace=False):
    return b.op("elu", [input], alpha=float(alpha))


@converts(nn.ELU)
def elu_module(b: Builder, m: nn.ELU, input):
    return elu(b, input, m.alpha)


# F.softplus(input, beta=1, threshold=20)
@converts(F.softplus)
def softplus(b: Builder, input, beta=1.0, threshold=20.0):
    return b.op("softplus", [input], beta=float(beta), threshold=float(threshold))


@converts(nn.Softplus)
def softplus_module(b: Builder, m: nn.Softplus, input):
    return softplus(b, input, m.beta, m.threshold)


# F.prelu(input, weight)
@converts(F.prelu, torch.prelu)
def prelu(b: Builder, input, weight):
    return b.op("prelu", [input, weight], axis=1 if input.rank > 1 else 0)


@converts(nn.PReLU)
def prelu_module(b: Builder, m: nn.PReLU, input):
    return prelu(b, input, b.const(m.weight, "prelu_weight"))


@converts(nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.Identity)
def identity_module(b: Builder, m, input, *args, **kwargs):
    return input  # eval mode: dropout is the identity


@converts(F.dropout, F.dropout1d, F.dropout2d, F.dropout3d, F.alpha_dropout, "contiguous")
def identity(b: Builder, input, *args, **kwargs):
    return input


def _register_torchvision() -> None:
    """torchvision's eval-mode no-ops (only if torchvision is installed)."""
    try:
        from torchvision.ops import StochasticDepth, stochastic_depth
    except ImportError:  # pragma: no cover - torchvision is optional
        return

    # torchvision.ops.stochastic_depth(input, p, mode, training=True): identity in eval
    @converts(stochastic_depth)
    def _stochastic_depth(b: Builder, input, p, mode, training=True):
        if training and p > 0:
            raise TranspileError(f"stochastic_depth(training=True) at {b.where()} is random")
        return input

    converts(StochasticDepth)(identity_module)


_register_torchvision()
