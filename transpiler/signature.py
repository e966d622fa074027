"""Input signatures: validate example inputs, make the second tracing run, infer the one-liner.

Dynamic dimensions are found by running the model twice: the example inputs, and inputs whose
batch (and, in the one-line form, spatial sizes) differ. Sizes that differ between the runs are
dynamic in the IR.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.fx as fx

from .errors import TranspileError

__all__ = ["normalize_inputs", "alternate_inputs", "infer_inputs", "other_batch", "BatchSpec"]

# One-line form: sizes to trace with (two different ones reveal the dynamic dims)
_SPATIAL_A, _SPATIAL_B = 224, 160


def other_batch(batch: int) -> int:
    return 3 if batch != 3 else 2


@dataclass(frozen=True)
class BatchSpec:
    """What is known about the batch dimension of a traced program.

    ``static``: the batch is fixed to this size (a ``torch.export`` program exported without a
    dynamic batch, or one whose batch torch.export had to specialize); the generated model
    takes that size only and is checked at it only. Otherwise the batch is dynamic within
    ``[low, high]`` (``high`` None: unbounded). ``why``: how it was established (for the report).
    """

    low: int = 1
    high: int | None = None
    static: int | None = None
    why: str = ""

    def check_batch(self, example: int) -> int:
        """The batch size of the second run: another size inside the range (the example's own
        size when the batch is static or the range holds nothing else)."""
        if self.static is not None:
            return self.static
        candidates = [other_batch(example), 2, 3, 1, *range(4, 9)]
        for n in candidates:
            if n != example and n >= self.low and (self.high is None or n <= self.high):
                return n
        return example

    def describe(self) -> str:
        if self.static is not None:
            return f"static: {self.static}"
        if self.high is not None:
            return f"dynamic, {self.low} <= N <= {self.high}"
        return "dynamic"

    def note(self) -> str | None:
        """The report's note on a batch that is not plainly dynamic (None when it is)."""
        why = f" ({self.why})" if self.why else ""
        if self.static is not None:
            return (
                f"the batch is static: {self.static}{why}; the generated model takes batch "
                f"{self.static} only and was checked at that batch only"
            )
        if self.high is not None:
            return (
                f"the batch is bounded: {self.low} <= N <= {self.high}{why}; PyTorch itself "
                f"fails outside that range, so the generated model is checked inside it only"
            )
        return None


def normalize_inputs(example_inputs: Any) -> list[torch.Tensor]:
    items = list(example_inputs) if isinstance(example_inputs, tuple | list) else [example_inputs]
    if not items:
        raise TranspileError("example_inputs is empty; pass a tensor or a tuple of tensors.")
    out = []
    for k, x in enumerate(items):
        if isinstance(x, np.ndarray):
            x = torch.from_numpy(x)
        if not isinstance(x, torch.Tensor):
            raise TranspileError(
                f"example_inputs[{k}] is a {type(x).__name__}; pass a torch.Tensor (or a tuple of "
                "them) with the shapes and dtypes forward() takes."
            )
        if x.dim() == 0:
            raise TranspileError(
                f"example_inputs[{k}] is a scalar; inputs need a batch dimension first."
            )
        x = x.detach().cpu()
        out.append(x.float() if x.is_floating_point() else x)
    return out


def _random_like(x: torch.Tensor, shape: tuple[int, ...], seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    if x.is_floating_point():
        return torch.randn(shape, generator=g)
    if x.dtype == torch.bool:
        return torch.randint(0, 2, shape, generator=g).bool()
    lo, hi = (int(x.min()), int(x.max())) if x.numel() else (0, 1)
    return torch.randint(lo, hi + 1, shape, generator=g, dtype=x.dtype)


def alternate_inputs(
    inputs: list[torch.Tensor], seed: int = 1, batch: BatchSpec | None = None
) -> list[torch.Tensor]:
    """Random inputs like ``inputs`` with another batch size (one ``batch`` allows; the same
    size when ``batch`` is static)."""

    def size(n: int) -> int:
        return other_batch(n) if batch is None else batch.check_batch(n)

    return [
        _random_like(x, (size(x.shape[0]), *x.shape[1:]), seed + k) for k, x in enumerate(inputs)
    ]


def _first_consumer_signature(root: torch.nn.Module, graph: fx.Graph) -> list[tuple[int, ...]]:
    """(C, spatial rank) per input from the module that first consumes it."""
    modules = dict(root.named_modules())
    shapes = []
    for ph in (n for n in graph.nodes if n.op == "placeholder"):
        users = list(ph.users)
        m = modules.get(users[0].target) if users and users[0].op == "call_module" else None
        sig = None
        if isinstance(m, torch.nn.modules.conv._ConvNd):
            sig = (m.in_channels, len(m.kernel_size))
        elif isinstance(m, torch.nn.Linear):
            sig = (m.in_features, 0)
        elif isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            rank = {"BatchNorm1d": 0, "BatchNorm2d": 2, "BatchNorm3d": 3}.get(type(m).__name__)
            sig = (m.num_features, rank) if rank is not None else None
        if sig is None:
            what = (
                f"{type(m).__name__} ({users[0].target})"
                if m is not None
                else (f"{users[0].op} {users[0].target}" if users else "nothing")
            )
            raise TranspileError(
                f"cannot infer the shape of input {ph.target!r}: it is first used by {what}, "
                "not by a Conv/Linear/BatchNorm layer. Pass example_inputs, e.g. "
                "transpile(model, torch.randn(1, 3, 224, 224))."
            )
        shapes.append(sig)
    if not shapes:
        raise TranspileError("forward() takes no inputs; nothing to transpile.")
    return shapes


def infer_inputs(
    root: torch.nn.Module, graph: fx.Graph
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Synthesized inputs for the one-line form: two batch sizes, two spatial sizes."""
    sigs = _first_consumer_signature(root, graph)
    g = torch.Generator().manual_seed(0)
    a = [torch.randn(2, c, *([_SPATIAL_A] * r), generator=g) for c, r in sigs]
    b = [torch.randn(3, c, *([_SPATIAL_B] * r), generator=g) for c, r in sigs]
    return a, b
