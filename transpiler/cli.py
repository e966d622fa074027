"""``transpiler``: the command line.

transpiler torchvision.models:resnet18 --input-shape 1,3,224,224 -o out/resnet18
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch  # torch before TensorFlow, always

from .errors import TranspileError

__all__ = ["main"]


def _load_factory(spec: str) -> Any:
    if spec.lower().endswith(".onnx"):  # the ONNX frontend reads the file itself
        from pathlib import Path

        if not Path(spec).is_file():
            raise TranspileError(f"no such ONNX file: {spec!r}.")
        return spec
    if spec.endswith(".pt2"):  # a torch.export program saved with torch.export.save
        from pathlib import Path

        from .frontend.export_importer import load_pt2

        if not Path(spec).is_file():
            raise TranspileError(f"no such torch.export file: {spec!r}.")
        return load_pt2(spec)
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise TranspileError(
            f"model {spec!r} is not of the form package.module:factory "
            "(e.g. torchvision.models:resnet18)."
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise TranspileError(f"cannot import {module_name!r}: {exc}.") from exc
    factory = module
    for part in attr.split("."):
        if not hasattr(factory, part):
            raise TranspileError(f"{module_name!r} has no attribute {attr!r}.")
        factory = getattr(factory, part)
    model = factory() if callable(factory) and not isinstance(factory, torch.nn.Module) else factory
    if not isinstance(model, torch.nn.Module):
        raise TranspileError(f"{spec} returned a {type(model).__name__}, not a torch.nn.Module.")
    return model


def _shapes(text: str) -> list[tuple[int, ...]]:
    shapes = []
    for part in text.split(";"):
        try:
            dims = tuple(int(d) for d in part.replace("x", ",").split(",") if d.strip())
        except ValueError:
            dims = ()
        if not dims or any(d <= 0 for d in dims):
            raise TranspileError(
                f"--input-shape {text!r} is not a list of positive integers such as 1,3,224,224 "
                "(separate several inputs with ';')."
            )
        shapes.append(dims)
    return shapes


def _layout(text: str) -> str | tuple[str, str]:
    parts = [p.strip() for p in text.split(",")]
    return parts[0] if len(parts) == 1 else (parts[0], parts[1])


def load_calibration(spec: str) -> list[tuple[Any, ...]]:
    """A .npy / .npz file or a folder of .npy files -> a list of input batches."""
    import numpy as np

    path = Path(spec)
    if path.is_dir():
        files = sorted(path.glob("*.npy"))
        if not files:
            raise TranspileError(f"--calibration folder {spec!r} has no .npy files.")
        return [(np.load(f),) for f in files]
    if not path.is_file():
        raise TranspileError(f"--calibration {spec!r}: no such file or folder.")
    if path.suffix == ".npz":
        with np.load(path) as data:
            arrays = [data[k] for k in data.files]
    elif path.suffix == ".npy":
        arrays = [np.load(path)]
    else:
        raise TranspileError(f"--calibration {spec!r} is not a .npy/.npz file or a folder.")
    n = arrays[0].shape[0]
    return [tuple(a[k : k + 8] for a in arrays) for k in range(0, n, 8)]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="transpiler",
        description="Transpile a PyTorch model into readable Keras 3 source plus weights (or a "
        "TensorFlow SavedModel), verified against PyTorch.",
    )
    p.add_argument(
        "model",
        help="package.module:factory (a callable returning an nn.Module), a torch.export "
        "program saved as FILE.pt2, or an ONNX model FILE.onnx (checked against onnxruntime)",
    )
    p.add_argument(
        "--tracer",
        default="auto",
        help="auto (default: torch.fx, else torch.export), fx or export",
    )
    p.add_argument(
        "--structure",
        default="modules",
        choices=["modules", "flat"],
        help="keras backend: modules (default: one Keras function per PyTorch module class) "
        "or flat (one statement per layer)",
    )
    p.add_argument(
        "--input-shape",
        help="example input shape, e.g. 1,3,224,224 (';' between several inputs); omitted: "
        "inferred from the first layer, any spatial size",
    )
    p.add_argument(
        "--backend",
        default="keras",
        help="keras (default: model.py + weights) or tf (a SavedModel of TF ops)",
    )
    p.add_argument(
        "--io-layout", default="nchw", help="nchw (default), nhwc, or inputs,outputs e.g. nhwc,nchw"
    )
    p.add_argument("-o", "--out-dir", required=True, help="output folder")
    p.add_argument("--no-fold-batchnorm", action="store_true", help="keep BatchNorm layers")
    p.add_argument("--no-verify", action="store_true", help="skip the numeric check")
    p.add_argument("--tolerance", type=float, default=1e-4, help="numeric check bound")
    p.add_argument(
        "--tflite",
        nargs="?",
        const="float32",
        choices=["float32", "float16", "dynamic_range", "int8", "int16x8"],
        help="also write model.tflite (checked against PyTorch), from either backend; optional "
        "variant (int8 / int16x8: full integer, needs --calibration)",
    )
    p.add_argument(
        "--calibration",
        help="calibration inputs for --tflite int8/int16x8: a .npy file (N samples, split into "
        "batches of 8), a .npz file (one array per model input), or a folder of .npy files (one "
        "batch each), in the exported model's input layout",
    )
    p.add_argument("--io-dtype", default="float32", help="TFLite I/O: float32, int8 or uint8")
    p.add_argument(
        "--batch-size", type=int, help="static TFLite batch size (default: dynamic batch)"
    )
    p.add_argument("--target", help="check the TFLite model against tflm, edgetpu or gpu")
    p.add_argument(
        "--keep-float",
        default="",
        help="comma-separated PyTorch module paths kept in float in an int8 TFLite model",
    )
    p.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        from . import transpile

        t0 = time.perf_counter()
        extra = [
            flag
            for flag, v in (
                ("--calibration", args.calibration),
                ("--target", args.target),
                ("--batch-size", args.batch_size),
                ("--keep-float", args.keep_float),
            )
            if v
        ]
        if extra and not args.tflite:
            raise TranspileError(f"{', '.join(extra)} need --tflite.")
        print(f"loading {args.model} ...", file=sys.stderr)
        model = _load_factory(args.model)
        example = None
        if args.input_shape:
            example = tuple(torch.randn(s) for s in _shapes(args.input_shape))
        print("tracing, converting, writing and verifying ...", file=sys.stderr)
        result = transpile(
            model,
            example,
            backend=args.backend,
            out_dir=args.out_dir,
            io_layout=_layout(args.io_layout),
            fold_batchnorm=not args.no_fold_batchnorm,
            verify=not args.no_verify,
            tolerance=args.tolerance,
            tracer=args.tracer,
            structure=args.structure,
        )
        if args.tflite:
            print("writing TFLite ...", file=sys.stderr)
            name = "model.tflite" if args.tflite == "float32" else f"model_{args.tflite}.tflite"
            calibration = load_calibration(args.calibration) if args.calibration else None
            result.to_tflite(
                result.out_dir / name,
                variant=args.tflite,
                calibration=calibration,
                io_dtype=args.io_dtype,
                batch_size=args.batch_size,
                keep_float=[m for m in args.keep_float.split(",") if m],
                target=args.target,
            )
            result.report.files.append(name)
    except TranspileError as exc:
        if args.debug:
            raise
        print(f"transpiler: error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - never a traceback without --debug
        if args.debug:
            raise
        first = str(exc).splitlines()[0] if str(exc) else ""
        print(
            f"transpiler: internal error: {type(exc).__name__}: {first}. This is a transpiler "
            "bug: please report it with the model (--debug shows the traceback).",
            file=sys.stderr,
        )
        return 2
    print(result.report)
    print(
        f"wrote {', '.join(result.report.files)} to {result.out_dir} "
        f"in {time.perf_counter() - t0:.1f} s"
    )
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
