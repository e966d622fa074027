"""The nine convolution kinds users build from nn.Conv2d, each transpiled and checked.

python examples/conv_kinds.py
"""

from __future__ import annotations

import tempfile

import torch
import torch.nn.functional as F
from torch import nn

from transpiler import transpile


class DynamicKernel(nn.Module):
    """A kernel computed in forward() from the input (CondConv style, per sample)."""

    def __init__(self):
        super().__init__()
        self.experts = nn.Parameter(torch.randn(3, 8 * 8 * 3 * 3) * 0.1)
        self.route = nn.Linear(8, 3)

    def forward(self, x):
        b, c, h, w = x.shape
        r = torch.sigmoid(self.route(x.mean((2, 3))))
        weight = torch.matmul(r, self.experts).view(b * 8, c, 3, 3)
        out = F.conv2d(x.reshape(1, b * c, h, w), weight, None, 1, 1, 1, groups=b)
        return out.view(b, 8, h, w)


KINDS = {
    "standard": nn.Conv2d(8, 16, 3, padding=1),
    "pointwise 1x1": nn.Conv2d(8, 16, 1),
    "asymmetric (3,1)+(1,5)": nn.Sequential(
        nn.Conv2d(8, 8, (3, 1), padding=(1, 0)), nn.Conv2d(8, 16, (1, 5), padding=(0, 2))
    ),
    "dilated": nn.Conv2d(8, 16, 3, padding=2, dilation=2),
    "depthwise (multiplier 2)": nn.Conv2d(8, 16, 3, padding=1, groups=8),
    "grouped": nn.Conv2d(8, 16, 3, padding=1, groups=4),
    "depthwise-separable": nn.Sequential(
        nn.Conv2d(8, 8, 3, padding=1, groups=8), nn.Conv2d(8, 16, 1)
    ),
    "transposed": nn.ConvTranspose2d(8, 16, 4, stride=2, padding=1),
    "dynamic (per-sample kernels)": DynamicKernel(),
}


def main() -> None:
    torch.manual_seed(0)
    for name, model in KINDS.items():
        with tempfile.TemporaryDirectory() as out:
            result = transpile(
                model.eval(), torch.randn(2, 8, 15, 16), io_layout="nhwc", out_dir=out
            )
            worst = max(c.max_rel for c in result.report.checks)
            print(
                f"{name:30s} scaled error {worst:.1e}, Transpose ops "
                f"{result.report.transpose_count}"
            )


if __name__ == "__main__":
    main()
