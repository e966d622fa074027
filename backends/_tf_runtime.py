"""TensorFlow runtime helpers both backends share: a Keras model traced into a ``tf.function``
with a dynamic batch, numpy-in/numpy-out callables, input casting and Transpose counting.

TensorFlow is imported lazily (inside the functions), through the package's process hygiene.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

__all__ = [
    "builtin_rnn_loops",
    "cast_input",
    "count_transposes",
    "has_recurrent_layers",
    "keras_function",
    "numpy_callable",
    "scan_over_time",
    "tensorflow",
]


def tensorflow() -> Any:
    """The ``tensorflow`` module, imported with our process hygiene (triton kept out)."""
    from transpiler._hygiene import import_keras

    import_keras()
    import tensorflow as tf

    return tf


def cast_input(x: Any, dtype: Any) -> Any:
    """An input to the signature's dtype (numpy float64 -> float32, ...), as a tf tensor."""
    import numpy as np

    tf = tensorflow()
    if isinstance(x, tf.Tensor | tf.Variable):
        return x if x.dtype == dtype else tf.cast(x, dtype)
    return tf.convert_to_tensor(np.asarray(x, dtype=dtype.as_numpy_dtype))


def keras_function(model: Any, builtin_loops: bool = False) -> Any:
    """``model`` (a Keras model on the TensorFlow backend) as one ``tf.function`` whose input
    signature is the model's inputs (dynamic batch); positional tensors in, as ``model`` gives
    them out. ``.get_concrete_function()`` is its graph (TFLite, Transpose counting).
    ``builtin_loops``: recurrent layers traced with ``scan_over_time`` (for TFLite: Keras' own
    loop needs Flex ops there, and is faster everywhere else)."""
    tf = tensorflow()
    specs = [tf.TensorSpec(t.shape, t.dtype) for t in model.inputs]

    def call(*xs: Any) -> Any:
        # active while the function traces
        with builtin_rnn_loops() if builtin_loops else contextlib.nullcontext():
            return model(list(xs) if len(xs) > 1 else xs[0], training=False)

    return tf.function(call, input_signature=specs)


def has_recurrent_layers(model: Any) -> bool:
    """Whether a Keras model holds a recurrent layer (``keras.layers.RNN`` and its subclasses
    LSTM / GRU / SimpleRNN, wrapped in Bidirectional or not), nested models included."""
    import keras

    def walk(layer: Any) -> bool:
        if isinstance(layer, keras.layers.RNN | keras.layers.Bidirectional):
            return True
        return any(walk(inner) for inner in getattr(layer, "layers", ()) if inner is not layer)

    return walk(model)


def scan_over_time(
    step: Callable[[Any, list[Any]], tuple[Any, list[Any]]],
    xs: Any,
    states: Sequence[Any],
    *,
    reverse: bool = False,
    all_outputs: bool = True,
) -> tuple[Any, Any, list[Any]]:
    """A recurrence over axis 1 of ``xs`` (batch-major, ``(N, T, ...)``) that TFLite runs with
    builtin ops at any batch size and sequence length: one ``while_loop`` (TFLite's builtin
    WHILE) whose loop variables are plain tensors of fixed shapes. ``tf.scan`` and Keras' own
    loop write the steps into a TensorList, which the TFLite converter lowers to builtins only
    with a fully static element shape (no dynamic batch), and otherwise needs Flex ops.

    ``step(x_t, states) -> (output, new_states)``; the output's size is the first state's
    last dim (true of LSTM, GRU and SimpleRNN cells). Step t's output is selected into row t
    of an ``(N, T, H)`` tensor (``where(t == positions, out, outputs)``: exact; each step
    touches all T rows, so the cost grows with T², cheap beside the cell's matmuls at the
    lengths recurrent layers see). ``reverse`` runs from the last step to the first; the
    outputs then come in processing order, as Keras' ``go_backwards`` gives them. Returns
    ``(last_output, outputs (N, T, H) or (N, 1, H) without all_outputs, final_states)``."""
    tf = tensorflow()
    if reverse:
        xs = tf.reverse(xs, [1])
    states = list(states)
    batch, steps = tf.shape(xs)[0], tf.shape(xs)[1]
    units = states[0].shape[-1]
    last = tf.zeros(tf.stack([batch, units]), xs.dtype)
    outputs = tf.zeros(tf.stack([batch, steps if all_outputs else 1, units]), xs.dtype)
    positions = tf.reshape(tf.range(steps), [1, -1, 1])

    def body(t: Any, last: Any, outputs: Any, *carried: Any) -> tuple[Any, ...]:
        out, new = step(tf.gather(xs, t, axis=1), list(carried))
        new = list(new) if isinstance(new, list | tuple) else [new]
        if all_outputs:
            outputs = tf.where(tf.equal(positions, t), tf.expand_dims(out, 1), outputs)
        return (t + 1, out, outputs, *new)

    _, last, outputs, *final = tf.while_loop(
        lambda t, *_: t < steps, body, (tf.constant(0), last, outputs, *states)
    )
    if not all_outputs:
        outputs = tf.expand_dims(last, 1)
    return last, outputs, final


@contextlib.contextmanager
def builtin_rnn_loops() -> Iterator[None]:
    """Keras' recurrent layers (LSTM, GRU, SimpleRNN, in Bidirectional or not) traced with
    ``scan_over_time`` instead of Keras' TensorList loop, and never with cuDNN's fused kernels:
    the same cell, step for step, in a graph TFLite converts with builtin ops at a dynamic batch
    and length. Only while the context is active (a tf.function tracing the model); a masked
    or time-major call keeps Keras' own loop."""
    from keras.src import backend as keras_backend

    original = getattr(keras_backend, "rnn", None)
    fused = {n: getattr(keras_backend, n, None) for n in ("lstm", "gru")}
    if original is None:  # another Keras layout: nothing to replace
        yield
        return

    def rnn(step, inputs, initial_states, go_backwards=False, mask=None, constants=None,
            unroll=False, input_length=None, time_major=False, zero_output_for_mask=False,
            return_all_outputs=True):  # fmt: skip
        tf = tensorflow()
        plain = isinstance(inputs, tf.Tensor) and inputs.shape.rank == 3
        if mask is not None or constants or time_major or unroll or not plain:
            return original(
                step, inputs, initial_states, go_backwards=go_backwards, mask=mask,
                constants=constants, unroll=unroll, input_length=input_length,
                time_major=time_major, zero_output_for_mask=zero_output_for_mask,
                return_all_outputs=return_all_outputs,
            )  # fmt: skip
        return scan_over_time(
            step, inputs, initial_states, reverse=go_backwards, all_outputs=return_all_outputs
        )

    def no_fused(*args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError  # Keras then falls back to the generic loop (rnn above)

    keras_backend.rnn = rnn
    for name, fn in fused.items():
        if fn is not None:
            setattr(keras_backend, name, no_fused)
    try:
        yield
    finally:
        keras_backend.rnn = original
        for name, fn in fused.items():
            if fn is not None:
                setattr(keras_backend, name, fn)


def numpy_callable(
    function: Callable[..., Any], specs: Sequence[Any], n_outputs: int, owner: Any = None
) -> Callable[..., Any]:
    """numpy arrays (or tf/torch tensors) in, numpy out: one array, or a tuple for several
    outputs. Inputs are cast to ``specs``' dtypes. ``owner``: an object the callable keeps alive
    with ``function`` (a loaded SavedModel owns the variables its function reads)."""
    tf = tensorflow()

    def fn(*arrays: Any) -> Any:
        xs = [a.numpy() if _is_torch(a) else a for a in arrays]
        ys = function(*(cast_input(x, s.dtype) for x, s in zip(xs, specs, strict=True)))
        ys = ys if isinstance(ys, list | tuple) else [ys]
        # np.asarray: a rank-0 tensor's .numpy() is a numpy scalar, not an array
        outs = tuple(np.asarray(y.numpy() if isinstance(y, tf.Tensor) else y) for y in ys)
        return outs[0] if n_outputs == 1 else outs

    fn.owner = owner  # type: ignore[attr-defined]  # alive as long as the callable
    return fn


def _is_torch(a: Any) -> bool:
    return type(a).__module__.startswith("torch")


def count_transposes(concrete: Any) -> int:
    """``Transpose`` ops in a concrete function's graph, its function library included."""
    graph_def = concrete.graph.as_graph_def()
    nodes = list(graph_def.node)
    for f in graph_def.library.function:
        nodes.extend(f.node_def)
    return sum(1 for n in nodes if n.op in ("Transpose", "ConjugateTranspose"))
