"""Transpose counts of the torchvision zoo (the README table), next to PyTorch's own permutes.

    python benchmarks/zoo_transposes.py [--models resnet50 vit_b_16 ...] > table.md

Uses the model list of tests/e2e/test_zoo.py (same sizes, random weights), transpiles each model
for io_layout "nchw" and "nhwc", and prints a markdown table: TF Transpose ops in the graph of
tf.function(model), IR ops, and the numeric check's worst scaled error.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "e2e")]

from helpers import randomize_bn, randomize_zero_weights  # noqa: E402
from test_zoo import ZOO  # noqa: E402

from transpiler import transpile  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", default=list(ZOO))
    args = parser.parse_args()
    print(
        "| model | input | PyTorch permutes | Transpose (nchw) | Transpose (nhwc) "
        "| IR ops | worst scaled error | transpile s |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name in args.models:
        spec = ZOO[name]
        torch.manual_seed(0)
        model = randomize_zero_weights(randomize_bn(spec.make())).eval()
        x = torch.randn(1, 3, spec.size, spec.size)
        counts, worst, ops, seconds = [], 0.0, 0, 0.0
        for layout in ("nchw", "nhwc"):
            with tempfile.TemporaryDirectory() as out:
                start = time.perf_counter()
                try:
                    result = transpile(model, x, io_layout=layout, out_dir=out)
                except Exception as exc:  # noqa: BLE001 - a table row, not a crash
                    counts.append(f"fails: {type(exc).__name__}")
                    continue
                seconds = max(seconds, time.perf_counter() - start)
                counts.append(str(result.report.transpose_count))
                worst = max([worst] + [c.max_rel for c in result.report.checks])
                ops = len(result.graph.nodes)
        permutes = spec.torch_permutes if spec.torch_permutes is not None else 0
        print(
            f"| {name} | {spec.size}x{spec.size} | {permutes} | {counts[0]} | {counts[1]} "
            f"| {ops} | {worst:.1e} | {seconds:.1f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
