"""split_sparse_taps: a dilated conv whose taps mostly read padding becomes 1x1 convs on the
windows its taps read, exactly; dense dilated convs are left alone."""

from __future__ import annotations

import torch
import torch.nn as nn
from _helpers import import_torch, ops_of, run_pass_and_check
from helpers import check_against_torch
from transpiler.passes import normalize_padding, split_sparse_taps

from transpiler import transpile


def test_aspp_rate_12_on_14x14_becomes_nine_1x1_convs():
    # the rate-12 ASPP branch of DeepLabV3 on a 224 input: off-centre taps live on 2 rows/cols
    model = nn.Conv2d(16, 8, 3, padding=12, dilation=12)
    x = torch.randn(2, 16, 14, 13)
    g = run_pass_and_check(
        import_torch(model, x), [normalize_padding, split_sparse_taps], [x.numpy()]
    )
    ops = ops_of(g)
    assert ops.count("conv") == 9 and ops.count("add") == 8 and ops.count("pad") == 8, ops
    convs = [n for n in g.nodes if n.op == "conv"]
    assert all(g.constants[c.inputs[1].name].shape == (8, 16, 1, 1) for c in convs)
    assert sum(len(c.inputs) == 3 for c in convs) == 1  # one bias, on the full-size term


def test_dense_dilated_conv_is_left_alone():
    model = nn.Conv2d(4, 4, 3, padding=2, dilation=2)
    x = torch.randn(1, 4, 15, 15)
    g = run_pass_and_check(
        import_torch(model, x), [normalize_padding, split_sparse_taps], [x.numpy()]
    )
    assert ops_of(g) == ["conv"]


def test_split_conv_matches_torch_end_to_end(tmp_path):
    # explicit unequal padding (a zero pad node absorbed), BatchNorm folded first, two batches
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(6, 5, 3, padding=(10, 9), dilation=(10, 9), bias=False),
        nn.BatchNorm2d(5),
        nn.ReLU(),
    ).eval()
    with torch.no_grad():
        model[1].running_mean.normal_()
        model[1].running_var.uniform_(0.5, 2.0)
    x = torch.randn(1, 6, 12, 11)
    for backend in ("keras", "tf"):
        result = transpile(model, x, backend=backend, io_layout="nhwc", out_dir=tmp_path / backend)
        record = [p for p in result.report.passes if p.name == "split_sparse_taps"][0]
        assert record.changed, record
        fn = result.load()
        check_against_torch(model, [torch.randn(3, 6, 12, 11)], fn, "nhwc", 1e-4)
