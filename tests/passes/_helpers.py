"""Shared helper for pass tests: import a torch module, run one pass, check invariants and numbers.

Each pass test checks (onnxscript's recipe): the precondition holds, the pass's ``changed`` flag,
a structural assertion, ``graph.verify()``, and IR-interpreter numerics before vs after.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from transpiler.passes import PassContext, PassResult, run_pipeline

from transpiler.frontend import import_model
from transpiler.interpreter import run_graph
from transpiler.ir import Graph
from transpiler.signature import alternate_inputs
from transpiler.verify import from_layout, to_layout


def import_torch(model: torch.nn.Module, *inputs: torch.Tensor) -> Graph:
    model = model.eval()
    imported = import_model(model, list(inputs), alternate_inputs(list(inputs)))
    imported.graph.verify()
    return imported.graph


def torch_outputs(model: torch.nn.Module, *inputs: torch.Tensor) -> list[np.ndarray]:
    with torch.no_grad():
        out = model.eval()(*inputs)
    out = out if isinstance(out, tuple | list) else (out,)
    return [o.numpy() for o in out]


def run_pass_and_check(
    graph: Graph,
    passes: Callable[[Graph, PassContext], PassResult] | list,
    inputs: list[np.ndarray],
    ctx: PassContext | None = None,
    *,
    atol: float = 1e-4,
) -> Graph:
    """Run ``passes`` (one or a list, through the manager) and compare interpreter outputs
    before/after, in PyTorch layout, on ``inputs`` (PyTorch layout)."""
    ctx = ctx or PassContext()
    before = run_graph(graph, inputs)
    passes = passes if isinstance(passes, list) else [passes]
    after_graph = run_pipeline(graph, passes, ctx).graph
    after_graph.verify()
    after = run_graph(after_graph, [to_layout(x, ctx.input_layout) for x in inputs])
    assert len(before) == len(after)
    for b, a in zip(before, after, strict=True):
        a = from_layout(a, ctx.output_layout)
        assert a.shape == b.shape
        scale = max(1.0, float(np.abs(b).max()))
        np.testing.assert_allclose(a, b, atol=atol * scale, rtol=0)
    return after_graph


def ops_of(graph: Graph) -> list[str]:
    return [n.op for n in graph.nodes]
