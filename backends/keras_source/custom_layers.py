"""Small Keras layers written into the generated module when (and only when) it uses them.

Each is plain ``keras.ops`` code, so the generated file runs on the TensorFlow, JAX and PyTorch
backends of Keras 3. They are kept here as source text: the generated module must be
standalone (it cannot import this package). A layer whose numpy-side planning is shared with
the tf backend (``backends/_planning.py``) carries that function's source before its class.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable

from .. import _planning

SOURCES: dict[str, str] = {}
# Module-level functions the sources define (besides the layer classes).
HELPER_NAMES: set[str] = set()
# Imports a layer's source needs besides keras/ops, as module names ("numpy" is imported as np).
STDLIB_IMPORTS: dict[str, tuple[str, ...]] = {
    "DilatedMaxPool": ("itertools",),
    "Resize": ("numpy",),
    "OnnxResize": ("numpy",),
}


# get_config() entries whose value is not ``self.<init argument>``; entries beyond __init__'s
_CONFIG_EXPR = {
    ("ReshapeTo", "shape"): "self.target",
    ("ReshapeLike", "shape"): "self.target",
    ("Constant", "shape"): "tuple(self.value.shape)",
}
_CONFIG_EXTRA = {"GroupedConvTranspose": ("use_bias",)}
SERIALIZABLE = '@keras.saving.register_keras_serializable(package="transpiled")'


def _layer(name: str, source: str, helpers: tuple[Callable, ...] = ()) -> None:
    """Register a layer's source, made Keras-serializable: registered under ``transpiled>`` with a
    get_config() listing every __init__ argument, so ``model.save("m.keras")`` and
    ``keras.saving.load_model`` round-trip once the generated module is imported."""
    shared = [inspect.getsource(fn).strip("\n") + "\n\n\n" for fn in helpers]
    HELPER_NAMES.update(fn.__name__ for fn in helpers)
    source = source.strip("\n") + "\n"
    match = re.search(r"def __init__\(self,?([^)]*)\):", source)
    params = []
    for part in (match.group(1) if match else "").split(","):
        part = part.strip().split("=")[0].strip()
        if part and not part.startswith("*"):
            params.append(part)
    keys = params + list(_CONFIG_EXTRA.get(name, ()))
    if keys:
        items = [f'"{k}": {_CONFIG_EXPR.get((name, k), "self." + k)}' for k in keys]
        source += "\n    def get_config(self):\n" + _config_return(items)
    SOURCES[name] = "".join(shared) + f"{SERIALIZABLE}\n{source}"


def _config_return(items: list[str]) -> str:
    """get_config()'s body, formatted as ruff would at 8 spaces of indent, 100 columns: one
    ``return {**super().get_config(), ...}`` line where it fits, else the layer's own entries
    first, as ``config = {...}`` (one line where that fits)."""
    one = f"        return {{**super().get_config(), {', '.join(items)}}}"
    if len(one) <= 100:
        return one + "\n"
    config = f"        config = {{{', '.join(items)}}}\n"
    if len(config) > 101:
        config = (
            "        config = {\n" + "".join(f"            {i},\n" for i in items) + "        }\n"
        )
    return config + "        return {**super().get_config(), **config}\n"


_layer(
    "ConstantOperand",
    '''
class ConstantOperand(keras.layers.Layer):
    """y = op(x, c), or op(c, x) with reverse=True, for a constant c of `shape` in the weights
    (stored as float32; `cast`: the dtype to cast an integer or boolean constant to)."""

    def __init__(self, op, shape, reverse=False, cast=None, **kwargs):
        super().__init__(**kwargs)
        self.op, self.shape, self.reverse, self.cast = op, tuple(shape), reverse, cast
        self.value = self.add_weight(
            name="value", shape=self.shape, initializer="zeros", trainable=False
        )

    def call(self, x):
        value = ops.cast(self.value, self.cast) if self.cast else self.value
        a, b = (value, x) if self.reverse else (x, value)
        if self.op == "add":  # not ops.add: on TensorFlow it reads some broadcasts as a bias add
            return ops.convert_to_tensor(a) + ops.convert_to_tensor(b)
        return getattr(ops, self.op)(a, b)
''',
)

_layer(
    "Scalar",
    '''
class Scalar(keras.layers.Layer):
    """y = op(x, value), or op(value, x) with reverse=True, for a Python number."""

    def __init__(self, op, value, reverse=False, **kwargs):
        super().__init__(**kwargs)
        self.op, self.value, self.reverse = op, value, reverse

    def call(self, x):
        a, b = (self.value, x) if self.reverse else (x, self.value)
        return getattr(ops, self.op)(a, b)
''',
)

_layer(
    "Unary",
    '''
class Unary(keras.layers.Layer):
    """y = ops.<fn>(x) for an elementwise keras.ops function (absolute, exp, sqrt, ...)."""

    def __init__(self, fn, **kwargs):
        super().__init__(**kwargs)
        self.fn = fn

    def call(self, x):
        return getattr(ops, self.fn)(x)
''',
)

_layer(
    "SoftmaxOnAxis",
    '''
class SoftmaxOnAxis(keras.layers.Layer):
    """Softmax over a non-last axis, computed in place (TF would transpose it to the end)."""

    def __init__(self, axis, **kwargs):
        super().__init__(**kwargs)
        self.axis = axis

    def call(self, x):
        e = ops.exp(x - ops.max(x, axis=self.axis, keepdims=True))
        return e / ops.sum(e, axis=self.axis, keepdims=True)
''',
)

_layer(
    "Divide",
    '''
class Divide(keras.layers.Layer):
    """y = a / b with broadcasting."""

    def call(self, inputs):
        return ops.divide(inputs[0], inputs[1])
''',
)

_layer(
    "Gelu",
    '''
class Gelu(keras.layers.Layer):
    """GELU; approximate=False is the exact erf form (PyTorch's default), True the tanh form."""

    def __init__(self, approximate, **kwargs):
        super().__init__(**kwargs)
        self.approximate = approximate

    def call(self, x):
        return ops.gelu(x, approximate=self.approximate)
''',
)

_layer(
    "HardSigmoid",
    '''
class HardSigmoid(keras.layers.Layer):
    """PyTorch's hardsigmoid: relu6(x + 3) / 6 (not Keras 2's 0.2x + 0.5)."""

    def call(self, x):
        return ops.relu6(x + 3.0) / 6.0
''',
)

_layer(
    "HardSwish",
    '''
class HardSwish(keras.layers.Layer):
    """PyTorch's hardswish: x * relu6(x + 3) / 6."""

    def call(self, x):
        return x * (ops.relu6(x + 3.0) / 6.0)
''',
)

_layer(
    "ReshapeTo",
    '''
class ReshapeTo(keras.layers.Layer):
    """Reshape to a full target shape (batch included; -1 marks the dynamic dimension). With
    several dynamic dimensions, `sizes_from` names the input axes whose sizes fill the -1s."""

    def __init__(self, shape, sizes_from=None, **kwargs):
        super().__init__(**kwargs)
        self.target = tuple(shape)
        self.sizes_from = tuple(sizes_from) if sizes_from is not None else None

    def call(self, x):
        if self.sizes_from is None:
            return ops.reshape(x, self.target)
        sizes, fill = ops.shape(x), iter(self.sizes_from)
        return ops.reshape(x, [sizes[next(fill)] if d == -1 else d for d in self.target])

    def compute_output_spec(self, x):  # the input's dtype: token ids and masks stay integers
        return keras.KerasTensor(tuple(None if d == -1 else d for d in self.target), x.dtype)
''',
)

_layer(
    "SliceTo",
    '''
class SliceTo(keras.layers.Layer):
    """x[..., start:stop:step, ...] on ``axis`` (tuples: one entry per axis), called on
    [x, ref]: where ``ref_stop`` names an axis of ref, that stop is ref's runtime size there
    plus ``stop`` (a position table cut to the sequence length of the token ids)."""

    def __init__(self, axis, start, stop, step, ref_stop, **kwargs):
        super().__init__(**kwargs)
        self.axis, self.start, self.stop, self.step = axis, start, stop, step
        self.ref_stop = ref_stop

    def call(self, inputs):
        x, sizes = inputs[0], ops.shape(inputs[1])
        index = [slice(None)] * len(x.shape)
        spec = zip(self.axis, self.start, self.stop, self.step, self.ref_stop, strict=True)
        for axis, start, stop, step, r in spec:
            index[axis] = slice(start, stop if r is None else sizes[r] + stop, step)
        return x[tuple(index)]

    def compute_output_spec(self, inputs):  # a size read at run time: unknown when built
        x = inputs[0]
        shape = list(x.shape)
        spec = zip(self.axis, self.start, self.stop, self.step, self.ref_stop, strict=True)
        for axis, start, stop, step, r in spec:
            if r is not None or shape[axis] is None:
                shape[axis] = None
            else:
                shape[axis] = len(range(*slice(start, stop, step).indices(shape[axis])))
        return keras.KerasTensor(tuple(shape), x.dtype)
''',
)

_layer(
    "BroadcastLike",
    '''
class BroadcastLike(keras.layers.Layer):
    """Broadcast x to `shape`, called on [x, ref]: -1 keeps x's size, None takes ref's size on
    axis `ref_axes[i]` (a mask expanded to the dynamic sequence length of the token ids)."""

    def __init__(self, shape, ref_axes, **kwargs):
        super().__init__(**kwargs)
        self.shape, self.ref_axes = tuple(shape), tuple(ref_axes)

    def call(self, inputs):
        x, ref = inputs
        x_shape, ref_shape = ops.shape(x), ops.shape(ref)
        target = [
            ref_shape[self.ref_axes[i]] if s is None else (x_shape[i] if s == -1 else s)
            for i, s in enumerate(self.shape)
        ]
        return ops.broadcast_to(x, target)

    def compute_output_spec(self, inputs):  # a size read at run time: unknown when built
        x = inputs[0]
        shape = [
            None if s is None else (x.shape[i] if s == -1 else s) for i, s in enumerate(self.shape)
        ]
        return keras.KerasTensor(tuple(shape), x.dtype)
''',
)

_layer(
    "ReshapeLike",
    '''
class ReshapeLike(keras.layers.Layer):
    """Reshape x to `shape`, called on [x, ref]: a -1 whose `ref_axes` entry is an axis takes
    ref's runtime size there (batch and length merged for a matmul, then split back)."""

    def __init__(self, shape, ref_axes, **kwargs):
        super().__init__(**kwargs)
        self.target, self.ref_axes = tuple(shape), tuple(ref_axes)

    def call(self, inputs):
        x, sizes = inputs[0], ops.shape(inputs[1])
        return ops.reshape(
            x, [d if r is None else sizes[r] for d, r in zip(self.target, self.ref_axes)]
        )

    def compute_output_spec(self, inputs):  # the input's dtype: ids and masks stay integers
        shape = tuple(None if d == -1 else d for d in self.target)
        return keras.KerasTensor(shape, inputs[0].dtype)
''',
)

_layer(
    "BatchReshape",
    '''
class BatchReshape(keras.layers.Reshape):
    """keras.layers.Reshape with -1 for the leading axis, not the batch size read at run time:
    one reshape to a constant shape (in TFLite: no SHAPE, STRIDED_SLICE and PACK ops)."""

    def call(self, x):
        return ops.reshape(x, (-1, *self.target_shape))
''',
)

_layer(
    "LayerNorm",
    '''
class LayerNorm(keras.layers.LayerNormalization):
    """keras.layers.LayerNormalization (same weights) computed as PyTorch writes it,
    (x - mean) * rsqrt(var + eps) * gamma + beta: two full-size products fewer than Keras'
    x * (rsqrt(var + eps) * gamma) + (beta - mean * rsqrt(var + eps) * gamma)."""

    def call(self, x):
        x = ops.cast(x, self.variable_dtype)  # float32 under mixed precision, as in Keras
        axes = [a % len(x.shape) for a in self.axis]
        mean, var = ops.moments(x, axes=axes, keepdims=True)
        y = (x - mean) * ops.rsqrt(var + self.epsilon)
        shape = [x.shape[a] if a in axes else 1 for a in range(len(x.shape))]
        if self.scale:
            y = y * ops.reshape(self.gamma, shape)
        if self.center:
            y = y + ops.reshape(self.beta, shape)
        return ops.cast(y, self.compute_dtype)
''',
)

_layer(
    "TransposeTo",
    '''
class TransposeTo(keras.layers.Layer):
    """Permute all axes, batch included."""

    def __init__(self, perm, **kwargs):
        super().__init__(**kwargs)
        self.perm = tuple(perm)

    def call(self, x):
        return ops.transpose(x, self.perm)
''',
)

_layer(
    "Pad",
    '''
class Pad(keras.layers.Layer):
    """Pad every axis by (before, after): constant, reflect, replicate or circular (PyTorch)."""

    def __init__(self, pads, mode="constant", value=0.0, **kwargs):
        super().__init__(**kwargs)
        self.pads, self.mode, self.value = tuple(tuple(p) for p in pads), mode, value

    def call(self, x):
        if self.mode == "constant":
            return ops.pad(x, self.pads, constant_values=self.value)
        for axis, (before, after) in enumerate(self.pads):
            if before or after:
                parts = []
                for start, stop, flip, repeats in pad_pieces(before, after, self.mode):
                    if start is None and stop is None:
                        parts.append(x)
                        continue
                    part = x[(slice(None),) * axis + (slice(start, stop),)]
                    if flip:
                        part = ops.flip(part, axis=axis)
                    if repeats > 1:
                        part = ops.repeat(part, repeats, axis=axis)
                    parts.append(part)
                x = ops.concatenate(parts, axis=axis)
        return x
''',
    helpers=(_planning.pad_pieces,),
)

_layer(
    "ConstantPad",
    '''
class ConstantPad(keras.layers.Layer):
    """Pad every axis by (before, after) with ``value``."""

    def __init__(self, pads, value=0.0, **kwargs):
        super().__init__(**kwargs)
        self.pads, self.value = tuple(tuple(p) for p in pads), value

    def call(self, x):
        return ops.pad(x, self.pads, constant_values=self.value)
''',
)

_layer(
    "Linear",
    '''
class Linear(keras.layers.Layer):
    """PyTorch's Linear on the last axis of a tensor of any rank: the leading axes are folded
    into rows around one matmul (keras.layers.Dense goes through tensordot, a Transpose)."""

    def __init__(self, units, use_bias=True, **kwargs):
        super().__init__(**kwargs)
        self.units, self.use_bias = units, use_bias

    def build(self, input_shape):
        self.kernel = self.add_weight(name="kernel", shape=(input_shape[-1], self.units))
        if self.use_bias:
            self.bias = self.add_weight(name="bias", shape=(self.units,), initializer="zeros")

    def call(self, x):
        lead = tuple(-1 if d is None else d for d in x.shape[1:-1])
        y = ops.matmul(ops.reshape(x, (-1, x.shape[-1])), self.kernel)
        if self.use_bias:
            y = y + self.bias
        return ops.reshape(y, (-1, *lead, self.units))
''',
)

_layer(
    "AdaptivePool",
    '''
class AdaptivePool(keras.layers.Layer):
    """PyTorch's adaptive pooling (channels-last): output cell i along each spatial axis
    reduces (mean or max) the input window windows[axis][i] = (start, stop)."""

    def __init__(self, windows, reduce, **kwargs):
        super().__init__(**kwargs)
        self.windows = tuple(tuple(tuple(w) for w in axis) for axis in windows)
        self.reduce = reduce

    def call(self, x):
        fn = ops.mean if self.reduce == "mean" else ops.max
        for axis, windows in enumerate(self.windows, start=1):
            parts = []
            for start, stop in windows:
                index = (slice(None),) * axis + (slice(start, stop),)
                parts.append(fn(x[index], axis=axis, keepdims=True))
            x = ops.concatenate(parts, axis=axis)
        return x
''',
)

_layer(
    "Subsample",
    '''
class Subsample(keras.layers.Layer):
    """Keep every stride-th position on each spatial axis (channels-last): a strided, dilated
    convolution is the stride-1 convolution followed by this."""

    def __init__(self, strides, **kwargs):
        super().__init__(**kwargs)
        self.strides = tuple(strides)

    def call(self, x):
        return x[(slice(None),) + tuple(slice(None, None, s) for s in self.strides)]
''',
)

_layer(
    "Slice",
    '''
class Slice(keras.layers.Layer):
    """x[..., start:stop:step, ...] on `axis` (tuples: one entry per axis; stop None: the end)."""

    def __init__(self, axis, start, stop=None, step=1, **kwargs):
        super().__init__(**kwargs)
        self.axis, self.start, self.stop, self.step = axis, start, stop, step

    def call(self, x):
        spec = (self.axis, self.start, self.stop, self.step)
        if not isinstance(self.axis, (tuple, list)):
            spec = tuple((v,) for v in spec)
        index = [slice(None)] * len(x.shape)
        for axis, start, stop, step in zip(*spec, strict=True):
            index[axis] = slice(start, stop, step)
        return x[tuple(index)]
''',
)

_layer(
    "DilatedMaxPool",
    '''
class DilatedMaxPool(keras.layers.Layer):
    """Max pooling with dilation ('valid', channels-last): the max over the kernel's taps, each
    a strided slice of the input."""

    def __init__(self, pool_size, strides, dilation, **kwargs):
        super().__init__(**kwargs)
        self.pool_size, self.strides = tuple(pool_size), tuple(strides)
        self.dilation = tuple(dilation)

    def call(self, x):
        out = None
        for tap in pool_taps(self.pool_size, self.strides, self.dilation):
            part = x[(slice(None),) + tuple(slice(*s) for s in tap)]
            out = part if out is None else ops.maximum(out, part)
        return out
''',
    helpers=(_planning.pool_taps,),
)

_layer(
    "ZeroInsert",
    '''
class ZeroInsert(keras.layers.Layer):
    """Insert stride - 1 zeros between neighbours on each spatial axis (channels-last, static
    sizes): a strided, dilated transposed conv is this, then the stride-1 transposed conv."""

    def __init__(self, strides, **kwargs):
        super().__init__(**kwargs)
        self.strides = tuple(strides)

    def call(self, x):
        for axis, s in enumerate(self.strides, start=1):
            if s == 1:
                continue
            zeros = ops.expand_dims(ops.zeros_like(x), axis + 1)
            spread = ops.concatenate([ops.expand_dims(x, axis + 1)] + [zeros] * (s - 1), axis + 1)
            size = (x.shape[axis] * s,)
            shape = (-1,) + tuple(x.shape[1:axis]) + size + tuple(x.shape[axis + 1 :])
            x = ops.reshape(spread, shape)[(slice(None),) * axis + (slice(None, 1 - s),)]
        return x
''',
)

_layer(
    "GroupedConvTranspose",
    '''
class GroupedConvTranspose(keras.layers.Layer):
    """Transposed convolution with groups ('valid', channels-last), which Keras' ConvNDTranspose
    lacks: one transposed convolution per group, concatenated."""

    def __init__(self, filters, kernel_size, groups, strides=None, **kwargs):
        use_bias = kwargs.pop("use_bias", True)
        super().__init__(**kwargs)
        n = len(kernel_size)
        self.filters, self.kernel_size, self.groups = filters, tuple(kernel_size), groups
        self.strides = tuple(strides or (1,) * n)
        self.use_bias = use_bias

    def build(self, input_shape):
        shape = self.kernel_size + (self.filters // self.groups, input_shape[-1])
        self.kernel = self.add_weight(name="kernel", shape=shape)
        if self.use_bias:
            self.bias = self.add_weight(name="bias", shape=(self.filters,), initializer="zeros")

    def call(self, x):
        step = x.shape[-1] // self.groups
        outs = []
        for g in range(self.groups):
            part = x[..., g * step : (g + 1) * step]
            kernel = self.kernel[..., g * step : (g + 1) * step]
            outs.append(ops.conv_transpose(part, kernel, self.strides, "valid"))
        y = ops.concatenate(outs, axis=-1)
        return y + self.bias if self.use_bias else y
''',
)

_layer(
    "Reduce",
    '''
class Reduce(keras.layers.Layer):
    """Reduce (mean, sum, max or min) over the given axes."""

    def __init__(self, kind, axis, keepdims=False, **kwargs):
        super().__init__(**kwargs)
        self.kind, self.axis, self.keepdims = kind, tuple(axis), keepdims

    def call(self, x):
        return getattr(ops, self.kind)(x, axis=self.axis, keepdims=self.keepdims)
''',
)

_layer(
    "ArgReduce",
    '''
class ArgReduce(keras.layers.Layer):
    """The int64 index of the first maximum (kind "max") or minimum along one axis."""

    def __init__(self, kind, axis, keepdims=False, **kwargs):
        super().__init__(**kwargs)
        self.kind, self.axis, self.keepdims = kind, axis, keepdims

    def call(self, x):
        fn = ops.argmax if self.kind == "max" else ops.argmin
        return ops.cast(fn(x, axis=self.axis, keepdims=self.keepdims), "int64")
''',
)

_layer(
    "LogSoftmax",
    '''
class LogSoftmax(keras.layers.Layer):
    """log(softmax(x)) over one axis, computed stably in place."""

    def __init__(self, axis, **kwargs):
        super().__init__(**kwargs)
        self.axis = axis

    def call(self, x):
        shifted = x - ops.max(x, axis=self.axis, keepdims=True)
        return shifted - ops.log(ops.sum(ops.exp(shifted), axis=self.axis, keepdims=True))
''',
)

_layer(
    "Softplus",
    '''
class Softplus(keras.layers.Layer):
    """PyTorch's softplus: log(1 + exp(beta x)) / beta, and x where beta x > threshold."""

    def __init__(self, beta=1.0, threshold=20.0, **kwargs):
        super().__init__(**kwargs)
        self.beta, self.threshold = beta, threshold

    def call(self, x):
        scaled = x * self.beta
        soft = ops.log1p(ops.exp(ops.minimum(scaled, self.threshold))) / self.beta
        return ops.where(scaled > self.threshold, x, soft)
''',
)

_layer(
    "Clamp",
    '''
class Clamp(keras.layers.Layer):
    """Clamp to [low, high] (None: unbounded on that side)."""

    def __init__(self, low, high, **kwargs):
        super().__init__(**kwargs)
        self.low, self.high = low, high

    def call(self, x):
        if self.low is not None:
            x = ops.maximum(x, self.low)
        if self.high is not None:
            x = ops.minimum(x, self.high)
        return x
''',
)

_layer(
    "FloorDivide",
    '''
class FloorDivide(keras.layers.Layer):
    """a // b as PyTorch computes it for floats: the quotient of a minus the exact remainder,
    rounded (floor(a / b) would differ on some integer boundaries). The divisor (or with
    reverse=True the dividend) is the second input, a Python number, or a stored constant."""

    def __init__(self, value=None, shape=None, reverse=False, **kwargs):
        super().__init__(**kwargs)
        self.value, self.shape, self.reverse = value, shape, reverse
        if shape is not None:
            self.constant = self.add_weight(
                name="value", shape=tuple(shape), initializer="zeros", trainable=False
            )

    def call(self, inputs):
        if self.value is None and self.shape is None:
            a, b = inputs
        else:
            c = self.value if self.shape is None else self.constant
            a, b = (c, inputs) if self.reverse else (inputs, c)
        a = ops.convert_to_tensor(a, "float32")
        b = ops.convert_to_tensor(b, "float32")
        mod = ops.sign(a) * ops.mod(ops.abs(a), ops.abs(b))  # C's fmod, exactly
        div = (a - mod) / b
        div = ops.where((mod != 0) & ((b < 0) != (mod < 0)), div - 1, div)
        q = ops.floor(div)
        q = ops.where(div - q > 0.5, q + 1, q)
        return ops.where(b == 0, a / b, q)
''',
)

_layer(
    "Binary",
    '''
class Binary(keras.layers.Layer):
    """y = ops.<fn>(a, b) for two tensors, broadcast from the right as numpy and PyTorch do
    (Keras' merge layers align lower-rank inputs with the batch axis instead)."""

    def __init__(self, fn, **kwargs):
        super().__init__(**kwargs)
        self.fn = fn

    def call(self, inputs):
        a, b = inputs
        if self.fn == "add":  # not ops.add: on TensorFlow it reads some broadcasts as a bias add
            return ops.convert_to_tensor(a) + ops.convert_to_tensor(b)
        return getattr(ops, self.fn)(a, b)
''',
)

_layer(
    "MatMul",
    '''
class MatMul(keras.layers.Layer):
    """a @ b (numpy matmul semantics, batched)."""

    def call(self, inputs):
        return ops.matmul(inputs[0], inputs[1])
''',
)

_layer(
    "Einsum",
    '''
class Einsum(keras.layers.Layer):
    """ops.einsum(equation, *inputs)."""

    def __init__(self, equation, **kwargs):
        super().__init__(**kwargs)
        self.equation = equation

    def call(self, inputs):
        return ops.einsum(self.equation, *inputs)
''',
)

_layer(
    "BroadcastTo",
    '''
class BroadcastTo(keras.layers.Layer):
    """Broadcast to `shape`: -1 keeps the size, None takes the batch size of the second input."""

    def __init__(self, shape, **kwargs):
        super().__init__(**kwargs)
        self.shape = tuple(shape)

    def call(self, inputs):
        x, ref = (inputs[0], inputs[1]) if isinstance(inputs, list | tuple) else (inputs, None)
        x_shape = ops.shape(x)
        target = [
            ops.shape(ref)[0] if s is None else (x_shape[i] if s == -1 else s)
            for i, s in enumerate(self.shape)
        ]
        return ops.broadcast_to(x, target)
''',
)

_layer(
    "Resize",
    '''
class Resize(keras.layers.Layer):
    """PyTorch's interpolate on the spatial axes (channels-last): nearest (floor), nearest-exact
    (half-pixel) or linear, with align_corners as in PyTorch; `scales` is the coordinate scale
    PyTorch uses per axis (1/scale_factor), else input/output size."""

    def __init__(self, sizes, mode, align_corners=False, scales=None, **kwargs):
        super().__init__(**kwargs)
        self.sizes, self.mode, self.align_corners = tuple(sizes), mode, align_corners
        self.scales = tuple(scales) if scales is not None else None

    def call(self, x):
        for axis, out in enumerate(self.sizes, start=1):
            scale = self.scales[axis - 1] if self.scales else None
            plan = resize_axis(x.shape[axis], out, self.mode, self.align_corners, scale)
            low, high, weight = plan
            if high is None:
                x = ops.take(x, low, axis=axis)
                continue
            shape = [out if a == axis else 1 for a in range(len(x.shape))]
            weight = ops.convert_to_tensor(weight.reshape(shape), dtype=x.dtype)
            a, b = ops.take(x, low, axis=axis), ops.take(x, high, axis=axis)
            x = a + (b - a) * weight
        return x
''',
    helpers=(_planning.resize_axis,),
)

_layer(
    "OnnxResize",
    '''
class OnnxResize(keras.layers.Layer):
    """ONNX's Resize on the spatial axes (channels-last), as onnx's reference computes it: per
    axis, taps (indices and weights) from `coord` (the coordinate_transformation_mode), `mode`
    (nearest with `nearest_mode`, linear, cubic with `cubic_a`), `exclude_outside`, `antialias`;
    `factors`: ONNX's scale (output / input size) per axis."""

    def __init__(
        self,
        sizes,
        mode,
        coord,
        factors,
        nearest_mode="round_prefer_floor",
        cubic_a=-0.75,
        exclude_outside=False,
        antialias=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.sizes, self.mode, self.coord = tuple(sizes), mode, coord
        self.factors, self.nearest_mode, self.cubic_a = tuple(factors), nearest_mode, cubic_a
        self.exclude_outside, self.antialias = exclude_outside, antialias

    def call(self, x):
        for axis, out in enumerate(self.sizes, start=1):
            index, weight = resize_taps(
                x.shape[axis],
                out,
                self.mode,
                self.coord,
                self.factors[axis - 1],
                self.nearest_mode,
                self.cubic_a,
                self.exclude_outside,
                self.antialias,
            )
            if weight is None:
                x = ops.take(x, index[:, 0], axis=axis)
                continue
            shape = [out if a == axis else 1 for a in range(len(x.shape))]
            y = 0.0
            for t in range(index.shape[1]):
                w = ops.convert_to_tensor(weight[:, t].reshape(shape), dtype=x.dtype)
                y = y + ops.take(x, index[:, t], axis=axis) * w
            x = y
        return x
''',
    helpers=(_planning.resize_taps,),
)

_layer(
    "Constant",
    '''
class Constant(keras.layers.Layer):
    """A constant tensor stored in the weights; the input only anchors it in the graph (stored
    as float32; `cast`: the dtype to cast an integer or boolean constant to)."""

    def __init__(self, shape, cast=None, **kwargs):
        super().__init__(**kwargs)
        self.cast = cast
        self.value = self.add_weight(
            name="value", shape=tuple(shape), initializer="zeros", trainable=False
        )

    def call(self, anchor):
        value = ops.convert_to_tensor(self.value)
        return ops.cast(value, self.cast) if self.cast else value
''',
)

_layer(
    "DynamicConv",
    '''
class DynamicConv(keras.layers.Layer):
    """Convolution with a kernel computed by the model (channels-last input, kernel in PyTorch's
    (out, in / groups, *k) layout as the second input); groups follow from the shapes."""

    def __init__(self, strides, padding, dilation_rate, **kwargs):
        super().__init__(**kwargs)
        self.strides, self.padding = tuple(strides), padding
        self.dilation_rate = tuple(dilation_rate)

    def call(self, inputs):
        x, weight = inputs
        n = len(weight.shape) - 2
        kernel = ops.transpose(weight, tuple(range(2, 2 + n)) + (1, 0))
        return ops.conv(x, kernel, self.strides, self.padding, dilation_rate=self.dilation_rate)
''',
)

_layer(
    "PerSampleConv",
    '''
class PerSampleConv(keras.layers.Layer):
    """One kernel per sample ('valid', channels-last): kernels (N, O, C, kh, kw) as PyTorch
    lays them out. Patches of each sample times its own kernel, so the batch stays dynamic."""

    def __init__(self, strides, dilation_rate, **kwargs):
        super().__init__(**kwargs)
        self.strides, self.dilation_rate = tuple(strides), tuple(dilation_rate)

    def call(self, inputs):
        x, kernels = inputs
        _, out, channels, kh, kw = kernels.shape
        patches = ops.image.extract_patches(
            x, (kh, kw), self.strides, self.dilation_rate, padding="valid"
        )
        flat = ops.reshape(ops.transpose(kernels, (0, 3, 4, 2, 1)), (-1, kh * kw * channels, out))
        return ops.einsum("bhwk,bko->bhwo", patches, flat)
''',
)

_layer(
    "Cast",
    '''
class Cast(keras.layers.Layer):
    """x as another dtype (PyTorch's .float(), .long(), .bool(), .to(dtype))."""

    def __init__(self, to, **kwargs):
        super().__init__(**kwargs)
        self.to = to

    def call(self, x):
        return ops.cast(x, self.to)

    def compute_output_spec(self, x):
        return keras.KerasTensor(x.shape, dtype=self.to)
''',
)

_layer(
    "Where",
    '''
class Where(keras.layers.Layer):
    """torch.where(condition, x, y); `values` holds the operands given as numbers (None for the
    tensors, which come in order after the condition)."""

    def __init__(self, values, dtype_of_output, **kwargs):
        super().__init__(**kwargs)
        self.values, self.dtype_of_output = tuple(values), dtype_of_output

    def call(self, inputs):
        tensors = list(inputs[1:])
        xy = [tensors.pop(0) if v is None else v for v in self.values]
        xy = [ops.cast(t, self.dtype_of_output) for t in xy]
        return ops.where(ops.cast(inputs[0], "bool"), xy[0], xy[1])

    def compute_output_spec(self, inputs):
        return keras.KerasTensor(_broadcast_shape([t.shape for t in inputs]), self.dtype_of_output)


def _broadcast_shape(shapes):
    rank = max(len(s) for s in shapes)
    out = []
    for k in range(rank):
        dims = [s[len(s) - rank + k] for s in shapes if len(s) - rank + k >= 0]
        known = [d for d in dims if d is not None and d != 1]
        out.append(known[0] if known else (None if None in dims else 1))
    return tuple(out)
''',
)

_layer(
    "Take",
    '''
class Take(keras.layers.Layer):
    """x indexed along `axis` by integer indices: a constant list `indices`, or a second input."""

    def __init__(self, axis, indices=None, **kwargs):
        super().__init__(**kwargs)
        self.axis, self.indices = axis, indices

    def call(self, inputs):
        if self.indices is not None:
            return ops.take(inputs, ops.convert_to_tensor(self.indices, "int32"), axis=self.axis)
        x, index = inputs
        # negative indices wrap here, against x's size: computed from x, this stays next to
        # the gather in a TFLite graph (a wrap mask computed early from the index alone was
        # clobbered by TFLite's buffer reuse: CLIP's pooling read out of bounds)
        index = ops.mod(ops.cast(index, "int32"), ops.shape(x)[self.axis])
        return ops.take(x, index, axis=self.axis)
''',
)

# -- sequence and transformer models (issue 12, s2-hf-text) --
_layer(
    "TakeAlongAxis",
    '''
class TakeAlongAxis(keras.layers.Layer):
    """torch.gather: x indexed along `axis` by an index tensor of x's rank (a constant list
    `indices`, or a second input); the result takes the indices' shape."""

    def __init__(self, axis, indices=None, **kwargs):
        super().__init__(**kwargs)
        self.axis, self.indices = axis, indices

    def call(self, inputs):
        if self.indices is not None:
            x, index = inputs, ops.convert_to_tensor(self.indices, "int32")
        else:
            x, index = inputs[0], ops.cast(inputs[1], "int32")
        return ops.take_along_axis(x, index, axis=self.axis)
''',
)

_layer(
    "Triangle",
    '''
class Triangle(keras.layers.Layer):
    """torch.triu (upper=True) / torch.tril of the last two axes, zero elsewhere."""

    def __init__(self, upper, diagonal=0, **kwargs):
        super().__init__(**kwargs)
        self.upper, self.diagonal = upper, diagonal

    def call(self, x):
        shape = ops.shape(x)
        rows = ops.expand_dims(ops.arange(shape[-2]), 1)
        cols = ops.expand_dims(ops.arange(shape[-1]), 0)
        offset = cols - rows
        keep = offset >= self.diagonal if self.upper else offset <= self.diagonal
        return ops.where(keep, x, ops.zeros_like(x))
''',
)

_layer(
    "TopK",
    '''
class TopK(keras.layers.Layer):
    """torch.topk / torch.sort: (values, int64 indices) of the k largest (smallest with
    largest=False) along `axis`, sorted."""

    def __init__(self, k, axis, largest=True, **kwargs):
        super().__init__(**kwargs)
        self.k, self.axis, self.largest = k, axis, largest

    def call(self, x):
        rank = len(x.shape)
        perm = [a for a in range(rank) if a != self.axis] + [self.axis]
        moved = x if self.axis == rank - 1 else ops.transpose(x, perm)
        values, indices = ops.top_k(moved if self.largest else -moved, self.k)
        values = values if self.largest else -values
        if self.axis != rank - 1:
            back = [perm.index(a) for a in range(rank)]
            values, indices = ops.transpose(values, back), ops.transpose(indices, back)
        return values, ops.cast(indices, "int64")
''',
)

_layer(
    "GridSample",
    '''
class GridSample(keras.layers.Layer):
    """F.grid_sample of x (N, C, H, W) at grid (N, Ho, Wo, 2) -> (N, C, Ho, Wo): the sum over
    the taps of grid_sample_taps of the gathered values times their weights."""

    def __init__(self, mode, padding_mode, align_corners, **kwargs):
        super().__init__(**kwargs)
        self.mode, self.padding_mode, self.align_corners = mode, padding_mode, align_corners

    def call(self, inputs):
        # float32 under mixed precision: float16 cannot address a pixel of a large image
        x, grid = (ops.cast(t, self.variable_dtype) for t in inputs)
        c, h, w = x.shape[1:]
        points = grid.shape[1] * grid.shape[2]
        flat = ops.reshape(x, (-1, c, h * w))
        taps = grid_sample_taps(ops, grid, (h, w), self.mode, self.padding_mode, self.align_corners)
        out = 0.0
        for index, weight in taps:
            values = ops.take_along_axis(flat, ops.reshape(index, (-1, 1, points)), axis=2)
            out = out + values * ops.reshape(weight, (-1, 1, points))
        return ops.cast(ops.reshape(out, (-1, c, grid.shape[1], grid.shape[2])), self.compute_dtype)
''',
    helpers=(_planning.grid_source, _planning.grid_sample_taps),
)

_layer(
    "CumSum",
    '''
class CumSum(keras.layers.Layer):
    """Cumulative sum along `axis`."""

    def __init__(self, axis, **kwargs):
        super().__init__(**kwargs)
        self.axis = axis

    def call(self, x):
        return ops.cumsum(x, axis=self.axis)

    def compute_output_spec(self, x):
        return keras.KerasTensor(x.shape, dtype=x.dtype)
''',
)

_layer(
    "Flip",
    '''
class Flip(keras.layers.Layer):
    """Reverse the order along `axes`."""

    def __init__(self, axes, **kwargs):
        super().__init__(**kwargs)
        self.axes = tuple(axes)

    def call(self, x):
        for axis in self.axes:
            x = ops.flip(x, axis=axis)
        return x
''',
)

_layer(
    "Roll",
    '''
class Roll(keras.layers.Layer):
    """torch.roll: shift the elements along each of `axes` by `shifts`, wrapping around. On an
    axis of known size, two slices concatenated (TFLite has no builtin roll)."""

    def __init__(self, shifts, axes, **kwargs):
        super().__init__(**kwargs)
        self.shifts, self.axes = tuple(shifts), tuple(axes)

    def call(self, x):
        for shift, axis in zip(self.shifts, self.axes, strict=True):
            n = x.shape[axis]
            if n is None:
                x = ops.roll(x, shift, axis=axis)
                continue
            cut = n - shift % n
            if cut == n:
                continue
            head = (slice(None),) * axis
            x = ops.concatenate([x[head + (slice(cut, None),)], x[head + (slice(0, cut),)]], axis)
        return x
''',
)
