"""Flattening of (nested) outputs in the contract's pytree order."""

from __future__ import annotations

from typing import Any


def flatten(obj: Any) -> list[Any]:
    """Leaves in pytree order: tuples/lists in order, dict values in insertion order."""
    if isinstance(obj, tuple | list):
        return [leaf for item in obj for leaf in flatten(item)]
    if isinstance(obj, dict):
        return [leaf for item in obj.values() for leaf in flatten(item)]
    return [obj]
