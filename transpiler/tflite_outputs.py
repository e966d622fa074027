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

A concat is rewritten (or reported) when its parts' steps differ by ``RATIO`` or more. Where
another op (or output) also reads a tensor of the assembly (``return y, y.mean(1)``), that
tensor stays integer for it and the float assembly gets its own copy of the op. A part whose
producer has a free output scale (MUL, ADD, a conv) is given the concat's scale by the
quantizer itself, with no QUANTIZE to bypass: it keeps that step (not handled here).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["RATIO", "OutputConcat", "float_output_concats", "output_concats", "tensor_name"]

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
    readers: dict[int, list[int]] = field(default_factory=dict)  # tensor -> reading op indices


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


def tensor_name(tensor: Any) -> str:
    """A flatbuffer object-API tensor's name as ``str`` (the API gives ``bytes``)."""
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
    """The assembly of output ``position``, if it contains a concat of integer tensors: the
    moves, concats and requantizations between the output and the tensors they start from,
    whoever else reads their tensors (``_assemble_in_float`` keeps what other readers need)."""
    opname = _op_names(model)
    producer = {int(t): k for k, op in enumerate(graph.operators) for t in op.outputs}
    readers: dict[int, list[int]] = {}
    for k, op in enumerate(graph.operators):
        for t in op.inputs:
            readers.setdefault(int(t), []).append(k)
    head = int(graph.outputs[position])
    k = producer.get(head)
    dequantize = None
    if k is not None and opname[graph.operators[k].opcodeIndex] == "DEQUANTIZE":
        dequantize, head = k, int(graph.operators[k].inputs[0])
    if _scale(graph.tensors[head]) is None:
        return None
    plan = _Plan(position, head, dequantize, readers=readers)
    fused = lambda op: getattr(op.builtinOptions, "fusedActivationFunction", 0)  # noqa: E731
    seen: set[int] = set()

    def walk(t: int) -> None:
        if t in seen:
            return
        seen.add(t)
        k = producer.get(t)
        op = graph.operators[k] if k is not None else None
        name = opname[op.opcodeIndex] if op is not None else ""
        src = int(op.inputs[0]) if op is not None and len(op.inputs) else -1
        if name in MOVES and len(op.outputs) == 1 and _scale(graph.tensors[src]) is not None:
            plan.moves.append(k)
            walk(src)
        elif name == "CONCATENATION" and not fused(op):
            ins = [int(i) for i in op.inputs]
            if all(_scale(graph.tensors[i]) is not None for i in ins):
                plan.moves.append(k)
                plan.concats.append(k)
                for i in ins:
                    walk(i)
            else:
                plan.parts.append(t)
        elif name == "QUANTIZE" and _scale(graph.tensors[src]) is not None:
            plan.requantize.append(k)  # int -> int: only moved its input onto another scale
            walk(src)
        else:
            plan.parts.append(t)

    walk(head)
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
        tensor=tensor_name(graph.tensors[int(concat.outputs[0])]),
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
    """Rewrite one output's assembly in place (see the module docstring). An op of the
    assembly whose output nothing else reads (the final DEQUANTIZE aside) is moved to float
    (a requantization dropped); one whose output other ops or outputs read stays as it is for
    them, and a float copy of it joins the assembly."""
    schema = _schema()
    final = graph.operators[plan.dequantize]
    output = int(final.outputs[0])
    outputs = {int(t) for t in graph.outputs}
    region = sorted({*plan.moves, *plan.requantize})
    dead: set[int] = {plan.dequantize}
    for k in reversed(region):  # readers come after their producers
        outs = [int(t) for t in graph.operators[k].outputs]
        if all(t not in outputs and set(plan.readers.get(t, [])) <= dead for t in outs):
            dead.add(k)

    def new_tensor(like: Any, name: str) -> int:
        tensor = schema.TensorT()
        tensor.shape = None if like.shape is None else np.array(like.shape, np.int32)
        if like.shapeSignature is not None:
            tensor.shapeSignature = np.array(like.shapeSignature, np.int32)
        tensor.type = schema.TensorType.FLOAT32
        tensor.name = name
        model.buffers.append(schema.BufferT())
        tensor.buffer = len(model.buffers) - 1
        graph.tensors.append(tensor)
        return len(graph.tensors) - 1

    floats: dict[int, int] = {}  # integer tensor -> its float version
    dequantize_ops = []
    for part in dict.fromkeys(plan.parts):
        floats[part] = new_tensor(
            graph.tensors[part], f"{tensor_name(graph.tensors[part])}/dequantized"
        )
        op = schema.OperatorT()
        op.opcodeIndex = final.opcodeIndex
        op.inputs = np.array([part], np.int32)
        op.outputs = np.array([floats[part]], np.int32)
        dequantize_ops.append(op)
    float_ops = []
    for k in region:  # in order: every input's float version exists before its readers
        op = graph.operators[k]
        src, out = int(op.inputs[0]), int(op.outputs[0])
        if k in plan.requantize:
            floats[out] = floats[src]
            continue
        if k not in dead:
            op = copy.deepcopy(op)
        data = range(len(op.inputs)) if k in plan.concats else range(1)
        op.inputs = np.array(
            [floats[int(t)] if i in data else int(t) for i, t in enumerate(op.inputs)], np.int32
        )
        if out == plan.head:
            floats[out] = output  # the assembly writes the model output itself
        elif k in dead:
            graph.tensors[out].type = schema.TensorType.FLOAT32
            graph.tensors[out].quantization = None
            floats[out] = out
        else:
            floats[out] = new_tensor(graph.tensors[out], f"{tensor_name(graph.tensors[out])}/float")
        op.outputs = np.array([floats[out]], np.int32)
        float_ops.append(op)
    # the float assembly after every integer op (an integer op never reads it): a delegate or
    # the Edge TPU compiler takes the integer graph in one piece
    kept = [op for k, op in enumerate(graph.operators) if k not in dead]
    graph.operators = kept + dequantize_ops + float_ops
