"""ONNX op converters: one function per ONNX op type, onto the existing IR op set.

A converter is ``fn(b, attrs, *inputs)``: ``b`` an ``OnnxBuilder`` (``b.out_type`` /
``b.out_types`` hold the output types the ONNX runs gave, ``b.value(x)`` turns a constant into a
weight, ``b.constant(x, what)`` insists on a constant), ``attrs`` the node's attributes as Python
values, and the inputs as IR ``Value``s (computed from the model inputs) or numpy arrays
(initializers and folded subgraphs); ``None`` for an omitted optional input. It returns a
``Value`` or a list of them (one per ONNX output).

Padding: symmetric ``pads`` go to the IR as PyTorch-style ints (normalize_padding decides on TF
'same'); ``auto_pad`` SAME_UPPER puts the odd pad at the end, SAME_LOWER at the beginning;
asymmetric pads become an explicit ``pad`` node (zeros, or -inf before max pooling).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..errors import TranspileError
from ..ir import TensorType, Value
from .onnx_importer import OnnxBuilder, Partial

__all__ = ["ONNX_CONVERTERS"]

ONNX_CONVERTERS: dict[str, Callable[..., Any]] = {}


def onnx_op(*names: str) -> Callable:
    def register(fn: Callable) -> Callable:
        for name in names:
            ONNX_CONVERTERS[name] = fn
        return fn

    return register


def _axis(b: OnnxBuilder, axis: int, rank: int) -> int:
    if not -rank <= axis < max(rank, 1):
        raise TranspileError(f"{b.where()}: axis {axis} is out of range for rank {rank}")
    return int(axis) % max(rank, 1)


def _t(shape, like: Value | TensorType) -> TensorType:
    dtype = like.type.dtype if isinstance(like, Value) else like.dtype
    return TensorType(tuple(shape), dtype)


def _target(shape) -> tuple:
    return tuple(-1 if d is None else int(d) for d in shape)


def _reshape_to(b: OnnxBuilder, x: Value, shape) -> Value:
    shape = tuple(shape)
    if shape == x.shape:
        return x
    if sum(d is None for d in shape) > 1:
        raise TranspileError(
            f"{b.where()}: a reshape to {shape} with several dynamic dimensions; pass "
            "example_inputs so that only the batch dimension is dynamic."
        )
    return b.op("reshape", [x], _t(shape, x), shape=_target(shape))


# -- spatial ops ----------------------------------------------------------------------------------


def _spatial_pads(b: OnnxBuilder, attrs, x: Value, kernel, stride, dilation, transposed=False):
    """(before, after) per spatial axis from ``pads`` / ``auto_pad``."""
    n = len(kernel)
    auto = attrs.get("auto_pad", "NOTSET")
    if auto in ("NOTSET", ""):
        pads = list(attrs.get("pads", [0] * (2 * n)))
        return [(int(pads[i]), int(pads[i + n])) for i in range(n)]
    if auto == "VALID":
        return [(0, 0)] * n
    if auto not in ("SAME_UPPER", "SAME_LOWER"):
        raise TranspileError(f"{b.where()}: auto_pad={auto!r} is not supported")
    out = []
    for i in range(n):
        size = x.shape[2 + i]
        eff = (kernel[i] - 1) * dilation[i] + 1
        if transposed:
            raise TranspileError(f"{b.where()}: auto_pad on ConvTranspose is not supported")
        if stride[i] == 1:
            total = eff - 1
        elif size is None:
            raise TranspileError(
                f"{b.where()}: auto_pad={auto} on a dynamic spatial size; pass example_inputs."
            )
        else:
            total = max((-(-size // stride[i]) - 1) * stride[i] + eff - size, 0)
        small, big = total // 2, total - total // 2
        out.append((small, big) if auto == "SAME_UPPER" else (big, small))
    return out


def _explicit_pad(b: OnnxBuilder, x: Value, pads, value: float) -> Value:
    full = [(0, 0), (0, 0), *pads]
    shape = tuple(None if d is None else d + p + q for d, (p, q) in zip(x.shape, full, strict=True))
    return b.op("pad", [x], _t(shape, x), pads=tuple(full), mode="constant", value=float(value))


def _split_pads(b: OnnxBuilder, x: Value, pads, value: float) -> tuple[Value, tuple[int, ...]]:
    """Symmetric pads -> (x, ints for the IR); asymmetric -> (explicitly padded x, zeros)."""
    if all(p == q for p, q in pads):
        return x, tuple(p for p, _ in pads)
    return _explicit_pad(b, x, pads, value), (0,) * len(pads)


def _ints(attrs, key, n, default=1) -> tuple[int, ...]:
    v = attrs.get(key)
    return tuple(int(a) for a in v) if v else (default,) * n


@onnx_op("Conv")
def conv(b: OnnxBuilder, attrs, x, w, bias=None):
    w = b.constant(w, "the Conv weight")
    n = w.ndim - 2
    stride, dilation = _ints(attrs, "strides", n), _ints(attrs, "dilations", n)
    pads = _spatial_pads(b, attrs, x, w.shape[2:], stride, dilation)
    x, padding = _split_pads(b, x, pads, 0.0)
    inputs = [x, b.value(w)] + (
        [b.value(b.constant(bias, "the Conv bias"))] if bias is not None else []
    )
    return b.op(
        "conv",
        inputs,
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=int(attrs.get("group", 1)),
    )


@onnx_op("ConvTranspose")
def conv_transpose(b: OnnxBuilder, attrs, x, w, bias=None):
    w = b.constant(w, "the ConvTranspose weight")
    n = w.ndim - 2
    stride, dilation = _ints(attrs, "strides", n), _ints(attrs, "dilations", n)
    out_pad = _ints(attrs, "output_padding", n, 0)
    k = w.shape[2:]
    if attrs.get("output_shape"):
        target = list(attrs["output_shape"])[-n:]
        pads = []
        for i in range(n):
            size = x.shape[2 + i]
            if size is None:
                raise TranspileError(f"{b.where()}: output_shape on a dynamic spatial size")
            total = stride[i] * (size - 1) + out_pad[i] + (k[i] - 1) * dilation[i] + 1 - target[i]
            small, big = total // 2, total - total // 2
            upper = attrs.get("auto_pad", "NOTSET") != "SAME_LOWER"
            pads.append((small, big) if upper else (big, small))
    elif attrs.get("auto_pad", "NOTSET") in ("SAME_UPPER", "SAME_LOWER"):
        pads = []
        for i in range(n):
            total = max((k[i] - 1) * dilation[i] + 1 + out_pad[i] - stride[i], 0)
            small, big = total // 2, total - total // 2
            pads.append((small, big) if attrs["auto_pad"] == "SAME_UPPER" else (big, small))
    else:
        pads = _spatial_pads(b, attrs, x, k, stride, dilation)
    # torch crops p before and p - output_padding after; ONNX crops (begin, end) and adds
    # output_padding at the end: padding = begin, output_padding = begin - end + op
    padding = tuple(p for p, _ in pads)
    extra = tuple(p - q + o for (p, q), o in zip(pads, out_pad, strict=True))
    if any(p < 0 or q < 0 for p, q in pads):
        raise TranspileError(
            f"{b.where()}: negative pads {pads} (an output larger than the full one)"
        )
    inputs = [x, b.value(w)] + (
        [b.value(b.constant(bias, "the ConvTranspose bias"))] if bias is not None else []
    )
    groups = int(attrs.get("group", 1))
    if all(e >= 0 for e in extra):
        return b.op(
            "conv_transpose",
            inputs,
            stride=stride,
            padding=padding,
            output_padding=extra,
            dilation=dilation,
            groups=groups,
        )
    # more crop at the end than torch's padding allows: the full output, then a slice
    sizes = x.shape[2:]
    if None in sizes:
        raise TranspileError(f"{b.where()}: asymmetric pads on a dynamic spatial size")
    full = [(sizes[i] - 1) * stride[i] + (k[i] - 1) * dilation[i] + 1 for i in range(n)]
    y = b.op(
        "conv_transpose",
        inputs,
        _t((x.shape[0], w.shape[1] * groups, *full), x),
        stride=stride,
        padding=(0,) * n,
        output_padding=(0,) * n,
        dilation=dilation,
        groups=groups,
    )
    if any(o > q for (_, q), o in zip(pads, out_pad, strict=True)):
        raise TranspileError(f"{b.where()}: pads {pads} with output_padding {out_pad}")
    return b.op(
        "slice",
        [y],
        axes=tuple(range(2, 2 + n)),
        starts=tuple(p for p, _ in pads),
        stops=tuple(f - q + o for f, (_, q), o in zip(full, pads, out_pad, strict=True)),
        steps=(1,) * n,
    )


@onnx_op("MaxPool")
def max_pool(b: OnnxBuilder, attrs, x):
    if attrs.get("storage_order", 0):
        raise TranspileError(f"{b.where()}: MaxPool storage_order=1 is not supported")
    kernel = tuple(int(k) for k in attrs["kernel_shape"])
    n = len(kernel)
    stride, dilation = _ints(attrs, "strides", n), _ints(attrs, "dilations", n)
    pads = _spatial_pads(b, attrs, x, kernel, stride, dilation)
    ceil = bool(attrs.get("ceil_mode", 0))
    if ceil and any(p != q for p, q in pads):
        raise TranspileError(f"{b.where()}: ceil_mode with asymmetric pads is not supported")
    x, padding = _split_pads(b, x, pads, float("-inf"))
    return b.op(
        "max_pool",
        [x],
        kernel=kernel,
        stride=stride,
        padding=padding,
        dilation=dilation,
        ceil_mode=ceil,
    )


@onnx_op("AveragePool")
def avg_pool(b: OnnxBuilder, attrs, x):
    kernel = tuple(int(k) for k in attrs["kernel_shape"])
    n = len(kernel)
    stride = _ints(attrs, "strides", n)
    if any(d != 1 for d in _ints(attrs, "dilations", n)):
        raise TranspileError(f"{b.where()}: AveragePool with dilations is not supported")
    pads = _spatial_pads(b, attrs, x, kernel, stride, (1,) * n)
    ceil = bool(attrs.get("ceil_mode", 0))
    include = bool(attrs.get("count_include_pad", 0))
    if any(p != q for p, q in pads):
        if ceil:
            raise TranspileError(f"{b.where()}: asymmetric pads {pads} with ceil_mode")
        sizes = x.shape[2:]
        x = _explicit_pad(b, x, pads, 0.0)
        if not include:  # divide by the window's count of real elements, not the kernel area
            return _avg_excluding_pad(b, x, sizes, kernel, stride, pads)
        pads = [(0, 0)] * n
    return b.op(
        "avg_pool",
        [x],
        kernel=kernel,
        stride=stride,
        padding=tuple(p for p, _ in pads),
        ceil_mode=ceil,
        count_include_pad=include,
    )


def _avg_excluding_pad(b: OnnxBuilder, padded: Value, sizes, kernel, stride, pads) -> Value:
    """Average pool of an explicitly zero-padded input, rescaled so that each window divides by
    its number of real (non-pad) elements: a constant (1, 1, *out) map of area / count."""
    if None in sizes:
        raise TranspileError(f"{b.where()}: asymmetric pads on a dynamic spatial size")
    y = b.op(
        "avg_pool",
        [padded],
        kernel=tuple(kernel),
        stride=tuple(stride),
        padding=(0,) * len(kernel),
        ceil_mode=False,
        count_include_pad=True,
    )
    grid = np.ones((), np.float64)
    for i, (size, k, s_) in enumerate(zip(sizes, kernel, stride, strict=True)):
        out = b.out_type.shape[2 + i]
        starts = np.arange(out) * s_ - pads[i][0]
        counts = np.minimum(starts + k, size) - np.maximum(starts, 0)
        grid = np.multiply.outer(grid, k / counts)
    correction = grid.reshape(1, 1, *grid.shape).astype(np.float32)
    return b.op("mul", [y, b.value(correction)])


@onnx_op("GlobalAveragePool", "GlobalMaxPool")
def global_pool(b: OnnxBuilder, attrs, x):
    op = "adaptive_avg_pool" if b.node.op_type == "GlobalAveragePool" else "adaptive_max_pool"
    return b.op(op, [x], output_size=(1,) * (x.rank - 2))


@onnx_op("BatchNormalization")
def batch_norm(b: OnnxBuilder, attrs, x, scale, bias, mean, var):
    if attrs.get("training_mode", 0):
        raise TranspileError(f"{b.where()}: BatchNormalization training_mode=1 is not supported")
    consts = [
        b.value(b.constant(v, "a BatchNormalization parameter").astype(np.float32))
        for v in (mean, var, scale, bias)
    ]
    return b.op(
        "batch_norm",
        [x, *consts],
        eps=float(attrs.get("epsilon", 1e-5)),
        momentum=1.0 - float(attrs.get("momentum", 0.9)),
        axis=1,
    )


@onnx_op("InstanceNormalization")
def instance_norm(b: OnnxBuilder, attrs, x, scale, bias):
    c = x.shape[1]
    return b.op(
        "group_norm",
        [x, b.value(b.constant(scale, "scale")), b.value(b.constant(bias, "bias"))],
        groups=int(c),
        eps=float(attrs.get("epsilon", 1e-5)),
        axis=1,
    )


@onnx_op("GroupNormalization")
def group_norm(b: OnnxBuilder, attrs, x, scale, bias):
    groups = int(attrs["num_groups"])
    c = x.shape[1]
    scale, bias = b.constant(scale, "scale"), b.constant(bias, "bias")
    if scale.shape[0] != c:  # opset 18: one scale per group
        scale, bias = np.repeat(scale, c // groups), np.repeat(bias, c // groups)
    return b.op(
        "group_norm",
        [x, b.value(scale), b.value(bias)],
        groups=groups,
        eps=float(attrs.get("epsilon", 1e-5)),
        axis=1,
    )


@onnx_op("LayerNormalization")
def layer_norm(b: OnnxBuilder, attrs, x, scale, bias=None):
    ax = _axis(b, int(attrs.get("axis", -1)), x.rank)
    norm_shape = x.shape[ax:]
    if None in norm_shape:
        raise TranspileError(f"{b.where()}: normalizing over a dynamic dimension")
    scale = np.broadcast_to(b.constant(scale, "scale"), norm_shape).astype(np.float32)
    bias = (
        np.zeros(norm_shape, np.float32)
        if bias is None
        else np.broadcast_to(b.constant(bias, "bias"), norm_shape).astype(np.float32)
    )
    eps = float(attrs.get("epsilon", 1e-5))
    axes = tuple(range(ax, x.rank))
    y = b.op(
        "layer_norm",
        [x, b.value(np.ascontiguousarray(scale)), b.value(np.ascontiguousarray(bias))],
        axes=axes,
        eps=eps,
    )
    if len(b.node.output) == 1 or not any(b.node.output[1:]):
        return y
    # the optional Mean and InvStdDev outputs (reduced axes kept as 1)
    kept = b.out_types[1]
    mean = b.op("reduce", [x], kept, kind="mean", axes=axes, keepdims=True)
    centred = b.op("sub", [x, mean], x.type)
    var = b.op(
        "reduce", [b.op("square", [centred], x.type)], kept, kind="mean", axes=axes, keepdims=True
    )
    inv = b.op("rsqrt", [b.op("add", [var, b.scalar(eps)], kept)], kept)
    return [y, mean, inv]


# coordinate_transformation_modes computed exactly (backends/_planning.py resize_taps);
# tf_crop_and_resize (a region of interest and an extrapolation value) is refused
RESIZE_COORDS = (
    "half_pixel",
    "pytorch_half_pixel",
    "align_corners",
    "asymmetric",
    "tf_half_pixel_for_nn",
    "half_pixel_symmetric",
)
NEAREST_MODES = ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil")


@onnx_op("Resize", "Upsample")
def resize(b: OnnxBuilder, attrs, x, roi=None, scales=None, sizes=None):
    """Resize on the spatial axes. PyTorch's own semantics where they are ONNX's exactly
    (integer nearest upsampling, linear half_pixel / align_corners: the layers the PyTorch
    frontend emits); every other supported combination as ONNX's Resize (``coord``)."""
    if b.node.op_type == "Upsample":
        scales, roi = roi, None
    mode = attrs.get("mode", "nearest")
    coord = attrs.get("coordinate_transformation_mode", "half_pixel")
    nearest = attrs.get("nearest_mode", "round_prefer_floor")
    cubic_a = float(attrs.get("cubic_coeff_a", -0.75))
    exclude = bool(attrs.get("exclude_outside", 0))
    antialias = bool(attrs.get("antialias", 0))
    refusal = _resize_refusal(mode, coord, nearest, antialias)
    if refusal:
        raise TranspileError(f"{b.where()}: Resize {refusal}; re-export with another mode.")
    out = b.out_type.shape
    if out[:2] != x.shape[:2] or None in out[2:] or None in x.shape[2:]:
        raise TranspileError(
            f"{b.where()}: Resize must keep batch and channels and have static spatial sizes "
            f"(input {x.shape}, output {out})"
        )
    factors = _resize_factors(b, attrs, x, scales, sizes)
    if factors is None:
        raise TranspileError(f"{b.where()}: Resize must not scale the batch or channel axes")
    for n_in, n_out, f in zip(x.shape[2:], out[2:], factors, strict=True):
        unrounded = abs(f * n_in - n_out) > 1e-6 * n_out  # an output size rounded down
        if unrounded and (
            coord == "align_corners" or (coord == "pytorch_half_pixel" and n_out == 1)
        ):
            raise TranspileError(
                f"{b.where()}: Resize {coord} with scales whose output size is rounded ({n_in} x "
                f"{f:g} -> {n_out}): onnxruntime maps coordinates with the rounded size, onnx's "
                "reference with the unrounded one, so there is no single answer to match; give "
                "`sizes` instead of `scales`."
            )
    n = x.rank - 2
    plain = _pytorch_resize(mode, coord, nearest, exclude, antialias, x.shape[2:], out[2:])
    if plain is not None:
        ir_mode, align = plain
        given = scales is not None and b.constant(scales, "scales").size
        # the coordinate scale is 1 / factor, not in / out, with scales or an aspect policy
        given = given or any(
            f * i != o for f, i, o in zip(factors, x.shape[2:], out[2:], strict=True)
        )
        ir_scales = tuple(1.0 / f for f in factors) if given and not align and n else None
        return b.op(
            "resize", [x], sizes=tuple(out[2:]), mode=ir_mode, align_corners=align,
            scales=ir_scales,
        )  # fmt: skip
    return b.op(
        "resize",
        [x],
        sizes=tuple(out[2:]),
        mode=mode,
        coord=coord,
        factors=factors,
        nearest_mode=nearest,
        cubic_a=cubic_a,
        exclude_outside=exclude,
        antialias=antialias,
    )


def _resize_refusal(mode: str, coord: str, nearest: str, antialias: bool) -> str:
    """Why a Resize cannot be converted exactly ('' when it can)."""
    if mode not in ("nearest", "linear", "cubic"):
        return f"mode={mode!r} is not an ONNX mode"
    if coord == "tf_crop_and_resize":
        return (
            "coordinate_transformation_mode='tf_crop_and_resize' (a region of interest with an "
            "extrapolation value) is not supported"
        )
    if coord not in RESIZE_COORDS:
        return f"coordinate_transformation_mode={coord!r} is unknown"
    if mode == "nearest" and nearest not in NEAREST_MODES:
        return f"nearest_mode={nearest!r} is unknown"
    if mode == "nearest" and antialias:
        return "antialias with mode='nearest' is not defined"
    return ""


def _resize_factors(b: OnnxBuilder, attrs, x, scales, sizes) -> tuple[float, ...] | None:
    """ONNX's scale per spatial axis (output / input size, as the reference computes it), after
    ``axes`` and ``keep_aspect_ratio_policy``; None when the batch or channels would scale."""
    rank = x.rank
    axes = attrs.get("axes")
    axes = [int(a) % rank for a in axes] if axes is not None else list(range(rank))
    full = [1.0] * rank
    if scales is not None and b.constant(scales, "scales").size:
        given = b.constant(scales, "scales").astype(np.float64).ravel()
        for axis, f in zip(axes, given, strict=True):
            full[axis] = float(f)
    else:
        # torch.onnx computes sizes from the input's shape: (batch, C, H', W'), the batch dynamic
        if isinstance(sizes, Partial):
            wanted = [x.shape[a] if v is None else v for a, v in zip(axes, sizes, strict=True)]
        else:
            wanted = b.constant(sizes, "sizes").astype(np.int64).ravel()
        for axis, size in zip(axes, wanted, strict=True):
            full[axis] = 1.0 if size is None or size == x.shape[axis] else int(size) / x.shape[axis]
        policy = attrs.get("keep_aspect_ratio_policy", "stretch")
        if policy in ("not_larger", "not_smaller"):
            scale = (min if policy == "not_larger" else max)(full[a] for a in axes)
            full = [scale if a in axes else 1.0 for a in range(rank)]
    if full[0] != 1.0 or full[1] != 1.0:
        return None
    return tuple(full[2:])


def _pytorch_resize(mode, coord, nearest, exclude, antialias, ins, outs):
    """(IR mode, align_corners) where PyTorch's interpolate computes exactly this ONNX Resize
    on these sizes; else None."""
    if antialias:
        return None
    upsample = all(o % i == 0 for i, o in zip(ins, outs, strict=True))
    if mode == "nearest" and coord == "asymmetric" and nearest == "floor" and upsample:
        return "nearest", False
    if mode == "linear" and coord == "half_pixel":
        return "linear", False
    if mode == "linear" and coord == "pytorch_half_pixel" and all(o > 1 for o in outs):
        return "linear", False  # what torch.onnx writes for align_corners=False
    if mode == "linear" and coord == "align_corners" and all(o > 1 for o in outs):
        return "linear", True
    return None


@onnx_op("DepthToSpace", "SpaceToDepth")
def depth_space(b: OnnxBuilder, attrs, x):
    bs = int(attrs["blocksize"])
    n_, c, h, w = x.shape
    if None in (c, h, w):
        raise TranspileError(f"{b.where()}: dynamic channel/spatial sizes")
    if b.node.op_type == "DepthToSpace":
        if attrs.get("mode", "DCR") == "DCR":
            split, perm = (n_, bs, bs, c // bs**2, h, w), (0, 3, 4, 1, 5, 2)
        else:
            split, perm = (n_, c // bs**2, bs, bs, h, w), (0, 1, 4, 2, 5, 3)
    else:
        split = (n_, c, h // bs, bs, w // bs, bs)
        perm = (0, 3, 5, 1, 2, 4) if attrs.get("mode", "DCR") == "DCR" else (0, 1, 3, 5, 2, 4)
    y = _reshape_to(b, x, split)
    moved = tuple(split[p] for p in perm)
    y = b.op("transpose", [y], _t(moved, x), perm=perm)
    return _reshape_to(b, y, b.out_type.shape)


@onnx_op("LRN")
def lrn(b: OnnxBuilder, attrs, x):
    """x / (bias + alpha/size · Σ_window x²)^beta. The sum over the channel window is a 1x1
    convolution of x² with a banded (C, C) matrix: layout-neutral, so no transposes in NHWC."""
    size = int(attrs["size"])
    alpha, beta = float(attrs.get("alpha", 1e-4)), float(attrs.get("beta", 0.75))
    bias = float(attrs.get("bias", 1.0))
    c = x.shape[1] if x.rank >= 3 else None
    if c is None:
        raise TranspileError(f"{b.where()}: LRN needs a static channel count and spatial axes")
    lo, hi = (size - 1) // 2, size - 1 - (size - 1) // 2
    o, i = np.meshgrid(np.arange(c), np.arange(c), indexing="ij")
    band = ((i >= o - lo) & (i <= o + hi)).astype(np.float32) * (alpha / size)
    n = x.rank - 2
    weight = b.value(band.reshape(c, c, *([1] * n)))
    sq = b.op("square", [x], x.type)
    s = b.op(
        "conv", [sq, weight], x.type, stride=(1,) * n, padding=(0,) * n, dilation=(1,) * n, groups=1
    )
    s = b.op("add", [s, b.scalar(bias)], x.type)
    s = b.op("pow", [s, b.scalar(beta)], x.type)
    return b.op("div", [x, s], x.type)


# -- linear algebra -------------------------------------------------------------------------------


def _linear(b: OnnxBuilder, a: Value, weight: np.ndarray, bias: np.ndarray | None, out_type):
    inputs = [a, b.value(np.ascontiguousarray(weight.astype(np.float32)))]
    if bias is not None:
        inputs.append(b.value(np.ascontiguousarray(bias.astype(np.float32))))
    return b.op("linear", inputs, out_type)


@onnx_op("Gemm")
def gemm(b: OnnxBuilder, attrs, a, bmat, c=None):
    alpha, beta = float(attrs.get("alpha", 1.0)), float(attrs.get("beta", 1.0))
    if attrs.get("transA", 0):
        a = b.value(a)
        a = b.op("transpose", [a], _t(a.shape[::-1], a), perm=(1, 0))
    a = b.value(a)
    out = b.out_type
    if isinstance(bmat, np.ndarray):
        weight = bmat if attrs.get("transB", 0) else bmat.T  # (out, in)
        weight = weight * alpha if alpha != 1.0 else weight
        n_out = weight.shape[0]
        bias = None
        cc = None if c is None or isinstance(c, Value) else np.asarray(c) * beta
        if (
            cc is not None
            and cc.size in (1, n_out)
            and cc.ndim <= 2
            and cc.shape[:-1] in ((), (1,))
        ):
            bias, cc = np.broadcast_to(cc.reshape(-1), (n_out,)), None
        y = _linear(b, a, weight, bias, out)
        if cc is not None:
            y = b.op("add", [y, b.value(cc.astype(np.float32))], out)
    else:
        bm = b.value(bmat)
        if attrs.get("transB", 0):
            bm = b.op("transpose", [bm], _t(bm.shape[::-1], bm), perm=(1, 0))
        y = b.op("matmul", [a, bm], out)
        if alpha != 1.0:
            y = b.op("mul", [y, b.scalar(alpha)], out)
        cc = None
    if c is not None and isinstance(c, Value):
        cv = c if beta == 1.0 else b.op("mul", [c, b.scalar(beta)], c.type)
        y = b.op("add", [y, cv], out)
    elif c is not None and not isinstance(bmat, np.ndarray):
        y = b.op("add", [y, b.value((np.asarray(c) * beta).astype(np.float32))], out)
    return y


@onnx_op("MatMul")
def matmul(b: OnnxBuilder, attrs, a, bm):
    if isinstance(a, Value) and isinstance(bm, np.ndarray) and bm.ndim == 2 and a.rank >= 2:
        return _linear(b, a, bm.T, None, b.out_type)
    return b.op("matmul", [b.value(a), b.value(bm)])


@onnx_op("Einsum")
def einsum(b: OnnxBuilder, attrs, *xs):
    return b.op(
        "einsum", [b.value(x) for x in xs], equation=str(attrs["equation"]).replace(" ", "")
    )


# -- elementwise ----------------------------------------------------------------------------------

_UNARY = {
    "Relu": "relu",
    "Sigmoid": "sigmoid",
    "Tanh": "tanh",
    "Exp": "exp",
    "Log": "log",
    "Sqrt": "sqrt",
    "Abs": "abs",
    "Neg": "neg",
    "Reciprocal": "reciprocal",
    "Erf": "erf",
    "Mish": "mish",
    "HardSwish": "hardswish",
    "Softplus": "softplus",
}


def _unary(op: str):
    def convert(b: OnnxBuilder, attrs, x):
        return b.op(op, [b.value(x)])

    return convert


for _onnx_name, _ir in _UNARY.items():
    ONNX_CONVERTERS[_onnx_name] = _unary(_ir)


@onnx_op("Identity", "Dropout")
def identity(b: OnnxBuilder, attrs, x, *rest):
    if b.node.op_type == "Dropout" and len(rest) > 1 and rest[1] is not None:
        training = b.constant(rest[1], "training_mode")
        if bool(np.asarray(training).reshape(-1)[0]):
            raise TranspileError(f"{b.where()}: Dropout in training mode is not supported")
    return b.value(x)  # Dropout's mask output, if declared, must be unused


@onnx_op("LeakyRelu")
def leaky_relu(b: OnnxBuilder, attrs, x):
    return b.op("leaky_relu", [x], negative_slope=float(attrs.get("alpha", 0.01)))


@onnx_op("Elu")
def elu(b: OnnxBuilder, attrs, x):
    return b.op("elu", [x], alpha=float(attrs.get("alpha", 1.0)))


@onnx_op("Selu")
def selu(b: OnnxBuilder, attrs, x):
    alpha = float(attrs.get("alpha", 1.67326319217681884765625))
    gamma = float(attrs.get("gamma", 1.05070102214813232421875))
    y = b.op("elu", [x], alpha=alpha)
    return b.op("mul", [y, b.scalar(gamma)])


@onnx_op("Gelu")
def gelu(b: OnnxBuilder, attrs, x):
    return b.op("gelu", [x], approximate=str(attrs.get("approximate", "none")))


@onnx_op("HardSigmoid")
def hard_sigmoid(b: OnnxBuilder, attrs, x):
    alpha, beta = float(attrs.get("alpha", 0.2)), float(attrs.get("beta", 0.5))
    if abs(alpha - 1 / 6) < 1e-7 and beta == 0.5:
        return b.op("hardsigmoid", [x])
    y = b.op("mul", [x, b.scalar(alpha)])
    y = b.op("add", [y, b.scalar(beta)])
    return b.op("clamp", [y], min=0.0, max=1.0)


@onnx_op("Softsign")
def softsign(b: OnnxBuilder, attrs, x):
    d = b.op("add", [b.op("abs", [x]), b.scalar(1.0)])
    return b.op("div", [x, d])


@onnx_op("Clip")
def clip(b: OnnxBuilder, attrs, x, lo=None, hi=None):
    lo = None if lo is None else float(b.constant(lo, "the Clip minimum"))
    hi = None if hi is None else float(b.constant(hi, "the Clip maximum"))
    if x.type.is_float and lo == 0.0 and hi == 6.0:
        return b.op("relu6", [x])
    if lo is None and hi is None:
        return x
    return b.op("clamp", [x], min=lo, max=hi)


@onnx_op("PRelu")
def prelu(b: OnnxBuilder, attrs, x, slope):
    slope = b.constant(slope, "the PRelu slope").astype(np.float32)
    if slope.size == 1:
        return b.op("prelu", [x, b.value(slope.reshape(1))], axis=1)
    c = x.shape[1] if x.rank >= 2 else None
    per_channel = (
        c is not None
        and slope.size == c
        and slope.ndim <= x.rank - 1
        and np.prod(slope.shape[1:], dtype=int) == 1
        and slope.ndim == x.rank - 1
    )
    if per_channel:
        return b.op("prelu", [x, b.value(slope.reshape(c))], axis=1)
    pos = b.op("relu", [x])
    neg = b.op("neg", [b.op("relu", [b.op("neg", [x])])])
    return b.op("add", [pos, b.op("mul", [neg, b.value(slope)])])


_BINARY = {"Add": "add", "Sub": "sub", "Mul": "mul", "Div": "div", "Pow": "pow"}


def _binary(op: str):
    def convert(b: OnnxBuilder, attrs, x, y):
        xv, yv = b.value(x), b.value(y)
        if op == "div" and not b.out_type.is_float:
            raise TranspileError(f"{b.where()}: integer division is not supported")
        if op == "pow" and xv.type.dtype != yv.type.dtype and not isinstance(y, Value):
            yv = b.value(np.asarray(y).astype(xv.type.dtype))
        return b.op(op, [xv, yv])

    return convert


for _onnx_name, _ir in _BINARY.items():
    ONNX_CONVERTERS[_onnx_name] = _binary(_ir)


@onnx_op("Max", "Min", "Sum", "Mean")
def variadic(b: OnnxBuilder, attrs, *xs):
    op = {"Max": "maximum", "Min": "minimum", "Sum": "add", "Mean": "add"}[b.node.op_type]
    vals = [b.value(x) for x in xs]
    y = vals[0]
    for v in vals[1:]:
        shape = np.broadcast_shapes(
            tuple(1 if d is None else d for d in y.shape),
            tuple(1 if d is None else d for d in v.shape),
        )
        t = b.out_type if len(shape) == b.out_type.rank else _t(shape, y)
        y = b.op(op, [y, v], t)
    if b.node.op_type == "Mean" and len(vals) > 1:
        y = b.op("mul", [y, b.scalar(1.0 / len(vals))])
    if y.producer is None:
        y = b.op("identity", [y])
    return y


# -- axis ops -------------------------------------------------------------------------------------


@onnx_op("Concat")
def concat(b: OnnxBuilder, attrs, *xs):
    vals = [b.value(x) for x in xs]
    return b.op("cat", vals, axis=_axis(b, int(attrs["axis"]), b.out_type.rank))


@onnx_op("Softmax", "LogSoftmax")
def softmax(b: OnnxBuilder, attrs, x):
    op = "softmax" if b.node.op_type == "Softmax" else "log_softmax"
    return b.op(op, [x], axis=_axis(b, int(attrs.get("axis", -1)), x.rank))


def _reduce_axes(b: OnnxBuilder, attrs, x: Value, axes_in) -> tuple[int, ...] | None:
    axes = attrs.get("axes")
    if axes_in is not None:
        axes = list(b.constant(axes_in, "the reduction axes").reshape(-1))
    if not axes:
        if attrs.get("noop_with_empty_axes", 0):
            return None
        return tuple(range(x.rank))
    return tuple(sorted(_axis(b, int(a), x.rank) for a in axes))


@onnx_op(
    "ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceSumSquare", "ReduceL2", "ReduceL1"
)
def reduce(b: OnnxBuilder, attrs, x, axes_in=None):
    axes = _reduce_axes(b, attrs, x, axes_in)
    kind_op = b.node.op_type
    src = x
    if kind_op in ("ReduceSumSquare", "ReduceL2"):
        src = b.op("square", [x], x.type)
    elif kind_op == "ReduceL1":
        src = b.op("abs", [x], x.type)
    if axes is None:
        return b.op("identity", [src])
    kind = {"ReduceMean": "mean", "ReduceMax": "max", "ReduceMin": "min"}.get(kind_op, "sum")
    y = b.op("reduce", [src], kind=kind, axes=axes, keepdims=bool(attrs.get("keepdims", 1)))
    if kind_op == "ReduceL2":
        y = b.op("sqrt", [y])
    return y


@onnx_op("Pad")
def pad(b: OnnxBuilder, attrs, x, pads=None, value=None, axes=None):
    mode = {"constant": "constant", "reflect": "reflect", "edge": "replicate", "wrap": "circular"}
    m = attrs.get("mode", "constant")
    if m not in mode:
        raise TranspileError(f"{b.where()}: Pad mode {m!r} is not supported")
    p = [int(v) for v in b.constant(pads, "the pads").reshape(-1)]
    r = x.rank
    ax = list(range(r)) if axes is None else [_axis(b, int(a), r) for a in b.constant(axes, "axes")]
    pairs = [(0, 0)] * r
    for k, a in enumerate(ax):
        pairs[a] = (p[k], p[k + len(ax)])
    if any(q < 0 for pr in pairs for q in pr):
        raise TranspileError(f"{b.where()}: negative pads (cropping) are not supported")
    if any(pairs[a] != (0, 0) and x.shape[a] is None for a in range(r)):
        raise TranspileError(f"{b.where()}: padding a dynamic dimension")
    fill = (
        0.0 if value is None or np.asarray(value).size == 0 else float(b.constant(value, "value"))
    )
    return b.op("pad", [x], pads=tuple(pairs), mode=mode[m], value=fill)


@onnx_op("Slice")
def slice_(b: OnnxBuilder, attrs, x, starts, ends, axes=None, steps=None):
    starts = [int(v) for v in b.constant(starts, "starts").reshape(-1)]
    ends = [int(v) for v in b.constant(ends, "ends").reshape(-1)]
    r = x.rank
    axes = list(range(len(starts))) if axes is None else list(b.constant(axes, "axes").reshape(-1))
    axes = [_axis(b, int(a), r) for a in axes]
    steps = [1] * len(starts) if steps is None else [int(s) for s in b.constant(steps, "steps")]
    if any(s <= 0 for s in steps):
        raise TranspileError(f"{b.where()}: Slice with steps <= 0 is not supported")
    big = 2**31 - 1
    stops: list[int | None] = []
    norm_starts = []
    for a, s, e in zip(axes, starts, ends, strict=True):
        size = x.shape[a]
        if size is None and (s < 0 or (0 <= e < big)):
            if not (s >= 0 and e >= big):
                raise TranspileError(f"{b.where()}: slicing a dynamic dimension")
        if size is not None:
            s = max(min(s + size if s < 0 else s, size), 0)
            e = e + size if e < 0 else e
            e = max(min(e, size), 0)
            stops.append(None if e >= size else e)
        else:
            stops.append(None)
        norm_starts.append(s)
    order = sorted(range(len(axes)), key=lambda k: axes[k])
    return b.op(
        "slice",
        [x],
        axes=tuple(axes[k] for k in order),
        starts=tuple(norm_starts[k] for k in order),
        stops=tuple(stops[k] for k in order),
        steps=tuple(steps[k] for k in order),
    )


@onnx_op("Split")
def split(b: OnnxBuilder, attrs, x, sizes=None):
    ax = _axis(b, int(attrs.get("axis", 0)), x.rank)
    outs = []
    start = 0
    for t in b.out_types:
        size = t.shape[ax]
        if size is None:
            raise TranspileError(f"{b.where()}: Split along a dynamic dimension")
        outs.append(
            b.op("slice", [x], t, axes=(ax,), starts=(start,), stops=(start + size,), steps=(1,))
        )
        start += size
    return outs


@onnx_op("Gather")
def gather(b: OnnxBuilder, attrs, x, indices):
    x = b.value(x)
    idx = b.constant(indices, "the Gather indices")
    ax = _axis(b, int(attrs.get("axis", 0)), x.rank)
    size = x.shape[ax]
    if size is None:
        raise TranspileError(f"{b.where()}: Gather along a dynamic dimension")
    flat = [int(i) % size for i in idx.reshape(-1)]
    if not flat or flat != list(range(flat[0], flat[0] + len(flat))):
        raise TranspileError(
            f"{b.where()}: Gather with indices {idx.tolist()} (only one index or a contiguous "
            "range is supported)"
        )
    shape = list(x.shape)
    shape[ax] = len(flat)
    y = b.op(
        "slice",
        [x],
        _t(shape, x),
        axes=(ax,),
        starts=(flat[0],),
        stops=(flat[0] + len(flat),),
        steps=(1,),
    )
    return _reshape_to(b, y, b.out_type.shape)


@onnx_op("Reshape", "Flatten", "Squeeze", "Unsqueeze")
def reshape(b: OnnxBuilder, attrs, x, *shape):
    x = b.value(x)
    y = _reshape_to(b, x, b.out_type.shape)
    return y if y is not x else b.op("identity", [x])


@onnx_op("Transpose")
def transpose(b: OnnxBuilder, attrs, x):
    perm = tuple(int(p) for p in attrs.get("perm", range(x.rank - 1, -1, -1)))
    return b.op("transpose", [b.value(x)], perm=perm)


@onnx_op("Expand")
def expand(b: OnnxBuilder, attrs, x, shape):
    x = b.value(x)
    out = b.out_type.shape
    if x.rank < len(out):
        x = _reshape_to(b, x, (1,) * (len(out) - x.rank) + tuple(x.shape))
    target = []
    for d_in, d_out in zip(x.shape, out, strict=True):
        if d_out == d_in:
            target.append(-1)
        elif d_out is None:
            if not b.graph.inputs or b.graph.inputs[0].shape[:1] != (None,):
                raise TranspileError(f"{b.where()}: Expand to a dynamic size other than the batch")
            target.append(None)
        else:
            target.append(int(d_out))
    if all(t == -1 for t in target):
        return b.op("identity", [x])
    inputs = [x] + ([b.graph.inputs[0]] if None in target else [])
    return b.op("broadcast_to", inputs, shape=tuple(target))


@onnx_op("Cast", "CastLike")
def cast(b: OnnxBuilder, attrs, x, *like):
    x = b.value(x)
    t = b.out_type
    if x.type.dtype == t.dtype or (x.type.is_float and t.is_float):
        return b.op("identity", [x])
    raise TranspileError(f"{b.where()}: Cast from {x.type.dtype} to {t.dtype} is not supported")
