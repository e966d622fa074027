"""Ultralytics YOLO (built from its yaml, random weights): detection (YOLOv8n, YOLO11n) and
classification (YOLO11n-cls) at 320x320, image in NHWC, outputs as forward() returns them in
PyTorch's layout. fx cannot trace them; the torch.export path does, and the Detect head's anchor
grid (computed from static feature-map shapes) folds into a constant."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import assert_checks_ok, randomize_bn

from transpiler import transpile
from transpiler.tflite import run_tflite

tasks = pytest.importorskip("ultralytics.nn.tasks")


def _yolo(cfg: str):
    torch.manual_seed(0)
    cls = tasks.ClassificationModel if "cls" in cfg else tasks.DetectionModel
    return randomize_bn(cls(cfg, verbose=False)).eval()


def _flat(out):
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, dict):
        out = list(out.values())
    return [t for o in out for t in _flat(o)]


# the structured source (the default) in the default run; the flat form in the slow one
STRUCTURES = ["modules", pytest.param("flat", marks=pytest.mark.slow)]


@pytest.mark.parametrize("structure", STRUCTURES)
@pytest.mark.parametrize("cfg", ["yolov8n.yaml", "yolo11n.yaml", "yolo11n-cls.yaml"])
def test_yolo_keras_and_tflite(cfg, structure, tmp_path):
    model = _yolo(cfg)
    x = torch.randn(1, 3, 320, 320)
    result = transpile(
        model, x, io_layout=("nhwc", "nchw"), out_dir=tmp_path / "out", structure=structure
    )
    assert_checks_ok(result)
    assert result.report.tracer == "torch.export"
    source = result.source_path.read_text()
    assert len(source.splitlines()) < 1000, "the generated file must stay reviewable"
    # layers named after the PyTorch module paths, in both forms
    assert result.keras_model().get_layer("model_0_conv") is not None
    if structure == "flat":
        assert 'name="model_0_conv"' in source
        assert "model.0.conv (Conv2d) + model.0.bn (BatchNorm2d, folded)" in source
    else:  # one function per Ultralytics block class, called per instance
        assert "def conv(" in source and 'name="model_0"' in source
        assert "# torch: conv (Conv2d) + bn (BatchNorm2d, folded)" in source
        assert len(source.splitlines()) < 420

    # another batch: the contract's bound, and 1e-3 relative to each output's own magnitude
    # (random-weight heads can give outputs far below 1, where the contract's bound is loose)
    x3 = torch.randn(3, 3, 320, 320)
    with torch.no_grad():
        refs = [r.numpy() for r in _flat(model(x3))]
    outs = result.load()(x3.permute(0, 2, 3, 1).numpy())
    outs = outs if isinstance(outs, tuple) else (outs,)
    for y, ref in zip(outs, refs, strict=True):
        assert y.shape == ref.shape
        err, peak = float(np.abs(y - ref).max()), float(np.abs(ref).max())
        assert err <= 1e-4 * max(1.0, peak) and err <= 1e-3 * peak + 1e-12, (err, peak)

    path = result.to_tflite(tmp_path / "model.tflite")
    tfl = run_tflite(path.read_bytes(), [x3.permute(0, 2, 3, 1).numpy()])
    for y, ref in zip(tfl, refs, strict=True):
        assert np.abs(y - ref).max() <= 1e-4 * max(1.0, float(np.abs(ref).max()))


def test_yolo11n_tf_backend(tmp_path):
    model = _yolo("yolo11n.yaml")
    anchors = model.model[-1].anchors.clone()
    result = transpile(
        model,
        torch.randn(1, 3, 320, 320),
        backend="tf",
        io_layout=("nhwc", "nchw"),
        out_dir=tmp_path / "out",
    )
    assert_checks_ok(result)
    # tracing ran on a copy: the user's Detect head did not cache anchors for this size
    assert torch.equal(model.model[-1].anchors, anchors)
