"""Issue 11: every case an outside suite found wrong or crashing converts exactly (with
``verify=False``, compared with PyTorch at the example batch and another batch size) or is
refused with a TranspileError that says what and where."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from helpers import check_against_torch
from torch import nn

from transpiler import TranspileError, transpile


class Fn(nn.Module):
    """forward(*inputs) = fn(*inputs), with a fixed arity so torch.fx traces it."""

    def __init__(self, fn, arity: int = 1):
        super().__init__()
        self.fn, self.arity = fn, arity

    def forward(self, x, y=None):
        return self.fn(x) if self.arity == 1 else self.fn(x, y)


C4 = torch.randn(4, generator=torch.Generator().manual_seed(1))


class CondDepthwise(nn.Module):
    """Per-sample depthwise kernels (dynamic depthwise / CondConv): groups = batch x channels."""

    def __init__(self, c: int = 4, k: int = 3):
        super().__init__()
        self.c, self.k = c, k
        self.route = nn.Linear(c, c * k * k)

    def forward(self, x):
        b, c, h, w = x.shape
        kernels = self.route(x.mean((2, 3))).reshape(b * c, 1, self.k, self.k)
        y = F.conv2d(x.reshape(1, b * c, h, w), kernels, padding=1, groups=b * c)
        return y.reshape(b, c, h, w)


class TwoInputView(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 1)

    def forward(self, x, y):
        return self.conv(x) * y.view(y.shape[0], -1, 1, 1)


class OutputSize(nn.Module):
    def __init__(self):
        super().__init__()
        self.up = nn.ConvTranspose2d(3, 4, 3, stride=2, padding=1)

    def forward(self, x):
        return self.up(x, output_size=[x.shape[2] * 2, x.shape[3] * 2])


class InitNamed(nn.Module):
    """A submodule registered under the name ``__init__`` (names are data)."""

    def __init__(self):
        super().__init__()
        self._modules["__init__"] = nn.Conv2d(3, 4, 3)
        self._modules["forward"] = nn.ReLU()

    def forward(self, x):
        return self._modules["forward"](self._modules["__init__"](x))


def _floor(x, y):
    return torch.div(x * 8, y, rounding_mode="floor")


EXACT = {
    "div-floor": (Fn(_floor, 2), [(2, 3, 5), (2, 3, 5)]),
    "div-trunc": (Fn(lambda x, y: torch.div(x * 8, y, rounding_mode="trunc"), 2), [(2, 7), (2, 7)]),
    "floordiv-operator": (Fn(lambda x, y: (x * 8) // y, 2), [(2, 3, 4), (2, 3, 4)]),
    "floor-divide-scalar": (Fn(lambda x: torch.floor_divide(x * 8, 0.7) + 1.5 // x), [(2, 9)]),
    "round-floor-ceil-trunc": (
        Fn(lambda x: torch.round(x * 3) + torch.floor(x) - torch.ceil(x) * torch.trunc(x * 2)),
        [(2, 3, 6)],
    ),
    "const-rank1-right-aligned": (Fn(lambda x: x + C4), [(2, 4, 3, 1)]),
    "const-rank1-mul-right-aligned": (Fn(lambda x: x * C4), [(2, 4, 1)]),
    "input-rank1-right-aligned": (Fn(lambda x, y: x + y, 2), [(5, 1), (5,)]),
    "batched-plus-rank1-input": (Fn(lambda x, y: x + y, 2), [(2, 5, 1), (5,)]),
    "unbatched-maxpool2d": (nn.MaxPool2d(2), [(3, 8, 8)]),
    "unbatched-avgpool1d": (nn.AvgPool1d(2), [(3, 8)]),
    "unbatched-adaptive-avg": (nn.AdaptiveAvgPool2d(1), [(3, 8, 8)]),
    "unbatched-adaptive-max": (Fn(lambda x: F.adaptive_max_pool2d(x, 2)), [(3, 8, 8)]),
    "unbatched-maxpool-dilation-padding": (Fn(lambda x: F.max_pool2d(x, 3, 1, 1, 2)), [(3, 8, 8)]),
    "maxpool2d-return-indices": (nn.MaxPool2d(2, return_indices=True), [(2, 3, 8, 8)]),
    "maxpool2d-indices-pad-dilation-ceil-ties": (
        Fn(lambda x: F.max_pool2d(x.round(), 3, 2, 1, 2, ceil_mode=True, return_indices=True)),
        [(2, 3, 9, 10)],
    ),
    "maxpool1d-indices-unbatched": (
        Fn(lambda x: F.max_pool1d(x, 3, 2, 1, return_indices=True)),
        [(3, 11)],
    ),
    "maxpool3d-indices": (
        Fn(lambda x: F.max_pool3d(x, 2, 2, 1, ceil_mode=True, return_indices=True)),
        [(2, 2, 5, 6, 5)],
    ),
    "max-min-dim-values-indices": (
        Fn(lambda x: (*torch.max(x, 1), *torch.min(x, -1, keepdim=True), x.argmax(2))),
        [(2, 3, 4, 5)],
    ),
    "conv-transpose-output-size": (OutputSize(), [(2, 3, 5, 6)]),
    "conv-transpose-dilated": (nn.ConvTranspose2d(3, 4, 3, stride=2, dilation=2), [(2, 3, 5, 6)]),
    "clamp-tensor-bounds": (Fn(lambda x, y: x.clamp(y, y + 0.5), 2), [(2, 3, 4), (2, 3, 4)]),
    "normalize-p-half-and-inf": (
        Fn(lambda x: F.normalize(x, p=0.5, dim=1) + F.normalize(x, p=float("inf"), dim=-1)),
        [(2, 3, 4)],
    ),
    "movedim": (Fn(lambda x: torch.movedim(x, 1, -1) * 2), [(2, 3, 4, 5)]),
    "submodule-named-__init__": (InitNamed(), [(2, 3, 8, 8)]),
    "batch-derived-view-second-input": (TwoInputView(), [(2, 3, 5, 5), (2, 6)]),
    "per-sample-depthwise": (CondDepthwise(), [(2, 4, 7, 7)]),
}


@pytest.mark.parametrize("name", list(EXACT))
def test_exact(name, tmp_path):
    model, shapes = EXACT[name]
    model.eval()
    gen = torch.Generator().manual_seed(0)
    inputs = tuple(torch.randn(s, generator=gen) for s in shapes)
    result = transpile(model, inputs, verify=False, out_dir=tmp_path / "out")
    check_against_torch(model, inputs, result)
    other = tuple(torch.randn((3, *s[1:]), generator=gen) for s in shapes)
    check_against_torch(model, other, result)


@pytest.mark.parametrize("io_layout", ["nhwc"])
@pytest.mark.parametrize(
    "name",
    [
        "const-rank1-right-aligned",
        "max-min-dim-values-indices",
        "per-sample-depthwise",
        "maxpool2d-indices-pad-dilation-ceil-ties",
    ],
)
def test_exact_tf_nhwc(name, io_layout, tmp_path):
    model, shapes = EXACT[name]
    model.eval()
    inputs = tuple(torch.randn(s) for s in shapes)
    result = transpile(
        model, inputs, verify=False, backend="tf", io_layout=io_layout, out_dir=tmp_path / "o"
    )
    check_against_torch(model, inputs, result, io_layout)
    check_against_torch(model, tuple(torch.randn((3, *s[1:])) for s in shapes), result, io_layout)


UNBATCHED_CONV = {
    "conv1d": (nn.Conv1d(3, 4, 3, padding=1), (3, 10)),
    "conv2d": (nn.Conv2d(3, 4, 3, stride=2), (3, 9, 8)),
    "conv1d-cat-constant": (
        Fn(lambda x: torch.cat([F.conv1d(x, torch.ones(4, 3, 3)), torch.ones(2, 8)], 0)),
        (3, 10),
    ),
    "conv-transpose1d": (nn.ConvTranspose1d(3, 4, 3, stride=2), (3, 10)),
    "conv-transpose2d": (
        Fn(lambda x: F.conv_transpose2d(x, torch.ones(3, 2, 2, 2), stride=2) + x.mean()),
        (3, 5, 6),
    ),
}


@pytest.mark.parametrize(
    ("name", "io_layout"), [*((n, "nchw") for n in UNBATCHED_CONV), ("conv2d", "nhwc")]
)
def test_unbatched_conv_converts_with_a_static_leading_axis(name, io_layout, tmp_path):
    """PyTorch's unbatched conv form (C, *spatial) has no batch axis: converted exactly with
    static shapes, checked at the example's shape only, and said so (not a dynamic batch)."""
    model, shape = UNBATCHED_CONV[name]
    model.eval()
    x = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    result = transpile(model, x, io_layout=io_layout, out_dir=tmp_path / "out")
    assert result.report.batch == f"static: {shape[0]}"
    assert {c.batch_size for c in result.report.checks} == {shape[0]}
    assert any("unbatched" in n for n in result.report.notes)
    check_against_torch(model, (torch.randn(shape),), result, io_layout)


REFUSED = {
    "squeeze-batch-of-1": (Fn(lambda x: x.squeeze() + 1), [(1, 3, 4)], "squeeze"),
    "einsum-sums-the-batch": (
        Fn(lambda x, y: torch.einsum("...ik,...j->ij", x, y), 2),
        [(2, 3, 4), (2, 5)],
        "removes the batch dimension",
    ),
    "linear-zero-features": (nn.Linear(0, 5), [(2, 0)], "zero-size"),
    "sdpa-dropout": (
        Fn(lambda q: F.scaled_dot_product_attention(q, q, q, dropout_p=0.5)),
        [(2, 3, 4, 8)],
        "dropout_p",
    ),
    "unbind-batch": (Fn(lambda x: x.unbind(0)[0] + 1), [(2, 3)], "unbind"),
}


@pytest.mark.parametrize("name", list(REFUSED))
def test_refused(name, tmp_path):
    model, shapes, match = REFUSED[name]
    inputs = tuple(torch.randn(s) for s in shapes)
    with pytest.raises(TranspileError, match=match):
        transpile(model.eval(), inputs, verify=False, out_dir=tmp_path / "out")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_maxpool_indices_through_torch_export(tmp_path):
    """aten.max_pool2d_with_indices (torch.export's form) converts like F.max_pool2d's indices."""
    model = nn.MaxPool2d(3, 2, 1, return_indices=True).eval()
    x = torch.randn(2, 3, 9, 8, generator=torch.Generator().manual_seed(3))
    result = transpile(model, x, tracer="export", verify=False, out_dir=tmp_path / "out")
    check_against_torch(model, (x,), result)
    check_against_torch(model, (torch.randn(4, 3, 9, 8),), result)
