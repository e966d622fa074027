"""Differential fuzzing: random small models, transpiled with ``verify=False``, against PyTorch.

Hypothesis draws a model from the grammar below, with random sizes, and an io_layout
(``"nchw"`` or ``"nhwc"``); the model is transpiled (Keras backend, no numeric check of our own)
and its outputs compared with PyTorch's at the example batch (2) and at batch 3, under the
contract's bound ``1e-4 * max(1, max|y|)``. Runs are deterministic (``derandomize=True``, no
example database). A mismatch is a converter bug: its printed model spec becomes a regression
case (``check_spec(spec, tmp_path)`` in a test, or a case in tests/ops/cases.py).

Grammar (C channels, H x W spatial size, tracked while drawing so every model is valid):

    model  := input (N, C0, H, W), C0 in 1..4, H, W in 4..11
              stem                        Conv2d(C0, C, 3, padding=1), C in 2..8
              block{1..4}
              head
    block  := conv      Conv2d(C, C', k in {1, 2, 3}, stride in {1, 2}, padding in {0, k // 2,
                        "same" (stride 1)}, dilation in {1, 2}, groups in {1, C (depthwise,
                        C' = C or 2C)}, padding_mode zeros | reflect | replicate | circular)
            | convT     ConvTranspose2d(C, C', k in {2, 3}, stride in {1, 2}, padding in {0, 1},
                        output_padding < stride)
            | pool      MaxPool2d / AvgPool2d(k in {2, 3}, stride in {1, 2}, padding <= k // 2,
                        ceil_mode, count_include_pad) | AdaptiveAvg/MaxPool2d(size in 1..3)
            | norm      BatchNorm2d (random statistics) | GroupNorm(g | C) | InstanceNorm2d
                        (affine) | LayerNorm over channels (permute -> LayerNorm -> permute)
            | act       ReLU | ReLU6 | GELU(none | tanh) | SiLU | Hardswish | Hardsigmoid |
                        Sigmoid | Tanh | LeakyReLU(slope) | ELU | Mish | Softplus
            | residual  x + act(Conv2d(C, C, 3, padding=1)(x))
            | concat    cat([x, Conv2d(C, c, 1)(x)], dim=1)
            | split     a, b = x.split([s, C - s], 1); cat([b, a * sigmoid(a.mean((2, 3)))...])
                        (chunk/split along channels, gate, concatenate back)
            | shuffle   channel shuffle: view(N, g, C/g, H, W).transpose(1, 2).reshape(N, C, H, W)
            | permute   x.permute(0, 1, 3, 2) (H and W swapped)
            | interp    F.interpolate(scale 2 | size, nearest | bilinear (align_corners either))
            | attention tokens = x.flatten(2).transpose(1, 2); MultiheadAttention(C, heads | C)
                        (self-attention) -> back to (N, C, H, W) as a residual
            | arith     x * scalar + constant per channel (broadcast (C, 1, 1)) | x.clamp(...)
    head   := map       return the feature map
            | linear    flatten(1) -> Linear(C*H*W, o)
            | pooled    adaptive_avg_pool2d(1).flatten(1) -> Linear(C, o)
            | mean      x.mean((2, 3)) and x.amax(1) (two outputs)

The default run draws ``FUZZ_EXAMPLES`` models (200, about 2.5 minutes on one quiet core: one
transpile per model); ``-m slow`` runs 200 more (``FUZZ_EXAMPLES=N`` overrides the default).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import check_against_torch, randomize_bn
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from transpiler import transpile

FUZZ_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", 200))
SLOW_EXAMPLES = 200

ACTS = {
    "relu": nn.ReLU,
    "relu6": nn.ReLU6,
    "gelu": nn.GELU,
    "gelu-tanh": lambda: nn.GELU(approximate="tanh"),
    "silu": nn.SiLU,
    "hardswish": nn.Hardswish,
    "hardsigmoid": nn.Hardsigmoid,
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "leaky": lambda: nn.LeakyReLU(0.2),
    "elu": nn.ELU,
    "mish": nn.Mish,
    "softplus": nn.Softplus,
}


@dataclass
class Shape:
    c: int
    h: int
    w: int


def _out(size: int, k: int, s: int, p: int, d: int = 1) -> int:
    return (size + 2 * p - d * (k - 1) - 1) // s + 1


@st.composite
def conv_block(draw, x: Shape):
    k = draw(st.sampled_from([1, 2, 3]))
    stride = draw(st.sampled_from([1, 2]))
    dilation = draw(st.sampled_from([1, 2])) if k > 1 else 1
    pad_kind = draw(st.sampled_from(["zero", "half", "same"] if stride == 1 else ["zero", "half"]))
    padding = {"zero": 0, "half": k // 2 * dilation, "same": "same"}[pad_kind]
    depthwise = draw(st.booleans())
    cout = x.c * draw(st.sampled_from([1, 2])) if depthwise else draw(st.integers(2, 8))
    mode = "zeros"
    if isinstance(padding, int) and padding > 0:
        mode = draw(st.sampled_from(["zeros", "zeros", "reflect", "replicate", "circular"]))
    p = padding if isinstance(padding, int) else None
    h = x.h if p is None else _out(x.h, k, stride, p, dilation)
    w = x.w if p is None else _out(x.w, k, stride, p, dilation)
    if h < 1 or w < 1 or (mode == "reflect" and padding >= min(x.h, x.w)):
        mode, padding, h, w = "zeros", "same", x.h, x.w
        stride = 1
    spec = ("conv", x.c, cout, k, stride, padding, dilation, x.c if depthwise else 1, mode)
    return spec, Shape(cout, h, w)


@st.composite
def conv_t_block(draw, x: Shape):
    k = draw(st.sampled_from([2, 3]))
    stride = draw(st.sampled_from([1, 2]))
    padding = draw(st.sampled_from([0, 1]))
    out_pad = draw(st.integers(0, stride - 1))
    cout = draw(st.integers(2, 8))
    h = (x.h - 1) * stride - 2 * padding + k + out_pad
    w = (x.w - 1) * stride - 2 * padding + k + out_pad
    if h < 1 or w < 1 or h > 24 or w > 24:
        return ("act", "relu"), x
    return ("convT", x.c, cout, k, stride, padding, out_pad), Shape(cout, h, w)


@st.composite
def pool_block(draw, x: Shape):
    kind = draw(st.sampled_from(["max", "avg", "adaptive-avg", "adaptive-max"]))
    if kind.startswith("adaptive"):
        size = draw(st.integers(1, 3))
        return ("adaptive", kind, size), Shape(x.c, size, size)
    k = draw(st.sampled_from([2, 3]))
    if min(x.h, x.w) < k:
        return ("act", "relu"), x
    stride = draw(st.sampled_from([1, 2]))
    padding = draw(st.integers(0, k // 2))
    ceil = draw(st.booleans())
    include = draw(st.booleans())

    def size(n: int) -> int:
        if not ceil:
            return _out(n, k, stride, padding)
        out = -(-(n + 2 * padding - k) // stride) + 1
        if (out - 1) * stride >= n + padding:
            out -= 1
        return out

    return ("pool", kind, k, stride, padding, ceil, include), Shape(x.c, size(x.h), size(x.w))


@st.composite
def block(draw, x: Shape):
    kind = draw(
        st.sampled_from(
            [
                "conv",
                "conv",
                "convT",
                "pool",
                "norm",
                "act",
                "residual",
                "concat",
                "split",
                "shuffle",
                "permute",
                "interp",
                "attention",
                "arith",
            ]
        )
    )
    if kind == "conv":
        return draw(conv_block(x))
    if kind == "convT":
        return draw(conv_t_block(x))
    if kind == "pool":
        return draw(pool_block(x))
    if kind == "norm":
        norm = draw(st.sampled_from(["bn", "gn", "in", "ln"]))
        groups = draw(st.sampled_from([g for g in (1, 2, x.c) if x.c % g == 0]))
        return ("norm", norm, x.c, groups), x
    if kind == "act":
        return ("act", draw(st.sampled_from(sorted(ACTS)))), x
    if kind == "residual":
        return ("residual", x.c, draw(st.sampled_from(sorted(ACTS)))), x
    if kind == "concat":
        extra = draw(st.integers(1, 4))
        return ("concat", x.c, extra), Shape(x.c + extra, x.h, x.w)
    if kind == "split" and x.c >= 2:
        return ("split", draw(st.integers(1, x.c - 1))), x
    if kind == "shuffle" and x.c % 2 == 0:
        return ("shuffle", 2), x
    if kind == "permute":
        return ("permute",), Shape(x.c, x.w, x.h)
    if kind == "interp" and max(x.h, x.w) <= 12:
        mode = draw(st.sampled_from(["nearest", "bilinear", "bilinear-ac"]))
        by_size = draw(st.booleans())
        if by_size:
            h, w = draw(st.integers(1, 16)), draw(st.integers(1, 16))
            return ("interp", mode, (h, w)), Shape(x.c, h, w)
        return ("interp", mode, None), Shape(x.c, x.h * 2, x.w * 2)
    if kind == "attention":
        heads = draw(st.sampled_from([h for h in (1, 2) if x.c % h == 0]))
        return ("attention", x.c, heads), x
    if kind == "arith":
        return ("arith", x.c, draw(st.sampled_from(["affine", "clamp"]))), x
    return ("act", "relu"), x


@st.composite
def model_spec(draw):
    c0 = draw(st.integers(1, 4))
    h, w = draw(st.integers(4, 11)), draw(st.integers(4, 11))
    c = draw(st.integers(2, 8))
    x = Shape(c, h, w)
    blocks = []
    for _ in range(draw(st.integers(1, 4))):
        spec, x = draw(block(x))
        blocks.append(spec)
    head = draw(st.sampled_from(["map", "linear", "pooled", "mean"]))
    out = draw(st.integers(1, 6))
    layout = draw(st.sampled_from(["nchw", "nhwc"]))
    seed = draw(st.integers(0, 2**16))
    return {
        "input": (c0, h, w),
        "stem": c,
        "blocks": blocks,
        "head": (head, out, x.c * x.h * x.w, x.c),
        "layout": layout,
        "seed": seed,
    }


class Fuzzed(nn.Module):
    """The model a spec describes (see the module docstring for the grammar)."""

    def __init__(self, spec: dict):
        super().__init__()
        torch.manual_seed(spec["seed"])
        self.spec = spec
        self.stem = nn.Conv2d(spec["input"][0], spec["stem"], 3, padding=1)
        self.layers = nn.ModuleList(self._layer(b) for b in spec["blocks"])
        head, out, flat, c = spec["head"]
        self.head = (
            nn.Linear(flat if head == "linear" else c, out)
            if head in ("linear", "pooled")
            else nn.Identity()
        )

    @staticmethod
    def _layer(b: tuple) -> nn.Module:
        kind = b[0]
        if kind == "conv":
            _, cin, cout, k, s, p, d, g, mode = b
            return nn.Conv2d(cin, cout, k, s, p, d, g, padding_mode=mode)
        if kind == "convT":
            _, cin, cout, k, s, p, op = b
            return nn.ConvTranspose2d(cin, cout, k, s, p, op)
        if kind == "pool" and b[1] == "max":
            return nn.MaxPool2d(b[2], b[3], b[4], ceil_mode=b[5])
        if kind == "pool":
            return nn.AvgPool2d(b[2], b[3], b[4], ceil_mode=b[5], count_include_pad=b[6])
        if kind == "adaptive":
            return (nn.AdaptiveAvgPool2d if b[1] == "adaptive-avg" else nn.AdaptiveMaxPool2d)(b[2])
        if kind == "norm":
            _, norm, c, groups = b
            if norm == "bn":
                return randomize_bn(nn.BatchNorm2d(c), seed=c)
            if norm == "gn":
                return nn.GroupNorm(groups, c)
            if norm == "in":
                return nn.InstanceNorm2d(c, affine=True)
            return nn.LayerNorm(c)
        if kind == "act":
            return ACTS[b[1]]()
        if kind == "residual":
            return nn.Sequential(nn.Conv2d(b[1], b[1], 3, padding=1), ACTS[b[2]]())
        if kind == "concat":
            return nn.Conv2d(b[1], b[2], 1)
        if kind == "attention":
            return nn.MultiheadAttention(b[1], b[2], batch_first=True)
        if kind == "arith":
            m = nn.Module()
            m.register_buffer("shift", torch.randn(b[1], 1, 1))
            return m
        return nn.Identity()

    def forward(self, x):
        x = self.stem(x)
        for b, layer in zip(self.spec["blocks"], self.layers, strict=True):
            x = self._apply(b, layer, x)
        head = self.spec["head"][0]
        if head == "linear":
            return self.head(x.flatten(1))
        if head == "pooled":
            return self.head(F.adaptive_avg_pool2d(x, 1).flatten(1))
        if head == "mean":
            return x.mean((2, 3)), x.amax(1)
        return x

    @staticmethod
    def _apply(b: tuple, layer: nn.Module, x):
        kind = b[0]
        if kind == "norm" and b[1] == "ln":
            return layer(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        if kind == "residual":
            return x + layer(x)
        if kind == "concat":
            return torch.cat([x, layer(x)], 1)
        if kind == "split":
            a, c = x.split([b[1], x.shape[1] - b[1]], 1)
            return torch.cat([c, a * torch.sigmoid(a.mean((2, 3), keepdim=True))], 1)
        if kind == "shuffle":
            n, c, h, w = x.shape
            return x.view(n, b[1], c // b[1], h, w).transpose(1, 2).reshape(n, c, h, w)
        if kind == "permute":
            return x.permute(0, 1, 3, 2)
        if kind == "interp":
            mode, size = b[1], b[2]
            kwargs = {"mode": "bilinear", "align_corners": mode == "bilinear-ac"}
            if mode == "nearest":
                kwargs = {"mode": "nearest"}
            if size is None:
                return F.interpolate(x, scale_factor=2, **kwargs)
            return F.interpolate(x, size=size, **kwargs)
        if kind == "attention":
            n, c, h, w = x.shape
            t = x.flatten(2).transpose(1, 2)
            y, _ = layer(t, t, t, need_weights=False)
            return x + y.transpose(1, 2).reshape(n, c, h, w)
        if kind == "arith":
            if b[2] == "affine":
                return x * 0.5 + layer.shift
            return x.clamp(-0.5, 0.75)
        return layer(x)


def check_spec(spec: dict, tmp_path) -> None:
    """Transpile the spec's model with verify=False; compare with PyTorch at batches 2 and 3."""
    model = Fuzzed(spec).eval()
    gen = torch.Generator().manual_seed(spec["seed"])
    example = torch.randn((2, *spec["input"]), generator=gen)
    with torch.no_grad():
        model(example)  # the grammar only builds valid models: PyTorch must run it
    result = transpile(
        model, example, verify=False, io_layout=spec["layout"], out_dir=tmp_path / "out"
    )
    fn = result.load()
    check_against_torch(model, example, fn, spec["layout"])
    other = torch.randn((3, *spec["input"]), generator=gen)
    check_against_torch(model, other, fn, spec["layout"])


def _run(tmp_path_factory, spec):
    check_spec(spec, tmp_path_factory.mktemp("fuzz"))


_SETTINGS = dict(
    database=None,
    derandomize=True,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@settings(max_examples=FUZZ_EXAMPLES, **_SETTINGS)
@given(spec=model_spec())
def test_fuzz(tmp_path_factory, spec):
    _run(tmp_path_factory, spec)


@pytest.mark.slow
@settings(max_examples=SLOW_EXAMPLES, **_SETTINGS)
@given(spec=model_spec(), salt=st.integers(0, 2**30))
def test_fuzz_slow(tmp_path_factory, spec, salt):
    spec = {**spec, "seed": (spec["seed"] + salt) % 2**31}
    _run(tmp_path_factory, spec)


def test_grammar_draws_every_block():
    """The grammar reaches every block kind (a fuzzer that never draws one tests nothing)."""
    seen: set[str] = set()

    @settings(max_examples=300, database=None, derandomize=True, deadline=None)
    @given(spec=model_spec())
    def collect(spec):
        seen.update(b[0] for b in spec["blocks"])

    collect()
    expected = {"conv", "convT", "pool", "adaptive", "norm", "act", "residual", "concat"}
    expected |= {"split", "shuffle", "permute", "interp", "attention", "arith"}
    assert expected <= seen, expected - seen
    assert np.isfinite(len(seen))
