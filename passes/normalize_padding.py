"""Make every padding explicit; keep TF 'same' only where it is provably identical.

Requires: conv2d/max_pool2d/avg_pool2d with torch padding (int pairs, "same", "valid"),
``padding_mode``, ``ceil_mode`` and ``count_include_pad`` as torch gave them (NCHW, logical).
Establishes: every conv2d/max_pool2d/avg_pool2d has ``padding`` "valid" or "same", no
``padding_mode``/``ceil_mode``/``count_include_pad`` semantics left; anything else became an
explicit ``pad`` node (zeros, -inf for max pooling, or reflect/replicate/circular) and, for
average pooling, a ``mul`` by a constant divisor correction.

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
"""

from __future__ import annotations

import numpy as np

from transpiler.errors import TranspileError
from transpiler.ir import Graph, Node

from ._util import insert_binary_const, insert_pad, tf_same_pads
from .manager import PassContext, PassResult

__all__ = ["normalize_padding"]


def _torch_pads(node: Node) -> list[tuple[int, int]]:
    p = node.attrs.get("padding", "valid")
    if p == "valid":
        return [(0, 0), (0, 0)]
    if p == "same":  # torch 'same' (stride 1 only): total d(k-1), the extra one after
        w = node.inputs[1]
        pads = []
        for i in range(2):
            total = node.attrs["dilation"][i] * (w.shape[2 + i] - 1)
            pads.append((total // 2, total - total // 2))
        return pads
    return [(int(p[0]), int(p[0])), (int(p[1]), int(p[1]))]


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


def _same_or_none(node: Node, x_shape, kernel, pads) -> bool:
    stride = node.attrs["stride"]
    dilation = node.attrs.get("dilation", (1, 1))
    for i in range(2):
        if tf_same_pads(x_shape[2 + i], kernel[i], stride[i], dilation[i]) != tuple(pads[i]):
            return False
    return True


def _conv(graph: Graph, node: Node) -> bool:
    x = node.inputs[0]
    pads = _torch_pads(node)
    mode = node.attrs.pop("padding_mode", "zeros")
    kernel = node.inputs[1].shape[2:]
    if all(p == (0, 0) for p in pads):
        node.attrs["padding"] = "valid"
    elif mode == "zeros" and _same_or_none(node, x.shape, kernel, pads):
        node.attrs["padding"] = "same"
    else:
        torch_mode = {"zeros": "constant"}.get(mode, mode)
        node.inputs[0] = insert_pad(graph, node, x, pads, torch_mode, 0.0)
        node.attrs["padding"] = "valid"
    return True


def _max_pool(graph: Graph, node: Node) -> bool:
    x = node.inputs[0]
    a = node.attrs
    kernel, stride, dil = a["kernel"], a["stride"], a.get("dilation", (1, 1))
    pads = []
    for i in range(2):
        p = a["padding"][i]
        extra = (
            _ceil_extra(x.shape[2 + i], kernel[i], stride[i], p, dil[i], str(node.source), True)
            if a.get("ceil_mode")
            else 0
        )
        pads.append((p, p + extra))
    a["padding"], a["ceil_mode"] = "valid", False
    if all(p == (0, 0) for p in pads):
        return True
    if dil == (1, 1) and _same_or_none(node, x.shape, kernel, pads):
        a["padding"] = "same"
    else:
        node.inputs[0] = insert_pad(graph, node, x, pads, "constant", float("-inf"))
    return True


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


def _avg_pool(graph: Graph, node: Node) -> bool:
    x, y = node.inputs[0], node.output
    a = node.attrs
    kernel, stride = a["kernel"], a["stride"]
    where = node.source.describe() if node.source else node.op
    pads = []
    for i in range(2):
        p = a["padding"][i]
        extra = (
            _ceil_extra(x.shape[2 + i], kernel[i], stride[i], p, 1, where)
            if a.get("ceil_mode")
            else 0
        )
        pads.append((p, p + extra))
    include_pad = a.pop("count_include_pad", True)
    override = a.pop("divisor_override", None)
    a["padding"], a["ceil_mode"] = "valid", False
    if all(p == (0, 0) for p in pads) and override is None:
        return True
    if not include_pad and override is None and _same_or_none(node, x.shape, kernel, pads):
        a["padding"] = "same"  # TF 'same' averaging excludes the padding, like torch here
        return True
    if override is not None:
        correction = np.full((1, 1), kernel[0] * kernel[1] / float(override))
    else:
        sizes = x.shape[2:]
        if None in sizes or None in y.shape[2:]:
            raise TranspileError(
                f"avg_pool2d at {where} with padding on a dynamic spatial size: "
                "pass example_inputs with a fixed size."
            )
        divs = [
            _avg_divisor(sizes[i], y.shape[2 + i], kernel[i], stride[i], pads[i][0], include_pad)
            for i in range(2)
        ]
        correction = kernel[0] * kernel[1] / np.outer(divs[0], divs[1])
    if any(p != (0, 0) for p in pads):
        node.inputs[0] = insert_pad(graph, node, x, pads, "constant", 0.0)
    if not np.allclose(correction, 1.0, rtol=0, atol=1e-7):
        c = correction.reshape(1, 1, *correction.shape).astype(np.float32)
        out = insert_binary_const(graph, node, "mul", y, c, "avg_divisor")
        graph.replace_all_uses(y, out)
        out.producer.inputs[0] = y  # replace_all_uses also rewired the mul itself
        out.torch_ref, y.torch_ref = y.torch_ref, None
    return True


_RULES = {"conv2d": _conv, "max_pool2d": _max_pool, "avg_pool2d": _avg_pool}


def normalize_padding(graph: Graph, ctx: PassContext) -> PassResult:
    changed = 0
    for node in list(graph.nodes):
        rule = _RULES.get(node.op)
        if rule is not None and rule(graph, node):
            changed += 1
    return PassResult(graph, changed > 0, f"{graph.count('pad')} explicit pad")
