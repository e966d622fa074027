"""backend="tf" end to end: real models lowered to TF ops, saved as a SavedModel, reloaded in a
fresh ``tf.saved_model.load`` and compared with PyTorch (and through the ``serving_default``
signature, which is what TF Serving calls)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision
from helpers import (
    LAYOUTS,
    assert_checks_ok,
    boundary_transposes,
    check_against_torch,
    random_inputs,
    randomize_bn,
    stable_seed,
    torch_reference,
)
from test_models import yolo_block
from torch import nn

from transpiler import TranspileError, transpile

MODELS = {
    "resnet18": (lambda: torchvision.models.resnet18(weights=None), (3, 224, 224)),
    "mobilenet_v2": (lambda: torchvision.models.mobilenet_v2(weights=None), (3, 224, 224)),
    "yolo_block-64": (yolo_block, (3, 64, 64)),
    "yolo_block-65": (yolo_block, (3, 65, 65)),
}


def _model(name: str):
    make, shape = MODELS[name]
    seed = stable_seed(name, "tf")
    torch.manual_seed(seed)
    model = randomize_bn(make(), seed=seed).eval()
    return model, shape, seed


@pytest.mark.parametrize("io_layout", LAYOUTS)
@pytest.mark.parametrize("name", sorted(MODELS))
def test_tf_backend_matches_torch(name, io_layout, tmp_path):
    import tensorflow as tf

    model, shape, seed = _model(name)
    (x1,) = random_inputs([shape], batch=1, seed=seed)
    result = transpile(model, x1, backend="tf", io_layout=io_layout, out_dir=tmp_path / "out")
    assert_checks_ok(result)
    assert result.backend == "tf" and result.source_path is None
    assert sorted(p.name for p in result.out_dir.iterdir()) == ["report.md", "saved_model"]
    # 1 boundary transpose per rank-4 tensor in nchw, none in nhwc
    expected = boundary_transposes([x1], torch_reference(model, [x1]))
    assert result.report.transpose_count == (expected if io_layout == "nchw" else 0)
    assert not any(n.op == "batch_norm" for n in result.graph.nodes)

    fn = result.load()
    (x4,) = random_inputs([shape], batch=4, seed=seed + 1)
    check_against_torch(model, x4, fn, io_layout)

    # the serving signature (keyword input, dict output), loaded without this package's help
    loaded = tf.saved_model.load(str(result.saved_model_path))
    sig = loaded.signatures["serving_default"]
    (key,) = sig.structured_input_signature[1]
    arr = x4.numpy() if io_layout == "nchw" else x4.permute(0, 2, 3, 1).numpy()
    y = sig(**{key: tf.constant(arr)})["output_0"].numpy()
    np.testing.assert_allclose(y, fn(arr), rtol=0, atol=1e-6)


def test_tf_backend_names_ops_after_modules(tmp_path):
    model, shape, seed = _model("resnet18")
    (x,) = random_inputs([shape], batch=1, seed=seed)
    result = transpile(model, x, backend="tf", out_dir=tmp_path / "out")
    graph_def = result.concrete_function().graph.as_graph_def()
    # the ops sit in the graph itself (the in-memory function) or in its function library
    # (a reloaded SavedModel's call wrapper)
    nodes = [*graph_def.node, *(n for f in graph_def.library.function for n in f.node_def)]
    names = {n.name.split("/")[0] for n in nodes}
    assert {"layer1_0_conv1", "layer4_1_conv2", "fc"} <= names, sorted(names)[:40]
    # report: module -> TF op scopes (folded BatchNorms map to their conv's scope)
    assert result.report.module_layers["layer1.0.bn1"] == ["layer1_0_conv1"]
    with pytest.raises(TranspileError, match="no Keras model"):
        result.keras_model()


def test_tf_backend_fold_batchnorm_false(tmp_path):
    model, shape, seed = _model("yolo_block-65")
    (x,) = random_inputs([shape], batch=2, seed=seed)
    result = transpile(model, x, backend="tf", fold_batchnorm=False, out_dir=tmp_path / "out")
    assert_checks_ok(result)
    assert result.report.batchnorm_layers == 1


def test_tf_backend_replaces_its_own_saved_model_only(tmp_path):
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
    x = torch.randn(1, 3, 8, 8)
    out = tmp_path / "out"
    transpile(model, x, backend="tf", out_dir=out)
    transpile(model, x, backend="tf", out_dir=out)  # a second run replaces the SavedModel
    (out / "notes.txt").write_text("mine")
    other = tmp_path / "other"
    (other / "saved_model").mkdir(parents=True)
    (other / "saved_model" / "mine.txt").write_text("keep")
    with pytest.raises(TranspileError, match="not a SavedModel"):
        transpile(model, x, backend="tf", out_dir=other)
    assert (other / "saved_model" / "mine.txt").read_text() == "keep"
    assert (out / "notes.txt").read_text() == "mine"
