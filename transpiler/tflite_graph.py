"""Graph rewrites applied to a frozen concrete function just before TFLite conversion.

TensorFlow computes a dilated convolution (``tf.nn.convolution`` / ``tf.nn.depthwise_conv2d``
with a dilation, which Keras' Conv2D and DepthwiseConv2D call) as SpaceToBatchND -> an undilated
VALID convolution -> BatchToSpaceND. The TFLite converter folds that triple back into one
dilated CONV_2D / DEPTHWISE_CONV_2D only when the batch is static; with the dynamic batch our
files keep, the triple stays, and XNNPACK cannot take SPACE_TO_BATCH_ND / BATCH_TO_SPACE_ND (each
pair splits the graph into more delegate partitions). ``fold_dilated_convs`` does the fold
itself on the frozen GraphDef: the convolution gets the dilation as its ``dilations``
attribute (which the converter maps to the builtin's dilation factors), and the
SpaceToBatchND paddings minus the BatchToSpaceND crops become one explicit Pad (omitted when
zero). The result is exact: the
same taps over the same (zero-)padded input. A triple whose crops exceed its paddings, or
whose parts are shared with other consumers, is left as it is.

For the integer variants, ``mean_without_keepdims`` turns every keep-dims Mean (Keras' global
average pooling: a 4-D ``(N, 1, 1, C)`` result) into a Mean without kept dimensions and a
Reshape back. Exact in float; in int8, TFLite's kernel for a keep-dims MEAN over the spatial
axes truncates where the other path rounds (measured on a ReLU6 ``7x7x1280`` input: rms error
0.49 against 0.41 output steps, biased by -0.28 step), which cost mobilenet_v2 0.3 dB end to
end.

For the integer variants too, ``centre_softmax_projections`` rewrites every linear map that
reads a softmax over the axis it contracts (a 1x1 ``Conv2D`` or a ``MatMul`` / ``BatchMatMulV2``
with constant weights, through Transposes that keep track of that axis): each output channel's
weights ``w_k`` become ``w_k - c`` with ``c`` their mean, and ``c`` is added to its bias. Exact in
float (a softmax row sums to 1); in int8 the softmax's quantized rows do not sum to 1 (output
step 1/256, fixed by TFLite's kernel), and that common-mode error times the mean weight is what
dominated YOLO's DFL box distances (``sum_k k * p_k``): with centred weights it cancels. Measured
on YOLO11n (320x320, random weights): DFL output 46.3 -> 50.0 dB against the float model, end
to end 42.85 -> 43.86 dB against PyTorch (BENCHMARKS.md, INT8).

``channel_shuffle_round_trips`` rewrites a Transpose that swaps the last two axes of a
``(N, S..., g, k)`` tensor when ``g`` (the new innermost size) is small: a channel shuffle
(ShuffleNet's ``view(N, g, C/g, H, W).transpose(1, 2)``, which in NHWC is exactly this
transpose). XNNPACK runs that one transpose as ``N·prod(S)`` tiny ``g x k`` transposes, each
output row ``g`` values long, measured slower than channels-first work (BENCHMARKS.md,
"shufflenet_v2_x1_0: what cost the 5%"): after a ``cat`` of ``g`` pieces, one concat that
interleaves the pieces' channels-first rows (``prod(S)`` contiguous values each), the next
block's channel split taken from that channels-first result; otherwise PyTorch's own form,
which LiteRT-Torch emits: to channels-first (one large 2-d transpose), the swap of the channel
blocks, back (three Transposes separated by Reshapes: the TFLite converter would fuse adjacent
Transposes back into one). Exact (a permutation of the same values), batch kept dynamic
(``-1`` in every shape).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = [
    "centre_softmax_projections",
    "channel_shuffle_round_trips",
    "fold_dilated_convs",
    "mean_without_keepdims",
    "native_dilated_convs",
]

_CONVS = ("Conv2D", "DepthwiseConv2dNative")
_LINEAR = ("Conv2D", "MatMul", "BatchMatMulV2", "BatchMatMul")  # each has T, its attrs below


def _const(nodes: dict[str, Any], name: str) -> np.ndarray | None:
    import tensorflow as tf

    node = nodes.get(name.split(":")[0].lstrip("^"))
    if node is None or node.op != "Const":
        return None
    return tf.make_ndarray(node.attr["value"].tensor)


def _consumers(graph_def: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for node in graph_def.node:
        for name in node.input:
            key = name.lstrip("^").split(":")[0]
            counts[key] = counts.get(key, 0) + 1
    for fn in graph_def.library.function:  # inputs used inside functions count as consumers
        for node in fn.node_def:
            for name in node.input:
                key = name.lstrip("^").split(":")[0]
                counts[key] = counts.get(key, 0) + 1
    return counts


def _fold(graph_def: Any) -> int:
    """Fold every SpaceToBatchND -> conv -> BatchToSpaceND triple in place; returns how many."""
    import tensorflow as tf

    nodes = {n.name: n for n in graph_def.node}
    uses = _consumers(graph_def)
    folded = 0
    for b2s in list(graph_def.node):
        if b2s.op != "BatchToSpaceND":
            continue
        conv = nodes.get(b2s.input[0].split(":")[0])
        if conv is None or conv.op not in _CONVS or uses.get(conv.name, 0) != 1:
            continue
        s2b = nodes.get(conv.input[0].split(":")[0])
        if s2b is None or s2b.op != "SpaceToBatchND" or uses.get(s2b.name, 0) != 1:
            continue
        if conv.attr["data_format"].s not in (b"NHWC", b""):
            continue
        if conv.attr["padding"].s != b"VALID" or list(conv.attr["strides"].list.i) != [1] * 4:
            continue
        if list(conv.attr["dilations"].list.i) not in ([], [1] * 4):
            continue
        block, block2 = _const(nodes, s2b.input[1]), _const(nodes, b2s.input[1])
        pads, crops = _const(nodes, s2b.input[2]), _const(nodes, b2s.input[2])
        if any(v is None for v in (block, block2, pads, crops)):
            continue
        if block.shape != (2,) or not np.array_equal(block, block2) or pads.shape != (2, 2):
            continue
        rest = pads - crops
        if crops.shape != (2, 2) or (rest < 0).any():
            continue
        source = s2b.input[0]
        if rest.any():  # the padding the conv still needs, as one Pad node
            full = np.zeros((4, 2), np.int32)
            full[1:3] = rest
            pad_const = graph_def.node.add()
            pad_const.name, pad_const.op = f"{conv.name}/dilation_pad/paddings", "Const"
            pad_const.attr["dtype"].type = tf.int32.as_datatype_enum
            pad_const.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(full))
            pad = graph_def.node.add()
            pad.name, pad.op = f"{conv.name}/dilation_pad", "Pad"
            pad.input.extend([source, pad_const.name])
            pad.attr["T"].CopyFrom(conv.attr["T"])
            pad.attr["Tpaddings"].type = tf.int32.as_datatype_enum
            source = pad.name
        conv.input[0] = source
        conv.attr["dilations"].list.i[:] = [1, int(block[0]), int(block[1]), 1]
        # the BatchToSpaceND becomes an Identity of the conv (its consumers keep their inputs)
        b2s.op = "Identity"
        del b2s.input[1:]
        for key in list(b2s.attr):
            if key != "T":
                del b2s.attr[key]
        s2b.op = "Identity"  # now unused; keeps the graph well-formed until pruning
        del s2b.input[1:]
        for key in list(s2b.attr):
            if key != "T":
                del s2b.attr[key]
        folded += 1
    return folded


def fold_dilated_convs(graph_def: Any) -> int:
    """Fold the dilated convolutions of a frozen GraphDef in place; returns how many."""
    if not any(n.op == "SpaceToBatchND" for n in graph_def.node):
        return 0
    return _fold(graph_def)


def native_dilated_convs(frozen: Any) -> Any:
    """``frozen`` (a concrete function with constants for variables) with its dilated
    convolutions as single dilated conv ops; ``frozen`` itself when it has none. (The export
    hands the folded GraphDef to the converter directly, ``tflite.converter_for``; this
    re-wrapping costs a prune of the whole graph.)"""
    graph_def = frozen.graph.as_graph_def()
    if not fold_dilated_convs(graph_def):
        return frozen
    from tensorflow.python.eager import wrap_function

    inputs = [t.name for t in frozen.inputs]
    outputs = [t.name for t in frozen.outputs]
    rewritten = wrap_function.function_from_graph_def(graph_def, inputs, outputs)
    rewritten._transpiler_frozen = True
    return rewritten


def mean_without_keepdims(graph_def: Any, shape_of: Callable[[str], list | None]) -> int:
    """Rewrite, in place, every ``Mean(keep_dims=True)`` node of a frozen GraphDef whose
    reduction axes are a non-negative constant into ``Mean(keep_dims=False)`` followed by a
    ``Reshape`` to the node's output shape when ``shape_of(node name)`` (None for unknown
    sizes) knows all but one size, by one ``ExpandDims`` per reduced axis otherwise. The last
    new node keeps the node's name, so its consumers are unchanged; returns how many."""
    import tensorflow as tf

    def const(name: str, value: np.ndarray) -> str:
        node = graph_def.node.add()
        node.name, node.op = name, "Const"
        node.attr["dtype"].type = tf.int32.as_datatype_enum
        node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(value))
        return name

    def becomes(node: Any, op: str, inputs: list[str], dtype: int, index_attr: str) -> None:
        node.op = op
        del node.input[:]
        node.input.extend(inputs)
        for key in list(node.attr):
            del node.attr[key]
        node.attr["T"].type = dtype
        node.attr[index_attr].type = tf.int32.as_datatype_enum

    nodes = {n.name: n for n in graph_def.node}
    done = 0
    for node in list(graph_def.node):
        if node.op != "Mean" or not node.attr["keep_dims"].b:
            continue
        axes = _const(nodes, node.input[1])
        if axes is None or axes.ndim > 1 or not axes.size or (axes < 0).any():
            continue
        name, dtype, shape = node.name, node.attr["T"].type, shape_of(node.name)
        reduced = graph_def.node.add()
        reduced.CopyFrom(node)
        reduced.name = f"{name}_reduced"
        reduced.attr["keep_dims"].b = False
        if shape is not None and sum(d is None for d in shape) <= 1:
            dims = np.array([-1 if d is None else int(d) for d in shape], np.int32)
            becomes(node, "Reshape", [reduced.name, const(f"{name}_kept", dims)], dtype, "Tshape")
        else:
            source, kept = reduced.name, sorted({int(a) for a in axes.ravel()})
            for k, axis in enumerate(kept):
                expand = node if k == len(kept) - 1 else graph_def.node.add()
                if expand is not node:
                    expand.name = f"{name}_kept_{k}"
                dim = const(f"{name}_kept_axis_{k}", np.int32(axis))
                becomes(expand, "ExpandDims", [source, dim], dtype, "Tdim")
                source = expand.name
        done += 1
    return done


def _channels_last_input(
    nodes: dict[str, Any], source: str, sizes: list[int], shape_of: Callable[[str], list | None]
) -> str | None:
    """When ``source`` is a Reshape of a tensor already shaped ``(N, *sizes)``, that tensor."""
    node = nodes.get(source.split(":")[0])
    if node is None or node.op != "Reshape":
        return None
    inner = node.input[0]
    if inner.startswith("^") or (":" in inner and not inner.endswith(":0")):
        return None
    shape = shape_of(inner.split(":")[0])
    if shape is None or list(shape[1:]) != sizes:
        return None
    return inner


SHUFFLE_MAX_GROUPS = 8  # the largest innermost size ``g`` the shuffle rewrite takes


def _tensor(name: str) -> str | None:
    """The op name of a data input (output 0), None for a control input or another output."""
    if name.startswith("^") or (":" in name and not name.endswith(":0")):
        return None
    return name.split(":")[0]


def _channel_range(node: Any, nodes: dict[str, Any], channels: int) -> tuple[int, int] | None:
    """``(lo, hi)`` when ``node`` is a StridedSlice taking channels ``[lo, hi)`` of the last axis
    of a rank >= 3 tensor and everything of the other axes (Keras' ``x[..., lo:hi]`` form: full
    rank, the other axes masked), else None."""
    if node.op != "StridedSlice" or len(node.input) != 4:
        return None
    if any(node.attr[m].i for m in ("ellipsis_mask", "new_axis_mask", "shrink_axis_mask")):
        return None
    begin, end, strides = (_const(nodes, name) for name in node.input[1:])
    if begin is None or end is None or strides is None or begin.ndim != 1 or begin.size < 3:
        return None
    last = begin.size - 1
    others = (1 << last) - 1
    bmask, emask = node.attr["begin_mask"].i, node.attr["end_mask"].i
    if (bmask & others) != others or (emask & others) != others or (strides != 1).any():
        return None
    lo = 0 if bmask >> last & 1 else int(begin[last])
    hi = channels if emask >> last & 1 else int(end[last])
    lo, hi = (lo + channels if lo < 0 else lo), (hi + channels if hi < 0 else hi)
    hi = min(hi, channels)
    return (lo, hi) if 0 <= lo < hi else None


class _Builder:
    """Adds nodes to a GraphDef under one name prefix (int32 constants, Reshape / Transpose /
    StridedSlice / ConcatV2 of one dtype)."""

    def __init__(self, graph_def: Any, prefix: str, dtype: int) -> None:
        import tensorflow as tf

        self.graph_def, self.prefix, self.dtype = graph_def, prefix, dtype
        self.int32 = tf.int32.as_datatype_enum
        self._tf = tf

    def const(self, suffix: str, value: Any) -> str:
        out = self.graph_def.node.add()
        out.name, out.op = f"{self.prefix}/{suffix}", "Const"
        out.attr["dtype"].type = self.int32
        proto = self._tf.make_tensor_proto(np.asarray(value, np.int32))
        out.attr["value"].tensor.CopyFrom(proto)
        return out.name

    def node(self, op: str, suffix: str, inputs: list[str], target: Any = None) -> Any:
        out = target if target is not None else self.graph_def.node.add()
        if target is None:
            out.name = f"{self.prefix}/{suffix}"
        out.op = op
        del out.input[:]
        out.input.extend(inputs)
        for key in list(out.attr):
            del out.attr[key]
        out.attr["T"].type = self.dtype
        return out

    def reshape(self, suffix: str, x: str, shape: list[int], target: Any = None) -> str:
        out = self.node("Reshape", suffix, [x, self.const(f"{suffix}_shape", shape)], target)
        out.attr["Tshape"].type = self.int32
        return out.name

    def transpose(self, suffix: str, x: str, perm: list[int], target: Any = None) -> str:
        out = self.node("Transpose", suffix, [x, self.const(f"{suffix}_perm", perm)], target)
        out.attr["Tperm"].type = self.int32
        return out.name

    def channels(self, suffix: str, x: str, rank: int, lo: int, hi: int) -> str:
        """``x[:, lo:hi]`` of a channels-first tensor of ``rank``."""
        begin, end = [0] * rank, [0] * rank
        begin[1], end[1] = lo, hi
        inputs = [x, self.const(f"{suffix}_begin", begin), self.const(f"{suffix}_end", end)]
        out = self.node(
            "StridedSlice", suffix, [*inputs, self.const(f"{suffix}_strides", [1] * rank)]
        )
        out.attr["Index"].type = self.int32
        mask = ((1 << rank) - 1) & ~2
        out.attr["begin_mask"].i, out.attr["end_mask"].i = mask, mask
        for key in ("ellipsis_mask", "new_axis_mask", "shrink_axis_mask"):
            out.attr[key].i = 0
        return out.name

    def concat(self, suffix: str, xs: list[str], axis: int) -> str:
        out = self.node("ConcatV2", suffix, [*xs, self.const(f"{suffix}_axis", axis)])
        out.attr["N"].i = len(xs)
        out.attr["Tidx"].type = self.int32
        return out.name


def channel_shuffle_round_trips(graph_def: Any, shape_of: Callable[[str], list | None]) -> int:
    """Rewrite, in place, every Transpose of a frozen GraphDef that swaps the last two axes of
    a rank >= 4 tensor ``(N, S..., g, k)`` (constant perm; ``shape_of(op name)`` knowing every
    size but the batch; ``g <= SHUFFLE_MAX_GROUPS``, ``k > g``) into channels-first work:

        Reshape (N, S..., C) -> Transpose to (N, C, S...) -> Reshape (N, g, k, S...)
        -> Transpose to (N, k, g, S...) -> Reshape (N, C, S...) -> Transpose to (N, S..., C)
        -> Reshape (N, S..., k, g)

    with ``C = g·k`` and ``-1`` for the batch. When the shuffled tensor is a ConcatV2 of ``g``
    channels-last pieces of ``k`` channels (ShuffleNet's ``cat`` before its shuffle), the first
    four steps become one interleaving concat instead: each piece to channels-first, reshaped
    to ``(N, k, 1, P)``, concatenated on axis 2 (rows of ``P = prod(S)`` contiguous values); a
    piece that is a channel slice of an earlier rewritten shuffle's result is sliced from that
    result's channels-first form (no transpose), and a shuffle result read only through channel
    slices is sliced channels-first and each slice transposed back. The last node keeps the
    Transpose's name, so its consumers are unchanged; returns how many were rewritten."""
    nodes = {n.name: n for n in graph_def.node}
    firsts: dict[str, tuple[str, int, list[int]]] = {}  # channels-last result -> channels-first
    done = 0
    for node in list(graph_def.node):
        if node.op != "Transpose" or len(node.input) != 2:
            continue
        perm, source = _const(nodes, node.input[1]), _tensor(node.input[0])
        shape = shape_of(source) if source is not None else None
        if perm is None or shape is None or len(shape) < 4 or None in shape[1:]:
            continue
        r = len(shape)
        if list(perm.ravel()) != [*range(r - 2), r - 1, r - 2]:
            continue
        spatial, (g, k) = [int(d) for d in shape[1:-2]], (int(shape[-2]), int(shape[-1]))
        if not 1 < g <= SHUFFLE_MAX_GROUPS or k <= g:
            continue
        c, n_sp, size = g * k, len(spatial), int(np.prod(spatial))
        b = _Builder(graph_def, f"{node.name}/round_trip", node.attr["T"].type)
        to_first = [0, n_sp + 1, *range(1, n_sp + 1)]
        flat = _channels_last_input(nodes, source, [*spatial, c], shape_of)
        pieces = _concat_pieces(nodes, flat, [*spatial, k], g, shape_of) if flat else None
        if pieces is not None:
            rows = []
            for i, piece in enumerate(pieces):
                twin = firsts.get(piece)
                if twin is not None and twin[1:] == (k, spatial):
                    x = twin[0]  # already the channels-first slice
                else:
                    x = b.transpose(f"piece_{i}", piece, to_first)
                rows.append(b.reshape(f"piece_{i}_rows", x, [-1, k, 1, size]))
            x = b.reshape("channels", b.concat("interleave", rows, 2), [-1, c, *spatial])
        else:
            x = flat or b.reshape("channels_last", source, [-1, *spatial, c])
            x = b.reshape(
                "groups", b.transpose("to_channels_first", x, to_first), [-1, g, k, *spatial]
            )
            x = b.transpose("swap", x, [0, 2, 1, *range(3, 3 + n_sp)])
            x = b.reshape("channels", x, [-1, c, *spatial])
        first = x
        x = b.transpose("to_channels_last", first, [0, *range(2, 2 + n_sp), 1])
        b.reshape("split_pairs", x, [-1, *spatial, k, g], target=node)
        aliases = [x]
        # consumers that flatten (k, g) back to C read the channels-last transpose directly
        for user in graph_def.node:
            if user.op == "Reshape" and _tensor(user.input[0]) == node.name:
                target = _const(nodes, user.input[1])
                if target is not None and list(target.ravel()) == [-1, *spatial, c]:
                    user.op = "Identity"
                    user.input[0] = x
                    del user.input[1:]
                    for key in list(user.attr):
                        if key != "T":
                            del user.attr[key]
                    aliases.append(user.name)
        if not any(_tensor(i) == node.name for n in graph_def.node for i in n.input):
            aliases.append(node.name)  # unused now: not a reader of the result
        _slice_channels_first(graph_def, nodes, b, aliases, first, [*spatial], c, firsts)
        done += 1
    return done


def _concat_pieces(
    nodes: dict[str, Any], name: str, piece: list[int], g: int, shape_of: Callable
) -> list[str] | None:
    """The ``g`` inputs of ``name`` when it is a ConcatV2 of ``g`` tensors shaped ``(N, *piece)``
    on the last axis, else None."""
    node = nodes.get(name)
    if node is None or node.op != "ConcatV2" or len(node.input) != g + 1:
        return None
    axis = _const(nodes, node.input[-1])
    if axis is None or int(axis) not in (-1, len(piece)):
        return None
    inputs = [_tensor(x) for x in node.input[:-1]]
    if None in inputs:
        return None
    for x in inputs:
        shape = shape_of(x)
        if shape is None or list(shape[1:]) != piece:
            return None
    return inputs


def _slice_channels_first(
    graph_def: Any,
    nodes: dict[str, Any],
    b: _Builder,
    aliases: list[str],
    first: str,
    spatial: list[int],
    channels: int,
    firsts: dict[str, tuple[str, int, list[int]]],
) -> None:
    """Each channel slice of a shuffle's channels-last result (``aliases``) gets a
    channels-first twin (a slice of ``first``, recorded in ``firsts`` for the next shuffle's
    concat); when every reader of the result is such a slice, each slice itself becomes the
    twin transposed back to channels-last, and the full channels-last transpose goes unused."""
    readers = [
        n
        for n in graph_def.node
        if any(_tensor(i) in aliases for i in n.input) and n.name not in aliases
    ]
    ranges = {n.name: _channel_range(n, nodes, channels) for n in readers}
    rank = len(spatial) + 2
    twins = {}
    for k, (name, span) in enumerate(sorted((n, s) for n, s in ranges.items() if s)):
        twins[name] = b.channels(f"slice_{k}", first, rank, *span)
        firsts[name] = (twins[name], span[1] - span[0], spatial)
    if readers and all(ranges.values()):
        for k, user in enumerate(r for r in readers if r.name in twins):
            b.transpose(f"slice_{k}_to_last", twins[user.name], [0, *range(2, rank), 1], user)


def _folded(nodes: dict[str, Any], name: str) -> np.ndarray | None:
    """The value of a constant expression (Const through Identity / Reshape / Squeeze /
    ExpandDims, as a frozen Keras weight reaches its op), None if it is not one."""
    node = nodes.get(name.split(":")[0].lstrip("^"))
    if node is None or (":" in name and not name.endswith(":0")):
        return None
    if node.op == "Const":
        return _const(nodes, node.name)
    if node.op == "Identity":
        return _folded(nodes, node.input[0])
    value = _folded(nodes, node.input[0]) if node.input else None
    if value is None:
        return None
    if node.op == "Reshape":
        shape = _folded(nodes, node.input[1])
        return None if shape is None else value.reshape(shape)
    if node.op == "Squeeze":
        dims = tuple(node.attr["squeeze_dims"].list.i)
        return np.squeeze(value, dims or None)
    if node.op == "ExpandDims":
        axis = _folded(nodes, node.input[1])
        return None if axis is None else np.expand_dims(value, int(axis))
    return None


def _contracted_weights(
    node: Any, nodes: dict[str, Any], axis: int
) -> tuple[np.ndarray, int] | None:
    """(weights, axis of ``weights`` contracted with the input's last axis) when ``node`` is a
    linear map with constant weights contracting its first input's ``axis`` (counted from the
    end; -1: the last) and mapping each position on its own; None otherwise. (Attributes are
    only read where the op has them: reading a missing key of a NodeDef's attr map adds it.)"""
    if axis != -1 or node.op not in _LINEAR or node.attr["T"].type != 1:  # DT_FLOAT
        return None
    w = _folded(nodes, node.input[1])
    if node.op == "Conv2D":
        fmt = node.attr["data_format"].s if "data_format" in node.attr else b"NHWC"
        pad = node.attr["padding"].s if "padding" in node.attr else b""
        if w is None or w.ndim != 4 or w.shape[:2] != (1, 1) or fmt != b"NHWC":
            return None
        return (w, 2) if pad in (b"SAME", b"VALID") else None
    adj_a, adj_b = ("transpose_a", "transpose_b") if node.op == "MatMul" else ("adj_x", "adj_y")
    flag = lambda key: key in node.attr and node.attr[key].b  # noqa: E731
    if flag(adj_a) or w is None or w.ndim != 2:
        return None
    return w, 1 if flag(adj_b) else 0


def _projections(graph_def: Any, nodes: dict[str, Any]) -> list[tuple[Any, np.ndarray, int]]:
    """Every (linear node, weights, contracted axis) reading a Softmax over that axis."""
    readers: dict[str, list[Any]] = {}
    for node in graph_def.node:
        for name in node.input:
            if not name.startswith("^"):
                readers.setdefault(name.split(":")[0], []).append(node)
    found, seen = [], set()
    for softmax in [n for n in graph_def.node if n.op == "Softmax"]:
        stack = [(softmax.name, -1)]  # (tensor, position of the softmax axis from the end)
        while stack:
            name, axis = stack.pop()
            for node in readers.get(name, []):
                if node.input[0].split(":")[0] != name or node.name in seen:
                    continue
                if node.op == "Identity":
                    stack.append((node.name, axis))
                elif node.op == "Transpose":
                    perm = _folded(nodes, node.input[1])
                    if perm is not None and perm.ndim == 1 and -len(perm) <= axis:
                        rank = len(perm)
                        stack.append((node.name, list(perm).index(axis % rank) - rank))
                else:
                    weights = _contracted_weights(node, nodes, axis)
                    if weights is not None:
                        seen.add(node.name)
                        found.append((node, *weights))
    return found


def centre_softmax_projections(graph_def: Any) -> int:
    """Rewrite, in place, every constant linear map (1x1 Conv2D, MatMul) contracting a softmax's
    axis: per output channel, the weights minus their mean ``c`` and ``c`` added to the bias
    (to the following BiasAdd's constant, or in a new BiasAdd that takes the node's name, so
    its consumers are unchanged). Exact in float since every softmax row sums to 1; returns
    how many nodes it rewrote (those whose weights are already centred are left alone)."""
    import tensorflow as tf

    nodes = {n.name: n for n in graph_def.node}
    readers: dict[str, list[Any]] = {}
    for node in graph_def.node:
        for name in node.input:
            readers.setdefault(name.lstrip("^").split(":")[0], []).append(node)

    def const(name: str, value: np.ndarray) -> str:
        node = graph_def.node.add()
        node.name, node.op = name, "Const"
        node.attr["dtype"].type = tf.float32.as_datatype_enum
        node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(value.astype(np.float32)))
        return name

    done = 0
    for node, weights, axis in _projections(graph_def, nodes):
        w = weights.astype(np.float64)
        centre = w.mean(axis=axis, keepdims=True)
        if not np.abs(centre).max(initial=0.0) > 1e-6 * max(np.abs(w).max(initial=0.0), 1e-30):
            continue
        shift = centre.reshape(-1)  # per output channel (the weights' last axis)
        name = node.name
        node.input[1] = const(f"{name}_centred_weights", w - centre)
        after = readers.get(name, [])
        bias_add = after[0] if len(after) == 1 and after[0].op == "BiasAdd" else None
        bias = None
        if bias_add is not None and bias_add.input[0] == name:
            bias = _folded(nodes, bias_add.input[1])
        if bias is not None and bias.shape == shift.shape:
            bias_add.input[1] = const(f"{name}_centred_bias", bias + shift)
        else:  # a new BiasAdd under the node's name; the node itself is renamed
            node.name = f"{name}_centred"
            added = graph_def.node.add()
            added.name, added.op = name, "BiasAdd"
            added.input.extend([node.name, const(f"{name}_centre", shift)])
            added.attr["T"].type = node.attr["T"].type
            added.attr["data_format"].s = b"NHWC"
        done += 1
    return done
