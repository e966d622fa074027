"""The operator catalog: one `OpCase` per small model, generated from configuration tables.

Most cases put a small convolution in front of the op under test, so that the op runs inside the
NHWC region the layout pass builds (its axis attributes are then remapped); a few run on raw
inputs. Shapes are small (channels <= 16, spatial <= 17) to keep the catalog fast.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from helpers import randomize_bn
from torch import nn


@dataclass(frozen=True)
class OpCase:
    group: str
    name: str
    make: Callable[[], nn.Module]
    input_shapes: tuple[tuple[int, ...], ...]  # without the batch dimension
    tol: float = 1e-4
    # Only layout-agnostic ops around a conv/pool, so the contract's layout promise is exact:
    # "nhwc" -> no Transpose at all; "nchw" -> one per float rank 3-5 input/output, no more.
    layout_pure: bool = False

    @property
    def id(self) -> str:
        return f"{self.group}-{self.name}"


# ----------------------------------------------------------------------------------------------
# Building blocks
# ----------------------------------------------------------------------------------------------


def front_conv(cin: int = 3, cout: int = 8) -> nn.Conv2d:
    """Conv2d(cin, cout, 3, padding=1) with unit-variance weights: its outputs have a std of ~5,
    so saturating activations (ReLU6, Hardsigmoid, Tanh, ...) see their whole range."""
    conv = nn.Conv2d(cin, cout, 3, padding=1)
    nn.init.normal_(conv.weight, std=1.0)
    return conv


class Fn(nn.Module):
    """Calls a plain function (traced through as functional ops / tensor methods)."""

    def __init__(self, fn: Callable):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


class Fn2(nn.Module):
    """Calls a plain function of two inputs."""

    def __init__(self, fn: Callable):
        super().__init__()
        self.fn = fn

    def forward(self, a, b):
        return self.fn(a, b)


class _Attn(nn.Module):
    """Self-attention with the weights returned too."""

    def __init__(self, mha: nn.MultiheadAttention):
        super().__init__()
        self.mha = mha

    def forward(self, x):
        return self.mha(x, x, x)


class Front(nn.Module):
    """front_conv, then `op`."""

    def __init__(self, op: nn.Module | Callable, cin: int = 3, cout: int = 8):
        super().__init__()
        self.conv = front_conv(cin, cout)
        self.op = op if isinstance(op, nn.Module) else Fn(op)

    def forward(self, x):
        return self.op(self.conv(x))


class TwoBranch(nn.Module):
    """Two convolutions of the same input, combined by `fn(a, b)`."""

    def __init__(self, fn: Callable, cin: int = 3, ca: int = 8, cb: int = 8):
        super().__init__()
        self.a = front_conv(cin, ca)
        self.b = front_conv(cin, cb)
        self.fn = fn

    def forward(self, x):
        return self.fn(self.a(x), self.b(x))


class WithParam(nn.Module):
    """front_conv, then `fn(y, p)` with a learned parameter `p` of shape `shape`."""

    def __init__(self, fn: Callable, shape: tuple[int, ...]):
        super().__init__()
        self.conv = front_conv()
        self.p = nn.Parameter(torch.randn(shape))
        self.fn = fn

    def forward(self, x):
        return self.fn(self.conv(x), self.p)


class ConvFlattenLinear(nn.Module):
    """front_conv on a non-square input, flattened by `flatten`, then a Linear layer."""

    def __init__(self, flatten: Callable, features: int, pool: bool = False):
        super().__init__()
        self.conv = front_conv()
        self.pool = nn.MaxPool2d(2) if pool else nn.Identity()
        self.flatten = flatten
        self.fc = nn.Linear(features, 5)

    def forward(self, x):
        return self.fc(self.flatten(self.pool(self.conv(x))))


class FunctionalConv(nn.Module):
    """F.conv2d with a registered weight and bias, stride 2, padding 1."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(0.2 * torch.randn(8, 4, 3, 3))
        self.bias = nn.Parameter(torch.randn(8))

    def forward(self, x):
        return F.conv2d(x, self.weight, self.bias, stride=2, padding=1)


def seq(*modules: nn.Module) -> nn.Sequential:
    return randomize_bn(nn.Sequential(*modules))


CASES: list[OpCase] = []


def add(group, name, make, *shapes, tol=1e-4, pure=False):
    CASES.append(OpCase(group, name, make, tuple(tuple(s) for s in shapes), tol, pure))


IMG = (3, 15, 15)  # the default input of a front_conv: odd spatial size
IMG_EVEN = (3, 16, 16)


# ----------------------------------------------------------------------------------------------
# Conv2d
# ----------------------------------------------------------------------------------------------

# name -> (Conv2d keyword arguments (in_channels 4, out_channels 8 unless given), input H, W)
CONV_CONFIGS: list[tuple[str, dict, list[tuple[int, int]]]] = [
    ("k1", dict(kernel_size=1), [(16, 16)]),
    ("k1-s2", dict(kernel_size=1, stride=2), [(16, 16)]),
    ("k3-p0", dict(kernel_size=3), [(15, 15)]),
    ("k3-p1", dict(kernel_size=3, padding=1), [(15, 15), (16, 16)]),
    ("k3-s2-p1", dict(kernel_size=3, stride=2, padding=1), [(15, 15), (16, 16)]),
    ("k3-s2-p0", dict(kernel_size=3, stride=2), [(16, 16)]),
    ("k5-p2", dict(kernel_size=5, padding=2), [(16, 16)]),
    ("k5-s2-p2", dict(kernel_size=5, stride=2, padding=2), [(15, 16), (16, 16)]),
    ("k3x1-p1x0", dict(kernel_size=(3, 1), padding=(1, 0)), [(15, 16)]),
    ("k1x5-s2x1-p0x2", dict(kernel_size=(1, 5), stride=(2, 1), padding=(0, 2)), [(16, 15)]),
    ("k3-s2x1-p1", dict(kernel_size=3, stride=(2, 1), padding=1), [(16, 16)]),
    ("k3-p1x2", dict(kernel_size=3, padding=(1, 2)), [(15, 16)]),
    ("k3-same", dict(kernel_size=3, padding="same"), [(15, 15)]),
    ("k4-same", dict(kernel_size=4, padding="same"), [(16, 15)]),
    ("k3-same-d2", dict(kernel_size=3, padding="same", dilation=2), [(16, 16)]),
    ("k3-valid", dict(kernel_size=3, padding="valid"), [(16, 15)]),
    ("k3-d2-p2", dict(kernel_size=3, dilation=2, padding=2), [(15, 15)]),
    ("k3-d2-s2-p1", dict(kernel_size=3, dilation=2, stride=2, padding=1), [(16, 16)]),
    ("g2-k3-p1", dict(kernel_size=3, padding=1, groups=2), [(15, 15)]),
    ("g2-k3-s2-p1", dict(kernel_size=3, stride=2, padding=1, groups=2), [(16, 16)]),
    ("dw-k3-p1", dict(out_channels=4, kernel_size=3, padding=1, groups=4), [(15, 15)]),
    ("dw-k3-s2-p1", dict(out_channels=4, kernel_size=3, stride=2, padding=1, groups=4), [(16, 16)]),
    ("dw-mult2-k3-p1", dict(kernel_size=3, padding=1, groups=4), [(15, 15)]),
    ("dw-mult2-k5-s2-p2", dict(kernel_size=5, stride=2, padding=2, groups=4), [(16, 16)]),
    ("nobias-k3-p1", dict(kernel_size=3, padding=1, bias=False), [(15, 15)]),
    ("dw-nobias-k3-s2", dict(kernel_size=3, stride=2, groups=4, bias=False), [(15, 15)]),
    ("reflect-k3-p1", dict(kernel_size=3, padding=1, padding_mode="reflect"), [(15, 16)]),
    (
        "reflect-k5-s2-p2",
        dict(kernel_size=5, stride=2, padding=2, padding_mode="reflect"),
        [(16, 16)],
    ),
    ("replicate-k3-p1", dict(kernel_size=3, padding=1, padding_mode="replicate"), [(16, 16)]),
    (
        "replicate-k3-s2-p1",
        dict(kernel_size=3, stride=2, padding=1, padding_mode="replicate"),
        [(15, 15)],
    ),
    ("circular-k3-p1", dict(kernel_size=3, padding=1, padding_mode="circular"), [(15, 15)]),
    ("circular-k3-p1x2", dict(kernel_size=3, padding=(1, 2), padding_mode="circular"), [(16, 15)]),
]

for _name, _kwargs, _sizes in CONV_CONFIGS:
    for _h, _w in _sizes:
        _kw = {"in_channels": 4, "out_channels": 8, **_kwargs}
        add("conv2d", f"{_name}-{_h}x{_w}", lambda kw=_kw: nn.Conv2d(**kw), (4, _h, _w), pure=True)

add("conv2d", "functional-k3-s2-p1", lambda: FunctionalConv(), (4, 16, 16), pure=True)
add(
    "conv2d",
    "stack-conv-relu-conv",
    lambda: nn.Sequential(nn.Conv2d(4, 16, 3, stride=2, padding=1), nn.ReLU(), nn.Conv2d(16, 8, 1)),
    (4, 16, 16),
    pure=True,
)


# ----------------------------------------------------------------------------------------------
# BatchNorm (randomized running statistics and affine parameters, so folding is really tested)
# ----------------------------------------------------------------------------------------------

add(
    "batchnorm",
    "conv-nobias-bn2d",
    lambda: seq(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8)),
    IMG,
    pure=True,
)
add(
    "batchnorm",
    "conv-bias-bn2d",
    lambda: seq(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8)),
    IMG_EVEN,
    pure=True,
)
add(
    "batchnorm",
    "conv-s2-bn2d-relu",
    lambda: seq(nn.Conv2d(3, 8, 3, 2, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU()),
    IMG_EVEN,
    pure=True,
)
add(
    "batchnorm",
    "dwconv-bn2d-relu6",
    lambda: seq(nn.Conv2d(4, 8, 3, padding=1, groups=4), nn.BatchNorm2d(8), nn.ReLU6()),
    (4, 15, 15),
    pure=True,
)
add("batchnorm", "bn2d-eps-1e-3-standalone", lambda: seq(nn.BatchNorm2d(4, eps=1e-3)), (4, 15, 15))
add(
    "batchnorm",
    "bn2d-noaffine-standalone",
    lambda: seq(nn.BatchNorm2d(4, affine=False)),
    (4, 16, 16),
)
add("batchnorm", "linear-bn1d", lambda: seq(nn.Linear(8, 6), nn.BatchNorm1d(6)), (8,))
add("batchnorm", "bn1d-standalone", lambda: seq(nn.BatchNorm1d(6)), (6,))


# ----------------------------------------------------------------------------------------------
# Linear, flatten / view / reshape
# ----------------------------------------------------------------------------------------------

add("linear", "linear", lambda: nn.Linear(8, 4), (8,))
add("linear", "linear-nobias", lambda: nn.Linear(8, 4, bias=False), (8,))
add("linear", "linear-rank3", lambda: nn.Linear(8, 4), (5, 8))
add(
    "linear", "mlp-relu", lambda: nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3)), (8,)
)

# H=7, W=6 and 8 channels: a wrong (NHWC vs NCHW) flatten order cannot go unnoticed.
FLAT_IMG = (3, 7, 6)
FLATTENS: dict[str, Callable] = {
    "nn-flatten": nn.Flatten(),
    "view-size0": lambda y: y.view(y.size(0), -1),
    "torch-flatten": lambda y: torch.flatten(y, 1),
    "reshape-shape0": lambda y: y.reshape(y.shape[0], -1),
}
for _name, _flatten in FLATTENS.items():
    add(
        "flatten",
        f"{_name}-linear",
        lambda f=_flatten: ConvFlattenLinear(f if isinstance(f, nn.Module) else Fn(f), 8 * 7 * 6),
        FLAT_IMG,
        pure=True,
    )
add(
    "flatten",
    "maxpool-flatten-linear",
    lambda: ConvFlattenLinear(nn.Flatten(), 8 * 4 * 4, pool=True),
    (3, 8, 9),
    pure=True,
)
add("flatten", "flatten-output", lambda: Front(nn.Flatten()), FLAT_IMG)
add("flatten", "view-output", lambda: Front(lambda y: y.view(-1, 8 * 7 * 6)), FLAT_IMG)


# ----------------------------------------------------------------------------------------------
# Activations after a conv (module and functional forms)
# ----------------------------------------------------------------------------------------------

ACTIVATION_MODULES: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "relu-inplace": lambda: nn.ReLU(inplace=True),
    "relu6": nn.ReLU6,
    "leakyrelu-0.01": nn.LeakyReLU,
    "leakyrelu-0.2": lambda: nn.LeakyReLU(0.2),
    "silu": nn.SiLU,
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "hardswish": nn.Hardswish,
    "hardsigmoid": nn.Hardsigmoid,
    "gelu": nn.GELU,
    "gelu-tanh": lambda: nn.GELU(approximate="tanh"),
}
# GELU exact and tanh differ by up to 4.7e-4 (at |x| ~ 2.7): a tighter bound tells them apart.
GELU_TOL = 1e-5
for _name, _act in ACTIVATION_MODULES.items():
    _tol = GELU_TOL if "gelu" in _name else 1e-4
    add("activation", _name, lambda a=_act: Front(a()), IMG, tol=_tol, pure=True)

ACTIVATION_FUNCTIONS: dict[str, Callable] = {
    "F.relu": F.relu,
    "torch.relu": torch.relu,
    "method-relu": lambda y: y.relu(),
    "torch.sigmoid": torch.sigmoid,
    "method-sigmoid": lambda y: y.sigmoid(),
    "F.silu": F.silu,
    "F.relu6": F.relu6,
    "F.leaky_relu-0.2": lambda y: F.leaky_relu(y, 0.2),
    "F.hardswish": F.hardswish,
    "F.hardsigmoid": F.hardsigmoid,
    "torch.tanh": torch.tanh,
    "F.gelu-tanh": lambda y: F.gelu(y, approximate="tanh"),
}
for _name, _fn in ACTIVATION_FUNCTIONS.items():
    _tol = GELU_TOL if "gelu" in _name else 1e-4
    add("activation", _name, lambda f=_fn: Front(f), IMG_EVEN, tol=_tol, pure=True)

add("activation", "raw-relu", nn.ReLU, (4, 5, 6))
add("activation", "raw-silu-2d", nn.SiLU, (6,))


# ----------------------------------------------------------------------------------------------
# Pooling
# ----------------------------------------------------------------------------------------------

# (kernel, stride, padding, ceil_mode, sizes)
MAXPOOL_CONFIGS = [
    (2, 2, 0, False, [15, 16]),
    (2, 2, 0, True, [15]),
    (2, 1, 1, False, [15]),
    (3, 1, 1, False, [16]),
    (3, 2, 0, False, [15]),
    (3, 2, 0, True, [16]),
    (3, 2, 1, False, [15, 16]),
    (3, 2, 1, True, [16]),
]
for _k, _s, _p, _ceil, _sizes in MAXPOOL_CONFIGS:
    for _n in _sizes:
        add(
            "maxpool2d",
            f"k{_k}-s{_s}-p{_p}{'-ceil' if _ceil else ''}-{_n}",
            lambda k=_k, s=_s, p=_p, c=_ceil: nn.MaxPool2d(k, s, p, ceil_mode=c),
            (4, _n, _n),
            pure=True,
        )

# (kernel, stride, padding, ceil_mode, count_include_pad, sizes)
AVGPOOL_CONFIGS = [
    (2, 2, 0, False, True, [15, 16]),
    (2, 2, 0, True, True, [15]),
    (2, 1, 1, False, False, [16]),
    (3, 1, 1, False, True, [15]),
    (3, 1, 1, False, False, [15]),
    (3, 2, 0, True, True, [16]),
    (3, 2, 1, False, True, [16]),
    (3, 2, 1, False, False, [16]),
    (3, 2, 1, True, True, [16]),
    (3, 2, 1, True, False, [15]),
]
for _k, _s, _p, _ceil, _cip, _sizes in AVGPOOL_CONFIGS:
    for _n in _sizes:
        _name = f"k{_k}-s{_s}-p{_p}{'-ceil' if _ceil else ''}{'' if _cip else '-exclpad'}-{_n}"
        add(
            "avgpool2d",
            _name,
            lambda k=_k, s=_s, p=_p, c=_ceil, i=_cip: nn.AvgPool2d(
                k, s, p, ceil_mode=c, count_include_pad=i
            ),
            (4, _n, _n),
            pure=True,
        )

add("maxpool2d", "functional-k2", lambda: Fn(lambda x: F.max_pool2d(x, 2)), (4, 15, 15), pure=True)
add(
    "avgpool2d",
    "functional-k3-s2-p1",
    lambda: Fn(lambda x: F.avg_pool2d(x, 3, 2, 1)),
    (4, 16, 16),
    pure=True,
)

# (output_size, input size)
ADAPTIVE_CONFIGS = [(1, 7), ((1, 1), 8), (2, 8), (2, 7), (3, 10), (3, 8), ((2, 3), 10)]
for _out, _n in ADAPTIVE_CONFIGS:
    _label = "x".join(map(str, _out)) if isinstance(_out, tuple) else str(_out)
    add(
        "adaptiveavgpool2d",
        f"out{_label}-{_n}",
        lambda o=_out: nn.AdaptiveAvgPool2d(o),
        (4, _n, _n),
        pure=True,
    )
add(
    "adaptiveavgpool2d",
    "functional-out1-flatten",
    lambda: Front(lambda y: torch.flatten(F.adaptive_avg_pool2d(y, 1), 1)),
    IMG,
    pure=True,
)


# ----------------------------------------------------------------------------------------------
# Elementwise arithmetic
# ----------------------------------------------------------------------------------------------

BINARY: dict[str, Callable] = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div-guarded": lambda a, b: a / (b.abs() + 1),
    "operator.add": operator.add,
    "torch.add": torch.add,
    "torch.mul": torch.mul,
    "torch.sub": torch.sub,
}
for _name, _fn in BINARY.items():
    add("binary", _name, lambda f=_fn: TwoBranch(f), IMG, pure=True)

SCALAR: dict[str, Callable] = {
    "x-plus-2": lambda y: y + 2.0,
    "2-plus-x": lambda y: 2.0 + y,
    "x-minus-1.5": lambda y: y - 1.5,
    "2-minus-x": lambda y: 2.0 - y,
    "3-times-x": lambda y: 3 * y,
    "x-div-2": lambda y: y / 2,
    "recip-abs-plus-1": lambda y: 1 / (y.abs() + 1),
}
for _name, _fn in SCALAR.items():
    add("scalar", _name, lambda f=_fn: Front(f), IMG_EVEN, pure=True)

add(
    "broadcast",
    "nchw-plus-nc11-mean",
    lambda: Front(lambda y: y + y.mean((2, 3), keepdim=True)),
    IMG,
    pure=True,
)
add(
    "broadcast",
    "squeeze-excite",
    lambda: Front(lambda y: y * torch.sigmoid(y.mean((2, 3), keepdim=True))),
    IMG,
    pure=True,
)
add("broadcast", "param-c11-add", lambda: WithParam(lambda y, p: y + p, (8, 1, 1)), IMG, pure=True)
add(
    "broadcast",
    "param-c11-mul",
    lambda: WithParam(lambda y, p: p * y, (8, 1, 1)),
    IMG_EVEN,
    pure=True,
)
add("broadcast", "raw-two-inputs-add", lambda: Fn2(lambda a, b: a + b), (4, 6, 5), (4, 6, 5))
add("binary", "torch.minimum", lambda: TwoBranch(torch.minimum), IMG, pure=True)

# Unary math (tests/test_op_table.py requires a case for every IR op); inputs kept in range:
# positive where the function needs it, scaled down before exp.
UNARY_MATH: dict[str, Callable] = {
    "torch.exp": lambda y: torch.exp(y / 4),
    "torch.log-abs-plus-1": lambda y: torch.log(y.abs() + 1),
    "torch.rsqrt-abs-plus-1": lambda y: torch.rsqrt(y.abs() + 1),
    "torch.reciprocal-abs-plus-1": lambda y: torch.reciprocal(y.abs() + 1),
    "method-reciprocal": lambda y: (y.abs() + 2).reciprocal(),
    "torch.erf": torch.erf,
    "method-clone": lambda y: y.clone() * 2,
    "torch.sin-method-cos": lambda y: torch.sin(y) * y.cos(),
}
for _name, _fn in UNARY_MATH.items():
    add("unary", _name, lambda f=_fn: Front(f), IMG, pure=True)
add("broadcast", "raw-two-inputs-mul-nc11", lambda: Fn2(lambda a, b: a * b), (4, 6, 5), (4, 1, 1))


# ----------------------------------------------------------------------------------------------
# Concatenation
# ----------------------------------------------------------------------------------------------

for _dim in (1, 2, 3, -1, -3):
    add(
        "cat",
        f"dim{_dim}",
        lambda d=_dim: TwoBranch(lambda a, b: torch.cat([a, b], d)),
        IMG,
        pure=True,
    )
add(
    "cat",
    "dim1-unequal-channels",
    lambda: TwoBranch(lambda a, b: torch.cat((a, b), dim=1), cb=4),
    IMG_EVEN,
    pure=True,
)
add(
    "cat",
    "dim1-three-way",
    lambda: TwoBranch(lambda a, b: torch.cat([a, b, a * b], 1), cb=8),
    IMG,
    pure=True,
)


# ----------------------------------------------------------------------------------------------
# Reductions and softmax
# ----------------------------------------------------------------------------------------------

add("mean", "dim23", lambda: Front(lambda y: y.mean(dim=(2, 3))), IMG, pure=True)
add(
    "mean",
    "dim23-keepdim",
    lambda: Front(lambda y: y.mean(dim=(2, 3), keepdim=True)),
    IMG_EVEN,
    pure=True,
)
add("mean", "dim-1-2", lambda: Front(lambda y: y.mean(dim=[-1, -2])), IMG, pure=True)
add(
    "mean",
    "torch.mean-dim23-keepdim",
    lambda: Front(lambda y: torch.mean(y, (2, 3), True)),
    IMG,
    pure=True,
)
add("mean", "dim1-keepdim", lambda: Front(lambda y: y.mean(1, keepdim=True)), IMG, pure=True)

add("softmax", "4d-dim1", lambda: Front(lambda y: F.softmax(y, dim=1)), IMG, pure=True)
add("softmax", "4d-dim-1", lambda: Front(lambda y: y.softmax(dim=-1)), (3, 15, 16), pure=True)
add("softmax", "4d-module-dim1", lambda: Front(nn.Softmax(dim=1)), IMG_EVEN, pure=True)
add("softmax", "2d-linear-dim1", lambda: nn.Sequential(nn.Linear(8, 6), nn.Softmax(dim=1)), (8,))
add("softmax", "2d-raw-dim-1", lambda: Fn(lambda x: torch.softmax(3 * x, -1)), (10,))


# ----------------------------------------------------------------------------------------------
# Eval-mode no-ops
# ----------------------------------------------------------------------------------------------

add("noop", "dropout", lambda: Front(nn.Sequential(nn.Dropout(0.5), nn.ReLU())), IMG, pure=True)
add("noop", "dropout2d", lambda: Front(nn.Dropout2d(0.3)), IMG_EVEN, pure=True)
add("noop", "identity", lambda: Front(nn.Identity()), IMG, pure=True)
add(
    "noop",
    "functional-dropout-eval",
    lambda: Front(lambda y: F.dropout(y, 0.5, training=False)),
    IMG,
    pure=True,
)
add("noop", "raw-identity-linear", lambda: nn.Sequential(nn.Identity(), nn.Linear(6, 3)), (6,))


# ----------------------------------------------------------------------------------------------
# Issue 2's operators: indexing, shape, norms, resampling, attention, more activations
# ----------------------------------------------------------------------------------------------

SMALL = (3, 10, 12)
for _name, _fn in [
    ("slice-channels", lambda y: y[:, 2:5]),
    ("slice-spatial-step", lambda y: y[:, :, 1:-1, ::2]),
    ("select-int", lambda y: y[:, 0]),
    ("chunk-cat", lambda y: torch.cat(y.chunk(2, dim=1)[::-1], 1)),
    ("split-sizes", lambda y: torch.split(y, [3, 5], dim=1)[1]),
    ("narrow", lambda y: y.narrow(3, 2, 5)),
    ("unsqueeze-gate", lambda y: y * y.mean((2, 3)).unsqueeze(-1).unsqueeze(-1).sigmoid()),
    ("expand", lambda y: y.mean((2, 3), keepdim=True).expand(-1, -1, 10, 12) + y),
    ("sum-keepdim", lambda y: y.sum(dim=1, keepdim=True)),
    ("amax-spatial", lambda y: y.amax(dim=(2, 3))),
    ("max-dim-values", lambda y: y.max(dim=1)[0]),
    ("log-softmax-ch", lambda y: F.log_softmax(y, dim=1)),
    ("clamp", lambda y: y.clamp(-0.5, 0.7)),
    ("pow", lambda y: y.abs() ** 1.5),
    ("maximum", lambda y: torch.maximum(y, -y)),
    (
        "channel-shuffle",
        lambda y: y.view(y.size(0), 2, 4, 10, 12).transpose(1, 2).reshape(y.size(0), 8, 10, 12),
    ),
    ("matmul-gram", lambda y: torch.matmul(y, y.transpose(-1, -2))),
    ("einsum", lambda y: torch.einsum("nchw,nchv->nhwv", y, y)),
    ("interp-nearest-x2", lambda y: F.interpolate(y, scale_factor=2)),
    ("interp-bilinear-x2", lambda y: F.interpolate(y, scale_factor=2, mode="bilinear")),
    (
        "interp-bilinear-ac",
        lambda y: F.interpolate(y, size=(7, 17), mode="bilinear", align_corners=True),
    ),
    ("interp-bilinear-size", lambda y: F.interpolate(y, size=(7, 17), mode="bilinear")),
    ("interp-nearest-size", lambda y: F.interpolate(y, size=(7, 17))),
    ("interp-nearest-exact", lambda y: F.interpolate(y, scale_factor=1.5, mode="nearest-exact")),
    ("pixel-shuffle", lambda y: F.pixel_shuffle(y, 2)),
    ("pixel-unshuffle", lambda y: F.pixel_unshuffle(y, 2)),
    ("shape-arith-interp", lambda y: F.interpolate(y, size=(y.shape[2] * 2, y.shape[3] // 2))),
    ("shape-arith-view", lambda y: y.view(y.shape[0], y.shape[1] // 2, -1).softmax(-1)),
]:
    add("more", _name, lambda f=_fn: Front(f), SMALL)

for _name, _mod in [
    ("elu", lambda: nn.ELU(0.5)),
    ("softplus", lambda: nn.Softplus(2.0, 5.0)),
    ("mish", nn.Mish),
    ("hardtanh", lambda: nn.Hardtanh(-2.0, 2.0)),
    ("prelu-channels", lambda: nn.PReLU(8)),
    ("prelu-shared", nn.PReLU),
    ("layernorm-chw", lambda: nn.LayerNorm([8, 10, 12])),
    ("groupnorm", lambda: nn.GroupNorm(2, 8)),
    ("instancenorm-affine", lambda: nn.InstanceNorm2d(8, affine=True)),
    ("adaptive-max-3x2", lambda: nn.AdaptiveMaxPool2d((3, 2))),
    ("maxpool-dilated", lambda: nn.MaxPool2d(3, 2, 1, dilation=2)),
    ("upsample-bilinear-ac", lambda: nn.UpsamplingBilinear2d(scale_factor=2)),
]:
    add("more", _name, lambda m=_mod: Front(m()), SMALL, pure=_name != "layernorm-chw")


class _LayerNorm2d(nn.Module):
    """ConvNeXt's permute -> LayerNorm -> permute: no transpose at all in NHWC."""

    def __init__(self):
        super().__init__()
        self.conv = front_conv()
        self.ln = nn.LayerNorm(8)

    def forward(self, x):
        return self.ln(self.conv(x).permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


add("more", "layernorm2d-permute-pair", _LayerNorm2d, SMALL, pure=True)
add(
    "more",
    "mha-batch-first",
    lambda: _Attn(nn.MultiheadAttention(16, 4, batch_first=True)),
    (5, 16),
)
add("more", "mha-seq-first", lambda: _Attn(nn.MultiheadAttention(16, 4)), (5, 16))
add(
    "more",
    "sdpa-causal",
    lambda: Fn(lambda q: F.scaled_dot_product_attention(q, q * 2, q + 1, is_causal=True)),
    (3, 6, 8),
)
add("more", "conv1d", lambda: nn.Conv1d(4, 6, 3, stride=2, padding=1), (4, 17))
add("more", "conv3d-grouped", lambda: nn.Conv3d(4, 4, 3, groups=2, padding=1), (4, 5, 6, 6))
add(
    "more",
    "convtranspose2d-op",
    lambda: nn.ConvTranspose2d(4, 6, 3, 2, 1, output_padding=1),
    (4, 7, 8),
)
add(
    "more",
    "convtranspose2d-dilated",
    lambda: nn.ConvTranspose2d(4, 6, 3, 2, 1, dilation=2),
    (4, 7, 8),
)


class _DynamicKernel(nn.Module):
    """A kernel computed in forward() from the input (CondConv-like, shared by the batch)."""

    def __init__(self, groups=1, stride=1, dilation=1):
        super().__init__()
        self.experts = nn.Parameter(torch.randn(3, 8, 4 // groups, 3, 3))
        self.route = nn.Linear(4, 3)
        self.bias = nn.Parameter(torch.randn(8))
        self.groups, self.stride, self.dilation = groups, stride, dilation

    def forward(self, x):
        r = torch.softmax(self.route(x.mean((2, 3)).mean(0, keepdim=True)), -1)
        w = (r.view(3, 1, 1, 1, 1) * self.experts).sum(0)
        return F.conv2d(x, w, self.bias, self.stride, 1, self.dilation, self.groups)


add("dynamic-conv", "shared-kernel", _DynamicKernel, (4, 9, 10))
add("dynamic-conv", "shared-kernel-grouped-s2", lambda: _DynamicKernel(2, 2), (4, 9, 10))
add("dynamic-conv", "shared-kernel-s2-d2", lambda: _DynamicKernel(1, 2, 2), (4, 9, 10))


class _CondConv(nn.Module):
    """timm-style CondConv2d: per-sample kernels mixed from experts, run through the
    groups=batch trick (x.reshape(1, B*C, H, W), groups=B)."""

    def __init__(self, stride=1, padding=1, dilation=1):
        super().__init__()
        self.stride, self.padding, self.dilation = stride, padding, dilation
        self.experts = nn.Parameter(torch.randn(3, 6 * 4 * 3 * 3) * 0.2)
        self.expert_bias = nn.Parameter(torch.randn(3, 6))
        self.route = nn.Linear(4, 3)

    def forward(self, x):
        b, c, h, w = x.shape
        r = torch.sigmoid(self.route(x.mean((2, 3))))
        weight = torch.matmul(r, self.experts).view(b * 6, c, 3, 3)
        bias = torch.matmul(r, self.expert_bias).view(b * 6)
        out = F.conv2d(
            x.reshape(1, b * c, h, w),
            weight,
            bias,
            self.stride,
            self.padding,
            self.dilation,
            groups=b,
        )
        return out.permute([1, 0, 2, 3]).view(b, 6, out.shape[-2], out.shape[-1])


add("dynamic-conv", "per-sample-condconv", _CondConv, (4, 9, 10))
add("dynamic-conv", "per-sample-condconv-s2", lambda: _CondConv(stride=2), (4, 9, 10))
add("dynamic-conv", "per-sample-condconv-d2", lambda: _CondConv(padding=2, dilation=2), (4, 9, 10))


_ids = [case.id for case in CASES]
assert len(_ids) == len(set(_ids)), "duplicate case ids"

# F.normalize (EdgeNeXt's cross-covariance attention)
add("normalize", "p2-dim1", lambda: Front(lambda y: F.normalize(y, dim=1)), IMG, pure=True)
add("normalize", "p2-dim-1", lambda: Front(lambda y: F.normalize(y, dim=-1)), (3, 15, 16))
add("normalize", "p1-dim2", lambda: Front(lambda y: F.normalize(y, p=1, dim=2)), IMG)


class PerSampleConstant(nn.Module):
    """A tensor built from the input's shape only, one sample repeated over the batch
    (EdgeNeXt's positional encoding): folded to a constant broadcast to the dynamic batch."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.proj = nn.Conv2d(2, 8, 1)

    def forward(self, x):
        y = self.conv(x)
        b, _, h, w = y.shape
        mask = y.new_zeros((b, h, w)).bool().to(x.device)
        grid = torch.stack([(~mask).cumsum(1, dtype=torch.float32), (~mask).cumsum(2)], 1)
        return y + self.proj(grid.sin())


add("shape-derived", "per-sample-constant", PerSampleConstant, IMG)


class _Recurrent(nn.Module):
    """A recurrent layer returning its sequence and final states (all of them flattened)."""

    def __init__(self, rnn: nn.RNNBase):
        super().__init__()
        self.rnn = rnn

    def forward(self, x):
        return self.rnn(x)


add(
    "recurrent",
    "lstm-bi",
    lambda: _Recurrent(nn.LSTM(3, 4, batch_first=True, bidirectional=True)),
    (5, 3),
)
add("recurrent", "gru-2layer", lambda: _Recurrent(nn.GRU(3, 4, 2, batch_first=True)), (5, 3))
add(
    "recurrent",
    "rnn-relu",
    lambda: _Recurrent(nn.RNN(3, 4, nonlinearity="relu", batch_first=True)),
    (5, 3),
)


# Integer and boolean tensors, made inside the model from the float input (catalog inputs are
# float): comparisons, logic, where, casts, and the math ops of sequence models.
def _compare_logic(y):
    m = ((y > 0.5) & ~(y < -0.5)) | (y == y.round())
    counts = (y >= 0).float() + (y <= 1).long() + (y != 0).int()
    return torch.where(m, y, -y) + counts + torch.logical_or(y > 2, y < -2).to(torch.float32)


def _unary_math(y):
    rounded = y.floor() + y.ceil() + y.round() + y.sin() + y.cos()
    acts = F.selu(y) + F.logsigmoid(y) + torch.remainder(y, 1.5) + y.clamp_min(-1).clamp_max(2)
    moments = y.std(1, keepdim=True) + y.var(dim=(2, 3), keepdim=True, unbiased=False)
    return rounded + acts + moments + (1 - y) + 2 / (y.abs() + 1) - y.mean()


def _axis_ops(y):
    picked = y[:, [0, 2, 1, 5]] + torch.index_select(y, 1, torch.tensor([3, 0, 7, 7]))
    rolled = torch.roll(picked, (1, -2), (2, 3)) + picked.flip(3) + picked.cumsum(2)
    return torch.stack([rolled, picked], 1)


class _EmbedIds(nn.Module):
    """Token ids derived from the input (int64 remainder), then nn.Embedding with padding_idx."""

    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(10, 4, padding_idx=0)

    def forward(self, x):
        ids = torch.remainder((x.abs() * 3).long(), 10)
        return self.emb(ids) * (ids > 0).unsqueeze(-1).float()


class _MaskedScores(nn.Module):
    """Attention scores masked in forward() (masked_fill) and by an sdpa bool mask."""

    def forward(self, x):
        keep = x[..., 0] > -0.5  # (N, T)
        scores = x @ x.transpose(1, 2)
        scores = scores.masked_fill(~keep[:, None, :], -1e9).softmax(-1)
        mask = keep[:, None, :].expand(-1, x.shape[1], -1) | torch.eye(x.shape[1]).bool()
        return scores @ x + F.scaled_dot_product_attention(x, x, x, attn_mask=mask)


add("int-bool", "compare-logic-where", lambda: Front(_compare_logic), SMALL)
add("int-bool", "unary-math", lambda: Front(_unary_math), SMALL)
add("int-bool", "take-roll-flip-cumsum-stack", lambda: Front(_axis_ops), SMALL)
add("int-bool", "embedding-ids", _EmbedIds, (6,))
add("int-bool", "masked-fill-sdpa-mask", _MaskedScores, (5, 8))
# ----------------------------------------------------------------------------------------------
# Rounding, arg-reductions and right-aligned broadcasting (issue 11)
# ----------------------------------------------------------------------------------------------

_C8 = torch.randn(8, generator=torch.Generator().manual_seed(8))
add(
    "rounding",
    "div-floor-and-trunc",
    lambda: TwoBranch(
        lambda a, b: (
            torch.div(a, b.abs() + 0.5, rounding_mode="floor")
            + torch.div(a, b.abs() + 0.5, rounding_mode="trunc")
            + a // 0.7
        )
    ),
    IMG,
)
add(
    "rounding",
    "floor-ceil-round-trunc",
    lambda: Front(lambda y: torch.floor(y) + torch.ceil(y * 0.5) + torch.round(y * 2) - y.trunc()),
    IMG,
    pure=True,
)
add("reduce", "max-dim-values-indices", lambda: Front(lambda y: torch.max(y, 1)), IMG)
add("reduce", "argmin-keepdim", lambda: Front(lambda y: y.argmin(-1, keepdim=True)), IMG)
add(
    "broadcast",
    "rank1-const-from-the-right",
    lambda: Front(lambda y: y[:, :, :, :1] + _C8),
    IMG,
)


# ----------------------------------------------------------------------------------------------
# Sequence and transformer models (issue 12, s2-hf-text): gather / take_along_dim, tril / triu,
# topk / sort (values and indices), repeat_interleave, RMSNorm, rotary embeddings
# ----------------------------------------------------------------------------------------------


def _gather_ops(y):
    # indices computed from the data (argsort over H), then gathered along H and W
    order = y.mean(3, keepdim=True).argsort(2)  # (N, C, H, 1)
    rows = torch.gather(y, 2, order.expand(-1, -1, -1, y.shape[3]))
    cols = torch.take_along_dim(y, y.argmax(3, keepdim=True), dim=3)
    picks = torch.gather(y, 1, (y[:, :3] > 0).long())  # index computed in forward()
    prefix = torch.gather(y, 2, order[:, :4, :6])  # an index smaller than y off the axis
    return rows, cols * 2, picks, prefix


def _triangles(y):
    return torch.triu(y) + torch.tril(y, -1) * 2 + torch.triu(y, 2).tril(4)


def _topk_sort(y):
    values, indices = torch.topk(y, 3, dim=1)
    low, low_idx = y.topk(2, dim=-1, largest=False)
    srt, srt_idx = torch.sort(y, dim=2, descending=True)
    return values, indices, low, low_idx, srt, srt_idx


def _gqa(y):
    # (N, C, H, W) seen as (batch, kv heads, length, head dim), heads repeated for queries
    return torch.repeat_interleave(y[:, :4], 2, dim=1) + y


class _HandRMSNorm(nn.Module):
    """Llama's RMSNorm as written in transformers: x * rsqrt(mean(x^2) + eps) * weight."""

    def __init__(self, n: int):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(n))

    def forward(self, x):
        variance = x.to(torch.float32).pow(2).mean(-1, keepdim=True)
        return self.weight * (x * torch.rsqrt(variance + 1e-6))


class _Norms(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = front_conv()
        self.rms = nn.RMSNorm(12, eps=1e-5)
        self.hand = _HandRMSNorm(12)
        nn.init.normal_(self.rms.weight)

    def forward(self, x):
        y = self.conv(x)
        return self.rms(y) + self.hand(y) + F.rms_norm(y, (10, 12))


def _rotate_half(x):
    x1 = x[..., : x.shape[-1] // 2]
    x2 = x[..., x.shape[-1] // 2 :]
    return torch.cat((-x2, x1), dim=-1)


class _Rotary(nn.Module):
    """Rotary position embeddings as Llama writes them (cos/sin from inv_freq and positions)."""

    def __init__(self):
        super().__init__()
        self.conv = front_conv()
        inv_freq = 1.0 / (10000 ** (torch.arange(0, 12, 2).float() / 12))
        self.register_buffer("inv_freq", inv_freq, persistent=False)

    def forward(self, x):
        q = self.conv(x)  # (N, heads 8, length 10, head dim 12)
        pos = torch.arange(q.shape[2]).float()
        freqs = pos[:, None] * self.inv_freq[None, :]  # Llama's inv_freq @ position_ids
        emb = torch.cat((freqs, freqs), dim=-1)
        cos, sin = emb.cos()[None, None], emb.sin()[None, None]
        return (q * cos) + (_rotate_half(q) * sin)


add("sequence", "gather-take-along-dim", lambda: Front(_gather_ops), SMALL)
add("sequence", "tril-triu", lambda: Front(_triangles), SMALL)
add("sequence", "topk-sort-values-indices", lambda: Front(_topk_sort), SMALL)
add("sequence", "repeat-interleave-gqa", lambda: Front(_gqa), SMALL)
add("sequence", "rmsnorm-module-hand-functional", _Norms, SMALL)
add("sequence", "rotary-llama", _Rotary, SMALL)
