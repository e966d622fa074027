"""``transpile()``: the public entry point (see ../shared/CONTRACT.md)."""

from __future__ import annotations

import copy
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ._hygiene import block_triton_if_tensorflow
from .backends import BACKENDS
from .errors import TranspileError
from .frontend import DEFAULT_REGISTRY, ConverterRegistry, import_model
from .frontend.fx_importer import trace, wrap_single_layer
from .ir import Graph, Value
from .report import Report
from .signature import BatchSpec, alternate_inputs, infer_inputs, normalize_inputs

__all__ = ["transpile", "TranspileResult"]

LAYOUTS = ("nchw", "nhwc")
TRACERS = ("auto", "fx", "export")


def _exported_program(model: Any) -> Any:
    exported = getattr(torch.export, "ExportedProgram", None)
    return model if exported is not None and isinstance(model, exported) else None


@dataclass
class TranspileResult:
    backend: str
    out_dir: Path
    source_path: Path | None
    weights_path: Path | None
    report: Report
    graph: Graph  # the IR after the pipeline
    io_layout: tuple[str, str] = ("nchw", "nchw")
    files: list[Path] = field(default_factory=list)
    tolerance: float = 1e-4
    saved_model_path: Path | None = None  # backend="tf": the SavedModel folder

    def keras_model(self) -> Any:
        """The generated model, loaded with its weights (a fresh ``keras.Model``)."""
        from transpiler.backends.keras_source import import_module_from

        if self.source_path is None:
            raise TranspileError(
                f"the {self.backend} backend has no Keras model (it wrote a SavedModel: use "
                "result.load() or tf.saved_model.load); transpile with backend='keras' for one."
            )
        return import_module_from(self.source_path).load_model(str(self.weights_path))

    def load(self) -> Callable[..., Any]:
        """A plain callable: numpy arrays (layout per io_layout) in, numpy array(s) out."""
        if self.backend == "tf":
            from transpiler.backends.tf_graph import load_saved_model
            from transpiler.backends.tf_graph import make_callable as tf_callable

            assert self.saved_model_path is not None
            module = load_saved_model(self.saved_model_path)
            return tf_callable(module, len(self.graph.outputs))
        return make_callable(self.keras_model(), len(self.graph.outputs))

    def concrete_function(self) -> Any:
        """The model as a TF concrete function (dynamic batch), for TFLite and graph tooling."""
        if self.backend == "tf":
            from transpiler.backends.tf_graph import load_saved_model

            assert self.saved_model_path is not None
            module = load_saved_model(self.saved_model_path)
            concrete = module.serve.get_concrete_function()
            concrete._transpiler_owner = module  # the variables live as long as the function
            return concrete
        from .tflite import keras_concrete_function

        return keras_concrete_function(self.keras_model())

    def to_tflite(self, path: str | os.PathLike[str], variant: str = "float32") -> Path:
        """Write a TFLite flatbuffer (dynamic batch, builtin ops only) and check it against
        PyTorch on the transpile's check inputs. ``variant``: "float32" (held to the transpile's
        tolerance; a mismatch raises and writes nothing), "float16" or "dynamic_range"
        (quantized: their measured errors go into ``report.tflite``)."""
        from .tflite import export_tflite

        if not self.report.references:
            raise TranspileError("to_tflite() checks against PyTorch: transpile with verify=True.")
        export_tflite(self.concrete_function(), Path(path), self.report, self.tolerance, variant)
        return Path(path)


def make_callable(model: Any, n_outputs: int) -> Callable[..., Any]:
    """numpy (or tensors) in, numpy out. On TensorFlow the model runs as one ``tf.function``
    with a dynamic batch (a graph: faster than eager, and without eager's per-shape caches)."""
    import keras

    def eager(xs: list[Any]) -> Any:
        return model(xs if len(xs) > 1 else xs[0], training=False)

    call = eager
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        specs = [tf.TensorSpec(t.shape, t.dtype) for t in model.inputs]
        graph = tf.function(lambda *xs: eager(list(xs)), input_signature=specs)

        def call(xs: list[Any]) -> Any:
            return graph(*(_cast(x, spec.dtype) for x, spec in zip(xs, specs, strict=True)))

    def fn(*arrays: Any) -> Any:
        xs = [a.numpy() if isinstance(a, torch.Tensor) else a for a in arrays]
        ys = call(xs)
        ys = ys if isinstance(ys, list | tuple) else [ys]
        outs = tuple(keras.ops.convert_to_numpy(y) for y in ys)
        return outs[0] if n_outputs == 1 else outs

    return fn


def _cast(x: Any, dtype: Any) -> Any:
    """An input to the signature's dtype (numpy float64 -> float32, ...)."""
    import numpy as np
    import tensorflow as tf

    if isinstance(x, tf.Tensor | tf.Variable):
        return x if x.dtype == dtype else tf.cast(x, dtype)
    return tf.convert_to_tensor(np.asarray(x, dtype=dtype.as_numpy_dtype))


def _program_example(program: Any) -> Any:
    """The example inputs an exported program was traced with (torch >= 2.5 keeps them)."""
    saved = getattr(program, "example_inputs", None)
    if saved and saved[0] and all(isinstance(t, torch.Tensor) for t in saved[0]):
        return tuple(saved[0])
    return None


def _check_layout(io_layout: Any) -> tuple[str, str]:
    valid = f"valid choices: {', '.join(repr(x) for x in LAYOUTS)} or a pair like ('nhwc', 'nchw')"
    if isinstance(io_layout, str):
        if io_layout.lower() in LAYOUTS:
            return io_layout.lower(), io_layout.lower()
    elif isinstance(io_layout, tuple | list) and len(io_layout) == 2:
        if all(isinstance(x, str) and x.lower() in LAYOUTS for x in io_layout):
            return io_layout[0].lower(), io_layout[1].lower()
    raise TranspileError(f"unknown io_layout {io_layout!r}; {valid}.")


def _check_backend(backend: Any) -> str:
    if backend in BACKENDS:
        return backend
    raise TranspileError(
        f"unknown backend {backend!r}; valid choices: {', '.join(repr(b) for b in BACKENDS)}."
    )


def _working_copy(model: torch.nn.Module) -> torch.nn.Module:
    """An eval-mode float32 copy: the user's model is never touched."""
    # float32 parameters are shared with the copy, not duplicated (they are only read: the copy
    # runs in eval mode under no_grad, and the IR copies what a pass rewrites); buffers,
    # attributes and the module tree are copied, so nothing the copy does reaches the model.
    shared = all(p.dtype == torch.float32 for p in model.parameters())
    memo = {id(p): p for p in model.parameters()} if shared else {}
    try:
        work = copy.deepcopy(model, memo)
    except Exception as exc:  # noqa: BLE001
        raise TranspileError(
            f"could not copy {type(model).__name__} ({type(exc).__name__}: {exc}); the "
            "transpiler works on a copy so that your model stays as it is. Make it deep-copyable."
        ) from exc
    work.eval()
    if any(p.is_floating_point() and p.dtype != torch.float32 for p in work.parameters()):
        work.float()
    return work


def transpile(
    model: torch.nn.Module,
    example_inputs: Any = None,
    *,
    backend: str = "keras",
    out_dir: str | os.PathLike[str] | None = None,
    io_layout: str | Sequence[str] = "nchw",
    fold_batchnorm: bool = True,
    verify: bool = True,
    tolerance: float = 1e-4,
    extra_converters: ConverterRegistry | None = None,
    tracer: str = "auto",
) -> TranspileResult:
    """Transpile a PyTorch module into readable Keras 3 source plus weights.

    Args:
        model: the ``torch.nn.Module``; its eval-mode behaviour is converted and it is left
            exactly as it was (the transpiler works on a copy).
        example_inputs: a tensor or a tuple of tensors giving shapes and dtypes; optional when
            the input signature can be inferred (``Conv2d(3, ...)`` -> ``(N, 3, H, W)``).
        backend: ``"keras"`` (readable Keras 3 source + weights) or ``"tf"`` (a SavedModel of
            TensorFlow ops, ``out_dir/saved_model``).
        out_dir: output folder (created if needed); None -> a new temporary directory.
        io_layout: ``"nchw"``, ``"nhwc"`` or a pair (inputs, outputs).
        fold_batchnorm: fold BatchNorm into the preceding conv/linear; False keeps
            BatchNormalization layers (trainable Keras model).
        verify: compare with PyTorch on the example inputs and on another batch size.
        tolerance: the check's bound: max|y - y_torch| <= tolerance * max(1, max|y_torch|).
        extra_converters: a ``ConverterRegistry`` with converters of your own (they take
            precedence over the built-in ones).
        tracer: ``"fx"`` (symbolic tracing: module boundaries kept), ``"export"``
            (``torch.export``: follows Python control flow on shapes; needs example_inputs) or
            ``"auto"`` (fx, falling back to export when fx cannot trace). ``model`` may also be
            a ``torch.export.ExportedProgram`` (e.g. from a ``.pt2`` file).

    Returns:
        A ``TranspileResult`` (``source_path``, ``load()``, ``keras_model()``, ``report``).

    Example:
        >>> result = transpile(torchvision.models.resnet18(), torch.randn(1, 3, 224, 224))
        >>> y = result.load()(x.numpy())
    """
    from transpiler.passes import DEFAULT_PIPELINE, PassContext, run_pipeline

    # We load TensorFlow (through Keras) below, and fx's stack-trace recording may load torch's
    # inductor, which loads triton: with TensorFlow in the process that is a SIGSEGV.
    block_triton_if_tensorflow(force=True)

    program = _exported_program(model)
    if program is None and not isinstance(model, torch.nn.Module):
        raise TranspileError(
            f"model must be a torch.nn.Module or a torch.export.ExportedProgram, got "
            f"{type(model).__name__}."
        )
    backend = _check_backend(backend)
    layouts = _check_layout(io_layout)
    if tracer not in TRACERS:
        raise TranspileError(
            f"unknown tracer {tracer!r}; valid choices: {', '.join(repr(t) for t in TRACERS)}."
        )
    if not (isinstance(tolerance, int | float) and tolerance > 0):
        raise TranspileError(f"tolerance must be a positive number, got {tolerance!r}.")
    registry = DEFAULT_REGISTRY
    if extra_converters is not None:
        registry = DEFAULT_REGISTRY.copy()
        registry.modules.update(extra_converters.modules)
        registry.functions.update(extra_converters.functions)
        registry.methods.update(extra_converters.methods)

    clock = time.perf_counter()
    fx_graph, fx_error = None, None
    if program is not None:
        if tracer == "fx":
            raise TranspileError(
                "an ExportedProgram is converted through torch.export's graph: use tracer='auto' "
                "or 'export' (or pass the nn.Module for tracer='fx')."
            )
        work = program.module()
        model_class = "ExportedProgram"
    else:
        work = _working_copy(model)
        model_class = type(model).__name__
        if tracer in ("fx", "auto"):
            try:
                wrapped = wrap_single_layer(work, registry)
                fx_graph = trace(wrapped, registry)
                work = wrapped
            except TranspileError as exc:
                if tracer == "fx":
                    raise
                fx_error = exc
    root, batch = work, BatchSpec()
    if fx_graph is None:  # the torch.export path
        if example_inputs is None and program is not None:
            example_inputs = _program_example(program)
        if example_inputs is None:
            why = f" ({str(fx_error).splitlines()[0]})" if fx_error else ""
            raise TranspileError(
                f"the torch.export path needs example_inputs{why}: pass a tensor (or a tuple) "
                "with the input shapes."
            )
        from .frontend import export_importer as ex

        inputs_a = normalize_inputs(example_inputs)
        if program is None:
            program, batch = ex.export_program(work, inputs_a)
        else:
            batch = ex.program_batch(program)
            program = program.run_decompositions({})
        root, fx_graph = ex.export_to_fx(program)
        registry = ex.aten_registry(registry)
        inputs_b = alternate_inputs(inputs_a, batch=batch)  # static: the same batch
    elif example_inputs is None:
        inputs_a, inputs_b = infer_inputs(work, fx_graph)
    else:
        inputs_a = normalize_inputs(example_inputs)
        inputs_b = alternate_inputs(inputs_a)
    imported = import_model(root, inputs_a, inputs_b, registry=registry, fx_graph=fx_graph)
    imported.graph.meta["model_class"] = model_class
    traced = time.perf_counter()
    ctx = PassContext(layouts[0], layouts[1], fold_batchnorm)
    run = run_pipeline(imported.graph, DEFAULT_PIPELINE, ctx)
    graph = run.graph

    report = Report(backend=backend, io_layout=layouts, passes=run.records, batch=batch.describe())
    report.notes += [batch.note()] if batch.note() else []
    if root is not work:
        report.tracer = "torch.export"
        if fx_error is not None:
            first = str(fx_error).splitlines()[0]
            report.notes.append(f"torch.fx could not trace the model ({first}); used torch.export")
    report.timings = {"trace": traced - clock, "passes": time.perf_counter() - traced}
    report.inputs = [_describe(v, n) for v, n in zip(graph.inputs, graph.input_names, strict=True)]
    report.outputs = [_describe(v, f"[{k}]") for k, v in enumerate(graph.outputs)]
    report.transposes = [n.attrs["reason"] for n in graph.nodes if n.op == "transpose"]
    report.unfolded_batchnorm = list(graph.meta.get("unfolded_batchnorm", []))
    if example_inputs is None:
        report.notes.append(
            "input signature inferred from the first layer; spatial sizes are dynamic"
        )

    return _write_and_verify(
        graph, report, work, inputs_a, inputs_b, imported, out_dir, layouts, verify, tolerance
    )


def _describe(v: Value, name: str) -> str:
    dims = ", ".join(
        "N" if i == 0 and d is None else ("?" if d is None else str(d))
        for i, d in enumerate(v.shape)
    )
    return f"{name}: {v.type.dtype} ({dims})"


def _write_and_verify(
    graph, report, work, inputs_a, inputs_b, imported, out_dir, layouts, verify, tolerance
) -> TranspileResult:
    from .verify import check_numerics, check_structure

    final = Path(out_dir) if out_dir is not None else Path(tempfile.mkdtemp(prefix="transpiled_"))
    if final.exists() and not final.is_dir():
        raise TranspileError(
            f"out_dir {str(final)!r} exists and is not a folder; pick another path."
        )
    previous = final / "saved_model"
    if report.backend == "tf" and previous.exists() and not (previous / "saved_model.pb").exists():
        # an earlier SavedModel is replaced; anything else by that name is the user's
        raise TranspileError(
            f"{str(previous)!r} exists and is not a SavedModel; remove it or pick another out_dir."
        )
    created = not final.exists()
    staging = Path(tempfile.mkdtemp(prefix=".transpiling_"))
    model_name = graph.meta.get("model_class", "Model")
    clock = time.perf_counter()
    try:
        if report.backend == "tf":
            from transpiler.backends.tf_graph import TFWritten

            written: Any = TFWritten(graph, staging, model_name)
        else:
            from transpiler.backends.keras_source import KerasWritten

            written = KerasWritten(graph, staging, model_name, layouts)
        report.module_layers = written.module_layers
        report.batchnorm_layers = written.batchnorm_layers
        report.transpose_count = written.transpose_count
        report.timings["emit"] = time.perf_counter() - clock
        check_structure(written, graph, imported, [inputs_a, inputs_b], layouts, not verify)
        if verify:
            clock = time.perf_counter()
            check_numerics(
                written, graph, imported, work, [inputs_a, inputs_b], layouts, tolerance, report
            )
            report.timings["verify"] = time.perf_counter() - clock
        (staging / "report.md").write_text(report.to_markdown(), encoding="utf-8")
        final.mkdir(parents=True, exist_ok=True)
        files = []
        for name in [*written.files, "report.md"]:
            target = final / name
            if target.is_dir():
                shutil.rmtree(target)
            shutil.move(str(staging / name), str(target))
            files.append(target)
    except BaseException:
        if created and final.exists() and not any(final.iterdir()):
            final.rmdir()
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    report.files = [f.name for f in files]
    keras = report.backend == "keras"
    return TranspileResult(
        backend=report.backend,
        out_dir=final,
        source_path=final / "model.py" if keras else None,
        weights_path=final / "model.weights.h5" if keras else None,
        report=report,
        graph=graph,
        io_layout=layouts,
        files=files,
        tolerance=tolerance,
        saved_model_path=None if keras else final / "saved_model",
    )
