"""TFLite export of a transpiled model: frozen, dynamic batch, builtin ops only, checked.

The model (the Keras model, or the tf backend's SavedModel function: ``Backend.concrete_function``)
is a concrete function with a dynamic batch; its variables are frozen into constants, and it is
converted with the builtin op set only (a Flex op would need the TF runtime on the device:
refused). The flatbuffer is then run by the TFLite interpreter on the inputs of the transpile's
numeric check and compared with PyTorch under the same bound.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from .errors import TranspileError
from .report import Check, Report

__all__ = ["export_tflite", "run_tflite"]

VARIANTS = ("float32", "float16", "dynamic_range")


def _interpreter(blob: bytes):
    try:
        from ai_edge_litert.interpreter import Interpreter  # the maintained runtime
    except ImportError:
        import tensorflow as tf

        Interpreter = tf.lite.Interpreter  # noqa: N806 - deprecated, still shipped with TF 2.21
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:  # no default delegates: the ops list then shows the model's own ops
            from tensorflow.lite.python.interpreter import OpResolverType

            return Interpreter(
                model_content=blob,
                experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
            )
        except (ImportError, TypeError):
            return Interpreter(model_content=blob)


def run_tflite(blob: bytes, arrays: list[np.ndarray]) -> list[np.ndarray]:
    """Run a flatbuffer on numpy inputs (any batch size); returns its outputs in order."""
    interp = _interpreter(blob)
    inputs = interp.get_input_details()
    for detail, a in zip(inputs, arrays, strict=True):
        interp.resize_tensor_input(detail["index"], list(a.shape))
    interp.allocate_tensors()
    for detail, a in zip(inputs, arrays, strict=True):
        interp.set_tensor(detail["index"], a.astype(detail["dtype"]))
    interp.invoke()
    return [interp.get_tensor(d["index"]) for d in interp.get_output_details()]


def op_names(blob: bytes) -> list[str]:
    interp = _interpreter(blob)
    interp.allocate_tensors()
    return sorted({d["op_name"] for d in interp._get_ops_details()})


def convert(concrete: Any, variant: str = "float32") -> bytes:
    """A concrete function (variables are frozen into constants) -> TFLite flatbuffer."""
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    if variant not in VARIANTS:
        raise TranspileError(f"unknown TFLite variant {variant!r}; valid choices: {VARIANTS}")
    frozen = convert_variables_to_constants_v2(concrete)
    converter = tf.lite.TFLiteConverter.from_concrete_functions([frozen])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if variant != "float32":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if variant == "float16":
        converter.target_spec.supported_types = [tf.float16]
    try:
        return converter.convert()
    except Exception as exc:  # noqa: BLE001 - one clear message
        raise TranspileError(
            f"TFLite conversion failed ({type(exc).__name__}: {str(exc)[:500]}); an op may need "
            "Flex (the TF runtime), which this export refuses."
        ) from exc


def export_tflite(
    concrete: Any, path: Path, report: Report, tolerance: float, variant: str = "float32"
) -> list[Check]:
    """Write ``path`` (atomically) and check it against PyTorch; returns the checks."""
    from .verify import _error

    blob = convert(concrete, variant)
    flex = [op for op in op_names(blob) if op.startswith("Flex")]
    if flex:
        raise TranspileError(f"the TFLite model would need Flex ops {flex}; nothing was written")
    checks = []
    bound_scale = {"float32": 1.0, "float16": 100.0, "dynamic_range": 1000.0}[variant]
    for arrays, refs in report.references:
        outs = run_tflite(blob, arrays)
        for k, (y, ref) in enumerate(zip(outs, refs, strict=True)):
            err, rel, bound = _error(np.asarray(y), ref, tolerance * bound_scale)
            checks.append(Check(arrays[0].shape[0], k, err, rel, bound, err <= bound))
    if variant == "float32" and not all(c.ok for c in checks):
        worst = max(checks, key=lambda c: c.max_rel)
        raise TranspileError(
            f"the TFLite model differs from PyTorch by {worst.max_abs:.3g} (bound "
            f"{worst.bound:.3g}) at batch {worst.batch_size}; nothing was written"
        )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tflite_")
    with os.fdopen(fd, "wb") as f:
        f.write(blob)
    os.replace(tmp, path)
    report.tflite.append((variant, str(path), checks))
    return checks
