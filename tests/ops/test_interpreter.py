"""Every catalog case through the IR interpreter: after import, and after the full pipeline.

This checks the frontend's converters and the passes against PyTorch without any backend, so a
mismatch in tests/ops/test_ops.py can be pinned on the frontend, a pass, or the Keras backend.
"""

import numpy as np
import pytest
from helpers import random_inputs, stable_seed, torch_reference
from ops.cases import CASES, OpCase
from transpiler.passes import DEFAULT_PIPELINE, PassContext, run_pipeline

from transpiler.frontend import import_model
from transpiler.interpreter import run_graph
from transpiler.signature import alternate_inputs
from transpiler.verify import from_layout, to_layout


def _compare(outs, refs, tol):
    assert len(outs) == len(refs)
    for y, ref in zip(outs, refs, strict=True):
        assert y.shape == ref.shape
        bound = tol * max(1.0, float(np.abs(ref).max()))
        assert float(np.abs(y - ref).max()) <= bound


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_import_and_pipeline_match_torch(case: OpCase):
    model = case.make().eval()
    inputs = random_inputs(case.input_shapes, batch=2, seed=stable_seed(case.id))
    refs = torch_reference(model, inputs)
    graph = import_model(model, inputs, alternate_inputs(inputs)).graph
    arrays = [x.numpy() for x in inputs]
    _compare(run_graph(graph, arrays), refs, case.tol)
    for layout in ("nchw", "nhwc"):
        lowered = run_pipeline(graph, DEFAULT_PIPELINE, PassContext(layout, layout)).graph
        outs = run_graph(lowered, [to_layout(a, layout) for a in arrays])
        _compare([from_layout(y, layout) for y in outs], refs, case.tol)
