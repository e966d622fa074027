"""Resampling: F.interpolate / nn.Upsample (nearest, nearest-exact, (bi/tri)linear, bicubic,
area)."""

from __future__ import annotations

import torch.nn as nn
import torch.nn.functional as F

from ...errors import TranspileError
from ..fx_importer import Builder
from ..registry import converts

_MODES = {
    "nearest": "nearest",
    "nearest-exact": "nearest-exact",
    "linear": "linear",
    "bilinear": "linear",
    "trilinear": "linear",
    "bicubic": "cubic",
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
    if mode not in _MODES:
        raise TranspileError(f"interpolate(mode={mode!r}) at {b.where()} is not supported yet")
    if antialias:
        raise TranspileError(f"interpolate(antialias=True) at {b.where()} is not supported")
    n = input.rank - 2
    sizes = tuple(b.out_type.shape[2:])
    scales = None
    if scale_factor is not None and not recompute_scale_factor:
        # torch maps coordinates with the given scale, not with in/out
        factors = scale_factor if isinstance(scale_factor, list | tuple) else [scale_factor] * n
        scales = tuple(1.0 / float(f) for f in b.static(factors, "scale_factor"))
    return b.op(
        "resize",
        [input],
        sizes=sizes,
        mode=_MODES[mode],
        align_corners=bool(align_corners),
        scales=scales,
    )


@converts(nn.Upsample, nn.UpsamplingNearest2d, nn.UpsamplingBilinear2d)
def upsample_module(b: Builder, m: nn.Upsample, input):
    align = m.align_corners
    if isinstance(m, nn.UpsamplingBilinear2d):
        align = True
    return interpolate(
        b, input, m.size, m.scale_factor, m.mode, align, getattr(m, "recompute_scale_factor", None)
    )
