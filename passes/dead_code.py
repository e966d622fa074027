"""Remove nodes whose outputs are never used, constants nobody reads, and ``identity`` ops.

Establishes: every node output reaches a graph output; ``graph.constants`` holds only
constants that some node (or output) uses; no ``identity`` op but one that is a graph output
(a ``clone()`` or ``detach()`` is the value itself: its users read the input instead, so the
Keras source has no ``layers.Identity`` for it). All IR ops are pure, so a reverse sweep
suffices.
"""

from __future__ import annotations

from transpiler.ir import Graph

from .manager import PassContext, PassResult

__all__ = ["dead_code"]


def dead_code(graph: Graph, ctx: PassContext) -> PassResult:
    outputs = {id(o) for o in graph.outputs}
    for node in graph.nodes:
        x = node.inputs[0] if node.op == "identity" else None
        if x is not None and id(node.output) not in outputs and _same_value(x, node.output):
            graph.replace_all_uses(node.output, x)  # the node is dead now: swept below
    live: set[int] = set(outputs)
    kept = []
    for node in reversed(graph.nodes):
        if not any(id(o) in live for o in node.outputs):
            continue
        kept.append(node)
        live.update(id(i) for i in node.inputs)
    removed = len(graph.nodes) - len(kept)
    graph.nodes = kept[::-1]
    used = {v.name for n in graph.nodes for v in n.inputs} | {o.name for o in graph.outputs}
    dropped = [k for k in graph.constants if k not in used]
    for k in dropped:
        del graph.constants[k]
    return PassResult(
        graph, bool(removed or dropped), f"{removed} nodes, {len(dropped)} constants removed"
    )


def _same_value(a, b) -> bool:
    return a.type == b.type and getattr(a, "perm", None) == getattr(b, "perm", None)
