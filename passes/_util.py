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


def make_pad(
    graph: Graph,
    x: Value,
    spatial_pads: list[tuple[int, int]],
    mode: str,
    value: float,
    source=None,
) -> Node:
    """A ``pad`` node (not inserted) padding the trailing (spatial) axes of ``x``."""
    pads = [(0, 0)] * (x.rank - len(spatial_pads)) + [tuple(p) for p in spatial_pads]
    shape = tuple(None if d is None else d + a + b for d, (a, b) in zip(x.shape, pads, strict=True))
    attrs = {"pads": tuple(pads), "mode": mode, "value": float(value)}
    return graph.make_node("pad", [x], TensorType(shape, x.type.dtype), attrs, source, "pad")


def insert_pad(
    graph: Graph,
    before: Node,
    x: Value,
    spatial_pads: list[tuple[int, int]],
    mode: str,
    value: float,
) -> Value:
    """Insert a ``pad`` of ``x``'s spatial axes right before ``before``; returns its output."""
    node = make_pad(graph, x, spatial_pads, mode, value, before.source)
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


def torch_pads(node: Node) -> list[tuple[int, int]]:
    """PyTorch's (before, after) padding per spatial axis of a conv/pool node: ints, or 'same'
    (total d(k-1), the extra one after) and 'valid'."""
    p = node.attrs["padding"]
    n = node.inputs[0].rank - 2
    if p == "valid":
        return [(0, 0)] * n
    if p == "same":  # torch 'same' (stride 1 only): total d(k-1), the extra one after
        w = node.inputs[1]
        totals = [node.attrs["dilation"][i] * (w.shape[2 + i] - 1) for i in range(n)]
        return [(t // 2, t - t // 2) for t in totals]
    return [(int(v), int(v)) for v in p]
