"""The torch.export frontend: automatic fallback, explicit choice, ExportedProgram / .pt2 input."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F  # noqa: N812
import torchvision
from helpers import (
    assert_checks_ok,
    check_against_torch,
    randomize_bn,
    stable_seed,
)

from transpiler import TranspileError, transpile


class ShapeControl(nn.Module):
    """Python control flow on a shape (what Ultralytics' heads and timm's MobileViT do): fx
    refuses it, torch.export specializes it. Also caches a tensor on itself while running, as
    Ultralytics' Detect head does with its anchors."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.head = nn.Linear(8, 5)
        self.cache = None

    def forward(self, x):
        y = F.silu(self.bn(self.conv(x)))
        if y.shape[-1] > 8:
            y = F.max_pool2d(y, 2)
        self.cache = y.shape  # state written during forward
        y = F.interpolate(y, scale_factor=2.0, mode="bilinear", align_corners=False)
        y = y[:, :, 1:, :-1]
        return self.head(y.mean((2, 3))), torch.flatten(y, 1)


def _model():
    torch.manual_seed(stable_seed("export"))
    return randomize_bn(ShapeControl()).eval()


@pytest.mark.parametrize("backend", ["keras", "tf"])
@pytest.mark.parametrize("io_layout", ["nchw", "nhwc"])
def test_auto_falls_back_to_export(backend, io_layout, tmp_path):
    model = _model()
    x = torch.randn(1, 3, 32, 32)
    result = transpile(model, x, backend=backend, io_layout=io_layout, out_dir=tmp_path / "o")
    assert_checks_ok(result)
    assert result.report.tracer == "torch.export"
    assert any("torch.fx could not trace" in n for n in result.report.notes)
    assert "torch.export" in (tmp_path / "o" / "report.md").read_text()
    assert model.cache is None, "tracing must not touch the user's model"
    check_against_torch(model, torch.randn(5, 3, 32, 32), result.load(), io_layout)


def test_fx_only_raises_the_fx_error():
    with pytest.raises(TranspileError, match="torch.fx could not trace"):
        transpile(_model(), torch.randn(1, 3, 32, 32), tracer="fx")


def test_export_needs_example_inputs():
    with pytest.raises(TranspileError, match="needs example_inputs"):
        transpile(_model(), tracer="auto")


def test_unknown_tracer():
    with pytest.raises(TranspileError, match="valid choices: 'auto', 'fx', 'export'"):
        transpile(_model(), torch.randn(1, 3, 32, 32), tracer="jit")


@pytest.mark.parametrize(
    "name",
    [
        "resnet18",
        pytest.param("mobilenet_v3_large", marks=pytest.mark.slow),  # 25 s in the default run
        pytest.param("convnext_tiny", marks=pytest.mark.slow),  # 34 s
    ],
)
def test_export_matches_fx(name, tmp_path):
    torch.manual_seed(0)
    model = randomize_bn(getattr(torchvision.models, name)(weights=None)).eval()
    x = torch.randn(1, 3, 64, 64)
    fx = transpile(model, x, tracer="fx", out_dir=tmp_path / "fx")
    # the flat form: the layer names as statements (both forms name the layers alike)
    ex = transpile(model, x, tracer="export", out_dir=tmp_path / "ex", structure="flat")
    assert_checks_ok(ex)
    assert ex.report.tracer == "torch.export"
    assert ex.report.transpose_count == fx.report.transpose_count
    assert sorted(n.op for n in ex.graph.nodes) == sorted(n.op for n in fx.graph.nodes)
    src = ex.source_path.read_text()
    # the same layer names as the fx path: the PyTorch module paths
    if name == "resnet18":
        for layer in ('name="layer1_0_conv1"', 'name="layer4_1_conv2"', 'name="fc"'):
            assert layer in src
        assert "# torch: layer1.0.conv1 (Conv2d) + layer1.0.bn1 (BatchNorm2d, folded)" in src
    check_against_torch(model, torch.randn(3, 3, 64, 64), ex.load(), "nchw")


def test_exported_program_and_pt2_file(tmp_path):
    model = _model()
    x = torch.randn(2, 3, 32, 32)
    batch = torch.export.Dim("batch", min=1)
    program = torch.export.export(model, (x,), dynamic_shapes=({0: batch},), strict=False)
    with pytest.raises(TranspileError, match="use tracer='auto'"):
        transpile(program, tracer="fx")
    result = transpile(program, out_dir=tmp_path / "o")  # example inputs kept by the program
    assert_checks_ok(result)
    check_against_torch(model, torch.randn(4, 3, 32, 32), result.load(), "nchw")
    torch.export.save(program, tmp_path / "m.pt2")
    from transpiler.cli import main

    assert main([str(tmp_path / "m.pt2"), "-o", str(tmp_path / "cli"), "--backend", "tf"]) == 0
    assert (tmp_path / "cli" / "saved_model" / "saved_model.pb").exists()


@pytest.mark.parametrize(
    "case_id",
    [
        "int-bool-compare-logic-where",
        "int-bool-unary-math",
        "int-bool-take-roll-flip-cumsum-stack",
        "int-bool-embedding-ids",
    ],
)
def test_export_path_sequence_ops(case_id, tmp_path):
    """The ATen aliases of the sequence-model ops (casts, comparisons, where, embedding, take,
    roll/flip/cumsum, std/var, ...) convert on the torch.export path too."""
    from ops.cases import CASES

    case = next(c for c in CASES if c.id == case_id)
    torch.manual_seed(stable_seed(case_id))
    model = case.make().eval()
    x = torch.randn(2, *case.input_shapes[0])
    result = transpile(model, x, tracer="export", out_dir=tmp_path / "out")
    assert_checks_ok(result)
    assert result.report.tracer == "torch.export"
    check_against_torch(model, torch.randn(3, *case.input_shapes[0]), result)
