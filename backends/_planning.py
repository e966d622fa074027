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
    "cubic_taps",
    "resize_builtins",
    "pool_taps",
    "pad_pieces",
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


def cubic_taps(n, out, align_corners=False, scale=None):
    """PyTorch's bicubic interpolate along one axis (size n -> out) as four gathers:
    (index, weight), each (4, out), with y = sum over taps of x[index[k]] * weight[k].
    PyTorch's kernel: Keys' cubic convolution with A = -0.75, source x = (dst + 0.5) * scale - 0.5
    (not clamped at 0) or dst * (n - 1) / (out - 1) with align_corners, taps floor(x) - 1 ..
    floor(x) + 2 clamped to the border. scale: PyTorch's coordinate scale (1 / scale_factor),
    else n / out. Computed in float64."""
    a = -0.75
    dst = np.arange(out, dtype=np.float64)
    if align_corners:
        src = dst * ((n - 1) / (out - 1)) if out > 1 else dst * 0.0
    else:
        src = (dst + 0.5) * (n / out if scale is None else scale) - 0.5
    base = np.floor(src)
    t = src - base
    near = [t, 1.0 - t]  # distances to the two inner taps
    far = [t + 1.0, 2.0 - t]  # distances to the two outer taps
    inner = [((a + 2) * d - (a + 3)) * d * d + 1 for d in near]
    outer = [((a * d - 5 * a) * d + 8 * a) * d - 4 * a for d in far]
    weight = np.stack([outer[0], inner[0], inner[1], outer[1]]).astype("float32")
    index = base.astype("int64")[None, :] + np.arange(-1, 3)[:, None]
    return np.clip(index, 0, n - 1).astype("int32"), weight


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
    "cubic_taps": ("numpy",),
    "pool_taps": ("itertools",),
    "pad_pieces": (),
}
