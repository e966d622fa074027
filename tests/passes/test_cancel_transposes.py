"""cancel_transposes: chains compose, identities vanish, numerics unchanged."""

from __future__ import annotations

import numpy as np
from transpiler.passes import PassContext, cancel_transposes, run_pipeline

from transpiler.interpreter import run_graph
from transpiler.ir import Graph, TensorType, Value


def _chain(perms):
    g = Graph()
    x = Value("x", TensorType((None, 2, 3, 4), "float32"))
    g.inputs, g.input_names = [x], ["x"]
    v = x
    for p in perms:
        shape = tuple(v.shape[i] for i in p)
        node = g.make_node("transpose", [v], TensorType(shape, "float32"), {"perm": p})
        g.nodes.append(node)
        v = node.output
    g.outputs = [v]
    return g


def _run(g):
    x = np.random.default_rng(0).standard_normal((2, 2, 3, 4)).astype(np.float32)
    before = run_graph(g, [x])[0]
    after_g = run_pipeline(g, [cancel_transposes], PassContext()).graph
    np.testing.assert_array_equal(run_graph(after_g, [x])[0], before)
    return after_g


def test_inverse_pair_cancels():
    g = _run(_chain([(0, 2, 3, 1), (0, 3, 1, 2)]))
    assert g.nodes == []


def test_chain_composes_into_one():
    g = _run(_chain([(0, 2, 3, 1), (0, 2, 1, 3)]))
    assert [n.op for n in g.nodes] == ["transpose"]
    assert g.nodes[0].attrs["perm"] == (0, 3, 2, 1)


def test_identity_is_dropped_and_others_kept():
    assert _run(_chain([(0, 1, 2, 3)])).nodes == []
    assert len(_run(_chain([(0, 2, 1, 3)])).nodes) == 1
