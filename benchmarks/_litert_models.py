"""The models of the LiteRT-Torch comparisons, and the LiteRT-Torch side of them.

Imports torch (and torchvision / ultralytics) only, so that both pythons can run it: ours (the
project venv: builds the models, saves their state_dicts) and LiteRT-Torch's throwaway venv,
where it runs as a script that loads a saved state_dict into a freshly built model and converts it
with ``litert_torch`` (float32, or INT8 through LiteRT-Torch's own PT2E quantizer), timing the
conversion. It prints one JSON line with the timings.

    /tmp/litert-venv/bin/python benchmarks/_litert_models.py --model resnet18 \\
        --state W.pt --out resnet18.tflite [--channel-last] [--int8 CALIBRATION.npy]
        [--aeq FLOAT.tflite]   # with --int8: AI Edge Quantizer on that float file instead
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Spec:
    size: int  # square input, 3 channels
    io_layout: str | tuple[str, str]  # ours; LiteRT-Torch gets the same I/O layouts
    channel_last_outputs: tuple[int, ...]  # flattened outputs that are NCHW feature maps


SPECS = {
    "resnet18": Spec(224, "nhwc", ()),
    "mobilenet_v2": Spec(224, "nhwc", ()),
    "mobilenet_v3_small": Spec(224, "nhwc", ()),
    "efficientnet_b0": Spec(224, "nhwc", ()),
    "convnext_tiny": Spec(224, "nhwc", ()),
    "shufflenet_v2_x1_0": Spec(224, "nhwc", ()),
    "vit_b_16": Spec(224, "nhwc", ()),
    "deeplabv3_mobilenet_v3_large": Spec(224, "nhwc", (0,)),
    # YOLO's outputs are (N, 84, anchors) and the three raw head maps: kept as PyTorch gives them
    "yolo11n": Spec(320, ("nhwc", "nchw"), ()),
}


def kept_rows(path) -> dict:
    """The rows a previous run saved at ``path`` (a JSON list), by model name."""
    return {r["model"]: r for r in json.loads(path.read_text())} if path.exists() else {}


def run_rows(names: str, bench, args, path, kept: dict) -> list[dict]:
    """``bench(name, args)`` per comma-separated model name, a row each (an error row where it
    fails, the others still run), printed as it comes; unless ``args.litert_only``, each row is
    kept in ``path`` by model (with the time it was measured), in ``SPECS`` order."""
    rows = []
    for name in names.split(","):
        try:
            row = bench(name, args)
        except Exception as exc:  # noqa: BLE001 - a row saying why, the others still run
            row = {"model": name, "error": f"{type(exc).__name__}: {exc}"}
        print(json.dumps(row), flush=True)
        rows.append(row)
        if args.litert_only:
            continue
        kept[name] = row | {"measured": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
        path.write_text(json.dumps([kept[k] for k in SPECS if k in kept], indent=1))
    return rows


def cpu_seconds() -> float:
    """CPU time of this process (all threads) and of its children that have finished (our
    TFLite conversion runs TF's converter in a child process)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def build(name: str) -> torch.nn.Module:
    """A fresh model with random weights (no downloads), eval mode."""
    torch.manual_seed(0)
    if name == "yolo11n":
        from ultralytics.nn.tasks import DetectionModel

        return DetectionModel("yolo11n.yaml", verbose=False).eval()
    import torchvision

    if name.startswith("deeplabv3"):
        fn = getattr(torchvision.models.segmentation, name)
        return fn(weights=None, weights_backbone=None).eval()
    return getattr(torchvision.models, name)(weights=None).eval()


class _FlatOutputs(torch.nn.Module):
    """The model with its outputs flattened to a tuple (pytree order), as both converters see
    them; LiteRT-Torch's channel-last I/O wrapper indexes outputs in this order."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x):
        return tuple(_flatten(self.model(x)))


def _flatten(out) -> list[torch.Tensor]:
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, dict):
        out = list(out.values())
    return [t for o in out for t in _flatten(o)]


def litert_convert(
    name: str, state: str, out: str, channel_last: bool, calibration: str | None
) -> dict:
    """Load the state_dict into a fresh model and convert it with LiteRT-Torch; seconds spent in
    the conversion (``convert``: tracing, lowering, (quantizing), flatbuffer) and in writing."""
    import litert_torch

    spec = SPECS[name]
    model = build(name)
    model.load_state_dict(torch.load(state, weights_only=True))
    model = _FlatOutputs(model).eval()
    sample = (torch.randn(1, 3, spec.size, spec.size),)
    if channel_last:  # NHWC input (and NHWC feature-map outputs), as ours is exported
        model = litert_torch.to_channel_last_io(
            model, args=[0], outputs=list(spec.channel_last_outputs)
        )
        sample = (sample[0].permute(0, 2, 3, 1).contiguous(),)
    t0, c0 = time.perf_counter(), cpu_seconds()
    kwargs = {}
    if calibration is not None:
        model, kwargs = _pt2e_int8(model, sample, calibration, channel_last)
    t1 = time.perf_counter()
    edge = litert_torch.convert(model, sample, **kwargs)
    t2 = time.perf_counter()
    edge.export(out)
    t3 = time.perf_counter()
    times = {"quantize_s": t1 - t0, "convert_s": t2 - t1, "export_s": t3 - t2, "total_s": t3 - t0}
    return times | {"cpu_s": cpu_seconds() - c0}  # all threads' and children's CPU time


def _pt2e_int8(model, sample, calibration: str, channel_last: bool):
    """LiteRT-Torch's documented static INT8 path: its PT2E quantizer (symmetric, per-channel
    int8 weights, int8 activations), calibrated on the given NCHW batches."""
    import numpy as np
    from litert_torch.quantize.pt2e_quantizer import (
        PT2EQuantizer,
        get_symmetric_quantization_config,
    )
    from litert_torch.quantize.quant_config import QuantConfig
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    quantizer = PT2EQuantizer().set_global(
        get_symmetric_quantization_config(is_per_channel=True, is_dynamic=False)
    )
    exported = torch.export.export(model, sample).module()
    prepared = prepare_pt2e(exported, quantizer)
    with torch.no_grad():
        for batch in np.load(calibration):
            x = torch.from_numpy(batch[None])
            prepared(x.permute(0, 2, 3, 1).contiguous() if channel_last else x)
    quantized = convert_pt2e(prepared, fold_quantize=False)
    return quantized, {"quant_config": QuantConfig(pt2e_quantizer=quantizer)}


def aeq_int8(float_file: str, calibration: str, out: str, channel_last: bool) -> dict:
    """LiteRT's other INT8 route: AI Edge Quantizer's ``static_wi8_ai8`` recipe (int8 weights,
    int8 activations, min/max calibration) applied to LiteRT-Torch's float32 file."""
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter
    from ai_edge_quantizer import quantizer, recipe

    (signature, io), *_ = Interpreter(model_path=float_file).get_signature_list().items()
    (arg,) = io["inputs"]
    images = np.load(calibration)
    if channel_last:
        images = np.ascontiguousarray(images.transpose(0, 2, 3, 1))
    t0 = time.perf_counter()
    qt = quantizer.Quantizer(float_file)
    qt.load_quantization_recipe(recipe.static_wi8_ai8())
    calibrated = qt.calibrate({signature: [{arg: x[None]} for x in images]})
    blob = qt.quantize(calibrated).quantized_model
    t1 = time.perf_counter()
    with open(out, "wb") as f:
        f.write(blob)
    return {"quantize_s": t1 - t0, "convert_s": 0.0, "export_s": 0.0, "total_s": t1 - t0}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, choices=sorted(SPECS))
    p.add_argument("--state", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--channel-last", action="store_true")
    p.add_argument("--int8", default=None, help="calibration images, NCHW .npy (N, 3, H, W)")
    p.add_argument("--aeq", default=None, help="quantize this float .tflite with AI Edge Quantizer")
    args = p.parse_args()
    if args.aeq:
        row = aeq_int8(args.aeq, args.int8, args.out, args.channel_last)
    else:
        row = litert_convert(args.model, args.state, args.out, args.channel_last, args.int8)
    print("LITERT_RESULT " + json.dumps(row), flush=True)


if __name__ == "__main__":
    sys.exit(main())
