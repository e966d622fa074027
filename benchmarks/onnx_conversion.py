"""ONNX in: our .onnx -> Keras conversion time and Transpose count, one row per model.

    python benchmarks/onnx_conversion.py [--models resnet50 ...] [--opset 17] [--onnx2tf PY]

Each torchvision model (random weights, BatchNorm statistics randomized) is exported with
``torch.onnx.export`` (dynamic batch, TorchScript exporter) in a process without TensorFlow
(tests/onnx_frontend/export_zoo.py), then converted in a fresh process with
``transpile(path, io_layout="nhwc", verify=True)``: the time of that call (cold: the first
transpile in the process) and the TF Transpose ops left in ``tf.function(model)``.

``--onnx2tf PY``: also run onnx2tf (``PY -m onnx2tf -i FILE -o DIR -n``, PY being a Python
>= 3.12 with onnx2tf installed, e.g. a throwaway venv) on the same file, timing it and counting
the TRANSPOSE ops in the float32 TFLite file it writes (onnx2tf 2.x's output).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODELS = ["resnet18", "mobilenet_v2", "mobilenet_v3_small", "efficientnet_b0", "resnet50"]
SIZE = 224


def export(name: str, opset: int, folder: Path) -> Path:
    script = ROOT / "tests" / "onnx_frontend" / "export_zoo.py"
    subprocess.run(
        [sys.executable, str(script), name, str(opset), str(SIZE), str(folder)],
        check=True,
        capture_output=True,
    )
    return folder / f"{name}_op{opset}.onnx"


def child(path: str) -> None:
    from transpiler import transpile

    t0 = time.perf_counter()
    result = transpile(path, io_layout="nhwc", verify=True)
    total = time.perf_counter() - t0
    checks = result.report.checks
    print(
        json.dumps(
            {
                "seconds": total,
                "transposes": result.report.transpose_count,
                "max_rel": max(c.max_rel for c in checks),
                "timings": result.report.timings,
            }
        )
    )


def onnx2tf(python: str, path: Path, out: Path) -> dict:
    """onnx2tf on ``path``: wall time and the TRANSPOSE ops in the float32 TFLite file it writes
    (onnx2tf 2.x writes TFLite flatbuffers directly; no Keras model)."""
    t0 = time.perf_counter()
    done = subprocess.run(
        [python, "-m", "onnx2tf", "-i", str(path), "-o", str(out), "-n"],
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - t0
    tflite = sorted(out.glob("*_float32.tflite"))
    if done.returncode != 0 or not tflite:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed"}
    count = subprocess.run(
        [
            python,
            "-c",
            "import sys\n"
            "from ai_edge_litert.interpreter import Interpreter\n"
            "ops = [o['op_name'] for o in Interpreter(model_path=sys.argv[1])._get_ops_details()]\n"
            "print(sum(op == 'TRANSPOSE' for op in ops))",
            str(tflite[0]),
        ],
        capture_output=True,
        text=True,
    )
    try:
        transposes = int(count.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        transposes = None
    return {"seconds": seconds, "transposes": transposes}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--models", nargs="*", default=MODELS)
    p.add_argument("--opset", type=int, default=17)
    p.add_argument("--onnx2tf", default=None, help="a Python with onnx2tf installed")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(args.child)
        return
    print(
        "| model | opset | .onnx MB | ours: s (cold, verified) | ours: Transposes | max rel err |"
        + (" onnx2tf: s | onnx2tf: Transposes |" if args.onnx2tf else "")
    )
    print("|---|---|---|---|---|---|" + ("---|---|" if args.onnx2tf else ""))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for name in args.models:
            path = export(name, args.opset, folder)
            done = subprocess.run(
                [sys.executable, __file__, "--child", str(path)],
                capture_output=True,
                text=True,
                cwd=ROOT,
            )
            lines = done.stdout.strip().splitlines()
            if done.returncode != 0 or not lines:
                print(f"| {name} | {args.opset} | failed: {done.stderr.strip()[-200:]} |")
                continue
            row = json.loads(lines[-1])
            mb = path.stat().st_size / 2**20
            cells = [
                name,
                str(args.opset),
                f"{mb:.1f}",
                f"{row['seconds']:.2f}",
                str(row["transposes"]),
                f"{row['max_rel']:.1e}",
            ]
            if args.onnx2tf:
                theirs = onnx2tf(args.onnx2tf, path, folder / f"{name}_onnx2tf")
                if "error" in theirs:
                    cells += [f"failed: {theirs['error'][:80]}", "-"]
                else:
                    cells += [f"{theirs['seconds']:.2f}", str(theirs["transposes"])]
            print("| " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
