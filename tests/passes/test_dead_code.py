"""dead_code: unused nodes and constants go; outputs unchanged."""

from __future__ import annotations

import torch
import torch.nn as nn
from _helpers import import_torch, ops_of, run_pass_and_check
from transpiler.passes import dead_code, fold_batchnorm


class Dangling(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.unused = nn.Conv2d(3, 4, 3)

    def forward(self, x):
        self.unused(x)  # result thrown away
        return torch.relu(self.conv(x))


def test_unused_nodes_removed():
    x = torch.randn(2, 3, 6, 6)
    g = import_torch(Dangling(), x)
    assert ops_of(g).count("conv") == 2
    out = run_pass_and_check(g, dead_code, [x.numpy()])
    assert ops_of(out) == ["conv", "relu"]
    used = {v.name for n in out.nodes for v in n.inputs}
    assert set(out.constants) == used & set(out.constants)


def test_constants_left_by_folding_are_dropped():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)).eval()
    x = torch.randn(2, 3, 6, 6)
    g = run_pass_and_check(import_torch(model, x), [fold_batchnorm, dead_code], [x.numpy()])
    assert len(g.constants) == 2  # folded weight and bias only
