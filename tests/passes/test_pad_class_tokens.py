"""pad_class_tokens: learned tokens broadcast to the batch and concatenated to a sequence become
a zero pad plus a constant (no run-time batch read), exactly; other concatenations stay."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
from _helpers import import_torch, ops_of, run_pass_and_check
from transpiler.passes import pad_class_tokens

from transpiler import transpile
from transpiler.interpreter import run_graph


class Tokens(nn.Module):
    """ViT/DeiT's embedding: [class (, distillation)] tokens + patches (+ position embedding)."""

    def __init__(self, tokens: int = 1, pos: bool = True, front: bool = True):
        super().__init__()
        self.tokens = nn.Parameter(torch.randn(1, tokens, 8))
        self.pos = nn.Parameter(torch.randn(1, 5 + tokens, 8)) if pos else None
        self.front = front
        self.proj = nn.Linear(6, 8)

    def forward(self, x):
        x = self.proj(x)
        t = self.tokens.expand(x.shape[0], -1, -1)
        x = torch.cat([t, x] if self.front else [x, t], dim=1)
        return x + self.pos if self.pos is not None else x * 2.0


def _run(model, x):
    g = import_torch(model, x)
    assert ops_of(g).count("broadcast_to") == 1
    g = run_pass_and_check(g, pad_class_tokens, [x.numpy()])
    other = torch.randn(3, *x.shape[1:])  # another batch size, against PyTorch itself
    (y,) = run_graph(g, [other.numpy()])
    np.testing.assert_allclose(y, model(other).detach().numpy(), rtol=0, atol=1e-5)
    return g


def test_class_token_and_position_embedding_become_pad_plus_one_constant():
    torch.manual_seed(0)
    model, x = Tokens(), torch.randn(2, 5, 6)
    g = _run(model, x)
    ops = ops_of(g)
    assert "cat" not in ops and "broadcast_to" not in [n.op for n in g.nodes if n.outputs]
    pad = next(n for n in g.nodes if n.op == "pad")
    assert pad.attrs["pads"] == ((0, 0), (1, 0), (0, 0))
    adds = [n for n in g.nodes if n.op == "add"]
    assert len(adds) == 1 and adds[0].inputs[0] is pad.output  # the position add, folded
    table = g.constants[adds[0].inputs[1].name]
    pos, token = model.pos.detach().numpy(), model.tokens.detach().numpy()
    assert table.shape == (1, 6, 8) and table.dtype == np.float32
    np.testing.assert_array_equal(table[:, :1], token + pos[:, :1])  # PyTorch's float32 sum
    np.testing.assert_array_equal(table[:, 1:], pos[:, 1:])


def test_two_tokens_at_the_end_without_a_position_add():
    torch.manual_seed(1)
    g = _run(Tokens(tokens=2, pos=False, front=False), torch.randn(1, 5, 6))
    pad = next(n for n in g.nodes if n.op == "pad")
    assert pad.attrs["pads"] == ((0, 0), (0, 2), (0, 0))
    assert "cat" not in ops_of(g) and ops_of(g).count("add") == 1


def test_concatenation_of_two_computed_tensors_is_left_alone():
    class Two(nn.Module):
        def forward(self, x):
            return torch.cat([x, x * 2.0], dim=1)

    x = torch.randn(2, 5, 6)
    g = run_pass_and_check(import_torch(Two(), x), pad_class_tokens, [x.numpy()])
    assert "cat" in ops_of(g) and "pad" not in ops_of(g)


def test_vit_end_to_end_both_backends(tmp_path):
    # torchvision's ViT with a random head (its own init is zeros: the check would be vacuous)
    import torchvision

    torch.manual_seed(0)
    vit = torchvision.models.VisionTransformer(
        image_size=32, patch_size=16, num_layers=1, num_heads=2, hidden_dim=16, mlp_dim=32
    ).eval()
    with torch.no_grad():
        vit.heads.head.weight.normal_()
        vit.class_token.normal_()
    x = torch.randn(1, 3, 32, 32)
    for backend in ("keras", "tf"):
        result = transpile(vit, x, backend=backend, io_layout="nhwc", out_dir=tmp_path / backend)
        record = next(p for p in result.report.passes if p.name == "pad_class_tokens")
        assert record.changed, record
        assert result.report.verified and all(c.ok for c in result.report.checks)
        assert "broadcast_to" not in [n.op for n in result.graph.nodes]
