"""Hugging Face vision and audio models from small configs (random weights, no downloads), end to
end: CLIPVisionModel, ViTModel, DeiTModel, SwinModel, Dinov2Model, ConvNextModel, MobileViTModel,
SegformerModel, Whisper's encoder and Wav2Vec2Model (base and large's layer-norm variant).

Each model is transpiled on the Keras backend from a batch of 1 (the transpiler checks it at
that batch and at another one), compared with PyTorch at batch 2 here, exported to a float32
TFLite flatbuffer (builtin ops only), which ``to_tflite`` checks against PyTorch on the same
inputs, and its Transpose ops are counted against PyTorch's own permutes (``permute`` /
``transpose`` in the model's torch.export graph): attention must add none.

Weights are redrawn with a std of 1/sqrt(fan_in) (convolutions and linear layers) and BatchNorm
statistics randomized, so activations keep their scale through the layers: with the configs'
default init (std 0.02) MobileViT's output is ~1e-40, a check any constant passes. The models
trace through torch.export (fx cannot follow them), so all but ViT are slow."""

from __future__ import annotations

import os

import pytest
import torch
import torch.nn.functional as F  # noqa: N812
from helpers import assert_checks_ok, check_against_torch, randomize_bn
from torch import nn

from transpiler import transpile

os.environ.setdefault("HF_HUB_OFFLINE", "1")
import transformers as T  # noqa: E402, N812 - in the test extra: a missing install is an error


def _vit_kwargs() -> dict:
    return dict(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=37,
        image_size=32,
        patch_size=8,
    )


def clip_vision():
    cfg = T.CLIPVisionConfig(**_vit_kwargs())
    return T.CLIPVisionModel(cfg), (3, 32, 32)


def vit():
    return T.ViTModel(T.ViTConfig(**_vit_kwargs())), (3, 32, 32)


def deit():
    return T.DeiTModel(T.DeiTConfig(**_vit_kwargs())), (3, 32, 32)


def dinov2():
    kwargs = _vit_kwargs()
    del kwargs["intermediate_size"]
    return T.Dinov2Model(T.Dinov2Config(mlp_ratio=2, **kwargs)), (3, 32, 32)


def swin():
    cfg = T.SwinConfig(
        image_size=32, patch_size=2, embed_dim=16, depths=[2, 2], num_heads=[2, 4], window_size=4
    )
    return T.SwinModel(cfg), (3, 32, 32)


def convnext():
    cfg = T.ConvNextConfig(
        hidden_sizes=[8, 16, 24, 32], depths=[1, 1, 2, 1], layer_scale_init_value=1.0
    )
    return T.ConvNextModel(cfg), (3, 64, 64)


def mobilevit():
    cfg = T.MobileViTConfig(
        image_size=64,
        hidden_sizes=[16, 24, 32],
        neck_hidden_sizes=[8, 8, 16, 16, 24, 32, 40],
        num_attention_heads=2,
    )
    return T.MobileViTModel(cfg), (3, 64, 64)


def segformer():
    cfg = T.SegformerConfig(
        num_encoder_blocks=2,
        depths=[1, 1],
        sr_ratios=[2, 1],
        hidden_sizes=[16, 32],
        num_attention_heads=[1, 2],
        patch_sizes=[7, 3],
        strides=[4, 2],
    )
    return T.SegformerModel(cfg), (3, 64, 64)


def whisper_encoder():
    """The encoder as a user takes it from the full model (``WhisperModel.get_encoder()``);
    input: log-mel features (N, mel bins, 2 * max_source_positions)."""
    cfg = T.WhisperConfig(
        d_model=32,
        encoder_layers=2,
        decoder_layers=1,
        encoder_attention_heads=4,
        decoder_attention_heads=4,
        encoder_ffn_dim=37,
        decoder_ffn_dim=37,
        num_mel_bins=16,
        max_source_positions=20,
        vocab_size=100,
        pad_token_id=1,
        bos_token_id=1,
        eos_token_id=2,
        decoder_start_token_id=1,
    )
    return T.WhisperModel(cfg).get_encoder(), (16, 40)


def _wav2vec2_config(**kwargs) -> T.Wav2Vec2Config:
    return T.Wav2Vec2Config(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=37,
        conv_dim=(16, 16),
        conv_stride=(5, 2),
        conv_kernel=(10, 3),
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=4,
        vocab_size=32,
        **kwargs,
    )


def wav2vec2():
    """Raw audio in (N, samples): conv feature extractor (GroupNorm on the first layer, as in
    wav2vec2-base), the grouped positional convolution, then the post-norm transformer."""
    return T.Wav2Vec2Model(_wav2vec2_config()), (400,)


def wav2vec2_layer_norm():
    """wav2vec2-large's variant: LayerNorm over channels after every feature conv (a transpose
    pair in PyTorch) and a pre-norm transformer."""
    cfg = _wav2vec2_config(feat_extract_norm="layer", do_stable_layer_norm=True, conv_bias=True)
    return T.Wav2Vec2Model(cfg), (400,)


MODELS = {
    f.__name__: f
    for f in (
        clip_vision,
        vit,
        deit,
        swin,
        dinov2,
        convnext,
        mobilevit,
        segformer,
        whisper_encoder,
        wav2vec2,
        wav2vec2_layer_norm,
    )
}
DEFAULT = {"vit"}  # the cheap one in the default run


def fan_in_init(model: nn.Module, seed: int = 0) -> nn.Module:
    """Conv/Linear weights ~ N(0, 1/fan_in), BatchNorm statistics randomized (see the module
    docstring)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Linear | nn.modules.conv._ConvNd):
                fan_in = m.weight[0].numel()
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen) / fan_in**0.5)
    return randomize_bn(model, seed)


def torch_permutes(model: nn.Module, example: tuple[torch.Tensor, ...]) -> int:
    """PyTorch's own permutes: permute/transpose ops in the model's torch.export graph."""
    program = torch.export.export(model, example, strict=False)
    targets = [str(n.target) for n in program.graph.nodes if n.op == "call_function"]
    return sum(t.split(".")[1] in ("permute", "transpose", "t") for t in targets)


def build(name: str) -> tuple[nn.Module, tuple[int, ...]]:
    torch.manual_seed(0)
    model, shape = MODELS[name]()
    return fan_in_init(model.eval()), shape


def _check_model(name: str, tmp_path) -> None:
    model, shape = build(name)
    gen = torch.Generator().manual_seed(1)
    example = (torch.randn(1, *shape, generator=gen),)
    result = transpile(model, example, out_dir=tmp_path / "out")
    assert_checks_ok(result)
    assert result.report.tracer == "torch.export"
    assert not result.report.vacuous_outputs, result.report
    check_against_torch(model, (torch.randn(2, *shape, generator=gen),), result)

    result.to_tflite(tmp_path / "model.tflite")  # raises on a mismatch
    variant, _, checks = result.report.tflite[-1]
    assert variant == "float32" and checks and all(c.ok for c in checks)
    assert {c.batch_size for c in checks} >= {1}

    permutes = torch_permutes(model, (torch.randn(2, *shape, generator=gen),))
    assert result.report.transpose_count <= permutes, (result.report.transpose_count, permutes)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(set(MODELS) - DEFAULT))
def test_hf_vision_audio(name: str, tmp_path):
    _check_model(name, tmp_path)


@pytest.mark.parametrize("name", sorted(DEFAULT))
def test_hf_vision_default(name: str, tmp_path):
    _check_model(name, tmp_path)


class _Resampling(nn.Module):
    """bicubic (both align_corners), area and negative padding, as torch.export records them
    (aten.upsample_bicubic2d, adaptive_avg_pool2d, pad)."""

    def forward(self, x):
        a = F.interpolate(x, size=(9, 13), mode="bicubic")
        b = F.interpolate(x, scale_factor=1.5, mode="bicubic", align_corners=True)
        c = F.interpolate(x, size=(3, 4), mode="area")
        return a, b, c, F.pad(x, (-1, 2, 1, -2), value=0.5)


def test_resampling_export_path(tmp_path):
    model = _Resampling().eval()
    x = torch.randn(1, 3, 6, 8)
    result = transpile(model, x, out_dir=tmp_path / "out", tracer="export")
    assert result.report.tracer == "torch.export"
    assert_checks_ok(result)
    check_against_torch(model, torch.randn(2, 3, 6, 8), result)


class _Crop(nn.Module):
    def forward(self, x):
        return F.pad(x, (-1, 2, 1, -2), value=0.5).relu()


def test_constant_pad_nd_from_a_decomposed_program(tmp_path):
    """A fully decomposed exported program records F.pad as aten.constant_pad_nd (value third)."""
    x = torch.randn(2, 3, 6, 8)
    batch = {0: torch.export.Dim("batch")}
    program = torch.export.export(_Crop(), (x,), dynamic_shapes=(batch,)).run_decompositions()
    targets = {str(n.target) for n in program.graph.nodes}
    assert "aten.constant_pad_nd.default" in targets, targets
    result = transpile(program, (x,), out_dir=tmp_path / "out")
    assert_checks_ok(result)
    check_against_torch(_Crop(), torch.randn(3, 3, 6, 8), result)


def test_negative_padding_of_other_modes_is_refused(tmp_path):
    """Only constant padding crops; reflect with a negative pad is refused, naming the call."""
    from transpiler import TranspileError

    class Reflect(nn.Module):
        def forward(self, x):
            return F.pad(x, (-1, 1), mode="reflect")

    with pytest.raises(TranspileError, match="negative padding"):
        transpile(Reflect(), torch.randn(1, 3, 8), out_dir=tmp_path / "out", tracer="fx")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
