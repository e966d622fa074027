"""Compose chains of transposes and drop identity ones.

Establishes: no ``transpose`` whose input is produced by another ``transpose`` with no other
users, and no identity ``transpose``.
Math: transpose(transpose(x, p), q) == transpose(x, [p[i] for i in q]).
"""

from __future__ import annotations

from transpiler.ir import Graph

from .manager import PassContext, PassResult

__all__ = ["cancel_transposes"]


def cancel_transposes(graph: Graph, ctx: PassContext) -> PassResult:
    removed = 0
    for node in [n for n in graph.nodes if n.op == "transpose"]:
        src = node.inputs[0].producer
        if src is not None and src.op == "transpose" and len(graph.users(src.output)) == 1:
            p, q = src.attrs["perm"], node.attrs["perm"]
            node.attrs["perm"] = tuple(p[i] for i in q)
            node.inputs[0] = src.inputs[0]
            graph.nodes.remove(src)  # its only user no longer reads it
            removed += 1
        if tuple(node.attrs["perm"]) == tuple(range(len(node.attrs["perm"]))):
            node.output.perm = node.inputs[0].perm
            graph.replace_all_uses(node.output, node.inputs[0])
            graph.nodes.remove(node)
            removed += 1
    return PassResult(graph, removed > 0, f"{removed} removed")
