"""The check's fast float64 depthwise conv (transpiler/_float64.py) equals PyTorch's."""

from __future__ import annotations

import pytest
import torch

from transpiler._float64 import _depthwise64, fast_depthwise

F = torch.nn.functional


@pytest.mark.parametrize(
    ("k", "stride", "padding", "dilation", "bias"),
    [
        (7, 1, 3, 1, True),
        (3, 2, 1, 1, False),
        (5, (2, 1), (2, 0), 1, True),
        (3, 1, 2, 2, True),
        (3, 2, 0, (1, 2), False),
    ],
)
def test_depthwise_float64_matches_torch(k, stride, padding, dilation, bias):
    torch.manual_seed(0)
    x = torch.randn(3, 8, 13, 11, dtype=torch.float64)
    w = torch.randn(8, 1, k, k, dtype=torch.float64)
    b = torch.randn(8, dtype=torch.float64) if bias else None
    want = F.conv2d(x, w, b, stride, padding, dilation, 8)
    with fast_depthwise():
        got = F.conv2d(x, w, b, stride=stride, padding=padding, dilation=dilation, groups=8)
        got_positional = torch.conv2d(x, w, b, stride, padding, dilation, 8)
    assert got.shape == want.shape
    assert _depthwise64((x, w, b, stride, padding, dilation, 8), {}) is not None  # the fast path
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(got_positional, want, rtol=1e-12, atol=1e-12)


def test_module_and_fallbacks_unchanged():
    torch.manual_seed(0)
    dw = torch.nn.Conv2d(6, 6, 3, padding=1, groups=6, padding_mode="reflect").double()
    grouped = torch.nn.Conv2d(6, 4, 3, padding="same", groups=2).double()
    x = torch.randn(2, 6, 9, 9, dtype=torch.float64)
    plain = torch.nn.Conv2d(6, 6, 3, padding=1, groups=6).double()
    with torch.no_grad():  # a module's weights require grad: the fast path runs under no_grad
        assert (
            _depthwise64((x, plain.weight, plain.bias, (1, 1), (1, 1), (1, 1), 6), {}) is not None
        )
        want_plain = plain(x)
        with fast_depthwise():
            torch.testing.assert_close(plain(x), want_plain, rtol=1e-12, atol=1e-12)
        want = (dw(x), grouped(x), dw.float()(x.float()))
        dw.double()
        with fast_depthwise():
            got = (dw(x), grouped(x), dw.float()(x.float()))
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, rtol=1e-12, atol=1e-12)
