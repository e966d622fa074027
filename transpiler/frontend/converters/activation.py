"""Activations: module, functional and method forms all reduce to one IR op each."""

from __future__ import annotations

import operator

import torch
import torch.nn as nn
import torch.nn.functional as F

from ...errors import TranspileError
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
    ("abs", (torch.abs, torch.absolute), (), ("abs", "absolute")),
    ("neg", (torch.neg, torch.negative, operator.neg), (), ("neg", "negative")),
    ("exp", (torch.exp,), (), ("exp",)),
    ("log", (torch.log,), (), ("log",)),
    ("sqrt", (torch.sqrt,), (), ("sqrt",)),
    ("rsqrt", (torch.rsqrt,), (), ("rsqrt",)),
    ("square", (torch.square,), (), ("square",)),
    ("reciprocal", (torch.reciprocal,), (), ("reciprocal",)),
]:
    _fn, _mod = _unary(_op)
    converts(*_fns, *_methods)(_fn)
    converts(*_mods)(_mod)


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


# F.hardtanh(input, min_val=-1.0, max_val=1.0, inplace=False): ReLU6 is hardtanh(0, 6)
@converts(F.hardtanh, nn.Hardtanh)
def hardtanh(b: Builder, *args, **kwargs):
    if isinstance(args[0], nn.Module):
        m, input = args[0], args[1]
        lo, hi = m.min_val, m.max_val
    else:
        input, lo, hi = (list(args) + [-1.0, 1.0])[:3]
        lo, hi = kwargs.get("min_val", lo), kwargs.get("max_val", hi)
    if (lo, hi) == (0.0, 6.0):
        return b.op("relu6", [input])
    raise TranspileError(f"hardtanh({lo}, {hi}) at {b.where()}: only (0, 6) is supported yet")


@converts(nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.Identity)
def identity_module(b: Builder, m, input, *args, **kwargs):
    return input  # eval mode: dropout is the identity


@converts(F.dropout, F.dropout1d, F.dropout2d, F.dropout3d, F.alpha_dropout, "contiguous")
def identity(b: Builder, input, *args, **kwargs):
    return input
