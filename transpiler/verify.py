"""The numeric and structural checks against PyTorch, and the per-layer diagnosis.

Numeric bound, per output: our float32 output ``y`` against PyTorch run in float64 ``y_ref``
(the model run in float64 on the same inputs: the float32 model through ``Float64View``, which
casts each parameter and buffer to float64 per op, or else a float64 copy of the model;
PyTorch's float32 run where the model cannot run in float64, and the report says so):

    max|y - y_ref| <= max(tolerance · max(1, max|y_ref|), TORCH_ERROR_FACTOR · e_torch)

where ``e_torch = max|y_torch32 - y_ref|`` is PyTorch's own float32 error. Where PyTorch's
float32 run is accurate, this is the contract's ``tolerance · max(1, max|y|)``; where float32
itself cannot do better (BatchNorm statistics that amplify rounding), the bound follows what
PyTorch itself achieves, and the report shows both numbers.

A check is *vacuous* for an output when a constant (zeros, or the midpoint of the output's
range) would also have met the bound; the check is then repeated with the float inputs scaled
up (``VACUOUS_SCALES``), and an output vacuous at every scale is reported as such
(``report.vacuous_outputs``, ``report.verified`` False). An output that cannot depend on the
inputs (it comes through a layer whose weight is all zero, as torchvision's classifier heads
are initialized) is not retried: the note says which layer cuts it off.

Structure: every output's batch axis must follow the inputs' batch wherever PyTorch's does; a
violation names the first IR node (or generated layer) that lost the dynamic batch.

On a numeric failure, every intermediate output (a Keras layer's, or a tf backend op scope's)
that carries a PyTorch value is compared with that value (permuted to its layout), in graph
order, with the same bound, and the first PyTorch module whose output diverges is named.
"""

from __future__ import annotations

import concurrent.futures
import copy
import dataclasses
from typing import Any

import numpy as np
import torch

from ._float64 import Float64View, fast_depthwise
from ._pytree import flatten
from .errors import TranspileError
from .report import TORCH_ERROR_FACTOR, Check, Divergence, Report

__all__ = [
    "Reference",
    "reference_for",
    "check_numerics",
    "check_structure",
    "to_layout",
    "from_layout",
    "VACUOUS_SCALES",
]

# input scales tried, in order, when the check is vacuous for an output at the inputs' own scale
VACUOUS_SCALES = (10.0, 100.0)


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


def _max_abs_diff(y: np.ndarray, ref: np.ndarray) -> float:
    if not ref.size:
        return 0.0
    err = float(np.max(np.abs(y.astype(np.float64) - ref.astype(np.float64))))
    if not np.isfinite(err) and np.array_equal(np.isinf(y), np.isinf(ref)):
        finite = np.isfinite(ref)
        err = float(np.max(np.abs(y[finite] - ref[finite]), initial=0.0))
    return err


def _scale(ref: np.ndarray) -> float:
    return max(1.0, float(np.max(np.abs(ref))) if ref.size else 1.0)


def _error(y: np.ndarray, ref: np.ndarray, tolerance: float) -> tuple[float, float, float]:
    """(max abs error, scaled error, contract bound tolerance · max(1, max|ref|))."""
    scale = _scale(ref)
    err = _max_abs_diff(y, ref)
    return err, err / scale, tolerance * scale


def _vacuous(ref: np.ndarray, bound: float) -> bool:
    """A constant output (the midpoint of ``ref``'s range, or zeros) would meet ``bound``."""
    if ref.dtype.kind != "f" or not ref.size or not np.all(np.isfinite(ref)):
        return False
    ref64 = ref.astype(np.float64)
    return float(np.max(ref64) - np.min(ref64)) / 2 <= bound


def _numpy(t: Any) -> Any:
    if isinstance(t, torch.Tensor):
        t = t.detach()
        return t.float().numpy() if t.is_floating_point() else t.numpy()
    return t


def _float64(inputs: list[torch.Tensor]) -> list[torch.Tensor]:
    return [x.double() if x.is_floating_point() else x for x in inputs]


def float64_copy(module: torch.nn.Module) -> torch.nn.Module:
    """A float64 copy of ``module`` (``copy.deepcopy(module).double()``) that never holds a
    second float32 copy of the weights: each float parameter and buffer is copied straight to
    float64 (ties kept), then ``double()`` runs for modules that re-derive state in ``_apply``
    (RNNs' flat weights); ``module`` is untouched."""
    memo: dict[int, Any] = {}
    for t in [*module.parameters(), *module.buffers()]:
        if id(t) in memo or not t.is_floating_point():
            continue
        t64 = t.detach().double()
        if isinstance(t, torch.nn.Parameter):
            t64 = torch.nn.Parameter(t64, requires_grad=t.requires_grad)
        memo[id(t)] = t64
    return copy.deepcopy(module, memo).double()


def _float64_refs(outs: list[Any], refs32: list[Any]) -> list[Any]:
    """The float64 run's flattened outputs as numpy, checked against the float32 run's."""
    refs64 = [t.detach().numpy() if isinstance(t, torch.Tensor) else t for t in outs]
    if len(refs64) != len(refs32) or any(
        np.shape(a) != np.shape(b) for a, b in zip(refs32, refs64, strict=True)
    ):
        raise TranspileError("the float64 run gives other outputs than the float32 run")
    return refs64


def _run_torch(module: torch.nn.Module, inputs: list[torch.Tensor], what: str) -> list[Any]:
    try:
        with torch.no_grad():
            return list(flatten(module(*inputs)))
    except Exception as exc:  # noqa: BLE001 - name the run
        shapes = ", ".join(str(tuple(x.shape)) for x in inputs)
        raise TranspileError(
            f"running the PyTorch model for the numeric check ({what}, inputs of shape "
            f"{shapes}) failed: {type(exc).__name__}: {str(exc)[:600]}"
        ) from exc


class Reference:
    """What the numeric check compares the converted model with: the frontend's own model.

    ``_Reference`` runs the PyTorch model; the ONNX frontend's ``OnnxReference`` runs an ONNX
    runtime. ``name`` ("PyTorch") and ``unit`` ("PyTorch module") word the messages."""

    name = "reference"
    unit = "node"

    def outputs(self, inputs: list[torch.Tensor], what: str) -> tuple[list[Any], list[Any] | None]:
        """The flattened outputs on ``inputs``: (float32 numpy arrays, float64 ones or None)."""
        raise NotImplementedError

    def label(self, float64: bool) -> str:
        """The ``Check.reference`` text of a check against the float64 (or float32) outputs."""
        return "float64" if float64 else "float32"

    def values(self, inputs: list[torch.Tensor]) -> tuple[dict[str, Any], dict[str, Any]]:
        """Every intermediate value on ``inputs`` by the name an IR value's ``torch_ref`` holds:
        (float32 values, float64 values, possibly empty), for the per-layer diagnosis."""
        raise NotImplementedError

    def locate(self, node: Any) -> tuple[str, str] | None:
        """(path, type) naming where IR ``node``'s output comes from; None: not comparable."""
        raise NotImplementedError

    def prefetch(self, input_sets: list[list[torch.Tensor]]) -> None:
        """Start computing the outputs on ``input_sets`` early (optional; none here)."""

    def release(self) -> None:
        """Drop what the checks no longer need (optional)."""


def reference_for(work: torch.nn.Module | Reference, report: Report, imported: Any) -> Reference:
    """The check's reference: a frontend's own ``Reference``, or the PyTorch model's."""
    return work if isinstance(work, Reference) else _Reference(work, report, imported)


def describe_set(k: int, inputs: list[torch.Tensor]) -> str:
    """How the messages name the ``k``-th check input set."""
    return "the example inputs" if k == 0 else f"random inputs of batch {inputs[0].shape[0]}"


class _Reference(Reference):
    """PyTorch's outputs on one input set: float32, and float64 where the model runs in it.

    The float64 run is the float32 model run through ``Float64View`` (no float64 copy of the
    weights); where the model cannot run that way (``Float64View.unsupported``, or the run
    raises), a float64 copy (``float64_copy``); where that fails too, none (float32 only, with
    a note). ``float64_via`` says which ("view", "copy", or None before the first run)."""

    name = "PyTorch"
    unit = "PyTorch module"

    def __init__(self, work: torch.nn.Module, report: Report, imported: Any = None) -> None:
        self.work = work
        self.report = report
        self.imported = imported
        self.work64: torch.nn.Module | None = None
        self.view64: Float64View | None = None
        self.view_failed = Float64View.unsupported(work) is not None  # then: the copy
        self.float64_via: str | None = None
        self.noted = False  # the float64 run failed once: float32 from then on
        self._prefetched: dict[int, concurrent.futures.Future] = {}

    def _model64(self) -> torch.nn.Module | None:
        """The float64 copy of the model, made on first use (None: it cannot be made)."""
        if self.work64 is None and not self.noted:
            try:
                self.work64 = float64_copy(self.work)
            except Exception as exc:  # noqa: BLE001 - fall back to float32, and say so
                self._give_up(exc)
        return self.work64

    def prefetch(self, input_sets: list[list[torch.Tensor]]) -> None:
        """Start computing the outputs on ``input_sets`` in a background thread, while the
        caller does other work (the Keras model's build): PyTorch's kernels run without the
        GIL. ``outputs`` on the same input lists then waits for them. The float64 copy is
        dropped when they are done."""
        pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="reference")
        last = len(input_sets) - 1
        for k, inputs in enumerate(input_sets):
            run = self._outputs if k < last else self._last_outputs
            self._prefetched[id(inputs)] = pool.submit(run, inputs, describe_set(k, inputs))
        pool.shutdown(wait=False)

    def _last_outputs(self, inputs: list[torch.Tensor], what: str) -> tuple[list, list | None]:
        """The last prefetched run: the float64 weights go as soon as it is done, before its
        result is handed over (so a later float64 run in the caller's thread never races it)."""
        try:
            return self._outputs(inputs, what)
        finally:
            self._drop64()

    def release(self) -> None:
        """Wait for any prefetched run, then drop the float64 copy."""
        for future in self._prefetched.values():
            future.exception()
        self._prefetched.clear()
        self._drop64()

    def _drop64(self) -> None:
        self.work64 = None  # made again if a later check needs it (vacuous retries)
        self.view64 = None  # and the buffers' float64 shadows with it

    def _give_up(self, exc: BaseException) -> None:
        if not self.noted:
            first = str(exc).splitlines()[0][:200] if str(exc) else ""
            self.report.notes.append(
                f"PyTorch could not run the model in float64 ({type(exc).__name__}: {first}); "
                "the numeric check compares with PyTorch's float32 run"
            )
            self.noted = True
        self.work64 = None

    def outputs(self, inputs: list[torch.Tensor], what: str) -> tuple[list[Any], list[Any] | None]:
        future = self._prefetched.pop(id(inputs), None)
        if future is not None:
            return future.result()  # re-raises the run's TranspileError, if any
        return self._outputs(inputs, what)

    def _outputs(self, inputs: list[torch.Tensor], what: str) -> tuple[list[Any], list[Any] | None]:
        refs32 = [_numpy(t) for t in _run_torch(self.work, inputs, what)]
        if not self.view_failed:
            try:
                if self.view64 is None:
                    self.view64 = Float64View(self.work)
                outs = list(flatten(self.view64.run(self.work, *_float64(inputs))))
                refs64 = _float64_refs(outs, refs32)
                self.float64_via = "view"
                return refs32, refs64
            except Exception:  # noqa: BLE001 - the float64 copy instead, from now on
                self.view_failed = True
                self.view64 = None
        work64 = self._model64()
        if work64 is None:
            return refs32, None
        try:
            with torch.no_grad(), fast_depthwise():
                outs = list(flatten(work64(*_float64(inputs))))
            refs64 = _float64_refs(outs, refs32)
        except Exception as exc:  # noqa: BLE001 - fall back to float32
            self._give_up(exc)
            return refs32, None
        self.float64_via = "copy"
        return refs32, refs64

    def values(self, inputs: list[torch.Tensor]) -> tuple[dict[str, Any], dict[str, Any]]:
        """The fx run of ``imported.root``, in float32 and in float64 (through a
        ``Float64View`` of the root where it can run that way, else a float64 copy)."""
        for future in self._prefetched.values():  # no run of the model left in another thread
            future.exception()
        imported = self.imported
        by_name = imported.run_values(inputs)
        inputs64 = _float64(list(inputs))
        if Float64View.unsupported(imported.root) is None:
            try:
                view = Float64View(imported.root)
                return by_name, view.run(imported.run_values, inputs64)
            except Exception:  # noqa: BLE001 - the float64 copy instead
                pass
        try:
            root64 = float64_copy(imported.root)
            with fast_depthwise():
                by_name64 = dataclasses.replace(imported, root=root64).run_values(inputs64)
        except Exception:  # noqa: BLE001 - diagnose against float32 alone
            by_name64 = {}
        return by_name, by_name64

    def locate(self, node: Any) -> tuple[str, str] | None:
        if node.source is None:
            return None
        return node.source.module_path or "<top>", node.source.module_type


# ops whose output is its bias (or zero) for every finite input when a weight operand is all zero
_ZERO_WEIGHT_OPERANDS = {"linear": (1,), "conv": (1,), "conv_transpose": (1,), "matmul": (0, 1)}
_ZERO_WEIGHT_OPERANDS["mul"] = (0, 1)


def input_independent(graph: Any) -> dict[int, Any]:
    """The outputs whose values cannot depend on the graph inputs' values (index -> the node
    with an all-zero weight that cuts them off, or None when nothing on their way reads an
    input), for every finite input. Retrying a vacuous check of such an output at larger input
    scales cannot help."""
    constants = graph.constants
    cause: dict[int, Any] = {}  # id(value) -> the zero-weight node it comes through
    dependent = {id(v) for v in graph.inputs}

    def zero(v: Any) -> bool:
        data = constants.get(v.name) if v.producer is None else None
        return data is not None and data.size > 0 and not np.any(data)

    for node in graph.nodes:
        operands = _ZERO_WEIGHT_OPERANDS.get(node.op, ())
        if any(i < len(node.inputs) and zero(node.inputs[i]) for i in operands):
            cause.update((id(o), node) for o in node.outputs)
        elif any(id(v) in dependent for v in node.inputs):
            dependent.update(id(o) for o in node.outputs)
        else:
            origin = next((cause[id(v)] for v in node.inputs if id(v) in cause), None)
            cause.update((id(o), origin) for o in node.outputs if origin is not None)
    return {k: cause.get(id(v)) for k, v in enumerate(graph.outputs) if id(v) not in dependent}


def _constant_note(k: int, node: Any) -> str:
    if node is None:
        why = "nothing on its way reads an input"
    else:
        where = node.source.describe() if node.source else f"a {node.op} node"
        why = (
            f"it comes through {where}, whose weight is all zero, so it is that layer's bias "
            "(or zero) for every finite input (torchvision, for one, initializes classifier heads "
            "so)"
        )
    return (
        f"the numeric check was vacuous for output {k}: it does not depend on the inputs "
        f"({why}); any output of that shape would have passed, at any input scale. Give that "
        "layer its trained (non-zero) weights to check the model through it"
    )


def check_numerics(
    written: Any,
    graph: Any,
    imported: Any,
    work: torch.nn.Module | Reference,
    input_sets: list[list[torch.Tensor]],
    layouts: tuple[str, str],
    tolerance: float,
    report: Report,
) -> None:
    """Run the reference (the PyTorch model ``work``, or a frontend's ``Reference`` such as
    the ONNX frontend's onnxruntime) and the converted model (``written.run``); record checks;
    retry vacuous checks at larger input scales; raise TranspileError on mismatch, naming the
    first diverging module or node (``written.probe``)."""
    reference = reference_for(work, report, imported)
    for k, inputs in enumerate(input_sets):
        what = describe_set(k, inputs)
        _check_set(written, graph, imported, reference, inputs, layouts, tolerance, report, what)
    constant = input_independent(graph) if report.vacuous_outputs else {}
    for scale in VACUOUS_SCALES:
        if not [k for k in report.vacuous_outputs if k not in constant]:
            break  # nothing left that a larger input scale could reach
        for inputs in input_sets:
            scaled = [x * scale if x.is_floating_point() else x for x in inputs]
            what = f"inputs scaled by {scale:g}, batch {inputs[0].shape[0]}"
            _check_set(
                written, graph, imported, reference, scaled, layouts, tolerance, report, what, scale
            )
    for k in report.vacuous_outputs:
        if k in constant:
            report.notes.append(_constant_note(k, constant[k]))
            continue
        report.notes.append(
            f"the numeric check was vacuous for output {k}: it is constant (or ~0) on the check "
            f"inputs, also scaled by {', '.join(f'{s:g}' for s in VACUOUS_SCALES)}, so any "
            "output of that shape would have passed; check it on inputs of your own"
        )
    scaled_ok = sorted({c.input_scale for c in report.checks if c.input_scale != 1.0})
    if scaled_ok and not [k for k in report.vacuous_outputs if k not in constant]:
        report.notes.append(
            f"the numeric check was vacuous at the inputs' own scale and was repeated with the "
            f"float inputs scaled by {', '.join(f'{s:g}' for s in scaled_ok)}"
        )


def _outputs_list(outs: Any, expected: int, what: str) -> list:
    """The generated model's outputs (``written.run``'s result), as a list of ``expected``."""
    outs = list(outs) if isinstance(outs, tuple) else [outs]
    if len(outs) != expected:
        raise TranspileError(
            f"internal error: the generated model returns {len(outs)} outputs on {what}, "
            f"the reference {expected}; please report it with the model."
        )
    return outs


def _mismatch(report: Report, what: str, reference: str, unit: str) -> TranspileError:
    """The error for a failed numeric check: the worst output against ``reference`` (e.g.
    "PyTorch (float64)"), and the first diverging ``unit`` (PyTorch module, ONNX node)."""
    d = report.divergence
    where = (
        f"; first diverging {unit}: {d.module_path!r} ({d.module_type}), "
        f"{report.backend} layer {d.layer!r}, max abs error {d.max_abs:.3g} > {d.bound:.3g}"
        if d
        else ""
    )
    worst = max((c for c in report.checks if not c.ok), key=lambda c: c.max_rel)
    against = reference.format(reference=worst.reference)
    return TranspileError(
        f"numeric check failed on {what}: output {worst.output_index} differs from {against} "
        f"by {worst.describe()} (bound {worst.bound:.3g}){where}. Nothing was written. This is "
        "a converter bug: please report it with the model; e.report has the details.",
        report=report,
    )


def _check_set(
    written, graph, imported, reference, inputs, layouts, tolerance, report, what, scale=1.0
) -> None:
    arrays = [to_layout(x.numpy(), layouts[0]) for x in inputs]
    # the converted model runs first: a prefetched reference run may still be going on
    outs = written.run(*arrays)
    refs32, refs64 = reference.outputs(inputs, what)
    outs = _outputs_list(outs, len(refs32), what)
    if scale == 1.0:  # kept for later exports' checks (TFLite), against float32 PyTorch
        report.references.append((arrays, [to_layout(r, layouts[1]) for r in refs32]))
    failed = False
    shapes = tuple(tuple(x.shape) for x in inputs)
    for k, (y, ref32) in enumerate(zip(outs, refs32, strict=True)):
        y = from_layout(np.asarray(y), layouts[1])
        if y.shape != np.shape(ref32):
            raise _shape_error(written, graph, inputs, arrays, k, y.shape, np.shape(ref32), what)
        ref64 = refs64[k] if refs64 is not None else None
        ref = ref64 if isinstance(ref64, np.ndarray) and ref64.dtype.kind == "f" else ref32
        err, rel, bound = _error(y, ref, tolerance)
        torch_err = _max_abs_diff(ref32, ref) if ref is not ref32 else None
        if torch_err is not None:
            bound = max(bound, TORCH_ERROR_FACTOR * torch_err)
        ok = err <= bound
        failed |= not ok
        report.checks.append(
            Check(
                inputs[0].shape[0],
                k,
                err,
                rel,
                bound,
                ok,
                shapes,
                reference.label(ref is not ref32),
                torch_err,
                _vacuous(np.asarray(ref), bound),
                scale,
            )
        )
    if failed:
        report.divergence = _diagnose(written, graph, reference, inputs, arrays, tolerance)
        raise _mismatch(report, what, f"{reference.name} ({{reference}})", reference.unit)


def _diagnose(written, graph, reference, inputs, arrays, tolerance) -> Divergence | None:
    """The first layer whose own output diverges from the reference's value at that point by
    more than the bound (against float64 where the reference has it, allowing the reference's
    own float32 error there)."""
    by_name, by_name64 = reference.values(inputs)
    probes = []
    for node in graph.nodes:
        if len(node.outputs) != 1:
            continue
        v = node.output
        layer = written.value_layers.get(v.name)
        ref = by_name.get(v.torch_ref) if v.torch_ref else None
        where = reference.locate(node)
        if layer is None or not isinstance(ref, torch.Tensor | np.ndarray) or where is None:
            continue
        probes.append((node, v, layer, ref, by_name64.get(v.torch_ref), where))
    if not probes:
        return None
    outs = written.probe(arrays, [p[2] for p in probes])
    for (_node, v, layer, ref, ref64, where), y in zip(probes, outs, strict=True):
        ref = np.asarray(_numpy(ref))
        if ref.dtype.kind == "f":
            ref = ref.astype(np.float32, copy=False)
        if isinstance(ref64, torch.Tensor) and ref64.is_floating_point():
            ref64 = ref64.detach().numpy()
        else:
            ref64 = None
        if v.perm is not None and len(v.perm) == ref.ndim:
            ref = ref.transpose(v.perm)
            ref64 = ref64.transpose(v.perm) if ref64 is not None else None
        y = np.asarray(y)
        if y.shape != ref.shape or (ref64 is not None and ref64.shape != ref.shape):
            continue
        target = ref64 if ref64 is not None else ref
        err, _, bound = _error(y, target, tolerance)
        torch_err = _max_abs_diff(ref, ref64) if ref64 is not None else None
        if torch_err is not None:
            bound = max(bound, TORCH_ERROR_FACTOR * torch_err)
        if err > bound:
            return Divergence(
                *where,
                layer,
                err,
                bound,
                torch_err,
            )
    return None


# ------------------------------------------------------------------------------------------
# Structure: the batch axis
# ------------------------------------------------------------------------------------------


def check_structure(
    written: Any,
    graph: Any,
    imported: Any,
    input_sets: list[list[torch.Tensor]],
    layouts: tuple[str, str],
    run_model: bool,
) -> None:
    """Every output's batch axis follows the inputs' batch where PyTorch's does (its two
    import runs, at two batch sizes). In the IR, and, with ``run_model``, in the generated
    model run at both batch sizes (shapes only; the numeric check does this itself)."""
    if len(input_sets) < 2 or not input_sets[0] or not input_sets[1]:
        return
    batches = (int(input_sets[0][0].shape[0]), int(input_sets[1][0].shape[0]))
    torch_shapes = imported.output_shapes
    if batches[0] != batches[1] and len(torch_shapes[0]) == len(graph.outputs):
        for k, v in enumerate(graph.outputs):
            sa, sb = torch_shapes[0][k], torch_shapes[1][k]
            follows = bool(sa) and bool(sb) and sa[0] == batches[0] and sb[0] == batches[1]
            if follows and v.shape and v.shape[0] is not None:
                node = _first_static_batch(graph, v)
                where = (
                    f"; the batch was lost at IR node {node.output.name} ({node.op}) from "
                    f"{node.source.describe() if node.source else '<unknown>'}"
                    if node is not None
                    else ""
                )
                raise TranspileError(
                    f"output {k}: PyTorch's batch axis follows the input's batch (sizes "
                    f"{sa[0]} and {sb[0]} at batch {batches[0]} and {batches[1]}), the converted "
                    f"graph's is fixed at {v.shape[0]}{where}. This is a converter bug: please "
                    "report it with the model."
                )
    if not run_model:
        return
    for inputs, expected, what in zip(
        input_sets, torch_shapes, ("the example inputs", "the second batch size"), strict=False
    ):
        arrays = [to_layout(x.numpy(), layouts[0]) for x in inputs]
        outs = written.run(*arrays)
        outs = list(outs) if isinstance(outs, tuple) else [outs]
        for k, y in enumerate(outs):
            shape = from_layout(np.asarray(y), layouts[1]).shape
            if k < len(expected) and tuple(shape) != tuple(expected[k]):
                raise _shape_error(written, graph, inputs, arrays, k, shape, expected[k], what)


def _first_static_batch(graph: Any, out: Any) -> Any:
    """The first node (in graph order) on the way to ``out`` whose output has a fixed batch
    although one of its inputs has a dynamic one."""
    ancestors = {id(out)}
    for node in reversed(graph.nodes):
        if id(node.output) in ancestors:
            ancestors.update(id(v) for v in node.inputs)
    for node in graph.nodes:
        if id(node.output) not in ancestors:
            continue
        dynamic_in = any(v.shape and v.shape[0] is None for v in node.inputs)
        if dynamic_in and node.output.shape and None not in node.output.shape:
            return node
    return None


def _shape_error(written, graph, inputs, arrays, k, got, expected, what) -> TranspileError:
    """The generated model's output ``k`` has the wrong shape: name the first layer whose
    output's batch differs from the inputs' batch while the IR says it follows it."""
    batch = int(inputs[0].shape[0])
    where = ""
    probes = [
        (node, written.value_layers[node.output.name])
        for node in graph.nodes
        if node.output.name in written.value_layers
        and node.output.shape
        and node.output.shape[0] is None
    ]
    if probes:
        try:
            outs = written.probe(arrays, [p[1] for p in probes])
        except Exception:  # noqa: BLE001 - the message without a layer
            outs = []
        for (node, layer), y in zip(probes, outs, strict=False):
            if np.shape(y) and np.shape(y)[0] != batch:
                src = node.source.describe() if node.source else "<unknown>"
                where = (
                    f"; the first layer whose batch is wrong: {layer} ({node.op} from {src}), "
                    f"shape {tuple(np.shape(y))}"
                )
                break
    return TranspileError(
        f"output {k} of the generated model has shape {tuple(got)} on {what} (batch {batch}), "
        f"PyTorch gives {tuple(expected)}{where}. This is a converter bug: please report it "
        "with the model."
    )
