"""Per-op layout rules, chosen by the op's layout class in ``transpiler.ops``.

A rule sees the node (still in PyTorch's logical layout) and a ``Layouts`` helper that knows,
for each logical value, which physical value carries it and in which permutation
(``physical = logical.permute(perm)``). It rewires the node's inputs to physical values (asking
for a transpose only where the op cannot run in the layout it is given), remaps its layout
attributes, and returns the permutation of its output.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from transpiler.errors import TranspileError
from transpiler.ir import Node, Value
from transpiler.ops import OPS

if TYPE_CHECKING:  # pragma: no cover
    from .rewrite import Layouts

Perm = tuple[int, ...]
Rule = Callable[[Node, "Layouts"], "Perm | None"]


def identity(rank: int) -> Perm:
    return tuple(range(rank))


def channels_last(rank: int) -> Perm:
    """(0, 2, ..., r-1, 1): NCHW -> NHWC, NCL -> NLC, NCDHW -> NDHWC."""
    return (0, *range(2, rank), 1) if rank >= 3 else identity(rank)


def spatial(node: Node, lay: Layouts) -> Perm:
    x = node.inputs[0]
    cl = channels_last(x.rank)
    node.inputs[0] = lay.need(x, cl, f"to channels-last for {node.op}")
    for k in range(1, len(node.inputs)):  # a kernel/bias computed in forward: PyTorch's layout
        v = node.inputs[k]
        if not lay.graph.is_constant(v):
            node.inputs[k] = lay.need(v, identity(v.rank), f"{node.op} weights")
    node.attrs["data_format"] = "channels_last"
    return cl


def _target(node: Node, lay: Layouts) -> Perm:
    """The layout an elementwise/concat op runs in: that of its largest full-rank tensor input
    (re-laying a small operand such as an (N, C, 1, 1) gate costs nothing)."""
    rank = node.output.rank
    best, best_size = identity(rank), -1
    for v in node.inputs:
        if v.rank == rank and not lay.graph.is_constant(v):
            size = 1
            for d in lay.logical_shape(v):
                size *= 10**9 if d is None else d
            if size > best_size:
                best, best_size = lay.perm(v), size
    return best


def elementwise(node: Node, lay: Layouts) -> Perm:
    target = _target(node, lay)
    rank = len(target)
    for k, v in enumerate(node.inputs):
        if lay.graph.is_constant(v):
            node.inputs[k] = lay.constant_in(v, target, rank)
        elif v.rank < rank and target != identity(rank):
            node.inputs[k] = lay.need(lay.unsqueeze(v, rank), target, "broadcast operand")
        elif v.rank < rank:
            node.inputs[k] = lay.need(v, identity(v.rank), "broadcast operand")
        else:
            node.inputs[k] = lay.need(v, target, f"{node.op} operands in one layout")
    return target


def remap_axis_attrs(node: Node, p: Perm) -> None:
    """Remap the attributes the op declares as axis-carrying (``OpSpec.axis_attrs``) to the
    physical layout ``p``: an axis to its position, a set of axes to their sorted positions,
    a per-axis tuple reordered with its axes."""
    for key, kind in OPS[node.op].axis_attrs.items():
        value = node.attrs[key]
        if value is None:  # an optional attribute left unset (broadcast_to's ref_axes)
            continue
        if kind == "axis":
            node.attrs[key] = p.index(value)
        elif kind == "axes":
            node.attrs[key] = tuple(sorted(p.index(a) for a in value))
        elif kind == "per_axis":
            node.attrs[key] = tuple(value[q] for q in p)
        else:
            raise TranspileError(f"op {node.op!r}: unknown axis attribute kind {kind!r}")


def axis(node: Node, lay: Layouts) -> Perm:
    """The generic rule of the ``axis`` class: run in the input's layout, remap the axis
    attributes (constant inputs such as per-channel weights are indexed by the axis itself)."""
    p = lay.perm(node.inputs[0])
    node.inputs[0] = lay.physical(node.inputs[0])
    remap_axis_attrs(node, p)
    return p


def cat(node: Node, lay: Layouts) -> Perm:
    """All inputs in one (shared) layout, like an elementwise op."""
    target = elementwise(node, lay)
    remap_axis_attrs(node, target)
    return target


def slice_(node: Node, lay: Layouts) -> Perm:
    p = lay.perm(node.inputs[0])
    node.inputs[0] = lay.physical(node.inputs[0])
    order = sorted(range(len(node.attrs["axes"])), key=lambda k: p.index(node.attrs["axes"][k]))
    for key in ("starts", "stops", "steps"):
        node.attrs[key] = tuple(node.attrs[key][k] for k in order)
    node.attrs["axes"] = tuple(p.index(node.attrs["axes"][k]) for k in order)
    if node.attrs["ref_stops"] is not None:  # the reference's axes, in its physical layout
        node.attrs["ref_stops"] = _ref_axes(node, lay, [node.attrs["ref_stops"][k] for k in order])
    return p


def _ref_axes(node: Node, lay: Layouts, axes: list) -> tuple:
    """``axes`` of the node's second input (a reference whose sizes are read at run time),
    mapped to that input's physical layout (which the node then takes)."""
    q = lay.perm(node.inputs[1])
    node.inputs[1] = lay.physical(node.inputs[1])
    return tuple(None if a is None else q.index(a) for a in axes)


def layer_norm(node: Node, lay: Layouts) -> Perm:
    """Normalized axes remapped; the affine constants follow the axes' physical order."""
    axes = tuple(node.attrs["axes"])
    p = axis(node, lay)
    by_position = tuple(sorted(axes, key=p.index))
    if by_position != axes:
        order = tuple(axes.index(a) for a in by_position)
        for k in (1, 2):
            arr = lay.graph.constant(node.inputs[k])
            node.inputs[k] = lay.graph.add_constant(np.ascontiguousarray(arr.transpose(order)))
    return p


def broadcast_to(node: Node, lay: Layouts) -> Perm:
    x = node.inputs[0]
    p = lay.perm(x)
    if node.attrs["ref_axes"] is not None:  # the reference input's axes, to its layout
        node.attrs["ref_axes"] = _ref_axes(node, lay, list(node.attrs["ref_axes"]))
    node.inputs = [lay.physical(v) for v in node.inputs]  # the reference input: batch only
    remap_axis_attrs(node, p)
    return p


def fixed(node: Node, lay: Layouts) -> Perm:
    """Ops that run in PyTorch's layout (matmul, einsum, rnn): inputs back to it; every output
    (an rnn has several) in PyTorch's layout too."""
    for k, v in enumerate(node.inputs):
        if not lay.graph.is_constant(v):
            node.inputs[k] = lay.need(v, identity(v.rank), f"{node.op} in PyTorch's layout")
    return identity(node.outputs[0].rank)


def reduce_(node: Node, lay: Layouts) -> Perm:
    """Without keepdims the output lacks the reduced axes: its layout is the input's, less
    them."""
    axes = tuple(node.attrs["axes"])
    p = axis(node, lay)
    if node.attrs["keepdims"]:
        return p
    return tuple(q - sum(a < q for a in axes) for q in p if q not in axes)


def pad(node: Node, lay: Layouts) -> Perm:
    """Pad in the layout its consumers want (a pad made for a conv runs channels-last), so a
    transpose, if any, comes before the pad rather than between it and the conv."""
    x = node.inputs[0]
    p = _preferred(lay, node.output) or lay.perm(x)
    why = (
        "to channels-last for pad" if p == channels_last(x.rank) else "pad in its consumers' layout"
    )
    node.inputs[0] = lay.need(x, p, why)
    remap_axis_attrs(node, p)
    return p


def last_axis(node: Node, lay: Layouts) -> Perm:
    x = node.inputs[0]
    p = lay.perm(x)
    if p[-1] != x.rank - 1:
        p = identity(x.rank)
    node.inputs[0] = lay.need(x, p, "linear acts on the last axis")
    return p


def reshape(node: Node, lay: Layouts) -> Perm:
    """Reshape the physical tensor directly when the reshape only splits/merges axes that lie
    together and in order in the physical layout (e.g. channel shuffle's view on NHWC data);
    a flatten feeding only linears permutes their weights instead; otherwise reorder the input
    (one transpose) so that it does."""
    x, y = node.inputs[0], node.output
    if node.attrs["ref_axes"] is not None:  # sizes read off a reference: PyTorch's layout
        node.inputs = [
            lay.need(v, identity(v.rank), "reshape with runtime sizes") for v in node.inputs
        ]
        return identity(y.rank)
    p, in_shape, out_shape = lay.perm(x), lay.logical_shape(x), tuple(y.shape)
    blocks = _reshape_blocks(in_shape, out_shape)
    if blocks is None:
        node.inputs[0] = lay.need(x, identity(x.rank), "reshape merging the dynamic axis")
        return identity(y.rank)
    order = _block_order(blocks, p, in_shape)
    if order is None and _flatten_into_linears(node, lay, p):
        node.inputs[0] = lay.physical(x)
        return identity(y.rank)
    if order is None:
        # one transpose is unavoidable: pick the input layout whose output layout suits the
        # consumers (channels-last for a conv after a channel shuffle, PyTorch's for a linear)
        regrouped = _reordered(p, blocks, in_shape)
        want = _preferred(lay, y)
        target = identity(x.rank)
        if (
            want is not None
            and _out_perm(_block_order(blocks, regrouped, in_shape), out_shape) == want
        ):
            target = regrouped
        node.inputs[0] = lay.need(x, target, "reshape of a permuted tensor")
        order = _block_order(blocks, target, in_shape)
        assert order is not None
    else:
        node.inputs[0] = lay.physical(x)
    q = _out_perm(order, out_shape)
    node.attrs["shape"] = tuple(-1 if out_shape[a] is None else out_shape[a] for a in q)
    return q


def _preferred(lay: Layouts, v: Value, depth: int = 6) -> Perm | None:
    """The layout wanted by the nearest consumer (breadth-first through layout-agnostic ops of
    the same rank) that wants one: channels-last for a conv, PyTorch's for a linear."""
    frontier, rank = [v], v.rank
    for _ in range(depth):
        following = []
        for value in frontier:
            for u in lay.graph.users(value):
                kind = OPS[u.op].layout
                if kind == "spatial":
                    return channels_last(rank)
                if kind in ("last_axis", "fixed"):
                    return identity(rank)
                if kind in ("elementwise", "axis") and u.output.rank == rank:
                    following.append(u.output)
        if not following:
            return None
        frontier = following
    return None


def _reshape_blocks(in_shape: tuple, out_shape: tuple) -> list[tuple[list, list]] | None:
    """Pair runs of input axes with runs of output axes of equal size (size-1 axes left out);
    None if a dynamic axis is merged or split."""
    ins = [a for a, d in enumerate(in_shape) if d != 1]
    outs = [a for a, d in enumerate(out_shape) if d != 1]
    blocks, i, j = [], 0, 0
    while i < len(ins) and j < len(outs):
        bi, bo = [ins[i]], [outs[j]]
        si, so = in_shape[ins[i]], out_shape[outs[j]]
        if si is None or so is None:
            if si is not None or so is not None:
                return None
        else:
            while si != so:
                if si < so:
                    i += 1
                    if i >= len(ins) or in_shape[ins[i]] is None:
                        return None
                    bi.append(ins[i])
                    si *= in_shape[ins[i]]
                else:
                    j += 1
                    if j >= len(outs) or out_shape[outs[j]] is None:
                        return None
                    bo.append(outs[j])
                    so *= out_shape[outs[j]]
        blocks.append((bi, bo))
        i, j = i + 1, j + 1
    return blocks if i == len(ins) and j == len(outs) else None


def _block_order(blocks, p: Perm, in_shape: tuple) -> list | None:
    """The blocks in physical order, if each block's axes are adjacent and in order there."""
    phys = [a for a in p if in_shape[a] != 1]
    pos = {a: k for k, a in enumerate(phys)}
    for bi, _ in blocks:
        if [pos[a] for a in bi] != list(range(pos[bi[0]], pos[bi[0]] + len(bi))):
            return None
    return sorted(blocks, key=lambda blk: pos[blk[0][0]])


def _reordered(p: Perm, blocks, in_shape: tuple) -> Perm:
    """``p`` with the non-1 axes regrouped block by block (blocks kept in physical order)."""
    phys = [a for a in p if in_shape[a] != 1]
    first = {a: min(phys.index(b) for b in bi) for bi, _ in blocks for a in bi}
    regrouped = iter(sorted(phys, key=lambda a: (first[a], a)))
    return tuple(next(regrouped) if in_shape[a] != 1 else a for a in p)


def _out_perm(order, out_shape: tuple) -> Perm:
    """Output axes block by block in physical order; size-1 axes after their predecessor."""
    q = [a for _, bo in order for a in bo]
    for a in range(len(out_shape)):
        if out_shape[a] == 1:
            q.insert(q.index(a - 1) + 1 if a - 1 in q else 0, a)
    return tuple(q)


def _flatten_into_linears(node: Node, lay: Layouts, p: Perm) -> bool:
    """flatten(N, C, H, W) -> (N, C·H·W) feeding only linears: flatten the physical (H, W, C)
    order instead and permute the linears' weight columns to match (no transpose)."""
    x, y = node.inputs[0], node.output
    rest = lay.logical_shape(x)[1:]
    if p[0] != 0 or y.rank != 2 or None in rest or y.shape[1] != int(np.prod(rest)):
        return False
    users = lay.graph.users(y)
    if (
        not users
        or any(
            u.op != "linear"
            or u.inputs[0] is not y
            or not lay.graph.is_constant(u.inputs[1])
            or any(v is y for v in u.inputs[1:])
            for u in users
        )
        or any(o is y for o in lay.graph.outputs)
    ):
        return False
    # sigma[j] = logical feature index found at physical position j
    sigma = np.arange(int(np.prod(rest))).reshape(rest).transpose([q - 1 for q in p[1:]]).ravel()
    if np.array_equal(sigma, np.arange(sigma.size)):
        return True
    for u in users:
        w = lay.graph.constant(u.inputs[1])
        u.inputs[1] = lay.graph.add_constant(np.ascontiguousarray(w[:, sigma]), "weight_nhwc")
        u.meta["flatten_permuted"] = True
    return True


def transpose(node: Node, lay: Layouts) -> Perm | None:
    """Absorb the permutation into the layout: the node disappears (returns None)."""
    p = lay.perm(node.inputs[0])
    q = node.attrs["perm"]
    lay.alias(node.output, node.inputs[0], tuple(q.index(pj) for pj in p))
    return None


# One rule per layout class ...
RULES: dict[str, Rule] = {
    "spatial": spatial,
    "elementwise": elementwise,
    "axis": axis,
    "last_axis": last_axis,
    "reshape": reshape,
    "transpose": transpose,
    "fixed": fixed,
}
# ... and the real special cases (see the docstrings).
BY_OP: dict[str, Rule] = {
    "cat": cat,
    "reduce": reduce_,
    "arg_reduce": reduce_,
    "layer_norm": layer_norm,
    "broadcast_to": broadcast_to,
    "slice": slice_,
    "pad": pad,
}


def rule_for_op(op: str) -> Rule:
    """The layout rule of ``op``; a named TranspileError if it has none (an undeclared op, a
    layout class without a rule, an ``axis`` op declaring no axis attributes)."""
    spec = OPS.get(op)
    if spec is None:
        raise TranspileError(f"layout: op {op!r} is not declared in transpiler/ops.py")
    if op in BY_OP:
        return BY_OP[op]
    rule = RULES.get(spec.layout)
    if rule is None:
        raise TranspileError(
            f"layout: op {op!r} has layout class {spec.layout!r}, which has no rule"
        )
    if spec.layout == "axis" and not spec.axis_attrs:
        raise TranspileError(
            f"layout: op {op!r} is in the 'axis' class but declares no axis_attrs in "
            "transpiler/ops.py"
        )
    return rule


def rule_for(node: Node) -> Rule:
    try:
        return rule_for_op(node.op)
    except TranspileError as exc:
        raise TranspileError(f"{exc} (node `{node.format()}`)") from exc


__all__ = [
    "RULES",
    "BY_OP",
    "rule_for",
    "rule_for_op",
    "remap_axis_attrs",
    "identity",
    "channels_last",
    "Value",
]
