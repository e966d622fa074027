"""TFLite export from both backends: builtin ops only (no Flex), dynamic batch, checked against
PyTorch."""

from __future__ import annotations

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
