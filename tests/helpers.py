"""Helpers shared by the test suite: random inputs, BatchNorm randomization, layout handling and
the contract's numeric comparison against PyTorch (the oracle)."""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable, Sequence

import numpy as np
import torch
from torch import nn

LAYOUTS = ("nchw", "nhwc")


# ----------------------------------------------------------------------------------------------
# Seeds and inputs
# ----------------------------------------------------------------------------------------------


def stable_seed(*parts: object) -> int:
    """A seed derived from `parts` that is the same in every process (unlike `hash`)."""
    return zlib.crc32(repr(parts).encode()) & 0x7FFFFFFF


def random_inputs(
    shapes: Sequence[Sequence[int]], batch: int, seed: int = 0
) -> tuple[torch.Tensor, ...]:
    """Random normal float32 inputs, one per shape; `shapes` exclude the batch dimension."""
    gen = torch.Generator().manual_seed(seed)
    return tuple(torch.randn((batch, *shape), generator=gen) for shape in shapes)


# ----------------------------------------------------------------------------------------------
# Models
# ----------------------------------------------------------------------------------------------


def randomize_bn(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give every BatchNorm random running statistics and affine parameters.

    Freshly built BatchNorms are the identity in eval mode (mean 0, var 1, weight 1, bias 0),
    which would let a wrong BatchNorm fold pass unnoticed.
    """
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if not isinstance(module, nn.modules.batchnorm._BatchNorm):
                continue
            n = module.num_features
            if module.running_mean is not None:
                module.running_mean.copy_(0.5 * torch.randn(n, generator=gen))
                module.running_var.copy_(0.5 + 1.5 * torch.rand(n, generator=gen))
            if module.affine:
                module.weight.copy_(1.0 + 0.3 * torch.randn(n, generator=gen))
                module.bias.copy_(0.3 * torch.randn(n, generator=gen))
    return model


def iter_keras_layers(model) -> Iterable:
    """Every layer of a Keras model, nested models and layers included."""
    stack = list(getattr(model, "layers", []))
    while stack:
        layer = stack.pop(0)
        yield layer
        stack.extend(getattr(layer, "layers", None) or [])


def count_bn_layers(keras_model) -> int:
    """Number of Keras BatchNormalization layers (or custom layers that are BatchNorms)."""
    import keras

    return sum(
        isinstance(layer, keras.layers.BatchNormalization)
        or "batchnorm" in type(layer).__name__.lower()
        for layer in iter_keras_layers(keras_model)
    )


def graph_ops(result) -> list[str]:
    """The op names of the final IR graph of a transpile result."""
    return [node.op for node in result.graph.nodes]


# ----------------------------------------------------------------------------------------------
# Layouts
# ----------------------------------------------------------------------------------------------


def split_layout(io_layout) -> tuple[str, str]:
    """(input layout, output layout) from an io_layout argument ("nchw", "nhwc" or a pair)."""
    if isinstance(io_layout, str):
        return io_layout, io_layout
    inp, out = io_layout
    return inp, out


def _is_layout_tensor(array: np.ndarray) -> bool:
    return np.issubdtype(array.dtype, np.floating) and 3 <= array.ndim <= 5


def to_layout(array: np.ndarray, layout: str) -> np.ndarray:
    """PyTorch layout -> `layout`: channels-last for floating tensors of rank 3-5 in "nhwc"."""
    if layout == "nhwc" and _is_layout_tensor(array):
        return np.ascontiguousarray(np.transpose(array, (0, *range(2, array.ndim), 1)))
    return array


def from_layout(array: np.ndarray, layout: str) -> np.ndarray:
    """Inverse of `to_layout`."""
    if layout == "nhwc" and _is_layout_tensor(array):
        return np.ascontiguousarray(
            np.transpose(array, (0, array.ndim - 1, *range(1, array.ndim - 1)))
        )
    return array


def flatten_outputs(output) -> list[torch.Tensor]:
    """Flatten a PyTorch output in pytree order: tuples/lists in order, dict values by insertion."""
    if isinstance(output, torch.Tensor):
        return [output]
    if isinstance(output, dict):
        return [t for value in output.values() for t in flatten_outputs(value)]
    if isinstance(output, (tuple, list)):
        return [t for value in output for t in flatten_outputs(value)]
    raise TypeError(f"unexpected output type {type(output).__name__}")


# ----------------------------------------------------------------------------------------------
# The numeric comparison
# ----------------------------------------------------------------------------------------------


def torch_reference(model: nn.Module, inputs: Sequence[torch.Tensor]) -> list[np.ndarray]:
    """The model's eval-mode outputs (flattened, numpy, PyTorch layout); restores the mode."""
    was_training = [m.training for m in model.modules()]
    model.eval()
    try:
        with torch.no_grad():
            output = model(*inputs)
    finally:
        for module, flag in zip(model.modules(), was_training, strict=True):
            module.training = flag
    return [t.detach().cpu().numpy() for t in flatten_outputs(output)]


def run_loaded(fn: Callable, inputs: Sequence[torch.Tensor], io_layout="nchw") -> list[np.ndarray]:
    """Run a `result.load()` callable on PyTorch-layout inputs; outputs back in PyTorch layout."""
    in_layout, out_layout = split_layout(io_layout)
    arrays = [to_layout(x.detach().cpu().numpy(), in_layout) for x in inputs]
    outputs = fn(*arrays)
    if not isinstance(outputs, tuple):
        assert isinstance(outputs, np.ndarray), (
            f"load() must return a numpy array or a tuple of them, got {type(outputs).__name__}"
        )
        outputs = (outputs,)
    for out in outputs:
        assert isinstance(out, np.ndarray), f"load() returned a {type(out).__name__} in its tuple"
    return [from_layout(out, out_layout) for out in outputs]


def assert_close(
    actual: np.ndarray, expected: np.ndarray, tol: float = 1e-4, what: str = ""
) -> float:
    """Contract bound: max|y - y_torch| <= tol * max(1, max|y_torch|); returns max|y - y_torch|."""
    assert actual.shape == expected.shape, f"{what}shape {actual.shape} != torch {expected.shape}"
    if np.issubdtype(expected.dtype, np.floating):
        assert actual.dtype == np.float32, f"{what}dtype {actual.dtype}, expected float32"
    else:
        assert actual.dtype == expected.dtype, (
            f"{what}dtype {actual.dtype} != torch {expected.dtype}"
        )
    diff = np.abs(actual.astype(np.float64) - expected.astype(np.float64))
    err = float(diff.max()) if diff.size else 0.0
    scale = float(np.abs(expected).max()) if expected.size else 0.0
    bound = tol * max(1.0, scale)
    assert err <= bound, (
        f"{what}max|y - y_torch| = {err:.3g} > bound {bound:.3g} (max|y_torch| = {scale:.3g})"
    )
    return err


def check_against_torch(
    model: nn.Module,
    inputs: Sequence[torch.Tensor] | torch.Tensor,
    result,
    io_layout="nchw",
    tol: float = 1e-4,
) -> list[float]:
    """Compare the transpiled model with PyTorch on `inputs` (PyTorch layout).

    `result` is a transpile result (its `load()` is called) or an already loaded callable.
    Inputs are permuted into `io_layout` before the call and outputs permuted back. Returns the
    max absolute error of every output.
    """
    if isinstance(inputs, torch.Tensor):
        inputs = (inputs,)
    fn = result.load() if hasattr(result, "load") else result
    expected = torch_reference(model, inputs)
    actual = run_loaded(fn, inputs, io_layout)
    assert len(actual) == len(expected), f"{len(actual)} outputs, torch has {len(expected)}"
    return [
        assert_close(a, e, tol, what=f"output {i}: ")
        for i, (a, e) in enumerate(zip(actual, expected, strict=True))
    ]


def assert_checks_ok(result) -> None:
    """The transpiler's own numeric check ran (on two batch sizes) and passed."""
    checks = list(result.report.checks)
    assert checks, "report.checks is empty although verify=True"
    assert all(c.ok for c in checks), "\n".join(
        f"batch {c.batch_size} output {c.output_index}: max_abs={c.max_abs} bound={c.bound}"
        for c in checks
        if not c.ok
    )
    assert len({c.batch_size for c in checks}) >= 2, "the check must cover two batch sizes"
    for c in checks:
        assert c.max_abs <= c.bound


def boundary_transposes(inputs: Sequence[torch.Tensor], outputs: Sequence[np.ndarray]) -> int:
    """Transposes an "nchw" model needs at its boundary: one per float input/output of rank 3-5."""
    arrays = [x.numpy() for x in inputs] + list(outputs)
    return sum(_is_layout_tensor(a) for a in arrays)


def randomize_zero_weights(model: nn.Module, seed: int = 0, std: float = 0.05) -> nn.Module:
    """Re-draw parameters that are initialized to all zeros (e.g. ViT's classification head),
    so that outputs are not trivially zero and the comparison with PyTorch means something."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.numel() > 1 and not p.any():
                p.copy_(torch.randn(p.shape, generator=g) * std)
    return model


def tiny_bert(
    vocab: int = 100,
    hidden: int = 32,
    layers: int = 2,
    heads: int = 4,
    ffn: int = 37,
    positions: int = 64,
) -> nn.Module:
    """A Hugging Face ``BertModel`` from a small config (random weights, no download)."""
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import transformers

    config = transformers.BertConfig(
        vocab_size=vocab,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=ffn,
        max_position_embeddings=positions,
    )
    return transformers.BertModel(config)
