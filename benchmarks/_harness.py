"""Shared benchmark helpers: interleaved timing (this machine is shared and noisy, so candidates
are timed round-robin in the same process and compared as ratios), thread pinning, and the
model zoo with the random-weight setup the tests use."""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "e2e")]


def torchvision_model(path: str):
    """A torchvision model by dotted path ("resnet50", "segmentation.deeplabv3_..."), random
    weights (no downloads)."""
    import torchvision

    obj = torchvision.models
    for part in path.split("."):
        obj = getattr(obj, part)
    kwargs = {"weights_backbone": None} if path.startswith("segmentation") else {}
    return obj(weights=None, **kwargs)


def pin_threads(n: int | None) -> None:
    """Same intra-op thread count for PyTorch and TensorFlow (call before either runs)."""
    if not n:
        return
    import torch

    torch.set_num_threads(n)
    torch.set_num_interop_threads(1)
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(n)
    tf.config.threading.set_inter_op_parallelism_threads(1)


def time_interleaved(
    candidates: dict[str, Callable[[], object]],
    rounds: int = 7,
    per_round: int = 5,
    warmup: int = 3,
) -> dict[str, list[float]]:
    """Seconds per call of each candidate, timed round-robin; ``per_round`` calls per turn."""
    for fn in candidates.values():
        for _ in range(warmup):
            fn()
    samples: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(rounds):
        for name, fn in candidates.items():
            for _ in range(per_round):
                start = time.perf_counter()
                fn()
                samples[name].append(time.perf_counter() - start)
    return samples


def median_ms(samples: list[float]) -> float:
    return 1000.0 * statistics.median(samples)


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import tensorflow as tf
    import torch

    return (
        f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, torch "
        f"{torch.__version__}, tensorflow {tf.__version__}"
    )
