"""Compute a dilated convolution whose taps mostly read padding as a sum of 1x1 convolutions.

Requires: normalize_padding (conv padding "same" or "valid", maybe after a zero ``pad`` node),
channels-first, constant weights.
Establishes: a 2-d, stride-1, ungrouped dilated conv on static sizes where most of the
(tap, output position) products multiply zero padding becomes, per live tap, a 1x1 conv of the
input window that tap reads, zero-padded to the output window it writes, all added; the tap
that covers the whole output (the centre) carries the bias. Exact: each output is the same sum
of the same products (only the order of the additions changes).

Why: DeepLabV3's ASPP conv at rate 12 on a 14x14 map: its off-centre taps reach inside the map
for two rows or columns only. PyTorch computes all 9 taps everywhere (9 x 196 products per
channel pair), TensorFlow through SpaceToBatchND on a map padded to a multiple of 12 (576
positions x 9), and TFLite's dilated CONV_2D like PyTorch; as 1x1 convs the live products are
196 + 4 x 28 + 4 x 4 = 324.

Math, per axis of output size m (stride 1: m = n + pl + pr - d(k-1)): tap t reads input
o - pl + t·d for output o; it is live on outputs [max(0, pl - t·d), min(m, n + pl - t·d)),
reading inputs [o0 - pl + t·d, o1 - pl + t·d). A conv is split when the live products are at
most half of k_h·k_w·m_h·m_w and one tap covers the whole output.
"""

from __future__ import annotations

from transpiler.ir import Graph, Node, TensorType, Value

from ._util import make_pad, tf_same_pads
from .manager import PassContext, PassResult

__all__ = ["split_sparse_taps"]

MAX_LIVE_FRACTION = 0.5


def _window(n: int, m: int, pl: int, t: int, d: int) -> tuple[int, int, int, int]:
    """(output start, output stop, input start, input stop) of tap t on one axis."""
    o0, o1 = max(0, pl - t * d), min(m, n + pl - t * d)
    return o0, o1, o0 - pl + t * d, o1 - pl + t * d


def _pads(graph: Graph, node: Node) -> tuple[Value, list[tuple[int, int]]] | None:
    """The conv's real input and its zero padding per spatial axis (a zero ``pad`` node used
    by this conv only is absorbed)."""
    x, a = node.inputs[0], node.attrs
    k = graph.constant(node.inputs[1]).shape[2:]
    if a["padding"] == "same":
        dims = zip(x.shape[2:], k, a["dilation"], strict=True)
        pads = [tf_same_pads(n, kk, 1, d) for n, kk, d in dims]
        return x, pads
    if a["padding"] != "valid":
        return None
    pad = x.producer
    if (
        pad is not None
        and pad.op == "pad"
        and pad.attrs["mode"] == "constant"
        and pad.attrs["value"] == 0.0
        and all(p == (0, 0) for p in pad.attrs["pads"][:2])
        and len(graph.users(x)) == 1
        and x not in graph.outputs
    ):
        return pad.inputs[0], [tuple(p) for p in pad.attrs["pads"][2:]]
    return x, [(0, 0)] * (x.rank - 2)


def _split(graph: Graph, node: Node) -> bool:
    a = node.attrs
    if len(node.inputs) < 2 or not all(graph.is_constant(v) for v in node.inputs[1:]):
        return False
    if node.inputs[0].rank != 4 or a["groups"] != 1 or tuple(a["stride"]) != (1, 1):
        return False
    if max(a["dilation"]) == 1 or a.get("data_format", "channels_first") != "channels_first":
        return False
    found = _pads(graph, node)
    if found is None:
        return False
    x, pads = found
    w = graph.constant(node.inputs[1])
    out_shape = node.output.shape
    sizes, m = x.shape[2:], out_shape[2:]
    if None in sizes or None in m or None in pads:
        return False
    taps = []
    for ty in range(w.shape[2]):
        for tx in range(w.shape[3]):
            wy = _window(sizes[0], m[0], pads[0][0], ty, a["dilation"][0])
            wx = _window(sizes[1], m[1], pads[1][0], tx, a["dilation"][1])
            if wy[1] > wy[0] and wx[1] > wx[0]:
                taps.append(((ty, tx), wy, wx))
    live = sum((wy[1] - wy[0]) * (wx[1] - wx[0]) for _, wy, wx in taps)
    full = [t for t in taps if t[1][:2] == (0, m[0]) and t[2][:2] == (0, m[1])]
    if not full or live > MAX_LIVE_FRACTION * w.shape[2] * w.shape[3] * m[0] * m[1]:
        return False
    taps.remove(full[0])
    taps.insert(0, full[0])  # the full-size term first: it carries the bias
    bias = node.inputs[2:]
    total: Value | None = None
    new: list[Node] = []
    for k, ((ty, tx), wy, wx) in enumerate(taps):
        xin = x
        if (wy[2], wy[3], wx[2], wx[3]) != (0, sizes[0], 0, sizes[1]):
            shape = x.shape[:2] + (wy[3] - wy[2], wx[3] - wx[2])
            attrs = {"axes": (2, 3), "starts": (wy[2], wx[2]), "stops": (wy[3], wx[3])}
            attrs["steps"] = (1, 1)
            sl = graph.make_node("slice", [x], TensorType(shape, x.type.dtype), attrs, node.source)
            new.append(sl)
            xin = sl.output
        kernel = graph.add_constant(w[:, :, ty : ty + 1, tx : tx + 1].copy(), "tap_weight")
        ins = [xin, kernel] + (list(bias) if k == 0 else [])
        shape = out_shape[:2] + (wy[1] - wy[0], wx[1] - wx[0])
        attrs = {**a, "padding": "valid", "dilation": (1, 1)}
        conv = graph.make_node(
            "conv", ins, TensorType(shape, node.output.type.dtype), attrs, node.source, "tap"
        )
        new.append(conv)
        y = conv.output
        if shape[2:] != tuple(m):
            spatial = [(wy[0], m[0] - wy[1]), (wx[0], m[1] - wx[1])]
            pad = make_pad(graph, y, spatial, "constant", 0.0, node.source)
            new.append(pad)
            y = pad.output
        if total is not None:
            add = graph.make_node("add", [total, y], node.output.type, {}, node.source, "tap_sum")
            new.append(add)
            y = add.output
        total = y
    for n in new:
        graph.insert_before(node, n)
    total.torch_ref = node.output.torch_ref  # the sum is the conv's output (diagnosis)
    new[-1].meta.update(node.meta)
    new[-1].meta["split_taps"] = len(taps)
    graph.replace_all_uses(node.output, total)
    graph.nodes.remove(node)
    return True


def split_sparse_taps(graph: Graph, ctx: PassContext) -> PassResult:
    split = [n for n in list(graph.nodes) if n.op == "conv" and _split(graph, n)]
    return PassResult(graph, bool(split), f"{len(split)} sparse dilated conv(s) split into taps")
