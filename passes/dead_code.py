"""Remove nodes whose outputs are never used, and constants nobody reads.

Establishes: every node output reaches a graph output; ``graph.constants`` holds only
constants that some node (or output) uses. All IR ops are pure, so a reverse sweep suffices.
"""

from __future__ import annotations

from transpiler.ir import Graph

from .manager import PassContext, PassResult

__all__ = ["dead_code"]


def dead_code(graph: Graph, ctx: PassContext) -> PassResult:
    live: set[int] = {id(o) for o in graph.outputs}
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
