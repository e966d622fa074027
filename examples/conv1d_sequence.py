"""A Conv1d sequence model with padding='same', transpiled with channels-last I/O: the Keras
model takes (N, length, channels) as Keras' Conv1D does, with no Transpose at all.

    python examples/conv1d_sequence.py --out out/conv1d
"""

from __future__ import annotations

import argparse

import torch
from torch import nn

from transpiler import transpile


class SequenceNet(nn.Module):
    def __init__(self, channels=12, hidden=32, classes=5):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv1d(channels, hidden, 5, padding="same"),
            nn.BatchNorm1d(hidden),
            nn.GELU(),
            nn.Conv1d(hidden, hidden, 3, padding="same", dilation=2),
            nn.ReLU(),
            nn.Conv1d(hidden, classes, 1),
        )

    def forward(self, x):
        return self.body(x)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="out/conv1d")
    args = parser.parse_args()
    torch.manual_seed(0)
    result = transpile(
        SequenceNet().eval(), torch.randn(1, 12, 100), io_layout="nhwc", out_dir=args.out
    )
    print(result.report)
    print(f"Transpose ops: {result.report.transpose_count}; source: {result.source_path}")


if __name__ == "__main__":
    main()
