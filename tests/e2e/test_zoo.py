"""The torchvision model zoo end to end, in both layouts: transpile at batch 1, compare with
PyTorch at batch 1 and 2, and count the TF Transpose ops left in the Keras graph.

One model x io_layout = one test (`test_zoo[resnet50-nhwc]`). Weights are random (weights=None),
BatchNorm statistics randomized, inputs as small as the architecture allows. Models whose
transpile + check takes more than ~15 s are marked `slow` (run them with `-m slow`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import pytest
import torch
from helpers import (
    LAYOUTS,
    assert_checks_ok,
    boundary_transposes,
    check_against_torch,
    random_inputs,
    randomize_bn,
    randomize_zero_weights,
    stable_seed,
    torch_reference,
)
from torch import nn
from torchvision import models
from torchvision.models import segmentation

from transpiler import TranspileError, UnsupportedOpError, transpile


@dataclass(frozen=True)
class Zoo:
    make: Callable[[], nn.Module]
    size: int  # square input (N, 3, size, size)
    slow: bool = False
    # None: a plain CNN, whose forward never permutes/transposes/views 4-D activations; it must
    # hold exactly the boundary transposes. Otherwise: the number of permute/transpose calls one
    # PyTorch forward makes at this input size (see the derivations below), an upper bound for
    # the Transposes left inside the Keras graph.
    torch_permutes: int | None = None


# Permute/transpose counts, derived from the torchvision 0.29 sources (and cross-checked by
# counting Tensor.permute/transpose and torch.permute/transpose calls during one forward, with
# torch.backends.mha's fast path off so nn.MultiheadAttention runs its Python code):
#
# shufflenet_v2_x1_0: channel_shuffle does one torch.transpose(x, 1, 2) (on a 5-D view of the
#   4-D activation); one call per InvertedResidual, stages_repeats [4, 8, 4] -> 16.
# convnext_tiny: each CNBlock has Permute([0, 2, 3, 1]) and Permute([0, 3, 1, 2]) around its
#   LayerNorm/MLP (2 x 18 blocks, depths [3, 3, 9, 3]) and each LayerNorm2d permutes there and
#   back (2 x 5: stem, 3 downsamplings, classifier) -> 36 + 10 = 46.
# vit_b_16: _process_input permutes once (N, C, HW) -> (N, HW, C); each of the 12 encoder
#   layers runs nn.MultiheadAttention(batch_first=True): 1 transpose in (q is k is v), 1 in
#   _in_projection_packed, 3 for the q/k/v head split, 1 permute after SDPA, 1 transpose out
#   -> 7 per layer -> 1 + 84 = 85.
# swin_t (224x224): Permute in the stem and before the head (2); per block (12, depths
#   [2, 2, 6, 2]) shifted_window_attention permutes to windows, permutes qkv, transposes k,
#   transposes attn @ v and permutes back (5), and the relative position bias is permuted (1)
#   -> 72; shifted blocks (odd ones) also permute their attention mask, except in the last
#   stage where the 7x7 window covers the 7x7 map and the shift is dropped -> 1 + 1 + 3 = 5.
#   Total 2 + 72 + 5 = 79.
ZOO: dict[str, Zoo] = {
    "resnet50": Zoo(lambda: models.resnet50(weights=None), 64),
    "resnext50_32x4d": Zoo(lambda: models.resnext50_32x4d(weights=None), 64),
    "wide_resnet50_2": Zoo(lambda: models.wide_resnet50_2(weights=None), 64),
    "mobilenet_v3_small": Zoo(lambda: models.mobilenet_v3_small(weights=None), 64),
    "mobilenet_v3_large": Zoo(lambda: models.mobilenet_v3_large(weights=None), 64),
    "efficientnet_b0": Zoo(lambda: models.efficientnet_b0(weights=None), 64),
    "efficientnet_v2_s": Zoo(lambda: models.efficientnet_v2_s(weights=None), 64, slow=True),
    "regnet_x_400mf": Zoo(lambda: models.regnet_x_400mf(weights=None), 64),
    "regnet_y_400mf": Zoo(lambda: models.regnet_y_400mf(weights=None), 64),
    "shufflenet_v2_x1_0": Zoo(
        lambda: models.shufflenet_v2_x1_0(weights=None), 64, torch_permutes=16
    ),
    "densenet121": Zoo(lambda: models.densenet121(weights=None), 64, slow=True),
    "googlenet": Zoo(
        lambda: models.googlenet(weights=None, aux_logits=False, init_weights=True), 64
    ),
    # Inception v3 needs at least 75x75; 75 is odd all the way down (37, 35, 17, 8).
    "inception_v3": Zoo(
        lambda: models.inception_v3(weights=None, aux_logits=False, init_weights=True), 75
    ),
    "mnasnet0_5": Zoo(lambda: models.mnasnet0_5(weights=None), 64),
    "convnext_tiny": Zoo(lambda: models.convnext_tiny(weights=None), 64, torch_permutes=46),
    # 64x64 leaves 2x2 (VGG) and 1x1 (AlexNet) maps: their AdaptiveAvgPool2d((6|7, 7)) upsamples.
    "vgg11_bn": Zoo(lambda: models.vgg11_bn(weights=None), 64, slow=True),  # 24 s per layout
    "alexnet": Zoo(lambda: models.alexnet(weights=None), 64),
    # The real ViT-B/16: it asserts a 224x224 input.
    "vit_b_16": Zoo(lambda: models.vit_b_16(weights=None), 224, slow=True, torch_permutes=85),
    "swin_t": Zoo(lambda: models.swin_t(weights=None), 224, slow=True, torch_permutes=79),
    # Segmentation: {'out': (N, 21, H, W)} out (rank 4, so 2 boundary transposes in "nchw").
    "fcn_resnet50": Zoo(
        lambda: segmentation.fcn_resnet50(weights=None, weights_backbone=None, aux_loss=False),
        64,
        slow=True,
    ),
    "deeplabv3_mobilenet_v3_large": Zoo(
        lambda: segmentation.deeplabv3_mobilenet_v3_large(
            weights=None, weights_backbone=None, aux_loss=False
        ),
        64,
    ),
    # 96: the 1/8 and 1/16 maps (12x12, 6x6) are upsampled by non-trivial factors.
    "lraspp_mobilenet_v3_large": Zoo(
        lambda: segmentation.lraspp_mobilenet_v3_large(weights=None, weights_backbone=None),
        96,
    ),
}


def _params():
    for name, spec in ZOO.items():
        for io_layout in LAYOUTS:
            marks = [pytest.mark.slow] if spec.slow else []
            yield pytest.param(name, io_layout, "modules", id=f"{name}-{io_layout}", marks=marks)
        # the flat source (structure="flat"), in the slow run
        yield pytest.param(name, "nchw", "flat", id=f"{name}-nchw-flat", marks=pytest.mark.slow)


def _transpile(model, example, io_layout, out_dir, structure="modules"):
    """transpile(), with the transpiler's own errors turned into readable test failures."""
    try:
        return transpile(model, example, io_layout=io_layout, out_dir=out_dir, structure=structure)
    except UnsupportedOpError as exc:  # the message lists every unsupported op
        message = f"UnsupportedOpError: {exc}"
    except TranspileError as exc:
        report = f"\n{exc.report}" if getattr(exc, "report", None) is not None else ""
        message = f"TranspileError: {exc}{report}"
    pytest.fail(message, pytrace=False)  # outside `except`: no chained traceback


@pytest.mark.parametrize(("name", "io_layout", "structure"), list(_params()))
def test_zoo(name: str, io_layout: str, structure: str, tmp_path):
    spec = ZOO[name]
    seed = stable_seed("zoo", name)
    torch.manual_seed(seed)
    model = randomize_zero_weights(randomize_bn(spec.make(), seed=seed), seed=seed).eval()
    shape = (3, spec.size, spec.size)
    (example,) = random_inputs([shape], batch=1, seed=seed)

    start = time.perf_counter()
    result = _transpile(model, example, io_layout, tmp_path / "out", structure)
    print(f"{name}-{io_layout}: transpile {time.perf_counter() - start:.1f} s")

    assert_checks_ok(result)
    fn = result.load()
    check_against_torch(model, example, fn, io_layout)  # the example batch (1)
    (batch2,) = random_inputs([shape], batch=2, seed=seed + 1)
    check_against_torch(model, batch2, fn, io_layout)

    boundary = 0
    if io_layout == "nchw":  # one per rank-4 input/output: 1 for classifiers, 2 for segmentation
        boundary = boundary_transposes([example], torch_reference(model, [example]))
    count = result.report.transpose_count
    if spec.torch_permutes is None:
        assert count == boundary, (
            f"{name} ({io_layout}): {count} Transpose ops, expected exactly the {boundary} at "
            f"the boundary (the PyTorch forward permutes nothing)\n{result.report}"
        )
    else:
        bound = spec.torch_permutes + boundary
        assert count <= bound, (
            f"{name} ({io_layout}): {count} Transpose ops, more than the {spec.torch_permutes} "
            f"permute/transpose calls of the PyTorch forward + {boundary} at the boundary"
            f"\n{result.report}"
        )
