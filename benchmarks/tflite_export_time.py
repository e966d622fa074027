"""CPU time of the float32 ``to_tflite`` export, per model, and what TF's buffer dedup would add.

For each model (the benchmark models of ``_litert_models``, or ``vit4``: a 4-layer ViT-B with
a random head, a fast proxy of vit_b_16), random weights with BatchNorms randomized: ``transpile``
(with the benchmark's I/O layout) then ``result.to_tflite(path)``, timed in process CPU seconds
(``time.process_time``: all threads, far less bound to a shared machine's load than the wall
time, which is printed beside it). Per model also: whether the MLIR converter's output had two
equal buffers (``_distinct_buffers``: when not, TF's dedup step is skipped), and the size of the
file after TF's ``deduplicate_readonly_buffers`` (what that step would have made of it).

    python benchmarks/tflite_export_time.py vit4 resnet18 mobilenet_v2
    python benchmarks/tflite_export_time.py vit_b_16 --profile 30   # cProfile, CPU-time timer
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import tempfile
import time
from pathlib import Path

import torch
import torchvision
from _harness import ROOT  # noqa: F401 - puts tests/ on sys.path
from _litert_models import SPECS, build


def model_and_input(name: str) -> tuple[torch.nn.Module, torch.Tensor, object]:
    from helpers import randomize_bn

    torch.manual_seed(0)
    if name == "vit4":
        model = torchvision.models.VisionTransformer(
            image_size=224, patch_size=16, num_layers=4, num_heads=12, hidden_dim=768, mlp_dim=3072
        )
        torch.nn.init.normal_(model.heads.head.weight, std=0.02)  # torchvision's is zeros
        return model.eval(), torch.randn(1, 3, 224, 224), "nhwc"
    spec = SPECS[name]
    return randomize_bn(build(name)).eval(), torch.randn(1, 3, spec.size, spec.size), spec.io_layout


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("models", nargs="+", help=f"vit4 or any of {sorted(SPECS)}")
    p.add_argument("--profile", type=int, default=0, help="print the top N of a cProfile")
    args = p.parse_args()

    from tensorflow.lite.python.convert import deduplicate_readonly_buffers

    import transpiler.tflite as tflite
    from transpiler import transpile

    seen: list[bool] = []
    distinct = tflite._distinct_buffers
    tflite._distinct_buffers = lambda blob: seen.append(distinct(blob)) or seen[-1]
    for name in args.models:
        model, x, io_layout = model_and_input(name)
        with tempfile.TemporaryDirectory() as out:
            result = transpile(model, x, out_dir=out, io_layout=io_layout)
            profile = cProfile.Profile(time.process_time) if args.profile else None
            cpu, wall = time.process_time(), time.perf_counter()
            if profile:
                profile.enable()
            path = result.to_tflite(Path(out) / "model.tflite")
            if profile:
                profile.disable()
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            blob = path.read_bytes()
            deduplicated = len(deduplicate_readonly_buffers(blob))
        checks = result.report.tflite[-1].checks
        print(
            f"{name}: to_tflite {cpu:.2f} s CPU ({wall:.2f} s wall), {len(blob)} bytes, "
            f"distinct buffers {seen[-1] if seen else '?'}, TF dedup {deduplicated - len(blob):+d}"
            f" bytes, worst check {max(c.max_abs for c in checks):.2g}",
            flush=True,
        )
        if profile:
            pstats.Stats(profile).sort_stats("cumtime").print_stats(args.profile)


if __name__ == "__main__":
    main()
