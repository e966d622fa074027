"""Simplify the reshape/transpose/slice chains exporters write around attention, after the
ONNX import and before the pass pipeline.

torch.onnx writes ``nn.MultiheadAttention`` sequence-first: the packed in-projection is split
by Reshape -> Unsqueeze -> Transpose -> Squeeze -> Gather, each head split goes through
(L, N*H, d) -> Transpose -> (N*H, L, d) -> (N, H, L, d) (a dimension mixing the batch with the
heads), and the heads are merged into (L*N, E) around the output Gemm. Each step is exact, but
the transposes (and the batch-times-heads reshapes the layout pass cannot see through) stay in
the converted model. PyTorch's own conversion of the same module has one transpose per head
split and one for the merge (transpiler/frontend/converters/attention.py).

Three exact rewrites bring the ONNX form to that one:

1. ``reshape(x, (P, E)) -> linear -> reshape((b..., E'))`` with prod(b) = P: the linear runs
   on ``reshape(x, (b..., E))`` (it acts on the last axis only);
2. ``linear -> transpose(p)`` with p keeping the last axis: the transpose moves before the
   linear (same reason);
3. a tree of view ops (reshape, transpose, unit-step slice) from one value: each of its ends is
   recomputed from the root as reshape -> [slice] -> transpose -> reshape over the "atoms" of
   the index map (found by evaluating the chain on an ``arange`` at two batch sizes), when that
   needs fewer transposes than the tree has.

Nothing else changes: a tree is only rewritten when its transposes strictly decrease, so the
channel shuffles of ShuffleNet or Swin's windows keep their form.
"""

from __future__ import annotations

import numpy as np

from ..ir import Graph, Node, TensorType, Value

__all__ = ["simplify_views"]

VIEW_OPS = ("reshape", "transpose", "slice")
BATCHES = (5, 7)  # concrete sizes for the dynamic dim (primes: no accidental factor matches)


def simplify_views(graph: Graph) -> int:
    """Apply the rewrites of the module docstring; the number of transposes removed."""
    before = graph.count("transpose")
    for node in [n for n in graph.nodes if n.op == "linear"]:
        _fuse_flattened_linear(graph, node)
    for node in [n for n in graph.nodes if n.op == "linear"]:
        _transpose_before_linear(graph, node)
    roots = []
    for node in graph.nodes:
        for v in node.inputs:
            if (v.producer is None or v.producer.op not in VIEW_OPS) and v not in roots:
                if any(u.op in VIEW_OPS for u in graph.users(v)):
                    roots.append(v)
    for root in roots:
        _canonicalize_tree(graph, root)
    _drop_dead(graph)
    return before - graph.count("transpose")


# -- rewrites 1 and 2: linear -------------------------------------------------------------------


def _only_user(graph: Graph, v: Value) -> Node | None:
    users = graph.users(v)
    if len(users) != 1 or any(o is v for o in graph.outputs):
        return None
    return users[0]


def _fuse_flattened_linear(graph: Graph, lin: Node) -> None:
    flat = lin.inputs[0].producer
    out = _only_user(graph, lin.output)
    if flat is None or flat.op != "reshape" or out is None or out.op != "reshape":
        return
    if _only_user(graph, flat.output) is not lin or flat.output.rank != 2:
        return
    rows, e = flat.output.shape
    lead = out.output.shape[:-1]
    if out.output.shape[-1] != lin.output.shape[-1] or e is None:
        return
    if rows is None:
        if sum(d is None for d in lead) != 1:
            return
    elif None in lead or int(np.prod(lead)) != rows:
        return
    shape = (*lead, e)
    flat.attrs["shape"] = tuple(-1 if d is None else d for d in shape)
    flat.output.type = TensorType(shape, flat.output.type.dtype)
    lin.output.type = TensorType((*lead, lin.output.shape[-1]), lin.output.type.dtype)
    graph.replace_all_uses(out.output, lin.output)
    graph.nodes.remove(out)


def _transpose_before_linear(graph: Graph, lin: Node) -> None:
    t = _only_user(graph, lin.output)
    if t is None or t.op != "transpose" or t.attrs["perm"][-1] != lin.output.rank - 1:
        return
    perm = tuple(t.attrs["perm"])
    x = lin.inputs[0]
    shape = tuple(x.shape[p] for p in perm)
    moved = graph.make_node("transpose", [x], TensorType(shape, x.type.dtype), {"perm": perm})
    moved.source = t.source
    graph.insert_before(lin, moved)
    lin.inputs[0] = moved.output
    lin.output.type = t.output.type
    graph.replace_all_uses(t.output, lin.output)
    graph.nodes.remove(t)


# -- rewrite 3: view trees --------------------------------------------------------------------


def _tree(graph: Graph, root: Value) -> tuple[list[Node], list[Value]]:
    """The view nodes reachable from ``root`` through view ops, and the ends: their outputs
    read by anything but a view op (or graph outputs)."""
    nodes, ends, todo = [], [], [root]
    while todo:
        v = todo.pop()
        users = graph.users(v)
        if v is not root and (
            any(u.op not in VIEW_OPS for u in users) or any(o is v for o in graph.outputs)
        ):
            ends.append(v)
        for u in users:
            if u.op in VIEW_OPS and u not in nodes and u.inputs[0] is v:
                nodes.append(u)
                todo.append(u.output)
    return nodes, ends


def _chain(end: Value, root: Value) -> list[Node]:
    chain = []
    v = end
    while v is not root:
        chain.append(v.producer)
        v = v.producer.inputs[0]
    return chain[::-1]


def _concrete(shape: tuple, batch: int) -> tuple[int, ...]:
    return tuple(batch if d is None else d for d in shape)


def _index_map(root: Value, chain: list[Node], batch: int) -> np.ndarray:
    if sum(d is None for d in root.shape) > 1:
        raise ValueError("more than one dynamic dim")
    a = np.arange(int(np.prod(_concrete(root.shape, batch)))).reshape(_concrete(root.shape, batch))
    for node in chain:
        if node.op == "reshape":
            a = a.reshape(node.attrs["shape"])
        elif node.op == "transpose":
            a = a.transpose(node.attrs["perm"])
        else:
            index = [slice(None)] * a.ndim
            for axis, start, stop, step in zip(*(node.attrs[k] for k in _SLICE), strict=True):
                if step != 1:
                    raise ValueError("a strided slice")
                index[axis] = slice(start, stop)
            a = a[tuple(index)]
        if a.shape != _concrete(node.output.shape, batch) and None not in node.output.shape:
            raise ValueError("shape mismatch")
    return a


_SLICE = ("axes", "starts", "stops", "steps")


def _split(v: np.ndarray) -> list[tuple[int, int]]:
    """Offsets along one axis as atoms (size, stride), outermost first."""
    n = len(v)
    if n == 1:
        return []
    d = int(v[1] - v[0])
    run = 1
    while run < n and v[run] - v[run - 1] == d:
        run += 1
    if d <= 0:
        raise ValueError("not a positive stride")
    if run == n:
        return [(n, d)]
    if n % run:
        raise ValueError("uneven runs")
    rows = v.reshape(n // run, run)
    if not np.array_equal(rows - rows[:, :1], np.broadcast_to(rows[0] - rows[0, 0], rows.shape)):
        raise ValueError("irregular axis")
    return _split(rows[:, 0]) + [(run, d)]


def _atoms(m: np.ndarray) -> list[tuple[int, int, int]]:
    """The index map as atoms (z axis, size, stride), in z order; checked exactly."""
    atoms = []
    for axis in range(m.ndim):
        line = np.moveaxis(m, axis, 0).reshape(m.shape[axis], -1)
        atoms += [(axis, s, t) for s, t in _split(line[:, 0])]
    rebuilt = np.full(m.shape, int(m.reshape(-1)[0]))
    # rebuild: each z axis is its atoms in mixed radix
    per_axis: dict[int, list[tuple[int, int]]] = {}
    for axis, size, stride in atoms:
        per_axis.setdefault(axis, []).append((size, stride))
    for axis, parts in per_axis.items():
        offsets = np.zeros(1, dtype=np.int64)
        for size, stride in parts:
            offsets = (offsets[:, None] + np.arange(size)[None, :] * stride).reshape(-1)
        shape = [1] * m.ndim
        shape[axis] = m.shape[axis]
        rebuilt = rebuilt + offsets.reshape(shape)
    if not np.array_equal(rebuilt, m):
        raise ValueError("not a strided view")
    return atoms


def _plan(root: Value, chain: list[Node]) -> dict | None:
    """reshape -> [slice] -> transpose -> reshape computing the chain, or None."""
    found = []
    for batch in BATCHES if None in root.shape else BATCHES[:1]:
        try:
            m = _index_map(root, chain, batch)
            atoms = _atoms(m)
        except ValueError:
            return None
        total = int(np.prod(_concrete(root.shape, batch)))
        found.append((atoms, int(m.reshape(-1)[0]), total))
    atoms, offset, total = found[0]
    if len(found) > 1 and [a[0] for a in found[1][0]] != [a[0] for a in atoms]:
        return None
    dynamic = [k for k in range(len(atoms)) if len(found) > 1 and found[1][0][k][1] != atoms[k][1]]
    if len(dynamic) > 1:
        return None
    # the root's atoms from the innermost (stride 1) out, with gaps where the chain slices
    order = sorted(range(len(atoms)), key=lambda k: atoms[k][2])
    radix: list[tuple[int | None, int | None]] = []  # (size, atom k or None for a gap)
    expected = 1
    for batch_run in found:  # distinct strides, in the same order at both batch sizes
        strides = [a[2] for a in batch_run[0]]
        if len(set(strides)) != len(strides):
            return None
        if sorted(range(len(strides)), key=strides.__getitem__) != order:
            return None
    for k in order:
        size, stride = atoms[k][1], atoms[k][2]
        if stride % expected:
            return None
        if stride > expected:
            radix.append((stride // expected, None))
        radix.append((size, k))
        expected = stride * size
    if total % expected:
        return None
    if total > expected:
        radix.append((total // expected, None))
    radix = radix[::-1]  # outermost first: the root's row-major order
    gap_sizes = [s for s, k in radix if k is None]
    if len(found) > 1:  # gaps must not depend on the batch
        other = _plan_gaps(found[1])
        if other is None or other != gap_sizes:
            return None
    # the offset as indices into the radix: only gaps may be nonzero (a single-index slice)
    index = []
    rest = offset
    for size, _ in radix[::-1]:
        index.append(rest % size)
        rest //= size
    index = index[::-1]
    if rest or any(i and k is not None for i, (_, k) in zip(index, radix, strict=True)):
        return None
    kept = [k for _, k in radix if k is not None]
    perm = tuple(kept.index(k) for k in range(len(atoms)))
    return {
        "radix": [(None if k in dynamic else s, k) for s, k in radix],
        "index": index,
        "perm": perm,
    }


def _plan_gaps(run: tuple) -> list[int] | None:
    atoms, _, total = run
    gaps, expected = [], 1
    for size, stride in sorted(((a[1], a[2]) for a in atoms), key=lambda a: a[1]):
        if stride % expected:
            return None
        if stride > expected:
            gaps.append(stride // expected)
        expected = stride * size
    if total % expected:
        return None
    if total > expected:
        gaps.append(total // expected)
    return gaps[::-1]


def _emit(graph: Graph, root: Value, end: Value, plan: dict, anchor: Node) -> Value:
    dtype = end.type.dtype
    source = end.producer.source

    def add(op: str, x: Value, out: tuple, **attrs) -> Value:
        node = graph.make_node(op, [x], TensorType(out, dtype), attrs)
        node.source = source
        graph.insert_before(anchor, node)
        return node.output

    radix = plan["radix"]
    shape = tuple(s for s, _ in radix)
    x = root
    if shape != root.shape:
        x = add("reshape", x, shape, shape=tuple(-1 if s is None else s for s in shape))
    gaps = [a for a, (_, k) in enumerate(radix) if k is None]
    if gaps:
        starts = tuple(plan["index"][a] for a in gaps)
        sliced = tuple(1 if a in gaps else s for a, (s, _) in enumerate(radix))
        x = add(
            "slice",
            x,
            sliced,
            axes=tuple(gaps),
            starts=starts,
            stops=tuple(s + 1 for s in starts),
            steps=(1,) * len(gaps),
        )
        shape = tuple(s for s, k in radix if k is not None)
        x = add("reshape", x, shape, shape=tuple(-1 if s is None else s for s in shape))
    perm = plan["perm"]
    if perm != tuple(range(len(perm))):
        x = add("transpose", x, tuple(shape[p] for p in perm), perm=perm)
        shape = tuple(shape[p] for p in perm)
    if shape != end.shape:
        x = add("reshape", x, end.shape, shape=tuple(-1 if s is None else s for s in end.shape))
    return x


def _canonicalize_tree(graph: Graph, root: Value) -> None:
    nodes, ends = _tree(graph, root)
    have = sum(n.op == "transpose" for n in nodes)
    if not have or not ends or any(o is e for o in graph.outputs for e in ends):
        return  # (an end that is a graph output keeps its node: the output names it)
    plans = []
    for end in ends:
        plan = _plan(root, _chain(end, root))
        if plan is None:
            return
        plans.append(plan)
    need = sum(p["perm"] != tuple(range(len(p["perm"]))) for p in plans)
    if need >= have:
        return
    for end, plan in zip(ends, plans, strict=True):
        anchor = min(graph.users(end), key=graph.nodes.index)  # read by a non-view op
        new = _emit(graph, root, end, plan, anchor)
        if new is not root:
            new.torch_ref = end.torch_ref
        graph.replace_all_uses(end, new)


def _drop_dead(graph: Graph) -> None:
    changed = True
    while changed:
        changed = False
        used = {id(i) for n in graph.nodes for i in n.inputs} | {id(o) for o in graph.outputs}
        for node in [n for n in graph.nodes if n.op in VIEW_OPS]:
            if id(node.output) not in used:
                graph.nodes.remove(node)
                changed = True
