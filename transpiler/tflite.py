"""TFLite export of a transpiled model: frozen, builtin ops only, checked.

The model (the Keras model, or the tf backend's SavedModel function: ``Backend.concrete_function``)
is a concrete function with a dynamic batch, or with a static one (``batch_size``); its variables
are frozen into constants, and it is converted with the builtin op set only (a Flex op would need
the TF runtime on the device: refused). Full-integer variants (``int8``, ``int16x8``) are
calibrated on the user's data and come with a per-layer quantization report
(transpiler/quantize.py). The flatbuffer is then run by the TFLite interpreter on the inputs of
the transpile's numeric check and compared with PyTorch under the same bound, and optionally
checked against a deployment target's constraints (transpiler/tflite_targets.py). TF's MLIR
conversion of a float variant whose GraphDef has 64 MB or more runs in a child process
(``_converting_in_child``), TF's own in-process call being the fallback.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .errors import TranspileError
from .report import Check, Report, TFLiteExport

__all__ = ["export_tflite", "run_tflite", "check_target_file"]

VARIANTS = ("float32", "float16", "dynamic_range", "int8", "int16x8")
FLOAT_VARIANTS = VARIANTS[:3]
# quantized variants: their errors are recorded, checked against this multiple of the tolerance
BOUND_SCALE = {"float32": 1.0, "float16": 100.0, "dynamic_range": 1000.0, "int8": 1000.0}
BOUND_SCALE["int16x8"] = 1000.0


def _interpreter(blob: bytes, delegates: bool = False):
    """A TFLite interpreter of ``blob``: by default without the default delegates (XNNPACK),
    so that its ops list shows the model's own ops; with ``delegates``, the one a deployment
    runs (XNNPACK takes the float ops: the check of a float32 file runs ~2.5x faster). It runs
    on every core this process may use, as PyTorch and TensorFlow do by default (vit_b_16's
    check at batches 1 and 3: 2.1 s on one thread of 2 cores, 1.35 s on two)."""
    try:
        from ai_edge_litert.interpreter import Interpreter  # the maintained runtime
    except ImportError:
        import tensorflow as tf

        Interpreter = tf.lite.Interpreter  # noqa: N806 - deprecated, still shipped with TF 2.21
    threads = _cores()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if delegates:
            return Interpreter(model_content=blob, num_threads=threads)
        try:  # no default delegates: the ops list then shows the model's own ops
            from tensorflow.lite.python.interpreter import OpResolverType

            return Interpreter(
                model_content=blob,
                num_threads=threads,
                experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
            )
        except (ImportError, TypeError):
            return Interpreter(model_content=blob, num_threads=threads)


def _cores() -> int:
    """The number of cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def run_tflite(blob: bytes, arrays: list[np.ndarray]) -> list[np.ndarray]:
    """Run a flatbuffer on numpy inputs; returns its outputs in order, as float when the model's
    I/O is quantized (inputs are quantized, outputs dequantized with the tensors' parameters).
    A model with a static batch is run in slices of its batch size. (No default delegates:
    TFLite's reference kernels.)"""
    return _Runner(blob)(arrays)


class _Runner:
    """One interpreter of a flatbuffer, run on batches of any size (its inputs resized, and
    its tensors allocated again, per call): the export's check builds it once for all its
    batch sizes, where ``run_tflite`` builds one per call."""

    def __init__(self, blob: bytes, delegates: bool = False) -> None:
        self.interp = _interpreter(blob, delegates)
        inputs = self.interp.get_input_details()
        signature = inputs[0]["shape_signature"] if inputs else []
        self.static = int(signature[0]) if len(signature) else -1

    def __call__(self, arrays: list[np.ndarray]) -> list[np.ndarray]:
        n = arrays[0].shape[0] if arrays[0].ndim else 1
        if self.static > 0 and n != self.static:
            if n % self.static:
                raise TranspileError(f"the TFLite model takes batches of {self.static}, not {n}")
            step = self.static
            parts = [self._run([a[k : k + step] for a in arrays]) for k in range(0, n, step)]
            return [np.concatenate(outs) for outs in zip(*parts, strict=True)]
        return self._run(arrays)

    def _run(self, arrays: list[np.ndarray]) -> list[np.ndarray]:
        from .quantize import dequantize, output_details, quantize_input

        interp = self.interp
        inputs = interp.get_input_details()
        for detail, a in zip(inputs, arrays, strict=True):
            interp.resize_tensor_input(detail["index"], list(a.shape))
        interp.allocate_tensors()
        for detail, a in zip(inputs, arrays, strict=True):
            interp.set_tensor(detail["index"], quantize_input(np.asarray(a), detail))
        interp.invoke()
        return [dequantize(interp.get_tensor(d["index"]), d) for d in output_details(interp)]


def op_names(blob: bytes) -> list[str]:
    interp = _interpreter(blob)
    interp.allocate_tensors()
    return sorted({d["op_name"] for d in interp._get_ops_details()})


def convert(concrete: Any, variant: str = "float32") -> bytes:
    """A concrete function (frozen or not: its variables become constants) -> TFLite
    flatbuffer."""
    import tensorflow as tf

    if variant not in FLOAT_VARIANTS:
        raise TranspileError(f"unknown TFLite variant {variant!r}; valid choices: {VARIANTS}")
    converter = converter_for(concrete)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if variant != "float32":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if variant == "float16":
        converter.target_spec.supported_types = [tf.float16]
    if variant == "float32":
        _dedup_only_duplicates(converter)
    try:
        with _converting_in_child():
            return converter.convert()
    except Exception as exc:  # noqa: BLE001 - one clear message
        raise TranspileError(
            f"TFLite conversion failed ({type(exc).__name__}: {str(exc)[:500]}); an op may need "
            "Flex (the TF runtime), which this export refuses."
        ) from exc


_CHILD = threading.local()  # .active: this thread's conversion may run in a child process
_CHILD_SCRIPT = Path(__file__).with_name("_tflite_child.py")
_CHILD_LOCK = threading.Lock()
# the child's allocator asks for transparent huge pages (madvise) for its big buffers: the
# converter copies the weights a dozen times into fresh memory, and on a VM the first touch of
# a page is most of its time (vit_b_16's call as the first conversion in a process that had just
# transpiled it, 3 processes each: 6.7-8.3 s with huge pages, 8.0-9.1 s with glibc's defaults,
# 10.3-11.3 s with freed memory kept in the heap, the setting used before; 0.17 M page faults
# against 1.30 M and 0.84 M)
# a GraphDef this small converts in-process: the child's start (~0.5 s) would cost more than
# its fresh memory saves (resnet18, 47 MB: 1.4 s in-process, 1.8 s through the child;
# convnext_tiny, 114 MB: 5.4 s against 4.0 s)
_CHILD_MIN_BYTES = 64 * 2**20
_CHILD_TUNABLES = "glibc.malloc.hugetlb=1"
# ... and only where a fresh page costs this much (µs per 4 KB page, probed just before):
# where first touches are cheap, the converter runs faster in this process, whose freed
# memory it reuses, than in a child that starts empty. On one machine state (2026-12-01
# 12:00 UTC, probe 1.5 µs) in-process took vit_b_16 3.3-3.8 s against 8.6-8.9 s through the
# child, convnext_tiny 1.1-1.3 s against 2.1-2.7 s, resnet50 1.2-1.3 s against 2.3-3.0 s; on
# another (2026-12-01 05:00 UTC, ~8 µs per page fault in the converter) vit_b_16 took 13-20 s
# in-process against 5.8-8.1 s in the child (BENCHMARKS.md, issue 16's seventh and ninth rounds)
_CHILD_MIN_PAGE_US = 4.0
_PROBE_BYTES = 16 * 2**20


@contextlib.contextmanager
def _converting_in_child():
    """Within this block, this thread's TF MLIR conversion (``wrapped_convert``: serialized
    flags and GraphDef in, flatbuffer out) runs in a child process (``convert_in_child``)
    when the GraphDef has 64 MB or more and a fresh page of memory is expensive here (4 us or
    more, ``fresh_page_cost_us``); otherwise in this process, as TF runs it.

    Why: the converter copies the weights about a dozen times into fresh memory, and gives
    that memory back between copies. Where a fresh page is expensive, that costs far less in a
    fresh process of ~3 GB than in the user's (vit_b_16 on this project's 2-core VM, one
    machine state: 5.8-8.1 s in a child against 13-20 s in the process that had just
    transpiled it); where it is cheap, the user's process, which reuses its freed memory, is
    the faster (another state: 3.3-3.8 s in-process against 8.6-8.9 s; same bytes either way;
    BENCHMARKS.md, issue 16's seventh and ninth rounds). Through the child, the converter's
    peak memory (3.1-3.4 GB on vit_b_16) never adds to the user's process,
    and a crash in the converter cannot take the process down. Any failure of the child (no
    interpreter, a module TF moved, a conversion error, a crash) falls back to TF's own
    in-process call, which then raises TF's own errors. The hook on
    ``wrap_converter.wrapped_convert`` (installed once) passes every other call, from any other
    thread or outside this block, to TF's function untouched."""
    _install_child_hook()
    _CHILD.active = True
    try:
        yield
    finally:
        _CHILD.active = False


def _install_child_hook() -> None:
    try:
        from tensorflow.compiler.mlir.lite.python import wrap_converter
    except ImportError:
        return
    with _CHILD_LOCK:
        original = getattr(wrap_converter, "wrapped_convert", None)
        if original is None or getattr(original, "_transpiler_child", False):
            return

        def wrapped_convert(model_flags, converter_flags, input_data, debug_info, *more, **kw):
            if getattr(_CHILD, "active", False) and not more and not kw:
                blob = convert_in_child(model_flags, converter_flags, input_data, debug_info)
                if blob is not None:
                    return blob
            return original(model_flags, converter_flags, input_data, debug_info, *more, **kw)

        wrapped_convert._transpiler_child = True  # noqa: SLF001
        wrapped_convert.__wrapped__ = original
        wrap_converter.wrapped_convert = wrapped_convert


def _child_modules() -> list[str] | None:
    """The files of TF's converter API and function-library extension modules."""
    import importlib

    try:
        names = (
            "tensorflow.compiler.mlir.lite.python._pywrap_converter_api",
            "tensorflow.compiler.mlir.quantization.tensorflow.python.pywrap_function_lib",
        )
        files = [importlib.import_module(name).__file__ for name in names]
    except Exception:  # noqa: BLE001 - another TF layout: in-process
        return None
    return files if all(f and os.path.isfile(f) for f in files) else None


def fresh_page_cost_us(nbytes: int | None = None) -> float | None:
    """Microseconds this process takes to touch one fresh 4 KB page of anonymous memory
    (``nbytes`` of it mapped, written once, unmapped; ~6 ms for the default 16 MB on this
    project's VM); None where it cannot be measured. What the TF converter's dozen weight
    copies cost depends on it: on a VM it ranges from ~1.5 to ~8 us with the host's state."""
    import ctypes
    import mmap

    n = _PROBE_BYTES if nbytes is None else nbytes
    try:
        region = mmap.mmap(-1, n, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    except (OSError, ValueError, AttributeError):
        return None
    try:
        view = (ctypes.c_char * n).from_buffer(region)
        start = time.perf_counter()
        ctypes.memset(view, 1, n)  # one page fault per page, no Python loop
        elapsed = time.perf_counter() - start
        del view
    finally:
        region.close()
    return elapsed * 1e6 / max(1, n // 4096)


def convert_in_child(
    model_flags: bytes, converter_flags: bytes, input_data: bytes, debug_info: bytes | None
) -> bytes | None:
    """TF's converter call (``_pywrap_converter_api.Convert``) run by ``_tflite_child.py`` in
    a child process of this Python, for a GraphDef of ``_CHILD_MIN_BYTES`` or more when a
    fresh page of memory costs ``_CHILD_MIN_PAGE_US`` or more (``fresh_page_cost_us``); the
    flatbuffer, or None when the child could not give one or was not started (the caller then
    converts in-process)."""
    import struct
    import subprocess
    import sys

    from ._tflite_child import HEADER, LENGTH

    parts = [model_flags, converter_flags, input_data, debug_info]
    if not all(p is None or isinstance(p, bytes | bytearray | memoryview) for p in parts):
        return None
    if input_data is None or len(input_data) < _CHILD_MIN_BYTES:  # the start would cost more
        return None
    cost = fresh_page_cost_us()
    if cost is None or cost < _CHILD_MIN_PAGE_US:  # fresh memory is cheap: in-process is faster
        return None
    modules = _child_modules()
    if modules is None or not sys.executable or not _CHILD_SCRIPT.is_file():
        return None
    env = dict(os.environ)
    env.setdefault("GLIBC_TUNABLES", _CHILD_TUNABLES)
    command = [sys.executable, "-I", str(_CHILD_SCRIPT), *modules]
    try:
        proc = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,  # its failure is not reported: TF's own call follows
            env=env,
        )
    except (OSError, ValueError):
        return None
    with proc:
        try:
            try:
                proc.stdin.write(HEADER.pack(*(-1 if p is None else len(p) for p in parts)))
                for p in parts:
                    if p is not None:
                        proc.stdin.write(p)
                proc.stdin.close()
            except BrokenPipeError:  # the child stopped before reading it all
                return None
            head = proc.stdout.read(1 + LENGTH.size)
            if len(head) != 1 + LENGTH.size or head[:1] != b"T":
                return None
            (n,) = LENGTH.unpack(head[1:])
            blob = proc.stdout.read(n)
            return blob if proc.wait() == 0 and len(blob) == n else None
        except (OSError, ValueError, struct.error):
            return None
        finally:
            if proc.poll() is None:  # not done (an error, an interrupt): no orphan left
                proc.kill()


def _dedup_only_duplicates(converter: Any) -> None:
    """Skip, on this converter only, its last step when it would change nothing: after the
    MLIR conversion, TF's converter parses the whole flatbuffer into Python objects to merge
    identical read-only buffers and packs it again (``deduplicate_readonly_buffers``: 2.2 s of
    vit_b_16's export, for no byte saved when no two buffers are equal, as the MLIR
    converter already shares equal constants). ``_distinct_buffers`` checks that cheaply on the
    flatbuffer as is; if any two buffers may be equal, or the model is quantized or sparsified
    (other work that step does), or TF's private hook differs, TF's step runs as before."""
    original = getattr(converter, "_optimize_tflite_model", None)
    if original is None or not callable(original):
        return

    def optimize(model: Any, *args: Any, **kwargs: Any) -> Any:
        plain = not converter.optimizations and not getattr(
            converter, "_experimental_use_buffer_offset", True
        )
        if plain and _distinct_buffers(model):
            return model
        return original(model, *args, **kwargs)

    converter._optimize_tflite_model = optimize  # noqa: SLF001 - this instance only


def _distinct_buffers(blob: Any) -> bool:
    """True when every non-empty buffer of a flatbuffer holds different bytes and none is stored
    by offset (read in place: no copy of the weights); False when in doubt (equal sizes and
    equal digests, an unreadable file, another schema)."""
    import hashlib

    try:
        from tensorflow.lite.python import schema_py_generated as schema

        model = schema.Model.GetRootAs(blob, 0)
        groups: dict[tuple[int, bytes, bytes], list[np.ndarray]] = {}
        for i in range(model.BuffersLength()):
            buffer = model.Buffers(i)
            if buffer.Offset() or buffer.Size():
                return False
            n = buffer.DataLength()
            if n:
                data = buffer.DataAsNumpy()
                groups.setdefault((n, data[:64].tobytes(), data[-64:].tobytes()), []).append(data)
        for group in (g for g in groups.values() if len(g) > 1):
            digests = {hashlib.sha256(data).digest() for data in group}
            if len(digests) < len(group):
                return False
    except Exception:  # noqa: BLE001 - any doubt: TF's own step decides
        return False
    return True


def converter_for(concrete: Any, integer: bool = False) -> Any:
    """A TFLiteConverter for a concrete function, frozen or not. The converter would freeze it
    itself (variables to constants, then the frozen GraphDef wrapped into a new function: an
    import and a prune of the whole graph, seconds on a large model; a second time for a function
    already frozen): it gets the frozen GraphDef (``frozen_graph_def``) as is, with the dilated
    convolutions folded out of SpaceToBatchND/BatchToSpaceND and, for an ``integer`` export, the
    keep-dims means and the weights of linear maps reading a softmax rewritten, and channel
    shuffles as channels-first round trips (transpiler/tflite_graph.py). A converter without that
    hook gets a frozen, re-wrapped function instead."""
    import tensorflow as tf

    from .tflite_graph import (
        centre_softmax_projections,
        channel_shuffle_round_trips,
        fold_dilated_convs,
        mean_without_keepdims,
        native_dilated_convs,
    )

    converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete])
    if not hasattr(converter, "_freeze_concrete_function"):
        frozen = concrete if _is_frozen(concrete) else freeze(concrete)
        return tf.lite.TFLiteConverter.from_concrete_functions([native_dilated_convs(frozen)])
    graph_def = frozen_graph_def(concrete)
    fold_dilated_convs(graph_def)
    if integer:
        mean_without_keepdims(graph_def, lambda name: _static_shape(concrete.graph, name))
        centre_softmax_projections(graph_def)
    # last: the rewrites above follow the model's own Transposes
    channel_shuffle_round_trips(graph_def, lambda name: _static_shape(concrete.graph, name))
    inputs = [t for t in concrete.inputs if t.dtype.name != "resource"]
    outputs = list(concrete.outputs)
    converter._freeze_concrete_function = lambda: (graph_def, inputs, outputs, concrete)  # noqa: SLF001
    # TF's CanonicalizeBoundaryValuePass rewrites ±inf in constants to ±FLT_MAX, reading every
    # weight element by element to find none (vit_b_16: ~4 s of a 15 s conversion); it runs
    # only where a constant holds an infinity
    converter.canonicalizing_inf_as_min_max_float = may_hold_infinity(graph_def)
    _without_debug_info(converter)
    # no CONVERSION_METADATA entry (the converter's version and options): adding it parses the
    # finished flatbuffer into Python objects and serializes it again, seconds for 100 MB
    converter.exclude_conversion_metadata = True
    return converter


class _NoGraph:
    graph = None


def _without_debug_info(converter: Any) -> None:
    """No GraphDebugInfo for this converter: TF's converter collects every op's Python stack
    trace (the Keras call that made it) and carries it through the MLIR conversion as each op's
    location, only for its error messages. The file is the same byte for byte; vit_b_16's
    conversion takes ~2.5 s less. Errors still name the op."""
    validate = getattr(converter, "_validate_inputs", None)
    funcs = getattr(converter, "_funcs", None)
    if validate is None or not hasattr(converter, "_debug_info") or not funcs:
        return

    def validate_inputs(*args: Any, **kwargs: Any) -> Any:
        # TF builds the debug info there from the first function's graph: none, none built
        converter._funcs = [_NoGraph(), *funcs[1:]]  # noqa: SLF001
        try:
            return validate(*args, **kwargs)
        finally:
            converter._funcs = funcs  # noqa: SLF001
            converter._debug_info = None  # noqa: SLF001 - read by the conversion that follows

    converter._validate_inputs = validate_inputs  # noqa: SLF001 - this instance only


def may_hold_infinity(graph_def: Any) -> bool:
    """False when no floating-point constant of ``graph_def`` (its functions' included) holds
    ±inf; True when one does, or when a constant cannot be read here (the converter then clamps
    infinities as it does by default). Each constant's bytes are copied once, one constant at a
    time (~0.08 s for vit_b_16's 330 MB)."""
    try:
        nodes = [*graph_def.node, *(n for f in graph_def.library.function for n in f.node_def)]
        return any(_const_has_infinity(n.attr["value"].tensor) for n in nodes if n.op == "Const")
    except Exception:  # noqa: BLE001 - in doubt: TF's default
        return True


_FLOAT_BITS = {1: np.float32, 2: np.float64, 19: np.float16}  # DT_FLOAT, DT_DOUBLE, DT_HALF


def _const_has_infinity(tensor: Any) -> bool:
    """Whether a TensorProto constant may hold ±inf (True for an unreadable float type)."""
    import tensorflow as tf

    dtype = tf.dtypes.as_dtype(tensor.dtype)
    if not dtype.is_floating:
        return False
    if tensor.dtype not in _FLOAT_BITS:
        return True  # bfloat16 and others: not read here
    kind = _FLOAT_BITS[tensor.dtype]
    if tensor.tensor_content:
        values = np.frombuffer(tensor.tensor_content, kind)
    elif kind is np.float16:
        values = np.array(tensor.half_val, np.uint16).view(np.float16)
    else:
        values = np.array(tensor.double_val if kind is np.float64 else tensor.float_val, kind)
    if values.size == 0:
        return False
    # a NaN makes max/min NaN, which may hide an infinity: True then as well
    return not (np.isfinite(values.max()) and np.isfinite(values.min()))


def frozen_graph_def(concrete: Any) -> Any:
    """The GraphDef of ``concrete`` with its variables replaced by constants: what
    ``convert_variables_to_constants_v2`` computes before it wraps that GraphDef into a new
    concrete function, which the float export does not need (the TFLite converter takes the
    GraphDef, whose input and output tensors keep ``concrete``'s names)."""
    if _is_frozen(concrete):
        return concrete.graph.as_graph_def()
    from tensorflow.python.framework import convert_to_constants as c

    if not hasattr(c, "_replace_variables_by_constants"):  # another TF: the public path
        return freeze(concrete).graph.as_graph_def()
    data = _views_data(c)(func=concrete, lower_control_flow=True, aggressive_inlining=False)
    graph_def, _ = c._replace_variables_by_constants(converter_data=data)  # noqa: SLF001
    return graph_def


def _views_data(c: Any) -> type:
    """``convert_variables_to_constants_v2``'s eager converter data, reading each variable as a
    view of its tensor: TF's copies every weight (``Tensor.numpy()``) before copying it again
    into the GraphDef's constant (vit_b_16: 346 MB, 0.7 s)."""

    class ViewsData(c._FunctionConverterDataInEager):  # noqa: SLF001 - see frozen_graph_def
        def _eval(self, tensor: Any) -> Any:
            try:
                value = tensor.read_value() if hasattr(tensor, "read_value") else tensor
                return value._numpy()  # noqa: SLF001 - a view; the proto copies it
            except Exception:  # noqa: BLE001 - TF's own way
                return super()._eval(tensor)

    return ViewsData


def _static_shape(graph: Any, op_name: str) -> list | None:
    """The static shape of an op's first output (None for unknown sizes), None if unknown."""
    try:
        shape = graph.get_operation_by_name(op_name).outputs[0].shape
    except (KeyError, ValueError, IndexError):
        return None
    return None if shape.rank is None else shape.as_list()


def _is_frozen(concrete: Any) -> bool:
    return getattr(concrete, "_transpiler_frozen", False)


def freeze(concrete: Any) -> Any:
    """The concrete function with its variables frozen into constants."""
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    frozen = convert_variables_to_constants_v2(concrete)
    frozen._transpiler_frozen = True
    return frozen


def static_batch(concrete: Any, batch_size: int, example_shapes: list[tuple[int, ...]]) -> Any:
    """A frozen concrete function calling ``concrete`` (frozen first: its variables' owner may be
    gone) with every input dimension static: the batch is ``batch_size``, other unknown
    dimensions take the check inputs' sizes."""
    import tensorflow as tf

    concrete = concrete if _is_frozen(concrete) else freeze(concrete)
    specs = []
    for spec, shape in zip(_specs(concrete), example_shapes, strict=True):
        dims = [batch_size] + [
            int(d) if d is not None else int(e)
            for d, e in zip(list(spec.shape)[1:], shape[1:], strict=True)
        ]
        specs.append(tf.TensorSpec(dims, spec.dtype))

    def call(*xs):
        return concrete(*xs)

    return freeze(tf.function(call).get_concrete_function(*specs))


def export_tflite(
    concrete: Any,
    path: Path,
    report: Report,
    tolerance: float,
    variant: str = "float32",
    *,
    calibration: Any = None,
    io_dtype: str = "float32",
    batch_size: int | None = None,
    keep_float: Sequence[str] = (),
    target: str | None = None,
    sqnr_goal_db: float | None = None,
    backend: str = "keras",
) -> list[Check]:
    """Write ``path`` (atomically) and check it against PyTorch (and ``target``); returns the
    checks. Nothing is written when a check that must pass fails."""
    from . import quantize as q
    from .tflite_targets import TARGETS, check_target, module_namer

    _validate(variant, io_dtype, batch_size, keep_float, target, calibration)
    if batch_size is not None:
        shapes = [tuple(a.shape) for a in report.references[0][0]] if report.references else []
        if not shapes:
            shapes = [tuple(1 if d is None else d for d in s.shape) for s in _specs(concrete)]
        frozen = static_batch(concrete, batch_size, shapes)
    elif variant in q.INT_VARIANTS:  # calibration runs the frozen function
        frozen = freeze(concrete)
    else:  # the converter freezes it to a GraphDef only (converter_for)
        frozen = concrete
    names = q.NameMap(report.module_layers, strip_suffix=backend == "keras")
    quant_report = None
    if variant in q.INT_VARIANTS:
        batches = q.rebatch(q.calibration_batches(calibration, len(frozen.inputs)), batch_size)
        goal = q.DEFAULT_SQNR_GOAL if sqnr_goal_db is None else sqnr_goal_db
        done = q.quantize(frozen, variant, batches, io_dtype, keep_float, names, goal)
        blob, quant_report = done.blob, done.report
    else:
        blob = convert(frozen, variant)
    flex = [op for op in op_names(blob) if op.startswith("Flex")]
    if flex:
        raise TranspileError(f"the TFLite model would need Flex ops {flex}; nothing was written")
    violations = []
    if target is not None:
        assert target in TARGETS
        violations = check_target(blob, target, report.io_layout, module_namer(names))
        if violations:
            listed = "\n  ".join(str(v) for v in violations)
            raise TranspileError(
                f"the TFLite model breaks {len(violations)} {target} constraint(s); nothing was "
                f"written:\n  {listed}"
            )
    pending = _PendingFile(blob, Path(path))  # written while the check runs
    try:
        checks = _check_file(blob, report, tolerance * BOUND_SCALE[variant], variant, batch_size)
        if variant == "float32" and not all(c.ok for c in checks):
            worst = max(checks, key=lambda c: c.max_rel)
            raise TranspileError(
                f"the TFLite model differs from PyTorch by {worst.max_abs:.3g} (bound "
                f"{worst.bound:.3g}) at batch {worst.batch_size}; nothing was written"
            )
    except BaseException:
        pending.discard()
        raise
    path = pending.commit()
    report.tflite.append(
        TFLiteExport(
            variant,
            str(path),
            checks,
            io_dtype=io_dtype,
            batch_size=batch_size,
            target=target,
            size_bytes=len(blob),
            quantization=quant_report,
        )
    )
    return checks


def _check_file(
    blob: bytes, report: Report, bound: float, variant: str, batch_size: int | None
) -> list[Check]:
    """The flatbuffer run on every check input set of the transpile (those a static batch
    divides), each output compared with PyTorch's under ``bound``. One interpreter for every
    batch size; XNNPACK (the default delegate, which a deployment runs) for a float32 file."""
    from .verify import _error

    checks = []
    run = _Runner(blob, delegates=variant == "float32")
    for arrays, refs in report.references:
        if batch_size is not None and arrays[0].shape[0] % batch_size:
            continue
        outs = run(arrays)
        for k, (y, ref) in enumerate(zip(outs, refs, strict=True)):
            err, rel, limit = _error(np.asarray(y), ref, bound)
            checks.append(Check(arrays[0].shape[0], k, err, rel, limit, err <= limit))
    return checks


class _PendingFile:
    """``blob`` written, in a thread, to a hidden temporary file beside ``path`` (a disk write
    of hundreds of MB overlapping the check); ``commit`` renames it into place, ``discard``
    removes it and the folders created for it, leaving nothing behind."""

    def __init__(self, blob: bytes, path: Path) -> None:
        self.path = path
        self.created: list[Path] = []  # the folders made for it, innermost first
        folder = path.parent
        while not folder.exists():
            self.created.append(folder)
            folder = folder.parent
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, self.tmp = tempfile.mkstemp(dir=path.parent, prefix=".tflite_")
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._write, args=(fd, blob), daemon=True)
        self.thread.start()

    def _write(self, fd: int, blob: bytes) -> None:
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(blob)
        except BaseException as exc:  # noqa: BLE001 - raised by commit
            self.error = exc

    def commit(self) -> Path:
        self.thread.join()
        if self.error is not None:
            self.discard()
            raise self.error
        os.replace(self.tmp, self.path)
        return self.path

    def discard(self) -> None:
        self.thread.join()
        with contextlib.suppress(OSError):
            os.unlink(self.tmp)
        for folder in self.created:
            with contextlib.suppress(OSError):
                folder.rmdir()


def _specs(concrete: Any) -> list[Any]:
    """The input placeholders (shape, dtype) of a concrete function, frozen or not."""
    return [t for t in concrete.inputs if t.dtype.name != "resource"][: _n_args(concrete)]


def _n_args(concrete: Any) -> int:
    sig = concrete.structured_input_signature
    return len(sig[0]) if sig else len(concrete.inputs)


def _validate(
    variant: str,
    io_dtype: str,
    batch_size: int | None,
    keep_float: Sequence[str],
    target: str | None,
    calibration: Any,
) -> None:
    from .quantize import INT_VARIANTS, IO_DTYPES
    from .tflite_targets import TARGETS

    if variant not in VARIANTS:
        raise TranspileError(f"unknown TFLite variant {variant!r}; valid choices: {VARIANTS}")
    if io_dtype not in IO_DTYPES:
        raise TranspileError(f"io_dtype must be one of {IO_DTYPES}, not {io_dtype!r}")
    if variant not in INT_VARIANTS:
        given = [
            n
            for n, v in (("calibration", calibration), ("keep_float", keep_float))
            if v is not None and not (n == "keep_float" and not v)
        ]
        if io_dtype != "float32":
            given.append("io_dtype")
        if given:
            raise TranspileError(
                f"{', '.join(given)} apply to the full-integer variants ('int8', 'int16x8') "
                f"only, not {variant!r}."
            )
    if batch_size is not None and (
        isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1
    ):
        raise TranspileError(f"batch_size must be a positive int or None, not {batch_size!r}")
    if target is not None and target not in TARGETS:
        raise TranspileError(f"unknown target {target!r}; valid: {TARGETS}")
    if isinstance(keep_float, str):
        raise TranspileError("keep_float is a list of PyTorch module paths, not one string.")


def check_target_file(path: str | os.PathLike[str], target: str, io_layout: str = "nchw") -> list:
    """The violations of ``target``'s constraints by any .tflite file (no module names)."""
    from .tflite_targets import check_target

    return check_target(Path(path).read_bytes(), target, (io_layout, io_layout))
