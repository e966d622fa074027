"""Full-integer TFLite (int8, int16x8): calibration, the per-layer quantization report traced to
PyTorch modules, keep_float, static batch, integer I/O, target checks and the CLI. PyTorch is
the oracle: end-to-end errors are measured against the PyTorch model on held-out inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from helpers import randomize_bn

from transpiler import TranspileError, transpile
from transpiler.tflite import run_tflite
from transpiler.tflite_targets import check_target


def sqnr_db(ref: np.ndarray, got: np.ndarray) -> float:
    return float(10 * np.log10((ref**2).sum() / max(((got - ref) ** 2).sum(), 1e-30)))


class Amp(nn.Module):
    """An unbounded activation whose channel 0 is scaled by 1e4: under one per-tensor int8 scale
    the other channels are crushed to zero."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(8, 8, 3, padding=1)
        scale = torch.ones(1, 8, 1, 1)
        scale[0, 0] = 1e4
        self.register_buffer("scale", scale)

    def forward(self, x):
        return F.leaky_relu(self.conv(x), 0.1) * self.scale


class BadlyQuantizable(nn.Module):
    """Well conditioned end to end (conv3 undoes the 1e4), but ``amp``'s output is not."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.amp = Amp()
        self.conv3 = nn.Conv2d(8, 4, 3, padding=1)
        with torch.no_grad():
            self.conv3.weight[:, 0] *= 1e-4

    def forward(self, x):
        y = torch.relu(self.bn1(self.conv1(x)))
        return self.conv3(self.amp(self.conv2(y)))


def _batches(shape, n, seed):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(*shape, generator=gen) for _ in range(n)]


def _torch_sqnr(model, blob, inputs, io_layout="nchw"):
    x = torch.cat(inputs)
    with torch.no_grad():
        ref = model(x).numpy()
    arr = x.numpy() if io_layout == "nchw" else x.permute(0, 2, 3, 1).numpy()
    (y,) = run_tflite(blob, [arr])
    if io_layout == "nhwc" and y.ndim == 4:
        y = y.transpose(0, 3, 1, 2)
    return sqnr_db(ref, y)


def _full_integer(blob) -> list:
    return [v for v in check_target(blob, "tflm") if v.rule == "full integer"]


@pytest.fixture(scope="module")
def bad_result(tmp_path_factory):
    torch.manual_seed(0)
    model = randomize_bn(BadlyQuantizable()).eval()
    out = tmp_path_factory.mktemp("bad")
    return model, transpile(model, torch.randn(1, 3, 16, 16), out_dir=out / "out"), out


def test_int8_report_ranks_the_bad_module_first_and_its_suggestion_fixes_it(bad_result):
    model, result, tmp = bad_result
    calibration = _batches((4, 3, 16, 16), 8, seed=1)
    held_out = _batches((4, 3, 16, 16), 4, seed=2)
    path = result.to_tflite(tmp / "int8.tflite", "int8", calibration=calibration)
    blob = path.read_bytes()
    assert not _full_integer(blob)
    export = result.report.tflite[-1]
    q = export.quantization
    assert export.variant == "int8" and q.variant == "int8"
    assert q.layers[0].module == "amp", [(e.module, e.lost_db) for e in q.layers]
    assert "channel ranges span" in q.layers[0].range_note
    assert q.culprits and q.culprits[0].module == "amp"
    assert {e.module for e in q.layers} >= {"conv1", "bn1", "conv2", "amp.conv", "amp", "conv3"}
    bad_db = _torch_sqnr(model, blob, held_out)
    assert bad_db < 15 and q.sqnr_db < 15
    # the suggested set, measured on held-out data against PyTorch, meets the goal
    assert q.suggested_keep_float and "amp" in q.suggested_keep_float
    assert q.suggested_sqnr_db >= q.goal_db == 30
    fixed = result.to_tflite(
        tmp / "fixed.tflite", "int8", calibration=calibration, keep_float=q.suggested_keep_float
    )
    assert _torch_sqnr(model, fixed.read_bytes(), held_out) >= 30
    assert result.report.tflite[-1].quantization.keep_float == q.suggested_keep_float
    md = (result.out_dir / "report.md").read_text()
    assert "### Quantization (int8)" in md and "| `amp` |" in md


def test_int8_integer_io_static_batch_and_int16x8(bad_result, tmp_path):
    model, result, _ = bad_result
    calibration = _batches((4, 3, 16, 16), 4, seed=1)
    held_out = _batches((2, 3, 16, 16), 2, seed=2)
    for io_dtype, np_dtype in (("int8", np.int8), ("uint8", np.uint8)):
        path = result.to_tflite(
            tmp_path / f"{io_dtype}.tflite",
            "int8",
            calibration=calibration,
            io_dtype=io_dtype,
            batch_size=1,
            keep_float=["amp", "conv3"],
        )
        blob = path.read_bytes()
        from transpiler.quantize import _interp

        interp = _interp(blob, preserve=False)
        (inp,) = interp.get_input_details()
        assert inp["dtype"] == np_dtype and list(inp["shape_signature"]) == [1, 3, 16, 16]
        assert interp.get_output_details()[0]["dtype"] == np_dtype
        assert _torch_sqnr(model, blob, held_out) >= 25
        assert result.report.tflite[-1].batch_size == 1
    int8 = result.to_tflite(tmp_path / "i8.tflite", "int8", calibration=calibration)
    int16 = result.to_tflite(tmp_path / "i16.tflite", "int16x8", calibration=calibration)
    # 16-bit activations lose less of the channels the 1e4 channel crushes in int8
    int8_db = _torch_sqnr(model, int8.read_bytes(), held_out)
    assert _torch_sqnr(model, int16.read_bytes(), held_out) > int8_db + 3
    assert result.report.tflite[-1].quantization.variant == "int16x8"


def test_int8_refusals(bad_result, tmp_path):
    _, result, _ = bad_result
    with pytest.raises(TranspileError, match="Random data calibrates badly"):
        result.to_tflite(tmp_path / "a.tflite", "int8")
    cal = _batches((2, 3, 16, 16), 2, seed=1)
    with pytest.raises(TranspileError, match="produced no layer"):
        result.to_tflite(tmp_path / "a.tflite", "int8", calibration=cal, keep_float=["nope"])
    with pytest.raises(TranspileError, match="shape"):
        result.to_tflite(tmp_path / "a.tflite", "int8", calibration=[np.zeros((2, 3, 8, 8))])
    with pytest.raises(TranspileError, match="full-integer variants"):
        result.to_tflite(tmp_path / "a.tflite", "float16", calibration=cal)
    with pytest.raises(TranspileError, match="io_dtype"):
        result.to_tflite(tmp_path / "a.tflite", "int8", calibration=cal, io_dtype="int4")
    with pytest.raises(TranspileError, match="batch_size"):
        result.to_tflite(tmp_path / "a.tflite", "int8", calibration=cal, batch_size=0)
    with pytest.raises(TranspileError, match="unknown target"):
        result.to_tflite(tmp_path / "a.tflite", target="npu")
    assert not (tmp_path / "a.tflite").exists()


class BoxDecode(nn.Module):
    """YOLO's box decode: distances from a conv, anchors added, boxes scaled by the stride. In
    TFLite's calibrator the in-place ADD / MUL overwrite the slice and the concat before their
    ranges are read (recorded 0..anchors+distance, 0..stride x boxes): 30 dB end to end."""

    def __init__(self, size=8, stride=8.0):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        ys, xs = torch.meshgrid(torch.arange(size) + 0.5, torch.arange(size) + 0.5, indexing="ij")
        self.register_buffer("anchors", torch.stack([xs, ys]).reshape(1, 2, -1))
        self.stride = stride

    def forward(self, x):
        lt, rb = self.conv(x).flatten(2).chunk(2, 1)
        x1y1, x2y2 = self.anchors - lt, self.anchors + rb
        return torch.cat([(x1y1 + x2y2) / 2, x2y2 - x1y1], 1) * self.stride


def test_int8_calibration_ranges_survive_in_place_kernels(tmp_path):
    torch.manual_seed(0)
    model = BoxDecode().eval()
    result = transpile(model, torch.randn(1, 3, 8, 8), out_dir=tmp_path / "out")
    path = result.to_tflite(
        tmp_path / "int8.tflite", "int8", calibration=_batches((4, 3, 8, 8), 4, seed=1)
    )
    blob = path.read_bytes()
    assert not _full_integer(blob)
    assert _torch_sqnr(model, blob, _batches((8, 3, 8, 8), 1, seed=2)) > 35


class Pooled(nn.Module):
    """Global average pooling (a keep-dims mean) then flatten."""

    def forward(self, x):
        return torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)


def test_int8_global_average_pool_rounds(tmp_path):
    """The keep-dims int8 MEAN kernel truncates (rms error 0.49 output steps, biased by -0.28
    step); the export's MEAN without kept dims + RESHAPE rounds. Measured against the exact
    mean of the quantized input (clipped to the output's range), in output steps."""
    gen = torch.Generator().manual_seed(0)
    draw = lambda n: torch.rand(n, 64, 7, 7, generator=gen) * 6  # noqa: E731
    result = transpile(Pooled(), draw(1), out_dir=tmp_path / "out")
    path = result.to_tflite(
        tmp_path / "int8.tflite", "int8", calibration=[draw(4) for _ in range(4)]
    )
    from transpiler.quantize import _interp, dequantize, quantize_input, run_all

    interp = _interp(path.read_bytes(), preserve=False)
    x = draw(32).numpy()
    run_all(interp, [x])
    (out,) = interp.get_output_details()
    ops = interp._get_ops_details()  # noqa: SLF001
    # float I/O: the model's own QUANTIZE of the input is what the MEAN reads
    q_in = next(o for o in ops if o["op_name"] == "QUANTIZE")["outputs"][0]
    q_detail = next(d for d in interp.get_tensor_details() if d["index"] == q_in)
    exact = dequantize(quantize_input(x, q_detail), q_detail).mean((2, 3))
    got = interp.get_tensor(out["index"])
    int8_out = ops[-1]["inputs"][0]  # the DEQUANTIZE's input
    step, zero = next(d for d in interp.get_tensor_details() if d["index"] == int8_out)[
        "quantization"
    ]
    exact = np.clip(exact, (-128 - zero) * step, (127 - zero) * step)  # the calibrated range
    err = (got - exact) / step
    assert np.sqrt((err**2).mean()) < 0.45 and abs(err.mean()) < 0.15, (err.mean(), err.std())
    assert "MEAN" in [o["op_name"] for o in ops]


# ----------------------------------------------------------------------------------------------
# Target checks: each catches a real violation, named with its PyTorch module
# ----------------------------------------------------------------------------------------------


class Shuffle(nn.Module):
    """ShuffleNet's channel shuffle: a 5-D reshape."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 1)

    def forward(self, x):
        y = self.conv(x)
        n, c, h, w = y.shape
        return y.view(n, 2, c // 2, h, w).transpose(1, 2).reshape(n, c, h, w)


def test_target_checks_catch_dynamic_batch_5d_and_int64(tmp_path):
    torch.manual_seed(0)
    shuffle = transpile(Shuffle().eval(), torch.randn(1, 3, 4, 4), out_dir=tmp_path / "s")
    # a dynamic batch (and float ops) for the microcontroller
    with pytest.raises(TranspileError, match="tflm: static shape") as err:
        shuffle.to_tflite(tmp_path / "dyn.tflite", target="tflm")
    assert "full integer" in str(err.value)
    assert not (tmp_path / "dyn.tflite").exists()
    # the 5-D reshape for the GPU delegate and the Edge TPU, traced to the PyTorch module
    with pytest.raises(TranspileError, match=r"gpu: rank: .*5-D") as err:
        shuffle.to_tflite(tmp_path / "gpu.tflite", batch_size=1, target="gpu")
    with pytest.raises(TranspileError, match=r"edgetpu: rank"):
        shuffle.to_tflite(
            tmp_path / "tpu.tflite",
            "int8",
            calibration=_batches((1, 3, 4, 4), 4, 0),
            batch_size=1,
            target="edgetpu",
        )
    # int64: no model we transpile produces one, so a flatbuffer straight from TF (argmax)
    import tensorflow as tf

    from transpiler.quantize import float_reference
    from transpiler.tflite import freeze

    fn = tf.function(lambda x: tf.argmax(x, -1)).get_concrete_function(
        tf.TensorSpec([1, 6], tf.float32)
    )
    found = check_target(float_reference(freeze(fn)), "gpu")
    int64 = [v for v in found if v.rule == "int64"]
    assert int64 and int64[0].op == "ARG_MAX", found
    # and a model within the constraints passes: written, recorded
    conv = transpile(
        nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU()).eval(),
        torch.randn(1, 3, 8, 8),
        out_dir=tmp_path / "c",
        io_layout="nhwc",
    )
    for target in ("tflm", "edgetpu"):
        conv.to_tflite(
            tmp_path / f"{target}.tflite",
            "int8",
            calibration=_batches((1, 8, 8, 3), 4, 0),
            batch_size=1,
            target=target,
        )
        assert conv.report.tflite[-1].target == target
    conv.to_tflite(tmp_path / "gpu_ok.tflite", batch_size=1, target="gpu")


def test_cli_int8_with_npy_calibration(tmp_path, monkeypatch):
    from transpiler.cli import main

    np.save(tmp_path / "cal.npy", np.random.default_rng(0).normal(size=(8, 3, 16, 16)))
    monkeypatch.setattr(
        "transpiler.cli._load_factory",
        lambda spec: randomize_bn(nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))).eval(),
    )
    out = tmp_path / "out"
    args = ["m:f", "--input-shape", "1,3,16,16", "-o", str(out), "--tflite", "int8"]
    assert main([*args, "--calibration", str(tmp_path / "cal.npy"), "--batch-size", "1",
                 "--target", "tflm"]) == 0  # fmt: skip
    assert (out / "model_int8.tflite").is_file()
    assert "### Quantization (int8)" in (out / "report.md").read_text()
    assert main(["m:f", "-o", str(tmp_path / "x"), "--target", "gpu"]) == 2


# ----------------------------------------------------------------------------------------------
# Real models (slow): full integer at 224, the target checks pass at batch 1
# ----------------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2"])
def test_torchvision_int8_targets_at_224(name, tmp_path):
    torch.manual_seed(0)
    model = randomize_bn(getattr(torchvision.models, name)(weights=None)).eval()
    result = transpile(
        model, torch.randn(1, 3, 224, 224), io_layout="nhwc", out_dir=tmp_path / "out"
    )
    gen = torch.Generator().manual_seed(1)
    calibration = [torch.randn(1, 224, 224, 3, generator=gen) for _ in range(8)]
    for target in ("tflm", "edgetpu"):
        path = result.to_tflite(
            tmp_path / f"{target}.tflite",
            "int8",
            calibration=calibration,
            batch_size=1,
            target=target,
        )
        assert not _full_integer(path.read_bytes())
    result.to_tflite(tmp_path / "gpu.tflite", batch_size=1, target="gpu")
    q = result.report.tflite[1].quantization
    assert len({e.module for e in q.layers}) > 20
    held_out = [torch.randn(1, 3, 224, 224, generator=gen) for _ in range(2)]
    assert _torch_sqnr(model, (tmp_path / "tflm.tflite").read_bytes(), held_out, "nhwc") > 10


# ----------------------------------------------------------------------------------------------
# Linear maps reading a softmax: centred weights (YOLO's DFL)
# ----------------------------------------------------------------------------------------------


class DFLHead(nn.Module):
    """YOLO's box distances: 4 x 16 logits per anchor, softmax, the expectation sum_k k * p_k (a
    1x1 conv with weights 0..15, ultralytics' DFL), scaled like a stride-8 box."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 64, 1)
        self.c1 = 16
        self.proj = nn.Conv2d(16, 1, 1, bias=False)
        with torch.no_grad():
            self.conv.weight.mul_(0.3)
            self.proj.weight.copy_(torch.arange(16.0).view(1, 16, 1, 1))

    def forward(self, x):
        y = self.conv(x).flatten(2)
        b, _, a = y.shape
        p = y.view(b, 4, self.c1, a).transpose(2, 1).softmax(1)
        return self.proj(p).view(b, 4, a) * 8.0


class SoftmaxLinear(nn.Module):
    """A softmax read by a Linear over its axis (rewritten), and a softmax over one axis read
    by a 1x1 conv contracting another (left alone: not exact there)."""

    def __init__(self):
        super().__init__()
        self.pre = nn.Conv2d(16, 16, 1)  # a channels-last tensor: softmax(1) is a Softmax op
        self.fc = nn.Linear(16, 4)
        self.proj = nn.Conv2d(5, 4, 1)
        with torch.no_grad():
            self.fc.weight.add_(1.0)
            self.proj.weight.add_(1.0)

    def forward(self, x):
        x = self.pre(x)
        across = self.proj(x.softmax(1).transpose(1, 2)).mean((2, 3))  # contracts H
        return self.fc(x.mean((2, 3)).softmax(1)) + across


def test_centre_softmax_projections_is_exact_in_float(tmp_path):
    from transpiler.quantize import float_reference
    from transpiler.tflite import freeze, frozen_graph_def
    from transpiler.tflite_graph import centre_softmax_projections

    model = SoftmaxLinear().eval()
    x = torch.randn(8, 16, 5, 5, generator=torch.Generator().manual_seed(0))
    result = transpile(model, x[:1], out_dir=tmp_path / "out")
    graph_def = frozen_graph_def(result.concrete_function())
    assert [n.op for n in graph_def.node].count("Softmax") == 2
    assert centre_softmax_projections(graph_def) == 1
    (y,) = run_tflite(float_reference(freeze(result.concrete_function())), [x.numpy()])
    with torch.no_grad():
        ref = model(x).numpy()
    assert np.abs(y - ref).max() <= 1e-5 * max(1.0, np.abs(ref).max())


def test_int8_softmax_projection_centring_cancels_the_softmax_rounding(tmp_path, monkeypatch):
    """TFLite's int8 softmax rows (step 1/256) do not sum to 1; with near-uniform logits that
    common-mode error times the mean weight 7.5 dominated the DFL distances. Centred weights
    cancel it: the same export without the rewrite, measured against PyTorch, is clearly worse."""
    import transpiler.tflite_graph as tflite_graph

    torch.manual_seed(0)
    model = DFLHead().eval()
    result = transpile(model, torch.randn(1, 3, 8, 8), out_dir=tmp_path / "out")
    cal, held = _batches((4, 3, 8, 8), 4, seed=1), _batches((16, 3, 8, 8), 1, seed=2)
    path = result.to_tflite(tmp_path / "centred.tflite", "int8", calibration=cal)
    centred = path.read_bytes()
    assert not _full_integer(centred)
    monkeypatch.setattr(tflite_graph, "centre_softmax_projections", lambda graph_def: 0)
    plain = result.to_tflite(tmp_path / "plain.tflite", "int8", calibration=cal).read_bytes()
    assert _torch_sqnr(model, centred, held) > _torch_sqnr(model, plain, held) + 2.0


# ----------------------------------------------------------------------------------------------
# Output concats of parts with very different ranges (a detector's boxes and scores)
# ----------------------------------------------------------------------------------------------


class DetectHead(nn.Module):
    """A detector's output, YOLO's ``cat([boxes, sigmoid(class logits)], 1)``: boxes in pixels
    (0..512) next to class scores (0..1). On the concat's one int8 scale (step ~2) every score
    rounds to 0 or one step."""

    def __init__(self):
        super().__init__()
        self.box = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x):
        boxes = torch.sigmoid(self.box(x)).flatten(2) * 512.0
        scores = torch.sigmoid(x).flatten(2)
        return torch.cat([boxes, scores], 1)


def test_int8_output_concat_keeps_each_parts_precision(tmp_path, monkeypatch):
    import transpiler.tflite_outputs as tflite_outputs
    from transpiler.quantize import _interp

    torch.manual_seed(0)
    model = DetectHead().eval()
    result = transpile(model, torch.randn(1, 3, 8, 8), out_dir=tmp_path / "out")
    # bounded inputs: the held-out ones stay within the calibrated input range
    gen = torch.Generator().manual_seed(1)
    cal = [torch.rand(4, 3, 8, 8, generator=gen) * 8 - 4 for _ in range(4)]
    held = torch.rand(16, 3, 8, 8, generator=gen) * 8 - 4
    with torch.no_grad():
        ref = model(held).numpy()

    def parts(blob):
        (y,) = run_tflite(blob, [held.numpy()])
        return sqnr_db(ref[:, :4], y[:, :4]), y[:, 4:] - ref[:, 4:]

    blob = result.to_tflite(tmp_path / "int8.tflite", "int8", calibration=cal).read_bytes()
    boxes_db, score_err = parts(blob)
    # the scores keep their own int8 step (1/256): within 2 steps of PyTorch; boxes unchanged
    assert np.abs(score_err).max() < 2 / 256 and boxes_db > 35, (np.abs(score_err).max(), boxes_db)
    notes = result.report.tflite[-1].quantization.notes
    assert any("layer cat" in n and "concatenated in float32" in n for n in notes), notes
    # every compute op integer: only the output assembly (DEQUANTIZE, data movement) is float
    interp = _interp(blob, preserve=False)
    dtypes = {d["index"]: d["dtype"] for d in interp.get_tensor_details()}
    in_float = {
        o["op_name"] for o in interp._get_ops_details() if dtypes[o["outputs"][0]] == np.float32
    }
    assert in_float == {"DEQUANTIZE", "RESHAPE", "CONCATENATION", "TRANSPOSE"}, in_float
    assert not _full_integer(blob)  # the float output assembly passes the tflm check
    for target in ("tflm", "edgetpu"):
        result.to_tflite(
            tmp_path / "t.tflite", "int8", calibration=cal, batch_size=1, target=target
        )
    # int16x8 with float I/O too: the scores keep the int16 sigmoid's step
    i16 = result.to_tflite(tmp_path / "i16.tflite", "int16x8", calibration=cal).read_bytes()
    assert np.abs(parts(i16)[1]).max() < 0.5 / 256

    # the same export without the rewrite: the scores are crushed onto the boxes' step
    monkeypatch.setattr(tflite_outputs, "float_output_concats", lambda blob: (blob, []))
    plain = result.to_tflite(tmp_path / "plain.tflite", "int8", calibration=cal).read_bytes()
    _, plain_err = parts(plain)
    assert sqnr_db(ref[:, 4:], ref[:, 4:] + plain_err) < 10
    assert np.abs(plain_err).max() > 30 * np.abs(score_err).max()
    monkeypatch.undo()

    # integer outputs: one tensor, one scale; the report says so, and what to do
    result.to_tflite(tmp_path / "i8.tflite", "int8", calibration=cal, io_dtype="int8")
    (note,) = [n for n in result.report.tflite[-1].quantization.notes if "concatenation" in n]
    assert "layer cat" in note and "the smaller part is quantized with a step of" in note
    assert "io_dtype='float32'" in note and "differ by" in note


class SharedOutputConcat(nn.Module):
    """Boxes and scores concatenated (2-D: no transpose before the output), the concat also read
    by a mean: the mean keeps reading the int8 concat, the output gets a float copy. The
    end-to-end SQNR is under 30 dB (the boxes' averaged range clips the largest), so the
    keep_float search runs and meets layers no module produced (torch.cat, torch.sigmoid):
    skipped, not an error."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(12, 4)

    def forward(self, x):
        y = torch.cat([torch.sigmoid(self.fc(x)) * 512.0, torch.sigmoid(x[:, :3])], 1)
        return y, y.mean(1)


def test_int8_output_concat_read_by_another_op_gets_a_float_copy(tmp_path):
    from transpiler.quantize import _interp

    torch.manual_seed(0)
    model = SharedOutputConcat().eval()
    result = transpile(model, torch.randn(1, 12), out_dir=tmp_path / "out")
    gen = torch.Generator().manual_seed(1)
    cal = [torch.rand(4, 12, generator=gen) * 8 - 4 for _ in range(4)]
    held = torch.rand(64, 12, generator=gen) * 8 - 4
    blob = result.to_tflite(tmp_path / "int8.tflite", "int8", calibration=cal).read_bytes()
    with torch.no_grad():
        refs = [r.numpy() for r in model(held)]
    ys = run_tflite(blob, [held.numpy()])
    assert sqnr_db(refs[0][:, 4:], ys[0][:, 4:]) > 35  # the scores (1.6 dB on the int8 concat)
    assert sqnr_db(refs[1], ys[1]) > 15  # the mean of the int8 concat: sane
    interp = _interp(blob, preserve=False)
    dtypes = {d["index"]: d["dtype"] for d in interp.get_tensor_details()}
    ops = interp._get_ops_details()  # noqa: SLF001
    concats = sorted(str(dtypes[o["outputs"][0]]) for o in ops if o["op_name"] == "CONCATENATION")
    assert concats == ["<class 'numpy.float32'>", "<class 'numpy.int8'>"], concats
