"""layout: NHWC regions, transposes only at the boundary (nchw) or none (nhwc), axes remapped."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from _helpers import import_torch, ops_of, run_pass_and_check
from transpiler.passes import PassContext, fold_batchnorm, layout, normalize_padding

PIPE = [normalize_padding, fold_batchnorm, layout]
NCHW, NHWC = PassContext("nchw", "nchw"), PassContext("nhwc", "nhwc")


class ConvStack(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 8, 3, padding=1)
        self.b = nn.Conv2d(8, 8, 3, stride=2, padding=1)
        self.pool = nn.MaxPool2d(2)

    def forward(self, x):
        y = F.relu(self.a(x))
        return self.pool(torch.sigmoid(self.b(y)) * self.b(y))


def _check(model, x, ctx, transposes):
    g = run_pass_and_check(import_torch(model, x), PIPE, [x.numpy()], ctx)
    assert ops_of(g).count("transpose") == transposes, g.format()
    for n in g.nodes:
        if "data_format" in n.attrs:
            assert n.attrs["data_format"] == "channels_last"
    return g


@pytest.mark.parametrize(("ctx", "expected"), [(NCHW, 2), (NHWC, 0)])
def test_cnn_boundary_transposes_only(ctx, expected):
    _check(ConvStack(), torch.randn(2, 3, 12, 12), ctx, expected)


@pytest.mark.parametrize(("ctx", "expected"), [(NCHW, 1), (NHWC, 0)])
def test_flatten_linear_permutes_weights_not_activations(ctx, expected):
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 5 * 6, 7))
    g = _check(model, torch.randn(2, 3, 7, 8), ctx, expected)
    linear = next(n for n in g.nodes if n.op == "linear")
    assert linear.meta.get("flatten_permuted")


def test_flatten_of_1x1_needs_no_permutation():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    g = _check(model, torch.randn(2, 3, 7, 7), NHWC, 0)
    assert ops_of(g)[-1] == "reshape"


class AxisOps(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 1)

    def forward(self, x):
        y = self.conv(x)
        s = torch.softmax(y, dim=1)
        c = torch.cat([s, y], dim=1)
        m = c.mean(dim=(2, 3), keepdim=True)
        return c * m, torch.cat([y, y], dim=-1).mean(-1)


@pytest.mark.parametrize(("ctx", "expected"), [(NCHW, 3), (NHWC, 0)])
def test_axis_ops_are_remapped(ctx, expected):
    g = _check(AxisOps(), torch.randn(2, 3, 5, 4), ctx, expected)
    softmax = next(n for n in g.nodes if n.op == "softmax")
    assert softmax.attrs["axis"] == 3  # channels are last


class ConvNeXtish(nn.Module):
    """ConvNeXt's permute -> LayerNorm-like linear -> permute pair *is* the NHWC layout."""

    def __init__(self):
        super().__init__()
        self.dw = nn.Conv2d(8, 8, 7, padding=3, groups=8)
        self.fc = nn.Linear(8, 8)
        self.pw = nn.Conv2d(8, 8, 1)

    def forward(self, x):
        y = self.dw(x).permute(0, 2, 3, 1)
        y = self.fc(y).permute(0, 3, 1, 2)
        return self.pw(y) + x


def test_permute_pairs_are_absorbed():
    g = _check(ConvNeXtish(), torch.randn(2, 8, 9, 9), NHWC, 0)
    assert "transpose" not in ops_of(g)


def test_channel_split_and_merge_reshape_on_nhwc_data_is_free():
    class SplitMerge(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(4, 4, 1)

        def forward(self, x):
            y = self.conv(x)
            return y.reshape(y.shape[0], 2, 2, 5, 5).reshape(y.shape[0], 4, 5, 5)

    g = _check(SplitMerge(), torch.randn(2, 4, 5, 5), NHWC, 0)
    assert ops_of(g).count("reshape") == 2


class ChannelShuffle(nn.Module):
    """ShuffleNet's shuffle: view -> transpose(1, 2) -> view, between two convs."""

    def __init__(self, groups=2):
        super().__init__()
        self.groups = groups
        self.a = nn.Conv2d(8, 8, 1)
        self.b = nn.Conv2d(8, 8, 1)

    def forward(self, x):
        y = self.a(x)
        n, c, h, w = y.size()
        y = y.view(n, self.groups, c // self.groups, h, w).transpose(1, 2).contiguous()
        return self.b(y.view(n, c, h, w))


@pytest.mark.parametrize(("ctx", "expected"), [(NCHW, 3), (NHWC, 1)])
def test_channel_shuffle_costs_one_transpose(ctx, expected):
    # the shuffle is a real permutation of channels: one transpose, and the convs stay NHWC
    _check(ChannelShuffle(), torch.randn(2, 8, 5, 6), ctx, expected)


def test_flatten_of_channels_first_needs_one_reorder():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.ReLU())
    g = _check(model, torch.randn(2, 3, 6, 7), NHWC, 1)
    assert g.nodes[-1].op == "relu"


def test_mixed_io_layout():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
    _check(model, torch.randn(2, 3, 6, 6), PassContext("nhwc", "nchw"), 1)


def test_two_views_of_one_tensor_are_not_confused():
    # y and y.transpose(-1, -2) share one physical tensor in two layouts (a real bug once)
    class Gram(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 1)

        def forward(self, x):
            y = self.conv(x)
            return torch.matmul(y, y.transpose(-1, -2))

    _check(Gram(), torch.randn(2, 3, 5, 7), NHWC, 3)


def test_gate_broadcast_needs_no_transpose():
    # SE-style gate: mean -> unsqueeze -> multiply; the (N, C, 1, 1) gate is re-laid for free
    class Gate(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3, padding=1)

        def forward(self, x):
            y = self.conv(x)
            return y * torch.sigmoid(y.mean((2, 3)).unsqueeze(-1).unsqueeze(-1))

    g = _check(Gate(), torch.randn(2, 3, 6, 6), NHWC, 0)
    assert "reshape" in ops_of(g)
