"""TFLite files XNNPACK can take whole: upsampling as RESIZE_BILINEAR / RESIZE_NEAREST_NEIGHBOR
(not GATHER), dilated convolutions as dilated CONV_2D / DEPTHWISE_CONV_2D (no SPACE_TO_BATCH_ND),
flatten as one RESHAPE with a constant shape (no SHAPE + STRIDED_SLICE + PACK), with the dynamic
batch kept; checked against PyTorch at two batch sizes."""

from __future__ import annotations

import collections

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from transpiler import transpile
from transpiler.tflite import _interpreter, run_tflite


class Net(nn.Module):
    """A dilated conv, a dilated depthwise conv, three upsamplings and a flatten. Keras has no
    align-corners resize: the Keras backend keeps its gathers, the tf backend does not."""

    def __init__(self, corners: bool):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=2, dilation=2)
        self.dw = nn.Conv2d(8, 8, 3, padding=3, dilation=3, groups=8)
        self.head = nn.Linear(8 * 3 * 3, 5)
        self.corners = corners

    def forward(self, x):
        y = torch.relu(self.conv(x))
        y = self.dw(y)  # 9 x 9
        a = F.interpolate(y, scale_factor=2, mode="bilinear", align_corners=False)
        b = F.interpolate(y.relu(), size=(18, 18), mode="bilinear", align_corners=self.corners)
        c = F.interpolate(y, scale_factor=2, mode="nearest")
        up = a + b + c
        flat = F.avg_pool2d(up, 6).flatten(1)
        return self.head(flat), up


def _histogram(blob: bytes) -> collections.Counter:
    interp = _interpreter(blob)
    interp.allocate_tensors()
    return collections.Counter(d["op_name"] for d in interp._get_ops_details())  # noqa: SLF001


@pytest.mark.parametrize("backend", ["keras", "tf"])
def test_tflite_has_builtin_resize_dilated_conv_and_static_reshape(backend, tmp_path):
    torch.manual_seed(0)
    model = Net(corners=backend == "tf").eval()
    result = transpile(model, torch.randn(1, 3, 9, 9), backend=backend, out_dir=tmp_path / "o")
    blob = result.to_tflite(tmp_path / "m.tflite").read_bytes()
    ops = _histogram(blob)
    assert ops["RESIZE_BILINEAR"] == 2 and ops["RESIZE_NEAREST_NEIGHBOR"] == 1, ops
    assert ops["CONV_2D"] == 1 and ops["DEPTHWISE_CONV_2D"] == 1, ops
    for op in ("GATHER", "SPACE_TO_BATCH_ND", "BATCH_TO_SPACE_ND", "SHAPE", "PACK", "TILE"):
        assert op not in ops, ops
    assert "STRIDED_SLICE" not in ops, ops
    # (no SPACE_TO_BATCH_ND and the numbers equal PyTorch's: the convs carry the dilation)
    for batch in (1, 3):  # the dynamic batch still works
        x = torch.randn(batch, 3, 9, 9)
        with torch.no_grad():
            expected = [t.numpy() for t in model(x)]
        outs = run_tflite(blob, [x.numpy()])
        for y, ref in zip(outs, expected, strict=True):
            assert y.shape == ref.shape
            np.testing.assert_allclose(y, ref, atol=1e-4 * max(1.0, np.abs(ref).max()))
