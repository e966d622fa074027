"""Hugging Face transformers from small configs (random weights, no downloads), end to end.

Token ids and an attention mask (int64, padding in the last sample) go in; the ModelOutput comes
out flattened like a dict. Each model is checked against PyTorch at the example batch and at
another batch with another padding pattern. Text models trace through torch.export (fx cannot
trace them), so these tests are slow."""

from __future__ import annotations

import os

import pytest
import torch
from helpers import assert_checks_ok, check_against_torch, tiny_bert

from transpiler import transpile
from transpiler.tflite import run_tflite

os.environ.setdefault("HF_HUB_OFFLINE", "1")
import transformers  # in the test extra: a missing install is an error, not a skip


def _bert():
    return tiny_bert()


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


def _roberta():
    cfg = transformers.RobertaConfig(
        vocab_size=100,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=37,
        max_position_embeddings=64,
    )
    return transformers.RobertaModel(cfg)


def _albert():
    cfg = transformers.AlbertConfig(
        vocab_size=100,
        embedding_size=16,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=37,
        max_position_embeddings=64,
    )
    return transformers.AlbertModel(cfg)


def _electra():
    cfg = transformers.ElectraConfig(
        vocab_size=100,
        embedding_size=16,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=37,
        max_position_embeddings=64,
    )
    return transformers.ElectraModel(cfg)


def _t5_encoder():
    cfg = transformers.T5Config(
        vocab_size=100,
        d_model=32,
        d_kv=8,
        d_ff=37,
        num_layers=2,
        num_heads=4,
        relative_attention_num_buckets=8,
        relative_attention_max_distance=16,
    )
    return transformers.T5EncoderModel(cfg)


def _llama():
    cfg = transformers.LlamaConfig(
        vocab_size=100,
        hidden_size=32,
        intermediate_size=48,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,  # grouped-query attention
        max_position_embeddings=64,
        use_cache=False,
    )
    return transformers.LlamaModel(cfg)


def _clip_text():
    cfg = transformers.CLIPTextConfig(
        vocab_size=100,
        hidden_size=32,
        intermediate_size=37,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=64,
    )
    return transformers.CLIPTextModel(cfg)


MODELS = {
    "bert": _bert,
    "distilbert": _distilbert,
    "gpt2": _gpt2,
    "roberta": _roberta,
    "albert": _albert,
    "electra": _electra,
    "t5_encoder": _t5_encoder,
    "llama": _llama,
    "clip_text": _clip_text,
}
IDS_ONLY = {"gpt2"}  # GPT2Model's second positional argument is past_key_values


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
    """One conversion with the defaults keeps the sequence length dynamic (the Keras inputs are
    (None, None)) and is checked at two lengths and two batch sizes (the transpile's own check
    ran at the example's and at another of each); the float32 TFLite export keeps the length
    dynamic too and is checked at both."""
    torch.manual_seed(0)
    model = MODELS[name]().eval()
    n_inputs = 1 if name in IDS_ONLY else 2
    example = _tokens(batch, 9, 0)[:n_inputs]
    result = transpile(model, example, out_dir=tmp_path / "out", structure=structure)
    assert_checks_ok(result)
    assert result.report.dynamic.startswith("input_ids[1]=seq"), result.report.notes
    assert len({c.batch_size for c in result.report.checks}) == 2
    check_against_torch(model, example, result)
    for length in (6, 13):  # other lengths, other batch sizes, the same converted model
        check_against_torch(model, _tokens(3, length, 1)[:n_inputs], result)
    check_against_torch(model, _tokens(1, 4, 0)[:n_inputs], result)
    source = result.source_path.read_text()
    assert "layers.Embedding(" in source
    assert 'keras.Input(shape=(None,), dtype="int64"' in source  # ids (and mask) stay integers
    # attention keeps no more Transposes than the model's own permutes
    assert result.report.transpose_count <= result.report.imported_transposes
    result.to_tflite(tmp_path / f"{name}.tflite")  # float32 TFLite, both batches and lengths
    assert result.report.tflite[-1].checks
    assert _tflite_input_shapes(tmp_path / f"{name}.tflite") == [[-1, -1]] * n_inputs


def _tflite_input_shapes(path) -> list[list[int]]:
    """The flatbuffer's input shape signatures (-1: dynamic)."""
    import tensorflow as tf

    details = tf.lite.Interpreter(model_path=str(path)).get_input_details()
    return [[int(d) for d in x["shape_signature"]] for x in details]


@pytest.mark.slow
def test_clip_text_tflite(tmp_path):
    """CLIPTextModel's float32 .tflite at batch 1, 2 and 3 (its pooled output once came out
    wrong at odd batches > 1: see README, "CLIP text and TFLite's buffer sharing")."""
    torch.manual_seed(0)
    model = _clip_text().eval()
    # a static length (the default, a dynamic one, is exported in test_hf_model)
    result = transpile(model, _tokens(2, 9, 0), out_dir=tmp_path / "out", dynamic_shapes=None)
    path = result.to_tflite(tmp_path / "clip.tflite")  # checks batch 2 and 3 itself
    assert {c.batch_size for c in result.report.tflite[-1].checks} == {2, 3}
    blob = path.read_bytes()

    def run(*arrays):
        return tuple(run_tflite(blob, list(arrays)))

    for batch in (1, 2, 3, 5):
        check_against_torch(model, _tokens(batch, 9, batch), run)


def test_distilbert_ids_only(tmp_path):
    """The default suite's transformer: DistilBERT on token ids alone (no mask input)."""
    torch.manual_seed(0)
    model = _distilbert().eval()
    ids = _tokens(2, 7, 0)[0]
    result = transpile(model, ids, out_dir=tmp_path / "out")
    assert_checks_ok(result)
    check_against_torch(model, _tokens(1, 7, 3)[0], result)
