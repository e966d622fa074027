"""timm models end to end (random weights, no downloads), one per family; the README lists them
with their transpose counts. MobileViT and EfficientViT need the torch.export path (Python
control flow on shapes); the others trace with torch.fx."""

from __future__ import annotations

import pytest
import torch
from helpers import assert_checks_ok, check_against_torch, randomize_bn, randomize_zero_weights

from transpiler import transpile

timm = pytest.importorskip("timm")

# name -> (input size, tracer the automatic choice must land on, Transpose ops for nchw I/O)
MODELS = {
    "resnet50d": (128, "fx", 1),
    "efficientnet_b0": (128, "fx", 1),
    "mobilenetv3_large_100": (128, "fx", 1),
    "mobilenetv4_conv_small": (128, "fx", 1),
    "regnety_002": (128, "fx", 1),
    "ghostnet_100": (128, "fx", 1),
    "repvgg_a0": (128, "fx", 1),
    "cspdarknet53": (128, "fx", 1),
    "dla34": (128, "fx", 1),
    "hrnet_w18_small": (128, "fx", 1),
    "convnext_atto": (128, "fx", 1),
    "edgenext_xx_small": (224, "fx", 13),
    "fastvit_t8": (224, "fx", 1),
    "levit_128s": (224, "fx", 45),
    "deit_tiny_patch16_224": (224, "fx", 49),
    "mobilevit_xxs": (224, "export", 55),
    "efficientvit_b0": (224, "export", 21),
}


# the structured source (the default); the flat one in the slow run
@pytest.mark.parametrize("structure", ["modules", pytest.param("flat", marks=pytest.mark.slow)])
@pytest.mark.parametrize("name", list(MODELS))
def test_timm_model(name, structure, tmp_path):
    size, tracer, transposes = MODELS[name]
    torch.manual_seed(0)
    model = randomize_zero_weights(randomize_bn(timm.create_model(name, pretrained=False))).eval()
    x = torch.randn(1, 3, size, size)
    result = transpile(model, x, out_dir=tmp_path / "out", structure=structure)
    assert_checks_ok(result)
    assert result.report.tracer == (
        "torch.export" if tracer == "export" else "torch.fx symbolic_trace"
    )
    assert result.report.transpose_count == transposes
    check_against_torch(model, torch.randn(2, 3, size, size), result.load(), "nchw")
