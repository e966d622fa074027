"""The Keras backend's build and weights file (backends/keras_source/weights.py).

write_keras builds the model with Keras' deferred variable initialization (no random
initializers) and writes the weights through Keras' own walk without copying the variables.
Both must give exactly what the public path gives (build_model + set_weights + save_weights):
the same variables, and a .weights.h5 with the same groups, attributes, dataset paths, dtypes,
shapes and bytes, that a fresh build_model() loads bit for bit. The public path is forced
here by switching the two fast paths off, which is also how the fallback runs.
"""

from __future__ import annotations

import threading

import h5py
import numpy as np
import pytest
import torch
from helpers import randomize_bn, tiny_bert
from test_structure import Net
from torch import nn

from transpiler import TranspileError, transpile


def _keras():
    from transpiler._hygiene import import_keras

    import_keras()
    import keras

    return keras


class ConvBn(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, padding=1)
        self.bn = nn.BatchNorm2d(6)
        self.head = nn.Linear(6 * 8 * 8, 4)

    def forward(self, x):
        return self.head(torch.relu(self.bn(self.conv(x))).flatten(1))


class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.layer = nn.TransformerEncoderLayer(16, 2, dim_feedforward=32, batch_first=True)
        self.norm = nn.LayerNorm(16)

    def forward(self, x):
        return self.norm(self.layer(x))


class Recurrent(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(6, 8, num_layers=2, batch_first=True)
        self.fc = nn.Linear(8, 3)

    def forward(self, x):
        return self.fc(self.lstm(x)[0])


CASES = {
    # BatchNorm kept: non-trainable moving statistics after the trainable weights
    "cnn_batchnorm": (ConvBn, (2, 3, 8, 8), {"fold_batchnorm": False}),
    "transformer": (Encoder, (2, 5, 16), {}),
    "lstm": (Recurrent, (2, 7, 6), {}),
    "nested_modules": (Net, (2, 3, 16, 16), {"structure": "modules"}),
    "nested_flat": (Net, (2, 3, 16, 16), {"structure": "flat"}),
}


def _h5_tree(path):
    """Every group and dataset: path -> (attributes, dtype, shape, bytes)."""
    tree = {}
    with h5py.File(path, "r") as f:
        tree[""] = (sorted((k, str(v)) for k, v in f.attrs.items()), None, None, None)

        def visit(name, obj):
            attrs = sorted((k, str(v)) for k, v in obj.attrs.items())
            if isinstance(obj, h5py.Dataset):
                data = obj[()]
                tree[name] = (attrs, data.dtype.str, data.shape, data.tobytes())
            else:
                tree[name] = (attrs, None, None, None)

        f.visititems(visit)
    return tree


def _public_path(monkeypatch):
    from transpiler.backends.keras_source import weights

    monkeypatch.setattr(weights, "_deferred_init_supported", lambda: False)
    monkeypatch.setattr(weights, "_fast_store_supported", lambda: False)


def _spy_fast_paths(monkeypatch):
    from transpiler.backends.keras_source import weights

    ran = []
    defer, walk = weights._defer_weights, weights._save_with_keras_walk

    def spy_defer(*args):
        done = defer(*args)
        ran.append("deferred" if done else "not deferred")
        return done

    def spy_walk(*args):
        walk(*args)
        ran.append("walk")

    monkeypatch.setattr(weights, "_defer_weights", spy_defer)
    monkeypatch.setattr(weights, "_save_with_keras_walk", spy_walk)
    return ran


def _both_paths(model, x, tmp_path, monkeypatch, verify=False, **kwargs):
    """Transpile with the fast paths and with the public one; check the two weights files and
    models are the same, and a fresh build_model() + load_weights reads the file bit for bit."""
    with monkeypatch.context() as patch:
        ran = _spy_fast_paths(patch)
        fast = transpile(model, x, out_dir=tmp_path / "fast", verify=verify, **kwargs)
    assert ran == ["deferred", "walk"]  # the fast paths ran, not their fallbacks
    with monkeypatch.context() as patch:
        _public_path(patch)
        public = transpile(model, x, out_dir=tmp_path / "public", verify=False, **kwargs)
    assert fast.source_path.read_text() == public.source_path.read_text()  # model.py unchanged

    fast_tree = _h5_tree(fast.out_dir / "model.weights.h5")
    public_tree = _h5_tree(public.out_dir / "model.weights.h5")
    assert list(fast_tree) == list(public_tree)  # same paths, in the same order
    assert fast_tree == public_tree  # attributes, dtypes, shapes, bytes
    assert any(v[1] is not None for v in fast_tree.values())  # weights were written

    # the in-memory models (the ones verify runs) hold the same values
    in_memory = [v.numpy() for v in fast._written.model.weights]
    expected = [v.numpy() for v in public._written.model.weights]
    assert len(in_memory) == len(expected) > 0
    for a, b in zip(in_memory, expected, strict=True):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    # a fresh build_model() + load_weights reads them back bit for bit
    loaded = fast.keras_model()
    for a, b in zip(loaded.weights, expected, strict=True):
        assert np.array_equal(a.numpy(), b)
    return fast


@pytest.mark.parametrize("case", sorted(CASES))
def test_weights_file_and_model_match_keras_public_path(tmp_path, monkeypatch, case):
    factory, shape, kwargs = CASES[case]
    torch.manual_seed(0)
    model = randomize_bn(factory().eval())
    x = torch.randn(*shape)
    fast = _both_paths(model, x, tmp_path, monkeypatch, **kwargs)
    with torch.no_grad():
        ref = model(x).numpy()
    out = fast.load()(x.numpy())
    assert np.abs(out - ref).max() <= 1e-4 * max(1.0, float(np.abs(ref).max()))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["resnet50", "bert"])
def test_large_models_weights_match_keras_public_path(tmp_path, monkeypatch, name):
    """resnet50 (100 MB of weights) and an HF BERT from a small config (embeddings, attention,
    LayerNorm); the fast transpile is also verified against PyTorch."""
    torch.manual_seed(0)
    if name == "resnet50":
        import torchvision

        model = randomize_bn(torchvision.models.resnet50(weights=None).eval())
        x = torch.randn(1, 3, 224, 224)
    else:
        model = tiny_bert().eval()
        ids = torch.randint(0, 100, (2, 9))
        x = (ids, torch.ones(2, 9, dtype=torch.long))
    fast = _both_paths(model, x, tmp_path, monkeypatch, verify=True)
    assert fast.report.checks and all(c.ok for c in fast.report.checks)


def _tiny_build(keras, seen):
    """A build_model() that, while it runs (inside write_keras' scope), lets another thread
    build its own model; ``seen`` records what that thread saw."""

    def other_thread():
        from keras.src.backend.common.stateless_scope import in_stateless_scope

        seen["in_scope"] = in_stateless_scope()
        layer = keras.layers.Dense(3, kernel_initializer="ones")
        layer.build((None, 2))
        seen["kernel"] = layer.kernel.numpy()  # has a value at once: Keras' own initializer

    def build_model():
        thread = threading.Thread(target=other_thread)
        thread.start()
        thread.join()
        inputs = keras.Input(shape=(2,))
        outputs = keras.layers.Dense(3, name="fc")(inputs)
        return keras.Model(inputs, outputs)

    return build_model


def test_deferred_build_is_thread_local():
    keras = _keras()
    from transpiler.backends.keras_source.weights import build_with_weights

    seen = {}
    kernel = np.arange(6, dtype=np.float32).reshape(2, 3)
    bias = np.array([1, 2, 3], dtype=np.float32)
    layer_weights = {"fc": [kernel, bias]}
    model = build_with_weights(_tiny_build(keras, seen), layer_weights)
    assert seen == {"in_scope": False, "kernel": seen["kernel"]}
    np.testing.assert_array_equal(seen["kernel"], np.ones((2, 3), np.float32))
    assert layer_weights == {}  # consumed
    fc = model.get_layer("fc")
    assert np.array_equal(fc.kernel.numpy(), kernel) and np.array_equal(fc.bias.numpy(), bias)
    # nothing is left waiting in this thread's Keras state
    from keras.src.backend.common import global_state
    from keras.src.backend.common.stateless_scope import in_stateless_scope

    assert not in_stateless_scope()
    assert not global_state.get_global_attribute("uninitialized_variables")


def test_fallback_when_variables_already_have_values(tmp_path):
    """Inside a caller's own StatelessScope, or with variables that have values, the public
    path runs (set_weights) and gives the same model."""
    keras = _keras()
    from transpiler.backends.keras_source import weights

    def build_model():
        inputs = keras.Input(shape=(2,))
        return keras.Model(inputs, keras.layers.Dense(3, name="fc")(inputs))

    kernel = np.full((2, 3), 0.5, np.float32)
    bias = np.zeros(3, np.float32)
    eager = build_model()
    layer_weights = {"fc": [kernel, bias]}
    assert weights._defer_weights(eager, layer_weights) is False  # already initialized
    assert layer_weights == {"fc": [kernel, bias]}  # untouched
    with keras.StatelessScope():
        assert weights._deferred_init_supported() is False
    model = weights.build_with_weights(build_model, layer_weights)
    assert np.array_equal(model.get_layer("fc").kernel.numpy(), kernel)


@pytest.mark.parametrize("deferred", [True, False])
def test_shape_mismatch_is_a_transpile_error(monkeypatch, deferred):
    keras = _keras()
    from transpiler.backends.keras_source import weights

    if not deferred:
        monkeypatch.setattr(weights, "_deferred_init_supported", lambda: False)

    def build_model():
        inputs = keras.Input(shape=(2,))
        return keras.Model(inputs, keras.layers.Dense(3, name="fc")(inputs))

    bad = {"fc": [np.zeros((3, 2), np.float32), np.zeros(3, np.float32)]}
    with pytest.raises(TranspileError, match="weights for Keras layer fc"):
        weights.build_with_weights(build_model, bad)


def test_save_weights_leaves_no_keras_state_behind(tmp_path):
    """The per-type skip-set cache is seeded for one walk only; the file loads back."""
    keras = _keras()
    from keras.src.backend.common import global_state
    from transpiler.backends.keras_source import weights

    inputs = keras.Input(shape=(4,))
    model = keras.Model(inputs, keras.layers.Dense(2, name="fc")(inputs))
    keys = [t.format(o) for t in weights._SKIPSET_KEYS for o in weights._SKIPSET_TYPES]
    before = {k: global_state.get_global_attribute(k) for k in keys}
    weights.save_weights(model, tmp_path / "m.weights.h5")
    assert {k: global_state.get_global_attribute(k) for k in keys} == before
    fresh_in = keras.Input(shape=(4,))
    fresh = keras.Model(fresh_in, keras.layers.Dense(2, name="fc")(fresh_in))
    fresh.load_weights(str(tmp_path / "m.weights.h5"))
    for a, b in zip(fresh.weights, model.weights, strict=True):
        assert np.array_equal(a.numpy(), b.numpy())
