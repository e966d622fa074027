"""Property tests: random convolution configurations through the full transpile() path (Keras;
the ``_tf`` tests: backend="tf"),
PyTorch as the oracle.

Each example builds one Conv{1,2,3}d / ConvTranspose{1,2,3}d (channels, groups, asymmetric
kernels, stride, dilation, int/tuple/'same'/'valid' padding, every padding_mode, bias), transpiles
it at batch 2 in a random io_layout and compares `result.load()` with PyTorch at batch 2 and 3.
Hypothesis runs derandomized (the same examples on every run); 525 examples in all.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from helpers import LAYOUTS, assert_checks_ok, check_against_torch, random_inputs, stable_seed
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from torch import nn

from transpiler import TranspileError, UnsupportedOpError, transpile

CONV = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
CONV_TRANSPOSE = {1: nn.ConvTranspose1d, 2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}


def _settings(max_examples: int):
    return settings(
        max_examples=max_examples,
        deadline=None,
        derandomize=True,  # deterministic in CI
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )


def _axes(value, rank: int) -> tuple:
    return value if isinstance(value, tuple) else (value,) * rank


@dataclass(frozen=True)
class ConvConfig:
    rank: int
    transposed: bool
    in_channels: int
    out_channels: int
    kernel_size: int | tuple[int, ...]
    stride: int | tuple[int, ...]
    padding: int | tuple[int, ...] | str
    dilation: int | tuple[int, ...]
    groups: int
    bias: bool
    padding_mode: str
    output_padding: int | tuple[int, ...]
    spatial: tuple[int, ...]  # input size without batch and channels
    io_layout: str

    def make(self) -> nn.Module:
        kwargs = dict(
            stride=self.stride,
            padding=self.padding,
            dilation=self.dilation,
            groups=self.groups,
            bias=self.bias,
            padding_mode=self.padding_mode,
        )
        if self.transposed:
            cls = CONV_TRANSPOSE[self.rank]
            kwargs["output_padding"] = self.output_padding
        else:
            cls = CONV[self.rank]
        return cls(self.in_channels, self.out_channels, self.kernel_size, **kwargs)

    def pads(self) -> list[tuple[int, int]]:
        """(before, after) padding of each spatial axis, as PyTorch applies it."""
        if self.padding == "valid":
            return [(0, 0)] * self.rank
        if self.padding == "same":
            totals = [
                d * (k - 1)
                for k, d in zip(
                    _axes(self.kernel_size, self.rank), _axes(self.dilation, self.rank), strict=True
                )
            ]
            return [(t // 2, t - t // 2) for t in totals]
        return [(p, p) for p in _axes(self.padding, self.rank)]

    def output_spatial(self) -> tuple[int, ...]:
        sizes = []
        per_axis = zip(
            self.spatial,
            _axes(self.kernel_size, self.rank),
            _axes(self.stride, self.rank),
            _axes(self.dilation, self.rank),
            self.pads(),
            _axes(self.output_padding, self.rank),
            strict=True,
        )
        for size, k, s, d, (lo, hi), op in per_axis:
            if self.transposed:
                sizes.append((size - 1) * s - lo - hi + d * (k - 1) + op + 1)
            else:
                sizes.append((size + lo + hi - d * (k - 1) - 1) // s + 1)
        return tuple(sizes)


def _int_or_tuple(draw, rank: int, lo: int, hi: int):
    """One int for every axis, or (rank > 1) a tuple with one value per axis."""
    if rank == 1 or draw(st.booleans()):
        return draw(st.integers(lo, hi))
    return tuple(draw(st.integers(lo, hi)) for _ in range(rank))


@st.composite
def conv_configs(draw, rank: int, transposed: bool = False, max_size: int = 17):
    groups_kind = draw(st.sampled_from(("1", "2", "depthwise")))
    if groups_kind == "1":
        groups, in_channels = 1, draw(st.integers(1, 6))
    elif groups_kind == "2":
        groups, in_channels = 2, 2 * draw(st.integers(1, 3))
    else:
        in_channels = draw(st.integers(1, 6))
        groups = in_channels
    out_channels = groups * draw(st.integers(1, 3))

    kernel_size = _int_or_tuple(draw, rank, 1, 5)
    stride = _int_or_tuple(draw, rank, 1, 3)
    dilation = _int_or_tuple(draw, rank, 1, 3)
    unit_stride = all(s == 1 for s in _axes(stride, rank))

    padding_kinds = ["int", "tuple"]
    if not transposed:  # ConvTranspose takes no string padding
        padding_kinds.append("valid")
        if unit_stride:  # PyTorch allows 'same' with stride 1 only
            padding_kinds.append("same")
    padding_kind = draw(st.sampled_from(padding_kinds))
    if padding_kind == "int":
        padding = draw(st.integers(0, 3))
    elif padding_kind == "tuple":
        padding = tuple(draw(st.integers(0, 3)) for _ in range(rank))
    else:
        padding = padding_kind

    output_padding: int | tuple[int, ...] = 0
    padding_mode = "zeros"  # ConvTranspose supports zeros only
    if transposed:
        # output_padding must be smaller than stride or dilation, on each axis.
        limits = [
            max(s, d) - 1 for s, d in zip(_axes(stride, rank), _axes(dilation, rank), strict=True)
        ]
        per_axis = tuple(draw(st.integers(0, limit)) for limit in limits)
        output_padding = per_axis[0] if len(set(per_axis)) == 1 else per_axis
    else:
        padding_mode = draw(st.sampled_from(("zeros", "reflect", "replicate", "circular")))

    spatial = tuple(draw(st.integers(5, max_size)) for _ in range(rank))
    config = ConvConfig(
        rank=rank,
        transposed=transposed,
        in_channels=in_channels,
        out_channels=out_channels,
        kernel_size=kernel_size,
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
        bias=draw(st.booleans()),
        padding_mode=padding_mode,
        output_padding=output_padding,
        spatial=spatial,
        io_layout=draw(st.sampled_from(LAYOUTS)),
    )

    # Skip what PyTorch rejects: an empty output, reflect padding >= the size, circular padding
    # that wraps around more than once.
    assume(all(size >= 1 for size in config.output_spatial()))
    for size, (lo, hi) in zip(spatial, config.pads(), strict=True):
        if padding_mode == "reflect":
            assume(max(lo, hi) < size)
        elif padding_mode == "circular":
            assume(max(lo, hi) <= size)
    return config


def check_conv(config: ConvConfig, backend: str = "keras") -> None:
    seed = stable_seed("conv_property", repr(config))
    torch.manual_seed(seed)
    model = config.make().eval()
    shape = (config.in_channels, *config.spatial)
    (x2,) = random_inputs([shape], batch=2, seed=seed)
    (x3,) = random_inputs([shape], batch=3, seed=seed + 1)

    with tempfile.TemporaryDirectory() as tmp:
        message = None
        try:
            result = transpile(
                model, x2, backend=backend, io_layout=config.io_layout, out_dir=Path(tmp) / "out"
            )
        except UnsupportedOpError as exc:  # lists every unsupported op
            message = f"UnsupportedOpError: {exc}\n{config}"
        except TranspileError as exc:
            message = f"TranspileError: {exc}\n{config}"
        if message is not None:
            pytest.fail(message, pytrace=False)

        assert_checks_ok(result)
        fn = result.load()
        check_against_torch(model, x2, fn, config.io_layout)
        check_against_torch(model, x3, fn, config.io_layout)


@_settings(300)
@given(conv_configs(rank=2))
def test_conv2d(config):
    check_conv(config)


@_settings(50)
@given(conv_configs(rank=1))
def test_conv1d(config):
    check_conv(config)


@_settings(25)
@given(conv_configs(rank=3, max_size=11))  # 3-D: smaller volumes keep the run short
def test_conv3d(config):
    check_conv(config)


@_settings(100)
@given(conv_configs(rank=2, transposed=True))
def test_conv_transpose2d(config):
    check_conv(config)


@_settings(25)
@given(conv_configs(rank=1, transposed=True))
def test_conv_transpose1d(config):
    check_conv(config)


@_settings(25)
@given(conv_configs(rank=3, transposed=True, max_size=11))
def test_conv_transpose3d(config):
    check_conv(config)


# The same properties through backend="tf" (its own lowering of conv / conv_transpose: depthwise,
# grouped 3-d, zero insertion for strided + dilated or grouped transposed convs).


@_settings(100)
@given(conv_configs(rank=2))
def test_conv2d_tf(config):
    check_conv(config, backend="tf")


@_settings(20)
@given(conv_configs(rank=1))
def test_conv1d_tf(config):
    check_conv(config, backend="tf")


@_settings(15)
@given(conv_configs(rank=3, max_size=11))
def test_conv3d_tf(config):
    check_conv(config, backend="tf")


@_settings(60)
@given(conv_configs(rank=2, transposed=True))
def test_conv_transpose2d_tf(config):
    check_conv(config, backend="tf")


@_settings(15)
@given(conv_configs(rank=1, transposed=True))
def test_conv_transpose1d_tf(config):
    check_conv(config, backend="tf")


@_settings(15)
@given(conv_configs(rank=3, transposed=True, max_size=11))
def test_conv_transpose3d_tf(config):
    check_conv(config, backend="tf")
