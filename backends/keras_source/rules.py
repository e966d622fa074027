"""IR op -> Keras layer call: one small rule per op (``@emits``), formatting left to the emitter.

Rules see the graph after the layout pass (physical NHWC, explicit padding). Weight layout
conversion happens here, in one place: conv OIHW -> HWIO, depthwise (C·m, 1, kh, kw) ->
(kh, kw, C, m), linear (out, in) -> (in, out).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from transpiler.backends._layouts import (
    adaptive_windows,
    spatial_kernel,
    transposed_as_conv_kernel,
)
from transpiler.backends._planning import resize_builtins

from transpiler.errors import TranspileError
from transpiler.ir import Graph, Node, Value
from transpiler.ops import OpImplTable, reshape_sources

__all__ = ["KerasCall", "RULES", "emits", "Literal"]


@dataclass(frozen=True)
class Literal:
    """Source text emitted as is (e.g. ``float("-inf")``)."""

    text: str


@dataclass
class KerasCall:
    ctor: str  # "layers.Conv2D" or the name of a custom layer in custom_layers.SOURCES
    inputs: list[Value]
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    weights: list[np.ndarray] = field(default_factory=list)
    list_input: bool = False  # call with a list of tensors (Concatenate, Add, ...)
    suffix: str = ""  # layer-name suffix when one node becomes several layers
    # the last `state_inputs` inputs go to the call's `initial_state=[...]` (recurrent layers)
    state_inputs: int = 0
    # a layer with several outputs (the node's outputs, in order): name suffixes of outputs 1..
    output_suffixes: tuple[str, ...] = ()

    @property
    def custom(self) -> str | None:
        return None if self.ctor.startswith("layers.") else self.ctor


Rule = Callable[[Node, Graph], "list[KerasCall]"]
RULES: OpImplTable[Rule] = OpImplTable("the Keras backend")
emits = RULES.register


def _non_default(**pairs: tuple[Any, Any]) -> dict[str, Any]:
    """Keyword arguments whose value differs from the Keras default (value, default)."""
    return {k: v for k, (v, default) in pairs.items() if v != default}


def _f32(a: np.ndarray) -> np.ndarray:
    """``a`` as float32, a view where it already is (a transposed weight stays a view: the
    Keras variable's assignment is its one copy)."""
    return np.asarray(a, dtype=np.float32)


def _check_channels_last(node: Node) -> None:
    if node.attrs["data_format"] != "channels_last":
        raise TranspileError(f"internal: {node.op} at {node.source} is not channels-last")


@emits("conv")
def _conv(node: Node, graph: Graph) -> list[KerasCall]:
    _check_channels_last(node)
    if not all(graph.is_constant(v) for v in node.inputs[1:]):
        return _dynamic_conv(node, graph)
    x, w = node.inputs[0], graph.constant(node.inputs[1])
    bias = graph.constant(node.inputs[2]) if len(node.inputs) > 2 else None
    a, n = node.attrs, w.ndim - 2
    out_ch, in_per_group, k = w.shape[0], w.shape[1], tuple(w.shape[2:])
    groups, ones = a["groups"], (1,) * n
    stride, dilation = tuple(a["stride"]), tuple(a["dilation"])
    split = max(stride) > 1 and max(dilation) > 1  # TF cannot stride a dilated conv
    common = _non_default(
        strides=(ones if split else stride, ones),
        padding=(a["padding"], "valid"),
        dilation_rate=(dilation, ones),
        use_bias=(bias is not None, True),
    )
    # TF's depthwise kernel takes equal strides only: other strides run as a grouped conv
    depthwise = in_per_group == 1 and groups == x.shape[-1] and len(set(stride)) == 1
    if groups > 1 and depthwise and n in (1, 2):
        mult = out_ch // groups
        kernel = w.reshape(groups, mult, *k).transpose(*range(2, 2 + n), 0, 1)
        kwargs = {**_non_default(depth_multiplier=(mult, 1)), **common}
        call = KerasCall(f"layers.DepthwiseConv{n}D", [x], (k,), kwargs)
    else:
        kernel = spatial_kernel(w)
        kwargs = {**common, **_non_default(groups=(groups, 1))}
        call = KerasCall(f"layers.Conv{n}D", [x], (out_ch, k), kwargs)
    call.weights = [_f32(kernel)] + ([_f32(bias)] if bias is not None else [])
    if not split:
        return [call]
    sub = KerasCall("Subsample", [node.output], (), {"strides": stride}, suffix="stride")
    return [call, sub]


def _dynamic_conv(node: Node, graph: Graph) -> list[KerasCall]:
    """A kernel computed in forward(): the convolution takes it as a second input."""
    x, w = node.inputs[0], node.inputs[1]
    a, n = node.attrs, w.rank - 2
    stride, dilation = tuple(a["stride"]), tuple(a["dilation"])
    split = max(stride) > 1 and max(dilation) > 1
    kwargs = {
        "strides": (1,) * n if split else stride,
        "padding": a["padding"],
        "dilation_rate": dilation,
    }
    calls = [KerasCall("DynamicConv", [x, w], (), kwargs, list_input=True)]
    if split:
        calls.append(
            KerasCall("Subsample", [node.output], (), {"strides": stride}, suffix="stride")
        )
    if len(node.inputs) > 2:
        bias = node.inputs[2]
        if graph.is_constant(bias):
            arr = graph.constant(bias)
            call = KerasCall(
                "ConstantOperand", [node.output], ("add", tuple(arr.shape)), {}, suffix="bias"
            )
            call.weights = [_f32(arr)]
        else:
            call = KerasCall(
                "Binary", [node.output, bias], ("add",), {}, list_input=True, suffix="bias"
            )
        calls.append(call)
    return calls


@emits("conv_per_sample")
def _conv_per_sample(node: Node, graph: Graph) -> list[KerasCall]:
    _check_channels_last(node)
    a = node.attrs
    kwargs = {"strides": tuple(a["stride"]), "dilation_rate": tuple(a["dilation"])}
    return [KerasCall("PerSampleConv", list(node.inputs), (), kwargs, list_input=True)]


@emits("conv_transpose")
def _conv_transpose(node: Node, graph: Graph) -> list[KerasCall]:
    _check_channels_last(node)
    if node.attrs["padding"] != "valid":
        raise TranspileError(f"internal: conv_transpose at {node.source} has implicit padding")
    if max(node.attrs["dilation"]) > 1:
        return _dilated_conv_transpose(node, graph)
    x, w = node.inputs[0], graph.constant(node.inputs[1])
    bias = graph.constant(node.inputs[2]) if len(node.inputs) > 2 else None
    n, groups, stride = w.ndim - 2, node.attrs["groups"], tuple(node.attrs["stride"])
    k, out_ch = tuple(w.shape[2:]), w.shape[1] * groups
    kwargs = _non_default(strides=(stride, (1,) * n), use_bias=(bias is not None, True))
    if groups == 1:
        call = KerasCall(f"layers.Conv{n}DTranspose", [x], (out_ch, k), kwargs)
    else:  # Keras' transposed convs have no groups: a small layer loops over them
        call = KerasCall("GroupedConvTranspose", [x], (out_ch, k), {**kwargs, "groups": groups})
    call.weights = [_f32(spatial_kernel(w))] + ([_f32(bias)] if bias is not None else [])
    # Keras sizes a 'valid' transposed conv n*s + max(k - s, 0), PyTorch (n-1)*s + k: when the
    # kernel is shorter than the stride, drop Keras' extra zeros
    extra = [s_ - kk for s_, kk in zip(stride, k, strict=True)]
    if any(e > 0 for e in extra):
        spec = tuple((i + 1, 0, -e, 1) for i, e in enumerate(extra) if e > 0)
        return [call, _slice_call(node.output, spec, suffix="crop")]
    return [call]


def _dilated_conv_transpose(node: Node, graph: Graph) -> list[KerasCall]:
    """A dilated transposed conv as the plain conv that computes it: stride - 1 zeros between
    inputs, a border of k' - 1 zeros (k' = d(k-1)+1), the kernel flipped with in/out swapped.
    (TF's transposed conv has no dilation on CPUs without oneDNN, and none with strides.)"""
    x, w = node.inputs[0], graph.constant(node.inputs[1])
    bias = graph.constant(node.inputs[2]) if len(node.inputs) > 2 else None
    a, n = node.attrs, w.ndim - 2
    k, groups = tuple(w.shape[2:]), a["groups"]
    stride, dilation = tuple(a["stride"]), tuple(a["dilation"])
    calls = []
    if max(stride) > 1:
        if None in x.shape[1:-1]:
            raise TranspileError(
                f"strided, dilated conv_transpose at {node.source} needs static spatial sizes"
            )
        calls.append(KerasCall("ZeroInsert", [x], (stride,), {}, suffix="zeros"))
        x = node.output  # the emitter chains a node's calls
    border = tuple((d * (kk - 1), d * (kk - 1)) for d, kk in zip(dilation, k, strict=True))
    padding = border[0] if n == 1 else border
    calls.append(KerasCall(f"layers.ZeroPadding{n}D", [x], (), {"padding": padding}, suffix="pad"))
    kwargs = _non_default(
        dilation_rate=(dilation, (1,) * n),
        groups=(groups, 1),
        use_bias=(bias is not None, True),
    )
    call = KerasCall(f"layers.Conv{n}D", [node.output], (w.shape[1] * groups, k), kwargs)
    call.weights = [_f32(transposed_as_conv_kernel(w, groups))]
    call.weights += [_f32(bias)] if bias is not None else []
    return [*calls, call]


@emits("linear")
def _linear(node: Node, graph: Graph) -> list[KerasCall]:
    w = graph.constant(node.inputs[1])
    bias = graph.constant(node.inputs[2]) if len(node.inputs) > 2 else None
    x = node.inputs[0]
    kwargs = _non_default(use_bias=(bias is not None, True))
    mid = x.shape[1:-1]
    if x.rank <= 2 or x.shape[0] is not None or None in mid:
        call = KerasCall("layers.Dense", [x], (w.shape[0],), kwargs)
        call.weights = [_f32(w.T)] + ([_f32(bias)] if bias is not None else [])
        return [call]
    # Keras' Dense on a rank > 2 input goes through tensordot, which adds a Transpose op: one
    # Linear layer folds the leading axes into rows around its matmul instead (free reshapes).
    call = KerasCall("Linear", [x], (), {"units": w.shape[0], **kwargs})
    call.weights = [_f32(w.T)] + ([_f32(bias)] if bias is not None else [])
    return [call]


@emits("batch_norm")
def _batch_norm(node: Node, graph: Graph) -> list[KerasCall]:
    mean, var, gamma, beta = (graph.constant(v) for v in node.inputs[1:])
    axis = node.attrs["axis"]
    kwargs = {
        "axis": -1 if axis == node.inputs[0].rank - 1 else axis,
        "epsilon": node.attrs["eps"],
        "momentum": round(1.0 - node.attrs["momentum"], 6),  # torch 0.1 == Keras 0.9
    }
    call = KerasCall("layers.BatchNormalization", [node.inputs[0]], (), kwargs)
    call.weights = [_f32(gamma), _f32(beta), _f32(mean), _f32(var)]
    return [call]


@emits("max_pool", "avg_pool")
def _pool(node: Node, graph: Graph) -> list[KerasCall]:
    _check_channels_last(node)
    a, x = node.attrs, node.inputs[0]
    n = x.rank - 2
    kernel, stride = tuple(a["kernel"]), tuple(a["stride"])
    if node.op == "max_pool" and max(a["dilation"]) > 1:
        if a["padding"] != "valid":
            raise TranspileError(f"internal: dilated max_pool at {node.source} is not 'valid'")
        kwargs = {"strides": stride, "dilation": tuple(a["dilation"])}
        return [KerasCall("DilatedMaxPool", [x], (kernel,), kwargs)]
    ctor = "layers.MaxPooling" if node.op == "max_pool" else "layers.AveragePooling"
    kwargs = {"strides": stride, **_non_default(padding=(a["padding"], "valid"))}
    return [KerasCall(f"{ctor}{n}D", [x], (kernel,), kwargs)]


@emits("adaptive_avg_pool", "adaptive_max_pool")
def _adaptive_pool(node: Node, graph: Graph) -> list[KerasCall]:
    x = node.inputs[0]
    n = x.rank - 2
    sizes, out = x.shape[1:-1], tuple(node.attrs["output_size"])
    kind = "Average" if node.op == "adaptive_avg_pool" else "Max"
    if out == (1,) * n:
        return [KerasCall(f"layers.Global{kind}Pooling{n}D", [x], (), {"keepdims": True})]
    if None in sizes:
        raise TranspileError(f"{node.op} at {node.source} needs a static input size")
    if all(s % o == 0 for s, o in zip(sizes, out, strict=True)):
        k = tuple(s // o for s, o in zip(sizes, out, strict=True))
        return [KerasCall(f"layers.{kind}Pooling{n}D", [x], (k,), {"strides": k})]
    windows = [adaptive_windows(s, o) for s, o in zip(sizes, out, strict=True)]
    reduce = "mean" if node.op == "adaptive_avg_pool" else "max"
    return [KerasCall("AdaptivePool", [x], (), {"windows": windows, "reduce": reduce})]


@emits("slice")
def _slice(node: Node, graph: Graph) -> list[KerasCall]:
    a = node.attrs
    spec = tuple(zip(a["axes"], a["starts"], a["stops"], a["steps"], strict=True))
    if a["ref_stops"] is None:
        return [_slice_call(node.inputs[0], spec)]
    # stops read off the second input's runtime sizes
    kwargs = {
        "axis": tuple(a["axes"]),
        "start": tuple(a["starts"]),
        "stop": tuple(a["stops"]),
        "step": tuple(a["steps"]),
        "ref_stop": tuple(a["ref_stops"]),
    }
    return [KerasCall("SliceTo", list(node.inputs), (), kwargs, list_input=True)]


def _slice_call(x: Value, spec: tuple, suffix: str = "") -> KerasCall:
    """Slice(axis=3, start=0, stop=16) for one axis; tuples (one entry per axis) for several."""
    axes, starts, stops, steps = (tuple(col) for col in zip(*spec, strict=True))
    if len(spec) > 1:
        kwargs = {"axis": axes, "start": starts, "stop": stops, "step": steps}
    else:
        kwargs = {"axis": axes[0], "start": starts[0]}
        kwargs |= _non_default(stop=(stops[0], None), step=(steps[0], 1))
    return KerasCall("Slice", [x], (), kwargs, suffix=suffix)


_ACTIVATIONS: dict[str, tuple[str, tuple, dict]] = {
    "relu": ("layers.ReLU", (), {}),
    "relu6": ("layers.ReLU", (), {"max_value": 6.0}),
    "silu": ("layers.Activation", ("silu",), {}),
    "sigmoid": ("layers.Activation", ("sigmoid",), {}),
    "tanh": ("layers.Activation", ("tanh",), {}),
    "hardswish": ("HardSwish", (), {}),
    "hardsigmoid": ("HardSigmoid", (), {}),
    "identity": ("layers.Identity", (), {}),
    "mish": ("layers.Activation", ("mish",), {}),
    "selu": ("layers.Activation", ("selu",), {}),
}


@emits("elu")
def _elu(node: Node, graph: Graph) -> list[KerasCall]:
    return [KerasCall("layers.ELU", [node.inputs[0]], (), {"alpha": float(node.attrs["alpha"])})]


@emits("softplus")
def _softplus(node: Node, graph: Graph) -> list[KerasCall]:
    a = node.attrs
    kwargs = {"beta": float(a["beta"]), "threshold": float(a["threshold"])}
    return [KerasCall("Softplus", [node.inputs[0]], (), kwargs)]


@emits("clamp")
def _clamp(node: Node, graph: Graph) -> list[KerasCall]:
    a = node.attrs
    return [KerasCall("Clamp", [node.inputs[0]], (a["min"], a["max"]), {})]


_UNARY_OPS = {
    "abs": "absolute",
    "neg": "negative",
    "exp": "exp",
    "log": "log",
    "sqrt": "sqrt",
    "rsqrt": "rsqrt",
    "square": "square",
    "reciprocal": "reciprocal",
    "erf": "erf",
    "floor": "floor",
    "ceil": "ceil",
    "trunc": "trunc",
    "round": "round",
    "sin": "sin",
    "cos": "cos",
    "logical_not": "logical_not",
    "log_sigmoid": "log_sigmoid",
}


@emits(*_UNARY_OPS)
def _unary(node: Node, graph: Graph) -> list[KerasCall]:
    return [KerasCall("Unary", [node.inputs[0]], (_UNARY_OPS[node.op],), {})]


@emits(*_ACTIVATIONS)
def _activation(node: Node, graph: Graph) -> list[KerasCall]:
    ctor, args, kwargs = _ACTIVATIONS[node.op]
    return [KerasCall(ctor, [node.inputs[0]], args, dict(kwargs))]


@emits("leaky_relu")
def _leaky_relu(node: Node, graph: Graph) -> list[KerasCall]:
    slope = float(node.attrs["negative_slope"])
    return [KerasCall("layers.LeakyReLU", [node.inputs[0]], (), {"negative_slope": slope})]


@emits("gelu")
def _gelu(node: Node, graph: Graph) -> list[KerasCall]:
    approximate = node.attrs["approximate"] == "tanh"
    return [KerasCall("Gelu", [node.inputs[0]], (), {"approximate": approximate})]


_BINARY = {
    "add": "add",
    "sub": "subtract",
    "mul": "multiply",
    "div": "divide",
    "pow": "power",
    "maximum": "maximum",
    "minimum": "minimum",
    "matmul": "matmul",
    "floor_divide": "floor_divide",  # the FloorDivide layer: PyTorch's rounding, not ops'
    "equal": "equal",
    "not_equal": "not_equal",
    "less": "less",
    "less_equal": "less_equal",
    "greater": "greater",
    "greater_equal": "greater_equal",
    "logical_and": "logical_and",
    "logical_or": "logical_or",
    "remainder": "mod",
}
_MERGE = {
    "add": "layers.Add",
    "sub": "layers.Subtract",
    "mul": "layers.Multiply",
    "div": "Divide",
    "maximum": "layers.Maximum",
    "minimum": "layers.Minimum",
}


@emits(*_BINARY)
def _binary(node: Node, graph: Graph) -> list[KerasCall]:
    a, b = node.inputs
    const_a, const_b = graph.is_constant(a), graph.is_constant(b)
    if node.op == "floor_divide":
        return [_floor_divide(node, graph)]
    if not (const_a or const_b):
        # Keras' merge layers align a lower-rank input with the batch axis, and layers.Add on
        # TensorFlow may read a broadcast operand as a bias: only for operands of equal shape
        if node.op in _MERGE and a.shape == b.shape:
            return [KerasCall(_MERGE[node.op], [a, b], (), {}, list_input=True)]
        return [KerasCall("Binary", [a, b], (_BINARY[node.op],), {}, list_input=True)]
    if const_a and const_b:
        raise TranspileError(f"internal: {node.op} of two constants at {node.source}")
    x, c = (b, a) if const_a else (a, b)
    arr = graph.constant(c)
    fn = _BINARY[node.op]
    if arr.ndim == 0:
        value = arr.item()
        value = float(value) if x.type.is_float else value
        kwargs = {"reverse": True} if const_a else {}
        return [KerasCall("Scalar", [x], (fn, value), kwargs)]
    kwargs = {"reverse": True} if const_a else {}
    # Stored as float32. An integer or boolean constant meeting an integer/bool tensor is cast
    # back in the layer; next to a float tensor it promotes to float, as in PyTorch.
    if arr.dtype.kind != "f" and not x.type.is_float:
        kwargs["cast"] = arr.dtype.name
    call = KerasCall("ConstantOperand", [x], (fn, tuple(arr.shape)), kwargs)
    call.weights = [_f32(arr)]
    return [call]


def _floor_divide(node: Node, graph: Graph) -> KerasCall:
    a, b = node.inputs
    if not (graph.is_constant(a) or graph.is_constant(b)):
        return KerasCall("FloorDivide", [a, b], (), {}, list_input=True)
    reverse = graph.is_constant(a)
    x, c = (b, a) if reverse else (a, b)
    arr = graph.constant(c)
    kwargs = {"reverse": True} if reverse else {}
    if arr.ndim == 0:
        return KerasCall("FloorDivide", [x], (), {"value": float(arr.item()), **kwargs})
    call = KerasCall("FloorDivide", [x], (), {"shape": tuple(arr.shape), **kwargs})
    call.weights = [_f32(arr)]
    return call


@emits("cat")
def _cat(node: Node, graph: Graph) -> list[KerasCall]:
    # a constant operand is a Constant layer of its own (static) shape: right only where the
    # result's shape is static too (a static batch); with a dynamic batch it would need a
    # broadcast over the batch first
    if None in node.output.shape and any(graph.is_constant(v) for v in node.inputs):
        raise TranspileError(f"cat with a constant operand at {node.source} is not supported yet")
    axis = node.attrs["axis"]
    axis = -1 if axis == node.output.rank - 1 else axis
    return [KerasCall("layers.Concatenate", list(node.inputs), (), {"axis": axis}, list_input=True)]


@emits("softmax")
def _softmax(node: Node, graph: Graph) -> list[KerasCall]:
    axis = node.attrs["axis"]
    if axis == node.output.rank - 1:
        return [KerasCall("layers.Softmax", [node.inputs[0]], (), {"axis": -1})]
    # TF's softmax moves a non-last axis to the end with two Transposes; this one reduces in place
    return [KerasCall("SoftmaxOnAxis", [node.inputs[0]], (), {"axis": axis})]


@emits("reduce")
def _reduce(node: Node, graph: Graph) -> list[KerasCall]:
    x, axes, keep = node.inputs[0], tuple(node.attrs["axes"]), bool(node.attrs["keepdims"])
    kind = node.attrs["kind"]
    spatial = tuple(range(1, x.rank - 1))
    if kind in ("mean", "max") and 3 <= x.rank <= 5 and axes == spatial:
        pool = "Average" if kind == "mean" else "Max"
        return [KerasCall(f"layers.Global{pool}Pooling{x.rank - 2}D", [x], (), {"keepdims": keep})]
    return [KerasCall("Reduce", [x], (kind, axes), {"keepdims": keep})]


@emits("arg_reduce")
def _arg_reduce(node: Node, graph: Graph) -> list[KerasCall]:
    a = node.attrs
    kwargs = {"keepdims": bool(a["keepdims"])}
    return [KerasCall("ArgReduce", [node.inputs[0]], (a["kind"], a["axes"][0]), kwargs)]


@emits("log_softmax")
def _log_softmax(node: Node, graph: Graph) -> list[KerasCall]:
    return [KerasCall("LogSoftmax", [node.inputs[0]], (), {"axis": node.attrs["axis"]})]


@emits("layer_norm")
def _layer_norm(node: Node, graph: Graph) -> list[KerasCall]:
    x, a = node.inputs[0], node.attrs
    axes = tuple(a["axes"])
    axis = -1 if axes == (x.rank - 1,) else list(axes)
    kwargs = {"axis": axis, "epsilon": a["eps"]}
    # LayerNorm: Keras' LayerNormalization (same weights), in PyTorch's order of operations
    call = KerasCall("LayerNorm", [x], (), kwargs)
    call.weights = [_f32(graph.constant(node.inputs[1])), _f32(graph.constant(node.inputs[2]))]
    return [call]


@emits("group_norm")
def _group_norm(node: Node, graph: Graph) -> list[KerasCall]:
    x, a = node.inputs[0], node.attrs
    axis = -1 if a["axis"] == x.rank - 1 else a["axis"]
    kwargs = {"groups": a["groups"], "axis": axis, "epsilon": a["eps"]}
    call = KerasCall("layers.GroupNormalization", [x], (), kwargs)
    call.weights = [_f32(graph.constant(node.inputs[1])), _f32(graph.constant(node.inputs[2]))]
    return [call]


@emits("prelu")
def _prelu(node: Node, graph: Graph) -> list[KerasCall]:
    x, w = node.inputs[0], graph.constant(node.inputs[1]).reshape(-1)
    axis = node.attrs["axis"] if w.size > 1 else None
    shared = [a for a in range(1, x.rank) if a != axis]
    alpha_shape = [x.shape[a] if a == axis else 1 for a in range(1, x.rank)]
    kwargs = {"shared_axes": shared} if shared else {}
    call = KerasCall("layers.PReLU", [x], (), kwargs)
    call.weights = [
        _f32(np.broadcast_to(w.reshape(-1 if axis else 1), (w.size,)).reshape(alpha_shape))
    ]
    return [call]


@emits("broadcast_to")
def _broadcast_to(node: Node, graph: Graph) -> list[KerasCall]:
    ref_axes = node.attrs["ref_axes"]
    if ref_axes is not None:  # sizes read off the second input's axes
        args = (tuple(node.attrs["shape"]), tuple(ref_axes))
        return [KerasCall("BroadcastLike", list(node.inputs), args, {}, list_input=True)]
    return [
        KerasCall(
            "BroadcastTo",
            list(node.inputs),
            (tuple(node.attrs["shape"]),),
            {},
            list_input=len(node.inputs) > 1,
        )
    ]


@emits("matmul", "einsum")
def _matmul(node: Node, graph: Graph) -> list[KerasCall]:
    consts = [graph.is_constant(v) for v in node.inputs]
    if node.op == "matmul" and any(consts):
        return _binary(node, graph)
    if any(consts):
        raise TranspileError(
            f"einsum with a constant operand at {node.source} is not supported yet"
        )
    if node.op == "matmul":
        return [KerasCall("MatMul", list(node.inputs), (), {}, list_input=True)]
    eq = node.attrs["equation"]
    return [KerasCall("Einsum", list(node.inputs), (eq,), {}, list_input=True)]


@emits("resize")
def _resize(node: Node, graph: Graph) -> list[KerasCall]:
    _check_channels_last(node)
    x, a = node.inputs[0], node.attrs
    n = x.rank - 2
    sizes, scales = tuple(a["sizes"]), a["scales"]
    if a["coord"] is not None:  # ONNX's Resize semantics
        if None in x.shape[1:-1]:
            raise TranspileError(
                f"resize at {node.source} on a dynamic spatial size needs example_inputs with sizes"
            )
        kwargs = {"mode": a["mode"], "coord": a["coord"], "factors": tuple(a["factors"])}
        defaults = {"nearest_mode": "round_prefer_floor", "cubic_a": -0.75}
        defaults.update({"exclude_outside": False, "antialias": False})
        kwargs.update({k: a[k] for k, v in defaults.items() if a[k] != v})
        return [KerasCall("OnnxResize", [x], (sizes,), kwargs)]
    if a["mode"] not in ("nearest", "nearest-exact", "linear"):  # bicubic comes with a coord
        raise TranspileError(f"internal: resize mode {a['mode']!r} at {node.source} has no coord")
    ins = x.shape[1:-1]
    # a 2-d resize that TF's (and TFLite's) resize kernels compute exactly: keras.layers.Resizing,
    # which converts to one RESIZE_BILINEAR / RESIZE_NEAREST_NEIGHBOR. Keras' nearest is
    # half-pixel on TF and JAX, floor on torch: both must match PyTorch's indices.
    builtins = resize_builtins(ins, sizes, a["mode"], a["align_corners"], scales) if n == 2 else ()
    kind = {"linear": "bilinear", "nearest": "nearest", "nearest-exact": "nearest"}.get(a["mode"])
    wanted = ("bilinear",) if kind == "bilinear" else ("nearest", "nearest_legacy")
    if builtins and all(k in builtins for k in wanted):
        return [KerasCall("layers.Resizing", [x], sizes, {"interpolation": kind})]
    factors = [o // i if i and o % i == 0 else None for i, o in zip(ins, sizes, strict=True)]
    exact_scales = scales is None or all(
        f is not None and abs(s * f - 1.0) < 1e-12 for s, f in zip(scales, factors, strict=True)
    )
    if a["mode"] == "nearest" and None not in factors and exact_scales:
        size = factors[0] if n == 1 else tuple(factors)
        return [KerasCall(f"layers.UpSampling{n}D", [x], (size,), {})]
    if None in ins:
        raise TranspileError(
            f"resize at {node.source} on a dynamic spatial size needs example_inputs with sizes"
        )
    kwargs: dict[str, Any] = {"mode": a["mode"]}
    if a["mode"] == "linear":
        kwargs["align_corners"] = bool(a["align_corners"])
    if scales is not None:
        kwargs["scales"] = tuple(float(s) for s in scales)
    return [KerasCall("Resize", [x], (sizes,), kwargs)]


@emits("pad")
def _pad(node: Node, graph: Graph) -> list[KerasCall]:
    x, a = node.inputs[0], node.attrs
    pads = tuple(tuple(int(v) for v in p) for p in a["pads"])
    others = [p for i, p in enumerate(pads) if i not in (1, 2)]
    if (
        a["mode"] == "constant"
        and a["value"] == 0.0
        and x.rank == 4
        and all(p == (0, 0) for p in others)
    ):
        return [KerasCall("layers.ZeroPadding2D", [x], (), {"padding": pads[1:3]})]
    if a["mode"] == "constant":  # only a constant pad: the small layer, not the four-mode one
        v = float(a["value"])
        value = Literal(f'float("{v}")') if not np.isfinite(v) else v
        return [KerasCall("ConstantPad", [x], (), {"pads": pads, "value": value})]
    return [KerasCall("Pad", [x], (), {"pads": pads, "mode": a["mode"]})]


@emits("reshape")
def _reshape(node: Node, graph: Graph) -> list[KerasCall]:
    # the IR's full target shape, batch -1 included: one RESHAPE with a constant shape
    # (layers.Reshape reads the batch size at run time: SHAPE + STRIDED_SLICE + PACK, which
    # split TFLite's XNNPACK partitions)
    x, shape = node.inputs[0], tuple(node.attrs["shape"])
    if node.attrs["ref_axes"] is not None:  # sizes read off the second input at run time
        args = (shape, tuple(node.attrs["ref_axes"]))
        return [KerasCall("ReshapeLike", list(node.inputs), args, {}, list_input=True)]
    sources = reshape_sources(node)
    if sources is not None:  # several dynamic sizes, read from the input's axes
        return [KerasCall("ReshapeTo", [x], (shape,), {"sizes_from": sources})]
    if _keeps_batch(x, shape):  # the common case: layers.Reshape's form, shape minus batch
        return [KerasCall("BatchReshape", [x], (shape[1:],), {})]
    return [KerasCall("ReshapeTo", [x], (shape,), {})]


def _keeps_batch(x: Value, shape: tuple[int, ...]) -> bool:
    """A reshape of each sample: the dynamic batch axis stays first and the rest holds the same
    number of elements (what keras.layers.Reshape's shape check accepts)."""
    rest = x.shape[1:]
    return (
        len(shape) > 1
        and shape[0] == -1
        and -1 not in shape[1:]
        and x.shape[0] is None
        and None not in rest
        and math.prod(rest) == math.prod(shape[1:])
    )


@emits("cast")
def _cast(node: Node, graph: Graph) -> list[KerasCall]:
    return [KerasCall("Cast", [node.inputs[0]], (node.attrs["dtype"],), {})]


@emits("where")
def _where(node: Node, graph: Graph) -> list[KerasCall]:
    cond, x, y = node.inputs
    if graph.is_constant(cond):
        raise TranspileError(f"internal: where with a constant condition at {node.source}")
    values, tensors = [], [cond]
    for v in (x, y):
        if graph.is_constant(v) and graph.constant(v).ndim == 0:
            value = graph.constant(v).item()
            values.append(Literal(f'float("{value}")') if not np.isfinite(value) else value)
        else:
            values.append(None)
            tensors.append(v)
    kwargs = {"values": tuple(values), "dtype_of_output": node.output.type.dtype}
    return [KerasCall("Where", tensors, (), kwargs, list_input=True)]


@emits("embedding")
def _embedding(node: Node, graph: Graph) -> list[KerasCall]:
    table = graph.constant(node.inputs[1])
    call = KerasCall("layers.Embedding", [node.inputs[0]], tuple(table.shape), {})
    call.weights = [_f32(table)]
    return [call]


@emits("take")
def _take(node: Node, graph: Graph) -> list[KerasCall]:
    x, index = node.inputs
    axis = node.attrs["axis"]
    if graph.is_constant(index):
        indices = graph.constant(index).tolist()
        return [KerasCall("Take", [x], (), {"axis": axis, "indices": indices})]
    return [KerasCall("Take", [x, index], (), {"axis": axis}, list_input=True)]


@emits("grid_sample")
def _grid_sample(node: Node, graph: Graph) -> list[KerasCall]:
    a = node.attrs
    args = (a["mode"], a["padding_mode"], bool(a["align_corners"]))
    return [KerasCall("GridSample", list(node.inputs), args, {}, list_input=True)]


@emits("cumsum")
def _cumsum(node: Node, graph: Graph) -> list[KerasCall]:
    return [KerasCall("CumSum", [node.inputs[0]], (), {"axis": node.attrs["axis"]})]


@emits("flip")
def _flip(node: Node, graph: Graph) -> list[KerasCall]:
    return [KerasCall("Flip", [node.inputs[0]], (tuple(node.attrs["axes"]),), {})]


@emits("roll")
def _roll(node: Node, graph: Graph) -> list[KerasCall]:
    a = node.attrs
    return [KerasCall("Roll", [node.inputs[0]], (tuple(a["shifts"]), tuple(a["axes"])), {})]


# -- sequence and transformer models (issue 12, s2-hf-text) --
@emits("take_along_axis")
def _take_along_axis(node: Node, graph: Graph) -> list[KerasCall]:
    x, index = node.inputs
    axis = node.attrs["axis"]
    if graph.is_constant(index):
        indices = graph.constant(index).tolist()
        return [KerasCall("TakeAlongAxis", [x], (), {"axis": axis, "indices": indices})]
    return [KerasCall("TakeAlongAxis", [x, index], (), {"axis": axis}, list_input=True)]


@emits("triangle")
def _triangle(node: Node, graph: Graph) -> list[KerasCall]:
    a = node.attrs
    return [
        KerasCall(
            "Triangle", [node.inputs[0]], (), {"upper": a["upper"], "diagonal": a["diagonal"]}
        )
    ]


@emits("topk")
def _topk(node: Node, graph: Graph) -> list[KerasCall]:
    a = node.attrs
    kwargs = {"k": a["k"], "axis": a["axis"], "largest": a["largest"]}
    call = KerasCall("TopK", [node.inputs[0]], (), kwargs)
    call.output_suffixes = ["indices"]
    return [call]


_RNN_LAYERS = {"lstm": "LSTM", "gru": "GRU", "rnn_tanh": "SimpleRNN", "rnn_relu": "SimpleRNN"}


def _rnn_weights(mode: str, w: list[np.ndarray]) -> list[np.ndarray]:
    """One direction's PyTorch weights -> Keras' [kernel, recurrent_kernel(, bias)].

    LSTM gates i,f,g,o are Keras' i,f,c,o (same order); the two biases add up. GRU gates r,z,n
    become Keras' z,r,h; with reset_after=True (Keras' default, PyTorch's equations) Keras keeps
    both biases as a (2, 3H) array."""
    w_ih, w_hh = w[0], w[1]
    bias = w[2:]
    if mode == "gru":
        h = w_hh.shape[1]

        def order(a: np.ndarray) -> np.ndarray:
            return np.concatenate([a[h : 2 * h], a[:h], a[2 * h :]], axis=0)

        out = [_f32(order(w_ih).T), _f32(order(w_hh).T)]
        return out + ([_f32(np.stack([order(bias[0]), order(bias[1])]))] if bias else [])
    return [_f32(w_ih.T), _f32(w_hh.T)] + ([_f32(bias[0] + bias[1])] if bias else [])


@emits("rnn")
def _rnn(node: Node, graph: Graph) -> list[KerasCall]:
    from transpiler.interpreter import rnn_layout, rnn_split_inputs

    a = node.attrs
    mode = a["mode"]
    directions, _, lstm = rnn_layout(node)
    x, weights, init = rnn_split_inputs(node, node.inputs)
    kwargs: dict[str, Any] = {"return_sequences": True, "return_state": True}
    if mode == "rnn_relu":
        kwargs["activation"] = "relu"
    if not a["bias"]:
        kwargs["use_bias"] = False
    arrays = []
    for w in weights:
        arrays += _rnn_weights(mode, [graph.constant(v) for v in w])
    states = [v for s in init for v in s]
    names = ("h", "c") if lstm else ("h",)
    suffixes = tuple(n + ("_reverse" if d else "") for d in range(directions) for n in names)
    layer = f"layers.{_RNN_LAYERS[mode]}"
    if directions == 1:
        call = KerasCall(layer, [x, *states], (a["hidden_size"],), kwargs)
    else:
        inner = ", ".join(
            [str(a["hidden_size"])]
            + [f"{k}={v!r}" if isinstance(v, bool) else f'{k}="{v}"' for k, v in kwargs.items()]
        )
        call = KerasCall("layers.Bidirectional", [x, *states], (Literal(f"{layer}({inner})"),))
    call.state_inputs = len(states)
    call.output_suffixes = suffixes
    call.weights = arrays
    return [call]


@emits("transpose")
def _transpose(node: Node, graph: Graph) -> list[KerasCall]:
    perm = tuple(node.attrs["perm"])
    if perm[0] == 0:
        return [KerasCall("layers.Permute", [node.inputs[0]], (perm[1:],), {})]
    return [KerasCall("TransposeTo", [node.inputs[0]], (perm,), {})]
