"""Time .tflite files alternately in one process: wall and thread-CPU time, ratios to the first.

    python benchmarks/tflite_alternate.py a.tflite b.tflite [c.tflite ...] [--rounds 50]
        [--per-round 3] [--size 224]

Each file runs in ``tf.lite.Interpreter`` with its default delegate (XNNPACK), 1 thread, batch
1 (a dynamic batch resized to 1), on one NHWC float32 input (``--size``). Rounds go through the
files in order, reversed every other round, ``--per-round`` calls each. Per file: the median
wall time and the median thread-CPU time of a call (``time.thread_time``: with one interpreter
thread, the CPU time of the call, which a shared machine's load inflates far less than the wall
time) and their minima; per file after the first, the median over rounds of the per-round
ratio to the first file (each round's median call), with its quartiles.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from pathlib import Path

import numpy as np


def _interpreter(path: str):
    import tensorflow as tf

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        interp = tf.lite.Interpreter(model_path=path, num_threads=1)
    detail = interp.get_input_details()[0]
    interp.resize_tensor_input(detail["index"], [1, *detail["shape_signature"][1:]])
    interp.allocate_tensors()
    return interp


def _call(interp, x: np.ndarray) -> None:
    interp.set_tensor(interp.get_input_details()[0]["index"], x)
    interp.invoke()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("files", nargs="+")
    p.add_argument("--rounds", type=int, default=50)
    p.add_argument("--per-round", type=int, default=3)
    p.add_argument("--size", type=int, default=224)
    args = p.parse_args()
    files, per = args.files, args.per_round
    x = np.random.default_rng(0).standard_normal((1, args.size, args.size, 3), np.float32)
    interps = {f: _interpreter(f) for f in files}
    for interp in interps.values():
        for _ in range(2):
            _call(interp, x)
    wall: dict[str, list[float]] = {f: [] for f in files}
    cpu: dict[str, list[float]] = {f: [] for f in files}
    rounds: dict[str, list[tuple[float, float]]] = {f: [] for f in files}
    for r in range(args.rounds):
        for f in files if r % 2 == 0 else files[::-1]:
            for _ in range(per):
                c0, t0 = time.thread_time(), time.perf_counter()
                _call(interps[f], x)
                wall[f].append(time.perf_counter() - t0)
                cpu[f].append(time.thread_time() - c0)
            rounds[f].append((statistics.median(wall[f][-per:]), statistics.median(cpu[f][-per:])))
    first = files[0]
    w0, c0 = statistics.median(wall[first]), statistics.median(cpu[first])
    for f in files:
        w, c = statistics.median(wall[f]), statistics.median(cpu[f])
        print(
            f"{Path(f).name}: wall {1e3 * w:.1f} ms ({w / w0:.4f}), cpu {1e3 * c:.1f} ms "
            f"({c / c0:.4f}); min wall {1e3 * min(wall[f]):.1f}, min cpu {1e3 * min(cpu[f]):.1f}"
        )
    for f in files[1:]:
        pw = [a[0] / b[0] for a, b in zip(rounds[f], rounds[first], strict=True)]
        pc = [a[1] / b[1] for a, b in zip(rounds[f], rounds[first], strict=True)]
        q1, _, q3 = statistics.quantiles(pc, n=4)
        print(
            f"per-round ratio {Path(f).name} / {Path(first).name}: wall "
            f"{statistics.median(pw):.4f}, cpu {statistics.median(pc):.4f} (quartiles "
            f"{q1:.4f}-{q3:.4f})"
        )


if __name__ == "__main__":
    main()
