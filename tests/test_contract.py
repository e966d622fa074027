"""Behaviours of the public API fixed by CONTRACT.md (PyTorch is the oracle of every number)."""

from __future__ import annotations

import ast
import inspect
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import (
    assert_checks_ok,
    assert_close,
    check_against_torch,
    graph_ops,
    random_inputs,
    randomize_bn,
    run_loaded,
    torch_reference,
)
from torch import nn

from transpiler import TranspileError, UnsupportedOpError, transpile
from transpiler.frontend import ConverterRegistry

REPO_ROOT = Path(__file__).resolve().parent.parent
MAX_LINE = 120


# ----------------------------------------------------------------------------------------------
# Models and utilities
# ----------------------------------------------------------------------------------------------


class SmallNet(nn.Module):
    """conv-bn-relu, a residual add, dropout, pooling and a linear head."""

    def __init__(self, hidden: int = 8, classes: int = 4):
        super().__init__()
        self.conv = nn.Conv2d(3, hidden, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(hidden)
        self.conv2 = nn.Conv2d(hidden, hidden, 3, padding=1)
        self.drop = nn.Dropout(0.5)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(hidden, classes)

    def forward(self, x):
        y = F.relu(self.bn(self.conv(x)))
        y = y + self.conv2(y)
        return self.fc(self.drop(torch.flatten(self.pool(y), 1)))


def small_net(seed: int = 0, **kwargs) -> SmallNet:
    torch.manual_seed(seed)
    return randomize_bn(SmallNet(**kwargs), seed=seed).eval()


def conv_model() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 4, 1))


def x_img(batch: int = 2, h: int = 16, w: int = 16, seed: int = 0) -> torch.Tensor:
    return random_inputs([(3, h, w)], batch, seed)[0]


def listing(path: Path) -> set[str]:
    return {str(p.relative_to(path)) for p in path.rglob("*")} if path.exists() else set()


def subprocess_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONHASHSEED": "0"}, **extra)
    return env


def run_python(
    script: str, *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """Run `script` in a fresh interpreter (the venv's) and assert it exits 0."""
    path = cwd / "script.py"
    path.write_text(textwrap.dedent(script))
    proc = subprocess.run(
        [sys.executable, str(path), *args],
        cwd=cwd,
        env=env or subprocess_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    if proc.returncode != 0:
        how = f"exit status {proc.returncode}"
        if proc.returncode < 0:
            how = f"killed by {signal.Signals(-proc.returncode).name}"
        pytest.fail(
            f"subprocess {how}\n--- stdout\n{proc.stdout[-3000:]}\n--- stderr\n"
            f"{proc.stderr[-6000:]}"
        )
    return proc


def imported_roots(source: str) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def assert_clean_source(source: str, filename: str = "model.py") -> None:
    compile(source, filename, "exec")
    roots = imported_roots(source)
    allowed = {"keras", "numpy"} | set(sys.stdlib_module_names)
    assert roots <= allowed, f"the generated module imports {sorted(roots - allowed)}"
    for line_no, line in enumerate(source.split("\n"), 1):
        assert len(line) <= MAX_LINE, f"line {line_no} has {len(line)} characters: {line[:80]}..."
    for forbidden in (
        "import torch",
        "from torch",
        "import tensorflow",
        "from tensorflow",
        "import transpiler",
        "from transpiler",
        "__import__",
        "importlib",
    ):
        assert forbidden not in source, f"the generated module contains {forbidden!r}"


# ----------------------------------------------------------------------------------------------
# Result object
# ----------------------------------------------------------------------------------------------


def test_result_attributes(tmp_path):
    model = small_net()
    x = x_img()
    result = transpile(model, x, out_dir=tmp_path / "out")

    assert result.backend == "keras"
    assert isinstance(result.out_dir, Path) and result.out_dir == tmp_path / "out"
    assert isinstance(result.source_path, Path) and result.source_path.is_file()
    assert result.source_path.parent == result.out_dir
    assert isinstance(result.weights_path, Path) and result.weights_path.is_file()
    assert result.weights_path.parent == result.source_path.parent  # "beside it"

    report = result.report
    assert isinstance(report.tracer, str) and report.tracer
    assert report.passes, "no passes in the report"
    for p in report.passes:
        assert isinstance(p.name, str) and p.name
        assert isinstance(p.nodes_before, int) and isinstance(p.nodes_after, int)
    assert isinstance(report.transpose_count, int)
    assert_checks_ok(result)
    text = str(report)
    assert report.tracer in text and str(report.transpose_count) in text
    for p in report.passes:
        assert p.name in text

    assert result.graph.nodes and all(isinstance(n.op, str) for n in result.graph.nodes)
    fn = result.load()
    assert callable(fn) and not hasattr(fn, "layers"), "load() must be a plain callable"
    check_against_torch(model, x, fn)
    keras_model = result.keras_model()
    import keras

    assert isinstance(keras_model, keras.Model)
    assert tuple(keras_model.inputs[0].shape) == (None, 3, 16, 16), "dynamic batch, NCHW"


def test_out_dir_none_makes_a_directory():
    result = transpile(conv_model().eval(), x_img())
    try:
        assert result.out_dir.is_dir() and result.source_path.is_file()
    finally:
        shutil.rmtree(result.out_dir, ignore_errors=True)


def test_out_dir_as_str_and_verify_false(tmp_path):
    model = conv_model().eval()
    result = transpile(model, x_img(), out_dir=str(tmp_path / "s"), verify=False)
    assert result.out_dir == tmp_path / "s" and result.source_path.is_file()
    check_against_torch(model, x_img(batch=3, seed=4), result)


def test_tf_tensor_inputs_are_accepted(tmp_path):
    import tensorflow as tf

    model = conv_model().eval()
    x = x_img()
    fn = transpile(model, x, out_dir=tmp_path / "o").load()
    y = fn(tf.constant(x.numpy()))
    assert isinstance(y, np.ndarray)
    assert_close(y, torch_reference(model, [x])[0])


# ----------------------------------------------------------------------------------------------
# (a) The model is left as found
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["train", "eval", "mixed"])
def test_model_left_as_found(tmp_path, mode):
    model = small_net()
    model.train(mode != "eval")
    if mode == "mixed":
        model.bn.eval()
        model.drop.eval()
    model.conv2.bias.requires_grad_(False)
    flags = {name: m.training for name, m in model.named_modules()}
    requires_grad = {name: p.requires_grad for name, p in model.named_parameters()}
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    ids = {k: id(v) for k, v in model.state_dict(keep_vars=True).items()}
    x = x_img(batch=2)

    result = transpile(model, x, out_dir=tmp_path / "out")

    assert {name: m.training for name, m in model.named_modules()} == flags
    assert {name: p.requires_grad for name, p in model.named_parameters()} == requires_grad
    after = model.state_dict()
    assert after.keys() == state.keys()
    for key, value in after.items():
        assert value.dtype == state[key].dtype and torch.equal(value, state[key]), key
    assert {k: id(v) for k, v in model.state_dict(keep_vars=True).items()} == ids
    assert all(p.grad is None for p in model.parameters())
    # What was converted is the eval-mode behaviour (dropout off, BN running statistics).
    check_against_torch(model, x, result)


# ----------------------------------------------------------------------------------------------
# (b) Determinism
# ----------------------------------------------------------------------------------------------


def test_same_model_gives_byte_identical_source(tmp_path):
    model = small_net()
    x = x_img()
    a = transpile(model, x, out_dir=tmp_path / "a")
    b = transpile(model, x, out_dir=tmp_path / "b")
    c = transpile(small_net(), x_img(seed=1), out_dir=tmp_path / "c")  # an equal model
    assert a.source_path.name == b.source_path.name
    assert a.source_path.read_bytes() == b.source_path.read_bytes()
    assert a.source_path.read_bytes() == c.source_path.read_bytes()
    assert str(tmp_path) not in a.source_path.read_text(), "the out_dir leaks into the source"


def test_source_is_identical_in_another_process(tmp_path):
    """Hash randomization (PYTHONHASHSEED) and the process must not change the output."""
    script = """
        import sys
        sys.path.insert(0, sys.argv[2])
        import torch
        from test_contract import small_net, x_img
        from transpiler import transpile
        transpile(small_net(), x_img(), out_dir=sys.argv[1])
    """
    run_python(
        script,
        str(tmp_path / "sub"),
        str(Path(__file__).parent),
        cwd=tmp_path,
        env=subprocess_env(PYTHONHASHSEED="12345"),
    )
    here = transpile(small_net(), x_img(), out_dir=tmp_path / "here")
    there = tmp_path / "sub" / here.source_path.name
    assert there.read_bytes() == here.source_path.read_bytes()


# ----------------------------------------------------------------------------------------------
# (c) The generated module stands alone
# ----------------------------------------------------------------------------------------------


def test_generated_source_is_clean(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 128),
        nn.ReLU(),
        nn.Linear(128, 128),
    )
    model = randomize_bn(model).eval()
    result = transpile(model, x_img(), out_dir=tmp_path / "out")
    source = result.source_path.read_text()

    assert_clean_source(source, str(result.source_path))
    tree = ast.parse(source)
    functions = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    assert {"build_model", "load_model"} <= functions.keys()
    args = functions["load_model"].args
    assert [a.arg for a in args.args] == ["weights_path"] and len(args.defaults) == 1
    # No inlined weights: the 128x128 Linear alone would take > 100k characters.
    assert len(source) < 40_000, f"{len(source)} characters: weights inlined?"

    assert result.weights_path.name.endswith((".h5", ".npz", ".safetensors"))
    if result.weights_path.suffix == ".npz":
        with np.load(result.weights_path, allow_pickle=False) as weights:
            assert all(weights[k].dtype != object for k in weights.files)


def test_generated_source_passes_ruff(tmp_path):
    ruff = [sys.executable, "-m", "ruff"]  # in the test extra
    result = transpile(small_net(), x_img(), out_dir=tmp_path / "out")
    path = str(result.source_path)
    common = ["--isolated", "--line-length", str(MAX_LINE)]
    lint = subprocess.run(
        [*ruff, "check", *common, "--select", "E,F,W", path], capture_output=True, text=True
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr
    fmt = subprocess.run([*ruff, "format", *common, "--diff", path], capture_output=True, text=True)
    assert fmt.returncode == 0, f"not formatted (black/ruff style):\n{fmt.stdout}{fmt.stderr}"


# Keras backend -> the packages the generated module must run without.
BLOCKED_PACKAGES = {
    "tensorflow": ("torch", "torchvision", "transpiler"),
    "torch": ("tensorflow", "transpiler"),  # the file runs unchanged on other Keras backends
}

STANDALONE_SCRIPT = """
    import importlib.util
    import sys

    import numpy as np

    spec = importlib.util.spec_from_file_location("generated_model", sys.argv[1])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model = module.load_model()
    y = model.predict(np.load(sys.argv[2]), verbose=0)
    np.save(sys.argv[3], np.asarray(y))
    built = module.build_model()
    assert built.count_params() == model.count_params()
    for name in sys.argv[4:]:
        assert name not in sys.modules, name + " was imported"
"""


@pytest.mark.parametrize("keras_backend", list(BLOCKED_PACKAGES))
def test_generated_module_runs_standalone(tmp_path, keras_backend):
    """model.py moved elsewhere and run in a fresh process where torch (or TensorFlow, on the
    torch backend of Keras) and transpiler cannot be imported; weights found beside it."""
    model = small_net()
    x = x_img(batch=3)
    result = transpile(model, x_img(batch=1), out_dir=tmp_path / "out")
    expected = torch_reference(model, [x])[0]

    moved = tmp_path / "elsewhere" / "generated"
    shutil.copytree(result.out_dir, moved)
    np.save(tmp_path / "x.npy", x.numpy())

    blocked = BLOCKED_PACKAGES[keras_backend]
    blocker = tmp_path / "blocker"
    for package in blocked:
        (blocker / package).mkdir(parents=True)
        (blocker / package / "__init__.py").write_text(
            f"raise ImportError('the generated module must not import {package}')\n"
        )
    work = tmp_path / "work"
    work.mkdir()
    env = subprocess_env(PYTHONPATH=str(blocker), KERAS_BACKEND=keras_backend)
    run_python(
        STANDALONE_SCRIPT,
        str(moved / result.source_path.name),
        str(tmp_path / "x.npy"),
        str(tmp_path / "y.npy"),
        *blocked,
        cwd=work,
        env=env,
    )
    assert_close(np.load(tmp_path / "y.npy"), expected)


# ----------------------------------------------------------------------------------------------
# (d) Import order: TensorFlow first must not crash the process
# ----------------------------------------------------------------------------------------------

IMPORT_ORDER_SCRIPT = """
    import sys
    {imports}
    import numpy as np
    import torch
    from torch import nn
    from transpiler import transpile

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU()).eval()
    x = torch.randn(2, 3, 9, 9)
    fn = transpile(model, x, out_dir=sys.argv[1]).load()
    with torch.no_grad():
        expected = model(x).numpy()
    assert np.abs(fn(x.numpy()) - expected).max() <= 1e-4 * max(1.0, np.abs(expected).max())
    print("OK")
"""


@pytest.mark.parametrize(
    "order",
    [
        ("tensorflow", "transpiler"),
        ("transpiler", "tensorflow"),
        ("tensorflow", "torch", "transpiler"),
        # torchvision loads torch._dynamo, which loads triton: the known SIGSEGV with TF loaded.
        ("tensorflow", "transpiler", "torchvision"),
    ],
    ids="-then-".join,
)
def test_import_order_does_not_crash(tmp_path, order):
    imports = "\n    ".join(f"import {name}" for name in order)
    proc = run_python(
        IMPORT_ORDER_SCRIPT.format(imports=imports), str(tmp_path / "out"), cwd=tmp_path
    )
    assert "OK" in proc.stdout


# ----------------------------------------------------------------------------------------------
# (e) The one-line form
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("io_layout", ["nchw", "nhwc"])
def test_one_line_form_without_example_inputs(io_layout):
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 4),
    )
    result = transpile(model, backend="keras", io_layout=io_layout)
    try:
        assert_checks_ok(result)
        fn = result.load()
        for batch, h, w in [(2, 13, 17), (1, 32, 32), (3, 8, 9)]:
            check_against_torch(model, x_img(batch, h, w, seed=h), fn, io_layout)
    finally:
        shutil.rmtree(result.out_dir, ignore_errors=True)


def test_one_line_form_strided_conv_any_size(tmp_path):
    """No size-dependent 'same' shortcut: stride 2 on odd and even sizes alike."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(3, 2, 1),
        nn.Conv2d(8, 4, 1),
    )
    result = transpile(model, out_dir=tmp_path / "out")
    fn = result.load()
    for h, w in [(16, 16), (15, 17), (22, 9)]:
        check_against_torch(model, x_img(2, h, w, seed=h + w), fn)


def test_one_line_form_uninferable_asks_for_example_inputs():
    model = nn.Sequential(nn.ReLU())  # nothing tells the input's shape
    with pytest.raises(TranspileError, match="example_inputs"):
        transpile(model)


# ----------------------------------------------------------------------------------------------
# (f) Errors
# ----------------------------------------------------------------------------------------------


def test_unknown_backend_lists_choices(tmp_path):
    with pytest.raises(TranspileError) as info:
        transpile(conv_model().eval(), x_img(), backend="nope", out_dir=tmp_path / "out")
    assert "keras" in str(info.value)
    assert listing(tmp_path / "out") == set()


@pytest.mark.parametrize("io_layout", ["nhcw", ("nhwc", "bad"), ("nhwc",), 3])
def test_unknown_io_layout_lists_choices(tmp_path, io_layout):
    with pytest.raises(TranspileError) as info:
        transpile(conv_model().eval(), x_img(), io_layout=io_layout, out_dir=tmp_path / "out")
    message = str(info.value)
    assert "nchw" in message and "nhwc" in message
    assert listing(tmp_path / "out") == set()


class Spectral(nn.Module):
    def forward(self, x):
        return torch.fft.fft2(x).abs()


class Cumulative(nn.Module):
    def forward(self, x):
        return torch.cumprod(x, dim=1)


class TwoUnsupported(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        self.spectral = Spectral()
        self.head = nn.Sequential(nn.ReLU(), Cumulative())

    def forward(self, x):
        return self.head(self.spectral(self.stem(x)))


def _line_of(function, text: str) -> int:
    lines, start = inspect.getsourcelines(function)
    return start + next(i for i, line in enumerate(lines) if text in line)


def test_unsupported_ops_are_all_listed_and_nothing_is_written(tmp_path):
    out = tmp_path / "fresh"
    with pytest.raises(UnsupportedOpError) as info:
        transpile(TwoUnsupported().eval(), x_img(), out_dir=out)
    assert isinstance(info.value, TranspileError)
    message = str(info.value)
    for op, path, function in [
        ("fft2", "spectral", Spectral.forward),
        ("cumprod", "head.1", Cumulative.forward),
    ]:
        assert op in message and path in message, message
        assert str(_line_of(function, op)) in message, f"no source line for {op}:\n{message}"
    assert "test_contract.py" in message
    assert listing(out) == set(), f"files left behind: {listing(out)}"


@pytest.mark.parametrize("backend", ["keras", "tf"])
@pytest.mark.parametrize("failure", ["unsupported", "mismatch"])
def test_failed_transpile_keeps_user_files_and_adds_nothing(tmp_path, failure, backend):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    names = ["stem", "act", "mid", "act2", "head"]
    if failure == "unsupported":
        model, kwargs = TwoUnsupported().eval(), {}
    else:
        # A deliberately broken converter (SiLU emitted as ReLU): the numeric check fails after
        # emission, and the diagnosis must name the module where outputs first diverge.
        broken = ConverterRegistry()

        @broken.converts(nn.SiLU)
        def wrong_silu(b, module, x):
            return b.op("relu", [x])

        torch.manual_seed(0)
        layers = [
            nn.Conv2d(3, 16, 3, padding=1),
            nn.GELU(),
            nn.Conv2d(16, 16, 3),
            nn.SiLU(),
            nn.Conv2d(16, 8, 3),
        ]
        model = nn.Sequential(OrderedDict(zip(names, layers, strict=True))).eval()
        kwargs = {"extra_converters": broken}
    try:
        result = transpile(model, x_img(), out_dir=out, backend=backend, **kwargs)
    except TranspileError as exc:
        if failure == "mismatch":
            assert not all(c.ok for c in exc.report.checks), "e.report must carry the failure"
            assert "'act2'" in str(exc), f"must name the diverging module: {exc}"
            assert exc.report.divergence.module_path == "act2"
    else:
        pytest.fail(f"{failure}: transpile succeeded: {result.report.checks}")
    assert listing(out) == {"keep.txt"}
    assert (out / "keep.txt").read_text() == "mine"


def test_successful_transpile_keeps_user_files(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    transpile(conv_model().eval(), x_img(), out_dir=out)
    assert (out / "keep.txt").read_text() == "mine"


# ----------------------------------------------------------------------------------------------
# (g) Hostile names
# ----------------------------------------------------------------------------------------------

HOSTILE_NAMES = [
    "class",
    "a b",
    "a_b",
    "a-b",
    "q'uote\"",
    'tri"""ple',
    "new\nline",
    "carriage\rreturn",
    "import os",
    "'); open('pwned', 'w'); ('",
    "a/b",
    "back\\slash",
    "#comment",
    "{brace}",
    "λ-ünïcode",
    "1st",
    "None",
    "self",
    "keras",
    "x",
    "nul\x00char",
]


class HostileParam(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.register_parameter("p ar'am\n", nn.Parameter(torch.randn(channels, 1, 1)))

    def forward(self, x):
        return x * getattr(self, "p ar'am\n")


def hostile_model() -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential()
    channels = 3
    for i, name in enumerate(HOSTILE_NAMES):
        if i % 3 == 0:
            layer = nn.Conv2d(channels, 6, 3, padding=1)
            channels = 6
        elif i % 3 == 1:
            layer = nn.BatchNorm2d(channels)
        else:
            layer = nn.ReLU() if i % 2 else HostileParam(channels)
        model.add_module(name, layer)
    inner = nn.Sequential()
    inner.add_module("def", nn.Conv2d(channels, 4, 1))
    inner.add_module("a b", nn.SiLU())
    model.add_module("class ", inner)
    return randomize_bn(model).eval()


@pytest.mark.parametrize("io_layout", ["nchw", "nhwc"])
def test_hostile_module_names(tmp_path, monkeypatch, io_layout):
    monkeypatch.chdir(tmp_path)
    model = hostile_model()
    x = x_img(batch=2, h=9, w=10)
    result = transpile(model, x, out_dir=tmp_path / "out", io_layout=io_layout)
    source = result.source_path.read_text()
    assert_clean_source(source, str(result.source_path))
    assert "\x00" not in source
    check_against_torch(model, x, result, io_layout)
    check_against_torch(model, x_img(batch=3, h=9, w=10, seed=1), result.load(), io_layout)
    layer_names = [layer.name for layer in result.keras_model().layers]
    assert len(layer_names) == len(set(layer_names))
    assert not (tmp_path / "pwned").exists() and not (REPO_ROOT / "pwned").exists()


def test_very_long_module_name_keeps_lines_short(tmp_path):
    model = nn.Sequential()
    model.add_module("a" * 300, nn.Conv2d(3, 4, 3, padding=1))
    model.add_module("b" * 150 + " " + "c" * 150, nn.ReLU())
    model.eval()
    result = transpile(model, x_img(), out_dir=tmp_path / "out")
    assert_clean_source(result.source_path.read_text())
    check_against_torch(model, x_img(), result)


# ----------------------------------------------------------------------------------------------
# (h) Bad example_inputs
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "example",
    [
        pytest.param("hello", id="string"),
        pytest.param(torch.randn(2, 4, 16, 16), id="wrong-channels"),
        pytest.param(torch.randn(2, 3, 16), id="wrong-rank"),
        pytest.param((torch.randn(2, 3, 16, 16), torch.randn(2, 3, 16, 16)), id="too-many"),
        pytest.param([1, 2, 3], id="list-of-ints"),
    ],
)
def test_bad_example_inputs(tmp_path, example):
    with pytest.raises(TranspileError):
        transpile(conv_model().eval(), example, out_dir=tmp_path / "out")
    assert listing(tmp_path / "out") == set()


def test_untraceable_model_is_a_transpile_error(tmp_path):
    class DataDependent(nn.Module):
        def forward(self, x):
            if x.sum() > 0:  # data-dependent control flow
                return x
            return -x

    with pytest.raises(TranspileError):
        transpile(DataDependent(), x_img(), out_dir=tmp_path / "out")


# ----------------------------------------------------------------------------------------------
# (i) Inputs and outputs: several of them, nesting, layouts
# ----------------------------------------------------------------------------------------------


class TwoHeads(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, padding=1)
        self.fc = nn.Linear(6, 5)

    def features(self, x):
        y = torch.relu(self.conv(x))
        return y, self.fc(y.mean((2, 3)))


class TupleOut(TwoHeads):
    def forward(self, x):
        return self.features(x)


class DictOut(TwoHeads):
    def forward(self, x):
        y, logits = self.features(x)
        return {"zeta": logits, "alpha": y}  # insertion order, not sorted


class NestedOut(TwoHeads):
    def forward(self, x):
        y, logits = self.features(x)
        return (y, [logits, {"b": y * 2, "a": logits - 1}])


class SingletonTupleOut(TwoHeads):
    def forward(self, x):
        return (self.features(x)[1],)


class TwoInputs(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 5, 3, padding=1)
        self.fc = nn.Linear(7, 5)

    def forward(self, image, vector):
        return self.conv(image).mean((2, 3)) * self.fc(vector)


@pytest.mark.parametrize("io_layout", ["nchw", "nhwc"])
@pytest.mark.parametrize(
    "cls, n_outputs",
    [(TupleOut, 2), (DictOut, 2), (NestedOut, 4), (SingletonTupleOut, 1)],
    ids=["tuple", "dict", "nested", "singleton-tuple"],
)
def test_multiple_outputs(tmp_path, cls, n_outputs, io_layout):
    torch.manual_seed(0)
    model = cls().eval()
    x = x_img(batch=2, h=7, w=9)
    result = transpile(model, x, out_dir=tmp_path / "out", io_layout=io_layout)
    fn = result.load()
    outputs = fn(x.numpy() if io_layout == "nchw" else x.numpy().transpose(0, 2, 3, 1))
    if n_outputs == 1:
        assert isinstance(outputs, np.ndarray)
    else:
        assert isinstance(outputs, tuple) and len(outputs) == n_outputs
    check_against_torch(model, x, fn, io_layout)  # pytree order, layouts, values
    check_against_torch(model, x_img(batch=3, h=7, w=9, seed=2), fn, io_layout)


@pytest.mark.parametrize("io_layout", ["nchw", "nhwc"])
def test_two_inputs_keep_their_order(tmp_path, io_layout):
    torch.manual_seed(0)
    model = TwoInputs().eval()
    inputs = random_inputs([(3, 8, 8), (7,)], batch=2, seed=3)
    result = transpile(model, inputs, out_dir=tmp_path / "out", io_layout=io_layout)
    fn = result.load()
    check_against_torch(model, inputs, fn, io_layout)
    check_against_torch(model, random_inputs([(3, 8, 8), (7,)], batch=1, seed=4), fn, io_layout)


@pytest.mark.parametrize("io_layout", [("nhwc", "nchw"), ["nhwc", "nchw"], ("nchw", "nhwc")])
def test_split_io_layout(tmp_path, io_layout):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 4, 3, stride=2))
    model.eval()
    x = x_img(batch=2, h=11, w=12)
    result = transpile(model, x, out_dir=tmp_path / "out", io_layout=io_layout)
    check_against_torch(model, x, result, io_layout)
    assert result.report.transpose_count == 1, str(result.report)


def test_split_io_layout_keeps_detection_head_unchanged(tmp_path):
    """An image in NHWC, a (N, anchors, 85)-like rank-3 tensor out unchanged."""

    class Head(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 2 * 7, 1)

        def forward(self, x):
            y = self.conv(x)
            n, h, w = y.shape[0], y.shape[2], y.shape[3]
            return y.view(n, 2, 7, h * w).permute(0, 1, 3, 2).reshape(n, -1, 7)

    torch.manual_seed(0)
    model = Head().eval()
    x = x_img(batch=2, h=5, w=6)
    result = transpile(model, x, out_dir=tmp_path / "out", io_layout=("nhwc", "nchw"))
    fn = result.load()
    y = fn(x.numpy().transpose(0, 2, 3, 1))
    assert y.shape == (2, 2 * 5 * 6, 7)
    check_against_torch(model, x, fn, ("nhwc", "nchw"))
    (x3,) = random_inputs([(3, 5, 6)], batch=3, seed=5)
    assert run_loaded(fn, [x3], ("nhwc", "nchw"))[0].shape == (3, 60, 7)


def test_batchnorm_folded_by_default_and_kept_on_request(tmp_path):
    torch.manual_seed(0)
    model = randomize_bn(nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8)))
    model.eval()
    x = x_img()
    folded = transpile(model, x, out_dir=tmp_path / "a")
    kept = transpile(model, x, out_dir=tmp_path / "b", fold_batchnorm=False)
    assert "batch_norm" not in graph_ops(folded)
    assert "batch_norm" in graph_ops(kept)
    check_against_torch(model, x, folded)
    check_against_torch(model, x, kept)
