"""The ``keras`` backend: a standalone, readable ``model.py`` plus ``model.weights.h5``."""

from __future__ import annotations

import importlib.util
import itertools
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from transpiler.ir import Graph

from .._tf_runtime import count_transposes, has_recurrent_layers, keras_function, numpy_callable
from ..base import Backend
from .emitter import WEIGHTS_FILE, EmittedModule, emit_source
from .weights import build_with_weights, save_weights

__all__ = [
    "BACKEND",
    "KerasBackend",
    "KerasWritten",
    "make_callable",
    "write_keras",
    "import_module_from",
    "count_tf_transposes",
    "WEIGHTS_FILE",
    "SOURCE_FILE",
]

SOURCE_FILE = "model.py"
_ids = itertools.count()


def import_module_from(path: Path) -> ModuleType:
    """Import a generated module by path under a unique name (never cached across loads)."""
    from transpiler._hygiene import import_keras

    import_keras()
    name = f"_transpiled_model_{next(_ids)}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    finally:
        sys.modules.pop(name, None)
    return module


def write_keras(
    graph: Graph,
    folder: Path,
    *,
    model_name: str,
    input_layouts: list[str],
    output_layouts: list[str],
    structure: str = "modules",
) -> tuple[EmittedModule, Any]:
    """Write model.py and the weights into ``folder``; returns the emitted module and the model."""
    emitted = emit_source(
        graph,
        model_name=model_name,
        input_layouts=input_layouts,
        output_layouts=output_layouts,
        structure=structure,
    )
    source_path = folder / SOURCE_FILE
    source_path.write_text(emitted.source, encoding="utf-8")
    module = import_module_from(source_path)
    # build_model() + set_weights + save_weights, without Keras' random initialization and
    # with a cheaper weights file (see weights.py)
    model = build_with_weights(module.build_model, emitted.layer_weights)
    save_weights(model, folder / WEIGHTS_FILE)
    return emitted, model


def count_tf_transposes(model: Any, function: Any = None) -> int | None:
    """Transpose ops in the graph of ``tf.function(model)`` (None off the TensorFlow backend);
    ``function``: that tf.function when the caller has it (traced once, shared)."""
    import keras

    if keras.backend.backend() != "tensorflow":
        return None
    return count_transposes((function or keras_function(model)).get_concrete_function())


def make_callable(model: Any, n_outputs: int, function: Any = None) -> Callable[..., Any]:
    """numpy (or tensors) in, numpy out. On TensorFlow the model runs as one ``tf.function``
    with a dynamic batch (a graph: faster than eager, and without eager's per-shape caches);
    ``function``: that tf.function when the caller has it."""
    import keras

    if keras.backend.backend() == "tensorflow":
        function = function or keras_function(model)
        return numpy_callable(function, function.input_signature, n_outputs)

    def fn(*arrays: Any) -> Any:
        xs = [a.numpy() if type(a).__module__.startswith("torch") else a for a in arrays]
        ys = model(xs if len(xs) > 1 else xs[0], training=False)
        ys = ys if isinstance(ys, list | tuple) else [ys]
        outs = tuple(np.asarray(keras.ops.convert_to_numpy(y)) for y in ys)
        return outs[0] if n_outputs == 1 else outs

    return fn


def tflite_function(model: Any) -> Any:
    """The model's tf.function for TFLite: Keras' recurrent layers traced with a while loop over
    plain tensors (TFLite's builtin WHILE at a dynamic batch and length; Keras' own loop keeps
    its steps in a TensorList, which needs Flex ops there). The same cells, step for step; the
    export checks the flatbuffer against PyTorch like any other. Models without recurrent
    layers get their usual function."""
    return keras_function(model, builtin_loops=has_recurrent_layers(model))


class KerasWritten:
    """What the api needs from the written Keras module: a runner, probes, the report's tables."""

    def __init__(
        self,
        graph: Graph,
        folder: Path,
        model_name: str,
        layouts: tuple[str, str],
        structure: str = "modules",
    ):
        n_in, n_out = len(graph.inputs), len(graph.outputs)
        emitted, self.model = write_keras(
            graph,
            folder,
            model_name=model_name,
            input_layouts=[layouts[0]] * n_in,
            output_layouts=[layouts[1]] * n_out,
            structure=structure,
        )
        self.files = [SOURCE_FILE, WEIGHTS_FILE]
        import keras

        # one tf.function (one trace, dynamic batch) for the check, the Transpose count and
        # the TFLite export (concrete_function)
        self.function = (
            keras_function(self.model) if keras.backend.backend() == "tensorflow" else None
        )
        self._tflite_function: Any = None  # traced on demand (recurrent layers only)
        self.run = make_callable(self.model, n_out, self.function)
        self.value_layers = emitted.value_layers
        self.module_layers = emitted.module_layers
        self.transpose_count = count_tf_transposes(self.model, self.function)
        self.batchnorm_layers = sum(
            1 for layer in self.model.layers if type(layer).__name__ == "BatchNormalization"
        )

    def concrete_function(self) -> Any:
        """The model's concrete function (dynamic batch), traced once (None off TensorFlow).
        A model with recurrent layers is traced again for it, with loops TFLite converts to
        builtin ops (see tflite_function)."""
        if self.function is None:
            return None
        function = self.function
        if has_recurrent_layers(self.model):
            if self._tflite_function is None:
                self._tflite_function = tflite_function(self.model)
            function = self._tflite_function
        concrete = function.get_concrete_function()
        concrete._transpiler_owner = (self.model, function)  # keeps the variables alive
        return concrete

    def probe(self, arrays: list[Any], names: list[str]) -> list[Any]:
        """Outputs of the named layers on ``arrays``."""
        import keras

        model = self.model
        ins = model.inputs[0] if len(model.inputs) == 1 else model.inputs
        probe_model = keras.Model(ins, [model.get_layer(n).output for n in names])
        outs = probe_model(arrays if len(arrays) > 1 else arrays[0], training=False)
        outs = outs if isinstance(outs, list | tuple) else [outs]
        return [keras.ops.convert_to_numpy(y) for y in outs]


class KerasBackend(Backend):
    """``keras``: a standalone, readable ``model.py`` plus ``model.weights.h5``."""

    name = "keras"
    source_file = SOURCE_FILE
    weights_file = WEIGHTS_FILE

    def write(
        self, graph: Graph, folder: Path, *, model_name: str, layouts: tuple[str, str]
    ) -> KerasWritten:
        structure = graph.meta.get("structure", "modules")
        return KerasWritten(graph, folder, model_name, layouts, structure=structure)

    def keras_model(self, out_dir: Path) -> Any:
        module = import_module_from(out_dir / SOURCE_FILE)
        return module.load_model(str(out_dir / WEIGHTS_FILE))

    def load(self, out_dir: Path, graph: Graph) -> Callable[..., Any]:
        return make_callable(self.keras_model(out_dir), len(graph.outputs))

    def concrete_function(self, out_dir: Path, graph: Graph) -> Any:
        model = self.keras_model(out_dir)
        function = tflite_function(model)
        concrete = function.get_concrete_function()
        # the concrete function reads the model's variables by reference: keep them alive
        concrete._transpiler_owner = (model, function)
        return concrete


BACKEND = KerasBackend()
