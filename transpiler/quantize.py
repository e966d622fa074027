"""Full-integer TFLite quantization with a per-layer error report traced to PyTorch modules.

The model is calibrated once (``_experimental_calibrate_only``: a float flatbuffer carrying the
activation ranges seen on the calibration data) and then quantized from that calibrated model
with the MLIR quantizer, so that ``keep_float`` (TFLite's ``denylisted_nodes``) and the search
for a suggested ``keep_float`` set cost one re-quantization each, not one calibration each.

The per-layer report runs the calibrated float model and the quantized model through the TFLite
interpreter with every intermediate tensor preserved, on the calibration data. Both flatbuffers
come from the same converted graph, so their tensors carry the same names; a name lists the TF
name scopes of the ops fused into that tensor (``Model_1/conv1_1/BiasAdd;Model_1/relu_1/Relu``),
and the scopes are the Keras layer names (the tf backend: its op scopes), which
``report.module_layers`` maps back to PyTorch module paths.

Each module's output tensor gets its SQNR (signal-to-quantization-noise ratio, dB, against the
float model's tensor; also per channel, whose median exposes a few huge channels crushing the
rest under one per-tensor scale), its max error relative to the tensor's range, and the SQNR
lost at that module (its inputs' SQNR minus its output's): modules are ranked by SQNR lost, so
the module that breaks the model comes first rather than everything downstream of it.

With float outputs, an output concat of parts with very different ranges (a detector's boxes
and scores) is assembled in float after quantization, each part with its own scale
(transpiler/tflite_outputs.py, ``output_assembly``); with integer outputs the report notes it.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import TranspileError
from .tflite_outputs import OutputConcat, tensor_name

__all__ = [
    "LayerError",
    "QuantizationReport",
    "calibration_batches",
    "rebatch",
    "quantize",
]

INT_VARIANTS = ("int8", "int16x8")
IO_DTYPES = ("float32", "int8", "uint8")
SQNR_CAP = 100.0  # dB: an exact tensor (or one with no signal) reads as this
DEFAULT_SQNR_GOAL = 30.0  # dB: below this end to end, the report suggests a keep_float set
REPORT_SAMPLES = 32  # calibration samples the per-layer report runs
MAX_SUGGESTED = 8  # keep_float candidates tried, in ranking order


@dataclass(frozen=True)
class LayerError:
    """The quantized model's error at one PyTorch module's output tensor (or at a layer no
    module produced: ``module`` is then ``""``), on the calibration data."""

    module: str
    layer: str  # the Keras layer (tf backend: op scope) whose tensor this is
    tensor: str  # the TFLite tensor name
    sqnr_db: float  # 10·log10(Σ float² / Σ (quantized - float)²), capped at SQNR_CAP
    channel_sqnr_db: float  # median over channels (last axis) of the same, per channel
    max_error: float  # max|quantized - float| / max|float|
    lost_db: float  # min SQNR of the module's inputs minus its own (the error it adds)
    range_note: str = ""  # why its activation range is a likely culprit, if it is
    consumers: tuple[str, ...] = ()  # modules (or layers) that read this output tensor


@dataclass
class QuantizationReport:
    """What quantization did to the model, per module, on the calibration data."""

    variant: str
    samples: int  # calibration samples the report ran
    sqnr_db: float  # end to end (all outputs), quantized vs float model
    max_error: float  # end to end, max|q - f| / max(1, max|f|)
    layers: list[LayerError] = field(default_factory=list)  # ranked, worst first
    culprits: list[LayerError] = field(default_factory=list)  # wide activation ranges
    keep_float: list[str] = field(default_factory=list)  # what this export kept in float
    goal_db: float = DEFAULT_SQNR_GOAL
    suggested_keep_float: list[str] | None = None  # None: not needed (or not searched)
    suggested_sqnr_db: float | None = None
    notes: list[str] = field(default_factory=list)

    def summary(self, top: int = 5) -> list[str]:
        lines = [
            f"{self.variant}: end-to-end SQNR {self.sqnr_db:.1f} dB, max error "
            f"{self.max_error:.3g} (vs the float model, {self.samples} calibration samples)"
        ]
        if self.keep_float:
            lines.append(f"kept in float: {', '.join(self.keep_float)}")
        for e in self.layers[:top]:
            lines.append(
                f"  {e.module or '(' + e.layer + ')'}: SQNR {e.sqnr_db:.1f} dB (channel median "
                f"{e.channel_sqnr_db:.1f}), lost here {e.lost_db:.1f} dB, max error "
                f"{e.max_error:.3g}"
            )
        lines += [f"  likely culprit {e.module or e.layer}: {e.range_note}" for e in self.culprits]
        if self.suggested_keep_float is not None:
            lines.append(
                f"suggested keep_float={self.suggested_keep_float!r} -> "
                f"{self.suggested_sqnr_db:.1f} dB (goal {self.goal_db:.0f} dB)"
            )
        lines += self.notes
        return lines

    def to_markdown(self) -> list[str]:
        lines = self.summary(top=0)
        lines = [f"- {x.strip()}" for x in lines]
        lines += [
            "",
            "| module | layer | SQNR dB | channel SQNR dB | lost here dB | max error / range |",
            "|---|---|---|---|---|---|",
        ]
        lines += [
            f"| `{e.module}` | `{e.layer}` | {e.sqnr_db:.1f} | {e.channel_sqnr_db:.1f} "
            f"| {e.lost_db:.1f} | {e.max_error:.3g} |"
            for e in self.layers
        ]
        return lines


# ----------------------------------------------------------------------------------------------
# Calibration data
# ----------------------------------------------------------------------------------------------


def _as_array(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor
        x = x.detach().cpu().numpy()
    a = np.ascontiguousarray(x)
    if a.dtype == np.float64:
        a = a.astype(np.float32)
    return a


def calibration_batches(calibration: Any, n_inputs: int) -> list[list[np.ndarray]]:
    """``calibration`` (an iterable of batches, or a callable returning one; a batch is an array
    or tensor, or a tuple/list of them for several inputs) -> a list of batches of numpy arrays.
    """
    if calibration is None:
        raise TranspileError(
            "full-integer quantization needs calibration data: pass calibration= an iterable of "
            "example input batches (numpy arrays or torch tensors, in the model's input layout; "
            "a few hundred real samples). Random data calibrates badly: the activation ranges it "
            "produces are not the ones real inputs produce."
        )
    source = calibration() if callable(calibration) else calibration
    if isinstance(source, np.ndarray) or hasattr(source, "detach"):
        source = [source]  # one batch
    if not isinstance(source, Iterable):
        raise TranspileError(
            f"calibration must be an iterable of input batches or a callable returning one, "
            f"not {type(calibration).__name__}."
        )
    batches = []
    for item in source:
        arrays = list(item) if isinstance(item, (tuple, list)) else [item]
        arrays = [_as_array(a) for a in arrays]
        if len(arrays) != n_inputs:
            raise TranspileError(
                f"a calibration batch has {len(arrays)} input(s); the model takes {n_inputs} "
                "(give a tuple of arrays per batch for several inputs)."
            )
        batches.append(arrays)
    if not batches:
        raise TranspileError("calibration data is empty: give at least one input batch.")
    return batches


def rebatch(batches: list[list[np.ndarray]], batch_size: int | None) -> list[list[np.ndarray]]:
    """Batches of exactly ``batch_size`` samples (a static-batch model takes nothing else); the
    remainder that does not fill a batch is dropped. ``None``: unchanged."""
    if batch_size is None:
        return batches
    joined = [np.concatenate([b[i] for b in batches]) for i in range(len(batches[0]))]
    n = joined[0].shape[0] // batch_size
    if n == 0:
        raise TranspileError(
            f"calibration data has {joined[0].shape[0]} samples, fewer than batch_size="
            f"{batch_size}."
        )
    return [[a[k * batch_size : (k + 1) * batch_size] for a in joined] for k in range(n)]


def _check_shapes(batches: list[list[np.ndarray]], specs: Sequence[Any]) -> None:
    for arrays in batches[:1]:
        for i, (a, spec) in enumerate(zip(arrays, specs, strict=True)):
            want = list(spec.shape)
            ok = len(want) == a.ndim and all(
                w is None or w == d for w, d in zip(want, a.shape, strict=False)
            )
            if not ok:
                raise TranspileError(
                    f"calibration input {i} has shape {tuple(a.shape)}; the exported model takes "
                    f"{tuple(want)} (None: any) in its input layout."
                )


# ----------------------------------------------------------------------------------------------
# Conversion
# ----------------------------------------------------------------------------------------------


def _tf_dtype(io_dtype: str) -> Any:
    import tensorflow as tf

    return {"float32": tf.float32, "int8": tf.int8, "uint8": tf.uint8, "int16": tf.int16}[io_dtype]


def _converter(frozen: Any, batches: list[list[np.ndarray]]) -> Any:
    import tensorflow as tf

    from .tflite import converter_for

    converter = converter_for(frozen, integer=True)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]

    def representative():
        for arrays in batches:
            yield [a.astype(np.float32) if a.dtype.kind == "f" else a for a in arrays]

    converter.representative_dataset = representative
    return converter


def _conversion(fn: Callable[..., bytes]) -> Callable[..., bytes]:
    """TFLite converter failures -> one TranspileError saying what failed."""

    def wrapped(*args: Any, **kwargs: Any) -> bytes:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - one clear message
            raise TranspileError(
                f"TFLite {fn.__name__.strip('_').replace('_', ' ')} failed ({type(exc).__name__}: "
                f"{str(exc)[:500]}); an op may have no integer kernel in TFLite's builtin op set."
            ) from exc

    wrapped.__name__ = fn.__name__
    wrapped.__doc__ = fn.__doc__
    return wrapped


def calibrate(
    frozen: Any, batches: list[list[np.ndarray]], reference: bytes | None = None
) -> bytes:
    """A float flatbuffer carrying the calibrated activation ranges (int8 ops only allowed).

    TFLite's calibrator records each tensor's range while the interpreter runs with its
    in-place kernels on: an op that writes its output over its input's buffer (ADD, SUB, MUL
    and the like, when the input has no other reader) overwrites that input before the
    calibrator reads it, so the input's recorded range becomes the union of the two. A
    slice of YOLO's box distances (0..8) followed by an anchor add was recorded as 0..47 and
    the box concat before the stride multiply as 0..480 instead of 0..40, costing 12 dB end
    to end. So the ranges are measured again on the float model (``reference``, made here if
    not given) with every tensor preserved (``tensor_ranges``, which also averages the ranges
    over samples) and written into the calibrated flatbuffer."""
    calibrated = _calibration(frozen, batches)
    reference = float_reference(frozen) if reference is None else reference
    return with_ranges(calibrated, tensor_ranges(reference, batches))


@_conversion
def _calibration(frozen: Any, batches: list[list[np.ndarray]]) -> bytes:
    """TFLite's calibrate-only conversion: the float flatbuffer with its recorded ranges."""
    import tensorflow as tf

    converter = _converter(frozen, batches)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter._experimental_calibrate_only = True  # noqa: SLF001 - the documented debug path
    return converter.convert()


def tensor_ranges(blob: bytes, batches: list[list[np.ndarray]]) -> dict[str, tuple[float, float]]:
    """The activation range of every float tensor of a float flatbuffer that the interpreter
    computes, by tensor name (names the model holds more than once are left out).

    A range is the mean, over the calibration samples, of each sample's (min, max): the range
    one input is expected to span, not the extremes of the whole calibration set (the outliers
    of a few samples would widen every int8 step for all inputs). Each sample runs alone (a
    static-batch model runs its batches); every tensor is preserved, so no buffer is shared
    and no in-place kernel overwrites a tensor before it is read."""
    interp = _interp(blob, preserve=True)
    interp.allocate_tensors()
    details = interp.get_tensor_details()
    counts: dict[str, int] = {}
    for d in details:
        counts[d["name"]] = counts.get(d["name"], 0) + 1
    wanted = [d for d in details if counts[d["name"]] == 1 and d["dtype"] == np.float32]
    sums: dict[str, list[float]] = {}  # name -> [sum of mins, sum of maxes, samples]
    for arrays in _single_samples(interp, batches):
        run_all(interp, arrays)
        for d in wanted:
            try:
                value = interp.get_tensor(d["index"])
            except ValueError:  # a tensor the interpreter did not compute (no data)
                continue
            if value is None or value.size == 0:
                continue
            acc = sums.setdefault(d["name"], [0.0, 0.0, 0])
            acc[0] += float(value.min())
            acc[1] += float(value.max())
            acc[2] += 1
    ranges = {name: (lo / n, hi / n) for name, (lo, hi, n) in sums.items()}
    return {name: r for name, r in ranges.items() if math.isfinite(r[0] + r[1])}


def _single_samples(interp: Any, batches: list[list[np.ndarray]]) -> Iterable[list[np.ndarray]]:
    """The calibration batches one sample at a time where every input's batch is dynamic;
    as given otherwise (a static batch takes nothing else)."""
    dynamic = all(
        len(d["shape_signature"]) and d["shape_signature"][0] == -1
        for d in interp.get_input_details()
    )
    for arrays in batches:
        n = arrays[0].shape[0] if arrays[0].ndim else 0
        if dynamic and n > 1 and all(a.ndim and a.shape[0] == n for a in arrays):
            yield from ([a[k : k + 1] for a in arrays] for k in range(n))
        else:
            yield arrays


def with_ranges(calibrated: bytes, ranges: dict[str, tuple[float, float]]) -> bytes:
    """The calibrated flatbuffer with the recorded (min, max) of every tensor named in
    ``ranges`` replaced by that range; other tensors keep what the calibrator recorded."""
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(calibrated))
    for graph in model.subgraphs:
        for tensor in graph.tensors:
            q = tensor.quantization
            name = tensor_name(tensor)
            if q is None or q.min is None or len(q.min) != 1 or name not in ranges:
                continue
            lo, hi = ranges[name]
            q.min = np.array([lo], np.float32)
            q.max = np.array([hi], np.float32)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


@_conversion
def quantize_calibrated(calibrated: bytes, io_dtype: str, denylisted: Sequence[str]) -> bytes:
    """The int8 flatbuffer from a calibrated one; ``denylisted`` tensors' ops stay float."""
    from tensorflow.lite.python import convert as tf_convert

    return tf_convert.mlir_quantize(
        calibrated,
        input_data_type=_tf_dtype(io_dtype),
        output_data_type=_tf_dtype(io_dtype),
        denylisted_nodes=list(denylisted) or None,
    )


def integer_model(
    calibrated: bytes, io_dtype: str, denylisted: Sequence[str]
) -> tuple[bytes, list[OutputConcat]]:
    """The int8 flatbuffer (``quantize_calibrated``) with its output assembly
    (``output_assembly``)."""
    return output_assembly(quantize_calibrated(calibrated, io_dtype, denylisted), io_dtype)


def output_assembly(blob: bytes, io_dtype: str) -> tuple[bytes, list[OutputConcat]]:
    """Float outputs: every output concat of parts with very different ranges assembled in
    float, each part dequantized with its own scale (transpiler/tflite_outputs.py); integer
    outputs: those concats found, left as they are (one tensor has one scale)."""
    from .tflite_outputs import float_output_concats, output_concats

    if io_dtype == "float32":
        return float_output_concats(blob)
    return blob, output_concats(blob)


def concat_notes(
    concats: Sequence[OutputConcat], io_dtype: str, variant: str, names: NameMap
) -> list[str]:
    """The report's notes on output concats of parts with very different ranges."""
    from .tflite_targets import module_namer

    module_of = module_namer(names)
    bits = "int16" if variant == "int16x8" else "int8"
    notes = []
    for c in concats:
        where = (
            f"output {c.output}: the concatenation in {module_of(c.tensor)} joins parts whose "
            f"ranges differ by {c.ratio:.0f}x"
        )
        if c.rewritten:
            notes.append(
                f"{where} (on the concat's one {bits} scale the smaller part would get a step "
                f"of {c.step:.3g} instead of its own {c.own_step:.3g}): its {c.parts} parts are "
                "dequantized each with its own scale and concatenated in float32 (the output "
                "assembly only; every compute op stays integer)"
            )
        else:
            notes.append(
                f"{where}: in the one {io_dtype if bits == 'int8' else 'int16'} output tensor "
                f"the smaller part is quantized with a step of {c.step:.3g}, {c.ratio:.0f}x its "
                f"own step {c.own_step:.3g}. Use io_dtype='float32' (each part is "
                "then dequantized with its own scale and concatenated in float) or bring the "
                "parts to similar ranges in the model (e.g. boxes divided by the image size, as "
                "Ultralytics' TFLite export does)"
            )
    return notes


@_conversion
def convert_int16x8(frozen: Any, batches: list[list[np.ndarray]], io_dtype: str) -> bytes:
    import tensorflow as tf

    converter = _converter(frozen, batches)
    ops = tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8
    converter.target_spec.supported_ops = [ops]
    if io_dtype != "float32":
        converter.inference_input_type = tf.int16
        converter.inference_output_type = tf.int16
    return converter.convert()


@_conversion
def float_reference(frozen: Any) -> bytes:
    import tensorflow as tf

    from .tflite import converter_for

    converter = converter_for(frozen, integer=True)  # the graph the integer model has
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    return converter.convert()


# ----------------------------------------------------------------------------------------------
# Tensor names -> PyTorch modules
# ----------------------------------------------------------------------------------------------


class NameMap:
    """TFLite tensor names -> Keras layers (tf backend: op scopes) -> PyTorch module paths."""

    def __init__(self, module_layers: dict[str, list[str]], strip_suffix: bool):
        self.layer_modules: dict[str, list[str]] = {}
        for module, layers in module_layers.items():
            for layer in layers:
                self.layer_modules.setdefault(layer, []).append(module)
        self.strip_suffix = strip_suffix  # Keras scopes are "<layer>_1" inside tf.function
        self.modules = list(module_layers)

    def _scope_layer(self, component: str) -> str | None:
        if self.strip_suffix:
            stripped = re.sub(r"_\d+$", "", component)
            if stripped in self.layer_modules:
                return stripped
        return component if component in self.layer_modules else None

    def layers(self, tensor_name: str) -> list[str]:
        """The layers named in a (possibly fused) tensor name, first-named first."""
        found: list[str] = []
        for part in tensor_name.split(";"):
            comps = part.split("/")
            for comp in comps[1:-1] if len(comps) > 2 else comps[:-1]:
                layer = self._scope_layer(comp)
                if layer is not None and layer not in found:
                    found.append(layer)
                    break
        return found

    def unknown_layer(self, tensor_name: str) -> str | None:
        """A scope that names no module's layer (a functional op such as ``torch.relu``)."""
        comps = tensor_name.split(";")[0].split("/")
        if len(comps) < 3:
            return None
        comp = comps[-2]
        return re.sub(r"_\d+$", "", comp) if self.strip_suffix else comp

    def modules_of(self, layer: str) -> list[str]:
        return self.layer_modules.get(layer, [])

    def select(self, keep_float: Sequence[str]) -> set[str]:
        """The layers of the modules (and their submodules) or layers named in ``keep_float``."""
        layers: set[str] = set()
        for name in keep_float:
            hit = {
                layer
                for layer, modules in self.layer_modules.items()
                if layer == name or any(m == name or m.startswith(name + ".") for m in modules)
            }
            if not hit:
                close = [m for m in self.modules if name.split(".")[0] in m][:5]
                raise TranspileError(
                    f"keep_float names {name!r}, which produced no layer; give PyTorch module "
                    f"paths from report.module_layers{' such as ' + repr(close) if close else ''}."
                )
            layers |= hit
        return layers


def denylist(calibrated: bytes, layers: set[str], names: NameMap) -> list[str]:
    """The calibrated model's tensor names whose ops belong to ``layers``."""
    interp = _interp(calibrated, preserve=False)
    out = []
    for d in interp.get_tensor_details():
        if set(names.layers(d["name"])) & layers:
            out.append(d["name"])
    return out


# ----------------------------------------------------------------------------------------------
# Running and comparing
# ----------------------------------------------------------------------------------------------


def _interp(blob: bytes, preserve: bool = True) -> Any:
    import tensorflow as tf
    from tensorflow.lite.python.interpreter import OpResolverType

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return tf.lite.Interpreter(
            model_content=blob,
            experimental_preserve_all_tensors=preserve,
            experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
        )


def _qparams(detail: dict) -> tuple[float, int]:
    q = detail.get("quantization_parameters") or {}
    scales = q.get("scales", np.zeros(0))
    if len(scales) == 1:
        return float(scales[0]), int(q["zero_points"][0])
    scale, zero = detail.get("quantization", (0.0, 0))
    return float(scale), int(zero)


def dequantize(value: np.ndarray, detail: dict) -> np.ndarray:
    scale, zero = _qparams(detail)
    if value.dtype.kind in "iu" and scale:
        return (value.astype(np.float32) - zero) * scale
    return value.astype(np.float32)


def quantize_input(value: np.ndarray, detail: dict) -> np.ndarray:
    dtype = np.dtype(detail["dtype"])
    scale, zero = _qparams(detail)
    if dtype.kind in "iu" and scale and value.dtype.kind == "f":
        info = np.iinfo(dtype)
        value = np.clip(np.round(value / scale + zero), info.min, info.max)
    return np.ascontiguousarray(value, dtype=dtype)


def run_all(interp: Any, arrays: list[np.ndarray]) -> None:
    inputs = interp.get_input_details()
    for d, a in zip(inputs, arrays, strict=True):
        if list(d["shape_signature"]) != list(a.shape):
            interp.resize_tensor_input(d["index"], list(a.shape))
    interp.allocate_tensors()
    for d, a in zip(inputs, arrays, strict=True):
        interp.set_tensor(d["index"], quantize_input(a, d))
    interp.invoke()


@dataclass
class _Acc:
    """Running sums comparing one quantized tensor with its float counterpart."""

    signal: float = 0.0
    noise: float = 0.0
    max_err: float = 0.0
    max_ref: float = 0.0
    count: int = 0
    ch_signal: np.ndarray | None = None
    ch_noise: np.ndarray | None = None
    ch_absmax: np.ndarray | None = None

    def add(self, ref: np.ndarray, got: np.ndarray) -> None:
        err = (got - ref).astype(np.float64)
        ref64 = ref.astype(np.float64)
        self.signal += float((ref64**2).sum())
        self.noise += float((err**2).sum())
        self.max_err = max(self.max_err, float(np.abs(err).max(initial=0.0)))
        self.max_ref = max(self.max_ref, float(np.abs(ref64).max(initial=0.0)))
        self.count += ref.size
        if ref.ndim >= 2:
            axes = tuple(range(ref.ndim - 1))
            cs, cn = (ref64**2).sum(axes), (err**2).sum(axes)
            cm = np.abs(ref64).max(axes)
            if self.ch_signal is None:
                self.ch_signal, self.ch_noise, self.ch_absmax = cs, cn, cm
            else:
                self.ch_signal += cs
                self.ch_noise += cn
                self.ch_absmax = np.maximum(self.ch_absmax, cm)

    def sqnr(self) -> float:
        return _sqnr(self.signal, self.noise)

    def channel_sqnr(self) -> float:
        if self.ch_signal is None:
            return self.sqnr()
        live = self.ch_signal > 1e-12 * max(float(self.ch_signal.max()), 1e-30)
        if not live.any():
            return SQNR_CAP
        values = [
            _sqnr(s, n) for s, n in zip(self.ch_signal[live], self.ch_noise[live], strict=True)
        ]
        return float(np.median(values))

    def range_note(self) -> str:
        if not self.count or self.signal <= 0:
            return ""
        rms = math.sqrt(self.signal / self.count)
        ratio = self.max_ref / rms
        notes = []
        if ratio > 40:
            notes.append(
                f"very wide activation range: max |x| {self.max_ref:.3g} is {ratio:.0f}x its RMS "
                f"{rms:.3g}, so one int8 step ({self.max_ref / 127.5:.3g}) is "
                f"{self.max_ref / 127.5 / rms:.2g}x the typical value"
            )
        if self.ch_absmax is not None and (self.ch_absmax > 0).sum() > 1:
            live = self.ch_absmax[self.ch_absmax > 0]
            spread = float(live.max() / np.median(live))
            if spread > 100:
                notes.append(
                    f"channel ranges span {spread:.3g}x: under one per-tensor int8 scale the "
                    "small channels lose their bits"
                )
        return "; ".join(notes)


def _sqnr(signal: float, noise: float) -> float:
    if noise <= 0:
        return SQNR_CAP
    if signal <= 0:
        return 0.0
    return float(min(SQNR_CAP, 10.0 * math.log10(signal / noise)))


def end_to_end(
    float_blob: bytes, quant_blob: bytes, batches: list[list[np.ndarray]]
) -> tuple[float, float]:
    """(SQNR dB, max|q - f| / max(1, max|f|)) of all outputs over ``batches``."""
    fi, qi = _interp(float_blob, False), _interp(quant_blob, False)
    pairs = list(
        zip(output_details(fi), output_details(qi), strict=True)
    )  # the quantizer may list outputs in another order: by name
    accs = [_Acc() for _ in pairs]
    for arrays in batches:
        run_all(fi, arrays)
        run_all(qi, arrays)
        for acc, (fd, qd) in zip(accs, pairs, strict=True):
            ref = dequantize(fi.get_tensor(fd["index"]), fd)
            acc.add(ref, dequantize(qi.get_tensor(qd["index"]), qd))
    signal, noise = sum(a.signal for a in accs), sum(a.noise for a in accs)
    max_err, max_ref = max(a.max_err for a in accs), max(a.max_ref for a in accs)
    return _sqnr(signal, noise), max_err / max(1.0, max_ref)


def output_details(interp: Any) -> list[dict]:
    """Output details in the model's output order: TF names them Identity, Identity_1, ...
    (the quantizer may list them in another order); other names keep the listed order."""
    details = interp.get_output_details()
    if all(re.fullmatch(r"Identity(_\d+)?", d["name"]) for d in details):
        return sorted(details, key=lambda d: int(d["name"].partition("_")[2] or -1))
    return details


def layer_errors(
    float_blob: bytes, quant_blob: bytes, batches: list[list[np.ndarray]], names: NameMap
) -> list[LayerError]:
    """Every module's output tensor compared with the float model's, ranked worst first."""
    fi, qi = _interp(float_blob), _interp(quant_blob)
    fi.allocate_tensors()
    qi.allocate_tensors()
    float_by_name = {d["name"]: d for d in fi.get_tensor_details()}
    ops = [o for o in qi._get_ops_details() if o["op_name"] != "DELEGATE"]  # noqa: SLF001
    producer = {int(t): o for o in ops for t in o["outputs"]}
    qdetails = {d["index"]: d for d in qi.get_tensor_details()}
    pairs = {}  # quant index -> float detail, for produced activations with a float twin
    for idx, d in qdetails.items():
        twin = float_by_name.get(d["name"])
        if idx in producer and twin is not None and len(twin["shape"]) == len(d["shape"]):
            pairs[idx] = twin
    # the quantized graph inputs (QUANTIZE of a float input, or integer inputs) vs float inputs
    float_inputs = fi.get_input_details()
    edge_inputs: set[int] = set()
    for k, d in enumerate(qi.get_input_details()):
        consumers = [o for o in ops if int(o["inputs"][0]) == d["index"]] if ops else []
        quantized = [int(o["outputs"][0]) for o in consumers if o["op_name"] == "QUANTIZE"] or [
            d["index"]
        ]
        for idx in quantized:
            if np.dtype(qdetails[idx]["dtype"]).kind in "iu" and k < len(float_inputs):
                pairs[idx] = float_inputs[k]
                edge_inputs.add(idx)
    accs = {idx: _Acc() for idx in pairs}
    for arrays in batches:
        run_all(fi, arrays)
        run_all(qi, arrays)
        for idx, twin in pairs.items():
            ref = fi.get_tensor(twin["index"])
            got = qi.get_tensor(idx)
            if ref.shape != got.shape or ref.dtype.kind != "f":
                continue
            accs[idx].add(ref.astype(np.float32), dequantize(got, qdetails[idx]))
    sqnr = {i: min(a.sqnr(), a.channel_sqnr()) for i, a in accs.items() if a.count}

    def input_sqnr(idx: int, seen: set[int]) -> float:
        if idx in sqnr:
            return sqnr[idx]
        op = producer.get(idx)
        if op is None or idx in seen:
            return SQNR_CAP
        seen.add(idx)
        ins = [int(t) for t in op["inputs"] if int(t) in producer or int(t) in sqnr]
        return min((input_sqnr(t, seen) for t in ins), default=SQNR_CAP)

    # each layer's output: the last tensor (in op order) whose name names it
    order = {int(t): k for k, o in enumerate(ops) for t in o["outputs"]}
    order.update({idx: -1 for idx in sqnr if idx not in order})
    last: dict[str, int] = {}
    members: dict[str, set[int]] = {}
    for idx in sorted(sqnr, key=order.__getitem__):
        name = qdetails[idx]["name"]
        other = names.unknown_layer(name)
        layers = names.layers(name) or ([f"?{other}"] if other else [])
        if idx in edge_inputs:
            layers = []  # the input's own quantization: an input to the first layer
        for layer in layers:
            last[layer] = idx
            members.setdefault(layer, set()).add(idx)

    def consumers(idx: int, depth: int = 0) -> list[str]:
        found: list[str] = []
        for o in ops:
            if idx not in [int(t) for t in o["inputs"]]:
                continue
            for t in (int(t) for t in o["outputs"]):
                layers = names.layers(qdetails[t]["name"])
                if layers:
                    found += [m for la in layers for m in (names.modules_of(la) or [la])]
                elif depth < 3:
                    found += consumers(t, depth + 1)
        return list(dict.fromkeys(found))

    module_out: dict[str, int] = {}  # each module's output: its layers' last tensor
    for layer, idx in last.items():
        for module in names.modules_of(layer) or [layer]:
            if order[idx] >= order[module_out.get(module, idx)]:
                module_out[module] = idx

    out = []
    for layer, idx in last.items():
        mine = members[layer]
        ins = {
            int(t)
            for m in mine
            for t in producer[m]["inputs"]
            if int(t) not in mine and (int(t) in producer or int(t) in sqnr)
        }
        in_db = min((input_sqnr(t, set()) for t in ins), default=SQNR_CAP)
        acc = accs[idx]
        modules = names.modules_of(layer) or [""]
        for module in modules:
            out.append(
                LayerError(
                    module=module,
                    layer=layer.lstrip("?"),
                    tensor=qdetails[idx]["name"],
                    sqnr_db=acc.sqnr(),
                    channel_sqnr_db=acc.channel_sqnr(),
                    max_error=acc.max_err / acc.max_ref if acc.max_ref else 0.0,
                    lost_db=max(0.0, in_db - sqnr[idx]),
                    range_note=acc.range_note() or accs[module_out[module or layer]].range_note(),
                    consumers=tuple(
                        c for c in consumers(module_out[module or layer]) if c != module
                    ),
                )
            )
    out.sort(key=lambda e: (-e.lost_db, min(e.sqnr_db, e.channel_sqnr_db)))
    seen: set[str] = set()
    ranked = []  # one row per module (its worst layer); rows of unnamed layers kept
    for e in out:
        if e.module and e.module in seen:
            continue
        seen.add(e.module)
        ranked.append(e)
    return ranked


# ----------------------------------------------------------------------------------------------
# The whole int8 / int16x8 export
# ----------------------------------------------------------------------------------------------


@dataclass
class Quantized:
    blob: bytes
    report: QuantizationReport


def _report_batches(batches: list[list[np.ndarray]]) -> list[list[np.ndarray]]:
    out, n = [], 0
    for b in batches:
        if n >= REPORT_SAMPLES:
            break
        out.append(b)
        n += b[0].shape[0] if b[0].ndim else 1
    return out


def quantize(
    frozen: Any,
    variant: str,
    batches: list[list[np.ndarray]],
    io_dtype: str,
    keep_float: Sequence[str],
    names: NameMap,
    goal_db: float = DEFAULT_SQNR_GOAL,
    progress: Callable[[str], None] | None = None,
) -> Quantized:
    """Quantize a frozen concrete function; returns the flatbuffer and its per-layer report."""
    if variant not in INT_VARIANTS:
        raise TranspileError(f"unknown integer variant {variant!r}; valid: {INT_VARIANTS}")
    if io_dtype not in IO_DTYPES:
        raise TranspileError(f"io_dtype must be one of {IO_DTYPES}, not {io_dtype!r}")
    _check_shapes(batches, [t for t in frozen.inputs if t.dtype != "resource"])
    sample = _report_batches(batches)
    if variant == "int16x8":
        if keep_float:
            raise TranspileError(
                "keep_float works with variant='int8' only (TFLite's int16x8 quantizer has no "
                "per-node float fallback)."
            )
        if io_dtype == "uint8":
            raise TranspileError("int16x8 takes io_dtype 'float32' or 'int8' (meaning int16).")
        blob, concats = output_assembly(convert_int16x8(frozen, batches, io_dtype), io_dtype)
        reference = float_reference(frozen)
        selected: list[str] = []
    else:
        # the plain float conversion: same tensor names (the calibrated model carries extra
        # calibration tensors the interpreter cannot always resize)
        reference = float_reference(frozen)
        calibrated = calibrate(frozen, batches, reference)
        layers = names.select(keep_float) if keep_float else set()
        selected = denylist(calibrated, layers, names) if layers else []
        blob, concats = integer_model(calibrated, io_dtype, selected)
    sqnr, max_err = end_to_end(reference, blob, sample)
    rep = QuantizationReport(
        variant=variant,
        samples=sum(b[0].shape[0] for b in sample),
        sqnr_db=sqnr,
        max_error=max_err,
        keep_float=list(keep_float or ()),
        goal_db=goal_db,
    )
    rep.notes += concat_notes(concats, io_dtype, variant, names)
    rep.layers = layer_errors(reference, blob, sample, names)
    rep.culprits = [e for e in rep.layers if e.range_note][:5]
    if sqnr < goal_db and variant == "int8":
        _suggest(rep, calibrated, reference, sample, io_dtype, names)
    elif sqnr < goal_db:
        rep.notes.append(
            "no keep_float suggestion for int16x8 (no per-node float fallback in its quantizer)"
        )
    return Quantized(blob, rep)


def _suggest(
    rep: QuantizationReport,
    calibrated: bytes,
    reference: bytes,
    sample: list[list[np.ndarray]],
    io_dtype: str,
    names: NameMap,
) -> None:
    """Greedy, measured: walk the modules in ranking order; for each, keep it in float (and,
    if that is not enough, its output's consumers too: a float op still hands an int8 consumer
    a quantized tensor) when that raises the end-to-end SQNR; stop at the goal, then drop the
    members the goal does not need. Each trial is one re-quantization of the calibrated model."""
    cache: dict[tuple[str, ...], float] = {}

    def measure(trial: list[str]) -> float:
        key = tuple(sorted(trial))
        if key not in cache:
            deny = denylist(calibrated, names.select(trial), names)
            cache[key] = end_to_end(
                calibrated, integer_model(calibrated, io_dtype, deny)[0], sample
            )[0]
        return cache[key]

    chosen: list[str] = list(rep.keep_float)
    best = rep.sqnr_db
    # a layer no module produced (a functional op, e.g. torch.cat at the top level) cannot be
    # named in keep_float: it is skipped (its consumers stay candidates through their rows)
    selectable = lambda n: n in names.modules or n in names.layer_modules  # noqa: E731
    for e in [e for e in rep.layers if e.lost_db > 0][:MAX_SUGGESTED]:
        name = e.module or e.layer
        if name in chosen or not selectable(name):
            continue
        with_consumers = [*chosen, name, *(c for c in e.consumers if selectable(c))]
        options = [[*chosen, name], list(dict.fromkeys(with_consumers))]
        for trial in options:
            sqnr = measure(trial)
            if sqnr > best + 0.5:
                chosen, best = trial, sqnr
                break
        if best >= rep.goal_db:
            break
    if best < rep.goal_db:
        rep.notes.append(
            f"no keep_float set from the {MAX_SUGGESTED} worst modules reached "
            f"{rep.goal_db:.0f} dB (best {best:.1f} dB with {chosen!r}); try "
            "variant='int16x8' or better calibration data"
        )
        return
    for name in list(chosen):  # prune what the goal does not need
        if name in rep.keep_float:
            continue
        trial = [n for n in chosen if n != name]
        if trial and measure(trial) >= rep.goal_db:
            chosen, best = trial, measure(trial)
    rep.suggested_keep_float, rep.suggested_sqnr_db = chosen, best
