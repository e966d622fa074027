"""Export models of the torchvision zoo to ONNX, in a process of its own (never with TensorFlow
loaded: torch.onnx.export crashes then in this environment, see DESIGN.md "Process hygiene").

    python tests/onnx_frontend/export_zoo.py NAME[,NAME...] OPSET[,OPSET...] SIZE OUT_DIR

writes OUT_DIR/NAME_opOPSET.onnx (dynamic batch: dynamic_axes, TorchScript exporter,
dynamo=False) and OUT_DIR/NAME.pt (the state dict), so that a test can rebuild the same
PyTorch model with ``build(NAME)``. SIZE 0: the input size of tests/e2e/test_zoo.py's ZOO.

Models of tests/e2e/test_zoo.py's ZOO are built exactly as that test builds them (random
weights, randomized BatchNorm statistics, zero-initialized parameters re-drawn); other names
are torchvision.models factories.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torchvision

TESTS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TESTS))
sys.path.insert(0, str(TESTS / "e2e"))
from helpers import randomize_bn, randomize_zero_weights, stable_seed  # noqa: E402


def zoo() -> dict:
    """tests/e2e/test_zoo.py's ZOO (name -> Zoo(make, size, slow, torch_permutes))."""
    from test_zoo import ZOO

    return ZOO


# The TorchScript exporter writes AdaptiveAvgPool2d only where the output size divides the input
# size: at test_zoo's 64x64, VGG's and AlexNet's (2x2 -> 7x7, 1x1 -> 6x6) do not, and torch.export's
# exporter decomposes them into GatherND/Where, which the ONNX frontend does not convert. At
# 224x224 their pools divide (7x7 -> 7x7, 6x6 -> 6x6).
ONNX_SIZES = {"vgg11_bn": 224, "alexnet": 224}


def size_of(name: str) -> int:
    """The input size the ONNX tests export ``name`` at."""
    if name in ONNX_SIZES:
        return ONNX_SIZES[name]
    spec = zoo().get(name)
    return spec.size if spec is not None else 64


def build(name: str) -> torch.nn.Module:
    """The model ``name`` as tests/e2e/test_zoo.py builds it (eval mode)."""
    spec = zoo().get(name)
    if spec is not None:
        seed = stable_seed("zoo", name)
        torch.manual_seed(seed)
        model = randomize_zero_weights(randomize_bn(spec.make(), seed=seed), seed=seed)
        return model.eval()
    torch.manual_seed(0)
    model = getattr(torchvision.models, name)(weights=None)
    return randomize_bn(model.eval(), seed=0)


def main(name: str, opset: int, size: int, out_dir: str) -> None:
    model = build(name)
    out = Path(out_dir)
    torch.save(model.state_dict(), out / f"{name}.pt")
    size = size or size_of(name)
    path = str(out / f"{name}_op{opset}.onnx")
    try:
        torch.onnx.export(
            model,
            (torch.randn(1, 3, size, size),),
            path,
            opset_version=opset,
            dynamo=False,
            input_names=["image"],
            output_names=["logits"],
            dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}},
        )
    except torch.onnx.errors.SymbolicValueError as exc:
        # e.g. VGG/AlexNet at 64x64: the TorchScript exporter refuses an AdaptiveAvgPool2d that
        # upsamples; torch.export's exporter writes it (batch 2: a batch of 1 would specialize)
        print(
            f"{name}: TorchScript exporter failed ({str(exc).splitlines()[0][:120]}); dynamo=True"
        )
        batch = torch.export.Dim("batch", min=1, max=1024)
        torch.onnx.export(
            model,
            (torch.randn(2, 3, size, size),),
            path,
            opset_version=opset,
            dynamo=True,
            input_names=["image"],
            output_names=["logits"],
            dynamic_shapes=({0: batch},),
        )


if __name__ == "__main__":
    for _name in sys.argv[1].split(","):
        for _opset in sys.argv[2].split(","):
            main(_name, int(_opset), int(sys.argv[3]), sys.argv[4])
