"""The batch through the torch.export path (issue 17): bounds torch.export suggests are kept,
varargs signatures export, a static batch is said and honoured, and no converted model's output
batch differs from PyTorch's at a batch size it accepts."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn
from helpers import assert_checks_ok, stable_seed

from transpiler import TranspileError, transpile


class Guarded(nn.Module):
    """A guard ``batch <= 63`` on the export path (diffusers' UNet2DModel has one): torch.export
    refuses ``Dim("batch", min=1)`` and suggests ``Dim("batch", max=63)``."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x):
        if x.shape[0] > 63:
            raise ValueError("at most 63 samples")
        return torch.relu(self.conv(x))


class Varargs(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(6, 5)

    def forward(self, *xs):
        return self.lin(xs[0] * 2 + xs[1])


class PositionByBatch(nn.Module):
    """The issue's bounded batch: a table cut to the batch size (valid for batch <= 64)."""

    def forward(self, x):
        pe = torch.arange(64.0)[: x.shape[0]]
        return x.reshape(x.shape[0], -1) + pe[:, None]


class FixedBatch(nn.Module):
    """A batch that cannot be dynamic: a reshape with the batch written out."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(12, 3)

    def forward(self, x):
        return self.lin(x.reshape(2, -1))


class CatChunk(nn.Module):
    """RAFT's pattern: two inputs concatenated on the batch, one conv over both, chunked back
    in two (torch's chunk guard ``(3B - 1) // B == 2`` used to specialize the batch)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, a, b):
        f1, f2 = torch.chunk(self.conv(torch.cat([a, b], 0)), 2, dim=0)
        return f1 * f2.sigmoid() + f2.chunk(2, 1)[0].mean()


class CatSplit(nn.Module):
    """torch.split by the batch size of a ``3B`` axis, and a slice ``f[B:]`` of it."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(6, 5)

    def forward(self, a, b):
        f = self.lin(torch.cat([a, b, a], 0))
        p, q, r = torch.split(f, a.shape[0])
        return p - q * r + f[a.shape[0] :].mean(0)


class CatSplitFx(nn.Module):
    """torch.split by the batch size of a ``3B`` axis (symbolic tracing follows it)."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(6, 5)

    def forward(self, a, b):
        p, q, r = torch.split(self.lin(torch.cat([a, b, a], 0)), a.shape[0])
        return p - q * r


class BatchChunk(nn.Module):
    """chunk(2) of the batch itself: the pieces' sizes (and count) depend on the batch."""

    def forward(self, x):
        a, b = x.chunk(2)
        return a * 2 + b


class ChunkCountByBatch(nn.Module):
    """chunk(3) of a ``2B`` axis: 2 pieces at B = 1, 3 at B = 3; the batch cannot be dynamic."""

    def forward(self, a, b):
        pieces = torch.cat([a, b], 0).chunk(3)
        return pieces[0] * 2 + pieces[-1].mean()


def _same(fn, model, *xs):
    with torch.no_grad():
        expected = model(*xs)
    got = fn(*(x.numpy() for x in xs))
    assert got.shape == tuple(expected.shape)
    np.testing.assert_allclose(got, expected.numpy(), rtol=1e-5, atol=1e-5)


def test_suggested_batch_bound_is_kept(tmp_path):
    torch.manual_seed(stable_seed("guarded"))
    model = Guarded().eval()
    result = transpile(model, torch.randn(1, 3, 8, 8), out_dir=tmp_path / "o")
    assert_checks_ok(result)
    assert result.report.tracer == "torch.export"
    assert result.report.batch == "dynamic, 1 <= N <= 63"
    assert any("bounded" in n and "63" in n for n in result.report.notes)
    assert "batch: dynamic, 1 <= N <= 63" in (tmp_path / "o" / "report.md").read_text()
    fn = result.load()
    for n in (2, 5, 63):
        _same(fn, model, torch.randn(n, 3, 8, 8))


def test_varargs_forward_keeps_a_dynamic_batch():
    torch.manual_seed(stable_seed("varargs"))
    model = Varargs().eval()
    xs = (torch.randn(1, 6), torch.randn(1, 6))
    result = transpile(model, xs)
    assert_checks_ok(result)
    assert result.report.batch == "dynamic"
    _same(result.load(), model, torch.randn(4, 6), torch.randn(4, 6))


def test_bounded_position_table_converts_exactly():
    model = PositionByBatch()
    result = transpile(model, torch.randn(1, 2, 4))
    assert_checks_ok(result)
    assert result.report.batch == "dynamic, 1 <= N <= 64"
    assert result.report.outputs == ["[0]: float32 (N, 8)"]
    assert "Batch: dynamic, 1 <= N <= 64: the PyTorch model" in result.source_path.read_text()
    fn = result.load()
    for n in (3, 7, 64):
        _same(fn, model, torch.randn(n, 2, 4))


@pytest.mark.parametrize("model", [PositionByBatch(), Guarded().eval()], ids=["pe", "guard"])
def test_verify_false_output_batch_follows_pytorch(model):
    x = torch.randn(1, 2, 4) if isinstance(model, PositionByBatch) else torch.randn(1, 3, 8, 8)
    fn = transpile(model, x, verify=False).load()
    for n in (1, 3, 5):
        _same(fn, model, torch.randn(n, *x.shape[1:]))


def test_static_batch_is_said_and_honoured(tmp_path):
    torch.manual_seed(stable_seed("fixed"))
    model = FixedBatch().eval()
    result = transpile(model, torch.randn(2, 2, 6), tracer="export", out_dir=tmp_path / "o")
    assert result.report.batch == "static: 2"
    assert {c.batch_size for c in result.report.checks} == {2}
    assert all(c.ok for c in result.report.checks)
    assert any("static" in n for n in result.report.notes)
    assert "batch_size=2" in result.source_path.read_text()
    assert "Batch: static: 2" in result.source_path.read_text()
    assert result.keras_model().inputs[0].shape[0] == 2
    _same(result.load(), model, torch.randn(2, 2, 6))


def test_static_exported_program_and_cli(tmp_path):
    torch.manual_seed(stable_seed("static-ep"))
    model = Guarded().eval()
    program = torch.export.export(model, (torch.randn(2, 3, 8, 8),), strict=False)
    result = transpile(program)
    assert result.report.batch == "static: 2"
    assert any("exported without a dynamic batch" in n for n in result.report.notes)
    _same(result.load(), model, torch.randn(2, 3, 8, 8))
    torch.export.save(program, tmp_path / "m.pt2")
    from transpiler.cli import main

    assert main([str(tmp_path / "m.pt2"), "-o", str(tmp_path / "cli")]) == 0
    assert (tmp_path / "cli" / "model.py").exists()


def test_chunk_of_concatenated_inputs_keeps_a_dynamic_batch():
    """The chunk is traced with symbolic bounds and converts as fixed fractions of the axis;
    checked by the numeric check and at three batch sizes (verify=False: the fx test below)."""
    torch.manual_seed(stable_seed("cat-chunk"))
    model = CatChunk().eval()
    x = (torch.randn(1, 3, 8, 8), torch.randn(1, 3, 8, 8))
    result = transpile(model, x, tracer="export")
    assert_checks_ok(result)
    assert result.report.batch == "dynamic"
    assert result.keras_model().inputs[0].shape[0] is None
    fn = result.load()
    for n in (1, 2, 5):
        _same(fn, model, torch.randn(n, 3, 8, 8), torch.randn(n, 3, 8, 8))


def test_split_by_the_batch_size_keeps_a_dynamic_batch():
    torch.manual_seed(stable_seed("cat-split"))
    model = CatSplit().eval()
    result = transpile(model, (torch.randn(1, 6), torch.randn(1, 6)), tracer="export")
    assert_checks_ok(result)
    assert result.report.batch == "dynamic"
    fn = result.load()
    for n in (2, 3, 7):
        _same(fn, model, torch.randn(n, 6), torch.randn(n, 6))


def test_fx_path_cuts_an_axis_that_is_a_multiple_of_the_batch():
    """The fx path (the default tracer traces these): chunk / split into equal pieces of an
    axis that is k times the batch in both import runs, k a multiple of the piece count;
    verify=False, checked at three batch sizes, and the numeric check for the split."""
    torch.manual_seed(stable_seed("fx-cat-chunk"))
    model = CatChunk().eval()
    x = (torch.randn(1, 3, 8, 8), torch.randn(1, 3, 8, 8))
    result = transpile(model, x, verify=False)
    assert result.report.tracer.startswith("torch.fx")
    assert result.report.batch == "dynamic"
    fn = result.load()
    for n in (1, 2, 5):
        _same(fn, model, torch.randn(n, 3, 8, 8), torch.randn(n, 3, 8, 8))
    split = CatSplitFx().eval()
    result = transpile(split, (torch.randn(1, 6), torch.randn(1, 6)), tracer="fx")
    assert_checks_ok(result)
    _same(result.load(), split, torch.randn(4, 6), torch.randn(4, 6))


def test_fx_chunk_of_the_batch_itself_is_refused():
    with pytest.raises(TranspileError, match="the number of pieces must not depend on the batch"):
        transpile(BatchChunk(), torch.randn(2, 4), tracer="fx")


class HalfCuts(nn.Module):
    """Slices at fractions of a ``2B`` / ``3B`` axis, by the batch size (``f[:n]``, ``f[n:]``,
    ``g[n:2n]``, ``g[-n:]``)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, a, b):
        f = self.conv(torch.cat([a, b], 0))
        g = torch.cat([a, b, a * 2], 0)
        n = a.shape[0]
        return f[:n] - f[n:, :, 1:].mean() + g[n : 2 * n, :1] * g[-n:, :1]


def test_fx_path_slices_at_fractions_of_a_batch_multiple():
    torch.manual_seed(stable_seed("fx-half-cuts"))
    model = HalfCuts().eval()
    x = (torch.randn(1, 3, 8, 8), torch.randn(1, 3, 8, 8))
    result = transpile(model, x, verify=False)
    assert result.report.tracer.startswith("torch.fx")
    fn = result.load()
    for n in (1, 2, 4):
        _same(fn, model, torch.randn(n, 3, 8, 8), torch.randn(n, 3, 8, 8))


class SizeTimesHalf(nn.Module):
    def forward(self, a):
        return a * (a.shape[0] // 2)


class RangeOfHalf(nn.Module):
    def forward(self, a):
        return a + torch.arange(a.shape[0] // 2 + 1).float().mean()


class SliceToHalf(nn.Module):
    def forward(self, a):
        return a[: a.shape[0] // 2] * 2


class ViewToHalf(nn.Module):
    def forward(self, a):
        return a.reshape(a.shape[0] // 2, -1) * 2


@pytest.mark.parametrize("model", [SliceToHalf(), ViewToHalf()], ids=["slice", "view"])
def test_fx_size_equal_at_both_runs_is_not_folded(model):
    """The fx path: ``B // 2`` is 1 at both shape runs (batches 2 and 3) although it is
    computed from the batch; it stays dynamic, and the slice / reshape that would have baked
    in 1 (a model wrong at batch 4, passing the check at 2 and 3) is refused."""
    with pytest.raises(TranspileError, match="dynamic input size"):
        transpile(model, torch.randn(2, 4), tracer="fx", verify=False)


@pytest.mark.parametrize("model", [SizeTimesHalf(), RangeOfHalf()], ids=["scalar", "tensor"])
def test_export_size_equal_at_both_runs_is_not_folded(model):
    """``B // 2`` is 1 at both shape runs (batches 2 and 3): folding it would build a model
    wrong at batch 4; torch.export's symbolic size says it follows the batch, so it is refused
    with a clear message instead."""
    with pytest.raises(TranspileError, match="batch size"):
        transpile(model, torch.randn(2, 4), tracer="export", verify=False)


def test_chunk_count_that_follows_the_batch_stays_static():
    """No symbolic cut where the number of pieces depends on the batch: torch's own guard
    applies and the batch is static (said, and checked at that batch)."""
    model = ChunkCountByBatch()
    result = transpile(model, (torch.randn(1, 4), torch.randn(1, 4)), tracer="export")
    assert result.report.batch == "static: 1"
    assert {c.batch_size for c in result.report.checks} == {1}
    assert all(c.ok for c in result.report.checks)
    _same(result.load(), model, torch.randn(1, 4), torch.randn(1, 4))


def test_slice_fractions_of_a_symbolic_axis():
    """Which slices of a symbolic axis convert, read from the exported graph's sizes: bounds
    that are fixed fractions of the axis (``f[:B]``, ``f[B:]`` of ``2B``), not others."""
    from transpiler.frontend.export_importer import _slice_fractions

    class Cuts(nn.Module):
        def forward(self, a, b):
            f = torch.cat([a, b], 0)
            n = a.shape[0]
            return f[:n], f[n:], f[1:], f[: n + 1], torch.cat([a, b, b], 0)[2 * n :]

    batch = torch.export.Dim("batch", min=1)
    ep = torch.export.export(
        Cuts(),
        (torch.randn(2, 3), torch.randn(2, 3)),
        dynamic_shapes={"a": {0: batch}, "b": {0: batch}},
        strict=False,
    )
    slices = [n for n in ep.graph.nodes if n.target is torch.ops.aten.slice.Tensor]
    cuts = [_slice_fractions(n) for n in slices]
    assert cuts == [(0, 2, 0, 1), (0, 2, 1, 2), None, None, (0, 3, 2, 3)]


def test_second_run_failure_names_the_run():
    model = FixedBatch().eval()
    with pytest.raises(TranspileError) as info:
        transpile(model, torch.randn(2, 2, 6), tracer="fx")
    message = str(info.value)
    assert "second run" in message and "(3, 2, 6)" in message
    assert "example inputs failed" not in message


@pytest.mark.slow
def test_raft_small_converts_exactly_with_a_dynamic_batch():
    """torchvision raft_small (weights=None): F.grid_sample and InstanceNorm convert; the chunk
    of its two images' features (``2B``) in two, whose guard ``(3B - 1) // B == 2`` made
    torch.export specialize the batch, is traced with symbolic bounds, so the batch stays
    dynamic: checked at batches 1, 2 and 3 (verify=True checks 1 and another size)."""
    import torchvision

    torch.manual_seed(stable_seed("raft"))
    raft = torchvision.models.optical_flow.raft_small(weights=None).eval()

    class Raft(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.raft = raft

        def forward(self, a, b):
            return self.raft(a, b, num_flow_updates=1)[-1]

    model = Raft().eval()
    x = (torch.randn(1, 3, 128, 128), torch.randn(1, 3, 128, 128))
    result = transpile(model, x)
    assert_checks_ok(result)
    assert result.report.tracer == "torch.export"
    assert result.report.batch == "dynamic"
    assert len({c.batch_size for c in result.report.checks}) == 2
    assert result.keras_model().inputs[0].shape[0] is None
    fn = result.load()
    for n in (1, 2, 3):
        xs = (torch.randn(n, 3, 128, 128), torch.randn(n, 3, 128, 128))
        with torch.no_grad():
            expected = model(*xs).numpy()
        got = fn(*(v.numpy() for v in xs))
        assert got.shape == expected.shape
        scale = max(1.0, float(np.abs(expected).max()))
        assert float(np.abs(got - expected).max()) / scale <= 1e-4


@pytest.mark.slow
def test_diffusers_unet2d_keeps_its_batch_bound():
    """diffusers' UNet2DModel (a small config, random weights): torch.export refuses an unbounded
    batch and suggests ``max=63``; converted exactly with that bound, stated in the report and
    the generated source. Needs the `diffusers` package (test extra)."""
    from diffusers import UNet2DModel

    torch.manual_seed(stable_seed("unet2d"))
    unet = UNet2DModel(
        sample_size=16,
        in_channels=3,
        out_channels=3,
        layers_per_block=1,
        block_out_channels=(8, 16),
        down_block_types=("DownBlock2D", "AttnDownBlock2D"),
        up_block_types=("AttnUpBlock2D", "UpBlock2D"),
        norm_num_groups=4,
        attention_head_dim=8,
    ).eval()

    class Denoise(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.unet = unet

        def forward(self, x):
            return self.unet(x, 3).sample

    model = Denoise().eval()
    result = transpile(model, torch.randn(1, 3, 16, 16))
    assert_checks_ok(result)
    assert result.report.batch == "dynamic, 1 <= N <= 63"
    assert "Batch: dynamic, 1 <= N <= 63" in result.source_path.read_text()
    fn = result.load()
    for n in (2, 5):
        _same(fn, model, torch.randn(n, 3, 16, 16))


def test_structure_check_names_the_node_that_lost_the_batch():
    """An IR whose output batch is fixed while PyTorch's follows the input (what a converter
    that bakes the batch in produces) is refused, naming the first node with a fixed batch."""
    from transpiler.frontend import import_model
    from transpiler.ir import TensorType
    from transpiler.signature import alternate_inputs
    from transpiler.verify import check_structure

    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 3)).eval()
    inputs = [torch.randn(2, 3, 4)]
    others = alternate_inputs(inputs)
    imported = import_model(model, inputs, others)
    graph = imported.graph
    check_structure(None, graph, imported, [inputs, others], ("nchw", "nchw"), False)
    flatten, *rest = graph.nodes
    for node in graph.nodes:  # a broken conversion: the batch baked in from the flatten on
        node.output.type = TensorType((2, *node.output.shape[1:]), node.output.type.dtype)
    with pytest.raises(TranspileError, match=rf"fixed at 2.*{flatten.output.name} \(reshape\)"):
        check_structure(None, graph, imported, [inputs, others], ("nchw", "nchw"), False)


def test_source_line_names_torchvision_not_the_caller():
    """A frame in torchvision is the model's source (``torch`` is a prefix of its path, not
    its directory)."""
    import os

    from transpiler.frontend.fx_importer import _TORCH_DIR, _source_line

    node = torch.fx.Graph().placeholder("x")
    vision = os.path.join(os.path.dirname(_TORCH_DIR), "torchvision", "models", "raft.py")
    inner = os.path.join(_TORCH_DIR, "functional.py")
    node.meta["stack_trace"] = (
        f'  File "/home/me/run.py", line 9, in forward\n'
        f'  File "{vision}", line 493, in forward\n'
        f'  File "{inner}", line 12, in chunk\n'
    )
    assert _source_line(node) == "raft.py:493"
