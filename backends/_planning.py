"""Numpy-side planning both backends share: the index arithmetic of resizing, dilated pooling
taps and padding modes, computed in one place so that the Keras layers and the TF lowerings
differ only in their tensor-op calls.

The Keras backend writes these functions' source into the generated module (beside the custom
layer that calls them: the module must stay standalone), so each is self-contained: it uses
only ``np`` (numpy), ``itertools`` and builtins, and its source is formatted for the generated
module (lines <= 100).
"""

from __future__ import annotations

import itertools

import numpy as np

__all__ = ["resize_axis", "resize_taps", "pool_taps", "pad_pieces", "HELPER_IMPORTS"]


def resize_axis(n, out, mode, align_corners=False, scale=None):
    """PyTorch's interpolate along one axis (size n -> out) as gathers, in float64 as PyTorch
    computes it: (index, None, None) for nearest (floor) and nearest-exact (half-pixel), else
    (low, high, weight) with y = x[low] + (x[high] - x[low]) * weight. scale: PyTorch's
    coordinate scale (1 / scale_factor), else n / out."""
    scale = n / out if scale is None else scale
    dst = np.arange(out, dtype=np.float64)
    if mode in ("nearest", "nearest-exact"):
        offset = 0.5 if mode == "nearest-exact" else 0.0
        return np.minimum(np.floor((dst + offset) * scale), n - 1).astype("int32"), None, None
    if align_corners:
        src = dst * ((n - 1) / (out - 1)) if out > 1 else dst * 0.0
    else:
        src = np.maximum((dst + 0.5) * scale - 0.5, 0.0)
    low = np.minimum(np.floor(src), n - 1).astype("int32")
    high = np.minimum(low + 1, n - 1)
    return low, high, (src - low).astype("float32")


def resize_taps(
    n,
    out,
    mode,
    coord,
    factor,
    nearest_mode="round_prefer_floor",
    cubic_a=-0.75,
    exclude_outside=False,
    antialias=False,
):
    """ONNX's Resize along one axis (size n -> out) as taps, computed in float64 as onnx's
    reference does: (index, weight) of shape (out, taps), y[i] = sum_t x[index[i, t]] *
    weight[i, t]; weight None: one tap (a gather). factor: ONNX's scale (output / input size);
    coord: the coordinate_transformation_mode; mode: nearest (nearest_mode), linear or cubic
    (cubic_a), both optionally antialiased; indices outside the input are clamped (edge
    padding) or, with exclude_outside, get weight 0 and the row is renormalized."""
    dst = np.arange(out, dtype=np.float64)
    length = factor * n
    if coord == "align_corners":
        src = dst * 0.0 if length == 1 else dst * (n - 1) / (length - 1)
    elif coord == "asymmetric":
        src = dst / factor
    elif coord == "tf_half_pixel_for_nn":
        src = (dst + 0.5) / factor
    elif coord == "pytorch_half_pixel" and length == 1:
        src = dst * 0.0 - 0.5
    elif coord == "half_pixel_symmetric":
        src = n / 2 * (1 - out / length) + (dst + 0.5) / factor - 0.5
    else:  # half_pixel, pytorch_half_pixel
        src = (dst + 0.5) / factor - 0.5
    base = np.floor(src)
    frac = src - base
    if mode == "nearest":
        up = {
            "round_prefer_floor": frac > 0.5,
            "round_prefer_ceil": frac >= 0.5,
            "floor": frac < 0.0,
            "ceil": frac > 0.0,
        }[nearest_mode]
        return np.clip(base + up, 0, n - 1).astype("int32")[:, None], None
    ratio = np.where(frac == 0.0, 1.0, frac)  # the reference prefers the left neighbours
    s = min(factor, 1.0) if antialias else 1.0
    if mode == "linear":
        start = int(np.floor(-1 / s) + 1)
        taps = np.arange(start, 2 - start)[None, :] - ratio[:, None]
        weight = np.clip(1 - np.abs(taps * s), 0, 1)
    else:  # cubic
        start = int(np.floor(-2 / s) + 1)
        taps = np.arange(start, 2 - start)[None, :] - ratio[:, None]
        x = np.abs(taps * s)
        a = cubic_a
        near = ((a + 2) * x - (a + 3)) * x * x + 1
        far = ((a * x - 5 * a) * x + 8 * a) * x - 4 * a
        weight = np.where(x <= 1, near, np.where(x < 2, far, 0.0))
    if antialias:
        weight = weight / weight.sum(axis=1, keepdims=True)
    half = weight.shape[1] // 2
    index = base[:, None] + np.where(frac == 0.0, -half, 1 - half)[:, None]
    index = index + np.arange(weight.shape[1])[None, :]
    if exclude_outside:
        weight = np.where((index < 0) | (index > n - 1), 0.0, weight)
        total = weight.sum(axis=1, keepdims=True)
        weight = weight / np.where(total == 0, 1.0, total)
    return np.clip(index, 0, n - 1).astype("int32"), weight.astype("float32")


def pool_taps(pool_size, strides, dilation):
    """The taps of a dilated 'valid' pooling window: per tap, the (start, stop, step) slice of
    each spatial axis it reads (stop None: to the end); the pool is the max over the taps."""
    taps = []
    for tap in itertools.product(*(range(k) for k in pool_size)):
        index = []
        for t, k, s, d in zip(tap, pool_size, strides, dilation, strict=True):
            end = (k - 1 - t) * d
            index.append((t * d, -end if end else None, s))
        taps.append(tuple(index))
    return taps


def pad_pieces(before, after, mode):
    """PyTorch's reflect, replicate or circular padding of one axis by (before, after), as the
    pieces to concatenate: (start, stop, flip, repeats), a slice of the input (negative indices
    count from the end, so the axis size may be dynamic); (None, None, False, 1) is the input."""
    if mode == "reflect":
        head, tail = (1, before + 1, True, 1), (-after - 1, -1, True, 1)
    elif mode == "replicate":
        head, tail = (0, 1, False, before), (-1, None, False, after)
    elif mode == "circular":
        head, tail = (-before, None, False, 1), (0, after, False, 1)
    else:
        raise ValueError(f"unknown padding mode {mode!r}")
    pieces = [head] if before else []
    pieces.append((None, None, False, 1))
    return pieces + [tail] if after else pieces


# the imports each function needs in the generated module ("numpy" is imported as np)
HELPER_IMPORTS = {
    "resize_axis": ("numpy",),
    "resize_taps": ("numpy",),
    "pool_taps": ("itertools",),
    "pad_pieces": (),
}
