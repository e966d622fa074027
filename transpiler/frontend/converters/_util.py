"""Small helpers shared by the converter families."""

from __future__ import annotations

from typing import Any

from ...errors import TranspileError


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
