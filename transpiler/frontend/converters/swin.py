"""torchvision's Swin Transformer helpers, which torch.fx keeps opaque (``torch.fx.wrap``):
``shifted_window_attention`` and ``_patch_merging_pad``, rebuilt from IR ops with the concrete
sizes known at conversion time (the batch stays dynamic)."""

from __future__ import annotations

import numpy as np

from ...errors import TranspileError
from ...ir import TensorType, Value
from ..fx_importer import Builder
from ..registry import converts


def _op(b: Builder, name: str, inputs: list, out_shape, **attrs) -> Value:
    return b.op(name, inputs, TensorType(tuple(out_shape), "float32"), **attrs)


def _reshape(b: Builder, x: Value, shape) -> Value:
    shape = tuple(shape)
    return _op(b, "reshape", [x], shape, shape=tuple(-1 if d is None else d for d in shape))


def _transpose(b: Builder, x: Value, perm) -> Value:
    return _op(b, "transpose", [x], [x.shape[p] for p in perm], perm=tuple(perm))


def _slice(b: Builder, x: Value, axis: int, start: int, stop: int | None, step: int = 1) -> Value:
    shape = list(x.shape)
    shape[axis] = len(range(*slice(start, stop, step).indices(shape[axis])))
    return _op(b, "slice", [x], shape, axes=(axis,), starts=(start,), stops=(stop,), steps=(step,))


def _roll(b: Builder, x: Value, shift: int, axis: int) -> Value:
    """torch.roll along one static axis: the last `shift` elements move to the front."""
    n = x.shape[axis]
    shift %= n
    if shift == 0:
        return x
    tail, head = _slice(b, x, axis, n - shift, None), _slice(b, x, axis, 0, n - shift)
    return _op(b, "cat", [tail, head], x.shape, axis=axis)


def _linear(b: Builder, x: Value, weight: Value, bias: Value | None) -> Value:
    out = (*x.shape[:-1], b.graph.constant(weight).shape[0])
    return _op(b, "linear", [x, weight] + ([bias] if bias is not None else []), out)


def _attention_mask(pad_h: int, pad_w: int, ws: list[int], shift: list[int]) -> np.ndarray:
    """The (windows, N, N) mask torchvision builds for shifted windows: -100 across regions."""
    mask = np.zeros((pad_h, pad_w), np.float32)
    count = 0
    for h in ((0, -ws[0]), (-ws[0], -shift[0]), (-shift[0], None)):
        for w in ((0, -ws[1]), (-ws[1], -shift[1]), (-shift[1], None)):
            mask[h[0] : h[1], w[0] : w[1]] = count
            count += 1
    mask = mask.reshape(pad_h // ws[0], ws[0], pad_w // ws[1], ws[1]).transpose(0, 2, 1, 3)
    mask = mask.reshape(-1, ws[0] * ws[1])
    diff = mask[:, None, :] - mask[:, :, None]
    return np.where(diff != 0, np.float32(-100.0), np.float32(0.0)).astype(np.float32)


def _windows(b: Builder, x: Value, ws: list[int]) -> Value:
    """(B, pH, pW, C) -> (B * windows, ws0 * ws1, C)."""
    _, ph, pw, c = x.shape
    x = _reshape(b, x, (None, ph // ws[0], ws[0], pw // ws[1], ws[1], c))
    x = _transpose(b, x, (0, 1, 3, 2, 4, 5))
    return _reshape(b, x, (None, ws[0] * ws[1], c))


def _unwindows(b: Builder, x: Value, ws: list[int], ph: int, pw: int) -> Value:
    c = x.shape[-1]
    x = _reshape(b, x, (None, ph // ws[0], pw // ws[1], ws[0], ws[1], c))
    x = _transpose(b, x, (0, 1, 3, 2, 4, 5))
    return _reshape(b, x, (None, ph, pw, c))


def shifted_window_attention(
    b: Builder,
    input,
    qkv_weight,
    proj_weight,
    relative_position_bias,
    window_size,
    num_heads,
    shift_size,
    attention_dropout=0.0,
    dropout=0.0,
    qkv_bias=None,
    proj_bias=None,
    logit_scale=None,
    training=True,
):
    if logit_scale is not None:
        raise TranspileError(f"Swin V2 cosine attention at {b.where()} is not supported yet")
    _, h, w, c = input.shape
    if None in (h, w, c):
        raise TranspileError(f"shifted window attention at {b.where()} needs static sizes")
    ws, shift = list(window_size), list(shift_size)
    pad_r, pad_b = (ws[1] - w % ws[1]) % ws[1], (ws[0] - h % ws[0]) % ws[0]
    x = input
    if pad_r or pad_b:
        pads = ((0, 0), (0, pad_b), (0, pad_r), (0, 0))
        x = _op(
            b, "pad", [x], (None, h + pad_b, w + pad_r, c), pads=pads, mode="constant", value=0.0
        )
    ph, pw = h + pad_b, w + pad_r
    shift = [0 if ws[0] >= ph else shift[0], 0 if ws[1] >= pw else shift[1]]
    x = _roll(b, _roll(b, x, -shift[0], 1), -shift[1], 2)
    x = _windows(b, x, ws)
    n, heads, d = ws[0] * ws[1], num_heads, c // num_heads
    qkv = _linear(b, x, qkv_weight, qkv_bias)
    q, k, v = (
        _transpose(
            b, _reshape(b, _slice(b, qkv, 2, i * c, (i + 1) * c), (None, n, heads, d)), (0, 2, 1, 3)
        )
        for i in range(3)
    )
    q = _op(b, "mul", [q, b.scalar(d**-0.5)], q.shape)
    attn = _op(b, "matmul", [q, _transpose(b, k, (0, 1, 3, 2))], (None, heads, n, n))
    attn = _op(b, "add", [attn, relative_position_bias], attn.shape)
    if sum(shift) > 0:
        windows = (ph // ws[0]) * (pw // ws[1])
        mask = b.const(_attention_mask(ph, pw, ws, shift)[:, None], "shift_mask")
        attn = _reshape(b, attn, (None, windows, heads, n, n))
        attn = _op(b, "add", [attn, mask], attn.shape)
        attn = _reshape(b, attn, (None, heads, n, n))
    attn = _op(b, "softmax", [attn], attn.shape, axis=3)
    x = _op(b, "matmul", [attn, v], (None, heads, n, d))
    x = _reshape(b, _transpose(b, x, (0, 2, 1, 3)), (None, n, c))
    x = _linear(b, x, proj_weight, proj_bias)
    x = _unwindows(b, x, ws, ph, pw)
    x = _roll(b, _roll(b, x, shift[0], 1), shift[1], 2)
    if pad_r or pad_b:
        x = _slice(b, _slice(b, x, 1, 0, h), 2, 0, w)
    return x


def patch_merging_pad(b: Builder, x):
    _, h, w, c = x.shape
    if h % 2 or w % 2:
        x = _op(
            b,
            "pad",
            [x],
            (None, h + h % 2, w + w % 2, c),
            pads=((0, 0), (0, h % 2), (0, w % 2), (0, 0)),
            mode="constant",
            value=0.0,
        )
    parts = [
        _slice(b, _slice(b, x, 1, i, None, 2), 2, j, None, 2)
        for j, i in ((0, 0), (0, 1), (1, 0), (1, 1))
    ]
    _, hh, ww, _ = parts[0].shape
    return _op(b, "cat", parts, (None, hh, ww, 4 * c), axis=3)


def _register() -> None:
    try:
        from torchvision.models import swin_transformer as swin
    except ImportError:  # pragma: no cover - torchvision is optional
        return
    converts(swin.shifted_window_attention)(shifted_window_attention)
    converts(swin._patch_merging_pad)(patch_merging_pad)


_register()
