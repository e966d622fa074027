"""Fold inference-mode batch_norm into the producing conv2d/linear, or into a scale and shift.

Requires: batch_norm inputs mean/var/weight/bias are constants; conv2d/linear weights constant.
Establishes (with ``ctx.fold_batchnorm``): no ``batch_norm`` node remains. A batch_norm whose
input is produced by a conv2d (channel axis 1) or linear (features last) that has no other user
is folded into its weights; any other batch_norm (after a transposed conv, say) becomes ``mul`` +
``add`` by constants.
With ``fold_batchnorm=False`` the graph is left as it is (Keras keeps BatchNormalization layers,
trainable).
Records why each batch_norm was not folded into its producer: ``graph.meta["unfolded_batchnorm"]``
is a list of (PyTorch module path, reason), also summarized in the pass detail; the transpile
report prints them.

Math: s = gamma / sqrt(var + eps);  W' = W · s (per output channel);  b' = (b - mean) · s + beta
(b = 0 when the conv has no bias).
"""

from __future__ import annotations

import numpy as np

from transpiler.ir import Graph, Node

from .manager import PassContext, PassResult

__all__ = ["fold_batchnorm"]


def _scale_shift(graph: Graph, bn: Node) -> tuple[np.ndarray, np.ndarray] | None:
    consts = bn.inputs[1:]
    if not all(graph.is_constant(v) for v in consts):
        return None
    mean, var, gamma, beta = (graph.constant(v).astype(np.float64) for v in consts)
    s = gamma / np.sqrt(var + bn.attrs["eps"])
    return s, beta - mean * s


def _foldable_producer(graph: Graph, bn: Node, uses: dict[int, int]) -> str | None:
    """Why the producer of ``bn``'s input cannot absorb it, or None if it can."""
    x = bn.inputs[0]
    p = x.producer
    if p is None or p.op not in ("conv", "linear"):
        return "input is not a conv/linear"
    if uses.get(id(x), 0) != 1:
        return f"{p.op} output has other users"
    if not all(graph.is_constant(v) for v in p.inputs[1:]):
        return f"{p.op} weights are not constants"
    axis = bn.attrs["axis"]
    if p.op == "conv" and axis != 1:
        return "batch_norm axis is not the conv channel axis"
    if p.op == "linear" and axis != x.rank - 1:
        return "batch_norm axis is not the linear feature axis"
    return None


def _fold_into(graph: Graph, producer: Node, s: np.ndarray, shift: np.ndarray) -> None:
    w = graph.constant(producer.inputs[1]).astype(np.float64)
    out_ch = w.shape[0]
    w = w * s.reshape(out_ch, *([1] * (w.ndim - 1)))
    b = graph.constant(producer.inputs[2]).astype(np.float64) if len(producer.inputs) > 2 else 0.0
    b = b * s + shift
    producer.inputs[1] = graph.add_constant(w.astype(np.float32), "weight_folded")
    bias = graph.add_constant(np.asarray(b, np.float32).reshape(out_ch), "bias_folded")
    if len(producer.inputs) > 2:
        producer.inputs[2] = bias
    else:
        producer.inputs.append(bias)


def _to_mul_add(graph: Graph, bn: Node, s: np.ndarray, shift: np.ndarray) -> None:
    x = bn.inputs[0]
    axis = bn.attrs["axis"]
    shape = [1] * (x.rank - axis)
    shape[0] = -1  # broadcast from the channel axis onwards: (C, 1, 1) for NCHW
    scale = graph.add_constant(s.reshape(shape).astype(np.float32), "bn_scale")
    offset = graph.add_constant(shift.reshape(shape).astype(np.float32), "bn_shift")
    mul = graph.make_node("mul", [x, scale], x.type, {}, bn.source, "bn_scale")
    bn.op, bn.inputs, bn.attrs = "add", [mul.output, offset], {}
    graph.insert_before(bn, mul)  # the add's output (y) still equals the batch_norm's


def fold_batchnorm(graph: Graph, ctx: PassContext) -> PassResult:
    if not ctx.fold_batchnorm:
        return PassResult(graph, False, "disabled: BatchNorm kept as layers")
    folded = affine = 0
    uses = graph.use_counts()
    unfolded: list[tuple[str, str]] = []
    for bn in [n for n in graph.nodes if n.op == "batch_norm"]:
        where = (bn.source.module_path or "<top>") if bn.source else bn.output.name
        ss = _scale_shift(graph, bn)
        if ss is None:
            unfolded.append((where, "statistics or affine parameters are not constants; kept"))
            continue
        why = _foldable_producer(graph, bn, uses)
        if why is None:
            producer = bn.inputs[0].producer
            _fold_into(graph, producer, *ss)
            producer.output.torch_ref = bn.output.torch_ref
            producer.meta.setdefault("folded", []).append(bn.source)
            graph.replace_all_uses(bn.output, producer.output)
            graph.nodes.remove(bn)
            folded += 1
        else:
            unfolded.append((where, f"{why}; became a scale and shift"))
            _to_mul_add(graph, bn, *ss)
            affine += 1
    graph.meta["unfolded_batchnorm"] = unfolded
    detail = f"{folded} folded into conv/linear, {affine} as scale+shift"
    if unfolded:
        shown = "; ".join(f"{path}: {why}" for path, why in unfolded[:3])
        more = f"; {len(unfolded) - 3} more" if len(unfolded) > 3 else ""
        detail += f" (not folded: {shown}{more})"
    return PassResult(graph, folded + affine > 0, detail)
