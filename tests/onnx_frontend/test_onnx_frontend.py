"""The ONNX frontend: transpile("model.onnx" | ModelProto), checked against onnxruntime and,
for the torchvision zoo exported with torch.onnx.export, against PyTorch.

Models are exported in a subprocess without TensorFlow (tests/onnx_frontend/export_zoo.py) and
cached per session. Hand-built graphs (onnx.helper) cover what exporters rarely produce:
auto_pad, Gemm's transposes, shape subgraphs, unsupported ops, control flow.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from onnx_frontend.export_zoo import size_of, zoo  # noqa: E402
from transpiler import TranspileError, UnsupportedOpError, transpile  # noqa: E402

HERE = Path(__file__).resolve().parent
BOUND = 1e-4


# -- exported files (cached per session) ----------------------------------------------------------


@pytest.fixture(scope="session")
def exported(tmp_path_factory):
    """``get(name, opset, size) -> (onnx path, state-dict path)``, exporting once per session
    (or once per $TRANSPILER_ONNX_ZOO folder)."""
    cache = os.environ.get("TRANSPILER_ONNX_ZOO")  # a folder kept between runs, if set
    folder = Path(cache) if cache else tmp_path_factory.mktemp("onnx_zoo")

    def get(name: str, opset: int, size: int) -> tuple[Path, Path]:
        """size 0: the input size of tests/e2e/test_zoo.py's ZOO."""
        path = folder / f"{name}_op{opset}.onnx"
        if not path.exists():
            env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
            cmd = [sys.executable, str(HERE / "export_zoo.py"), name, str(opset), str(size)]
            done = subprocess.run(
                [*cmd, str(folder)], capture_output=True, text=True, timeout=600, env=env
            )
            assert done.returncode == 0, done.stderr[-3000:]
        return path, folder / f"{name}.pt"

    return get


def _torch_model(name: str, weights: Path) -> torch.nn.Module:
    from onnx_frontend.export_zoo import build

    model = build(name)
    model.load_state_dict(torch.load(weights))
    return model.eval()


def _err(y: np.ndarray, ref: np.ndarray) -> tuple[float, float]:
    return float(np.max(np.abs(y - ref))), BOUND * max(1.0, float(np.max(np.abs(ref))))


# every model of tests/e2e/test_zoo.py, at opsets 17 and 20; one in the default suite
ZOO_CASES = [
    pytest.param(
        name,
        opset,
        marks=[] if (name, opset) == ("mobilenet_v3_small", 17) else [pytest.mark.slow],
        id=f"{name}-op{opset}",
    )
    for name in zoo()
    for opset in (17, 20)
]


@pytest.fixture(scope="session")
def torch_transposes():
    """``count(name, model) -> int``: the Transpose count of the PyTorch conversion (NHWC I/O),
    once per model."""
    counts: dict[str, int] = {}

    def count(name: str, model: torch.nn.Module) -> int:
        if name not in counts:
            x = torch.randn(1, 3, size_of(name), size_of(name))
            result = transpile(model, x, io_layout="nhwc", verify=False)
            counts[name] = result.report.transpose_count
        return counts[name]

    return count


def _first(out):
    """A segmentation model's {'out': ...} -> its tensor."""
    return out["out"] if isinstance(out, dict) else out


@pytest.mark.parametrize("name,opset", ZOO_CASES)
def test_zoo_from_onnx(exported, torch_transposes, tmp_path, name, opset):
    """The .onnx file (dynamic batch) converts with the numbers of PyTorch (batch 1 and 3, NHWC
    I/O) and the Transpose count of the PyTorch conversion of the same model: 0 for the CNNs
    (whose forward permutes nothing: tests/e2e/test_zoo.py's torch_permutes None)."""
    size = size_of(name)
    path, weights = exported(name, opset, 0)
    result = transpile(path, io_layout="nhwc", out_dir=tmp_path / "onnx")
    assert result.report.ok and len(result.report.checks) >= 2  # ORT, two batch sizes
    assert result.report.batch == "dynamic"
    model = _torch_model(name, weights)
    fn = result.load()
    for batch in (1, 3):
        x = torch.randn(batch, 3, size, size)
        with torch.no_grad():
            ref = _first(model(x)).numpy()
        y = fn(x.numpy().transpose(0, 2, 3, 1))
        err, bound = _err(np.moveaxis(y, -1, 1) if y.ndim == 4 else y, ref)
        assert err <= bound, (name, batch, err, bound)
    count = result.report.transpose_count
    if zoo()[name].torch_permutes is None:
        # a plain CNN: none at all, as tests/e2e/test_zoo.py asserts of its PyTorch conversion
        assert count == 0, result.report
    else:  # a forward that permutes: the count of the PyTorch conversion of the same model
        assert count == torch_transposes(name, model), result.report


# -- a small CNN through the exporter: layers, names, dynamic batch, flatten -> Gemm --------------

TINY = """
import sys, torch
from torch import nn
torch.manual_seed(0)
class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.BatchNorm2d(8), nn.ReLU())
        self.pool = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.avg = nn.AvgPool2d(3, 1, 1, count_include_pad=False)
        self.head = nn.Linear(8 * 4 * 4, 5)
    def forward(self, x):
        x = self.avg(self.pool(self.stem(x)))
        return torch.softmax(self.head(x.view(x.shape[0], -1)), 1)
m = Tiny().eval()
m.stem[1].running_mean.uniform_(-1, 1); m.stem[1].running_var.uniform_(0.5, 2)
x = torch.randn(4, 3, 15, 15)
with torch.no_grad():
    torch.save({"x": x, "y": m(x)}, sys.argv[1] + ".pt")  # the PyTorch reference at batch 4
torch.onnx.export(m, (torch.randn(2, 3, 15, 15),), sys.argv[1], opset_version=17, dynamo=False,
    input_names=["in.image/0"], output_names=["probs"],
    dynamic_axes={"in.image/0": {0: "N"}, "probs": {0: "N"}})
"""


@pytest.fixture(scope="session")
def tiny_onnx(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("tiny") / "tiny.onnx"
    done = subprocess.run(
        [sys.executable, "-c", TINY, str(path)], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return path


def test_tiny_cnn_readable_and_verified(tiny_onnx, tmp_path):
    """Names from the ONNX graph, '# onnx:' comments, a dynamic batch, flatten -> Gemm with the
    weight permuted (0 transposes with NHWC I/O), numbers against PyTorch."""
    result = transpile(str(tiny_onnx), io_layout="nhwc", out_dir=tmp_path)
    assert result.report.transpose_count == 0
    assert [c.batch_size for c in result.report.checks] == [1, 3]
    source = result.source_path.read_text()
    assert "generated from ONNX" in source
    assert "# onnx: Conv node /stem/stem.0/Conv" in source
    assert result.keras_model().get_layer("stem_0_Conv") is not None  # from /stem/stem.0/Conv
    assert "in.image/0" in source and "probs" in source  # I/O names in the docstring
    saved = torch.load(str(tiny_onnx) + ".pt")
    x, ref = saved["x"].numpy(), saved["y"].numpy()
    err, bound = _err(result.load()(x.transpose(0, 2, 3, 1)), ref)
    assert err <= bound
    # the Reshape target came from a Shape->Gather->Unsqueeze->Concat chain: folded, -1 batch
    reshapes = [n for n in result.graph.nodes if n.op == "reshape"]
    assert reshapes and all(n.attrs["shape"][0] == -1 for n in reshapes)


def test_modelproto_and_cli(tiny_onnx, tmp_path):
    from transpiler.cli import main

    proto = onnx.load(str(tiny_onnx))
    before = proto.SerializeToString()
    result = transpile(proto, backend="tf", verify=True, out_dir=tmp_path / "tf")
    assert result.report.ok and proto.SerializeToString() == before  # the proto is not changed
    assert main([str(tiny_onnx), "-o", str(tmp_path / "cli"), "--io-layout", "nhwc"]) == 0
    assert (tmp_path / "cli" / "model.py").exists()


# -- a class token and nn.MultiheadAttention through the exporter (ViT's encoder in small) --------

ATTENTION = """
import torch
from torch import nn
class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.token = nn.Parameter(torch.randn(1, 1, 16))
        self.ln = nn.LayerNorm(16)
        self.attn = nn.MultiheadAttention(16, 4, batch_first=True)
        self.head = nn.Linear(16, 3)
    def forward(self, x):
        x = torch.cat([self.token.expand(x.shape[0], -1, -1), x], 1)
        y = self.ln(x)
        return self.head(x + self.attn(y, y, y, need_weights=False)[0])
def build():
    torch.manual_seed(0)
    return Block().eval()
"""
EXPORT_ATTENTION = (
    ATTENTION
    + """
import sys
torch.onnx.export(build(), (torch.randn(2, 7, 16),), sys.argv[1], opset_version=17,
    dynamo=False, input_names=["x"], output_names=["y"],
    dynamic_axes={"x": {0: "N"}, "y": {0: "N"}})
"""
)


def test_class_token_and_attention(tmp_path):
    """torch.onnx writes the class token's ``expand(N, -1, -1)`` as an Expand to a batch-sized
    shape and MultiheadAttention sequence-first, with batch-times-heads reshapes: converted
    with PyTorch's numbers (batch 1 and 3 by the check, 5 here) and the Transpose count of
    the PyTorch conversion of the same module (onnx_views.py)."""
    path = tmp_path / "attention.onnx"
    done = subprocess.run(
        [sys.executable, "-c", EXPORT_ATTENTION, str(path)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    scope: dict = {}
    exec(ATTENTION, scope)  # noqa: S102 - the same module, built with the same seed
    model = scope["build"]()
    result = transpile(path, out_dir=tmp_path / "onnx")
    assert result.report.ok and result.report.batch == "dynamic"
    from_torch = transpile(model, torch.randn(1, 7, 16), verify=False, out_dir=tmp_path / "pt")
    assert result.report.transpose_count == from_torch.report.transpose_count
    assert result.graph.count("transpose") == from_torch.graph.count("transpose")
    x = torch.randn(5, 7, 16)
    with torch.no_grad():
        ref = model(x).numpy()
    err, bound = _err(result.load()(x.numpy()), ref)
    assert err <= bound


# -- hand-built graphs ----------------------------------------------------------------------------


def _model(nodes, inputs, outputs, inits=(), opset=17):
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(inits))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _info(name, shape, dtype=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, dtype, shape)


def _w(name, array):
    return numpy_helper.from_array(np.asarray(array, np.float32), name)


@pytest.mark.parametrize("auto_pad", ["SAME_UPPER", "SAME_LOWER", "VALID"])
def test_auto_pad(auto_pad):
    """Stride 2 on an even size: SAME_UPPER puts the extra pad at the end (TF 'same'),
    SAME_LOWER at the beginning; MaxPool pads with -inf."""
    rng = np.random.default_rng(0)
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], "/conv/Conv", auto_pad=auto_pad,
                         strides=[2, 2], kernel_shape=[3, 3]),
        helper.make_node("MaxPool", ["c"], ["y"], "/pool/MaxPool", auto_pad=auto_pad,
                         kernel_shape=[2, 2], strides=[1, 1]),
    ]  # fmt: skip
    inits = [_w("w", rng.standard_normal((4, 3, 3, 3))), _w("b", rng.standard_normal(4))]
    model = _model(
        nodes, [_info("x", ["batch", 3, 8, 8])], [_info("y", ["batch", 4, "h", "w"])], inits
    )
    result = transpile(model, io_layout="nhwc")  # verify: ORT at batch 1 and 2
    # no transposes, but for the channel shuffles ShuffleNet's file spells as Transpose nodes
    shuffles = sum(node.op_type == "Transpose" for node in model.graph.node)
    assert result.report.ok and result.report.transpose_count <= shuffles


def test_gemm_attributes_and_shape_folding():
    """Gemm with transB/alpha/beta and a (1, N) bias; a Reshape whose target is computed by a
    Shape -> Gather -> Unsqueeze -> Concat chain on the dynamic batch."""
    rng = np.random.default_rng(1)
    nodes = [
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("Gather", ["s", "zero"], ["n"], axis=0),
        helper.make_node("Unsqueeze", ["n", "axes0"], ["n1"]),
        helper.make_node("Concat", ["n1", "minus1"], ["target"], axis=0),
        helper.make_node("Reshape", ["x", "target"], ["flat"], "/flatten/Reshape"),
        helper.make_node("Gemm", ["flat", "w", "c"], ["y"], "/fc/Gemm", transB=1, alpha=0.5,
                         beta=2.0),
    ]  # fmt: skip
    inits = [
        numpy_helper.from_array(np.array(0, np.int64), "zero"),
        numpy_helper.from_array(np.array([0], np.int64), "axes0"),
        numpy_helper.from_array(np.array([-1], np.int64), "minus1"),
        _w("w", rng.standard_normal((6, 2 * 3 * 3))),
        _w("c", rng.standard_normal((1, 6))),
    ]
    model = _model(nodes, [_info("x", ["N", 2, 3, 3])], [_info("y", ["N", 6])], inits)
    result = transpile(model, io_layout="nhwc")
    assert result.report.ok and result.report.transpose_count == 0
    assert [n.op for n in result.graph.nodes] == ["reshape", "linear"]
    assert result.graph.nodes[0].attrs["shape"] == (-1, 18)


def test_batch_sized_expand_of_a_constant():
    """ViT's class token as torch.onnx writes ``token.expand(N, -1, -1)``: Expand of a constant
    to a shape from Shape -> Gather -> Unsqueeze -> Concat -> Where(Equal(-1)), concatenated
    with the data. The Expand's output depends on the batch size only: imported as
    broadcast_to with the batch taken from the input, as the PyTorch frontends import it;
    ORT at batch 1 and 2, and the generated model at batch 5. An op without a converter on such
    a value is still refused clearly."""
    rng = np.random.default_rng(2)
    nodes = [
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("Gather", ["s", "zero"], ["n"], axis=0),
        helper.make_node("Unsqueeze", ["n", "axes0"], ["n1"]),
        helper.make_node("Concat", ["n1", "minus1", "minus1"], ["target"], axis=0),
        helper.make_node("Equal", ["target", "minus1"], ["keep"]),
        helper.make_node("Where", ["keep", "ones", "target"], ["shape"]),
        helper.make_node("Expand", ["token", "shape"], ["tokens"], "/Expand"),
        helper.make_node("Concat", ["tokens", "x"], ["y"], "/Concat", axis=1),
    ]
    inits = [
        numpy_helper.from_array(np.array(0, np.int64), "zero"),
        numpy_helper.from_array(np.array([0], np.int64), "axes0"),
        numpy_helper.from_array(np.array([-1], np.int64), "minus1"),
        numpy_helper.from_array(np.ones(3, np.int64), "ones"),
        _w("token", rng.standard_normal((1, 1, 4))),
    ]
    model = _model(nodes, [_info("x", ["N", 5, 4])], [_info("y", ["N", 6, 4])], inits)
    result = transpile(model)
    assert result.report.ok and result.report.batch == "dynamic"
    # imported as broadcast_to from the batch; the pad_class_tokens pass then makes the
    # broadcast + concat a zero pad of x plus the token (one XNNPACK partition in TFLite)
    ops = [n.op for n in result.graph.nodes]
    assert "pad" in ops and "broadcast_to" not in ops and "cat" not in ops
    x = rng.standard_normal((5, 5, 4)).astype(np.float32)
    want = np.concatenate([np.broadcast_to(numpy_helper.to_array(inits[-1]), (5, 1, 4)), x], 1)
    np.testing.assert_allclose(result.load()(x), want, rtol=0, atol=1e-6)
    # the same value read by an op without a converter: a clear refusal naming both nodes
    nodes[-1] = helper.make_node("Sin", ["tokens"], ["y"], "/Sin")
    model = _model(nodes, [_info("x", ["N", 5, 4])], [_info("y", ["N", 1, 4])], inits)
    with pytest.raises(UnsupportedOpError, match="Sin"):
        transpile(model)


def _view_chain(perms_and_shapes):
    nodes, inits, name = [], [], "x"
    for k, (op, arg) in enumerate(perms_and_shapes):
        out = f"v{k}"
        if op == "Transpose":
            nodes.append(helper.make_node("Transpose", [name], [out], perm=list(arg)))
        else:
            inits.append(numpy_helper.from_array(np.array(arg, np.int64), f"s{k}"))
            nodes.append(helper.make_node("Reshape", [name, f"s{k}"], [out]))
        name = out
    nodes.append(helper.make_node("Relu", [name], ["y"]))
    return nodes, inits


@pytest.mark.parametrize(
    "chain,shape,transposes",
    [
        # two transposes around a reshape that splits and merges channels: one suffices
        ([("Transpose", (0, 2, 1)), ("Reshape", (0, 2, 3, 4)), ("Transpose", (0, 2, 1, 3)),
          ("Reshape", (0, 6, 4))], ["N", 4, 6], 1),
        # a ShuffleNet channel shuffle: already one transpose, left as it is
        ([("Reshape", (0, 2, 3, 4)), ("Transpose", (0, 2, 1, 3)), ("Reshape", (0, 6, 4))],
         ["N", 6, 4], 1),
    ],
)  # fmt: skip
def test_view_chains_simplified_exactly(chain, shape, transposes):
    """onnx_views.py: a reshape/transpose tree is recomputed with fewer transposes where its
    index map allows (checked against onnxruntime at two batch sizes), never with more."""
    from transpiler.frontend.onnx_importer import import_onnx

    nodes, inits = _view_chain(chain)
    out = [shape[0], *([6, 4] if shape[1:] == [4, 6] else shape[1:])]
    model = _model(nodes, [_info("x", shape)], [_info("y", out)], inits)
    assert import_onnx(model).graph.count("transpose") == transposes
    assert transpile(model).report.ok


def test_unsupported_ops_listed_at_once():
    nodes = [
        helper.make_node("Sin", ["x"], ["a"], "first/sin"),
        helper.make_node("Relu", ["a"], ["b"]),
        helper.make_node("Cos", ["b"], ["y"], "second/cos"),
    ]
    model = _model(nodes, [_info("x", [1, 4])], [_info("y", [1, 4])])
    with pytest.raises(UnsupportedOpError) as info:
        transpile(model)
    assert [m["module_path"] for m in info.value.ops] == ["first/sin", "second/cos"]
    assert "Sin" in str(info.value) and "Cos" in str(info.value)


def _if_model():
    then = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["t"])], "then", [], [_info("t", [1, 4])]
    )
    other = helper.make_graph(
        [helper.make_node("Neg", ["x"], ["e"])], "else", [], [_info("e", [1, 4])]
    )
    nodes = [helper.make_node("If", ["cond"], ["y"], "branch", then_branch=then, else_branch=other)]
    nodes.insert(0, helper.make_node("ReduceMax", ["x"], ["m"], keepdims=0))
    nodes.insert(1, helper.make_node("Greater", ["m", "zero"], ["cond"]))
    inits = [_w("zero", 0.0)]
    model = _model(nodes, [_info("x", [1, 4])], [_info("y", [1, 4])], inits)
    return model


def test_control_flow_refused_clearly():
    with pytest.raises(UnsupportedOpError, match="control flow"):
        transpile(_if_model())


def test_bad_inputs_are_clear_errors(tmp_path):
    with pytest.raises(TranspileError, match="does not exist"):
        transpile(str(tmp_path / "missing.onnx"))
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(TranspileError, match="could not read ONNX file"):
        transpile(str(tmp_path / "junk.onnx"))
    model = _model([helper.make_node("Relu", ["x"], ["y"])], [_info("x", ["N", 3, "H", "W"])],
                   [_info("y", ["N", 3, "H", "W"])])  # fmt: skip
    with pytest.raises(TranspileError, match="pass example_inputs"):
        transpile(model)
    result = transpile(model, np.random.rand(1, 3, 5, 7).astype(np.float32))
    assert result.report.ok
    with pytest.raises(TranspileError, match="declares"):
        transpile(model, np.random.rand(1, 4, 5, 7).astype(np.float32))


# -- the ONNX node test cases ---------------------------------------------------------------------

# a few op modules of onnx.backend.test.case.node, imported alone (collecting all takes ~45 s)
QUICK_MODULES = [
    "conv",
    "maxpool",
    "averagepool",
    "batch_normalization",
    "gemm",
    "softmax",
    "resize",
]


def test_node_cases_quick():
    """A few op families of the shipped node tests: every case passes or is refused clearly."""
    import importlib

    import onnx.backend.test.case.node as node_pkg

    from onnx_frontend.node_cases import FAMILY_OF, _float32, run_case

    for mod in QUICK_MODULES:
        importlib.import_module(f"onnx.backend.test.case.node.{mod}")
    cases = [
        c
        for c in node_pkg._NodeTestCases
        if c.model is not None
        and c.model.graph.node[0].op_type in FAMILY_OF
        and _float32(c.model.graph.input[:1])
        and _float32(c.model.graph.output)
    ]
    assert len(cases) > 50
    outcomes = [run_case(c) for c in cases]
    bad = [o for o in outcomes if o.status not in ("pass", "refused")]
    assert not bad, bad
    assert sum(o.status == "pass" for o in outcomes) > 0.5 * len(outcomes)


@pytest.mark.slow
def test_node_cases_all_covered():
    """Every covered float32 node case (see node_cases.py): a pass or a clear refusal."""
    from onnx_frontend.node_cases import covered_cases, run_case

    outcomes = [run_case(c) for c in covered_cases()]
    bad = [o for o in outcomes if o.status not in ("pass", "refused")]
    assert not bad, bad


@pytest.mark.slow
def test_zoo_tf_backend(exported):
    """An exported file through the tf backend (SavedModel), checked against ORT."""
    path, _ = exported("mobilenet_v3_small", 17, 0)
    assert transpile(path, backend="tf", io_layout="nhwc").report.ok


# -- the light models shipped with onnx -----------------------------------------------------------

LIGHT = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"
LIGHT_MODELS = sorted(p.name[6:-5] for p in LIGHT.glob("light_*.onnx"))


def _data_input(model):
    inits = {t.name for t in model.graph.initializer}
    return next(i for i in model.graph.input if i.name not in inits)


def _logits_model(model):
    """The model with its output moved to the input of its final Softmax (if it has one)."""
    inferred = onnx.shape_inference.infer_shapes(model)
    softmax = next((n for n in reversed(model.graph.node) if n.op_type == "Softmax"), None)
    if softmax is None:
        return model
    infos = {v.name: v for v in [*inferred.graph.value_info, *inferred.graph.output]}
    cut = onnx.ModelProto()
    cut.CopyFrom(model)
    del cut.graph.output[:]
    cut.graph.output.append(infos[softmax.input[0]])
    return cut


@pytest.mark.slow
@pytest.mark.parametrize("name", LIGHT_MODELS)
def test_light_models(name, tmp_path):
    """onnx's light models (opset 9, upgraded to 13) on onnx's input (arange / n).

    The files carry no trained weights: ConstantOfShape fills them, so every class gets the
    same logit (~1e10) and the final Softmax of equal huge logits is ill-conditioned (a one-ulp
    difference between classes changes it completely). So: onnxruntime reproduces the stored
    outputs on the full model, and our conversion of the model up to the Softmax input matches
    onnxruntime with the usual relative bound (verify=True, NHWC I/O)."""
    from transpiler.frontend.onnx_importer import load_onnx, run_onnx

    path = LIGHT / f"light_{name}.onnx"
    model = onnx.load(str(path))
    data = _data_input(model)
    shape = tuple(d.dim_value or 1 for d in data.type.tensor_type.shape.dim)
    n = int(np.prod(shape))
    x = (np.arange(n).reshape(shape) / n).astype(np.float32)
    ref = numpy_helper.to_array(onnx.load_tensor(str(LIGHT / f"light_{name}_output_0.pb")))
    full = load_onnx(model)
    out = run_onnx(full, {data.name: x}, intermediates=False)[full.graph.output[0].name]
    assert _err(out, ref)[0] <= _err(out, ref)[1]
    result = transpile(_logits_model(model), x, io_layout="nhwc", out_dir=tmp_path)
    # no transposes, but for the channel shuffles ShuffleNet's file spells as Transpose nodes
    shuffles = sum(node.op_type == "Transpose" for node in model.graph.node)
    assert result.report.ok and result.report.transpose_count <= shuffles


def test_divergence_names_the_onnx_node(monkeypatch):
    """A wrong converter (Relu built as a sigmoid) fails the check against onnxruntime, naming
    the first diverging ONNX node and its op type; nothing is written."""
    from transpiler.frontend import onnx_ops

    rng = np.random.default_rng(2)
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], "/block/conv/Conv", kernel_shape=[1, 1]),
        helper.make_node("Relu", ["c"], ["r"], "/block/act/Relu"),
        helper.make_node("Conv", ["r", "w"], ["y"], "/head/Conv", kernel_shape=[1, 1]),
    ]
    model = _model(
        nodes,
        [_info("x", ["N", 3, 4, 4])],
        [_info("y", ["N", 3, 4, 4])],
        [_w("w", rng.standard_normal((3, 3, 1, 1)))],
    )
    monkeypatch.setitem(onnx_ops.ONNX_CONVERTERS, "Relu", lambda b, attrs, x: b.op("sigmoid", [x]))
    with pytest.raises(TranspileError) as info:
        transpile(model, io_layout="nhwc")
    message = str(info.value)
    assert "first diverging ONNX node: '/block/act/Relu' (Relu)" in message
    assert info.value.report.divergence.module_type == "Relu"


# -- Resize: every mode that maps exactly, through both backends, against onnxruntime -----------

# (attributes, scales or sizes of H and W) on a (N, 3, 5, 7) input
RESIZES = [
    (dict(mode="nearest", coordinate_transformation_mode="half_pixel"), "sizes", [8, 11]),
    (
        dict(mode="cubic", coordinate_transformation_mode="align_corners", exclude_outside=1),
        "scales",
        [1.4, 0.5714286],
    ),
    (
        dict(mode="linear", coordinate_transformation_mode="pytorch_half_pixel", antialias=1),
        "sizes",
        [3, 4],
    ),
    (
        dict(
            mode="nearest",
            coordinate_transformation_mode="tf_half_pixel_for_nn",
            nearest_mode="ceil",
        ),
        "scales",
        [2.3, 1.7],
    ),
    (
        dict(
            mode="cubic", coordinate_transformation_mode="half_pixel_symmetric", cubic_coeff_a=-0.5
        ),
        "sizes",
        [9, 5],
    ),
    (dict(mode="linear", coordinate_transformation_mode="asymmetric"), "scales", [0.5, 2.0]),
    (
        dict(mode="nearest", coordinate_transformation_mode="asymmetric", nearest_mode="floor"),
        "scales",
        [2.0, 3.0],
    ),
    (dict(mode="cubic", coordinate_transformation_mode="half_pixel", antialias=1), "sizes", [2, 3]),
    (
        dict(
            mode="nearest",
            coordinate_transformation_mode="align_corners",
            nearest_mode="round_prefer_ceil",
        ),
        "sizes",
        [1, 6],
    ),
    (
        dict(
            mode="linear",
            coordinate_transformation_mode="half_pixel",
            keep_aspect_ratio_policy="not_larger",
        ),
        "sizes",
        [10, 10],
    ),
]


def _resize_model(configs, opset=19):
    """One Resize node per config on the same input, each an output."""
    nodes, outputs, inits = [], [], []
    for k, (attrs, kind, values) in enumerate(configs):
        attrs = dict(attrs)
        if kind == "scales":
            inits.append(numpy_helper.from_array(np.array([1, 1, *values], np.float32), f"s{k}"))
            inputs = ["x", "", f"s{k}"]
        else:  # sizes of the spatial axes only
            inits.append(numpy_helper.from_array(np.array(values, np.int64), f"z{k}"))
            inputs, attrs["axes"] = ["x", "", "", f"z{k}"], [2, 3]
        nodes.append(helper.make_node("Resize", inputs, [f"y{k}"], f"/up{k}/Resize", **attrs))
        outputs.append(_info(f"y{k}", ["N", 3, "h", "w"]))
    return _model(nodes, [_info("x", ["N", 3, 5, 7])], outputs, inits, opset=opset)


def test_resize_modes_match_onnxruntime():
    """Nearest (all four nearest_modes), linear and cubic (cubic_coeff_a, exclude_outside,
    antialias) under every coordinate_transformation_mode but tf_crop_and_resize, with scales,
    sizes, axes and keep_aspect_ratio_policy: the Keras model matches onnxruntime (verify=True:
    batch 1 and 3), and no transposes with NHWC I/O."""
    result = transpile(_resize_model(RESIZES), io_layout="nhwc")
    assert result.report.ok and len(result.report.checks) == 2 * len(RESIZES)
    assert result.report.transpose_count == 0


@pytest.mark.slow
def test_resize_modes_tf_backend():
    assert transpile(_resize_model(RESIZES), backend="tf", io_layout="nhwc").report.ok


@pytest.mark.parametrize(
    "attrs,kind,values,match",
    [
        (
            dict(mode="linear", coordinate_transformation_mode="tf_crop_and_resize"),
            "sizes",
            [4, 4],
            "tf_crop_and_resize",
        ),
        (  # 7 x 0.6 = 4.2 -> 4: onnxruntime and onnx's reference disagree
            dict(mode="linear", coordinate_transformation_mode="align_corners"),
            "scales",
            [1.0, 0.6],
            "rounded",
        ),
    ],
)
def test_resize_refusals_are_clear(attrs, kind, values, match):
    with pytest.raises(TranspileError, match=match):
        transpile(_resize_model([(attrs, kind, values)]), verify=False)
