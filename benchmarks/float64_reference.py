"""The numeric check's float64 reference: Float64View against a float64 copy of the model.

    python benchmarks/float64_reference.py [resnet50 convnext_tiny ...]

For each torchvision model (random weights, randomized BatchNorm statistics, eval) and batch
sizes 1 and 3: whether ``Float64View(model).run(model, x64)`` equals the float64 copy's output
(``float64_copy(model)`` run under ``fast_depthwise``, as the check did before) bit for bit,
and the time of each (the copy's including making it), min of 3, 2 torch threads.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch
import torchvision

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from helpers import randomize_bn  # noqa: E402

from transpiler._float64 import Float64View, fast_depthwise  # noqa: E402
from transpiler.verify import float64_copy  # noqa: E402


def main(names: list[str]) -> None:
    torch.set_num_threads(2)
    for name in names:
        torch.manual_seed(0)
        model = randomize_bn(getattr(torchvision.models, name)(weights=None)).eval()
        for batch in (1, 3):
            x = torch.randn(batch, 3, 224, 224).double()
            copy_s, view_s = [], []
            for _ in range(3):
                start = time.perf_counter()
                copied = float64_copy(model)
                with torch.no_grad(), fast_depthwise():
                    want = copied(x)
                del copied
                copy_s.append(time.perf_counter() - start)
                start = time.perf_counter()
                got = Float64View(model).run(model, x)
                view_s.append(time.perf_counter() - start)
            print(
                f"{name} batch {batch}: bit-identical {torch.equal(want, got)}; "
                f"copy + run {min(copy_s):.3f} s, view run {min(view_s):.3f} s",
                flush=True,
            )


if __name__ == "__main__":
    main(sys.argv[1:] or ["resnet50", "convnext_tiny", "vit_b_16", "efficientnet_b0"])
