"""Concatenate learned tokens to a sequence as a zero pad plus a constant, not a broadcast.

Requires: PyTorch's layout (runs before ``layout``), constant tokens.
Establishes: ``cat([broadcast_to(c, (None, ...)), ..., x], axis)`` with ``axis`` not the batch,
where every input but one (``x``) is a constant broadcast along the batch axis only (ViT's
class token, DeiT's class and distillation tokens), becomes ``pad(x) + C``: ``x`` zero-padded
on ``axis`` to the concatenation's size, plus one constant ``C`` of batch 1 holding the tokens
in their rows and zeros in ``x``'s. When the concatenation's only user adds a constant (the
position embedding), that constant is added into ``C`` here and the add is the one left.

Exact: a token row is ``0 + c`` (or ``0 + (c + p)`` with the position embedding, where
PyTorch computes ``c + p`` with the same float32 rounding); an ``x`` row is ``x + 0`` (or
``x + (0 + p) = x + p``). Only the sign of a zero can differ (``-0 + 0 = +0``).

Why: the broadcast reads the batch size at run time (TFLite: SHAPE + STRIDED_SLICE + PACK +
BROADCAST_TO), which XNNPACK does not take, so the graph splits into two partitions; PAD and
ADD with constant operands are delegated and the batch stays dynamic.
"""

from __future__ import annotations

import numpy as np

from transpiler.ir import Graph, Node, Value

from .manager import PassContext, PassResult

__all__ = ["pad_class_tokens"]


def _token(graph: Graph, v: Value, shape: tuple) -> np.ndarray | None:
    """The constant that ``v`` broadcasts along the batch axis only, at ``shape`` (batch 1);
    None when ``v`` is anything else."""
    node = v.producer
    if node is None or node.op != "broadcast_to" or node.attrs["ref_axes"] is not None:
        return None
    c = node.inputs[0]
    target = tuple(node.attrs["shape"])
    if not graph.is_constant(c) or not target or target[0] is not None or None in target[1:]:
        return None
    if None in shape:
        return None
    value = graph.constant(c)
    if value.dtype != np.float32:
        return None
    try:
        return np.broadcast_to(value, (1, *shape)).copy()
    except ValueError:
        return None


def _folded_add(graph: Graph, cat: Node, counts: dict[int, int]) -> tuple[Node, Value] | None:
    """The concatenation's only user when it adds a float32 constant of batch 1 (the position
    embedding), with that constant; else None."""
    out = cat.output
    if counts.get(id(out), 0) != 1 or out in graph.outputs:
        return None
    users = graph.users(out)
    if len(users) != 1 or users[0].op != "add":
        return None
    add = users[0]
    other = add.inputs[1] if add.inputs[0] is out else add.inputs[0]
    if other is out or not graph.is_constant(other) or other.type.dtype != "float32":
        return None
    p = graph.constant(other)
    if p.ndim > out.rank or (p.ndim == out.rank and p.shape[0] != 1):
        return None
    full = (1, *out.shape[1:])
    if np.broadcast_shapes(p.shape, full) != full or add.output.type != out.type:
        return None
    return add, other


def _rewrite(graph: Graph, cat: Node, counts: dict[int, int]) -> bool:
    axis, out = cat.attrs["axis"] % cat.output.rank, cat.output
    if axis == 0 or out.type.dtype != "float32" or out.shape[0] is not None:
        return False
    if None in out.shape[1:]:
        return False
    rows: list[np.ndarray | None] = []
    for v in cat.inputs:
        rows.append(_token(graph, v, v.shape[1:]) if v.shape[axis] is not None else None)
    free = [k for k, r in enumerate(rows) if r is None]
    if len(free) != 1 or len(cat.inputs) < 2:
        return False
    x = cat.inputs[free[0]]
    if x.shape[axis] is None or x.type.dtype != "float32":
        return False
    sizes = [v.shape[axis] for v in cat.inputs]
    before, after = sum(sizes[: free[0]]), sum(sizes[free[0] + 1 :])
    table = np.concatenate(
        [np.zeros((1, *x.shape[1:]), np.float32) if r is None else r for r in rows], axis=axis
    )
    pads = tuple((before, after) if k == axis else (0, 0) for k in range(x.rank))
    pad = graph.make_node("pad", [x], out.type, {"pads": pads}, cat.source, "pad")
    at = f" at {cat.source.source_line}" if cat.source and cat.source.source_line else ""
    pad.meta["note"] = f"torch: cat{at}: zero rows for the tokens, added next as a constant"
    fold = _folded_add(graph, cat, counts)
    if fold is not None:  # (x padded) + (tokens + position embedding), one add as before
        add, other = fold
        table = (table + graph.constant(other)).astype(np.float32)
        const = graph.add_constant(table, "tokens_and_" + other.name)
        add.inputs = [pad.output, const]
    else:
        const = graph.add_constant(table, "tokens")
        add = graph.make_node("add", [pad.output, const], out.type, {}, cat.source, "tokens")
        add.output.torch_ref = out.torch_ref  # the sum is the concatenation (diagnosis)
        graph.nodes.insert(graph.nodes.index(cat) + 1, add)
        graph.replace_all_uses(out, add.output)
    graph.insert_before(cat, pad)
    graph.nodes.remove(cat)
    for v in cat.inputs:  # the broadcasts nothing else reads
        if (
            v is not x
            and v.producer in graph.nodes
            and v not in graph.outputs
            and not graph.users(v)
        ):
            graph.nodes.remove(v.producer)
    return True


def pad_class_tokens(graph: Graph, ctx: PassContext) -> PassResult:
    counts = graph.use_counts()
    done = [n for n in list(graph.nodes) if n.op == "cat" and _rewrite(graph, n, counts)]
    return PassResult(graph, bool(done), f"{len(done)} token concatenation(s) as pad + constant")
