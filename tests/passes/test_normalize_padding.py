"""normalize_padding: explicit pads, TF 'same' only where identical, exact numerics."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
from _helpers import import_torch, ops_of, run_pass_and_check
from transpiler.passes import normalize_padding
from transpiler.passes._util import tf_same_pads


def _conv(graph):
    return next(n for n in graph.nodes if n.op == "conv")


@pytest.mark.parametrize(
    ("size", "expect"),
    [(64, "explicit"), (224, "explicit"), (65, "same"), (15, "same")],
)
def test_stride2_conv_same_only_when_tf_pads_match(size, expect):
    # Conv2d(k=3, s=2, p=1): TF 'same' pads (0, 1) on even sizes, (1, 1) on odd sizes
    model = nn.Conv2d(3, 4, 3, stride=2, padding=1)
    x = torch.randn(1, 3, size, size)
    g = run_pass_and_check(import_torch(model, x), normalize_padding, [x.numpy()])
    conv = _conv(g)
    if expect == "same":
        assert conv.attrs["padding"] == "same" and "pad" not in ops_of(g)
    else:
        assert conv.attrs["padding"] == "valid"
        pad = g.nodes[0]
        assert pad.op == "pad" and pad.attrs["pads"] == ((0, 0), (0, 0), (1, 1), (1, 1))


def test_tf_same_pads_formula():
    assert tf_same_pads(224, 3, 2, 1) == (0, 1)
    assert tf_same_pads(225, 3, 2, 1) == (1, 1)
    assert tf_same_pads(None, 5, 1, 2) == (4, 4)
    assert tf_same_pads(None, 3, 2, 1) is None  # depends on the size


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(kernel_size=3, padding=1),
        dict(kernel_size=3, padding="same", dilation=2),
        dict(kernel_size=4, padding="same"),  # torch puts the odd pad after
        dict(kernel_size=(3, 1), padding=(1, 0)),
        dict(kernel_size=5, stride=2, padding=2),
        dict(kernel_size=3, stride=2, padding=1, dilation=2),
        dict(kernel_size=3, padding="valid"),
        dict(kernel_size=3, padding=2),
    ],
    ids=str,
)
@pytest.mark.parametrize("size", [16, 17])
def test_conv_padding_configs_exact(kwargs, size):
    model = nn.Conv2d(4, 6, **kwargs)
    x = torch.randn(2, 4, size, size)
    g = run_pass_and_check(import_torch(model, x), normalize_padding, [x.numpy()])
    assert _conv(g).attrs["padding"] in ("valid", "same")
    assert "padding_mode" not in _conv(g).attrs


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
def test_padding_mode_becomes_pad_node(mode):
    model = nn.Conv2d(3, 5, 3, padding=2, padding_mode=mode)
    x = torch.randn(2, 3, 9, 10)
    g = run_pass_and_check(import_torch(model, x), normalize_padding, [x.numpy()])
    assert ops_of(g) == ["pad", "conv"]
    assert g.nodes[0].attrs["mode"] == mode
    assert _conv(g).attrs["padding"] == "valid"


@pytest.mark.parametrize("ceil_mode", [False, True])
@pytest.mark.parametrize(("k", "s", "p"), [(3, 2, 1), (2, 2, 0), (3, 2, 0), (3, 1, 1)])
@pytest.mark.parametrize("size", [8, 9])
def test_max_pool(ceil_mode, k, s, p, size):
    model = nn.MaxPool2d(k, s, p, ceil_mode=ceil_mode)
    x = torch.randn(2, 3, size, size)
    g = run_pass_and_check(import_torch(model, x), normalize_padding, [x.numpy()])
    pool = next(n for n in g.nodes if n.op == "max_pool")
    assert pool.attrs["padding"] in ("valid", "same") and not pool.attrs["ceil_mode"]
    for n in g.nodes:
        if n.op == "pad":  # edge replication: exact, and a finite range for int8 TFLite
            assert n.attrs["mode"] == "replicate"


@pytest.mark.parametrize("act", [nn.ReLU, nn.ReLU6, nn.Sigmoid, nn.Hardsigmoid])
@pytest.mark.parametrize("ceil_mode", [False, True])
@pytest.mark.parametrize(("k", "s", "p"), [(3, 2, 1), (3, 1, 1), (2, 2, 1)])
@pytest.mark.parametrize("size", [8, 9])
def test_max_pool_of_a_non_negative_input_pads_with_zeros(act, ceil_mode, k, s, p, size):
    """After a ReLU (ResNet's stem) or another op that cannot go negative, zeros pad exactly:
    every padded window also holds a real element, which is >= 0. One constant pad, where
    edge replication lowers to slices and concatenations in TFLite."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), act(), nn.MaxPool2d(k, s, p, ceil_mode=ceil_mode)
    )
    x = torch.randn(2, 3, size, size)
    g = run_pass_and_check(import_torch(model, x), normalize_padding, [x.numpy()])
    pool = next(n for n in g.nodes if n.op == "max_pool")
    pad = pool.inputs[0].producer
    if pool.attrs["padding"] == "same":  # TF's own padding matches PyTorch's: no pad at all
        assert pad.op != "pad"
    else:
        assert pad.op == "pad" and pad.attrs["mode"] == "constant" and pad.attrs["value"] == 0.0


def test_max_pool_of_a_signed_input_keeps_edge_replication():
    """A producer that can go negative (here tanh) keeps the edge replication: zeros would win
    a window of negative values."""
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Tanh(), nn.MaxPool2d(3, 2, 1))
    x = torch.randn(2, 3, 8, 8)
    g = run_pass_and_check(import_torch(model, x), normalize_padding, [x.numpy()])
    (pad,) = [n for n in g.nodes if n.op == "pad"]
    assert pad.attrs["mode"] == "replicate"


def test_dilated_max_pool_pads_with_minus_inf():
    model = nn.MaxPool2d(3, 2, 1, dilation=2)
    x = torch.randn(2, 3, 9, 9)
    g = run_pass_and_check(import_torch(model, x), normalize_padding, [x.numpy()])
    (pad,) = [n for n in g.nodes if n.op == "pad"]
    assert pad.attrs["mode"] == "constant" and pad.attrs["value"] == float("-inf")


@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize("ceil_mode", [False, True])
@pytest.mark.parametrize(("k", "s", "p"), [(3, 2, 1), (2, 2, 1), (3, 3, 0), (3, 1, 1)])
@pytest.mark.parametrize("size", [7, 8])
def test_avg_pool(count_include_pad, ceil_mode, k, s, p, size):
    model = nn.AvgPool2d(k, s, p, ceil_mode=ceil_mode, count_include_pad=count_include_pad)
    x = torch.randn(2, 3, size, size)
    g = run_pass_and_check(import_torch(model, x), normalize_padding, [x.numpy()])
    pool = next(n for n in g.nodes if n.op == "avg_pool")
    assert pool.attrs["padding"] in ("valid", "same")
    assert set(pool.attrs) <= {"kernel", "stride", "padding", "ceil_mode", "data_format"}


def test_avg_pool_divisor_override():
    model = nn.AvgPool2d(3, 2, 1, divisor_override=4)
    x = torch.randn(2, 3, 9, 9)
    g = run_pass_and_check(import_torch(model, x), normalize_padding, [x.numpy()])
    assert ops_of(g) == ["pad", "avg_pool", "mul"]


def test_unchanged_graph_without_convs():
    x = torch.randn(2, 5)
    g = import_torch(nn.ReLU(), x)
    result = normalize_padding(g, None)
    assert not result.changed and ops_of(result.graph) == ["relu"]


def test_ceil_mode_max_pool_on_dynamic_size_any_size_is_exact():
    # SqueezeNet's MaxPool2d(3, 2, ceil_mode=True) in the one-line form: sizes unknown
    from transpiler.passes import PassContext, run_pipeline

    from transpiler.frontend import import_model
    from transpiler.interpreter import run_graph

    model = nn.MaxPool2d(3, 2, ceil_mode=True).eval()
    g = import_model(model, [torch.randn(2, 3, 9, 9)], [torch.randn(3, 3, 12, 12)]).graph
    assert g.inputs[0].shape == (None, 3, None, None)
    out = run_pipeline(g, [normalize_padding], PassContext()).graph
    for n in range(5, 14):
        x = torch.randn(1, 3, n, n)
        y = run_graph(out, [x.numpy()])[0]
        assert y.shape == tuple(model(x).shape)
        assert (y == model(x).numpy()).all()
