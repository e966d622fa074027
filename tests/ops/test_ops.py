"""Every catalog case (tests/ops/cases.py) x io_layout x backend: transpile, reload from disk,
compare with PyTorch. backend "tf" is the SavedModel of TF ops lowered by backends/tf_graph."""

import pytest
from helpers import (
    LAYOUTS,
    assert_checks_ok,
    boundary_transposes,
    check_against_torch,
    random_inputs,
    stable_seed,
    torch_reference,
)
from ops.cases import CASES, OpCase

from transpiler import transpile


@pytest.mark.parametrize("backend", ["keras", "tf"])
@pytest.mark.parametrize("io_layout", LAYOUTS)
@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_op(case: OpCase, io_layout: str, backend: str, tmp_path):
    model = case.make().eval()
    seed = stable_seed(case.id) if backend == "keras" else stable_seed(case.id, backend)
    inputs = random_inputs(case.input_shapes, batch=2, seed=seed)
    example = inputs[0] if len(inputs) == 1 else inputs

    result = transpile(
        model,
        example,
        backend=backend,
        io_layout=io_layout,
        out_dir=tmp_path / "out",
        tolerance=case.tol,
    )

    assert_checks_ok(result)
    if backend == "tf":
        assert result.source_path is None
        assert (result.saved_model_path / "saved_model.pb").exists()
    fn = result.load()
    check_against_torch(model, inputs, fn, io_layout, case.tol)
    batch3 = random_inputs(case.input_shapes, batch=3, seed=seed + 1)
    check_against_torch(model, batch3, fn, io_layout, case.tol)

    if case.layout_pure:
        if io_layout == "nhwc":
            expected = 0
        else:
            expected = boundary_transposes(inputs, torch_reference(model, inputs))
        # at most the boundary ones: moving only size-1 axes (e.g. (N, C, 1, 1)) is a reshape
        assert result.report.transpose_count <= expected, (
            f"{result.report.transpose_count} Transpose ops, expected {expected}\n{result.report}"
        )
