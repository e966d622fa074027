"""Model outputs that concatenate parts with very different ranges, in an integer flatbuffer.

A detector's output is typically ``cat([boxes, sigmoid(class logits)])``: boxes in pixels
(0..480) next to scores (0..1). TFLite's quantizer puts a CONCATENATION's inputs on its output's
one scale (an int8->int8 QUANTIZE before the concat where an input had its own), so the scores
get the boxes' step (YOLO11n at 320x320: 1.88) and all round to 0 or 1.88.

With float outputs (``io_dtype="float32"``) that is not necessary: ``float_output_concats``
rewrites the flatbuffer so that each part of such an output concat is dequantized with its own
scale (bypassing the QUANTIZE that only moved it onto the concat's scale) and the concat (with
the RESHAPE / TRANSPOSE / SQUEEZE / EXPAND_DIMS between it and the output) runs in float32. Every
compute op stays integer; only the output assembly, data movement after the last integer op,
is float. Exact in float: the float concat of the dequantized parts is what the DEQUANTIZE of an
int8 concat would give if the concat had kept each part's scale.

With integer outputs one tensor has one scale and nothing can be done inside the model:
``output_concats`` finds such outputs so the quantization report can say so.

A concat is rewritten (or reported) when its parts' steps differ by ``RATIO`` or more. Only
tensors no other op reads are moved to float: an output concat that an integer op also reads
(``return y, y.mean(1)``) is left integer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["RATIO", "OutputConcat", "float_output_concats", "output_concats"]

RATIO = 4.0  # parts whose int8 steps differ by this factor (2 bits) or more
MOVES = ("RESHAPE", "SQUEEZE", "EXPAND_DIMS", "TRANSPOSE")  # data movement: first input only


@dataclass(frozen=True)
class OutputConcat:
    """One model output assembled by a concat of parts with different ranges."""

    output: int  # the model output's position
    tensor: str  # the concat's output tensor name
    parts: int  # the concat's parts (tensors dequantized separately when rewritten)
    ratio: float  # the concat's step over the finest part's own step
    step: float  # the concat's (the one output tensor's) step
    own_step: float  # the finest part's own step
    rewritten: bool  # True: its parts are dequantized separately, the concat runs in float


@dataclass
class _Plan:
    """The ops between a model output and the integer ops producing its parts."""

    output: int  # position in the subgraph's outputs
    head: int  # the integer tensor the output (or its final DEQUANTIZE) reads
    dequantize: int | None  # index of the final DEQUANTIZE op (float outputs)
    moves: list[int] = field(default_factory=list)  # CONCATENATION and MOVES ops, by index
    requantize: list[int] = field(default_factory=list)  # int->int QUANTIZE ops bypassed
    parts: list[int] = field(default_factory=list)  # tensors the assembly starts from
    concats: list[int] = field(default_factory=list)  # the CONCATENATION ops among moves


def _schema() -> Any:
    from tensorflow.lite.python import schema_py_generated as schema

    return schema


def _op_names(model: Any) -> list[str]:
    """The builtin op name of each operator code of ``model``."""
    schema = _schema()
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    out = []
    for code in model.operatorCodes:
        builtin = max(int(code.builtinCode), int(code.deprecatedBuiltinCode))
        out.append(names.get(builtin, "CUSTOM"))
    return out


def _name(tensor: Any) -> str:
    return tensor.name.decode() if isinstance(tensor.name, bytes) else str(tensor.name)


def _int_types() -> dict[int, tuple[int, int]]:
    t = _schema().TensorType
    return {t.INT8: (-128, 127), t.UINT8: (0, 255), t.INT16: (-32768, 32767)}


def _scale(tensor: Any) -> float | None:
    """The per-tensor scale of an integer tensor, None for float or per-channel ones."""
    q = tensor.quantization
    if tensor.type not in _int_types() or q is None or q.scale is None or len(q.scale) != 1:
        return None
    return float(q.scale[0])


def _plan(model: Any, graph: Any, position: int) -> _Plan | None:
    """The assembly of output ``position``, if it contains a concat of integer tensors."""
    opname = _op_names(model)
    producer = {int(t): k for k, op in enumerate(graph.operators) for t in op.outputs}
    uses: dict[int, int] = {}
    for op in graph.operators:
        for t in op.inputs:
            uses[int(t)] = uses.get(int(t), 0) + 1
    outputs = {int(t) for t in graph.outputs}
    head = int(graph.outputs[position])
    k = producer.get(head)
    dequantize = None
    if k is not None and opname[graph.operators[k].opcodeIndex] == "DEQUANTIZE":
        dequantize, head = k, int(graph.operators[k].inputs[0])
    if _scale(graph.tensors[head]) is None or (dequantize is not None and uses[head] != 1):
        return None  # float, or read by more than the final DEQUANTIZE
    plan = _Plan(position, head, dequantize)
    fused = lambda op: getattr(op.builtinOptions, "fusedActivationFunction", 0)  # noqa: E731

    def walk(t: int, top: bool) -> None:
        k = producer.get(t)
        owned = top or (uses.get(t, 0) == 1 and t not in outputs)
        op = graph.operators[k] if k is not None and owned else None
        name = opname[op.opcodeIndex] if op is not None else ""
        src = int(op.inputs[0]) if op is not None and len(op.inputs) else -1
        if name in MOVES and len(op.outputs) == 1 and _scale(graph.tensors[src]) is not None:
            plan.moves.append(k)
            walk(src, False)
        elif name == "CONCATENATION" and not fused(op):
            ins = [int(i) for i in op.inputs]
            if all(_scale(graph.tensors[i]) is not None for i in ins):
                plan.moves.append(k)
                plan.concats.append(k)
                for i in ins:
                    walk(i, False)
            else:
                plan.parts.append(t)
        elif name == "QUANTIZE" and _scale(graph.tensors[src]) is not None:
            plan.requantize.append(k)  # int -> int: only moved its input onto another scale
            walk(src, False)
        else:
            plan.parts.append(t)

    walk(head, True)
    return plan if plan.concats else None


def _describe(graph: Any, plan: _Plan, rewritten: bool) -> OutputConcat | None:
    """The plan's concat, if its parts' steps differ by RATIO or more."""
    step = _scale(graph.tensors[plan.head])
    own = [_scale(graph.tensors[t]) for t in plan.parts]
    finest = min((s for s in own if s), default=None)
    if not step or not finest or step / finest < RATIO:
        return None
    concat = graph.operators[plan.concats[0]]
    return OutputConcat(
        output=plan.output,
        tensor=_name(graph.tensors[int(concat.outputs[0])]),
        parts=len(plan.parts),
        ratio=step / finest,
        step=step,
        own_step=finest,
        rewritten=rewritten,
    )


def output_concats(blob: bytes) -> list[OutputConcat]:
    """The outputs of an integer flatbuffer whose concat crushes a part onto a coarser step."""
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(blob))
    graph = model.subgraphs[0]
    found = []
    for position in range(len(graph.outputs)):
        plan = _plan(model, graph, position)
        described = _describe(graph, plan, rewritten=False) if plan else None
        if described is not None:
            found.append(described)
    return found


def float_output_concats(blob: bytes) -> tuple[bytes, list[OutputConcat]]:
    """``blob`` with every output concat of float-output models (a final DEQUANTIZE) whose
    parts' steps differ by RATIO or more assembled in float: each part dequantized with its own
    scale, the concat and the data movement after it in float32. Returns the flatbuffer and
    the rewritten outputs (``blob`` itself when none)."""
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(blob))
    graph = model.subgraphs[0]
    done = []
    for position in range(len(graph.outputs)):
        plan = _plan(model, graph, position)
        if plan is None or plan.dequantize is None:
            continue
        described = _describe(graph, plan, rewritten=True)
        if described is not None:
            _assemble_in_float(model, graph, plan)
            done.append(described)
    if not done:
        return blob, []
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model)), done


def _assemble_in_float(model: Any, graph: Any, plan: _Plan) -> None:
    """Rewrite one output's assembly in place (see the module docstring)."""
    schema = _schema()
    final = graph.operators[plan.dequantize]
    output = int(final.outputs[0])
    floats: dict[int, int] = {}  # part tensor -> its new float tensor
    dequantize_ops = []
    for part in dict.fromkeys(plan.parts):
        src = graph.tensors[part]
        tensor = schema.TensorT()
        tensor.shape = None if src.shape is None else np.array(src.shape, np.int32)
        if src.shapeSignature is not None:
            tensor.shapeSignature = np.array(src.shapeSignature, np.int32)
        tensor.type = schema.TensorType.FLOAT32
        tensor.name = f"{_name(src)}/dequantized"
        model.buffers.append(schema.BufferT())
        tensor.buffer = len(model.buffers) - 1
        graph.tensors.append(tensor)
        floats[part] = len(graph.tensors) - 1
        op = schema.OperatorT()
        op.opcodeIndex = final.opcodeIndex
        op.inputs = np.array([part], np.int32)
        op.outputs = np.array([floats[part]], np.int32)
        dequantize_ops.append(op)
    requantized = {int(graph.operators[k].outputs[0]): k for k in plan.requantize}

    def as_float(t: int) -> int:
        if t in floats:
            return floats[t]
        if t in requantized:
            return as_float(int(graph.operators[requantized[t]].inputs[0]))
        return t  # a move's output: retyped to float below

    for k in plan.moves:
        op = graph.operators[k]
        data = range(len(op.inputs)) if k in plan.concats else range(1)
        op.inputs = np.array(
            [as_float(int(t)) if i in data else int(t) for i, t in enumerate(op.inputs)], np.int32
        )
        out = int(op.outputs[0])
        if out == plan.head:
            op.outputs = np.array([output], np.int32)  # writes the model output itself
        else:
            graph.tensors[out].type = schema.TensorType.FLOAT32
            graph.tensors[out].quantization = None
    # the float assembly after every integer op (an integer op never reads it), in the order
    # the ops had: a delegate or the Edge TPU compiler takes the integer graph in one piece
    dropped = {plan.dequantize, *plan.requantize, *plan.moves}
    kept = [op for k, op in enumerate(graph.operators) if k not in dropped]
    moves = [graph.operators[k] for k in sorted(plan.moves)]
    graph.operators = kept + dequantize_ops + moves
