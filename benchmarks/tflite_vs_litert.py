"""Float32 TFLite side by side with LiteRT-Torch (Google's PyTorch -> TFLite converter).

For each model (random weights, BatchNorm statistics randomized as the tests do), the same
weights go to both converters through a saved state_dict:

- ours: ``transpile`` (with its numeric check) + ``result.to_tflite(path)`` (float32, checked
  again), timed inside a fresh subprocess of this python (``--ours-worker``);
- LiteRT-Torch: ``litert_torch.convert`` + ``export``, timed inside a subprocess run with
  LiteRT-Torch's python (a throwaway venv, see BENCHMARKS.md), with the same I/O layout
  (``litert_torch.to_channel_last_io`` for NHWC input and NHWC feature-map outputs).
  The two conversions run one after the other, which goes first alternating from model to
  model. Conversion times (``total_s``) exclude each process's imports (ours: torch,
  TensorFlow, Keras, transpiler; LiteRT-Torch's: torch, litert_torch), not the first-call
  costs inside the conversion; each subprocess's wall time, imports included, is ``process_s``,
  and the conversion's CPU time over all threads and child processes ``cpu_s`` (less bound to
  the machine's load).

Then both ``.tflite`` files are loaded in THIS process by the same interpreter
(``tf.lite.Interpreter``, default delegates = XNNPACK, ``num_threads=1``, batch 1) and timed
alternately (round-robin, median per file; compare the ratio: the machine is shared; with
``--repeat K`` the alternating timing runs K times and the ratio is the median of the K ratios,
their range printed beside it). Per file:
op histogram, TRANSPOSE count, XNNPACK partitions (DELEGATE nodes after delegation), size,
whether it takes another batch size, and max error against PyTorch on a held-out input.

    python benchmarks/tflite_vs_litert.py       # every model: over 1 h on 2 loaded cores; vit_b_16
                                                 # needs ~7 GB for our TFLite conversion
    python benchmarks/tflite_vs_litert.py --models resnet18,yolo11n --rounds 12 --per-round 3
    python benchmarks/tflite_vs_litert.py --litert-only        # LiteRT files alone, first
    python benchmarks/tflite_vs_litert.py --reuse-litert       # then take them from --work
    python benchmarks/tflite_vs_litert.py --reuse-litert --reuse-ours --repeat 5  # re-time kept
                                                 # files: 5 alternating timings, median ratio

    python benchmarks/tflite_vs_litert.py --models vit_b_16 --conversions 3  # 3 pairs of
                                                 # conversions, alternating which goes first

The conversion times vary ~2x from one run to the next on a shared VM (most of a large model's
conversion is the kernel handing out fresh pages): compare the two converters over several
alternating pairs (``--conversions K``), not single runs.

Options: ``--litert-python /tmp/litert-venv/bin/python``, ``--work /tmp/tflite_vs_litert``
(files kept there), ``--json benchmarks/results/tflite_vs_litert.json`` (rows merged by model).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from _harness import ROOT
from _litert_models import SPECS, build, cpu_seconds, kept_rows, run_rows
from _tflite_stats import op_histogram, xnnpack_partitions

LITERT_PYTHON = "/tmp/litert-venv/bin/python"
WORKER = Path(__file__).resolve().parent / "_litert_models.py"


# ------------------------------------------------------------------------------------------------
# Models, inputs, references
# ------------------------------------------------------------------------------------------------


def prepared_model(name: str):
    """The benchmark's model: built as in `_litert_models.build`, BatchNorms randomized."""
    from helpers import randomize_bn

    return randomize_bn(build(name)).eval()


def state_digest(model) -> str:
    h = hashlib.sha256()
    for key, value in model.state_dict().items():
        h.update(key.encode())
        h.update(value.detach().cpu().numpy().tobytes())
    return h.hexdigest()[:16]


def flat(out) -> list[np.ndarray]:
    if isinstance(out, torch.Tensor):
        return [out.detach().numpy()]
    if isinstance(out, dict):
        out = list(out.values())
    return [a for o in out for a in flat(o)]


def nhwc(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.moveaxis(a, 1, -1))


def references(model, name: str, x: torch.Tensor) -> list[np.ndarray]:
    """PyTorch's outputs on ``x`` in the exported files' output layouts."""
    spec = SPECS[name]
    with torch.no_grad():
        outs = flat(model(x))
    out_layout = spec.io_layout if isinstance(spec.io_layout, str) else spec.io_layout[1]
    if out_layout == "nhwc":
        outs = [nhwc(o) if o.ndim == 4 else o for o in outs]
    return outs


# ------------------------------------------------------------------------------------------------
# TFLite files: interpreter, statistics, errors
# ------------------------------------------------------------------------------------------------


def interpreter(path: Path, batch: int = 1, delegates: bool = True):
    """tf.lite.Interpreter, one thread, input resized to ``batch``, tensors allocated (with
    ``delegates`` the default XNNPACK delegate is applied here)."""
    import tensorflow as tf
    from tensorflow.lite.python.interpreter import OpResolverType

    kind = OpResolverType.AUTO if delegates else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        interp = tf.lite.Interpreter(
            model_path=str(path), num_threads=1, experimental_op_resolver_type=kind
        )
    (inp,) = interp.get_input_details()
    if list(inp["shape"])[0] != batch:
        interp.resize_tensor_input(inp["index"], [batch, *inp["shape"][1:]])
    interp.allocate_tensors()
    return interp


def tflite_stats(path: Path) -> dict:
    """Op histogram, TRANSPOSE count, XNNPACK partitions (benchmarks/_tflite_stats.py), size,
    dynamic batch."""
    ops = op_histogram(path)
    partitions, _, _ = xnnpack_partitions(path)
    plain = interpreter(path, delegates=False)
    dynamic = int(plain.get_input_details()[0]["shape_signature"][0]) == -1
    if dynamic:  # and it really runs at another batch size
        two = interpreter(path, batch=2, delegates=False)
        x = np.zeros(two.get_input_details()[0]["shape"], np.float32)
        dynamic = all(o.shape[0] == 2 for o in run_file(two, x))
    return {
        "size_mb": path.stat().st_size / 1e6,
        "ops": dict(sorted(ops.items(), key=lambda kv: (-kv[1], kv[0]))),
        "n_ops": sum(ops.values()),
        "transpose": ops.get("TRANSPOSE", 0),
        "xnnpack_partitions": partitions,
        "dynamic_batch": dynamic,
    }


def run_file(interp, x: np.ndarray) -> list[np.ndarray]:
    (inp,) = interp.get_input_details()
    interp.set_tensor(inp["index"], x)
    interp.invoke()
    return [interp.get_tensor(d["index"]) for d in interp.get_output_details()]


def max_error(refs: list[np.ndarray], outs: list[np.ndarray]) -> tuple[float, float]:
    """(max |y - y_torch| over every output, max |y_torch|); each reference is matched with an
    unused output of the same shape (converters may reorder outputs)."""
    pool = list(outs)
    err = 0.0
    for ref in refs:
        k = next((i for i, o in enumerate(pool) if o.shape == ref.shape), None)
        if k is None:
            raise ValueError(f"no output of shape {ref.shape} in {[o.shape for o in outs]}")
        err = max(err, float(np.abs(pool.pop(k).astype(np.float64) - ref).max()))
    return err, max(float(np.abs(r).max()) for r in refs)


# ------------------------------------------------------------------------------------------------
# The two conversions
# ------------------------------------------------------------------------------------------------


def convert_ours(name: str, state: Path, work: Path, digest: str, reuse: bool) -> tuple[Path, dict]:
    """transpile + float32 to_tflite in a fresh process (``--ours-worker``, this python), like
    LiteRT-Torch's; its timing row. With ``reuse``, a file kept from the same weights and the
    same commit of this repository is taken."""
    path, meta = work / f"{name}.ours.tflite", work / f"{name}.ours.json"
    key = f"{digest} {git_revision()}"
    if reuse and path.exists() and meta.exists():
        timing = json.loads(meta.read_text())
        if timing.get("key") == key:
            return path, timing | {"reused": True}
    cmd = [sys.executable, __file__, "--ours-worker", name, "--state", str(state)]
    timing = run_worker([*cmd, "--out", str(path), "--work", str(work)], "OURS_RESULT ")
    timing["key"] = key
    meta.write_text(json.dumps(timing))
    return path, timing


def ours_worker(name: str, state: str, out: str, work: str) -> dict:
    """The worker: load the state_dict into a fresh model, transpile it (with the numeric
    check) and write the float32 TFLite file (checked again), timed after the imports of torch,
    TensorFlow, Keras and this package (``import_s``; LiteRT-Torch's worker excludes its own
    imports the same way)."""
    t0 = time.perf_counter()
    import keras  # noqa: F401 - imported here so that the timing below excludes it
    import tensorflow  # noqa: F401

    from transpiler import transpile

    t1 = time.perf_counter()
    spec = SPECS[name]
    model = build(name)
    model.load_state_dict(torch.load(state, weights_only=True))
    example = torch.randn(1, 3, spec.size, spec.size, generator=torch.Generator().manual_seed(3))
    t2, c2 = time.perf_counter(), cpu_seconds()
    result = transpile(
        model.eval(), example, io_layout=spec.io_layout, out_dir=f"{work}/{name}.ours"
    )
    t3 = time.perf_counter()
    result.to_tflite(out)
    t4 = time.perf_counter()
    times = {
        "import_s": t1 - t0,
        "transpile_s": t3 - t2,
        "to_tflite_s": t4 - t3,
        "total_s": t4 - t2,
    }
    return times | {"cpu_s": cpu_seconds() - c2}  # all threads' and children's CPU time


def git_revision() -> str:
    """The last commit that changed the converter's code (transpiler/, backends/, passes/), with
    a marker when those files are modified in the checkout."""

    def git(*a: str) -> str:
        cmd = ["git", "-C", str(ROOT), *a, "--", "transpiler", "backends", "passes"]
        return subprocess.run(cmd, capture_output=True, text=True, check=False).stdout.strip()

    return git("log", "-1", "--format=%h") + ("+dirty" if git("status", "-s", "-uno") else "")


def alternating(candidates: dict, rounds: int, per_round: int, warmup: int = 2) -> dict:
    """Seconds per call of each candidate, round-robin, the order reversed every other round
    (neither file always runs right after the other)."""
    for fn in candidates.values():
        for _ in range(warmup):
            fn()
    samples: dict[str, list[float]] = {k: [] for k in candidates}
    names = list(candidates)
    for r in range(rounds):
        for k in names if r % 2 == 0 else names[::-1]:
            for _ in range(per_round):
                t0 = time.perf_counter()
                candidates[k]()
                samples[k].append(time.perf_counter() - t0)
    return samples


def convert_litert(
    name: str, state: Path, digest: str, out: Path, python: str, reuse: bool, extra=()
) -> dict:
    """Convert with LiteRT-Torch in a subprocess (``extra``: more worker options, e.g. INT8);
    its timing row. With ``reuse``, a file kept from the same weights and options is taken."""
    meta = out.with_suffix(".json")
    key = " ".join([digest, *extra])
    if reuse and meta.exists():
        timing = json.loads(meta.read_text())
        if timing.get("key") == key and "error" in timing:  # it failed on these inputs before
            raise RuntimeError(timing["error"])
        if timing.get("key") == key and out.exists():
            return timing | {"reused": True}
    cmd = [python, str(WORKER), "--model", name, "--state", str(state), "--out", str(out)]
    cmd += ["--channel-last"] if SPECS[name].io_layout != "nchw" else []
    try:
        timing = run_worker([*cmd, *extra]) | {"key": key}
    except RuntimeError as exc:
        meta.write_text(json.dumps({"key": key, "error": str(exc)}))
        raise
    meta.write_text(json.dumps(timing))
    return timing


def run_worker(cmd: list[str], marker: str = "LITERT_RESULT ") -> dict:
    """Run a conversion subprocess; its timing row (or its error's last lines), with its wall
    time, imports included (``process_s``)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["PYTHONPATH"] = ""
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    wall = time.perf_counter() - t0
    for line in proc.stdout.splitlines():
        if line.startswith(marker):
            return json.loads(line.split(" ", 1)[1]) | {"process_s": wall}
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-15:]
    who = "LiteRT-Torch" if marker.startswith("LITERT") else "our"
    raise RuntimeError(f"{who} conversion failed:\n" + "\n".join(tail))


# ------------------------------------------------------------------------------------------------
# One model
# ------------------------------------------------------------------------------------------------


def bench(name: str, args) -> dict:
    spec = SPECS[name]
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    model = prepared_model(name)
    state = work / f"{name}.pt"
    torch.save(model.state_dict(), state)
    digest = state_digest(model)
    row: dict = {"model": name, "input": f"{spec.size}x{spec.size}", "io_layout": spec.io_layout}
    files, conv = {"litert": work / f"{name}.litert.tflite"}, {}

    def litert() -> None:
        conv["litert"] = convert_litert(
            name, state, digest, files["litert"], args.litert_python, args.reuse_litert
        )

    def ours() -> None:
        files["ours"], conv["ours"] = convert_ours(name, state, work, digest, args.reuse_ours)

    if args.litert_only:
        litert()
        return row | {"litert": {"conversion": conv["litert"]}}
    # the conversions alternate which goes first from one model to the next, and from one
    # repeat to the next (``--conversions``), each in a fresh process on the same machine
    first = args.models.split(",").index(name) % 2
    timings: dict[str, list[dict]] = {"ours": [], "litert": []}
    for k in range(args.conversions):
        for convert in (litert, ours) if (first + k) % 2 == 0 else (ours, litert):
            convert()
        for who in timings:
            timings[who].append(conv[who])
    pair_ratios = [
        o["total_s"] / t["total_s"] for o, t in zip(timings["ours"], timings["litert"], strict=True)
    ]
    for who, runs in timings.items():  # the median run's row, and every run's total
        conv[who] = sorted(runs, key=lambda t: t["total_s"])[len(runs) // 2]
        conv[who]["totals_s"] = [t["total_s"] for t in runs]

    held = torch.randn(1, 3, spec.size, spec.size, generator=torch.Generator().manual_seed(7))
    refs = references(model, name, held)
    in_layout = spec.io_layout if isinstance(spec.io_layout, str) else spec.io_layout[0]
    x = nhwc(held.numpy()) if in_layout == "nhwc" else held.numpy()
    interps = {k: interpreter(p) for k, p in files.items()}
    for k in files:
        err, scale = max_error(refs, run_file(interps[k], x))
        row[k] = tflite_stats(files[k]) | {"max_abs_err": err, "max_abs_ref": scale}
        row[k]["conversion"] = conv[k]
    calls = {k: (lambda i=i: run_file(i, x)) for k, i in interps.items()}
    runs = [alternating(calls, args.rounds, args.per_round) for _ in range(args.repeat)]
    for k in files:
        row[k]["latency_ms"] = 1e3 * statistics.median(s for run in runs for s in run[k])
    ratios = [statistics.median(run["ours"]) / statistics.median(run["litert"]) for run in runs]
    row["latency_ratio"] = statistics.median(ratios)
    row["latency_ratios"] = ratios  # one per repeat of the alternating timing: the spread
    row["conversion_ratio"] = statistics.median(pair_ratios)
    row["conversion_ratios"] = pair_ratios  # one per pair of conversions: the spread
    return row


def table(rows: list[dict]) -> str:
    lines = [
        "| model | latency ours / LiteRT ms (ratio) | XNNPACK partitions ours / LiteRT "
        "| TRANSPOSE ours / LiteRT | ops ours / LiteRT | MB ours / LiteRT "
        "| max err ours / LiteRT | conversion s ours / LiteRT | dynamic batch ours / LiteRT |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        o, t = r["ours"], r["litert"]

        def yn(s):
            return "yes" if s["dynamic_batch"] else "no"

        lines.append(
            f"| {r['model']} {r['input']} | {o['latency_ms']:.1f} / {t['latency_ms']:.1f} "
            f"(**{r['latency_ratio']:.2f}**{spread(r)}) | {o['xnnpack_partitions']} / "
            f"{t['xnnpack_partitions']} | {o['transpose']} / {t['transpose']} | {o['n_ops']} / "
            f"{t['n_ops']} | {o['size_mb']:.1f} / {t['size_mb']:.1f} | {o['max_abs_err']:.1e} / "
            f"{t['max_abs_err']:.1e} | {o['conversion']['total_s']:.0f} / "
            f"{t['conversion']['total_s']:.0f}{conversion_spread(r)} | {yn(o)} / {yn(t)} |"
        )
    return "\n".join(lines)


def spread(row: dict) -> str:
    """ ", 0.97–1.04": the lowest and highest ratio of the repeats (none for one repeat)."""
    ratios = row.get("latency_ratios", [])
    return f", {min(ratios):.2f}–{max(ratios):.2f}" if len(ratios) > 1 else ""


def conversion_spread(row: dict) -> str:
    """ " (1.02, 0.95–1.10)": the median ratio of the pairs of conversions, and their range
    (none for one pair)."""
    ratios = row.get("conversion_ratios", [])
    if len(ratios) < 2:
        return ""
    return f" ({statistics.median(ratios):.2f}, {min(ratios):.2f}–{max(ratios):.2f})"


def histogram_diff(rows: list[dict]) -> str:
    """Per model, the ops whose counts differ between the two files."""
    out = []
    for r in rows:
        o, t = r["ours"]["ops"], r["litert"]["ops"]
        diff = [
            f"{op} {o.get(op, 0)}/{t.get(op, 0)}"
            for op in sorted(set(o) | set(t))
            if o.get(op, 0) != t.get(op, 0)
        ]
        out.append(f"- {r['model']}: " + (", ".join(diff) if diff else "same histogram"))
    return "\n".join(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default=",".join(SPECS), help="comma-separated subset")
    p.add_argument("--litert-python", default=LITERT_PYTHON)
    p.add_argument("--work", default="/tmp/tflite_vs_litert")
    p.add_argument("--reuse-litert", action="store_true", help="keep LiteRT files of same weights")
    p.add_argument("--reuse-ours", action="store_true", help="keep ours of same weights+commit")
    p.add_argument("--litert-only", action="store_true", help="only make the LiteRT files")
    p.add_argument("--print", action="store_true", help="print the tables of --json and stop")
    p.add_argument("--rounds", type=int, default=12)
    p.add_argument("--per-round", type=int, default=3)
    p.add_argument(
        "--repeat", type=int, default=1, help="repeat the alternating timing; ratio: their median"
    )
    p.add_argument(
        "--conversions",
        type=int,
        default=1,
        help="convert each model K times with each converter, alternating which goes first; "
        "times: the median run, ratio: the median of the K pairs' ratios",
    )
    p.add_argument("--json", default=str(ROOT / "benchmarks/results/tflite_vs_litert.json"))
    p.add_argument("--ours-worker", metavar="MODEL", help=argparse.SUPPRESS)  # convert_ours
    p.add_argument("--state", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.ours_worker:
        row = ours_worker(args.ours_worker, args.state, args.out, args.work)
        print("OURS_RESULT " + json.dumps(row), flush=True)
        return
    torch.set_num_threads(1)
    out = Path(args.json)
    kept = kept_rows(out)
    if args.print:
        good = [r for r in kept.values() if "error" not in r]
        print(table(good) + "\n\n" + histogram_diff(good))
        return
    rows = run_rows(args.models, bench, args, out, kept)
    if args.litert_only:
        return
    good = [r for r in rows if "error" not in r]
    print("\n" + table(good) + "\n\n" + histogram_diff(good))
    for r in rows:
        if "error" in r:
            print(f"\n{r['model']}: {r['error']}")


if __name__ == "__main__":
    sys.exit(main())
