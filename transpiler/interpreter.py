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
from .ops import OpImplTable, declared_attr

__all__ = ["run_graph", "EVALUATORS", "evaluates"]

Evaluator = Callable[..., torch.Tensor]
EVALUATORS: OpImplTable[Evaluator] = OpImplTable("the interpreter")
evaluates = EVALUATORS.register


def _cf(x: torch.Tensor, node: Node) -> torch.Tensor:
    """To channels-first for a spatial op."""
    return x.permute(0, x.dim() - 1, *range(1, x.dim() - 1)) if _last(node) else x


def _back(y: torch.Tensor, node: Node) -> torch.Tensor:
    return y.permute(0, *range(2, y.dim()), 1) if _last(node) else y


def _last(node: Node) -> bool:
    return node.attrs["data_format"] == "channels_last"


def _same_pads(size: int, k: int, s: int, d: int) -> tuple[int, int]:
    """TF 'SAME' padding for one axis."""
    eff = (k - 1) * d + 1
    out = -(-size // s)
    total = max((out - 1) * s + eff - size, 0)
    return total // 2, total - total // 2


def _pads(node: Node, x: torch.Tensor, kernel) -> list[tuple[int, int]] | None:
    """Explicit (before, after) per spatial axis from "valid"/"same"/torch ints; None: torch's
    symmetric ints (let the torch op pad)."""
    a, n = node.attrs, x.dim() - 2
    pad = a["padding"]
    if pad == "valid":
        return [(0, 0)] * n
    if pad == "same" and node.op in ("conv", "conv_transpose") and a["stride"] == (1,) * n:
        # torch-'same' and TF-'same' agree for stride 1 except on the odd extra pad: torch puts
        # it after as well, so one formula serves both.
        return [_same_pads(x.shape[2 + i], kernel[i], 1, a["dilation"][i]) for i in range(n)]
    if pad == "same":
        dil = a.get("dilation") or (1,) * n  # avg_pool has none
        return [_same_pads(x.shape[2 + i], kernel[i], a["stride"][i], dil[i]) for i in range(n)]
    return None


def _flat(pads: list[tuple[int, int]]) -> list[int]:
    return [p for pair in reversed(pads) for p in pair]  # torch F.pad: last axis first


_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
_CONV_T = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}


@evaluates("conv")
def _conv(node: Node, x, w, bias=None):
    x, a = _cf(x, node), node.attrs
    n = x.dim() - 2
    pads = _pads(node, x, w.shape[2:])
    if pads is None:
        pads = [(int(p), int(p)) for p in a["padding"]]
    mode = declared_attr(node, "padding_mode")
    mode = {"zeros": "constant"}.get(mode, mode)
    if any(p != (0, 0) for p in pads):
        x = F.pad(x, _flat(pads), mode=mode)
    y = _CONV[n](x, w, bias, a["stride"], 0, a["dilation"], a["groups"])
    return _back(y, node)


@evaluates("conv_per_sample")
def _conv_per_sample(node: Node, x, kernels):
    x, a = _cf(x, node), node.attrs
    n, c = x.shape[0], x.shape[1]
    merged = x.reshape(1, n * c, *x.shape[2:])
    w = kernels.reshape(n * kernels.shape[1], *kernels.shape[2:])
    y = F.conv2d(merged, w, None, a["stride"], 0, a["dilation"], n)
    return _back(y.reshape(n, kernels.shape[1], *y.shape[2:]), node)


@evaluates("conv_transpose")
def _conv_transpose(node: Node, x, w, bias=None):
    x, a = _cf(x, node), node.attrs
    n = x.dim() - 2
    pad = a["padding"]
    pad = (0,) * n if pad == "valid" else tuple(pad)
    out_pad = tuple(a["output_padding"])
    fn = _CONV_T[n]
    y = fn(x, w, bias, a["stride"], pad, out_pad, a["groups"], a["dilation"])
    return _back(y, node)


_MAX = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}
_AVG = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}


@evaluates("max_pool", "avg_pool")
def _pool(node: Node, x):
    x, a = _cf(x, node), node.attrs
    n = x.dim() - 2
    kernel, stride = a["kernel"], a["stride"]
    pads = _pads(node, x, kernel)
    if a["padding"] == "same" and node.op == "avg_pool":
        # TF 'same' average pooling divides by the number of real (unpadded) elements
        s = _AVG[n](F.pad(x, _flat(pads)), kernel, stride)
        c = _AVG[n](F.pad(torch.ones_like(x[:1, :1]), _flat(pads)), kernel, stride)
        return _back(s / c, node)
    if pads is not None:  # explicit: pad here (-inf for max), then a padding-free torch pool
        fill = float("-inf") if node.op == "max_pool" else 0.0
        if any(p != (0, 0) for p in pads):
            x = F.pad(x, _flat(pads), value=fill)
        sym = (0,) * n
    else:
        sym = tuple(a["padding"])
    if node.op == "max_pool":
        return _back(_MAX[n](x, kernel, stride, sym, a["dilation"], a["ceil_mode"]), node)
    include_pad = declared_attr(node, "count_include_pad")
    args = (x, kernel, stride, sym, a["ceil_mode"], include_pad)
    if n == 1:
        y = F.avg_pool1d(*args)
    else:
        y = _AVG[n](*args, declared_attr(node, "divisor_override"))
    return _back(y, node)


_ADAPTIVE = {
    "adaptive_avg_pool": {
        1: F.adaptive_avg_pool1d,
        2: F.adaptive_avg_pool2d,
        3: F.adaptive_avg_pool3d,
    },
    "adaptive_max_pool": {
        1: F.adaptive_max_pool1d,
        2: F.adaptive_max_pool2d,
        3: F.adaptive_max_pool3d,
    },
}


@evaluates(*_ADAPTIVE)
def _adaptive(node: Node, x):
    x = _cf(x, node)
    return _back(_ADAPTIVE[node.op][x.dim() - 2](x, node.attrs["output_size"]), node)


@evaluates("slice")
def _slice(node: Node, x):
    a = node.attrs
    index = [slice(None)] * x.dim()
    for ax, start, stop, step in zip(a["axes"], a["starts"], a["stops"], a["steps"], strict=True):
        index[ax] = slice(start, stop, step)
    return x[tuple(index)]


@evaluates("batch_norm")
def _batch_norm(node: Node, x, mean, var, weight, bias):
    ax = node.attrs["axis"]
    shape = [1] * x.dim()
    shape[ax] = -1
    inv = weight / torch.sqrt(var + node.attrs["eps"])
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
    "erf": torch.erf,
    "mish": F.mish,
    "floor": torch.floor,
    "ceil": torch.ceil,
    "trunc": torch.trunc,
    "round": torch.round,
    "sin": torch.sin,
    "cos": torch.cos,
    "logical_not": torch.logical_not,
    "selu": F.selu,
    "log_sigmoid": F.logsigmoid,
}


@evaluates(*_UNARY)
def _unary(node: Node, x):
    return _UNARY[node.op](x)


@evaluates("leaky_relu")
def _leaky_relu(node: Node, x):
    return F.leaky_relu(x, node.attrs["negative_slope"])


@evaluates("gelu")
def _gelu(node: Node, x):
    return F.gelu(x, approximate=node.attrs["approximate"])


_BINARY = {
    "add": torch.add,
    "sub": torch.sub,
    "mul": torch.mul,
    "div": torch.div,
    "pow": torch.pow,
    "maximum": torch.maximum,
    "minimum": torch.minimum,
    "floor_divide": lambda a, b: torch.div(a, b, rounding_mode="floor"),
    "equal": torch.eq,
    "not_equal": torch.ne,
    "less": torch.lt,
    "less_equal": torch.le,
    "greater": torch.gt,
    "greater_equal": torch.ge,
    "logical_and": torch.logical_and,
    "logical_or": torch.logical_or,
    "remainder": torch.remainder,
}


@evaluates("elu")
def _elu(node: Node, x):
    return F.elu(x, node.attrs["alpha"])


@evaluates("softplus")
def _softplus(node: Node, x):
    return F.softplus(x, node.attrs["beta"], node.attrs["threshold"])


@evaluates("clamp")
def _clamp(node: Node, x):
    return torch.clamp(x, node.attrs["min"], node.attrs["max"])


@evaluates("log_softmax")
def _log_softmax(node: Node, x):
    return torch.log_softmax(x, node.attrs["axis"])


_REDUCE = {"mean": torch.mean, "sum": torch.sum, "max": torch.amax, "min": torch.amin}


@evaluates("reduce")
def _reduce(node: Node, x):
    a = node.attrs
    return _REDUCE[a["kind"]](x, dim=tuple(a["axes"]), keepdim=a["keepdims"])


@evaluates("arg_reduce")
def _arg_reduce(node: Node, x):
    a = node.attrs
    fn = torch.argmax if a["kind"] == "max" else torch.argmin
    return fn(x, dim=a["axes"][0], keepdim=a.get("keepdims", False))


@evaluates("layer_norm")
def _layer_norm(node: Node, x, w, b):
    axes = tuple(node.attrs["axes"])
    mean = x.mean(dim=axes, keepdim=True)
    var = ((x - mean) ** 2).mean(dim=axes, keepdim=True)
    shape = [x.shape[i] if i in axes else 1 for i in range(x.dim())]
    y = (x - mean) / torch.sqrt(var + node.attrs["eps"])
    return y * w.reshape(shape) + b.reshape(shape)


@evaluates("group_norm")
def _group_norm(node: Node, x, w, b):
    ax = node.attrs["axis"]
    xc = x.movedim(ax, 1)
    y = F.group_norm(xc, node.attrs["groups"], w, b, node.attrs["eps"])
    return y.movedim(1, ax)


@evaluates("prelu")
def _prelu(node: Node, x, w):
    shape = [1] * x.dim()
    if w.numel() > 1:
        shape[node.attrs["axis"]] = -1
    return torch.where(x >= 0, x, x * w.reshape(shape))


@evaluates("broadcast_to")
def _broadcast_to(node: Node, x, ref=None):
    shape = [
        ref.shape[0] if s is None else (x.shape[i] if s == -1 else s)
        for i, s in enumerate(node.attrs["shape"])
    ]
    return x.expand(shape)


@evaluates("matmul")
def _matmul(node: Node, a, b):
    return torch.matmul(a, b)


@evaluates("einsum")
def _einsum(node: Node, *xs):
    return torch.einsum(node.attrs["equation"], *xs)


@evaluates("resize")
def _resize(node: Node, x):
    x, a = _cf(x, node), node.attrs
    n = x.dim() - 2
    if a["coord"] is not None:  # ONNX's Resize: per-axis taps, as the backends compute them
        return _back(_resize_taps(x, a), node)
    mode = a["mode"]
    if mode == "linear":
        mode = {1: "linear", 2: "bilinear", 3: "trilinear"}[n]
    align = a["align_corners"] if mode not in ("nearest", "nearest-exact") else None
    if a["scales"] is not None:
        factors = [1.0 / s for s in a["scales"]]
        y = F.interpolate(x, scale_factor=factors, mode=mode, align_corners=align)
    else:
        y = F.interpolate(x, size=tuple(a["sizes"]), mode=mode, align_corners=align)
    return _back(y, node)


def _resize_taps(x: torch.Tensor, a: dict) -> torch.Tensor:
    from transpiler.backends._planning import resize_taps

    for axis, out in enumerate(a["sizes"], start=2):
        index, weight = resize_taps(
            x.shape[axis],
            out,
            a["mode"],
            a["coord"],
            a["factors"][axis - 2],
            a["nearest_mode"],
            a["cubic_a"],
            a["exclude_outside"],
            a["antialias"],
        )
        taps = torch.from_numpy(index.astype("int64"))
        if weight is None:
            x = torch.index_select(x, axis, taps[:, 0])
            continue
        shape = [out if d == axis else 1 for d in range(x.dim())]
        w = torch.from_numpy(weight.astype("float64")).to(x.dtype)
        x = sum(
            torch.index_select(x, axis, taps[:, t]) * w[:, t].reshape(shape)
            for t in range(taps.shape[1])
        )
    return x


@evaluates(*_BINARY)
def _binary(node: Node, a, b):
    return _BINARY[node.op](a, b)


@evaluates("cat")
def _cat(node: Node, *xs):
    return torch.cat(xs, node.attrs["axis"])


@evaluates("softmax")
def _softmax(node: Node, x):
    return torch.softmax(x, node.attrs["axis"])


@evaluates("pad")
def _pad(node: Node, x):
    pads = node.attrs["pads"]
    flat = [int(p) for pair in reversed(pads) for p in pair]  # torch: last axis first
    mode = node.attrs["mode"]
    if mode == "constant":
        return F.pad(x, flat, value=float(node.attrs["value"]))
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


_DTYPES = {"float32": torch.float32, "int64": torch.int64, "int32": torch.int32, "bool": torch.bool}


def torch_dtype(name: str) -> torch.dtype:
    if name not in _DTYPES:
        raise TranspileError(f"unsupported dtype {name!r} (supported: {sorted(_DTYPES)})")
    return _DTYPES[name]


@evaluates("cast")
def _cast(node: Node, x):
    return x.to(torch_dtype(node.attrs["dtype"]))


@evaluates("where")
def _where(node: Node, c, x, y):
    return torch.where(c.bool(), x, y)


@evaluates("embedding")
def _embedding(node: Node, ids, table):
    return F.embedding(ids.long(), table)


@evaluates("take")
def _take(node: Node, x, idx):
    ax = node.attrs["axis"]
    flat = torch.index_select(x, ax, idx.reshape(-1).long())
    return flat.reshape(*x.shape[:ax], *idx.shape, *x.shape[ax + 1 :])


@evaluates("grid_sample")
def _grid_sample(node: Node, x, grid):
    a = node.attrs
    return F.grid_sample(x, grid, a["mode"], a["padding_mode"], a["align_corners"])


# -- sequence and transformer models (issue 12, s2-hf-text) --
@evaluates("take_along_axis")
def _take_along_axis(node: Node, x, idx):
    return torch.gather(x, node.attrs["axis"], idx.long())


@evaluates("triangle")
def _triangle(node: Node, x):
    fn = torch.triu if node.attrs["upper"] else torch.tril
    return fn(x, node.attrs["diagonal"])


@evaluates("topk")
def _topk(node: Node, x):
    a = node.attrs
    values, indices = torch.topk(x, a["k"], a["axis"], largest=a["largest"], sorted=True)
    return values, indices.long()


@evaluates("cumsum")
def _cumsum(node: Node, x):
    return torch.cumsum(x, node.attrs["axis"]).to(torch_dtype(node.output.type.dtype))


@evaluates("flip")
def _flip(node: Node, x):
    return torch.flip(x, tuple(node.attrs["axes"]))


@evaluates("roll")
def _roll(node: Node, x):
    return torch.roll(x, tuple(node.attrs["shifts"]), tuple(node.attrs["axes"]))


@evaluates("reshape")
def _reshape(node: Node, x):
    from .ops import reshape_sources, reshape_target

    return x.reshape(reshape_target(node.attrs["shape"], reshape_sources(node), x.shape))


@evaluates("transpose")
def _transpose(node: Node, x):
    return x.permute(node.attrs["perm"])


def rnn_layout(node: Node) -> tuple[int, int, bool]:
    """(directions, gates, is_lstm) of an rnn node."""
    mode = node.attrs["mode"]
    gates = {"lstm": 4, "gru": 3}.get(mode, 1)
    return (2 if node.attrs.get("bidirectional") else 1), gates, mode == "lstm"


def rnn_split_inputs(node: Node, inputs: Sequence) -> tuple[Any, list[list], list[list]]:
    """x, per-direction [w_ih, w_hh, (b_ih, b_hh)], per-direction initial states ([] if none)."""
    d, _, lstm = rnn_layout(node)
    per = 4 if node.attrs.get("bias", True) else 2
    x, rest = inputs[0], list(inputs[1:])
    weights = [rest[k * per : (k + 1) * per] for k in range(d)]
    states = rest[d * per :]
    n_state = 2 if lstm else 1
    init = [states[k * n_state : (k + 1) * n_state] for k in range(d)] if states else [[]] * d
    return x, weights, init


def _rnn_cell(mode: str, x, state, w_ih, w_hh, b_ih, b_hh):
    """One time step in PyTorch's equations; ``state`` is (h,) or (h, c)."""
    h = state[0]
    gi = F.linear(x, w_ih, b_ih)
    gh = F.linear(h, w_hh, b_hh)
    if mode == "lstm":
        i, f, g, o = (gi + gh).chunk(4, -1)
        c = torch.sigmoid(f) * state[1] + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c
    if mode == "gru":
        ir, iz, in_ = gi.chunk(3, -1)
        hr, hz, hn = gh.chunk(3, -1)
        r, z = torch.sigmoid(ir + hr), torch.sigmoid(iz + hz)
        n = torch.tanh(in_ + r * hn)
        return ((1 - z) * n + z * h,)
    act = torch.tanh if mode == "rnn_tanh" else torch.relu
    return (act(gi + gh),)


@evaluates("rnn")
def _rnn(node: Node, *inputs):
    mode, hidden = node.attrs["mode"], node.attrs["hidden_size"]
    x, weights, init = rnn_split_inputs(node, inputs)
    n, t = x.shape[0], x.shape[1]
    _, _, lstm = rnn_layout(node)
    seqs, states = [], []
    for k, (w, s0) in enumerate(zip(weights, init, strict=True)):
        w_ih, w_hh = w[0], w[1]
        b_ih, b_hh = (w[2], w[3]) if len(w) > 2 else (None, None)
        zeros = x.new_zeros(n, hidden)
        state = tuple(s0) if s0 else ((zeros, zeros) if lstm else (zeros,))
        steps = range(t - 1, -1, -1) if k == 1 else range(t)
        out = [None] * t
        for step in steps:
            state = _rnn_cell(mode, x[:, step], state, w_ih, w_hh, b_ih, b_hh)
            out[step] = state[0]
        seqs.append(torch.stack(out, 1) if t else x.new_zeros(n, 0, hidden))
        states.extend(state)
    return (torch.cat(seqs, -1), *states)


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
            out = EVALUATORS.apply(node, *[get(v) for v in node.inputs])
            if len(node.outputs) > 1:  # a multi-output op (rnn) returns a tuple
                for v, y in zip(node.outputs, out, strict=True):
                    env[id(v)] = y
            else:
                env[id(node.output)] = out
    return [get(o).numpy() for o in graph.outputs]
