"""Export a torchvision model to ONNX, in a process of its own (never with TensorFlow loaded:
torch.onnx.export crashes then in this environment, see DESIGN.md "Process hygiene").

    python tests/onnx_frontend/export_zoo.py NAME OPSET SIZE OUT_DIR

writes OUT_DIR/NAME_opOPSET.onnx (dynamic batch: dynamic_axes, TorchScript exporter,
dynamo=False) and OUT_DIR/NAME.pt (the state dict: random weights, randomized BatchNorm
statistics), so that a test can rebuild the same PyTorch model.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torchvision

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from helpers import randomize_bn  # noqa: E402


def build(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    kwargs = (
        {"aux_logits": False, "init_weights": True} if name in ("googlenet", "inception_v3") else {}
    )
    model = getattr(torchvision.models, name)(weights=None, **kwargs)
    return randomize_bn(model.eval(), seed=0)


def main(name: str, opset: int, size: int, out_dir: str) -> None:
    model = build(name)
    out = Path(out_dir)
    torch.save(model.state_dict(), out / f"{name}.pt")
    x = torch.randn(1, 3, size, size)
    torch.onnx.export(
        model,
        (x,),
        str(out / f"{name}_op{opset}.onnx"),
        opset_version=opset,
        dynamo=False,
        input_names=["image"],
        output_names=["logits"],
        dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}},
    )


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
