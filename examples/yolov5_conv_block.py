"""YOLOv5's Conv block (Conv2d(k=3, s=2, padding=k//2, bias=False) + BatchNorm2d + SiLU).

On even inputs TF's 'same' padding would pad (0, 1) where PyTorch pads (1, 1): the transpiler
emits an explicit ZeroPadding2D + 'valid' conv there (exact), and 'same' where they agree.

    python examples/yolov5_conv_block.py --out out/yolov5_conv
"""

from __future__ import annotations

import argparse

import torch
from torch import nn

from transpiler import transpile


class Conv(nn.Module):
    def __init__(self, c1, c2, k=1, s=1):
        super().__init__()
        self.conv = nn.Conv2d(c1, c2, k, s, k // 2, bias=False)
        self.bn = nn.BatchNorm2d(c2)
        self.act = nn.SiLU()

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="out/yolov5_conv")
    args = parser.parse_args()
    torch.manual_seed(0)
    model = nn.Sequential(Conv(3, 16, 3, 2), Conv(16, 32, 3, 2), Conv(32, 32, 1, 1)).eval()
    for size in (64, 65):
        result = transpile(
            model, torch.randn(1, 3, size, size), out_dir=f"{args.out}_{size}", io_layout="nhwc"
        )
        source = result.source_path.read_text()
        same = source.count('padding="same"')
        print(
            f"{size}x{size}: ZeroPadding2D layers {source.count('ZeroPadding2D(')}, "
            f"'same' convs {same}, "
            f"worst error {max(c.max_abs for c in result.report.checks):.2e}, "
            f"Transpose ops {result.report.transpose_count} -> {result.source_path}"
        )


if __name__ == "__main__":
    main()
