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

__all__ = [
    "resize_axis",
    "resize_builtins",
    "resize_taps",
    "pool_taps",
    "pad_pieces",
    "grid_source",
    "grid_sample_taps",
    "HELPER_IMPORTS",
]


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


def _interpolation_matrix(n, out, low, high=None, weight=None):
    """The (out, n) matrix of a gather (high None) or linear plan, in float64."""
    m = np.zeros((out, n))
    rows = np.arange(out)
    if high is None:
        m[rows, low] = 1.0
        return m
    w = np.asarray(weight, np.float64).reshape(-1)
    np.add.at(m, (rows, low), 1.0 - w)
    np.add.at(m, (rows, high), w)
    return m


def _tf_resize_axis(n, out, kind):
    """TensorFlow's (and TFLite's) resize kernels along one axis, in their float32 arithmetic:
    kind 'bilinear' (half_pixel_centers), 'bilinear_align_corners', 'nearest' (half-pixel
    centres, floor) or 'nearest_legacy' (neither: floor(dst * n / out))."""
    f32 = np.float32
    dst = np.arange(out, dtype=f32)
    if kind == "bilinear_align_corners":
        scale = f32((n - 1) / (out - 1)) if out > 1 else f32(0.0)
    else:
        scale = f32(n / out)
    if kind.startswith("nearest"):
        src = (dst + f32(0.5)) * scale if kind == "nearest" else dst * scale
        return _interpolation_matrix(n, out, np.minimum(np.floor(src), n - 1).astype(int))
    src = dst * scale if kind == "bilinear_align_corners" else (dst + f32(0.5)) * scale - f32(0.5)
    low = np.floor(src)
    high = np.minimum(np.ceil(src), n - 1).astype(int)
    weight = (src - low).astype(np.float64)
    return _interpolation_matrix(n, out, np.maximum(low, 0).astype(int), high, weight)


def resize_builtins(ins, sizes, mode, align_corners=False, scales=None):
    """The TF/TFLite resize kernels ('bilinear', 'bilinear_align_corners', 'nearest',
    'nearest_legacy'; see ``_tf_resize_axis``) that compute PyTorch's interpolate exactly on
    these static sizes (linear: the same interpolation weights within 1e-5, float32 rounding;
    nearest: the same source index for every output position), as a tuple (empty: none does;
    the gathers of ``resize_axis`` then stay). Used at conversion time only, never written into
    a module."""
    kinds = ("nearest", "nearest_legacy") if mode.startswith("nearest") else ("bilinear",)
    if mode == "linear" and align_corners:
        kinds = ("bilinear_align_corners",)
    if mode not in ("nearest", "nearest-exact", "linear") or None in ins:
        return ()
    ok = []
    for kind in kinds:
        for axis, (n, out) in enumerate(zip(ins, sizes, strict=True)):
            scale = scales[axis] if scales else None
            want = _interpolation_matrix(n, out, *resize_axis(n, out, mode, align_corners, scale))
            if np.abs(_tf_resize_axis(n, out, kind) - want).max() > 1e-5:
                break
        else:
            ok.append(kind)
    return tuple(ok)


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


def grid_source(ops, coord, size, padding_mode, align_corners):
    """F.grid_sample's source coordinate along one axis (size `size`) of normalized `coord` in
    [-1, 1], in the order of operations of PyTorch's CPU kernel (GridSamplerKernel.cpp):
    unnormalized, then clipped (border) or reflected and clipped (reflection). `ops`:
    keras.ops, or the same functions over tf."""
    if align_corners:
        src = (coord + 1.0) * ((size - 1) / 2)
        low, twice_span = 0.0, float(size - 1) * 2
    else:
        src = (coord + 1.0) * (size / 2) - 0.5
        low, twice_span = -0.5, float(size) * 2
    if padding_mode == "reflection":
        if twice_span == 0:
            return src * 0.0
        t = ops.abs(src - low)
        extra = t - ops.floor(t / twice_span) * twice_span
        src = ops.minimum(extra, twice_span - extra) + low
    if padding_mode in ("border", "reflection"):
        src = ops.clip(src, 0.0, float(size - 1))
    return src


def grid_sample_taps(ops, grid, size, mode, padding_mode, align_corners):
    """The taps of F.grid_sample on a (N, C, H, W) input of spatial `size` (H, W) at `grid`
    (N, Ho, Wo, 2: x then y): per tap, the flat index y * W + x (int32, clipped into range) and
    its weight (zero where the tap lies outside the input). The result is the sum over the taps,
    in order, of the gathered values times the weights (bilinear: the nw, ne, sw, se corners;
    nearest: one tap, rounded half to even as PyTorch's kernel rounds)."""
    h, w = size
    ix = grid_source(ops, grid[..., 0], w, padding_mode, align_corners)
    iy = grid_source(ops, grid[..., 1], h, padding_mode, align_corners)
    if mode == "nearest":
        corners = [(ops.round(ix), ops.round(iy), None)]
    else:
        x0, y0 = ops.floor(ix), ops.floor(iy)
        dw, dn = ix - x0, iy - y0
        de, ds = 1.0 - dw, 1.0 - dn
        x1, y1 = x0 + 1.0, y0 + 1.0
        corners = [(x0, y0, ds * de), (x1, y0, ds * dw), (x0, y1, dn * de), (x1, y1, dn * dw)]
    taps = []
    for tx, ty, weight in corners:
        inside = ops.logical_and(
            ops.logical_and(tx >= 0, tx <= w - 1), ops.logical_and(ty >= 0, ty <= h - 1)
        )
        weight = ops.cast(inside, "float32") if weight is None else ops.where(inside, weight, 0.0)
        index = ops.clip(ty, 0, h - 1) * w + ops.clip(tx, 0, w - 1)
        taps.append((ops.cast(index, "int32"), weight))
    return taps


# the imports each function needs in the generated module ("numpy" is imported as np)
HELPER_IMPORTS = {
    "resize_axis": ("numpy",),
    "pool_taps": ("itertools",),
    "pad_pieces": (),
    "grid_source": (),
    "grid_sample_taps": (),
    "resize_taps": ("numpy",),
}
