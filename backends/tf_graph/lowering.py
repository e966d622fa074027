"""IR op -> TensorFlow ops: one small rule per op (``@lowers``).

Rules see the graph after the pipeline (physical NHWC, explicit padding), like the Keras rules,
but produce TensorFlow directly. Each rule runs in two phases:

- planning (eager, once): read the node's attributes and constants, convert weight layouts
  (conv OIHW -> HWIO, depthwise -> (kh, kw, C, m), transposed conv, linear (out, in) -> (in, out))
  and register them as variables with ``plan.weight``;
- running: the rule returns a ``Step``, a closure that maps the node's input tensors to its
  output. ``tf.function`` traces the steps in graph order into one graph.

Shapes that may be dynamic (the batch, and spatial sizes when the signature was inferred) are
read with ``tf.shape`` at run time, never baked in.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import numpy as np
import tensorflow as tf
from transpiler.backends._layouts import (
    adaptive_windows,
    spatial_kernel,
    transposed_as_conv_kernel,
)
from transpiler.backends._planning import (
    grid_sample_taps,
    pad_pieces,
    pool_taps,
    resize_axis,
    resize_builtins,
    resize_taps,
)

from transpiler.errors import TranspileError
from transpiler.ir import Graph, Node, Value
from transpiler.ops import OpImplTable

__all__ = ["LOWERINGS", "lowers", "Plan", "Step"]

Env = dict[int, Any]  # id(Value) -> tf.Tensor
Step = Callable[[Env], Any]
Lowering = Callable[[Node, "Plan"], Step]
LOWERINGS: OpImplTable[Lowering] = OpImplTable("the tf backend")
lowers = LOWERINGS.register


class Plan:
    """Planning-time state: the graph and the variables created so far (name -> variable)."""

    def __init__(self, graph: Graph, name_for: Callable[[str], str]) -> None:
        self.graph = graph
        self.variables: dict[str, tf.Variable] = {}
        self._name_for = name_for
        self._hint = "w"

    def weight(self, array: np.ndarray, suffix: str = "") -> tf.Variable:
        """A non-trainable variable holding ``array`` (float arrays stored as float32)."""
        a = np.asarray(array)
        if a.dtype.kind == "f":
            a = a.astype(np.float32)
        name = self._name_for(f"{self._hint}_{suffix}" if suffix else self._hint)
        var = tf.Variable(np.ascontiguousarray(a), trainable=False, name=name)
        self.variables[name] = var
        return var

    def operand(self, v: Value, suffix: str = "") -> Step:
        """A step fetching ``v``: the tensor computed earlier, or its constant (a Python number
        for a 0-d constant, else a variable)."""
        if self.graph.is_constant(v):
            arr = self.graph.constant(v)
            if arr.ndim == 0:
                value = arr.item()
                return lambda env: value
            var = self.weight(arr, suffix or "value")
            return lambda env: var
        return lambda env: env[id(v)]

    def constant(self, v: Value) -> np.ndarray:
        return self.graph.constant(v)


def _tf_dtype(v: Value) -> tf.DType:
    return tf.as_dtype(v.type.dtype)


def _unary(node: Node, plan: Plan, fn: Callable[[Any], Any]) -> Step:
    x = plan.operand(node.inputs[0])
    return lambda env: fn(x(env))


def _channels_last(node: Node) -> None:
    if node.attrs["data_format"] != "channels_last":
        raise TranspileError(f"internal: {node.op} at {node.source} is not channels-last")


def _subsample(x: Any, strides: tuple[int, ...]) -> Any:
    return x[(slice(None), *(slice(None, None, s) for s in strides))]


def _kernels(plan: Plan, kernel: np.ndarray, groups: int) -> list[Any]:
    """The variable(s) of a (*k, I/g, O) kernel: one, or one per group for a grouped 3-d conv
    (TF's Conv3D has no groups on CPU; 1-d and 2-d grouped convs are one op)."""
    if groups == 1 or kernel.ndim < 5:
        return [plan.weight(kernel, "kernel")]
    per = kernel.shape[-1] // groups
    return [plan.weight(kernel[..., g * per : (g + 1) * per], "kernel") for g in range(groups)]


def _convolution(x: Any, kernels: list[Any], stride: Any, padding: str, dilation: Any) -> Any:
    if len(kernels) == 1:
        return tf.nn.convolution(x, kernels[0], stride, padding, dilations=dilation)
    parts = tf.split(x, len(kernels), axis=-1)
    ys = [
        tf.nn.convolution(xg, k, stride, padding, dilations=dilation)
        for xg, k in zip(parts, kernels, strict=True)
    ]
    return tf.concat(ys, -1)


def _padding(p: str) -> str:
    return {"valid": "VALID", "same": "SAME"}[p]


# -- convolutions ------------------------------------------------------------------------------


@lowers("conv")
def _conv(node: Node, plan: Plan) -> Step:
    _channels_last(node)
    g = plan.graph
    x = plan.operand(node.inputs[0])
    a = node.attrs
    stride, dilation = tuple(a["stride"]), tuple(a["dilation"])
    n = len(stride)
    split = max(stride) > 1 and max(dilation) > 1  # TF cannot stride a dilated conv
    run_stride = (1,) * n if split else stride
    padding = _padding(a["padding"])
    bias = plan.operand(node.inputs[2], "bias") if len(node.inputs) > 2 else None

    groups_depthwise = False
    if not g.is_constant(node.inputs[1]):  # a kernel computed in forward()
        w = plan.operand(node.inputs[1])
        perm = (*range(2, 2 + n), 1, 0)

        def conv(env: Env) -> Any:
            kernel = tf.transpose(w(env), perm)
            return tf.nn.convolution(x(env), kernel, run_stride, padding, dilations=dilation)

    else:
        w = plan.constant(node.inputs[1])
        out_ch, in_per_group, k = w.shape[0], w.shape[1], tuple(w.shape[2:])
        groups = a["groups"]
        channels = node.inputs[0].shape[-1]
        groups_depthwise = groups > 1 and in_per_group == 1 and groups == channels and n in (1, 2)
        # TF's depthwise kernel takes equal strides only: other strides run as a grouped conv
        groups_depthwise = groups_depthwise and len(set(run_stride)) == 1
        if groups_depthwise:
            mult = out_ch // groups
            kernel = w.reshape(groups, mult, *k).transpose(*range(2, 2 + n), 0, 1)
            if n == 1:  # a 1-d depthwise conv is the 2-d one on a height-1 image
                kernel = kernel[None]
            var = plan.weight(kernel, "depthwise_kernel")
            s2 = (1, *run_stride) if n == 1 else run_stride
            d2 = (1, *dilation) if n == 1 else dilation

            def conv(env: Env) -> Any:
                xs = x(env)
                if n == 1:
                    xs = tf.expand_dims(xs, 1)
                y = tf.nn.depthwise_conv2d(xs, var, (1, *s2, 1), padding, dilations=d2)
                return tf.squeeze(y, 1) if n == 1 else y

        else:
            kernels = _kernels(plan, spatial_kernel(w), groups)

            def conv(env: Env) -> Any:
                return _convolution(x(env), kernels, run_stride, padding, dilation)

    # NOTE: TF's graph optimizer fuses Conv2D + BiasAdd into _FusedConv2D, which has no groups
    # on CPUs without oneDNN ("Fused conv implementation does not support grouped
    # convolutions"): a grouped conv adds its bias with a plain add, which is not fused.
    fusable = a["groups"] == 1 or groups_depthwise

    def step(env: Env) -> Any:
        y = conv(env)
        if split:
            y = _subsample(y, stride)
        if bias is not None:
            b = bias(env)
            y = tf.nn.bias_add(y, b) if isinstance(b, tf.Variable) and fusable else y + b
        return y

    return step


@lowers("conv_per_sample")
def _conv_per_sample(node: Node, plan: Plan) -> Step:
    _channels_last(node)
    x, kernels = plan.operand(node.inputs[0]), plan.operand(node.inputs[1])
    stride, dilation = tuple(node.attrs["stride"]), tuple(node.attrs["dilation"])
    if len(stride) != 2:
        raise TranspileError(f"per-sample convolution at {node.source}: only 2-d is supported")
    _, out, channels, kh, kw = node.inputs[1].shape

    def step(env: Env) -> Any:
        patches = tf.image.extract_patches(
            x(env), (1, kh, kw, 1), (1, *stride, 1), (1, *dilation, 1), "VALID"
        )
        flat = tf.transpose(kernels(env), (0, 3, 4, 2, 1))
        flat = tf.reshape(flat, (-1, kh * kw * channels, out))
        return tf.einsum("bhwk,bko->bhwo", patches, flat)

    return step


def _zero_insert(x: Any, strides: tuple[int, ...]) -> Any:
    """stride - 1 zeros between neighbours on each spatial axis (dynamic sizes allowed)."""
    for axis, s in enumerate(strides, start=1):
        if s == 1:
            continue
        spread = tf.stack([x] + [tf.zeros_like(x)] * (s - 1), axis=axis + 1)
        shape = tf.shape(x)
        merged = tf.concat([shape[:axis], [shape[axis] * s], shape[axis + 1 :]], 0)
        x = tf.reshape(spread, merged)
        x = x[(slice(None),) * axis + (slice(None, 1 - s),)]
    return x


@lowers("conv_transpose")
def _conv_transpose(node: Node, plan: Plan) -> Step:
    _channels_last(node)
    a = node.attrs
    if a["padding"] != "valid":
        raise TranspileError(f"internal: conv_transpose at {node.source} has implicit padding")
    x = plan.operand(node.inputs[0])
    w = plan.constant(node.inputs[1])  # (I, O/g, *k)
    bias = plan.operand(node.inputs[2], "bias") if len(node.inputs) > 2 else None
    stride, dilation, groups = tuple(a["stride"]), tuple(a["dilation"]), a["groups"]
    n, k = len(stride), tuple(w.shape[2:])
    out_ch = w.shape[1] * groups
    k_eff = [d * (kk - 1) + 1 for d, kk in zip(dilation, k, strict=True)]
    # TF's transposed conv has no dilation on CPUs without oneDNN ("Current CPU
    # implementations do not yet support dilation rates larger than 1"): dilated ones, like
    # grouped ones, run as the equivalent plain conv
    if groups == 1 and max(dilation) == 1:
        var = plan.weight(spatial_kernel(w), "kernel")  # (*k, O, I)

        def conv(env: Env) -> Any:
            xs = x(env)
            shape = tf.shape(xs)
            sizes = [(shape[1 + i] - 1) * stride[i] + k_eff[i] for i in range(n)]
            out_shape = tf.stack([shape[0], *sizes, out_ch])
            return tf.nn.conv_transpose(xs, var, out_shape, stride, "VALID", dilations=dilation)

    else:
        # the transposed conv as a plain (grouped) conv: zeros between inputs, a full border of
        # zeros, the kernel flipped with its in/out roles swapped
        kernel = transposed_as_conv_kernel(w, groups)
        opg = out_ch // groups
        # one convolution per group: TF's fused CPU kernel refuses some grouped convolutions
        kernels = [
            plan.weight(kernel[..., g * opg : (g + 1) * opg], "kernel") for g in range(groups)
        ]
        border = [[0, 0]] + [[e - 1, e - 1] for e in k_eff] + [[0, 0]]

        def conv(env: Env) -> Any:
            xs = tf.pad(_zero_insert(x(env), stride), border)
            return _convolution(xs, kernels, (1,) * n, "VALID", dilation)

    def step(env: Env) -> Any:
        y = conv(env)
        if bias is None:
            return y
        return tf.nn.bias_add(y, bias(env)) if groups == 1 else y + bias(env)  # see _conv

    return step


# -- pooling -----------------------------------------------------------------------------------


@lowers("max_pool", "avg_pool")
def _pool(node: Node, plan: Plan) -> Step:
    _channels_last(node)
    a = node.attrs
    x = plan.operand(node.inputs[0])
    kernel, stride = tuple(a["kernel"]), tuple(a["stride"])
    if node.op == "max_pool" and max(a["dilation"]) > 1:
        if a["padding"] != "valid":
            raise TranspileError(f"internal: dilated max_pool at {node.source} is not 'valid'")
        taps = [
            (slice(None), *(slice(*axis) for axis in tap))
            for tap in pool_taps(kernel, stride, tuple(a["dilation"]))
        ]

        def dilated(env: Env) -> Any:
            xs = x(env)
            return functools.reduce(tf.maximum, (xs[index] for index in taps))

        return dilated
    kind = "MAX" if node.op == "max_pool" else "AVG"
    padding = _padding(a["padding"])
    if any(s > k for s, k in zip(stride, kernel, strict=True)):  # tf.nn.pool refuses these
        raw = tf.nn.max_pool if node.op == "max_pool" else tf.nn.avg_pool
        return lambda env: raw(x(env), kernel, stride, padding)
    return lambda env: tf.nn.pool(x(env), kernel, kind, strides=stride, padding=padding)


@lowers("adaptive_avg_pool", "adaptive_max_pool")
def _adaptive_pool(node: Node, plan: Plan) -> Step:
    x = plan.operand(node.inputs[0])
    xv = node.inputs[0]
    n = xv.rank - 2
    sizes, out = xv.shape[1:-1], tuple(node.attrs["output_size"])
    reduce = tf.reduce_mean if node.op == "adaptive_avg_pool" else tf.reduce_max
    if out == (1,) * n:
        return lambda env: reduce(x(env), axis=list(range(1, n + 1)), keepdims=True)
    if None in sizes:
        raise TranspileError(f"{node.op} at {node.source} needs a static input size")
    windows = [adaptive_windows(s, o) for s, o in zip(sizes, out, strict=True)]

    def step(env: Env) -> Any:
        xs = x(env)
        for axis, axis_windows in enumerate(windows, start=1):
            parts = [
                reduce(xs[(slice(None),) * axis + (slice(lo, hi),)], axis=axis, keepdims=True)
                for lo, hi in axis_windows
            ]
            xs = tf.concat(parts, axis)
        return xs

    return step


# -- normalization and linear ------------------------------------------------------------------


def _along(arr: np.ndarray, axis: int, rank: int) -> np.ndarray:
    """A per-channel vector shaped to broadcast along ``axis`` of a rank-``rank`` tensor."""
    return np.asarray(arr).reshape([-1 if i == axis else 1 for i in range(rank)])


@lowers("batch_norm")
def _batch_norm(node: Node, plan: Plan) -> Step:
    x = plan.operand(node.inputs[0])
    mean, var, gamma, beta = (plan.constant(v).astype(np.float64) for v in node.inputs[1:])
    rank, axis = node.inputs[0].rank, node.attrs["axis"]
    scale = gamma / np.sqrt(var + node.attrs["eps"])
    s = plan.weight(_along(scale, axis, rank), "scale")
    b = plan.weight(_along(beta - mean * scale, axis, rank), "shift")
    return lambda env: x(env) * s + b


@lowers("linear")
def _linear(node: Node, plan: Plan) -> Step:
    x = plan.operand(node.inputs[0])
    w = plan.weight(plan.constant(node.inputs[1]).T, "kernel")
    bias = plan.weight(plan.constant(node.inputs[2]), "bias") if len(node.inputs) > 2 else None
    rank, out = node.inputs[0].rank, plan.constant(node.inputs[1]).shape[0]

    def step(env: Env) -> Any:
        xs = x(env)
        if rank == 2:
            y = tf.matmul(xs, w)
        else:  # rows through one matmul: reshapes are free, tensordot would transpose
            lead = tf.shape(xs)[:-1]
            y = tf.matmul(tf.reshape(xs, (-1, xs.shape[-1])), w)
            y = tf.reshape(y, tf.concat([lead, [out]], 0))
        return tf.nn.bias_add(y, bias) if bias is not None else y

    return step


def _moments_norm(xs: Any, axes: list[int], eps: float) -> Any:
    mean, var = tf.nn.moments(xs, axes=axes, keepdims=True)
    return (xs - mean) * tf.math.rsqrt(var + eps)


@lowers("layer_norm")
def _layer_norm(node: Node, plan: Plan) -> Step:
    x, xv = plan.operand(node.inputs[0]), node.inputs[0]
    axes = sorted(node.attrs["axes"])
    shape = [xv.shape[i] if i in axes else 1 for i in range(xv.rank)]
    w = plan.weight(plan.constant(node.inputs[1]).reshape(shape), "gamma")
    b = plan.weight(plan.constant(node.inputs[2]).reshape(shape), "beta")
    eps = node.attrs["eps"]
    return lambda env: _moments_norm(x(env), axes, eps) * w + b


@lowers("group_norm")
def _group_norm(node: Node, plan: Plan) -> Step:
    x, xv = plan.operand(node.inputs[0]), node.inputs[0]
    rank, axis, groups = xv.rank, node.attrs["axis"], node.attrs["groups"]
    channels = xv.shape[axis]
    w = plan.weight(_along(plan.constant(node.inputs[1]), axis, rank), "gamma")
    b = plan.weight(_along(plan.constant(node.inputs[2]), axis, rank), "beta")
    eps = node.attrs["eps"]
    # split the channel axis into (groups, channels per group); normalize over all but N, G
    axes = [i for i in range(1, rank + 1) if i != axis]

    def step(env: Env) -> Any:
        xs = x(env)
        shape = tf.shape(xs)
        split = tf.concat([shape[:axis], [groups, channels // groups], shape[axis + 1 :]], 0)
        y = tf.reshape(_moments_norm(tf.reshape(xs, split), axes, eps), shape)
        return y * w + b

    return step


@lowers("prelu")
def _prelu(node: Node, plan: Plan) -> Step:
    x, xv = plan.operand(node.inputs[0]), node.inputs[0]
    w = plan.constant(node.inputs[1]).reshape(-1)
    alpha = _along(w, node.attrs["axis"], xv.rank) if w.size > 1 else w.reshape(())
    var = plan.weight(alpha, "alpha")

    def step(env: Env) -> Any:
        xs = x(env)
        return tf.where(xs >= 0, xs, xs * var)

    return step


# -- elementwise -------------------------------------------------------------------------------


def _hardsigmoid(x: Any) -> Any:
    return tf.nn.relu6(x + 3.0) / 6.0


_UNARY: dict[str, Callable[[Any], Any]] = {
    "relu": tf.nn.relu,
    "relu6": tf.nn.relu6,
    "silu": lambda x: x * tf.sigmoid(x),  # tf.nn.silu carries a custom-gradient function
    "sigmoid": tf.sigmoid,
    "tanh": tf.tanh,
    "hardsigmoid": _hardsigmoid,
    "hardswish": lambda x: x * _hardsigmoid(x),
    "identity": tf.identity,
    "mish": lambda x: x * tf.tanh(tf.nn.softplus(x)),
    "abs": tf.abs,
    "neg": tf.negative,
    "exp": tf.exp,
    "log": tf.math.log,
    "sqrt": tf.sqrt,
    "rsqrt": tf.math.rsqrt,
    "square": tf.square,
    "reciprocal": tf.math.reciprocal,
    "erf": tf.math.erf,
    "floor": tf.floor,
    "ceil": tf.math.ceil,
    "trunc": lambda x: tf.where(x < 0, tf.math.ceil(x), tf.floor(x)),
    "round": tf.round,  # half to even, like torch.round
    "sin": tf.sin,
    "cos": tf.cos,
    "logical_not": tf.logical_not,
    "selu": tf.nn.selu,
    "log_sigmoid": tf.math.log_sigmoid,
}


@lowers(*_UNARY)
def _unary_op(node: Node, plan: Plan) -> Step:
    return _unary(node, plan, _UNARY[node.op])


@lowers("leaky_relu")
def _leaky_relu(node: Node, plan: Plan) -> Step:
    slope = float(node.attrs["negative_slope"])
    return _unary(node, plan, lambda x: tf.nn.leaky_relu(x, slope))


@lowers("gelu")
def _gelu(node: Node, plan: Plan) -> Step:
    approximate = node.attrs["approximate"] == "tanh"
    return _unary(node, plan, lambda x: tf.nn.gelu(x, approximate=approximate))


@lowers("elu")
def _elu(node: Node, plan: Plan) -> Step:
    alpha = float(node.attrs["alpha"])
    return _unary(node, plan, lambda x: tf.where(x > 0, x, alpha * tf.math.expm1(x)))


@lowers("softplus")
def _softplus(node: Node, plan: Plan) -> Step:
    beta, threshold = float(node.attrs["beta"]), float(node.attrs["threshold"])

    def fn(x: Any) -> Any:
        scaled = x * beta
        soft = tf.math.log1p(tf.exp(tf.minimum(scaled, threshold))) / beta
        return tf.where(scaled > threshold, x, soft)

    return _unary(node, plan, fn)


@lowers("clamp")
def _clamp(node: Node, plan: Plan) -> Step:
    low, high = node.attrs["min"], node.attrs["max"]

    def fn(x: Any) -> Any:
        if low is not None:
            x = tf.maximum(x, tf.cast(low, x.dtype))
        if high is not None:
            x = tf.minimum(x, tf.cast(high, x.dtype))
        return x

    return _unary(node, plan, fn)


_BINARY: dict[str, Callable[[Any, Any], Any]] = {
    "add": tf.add,
    "sub": tf.subtract,
    "mul": tf.multiply,
    "div": tf.divide,
    "pow": tf.pow,
    "maximum": tf.maximum,
    "minimum": tf.minimum,
    "remainder": tf.math.floormod,
}


def _floor_divide(a: Any, b: Any) -> Any:
    """a // b as PyTorch computes it for floats: (a - fmod(a, b)) / b, corrected and rounded."""
    mod = tf.sign(a) * tf.math.floormod(tf.abs(a), tf.abs(b))  # C's fmod, exactly
    div = (a - mod) / b
    div = tf.where((mod != 0) & ((b < 0) != (mod < 0)), div - 1, div)
    q = tf.floor(div)
    q = tf.where(div - q > 0.5, q + 1, q)
    return tf.where(b == 0, a / b, q)


_BINARY["floor_divide"] = _floor_divide


@lowers(*_BINARY)
def _binary(node: Node, plan: Plan) -> Step:
    fn, dtype = _BINARY[node.op], _tf_dtype(node.output)
    a, b = (plan.operand(v) for v in node.inputs)

    def cast(t: Any) -> Any:  # torch promotes (int / int -> float, int * 0.5 -> float)
        if isinstance(t, int | float | bool):
            return tf.constant(t, dtype)
        return t if t.dtype == dtype else tf.cast(t, dtype)

    return lambda env: fn(cast(a(env)), cast(b(env)))


@lowers("matmul")
def _matmul(node: Node, plan: Plan) -> Step:
    a, b = (plan.operand(v) for v in node.inputs)
    ra, rb = (v.rank for v in node.inputs)

    def step(env: Env) -> Any:
        x, y = a(env), b(env)
        if ra == 1:
            x = x[None]
        if rb == 1:
            y = y[:, None]
        out = tf.matmul(x, y)
        if rb == 1:
            out = out[..., 0]
        if ra == 1:
            out = out[..., 0, :] if rb != 1 else out[..., 0]
        return out

    return step


@lowers("einsum")
def _einsum(node: Node, plan: Plan) -> Step:
    ins = [plan.operand(v) for v in node.inputs]
    eq = node.attrs["equation"]
    return lambda env: tf.einsum(eq, *(f(env) for f in ins))


# -- axis-carrying -----------------------------------------------------------------------------


@lowers("cat")
def _cat(node: Node, plan: Plan) -> Step:
    ins = [plan.operand(v) for v in node.inputs]
    axis = node.attrs["axis"]
    return lambda env: tf.concat([f(env) for f in ins], axis)


def _stable_softmax(x: Any, axis: int, log: bool) -> Any:
    shifted = x - tf.reduce_max(x, axis=axis, keepdims=True)
    if log:
        return shifted - tf.math.log(tf.reduce_sum(tf.exp(shifted), axis=axis, keepdims=True))
    e = tf.exp(shifted)
    return e / tf.reduce_sum(e, axis=axis, keepdims=True)


@lowers("softmax", "log_softmax")
def _softmax(node: Node, plan: Plan) -> Step:
    axis, rank = node.attrs["axis"], node.output.rank
    log = node.op == "log_softmax"
    if axis == rank - 1:  # TF's own kernels; on another axis they would transpose around it
        return _unary(node, plan, tf.nn.log_softmax if log else tf.nn.softmax)
    return _unary(node, plan, lambda x: _stable_softmax(x, axis, log))


_REDUCE = {
    "mean": tf.reduce_mean,
    "sum": tf.reduce_sum,
    "max": tf.reduce_max,
    "min": tf.reduce_min,
}


@lowers("reduce")
def _reduce(node: Node, plan: Plan) -> Step:
    fn = _REDUCE[node.attrs["kind"]]
    axes, keep = list(node.attrs["axes"]), bool(node.attrs["keepdims"])
    return _unary(node, plan, lambda x: fn(x, axis=axes, keepdims=keep))


@lowers("arg_reduce")
def _arg_reduce(node: Node, plan: Plan) -> Step:
    fn = tf.argmax if node.attrs["kind"] == "max" else tf.argmin
    axis, keep = node.attrs["axes"][0], bool(node.attrs["keepdims"])

    def step(x: Any) -> Any:
        y = fn(x, axis=axis, output_type=tf.int64)
        return tf.expand_dims(y, axis) if keep else y

    return _unary(node, plan, step)


@lowers("broadcast_to")
def _broadcast_to(node: Node, plan: Plan) -> Step:
    x = plan.operand(node.inputs[0])
    ref = plan.operand(node.inputs[1]) if len(node.inputs) > 1 else None
    target = tuple(node.attrs["shape"])

    def step(env: Env) -> Any:
        xs = tf.convert_to_tensor(x(env))
        shape = tf.shape(xs)
        dims = [
            tf.shape(ref(env))[0] if s is None else (shape[i] if s == -1 else s)
            for i, s in enumerate(target)
        ]
        return tf.broadcast_to(xs, tf.stack(dims))

    return step


def _pad_axis(x: Any, axis: int, before: int, after: int, mode: str) -> Any:
    parts = []
    for start, stop, flip, repeats in pad_pieces(before, after, mode):
        if start is None and stop is None:
            parts.append(x)
            continue
        part = x[(slice(None),) * axis + (slice(start, stop),)]
        if flip:
            part = tf.reverse(part, [axis])
        if repeats > 1:
            part = tf.repeat(part, repeats, axis=axis)
        parts.append(part)
    return tf.concat(parts, axis)


@lowers("pad")
def _pad(node: Node, plan: Plan) -> Step:
    x = plan.operand(node.inputs[0])
    pads = [[int(b), int(e)] for b, e in node.attrs["pads"]]
    mode, value = node.attrs["mode"], node.attrs["value"]
    if mode == "constant":

        def constant(env: Env) -> Any:
            xs = x(env)
            return tf.pad(xs, pads, constant_values=tf.cast(value, xs.dtype))

        return constant
    if mode == "reflect":  # PyTorch's reflect is TF's REFLECT (edge not repeated)
        return lambda env: tf.pad(x(env), pads, mode="REFLECT")

    def step(env: Env) -> Any:
        xs = x(env)
        for axis, (before, after) in enumerate(pads):
            if before or after:
                xs = _pad_axis(xs, axis, before, after, mode)
        return xs

    return step


@lowers("slice")
def _slice(node: Node, plan: Plan) -> Step:
    x, a = plan.operand(node.inputs[0]), node.attrs
    index: list[slice] = [slice(None)] * node.inputs[0].rank
    for axis, start, stop, step in zip(a["axes"], a["starts"], a["stops"], a["steps"], strict=True):
        index[axis] = slice(start, stop, step)
    key = tuple(index)
    return lambda env: x(env)[key]


# -- resampling --------------------------------------------------------------------------------


def _resize_taps(node: Node, x: Any, xv: Any, ins: tuple, sizes: tuple) -> Step:
    """ONNX's Resize: per axis, a weighted sum of gathers (resize_taps), planned here."""
    a = node.attrs
    if None in ins:
        raise TranspileError(
            f"resize at {node.source} on a dynamic spatial size needs example_inputs with sizes"
        )
    plans = []
    for axis, (n, out) in enumerate(zip(ins, sizes, strict=True), start=1):
        index, weight = resize_taps(
            n,
            out,
            a["mode"],
            a["coord"],
            a["factors"][axis - 1],
            a["nearest_mode"],
            a["cubic_a"],
            a["exclude_outside"],
            a["antialias"],
        )
        shape = [out if i == axis else 1 for i in range(xv.rank)]
        weights = (
            None if weight is None else [weight[:, t].reshape(shape) for t in range(len(index[0]))]
        )
        plans.append((axis, index, weights))

    def step(env: Env) -> Any:
        xs = x(env)
        for axis, index, weights in plans:
            if weights is None:
                xs = tf.gather(xs, index[:, 0], axis=axis)
                continue
            xs = tf.add_n(
                [tf.gather(xs, index[:, t], axis=axis) * w for t, w in enumerate(weights)]
            )
        return xs

    return step


@lowers("resize")
def _resize(node: Node, plan: Plan) -> Step:
    _channels_last(node)
    x, xv, a = plan.operand(node.inputs[0]), node.inputs[0], node.attrs
    sizes, scales, mode = tuple(a["sizes"]), a["scales"], a["mode"]
    ins = xv.shape[1:-1]
    if a["coord"] is not None:  # ONNX's Resize semantics
        return _resize_taps(node, x, xv, ins, sizes)
    if a["mode"] not in ("nearest", "nearest-exact", "linear"):  # bicubic comes with a coord
        raise TranspileError(f"internal: resize mode {a['mode']!r} at {node.source} has no coord")
    # a 2-d resize that one TF resize kernel computes exactly: that op (TFLite RESIZE_*)
    builtins = (
        resize_builtins(ins, sizes, mode, a["align_corners"], scales) if len(ins) == 2 else ()
    )
    if builtins:
        return _builtin_resize(x, builtins[0], sizes)
    factors = [o // i if i and o % i == 0 else None for i, o in zip(ins, sizes, strict=True)]
    exact_scales = scales is None or all(
        f is not None and abs(s * f - 1.0) < 1e-12 for s, f in zip(scales, factors, strict=True)
    )
    if mode == "nearest" and None not in factors and exact_scales:

        def repeat(env: Env) -> Any:
            xs = x(env)
            for axis, f in enumerate(factors, start=1):
                if f > 1:
                    xs = tf.repeat(xs, f, axis=axis)
            return xs

        return repeat
    if None in ins:
        raise TranspileError(
            f"resize at {node.source} on a dynamic spatial size needs example_inputs with sizes"
        )
    # per axis: gather indices (and linear weights), computed here in float64 as PyTorch does
    plans = []
    for axis, (n, out) in enumerate(zip(ins, sizes, strict=True), start=1):
        scale = scales[axis - 1] if scales else None
        low, high, weight = resize_axis(n, out, mode, a["align_corners"], scale)
        if weight is not None:
            weight = weight.reshape([out if i == axis else 1 for i in range(xv.rank)])
        plans.append((axis, low, high, weight))

    def step(env: Env) -> Any:
        xs = x(env)
        for axis, low, high, weight in plans:
            if high is None:
                xs = tf.gather(xs, low, axis=axis)
            else:
                lo, hi = tf.gather(xs, low, axis=axis), tf.gather(xs, high, axis=axis)
                xs = lo + (hi - lo) * weight
        return xs

    return step


def _builtin_resize(x: Step, kind: str, sizes: tuple[int, ...]) -> Step:
    """One ResizeBilinear / ResizeNearestNeighbor with the flags of ``kind`` (see
    _planning.resize_builtins)."""
    size = list(sizes)
    if kind.startswith("bilinear"):
        corners = kind == "bilinear_align_corners"
        return lambda env: tf.raw_ops.ResizeBilinear(
            images=x(env), size=size, align_corners=corners, half_pixel_centers=not corners
        )
    half = kind == "nearest"
    return lambda env: tf.raw_ops.ResizeNearestNeighbor(
        images=x(env), size=size, align_corners=False, half_pixel_centers=half
    )


# -- shape -------------------------------------------------------------------------------------


@lowers("reshape")
def _reshape(node: Node, plan: Plan) -> Step:
    from transpiler.ops import reshape_sources, reshape_target

    x, shape, sources = plan.operand(node.inputs[0]), node.attrs["shape"], reshape_sources(node)
    if sources is None:
        return lambda env: tf.reshape(x(env), list(shape))

    def step(env: Env) -> Any:
        v = x(env)
        return tf.reshape(v, tf.stack(reshape_target(shape, sources, tf.shape(v))))

    return step


def _rnn_cell(mode: str, hidden: int, w_hh: Any, b_hh: Any) -> Callable[[Any, Any], Any]:
    """One time step in PyTorch's equations; ``gi`` is the input's projection (with b_ih)."""

    def cell(state: Any, gi: Any) -> Any:
        h = state[0]
        gh = tf.matmul(h, w_hh) + (b_hh if b_hh is not None else 0.0)
        if mode == "lstm":
            i, f, g, o = tf.split(gi + gh, 4, axis=-1)
            c = tf.sigmoid(f) * state[1] + tf.sigmoid(i) * tf.tanh(g)
            return (tf.sigmoid(o) * tf.tanh(c), c)
        if mode == "gru":
            ir, iz, in_ = tf.split(gi, 3, axis=-1)
            hr, hz, hn = tf.split(gh, 3, axis=-1)
            r, z = tf.sigmoid(ir + hr), tf.sigmoid(iz + hz)
            n = tf.tanh(in_ + r * hn)
            return ((1.0 - z) * n + z * h,)
        act = tf.tanh if mode == "rnn_tanh" else tf.nn.relu
        return (act(gi + gh),)

    return cell


_COMPARE: dict[str, Callable[[Any, Any], Any]] = {
    "equal": tf.equal,
    "not_equal": tf.not_equal,
    "less": tf.less,
    "less_equal": tf.less_equal,
    "greater": tf.greater,
    "greater_equal": tf.greater_equal,
    "logical_and": tf.logical_and,
    "logical_or": tf.logical_or,
}


def _common_dtype(values: list[Value]) -> tf.DType:
    """torch's promotion for comparison operands: float if any is, else the widest integer."""
    names = [v.type.dtype for v in values]
    if any(n.startswith("float") for n in names):
        return tf.float32
    for n in ("int64", "int32", "bool"):
        if n in names:
            return tf.as_dtype(n)
    return tf.as_dtype(names[0])


@lowers(*_COMPARE)
def _compare(node: Node, plan: Plan) -> Step:
    fn = _COMPARE[node.op]
    dtype = tf.bool if node.op.startswith("logical") else _common_dtype(node.inputs)
    a, b = (plan.operand(v) for v in node.inputs)

    def cast(t: Any) -> Any:
        return tf.cast(t, dtype)

    return lambda env: fn(cast(a(env)), cast(b(env)))


@lowers("cast")
def _cast(node: Node, plan: Plan) -> Step:
    x, dtype = plan.operand(node.inputs[0]), tf.as_dtype(node.attrs["dtype"])
    return lambda env: tf.cast(x(env), dtype)


@lowers("where")
def _where(node: Node, plan: Plan) -> Step:
    c, x, y = (plan.operand(v) for v in node.inputs)
    dtype = _tf_dtype(node.output)
    return lambda env: tf.where(
        tf.cast(c(env), tf.bool), tf.cast(x(env), dtype), tf.cast(y(env), dtype)
    )


@lowers("embedding")
def _embedding(node: Node, plan: Plan) -> Step:
    ids, table = plan.operand(node.inputs[0]), plan.weight(plan.constant(node.inputs[1]), "table")
    return lambda env: tf.gather(table, ids(env))


@lowers("take")
def _take(node: Node, plan: Plan) -> Step:
    x, index, axis = plan.operand(node.inputs[0]), plan.operand(node.inputs[1]), node.attrs["axis"]
    return lambda env: tf.gather(x(env), index(env), axis=axis)


# the functions grid_sample_taps calls, over tf (keras.ops in the Keras backend)
_TF_OPS = SimpleNamespace(
    abs=tf.abs,
    floor=tf.floor,
    minimum=tf.minimum,
    clip=tf.clip_by_value,
    round=tf.round,
    logical_and=tf.logical_and,
    cast=tf.cast,
    where=tf.where,
)


@lowers("grid_sample")
def _grid_sample(node: Node, plan: Plan) -> Step:
    x, grid = (plan.operand(v) for v in node.inputs)
    a = node.attrs
    c, h, w = node.inputs[0].shape[1:]
    ho, wo = node.inputs[1].shape[1:3]

    def step(env: Env) -> Any:
        flat = tf.reshape(x(env), (-1, c, h * w))
        taps = grid_sample_taps(
            _TF_OPS, grid(env), (h, w), a["mode"], a["padding_mode"], a["align_corners"]
        )
        out = 0.0
        for index, weight in taps:
            values = tf.gather(flat, tf.reshape(index, (-1, ho * wo)), axis=2, batch_dims=1)
            out = out + values * tf.reshape(weight, (-1, 1, ho * wo))
        return tf.reshape(out, (-1, c, ho, wo))

    return step


# -- sequence and transformer models (issue 12, s2-hf-text) --
@lowers("take_along_axis")
def _take_along_axis(node: Node, plan: Plan) -> Step:
    x, index, axis = plan.operand(node.inputs[0]), plan.operand(node.inputs[1]), node.attrs["axis"]
    return lambda env: tf.experimental.numpy.take_along_axis(
        x(env), tf.cast(index(env), tf.int32), axis=axis
    )


@lowers("triangle")
def _triangle(node: Node, plan: Plan) -> Step:
    x, upper, k = plan.operand(node.inputs[0]), node.attrs["upper"], node.attrs["diagonal"]

    def step(env: Env) -> Any:
        v = x(env)
        shape = tf.shape(v)
        offset = tf.range(shape[-1])[None, :] - tf.range(shape[-2])[:, None]
        keep = offset >= k if upper else offset <= k
        return tf.where(keep, v, tf.zeros_like(v))

    return step


@lowers("topk")
def _topk(node: Node, plan: Plan) -> Step:
    x, a = plan.operand(node.inputs[0]), node.attrs
    rank, axis, k, largest = node.inputs[0].rank, a["axis"], a["k"], a["largest"]
    perm = [d for d in range(rank) if d != axis] + [axis]
    back = [perm.index(d) for d in range(rank)]

    def step(env: Env) -> Any:
        v = x(env)
        v = v if axis == rank - 1 else tf.transpose(v, perm)
        values, indices = tf.math.top_k(v if largest else -v, k)
        values = values if largest else -values
        if axis != rank - 1:
            values, indices = tf.transpose(values, back), tf.transpose(indices, back)
        return values, tf.cast(indices, tf.int64)

    return step


@lowers("cumsum")
def _cumsum(node: Node, plan: Plan) -> Step:
    x, axis = plan.operand(node.inputs[0]), node.attrs["axis"]
    return lambda env: tf.cumsum(x(env), axis=axis)


@lowers("flip")
def _flip(node: Node, plan: Plan) -> Step:
    x, axes = plan.operand(node.inputs[0]), list(node.attrs["axes"])
    return lambda env: tf.reverse(x(env), axes)


@lowers("roll")
def _roll(node: Node, plan: Plan) -> Step:
    """Two slices concatenated per axis of known size (TFLite has no builtin roll)."""
    x, a, shape = plan.operand(node.inputs[0]), node.attrs, node.inputs[0].shape

    def step(env: Env) -> Any:
        xs = x(env)
        for shift, axis in zip(a["shifts"], a["axes"], strict=True):
            n = shape[axis]
            if n is None:
                xs = tf.roll(xs, shift, axis)
                continue
            cut = n - shift % n
            if cut != n:
                head = (slice(None),) * axis
                xs = tf.concat([xs[head + (slice(cut, None),)], xs[head + (slice(0, cut),)]], axis)
        return xs

    return step


@lowers("rnn")
def _rnn(node: Node, plan: Plan) -> Step:
    """A while loop over time per direction (any sequence length; TFLite's builtin WHILE, see
    scan_over_time)."""
    from transpiler.interpreter import rnn_layout, rnn_split_inputs

    from .._tf_runtime import scan_over_time

    mode, hidden = node.attrs["mode"], node.attrs["hidden_size"]
    _, _, lstm = rnn_layout(node)
    x_in, weights, init = rnn_split_inputs(node, node.inputs)
    x = plan.operand(x_in)
    dirs = []
    for k, w in enumerate(weights):
        arrs = [plan.constant(v) for v in w]
        w_ih = plan.weight(np.ascontiguousarray(arrs[0].T), f"w_ih{k}")
        w_hh = plan.weight(np.ascontiguousarray(arrs[1].T), f"w_hh{k}")
        b_ih = plan.weight(arrs[2], f"b_ih{k}") if len(arrs) > 2 else None
        b_hh = plan.weight(arrs[3], f"b_hh{k}") if len(arrs) > 2 else None
        states = [plan.operand(v) for v in init[k]]
        dirs.append((w_ih, b_ih, _rnn_cell(mode, hidden, w_hh, b_hh), states))

    def step(env: Env) -> Any:
        xs = x(env)  # (N, T, I)
        n, t = tf.shape(xs)[0], tf.shape(xs)[1]
        flat = tf.reshape(xs, [-1, xs.shape[-1]])
        seqs, finals = [], []
        for k, (w_ih, b_ih, cell, states) in enumerate(dirs):
            gi = tf.matmul(flat, w_ih) + (b_ih if b_ih is not None else 0.0)
            gi = tf.reshape(gi, tf.stack([n, t, gi.shape[-1]]))
            zeros = tf.zeros(tf.stack([n, hidden]), xs.dtype)
            start = [s(env) for s in states] or ([zeros, zeros] if lstm else [zeros])

            def one(g: Any, carried: list[Any], cell: Any = cell) -> tuple[Any, list[Any]]:
                new = cell(tuple(carried), g)
                return new[0], list(new)

            _, seq, final = scan_over_time(one, gi, start, reverse=k == 1)
            seqs.append(tf.reverse(seq, [1]) if k == 1 else seq)  # back to input order
            finals.extend(final)
        seq = seqs[0] if len(seqs) == 1 else tf.concat(seqs, -1)
        return (seq, *finals)

    return step


@lowers("transpose")
def _transpose(node: Node, plan: Plan) -> Step:
    x, perm = plan.operand(node.inputs[0]), list(node.attrs["perm"])
    return lambda env: tf.transpose(x(env), perm)
