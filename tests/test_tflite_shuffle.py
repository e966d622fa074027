"""The channel shuffle in TFLite files: channels-first work (PyTorch's form: to channels-first,
swap the channel blocks, back; after a cat, one interleaving concat) instead of one transpose
of tiny (g, k) matrices, which XNNPACK runs slower (transpiler/tflite_graph.py:
channel_shuffle_round_trips); exact, dynamic batch kept; checked against PyTorch at two batch
sizes (float32 and int8)."""

from __future__ import annotations

import collections

import numpy as np
import pytest
import torch
import torch.nn as nn

from transpiler import transpile
from transpiler.tflite import _interpreter, frozen_graph_def, run_tflite
from transpiler.tflite_graph import channel_shuffle_round_trips


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    n, c, h, w = x.shape
    x = x.view(n, groups, c // groups, h, w).transpose(1, 2).contiguous()
    return x.view(n, c, h, w)


class ShuffleBlocks(nn.Module):
    """Two ShuffleNet V2 style blocks (split, branch, cat, shuffle by 2) and a shuffle by 4."""

    def __init__(self, c: int = 24):
        super().__init__()
        self.stem = nn.Conv2d(3, c, 3, padding=1)
        self.branches = nn.ModuleList(
            nn.Sequential(nn.Conv2d(c // 2, c // 2, 1), nn.ReLU()) for _ in range(2)
        )
        self.head = nn.Conv2d(c, c, 1)

    def forward(self, x):
        x = self.stem(x)
        for branch in self.branches:
            a, b = x.chunk(2, dim=1)
            x = channel_shuffle(torch.cat([a, branch(b)], 1), 2)
        return channel_shuffle(self.head(x), 4)


def _ops(blob: bytes, kind: str) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    """(first input's shape, output shape) of every ``kind`` op, at batch 1."""
    interp = _interpreter(blob)
    interp.allocate_tensors()
    shapes = {t["index"]: tuple(int(d) for d in t["shape"]) for t in interp.get_tensor_details()}
    return [
        (shapes[op["inputs"][0]], shapes[op["outputs"][0]])
        for op in interp._get_ops_details()  # noqa: SLF001
        if op["op_name"] == kind
    ]


INTERLEAVE = ((1, 12, 1, 30), (1, 12, 2, 30))  # a shuffle by 2 of 24 channels over 6 x 5


@pytest.mark.parametrize("backend", ["keras", "tf"])
def test_channel_shuffle_is_channels_first_work(backend, tmp_path):
    torch.manual_seed(0)
    model = ShuffleBlocks().eval()
    result = transpile(
        model, torch.randn(1, 3, 6, 5), backend=backend, io_layout="nhwc", out_dir=tmp_path / "o"
    )
    blob = result.to_tflite(tmp_path / "m.tflite").read_bytes()
    transposes = _ops(blob, "TRANSPOSE")
    # each cat + shuffle by 2: one interleaving concat of (N, 12, 1, HW) rows
    assert _ops(blob, "CONCATENATION").count(INTERLEAVE) == 2
    # pieces to channels-first: both of the first block, only the branch's of the second (its
    # identity half is sliced channels-first); the second's branch input transposed back
    assert transposes.count(((1, 6, 5, 12), (1, 12, 6, 5))) == 3, transposes
    assert transposes.count(((1, 12, 6, 5), (1, 6, 5, 12))) == 1, transposes
    # the shuffle by 4 (of a conv's output, no concat): to channels-first, the (4, 6) block
    # swap (the converter may merge these two into one 5-d transpose), back
    assert all(out[-1] in (5, 12, 24) for _, out in transposes), transposes  # no (.., k, g)
    for batch in (1, 3):
        x = torch.randn(batch, 3, 6, 5)
        with torch.no_grad():
            ref = model(x).permute(0, 2, 3, 1).numpy()
        (y,) = run_tflite(blob, [x.permute(0, 2, 3, 1).numpy()])
        np.testing.assert_allclose(y, ref, atol=1e-5 * max(1.0, np.abs(ref).max()))


def test_int8_export_keeps_the_rewrite(tmp_path, monkeypatch):
    """The int8 file has the rewrite too, and computes exactly what it computes without it
    (same ranges, same scales: a transpose moves int8 values unchanged)."""
    import transpiler.tflite_graph as tflite_graph

    torch.manual_seed(1)
    model = ShuffleBlocks().eval()
    result = transpile(model, torch.randn(1, 3, 6, 5), io_layout="nhwc", out_dir=tmp_path / "o")
    data = np.random.default_rng(0).standard_normal((8, 6, 5, 3)).astype(np.float32)
    x = np.random.default_rng(1).standard_normal((2, 6, 5, 3)).astype(np.float32)
    outs = []
    for rewrite in (True, False):
        if not rewrite:
            monkeypatch.setattr(tflite_graph, "channel_shuffle_round_trips", lambda *a: 0)
        path = tmp_path / f"q{rewrite}.tflite"
        result.to_tflite(path, variant="int8", calibration=data, sqnr_goal_db=0)
        blob = path.read_bytes()
        assert _ops(blob, "CONCATENATION").count(INTERLEAVE) == (2 if rewrite else 0)
        outs.append(run_tflite(blob, [x])[0])
    np.testing.assert_array_equal(outs[0], outs[1])
    with torch.no_grad():
        ref = model(torch.from_numpy(x).permute(0, 3, 1, 2)).permute(0, 2, 3, 1).numpy()
    sqnr = 10 * np.log10(np.sum(ref**2) / np.sum((outs[0] - ref) ** 2))
    assert sqnr > 20, sqnr


@pytest.mark.parametrize(
    ("shape", "perm", "rewritten"),
    [
        ((4, 5, 2, 6), (0, 1, 2, 4, 3), 1),  # (N, H, W, g, k) -> (N, H, W, k, g): shuffle by 2
        ((10, 3, 6), (0, 1, 3, 2), 1),  # (N, L, g, k): one spatial axis
        ((2, 6), (0, 2, 1), 0),  # rank 3: no spatial axis to move
        ((4, 5, 12, 3), (0, 1, 2, 4, 3), 0),  # k <= g: not a shuffle
        ((4, 5, 16, 20), (0, 1, 2, 4, 3), 0),  # g > SHUFFLE_MAX_GROUPS: a transpose XNNPACK tiles
        ((4, 5, 2, 6), (0, 1, 3, 2, 4), 0),  # another permutation
    ],
)
def test_round_trip_rewrite_matches_only_small_last_axis_swaps(shape, perm, rewritten):
    import tensorflow as tf

    fn = tf.function(lambda x: tf.transpose(tf.reshape(x, (-1, *shape)), perm) * 2.0)
    spec = tf.TensorSpec((None, *shape[:-2], shape[-2] * shape[-1]), tf.float32)
    concrete = fn.get_concrete_function(spec)
    graph_def = frozen_graph_def(concrete)

    def shape_of(name):
        return concrete.graph.get_operation_by_name(name).outputs[0].shape.as_list()

    assert channel_shuffle_round_trips(graph_def, shape_of) == rewritten
    ops = collections.Counter(n.op for n in graph_def.node)
    assert ops["Transpose"] == 1 + 2 * rewritten
    from tensorflow.python.eager import wrap_function

    inputs = [t.name for t in concrete.inputs]
    outputs = [t.name for t in concrete.outputs]
    new = wrap_function.function_from_graph_def(graph_def, inputs, outputs)
    x = tf.constant(np.random.default_rng(0).standard_normal((2, *spec.shape[1:])), tf.float32)
    np.testing.assert_array_equal(np.asarray(new(x)[0]), fn(x).numpy())
