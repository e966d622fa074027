"""Build the generated model with its converted weights, and write its weights file.

The result is what ``build_model()``, ``layer.set_weights(...)`` per layer and
``model.save_weights(path)`` give (same variables, same ``.weights.h5``: Keras' own layout,
paths and metadata), without work that path spends for nothing (measured on resnet50):

- **No random initialization.** ``build_model()`` runs inside a ``keras.StatelessScope``: Keras
  then creates every variable without a value, and gives it one when the scope ends, from the
  variable's initializer. Before that, each variable we converted gets an initializer that
  returns our array, so Keras' random initializers (25M values on resnet50, overwritten at once
  by ``set_weights``) never run. The scope and Keras' list of variables waiting for a value are
  thread-local, and only our own model's variables are touched: another thread building a
  model is not affected. The generated ``model.py`` is unchanged (users' ``build_model()``
  keeps Keras' initializers).
- **A cheaper weights file.** The file is written by Keras' own walk over the model
  (``saving_lib._save_state``, so the layout is Keras'), into a store that reads each variable
  without copying it (``save_weights`` copies every variable into a new numpy array first), with
  Keras' per-type attribute skip-sets computed once per file: Keras 3.15 caches them under a
  key it never reads, so it builds a throwaway ``Layer()`` for every layer it saves. The cache
  entries are removed again afterwards.

Anything unexpected (another Keras backend, Keras internals that differ from the ones this
was written against, a variable that already has a value) takes the public path instead,
which gives the same variables and the same file.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from transpiler.errors import TranspileError

__all__ = ["build_with_weights", "save_weights"]

# Keras' thread-local cache keys for get_attr_skipset (3.15 writes "skipset", reads "skiplist")
_SKIPSET_KEYS = ("saving_attr_skiplist_{}", "saving_attr_skipset_{}")
_SKIPSET_TYPES = ("Layer", "Functional")


class _Constant:
    """A Keras initializer returning one array (converted as ``Variable.assign`` converts it);
    it lets go of the array once used."""

    def __init__(self, array: np.ndarray):
        self.array: np.ndarray | None = array

    def __call__(self, shape: Any, dtype: Any = None) -> Any:
        import keras

        array, self.array = self.array, None
        if array is None:
            raise TranspileError("internal: a converted weight was used twice")
        return keras.ops.convert_to_tensor(array, dtype=dtype)


def _checked_weights(layer: Any, layer_name: str, arrays: list[np.ndarray]) -> list[Any]:
    """``layer.weights``, after checking our arrays have their shapes."""
    weights = list(layer.weights)
    expected = [tuple(w.shape) for w in weights]
    got = [tuple(a.shape) for a in arrays]
    if expected != got:
        raise TranspileError(
            f"internal: weights for Keras layer {layer_name} have shapes {got}, the layer "
            f"expects {expected}"
        )
    return weights


def _deferred_init_supported() -> bool:
    """True when Keras can build this thread's model with its variables' values deferred."""
    import keras

    if keras.backend.backend() != "tensorflow" or not hasattr(keras, "StatelessScope"):
        return False
    try:
        from keras.src.backend.common.stateless_scope import in_stateless_scope
    except ImportError:
        return False
    return not in_stateless_scope()  # inside another scope, ours would not initialize


def _defer_weights(model: Any, layer_weights: dict[str, list[np.ndarray]]) -> bool:
    """Inside the scope: give every converted variable its array as initializer, popping the
    layers done from ``layer_weights``. False (nothing changed) when a variable is not one
    waiting for its value, as Keras' deferred initialization leaves it."""
    plan = []
    for layer_name, arrays in layer_weights.items():
        variables = _checked_weights(model.get_layer(layer_name), layer_name, arrays)
        for variable in variables:
            if getattr(variable, "_value", False) is not None or not callable(
                getattr(variable, "_initializer", None)
            ):
                return False
        plan.extend(zip(variables, arrays, strict=True))
    for variable, array in plan:
        variable._initializer = _Constant(array)
    layer_weights.clear()
    return True


def build_with_weights(
    build_model: Callable[[], Any], layer_weights: dict[str, list[np.ndarray]]
) -> Any:
    """``build_model()`` with each named layer's weights set from ``layer_weights`` (consumed:
    the dict is emptied). Raises TranspileError when an array's shape differs from the layer's."""
    import keras

    if _deferred_init_supported():
        with keras.StatelessScope():
            model = build_model()
            _defer_weights(model, layer_weights)
        # leaving the scope gave every variable its value: ours, or Keras' initializer's
    else:
        model = build_model()
    for layer_name in list(layer_weights):  # the public path (empty after _defer_weights)
        # popped as they are set: the converted arrays are freed one layer at a time
        arrays = layer_weights.pop(layer_name)
        layer = model.get_layer(layer_name)
        _checked_weights(layer, layer_name, arrays)
        layer.set_weights(arrays)
    return model


def _variable_view(value: Any) -> np.ndarray | None:
    """A numpy view (no copy) of a Keras variable's value on TensorFlow's CPU; None otherwise."""
    import tensorflow as tf
    from keras.src.backend.common.variables import Variable

    if not isinstance(value, Variable):
        return None
    tensor = tf.convert_to_tensor(value.value)
    if tensor.device and "CPU" not in tensor.device.upper():
        return None
    array = np.asarray(memoryview(tensor))  # TensorFlow's documented zero-copy read
    if array.shape != tuple(value.shape) or array.dtype != np.dtype(tensor.dtype.as_numpy_dtype):
        return None
    return array


def _store_class() -> type:
    """Keras' H5IOStore, writing variables from a view of their value instead of a copy."""
    from keras.src.saving.saving_lib import H5IOStore

    class _ViewStore(H5IOStore):  # type: ignore[misc,valid-type]
        def __setitem__(self, key: str, value: Any) -> None:
            array = _variable_view(value)
            if array is None or array.dtype.name == "bfloat16":
                super().__setitem__(key, value)  # Keras' own conversion (and dtype attribute)
                return
            if not self._h5_entry_initialized:
                self._create_h5_group(self._h5_entry_path)
            self._h5_entry_group[key] = array  # as H5IOStore.__setitem__ writes it

    return _ViewStore


def _fast_store_supported() -> bool:
    import keras

    if keras.backend.backend() != "tensorflow":
        return False
    try:
        from keras.src.saving import saving_lib
    except ImportError:
        return False
    store = getattr(saving_lib, "H5IOStore", None)
    return (
        callable(getattr(saving_lib, "_save_state", None))
        and callable(getattr(saving_lib, "get_attr_skipset", None))
        and store is not None
        and all(hasattr(store, a) for a in ("_create_h5_group", "make", "close"))
    )


def _save_with_keras_walk(model: Any, path: Path) -> None:
    """What ``save_weights_only`` does for a ``.weights.h5`` path, with the view store and the
    skip-sets cached for this one walk (this thread only; removed afterwards)."""
    from keras.src.backend.common import global_state
    from keras.src.saving import saving_lib

    keys = [t.format(o) for o in _SKIPSET_TYPES for t in _SKIPSET_KEYS]
    # every key unset before the walk is unset again after it (get_attr_skipset itself
    # caches under one of them)
    seeded = [k for k in keys if global_state.get_global_attribute(k) is None]
    for obj_type in _SKIPSET_TYPES:
        skipset = None
        for template in _SKIPSET_KEYS:
            key = template.format(obj_type)
            if global_state.get_global_attribute(key) is None:
                skipset = skipset or saving_lib.get_attr_skipset(obj_type)
                global_state.set_global_attribute(key, skipset)
    try:
        store = _store_class()(path, mode="w")
        try:
            saving_lib._save_state(
                model,
                weights_store=store,
                assets_store=None,
                inner_path="",
                visited_saveables=set(),
            )
        finally:
            store.close()
    finally:
        for key in seeded:
            global_state.set_global_attribute(key, None)


def save_weights(model: Any, path: Path) -> None:
    """``model.save_weights(path)`` (a ``.weights.h5``), the same file, written faster where the
    Keras internals are the expected ones."""
    if not model.built or not str(path).endswith(".weights.h5") or not _fast_store_supported():
        model.save_weights(str(path))
        return
    try:
        _save_with_keras_walk(model, path)
    except (AttributeError, TypeError, ValueError, KeyError):
        # Keras internals other than the expected ones: its public path (rewrites the file)
        model.save_weights(str(path))
