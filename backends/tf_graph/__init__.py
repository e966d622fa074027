"""The ``tf`` backend: the IR lowered to TensorFlow ops in one ``tf.function``, saved as a
SavedModel (``out_dir/saved_model``).

Weights are non-trainable ``tf.Variable``s (in the SavedModel's ``variables/`` checkpoint, not
inlined into the graph); TFLite export freezes them into constants. The function's input
signature has a dynamic batch (and the spatial sizes the IR leaves dynamic). Each node's ops sit
in a name scope named after its PyTorch module path, so the graph reads like the model in
TensorBoard or Netron.

Load it anywhere with ``tf.saved_model.load(path)``: ``.serve(*tensors)`` (positional, as the
PyTorch ``forward``) or the ``serving_default`` signature (keyword inputs, outputs
``output_0``, ``output_1``, ...).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from transpiler.errors import TranspileError
from transpiler.ir import Graph, Node

from .._naming import Namespace, node_hint
from .._tf_runtime import count_transposes, numpy_callable, tensorflow
from ..base import Backend

__all__ = [
    "BACKEND",
    "SAVED_MODEL_DIR",
    "TFBackend",
    "TFWritten",
    "build_module",
    "load_saved_model",
    "make_callable",
]

SAVED_MODEL_DIR = "saved_model"


_tf = tensorflow  # TensorFlow with our process hygiene (triton kept out)


class _Program:
    """The lowered steps (kept off tf.Module's attribute tracking: plain Python closures)."""

    def __init__(self, graph: Graph) -> None:
        from .lowering import LOWERINGS, Plan

        tf = _tf()
        ns = Namespace()
        plan = Plan(graph, ns.create)
        self.inputs = [id(v) for v in graph.inputs]
        self.steps: list[tuple[int, str, Any, Callable]] = []
        self.value_names: dict[str, str] = {}  # IR value name -> op (scope) name
        self.module_ops: dict[str, list[str]] = {}
        missing = LOWERINGS.missing(n.op for n in graph.nodes)
        if missing:
            raise TranspileError(f"the tf backend has no lowering for IR op(s) {missing}")
        for node in graph.nodes:
            name = ns.create(node_hint(node))
            plan._hint = name
            step = LOWERINGS.apply(node, plan)
            dtype = tf.as_dtype(node.outputs[0].type.dtype)
            if len(node.outputs) > 1:  # the step returns one tensor per output
                self.steps.append((tuple(id(v) for v in node.outputs), name, dtype, step))
                _record_modules(node, name, self.module_ops)
                continue
            self.steps.append((id(node.output), name, dtype, step))
            self.value_names[node.output.name] = name
            _record_modules(node, name, self.module_ops)
        self.outputs = [plan.operand(v, "output") for v in graph.outputs]
        self.variables = plan.variables

    def run(self, xs: list[Any], keep: set[str] | None = None) -> tuple[list[Any], dict]:
        tf = _tf()
        env: dict[int, Any] = dict(zip(self.inputs, xs, strict=True))
        kept: dict[str, Any] = {}
        for key, name, dtype, step in self.steps:
            with tf.name_scope(name):
                y = step(env)
                if isinstance(key, tuple):
                    env.update(zip(key, y, strict=True))
                    continue
                if not isinstance(y, tf.Tensor) or y.dtype != dtype:
                    y = tf.cast(y, dtype)
            env[key] = y
            if keep is not None and name in keep:
                kept[name] = y
        outs = [tf.convert_to_tensor(f(env)) for f in self.outputs]
        return outs, kept


def _record_modules(node: Node, name: str, table: dict[str, list[str]]) -> None:
    if node.source and node.source.module_path:
        table.setdefault(node.source.module_path, []).append(name)
    for folded in node.meta.get("folded", []):
        table.setdefault(folded.module_path, []).append(name)


def build_module(graph: Graph, model_name: str) -> Any:
    """The lowered model as a ``tf.Module`` with ``serve`` (a tf.function)."""
    tf = _tf()
    program = _Program(graph)
    ns = Namespace()
    specs = [
        tf.TensorSpec(tuple(v.shape), tf.as_dtype(v.type.dtype), name=ns.create(raw))
        for v, raw in zip(graph.inputs, graph.input_names, strict=True)
    ]
    single = len(graph.outputs) == 1

    class LoweredModel(tf.Module):
        def __init__(self) -> None:
            super().__init__(name=Namespace().create(model_name))
            self._program = program
            self.weights = dict(program.variables)  # tracked: saved in variables/

            def call(*xs: Any) -> Any:
                outs, _ = self._program.run(list(xs))
                return outs[0] if single else tuple(outs)

            def signature(*xs: Any) -> dict[str, Any]:
                outs, _ = self._program.run(list(xs))
                return {f"output_{k}": y for k, y in enumerate(outs)}

            self.serve = tf.function(call, input_signature=specs)
            self.serving_default = tf.function(signature, input_signature=specs)

    return LoweredModel()


def save(module: Any, folder: Path) -> Path:
    tf = _tf()
    path = folder / SAVED_MODEL_DIR
    signatures = {"serving_default": module.serving_default.get_concrete_function()}
    tf.saved_model.save(module, str(path), signatures=signatures)
    return path


def load_saved_model(path: Path) -> Any:
    return _tf().saved_model.load(str(path))


def make_callable(module: Any, n_outputs: int) -> Callable[..., Any]:
    """numpy (or tf tensors) in, numpy out: one array, or a tuple for several outputs. Holds
    ``module`` (the loaded SavedModel owns the variables its function reads)."""
    return numpy_callable(module.serve, module.serve.input_signature, n_outputs, owner=module)


class TFWritten:
    """What the api needs from the written SavedModel: a runner, probes, the report's tables."""

    def __init__(self, graph: Graph, folder: Path, model_name: str) -> None:
        self.module = build_module(graph, model_name)
        self.path = save(self.module, folder)
        self.files = [SAVED_MODEL_DIR]
        self.n_outputs = len(graph.outputs)
        self.run = make_callable(self.module, self.n_outputs)
        self.value_layers = dict(self.module._program.value_names)
        self.module_layers = self.module._program.module_ops
        self.transpose_count = count_transposes(self.module.serve.get_concrete_function())
        self.batchnorm_layers = sum(1 for n in graph.nodes if n.op == "batch_norm")

    def concrete_function(self) -> Any:
        """The traced ``serve`` function (dynamic batch), which reads ``module``'s variables."""
        concrete = self.module.serve.get_concrete_function()
        concrete._transpiler_owner = self.module
        return concrete

    def probe(self, arrays: list[Any], names: list[str]) -> list[Any]:
        """Intermediate values (by op name), run eagerly."""
        tf = _tf()
        _, kept = self.module._program.run([tf.convert_to_tensor(a) for a in arrays], set(names))
        return [kept[n].numpy() for n in names]


class TFBackend(Backend):
    """``tf``: the IR lowered to TensorFlow ops, saved as a SavedModel (``saved_model/``)."""

    name = "tf"
    saved_model_dir = SAVED_MODEL_DIR

    def check_out_dir(self, out_dir: Path) -> None:
        previous = out_dir / SAVED_MODEL_DIR
        if previous.exists() and not (previous / "saved_model.pb").exists():
            # an earlier SavedModel is replaced; anything else by that name is the user's
            raise TranspileError(
                f"{str(previous)!r} exists and is not a SavedModel; remove it or pick another "
                "out_dir."
            )

    def write(
        self, graph: Graph, folder: Path, *, model_name: str, layouts: tuple[str, str]
    ) -> TFWritten:
        return TFWritten(graph, folder, model_name)

    def load(self, out_dir: Path, graph: Graph) -> Callable[..., Any]:
        return make_callable(load_saved_model(out_dir / SAVED_MODEL_DIR), len(graph.outputs))

    def keras_model(self, out_dir: Path) -> Any:
        raise TranspileError(
            "the tf backend has no Keras model (it wrote a SavedModel: use result.load() or "
            "tf.saved_model.load); transpile with backend='keras' for one."
        )

    def concrete_function(self, out_dir: Path, graph: Graph) -> Any:
        module = load_saved_model(out_dir / SAVED_MODEL_DIR)
        concrete = module.serve.get_concrete_function()
        concrete._transpiler_owner = module  # the variables live as long as the function
        return concrete


BACKEND = TFBackend()
