"""The generated model.py on Keras' PyTorch backend: the same file, other numbers engine.

Models chosen to exercise the custom layers that touch shapes and dtypes (batch-merging
reshapes, resize with computed indices and keras.layers.Resizing, dilated convs, attention,
per-sample and grouped transposed convs, adaptive pooling, padding modes, grid sampling,
bicubic/area resize, roll, cropping). Each runs in one fresh process with KERAS_BACKEND=torch.
(JAX, not a dependency here, was checked by hand: see the README.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from ops.cases import _CondConv
from torch import nn

from transpiler import transpile

RUNNER = """
import importlib.util, json, sys
import numpy as np
import keras
assert keras.backend.backend() == "torch", keras.backend.backend()
for item in json.loads(sys.argv[1]):
    spec = importlib.util.spec_from_file_location("m", item["source"])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    y = module.load_model()(np.load(item["x"]), training=False)
    y = y[0] if isinstance(y, (list, tuple)) else y
    np.save(item["y"], keras.ops.convert_to_numpy(y))
"""


class Mixed(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1, padding_mode="reflect")
        self.up = nn.ConvTranspose2d(8, 8, 3, stride=2, padding=1, output_padding=1, groups=2)
        self.pool = nn.AdaptiveAvgPool2d((3, 5))
        self.ln = nn.LayerNorm(8)
        self.dilated = nn.Conv2d(8, 8, 3, padding=2, dilation=2, groups=8)

    def forward(self, x):
        y = self.up(self.conv(x))
        y = F.interpolate(self.dilated(y), scale_factor=2, mode="nearest")  # layers.Resizing
        y = F.interpolate(y, size=(11, 13), mode="bilinear", align_corners=False)
        y = self.ln(y.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        grid = torch.tanh(y[:, :2] * 0.3).permute(0, 2, 3, 1) * 1.2
        y = y + F.grid_sample(y, grid, "bilinear", "reflection", True)
        y = y + F.grid_sample(y, grid, "nearest", "zeros", False)
        return self.pool(F.pad(y, (1, 2, 0, 1), mode="replicate"))


class Resample(nn.Module):
    """Bicubic resize, roll (slices + concat), a crop by negative padding and area resize."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)

    def forward(self, x):
        y = F.interpolate(self.conv(x), size=(11, 13), mode="bicubic")
        y = F.pad(torch.roll(y, (2, -3), (2, 3)), (-1, 2, 1, -2))
        return F.interpolate(y, size=(4, 5), mode="area")


def _models():
    vit = torchvision.models.VisionTransformer(
        image_size=32, patch_size=8, num_layers=2, num_heads=4, hidden_dim=32, mlp_dim=64
    )
    with torch.no_grad():
        for p in vit.parameters():
            if p.numel() > 1 and not p.any():
                p.normal_(0, 0.05)
    return {
        "mixed": (Mixed(), (3, 16, 18)),
        "resample": (Resample(), (3, 9, 10)),
        "vit-mini": (vit, (3, 32, 32)),
        "condconv": (_CondConv(), (4, 9, 10)),
        "shufflenet": (torchvision.models.shufflenet_v2_x0_5(), (3, 64, 64)),
    }


def test_generated_modules_run_on_the_torch_backend(tmp_path):
    torch.manual_seed(0)
    items, expected = [], {}
    for name, (model, shape) in _models().items():
        model.eval()
        out = tmp_path / name
        result = transpile(model, torch.randn(1, *shape), io_layout="nhwc", out_dir=out)
        x = torch.randn(3, *shape)
        with torch.no_grad():
            ref = model(x).numpy()
        expected[name] = ref.transpose(0, 2, 3, 1) if ref.ndim == 4 else ref
        np.save(out / "x.npy", x.permute(0, 2, 3, 1).numpy())
        items.append(
            {"source": str(result.source_path), "x": str(out / "x.npy"), "y": str(out / "y.npy")}
        )
    env = dict(os.environ, KERAS_BACKEND="torch", TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run(
        [sys.executable, "-c", RUNNER, json.dumps(items)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    for item, (name, ref) in zip(items, expected.items(), strict=True):
        y = np.load(item["y"])
        bound = 1e-4 * max(1.0, float(np.abs(ref).max()))
        assert y.shape == ref.shape and np.abs(y - ref).max() <= bound, name


def test_generated_modules_run_under_mixed_precision(tmp_path):
    """Fine-tuning in mixed precision: the generated custom layers (LayerNorm, Resize,
    GridSample, ...) follow the dtype policy (float16 compute, float32 weights) like Keras' own
    layers, within float16's precision of PyTorch."""
    import keras
    from transpiler.backends.keras_source import import_module_from

    torch.manual_seed(0)
    for name, (model, shape) in _models().items():
        model.eval()
        result = transpile(model, torch.randn(1, *shape), io_layout="nhwc", out_dir=tmp_path / name)
        x = torch.randn(3, *shape)
        with torch.no_grad():
            ref = model(x).numpy()
        ref = ref.transpose(0, 2, 3, 1) if ref.ndim == 4 else ref
        module = import_module_from(result.source_path)
        keras.mixed_precision.set_global_policy("mixed_float16")
        try:
            y = module.load_model(str(result.weights_path))(x.permute(0, 2, 3, 1).numpy())
        finally:
            keras.mixed_precision.set_global_policy("float32")
        assert y.dtype == "float16", name
        bound = 1e-2 * max(1.0, float(np.abs(ref).max()))
        assert np.abs(np.asarray(y, np.float32) - ref).max() <= bound, name
