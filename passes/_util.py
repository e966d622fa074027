"""Helpers shared by passes: padding arithmetic and node construction."""

from __future__ import annotations

import numpy as np

from transpiler.ir import Graph, Node, TensorType, Value


def tf_same_pads(size: int | None, k: int, s: int, d: int) -> tuple[int, int] | None:
    """TF 'SAME' pads (before, after) on one axis; None when they depend on an unknown size."""
    eff = (k - 1) * d + 1
    if s == 1:
        total = eff - 1
    elif size is None:
        return None
    else:
        out = -(-size // s)
        total = max((out - 1) * s + eff - size, 0)
    return total // 2, total - total // 2


def insert_pad(
    graph: Graph, before: Node, x: Value, pads_hw: list[tuple[int, int]], mode: str, value: float
) -> Value:
    """Insert ``pad`` of the two trailing (spatial) axes of NCHW ``x`` before ``before``."""
    pads = [(0, 0)] * (x.rank - 2) + [tuple(p) for p in pads_hw]
    shape = tuple(None if d is None else d + a + b for d, (a, b) in zip(x.shape, pads, strict=True))
    node = graph.make_node(
        "pad",
        [x],
        TensorType(shape, x.type.dtype),
        {"pads": tuple(pads), "mode": mode, "value": float(value)},
        before.source,
        "pad",
    )
    graph.insert_before(before, node)
    return node.output


def insert_binary_const(
    graph: Graph, after: Node, op: str, x: Value, const: np.ndarray, hint: str
) -> Value:
    """Insert ``op(x, const)`` right after ``after``; returns the new value (same type as x)."""
    c = graph.add_constant(const.astype(np.float32), hint)
    node = graph.make_node(op, [x, c], x.type, {}, after.source, hint)
    graph.nodes.insert(graph.nodes.index(after) + 1, node)
    return node.output
