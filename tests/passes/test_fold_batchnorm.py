"""fold_batchnorm: BN folded into conv/linear (bias or not), else scale+shift; opt-out."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
from _helpers import import_torch, ops_of, run_pass_and_check
from transpiler.passes import PassContext, fold_batchnorm


def _randomize(model: nn.Module) -> nn.Module:
    g = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g))
            m.running_var.copy_(torch.rand(n, generator=g) + 0.3)
            m.weight.data.copy_(torch.randn(n, generator=g))
            m.bias.data.copy_(torch.randn(n, generator=g))
    return model.eval()


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("groups", [1, 2, 4])
def test_conv_bn_folds(bias, groups):
    model = _randomize(
        nn.Sequential(nn.Conv2d(4, 8, 3, padding=1, groups=groups, bias=bias), nn.BatchNorm2d(8))
    )
    x = torch.randn(2, 4, 7, 7)
    graph = import_torch(model, x)
    assert ops_of(graph) == ["conv", "batch_norm"]
    g = run_pass_and_check(graph, fold_batchnorm, [x.numpy()])
    assert ops_of(g) == ["conv"]
    assert len(g.nodes[0].inputs) == 3  # bias created when the conv had none
    assert g.nodes[0].meta["folded"][0].module_path == "1"


def test_linear_bn1d_folds():
    model = _randomize(nn.Sequential(nn.Linear(6, 5), nn.BatchNorm1d(5)))
    x = torch.randn(3, 6)
    g = run_pass_and_check(import_torch(model, x), fold_batchnorm, [x.numpy()])
    assert ops_of(g) == ["linear"]


def test_standalone_bn_becomes_scale_shift():
    model = _randomize(nn.Sequential(nn.ReLU(), nn.BatchNorm2d(3)))
    x = torch.randn(2, 3, 5, 5)
    g = run_pass_and_check(import_torch(model, x), fold_batchnorm, [x.numpy()])
    assert ops_of(g) == ["relu", "mul", "add"]


def test_conv_with_two_users_is_not_folded():
    class TwoUsers(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 1)
            self.bn = nn.BatchNorm2d(4)

        def forward(self, x):
            y = self.conv(x)
            return self.bn(y) + y

    model = _randomize(TwoUsers())
    x = torch.randn(2, 3, 5, 5)
    g = run_pass_and_check(import_torch(model, x), fold_batchnorm, [x.numpy()])
    assert "batch_norm" not in ops_of(g)
    assert ops_of(g) == ["conv", "mul", "add", "add"]


def test_disabled_keeps_batchnorm():
    model = _randomize(nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)))
    x = torch.randn(2, 3, 6, 6)
    graph = import_torch(model, x)
    result = fold_batchnorm(graph, PassContext(fold_batchnorm=False))
    assert not result.changed and ops_of(result.graph) == ["conv", "batch_norm"]


def test_unfolded_batchnorm_reasons_are_kept():
    class TwoUsers(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 1)
            self.bn = nn.BatchNorm2d(4)
            self.conv2 = nn.Conv2d(4, 4, 1)
            self.bn2 = nn.BatchNorm2d(4)
            self.bn3 = nn.BatchNorm2d(4)

        def forward(self, x):
            y = self.conv(x)
            z = self.bn2(self.conv2(self.bn(y) + y))  # bn2 folds into conv2
            return self.bn3(torch.relu(z))

    model = _randomize(TwoUsers())
    x = torch.randn(2, 3, 5, 5)
    graph = import_torch(model, x)
    result = fold_batchnorm(graph, PassContext())
    reasons = dict(result.graph.meta["unfolded_batchnorm"])
    assert set(reasons) == {"bn", "bn3"}
    assert reasons["bn"].startswith("conv output has other users")
    assert reasons["bn3"].startswith("input is not a conv/linear")
    assert "1 folded into conv/linear, 2 as scale+shift" in result.detail
    assert "not folded: bn: conv output has other users" in result.detail


def test_report_lists_unfolded_batchnorm(tmp_path):
    from transpiler import transpile

    model = _randomize(nn.Sequential(nn.ReLU(), nn.BatchNorm2d(3), nn.Conv2d(3, 4, 1)))
    result = transpile(model, torch.randn(2, 3, 5, 5), out_dir=tmp_path, verify=False)
    assert result.report.unfolded_batchnorm == [
        ("1", "input is not a conv/linear; became a scale and shift")
    ]
    assert "BatchNorm not folded: 1: input is not a conv/linear" in str(result.report)
    assert "- `1`: input is not a conv/linear; became a scale and shift" in (
        result.report.to_markdown()
    )
