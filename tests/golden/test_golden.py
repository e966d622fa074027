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


CASES = {
    "tinynet_nchw": (TinyNet, (1, 3, 32, 32), "nchw", "flat"),
    "tinynet_nhwc": (TinyNet, (1, 3, 32, 32), "nhwc", "flat"),
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
