"""The numeric check against PyTorch, and the per-layer diagnosis when it fails.

Bound, per output: max|y - y_torch| <= tolerance · max(1, max|y_torch|), in float32.
On failure, every intermediate output (a Keras layer's, or a tf backend op scope's) that carries
a PyTorch value is compared with that value (permuted to its layout), in graph order, and the
first PyTorch module whose output diverges is named.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ._pytree import flatten
from .errors import TranspileError
from .report import Check, Divergence, Report

__all__ = ["check_numerics", "to_layout", "from_layout"]


def _cl(rank: int) -> tuple[int, ...]:
    return (0, *range(2, rank), 1)


def to_layout(a: np.ndarray, layout: str) -> np.ndarray:
    """PyTorch layout -> ``layout`` for a float tensor of rank 3..5 (others unchanged)."""
    if layout == "nhwc" and a.dtype.kind == "f" and 3 <= a.ndim <= 5:
        return np.ascontiguousarray(a.transpose(_cl(a.ndim)))
    return a


def from_layout(a: np.ndarray, layout: str) -> np.ndarray:
    if layout == "nhwc" and a.dtype.kind == "f" and 3 <= a.ndim <= 5:
        return np.ascontiguousarray(a.transpose(np.argsort(_cl(a.ndim))))
    return a


def _error(y: np.ndarray, ref: np.ndarray, tolerance: float) -> tuple[float, float, float]:
    scale = max(1.0, float(np.max(np.abs(ref))) if ref.size else 1.0)
    err = float(np.max(np.abs(y.astype(np.float64) - ref.astype(np.float64)))) if ref.size else 0.0
    if not np.isfinite(err) and np.array_equal(np.isinf(y), np.isinf(ref)):
        finite = np.isfinite(ref)
        err = float(np.max(np.abs(y[finite] - ref[finite]), initial=0.0))
    return err, err / scale, tolerance * scale


def check_numerics(
    written: Any,
    graph: Any,
    imported: Any,
    work: torch.nn.Module,
    input_sets: list[list[torch.Tensor]],
    layouts: tuple[str, str],
    tolerance: float,
    report: Report,
) -> None:
    """Run PyTorch and the converted model (``written.run``); record checks; raise
    TranspileError on mismatch, naming the first diverging module (``written.probe``)."""
    for inputs in input_sets:
        with torch.no_grad():
            refs = [
                t.detach().float().numpy() if t.is_floating_point() else t.numpy()
                for t in flatten(work(*inputs))
            ]
        arrays = [to_layout(x.numpy(), layouts[0]) for x in inputs]
        report.references.append((arrays, [to_layout(r, layouts[1]) for r in refs]))
        outs = written.run(*arrays)
        outs = list(outs) if isinstance(outs, tuple) else [outs]
        if len(outs) != len(refs):
            raise TranspileError(f"internal: {len(outs)} outputs, PyTorch gives {len(refs)}")
        failed = False
        for k, (y, ref) in enumerate(zip(outs, refs, strict=True)):
            y = from_layout(np.asarray(y), layouts[1])
            if y.shape != ref.shape:
                raise TranspileError(
                    f"output {k} has shape {y.shape}, PyTorch gives {ref.shape} (internal error)"
                )
            err, rel, bound = _error(y, ref, tolerance)
            ok = err <= bound
            failed |= not ok
            shapes = tuple(tuple(x.shape) for x in inputs)
            report.checks.append(Check(inputs[0].shape[0], k, err, rel, bound, ok, shapes))
        if failed:
            report.divergence = _diagnose(written, graph, imported, work, inputs, arrays, tolerance)
            where = (
                f"; first diverging PyTorch module: {report.divergence.module_path!r} "
                f"({report.divergence.module_type}), {report.backend} layer "
                f"{report.divergence.layer!r}, "
                f"max abs error {report.divergence.max_abs:.3g} > {report.divergence.bound:.3g}"
                if report.divergence
                else ""
            )
            worst = max((c for c in report.checks if not c.ok), key=lambda c: c.max_rel)
            raise TranspileError(
                f"numeric check failed at batch {worst.batch_size}: output {worst.output_index} "
                f"differs from PyTorch by {worst.max_abs:.3g} (bound {worst.bound:.3g}){where}. "
                "Nothing was written. This is a converter bug: please report it with the "
                "model; e.report has the details.",
                report=report,
            )


def _diagnose(written, graph, imported, work, inputs, arrays, tolerance) -> Divergence | None:
    by_name = imported.run_values(inputs)
    probes = []
    for node in graph.nodes:
        if len(node.outputs) != 1:
            continue
        v = node.output
        layer = written.value_layers.get(v.name)
        ref = by_name.get(v.torch_ref) if v.torch_ref else None
        if layer is None or not isinstance(ref, torch.Tensor) or node.source is None:
            continue
        probes.append((node, v, layer, ref))
    if not probes:
        return None
    outs = written.probe(arrays, [p[2] for p in probes])
    for (node, v, layer, ref), y in zip(probes, outs, strict=True):
        ref = ref.detach().float().numpy() if ref.is_floating_point() else ref.numpy()
        if v.perm is not None and len(v.perm) == ref.ndim:
            ref = ref.transpose(v.perm)
        y = np.asarray(y)
        if y.shape != ref.shape:
            continue
        err, _, bound = _error(y, ref, tolerance)
        if err > bound:
            return Divergence(
                node.source.module_path or "<top>", node.source.module_type, layer, err, bound
            )
    return None


def check_numerics_onnx(
    written: Any,
    graph: Any,
    imported: Any,
    layouts: tuple[str, str],
    tolerance: float,
    report: Report,
) -> None:
    """The numeric check of an ONNX import: the outputs of an ONNX runtime (computed by the
    importer on the example inputs and on another batch size) against ``written.run``; on
    failure, the first diverging ONNX node (name and op type) is named."""
    for inputs, refs in zip(imported.input_sets, imported.references, strict=True):
        refs = [r.astype(np.float32) if r.dtype.kind == "f" else r for r in refs]
        arrays = [to_layout(x, layouts[0]) for x in inputs]
        report.references.append((arrays, [to_layout(r, layouts[1]) for r in refs]))
        outs = written.run(*arrays)
        outs = list(outs) if isinstance(outs, tuple) else [outs]
        failed = False
        for k, (y, ref) in enumerate(zip(outs, refs, strict=True)):
            y = from_layout(np.asarray(y), layouts[1])
            if y.shape != ref.shape:
                raise TranspileError(
                    f"output {k} has shape {y.shape}, the ONNX model gives {ref.shape} (internal "
                    "error)"
                )
            err, rel, bound = _error(y, ref, tolerance)
            failed |= err > bound
            shapes = tuple(tuple(x.shape) for x in inputs)
            report.checks.append(
                Check(
                    inputs[0].shape[0] if inputs[0].ndim else 1,
                    k,
                    err,
                    rel,
                    bound,
                    err <= bound,
                    shapes,
                )
            )
        if failed:
            report.divergence = _diagnose_onnx(written, graph, imported, inputs, arrays, tolerance)
            where = (
                f"; first diverging ONNX node: {report.divergence.module_path!r} "
                f"({report.divergence.module_type}), {report.backend} layer "
                f"{report.divergence.layer!r}, max abs error {report.divergence.max_abs:.3g} > "
                f"{report.divergence.bound:.3g}"
                if report.divergence
                else ""
            )
            worst = max((c for c in report.checks if not c.ok), key=lambda c: c.max_rel)
            raise TranspileError(
                f"numeric check failed at batch {worst.batch_size}: output {worst.output_index} "
                f"differs from the ONNX runtime by {worst.max_abs:.3g} (bound {worst.bound:.3g})"
                f"{where}. Nothing was written. This is a converter bug: please report it with "
                "the model; e.report has the details.",
                report=report,
            )


def _diagnose_onnx(written, graph, imported, inputs, arrays, tolerance) -> Divergence | None:
    from .frontend.onnx_importer import run_onnx

    values = run_onnx(imported.proto, dict(zip(imported.input_names, inputs, strict=True)))
    producer = {o: n for n in imported.proto.graph.node for o in n.output if o}
    probes = []
    for node in graph.nodes:
        v = node.output
        layer = written.value_layers.get(v.name)
        ref = values.get(v.torch_ref) if v.torch_ref else None
        if layer is None or ref is None or v.torch_ref not in producer:
            continue
        probes.append((node, v, layer, np.asarray(ref)))
    if not probes:
        return None
    outs = written.probe(arrays, [p[2] for p in probes])
    for (_node, v, layer, ref), y in zip(probes, outs, strict=True):
        if ref.dtype.kind == "f":
            ref = ref.astype(np.float32)
        if v.perm is not None and len(v.perm) == ref.ndim:
            ref = ref.transpose(v.perm)
        y = np.asarray(y)
        if y.shape != ref.shape:
            continue
        err, _, bound = _error(y, ref, tolerance)
        if err > bound:
            onnx_node = producer[v.torch_ref]
            return Divergence(onnx_node.name, onnx_node.op_type, layer, err, bound)
    return None
