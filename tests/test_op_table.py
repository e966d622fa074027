"""The op table (transpiler/ops.py) is the one source of truth: every declared op has an
evaluator, a Keras rule, a TF lowering, a layout rule and a catalog case, and nothing else is
registered. Also: the shared table helper's errors, and attribute defaults filled at build time.
"""

import numpy as np
import pytest
import torch
from helpers import random_inputs
from ops.cases import CASES
from transpiler.backends.keras_source.rules import RULES
from transpiler.backends.tf_graph.lowering import LOWERINGS, Plan
from transpiler.passes import DEFAULT_PIPELINE, PassContext, PassError, run_pipeline
from transpiler.passes.layout.policy import rule_for_op

from transpiler.errors import TranspileError
from transpiler.frontend import import_model
from transpiler.interpreter import EVALUATORS, run_graph
from transpiler.ir import Graph, SourceInfo, TensorType, Value
from transpiler.ops import OPS, OpImplTable, OpSpec
from transpiler.signature import alternate_inputs

TABLES = {"interpreter": EVALUATORS, "keras": RULES, "tf": LOWERINGS}


@pytest.mark.parametrize("table", TABLES, ids=list(TABLES))
def test_table_covers_exactly_the_declared_ops(table):
    registered = set(TABLES[table])
    assert sorted(set(OPS) - registered) == [], f"declared ops without a {table} entry"
    assert sorted(registered - set(OPS)) == [], f"{table} entries for undeclared ops"


def test_every_declared_op_has_a_layout_rule():
    for op in OPS:
        assert callable(rule_for_op(op)), op


def test_every_declared_op_is_produced_by_a_catalog_case():
    """Imports every catalog case (the frontend only, no pipeline, no backend). One torch
    thread: these tiny convolutions run ~5x slower with two threads on a busy machine."""
    produced: set[str] = set()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for case in CASES:
            inputs = random_inputs(case.input_shapes, batch=2, seed=0)
            graph = import_model(case.make().eval(), inputs, alternate_inputs(inputs)).graph
            produced |= {n.op for n in graph.nodes}
    finally:
        torch.set_num_threads(threads)
    assert sorted(set(OPS) - produced) == [], "ops no case in tests/ops/cases.py produces"


def test_registering_an_undeclared_op_is_refused():
    table = OpImplTable("a test table")
    with pytest.raises(TranspileError, match="'no_such_op'.*not declared"):
        table.register("relu", "no_such_op")


def test_missing_entry_names_the_table_and_the_op():
    table = OpImplTable("a test table")
    with pytest.raises(TranspileError, match="a test table has no entry for IR op 'relu'"):
        table.lookup("relu")


def _graph_with(op: str, x_shape, out_shape, **attrs) -> tuple[Graph, Value]:
    g = Graph()
    x = Value("x", TensorType(x_shape, "float32"))
    g.inputs, g.input_names = [x], ["x"]
    src = SourceInfo("body.head", "Head", "call_method Tensor.view", "model.py:7")
    node = g.make_node(op, [x], TensorType(out_shape, "float32"), attrs, src)
    g.nodes.append(node)
    g.outputs = [node.output]
    return g, node


def test_failing_evaluator_names_the_node_and_its_module():
    g, node = _graph_with("reshape", (2, 6), (2, 5), shape=(2, 5))  # 12 elements into 10
    with pytest.raises(TranspileError) as info:
        run_graph(g, [np.zeros((2, 6), np.float32)])
    message = str(info.value)
    assert "the interpreter failed on node" in message
    assert node.format() in message
    assert "body.head (Head) at model.py:7" in message
    assert "RuntimeError" in message


def test_failing_backend_rules_name_the_node_and_its_module():
    g, node = _graph_with("softmax", (2, 6), (2, 6), axis=1)
    del node.attrs["axis"]  # broken on purpose: the rules index it
    with pytest.raises(TranspileError, match=r"the Keras backend failed on node .*body\.head"):
        RULES.apply(node, g)
    with pytest.raises(TranspileError, match=r"the tf backend failed on node .*body\.head"):
        LOWERINGS.apply(node, Plan(g, str))


def test_op_without_a_layout_rule_is_a_named_error(monkeypatch):
    monkeypatch.setitem(OPS, "axis_op_without_attrs", OpSpec("axis_op_without_attrs", "axis"))
    monkeypatch.setitem(OPS, "op_of_unknown_class", OpSpec("op_of_unknown_class", "mystery"))
    with pytest.raises(TranspileError, match="'axis_op_without_attrs'.*declares no axis_attrs"):
        rule_for_op("axis_op_without_attrs")
    with pytest.raises(TranspileError, match="'op_of_unknown_class'.*'mystery'.*no rule"):
        rule_for_op("op_of_unknown_class")
    g, _ = _graph_with("axis_op_without_attrs", (2, 3, 4, 5), (2, 3, 4, 5))
    with pytest.raises(PassError, match="'axis_op_without_attrs'.*node `%"):
        run_pipeline(g, DEFAULT_PIPELINE, PassContext("nhwc", "nhwc"), verify=False)


def test_make_node_fills_defaults_and_freezes_lists():
    g = Graph()
    x = Value("x", TensorType((1, 3, 8, 8), "float32"))
    w = g.add_constant(np.zeros((4, 3, 3, 3), np.float32))
    node = g.make_node(
        "conv", [x, w], TensorType((1, 4, 6, 6), "float32"), {"stride": [1, 1], "dilation": [1, 1]}
    )
    assert node.attrs["groups"] == 1 and node.attrs["padding_mode"] == "zeros"
    assert node.attrs["padding"] == "valid" and node.attrs["data_format"] == "channels_first"
    assert node.attrs["stride"] == (1, 1) and isinstance(node.attrs["dilation"], tuple)
    pad = g.make_node("pad", [x], x.type, {"pads": [[0, 0], [0, 0], [1, 1], [1, 1]]})
    assert pad.attrs == {"pads": ((0, 0), (0, 0), (1, 1), (1, 1)), "mode": "constant", "value": 0.0}
    assert not hasattr(OpSpec("relu", "elementwise"), "pure")


def test_sin_and_cos_end_to_end_in_the_interpreter():
    """The worked example of adding a unary op (see transpiler/ops.py's checklist)."""

    class M(torch.nn.Module):
        def forward(self, x):
            return torch.sin(x) + x.cos()

    x = torch.randn(2, 3, 5)
    graph = import_model(M(), [x], [torch.randn(3, 3, 5)]).graph
    assert [n.op for n in graph.nodes] == ["sin", "cos", "add"]
    (y,) = run_graph(graph, [x.numpy()])
    np.testing.assert_allclose(y, (torch.sin(x) + torch.cos(x)).numpy(), atol=1e-6)
