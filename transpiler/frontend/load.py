"""``load()``: a PyTorch model, a ``torch.export`` program or an ONNX model -> the IR, with the
inputs the numeric check runs on and what it compares with. The one entry point of the
frontend.

It owns every choice made before the IR exists:

- the tracer: ``"fx"`` (symbolic tracing: module boundaries kept), ``"export"`` (``torch.export``
  followed by the same importer) or ``"auto"`` (fx, falling back to export when fx cannot
  trace; the report's notes say why);
- the working copy: an eval-mode float32 copy, so the user's model is never touched;
- single-layer wrapping (a bare ``nn.Conv2d`` traces as one call of itself);
- an ``ExportedProgram`` as input, with the example inputs it saved;
- input inference when ``example_inputs`` is None (the one-line form);
- an ONNX model (a path ending in ``.onnx`` or an ``onnx.ModelProto``): the ONNX importer
  (onnx_importer.py), checked against an ONNX runtime (``Loaded.reference``).
"""

from __future__ import annotations

import copy
import inspect
from dataclasses import dataclass, field
from typing import Any

import torch

from transpiler._hygiene import block_triton_if_tensorflow
from transpiler.errors import TranspileError
from transpiler.ir import Graph
from transpiler.signature import (
    AUTO,
    DynamicSpec,
    alternate_inputs,
    auto_dynamic,
    describe_dynamic,
    infer_inputs,
    normalize_inputs,
    parse_dynamic_shapes,
    resize_dynamic,
)
from transpiler.verify import Reference

from .fx_importer import ImportedModel, import_model, trace, wrap_single_layer
from .registry import DEFAULT_REGISTRY, ConverterRegistry

__all__ = ["FX", "EXPORT", "TRACERS", "Loaded", "load"]

TRACERS = ("auto", "fx", "export")
FX = "torch.fx symbolic_trace"
EXPORT = "torch.export"


@dataclass
class Loaded:
    """What ``load()`` imported, and how."""

    imported: ImportedModel  # the IR graph, with the fx graph and root it came from
    torch_model: torch.nn.Module | None  # the PyTorch model the check runs (never the user's)
    inputs_a: list[torch.Tensor]  # the example inputs (or synthesized ones)
    inputs_b: list[torch.Tensor]  # another batch size (and spatial size when inferred)
    tracer: str  # FX or EXPORT
    inputs_inferred: bool = False  # example_inputs was None: the signature was inferred
    notes: list[str] = field(default_factory=list)  # why the tracer, what was inferred
    batch: str = "dynamic"  # BatchSpec.describe(): "dynamic", "dynamic, 1 <= N <= 63", "static: 2"
    dynamic: str = ""  # the dims dynamic beyond the batch: "input_ids[1]=seq" ("" if none)
    # what the numeric check compares with, when not torch_model (the ONNX frontend's runtime)
    reference: Reference | None = None

    @property
    def graph(self) -> Graph:
        return self.imported.graph

    @property
    def check_against(self) -> torch.nn.Module | Reference:
        """The numeric check's reference: ``reference``, else the PyTorch model."""
        return self.reference if self.reference is not None else self.torch_model


def load(
    model_or_program: Any,
    example_inputs: Any = None,
    *,
    tracer: str = "auto",
    registry: ConverterRegistry | None = None,
    dynamic_shapes: Any = None,
) -> Loaded:
    """Import ``model_or_program`` (an ``nn.Module``, a ``torch.export.ExportedProgram``, or an
    ONNX model: a path ending in ``.onnx`` or an ``onnx.ModelProto``) into the IR.
    ``registry``: the PyTorch converters (default: the built-in ones).
    ``dynamic_shapes``: input dims dynamic beyond the batch (signature.parse_dynamic_shapes),
    ``"auto"`` (the sequence axis of integer inputs, where the model converts with it; else
    static, with a note) or None (the batch only). Raises TranspileError for a bad model,
    tracer or inputs, UnsupportedOpError for unconverted ops."""
    from .onnx_importer import is_onnx_model

    if is_onnx_model(model_or_program):  # symbolic ONNX dims are dynamic as declared
        if dynamic_shapes not in (None, AUTO):
            raise TranspileError(
                "dynamic_shapes applies to PyTorch models; an ONNX model's symbolic first dim "
                "(dim_param) is its dynamic batch."
            )
        return _load_onnx(model_or_program, example_inputs, tracer, registry)
    if dynamic_shapes is None or example_inputs is None:
        if dynamic_shapes not in (None, AUTO):
            raise TranspileError(
                "dynamic_shapes needs example_inputs (the one-line form already keeps every "
                "spatial size dynamic)."
            )
        return _load(model_or_program, example_inputs, tracer, registry, None)
    names = _input_names(model_or_program, example_inputs)
    inputs = normalize_inputs(example_inputs)
    if dynamic_shapes != AUTO:
        spec = parse_dynamic_shapes(dynamic_shapes, inputs, names)
        loaded = _load(model_or_program, example_inputs, tracer, registry, spec)
        loaded.dynamic = describe_dynamic(spec, names)
        return loaded
    spec = auto_dynamic(inputs)
    if not any(spec):
        return _load(model_or_program, example_inputs, tracer, registry, None)
    try:
        loaded = _load(model_or_program, example_inputs, tracer, registry, spec, auto=True)
    except TranspileError as exc:  # unsupported ops included: a static length folds more
        loaded = _load(model_or_program, example_inputs, tracer, registry, None)
        first = str(exc).splitlines()[0][:300]
        loaded.notes.append(
            f"the sequence length is static ({describe_dynamic(spec, names)} could not stay "
            f"dynamic: {first}); pass dynamic_shapes=None to skip the attempt"
        )
        return loaded
    loaded.dynamic = describe_dynamic(spec, names)
    return loaded


def _input_names(model: Any, example_inputs: Any) -> list[str]:
    """forward()'s positional argument names for the example inputs (``x0, x1, ...`` where
    they cannot be read)."""
    n = len(normalize_inputs(example_inputs))
    target = model.module() if _exported_program(model) is not None else model
    try:
        params = list(inspect.signature(target.forward).parameters.values())
    except (TypeError, ValueError, AttributeError):
        params = []
    names = [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return names[:n] if len(names) >= n else [f"x{k}" for k in range(n)]


def _load(
    model_or_program: Any,
    example_inputs: Any,
    tracer: str,
    registry: ConverterRegistry | None,
    dynamic: DynamicSpec | None,
    auto: bool = False,
) -> Loaded:
    """``load`` for one choice of dynamic dims; ``auto``: ``dynamic`` is the default guess
    (an ExportedProgram keeps the dims it was exported with)."""
    # Keras (so TensorFlow) may be loaded later in this process, and fx's stack-trace recording
    # may load torch's inductor, which loads triton: with TensorFlow around that is a SIGSEGV.
    block_triton_if_tensorflow(force=True)
    program = _exported_program(model_or_program)
    if program is None and not isinstance(model_or_program, torch.nn.Module):
        raise TranspileError(
            f"model must be a torch.nn.Module, a torch.export.ExportedProgram or an ONNX model "
            f"(a path ending in .onnx, or an onnx.ModelProto), got "
            f"{type(model_or_program).__name__}."
        )
    if tracer not in TRACERS:
        raise TranspileError(
            f"unknown tracer {tracer!r}; valid choices: {', '.join(repr(t) for t in TRACERS)}."
        )
    registry = registry if registry is not None else DEFAULT_REGISTRY
    if program is not None:
        if tracer == "fx":
            raise TranspileError(
                "an ExportedProgram is converted through torch.export's graph: use tracer='auto' "
                "or 'export' (or pass the nn.Module for tracer='fx')."
            )
        example_inputs = example_inputs if example_inputs is not None else _saved(program)
        dynamic = None if auto else dynamic
        loaded = _load_export(program.module(), program, example_inputs, registry, None, dynamic)
        loaded.imported.graph.meta["model_class"] = "ExportedProgram"
        return loaded
    work = _working_copy(model_or_program)
    fx_error = None
    if tracer in ("fx", "auto"):
        try:
            wrapped = wrap_single_layer(work, registry)
            fx_graph = trace(wrapped, registry)
        except TranspileError as exc:
            if tracer == "fx":
                raise
            fx_error = exc  # the model stays unwrapped for torch.export
        else:
            loaded = _load_fx(wrapped, fx_graph, example_inputs, registry, dynamic)
    if fx_error is not None or tracer == "export":
        loaded = _load_export(work, None, example_inputs, registry, fx_error, dynamic, auto)
    loaded.imported.graph.meta["model_class"] = type(model_or_program).__name__
    return loaded


def _load_fx(
    root: torch.nn.Module,
    fx_graph: Any,
    example_inputs: Any,
    registry: ConverterRegistry,
    dynamic: DynamicSpec | None = None,
) -> Loaded:
    """The torch.fx path, after a successful trace of ``root``; ``dynamic``: the dims whose
    size differs in the second run (so they are dynamic in the IR)."""
    if example_inputs is None:
        inputs_a, inputs_b = infer_inputs(root, fx_graph)
        notes = ["input signature inferred from the first layer; spatial sizes are dynamic"]
    else:
        inputs_a = normalize_inputs(example_inputs)
        inputs_b = alternate_inputs(inputs_a)
        if dynamic:
            inputs_b = resize_dynamic(inputs_b, dynamic)
        notes = []
    imported = import_model(root, inputs_a, inputs_b, registry=registry, fx_graph=fx_graph)
    loaded = Loaded(imported, root, inputs_a, inputs_b, FX, example_inputs is None, notes)
    if imported.batch is not None:  # the import found no batch axis (unbatched conv form)
        loaded.inputs_b = imported.inputs_b or inputs_b
        loaded.batch = imported.batch.describe()
        loaded.notes.append(imported.batch.note() or "")
    return loaded


def _load_export(
    work: torch.nn.Module,
    program: Any,
    example_inputs: Any,
    registry: ConverterRegistry,
    fx_error: TranspileError | None,
    dynamic: DynamicSpec | None = None,
    auto: bool = False,
) -> Loaded:
    """The torch.export path: export ``work`` (or take ``program``), rewrite its ATen graph
    into an fx graph the importer converts; ``auto``: ``dynamic`` is the default guess."""
    if example_inputs is None:
        why = f" ({str(fx_error).splitlines()[0]})" if fx_error else ""
        raise TranspileError(
            f"the torch.export path needs example_inputs{why}: pass a tensor (or a tuple) "
            "with the input shapes."
        )
    from .export_importer import aten_registry, export_program, export_to_fx, program_batch

    inputs_a = normalize_inputs(example_inputs)
    if program is None:
        program, batch = export_program(work, inputs_a, dynamic, prefer_auto=auto)
    else:
        batch = program_batch(program)
        program = program.run_decompositions({})
    root, fx_graph = export_to_fx(program)
    inputs_b = alternate_inputs(inputs_a, batch=batch)  # static: the same batch
    if dynamic:
        inputs_b = resize_dynamic(inputs_b, dynamic)
    imported = import_model(
        root, inputs_a, inputs_b, registry=aten_registry(registry), fx_graph=fx_graph
    )
    notes = []
    if fx_error is not None:
        first = str(fx_error).splitlines()[0]
        notes.append(f"torch.fx could not trace the model ({first}); used torch.export")
    notes += [batch.note()] if batch.note() else []
    loaded = Loaded(imported, work, inputs_a, inputs_b, EXPORT, False, notes)
    loaded.batch = batch.describe()
    return loaded


def _load_onnx(
    model: Any, example_inputs: Any, tracer: str, registry: ConverterRegistry | None
) -> Loaded:
    """The ONNX path: import (running the model with an ONNX runtime on the example inputs and
    on another batch size); the numeric check compares with that runtime."""
    from .onnx_importer import OnnxReference, import_onnx

    if tracer != "auto":
        raise TranspileError(
            f"tracer={tracer!r} applies to PyTorch models; an ONNX model is read by the ONNX "
            "importer: leave tracer='auto'."
        )
    if registry is not None and registry is not DEFAULT_REGISTRY:
        raise TranspileError(
            "extra_converters are PyTorch converters; ONNX op converters live in "
            "transpiler/frontend/onnx_ops.py (ONNX_CONVERTERS, see README 'ONNX models')."
        )
    imported = import_onnx(model, example_inputs)
    inputs_a, inputs_b = ([torch.from_numpy(x) for x in s] for s in imported.input_sets)
    tracer_name = f"ONNX importer (checked with {imported.runtime})"
    loaded = Loaded(imported, None, inputs_a, inputs_b, tracer_name, example_inputs is None)
    loaded.notes.extend(imported.notes)
    loaded.reference = OnnxReference(imported)
    if not imported.dynamic_batch and inputs_a and inputs_a[0].ndim:
        loaded.batch = f"static: {inputs_a[0].shape[0]}"
    return loaded


def _exported_program(model: Any) -> Any:
    exported = getattr(torch.export, "ExportedProgram", None)
    return model if exported is not None and isinstance(model, exported) else None


def _saved(program: Any) -> Any:
    """The example inputs an exported program was traced with (torch >= 2.5 keeps them)."""
    saved = getattr(program, "example_inputs", None)
    if saved and saved[0] and all(isinstance(t, torch.Tensor) for t in saved[0]):
        return tuple(saved[0])
    return None


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
