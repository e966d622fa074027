"""Speed and memory of conversion: transpile() per stage (trace, passes, emit, verify).

    python benchmarks/conversion.py [--models resnet50 ...] [--backend keras|tf]

Each model runs in a fresh subprocess. There the frameworks are imported (torch, torchvision,
TensorFlow, Keras, transpiler) and the PyTorch model is built (random weights); that process's
resident memory is the baseline. Then transpile() runs twice (io_layout="nchw", verify=True):
the first ("cold") pays TensorFlow's one-time start-up costs in the process, the second
("warm") is a re-conversion. Peak memory is the peak resident set (VmHWM, reset just before the
transpile) minus the resident memory just before it (after gc and malloc_trim), for the cold
run (which includes modules transpile imports once, e.g. torch's inductor for fx stack traces)
and the warm run, compared with the model's weight size (parameters and buffers, float32).

The machine's speed varies (shared, noisy): each process also times the same model's PyTorch
eager forward at batch 1 (default threads, median of 7 calls before and 7 after the
transpiles), and the warm total is given as a multiple of it ("warm / eager"), the figure to
compare across runs. The "≤ 3 s" target of issue 16 was set on a machine state where that
forward took 60.7 ms (the CPU table in BENCHMARKS.md): ≤ 49× it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

MODELS = ["resnet18", "resnet50", "mobilenet_v2", "efficientnet_b0", "convnext_tiny", "vit_b_16"]
ROOT = Path(__file__).resolve().parents[1]


def _status_kb(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def child(name: str, backend: str) -> None:
    import tempfile
    import time

    import torch
    import torchvision

    sys.path.insert(0, str(ROOT / "tests"))
    from helpers import randomize_bn

    import transpiler
    from transpiler import transpile
    from transpiler._hygiene import import_keras

    import_keras()
    torch.manual_seed(0)
    model = randomize_bn(getattr(torchvision.models, name)(weights=None)).eval()
    weight_bytes = sum(t.numel() * 4 for t in [*model.parameters(), *model.buffers()])
    x = torch.randn(1, 3, 224, 224)
    import ctypes
    import gc

    def eager_ms() -> list[float]:
        with torch.no_grad():
            model(x)
            times = []
            for _ in range(7):
                start = time.perf_counter()
                model(x)
                times.append((time.perf_counter() - start) * 1e3)
        return times

    eager = eager_ms()
    runs, peaks = [], []
    for _ in range(2):
        gc.collect()
        ctypes.CDLL("libc.so.6").malloc_trim(0)  # freed memory back to the OS: a clean baseline
        baseline = _status_kb("VmRSS")
        Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
        with tempfile.TemporaryDirectory() as out:
            start = time.perf_counter()
            result = transpile(model, x, backend=backend, out_dir=out)
            total = time.perf_counter() - start
            runs.append({"total": total, **result.report.timings})
        peaks.append((_status_kb("VmHWM") - baseline) / 1024)
        del result
    eager += eager_ms()
    result = transpile(model, x, backend=backend, out_dir=tempfile.mkdtemp())
    worst = max(c.max_rel for c in result.report.checks)
    print(
        json.dumps(
            {
                "model": name,
                "weights_mb": weight_bytes / 2**20,
                "peak_cold_mb": peaks[0],
                "peak_warm_mb": peaks[1],
                "runs": runs,
                "eager_ms": statistics.median(eager),
                "worst_scaled_error": worst,
                "transposes": result.report.transpose_count,
                "version": transpiler.__version__,
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", default=MODELS)
    parser.add_argument("--backend", default="keras")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.backend)
        return
    print(f"backend={args.backend}\n")
    print(
        "| model | weights MB | trace s | passes s | emit s | verify s | total s (cold) "
        "| total s (warm) | eager ms | warm / eager | peak MB (cold) | peak MB (warm) "
        "| warm × weights |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name in args.models:
        proc = subprocess.run(
            [sys.executable, __file__, "--child", name, "--backend", args.backend],
            capture_output=True,
            text=True,
            env={"TF_CPP_MIN_LOG_LEVEL": "3", **__import__("os").environ},
        )
        if proc.returncode != 0:
            print(f"| {name} | failed: {proc.stderr.strip().splitlines()[-1][:200]} |")
            continue
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        cold, warm = r["runs"]
        print(
            f"| {name} | {r['weights_mb']:.1f} | {cold['trace']:.2f} | {cold['passes']:.2f} "
            f"| {cold['emit']:.2f} | {cold['verify']:.2f} | {cold['total']:.2f} "
            f"| {warm['total']:.2f} | {r['eager_ms']:.1f} "
            f"| {warm['total'] * 1e3 / r['eager_ms']:.0f}× "
            f"| {r['peak_cold_mb']:.0f} | {r['peak_warm_mb']:.0f} "
            f"| {r['peak_warm_mb'] / r['weights_mb']:.2f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
