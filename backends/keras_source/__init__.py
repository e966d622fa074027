"""The ``keras`` backend: a standalone, readable ``model.py`` plus ``model.weights.h5``."""

from __future__ import annotations

import importlib.util
import itertools
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from transpiler.errors import TranspileError
from transpiler.ir import Graph

from .emitter import WEIGHTS_FILE, EmittedModule, emit_source

__all__ = [
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
    model = module.build_model()
    for layer_name in list(emitted.layer_weights):
        # popped as they are set: the converted arrays are freed one layer at a time
        arrays = emitted.layer_weights.pop(layer_name)
        layer = model.get_layer(layer_name)
        expected = [tuple(w.shape) for w in layer.weights]
        got = [tuple(a.shape) for a in arrays]
        if expected != got:
            raise TranspileError(
                f"internal: weights for Keras layer {layer_name} have shapes {got}, the layer "
                f"expects {expected}"
            )
        layer.set_weights(arrays)
    model.save_weights(str(folder / WEIGHTS_FILE))
    return emitted, model


def count_tf_transposes(model: Any) -> int | None:
    """Transpose ops in the graph of ``tf.function(model)`` (None off the TensorFlow backend)."""
    import keras

    if keras.backend.backend() != "tensorflow":
        return None
    import tensorflow as tf

    specs = [tf.TensorSpec(t.shape, t.dtype) for t in model.inputs]
    fn = tf.function(lambda *xs: model(list(xs) if len(xs) > 1 else xs[0], training=False))
    graph_def = fn.get_concrete_function(*specs).graph.as_graph_def()
    nodes = list(graph_def.node)
    for f in graph_def.library.function:
        nodes.extend(f.node_def)
    return sum(1 for n in nodes if n.op in ("Transpose", "ConjugateTranspose"))


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
        from transpiler.api import make_callable

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
        self.run = make_callable(self.model, n_out)
        self.value_layers = emitted.value_layers
        self.module_layers = emitted.module_layers
        self.transpose_count = count_tf_transposes(self.model)
        self.batchnorm_layers = sum(
            1 for layer in self.model.layers if type(layer).__name__ == "BatchNormalization"
        )

    def probe(self, arrays: list[Any], names: list[str]) -> list[Any]:
        """Outputs of the named layers on ``arrays``."""
        import keras

        model = self.model
        ins = model.inputs[0] if len(model.inputs) == 1 else model.inputs
        probe_model = keras.Model(ins, [model.get_layer(n).output for n in names])
        outs = probe_model(arrays if len(arrays) > 1 else arrays[0], training=False)
        outs = outs if isinstance(outs, list | tuple) else [outs]
        return [keras.ops.convert_to_numpy(y) for y in outs]
