"""Drop the kernel taps of a convolution that only ever read zero padding.

Requires: conv nodes with torch padding (ints or "same"/"valid", before normalize_padding),
channels-first, a constant weight (O, I/g, *k).
Establishes: on every spatial axis of known size, each remaining tap reads the input for at
least one output position; an axis left with one tap has dilation 1. The output is unchanged,
exactly: a dead tap multiplies zeros only.

Why: a dilated conv whose dilation reaches past the input (DeepLabV3's ASPP at rates 24 and 36
on a 14x14 map) keeps only its centre tap, i.e. it *is* a 1x1 conv; TensorFlow would run it as a
dilated conv through SpaceToBatchND, several times slower than PyTorch.

Math, per axis of size n, kernel k, stride s, dilation d, pads (pl, pr):
out = floor((n + pl + pr - d(k-1) - 1)/s) + 1; tap t reads index o·s - pl + t·d for o < out and
is live iff one of those lies in [0, n). Live taps [t0, t1] (contiguous) keep the same output
with pads (pl - t0·d, pr - (k-1-t1)·d): n + pl' + pr' - d(k'-1) is unchanged. Axes where those
pads would be negative, or the live taps are not contiguous, are left alone; unequal pads
become an explicit zero pad before the conv.
"""

from __future__ import annotations

from transpiler.ir import Graph, Node
from transpiler.ops import declared_attr

from ._util import insert_pad, torch_pads
from .manager import PassContext, PassResult

__all__ = ["prune_conv_taps"]


def _live_taps(n: int, k: int, s: int, d: int, pl: int, pr: int) -> list[int]:
    out = (n + pl + pr - d * (k - 1) - 1) // s + 1
    return [t for t in range(k) if any(0 <= o * s - pl + t * d < n for o in range(max(out, 0)))]


def _prune(graph: Graph, node: Node) -> bool:
    x, w = node.inputs[0], node.inputs[1]
    if not graph.is_constant(w) or declared_attr(node, "padding_mode") != "zeros":
        return False
    weight = graph.constant(w)
    k = tuple(weight.shape[2:])
    sizes = x.shape[2:]
    pads = torch_pads(node)
    stride, dilation = list(node.attrs["stride"]), list(node.attrs["dilation"])
    keep, new_pads, changed = [], [], False
    for i, (n, kk) in enumerate(zip(sizes, k, strict=True)):
        pl, pr = pads[i]
        live = _live_taps(n, kk, stride[i], dilation[i], pl, pr) if n is not None else []
        t0, t1 = (live[0], live[-1]) if live else (0, kk - 1)
        npl, npr = pl - t0 * dilation[i], pr - (kk - 1 - t1) * dilation[i]
        if not live or len(live) == kk or live != list(range(t0, t1 + 1)) or npl < 0 or npr < 0:
            keep.append(slice(None))
            new_pads.append((pl, pr))
            continue
        changed = True
        keep.append(slice(t0, t1 + 1))
        new_pads.append((npl, npr))
        if t0 == t1:
            dilation[i] = 1
    if not changed:
        return False
    pruned = weight[(slice(None), slice(None), *keep)]
    node.inputs[1] = graph.add_constant(pruned.copy(), "pruned_weight")
    node.attrs["dilation"] = dilation
    if all(a == b for a, b in new_pads):
        node.attrs["padding"] = [a for a, _ in new_pads]
    else:
        node.inputs[0] = insert_pad(graph, node, x, new_pads, "constant", 0.0)
        node.attrs["padding"] = [0] * len(new_pads)
    node.meta["pruned_taps"] = (tuple(k), tuple(pruned.shape[2:]))
    return True


def prune_conv_taps(graph: Graph, ctx: PassContext) -> PassResult:
    pruned = [n for n in list(graph.nodes) if n.op == "conv" and _prune(graph, n)]
    return PassResult(graph, bool(pruned), f"{len(pruned)} conv(s) lost dead kernel taps")
