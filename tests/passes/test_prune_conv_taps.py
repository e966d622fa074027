"""prune_conv_taps: taps that only read zero padding are dropped, exactly; the rest untouched."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn
from _helpers import import_torch, ops_of, run_pass_and_check
from helpers import check_against_torch
from transpiler.passes import prune_conv_taps
from transpiler.passes.prune_conv_taps import _live_taps

from transpiler import transpile


def _conv(graph):
    (node,) = [n for n in graph.nodes if n.op == "conv"]
    return node


@pytest.mark.parametrize("rate", [24, 36, 14])
def test_aspp_rates_beyond_the_map_become_1x1(rate):
    # DeepLabV3's ASPP branch on the 14x14 map a 224 input gives: only the centre tap is live
    model = nn.Conv2d(16, 8, 3, padding=rate, dilation=rate, bias=False)
    x = torch.randn(2, 16, 14, 14)
    g = run_pass_and_check(import_torch(model, x), prune_conv_taps, [x.numpy()])
    conv = _conv(g)
    assert g.constants[conv.inputs[1].name].shape == (8, 16, 1, 1)
    assert conv.attrs["dilation"] == [1, 1] and conv.attrs["padding"] == [0, 0]
    assert ops_of(g) == ["conv"]


def test_rate_inside_the_map_keeps_every_tap():
    model = nn.Conv2d(4, 4, 3, padding=12, dilation=12)
    x = torch.randn(1, 4, 14, 14)
    graph = import_torch(model, x)
    g = run_pass_and_check(graph, prune_conv_taps, [x.numpy()])
    assert g.constants[_conv(g).inputs[1].name].shape == (4, 4, 3, 3)


def test_one_axis_only_and_asymmetric_pads():
    # 1 x 20 map, dilation (8, 2): the height axis keeps its centre tap, the width keeps all;
    # an even kernel with padding 'same' has unequal pads -> an explicit pad on pruning
    model = nn.Conv2d(3, 5, (3, 3), padding=(8, 2), dilation=(8, 2))
    x = torch.randn(2, 3, 1, 20)
    g = run_pass_and_check(import_torch(model, x), prune_conv_taps, [x.numpy()])
    conv = _conv(g)
    assert g.constants[conv.inputs[1].name].shape == (5, 3, 1, 3)
    assert conv.attrs["dilation"] == [1, 2]
    # height 4, k 4, d 3, 'same' pads (4, 5): taps 1 and 2 live, pads become (1, 2)
    even = nn.Conv2d(3, 5, (4, 1), padding="same", dilation=(3, 1))
    x2 = torch.randn(2, 3, 4, 6)
    g2 = run_pass_and_check(import_torch(even, x2), prune_conv_taps, [x2.numpy()])
    assert ops_of(g2) == ["pad", "conv"]
    assert g2.nodes[0].attrs["pads"][2:] == ((1, 2), (0, 0))
    assert g2.constants[_conv(g2).inputs[1].name].shape == (5, 3, 2, 1)


def test_dynamic_sizes_are_left_alone():
    model = nn.Conv2d(3, 4, 3, padding=24, dilation=24)
    result = transpile(model)  # signature inferred: spatial sizes dynamic
    conv = _conv(result.graph)
    assert result.graph.constants[conv.inputs[1].name].shape == (4, 3, 3, 3)


@pytest.mark.parametrize("backend", ["keras", "tf"])
def test_deeplab_head_end_to_end(backend, tmp_path):
    from torchvision.models.segmentation.deeplabv3 import ASPP

    torch.manual_seed(0)
    model = ASPP(32, [12, 24, 36], out_channels=16).eval()
    x = torch.randn(1, 32, 14, 14)
    result = transpile(model, x, backend=backend, out_dir=tmp_path / "out")
    shapes = sorted(
        result.graph.constants[n.inputs[1].name].shape[2:]
        for n in result.graph.nodes
        if n.op == "conv"
    )
    # 1x1 branch, rates 24 and 36 (now 1x1), pooling branch, projection; rate 12 keeps its
    # 3x3 taps here, and split_sparse_taps computes them as nine 1x1 convs on their windows
    assert shapes == [(1, 1)] * (5 + 9), shapes
    assert [p for p in result.report.passes if p.name == "split_sparse_taps"][0].changed
    check_against_torch(model, torch.randn(3, 32, 14, 14), result.load(), "nchw")


def test_live_taps_brute_force():
    rng = np.random.default_rng(0)
    for _ in range(300):
        n, k, s, d = (int(v) for v in rng.integers(1, 9, 4))
        pl, pr = (int(v) for v in rng.integers(0, 3 * d + 1, 2))
        if n + pl + pr < d * (k - 1) + 1:
            continue
        x = torch.zeros(1, 1, n)
        live = []
        for t in range(k):
            w = torch.zeros(1, 1, k)
            w[0, 0, t] = 1.0
            y = torch.nn.functional.conv1d(
                torch.nn.functional.pad(x + 1, (pl, pr)), w, None, s, 0, d
            )
            if y.abs().sum() > 0:
                live.append(t)
        assert _live_taps(n, k, s, d, pl, pr) == live, (n, k, s, d, pl, pr)
