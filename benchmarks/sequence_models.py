"""The README's sequence-model table: model, tracer, Transpose count, worst scaled error, seconds.

Run from the repository root: ``python benchmarks/sequence_models.py rnn`` (recurrent layers and
the CRNN), ``python benchmarks/sequence_models.py hf`` (BERT, DistilBERT, GPT-2 from small
configs, random weights, no downloads) or ``python benchmarks/sequence_models.py vision [NAME...]``
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


def row(name: str, model: nn.Module, example) -> None:
    torch.manual_seed(0)
    start = time.perf_counter()
    result = transpile(model.eval(), example)
    seconds = time.perf_counter() - start
    r = result.report
    cells = [name, r.tracer, r.transpose_count, f"{worst_scaled(result):.1e}", f"{seconds:.0f}"]
    print("| " + " | ".join(str(c) for c in cells) + " |")


def recurrent() -> None:
    from test_recurrent import CRNN, Wrap

    lstm = nn.LSTM(32, 64, 2, batch_first=True, bidirectional=True)
    gru = nn.GRU(32, 64, 2, batch_first=True, bidirectional=True)
    row("LSTM(32, 64, 2 layers, bidirectional), T=20", Wrap(lstm), torch.randn(2, 20, 32))
    row("GRU(32, 64, 2 layers, bidirectional), T=20", Wrap(gru), torch.randn(2, 20, 32))
    row("CRNN, 1x16x20", CRNN(), torch.randn(2, 1, 16, 20))


def hugging_face() -> None:
    import transformers as T  # noqa: N812

    ids = torch.randint(0, 100, (2, 9))
    mask = torch.ones(2, 9, dtype=torch.long)
    mask[-1, 6:] = 0
    bert = T.BertConfig(
        vocab_size=100,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=37,
        max_position_embeddings=64,
    )
    distil = T.DistilBertConfig(
        vocab_size=100, dim=32, n_layers=2, n_heads=4, hidden_dim=37, max_position_embeddings=64
    )
    gpt2 = T.GPT2Config(
        vocab_size=100, n_embd=32, n_layer=2, n_head=4, n_positions=64, use_cache=False
    )
    row("BertModel, ids + mask, L=9", T.BertModel(bert), (ids, mask))
    row("DistilBertModel, ids + mask, L=9", T.DistilBertModel(distil), (ids, mask))
    row("GPT2Model, ids, L=9", T.GPT2Model(gpt2), (ids,))


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
    if what == "vision":
        vision(sys.argv[2:])
    else:
        {"rnn": recurrent, "hf": hugging_face}[what]()
