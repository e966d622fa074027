"""``transpile()``: the public entry point (see ../shared/CONTRACT.md).

One readable sequence: validate the arguments, ``frontend.load`` the model into the IR, run the
pass pipeline, write with the chosen backend (``backends.BACKENDS``) into a staging folder,
check the numbers against PyTorch, then move the files into ``out_dir``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .backends import BACKENDS, Backend
from .errors import TranspileError
from .frontend import DEFAULT_REGISTRY, ConverterRegistry, Loaded, load
from .ir import Graph, Value
from .report import Report
from .verify import Reference, reference_for

__all__ = ["transpile", "TranspileResult"]

LAYOUTS = ("nchw", "nhwc")
STRUCTURES = ("modules", "flat")  # the keras backend's source forms (keras_source/structure.py)


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
    # the model as transpile traced it (written.concrete_function), reused by to_tflite: no
    # reload and no second trace; None where the backend has none (the files are then loaded)
    _written: Any = field(default=None, repr=False, compare=False)

    @property
    def _writer(self) -> Backend:
        return BACKENDS[self.backend]

    def keras_model(self) -> Any:
        """The generated model, loaded with its weights (a fresh ``keras.Model``); the keras
        backend only (TranspileError otherwise)."""
        return self._writer.keras_model(self.out_dir)

    def load(self) -> Callable[..., Any]:
        """A plain callable: numpy arrays (layout per io_layout) in, numpy array(s) out."""
        return self._writer.load(self.out_dir, self.graph)

    def concrete_function(self) -> Any:
        """The model as a TF concrete function (dynamic batch), for TFLite and graph tooling."""
        traced = getattr(self._written, "concrete_function", None)
        concrete = traced() if traced is not None else None
        return (
            concrete
            if concrete is not None
            else self._writer.concrete_function(self.out_dir, self.graph)
        )

    def to_tflite(
        self,
        path: str | os.PathLike[str],
        variant: str = "float32",
        *,
        calibration: Any = None,
        io_dtype: str = "float32",
        batch_size: int | None = None,
        keep_float: Sequence[str] = (),
        target: str | None = None,
        sqnr_goal_db: float | None = None,
    ) -> Path:
        """Write a TFLite flatbuffer (builtin ops only) and check it against PyTorch on the
        transpile's check inputs; see transpiler/tflite.py.

        ``variant``: "float32" (held to the transpile's tolerance; a mismatch raises and writes
        nothing), "float16", "dynamic_range", or the full-integer "int8" / "int16x8" (int8
        weights, int8 / int16 activations), which need ``calibration``: an iterable of input
        batches in the exported model's input layout (numpy arrays or torch tensors; a tuple per
        batch for several inputs), or a callable returning one. Their per-layer quantization
        report (SQNR per PyTorch module, worst first; likely culprits; a suggested
        ``keep_float`` set when the end-to-end SQNR is under ``sqnr_goal_db``, default 30 dB)
        goes into ``report.tflite[-1].quantization`` and report.md.
        ``io_dtype``: "float32" (quantize/dequantize inside the model) or "int8"/"uint8" I/O.
        ``batch_size``: a static batch (and static other dims) for targets that need it; the
        Keras model keeps its dynamic batch. ``keep_float``: PyTorch module paths (or
        prefixes) whose ops stay float (int8 only). ``target``: "tflm", "edgetpu" or "gpu":
        the flatbuffer is checked against that target's constraints; a violation raises
        (listing each, with its PyTorch module) and nothing is written."""
        from .tflite import export_tflite

        if not self.report.references:
            raise TranspileError("to_tflite() checks against PyTorch: transpile with verify=True.")
        export_tflite(
            self.concrete_function(),
            Path(path),
            self.report,
            self.tolerance,
            variant,
            calibration=calibration,
            io_dtype=io_dtype,
            batch_size=batch_size,
            keep_float=keep_float,
            target=target,
            sqnr_goal_db=sqnr_goal_db,
            backend=self.backend,
        )
        if (self.out_dir / "report.md").is_file():
            (self.out_dir / "report.md").write_text(self.report.to_markdown(), encoding="utf-8")
        return Path(path)


def _check_layout(io_layout: Any) -> tuple[str, str]:
    valid = f"valid choices: {', '.join(repr(x) for x in LAYOUTS)} or a pair like ('nhwc', 'nchw')"
    if isinstance(io_layout, str):
        if io_layout.lower() in LAYOUTS:
            return io_layout.lower(), io_layout.lower()
    elif isinstance(io_layout, tuple | list) and len(io_layout) == 2:
        if all(isinstance(x, str) and x.lower() in LAYOUTS for x in io_layout):
            return io_layout[0].lower(), io_layout[1].lower()
    raise TranspileError(f"unknown io_layout {io_layout!r}; {valid}.")


def _check_backend(backend: Any) -> Backend:
    if isinstance(backend, str) and backend in BACKENDS:
        return BACKENDS[backend]
    raise TranspileError(
        f"unknown backend {backend!r}; valid choices: {', '.join(repr(b) for b in BACKENDS)}."
    )


def _check_tolerance(tolerance: Any) -> float:
    if isinstance(tolerance, int | float) and not isinstance(tolerance, bool) and tolerance > 0:
        return float(tolerance)
    raise TranspileError(f"tolerance must be a positive number, got {tolerance!r}.")


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
    structure: str = "modules",
    dynamic_shapes: Any = "auto",
) -> TranspileResult:
    """Transpile a PyTorch module into readable Keras 3 source plus weights.

    Args:
        model: the ``torch.nn.Module``; its eval-mode behaviour is converted and it is left
            exactly as it was (the transpiler works on a copy). An ONNX model (a path ending in
            ``.onnx`` or an ``onnx.ModelProto``) goes through the ONNX frontend instead
            (``example_inputs`` then numpy arrays or tensors, optional; checked against
            onnxruntime).
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
        structure: the keras backend's source form: ``"modules"`` (default: one Keras
            function per PyTorch module class, called like the module tree) or ``"flat"`` (one
            statement per layer). Both build the same layers, names and weights.
        dynamic_shapes: input dimensions that stay dynamic besides the batch, in the spirit
            of ``torch.export``'s argument: one entry per input (a tuple, or a dict keyed by
            forward()'s argument names), each None, ``{axis: dim}`` or a tuple of one dim per
            axis, a dim being True, a name (dims sharing a name share their size) or
            ``torch.export.Dim(name, min=, max=)``. Both tracers see every declared dim at
            two sizes and the check runs at both. ``"auto"`` (default): the sequence axis (1)
            of integer inputs (token ids, masks) where the model converts with it dynamic,
            else static with a note in the report; ``None``: the batch only.

    Returns:
        A ``TranspileResult`` (``source_path``, ``load()``, ``keras_model()``, ``report``).

    Example:
        >>> result = transpile(torchvision.models.resnet18(), torch.randn(1, 3, 224, 224))
        >>> y = result.load()(x.numpy())
    """
    from transpiler.passes import DEFAULT_PIPELINE, PassContext, run_pipeline

    writer = _check_backend(backend)
    layouts = _check_layout(io_layout)
    tolerance = _check_tolerance(tolerance)
    if structure not in STRUCTURES:
        raise TranspileError(
            f"unknown structure {structure!r}; valid choices: "
            f"{', '.join(repr(s) for s in STRUCTURES)}."
        )
    registry = DEFAULT_REGISTRY
    if extra_converters is not None:
        registry = DEFAULT_REGISTRY.merge(extra_converters)
    target = _check_out_dir(out_dir, writer)  # refused before any work, nothing written

    clock = time.perf_counter()
    loaded = load(
        model, example_inputs, tracer=tracer, registry=registry, dynamic_shapes=dynamic_shapes
    )
    traced = time.perf_counter()
    report = Report(backend=writer.name, tracer=loaded.tracer, io_layout=layouts)
    # the check's reference (PyTorch in float32 and float64) starts now, in a background
    # thread: its kernels overlap the passes and the Keras build on two cores
    reference = _prefetched_reference(loaded, report) if verify else None
    try:
        ctx = PassContext(layouts[0], layouts[1], fold_batchnorm)
        imported_transposes = sum(n.op == "transpose" for n in loaded.graph.nodes)
        run = run_pipeline(loaded.graph, DEFAULT_PIPELINE, ctx)
    except BaseException:
        if reference is not None:
            reference.release()  # no run left behind
        raise
    _fill_report(report, loaded, run)
    report.imported_transposes = imported_transposes
    report.timings = {"trace": traced - clock, "passes": time.perf_counter() - traced}
    run.graph.meta["structure"] = structure  # read by the keras backend (issue 13)
    run.graph.meta["batch"] = loaded.batch  # a bounded or static batch is said in the source
    return _write_and_verify(
        writer, run.graph, report, loaded, target, layouts, reference, tolerance
    )


def _prefetched_reference(loaded: Loaded, report: Report) -> Reference:
    """The numeric check's reference, its runs on both check input sets started."""
    reference = reference_for(loaded.check_against, report, loaded.imported)
    reference.prefetch([loaded.inputs_a, loaded.inputs_b])
    return reference


def _fill_report(report: Report, loaded: Loaded, run: Any) -> None:
    """The report's account of the import and the passes."""
    graph = run.graph
    report.passes = run.records
    report.batch = loaded.batch
    report.dynamic = loaded.dynamic
    report.notes.extend(loaded.notes)
    report.inputs = [_describe(v, n) for v, n in zip(graph.inputs, graph.input_names, strict=True)]
    names = graph.meta.get("output_names") or [""] * len(graph.outputs)  # ONNX output names
    report.outputs = [
        _describe(v, f"[{k}] {name}".rstrip())
        for k, (v, name) in enumerate(zip(graph.outputs, names, strict=True))
    ]
    report.transposes = [n.attrs["reason"] for n in graph.nodes if n.op == "transpose"]
    report.unfolded_batchnorm = list(graph.meta.get("unfolded_batchnorm", []))


def _describe(v: Value, name: str) -> str:
    dims = ", ".join(
        "N" if i == 0 and d is None else ("?" if d is None else str(d))
        for i, d in enumerate(v.shape)
    )
    return f"{name}: {v.type.dtype} ({dims})"


def _check_out_dir(out_dir: Any, writer: Backend) -> Path | None:
    """``out_dir`` as a Path, refused if it cannot take the backend's files (None: a fresh
    temporary folder, made when the files are written)."""
    if out_dir is None:
        return None
    final = Path(out_dir)
    if final.exists() and not final.is_dir():
        raise TranspileError(
            f"out_dir {str(final)!r} exists and is not a folder; pick another path."
        )
    writer.check_out_dir(final)
    return final


def _write_and_verify(
    writer: Backend,
    graph: Graph,
    report: Report,
    loaded: Loaded,
    target: Path | None,
    layouts: tuple[str, str],
    reference: Reference | None,
    tolerance: float,
) -> TranspileResult:
    """Write into a staging folder, check against ``reference`` (None: verify=False), then
    move the files into ``out_dir``: nothing half-written is left there when anything fails."""
    from .verify import check_numerics, check_structure

    verify = reference is not None
    final = target if target is not None else Path(tempfile.mkdtemp(prefix="transpiled_"))
    created = not final.exists()
    staging = Path(tempfile.mkdtemp(prefix=".transpiling_"))
    model_name = graph.meta.get("model_class", "Model")
    inputs = [loaded.inputs_a, loaded.inputs_b]
    clock = time.perf_counter()
    try:
        artifact = writer.write(graph, staging, model_name=model_name, layouts=layouts)
        report.module_layers = artifact.module_layers
        report.batchnorm_layers = artifact.batchnorm_layers
        report.transpose_count = artifact.transpose_count
        report.timings["emit"] = time.perf_counter() - clock
        # the batch axis, also with verify=False
        check_structure(artifact, graph, loaded.imported, inputs, layouts, not verify)
        if verify:
            clock = time.perf_counter()
            check_numerics(
                artifact,
                graph,
                loaded.imported,
                reference,  # the PyTorch model's, or the ONNX frontend's runtime
                inputs,
                layouts,
                tolerance,
                report,
            )
            report.timings["verify"] = time.perf_counter() - clock
        (staging / "report.md").write_text(report.to_markdown(), encoding="utf-8")
        final.mkdir(parents=True, exist_ok=True)
        files = []
        for name in [*artifact.files, "report.md"]:
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
        if reference is not None:
            reference.release()  # no run left behind, the float64 copy dropped
        shutil.rmtree(staging, ignore_errors=True)
    report.files = [f.name for f in files]

    def path(name: str | None) -> Path | None:
        return final / name if name is not None else None

    return TranspileResult(
        backend=writer.name,
        out_dir=final,
        source_path=path(writer.source_file),
        weights_path=path(writer.weights_file),
        report=report,
        graph=graph,
        io_layout=layouts,
        files=files,
        tolerance=tolerance,
        saved_model_path=path(writer.saved_model_dir),
        _written=artifact,
    )
