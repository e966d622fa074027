"""A segmentation model (LR-ASPP MobileNetV3, random weights) with NHWC I/O, exported to TFLite.

python examples/segmentation_to_tflite.py --out out/lraspp [--size 96]
"""

from __future__ import annotations

import argparse

import torch
from torchvision.models import segmentation

from transpiler import transpile


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="out/lraspp")
    parser.add_argument("--size", type=int, default=96)
    args = parser.parse_args()
    torch.manual_seed(0)
    model = segmentation.lraspp_mobilenet_v3_large(weights=None, weights_backbone=None).eval()
    example = torch.randn(1, 3, args.size, args.size)
    result = transpile(model, example, io_layout="nhwc", out_dir=args.out)
    path = result.to_tflite(result.out_dir / "model.tflite")
    variant, _, checks = result.report.tflite[-1]
    worst = max(c.max_rel for c in checks)
    print(f"Keras model: {result.source_path} (Transpose ops {result.report.transpose_count})")
    print(
        f"TFLite ({variant}): {path}, {path.stat().st_size / 1e6:.1f} MB, "
        f"worst scaled error vs PyTorch {worst:.1e}"
    )


if __name__ == "__main__":
    main()
