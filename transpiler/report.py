"""What a transpile did, as data with a readable ``str()`` (and ``report.md`` in out_dir)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["Report", "Check", "Divergence", "TFLiteExport", "TORCH_ERROR_FACTOR"]

# The numeric check allows our error to reach this multiple of PyTorch's own float32 error
# (against PyTorch in float64): two float32 evaluations of the same function in different
# orders (BatchNorm folded into the weights, NHWC sums, other kernels) each carry rounding
# errors of that size; 4 leaves room for ours being a few times PyTorch's own while a
# converter bug (a wrong pad, axis or constant) is orders of magnitude larger.
TORCH_ERROR_FACTOR = 4.0


@dataclass(frozen=True)
class Check:
    """One output of one numeric check run. ``max_abs``: our error against the reference
    (PyTorch run in float64 where it can, ``reference`` says), ``torch_error``: PyTorch's own
    float32 error against that reference (None when the reference is float32 itself), ``bound``:
    max(tolerance · max(1, max|y_ref|), TORCH_ERROR_FACTOR · torch_error). ``vacuous``: a
    constant output (zeros, or the output's mean) would have met the bound too: the check
    says nothing about this output at these inputs. ``input_scale``: float inputs were the
    check inputs times this factor (a retry of a vacuous check)."""

    batch_size: int
    output_index: int
    max_abs: float
    max_rel: float  # max|y - y_ref| / max(1, max|y_ref|)
    bound: float
    ok: bool
    input_shapes: tuple[tuple[int, ...], ...] = ()
    reference: str = "float32"
    torch_error: float | None = None
    vacuous: bool = False
    input_scale: float = 1.0

    def describe(self) -> str:
        ours = f"ours {self.max_abs:.3g}"
        if self.torch_error is not None:
            ours += f", PyTorch float32 itself {self.torch_error:.3g} (vs float64)"
        return ours


@dataclass(frozen=True)
class Divergence:
    module_path: str
    module_type: str
    layer: str
    max_abs: float
    bound: float
    torch_error: float | None = None  # PyTorch's own float32 error at that layer (vs float64)


@dataclass
class TFLiteExport:
    """One ``to_tflite`` export. Unpacks as ``variant, path, checks`` (the original tuple)."""

    variant: str
    path: str
    checks: list[Check]
    io_dtype: str = "float32"
    batch_size: int | None = None  # None: dynamic batch
    target: str | None = None  # the target whose constraints it passed
    size_bytes: int = 0
    quantization: Any = None  # quantize.QuantizationReport for int8 / int16x8

    def __iter__(self):
        return iter((self.variant, self.path, self.checks))

    def __getitem__(self, i: int) -> Any:
        return (self.variant, self.path, self.checks)[i]

    def __len__(self) -> int:
        return 3

    def describe(self) -> list[str]:
        worst = max((c.max_rel for c in self.checks), default=0.0)
        batch = "dynamic batch" if self.batch_size is None else f"batch {self.batch_size}"
        head = (
            f"TFLite ({self.variant}, {self.io_dtype} I/O, {batch}, {self.size_bytes / 1e6:.2f} MB"
            + (f", passes {self.target} checks" if self.target else "")
            + f") `{self.path}`: worst scaled error vs PyTorch {worst:.3g}"
        )
        return [head]


@dataclass
class Report:
    backend: str
    tracer: str = "torch.fx symbolic_trace"
    batch: str = "dynamic"  # "dynamic", "dynamic, 1 <= N <= 63" or "static: 2"
    dynamic: str = ""  # input dims dynamic beyond the batch, e.g. "input_ids[1]=seq"
    # transposes in the imported graph, before the passes: the model's own permute/transpose
    # calls (and those of converters that decompose a layer, e.g. attention's head splits)
    imported_transposes: int | None = None
    io_layout: tuple[str, str] = ("nchw", "nchw")
    inputs: list[str] = field(default_factory=list)  # "x: float32 (N, 3, 224, 224)"
    outputs: list[str] = field(default_factory=list)
    passes: list[Any] = field(default_factory=list)  # PassRecord
    transpose_count: int | None = None  # TF Transpose ops in tf.function(model)
    transposes: list[str] = field(default_factory=list)  # why each IR transpose exists
    batchnorm_layers: int = 0
    # (PyTorch module path, why) for each BatchNorm not folded into its conv/linear
    unfolded_batchnorm: list[tuple[str, str]] = field(default_factory=list)
    module_layers: dict[str, list[str]] = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)
    divergence: Divergence | None = None
    # TFLite exports (each unpacks as (variant, path, [Check])); quantized ones carry their
    # per-layer quantization report in .quantization
    tflite: list[TFLiteExport] = field(default_factory=list)
    # the numeric check's inputs and PyTorch outputs, in io_layout (for later exports' checks)
    references: list[tuple[list[Any], list[Any]]] = field(default_factory=list, repr=False)
    files: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # wall seconds per stage: trace (fx trace + import to IR), passes, emit (write + build), verify
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def vacuous_outputs(self) -> list[int]:
        """Outputs for which every check was vacuous (a constant would have passed)."""
        outputs = sorted({c.output_index for c in self.checks})
        return [k for k in outputs if all(c.vacuous for c in self.checks if c.output_index == k)]

    @property
    def verified(self) -> bool:
        """Checked, within the bound, and no output's check vacuous."""
        return bool(self.checks) and self.ok and not self.vacuous_outputs

    def to_markdown(self) -> str:
        lines = [f"# Transpile report ({self.backend} backend)", ""]
        lines.append(f"- tracer: {self.tracer}")
        lines.append(f"- io_layout: inputs {self.io_layout[0]}, outputs {self.io_layout[1]}")
        lines.append(f"- batch: {self.batch}")
        if self.dynamic:
            lines.append(f"- dynamic dimensions beyond the batch: {self.dynamic}")
        lines += [f"- input {s}" for s in self.inputs]
        lines += [f"- output {s}" for s in self.outputs]
        lines += [
            "",
            "## Passes",
            "",
            "| pass | nodes before | nodes after | detail |",
            "|---|---|---|---|",
        ]
        lines += [
            f"| {p.name} | {p.nodes_before} | {p.nodes_after} | {p.detail} |" for p in self.passes
        ]
        lines += ["", "## Transposes", ""]
        count = (
            "not counted (TensorFlow backend of Keras not active)"
            if self.transpose_count is None
            else str(self.transpose_count)
        )
        lines.append(f"- TF `Transpose` ops in `tf.function(model)`: {count}")
        if self.imported_transposes is not None:
            lines.append(
                f"- transposes in the imported graph (the model's own permutes): "
                f"{self.imported_transposes}"
            )
        lines += [f"- IR transpose: {why}" for why in self.transposes]
        if self.unfolded_batchnorm:
            lines += ["", "## BatchNorm not folded", ""]
            lines += [f"- `{path}`: {why}" for path, why in self.unfolded_batchnorm]
        lines += ["", "## Numeric check", ""]
        if self.checks:
            lines += [
                "| batch | input scale | output | reference | max abs error | PyTorch float32 "
                "error | scaled error | bound | ok |",
                "|---|---|---|---|---|---|---|---|---|",
            ]
            lines += [
                f"| {c.batch_size} | {c.input_scale:g} | {c.output_index} | {c.reference} "
                f"| {c.max_abs:.3g} | "
                + ("-" if c.torch_error is None else f"{c.torch_error:.3g}")
                + f" | {c.max_rel:.3g} | {c.bound:.3g} | "
                + ("yes" if c.ok else "NO")
                + (" (vacuous)" if c.vacuous else "")
                + " |"
                for c in self.checks
            ]
            lines.append("")
            lines.append(
                "Bound: max(tolerance · max(1, max|y_ref|), "
                f"{TORCH_ERROR_FACTOR:g} · PyTorch's own float32 error), y_ref PyTorch in float64."
            )
            lines += [
                f"- output {k}: the check was vacuous (a constant output would have passed at "
                "every input scale tried): it says nothing about this output"
                for k in self.vacuous_outputs
            ]
        else:
            lines.append("skipped (verify=False)")
        if self.divergence:
            d = self.divergence
            lines += [
                "",
                f"First diverging module: `{d.module_path}` ({d.module_type}), {self.backend} "
                f"layer `{d.layer}`: max abs error {d.max_abs:.3g} > {d.bound:.3g}",
            ]
        for export in self.tflite:
            lines += [""] + export.describe()
            if export.quantization is not None:
                lines += ["", f"### Quantization ({export.variant}), worst module first", ""]
                lines += export.quantization.to_markdown()
        if self.module_layers:
            lines += [
                "",
                "## PyTorch module -> Keras layers"
                if self.backend == "keras"
                else "## PyTorch module -> TF op scopes",
                "",
                "| module | layers |",
                "|---|---|",
            ]
            lines += [
                f"| `{m}` | {', '.join(f'`{x}`' for x in ls)} |"
                for m, ls in self.module_layers.items()
            ]
        if self.notes:
            lines += ["", "## Notes", ""] + [f"- {n}" for n in self.notes]
        if self.timings:
            stages = ", ".join(f"{k} {v:.2f} s" for k, v in self.timings.items())
            lines += ["", f"Time: {stages}."]
        return "\n".join(lines) + "\n"

    def __str__(self) -> str:
        lines = [f"transpile report ({self.backend}): tracer {self.tracer}"]
        lines += [f"  input {s}" for s in self.inputs] + [f"  output {s}" for s in self.outputs]
        lines += [f"  pass {p}" for p in self.passes]
        lines.append(
            "  TF Transpose ops: "
            + (str(self.transpose_count) if self.transpose_count is not None else "not counted")
        )
        if self.imported_transposes is not None:
            lines.append(f"  transposes in the imported graph: {self.imported_transposes}")
        lines += [f"    - {why}" for why in self.transposes]
        lines += [f"  BatchNorm not folded: {p}: {why}" for p, why in self.unfolded_batchnorm]
        if self.dynamic:
            lines.append(f"  dynamic beyond the batch: {self.dynamic}")
        if self.batch != "dynamic":
            lines.append(f"  batch: {self.batch}")
        for c in self.checks:
            scale = f" inputs x{c.input_scale:g}" if c.input_scale != 1 else ""
            lines.append(
                f"  check batch {c.batch_size}{scale} output {c.output_index}: {c.describe()}, "
                f"scaled {c.max_rel:.3g} (bound {c.bound:.3g}) {'ok' if c.ok else 'FAILED'}"
                + (" (vacuous: a constant would have passed)" if c.vacuous else "")
            )
        lines += [f"  note: {n}" for n in self.notes]
        if self.divergence:
            d = self.divergence
            lines.append(
                f"  first diverging module: {d.module_path} ({d.module_type}) -> layer "
                f"{d.layer}, max abs {d.max_abs:.3g}"
            )
        for export in self.tflite:
            lines += ["  " + x for x in export.describe()]
            if export.quantization is not None:
                lines += ["    " + x for x in export.quantization.summary()]
        if self.timings:
            lines.append("  time: " + ", ".join(f"{k} {v:.2f} s" for k, v in self.timings.items()))
        return "\n".join(lines)
