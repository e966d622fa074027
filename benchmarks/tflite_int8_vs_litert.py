"""Full-integer INT8 TFLite side by side with LiteRT-Torch's INT8 path (issue 14).

Same model and weights (a saved state_dict; random weights, BatchNorm statistics randomized as
the tests do), same calibration data, same held-out data as benchmarks/tflite_int8.py:
calibration = standard-normal images from seed 1, held-out = standard-normal images from seed 2.

- ours: ``transpile`` + ``result.to_tflite(path, variant="int8", calibration=...)`` (int8
  weights per channel, int8 activations, float I/O), NHWC input;
- LiteRT-Torch, two routes, both run in subprocesses with LiteRT-Torch's python
  (benchmarks/_litert_models.py), NHWC input through ``litert_torch.to_channel_last_io``:
  "pt2e", its documented PT2E path (``litert_torch.quantize.pt2e_quantizer.PT2EQuantizer`` with
  ``get_symmetric_quantization_config(is_per_channel=True, is_dynamic=False)``, torchao's
  ``prepare_pt2e`` / calibration / ``convert_pt2e``, then ``litert_torch.convert(...,
  quant_config=QuantConfig(pt2e_quantizer=...))``); "aeq", AI Edge Quantizer (a dependency of
  litert-torch) with its ``static_wi8_ai8`` recipe on LiteRT-Torch's float32 file (the one
  benchmarks/tflite_vs_litert.py keeps in ``--float-work``; made here if missing).

Per file: end-to-end SQNR against float PyTorch on the held-out inputs, size, ops left in float
(ops with a float32 output other than DEQUANTIZE), and latency (tf.lite.Interpreter, XNNPACK,
one thread, batch 1, the three files timed round-robin, median). Both LiteRT files have int8
I/O; ours float I/O: inputs are quantized / outputs dequantized with the files' parameters.

    python benchmarks/tflite_int8_vs_litert.py
    python benchmarks/tflite_int8_vs_litert.py --models resnet18,yolo11n --calibration 16 \\
        --held-out 4 [--litert-python /tmp/litert-venv/bin/python] [--work /tmp/int8_vs_litert]
    python benchmarks/tflite_int8_vs_litert.py --litert-only   # LiteRT files alone, first
    python benchmarks/tflite_int8_vs_litert.py --reuse-litert  # then take them from --work
    python benchmarks/tflite_int8_vs_litert.py --models yolo11n --live-scores \\
        --work /tmp/int8_live --float-work /tmp/tflite_live   # scores spread over 0..1

For YOLO11n the class scores (rows 4: of its output, 0..1, next to boxes in pixels) are also
measured on their own ("scores SQNR dB"). With random weights they sit near 1e-4 and read 0 in
any int8 export; ``--live-scores`` zeroes the class-logit biases so they spread over 0..1 as a
trained detector's do (rows in ``tflite_int8_vs_litert_live_scores.json``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from _harness import ROOT
from _litert_models import SPECS, kept_rows, run_rows
from tflite_vs_litert import (
    LITERT_PYTHON,
    alternating,
    convert_litert,
    interpreter,
    nhwc,
    prepared_model,
    references,
    run_file,
    state_digest,
)

from transpiler.quantize import quantize_input
from transpiler.tflite import run_tflite

MODELS = ("resnet18", "mobilenet_v2", "efficientnet_b0", "yolo11n")


def data(size: int, n_cal: int, n_held: int) -> tuple[np.ndarray, np.ndarray]:
    """(calibration, held-out) NCHW images, drawn exactly as benchmarks/tflite_int8.py does."""
    gen = torch.Generator().manual_seed(1)
    cal = torch.cat([torch.randn(4, 3, size, size, generator=gen) for _ in range(n_cal // 4)])
    held = torch.randn(n_held, 3, size, size, generator=torch.Generator().manual_seed(2))
    return cal.numpy(), held.numpy()


def outputs_per_sample(path: Path, xs: np.ndarray) -> list[list[np.ndarray]]:
    """The file's float outputs for each sample (batch 1). Integer I/O (LiteRT-Torch's PT2E
    files take and give int8) is quantized / dequantized with the tensors' parameters."""
    blob = path.read_bytes()
    return [run_tflite(blob, [x[None]]) for x in xs]


def timed_call(path: Path, x: np.ndarray):
    """A batch-1 call of the file (XNNPACK, one thread) on ``x``, quantized if its input is."""
    interp = interpreter(path)
    (inp,) = interp.get_input_details()
    xq = quantize_input(x, inp)
    return lambda: run_file(interp, xq)


# a part of one output measured on its own: (output position, index into it); YOLO's output
# is cat([boxes (0..320 px), class scores (0..1)], 1): an error on the boxes' scale hides the
# scores in the end-to-end SQNR
SCORES = {"yolo11n": (0, np.s_[:, 4:])}


def live_scores(model) -> None:
    """A detector's class-logit biases set to 0: its scores spread over 0..1 as a trained
    detector's do where it sees objects (random weights with ultralytics' bias init give scores
    near 1e-4, under the int8 sigmoid's own step 1/256, so any int8 export reads 0 there)."""
    heads = [m for m in model.modules() if hasattr(m, "cv3") and hasattr(m, "nc")]
    if not heads:
        raise SystemExit("--live-scores takes a detector (a module with cv3 and nc)")
    with torch.no_grad():
        for head in heads:
            for branch in head.cv3:
                branch[-1].bias.zero_()


def sqnr_db(
    refs: list[list[np.ndarray]], outs: list[list[np.ndarray]], part: tuple | None = None
) -> float:
    """End-to-end SQNR over every output and sample; outputs matched to references by shape.
    With ``part`` (output position, index), over that part of that output only."""
    signal = noise = 0.0
    for ref_s, out_s in zip(refs, outs, strict=True):
        pool = list(out_s)
        for j, r in enumerate(ref_s):
            k = next(i for i, o in enumerate(pool) if o.shape == r.shape)
            o = pool.pop(k).astype(np.float64)
            if part is not None:
                if j != part[0]:
                    continue
                r, o = r[part[1]], o[part[1]]
            signal += float((r.astype(np.float64) ** 2).sum())
            noise += float(((o - r) ** 2).sum())
    return 10 * np.log10(signal / max(noise, 1e-30))


def float_ops(path: Path) -> int:
    """Ops computing in float: a float32 output, other than DEQUANTIZE (the edges)."""
    interp = interpreter(path, delegates=False)
    dtypes = {t["index"]: t["dtype"] for t in interp.get_tensor_details()}
    return sum(
        op["op_name"] != "DEQUANTIZE" and any(dtypes.get(i) == np.float32 for i in op["outputs"])
        for op in interp._get_ops_details()
    )


def litert_int8(route: str, name: str, state, digest: str, files: dict, cal_file, args) -> dict:
    """One LiteRT INT8 file ("pt2e" or "aeq"), converted in LiteRT-Torch's venv; its timing."""
    py, reuse = args.litert_python, args.reuse_litert
    calibrate = ("--int8", str(cal_file))
    if route == "pt2e":
        return convert_litert(name, state, digest, files["pt2e"], py, reuse, calibrate)
    float_file = Path(args.float_work) / f"{name}.litert.tflite"  # kept by tflite_vs_litert.py
    convert_litert(name, state, digest, float_file, py, reuse=True)
    aeq = (*calibrate, "--aeq", str(float_file))
    return convert_litert(name, state, digest, files["aeq"], py, reuse, aeq)


def bench(name: str, args) -> dict:
    from transpiler import transpile

    spec = SPECS[name]
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    model = prepared_model(name)
    if args.live_scores:
        live_scores(model)
    state = work / f"{name}.pt"
    torch.save(model.state_dict(), state)
    cal, held = data(spec.size, args.calibration, args.held_out)
    cal_file = work / f"{name}.cal{len(cal)}.npy"
    np.save(cal_file, cal)
    files = {
        "ours": work / f"{name}.ours.int8.tflite",
        "pt2e": work / f"{name}.litert.int8.tflite",
        "aeq": work / f"{name}.litert.aeq.tflite",
    }
    timing, failed = {}, {}
    for route in ("pt2e", "aeq"):
        try:
            timing[route] = litert_int8(
                route, name, state, state_digest(model), files, cal_file, args
            )
        except RuntimeError as exc:  # that route's row says why; the others still run
            failed[route] = {"error": str(exc).splitlines()[-1][:300], "log": str(exc)[-2000:]}
            del files[route]
    seconds = {k: t["total_s"] for k, t in timing.items()}
    if args.litert_only:
        return {"model": name, "litert": timing}

    example = torch.randn(1, 3, spec.size, spec.size, generator=torch.Generator().manual_seed(3))
    result = transpile(model, example, io_layout=spec.io_layout, out_dir=work / f"{name}.ours")
    t0 = time.perf_counter()
    batches = [nhwc(cal[k : k + 4]) for k in range(0, len(cal), 4)]
    result.to_tflite(files["ours"], "int8", calibration=batches)
    seconds["ours"] = time.perf_counter() - t0
    report = result.report.tflite[-1].quantization

    refs = [references(model, name, torch.from_numpy(h[None])) for h in held]
    xs = nhwc(held)
    row: dict = {"model": name, "input": f"{spec.size}x{spec.size}"}
    row["calibration_samples"], row["held_out_samples"] = len(cal), len(held)
    for k, path in files.items():
        outs = outputs_per_sample(path, xs)
        row[k] = {
            "sqnr_db": sqnr_db(refs, outs),
            "size_mb": path.stat().st_size / 1e6,
            "float_ops": float_ops(path),
            "quantize_s": seconds[k],
        }
        if name in SCORES:
            row[k]["scores_sqnr_db"] = sqnr_db(refs, outs, SCORES[name])
    row |= failed
    row["ours"]["worst_module"] = report.layers[0].module if report.layers else None
    times = alternating(
        {k: timed_call(p, xs[:1]) for k, p in files.items()},
        rounds=args.rounds,
        per_round=args.per_round,
    )
    for k, samples in times.items():
        row[k]["latency_ms"] = 1e3 * statistics.median(samples)
    return row


def table(rows: list[dict]) -> str:
    sides = ("ours", "pt2e", "aeq")
    lines = [
        "| model | SQNR dB | scores SQNR dB | MB | latency ms | ops in float | quantize s |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:

        def cells(key: str, fmt: str, r=r) -> str:
            if not any(key in r[k] for k in sides if "error" not in r[k]):
                return "-"
            return " / ".join("fails" if "error" in r[k] else format(r[k][key], fmt) for k in sides)

        lines.append(
            f"| {r['model']} {r['input']} | {cells('sqnr_db', '.2f')} "
            f"| {cells('scores_sqnr_db', '.2f')} | {cells('size_mb', '.1f')} "
            f"| {cells('latency_ms', '.1f')} | {cells('float_ops', 'd')} "
            f"| {cells('quantize_s', '.0f')} |"
        )
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default=",".join(MODELS))
    p.add_argument("--calibration", type=int, default=16)
    p.add_argument("--held-out", type=int, default=4)
    p.add_argument("--litert-python", default=LITERT_PYTHON)
    p.add_argument("--work", default="/tmp/int8_vs_litert")
    p.add_argument("--float-work", default="/tmp/tflite_vs_litert", help="LiteRT float files")
    p.add_argument("--reuse-litert", action="store_true", help="keep LiteRT files of same data")
    p.add_argument("--litert-only", action="store_true", help="only make the LiteRT files")
    p.add_argument("--print", action="store_true", help="print the tables of --json and stop")
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--per-round", type=int, default=3)
    p.add_argument("--json", default=None, help="rows kept here (default: benchmarks/results)")
    p.add_argument(
        "--live-scores",
        action="store_true",
        help="detectors: class-logit biases 0 (see live_scores)",
    )
    args = p.parse_args()
    if args.json is None:
        stem = "tflite_int8_vs_litert" + ("_live_scores" if args.live_scores else "")
        args.json = str(ROOT / f"benchmarks/results/{stem}.json")
    torch.set_num_threads(1)
    out = Path(args.json)
    kept = kept_rows(out)
    if args.print:
        print(table([r for r in kept.values() if "error" not in r]))
        return
    rows = run_rows(args.models, bench, args, out, kept)
    if not args.litert_only:
        print("\nEach cell: ours / LiteRT-Torch PT2E / LiteRT-Torch float + AI Edge Quantizer")
        print(table([r for r in rows if "error" not in r]))
    for r in rows:
        if "error" in r:
            print(f"\n{r['model']}: {r['error']}")


if __name__ == "__main__":
    sys.exit(main())
