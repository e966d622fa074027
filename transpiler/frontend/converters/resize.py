"""Resampling: F.interpolate / nn.Upsample (nearest, nearest-exact, (bi/tri)linear, bicubic,
area), and F.grid_sample (bilinear, nearest; zeros, border, reflection padding)."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ...errors import TranspileError
from ...ir import Value
from ..fx_importer import Builder
from ..registry import converts

_MODES = {
    "nearest": "nearest",
    "nearest-exact": "nearest-exact",
    "linear": "linear",
    "bilinear": "linear",
    "trilinear": "linear",
}


# F.interpolate(input, size=None, scale_factor=None, mode='nearest', align_corners=None,
#               recompute_scale_factor=None, antialias=False)
@converts(F.interpolate, F.upsample)
def interpolate(
    b: Builder,
    input,
    size=None,
    scale_factor=None,
    mode="nearest",
    align_corners=None,
    recompute_scale_factor=None,
    antialias=False,
):
    if mode == "area":  # PyTorch defines it as adaptive average pooling to the output size
        return b.op("adaptive_avg_pool", [input], output_size=tuple(b.out_type.shape[2:]))
    if mode not in _MODES and mode != "bicubic":
        raise TranspileError(f"interpolate(mode={mode!r}) at {b.where()} is not supported yet")
    if antialias:
        raise TranspileError(f"interpolate(antialias=True) at {b.where()} is not supported")
    n = input.rank - 2
    sizes = tuple(b.out_type.shape[2:])
    given = None  # the scale factors torch maps coordinates with (instead of in / out)
    if scale_factor is not None and not recompute_scale_factor:
        factors = scale_factor if isinstance(scale_factor, list | tuple) else [scale_factor] * n
        given = tuple(float(f) for f in b.static(factors, "scale_factor"))
    if mode == "bicubic":
        return _bicubic(b, input, sizes, given, bool(align_corners))
    scales = None if given is None else tuple(1.0 / f for f in given)
    return b.op(
        "resize",
        [input],
        sizes=sizes,
        mode=_MODES[mode],
        align_corners=bool(align_corners),
        scales=scales,
    )


def _bicubic(b: Builder, x: Value, sizes: tuple, given: tuple | None, align: bool) -> Value:
    """PyTorch's bicubic (Keys' kernel, A = -0.75, taps clamped to the border) is ONNX's cubic
    Resize with cubic_coeff_a -0.75 and edge clamping: coordinate_transformation_mode
    align_corners (PyTorch then ignores scale_factor), else half_pixel with ONNX's factor
    out / in, or the ``given`` scale_factor (PyTorch's coordinate scale is its inverse). The
    IR's resize with an ONNX ``coord`` (backends/_planning.py resize_taps)."""
    ins = x.shape[2:]
    if None in ins:
        raise TranspileError(
            f"bicubic interpolate at {b.where()} on a dynamic spatial size; pass example_inputs "
            "with a fixed size."
        )
    if given is None or align:
        factors = tuple(o / i for i, o in zip(ins, sizes, strict=True))
    else:
        factors = given
    return b.op(
        "resize",
        [x],
        sizes=sizes,
        mode="cubic",
        coord="align_corners" if align else "half_pixel",
        factors=factors,
    )


@converts(nn.Upsample, nn.UpsamplingNearest2d, nn.UpsamplingBilinear2d)
def upsample_module(b: Builder, m: nn.Upsample, input):
    align = m.align_corners
    if isinstance(m, nn.UpsamplingBilinear2d):
        align = True
    return interpolate(
        b, input, m.size, m.scale_factor, m.mode, align, getattr(m, "recompute_scale_factor", None)
    )


_GRID_MODES = ("bilinear", "nearest", "bicubic")
_GRID_PADDINGS = ("zeros", "border", "reflection")


# F.grid_sample(input, grid, mode="bilinear", padding_mode="zeros", align_corners=None)
@converts(F.grid_sample)
def grid_sample(b: Builder, input, grid, mode="bilinear", padding_mode="zeros", align_corners=None):
    where = f"grid_sample at {b.where()}"
    if not isinstance(grid, Value) or input.rank != 4 or grid.rank != 4 or grid.shape[-1] != 2:
        raise TranspileError(
            f"{where}: only 2-d sampling (a (N, C, H, W) input, a (N, Ho, Wo, 2) grid) is supported"
        )
    if mode not in ("bilinear", "nearest") or padding_mode not in _GRID_PADDINGS:
        raise TranspileError(
            f"{where}: mode={mode!r}, padding_mode={padding_mode!r} is not supported (modes "
            f"bilinear and nearest; padding modes {', '.join(_GRID_PADDINGS)})"
        )
    if None in input.shape[1:] or None in grid.shape[1:]:
        raise TranspileError(
            f"{where} on an input or grid of dynamic spatial size; pass example_inputs with a "
            "fixed size."
        )
    return b.op(
        "grid_sample",
        [input, grid],
        mode=mode,
        padding_mode=padding_mode,
        align_corners=bool(align_corners),
    )


# torch.grid_sampler(input, grid, interpolation_mode, padding_mode, align_corners): the modes as
# integers (torch.export's aten.grid_sampler and aten.grid_sampler_2d)
@converts(torch.grid_sampler, torch.grid_sampler_2d)
def grid_sampler(
    b: Builder, input, grid, interpolation_mode=0, padding_mode=0, align_corners=False
):
    mode = int(b.static(interpolation_mode, "the interpolation mode"))
    padding = int(b.static(padding_mode, "the padding mode"))
    if not (0 <= mode < len(_GRID_MODES) and 0 <= padding < len(_GRID_PADDINGS)):
        raise TranspileError(
            f"grid_sampler at {b.where()}: unknown mode {mode} or padding {padding}"
        )
    return grid_sample(b, input, grid, _GRID_MODES[mode], _GRID_PADDINGS[padding], align_corners)
