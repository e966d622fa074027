"""The small Keras layers written into generated modules: formatted, lint-clean source."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from transpiler.backends.keras_source.custom_layers import SOURCES, STDLIB_IMPORTS


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_custom_layer_source_is_formatted_and_lint_clean(name, tmp_path):
    imports = "".join(f"import {m}\n" for m in STDLIB_IMPORTS.get(name, ()) if m != "numpy")
    imports += "\n" if imports else ""
    path = tmp_path / f"{name}.py"
    keras_imports = "import keras\n"
    keras_imports += "import numpy as np\n" if "numpy" in STDLIB_IMPORTS.get(name, ()) else ""
    keras_imports += "from keras import ops\n" if re.search(r"\bops\b", SOURCES[name]) else ""
    path.write_text(f"{imports}{keras_imports}\n\n{SOURCES[name]}")
    ruff = [sys.executable, "-m", "ruff"]
    common = ["--isolated", "--line-length", "100"]
    lint = subprocess.run(
        [*ruff, "check", *common, "--select", "E,F,W", str(path)], capture_output=True, text=True
    )
    assert lint.returncode == 0, lint.stdout
    fmt = subprocess.run(
        [*ruff, "format", *common, "--diff", str(path)], capture_output=True, text=True
    )
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr
