"""Our float32 TFLite files: op histogram, XNNPACK partitions, and the conversion time per stage.

    python benchmarks/tflite_graphs.py [--models resnet18 deeplabv3_mobilenet_v3_large ...]
        [--size 224] [--json out.jsonl] [--stages]

Each model runs in a fresh subprocess: built with random weights (torchvision weights=None;
YOLO11n from its yaml), transpiled (backend="keras", io_layout "nhwc" in, YOLO's outputs
"nchw"), exported with ``result.to_tflite`` (float32, dynamic batch, checked against PyTorch).
Printed per model: transpile and to_tflite seconds, the worst checked error, ops in total, the
XNNPACK partitions (benchmarks/_tflite_stats.py), the ops XNNPACK left outside, and the ops that
decide the partitioning (RESIZE_*, GATHER, SPACE_TO_BATCH_ND, SHAPE, STRIDED_SLICE,
TRANSPOSE). ``--stages`` also times the export's stages one by one, with the earlier code's
path beside each (the model reloaded from disk and traced again; the TFLite converter
freezing the frozen function a second time, without the dilated-conv fold).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _litert_models import SPECS  # noqa: E402 - the benchmark folder is not a package

MODELS = list(SPECS)  # the nine models, as the LiteRT-Torch comparison builds them
KEY_OPS = ("RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR", "GATHER", "SPACE_TO_BATCH_ND", "SHAPE")
KEY_OPS += ("STRIDED_SLICE", "TRANSPOSE")


def build(name: str):
    import torch
    from helpers import randomize_bn

    torch.manual_seed(0)
    if name == "yolo11n":
        from ultralytics.nn.tasks import DetectionModel

        return randomize_bn(DetectionModel("yolo11n.yaml", verbose=False)).eval(), 320
    import _harness

    path = f"segmentation.{name}" if name.startswith("deeplab") else name
    return randomize_bn(_harness.torchvision_model(path)).eval(), 224


def _stages(result, out: Path) -> dict:
    """The export's stages timed one by one: now, and the earlier path beside."""
    import tensorflow as tf

    from transpiler import tflite
    from transpiler.tflite_graph import fold_dilated_convs

    t = {}
    clock = time.perf_counter()
    reloaded = result._writer.concrete_function(result.out_dir, result.graph)  # noqa: SLF001
    t["reload+trace (before)"] = time.perf_counter() - clock
    clock = time.perf_counter()
    concrete = result.concrete_function()
    t["traced function (now)"] = time.perf_counter() - clock
    clock = time.perf_counter()
    frozen = tflite.freeze(concrete)
    t["freeze"] = time.perf_counter() - clock
    clock = time.perf_counter()
    fold_dilated_convs(frozen.graph.as_graph_def())  # (convert does it again, included there)
    t["dilated-conv fold"] = time.perf_counter() - clock
    clock = time.perf_counter()
    converter = tf.lite.TFLiteConverter.from_concrete_functions([frozen])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    converter.convert()
    t["convert, refreezing (before)"] = time.perf_counter() - clock
    clock = time.perf_counter()
    blob = tflite.convert(frozen)
    t["convert (now)"] = time.perf_counter() - clock
    clock = time.perf_counter()
    for arrays, _ in result.report.references:
        tflite.run_tflite(blob, arrays)
    t["check"] = time.perf_counter() - clock
    del reloaded
    return t


def child(name: str, stages: bool) -> None:
    import tempfile

    from _tflite_stats import stats

    from transpiler import transpile

    model, size = build(name)
    import torch

    x = torch.randn(1, 3, size, size)
    io = ("nhwc", "nchw") if name == "yolo11n" else "nhwc"
    out = Path(tempfile.mkdtemp())
    clock = time.perf_counter()
    result = transpile(model, x, io_layout=io, out_dir=out / "keras")
    transpile_s = time.perf_counter() - clock
    clock = time.perf_counter()
    path = result.to_tflite(out / "model.tflite")
    tflite_s = time.perf_counter() - clock
    record = {
        "model": name,
        "transpile_s": transpile_s,
        "timings": result.report.timings,
        "to_tflite_s": tflite_s,
        "worst_scaled_error": max(c.max_rel for c in result.report.tflite[-1].checks),
        "size_mb": path.stat().st_size / 2**20,
        **stats(path),
    }
    if stages:
        record["stages"] = _stages(result, out)
    print(json.dumps(record))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", default=MODELS)
    parser.add_argument("--json", help="append each model's record (one JSON line) here")
    parser.add_argument("--stages", action="store_true")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    sys.path[:0] = [str(HERE), str(HERE.parent / "tests")]
    if args.child:
        child(args.child, args.stages)
        return
    print(
        "| model | transpile s | to_tflite s | worst err | ops | XNNPACK partitions | "
        "outside XNNPACK | " + " | ".join(KEY_OPS) + " |"
    )
    print("|---" * (7 + len(KEY_OPS)) + "|")
    for name in args.models:
        cmd = [sys.executable, __file__, "--child", name] + (["--stages"] if args.stages else [])
        env = {"TF_CPP_MIN_LOG_LEVEL": "3", **os.environ}
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            print(f"| {name} | failed: {proc.stderr.strip().splitlines()[-1][:300]} |", flush=True)
            continue
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        if args.json:
            with open(args.json, "a") as f:
                f.write(json.dumps(r) + "\n")
        outside = ", ".join(f"{k} {v}" for k, v in r["undelegated"].items()) or "-"
        keys = " | ".join(str(r["ops"].get(k, 0)) for k in KEY_OPS)
        print(
            f"| {name} | {r['transpile_s']:.1f} | {r['to_tflite_s']:.1f} "
            f"| {r['worst_scaled_error']:.1e} | {r['total']} | {r['partitions']} | {outside} "
            f"| {keys} |",
            flush=True,
        )
        if "stages" in r:
            print("|   stages: " + ", ".join(f"{k} {v:.2f}" for k, v in r["stages"].items()))


if __name__ == "__main__":
    main()
