"""Hugging Face transformers from small configs (random weights, no downloads), end to end.

Token ids and an attention mask (int64, padding in the last sample) go in; the ModelOutput comes
out flattened like a dict. Each model is checked against PyTorch at the example batch and at
another batch with another padding pattern. Text models trace through torch.export (fx cannot
trace them), so these tests are slow."""

from __future__ import annotations

import os

import pytest
import torch
from helpers import assert_checks_ok, check_against_torch

from transpiler import transpile

os.environ.setdefault("HF_HUB_OFFLINE", "1")
import transformers  # in the test extra: a missing install is an error, not a skip


def _bert():
    cfg = transformers.BertConfig(
        vocab_size=100,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=37,
        max_position_embeddings=64,
    )
    return transformers.BertModel(cfg)


def _distilbert():
    cfg = transformers.DistilBertConfig(
        vocab_size=100, dim=32, n_layers=2, n_heads=4, hidden_dim=37, max_position_embeddings=64
    )
    return transformers.DistilBertModel(cfg)


def _gpt2():
    cfg = transformers.GPT2Config(
        vocab_size=100, n_embd=32, n_layer=2, n_head=4, n_positions=64, use_cache=False
    )
    return transformers.GPT2Model(cfg)


MODELS = {"bert": _bert, "distilbert": _distilbert, "gpt2": _gpt2}


def _tokens(batch: int, length: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, 100, (batch, length), generator=gen)
    mask = torch.ones(batch, length, dtype=torch.long)
    mask[-1, length - 3 - seed % 2 :] = 0  # the last sample is padded
    return ids, mask


@pytest.mark.slow
@pytest.mark.parametrize("structure", ["modules", "flat"])
@pytest.mark.parametrize("batch", [1, 2])
@pytest.mark.parametrize("name", list(MODELS))
def test_hf_model(name: str, batch: int, structure: str, tmp_path):
    torch.manual_seed(0)
    model = MODELS[name]().eval()
    # GPT2Model's second positional argument is past_key_values: token ids only
    n_inputs = 1 if name == "gpt2" else 2
    example = _tokens(batch, 9, 0)[:n_inputs]
    result = transpile(model, example, out_dir=tmp_path / "out", structure=structure)
    assert_checks_ok(result)
    check_against_torch(model, example, result)
    check_against_torch(model, _tokens(3, 9, 1)[:n_inputs], result)
    source = result.source_path.read_text()
    assert "layers.Embedding(" in source
    assert 'dtype="int64"' in source  # token ids and the mask stay integers


def test_distilbert_ids_only(tmp_path):
    """The default suite's transformer: DistilBERT on token ids alone (no mask input)."""
    torch.manual_seed(0)
    model = _distilbert().eval()
    ids = _tokens(2, 7, 0)[0]
    result = transpile(model, ids, out_dir=tmp_path / "out")
    assert_checks_ok(result)
    check_against_torch(model, _tokens(1, 7, 3)[0], result)
