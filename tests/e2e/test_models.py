"""Real models end to end: torchvision classifiers and a YOLOv5-style stem, in both layouts."""

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
    count_bn_layers,
    graph_ops,
    iter_keras_layers,
    random_inputs,
    randomize_bn,
    stable_seed,
    torch_reference,
)
from torch import nn

from transpiler import transpile


def yolo_block() -> nn.Module:
    """YOLOv5's Conv: Conv2d(k=3, s=2, p=1, no bias) + BatchNorm2d + SiLU (trap 1 on even sizes)."""
    return nn.Sequential(
        nn.Conv2d(3, 16, kernel_size=3, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(16),
        nn.SiLU(),
    )


# name -> (factory, input shape without batch)
MODELS = {
    "resnet18": (lambda: torchvision.models.resnet18(weights=None), (3, 64, 64)),
    "resnet18-65": (lambda: torchvision.models.resnet18(weights=None), (3, 65, 65)),
    "mobilenet_v2": (lambda: torchvision.models.mobilenet_v2(weights=None), (3, 64, 64)),
    # 66x66: each of SqueezeNet's three ceil_mode max pools rounds up (32 -> 16 -> 8 -> 4).
    "squeezenet1_1": (lambda: torchvision.models.squeezenet1_1(weights=None), (3, 66, 66)),
    "yolo_block-64": (yolo_block, (3, 64, 64)),
    "yolo_block-65": (yolo_block, (3, 65, 65)),
    # Full-size inputs (224: trap 1's even size), numerics only.
    "resnet18-224": (lambda: torchvision.models.resnet18(weights=None), (3, 224, 224)),
    "mobilenet_v2-224": (lambda: torchvision.models.mobilenet_v2(weights=None), (3, 224, 224)),
}
FULL_SIZE = [name for name in MODELS if name.endswith("-224")]
FAST = [name for name in MODELS if name not in FULL_SIZE]
WITH_BN = [name for name in FAST if name != "squeezenet1_1"]  # SqueezeNet has no BatchNorm


class Transpiled:
    """A model, its example input and the transpile result (or the error transpile raised)."""

    def __init__(self, name: str, io_layout: str, out_dir, fold_batchnorm: bool = True):
        make, self.shape = MODELS[name]
        self.seed = stable_seed(name)
        torch.manual_seed(self.seed)
        self.model = randomize_bn(make(), seed=self.seed).eval()
        self.io_layout = io_layout
        (self.example,) = random_inputs([self.shape], batch=1, seed=self.seed)
        self.error: BaseException | None = None
        try:
            self.result = transpile(
                self.model,
                self.example,
                io_layout=io_layout,
                out_dir=out_dir,
                fold_batchnorm=fold_batchnorm,
            )
        except Exception as exc:  # reported by every test that uses it
            self.error = exc

    def get(self):
        if self.error is not None:
            raise self.error
        return self.result


@pytest.fixture(scope="module")
def transpiled(tmp_path_factory):
    """transpiled(name, io_layout, fold_batchnorm=True): transpiled once per module."""
    cache: dict[tuple, Transpiled] = {}

    def get(name: str, io_layout: str, fold_batchnorm: bool = True) -> Transpiled:
        key = (name, io_layout, fold_batchnorm)
        if key not in cache:
            out_dir = tmp_path_factory.mktemp(f"{name}-{io_layout}-{fold_batchnorm}")
            cache[key] = Transpiled(name, io_layout, out_dir, fold_batchnorm)
        return cache[key]

    return get


def n_torch_bn(model: nn.Module) -> int:
    return sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


@pytest.mark.parametrize("io_layout", LAYOUTS)
@pytest.mark.parametrize("name", FAST + FULL_SIZE)
def test_numerics(transpiled, name, io_layout):
    t = transpiled(name, io_layout)
    result = t.get()
    assert_checks_ok(result)
    fn = result.load()
    check_against_torch(t.model, t.example, fn, io_layout)  # the example batch (1)
    (batch3,) = random_inputs([t.shape], batch=3, seed=t.seed + 1)
    check_against_torch(t.model, batch3, fn, io_layout)


@pytest.mark.parametrize("io_layout", LAYOUTS)
@pytest.mark.parametrize("name", FAST)
def test_transpose_count(transpiled, name, io_layout):
    t = transpiled(name, io_layout)
    result = t.get()
    if io_layout == "nhwc":
        expected = 0
    else:  # one per rank-4 input/output: 1 for the classifiers ((N, 1000) out), 2 for the block
        expected = boundary_transposes([t.example], torch_reference(t.model, [t.example]))
    assert result.report.transpose_count == expected, str(result.report)


@pytest.mark.parametrize("io_layout", LAYOUTS)
@pytest.mark.parametrize("name", WITH_BN)
def test_batchnorm_folded(transpiled, name, io_layout):
    t = transpiled(name, io_layout)
    result = t.get()
    assert n_torch_bn(t.model) > 0
    assert "batch_norm" not in graph_ops(result)
    keras_model = result.keras_model()
    assert count_bn_layers(keras_model) == 0
    c, h, w = t.shape
    expected_input = (None, c, h, w) if io_layout == "nchw" else (None, h, w, c)
    assert tuple(keras_model.inputs[0].shape) == expected_input


def _check_unfolded(t: Transpiled):
    result = t.get()
    assert_checks_ok(result)
    assert graph_ops(result).count("batch_norm") == n_torch_bn(t.model)
    keras_model = result.keras_model()
    assert count_bn_layers(keras_model) == n_torch_bn(t.model)
    fn = result.load()
    check_against_torch(t.model, t.example, fn, t.io_layout)
    (batch3,) = random_inputs([t.shape], batch=3, seed=t.seed + 2)
    check_against_torch(t.model, batch3, fn, t.io_layout)
    return keras_model


@pytest.mark.parametrize("io_layout", LAYOUTS)
def test_fold_batchnorm_false_yolo_block(transpiled, io_layout):
    import keras

    t = transpiled("yolo_block-64", io_layout, fold_batchnorm=False)
    keras_model = _check_unfolded(t)

    # The kept layer carries PyTorch's statistics and semantics (eps 1e-5, momentum 0.1 <-> 0.9).
    (bn,) = [
        layer
        for layer in iter_keras_layers(keras_model)
        if isinstance(layer, keras.layers.BatchNormalization)
    ]
    torch_bn = t.model[1]
    assert bn.epsilon == pytest.approx(torch_bn.eps)
    assert bn.momentum == pytest.approx(1 - torch_bn.momentum)
    weights = [np.asarray(w) for w in bn.get_weights()]
    for buffer in (torch_bn.running_mean, torch_bn.running_var, torch_bn.weight, torch_bn.bias):
        expected = buffer.detach().numpy()
        assert any(w.shape == expected.shape and np.allclose(w, expected) for w in weights)

    # ... and the model trains: one SGD step on random targets runs and changes the weights.
    before = [np.array(w) for w in keras_model.get_weights()]
    x = np.asarray(np.random.randn(4, *keras_model.inputs[0].shape[1:]), dtype=np.float32)
    y = np.asarray(np.random.randn(*keras_model(x).shape), dtype=np.float32)
    keras_model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
    keras_model.fit(x, y, epochs=1, batch_size=4, verbose=0)
    after = keras_model.get_weights()
    assert any(not np.array_equal(b, a) for b, a in zip(before, after, strict=True))


@pytest.mark.parametrize("io_layout", LAYOUTS)
@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2"])
def test_fold_batchnorm_false_classifiers(transpiled, name, io_layout):
    _check_unfolded(transpiled(name, io_layout, fold_batchnorm=False))
