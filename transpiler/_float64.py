"""A faster float64 depthwise convolution for the numeric check's float64 reference run.

PyTorch's CPU kernels for a float64 depthwise ``conv2d`` (groups == in channels == out
channels) have no vectorized path: ConvNeXt-T's 18 depthwise 7x7 convolutions cost ~80% of
the whole check (18 s of CPU at batch 1 against 3 s with this module, measured under load).
``fast_depthwise()`` is a ``TorchFunctionMode`` that computes those convolutions as the sum
of their k·k shifted, per-channel-scaled input windows, in float64: the same products
summed in another order, so the result differs from PyTorch's by float64 rounding (~1e-15
relative), far below any tolerance the check applies. Every other call (other dtypes,
grouped but not depthwise convs, string padding, inputs that are not 4-D) goes to PyTorch
unchanged.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.overrides import TorchFunctionMode

__all__ = ["fast_depthwise"]

_CONV2D = {torch.conv2d, torch.nn.functional.conv2d}
_NAMES = ("input", "weight", "bias", "stride", "padding", "dilation", "groups")
_DEFAULTS = {"bias": None, "stride": 1, "padding": 0, "dilation": 1, "groups": 1}


def _pair(v: Any) -> tuple[int, int] | None:
    if isinstance(v, int):
        return v, v
    if isinstance(v, tuple | list) and len(v) == 2 and all(isinstance(e, int) for e in v):
        return int(v[0]), int(v[1])
    return None


def _depthwise64(args: tuple, kwargs: dict) -> torch.Tensor | None:
    """The depthwise float64 conv of ``conv2d(*args, **kwargs)``; None: not such a call."""
    if len(args) > len(_NAMES):
        return None
    bound = {**_DEFAULTS, **dict(zip(_NAMES, args, strict=False)), **kwargs}
    if set(bound) - set(_NAMES):
        return None
    x, w, b = bound.get("input"), bound.get("weight"), bound["bias"]
    stride, padding, dilation = (_pair(bound[k]) for k in ("stride", "padding", "dilation"))
    groups = bound["groups"]
    if not (
        isinstance(x, torch.Tensor)
        and isinstance(w, torch.Tensor)
        and x.dtype == torch.float64
        and w.dtype == torch.float64
        and (b is None or (isinstance(b, torch.Tensor) and b.dtype == torch.float64))
        and x.dim() == 4
        and w.dim() == 4
        and isinstance(groups, int)
        and groups > 1
        and x.shape[1] == groups == w.shape[0]
        and w.shape[1] == 1
        and None not in (stride, padding, dilation)
        and not (torch.is_grad_enabled() and (x.requires_grad or w.requires_grad))
    ):
        return None
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    kh, kw = int(w.shape[2]), int(w.shape[3])
    xp = torch.nn.functional.pad(x, (pw, pw, ph, ph)) if ph or pw else x
    ho = (xp.shape[2] - dh * (kh - 1) - 1) // sh + 1
    wo = (xp.shape[3] - dw * (kw - 1) - 1) // sw + 1
    if ho <= 0 or wo <= 0:
        return None
    out = torch.zeros(x.shape[0], groups, ho, wo, dtype=x.dtype)
    taps = w[:, 0].reshape(groups, kh * kw)
    for i in range(kh):
        for j in range(kw):
            window = xp[
                :,
                :,
                i * dh : i * dh + sh * (ho - 1) + 1 : sh,
                j * dw : j * dw + sw * (wo - 1) + 1 : sw,
            ]
            out.addcmul_(window, taps[:, i * kw + j].view(1, groups, 1, 1))
    if b is not None:
        out += b.view(1, groups, 1, 1)
    return out


class fast_depthwise(TorchFunctionMode):  # noqa: N801 - used like a function: with fast_depthwise()
    """Within it, float64 depthwise ``conv2d`` calls take the shifted-window form above."""

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        kwargs = kwargs or {}
        if func in _CONV2D:
            out = _depthwise64(tuple(args), kwargs)
            if out is not None:
                return out
        return func(*args, **kwargs)
