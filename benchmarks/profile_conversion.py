"""cProfile of transpile + float32 to_tflite of one torchvision model, in this process.

    python benchmarks/profile_conversion.py convnext_tiny [--lines 70]

Prints wall and CPU time (process + children, user + system) of the transpile and of
to_tflite, the report's stage timings, and the profile sorted by cumulative time; the raw
profile goes to /tmp/profile_<model>.prof.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import resource
import tempfile
import time
from pathlib import Path

import torch
import torchvision


def _cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("model", help="a torchvision.models builder name, e.g. convnext_tiny")
    parser.add_argument("--lines", type=int, default=70, help="profile rows to print")
    args = parser.parse_args()
    from transpiler import transpile

    torch.manual_seed(0)
    model = getattr(torchvision.models, args.model)(weights=None).eval()
    x = torch.randn(1, 3, 224, 224)
    profile = cProfile.Profile()
    t0, c0 = time.perf_counter(), _cpu()
    profile.enable()
    result = transpile(model, x)
    t1, c1 = time.perf_counter(), _cpu()
    with tempfile.TemporaryDirectory() as tmp:
        result.to_tflite(Path(tmp) / f"{args.model}.tflite")
    profile.disable()
    t2, c2 = time.perf_counter(), _cpu()
    print(
        f"{args.model}: transpile wall {t1 - t0:.1f} s cpu {c1 - c0:.1f} s; to_tflite wall "
        f"{t2 - t1:.1f} s cpu {c2 - c1:.1f} s; total wall {t2 - t0:.1f} s cpu {c2 - c0:.1f} s"
    )
    print("stages:", {k: round(v, 2) for k, v in result.report.timings.items()})
    profile.dump_stats(f"/tmp/profile_{args.model}.prof")
    pstats.Stats(profile).sort_stats("cumulative").print_stats(args.lines)


if __name__ == "__main__":
    main()
