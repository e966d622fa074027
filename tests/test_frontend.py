"""The torch.fx frontend: converter registry, folding of sizes/constants, module handling."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from transpiler import UnsupportedOpError, transpile
from transpiler.frontend import ConverterRegistry, import_model
from transpiler.interpreter import run_graph
from transpiler.signature import alternate_inputs


def _import(model, x):
    return import_model(model.eval(), [x], alternate_inputs([x])).graph


class Swish(nn.Module):
    """A user activation the default registry does not know."""

    def forward(self, x):
        return x * torch.special.expit(x)


def test_extra_converters_take_a_user_module():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), Swish()).eval()
    x = torch.randn(2, 3, 8, 8)
    with pytest.raises(UnsupportedOpError, match="special_expit"):
        transpile(model, x)
    extra = ConverterRegistry()

    @extra.converts(Swish)
    def swish(b, module, x):
        return b.op("silu", [x])

    result = transpile(model, x, extra_converters=extra)
    assert "silu" in [n.op for n in result.graph.nodes]
    assert result.report.ok


def test_sizes_are_folded_and_batch_stays_dynamic():
    class Head(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)
            self.fc = nn.Linear(4 * 6 * 6, 5)

        def forward(self, x):
            y = self.conv(x)
            return self.fc(y.view(y.size(0), -1))

    g = _import(Head(), torch.randn(2, 3, 8, 8))
    reshape = next(n for n in g.nodes if n.op == "reshape")
    assert reshape.attrs["shape"] == (-1, 144)
    assert g.outputs[0].shape == (None, 5)


def test_constants_made_in_forward_are_folded():
    class Offsets(nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = nn.Parameter(torch.randn(4, 1, 1))

        def forward(self, x):
            return x * (self.scale * 2) + torch.ones(4, 1, 1)

    model = Offsets().eval()
    x = torch.randn(2, 4, 3, 3)
    g = _import(model, x)
    assert [n.op for n in g.nodes] == ["mul", "add"]
    np.testing.assert_allclose(run_graph(g, [x.numpy()])[0], model(x).detach().numpy(), atol=1e-6)


def test_shared_module_called_twice():
    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(4, 4, 3, padding=1)

        def forward(self, x):
            return self.conv(F.relu(self.conv(x)))

    model = Twice().eval()
    x = torch.randn(2, 4, 6, 6)
    result = transpile(model, x)
    source = result.source_path.read_text()
    assert 'name="conv"' in source and 'name="conv_1"' in source
    assert result.report.ok


def test_subclass_keeping_forward_converts_like_its_base():
    class MyConv(nn.Conv2d):
        pass

    class MyConvWithForward(nn.Conv2d):
        def forward(self, x):
            return super().forward(x) * 2

    x = torch.randn(2, 3, 6, 6)
    g1 = _import(nn.Sequential(MyConv(3, 4, 3)), x)
    assert [n.op for n in g1.nodes] == ["conv"]
    assert g1.nodes[0].source.module_type == "MyConv"
    g2 = _import(nn.Sequential(MyConvWithForward(3, 4, 3)), x)
    assert [n.op for n in g2.nodes] == ["conv", "mul"]  # traced through its own forward


def test_unsupported_ops_name_module_path_and_line():
    class Bad(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Sequential(nn.Conv2d(3, 3, 1))

        def forward(self, x):
            y = torch.cumprod(self.a(x), dim=1)
            return torch.fliplr(y)

    with pytest.raises(UnsupportedOpError) as info:
        transpile(Bad(), torch.randn(1, 3, 4, 4))
    msg = str(info.value)
    assert "torch.cumprod" in msg and "torch.fliplr" in msg and "test_frontend.py:" in msg
    assert [op["target"] for op in info.value.ops] == ["torch.cumprod", "torch.fliplr"]


def test_batch_sized_constants_made_in_forward():
    class Zeros(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(6, 4)

        def forward(self, x):
            z = x.new_zeros((x.shape[0], 4)) + torch.ones_like(x).sum(1, keepdim=True)
            return self.fc(x) + z + x.new_full((x.size(0), 4), 0.5)

    model = Zeros().eval()
    result = transpile(model, torch.randn(2, 6))
    assert result.report.ok
    x = torch.randn(5, 6)  # another batch size: the constants follow it
    np.testing.assert_allclose(result.load()(x.numpy()), model(x).detach().numpy(), atol=1e-5)
    source = result.source_path.read_text()
    assert "\n    sum = " not in source  # builtins are never shadowed


# --- the import's shape runs: input-dependent values on meta tensors --------------------------


class AnchorGrid(nn.Module):
    """A value-dependent branch and a constant built from its shape and device (YOLO's anchor
    grid is made so): the constant must be computed for real, on the CPU."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x):
        y = torch.relu(self.conv(x))
        grid = torch.arange(y.shape[-1], device=y.device, dtype=y.dtype)
        return y * 2 + grid.view(1, 1, 1, -1)


def test_shape_runs_compute_input_dependent_values_on_meta():
    from transpiler.frontend.fx_importer import _input_dependence, _run, trace
    from transpiler.frontend.registry import DEFAULT_REGISTRY

    model = AnchorGrid().eval()
    x = torch.randn(2, 3, 5, 7)
    fx_graph = trace(model, DEFAULT_REGISTRY)
    depends = _input_dependence(fx_graph, through_shapes=False)
    run = _run(fx_graph, model, [x], slim=depends, meta=depends)
    values = {n.name: v for n, v in run.values.items()}
    grid = next(v for k, v in values.items() if k.startswith("arange"))
    assert not grid.is_meta and torch.equal(grid, torch.arange(7.0))
    out = values["output"]
    assert out.is_meta and out.shape == (2, 4, 5, 7)
    result = transpile(model, x)  # the grid is folded into a constant; the check passes
    assert result.report.verified


@torch.library.custom_op("transpiler_test::twice", mutates_args=())
def _twice(x: torch.Tensor) -> torch.Tensor:
    return x * 2  # no fake (meta) implementation registered


class Twice(nn.Module):
    def forward(self, x):
        return torch.ops.transpiler_test.twice(torch.relu(x)) + 1


def test_shape_runs_fall_back_to_values_where_meta_cannot_run():
    from transpiler.frontend.fx_importer import _input_dependence, _run, _shape_run, trace
    from transpiler.frontend.registry import DEFAULT_REGISTRY

    model = Twice().eval()
    x = torch.randn(2, 5)
    fx_graph = trace(model, DEFAULT_REGISTRY)
    depends = _input_dependence(fx_graph, through_shapes=False)
    with pytest.raises(Exception, match="twice"):  # noqa: PT011 - the meta run's own failure
        _run(fx_graph, model, [x], slim=depends, meta=depends)
    run = _shape_run(fx_graph, model, [x], depends, None)
    out = next(v for n, v in run.values.items() if n.op == "output")
    assert not out.is_meta and torch.equal(out, torch.relu(x) * 2 + 1)
