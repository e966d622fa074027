"""TFLite export from both backends: builtin ops only (no Flex), dynamic batch, checked against
PyTorch."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
import torch.nn as nn
import torchvision
from helpers import randomize_bn

from transpiler import transpile
from transpiler.tflite import op_names, run_tflite


def _yolo_block():
    return nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1, bias=False), nn.BatchNorm2d(16), nn.SiLU())


MODELS = {
    "yolo_block": (_yolo_block, 65),
    "grouped_conv": (
        lambda: nn.Sequential(
            nn.Conv2d(4, 8, 3, groups=2, padding=1), nn.ReLU(), nn.MaxPool2d(2, ceil_mode=True)
        ),
        17,
    ),
    "mobilenet_v2": (lambda: torchvision.models.mobilenet_v2(weights=None), 64),
    "resnet18": (lambda: torchvision.models.resnet18(weights=None), 64),
}


@pytest.mark.parametrize("backend", ["keras", "tf"])
@pytest.mark.parametrize("io_layout", ["nchw", "nhwc"])
@pytest.mark.parametrize("name", sorted(MODELS))
def test_tflite_float32_matches_torch(name, io_layout, backend, tmp_path):
    make, size = MODELS[name]
    torch.manual_seed(0)
    model = randomize_bn(make()).eval()
    channels = 4 if name == "grouped_conv" else 3
    result = transpile(
        model,
        torch.randn(1, channels, size, size),
        backend=backend,
        io_layout=io_layout,
        out_dir=tmp_path / "out",
    )
    path = result.to_tflite(tmp_path / "model.tflite")
    blob = path.read_bytes()
    ops = op_names(blob)
    assert not [op for op in ops if op.startswith("Flex")], ops
    if io_layout == "nhwc":
        assert "TRANSPOSE" not in ops, ops
    variant, _, checks = result.report.tflite[-1]
    assert variant == "float32" and checks and all(c.ok for c in checks)
    # and independently of the report: another batch size straight through the interpreter
    x = torch.randn(3, channels, size, size)
    with torch.no_grad():
        expected = model(x).numpy()
    arr = x.numpy() if io_layout == "nchw" else x.permute(0, 2, 3, 1).numpy()
    (y,) = run_tflite(blob, [arr])
    if io_layout == "nhwc" and y.ndim == 4:
        y = y.transpose(0, 3, 1, 2)
    assert np.abs(y - expected).max() <= 1e-4 * max(1.0, float(np.abs(expected).max()))


@pytest.mark.parametrize("backend", ["keras", "tf"])
def test_tflite_quantized_variants_report_their_error(backend, tmp_path):
    torch.manual_seed(0)
    model = randomize_bn(_yolo_block()).eval()
    result = transpile(model, torch.randn(1, 3, 32, 32), backend=backend, out_dir=tmp_path / "out")
    for variant in ("float16", "dynamic_range"):
        result.to_tflite(tmp_path / f"{variant}.tflite", variant=variant)
    variants = [v for v, _, _ in result.report.tflite]
    assert variants == ["float16", "dynamic_range"]
    assert all(checks for _, _, checks in result.report.tflite)


def _small_blob(*, twin_weights: bool = False) -> bytes:
    """A float32 flatbuffer of two dense layers with different weights of one shape; with
    ``twin_weights``, the second weight buffer is made a byte copy of the first (as a converter
    without constant sharing would leave it)."""
    import tensorflow as tf
    from tensorflow.lite.tools import flatbuffer_utils

    from transpiler.tflite import convert

    rng = np.random.default_rng(0)
    w1, w2 = (rng.standard_normal((8, 8)).astype(np.float32) for _ in range(2))

    @tf.function(input_signature=[tf.TensorSpec([None, 8], tf.float32)])
    def f(x):  # constants in the graph (a captured tensor would be an input)
        return tf.matmul(tf.nn.relu(tf.matmul(x, tf.constant(w1))), tf.constant(w2))

    blob = convert(f.get_concrete_function())
    if not twin_weights:
        return blob
    model = flatbuffer_utils.convert_bytearray_to_object(blob)
    sized = [b for b in model.buffers if b.data is not None and b.data.size == 8 * 8 * 4]
    assert len(sized) == 2
    sized[1].data = sized[0].data.copy()
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def test_buffer_dedup_is_skipped_only_without_equal_buffers():
    """TF's re-packing dedup step runs when two buffers hold equal bytes, and only then."""
    from types import SimpleNamespace

    from transpiler.tflite import _dedup_only_duplicates, _distinct_buffers

    distinct, twins = _small_blob(), _small_blob(twin_weights=True)
    assert _distinct_buffers(distinct) and not _distinct_buffers(twins)
    assert not _distinct_buffers(b"not a flatbuffer")
    calls = []
    converter = SimpleNamespace(
        optimizations=[],
        _experimental_use_buffer_offset=False,
        _optimize_tflite_model=lambda model, *a, **k: calls.append(model) or b"deduplicated",
    )
    _dedup_only_duplicates(converter)
    assert converter._optimize_tflite_model(distinct, None, None) is distinct and not calls
    assert converter._optimize_tflite_model(twins, None, None) == b"deduplicated"
    assert calls == [twins]
    converter.optimizations = ["DEFAULT"]  # quantized: TF's step always runs
    assert converter._optimize_tflite_model(distinct, None, None) == b"deduplicated"


def test_check_runner_reuses_one_xnnpack_interpreter_across_batches():
    """The export's check (one interpreter, XNNPACK, resized per batch) computes what the
    reference kernels compute, batch after batch, in any order."""
    from transpiler.tflite import _Runner

    blob = _small_blob()
    rng = np.random.default_rng(1)
    run = _Runner(blob, delegates=True)
    for n in (1, 3, 1, 5):
        x = rng.standard_normal((n, 8)).astype(np.float32)
        (y,) = run([x])
        (ref,) = run_tflite(blob, [x])
        assert y.shape == (n, 8)
        assert np.abs(y - ref).max() <= 1e-5 * max(1.0, float(np.abs(ref).max()))


def test_check_interpreters_run_on_every_core_the_process_may_use(monkeypatch):
    """The check's interpreters (XNNPACK or reference kernels) get one thread per core of the
    process's affinity mask, and compute what a single-threaded interpreter computes."""
    import tensorflow as tf

    import transpiler.tflite as tflite

    made = []
    original = tf.lite.Interpreter

    class Recording(original):
        def __init__(self, *args, **kwargs):
            made.append(kwargs.get("num_threads"))
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(tf.lite, "Interpreter", Recording)
    assert tflite._cores() == len(os.sched_getaffinity(0))
    monkeypatch.setattr(tflite, "_cores", lambda: 3)
    blob = _small_blob()
    x = np.random.default_rng(2).standard_normal((4, 8)).astype(np.float32)
    (y,) = tflite._Runner(blob, delegates=True)([x])
    (y_ref,) = tflite.run_tflite(blob, [x])
    assert made == [3, 3]
    monkeypatch.setattr(tflite, "_cores", lambda: 1)
    (y_one,) = tflite._Runner(blob, delegates=True)([x])
    assert made == [3, 3, 1]
    assert np.abs(y - y_one).max() <= 1e-6 and np.abs(y - y_ref).max() <= 1e-5


def test_failed_float32_check_leaves_nothing_behind(tmp_path, monkeypatch):
    """The file is written while the check runs; a check that fails removes it, the folders
    made for it, and its temporary, and the error says so."""
    import transpiler.tflite as tflite
    from transpiler.errors import TranspileError

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4)).eval()
    result = transpile(model, torch.randn(2, 8), out_dir=tmp_path / "out")
    original = tflite._Runner.__call__
    monkeypatch.setattr(
        tflite._Runner, "__call__", lambda self, arrays: [y + 1 for y in original(self, arrays)]
    )
    target = tmp_path / "new" / "deeper" / "model.tflite"
    with pytest.raises(TranspileError, match="nothing was written"):
        result.to_tflite(target)
    assert not (tmp_path / "new").exists()
    monkeypatch.setattr(tflite._Runner, "__call__", original)
    path = result.to_tflite(target)
    assert path == target and path.stat().st_size > 0
    assert sorted(p.name for p in target.parent.iterdir()) == ["model.tflite"]


class _MaskedScores(nn.Module):
    """Attention-style scores masked with a constant -inf (a causal mask built once)."""

    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(6, 6)
        self.register_buffer("mask", torch.triu(torch.full((6, 6), float("-inf")), diagonal=1))

    def forward(self, x):
        return torch.softmax(self.proj(x) + self.mask, dim=-1)


def test_inf_clamping_pass_runs_only_where_a_constant_holds_infinity(tmp_path, monkeypatch):
    """TF's CanonicalizeBoundaryValuePass (±inf constants to ±FLT_MAX) reads every weight; it is
    skipped where no constant holds an infinity, and the file is the same byte for byte as with
    it; where one does, the converter clamps as by default and the export is still exact."""
    import transpiler.tflite as tflite
    from transpiler.tflite import convert, converter_for

    torch.manual_seed(0)
    plain = transpile(
        nn.Sequential(nn.Linear(6, 6), nn.ReLU(), nn.Linear(6, 3)).eval(),
        torch.randn(2, 6),
        out_dir=tmp_path / "plain",
    )
    concrete = plain.concrete_function()
    assert converter_for(concrete).canonicalizing_inf_as_min_max_float is False
    blobs = []
    for clamp in (False, True):
        with monkeypatch.context() as m:

            def clamping(*a, clamp=clamp, **k):
                converter = converter_for(*a, **k)
                converter.canonicalizing_inf_as_min_max_float = clamp
                return converter

            m.setattr(tflite, "converter_for", clamping)
            blobs.append(convert(concrete))
    assert blobs[0] == blobs[1]

    masked = _MaskedScores().eval()
    result = transpile(masked, torch.randn(2, 6, 6), out_dir=tmp_path / "masked")
    concrete = result.concrete_function()
    assert converter_for(concrete).canonicalizing_inf_as_min_max_float is True
    path = result.to_tflite(tmp_path / "masked.tflite")
    x = torch.randn(3, 6, 6)
    with torch.no_grad():
        expected = masked(x).numpy()
    (y,) = run_tflite(path.read_bytes(), [x.numpy()])
    assert np.abs(y - expected).max() <= 1e-5


def test_infinity_scan_reads_every_float_encoding():
    """may_hold_infinity: tensor_content, repeated values, half floats, function bodies, NaN
    (which may hide an infinity from max/min), and anything unreadable count as possible."""
    import tensorflow as tf

    from transpiler.tflite import may_hold_infinity

    def graph(*values, dtype=tf.float32, in_function=False):
        g = tf.Graph()
        with g.as_default():
            for v in values:
                tf.constant(v, dtype=dtype)
        gd = g.as_graph_def()
        if in_function:
            wrapper = type(gd)()
            fn = wrapper.library.function.add()
            fn.node_def.extend(gd.node)
            return wrapper
        return gd

    big = np.ones(1000, np.float32)
    assert not may_hold_infinity(graph(big, 2.5, [1.0, -3.0]))
    assert may_hold_infinity(graph(np.where(np.arange(1000) == 7, -np.inf, big)))
    assert may_hold_infinity(graph(float("inf")))  # a scalar in float_val
    assert may_hold_infinity(graph(np.full(5, np.inf), dtype=tf.float16))
    assert not may_hold_infinity(graph(np.full(5, 3.0), dtype=tf.float16))
    assert may_hold_infinity(graph([np.nan, np.inf, 1.0], dtype=tf.float64))
    assert may_hold_infinity(graph([1.0, np.nan]))  # conservative
    assert may_hold_infinity(graph(np.full(4, -np.inf), in_function=True))
    assert not may_hold_infinity(graph(np.arange(4.0), in_function=True))
    assert may_hold_infinity(graph(np.ones(3), dtype=tf.bfloat16))  # not read: the default
    assert may_hold_infinity(object())  # not a GraphDef: the default


def test_conversion_without_debug_info_writes_the_same_file(tmp_path, monkeypatch):
    """The converter gets no GraphDebugInfo (every op's Python stack trace, for TF's error
    messages only): not built, and the file is the same byte for byte as with it."""
    import transpiler.tflite as tflite

    torch.manual_seed(0)
    model = randomize_bn(_yolo_block()).eval()
    concrete = transpile(model, torch.randn(1, 3, 32, 32), out_dir=tmp_path).concrete_function()
    seen = []
    original = tflite.converter_for

    def recording(*a, **k):
        converter = original(*a, **k)
        seen.append(converter)
        return converter

    monkeypatch.setattr(tflite, "converter_for", recording)
    without = tflite.convert(concrete)
    assert seen[-1]._debug_info is None and seen[-1]._funcs[0] is concrete
    monkeypatch.setattr(tflite, "_without_debug_info", lambda converter: None)
    with_info = tflite.convert(concrete)
    assert seen[-1]._debug_info is not None  # TF's own path did build it
    assert without == with_info


def _conv_block_concrete(tmp_path):
    torch.manual_seed(0)
    model = randomize_bn(_yolo_block()).eval()
    return transpile(model, torch.randn(1, 3, 32, 32), out_dir=tmp_path).concrete_function()


def _record_child_results(monkeypatch) -> list:
    """What each ``convert_in_child`` call returns (None: no child, or it failed), in order."""
    import transpiler.tflite as tflite

    results = []
    original = tflite.convert_in_child

    def recording(*parts):
        results.append(original(*parts))
        return results[-1]

    monkeypatch.setattr(tflite, "convert_in_child", recording)
    return results


def test_conversion_runs_in_a_child_process_and_writes_the_same_file(tmp_path, monkeypatch):
    """TF's MLIR conversion runs in a child process (``_tflite_child.py``): it gives the
    flatbuffer TF's in-process call gives, byte for byte, and that file runs exactly."""
    import transpiler.tflite as tflite

    concrete = _conv_block_concrete(tmp_path)
    results = _record_child_results(monkeypatch)
    small = tflite.convert(concrete)  # a GraphDef of a few KB: in-process, no child started
    assert results == [None]
    monkeypatch.setattr(tflite, "_CHILD_MIN_BYTES", 0)  # now it goes there too
    monkeypatch.setattr(tflite, "_CHILD_MIN_PAGE_US", 0.0)  # however cheap fresh memory is
    results.clear()
    in_child = tflite.convert(concrete)
    assert in_child == small
    assert len(results) == 1 and results[0] == in_child  # the child's file is the one returned
    monkeypatch.setattr(tflite, "convert_in_child", lambda *parts: None)
    in_process = tflite.convert(concrete)
    assert in_child == in_process
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    (y,) = run_tflite(in_child, [x])
    ref = concrete(tf_constant(x))
    ref = ref[0] if isinstance(ref, list | tuple) else ref
    assert np.abs(y - np.asarray(ref)).max() <= 1e-5 * max(1.0, float(np.abs(ref).max()))


def test_cheap_fresh_memory_keeps_a_large_conversion_in_process(tmp_path, monkeypatch):
    """Over the size threshold, the child is started only where a fresh page of memory is
    expensive (``fresh_page_cost_us`` at or over ``_CHILD_MIN_PAGE_US``); where it is cheap,
    TF's in-process call converts (no process started): the same file either way."""
    import subprocess

    import transpiler.tflite as tflite

    cost = tflite.fresh_page_cost_us()
    assert cost is not None and 0.0 < cost < 1e4
    concrete = _conv_block_concrete(tmp_path)
    monkeypatch.setattr(tflite, "_CHILD_MIN_BYTES", 0)
    results = _record_child_results(monkeypatch)
    monkeypatch.setattr(tflite, "fresh_page_cost_us", lambda: 10.0)
    in_child = tflite.convert(concrete)
    assert len(results) == 1 and results[0] == in_child  # expensive pages: the child's file
    started = []
    real_popen = subprocess.Popen

    def popen(*args, **kwargs):
        started.append(args)
        return real_popen(*args, **kwargs)

    monkeypatch.setattr(subprocess, "Popen", popen)
    monkeypatch.setattr(tflite, "fresh_page_cost_us", lambda: 1.0)
    results.clear()
    in_process = tflite.convert(concrete)
    assert results == [None] and not started  # cheap pages: no child
    assert in_process == in_child
    monkeypatch.setattr(tflite, "fresh_page_cost_us", lambda: None)  # no measurement
    results.clear()
    assert tflite.convert(concrete) == in_child and results == [None] and not started


def tf_constant(x):
    import tensorflow as tf

    return tf.constant(x)


@pytest.mark.parametrize("failure", ["exits", "garbage", "no_python", "conversion_error"])
def test_a_failing_child_falls_back_to_tfs_own_conversion(tmp_path, monkeypatch, failure):
    """Whatever goes wrong in the child (it exits, it answers garbage, no interpreter to start
    it, the converter raises there), TF's in-process call converts instead: same file; and the
    hook passes calls made outside ``convert`` to TF's function untouched."""
    import sys

    import transpiler.tflite as tflite

    concrete = _conv_block_concrete(tmp_path)
    monkeypatch.setattr(tflite, "convert_in_child", lambda *parts: None)
    expected = tflite.convert(concrete)
    monkeypatch.undo()
    monkeypatch.setattr(tflite, "_CHILD_MIN_BYTES", 0)
    monkeypatch.setattr(tflite, "_CHILD_MIN_PAGE_US", 0.0)
    script = tmp_path / "child.py"
    if failure == "exits":
        script.write_text("import sys\nsys.exit(1)\n")
        monkeypatch.setattr(tflite, "_CHILD_SCRIPT", script)
    elif failure == "garbage":
        script.write_text("import sys\nsys.stdout.buffer.write(b'T' + b'\\xff' * 8)\n")
        monkeypatch.setattr(tflite, "_CHILD_SCRIPT", script)
    elif failure == "no_python":
        monkeypatch.setattr(sys, "executable", str(tmp_path / "no-such-python"))
    calls = []
    original = tflite.convert_in_child

    def counted(*parts):
        if failure == "conversion_error":  # the child's converter rejects the GraphDef
            parts = (parts[0], parts[1], b"not a GraphDef", parts[3])
        calls.append(original(*parts))
        return calls[-1]

    monkeypatch.setattr(tflite, "convert_in_child", counted)
    assert tflite.convert(concrete) == expected
    assert calls == [None]
    # outside ``convert`` the hook is TF's own function
    from tensorflow.compiler.mlir.lite.python import wrap_converter

    assert getattr(wrap_converter.wrapped_convert, "_transpiler_child", False)
    monkeypatch.setattr(tflite, "convert_in_child", lambda *parts: pytest.fail("child used"))
    with pytest.raises(Exception):  # noqa: B017 - TF's own error for a bad GraphDef
        wrap_converter.wrapped_convert(b"", b"", b"not a GraphDef", None)


@pytest.mark.slow
def test_a_model_over_the_threshold_converts_in_the_child_exactly(tmp_path, monkeypatch):
    """A real model over ``_CHILD_MIN_BYTES`` (an MLP of 96 MB of weights) goes through the child
    at the default size threshold where fresh memory is expensive: same bytes as TF's
    in-process call, and ``to_tflite``'s file meets the check against PyTorch at both batch
    sizes."""
    import transpiler.tflite as tflite

    monkeypatch.setattr(tflite, "fresh_page_cost_us", lambda: 10.0)

    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(256, 4096), nn.GELU(), nn.Linear(4096, 4096), nn.GELU(), nn.Linear(4096, 1024)
    ).eval()
    assert sum(p.numel() for p in model.parameters()) * 4 > tflite._CHILD_MIN_BYTES
    result = transpile(model, torch.randn(2, 256), out_dir=tmp_path / "out")
    results = _record_child_results(monkeypatch)
    path = result.to_tflite(tmp_path / "model.tflite")
    assert len(results) == 1 and results[0] == path.read_bytes()
    assert all(c.ok for c in result.report.tflite[-1].checks)
    assert len({c.batch_size for c in result.report.tflite[-1].checks}) == 2
    monkeypatch.setattr(tflite, "convert_in_child", lambda *parts: None)
    assert tflite.convert(result.concrete_function()) == path.read_bytes()
