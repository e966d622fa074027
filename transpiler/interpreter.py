"""Reference evaluator for the IR: one small function per op.

It defines what our IR means, independently of any backend, so every pass can be tested
numerically before/after without TensorFlow. torch.nn.functional serves as the array library
(channels-first kernels; channels-last ops are permuted around them).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .errors import TranspileError
from .ir import Graph, Node

__all__ = ["run_graph", "EVALUATORS"]

Evaluator = Callable[..., torch.Tensor]
EVALUATORS: dict[str, Evaluator] = {}


def evaluates(*ops: str) -> Callable[[Evaluator], Evaluator]:
    def register(fn: Evaluator) -> Evaluator:
        for op in ops:
            EVALUATORS[op] = fn
        return fn

    return register


def _cf(x: torch.Tensor, node: Node) -> torch.Tensor:
    """To channels-first for a spatial op."""
    return x.permute(0, x.dim() - 1, *range(1, x.dim() - 1)) if _nhwc(node) else x


def _back(y: torch.Tensor, node: Node) -> torch.Tensor:
    return y.permute(0, *range(2, y.dim()), 1) if _nhwc(node) else y


def _nhwc(node: Node) -> bool:
    return node.attrs.get("data_format", "NCHW") == "NHWC"


def _explicit(padding: Any) -> tuple[int, int, int, int] | str:
    """(top, bottom, left, right) from pairs, an int pair, or a string."""
    if isinstance(padding, str):
        return padding
    (pt, pb), (pl, pr) = (
        padding if isinstance(padding[0], tuple | list) else ((padding[0],) * 2, (padding[1],) * 2)
    )
    return int(pt), int(pb), int(pl), int(pr)


def _same_pads(size: int, k: int, s: int, d: int) -> tuple[int, int]:
    """TF 'SAME' padding for one axis."""
    eff = (k - 1) * d + 1
    out = -(-size // s)
    total = max((out - 1) * s + eff - size, 0)
    return total // 2, total - total // 2


@evaluates("conv2d")
def _conv2d(node: Node, x, w, bias=None):
    x = _cf(x, node)
    a = node.attrs
    stride, dilation = tuple(a.get("stride", (1, 1))), tuple(a.get("dilation", (1, 1)))
    pad = _explicit(a.get("padding", "valid"))
    mode = a.get("padding_mode", "zeros")
    if pad == "same":
        (pt, pb), (pl, pr) = (
            _same_pads(x.shape[2 + i], w.shape[2 + i], stride[i], dilation[i]) for i in range(2)
        )
        pad = (pt, pb, pl, pr)
    if pad == "valid":
        pad = (0, 0, 0, 0)
    pt, pb, pl, pr = pad
    torch_mode = {"zeros": "constant", "circular": "circular"}.get(mode, mode)
    x = F.pad(x, (pl, pr, pt, pb), mode=torch_mode)
    y = F.conv2d(x, w, bias, stride, 0, dilation, a.get("groups", 1))
    return _back(y, node)


@evaluates("max_pool2d", "avg_pool2d")
def _pool(node: Node, x):
    x = _cf(x, node)
    a = node.attrs
    pad = _explicit(a.get("padding", (0, 0)))
    if pad == "same":
        (pt, pb), (pl, pr) = (
            _same_pads(x.shape[2 + i], a["kernel"][i], a["stride"][i], 1) for i in range(2)
        )
        if node.op == "max_pool2d":
            x = F.pad(x, (pl, pr, pt, pb), value=float("-inf"))
            return _back(F.max_pool2d(x, a["kernel"], a["stride"]), node)
        # TF 'same' average pooling divides by the number of real (unpadded) elements
        ones = torch.ones_like(x[:1, :1])
        s = F.avg_pool2d(F.pad(x, (pl, pr, pt, pb)), a["kernel"], a["stride"])
        c = F.avg_pool2d(F.pad(ones, (pl, pr, pt, pb)), a["kernel"], a["stride"])
        return _back(s / c, node)
    if pad == "valid":
        pad = (0, 0, 0, 0)
    pt, pb, pl, pr = pad
    if pt == pb and pl == pr:
        sym = (pt, pl)
    else:
        fill = float("-inf") if node.op == "max_pool2d" else 0.0
        x, sym = F.pad(x, (pl, pr, pt, pb), value=fill), (0, 0)
    if node.op == "max_pool2d":
        y = F.max_pool2d(
            x, a["kernel"], a["stride"], sym, a.get("dilation", 1), a.get("ceil_mode", False)
        )
    else:
        y = F.avg_pool2d(
            x,
            a["kernel"],
            a["stride"],
            sym,
            a.get("ceil_mode", False),
            a.get("count_include_pad", True),
            a.get("divisor_override"),
        )
    return _back(y, node)


@evaluates("adaptive_avg_pool2d")
def _adaptive_avg_pool2d(node: Node, x):
    return _back(F.adaptive_avg_pool2d(_cf(x, node), node.attrs["output_size"]), node)


@evaluates("batch_norm")
def _batch_norm(node: Node, x, mean, var, weight, bias):
    ax = node.attrs.get("axis", 1)
    shape = [1] * x.dim()
    shape[ax] = -1
    inv = weight / torch.sqrt(var + node.attrs.get("eps", 1e-5))
    return (x - mean.reshape(shape)) * inv.reshape(shape) + bias.reshape(shape)


@evaluates("linear")
def _linear(node: Node, x, w, bias=None):
    return F.linear(x, w, bias)


_UNARY: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "relu": F.relu,
    "relu6": F.relu6,
    "silu": F.silu,
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "hardswish": F.hardswish,
    "hardsigmoid": F.hardsigmoid,
    "identity": lambda x: x,
    "abs": torch.abs,
    "neg": torch.neg,
    "exp": torch.exp,
    "log": torch.log,
    "sqrt": torch.sqrt,
    "rsqrt": torch.rsqrt,
    "square": torch.square,
    "reciprocal": torch.reciprocal,
}


@evaluates(*_UNARY)
def _unary(node: Node, x):
    return _UNARY[node.op](x)


@evaluates("leaky_relu")
def _leaky_relu(node: Node, x):
    return F.leaky_relu(x, node.attrs.get("negative_slope", 0.01))


@evaluates("gelu")
def _gelu(node: Node, x):
    return F.gelu(x, approximate=node.attrs.get("approximate", "none"))


_BINARY = {"add": torch.add, "sub": torch.sub, "mul": torch.mul, "div": torch.div}


@evaluates(*_BINARY)
def _binary(node: Node, a, b):
    return _BINARY[node.op](a, b)


@evaluates("cat")
def _cat(node: Node, *xs):
    return torch.cat(xs, node.attrs["axis"])


@evaluates("softmax")
def _softmax(node: Node, x):
    return torch.softmax(x, node.attrs["axis"])


@evaluates("mean")
def _mean(node: Node, x):
    return torch.mean(x, dim=tuple(node.attrs["axes"]), keepdim=node.attrs.get("keepdims", False))


@evaluates("pad")
def _pad(node: Node, x):
    pads = node.attrs["pads"]
    flat = [int(p) for pair in reversed(pads) for p in pair]  # torch: last axis first
    mode = node.attrs.get("mode", "constant")
    if mode == "constant":
        return F.pad(x, flat, value=float(node.attrs.get("value", 0.0)))
    # torch's reflect/replicate/circular pad only the trailing spatial axes of a (N, C, ...)
    # tensor: move padded axes to the end, pad, and move them back.
    padded = [i for i, p in enumerate(pads) if tuple(p) != (0, 0)]
    if not padded:
        return x
    rest = [i for i in range(x.dim()) if i not in padded]
    order = rest + padded
    y = x.permute(order)
    lead = y.shape[: len(rest)]
    y = y.reshape(1, -1, *y.shape[len(rest) :])
    sub = [int(p) for i in reversed(padded) for p in pads[i]]
    y = F.pad(y, sub, mode=mode)
    y = y.reshape(*lead, *y.shape[2:])
    return y.permute([order.index(i) for i in range(x.dim())])


@evaluates("reshape")
def _reshape(node: Node, x):
    return x.reshape(node.attrs["shape"])


@evaluates("transpose")
def _transpose(node: Node, x):
    return x.permute(node.attrs["perm"])


def run_graph(graph: Graph, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Evaluate ``graph`` on numpy inputs; returns its outputs as numpy arrays."""
    if len(inputs) != len(graph.inputs):
        raise TranspileError(f"graph takes {len(graph.inputs)} inputs, got {len(inputs)}")
    env: dict[int, torch.Tensor] = {
        id(v): torch.as_tensor(np.asarray(a)) for v, a in zip(graph.inputs, inputs, strict=True)
    }

    def get(v):
        if id(v) not in env:
            env[id(v)] = torch.as_tensor(graph.constants[v.name])
        return env[id(v)]

    with torch.no_grad():
        for node in graph.nodes:
            fn = EVALUATORS.get(node.op)
            if fn is None:
                raise TranspileError(f"interpreter: no evaluator for op {node.op!r}")
            out = fn(node, *[get(v) for v in node.inputs])
            env[id(node.output)] = out
    return [get(o).numpy() for o in graph.outputs]
