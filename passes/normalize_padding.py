"""Make every padding explicit; keep TF 'same' only where it is provably identical.

Requires: conv/conv_transpose/max_pool/avg_pool (1-3 spatial axes) with torch padding (ints,
"same", "valid"), ``padding_mode``, ``output_padding``, ``ceil_mode``, ``count_include_pad`` as
torch gave them (channels-first, logical).
Establishes: every conv/conv_transpose/max_pool/avg_pool has ``padding`` "valid" or "same" and
no ``padding_mode``/``output_padding``/``ceil_mode``/``count_include_pad`` semantics left;
anything else became an explicit ``pad`` node (zeros, -inf for max pooling, or
reflect/replicate/circular), a ``slice`` (transposed conv crop) and, for average pooling, a
``mul`` by a constant divisor correction.

Math:
- TF 'SAME' on an axis of size n, kernel k, stride s, dilation d: out = ceil(n/s),
  total = max((out-1)·s + (k-1)·d + 1 - n, 0), before = total // 2, after = total - before.
  PyTorch pads (p, p). 'same' is emitted only if (before, after) == torch's pads for the
  concrete n (for s = 1 the sizes do not matter). Conv2d(k=3, s=2, p=1) on n = 224 gives
  TF (0, 1) vs torch (1, 1): explicit pad + 'valid'.
- ceil_mode: out = ceil((n + 2p - d(k-1) - 1)/s) + 1, minus one if the last window would start
  at or beyond n + p; the padded input must then reach (out-1)·s + d(k-1) + 1, so extra = that
  minus (n + 2p) is added after.
- avg pooling divides by the window clipped to [-p, n+p) (count_include_pad) or to [0, n)
  (not); a constant map k_h·k_w / divisor corrects a plain 'valid' average of the zero-padded
  input. With divisor_override the map is k_h·k_w / divisor_override.
- conv_transpose: the full ('valid') output has (n-1)·s + d(k-1) + 1 rows; torch keeps rows
  [p, p + out) with out = full - 2p + output_padding, i.e. a crop of p before and p - op after
  (op > p: op - p rows that only the bias reaches are padded after).
"""

from __future__ import annotations

import numpy as np

from transpiler.errors import TranspileError
from transpiler.ir import Graph, Node, TensorType, Value
from transpiler.ops import declared_attr

from ._util import insert_binary_const, insert_pad, make_pad, tf_same_pads, torch_pads
from .manager import PassContext, PassResult

__all__ = ["normalize_padding"]


def _ceil_extra(
    n: int | None, k: int, s: int, p: int, d: int, where: str, any_size: bool = False
) -> int:
    """Extra end padding that PyTorch's ceil_mode needs on one axis.

    With ``any_size`` (max pooling, padded with -inf) and an unknown size, s - 1 works for every
    n when p = 0 and the window is at least the stride: floor((n + s - 1 - k')/s) + 1 equals
    ceil((n - k')/s) + 1, and PyTorch's last-window rule never drops a window then."""
    if s == 1:
        return 0
    if n is None and any_size and p == 0 and d * (k - 1) + 1 >= s:
        return s - 1
    if n is None:
        raise TranspileError(
            f"ceil_mode pooling at {where} on a dynamic spatial size: pass example_inputs."
        )
    eff = d * (k - 1) + 1
    out = -(-(n + 2 * p - eff) // s) + 1
    if (out - 1) * s >= n + p:
        out -= 1
    return max((out - 1) * s + eff - (n + 2 * p), 0)


def _is_tf_same(node: Node, x_shape, kernel, pads) -> bool:
    stride = node.attrs["stride"]
    dilation = node.attrs.get("dilation") or (1,) * len(kernel)  # avg_pool has none
    if max(stride) > 1 and max(dilation) > 1:
        return False  # the backend splits such a conv into conv + subsample: 'same' would shift
    return all(
        tf_same_pads(x_shape[2 + i], kernel[i], stride[i], dilation[i]) == tuple(pads[i])
        for i in range(len(kernel))
    )


def _conv(graph: Graph, node: Node) -> None:
    x = node.inputs[0]
    pads = torch_pads(node)
    mode = declared_attr(node, "padding_mode")
    node.attrs.pop("padding_mode", None)  # consumed: the padding is explicit from here on
    kernel = node.inputs[1].shape[2:]
    if all(p == (0, 0) for p in pads):
        node.attrs["padding"] = "valid"
    elif mode == "zeros" and _is_tf_same(node, x.shape, kernel, pads):
        node.attrs["padding"] = "same"
    else:
        torch_mode = {"zeros": "constant"}.get(mode, mode)
        node.inputs[0] = insert_pad(graph, node, x, pads, torch_mode, 0.0)
        node.attrs["padding"] = "valid"


def _conv_transpose(graph: Graph, node: Node) -> None:
    """Full ('valid') transposed conv, then crop torch's padding; output_padding beyond the
    padding adds rows that only the bias reaches (so the bias moves after the crop)."""
    x, y, w = node.inputs[0], node.output, node.inputs[1]
    a = node.attrs
    n = x.rank - 2
    pads, extra = a["padding"], a["output_padding"]
    a["padding"], a["output_padding"] = "valid", (0,) * n
    full = [
        None
        if x.shape[2 + i] is None
        else (x.shape[2 + i] - 1) * a["stride"][i] + a["dilation"][i] * (w.shape[2 + i] - 1) + 1
        for i in range(n)
    ]
    if all(p == 0 and e == 0 for p, e in zip(pads, extra, strict=True)):
        return
    bias = node.inputs[2] if len(node.inputs) > 2 else None
    grow = [max(0, e - p) for p, e in zip(pads, extra, strict=True)]
    if bias is not None and any(grow):
        node.inputs = node.inputs[:2]
    out_ch = w.shape[1] * a["groups"]
    full_type = TensorType(tuple(y.shape[:2]) + tuple(full), y.type.dtype)
    cur = Value(graph.fresh_name("full"), full_type, producer=node)
    node.outputs = [cur]
    if any(grow):
        pad = make_pad(graph, cur, [(0, g) for g in grow], "constant", 0.0, node.source)
        graph.nodes.insert(graph.nodes.index(node) + 1, pad)
        cur = pad.output
    crop = graph.make_node(
        "slice",
        [cur],
        y.type,
        {
            "axes": tuple(range(2, 2 + n)),
            "starts": tuple(pads),
            "stops": tuple(-(p - e) if p > e else None for p, e in zip(pads, extra, strict=True)),
            "steps": (1,) * n,
        },
        node.source,
        "crop",
    )
    graph.nodes.insert(graph.nodes.index(cur.producer) + 1, crop)
    result = crop.output
    if bias is not None and any(grow):
        b = graph.constant(bias).reshape(out_ch, *([1] * n))
        result = insert_binary_const(graph, crop, "add", result, b, "bias")
    graph.replace_all_uses(y, result)
    result.torch_ref, y.torch_ref = y.torch_ref, None


# ops whose output is never negative (nor NaN from a non-NaN input)
_NON_NEGATIVE = frozenset({"relu", "relu6", "sigmoid", "hardsigmoid", "abs"})


def _max_pool(graph: Graph, node: Node) -> None:
    x = node.inputs[0]
    a = node.attrs
    kernel, stride, dil = a["kernel"], a["stride"], a["dilation"]
    where = str(node.source)
    pads = []
    for i in range(len(kernel)):
        p = a["padding"][i]
        n = x.shape[2 + i]
        extra = (
            _ceil_extra(n, kernel[i], stride[i], p, dil[i], where, True) if a["ceil_mode"] else 0
        )
        pads.append((p, p + extra))
    a["padding"], a["ceil_mode"] = "valid", False
    if all(p == (0, 0) for p in pads):
        return
    if max(dil) == 1 and _is_tf_same(node, x.shape, kernel, pads):
        a["padding"] = "same"
    elif max(dil) == 1 and all(max(p) <= k - 1 for p, k in zip(pads, kernel, strict=True)):
        # Every window that reaches into the padding also holds a real element, so both pads
        # are exact here. Zeros where the input cannot be negative (a ReLU's output, as in
        # ResNet's stem: one PAD, where edge replication is 4 slices and 2 concatenations in
        # TFLite); else edge replication, which holds the edge element. Unlike a -inf
        # constant, both keep the tensor's range finite, which int8 quantization needs (a -inf
        # pad sets the scale to ~1e36).
        if x.producer is not None and x.producer.op in _NON_NEGATIVE:
            node.inputs[0] = insert_pad(graph, node, x, pads, "constant", 0.0)
        else:
            node.inputs[0] = insert_pad(graph, node, x, pads, "replicate", 0.0)
    else:
        node.inputs[0] = insert_pad(graph, node, x, pads, "constant", float("-inf"))


def _avg_divisor(n: int, out: int, k: int, s: int, p: int, include_pad: bool) -> np.ndarray:
    """PyTorch's divisor for each output position on one axis."""
    div = np.zeros(out, np.float64)
    for o in range(out):
        start = o * s - p
        end = min(start + k, n + p)
        if not include_pad:
            start, end = max(start, 0), min(end, n)
        div[o] = end - start
    return div


def _avg_pool(graph: Graph, node: Node) -> None:
    x, y = node.inputs[0], node.output
    a = node.attrs
    kernel, stride = a["kernel"], a["stride"]
    where = node.source.describe() if node.source else node.op
    pads = []
    for i in range(len(kernel)):
        p = a["padding"][i]
        extra = (
            _ceil_extra(x.shape[2 + i], kernel[i], stride[i], p, 1, where) if a["ceil_mode"] else 0
        )
        pads.append((p, p + extra))
    include_pad = declared_attr(node, "count_include_pad")
    override = declared_attr(node, "divisor_override")
    a.pop("count_include_pad", None), a.pop("divisor_override", None)  # consumed here
    a["padding"], a["ceil_mode"] = "valid", False
    if all(p == (0, 0) for p in pads) and override is None:
        return
    if not include_pad and override is None and _is_tf_same(node, x.shape, kernel, pads):
        a["padding"] = "same"  # TF 'same' averaging excludes the padding, like torch here
        return
    area = float(np.prod(kernel))
    if override is not None:
        correction = np.full((1,) * len(kernel), area / float(override))
    else:
        sizes = x.shape[2:]
        if None in sizes or None in y.shape[2:]:
            raise TranspileError(
                f"avg_pool at {where} with padding on a dynamic spatial size: "
                "pass example_inputs with a fixed size."
            )
        divs = [
            _avg_divisor(sizes[i], y.shape[2 + i], kernel[i], stride[i], pads[i][0], include_pad)
            for i in range(len(kernel))
        ]
        grid = divs[0]
        for d in divs[1:]:
            grid = np.multiply.outer(grid, d)
        correction = area / grid
    if any(p != (0, 0) for p in pads):
        node.inputs[0] = insert_pad(graph, node, x, pads, "constant", 0.0)
    if not np.allclose(correction, 1.0, rtol=0, atol=1e-7):
        c = correction.reshape(1, 1, *correction.shape).astype(np.float32)
        out = insert_binary_const(graph, node, "mul", y, c, "avg_divisor")
        graph.replace_all_uses(y, out)
        out.producer.inputs[0] = y  # replace_all_uses also rewired the mul itself
        out.torch_ref, y.torch_ref = y.torch_ref, None


_RULES = {
    "conv": _conv,
    "conv_transpose": _conv_transpose,
    "max_pool": _max_pool,
    "avg_pool": _avg_pool,
}


def normalize_padding(graph: Graph, ctx: PassContext) -> PassResult:
    changed = 0
    for node in list(graph.nodes):
        rule = _RULES.get(node.op)
        if rule is not None:
            rule(graph, node)
            changed += 1
    return PassResult(graph, changed > 0, f"{graph.count('pad')} explicit pad")
