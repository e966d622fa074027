"""The pass manager: clones on entry, verifies after each pass, names the culprit."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
from _helpers import import_torch
from transpiler.passes import DEFAULT_PIPELINE, PassContext, PassError, PassResult, run_pipeline

from transpiler.ir import IRVerificationError


def _graph():
    return import_torch(nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU()), torch.randn(2, 3, 5, 5))


def test_input_graph_is_not_mutated():
    g = _graph()
    before = g.format()
    run_pipeline(g, DEFAULT_PIPELINE, PassContext("nhwc", "nhwc"))
    assert g.format() == before


def test_failing_pass_is_named_with_its_predecessors():
    def explode(graph, ctx):
        raise ValueError("boom")

    with pytest.raises(PassError, match=r"pass 'explode' failed \(after: prune_conv_taps\)"):
        run_pipeline(_graph(), [DEFAULT_PIPELINE[0], explode], PassContext())


def test_pass_breaking_the_ir_is_caught():
    def break_order(graph, ctx):
        graph.nodes.reverse()  # relu before conv: not topological any more
        return PassResult(graph, True)

    with pytest.raises(PassError, match="break_order.*before it is defined"):
        run_pipeline(_graph(), [break_order], PassContext())


def test_verify_rejects_unknown_attrs():
    g = _graph()
    g.nodes[1].attrs["bogus"] = 1
    with pytest.raises(IRVerificationError, match="unknown attributes"):
        g.verify()


def test_records_node_counts():
    run = run_pipeline(_graph(), DEFAULT_PIPELINE, PassContext())
    assert [r.name for r in run.records] == [p.__name__ for p in DEFAULT_PIPELINE]
    assert all(r.nodes_before >= 0 and r.nodes_after >= 0 for r in run.records)


def test_networkx_view_is_read_only_analysis():
    g = _graph()
    nxg = g.to_networkx()
    assert nxg.number_of_nodes() == 2 and list(nxg.edges) == [(0, 1)]


def test_networkx_is_optional_with_a_clear_error(monkeypatch):
    import sys

    from transpiler.errors import TranspileError

    monkeypatch.setitem(sys.modules, "networkx", None)  # as if not installed
    with pytest.raises(TranspileError, match=r"networkx.*\[analysis\]"):
        _graph().to_networkx()
