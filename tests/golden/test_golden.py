"""Golden text for the emitted Keras source: the generated model.py, byte for byte.

Regenerate after an intended change with `UPDATE_GOLDEN=1 python -m pytest tests/golden` and
review the diff like any code change.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
import torch.nn as nn
from helpers import randomize_bn

from transpiler import transpile

HERE = Path(__file__).parent


class YoloConv(nn.Module):
    """YOLOv5's Conv: Conv2d(k, s, padding=k//2, bias=False) + BatchNorm2d + SiLU."""

    def __init__(self, c1, c2, k=1, s=1):
        super().__init__()
        self.conv = nn.Conv2d(c1, c2, k, s, k // 2, bias=False)
        self.bn = nn.BatchNorm2d(c2)
        self.act = nn.SiLU()

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))


class TinyNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = YoloConv(3, 8, 3, 2)
        self.block = YoloConv(8, 8, 3, 1)
        self.pool = nn.MaxPool2d(3, 2, 1)
        self.head = nn.Linear(8 * 8 * 8, 10)

    def forward(self, x):
        y = self.stem(x)
        y = self.pool(y + self.block(y))
        return torch.softmax(self.head(torch.flatten(y, 1)), dim=1)


class BasicBlock(nn.Module):
    """A CNN block: ResNet's BasicBlock with a downsample branch where the shape changes."""

    def __init__(self, c1, c2, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(c1, c2, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c2)
        self.conv2 = nn.Conv2d(c2, c2, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c2)
        self.downsample = None
        if stride != 1 or c1 != c2:
            self.downsample = nn.Sequential(
                nn.Conv2d(c1, c2, 1, stride, bias=False), nn.BatchNorm2d(c2)
            )

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        y = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(y)) + identity)


class CnnBlocks(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.layer1 = nn.Sequential(BasicBlock(8, 8), BasicBlock(8, 16, 2), BasicBlock(16, 16))

    def forward(self, x):
        return self.layer1(self.stem(x))


class TransformerBlock(nn.Module):
    """A pre-norm transformer block (ViT's EncoderBlock)."""

    def __init__(self, dim=16, heads=2):
        super().__init__()
        self.ln_1 = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.ln_2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

    def forward(self, x):
        y = self.ln_1(x)
        x = x + self.attn(y, y, y, need_weights=False)[0]
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):
    def __init__(self):
        super().__init__()
        self.class_token = nn.Parameter(torch.randn(1, 1, 16))
        self.blocks = nn.Sequential(TransformerBlock(), TransformerBlock())

    def forward(self, x):
        x = torch.cat([self.class_token.expand(x.shape[0], -1, -1), x], dim=1)
        return self.blocks(x)


def yolo_c3k2():
    """YOLO11's C3k2 both ways (Bottleneck and C3k inside), behind a strided Conv."""
    from ultralytics.nn.modules.block import C3k2
    from ultralytics.nn.modules.conv import Conv

    return nn.Sequential(Conv(3, 16, 3, 2), C3k2(16, 32, 1, False), C3k2(32, 32, 1, True))


CASES = {
    "tinynet_nchw": (TinyNet, (1, 3, 32, 32), "nchw", "flat"),
    "tinynet_nhwc": (TinyNet, (1, 3, 32, 32), "nhwc", "flat"),
    # the structured form (the default): the module tree as Keras functions
    "tinynet_modules": (TinyNet, (1, 3, 32, 32), "nchw", "modules"),
    "cnn_block_modules": (CnnBlocks, (1, 3, 16, 16), "nhwc", "modules"),
    "transformer_block_modules": (Transformer, (1, 5, 16), "nchw", "modules"),
    "c3k2_modules": (yolo_c3k2, (1, 3, 32, 32), "nhwc", "modules"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden_source(name, tmp_path):
    make, shape, layout, structure = CASES[name]
    torch.manual_seed(0)
    model = randomize_bn(make().eval())
    result = transpile(
        model, torch.randn(shape), io_layout=layout, out_dir=tmp_path, structure=structure
    )
    source = result.source_path.read_text()
    golden = HERE / f"{name}.py.txt"
    if os.environ.get("UPDATE_GOLDEN") == "1" or not golden.exists():
        golden.write_text(source)
        if os.environ.get("UPDATE_GOLDEN") != "1":
            pytest.fail(f"golden file {golden.name} was missing and has been written; review it")
    assert source == golden.read_text(), f"generated source differs from {golden.name}"
