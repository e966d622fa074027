"""PyTorch -> readable Keras 3 source (plus weights), layout-aware and numerically verified.

from transpiler import transpile
result = transpile(model, example_inputs, backend="keras", out_dir="out/")
"""

from __future__ import annotations

__version__ = "0.1.0"

import torch as _torch  # noqa: F401 - torch before TensorFlow, always (see _hygiene)

from ._hygiene import block_triton_if_tensorflow as _block_triton

_block_triton()  # TensorFlow imported before us: keep triton out so torch cannot crash

from .api import TranspileResult, transpile  # noqa: E402
from .errors import TranspileError, UnsupportedOpError  # noqa: E402

__all__ = ["transpile", "TranspileResult", "TranspileError", "UnsupportedOpError", "__version__"]
