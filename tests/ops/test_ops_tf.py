"""Every catalog case (tests/ops/cases.py) x io_layout through backend="tf" (a SavedModel of TF
ops lowered by backends/tf_graph), reloaded from disk and compared with PyTorch."""

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


@pytest.mark.parametrize("io_layout", LAYOUTS)
@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_op_tf(case: OpCase, io_layout: str, tmp_path):
    model = case.make().eval()
    seed = stable_seed(case.id, "tf")
    inputs = random_inputs(case.input_shapes, batch=2, seed=seed)
    example = inputs[0] if len(inputs) == 1 else inputs

    result = transpile(
        model,
        example,
        backend="tf",
        io_layout=io_layout,
        out_dir=tmp_path / "out",
        tolerance=case.tol,
    )

    assert_checks_ok(result)
    assert result.source_path is None and (result.saved_model_path / "saved_model.pb").exists()
    fn = result.load()  # from disk, in a fresh tf.saved_model.load
    check_against_torch(model, inputs, fn, io_layout, case.tol)
    batch3 = random_inputs(case.input_shapes, batch=3, seed=seed + 1)
    check_against_torch(model, batch3, fn, io_layout, case.tol)

    if case.layout_pure:
        if io_layout == "nhwc":
            expected = 0
        else:
            expected = boundary_transposes(inputs, torch_reference(model, inputs))
        assert result.report.transpose_count <= expected, (
            f"{result.report.transpose_count} Transpose ops, expected {expected}\n{result.report}"
        )
