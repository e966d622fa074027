"""Carry the layout through the graph and insert transposes only where unavoidable.

One forward walk in topological order (greedy partition). Each logical value (PyTorch layout)
is carried by a physical value in some permutation; spatial ops pull their input into
channels-last, layout-agnostic ops run in whatever layout they receive, explicit permutes are
absorbed, and a transpose is materialized only when a consumer needs a permutation the value
does not have (cached, so each value is transposed at most once per permutation).
"""

from __future__ import annotations

import numpy as np

from transpiler.ir import Graph, Node, TensorType, Value

from ..manager import PassContext, PassResult
from .policy import Perm, channels_last, identity, rule_for


def physical_shape(shape: tuple, perm: Perm) -> tuple:
    return tuple(shape[p] for p in perm)


class Layouts:
    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self._state: dict[int, tuple[Value, Perm]] = {}
        self._logical: dict[int, TensorType] = {}
        self._cache: dict[tuple[int, Perm, Perm], Value] = {}
        self._anchor: Node | None = None  # new nodes go before it (None: at the end)
        self.inserted = 0

    def record_logical(self, v: Value) -> None:
        self._logical[id(v)] = v.type

    def logical_shape(self, v: Value) -> tuple:
        return self._logical[id(v)].shape if id(v) in self._logical else v.shape

    # -- state --------------------------------------------------------------------------------
    def set(self, logical: Value, physical: Value, perm: Perm) -> None:
        self._state[id(logical)] = (physical, perm)

    def alias(self, logical: Value, source: Value, perm: Perm) -> None:
        self._state[id(logical)] = (self.physical(source), perm)

    def perm(self, v: Value) -> Perm:
        if id(v) in self._state:
            return self._state[id(v)][1]
        return identity(v.rank)

    def physical(self, v: Value) -> Value:
        return self._state[id(v)][0] if id(v) in self._state else v

    # -- requests -------------------------------------------------------------------------------
    def need(self, v: Value, target: Perm, why: str) -> Value:
        """``v`` carried in permutation ``target``; inserts (once) a transpose if needed."""
        pv, p = self.physical(v), self.perm(v)
        if p == tuple(target):
            return pv
        key = (id(pv), p, tuple(target))  # one physical value may carry several logical ones
        if key not in self._cache and self._only_unit_axes_move(pv, p, tuple(target)):
            # e.g. (N, C, 1, 1) -> (N, 1, 1, C): the same element order, so a free reshape
            shape = physical_shape(self.logical_shape_of(pv, p), tuple(target))
            node = self.graph.make_node(
                "reshape",
                [pv],
                TensorType(shape, pv.type.dtype),
                {"shape": tuple(-1 if d is None else d for d in shape)},
                self._anchor.source if self._anchor else None,
                "relayout",
            )
            node.output.perm = tuple(target)
            self._insert(node)
            self._cache[key] = node.output
        if key not in self._cache:
            t = tuple(p.index(a) for a in target)  # physical axis to take for each new axis
            src = self._anchor.source if self._anchor else None
            where = f" at {src.module_path or '<top>'} ({src.module_type})" if src else ""
            reason = f"{why}{where}"
            node = self.graph.make_node(
                "transpose",
                [pv],
                TensorType(physical_shape(pv.shape, t), pv.type.dtype),
                {"perm": t, "reason": reason},
                self._anchor.source if self._anchor else None,
                "transpose",
            )
            node.output.perm = tuple(target)
            node.output.torch_ref = pv.torch_ref
            self._insert(node)
            self._cache[key] = node.output
            self.inserted += 1
        return self._cache[key]

    @staticmethod
    def logical_shape_of(pv: Value, p: Perm) -> tuple:
        shape = [0] * len(p)
        for k, a in enumerate(p):
            shape[a] = pv.shape[k]
        return tuple(shape)

    def _only_unit_axes_move(self, pv: Value, p: Perm, target: Perm) -> bool:
        logical = self.logical_shape_of(pv, p)
        if sum(d is None for d in logical) > 1:
            return False
        moved = [a for a in p if logical[a] != 1]
        return moved == [a for a in target if logical[a] != 1]

    def constant_in(self, c: Value, perm: Perm, rank: int) -> Value:
        """A constant broadcast operand, materialized in ``perm`` at conversion time."""
        arr = self.graph.constant(c)
        if arr.ndim == 0 or perm == identity(rank):
            return c
        arr = arr.reshape((1,) * (rank - arr.ndim) + arr.shape)
        return self.graph.add_constant(np.ascontiguousarray(arr.transpose(perm)), c.name)

    def unsqueeze(self, v: Value, rank: int) -> Value:
        """Leading size-1 axes, so a lower-rank operand can be permuted with the others."""
        pv = self.need(v, identity(v.rank), "broadcast operand")
        shape = (1,) * (rank - v.rank) + tuple(pv.shape)
        node = self.graph.make_node(
            "reshape",
            [pv],
            TensorType(shape, pv.type.dtype),
            {"shape": tuple(-1 if d is None else d for d in shape)},
            None,
            "unsqueeze",
        )
        self._insert(node)
        return node.output

    def _insert(self, node: Node) -> None:
        if self._anchor is None:
            self.graph.nodes.append(node)
        else:
            self.graph.insert_before(self._anchor, node)


def _io_perm(v: Value, layout: str) -> Perm:
    if layout == "nhwc" and v.type.is_float and 3 <= v.rank <= 5:
        return channels_last(v.rank)
    return identity(v.rank)


def layout(graph: Graph, ctx: PassContext) -> PassResult:
    """NCHW -> NHWC: transposes only where a consumer needs a layout its input lacks."""
    lay = Layouts(graph)
    for v in graph.inputs:
        p = _io_perm(v, ctx.input_layout)
        lay.record_logical(v)
        v.type, v.perm = TensorType(physical_shape(v.shape, p), v.type.dtype), p
        lay.set(v, v, p)
    for node in list(graph.nodes):
        for y in node.outputs:
            lay.record_logical(y)
        lay._anchor = node
        out_perm = rule_for(node)(node, lay)
        if out_perm is None:  # absorbed (an explicit transpose)
            graph.nodes.remove(node)
            continue
        if len(node.outputs) > 1:  # only "fixed" ops have several outputs: PyTorch's layout
            for y in node.outputs:
                y.perm = identity(y.rank)
                lay.set(y, y, y.perm)
            continue
        y = node.output
        y.type, y.perm = TensorType(physical_shape(y.shape, out_perm), y.type.dtype), out_perm
        lay.set(y, y, out_perm)
    lay._anchor = None
    graph.outputs = [
        lay.need(
            o,
            _io_perm(o, ctx.output_layout),
            f"graph output {k} in io_layout {ctx.output_layout!r}",
        )
        for k, o in enumerate(graph.outputs)
    ]
    return PassResult(graph, True, f"{lay.inserted} transpose(s) inserted")
