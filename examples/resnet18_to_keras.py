"""Demo: transpile torchvision ResNet-18 (random weights) into readable Keras 3 source.

    python examples/resnet18_to_keras.py --out out/resnet18 [--io-layout nhwc]

Writes model.py (build_model/load_model), model.weights.h5 and report.md, and prints where they
are and the numeric check against PyTorch.
"""

from __future__ import annotations

import argparse

import torch  # torch first, then the transpiler (which loads Keras/TensorFlow lazily)
import torchvision

from transpiler import transpile


def randomize_batchnorm(model: torch.nn.Module, seed: int = 0) -> None:
    """Random BN statistics, so that folding is exercised as with trained weights."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(n, generator=g) * 0.1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="out/resnet18", help="output folder")
    parser.add_argument("--io-layout", default="nchw", choices=["nchw", "nhwc"])
    parser.add_argument("--size", type=int, default=224, help="input height and width")
    args = parser.parse_args()

    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None).eval()
    randomize_batchnorm(model)
    example = torch.randn(1, 3, args.size, args.size)

    result = transpile(model, example, out_dir=args.out, io_layout=args.io_layout)

    lines = result.source_path.read_text().count("\n")
    print(f"Keras source : {result.source_path} ({lines} lines)")
    print(f"weights      : {result.weights_path}")
    print(f"report       : {result.out_dir / 'report.md'}")
    print(result.report)


if __name__ == "__main__":
    main()
