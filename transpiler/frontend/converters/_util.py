"""Small helpers shared by the converter families."""

from __future__ import annotations

from typing import Any

import torch

from ...errors import TranspileError
from ...ir import Value


def pair(v: Any, n: int = 2) -> tuple[int, ...]:
    if isinstance(v, list | tuple):
        if len(v) == 1:
            return tuple(int(v[0]) for _ in range(n))
        return tuple(int(x) for x in v)
    return tuple(int(v) for _ in range(n))


def axis(dim: int, rank: int) -> int:
    if not -rank <= dim < max(rank, 1):
        raise TranspileError(f"dimension {dim} is out of range for a rank-{rank} tensor")
    return dim % rank if rank else 0


def axes(dims: Any, rank: int) -> tuple[int, ...]:
    if dims is None:
        return tuple(range(rank))
    if isinstance(dims, int):
        dims = (dims,)
    return tuple(sorted(axis(d, rank) for d in dims))


def keeps_batch(b: Any, inputs: Any, shape: tuple, what: str) -> None:
    """Refuse an op whose result loses the dynamic (batch) axis its inputs have, e.g.
    ``x[0]`` or ``x.squeeze(0)`` on the batch: the converted model keeps the batch dynamic."""
    if None in tuple(shape):
        return
    if any(isinstance(v, Value) and None in v.shape for v in inputs):
        raise TranspileError(
            f"{what} at {b.where()} removes the batch dimension (result {tuple(shape)}); the "
            "converted model keeps the batch dimension dynamic end to end: select, squeeze or "
            "reduce over the batch outside the model."
        )


def batched(b: Any, input: Value, n: int, what: str, build: Any, out_type: Any = None) -> Any:
    """Run ``build(x, out_type)`` on a batched input: PyTorch's unbatched form of an
    ``n``-d spatial op (rank ``n + 1``: channels and spatial axes) gets a batch axis of 1 first
    and loses it after, as PyTorch documents; any other rank is refused. ``out_type``: the
    result's type (default: the traced node's), or a tuple of types when ``build`` returns a
    tuple of values (max pooling with its indices)."""
    from ...ir import TensorType

    out = out_type if out_type is not None else b.out_type
    if input.rank == n + 2:
        return build(input, out)
    if input.rank != n + 1:
        raise TranspileError(
            f"{what} at {b.where()} takes a rank-{n + 2} (batched) or rank-{n + 1} (unbatched) "
            f"input, got rank {input.rank} {tuple(input.shape)}"
        )
    if sum(d is None for d in input.shape) > 1:
        raise TranspileError(f"{what} at {b.where()}: an unbatched input with several dynamic axes")
    shape = (1, *input.shape)
    x = b.op(
        "reshape",
        [input],
        TensorType(shape, input.type.dtype),
        shape=tuple(-1 if d is None else d for d in shape),
    )
    several = isinstance(out, tuple)
    outs = out if several else (out,)
    if any(sum(d is None for d in t.shape) > 1 for t in outs):
        raise TranspileError(f"{what} at {b.where()}: an unbatched input with several dynamic axes")
    ys = build(
        x,
        tuple(TensorType((1, *t.shape), t.dtype) for t in outs)
        if several
        else TensorType((1, *out.shape), out.dtype),
    )
    ys = ys if several else (ys,)
    res = tuple(
        b.op("reshape", [y], t, shape=tuple(-1 if d is None else d for d in t.shape))
        for y, t in zip(ys, outs, strict=True)
    )
    return res if several else res[0]


def dynamic_target(b: Any, x: Any, shape: tuple, what: str = "reshape") -> tuple:
    """A reshape target for ``x`` -> ``shape``: -1 for each dynamic size. Several are allowed
    (dynamic sizes beyond the batch) when the reshape keeps each of x's dynamic axes whole and
    in order (ops.py, reshape); in the traced run their sizes must match, in order."""
    n_out = sum(d is None for d in shape)
    n_in = sum(d is None for d in x.shape)
    if n_out > 1:
        same = n_out == n_in
        example, traced = b.example_args[0] if b.example_args else None, b.example_out
        if (
            same
            and isinstance(example, torch.Tensor)
            and isinstance(traced, torch.Tensor)
            and example.dim() == len(x.shape)
            and traced.dim() == len(shape)
        ):
            sizes_in = [example.shape[i] for i, d in enumerate(x.shape) if d is None]
            sizes_out = [traced.shape[i] for i, d in enumerate(shape) if d is None]
            same = len(traced.shape) == len(shape) and list(sizes_in) == list(sizes_out)
        if not same:
            raise TranspileError(
                f"{what} at {b.where()} merges or splits a dynamic dimension (to {tuple(shape)} "
                f"from {tuple(x.shape)}); keep those dimensions static (dynamic_shapes=None, or "
                "fewer dynamic dims)."
            )
    return tuple(-1 if d is None else d for d in shape)


def broadcast_sized(b: Any, x: Value, target: Any, what: str) -> Value:
    """``x`` broadcast to ``target`` (one entry per axis of ``x``): an int, -1 (keep x's size)
    or a ``DimRef`` (a dynamic size read off a value at run time: a ``broadcast_to`` with that
    value as its reference). Sizes read off different values take one ``broadcast_to`` each.
    A dynamic size that is not a ``DimRef`` raises ``TranspileError`` naming ``what``."""
    from ...ir import TensorType
    from ..fx_importer import DimRef, is_dynamic

    target = list(target)
    bad = [t for t in target if is_dynamic(t) and not isinstance(t, DimRef)]
    if bad:
        raise TranspileError(
            f"{what} at {b.where()} has a dynamic size that is not read off a tensor's shape; "
            "pass example_inputs with the sizes you need"
        )
    refs: list[Value] = []
    for t in target:
        if isinstance(t, DimRef) and all(t.value is not r for r in refs):
            refs.append(t.value)
    shape = [-1 if t == -1 or isinstance(t, DimRef) else int(t) for t in target]
    if not refs:
        if all(s == -1 or s == d for s, d in zip(shape, x.shape, strict=True)):
            return x
        out = tuple(d if s == -1 else s for s, d in zip(shape, x.shape, strict=True))
        return b.op("broadcast_to", [x], TensorType(out, x.type.dtype), shape=tuple(shape))
    for k, ref in enumerate(refs):
        mine = [isinstance(t, DimRef) and t.value is ref for t in target]
        step = [None if m else (s if k == 0 else -1) for m, s in zip(mine, shape, strict=True)]
        ref_axes = tuple(t.axis if m else None for m, t in zip(mine, target, strict=True))
        dims = [
            None if m or (d is None and s == -1) else (d if s == -1 else s)
            for m, s, d in zip(mine, step, x.shape, strict=True)
        ]
        out = TensorType(tuple(dims), x.type.dtype)
        x = b.op("broadcast_to", [x, ref], out, shape=tuple(step), ref_axes=ref_axes)
    return x


def beyond_batch(b: Any, size: Any) -> bool:
    """``size`` is a DimRef other than a graph input's axis 0 (its batch): a size that the
    batch-only paths (a reference to the first input's batch) would get wrong."""
    from ..fx_importer import DimRef

    if not isinstance(size, DimRef):
        return False
    return size.axis != 0 or all(size.value is not v for v in b.graph.inputs)
