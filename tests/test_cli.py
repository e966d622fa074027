"""The `transpiler` command: a fresh process, clear errors, no tracebacks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(cwd))
    return subprocess.run(
        [sys.executable, "-m", "transpiler.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture
def factory(tmp_path: Path) -> Path:
    (tmp_path / "mymodels.py").write_text(
        "import torch.nn as nn\n"
        "def tiny():\n"
        "    return nn.Sequential(\n"
        "        nn.Conv2d(3, 4, 3, stride=2, padding=1), nn.BatchNorm2d(4), nn.SiLU(),\n"
        "        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))\n"
        "def bad():\n"
        "    import torch\n"
        "    class M(nn.Module):\n"
        "        def forward(self, x):\n"
        "            return torch.cumprod(x, 1)\n"
        "    return M()\n"
    )
    return tmp_path


def test_cli_transpiles(factory: Path):
    out = factory / "out"
    proc = _run(
        "mymodels:tiny",
        "--input-shape",
        "1,3,16,16",
        "-o",
        str(out),
        "--io-layout",
        "nhwc,nchw",
        "--tflite",
        cwd=factory,
    )
    assert proc.returncode == 0, proc.stderr
    assert (out / "model.py").exists() and (out / "model.weights.h5").exists()
    assert (out / "model.tflite").exists()
    assert "check batch 1" in proc.stdout


def test_cli_tf_backend(factory: Path):
    out = factory / "out_tf"
    proc = _run(
        "mymodels:tiny",
        "--input-shape",
        "1,3,16,16",
        "-o",
        str(out),
        "--backend",
        "tf",
        "--tflite",
        cwd=factory,
    )
    assert proc.returncode == 0, proc.stderr
    assert (out / "saved_model" / "saved_model.pb").exists() and (out / "model.tflite").exists()
    assert not (out / "model.py").exists()
    assert "report (tf)" in proc.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("nomodule:tiny",), "cannot import 'nomodule'"),
        (("mymodels:nothere",), "has no attribute"),
        (("mymodels",), "package.module:factory"),
        (("mymodels:tiny", "--input-shape", "1,three"), "positive integers"),
        (("mymodels:bad", "--input-shape", "1,3,4,4"), "torch.cumprod"),
        (("mymodels:tiny", "--backend", "onnx"), "valid choices"),
    ],
)
def test_cli_errors_are_one_paragraph(factory: Path, args, message):
    out = factory / "out_err"
    proc = _run(*args, "-o", str(out), cwd=factory)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not out.exists()
