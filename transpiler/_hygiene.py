"""Process hygiene: torch and TensorFlow share our process, and they clash.

Measured (torch 2.14.1 CUDA build, TF 2.21): with TensorFlow loaded first, anything that loads
triton (torch.export, torch.onnx.export, inductor) dies with SIGSEGV. We never need triton, so
once TensorFlow is (or is about to be) in the process we mark triton as unavailable: torch then
takes its no-triton paths. Our own entry points import torch before TensorFlow.
"""

from __future__ import annotations

import sys
from types import ModuleType

__all__ = ["block_triton_if_tensorflow", "import_keras"]


def block_triton_if_tensorflow(force: bool = False) -> None:
    """Make ``import triton`` fail (ImportError) if TensorFlow is loaded and triton is not."""
    if "triton" in sys.modules:
        return
    if force or "tensorflow" in sys.modules:
        sys.modules["triton"] = None  # type: ignore[assignment]  # find_spec -> None


def import_keras() -> ModuleType:
    """Import Keras (and so TensorFlow) after torch, with triton kept out."""
    import torch  # noqa: F401 - torch first, always

    block_triton_if_tensorflow(force=True)
    import keras

    return keras
