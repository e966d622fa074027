"""A faster float64 depthwise convolution for the numeric check's float64 reference run.

PyTorch's CPU kernels for a float64 depthwise ``conv2d`` (groups == in channels == out
channels) have no vectorized path: ConvNeXt-T's 18 depthwise 7x7 convolutions cost ~80% of
the whole check (18 s of CPU at batch 1 against 3 s with this module, measured under load).
``fast_depthwise()`` is a ``TorchFunctionMode`` that computes those convolutions as the sum
of their k·k shifted, per-channel-scaled input windows, in float64: the same products
summed in another order, so the result differs from PyTorch's by float64 rounding (~1e-15
relative), far below any tolerance the check applies. Every other call (other dtypes,
grouped but not depthwise convs, string padding, inputs that are not 4-D) goes to PyTorch
unchanged.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.overrides import TorchFunctionMode

__all__ = ["fast_depthwise", "Float64View"]

_CONV2D = {torch.conv2d, torch.nn.functional.conv2d}
_NAMES = ("input", "weight", "bias", "stride", "padding", "dilation", "groups")
_DEFAULTS = {"bias": None, "stride": 1, "padding": 0, "dilation": 1, "groups": 1}


def _pair(v: Any) -> tuple[int, int] | None:
    if isinstance(v, int):
        return v, v
    if isinstance(v, tuple | list) and len(v) == 2 and all(isinstance(e, int) for e in v):
        return int(v[0]), int(v[1])
    return None


def _depthwise64(args: tuple, kwargs: dict) -> torch.Tensor | None:
    """The depthwise float64 conv of ``conv2d(*args, **kwargs)``; None: not such a call."""
    if len(args) > len(_NAMES):
        return None
    bound = {**_DEFAULTS, **dict(zip(_NAMES, args, strict=False)), **kwargs}
    if set(bound) - set(_NAMES):
        return None
    x, w, b = bound.get("input"), bound.get("weight"), bound["bias"]
    stride, padding, dilation = (_pair(bound[k]) for k in ("stride", "padding", "dilation"))
    groups = bound["groups"]
    if not (
        isinstance(x, torch.Tensor)
        and isinstance(w, torch.Tensor)
        and x.dtype == torch.float64
        and w.dtype == torch.float64
        and (b is None or (isinstance(b, torch.Tensor) and b.dtype == torch.float64))
        and x.dim() == 4
        and w.dim() == 4
        and isinstance(groups, int)
        and groups > 1
        and x.shape[1] == groups == w.shape[0]
        and w.shape[1] == 1
        and None not in (stride, padding, dilation)
        and not (torch.is_grad_enabled() and (x.requires_grad or w.requires_grad))
    ):
        return None
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    kh, kw = int(w.shape[2]), int(w.shape[3])
    xp = torch.nn.functional.pad(x, (pw, pw, ph, ph)) if ph or pw else x
    ho = (xp.shape[2] - dh * (kh - 1) - 1) // sh + 1
    wo = (xp.shape[3] - dw * (kw - 1) - 1) // sw + 1
    if ho <= 0 or wo <= 0:
        return None
    out = torch.zeros(x.shape[0], groups, ho, wo, dtype=x.dtype)
    taps = w[:, 0].reshape(groups, kh * kw)
    for i in range(kh):
        for j in range(kw):
            window = xp[
                :,
                :,
                i * dh : i * dh + sh * (ho - 1) + 1 : sh,
                j * dw : j * dw + sw * (wo - 1) + 1 : sw,
            ]
            out.addcmul_(window, taps[:, i * kw + j].view(1, groups, 1, 1))
    if b is not None:
        out += b.view(1, groups, 1, 1)
    return out


class fast_depthwise(TorchFunctionMode):  # noqa: N801 - used like a function: with fast_depthwise()
    """Within it, float64 depthwise ``conv2d`` calls take the shifted-window form above."""

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        kwargs = kwargs or {}
        if func in _CONV2D:
            out = _depthwise64(tuple(args), kwargs)
            if out is not None:
                return out
        return func(*args, **kwargs)


# ------------------------------------------------------------------------------------------
# The float64 run of a float32 model, without a float64 copy of its weights
# ------------------------------------------------------------------------------------------

# Tensor attributes and methods that read metadata or identity only: answered from the
# original tensor, without making its float64 value (``dtype`` is answered separately)
_META = frozenset(
    {
        *(
            getattr(torch.Tensor, name).__get__
            for name in (
                "shape",
                "device",
                "requires_grad",
                "is_leaf",
                "grad_fn",
                "grad",
                "layout",
                "ndim",
                "is_sparse",
                "is_quantized",
                "is_meta",
                "is_cuda",
                "_version",
            )
            if hasattr(torch.Tensor, name)
        ),
        torch.Tensor.size,
        torch.Tensor.dim,
        torch.Tensor.numel,
        torch.Tensor.stride,
        torch.Tensor.is_contiguous,
        torch.Tensor.is_floating_point,
        torch.Tensor.is_complex,
        torch.Tensor.data_ptr,
        torch.Tensor.__len__,
        torch.Tensor.__hash__,
    }
)
_DTYPE = torch.Tensor.dtype.__get__


def _member(func: Any, funcs: frozenset | set) -> bool:
    try:
        return func in funcs
    except TypeError:  # an unhashable callable
        return False


class Float64View:
    """Runs a float32 module as its float64 copy (``copy.deepcopy(module).double()``) would
    run, without that copy: only one op's float64 weights exist at a time.

    Within ``run``, a ``TorchFunctionMode`` sees every torch call and replaces each floating
    parameter and buffer of ``module`` among its arguments (also inside lists, as the RNNs'
    flat weights) by its float64 value; ``tensor.dtype`` answers float64 for them (so
    ``x.to(self.weight.dtype)`` and HF's ``module.dtype`` read as in the copy). Tensors made in
    forward keep their dtype, as in the copy (``double()`` converts parameters and buffers
    only). A buffer's float64 value is made once and kept (its *shadow*), so in-place updates
    (counters, caches, BatchNorm running statistics in train mode) go to the shadow and are
    read back later in the same run and in later runs, as they would be in a copy, while the
    module's own buffer is left alone; a parameter changed in place by an op keeps its changed
    float64 value the same way. Tensors of other dtypes (integer, bool, complex, float64) keep
    their dtype and are cloned the same way, so that in-place updates never reach the module.
    Module attributes set during a run (caches, weight-norm hooks) are restored afterwards.
    Float64 depthwise convolutions take ``fast_depthwise``'s form.

    Results equal the copy's, except where PyTorch picks another kernel: the mode disables
    fused fast paths that check for ``__torch_function__`` (MultiheadAttention's and
    TransformerEncoderLayer's ``_native_multi_head_attention``), whose float64 results differ
    from the unfused ones by float64 rounding. ``unsupported(module)`` says why a module
    cannot run this way (TorchScript, ``torch.compile``, an ``_apply`` override that converts
    state of its own); the caller then makes the copy.
    """

    def __init__(self, module: torch.nn.Module) -> None:
        self.module = module
        # every parameter and buffer: (it, is a buffer, becomes float64)
        self._promoted: dict[int, tuple[torch.Tensor, bool, bool]] = {}
        for tensors, is_buffer in ((module.parameters(), False), (module.buffers(), True)):
            for t in tensors:
                to64 = t.is_floating_point() and t.dtype != torch.float64
                self._promoted.setdefault(id(t), (t, is_buffer, to64))
        self._shadows: dict[int, torch.Tensor] = {}

    @staticmethod
    def unsupported(module: torch.nn.Module) -> str | None:
        """Why ``module`` cannot run as its float64 copy through the mode (None: it can)."""
        for name, m in module.named_modules(remove_duplicate=True):
            where = name or "the model"
            if isinstance(m, torch.jit.ScriptModule):
                return f"{where} is TorchScript (its ops do not pass through Python)"
            if type(m).__name__ == "OptimizedModule":
                return f"{where} is torch.compile'd"
            if isinstance(m, torch.nn.TransformerEncoder) and m.use_nested_tensor:
                # its fast path (nested tensors: zeros at padded positions) checks for
                # __torch_function__, so the mode would take the other path
                return f"{where} may take the nested-tensor fast path"
            apply = type(m)._apply
            if apply is not torch.nn.Module._apply and apply is not torch.nn.RNNBase._apply:
                return f"{where} ({type(m).__name__}) converts state of its own in _apply"
        return None

    def float64(self, t: Any) -> Any:
        """``t``'s value in the float64 copy where it is one of the module's parameters or
        buffers (float64, or a clone for other dtypes); else ``t``."""
        return self._cast(t, None)

    def _cast(self, a: Any, made: list | None) -> Any:
        if isinstance(a, torch.Tensor):
            hit = self._promoted.get(id(a))
            if hit is None or hit[0] is not a:
                return a
            shadow = self._shadows.get(id(a))
            if shadow is not None:
                return shadow
            # float64 where the copy has it; else (integer, bool, complex, float64) a clone, so
            # that in-place updates never reach the module's own tensors
            t64 = a.detach().to(torch.float64) if hit[2] else a.detach().clone()
            if a.requires_grad:  # as the copy's parameter: PyTorch picks kernels by it
                t64.requires_grad_(True)  # (matmul folds a 3-D input only without grad)
            if hit[1]:  # a buffer: kept, so in-place updates persist
                self._shadows[id(a)] = t64
            elif made is not None:
                made.append((id(a), t64))
            return t64
        if isinstance(a, list | tuple) and a:
            cast = [self._cast(e, made) for e in a]
            if all(c is e for c, e in zip(cast, a, strict=True)):
                return a
            if isinstance(a, list):
                return cast
            if type(a) is tuple:
                return tuple(cast)
            return type(a)(*cast)  # a named tuple
        return a

    def _to64(self, t: Any) -> bool:
        """``t`` is one of the module's tensors that the float64 copy has in float64."""
        hit = self._promoted.get(id(t))
        return hit is not None and hit[0] is t and hit[2]

    def run(self, fn: Any, *args: Any) -> Any:
        """``fn(*args)`` within the mode, under no_grad; tensors among the result that are
        the module's own parameters or buffers come back as their float64 values."""
        modules = list(self.module.modules())
        saved = [(m, dict(m.__dict__), dict(m._parameters), dict(m._buffers)) for m in modules]
        try:
            with torch.no_grad(), _Float64Mode(self):
                out = fn(*args)
        finally:
            _restore(saved)
        return _map_tensors(out, self.float64)


def _restore(saved: list) -> None:
    """Undo attribute changes a run made to the modules (by identity of every entry)."""
    for m, attrs, params, buffers in saved:
        for table, before in ((m.__dict__, attrs), (m._parameters, params), (m._buffers, buffers)):
            if len(table) != len(before) or any(
                table.get(k, before) is not v for k, v in before.items()
            ):
                table.clear()
                table.update(before)


def _map_tensors(value: Any, fn: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return fn(value)
    if isinstance(value, list):
        return [_map_tensors(v, fn) for v in value]
    if type(value) is tuple:
        return tuple(_map_tensors(v, fn) for v in value)
    if type(value) is dict:
        return {k: _map_tensors(v, fn) for k, v in value.items()}
    return value


class _Float64Mode(TorchFunctionMode):
    """``Float64View``'s mode: casts the view's tensors among every call's arguments."""

    def __init__(self, view: Float64View) -> None:
        super().__init__()
        self.view = view

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        kwargs = kwargs or {}
        if _member(func, _META):
            return func(*args, **kwargs)
        view = self.view
        if func == _DTYPE:
            return torch.float64 if view._to64(args[0]) else func(*args)
        made: list = []
        args = view._cast(tuple(args), made)
        if kwargs:
            kwargs = {k: view._cast(v, made) for k, v in kwargs.items()}
        if _member(func, _CONV2D):
            out = _depthwise64(args, kwargs)
            if out is not None:
                return out
        out = func(*args, **kwargs)
        for key, t64 in made:
            if t64._version:  # changed in place: the parameter keeps its new value
                view._shadows[key] = t64
        return out
