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

__all__ = [
    "normalize_inputs",
    "alternate_inputs",
    "infer_inputs",
    "other_batch",
    "BatchSpec",
    "DynamicDim",
    "DynamicSpec",
    "AUTO",
    "parse_dynamic_shapes",
    "auto_dynamic",
    "describe_dynamic",
    "resize_dynamic",
]

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


# -- dynamic dimensions beyond the batch (issue 12, s2-hf-text) ---------------------------------

AUTO = "auto"


@dataclass(frozen=True)
class DynamicDim:
    """A declared dynamic input dimension: dims sharing a ``name`` always have equal sizes.
    ``low``/``high``: the sizes allowed (``high`` None: unbounded)."""

    name: str
    low: int = 2
    high: int | None = None

    def other_size(self, size: int) -> int:
        """The size of the second tracing run: two less (keeping odd/even), else two more,
        else any other size in range; ``size`` itself when the range holds nothing else."""
        low = max(2, self.low)
        for n in (size - 2, size + 2, size - 1, size + 1):
            if n >= low and (self.high is None or n <= self.high):
                return n
        return size


# per input: axis -> DynamicDim (axis 0, the batch, is always dynamic and never listed)
DynamicSpec = list[dict[int, DynamicDim]]


def _dynamic_dim(entry: Any, k: int, axis: int) -> DynamicDim | None:
    """One declaration: None/False (static), True or a name, or a ``torch.export.Dim``."""
    if entry is None or entry is False:
        return None
    if entry is True:
        return DynamicDim(f"dim{k}_{axis}")
    if isinstance(entry, str):
        if not entry.isidentifier():
            raise TranspileError(
                f"dynamic_shapes: the name {entry!r} of input {k} axis {axis} is not an identifier."
            )
        return DynamicDim(entry)
    name = getattr(entry, "__name__", None)
    if isinstance(name, str) and hasattr(entry, "min") and hasattr(entry, "max"):
        high = entry.max if isinstance(entry.max, int) and entry.max < 2**62 else None
        low = entry.min if isinstance(entry.min, int) else 2
        return DynamicDim(name, max(2, low), high)
    if type(entry).__name__ == "_DimHint":  # Dim.AUTO / Dim.DYNAMIC: unnamed
        return DynamicDim(f"dim{k}_{axis}")
    raise TranspileError(
        f"dynamic_shapes: input {k} axis {axis} is declared as {entry!r}; use None (static), "
        "True, a name (inputs sharing a name share the size) or torch.export.Dim(name, min=, max=)."
    )


def _per_input(spec: Any, n: int, names: list[str]) -> list[Any]:
    if isinstance(spec, dict) and all(isinstance(key, str) for key in spec):
        unknown = [key for key in spec if key not in names]
        if unknown:
            raise TranspileError(
                f"dynamic_shapes names {unknown} that forward() does not take as its first "
                f"{n} argument(s) {names}; key the dict by those names, or pass one entry per "
                "input in a tuple."
            )
        return [spec.get(name) for name in names]
    if isinstance(spec, tuple | list) and len(spec) == n:
        return list(spec)
    if n == 1 and isinstance(spec, dict):  # one input: its {axis: dim} directly
        return [spec]
    raise TranspileError(
        f"dynamic_shapes must hold one entry per input ({n}), in a tuple or a dict keyed by "
        f"forward()'s argument names, like torch.export's: e.g. ({{1: 'seq'}},) * {n}; got "
        f"{spec!r}."
    )


def parse_dynamic_shapes(spec: Any, inputs: list[torch.Tensor], names: list[str]) -> DynamicSpec:
    """``transpile(dynamic_shapes=...)`` -> per input, axis -> DynamicDim (the batch left out).

    Accepts torch.export's structure: one entry per input (a tuple, or a dict keyed by
    forward()'s argument names), each None, ``{axis: dim}`` or a tuple of one dim per axis; a
    dim is None/False (static), True, a name or a ``torch.export.Dim``."""
    out: DynamicSpec = []
    for k, (entry, x) in enumerate(zip(_per_input(spec, len(inputs), names), inputs, strict=True)):
        if entry is None:
            out.append({})
            continue
        if isinstance(entry, dict):
            items = list(entry.items())
        elif isinstance(entry, tuple | list):
            items = list(enumerate(entry))
        else:
            raise TranspileError(
                f"dynamic_shapes entry of input {k} is {entry!r}: use None, {{axis: dim}} or a "
                "tuple of one dim per axis."
            )
        dims: dict[int, DynamicDim] = {}
        for axis, dim_entry in items:
            if not isinstance(axis, int) or not -x.dim() <= axis < x.dim():
                raise TranspileError(
                    f"dynamic_shapes: input {k} has {x.dim()} dimension(s), no axis {axis!r}."
                )
            axis %= x.dim()
            dim = _dynamic_dim(dim_entry, k, axis)
            if dim is None or axis == 0:  # the batch is always dynamic
                continue
            size = int(x.shape[axis])
            if size < 2 or size < dim.low or (dim.high is not None and size > dim.high):
                raise TranspileError(
                    f"dynamic_shapes: input {k} axis {axis} ({dim.name}) has size {size} in "
                    f"example_inputs, outside [{max(2, dim.low)}, {dim.high or 'inf'}]; a "
                    "dynamic dimension needs an example size of at least 2 in its range."
                )
            dims[axis] = dim
        out.append(dims)
    sizes: dict[str, int] = {}
    for k, dims in enumerate(out):
        for axis, dim in dims.items():
            if sizes.setdefault(dim.name, int(inputs[k].shape[axis])) != inputs[k].shape[axis]:
                raise TranspileError(
                    f"dynamic_shapes: the dims named {dim.name!r} have different sizes in "
                    "example_inputs; dims sharing a name must be equal."
                )
    return out


def auto_dynamic(inputs: list[torch.Tensor]) -> DynamicSpec:
    """The default: the sequence axis (1) of integer inputs of rank >= 2 (token ids, masks,
    position ids), one shared dim ``seq`` per size; float inputs keep their sizes."""
    out: DynamicSpec = []
    for x in inputs:
        integer = not x.is_floating_point() and x.dtype != torch.bool
        out.append({1: DynamicDim("seq")} if integer and x.dim() >= 2 and x.shape[1] >= 2 else {})
    return out


def describe_dynamic(spec: DynamicSpec, names: list[str]) -> str:
    """``input_ids[1]=seq, attention_mask[1]=seq`` (empty when nothing beyond the batch)."""
    parts = [
        f"{names[k] if k < len(names) else k}[{axis}]={dim.name}"
        for k, dims in enumerate(spec)
        for axis, dim in sorted(dims.items())
    ]
    return ", ".join(parts)


def resize_dynamic(
    inputs: list[torch.Tensor], spec: DynamicSpec, seed: int = 7
) -> list[torch.Tensor]:
    """Inputs like ``inputs`` with every declared dim at its other size (random values; an
    integer input keeps its value range)."""
    out = []
    for k, (x, dims) in enumerate(zip(inputs, spec, strict=True)):
        if not dims:
            out.append(x)
            continue
        shape = [dims[a].other_size(int(s)) if a in dims else int(s) for a, s in enumerate(x.shape)]
        out.append(_random_like(x, tuple(shape), seed + k))
    return out
