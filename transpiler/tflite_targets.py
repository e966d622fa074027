"""Checks of a TFLite flatbuffer against a deployment target's published constraints.

- ``tflm`` (TensorFlow Lite Micro): full integer (int8/int16 activations, int32 biases; float
  only in QUANTIZE/DEQUANTIZE at the model's edges and in a float output assembly: DEQUANTIZE
  then data movement such as CONCATENATION feeding only outputs, which TFLM has float kernels
  for; ``output_assembly``), static shapes, ops the TFLM op resolver
  registers (tflite-micro ``micro_mutable_op_resolver.h``), no int64 tensors.
- ``edgetpu`` (Coral Edge TPU compiler, coral.ai/docs/edgetpu/models-intro): full 8-bit integer
  (the float I/O edges and output assembly, placed after every integer op, stay on the CPU),
  static shapes, its supported-operation list, tensors of at most 3 dimensions larger than 1
  (only the innermost three), no int64.
- ``gpu`` (the TFLite GPU delegate, ai.google.dev/edge/litert/performance/gpu): its supported-op
  list, tensors of at most 4 dimensions, no GATHER_ND, no int64 tensors, static shapes.

For every target, a model whose I/O is NHWC must have no TRANSPOSE op (a layout transpose left
in the graph). Each violation names the PyTorch module whose layer produced the offending op.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import TranspileError

__all__ = ["TARGETS", "Violation", "check_target"]

TARGETS = ("tflm", "edgetpu", "gpu")

TFLM_OPS = frozenset(
    """ABS ADD ADD_N ARG_MAX ARG_MIN ASSIGN_VARIABLE AVERAGE_POOL_2D BATCH_MATMUL BATCH_TO_SPACE_ND
    BROADCAST_ARGS BROADCAST_TO CALL_ONCE CAST CEIL CIRCULAR_BUFFER CONCATENATION CONV_2D COS CUMSUM
    DEPTH_TO_SPACE DEPTHWISE_CONV_2D DEQUANTIZE DIV ELU EMBEDDING_LOOKUP EQUAL EXP EXPAND_DIMS FILL
    FLOOR FLOOR_DIV FLOOR_MOD FULLY_CONNECTED GATHER GATHER_ND GREATER GREATER_EQUAL HARD_SWISH
    IF L2_NORMALIZATION L2_POOL_2D LEAKY_RELU LESS LESS_EQUAL LOG LOGICAL_AND LOGICAL_NOT
    LOGICAL_OR LOGISTIC LOG_SOFTMAX MAXIMUM MAX_POOL_2D MEAN MINIMUM MIRROR_PAD MUL NEG NOT_EQUAL
    PACK PAD PADV2 PRELU QUANTIZE READ_VARIABLE REDUCE_MAX REDUCE_MIN RELU RELU6 RESHAPE
    RESIZE_BILINEAR RESIZE_NEAREST_NEIGHBOR ROUND RSQRT SELECT_V2 SHAPE SIN SLICE SOFTMAX
    SPACE_TO_BATCH_ND SPACE_TO_DEPTH SPLIT SPLIT_V SQRT SQUARE SQUARED_DIFFERENCE SQUEEZE
    STRIDED_SLICE SUB SUM SVDF TANH TRANSPOSE TRANSPOSE_CONV UNIDIRECTIONAL_SEQUENCE_LSTM UNPACK
    VAR_HANDLE WHILE ZEROS_LIKE""".split()
)
EDGETPU_OPS = frozenset(
    """ADD AVERAGE_POOL_2D CONCATENATION CONV_2D DEPTHWISE_CONV_2D DEQUANTIZE EXPAND_DIMS
    FULLY_CONNECTED GATHER HARD_SWISH L2_NORMALIZATION LOGISTIC LSTM MAXIMUM MAX_POOL_2D MEAN
    MINIMUM MUL PACK PAD PRELU QUANTIZE REDUCE_MAX REDUCE_MIN RELU RELU6 RELU_N1_TO_1 RESHAPE
    RESIZE_BILINEAR RESIZE_NEAREST_NEIGHBOR RSQRT SLICE SOFTMAX SPACE_TO_DEPTH SPLIT
    SQUARED_DIFFERENCE SQUEEZE STRIDED_SLICE SUB SUM TANH TRANSPOSE TRANSPOSE_CONV UNPACK""".split()
)
GPU_OPS = frozenset(
    """ABS ADD AVERAGE_POOL_2D BATCH_MATMUL CAST CONCATENATION CONV_2D COS DEPTH_TO_SPACE
    DEPTHWISE_CONV_2D DEQUANTIZE DIV ELU EQUAL EXP FLOOR FLOOR_DIV FLOOR_MOD FULLY_CONNECTED
    GREATER GREATER_EQUAL HARD_SWISH LEAKY_RELU LESS LESS_EQUAL LOG LOGISTIC MAXIMUM MAX_POOL_2D
    MEAN MINIMUM MIRROR_PAD MUL NEG NOT_EQUAL PACK PAD PADV2 POW PRELU QUANTIZE REDUCE_MAX
    REDUCE_MIN REDUCE_PROD RELU RELU6 RELU_N1_TO_1 RESHAPE RESIZE_BILINEAR RESIZE_NEAREST_NEIGHBOR
    RSQRT SELECT_V2 SIN SLICE SOFTMAX SPACE_TO_DEPTH SPLIT SPLIT_V SQRT SQUARE SQUARED_DIFFERENCE
    STRIDED_SLICE SUB SUM TANH TILE TRANSPOSE TRANSPOSE_CONV""".split()
)
_INT_ACTIVATIONS = {np.dtype(np.int8), np.dtype(np.uint8), np.dtype(np.int16), np.dtype(np.int32)}


@dataclass(frozen=True)
class Violation:
    target: str
    rule: str  # "full integer", "static shape", "op", "rank", "int64", "transpose"
    op: str
    module: str  # the PyTorch module (or layer / tensor name when no module produced it)
    detail: str

    def __str__(self) -> str:
        return f"{self.target}: {self.rule}: {self.op} in {self.module}: {self.detail}"


def _ops_and_tensors(blob: bytes) -> tuple[list[dict], dict[int, dict], list[int], list[int]]:
    from .quantize import _interp

    interp = _interp(blob, preserve=False)
    tensors = {d["index"]: d for d in interp.get_tensor_details()}
    ops = [o for o in interp._get_ops_details() if o["op_name"] != "DELEGATE"]  # noqa: SLF001
    inputs = [d["index"] for d in interp.get_input_details()]
    outputs = [d["index"] for d in interp.get_output_details()]
    return ops, tensors, inputs, outputs


def check_target(
    blob: bytes,
    target: str,
    io_layout: tuple[str, str] = ("nchw", "nchw"),
    module_of: Callable[[str], str] | None = None,
) -> list[Violation]:
    """Every way ``blob`` breaks ``target``'s constraints (empty: it passes)."""
    if target not in TARGETS:
        raise TranspileError(f"unknown target {target!r}; valid: {TARGETS}")
    ops, tensors, inputs, outputs = _ops_and_tensors(blob)
    module_of = module_of or (lambda name: name)
    allowed = {"tflm": TFLM_OPS, "edgetpu": EDGETPU_OPS, "gpu": GPU_OPS}[target]
    found: list[Violation] = []
    seen: set[tuple[str, str, str]] = set()

    def add(rule: str, op: dict, tensor: dict, detail: str) -> None:
        module = module_of(tensor["name"]) if tensor else "?"
        key = (rule, op["op_name"], module)
        if key not in seen:
            seen.add(key)
            found.append(Violation(target, rule, op["op_name"], module, detail))

    edge = set(inputs) | set(outputs)
    activations = set(inputs) | {int(t) for o in ops for t in o["outputs"]}
    assembly = output_assembly(ops, tensors, outputs)
    for k, op in enumerate(ops):
        name = op["op_name"]
        outs = [tensors[int(t)] for t in op["outputs"] if int(t) in tensors]
        ins = [tensors[int(t)] for t in op["inputs"] if int(t) in tensors]
        first = outs[0] if outs else (ins[0] if ins else {})
        if name not in allowed:
            add("op", op, first, f"{name} is not supported by {target}")
        if name == "GATHER_ND" and target == "gpu":
            add("op", op, first, "GATHER_ND is not supported by the GPU delegate")
        if name == "TRANSPOSE" and io_layout[0] == "nhwc":
            add("transpose", op, first, "a TRANSPOSE op in a model with NHWC inputs")
        for t in ins + outs:
            shape = list(t["shape_signature"]) if len(t["shape_signature"]) else list(t["shape"])
            dtype = np.dtype(t["dtype"])
            if dtype == np.int64:
                add("int64", op, t, f"int64 tensor {t['name']!r}")
            if target == "gpu" and len(shape) > 4:
                add(
                    "rank", op, t, f"{len(shape)}-D tensor {t['name']!r} (the GPU delegate: <= 4-D)"
                )
            live = t["index"] in activations
            if target == "edgetpu" and live and any(d != 1 for d in shape[:-3]):
                add(
                    "rank",
                    op,
                    t,
                    f"tensor {t['name']!r} of shape {shape}: the Edge TPU allows only the "
                    "innermost 3 dimensions to be larger than 1",
                )
            if target == "tflm" and len(shape) > 5:
                add("rank", op, t, f"{len(shape)}-D tensor {t['name']!r}")
            if any(d < 0 for d in shape):
                add("static shape", op, t, f"tensor {t['name']!r} has a dynamic shape {shape}")
        if target in ("tflm", "edgetpu"):
            at_edge = k in assembly or (
                name in ("QUANTIZE", "DEQUANTIZE") and any(t["index"] in edge for t in ins + outs)
            )
            floats = [
                t
                for t in ins + outs
                if np.dtype(t["dtype"]).kind == "f" and not (at_edge and t["index"] in edge)
            ]
            if floats and not at_edge:
                add("full integer", op, first, f"{name} computes in {np.dtype(floats[0]['dtype'])}")
            if target == "edgetpu":
                wide = [t for t in outs if np.dtype(t["dtype"]) == np.int16]
                if wide:
                    add("full integer", op, first, "int16 activations (the Edge TPU is 8-bit)")
    return found


def output_assembly(ops: list[dict], tensors: dict[int, dict], outputs: list[int]) -> set[int]:
    """Positions (in ``ops``) of the float output assembly: DEQUANTIZE of integer tensors and
    data movement (CONCATENATION, RESHAPE, TRANSPOSE, SQUEEZE, EXPAND_DIMS) whose outputs only
    the model's outputs or other such ops read (transpiler/tflite_outputs.py writes them for
    output concats of float-output integer models)."""
    from .tflite_outputs import MOVES

    readers: dict[int, list[int]] = {}
    for k, op in enumerate(ops):
        for t in op["inputs"]:
            readers.setdefault(int(t), []).append(k)
    found: set[int] = set()
    for k in reversed(range(len(ops))):  # readers come after their producers
        op = ops[k]
        if op["op_name"] == "DEQUANTIZE":
            src = tensors.get(int(op["inputs"][0]))
            if src is None or np.dtype(src["dtype"]).kind == "f":
                continue
        elif op["op_name"] not in (*MOVES, "CONCATENATION"):
            continue
        if all(
            int(t) in outputs or (readers.get(int(t)) and set(readers[int(t)]) <= found)
            for t in op["outputs"]
        ):
            found.add(k)
    return found


def module_namer(names: Any) -> Callable[[str], str]:
    """tensor name -> the PyTorch module(s) of its layer (``names``: a quantize.NameMap)."""

    def module_of(tensor_name: str) -> str:
        layers = names.layers(tensor_name)
        modules = [m for layer in layers for m in names.modules_of(layer)]
        if modules:
            return ", ".join(dict.fromkeys(modules))
        other = names.unknown_layer(tensor_name)
        return f"layer {other}" if other else f"tensor {tensor_name}"

    return module_of
