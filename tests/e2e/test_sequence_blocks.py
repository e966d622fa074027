"""Sequence building blocks end to end (issue 12): LSTMCell/GRUCell/RNNCell unrolled over a
fixed-length loop, a Llama-style decoder block (RMSNorm + rotary embeddings + grouped-query
attention + SwiGLU MLP), and ``dynamic_shapes=`` on both tracers. Cheap ones run by default."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from helpers import assert_checks_ok, check_against_torch
from torch import nn

from transpiler import TranspileError, transpile


class CellLoop(nn.Module):
    """A cell applied over a fixed number of steps (the loop unrolls when traced)."""

    def __init__(self, kind: str, steps: int = 5, with_state: bool = True):
        super().__init__()
        cls = {"lstm": nn.LSTMCell, "gru": nn.GRUCell, "rnn": nn.RNNCell}[kind]
        self.cell = cls(6, 8)
        self.kind, self.steps, self.with_state = kind, steps, with_state
        self.head = nn.Linear(8, 3)

    def forward(self, x):  # x: (N, T, 6)
        state = None
        outs = []
        for t in range(self.steps):
            state = self.cell(x[:, t], state) if self.with_state or t else self.cell(x[:, t])
            outs.append(state[0] if self.kind == "lstm" else state)
        return self.head(torch.stack(outs, 1))


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn"])
def test_cell_in_a_loop(kind, tmp_path):
    torch.manual_seed(0)
    model = CellLoop(kind).eval()
    x = torch.randn(2, 5, 6)
    result = transpile(model, x, out_dir=tmp_path / "out")
    assert_checks_ok(result)
    check_against_torch(model, torch.randn(1, 5, 6), result)


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(1 + 0.1 * torch.randn(dim))
        self.eps = eps

    def forward(self, x):
        variance = x.pow(2).mean(-1, keepdim=True)
        return self.weight * (x * torch.rsqrt(variance + self.eps))


def rotate_half(x):
    x1, x2 = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2 :]
    return torch.cat((-x2, x1), dim=-1)


class LlamaBlock(nn.Module):
    """One Llama decoder layer as transformers writes it: pre-RMSNorm, rotary q/k, grouped-query
    attention (kv heads repeated), causal softmax attention, SwiGLU MLP."""

    def __init__(self, dim=32, heads=4, kv_heads=2, hidden=48, max_len=64):
        super().__init__()
        self.heads, self.kv_heads, self.head_dim = heads, kv_heads, dim // heads
        self.q = nn.Linear(dim, heads * self.head_dim, bias=False)
        self.k = nn.Linear(dim, kv_heads * self.head_dim, bias=False)
        self.v = nn.Linear(dim, kv_heads * self.head_dim, bias=False)
        self.o = nn.Linear(heads * self.head_dim, dim, bias=False)
        self.gate = nn.Linear(dim, hidden, bias=False)
        self.up = nn.Linear(dim, hidden, bias=False)
        self.down = nn.Linear(hidden, dim, bias=False)
        self.norm1, self.norm2 = RMSNorm(dim), nn.RMSNorm(dim, eps=1e-6)
        inv_freq = 1.0 / (10000 ** (torch.arange(0, self.head_dim, 2).float() / self.head_dim))
        t = torch.arange(max_len).float()
        emb = torch.cat([torch.outer(t, inv_freq)] * 2, dim=-1)
        self.register_buffer("cos", emb.cos(), persistent=False)
        self.register_buffer("sin", emb.sin(), persistent=False)

    def forward(self, x):
        b, length, _ = x.shape
        h = self.norm1(x)
        q = self.q(h).view(b, length, self.heads, self.head_dim).transpose(1, 2)
        k = self.k(h).view(b, length, self.kv_heads, self.head_dim).transpose(1, 2)
        v = self.v(h).view(b, length, self.kv_heads, self.head_dim).transpose(1, 2)
        cos, sin = self.cos[:length][None, None], self.sin[:length][None, None]
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        rep = self.heads // self.kv_heads
        k = torch.repeat_interleave(k, rep, dim=1)
        v = v[:, :, None].expand(b, self.kv_heads, rep, length, self.head_dim)
        v = v.reshape(b, self.heads, length, self.head_dim)
        scores = q @ k.transpose(2, 3) / self.head_dim**0.5
        causal = torch.triu(torch.full((length, length), float("-inf")), 1)
        attn = (scores + causal).softmax(-1) @ v
        x = x + self.o(attn.transpose(1, 2).reshape(b, length, -1))
        h = self.norm2(x)
        return x + self.down(F.silu(self.gate(h)) * self.up(h))


# PyTorch's own permutes in LlamaBlock.forward: q, k, v transposes, k^T, and the output's
PYTORCH_PERMUTES = 5


def test_llama_block(tmp_path):
    torch.manual_seed(0)
    model = LlamaBlock().eval()
    result = transpile(model, torch.randn(2, 10, 32), out_dir=tmp_path / "out")
    assert_checks_ok(result)
    check_against_torch(model, torch.randn(1, 10, 32), result)
    assert result.report.transpose_count <= PYTORCH_PERMUTES, result.report.transposes


class Tagger(nn.Module):
    """Token ids -> embeddings -> a head split/merge (reshape with two dynamic dims) -> LSTM."""

    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(50, 16)
        self.lstm = nn.LSTM(16, 8, batch_first=True)
        self.out = nn.Linear(8, 4)

    def forward(self, ids):
        e = self.emb(ids)
        b, length, d = e.shape
        e = e.view(b, length, 4, 4).flip(-1).reshape(b, length, d)
        return self.out(self.lstm(e)[0])


def test_dynamic_sequence_by_default_fx(tmp_path):
    """Integer inputs keep their sequence axis dynamic by default: the Keras input is
    (None, None) and the check ran at two lengths."""
    torch.manual_seed(0)
    model = Tagger().eval()
    result = transpile(model, torch.randint(0, 50, (2, 9)), out_dir=tmp_path / "out")
    assert_checks_ok(result)
    assert result.report.dynamic == "ids[1]=seq"
    assert 'keras.Input(shape=(None,), dtype="int64"' in result.source_path.read_text()
    assert len({c.batch_size for c in result.report.checks}) == 2
    for length in (3, 9, 17):
        check_against_torch(model, torch.randint(0, 50, (2, length)), result)


class SmallCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 8, 3, padding=1)
        self.b = nn.Conv2d(8, 8, 3, stride=2, padding=1)

    def forward(self, x):
        return self.b(self.a(x).relu()).mean((2, 3))


def test_dynamic_image_size_declared_fx(tmp_path):
    model = SmallCNN().eval()
    spec = {"x": (None, None, torch.export.Dim("h", min=8, max=64), "w")}
    result = transpile(
        model, torch.randn(1, 3, 20, 24), dynamic_shapes=spec, out_dir=tmp_path / "o"
    )
    assert_checks_ok(result)
    assert result.report.dynamic == "x[2]=h, x[3]=w"
    assert "keras.Input(shape=(3, None, None)" in result.source_path.read_text()
    check_against_torch(model, torch.randn(2, 3, 31, 17), result)


def test_static_when_asked(tmp_path):
    result = transpile(Tagger().eval(), torch.randint(0, 50, (2, 9)), dynamic_shapes=None)
    assert result.report.dynamic == ""
    assert 'keras.Input(shape=(9,), dtype="int64"' in result.source_path.read_text()


@pytest.mark.parametrize(
    "spec, words",
    [
        (({1: "seq"}, {1: "seq"}), "one entry per input"),
        ({"nope": {1: "seq"}}, "does not take"),
        (({5: "seq"},), "no axis 5"),
        (({1: 3.5},), "declared as 3.5"),
        (({1: torch.export.Dim("s", min=12)},), "outside"),
    ],
)
def test_dynamic_shapes_errors(spec, words):
    with pytest.raises(TranspileError, match=words):
        transpile(Tagger().eval(), torch.randint(0, 50, (2, 9)), dynamic_shapes=spec)


@pytest.mark.slow
def test_dynamic_shapes_export_tracer(tmp_path):
    torch.manual_seed(0)
    model = SmallCNN().eval()
    result = transpile(
        model,
        torch.randn(1, 3, 20, 24),
        tracer="export",
        dynamic_shapes=({2: "h", 3: "w"},),
        out_dir=tmp_path / "out",
    )
    assert_checks_ok(result)
    assert result.report.dynamic == "x[2]=h, x[3]=w"
    check_against_torch(model, torch.randn(2, 3, 13, 29), result)
    result.to_tflite(tmp_path / "m.tflite")  # checked against PyTorch at both sizes


class TinyLM(nn.Module):
    """What Hugging Face text models do with the sequence length, in a few lines: a position
    table cut to the length (``pos[:, :L]``), ``arange`` over it, a mask expanded from
    ``mask[:, None, None, :]`` and gathered with aranges (the mask functions), GPT-2's Conv1D
    (batch and length merged for a matmul, then split back with sizes read off the ids),
    ``full_like`` + ``minimum`` (T5's buckets), ``diff`` (GPT-2's packed-sequence check) and
    CLIP's pooling ``h[arange(B), ids.argmax(-1)]``."""

    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(50, 8)
        self.pos = nn.Embedding(32, 8)
        self.register_buffer("position_ids", torch.arange(32)[None], persistent=False)
        self.w = nn.Parameter(torch.randn(8, 8) / 3)
        self.b = nn.Parameter(torch.randn(8) / 3)

    def forward(self, ids, mask):
        b, length = ids.shape
        pos = self.position_ids.narrow(1, 0, length)  # [:, :length] (fx: narrow)
        h = self.emb(ids) + self.pos(pos)
        h = torch.addmm(self.b, h.view(-1, h.size(-1)), self.w).view(b, length, 8)  # Conv1D
        steps = torch.arange(length) + 0
        near = torch.minimum(steps, torch.full_like(steps, 4)).float()  # (L,)
        rows = torch.arange(b)[:, None, None, None]
        keep = mask.bool()[rows, steps[None, None, None, :]]  # (B, 1, 1, L)
        keep = keep.expand(b, 1, length, length)
        scores = (h @ h.transpose(1, 2))[:, None] + near
        att = torch.softmax(scores.masked_fill(~keep, -1e9), -1)[:, 0]
        h = att @ h
        pos = pos.expand(b, -1)
        jumps = torch.diff(pos, dim=-1, prepend=pos[:, :1] - 1).float()  # all ones
        pooled = h[torch.arange(b), ids.argmax(-1)]
        return h * jumps[..., None], pooled


def _lm_inputs(batch: int, length: int, seed: int):
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, 50, (batch, length), generator=gen)
    mask = torch.ones(batch, length, dtype=torch.long)
    mask[-1, length - 2 :] = 0
    return ids, mask


@pytest.mark.parametrize("tracer", ["fx", "export"])
def test_dynamic_sequence_length_ops(tracer, tmp_path):
    """One conversion with the defaults keeps the length dynamic on both tracers and matches
    PyTorch at other lengths and batch sizes (up to the position table's 32)."""
    torch.manual_seed(0)
    model = TinyLM().eval()
    result = transpile(model, _lm_inputs(2, 9, 0), tracer=tracer, out_dir=tmp_path / "out")
    assert_checks_ok(result)
    assert result.report.dynamic == "ids[1]=seq, mask[1]=seq", result.report.notes
    assert 'keras.Input(shape=(None,), dtype="int64"' in result.source_path.read_text()
    for batch, length in ((3, 4), (1, 17), (2, 32)):
        check_against_torch(model, _lm_inputs(batch, length, 1), result)
