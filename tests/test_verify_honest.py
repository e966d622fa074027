"""The numeric check is honest (issues 11 and 17): it compares with PyTorch in float64 and
allows PyTorch's own float32 error, shows both numbers, and says when it checked nothing."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
from helpers import assert_checks_ok, stable_seed, tiny_bert

from transpiler import transpile
from transpiler.report import TORCH_ERROR_FACTOR


def _small():
    torch.manual_seed(stable_seed("honest"))
    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Flatten()).eval()


def test_reference_is_float64_and_both_errors_are_reported(tmp_path):
    result = transpile(_small(), torch.randn(1, 3, 8, 8), out_dir=tmp_path / "o")
    assert_checks_ok(result)
    for c in result.report.checks:
        assert c.reference == "float64" and c.torch_error is not None and not c.vacuous
    assert result.report.verified
    assert "PyTorch float32 itself" in str(result.report)
    assert "PyTorch float32 error" in (tmp_path / "o" / "report.md").read_text()


class Zero(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(6, 4)
        nn.init.zeros_(self.lin.weight)
        nn.init.zeros_(self.lin.bias)

    def forward(self, x):
        return self.lin(x)


def test_all_zero_output_is_a_vacuous_check(tmp_path):
    result = transpile(Zero().eval(), torch.randn(2, 6), out_dir=tmp_path / "o")
    report = result.report
    assert report.ok and not report.verified
    assert report.vacuous_outputs == [0]
    # the zero weight cuts the output off the inputs: larger input scales cannot help
    assert {c.input_scale for c in report.checks} == {1.0}
    note = next(n for n in report.notes if "vacuous for output 0" in n)
    assert "does not depend on the inputs" in note and "lin (Linear)" in note
    assert "vacuous" in (tmp_path / "o" / "report.md").read_text()


class ZeroHead(nn.Module):
    """A backbone with a zero-initialized classifier head (torchvision's ViT, for one) and a
    second output that does depend on the input but is 0 at the inputs' own scale."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Linear(6, 8)
        self.head = nn.Linear(8, 3)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, x):
        features = torch.tanh(self.body(x))
        return self.head(features) * 2.0 + 1.0, torch.relu(x - 12.0)


def test_only_outputs_an_input_can_reach_are_retried():
    torch.manual_seed(stable_seed("zero-head"))
    report = transpile(ZeroHead().eval(), torch.randn(2, 6)).report
    assert report.ok and report.vacuous_outputs == [0]
    # output 1 (relu(x - 12)) is 0 at scale 1 but not at larger ones: retried, and checked there
    assert any(c.output_index == 1 and c.input_scale > 1 and not c.vacuous for c in report.checks)
    assert any("head (Linear)" in n and "output 0" in n for n in report.notes)
    assert not any("vacuous for output 1" in n for n in report.notes)


def test_tiny_output_is_checked_again_at_a_larger_scale():
    torch.manual_seed(stable_seed("tiny"))
    model = nn.Linear(6, 4).eval()
    with torch.no_grad():
        model.weight.mul_(3e-6)
        model.bias.zero_()
    report = transpile(model, torch.randn(2, 6)).report
    assert report.verified and not report.vacuous_outputs
    assert any(c.input_scale > 1 and not c.vacuous for c in report.checks)
    assert any("scaled by" in n for n in report.notes)


class Float32Only(nn.Module):
    """Multiplies by a float32 tensor made in forward: PyTorch cannot run it in float64."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(6, 6)

    def forward(self, x):
        return self.lin(x) @ torch.ones(6, 3)


def test_float32_fallback_is_said():
    result = transpile(Float32Only().eval(), torch.randn(2, 6))
    assert_checks_ok(result)
    assert all(c.reference == "float32" and c.torch_error is None for c in result.report.checks)
    assert any("could not run the model in float64" in n for n in result.report.notes)


def _calibrated_efficientnet():
    """BatchNorm statistics from one train-mode pass on 4 random images: some channels get a
    tiny variance and amplify float32 rounding far beyond the contract's tolerance, in PyTorch
    itself (its float32 output differs from its float64 output by ~1e-3 of max|y|)."""
    import torchvision

    torch.manual_seed(stable_seed("calibrated"))
    model = torchvision.models.efficientnet_b0(weights=None)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.momentum = None  # a cumulative average: the statistics of the calibration data
    model.train()
    with torch.no_grad():
        model(torch.randn(4, 3, 32, 32))
    return model.eval()


@pytest.mark.slow
def test_calibrated_efficientnet_converts_within_pytorchs_own_error(tmp_path):
    result = transpile(_calibrated_efficientnet(), torch.randn(1, 3, 32, 32), out_dir=tmp_path)
    assert_checks_ok(result)
    checks = result.report.checks
    assert all(c.reference == "float64" and c.torch_error is not None for c in checks)
    # the contract's tolerance alone is below what float32 PyTorch achieves here ...
    assert any(c.torch_error > 1e-4 * max(1.0, c.max_abs / max(c.max_rel, 1e-30)) for c in checks)
    # ... and ours stays within a few times PyTorch's own error
    assert all(c.max_abs <= TORCH_ERROR_FACTOR * c.torch_error or c.max_rel <= 1e-4 for c in checks)
    assert "PyTorch float32 itself" in str(result.report)


# --- the float64 copy and the reference computed while the model is written --------------


class Tied(nn.Module):
    """Shared weights (an embedding tied to the output projection), a buffer, an LSTM."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(11, 6)
        self.rnn = nn.LSTM(6, 6, batch_first=True)
        self.out = nn.Linear(6, 11)
        self.out.weight = self.emb.weight
        self.register_buffer("shift", torch.linspace(-1, 1, 11))

    def forward(self, ids):
        h, _ = self.rnn(self.emb(ids))
        return self.out(h) + self.shift


def test_float64_copy_leaves_the_model_alone_and_equals_double():
    import copy

    from transpiler.verify import float64_copy

    torch.manual_seed(stable_seed("float64_copy"))
    model = Tied().eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    ids = torch.randint(0, 11, (2, 5))
    copied = float64_copy(model)
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert all(p.dtype == torch.float64 for p in copied.parameters())
    assert copied.out.weight is copied.emb.weight  # the tie survives
    assert not any(p is q for p in copied.parameters() for q in model.parameters())
    with torch.no_grad():
        expected = copy.deepcopy(model).double()(ids)
        got = copied(ids)
    assert got.dtype == torch.float64 and torch.equal(got, expected)


def test_reference_runs_beside_the_build_and_leaves_no_thread(tmp_path):
    import threading

    result = transpile(Tied().eval(), torch.randint(0, 11, (2, 5)), out_dir=tmp_path / "o")
    assert_checks_ok(result)
    assert all(c.reference == "float64" for c in result.report.checks)
    assert not [t for t in threading.enumerate() if t.name.startswith("reference")]


def _fails_in_the_reference_run(module, args):
    """Raises where the check's reference runs (its thread), at the second batch size only."""
    import threading

    if threading.current_thread().name.startswith("reference") and args[0].shape[0] == 3:
        raise ValueError("no batch of 3 here")


def _fails_at_batch_3():
    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU()).eval()
    model[1].register_forward_pre_hook(_fails_in_the_reference_run)
    return model


def test_a_failing_reference_run_is_named_and_leaves_no_thread(tmp_path):
    import threading

    from transpiler.errors import TranspileError

    out = tmp_path / "o"
    with pytest.raises(TranspileError, match="numeric check .random inputs of batch 3.*no batch"):
        transpile(_fails_at_batch_3(), torch.randn(1, 4), out_dir=out, tracer="fx")
    assert not out.exists() or not any(out.iterdir())
    assert not [t for t in threading.enumerate() if t.name.startswith("reference")]


def test_the_converted_model_runs_while_the_reference_still_runs(tmp_path, monkeypatch):
    """At each batch size the check runs the converted model before it waits for PyTorch's
    outputs there, so the two overlap: here the reference's run at batch 3 waits until the
    converted model has run at batch 3 (a check that waited for the reference first would
    find it still waiting, and the run would see no such event)."""
    import threading

    import transpiler.backends.keras_source as keras_source

    ours_ran = threading.Event()
    seen: list[bool] = []

    def waiting(module, args):
        if threading.current_thread().name.startswith("reference") and args[0].shape[0] == 3:
            seen.append(ours_ran.wait(timeout=20))

    real = keras_source.make_callable

    def make_callable(*a, **k):
        run = real(*a, **k)

        def recorded(*arrays):
            if arrays[0].shape[0] == 3:
                ours_ran.set()
            return run(*arrays)

        return recorded

    monkeypatch.setattr(keras_source, "make_callable", make_callable)
    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU()).eval()
    model[1].register_forward_pre_hook(waiting)
    result = transpile(model, torch.randn(1, 4), out_dir=tmp_path / "o", tracer="fx")
    assert_checks_ok(result)
    assert seen and all(seen)  # every reference run at batch 3 found ours already run


def test_a_bad_out_dir_is_refused_and_leaves_no_reference_thread(tmp_path):
    """An out_dir that cannot be used is refused before any work (the reference, started
    before the passes, never starts): the error names it, the file is untouched, no
    reference run is left behind."""
    import threading
    import time

    from transpiler.errors import TranspileError

    def slow(module, args):  # the reference's runs outlast the passes
        if threading.current_thread().name.startswith("reference"):
            time.sleep(0.5)

    model = _small()
    model[0].register_forward_pre_hook(slow)
    taken = tmp_path / "a_file"
    taken.write_text("mine")
    with pytest.raises(TranspileError, match="exists and is not a folder"):
        transpile(model, torch.randn(1, 3, 8, 8), out_dir=taken)
    assert taken.read_text() == "mine"
    assert not [t for t in threading.enumerate() if t.name.startswith("reference")]


# --- the float64 reference without a float64 copy (Float64View) ----------------------------


class Stateful(nn.Module):
    """The traps of running the float32 model as its float64 copy: dtype reads, explicit casts,
    buffers changed in place and read back (a counter, a cache), a parameter changed in place
    (an embedding with max_norm), an attribute set in forward, int/bool/complex buffers."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(11, 6, max_norm=1.0)
        self.lin = nn.Linear(6, 6)
        self.register_buffer("count", torch.zeros(()))
        self.register_buffer("cache", torch.zeros(6))
        self.register_buffer("steps", torch.zeros((), dtype=torch.int64))
        self.register_buffer("keep", torch.ones(6, dtype=torch.bool))
        self.register_buffer("phase", torch.full((6,), 1 + 2j, dtype=torch.complex64))
        self.last = None

    def forward(self, ids, x):
        assert self.lin.weight.dtype == next(self.parameters()).dtype == x.dtype
        self.count += 1
        self.steps += 1
        self.cache.mul_(0.5).add_(x.mean(0).to(self.lin.weight.dtype))
        h = self.emb(ids).mean(1) + x
        y = self.lin(h).float().to(self.lin.weight.dtype) * self.count + self.cache
        y = torch.where(self.keep, y, 0.0) + self.phase.real.to(y.dtype) * self.steps
        self.last = y
        return y, torch.zeros_like(self.lin.bias) + self.lin.bias.new_ones(6)


class Attention(nn.Module):
    """MultiheadAttention (eval fast path in the copy), scaled_dot_product_attention."""

    def __init__(self) -> None:
        super().__init__()
        self.mha = nn.MultiheadAttention(8, 2, batch_first=True)
        self.qkv = nn.Linear(8, 24)

    def forward(self, x):
        a, _ = self.mha(x, x, x, need_weights=False)
        q, k, v = self.qkv(a).chunk(3, -1)
        return torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)


def _norms():
    return nn.Sequential(
        nn.Conv2d(3, 4, 3),
        nn.BatchNorm2d(4),
        nn.Conv2d(4, 4, 3, padding=1, groups=4),  # the fast float64 depthwise form
        nn.GroupNorm(2, 4),
        nn.Flatten(),
        nn.LayerNorm(4 * 36),
    )


def _view_cases():
    ids = torch.randint(0, 11, (3, 4))
    return {
        "stateful": (Stateful(), (ids, torch.randn(3, 6))),
        "tied_lstm": (Tied(), (ids,)),
        "gru": (nn.GRU(6, 5, num_layers=2, bidirectional=True), (torch.randn(4, 3, 6),)),
        "attention": (Attention(), (torch.randn(2, 5, 8),)),
        "norms": (_norms(), (torch.randn(2, 3, 8, 8),)),
        "train_batchnorm": (nn.BatchNorm1d(6).train(), (torch.randn(5, 6),)),
        "bert": (None, (ids, torch.ones(3, 4, dtype=torch.int64))),
    }


def _tiny_bert():
    return tiny_bert(vocab=11, hidden=8, layers=1, heads=2, ffn=12, positions=8)


def _state(model):
    """Everything of ``model`` a run must leave alone, by value, dtype and identity."""
    return (
        [(k, v.dtype, v.clone()) for k, v in model.state_dict(keep_vars=True).items()],
        [(m, dict(m.__dict__)) for m in model.modules()],
    )


def _same_state(model, state):
    tensors, attrs = state
    now = model.state_dict(keep_vars=True)
    assert [k for k, *_ in tensors] == list(now)
    assert all(now[k].dtype == dt and torch.equal(now[k], v) for k, dt, v in tensors)
    for m, before in attrs:
        assert m.__dict__.keys() == before.keys()
        assert all(m.__dict__[k] is v for k, v in before.items())
    assert not torch._C._is_torch_function_mode_enabled()


@pytest.mark.parametrize("name", list(_view_cases()))
def test_float64_view_equals_the_float64_copy(name):
    """Two runs through the view give the float64 copy's two runs' outputs (state carried
    from one run to the next as in the copy), and leave the model as it was."""
    from transpiler._float64 import Float64View, fast_depthwise
    from transpiler._pytree import flatten
    from transpiler.verify import float64_copy

    torch.manual_seed(stable_seed("float64_view"))
    model, args = _view_cases()[name]
    model = _tiny_bert().eval() if model is None else model
    if name != "train_batchnorm":
        model.eval()
    if name == "norms":
        model[1].running_var.uniform_(0.5, 2.0)
    args64 = [a.double() if a.is_floating_point() else a for a in args]
    state = _state(model)
    assert Float64View.unsupported(model) is None
    copied = float64_copy(model)
    with torch.no_grad(), fast_depthwise():
        expected = [list(flatten(copied(*args64))) for _ in range(2)]
    view = Float64View(model)
    got = [list(flatten(view.run(model, *args64))) for _ in range(2)]
    _same_state(model, state)
    for want, have in zip(expected, got, strict=True):
        assert len(want) == len(have)
        for a, b in zip(want, have, strict=True):
            assert a.dtype == b.dtype == torch.float64
            if name in ("attention", "bert"):  # the copy's fused attention kernel: rounding
                torch.testing.assert_close(b, a, rtol=1e-13, atol=1e-13)
            else:
                assert torch.equal(a, b)


class _InMode(nn.Module):
    """Refuses to run under the view's mode: the view's run fails, the copy's does not."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 4)

    def forward(self, x):
        from torch.overrides import _get_current_function_mode_stack

        if any(type(m).__name__ == "_Float64Mode" for m in _get_current_function_mode_stack()):
            raise RuntimeError("not under this mode")
        return self.lin(x)


@pytest.mark.parametrize(
    ("model", "via"),
    [
        (lambda: nn.Sequential(nn.Linear(4, 4), nn.Tanh()), "view"),
        (lambda: nn.Sequential(torch.jit.script(nn.Linear(4, 4)), nn.Tanh()), "copy"),
        (_InMode, "copy"),
    ],
)
def test_reference_takes_the_view_and_falls_back_to_the_copy(model, via):
    import numpy as np

    from transpiler.report import Report
    from transpiler.verify import _Reference, float64_copy

    torch.manual_seed(stable_seed("float64_via"))
    model = model().eval()
    x = torch.randn(3, 4)
    state = _state(model)
    reference = _Reference(model, Report("keras"))
    refs32, refs64 = reference._outputs([x], "the example inputs")
    assert reference.float64_via == via and not reference.report.notes
    _same_state(model, state)
    with torch.no_grad():
        expected = float64_copy(model)(x.double()).numpy()
    assert refs64[0].dtype == np.float64 and np.array_equal(refs64[0], expected)
    assert np.array_equal(refs32[0], model(x).detach().numpy())


@pytest.mark.parametrize("tracer", ["fx", "export"])
def test_diagnosis_values_come_from_the_view(tracer, monkeypatch):
    """The per-layer diagnosis's float64 values (the fx run of the imported root) equal the
    float64 copy's, parameters read by get_attr included, and the root is left alone."""
    import dataclasses

    from transpiler import verify
    from transpiler.frontend import load
    from transpiler.report import Report
    from transpiler.verify import _Reference, float64_copy

    torch.manual_seed(stable_seed("float64_values"))
    model = nn.Sequential(_norms(), nn.Linear(144, 5)).eval()
    x = torch.randn(2, 3, 8, 8)
    loaded = load(model, x, tracer=tracer)
    root = loaded.imported.root
    state = _state(root)
    copy_root = float64_copy(root)
    monkeypatch.setattr(verify, "float64_copy", None)  # the view's values, or none at all
    by_name, by_name64 = _Reference(loaded.torch_model, Report("keras"), loaded.imported).values(
        [x]
    )
    _same_state(root, state)
    expected = dataclasses.replace(loaded.imported, root=copy_root).run_values([x.double()])
    assert by_name64.keys() == expected.keys() == by_name.keys()
    for k, want in expected.items():
        if isinstance(want, torch.Tensor):
            assert by_name64[k].dtype == want.dtype
            torch.testing.assert_close(by_name64[k], want, rtol=1e-14, atol=1e-14)


def test_transpile_checks_against_float64_without_a_copy(tmp_path, monkeypatch):
    """transpile's float64 reference comes from the view: with no float64 copy possible, the
    checks are still against float64 and nothing says otherwise."""
    from transpiler import verify

    monkeypatch.setattr(verify, "float64_copy", None)
    model = Tied().eval()
    state = _state(model)
    result = transpile(model, torch.randint(0, 11, (2, 5)), out_dir=tmp_path / "o")
    assert_checks_ok(result)
    assert all(c.reference == "float64" for c in result.report.checks)
    assert not any("float64" in n for n in result.report.notes)
    _same_state(model, state)
