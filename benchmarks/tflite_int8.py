"""Full-integer INT8 TFLite: end-to-end SQNR against float PyTorch, size, and TFLite interpreter
latency against the float32 export.

Models have random weights with BatchNorm statistics randomized as the tests do
(tests/helpers.py randomize_bn); calibration and held-out inputs are standard-normal images drawn
from different seeds. Exports: NHWC I/O, float32 I/O, dynamic batch; latency at batch 1, the
TFLite interpreter with its default (XNNPACK) delegate, timed interleaved (float32 vs int8).

    python benchmarks/tflite_int8.py [--models resnet18,mobilenet_v2,efficientnet_b0,yolo11n]
        [--calibration 32] [--held-out 8] [--threads 2] [--json benchmarks/results/tflite_int8.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from _harness import pin_threads, time_interleaved, torchvision_model

SIZES = {"resnet18": 224, "mobilenet_v2": 224, "efficientnet_b0": 224, "yolo11n": 320}


def build(name: str) -> torch.nn.Module:
    from helpers import randomize_bn

    torch.manual_seed(0)
    if name == "yolo11n":
        from ultralytics.nn.tasks import DetectionModel

        return randomize_bn(DetectionModel("yolo11n.yaml", verbose=False)).eval()
    return randomize_bn(torchvision_model(name)).eval()


def flat(out) -> list[np.ndarray]:
    if isinstance(out, torch.Tensor):
        return [out.numpy()]
    if isinstance(out, dict):
        out = list(out.values())
    return [a for o in out for a in flat(o)]


def sqnr_db(refs: list[np.ndarray], outs: list[np.ndarray]) -> float:
    signal = sum(float((r.astype(np.float64) ** 2).sum()) for r in refs)
    noise = sum(
        float(((o - r).astype(np.float64) ** 2).sum()) for r, o in zip(refs, outs, strict=True)
    )
    return 10 * np.log10(signal / max(noise, 1e-30))


def interpreter_call(blob: bytes, x: np.ndarray, threads: int):
    import tensorflow as tf

    interp = tf.lite.Interpreter(model_content=blob, num_threads=threads)
    (inp,) = interp.get_input_details()
    interp.resize_tensor_input(inp["index"], list(x.shape))
    interp.allocate_tensors()

    def call():
        interp.set_tensor(inp["index"], x)
        interp.invoke()
        return interp.get_tensor(interp.get_output_details()[0]["index"])

    return call


def run(name: str, n_cal: int, n_held: int, threads: int) -> dict:
    from transpiler import transpile
    from transpiler.tflite import run_tflite

    size = SIZES[name]
    model = build(name)
    gen = torch.Generator().manual_seed(1)
    calibration = [torch.randn(4, 3, size, size, generator=gen) for _ in range(n_cal // 4)]
    held = torch.randn(n_held, 3, size, size, generator=torch.Generator().manual_seed(2))
    io = ("nhwc", "nchw") if name == "yolo11n" else "nhwc"
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        result = transpile(model, torch.randn(1, 3, size, size), io_layout=io, out_dir=f"{tmp}/o")
        f32 = result.to_tflite(f"{tmp}/f32.tflite").read_bytes()
        t1 = time.perf_counter()
        nhwc_cal = [c.permute(0, 2, 3, 1).numpy() for c in calibration]
        i8 = result.to_tflite(f"{tmp}/int8.tflite", "int8", calibration=nhwc_cal).read_bytes()
        t2 = time.perf_counter()
    q = result.report.tflite[-1].quantization
    with torch.no_grad():  # after transpile: YOLO's head caches anchors for the shape it saw
        refs = flat(model(held))
    x = held.permute(0, 2, 3, 1).numpy()
    outs = {v: run_tflite(b, [x]) for v, b in (("float32", f32), ("int8", i8))}
    x1 = x[:1]
    times = time_interleaved(
        {v: interpreter_call(b, x1, threads) for v, b in (("float32", f32), ("int8", i8))},
        rounds=5,
        per_round=3,
    )
    med = {v: statistics.median(t) * 1e3 for v, t in times.items()}
    return {
        "model": name,
        "input": f"{size}x{size}",
        "sqnr_db_float32_tflite": sqnr_db(refs, outs["float32"]),
        "sqnr_db_int8": sqnr_db(refs, outs["int8"]),
        "report_sqnr_db_int8_vs_float_model": q.sqnr_db,
        "worst_module": q.layers[0].module if q.layers else None,
        "size_mb_float32": len(f32) / 1e6,
        "size_mb_int8": len(i8) / 1e6,
        "latency_ms_float32": med["float32"],
        "latency_ms_int8": med["int8"],
        "transpile_s": t1 - t0,
        "int8_export_s": t2 - t1,
        "calibration_samples": n_cal,
        "held_out_samples": n_held,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--models", default=",".join(SIZES))
    p.add_argument("--calibration", type=int, default=32)
    p.add_argument("--held-out", type=int, default=8)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", default="")
    args = p.parse_args()
    pin_threads(args.threads)
    rows = []
    for name in args.models.split(","):
        row = run(name, args.calibration, args.held_out, args.threads)
        rows.append(row)
        print(json.dumps(row), flush=True)
        if args.json:
            Path(args.json).write_text(json.dumps(rows, indent=1))
    print(
        "\n| model | input | SQNR int8 vs PyTorch (dB) | float32 TFLite (dB) | size f32 / int8 (MB)"
        " | latency f32 / int8 (ms) | worst module |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['model']} | {r['input']} | {r['sqnr_db_int8']:.1f} | "
            f"{r['sqnr_db_float32_tflite']:.1f} | {r['size_mb_float32']:.1f} / "
            f"{r['size_mb_int8']:.1f} | {r['latency_ms_float32']:.1f} / "
            f"{r['latency_ms_int8']:.1f} | `{r['worst_module']}` |"
        )


if __name__ == "__main__":
    sys.exit(main())
