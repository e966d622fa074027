"""TensorFlow runtime helpers both backends share: a Keras model traced into a ``tf.function``
with a dynamic batch, numpy-in/numpy-out callables, input casting and Transpose counting.

TensorFlow is imported lazily (inside the functions), through the package's process hygiene.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

__all__ = [
    "cast_input",
    "count_transposes",
    "keras_function",
    "numpy_callable",
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


def keras_function(model: Any) -> Any:
    """``model`` (a Keras model on the TensorFlow backend) as one ``tf.function`` whose input
    signature is the model's inputs (dynamic batch); positional tensors in, as ``model`` gives
    them out. ``.get_concrete_function()`` is its graph (TFLite, Transpose counting)."""
    tf = tensorflow()
    specs = [tf.TensorSpec(t.shape, t.dtype) for t in model.inputs]

    def call(*xs: Any) -> Any:
        return model(list(xs) if len(xs) > 1 else xs[0], training=False)

    return tf.function(call, input_signature=specs)


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
    """``Transpose`` ops in a concrete function's graph, its function library included; an
    identity permutation built from constants (``tf.tensordot``'s, for a Dense on a tensor
    with several unknown dims: a dynamic sequence length) moves nothing and is not counted
    (TFLite's converter drops it)."""
    graph_def = concrete.graph.as_graph_def()
    groups = [list(graph_def.node)] + [list(f.node_def) for f in graph_def.library.function]
    count = 0
    for nodes in groups:
        by_name = {n.name: n for n in nodes}
        for n in nodes:
            if n.op in ("Transpose", "ConjugateTranspose"):
                count += not _identity_perm(n, by_name)
    return count


def _identity_perm(node: Any, by_name: dict[str, Any]) -> bool:
    """The Transpose's permutation is a constant (or a concatenation of constants) equal to
    ``0, 1, ..., r-1``."""
    perm = _constant_of(node.input[1] if len(node.input) > 1 else "", by_name)
    return perm is not None and perm.ndim == 1 and bool((perm == np.arange(perm.size)).all())


def _constant_of(ref: str, by_name: dict[str, Any], depth: int = 0) -> Any:
    """The value of a graph input reference when it is a Const or a ConcatV2 of Consts."""
    from tensorflow.python.framework import tensor_util

    node = by_name.get(ref.lstrip("^").split(":")[0])
    if node is None or depth > 2:
        return None
    if node.op == "Const":
        return np.asarray(tensor_util.MakeNdarray(node.attr["value"].tensor))
    if node.op == "ConcatV2" and len(node.input) >= 2:
        parts = [_constant_of(r, by_name, depth + 1) for r in node.input[:-1]]
        axis = _constant_of(node.input[-1], by_name, depth + 1)
        if any(p is None for p in parts) or axis is None:
            return None
        return np.concatenate([p.reshape(-1) for p in parts]) if int(axis) == 0 else None
    return None
