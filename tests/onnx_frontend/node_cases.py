"""The ONNX node test cases shipped with the ``onnx`` package, run through the ONNX frontend.

A case is *covered* when its op is in one of the families below (the ops the IR covers), every
op of its graph is too, and its first input and its outputs are float32 (integer-only and double
cases test other things). Each covered case
is imported (``import_onnx`` with its stored inputs), sent through the default pass pipeline and
evaluated with the IR interpreter; the outputs are compared with the case's stored outputs with
the transpiler's bound. Outcomes: ``pass``; ``refused`` (a TranspileError: a clear message);
``wrong`` (numbers differ: a bug); ``crash`` (any other exception: a bug).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

FAMILIES = {
    "conv": {"Conv", "ConvTranspose"},
    "pooling": {"MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool"},
    "normalization": {
        "BatchNormalization",
        "InstanceNormalization",
        "LayerNormalization",
        "GroupNormalization",
        "LRN",
    },
    "linear algebra": {"Gemm", "MatMul", "Einsum"},
    "activation": {
        "Relu",
        "Sigmoid",
        "Tanh",
        "LeakyRelu",
        "Elu",
        "Selu",
        "Gelu",
        "HardSigmoid",
        "HardSwish",
        "Softplus",
        "Softsign",
        "Mish",
        "PRelu",
        "Clip",
    },
    "elementwise": {
        "Add",
        "Sub",
        "Mul",
        "Div",
        "Pow",
        "Max",
        "Min",
        "Sum",
        "Mean",
        "Exp",
        "Log",
        "Sqrt",
        "Abs",
        "Neg",
        "Reciprocal",
        "Erf",
        "Identity",
        "Dropout",
        "Cast",
        "CastLike",
    },
    "softmax": {"Softmax", "LogSoftmax"},
    "reduce": {
        "ReduceMean",
        "ReduceSum",
        "ReduceMax",
        "ReduceMin",
        "ReduceSumSquare",
        "ReduceL2",
        "ReduceL1",
    },
    "shape and indexing": {
        "Reshape",
        "Flatten",
        "Squeeze",
        "Unsqueeze",
        "Transpose",
        "Expand",
        "Concat",
        "Split",
        "Slice",
        "Gather",
        "Pad",
        "DepthToSpace",
        "SpaceToDepth",
    },
    "resize": {"Resize", "Upsample"},
}
FAMILY_OF = {op: fam for fam, ops in FAMILIES.items() for op in ops}


@dataclass
class Outcome:
    name: str
    op: str
    status: str  # pass | refused | wrong | crash
    detail: str = ""


@functools.cache
def all_cases() -> tuple:
    import warnings

    from onnx.backend.test.case.node import collect_testcases

    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        return tuple(collect_testcases())


def _float32(vis) -> bool:
    return all(v.type.HasField("tensor_type") and v.type.tensor_type.elem_type == 1 for v in vis)


def covered_cases() -> list:
    """The float32 cases whose graph ops are all in the covered families."""
    out = []
    for case in all_cases():
        model = case.model
        if model is None or not case.data_sets:
            continue
        ops = {n.op_type for n in model.graph.node}
        main = model.graph.node[0].op_type if model.graph.node else ""
        if main not in FAMILY_OF or not ops <= set(FAMILY_OF) | {"Constant"}:
            continue
        inits = {t.name for t in model.graph.initializer}
        inputs = [i for i in model.graph.input if i.name not in inits]
        # the first input float32 (the data); later ones (weights, axes, shapes) any dtype
        if not inputs or not _float32(inputs[:1]) or not _float32(model.graph.output):
            continue
        out.append(case)
    return out


def case_op(case) -> str:
    return case.model.graph.node[0].op_type


def _frozen(case):
    import onnx
    from onnx import numpy_helper

    model = onnx.ModelProto()
    model.CopyFrom(case.model)
    inputs, _ = case.data_sets[0]
    inits = {t.name for t in model.graph.initializer}
    graph_inputs = [i for i in model.graph.input if i.name not in inits]
    keep = graph_inputs[:1]
    for vi, x in zip(graph_inputs[1:], inputs[1:], strict=False):
        model.graph.initializer.append(numpy_helper.from_array(np.asarray(x), vi.name))
    del model.graph.input[:]
    model.graph.input.extend(keep)
    return model, [np.asarray(inputs[0])]


def run_case(case, tolerance: float = 1e-4) -> Outcome:
    """The case as stored; if refused and it has several inputs (node tests feed weights,
    axes and shapes as inputs), again with the inputs after the first frozen into initializers
    (status ``pass`` then carries detail "weights frozen")."""
    out = _run_case(case, case.model, [np.asarray(x) for x in case.data_sets[0][0]], tolerance)
    if out.status == "refused" and len(case.data_sets[0][0]) > 1:
        model, inputs = _frozen(case)
        second = _run_case(case, model, inputs, tolerance)
        if second.status != "refused":
            second.detail = second.detail or "weights frozen"
        return second
    return out


def _run_case(case, model, inputs, tolerance: float) -> Outcome:
    from transpiler.passes import DEFAULT_PIPELINE, PassContext, run_pipeline

    from transpiler.errors import TranspileError
    from transpiler.frontend.onnx_importer import import_onnx
    from transpiler.interpreter import run_graph

    op = case_op(case)
    expected = case.data_sets[0][1]
    try:
        imported = import_onnx(model, inputs)
        graph = run_pipeline(imported.graph, DEFAULT_PIPELINE, PassContext()).graph
        outs = run_graph(graph, inputs)
    except TranspileError as exc:
        return Outcome(case.name, op, "refused", str(exc).splitlines()[0][:160])
    except Exception as exc:  # noqa: BLE001 - a crash is what this harness looks for
        return Outcome(case.name, op, "crash", f"{type(exc).__name__}: {exc}"[:300])
    for y, ref in zip(outs, expected, strict=False):
        ref = np.asarray(ref, np.float32)
        y = np.asarray(y, np.float32)
        if y.shape != ref.shape:
            return Outcome(case.name, op, "wrong", f"shape {y.shape} vs {ref.shape}")
        finite = np.isfinite(ref)
        if not np.array_equal(finite, np.isfinite(y)):
            return Outcome(case.name, op, "wrong", "non-finite values differ")
        err = float(np.max(np.abs(y[finite] - ref[finite]), initial=0.0))
        bound = tolerance * max(1.0, float(np.max(np.abs(ref[finite]), initial=0.0)))
        if err > bound:
            return Outcome(case.name, op, "wrong", f"max abs error {err:.3g} > {bound:.3g}")
    return Outcome(case.name, op, "pass")


def pass_rates(outcomes: list[Outcome]) -> dict[str, tuple[int, int, int]]:
    """family -> (passed, refused, total)."""
    table: dict[str, list[int]] = {}
    for o in outcomes:
        row = table.setdefault(FAMILY_OF[o.op], [0, 0, 0])
        row[0] += o.status == "pass"
        row[1] += o.status == "refused"
        row[2] += 1
    return {k: tuple(v) for k, v in sorted(table.items())}


if __name__ == "__main__":  # python -m tests.onnx.node_cases: the README table
    import collections
    import sys

    outcomes = [run_case(c) for c in covered_cases()]
    for o in outcomes:
        if o.status != "pass":
            print(f"{o.status:8} {o.name}: {o.detail}", file=sys.stderr)
    print("| op family | passed | refused (clear error) | wrong or crash | cases |")
    print("|---|---|---|---|---|")
    total = [0, 0, 0]
    for fam, (p, r, n) in pass_rates(outcomes).items():
        print(f"| {fam} | {p} ({100 * p / n:.0f}%) | {r} | {n - p - r} | {n} |")
        total = [total[0] + p, total[1] + r, total[2] + n]
    p, r, n = total
    print(f"| **all** | {p} ({100 * p / n:.0f}%) | {r} | {n - p - r} | {n} |")
    print(collections.Counter(o.status for o in outcomes), file=sys.stderr)
