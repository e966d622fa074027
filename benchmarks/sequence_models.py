"""The README's sequence-model table: model, tracer, Transpose count, worst scaled error, seconds.

Run from the repository root: ``python benchmarks/sequence_models.py rnn`` (recurrent layers and
the CRNN), ``... blocks`` (a Llama-style decoder block, a cell loop, a dynamic-length tagger),
``... hf [name ...]`` (the Hugging Face models of tests/e2e/test_transformers.py from small
configs, random weights, no downloads; all of them without names) or ``... vision [name ...]``
(the vision and audio models of tests/e2e/test_transformers_vision.py, with two more columns:
PyTorch's own permutes and the float32 TFLite export's worst scaled error)."""

from __future__ import annotations

import os
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path[:0] = ["tests", "tests/e2e"]

import torch  # noqa: E402
from torch import nn  # noqa: E402

from transpiler import transpile  # noqa: E402


def worst_scaled(result) -> float:
    """max over checks of max|y - y_torch| / max(1, max|y_torch|) (the bound is 1e-4 of that)."""
    return max(c.max_abs / (c.bound / 1e-4) for c in result.report.checks)


def row(name: str, model: nn.Module, example, tflite: bool = False) -> None:
    """One table row: model, tracer, dims dynamic beyond the batch, Transpose ops (TF graph)
    / transposes in the imported graph (the model's own permutes), worst scaled error,
    seconds, and with ``tflite`` the float32 TFLite export's worst scaled error."""
    torch.manual_seed(0)
    start = time.perf_counter()
    result = transpile(model.eval(), example)
    seconds = time.perf_counter() - start
    r = result.report
    cells = [
        name,
        "fx" if "fx" in r.tracer else r.tracer,
        r.dynamic or "batch only",
        f"{r.transpose_count} / {r.imported_transposes}",
        f"{worst_scaled(result):.1e}",
        f"{seconds:.0f}",
    ]
    if tflite:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            try:
                result.to_tflite(os.path.join(tmp, "m.tflite"))
            except Exception as exc:  # noqa: BLE001 - a row says what failed
                cells.append(f"fails: {str(exc).splitlines()[0][:80]}")
            else:
                checks = r.tflite[-1].checks
                cells.append(f"{max(c.max_abs / (c.bound / 1e-4) for c in checks):.1e}")
    print("| " + " | ".join(str(c) for c in cells) + " |", flush=True)


def recurrent() -> None:
    from test_recurrent import CRNN, Wrap

    lstm = nn.LSTM(32, 64, 2, batch_first=True, bidirectional=True)
    gru = nn.GRU(32, 64, 2, batch_first=True, bidirectional=True)
    row("LSTM(32, 64, 2 layers, bidirectional), T=20", Wrap(lstm), torch.randn(2, 20, 32), True)
    row("GRU(32, 64, 2 layers, bidirectional), T=20", Wrap(gru), torch.randn(2, 20, 32), True)
    row("CRNN, 1x16x20", CRNN(), torch.randn(2, 1, 16, 20), tflite=True)


def hugging_face(names: list[str]) -> None:
    """The models of tests/e2e/test_transformers.py (small configs, random weights), token
    ids + attention mask (ids only for GPT-2), batch 2, L=9, with the TFLite export."""
    from test_transformers import IDS_ONLY, MODELS, _tokens

    for name in names or list(MODELS):
        model = MODELS[name]()
        example = _tokens(2, 9, 0)[: 1 if name in IDS_ONLY else 2]
        row(f"{type(model).__name__}, L=9", model, example, tflite=True)


def blocks() -> None:
    """tests/e2e/test_sequence_blocks.py: the Llama-style block, a cell loop, a tagger whose
    sequence length stays dynamic."""
    from test_sequence_blocks import CellLoop, LlamaBlock, Tagger

    row("Llama-style decoder block, L=10", LlamaBlock(), torch.randn(2, 10, 32), tflite=True)
    row("LSTMCell loop, 5 steps", CellLoop("lstm"), torch.randn(2, 5, 6), tflite=True)
    row("Embedding → reshape → LSTM tagger, L=9", Tagger(), torch.randint(0, 50, (2, 9)), True)


def vision(names: list[str]) -> None:
    import tempfile

    from test_transformers_vision import MODELS, build, torch_permutes

    for name in names or list(MODELS):
        model, shape = build(name)
        example = (torch.randn(2, *shape, generator=torch.Generator().manual_seed(1)),)
        start = time.perf_counter()
        result = transpile(model, example)
        seconds = time.perf_counter() - start
        with tempfile.TemporaryDirectory() as tmp:
            result.to_tflite(f"{tmp}/model.tflite")
        tflite = max(c.max_abs / (c.bound / 1e-4) for c in result.report.tflite[-1][2])
        r = result.report
        cells = [name, r.tracer, r.transpose_count, torch_permutes(model, example)]
        cells += [f"{worst_scaled(result):.1e}", f"{tflite:.1e}", f"{seconds:.0f}"]
        print("| " + " | ".join(str(c) for c in cells) + " |", flush=True)


if __name__ == "__main__":
    torch.manual_seed(0)
    what = sys.argv[1] if len(sys.argv) > 1 else "rnn"
    if what == "hf":
        hugging_face(sys.argv[2:])
    elif what == "vision":
        vision(sys.argv[2:])
    else:
        {"rnn": recurrent, "blocks": blocks}[what]()
