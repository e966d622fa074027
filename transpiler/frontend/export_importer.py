"""The ``torch.export`` frontend: an exported program (ATen ops) -> the same IR as the fx path.

``torch.export`` traces through Python control flow on shapes that symbolic tracing refuses
(Ultralytics' heads, timm's MobileViT). Its inference graph (``run_decompositions({})``: no
decompositions beyond functionalization) holds ATen ops that mirror the functional API
(``aten.conv2d`` takes F.conv2d's arguments, ``aten.linear`` F.linear's, ...). So rather than a
second importer, the exported graph is rewritten into an fx graph the fx importer already
understands:

- parameters, buffers and lifted constants become ``get_attr`` nodes on a holder module;
- each ATen overload is registered, in a registry copy, to the converter of its functional or
  method twin (``ATEN``); the few with other conventions get small adapters
  (``_native_batch_norm_legit_no_training`` + ``getitem(0)`` -> F.batch_norm, ``slice``,
  ``upsample_*``, ``sym_size``);
- ``nn_module_stack`` and ``stack_trace`` metadata are kept, so layer names and comments still
  carry the PyTorch module paths.

The batch is traced symbolic (``torch.export.Dim``) from a batch of 2 built from the example
(export refuses a dynamic dimension traced at size 1), then the usual two shape runs follow.
When torch.export refuses a dynamic batch, the bounds it suggests are tried, then a static
batch (``export_program`` returns a ``BatchSpec`` saying which; the second run stays inside it).
``torch.chunk`` / ``torch.split`` of a symbolic axis (RAFT's two images concatenated on the
batch, then chunked in two) are traced without the floor-division guard that would specialize
the batch (``_symbolic_splits``), and slices whose bounds are fixed fractions of a symbolic
axis (``x[B:2B]`` of a ``2B`` axis) convert exactly (``_slice_fractions``).
"""

from __future__ import annotations

import contextlib
import inspect
import math
import operator
import re
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812
from torch import fx

from transpiler.errors import TranspileError
from transpiler.ir import TensorType
from transpiler.signature import BatchSpec

from .fx_importer import DYNAMIC
from .registry import ConverterRegistry

__all__ = ["export_to_fx", "aten_registry", "load_pt2", "export_program", "program_batch"]

aten = torch.ops.aten


def _bn_inference(x, weight, bias, running_mean, running_var, momentum, eps):
    """aten._native_batch_norm_legit_no_training without its unused mean/invstd outputs."""
    return F.batch_norm(x, running_mean, running_var, weight, bias, False, momentum, eps)


def _embedding(weight: torch.Tensor, indices: torch.Tensor, *rest: Any) -> torch.Tensor:
    """aten.embedding takes the table first."""
    return F.embedding(indices, weight)


def _instance_norm(
    x: torch.Tensor, weight, bias, running_mean, running_var, use_input_stats, momentum, eps, *_
) -> torch.Tensor:
    """aten.instance_norm takes the affine parameters before the statistics."""
    return F.instance_norm(
        x, running_mean, running_var, weight, bias, use_input_stats, momentum, eps
    )


def _index(x: torch.Tensor, indices: Sequence[Any]) -> torch.Tensor:
    """aten.index.Tensor: one index tensor per leading dim (None: the whole dim)."""
    return x[tuple(slice(None) if i is None else i for i in indices)]


def _sym_size(x: torch.Tensor, dim: int) -> int:
    return x.size(dim)


def _slice(x: torch.Tensor, dim: int = 0, start=None, end=None, step: int = 1) -> torch.Tensor:
    index = [slice(None)] * x.dim()
    index[dim] = slice(start, end, step)
    return x[tuple(index)]


def _constant_pad(x: torch.Tensor, pad: Sequence[int], value: float = 0.0) -> torch.Tensor:
    """aten.constant_pad_nd takes the value third (F.pad takes the mode there)."""
    return F.pad(x, pad, "constant", value)


def _upsample_kwargs(mode: str, output_size: Any, rest: tuple) -> dict[str, Any]:
    """aten.upsample_{nearest,bilinear,bicubic}2d.vec arguments -> F.interpolate keywords. After
    ``output_size`` come (scale_factors) or (align_corners, scale_factors)."""
    scales = rest[-1] if rest and not isinstance(rest[-1], bool) else None
    if output_size is None and scales is None:
        raise TranspileError("upsample without size or scale factors")
    kwargs: dict[str, Any] = {"mode": mode}
    if mode in ("bilinear", "bicubic"):
        kwargs["align_corners"] = bool(rest[0]) if rest else False
    if output_size is not None:
        kwargs["size"] = list(output_size)
    else:
        kwargs["scale_factor"] = list(scales)
    return kwargs


def _upsample(mode: str) -> Callable[..., torch.Tensor]:
    def fn(x, output_size=None, *rest):
        return F.interpolate(x, **_upsample_kwargs(mode, output_size, rest))

    fn.__name__ = f"upsample_{mode}"
    return fn


_TRUNCATED: dict[Any, tuple[Any, int]] = {}  # adapter -> (torch function, arguments kept)


def _truncated(fn: Any, n: int) -> Callable[..., Any]:
    """``fn`` with the ATen op's trailing backend-only arguments dropped (cudnn_enable, ...)."""

    def call(*args: Any) -> Any:
        return fn(*args[:n])

    call.__name__ = getattr(fn, "__name__", "op")
    _TRUNCATED[call] = (fn, n)
    return call


# ATen overload -> ("function", torch function) | ("method", Tensor method name) | ("call", fn):
# "function"/"method" reuse that converter with the same arguments; "call" replaces the node's
# target by ``fn`` (same arguments), whose converter is looked up as a function.
ATEN: dict[Any, tuple[str, Any]] = {}


def _alias(kind: str, target: Any, *overloads: Any) -> None:
    for o in overloads:
        ATEN[o] = (kind, target)


def _build_table() -> None:
    fn, meth = "function", "method"
    _alias(fn, F.conv1d, aten.conv1d.default)
    _alias(fn, F.conv2d, aten.conv2d.default)
    _alias(fn, F.conv3d, aten.conv3d.default)
    _alias(fn, F.conv_transpose1d, aten.conv_transpose1d.default)
    _alias(fn, F.conv_transpose2d, aten.conv_transpose2d.input)
    _alias(fn, F.conv_transpose3d, aten.conv_transpose3d.input)
    _alias(fn, F.linear, aten.linear.default)
    _alias(fn, F.relu, aten.relu.default)
    _alias(fn, F.relu6, aten.relu6.default)
    _alias(fn, F.hardtanh, aten.hardtanh.default)
    _alias(fn, F.hardswish, aten.hardswish.default)
    _alias(fn, F.hardsigmoid, aten.hardsigmoid.default)
    _alias(fn, F.silu, aten.silu.default)
    _alias(fn, F.gelu, aten.gelu.default)
    _alias(fn, F.leaky_relu, aten.leaky_relu.default)
    _alias(fn, F.elu, aten.elu.default)
    _alias(fn, F.mish, aten.mish.default)
    _alias(fn, F.softplus, aten.softplus.default)
    _alias(fn, torch.sigmoid, aten.sigmoid.default)
    _alias(fn, torch.tanh, aten.tanh.default)
    _alias(fn, torch.exp, aten.exp.default)
    _alias(fn, torch.log, aten.log.default)
    _alias(fn, torch.sqrt, aten.sqrt.default)
    _alias(fn, torch.rsqrt, aten.rsqrt.default)
    _alias(fn, torch.abs, aten.abs.default)
    _alias(fn, torch.neg, aten.neg.default)
    _alias(fn, torch.erf, aten.erf.default)
    _alias(fn, torch.reciprocal, aten.reciprocal.default)
    _alias(fn, torch.clamp, aten.clamp.default)
    _alias(fn, torch.add, aten.add.Tensor, aten.add.Scalar)
    _alias(fn, torch.sub, aten.sub.Tensor, aten.sub.Scalar)
    _alias(fn, torch.mul, aten.mul.Tensor, aten.mul.Scalar)
    _alias(fn, torch.div, aten.div.Tensor, aten.div.Scalar, aten.div.Tensor_mode)
    _alias(fn, torch.div, aten.div.Scalar_mode)
    _alias(fn, torch.floor_divide, aten.floor_divide.default, aten.floor_divide.Scalar)
    _alias(fn, torch.floor, aten.floor.default)
    _alias(fn, torch.ceil, aten.ceil.default)
    _alias(fn, torch.trunc, aten.trunc.default)
    _alias(fn, torch.round, aten.round.default, aten.round.decimals)
    _alias(fn, torch.pow, aten.pow.Tensor_Scalar, aten.pow.Tensor_Tensor)
    _alias(fn, torch.maximum, aten.maximum.default)
    _alias(fn, torch.minimum, aten.minimum.default)
    _alias(fn, torch.matmul, aten.matmul.default)
    _alias(fn, torch.bmm, aten.bmm.default)
    _alias(fn, torch.einsum, aten.einsum.default)
    _alias(fn, F.adaptive_avg_pool1d, aten.adaptive_avg_pool1d.default)
    _alias(fn, F.adaptive_avg_pool2d, aten.adaptive_avg_pool2d.default)
    _alias(fn, F.adaptive_avg_pool3d, aten.adaptive_avg_pool3d.default)
    _alias(fn, F.max_pool1d, aten.max_pool1d.default)
    _alias(fn, F.max_pool2d, aten.max_pool2d.default)
    _alias(fn, F.max_pool3d, aten.max_pool3d.default)
    for n in (1, 2, 3):  # max pooling with its indices
        if hasattr(aten, f"max_pool{n}d_with_indices"):
            overload = getattr(aten, f"max_pool{n}d_with_indices").default
            _alias(fn, getattr(F, f"max_pool{n}d_with_indices"), overload)
    _alias(fn, F.avg_pool1d, aten.avg_pool1d.default)
    _alias(fn, F.avg_pool2d, aten.avg_pool2d.default)
    _alias(fn, F.avg_pool3d, aten.avg_pool3d.default)
    _alias("call", _truncated(F.layer_norm, 5), aten.layer_norm.default)
    _alias("call", _truncated(F.group_norm, 5), aten.group_norm.default)
    _alias(fn, F.scaled_dot_product_attention, aten.scaled_dot_product_attention.default)
    _alias(fn, F.pixel_shuffle, aten.pixel_shuffle.default)
    _alias(fn, F.pixel_unshuffle, aten.pixel_unshuffle.default)
    _alias(fn, F.pad, aten.pad.default)
    _alias(fn, torch.cat, aten.cat.default, aten.concat.default)
    _alias(fn, torch.stack, aten.stack.default)
    _alias(fn, torch.flatten, aten.flatten.using_ints)
    _alias(fn, torch.permute, aten.permute.default)
    _alias(fn, torch.transpose, aten.transpose.int)
    _alias(fn, torch.reshape, aten.reshape.default)
    _alias(fn, torch.unsqueeze, aten.unsqueeze.default)
    _alias(fn, torch.squeeze, aten.squeeze.dim, aten.squeeze.default)
    _alias(fn, torch.split, aten.split.Tensor, aten.split_with_sizes.default)
    _alias(fn, torch.chunk, aten.chunk.default)
    _alias(fn, torch.unbind, aten.unbind.int)
    _alias(fn, torch.select, aten.select.int)
    _alias(fn, torch.narrow, aten.narrow.default)
    _alias(fn, torch.mean, aten.mean.dim)
    _alias(fn, torch.sum, aten.sum.dim_IntList)
    _alias(fn, torch.amax, aten.amax.default)
    _alias(fn, torch.amin, aten.amin.default)
    _alias(fn, torch.max, aten.max.dim)
    _alias(fn, torch.min, aten.min.dim)
    _alias(fn, torch.argmax, aten.argmax.default)
    _alias(fn, torch.argmin, aten.argmin.default)
    _alias(fn, torch.softmax, aten.softmax.int)
    _alias(fn, torch.log_softmax, aten.log_softmax.int)
    _alias("call", _truncated(torch.softmax, 2), aten._softmax.default)
    _alias("call", _truncated(torch.log_softmax, 2), aten._log_softmax.default)
    _alias(meth, "view", aten.view.default, aten._unsafe_view.default)
    _alias(meth, "expand", aten.expand.default)
    _alias(meth, "contiguous", aten.contiguous.default)
    _alias(meth, "clone", aten.clone.default)
    _alias(fn, operator.getitem, operator.getitem)
    _alias(fn, torch.mean, aten.mean.default)
    _alias(fn, torch.rsub, aten.rsub.Scalar, aten.rsub.Tensor)
    _alias(fn, torch.addmm, aten.addmm.default)
    _alias(fn, torch.arange, aten.arange.default, aten.arange.start, aten.arange.start_step)
    _alias(meth, "to", aten._to_copy.default, aten.to.dtype)
    _alias(fn, torch.eq, aten.eq.Tensor, aten.eq.Scalar)
    _alias(fn, torch.ne, aten.ne.Tensor, aten.ne.Scalar)
    _alias(fn, torch.lt, aten.lt.Tensor, aten.lt.Scalar)
    _alias(fn, torch.le, aten.le.Tensor, aten.le.Scalar)
    _alias(fn, torch.gt, aten.gt.Tensor, aten.gt.Scalar)
    _alias(fn, torch.ge, aten.ge.Tensor, aten.ge.Scalar)
    _alias(fn, torch.logical_and, aten.logical_and.default, aten.bitwise_and.Tensor)
    _alias(fn, torch.logical_and, aten.__and__.Tensor)
    _alias(fn, torch.logical_or, aten.logical_or.default, aten.bitwise_or.Tensor)
    _alias(fn, torch.logical_or, aten.__or__.Tensor)
    _alias(fn, torch.logical_not, aten.logical_not.default, aten.bitwise_not.default)
    _alias(fn, torch.where, aten.where.self)
    _alias(meth, "masked_fill", aten.masked_fill.Scalar, aten.masked_fill.Tensor)
    _alias(fn, torch.cumsum, aten.cumsum.default)
    _alias(fn, torch.flip, aten.flip.default)
    _alias(fn, torch.roll, aten.roll.default)
    _alias(fn, torch.grid_sampler, aten.grid_sampler.default)
    _alias(fn, torch.grid_sampler_2d, aten.grid_sampler_2d.default)
    _alias(fn, torch.index_select, aten.index_select.default)
    _alias(fn, torch.floor, aten.floor.default)
    _alias(fn, torch.ceil, aten.ceil.default)
    _alias(fn, torch.round, aten.round.default)
    _alias(fn, torch.sin, aten.sin.default)
    _alias(fn, torch.cos, aten.cos.default)
    _alias(fn, torch.remainder, aten.remainder.Tensor, aten.remainder.Scalar)
    _alias(fn, F.selu, aten.selu.default)
    _alias(fn, F.logsigmoid, aten.log_sigmoid.default)
    _alias(fn, torch.std, *(getattr(aten.std, o) for o in aten.std.overloads()))
    _alias(fn, torch.var, *(getattr(aten.var, o) for o in aten.var.overloads()))
    _alias(fn, torch.clamp_min, aten.clamp_min.default)
    _alias(fn, torch.clamp_max, aten.clamp_max.default)
    # -- sequence and transformer models (issue 12, s2-hf-text) --
    _alias(fn, torch.where, aten.where.ScalarSelf, aten.where.ScalarOther, aten.where.Scalar)
    _alias(meth, "type_as", aten.type_as.default)
    _alias(fn, torch.gather, aten.gather.default)
    _alias(fn, torch.take_along_dim, aten.take_along_dim.default)
    _alias(fn, torch.triu, aten.triu.default)
    _alias(fn, torch.tril, aten.tril.default)
    _alias(fn, torch.topk, aten.topk.default)
    _alias(fn, torch.sort, aten.sort.default, aten.sort.stable)
    _alias(fn, torch.argsort, aten.argsort.default, aten.argsort.stable)
    _alias(fn, torch.repeat_interleave, aten.repeat_interleave.self_int)
    _alias(fn, F.rms_norm, aten.rms_norm.default)
    _alias("call", _embedding, aten.embedding.default)
    _alias("call", _instance_norm, aten.instance_norm.default)
    _alias("call", _index, aten.index.Tensor)
    _alias("call", _bn_inference, aten._native_batch_norm_legit_no_training.default)
    _alias("call", _sym_size, aten.sym_size.int)
    _alias("call", _slice, aten.slice.Tensor)
    _alias("call", _upsample("nearest"), aten.upsample_nearest2d.vec)
    _alias("call", _upsample("bilinear"), aten.upsample_bilinear2d.vec)
    _alias("call", _upsample("bicubic"), aten.upsample_bicubic2d.vec)
    _alias("call", _constant_pad, aten.constant_pad_nd.default)


_build_table()


def aten_registry(base: ConverterRegistry) -> ConverterRegistry:
    """``base`` plus a converter for each ATen overload of ``ATEN`` (and the adapters)."""
    reg = base.copy()
    for overload, (kind, target) in ATEN.items():
        if kind == "method":
            conv = base.methods.get(target)
        elif kind == "call":
            conv = _adapter_converter(base, target)
        else:
            conv = base.functions.get(target)
        if conv is not None:
            reg.functions[overload if kind != "call" else target] = conv
    return reg


def _batch_prefix(b: Any, x: Any, dim: int, start: Any, step: Any) -> Any:
    """``c[:batch]`` of a constant ``c`` (a positional table cut to the batch size, under a
    batch bound ``batch <= len(c)`` that torch.export recorded), with the IR's ops: ``c``
    broadcast over the batch, ``(B, L, ...)``, flattened to ``(B·L, ...)``, and every
    ``(L+1)``-th row taken — rows ``i·(L+1) = (i, i)``, i.e. ``c[i]`` for ``i < B``; exact
    for ``B <= L`` (ceil(B·L / (L+1)) = B rows)."""
    from .fx_importer import example_batch

    stop = b.example_args[3] if len(b.example_args) > 3 else None
    table = b.graph.constants.get(x.name) if b.graph.is_constant(x) else None
    if (
        dim != 0
        or start not in (None, 0)
        or step != 1
        or table is None
        or stop != example_batch(b.graph)
        or stop > table.shape[0]
    ):
        raise TranspileError(
            f"a slice at {b.where()} ends at a size that depends on the inputs; only a constant "
            "cut to the batch size (c[:x.shape[0]], within the batch bound) converts."
        )
    n = table.shape[0]
    rest = tuple(table.shape[1:])
    const = b.const(table[None], "per_sample_table")
    wide = b.op(
        "broadcast_to",
        [const, b.graph.inputs[0]],
        TensorType((None, n, *rest), x.type.dtype),
        shape=(None, n, *rest),
    )
    flat = b.op("reshape", [wide], TensorType((None, *rest), x.type.dtype), shape=(-1, *rest))
    out = TensorType((None, *rest), x.type.dtype)
    return b.op("slice", [flat], out, axes=(0,), starts=(0,), stops=(None,), steps=(n + 1,))


def _sym_expr(arg: Any) -> Any:
    """The sympy expression of an exported node's argument: an int, or a node holding a
    SymInt (its ``val``); None otherwise."""
    import sympy

    if isinstance(arg, fx.Node):
        arg = arg.meta.get("val")
    if isinstance(arg, torch.SymInt):
        return arg.node.expr
    if isinstance(arg, int) and not isinstance(arg, bool):
        return sympy.Integer(arg)
    return None


def _fraction_of(expr: Any, size: Any) -> Any:
    """``expr / size`` when it is a rational constant (``B`` of ``2B``: 1/2), else None."""
    import sympy

    try:
        ratio = sympy.cancel(expr / size)
    except Exception:  # noqa: BLE001 - FloorDiv and other non-rational expressions
        return None
    return ratio if ratio.is_Rational else None


def _divides(m: int, size: Any) -> bool:
    """``m`` divides ``size`` (a polynomial in the symbolic sizes, integer coefficients) for
    every value of the symbols: each coefficient is a multiple of ``m``."""
    import sympy

    try:
        coeffs = sympy.Poly(size, *sorted(size.free_symbols, key=str)).coeffs()
    except Exception:  # noqa: BLE001 - not a polynomial (FloorDiv, Mod)
        return False
    return all(c.is_Integer and int(c) % m == 0 for c in coeffs)


def _slice_fractions(node: fx.Node) -> tuple[int, int, int, int] | None:
    """For an ``aten.slice.Tensor`` node (of an exported graph, or its copy; ``val`` metadata
    kept) whose bounds are symbolic: ``(dim, m, lo, hi)`` when the slice is rows ``lo/m ..
    hi/m`` of its axis (``x[B:2B]`` of a ``2B`` axis: ``(0, 2, 1, 2)``) for every value of the
    symbols, and that axis is the input's only symbolic one; else None.

    Both bounds must be fixed fractions ``p``, ``q`` of the axis' size ``S`` (a polynomial in
    the symbols), the common denominator ``m`` must divide ``S`` for every batch (each of its
    coefficients), and torch must not have clamped the bounds (the result is ``(q - p)·S``)."""
    args = list(node.args) + [None] * (5 - len(node.args))
    x, dim, lo_arg, hi_arg, step = args[:5]
    val = x.meta.get("val") if isinstance(x, fx.Node) else None
    out = node.meta.get("val")
    if not isinstance(val, torch.Tensor) or not isinstance(out, torch.Tensor) or val.dim() == 0:
        return None
    dim = (dim or 0) % val.dim()
    if step not in (None, 1) or sum(isinstance(d, torch.SymInt) for d in val.shape) != 1:
        return None
    size = _sym_expr(val.shape[dim])
    if size is None or not size.free_symbols:
        return None
    start = _sym_expr(lo_arg) if lo_arg is not None else 0
    to_end = hi_arg is None or (isinstance(hi_arg, int) and hi_arg >= 2**62)
    end = size if to_end else _sym_expr(hi_arg)
    if start is None or end is None:
        return None
    p, q = _fraction_of(start, size), _fraction_of(end, size)
    if p is None or q is None or not 0 <= p < q <= 1:
        return None
    if _fraction_of(_sym_expr(out.shape[dim]), size) != q - p:  # torch clamped the bounds
        return None
    m = int(math.lcm(int(p.q), int(q.q)))
    if not _divides(m, size):
        return None
    return dim, m, int(p * m), int(q * m)


def _symbolic_bounds(node: fx.Node) -> bool:
    """An ``aten.slice`` with a symbolic start or end."""
    args = list(node.args) + [None] * (4 - len(node.args))
    return any(isinstance(a, fx.Node) for a in args[2:4])


def _unconvertible_slice(ep: Any) -> fx.Node | None:
    """The first slice of an exported program with symbolic bounds that ``_slice_fractions``
    does not convert: a symbolic start, or a symbolic end on a symbolic axis (a symbolic end
    on a static axis, a position table cut to the batch, is left to the importer)."""
    for node in ep.graph.nodes:
        if node.op != "call_function" or node.target is not aten.slice.Tensor:
            continue
        if not _symbolic_bounds(node) or _slice_fractions(node) is not None:
            continue
        args = list(node.args) + [None] * (4 - len(node.args))
        val = args[0].meta.get("val") if isinstance(args[0], fx.Node) else None
        dim = args[1] or 0
        symbolic_axis = isinstance(val, torch.Tensor) and isinstance(val.shape[dim], torch.SymInt)
        if isinstance(args[2], fx.Node) or symbolic_axis:
            return node
    return None


def _symbolic_slice(b: Any, x: Any) -> Any:
    """``aten.slice`` with symbolic bounds that are fixed fractions of its axis: the axis
    reshaped to ``(m, S/m)``, rows ``lo .. hi`` of the ``m`` axis kept, the two merged back
    (``fraction_slice``). None when ``_slice_fractions`` says it does not apply."""
    from .converters.indexing import fraction_slice

    cut = _slice_fractions(b.fx_node) if b.fx_node is not None else None
    return fraction_slice(b, x, *cut) if cut is not None else None


def _adapter_converter(base: ConverterRegistry, target: Any) -> Any:
    if target in _TRUNCATED:
        fn, n = _TRUNCATED[target]
        conv = base.functions.get(fn)
        return (lambda b, *args: conv(b, *args[:n])) if conv is not None else None
    if target is _bn_inference:
        bn = base.functions.get(F.batch_norm)

        def convert(b, x, weight, bias, running_mean, running_var, momentum, eps):
            return bn(b, x, running_mean, running_var, weight, bias, False, momentum, eps)

        return convert if bn is not None else None
    if target is _embedding:
        emb = base.functions.get(F.embedding)
        return (lambda b, weight, indices, *rest: emb(b, indices, weight)) if emb else None
    if target is _instance_norm:
        inorm = base.functions.get(F.instance_norm)

        def convert_instance_norm(b, x, weight, bias, mean, var, use_stats, momentum, eps, *_):
            return inorm(b, x, mean, var, weight, bias, use_stats, momentum, eps)

        return convert_instance_norm if inorm is not None else None
    if target is _index:
        getitem = base.functions.get(operator.getitem)

        def convert_index(b, x, indices):
            return getitem(b, x, tuple(slice(None) if i is None else i for i in indices))

        return convert_index if getitem is not None else None
    if target is _sym_size:
        size = base.methods.get("size")
        return (lambda b, x, dim: size(b, x, dim)) if size is not None else None
    if target is _slice:
        getitem = base.functions.get(operator.getitem)

        def convert_slice(b, x, dim=0, start=None, end=None, step=1):
            if start is DYNAMIC or end is DYNAMIC:
                cut = _symbolic_slice(b, x)
                if cut is not None:
                    return cut
            if end is DYNAMIC and start is not DYNAMIC:
                return _batch_prefix(b, x, dim, start, step)
            if start is DYNAMIC:
                raise TranspileError(
                    f"a slice at {b.where()} starts at a size that depends on the inputs; "
                    "only bounds that are fixed fractions of the sliced dimension (x[B:2B] of "
                    "a 2B axis) convert."
                )
            index = [slice(None)] * x.rank
            index[dim] = slice(start, None if end is not None and end >= 2**62 else end, step)
            return getitem(b, x, tuple(index))

        return convert_slice if getitem is not None else None
    if target is _constant_pad:
        pad = base.functions.get(F.pad)
        return (lambda b, x, p, value=0.0: pad(b, x, p, "constant", value)) if pad else None
    interp = base.functions.get(F.interpolate)
    if interp is None:
        return None

    def convert_upsample(b, x, output_size=None, *rest):
        mode = target.__name__.removeprefix("upsample_")
        return interp(b, x, **_upsample_kwargs(mode, output_size, rest))

    return convert_upsample


class _Holder(torch.nn.Module):
    """Parameters, buffers and constants of an exported program, as attributes."""


def _batch_of_two(inputs: Sequence[torch.Tensor]) -> tuple[torch.Tensor, ...]:
    return tuple(torch.cat([x, x], 0)[:2] if x.dim() and x.shape[0] == 1 else x for x in inputs)


def _dynamic_shapes(
    model: torch.nn.Module, inputs: Sequence[torch.Tensor], dim: Any, extra: Any = None
) -> Any:
    """``dynamic_shapes`` for ``torch.export`` in the structure of ``forward``'s signature
    (a varargs ``forward(self, *xs)`` takes ``{"xs": (spec, spec)}``, not a flat tuple).
    ``extra``: per input, further axis -> Dim (declared dynamic dims)."""
    specs = [{0: dim} if x.dim() else None for x in inputs]
    for k, dims in enumerate(extra or []):
        if dims and specs[k] is not None:
            specs[k] = {**specs[k], **dims}
    try:
        params = list(inspect.signature(model.forward).parameters.values())
    except (TypeError, ValueError):
        return tuple(specs)
    shaped: dict[str, Any] = {}
    k = 0
    for p in params:
        if k >= len(specs):
            break
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            shaped[p.name] = specs[k]
            k += 1
        elif p.kind == p.VAR_POSITIONAL:
            shaped[p.name] = tuple(specs[k:])
            k = len(specs)
        else:
            break
    return shaped if k == len(specs) else tuple(specs)


_SUGGESTED = re.compile(r"\bDim\('batch'(?:, min=(\d+))?(?:, max=(\d+))?\)")


def _suggested_bounds(message: str) -> tuple[int | None, int | None] | None:
    """The bounds torch.export suggests for the batch ("Suggested fixes: batch = Dim('batch',
    max=63)"), or None when it suggests none (or a specialization, ``batch = 2``)."""
    found = _SUGGESTED.search(message.partition("Suggested fixes:")[2])
    if found is None:
        return None
    low, high = found.groups()
    return (int(low) if low else None, int(high) if high else None)


def _auto_dims(spec: Any) -> list[dict[int, Any]]:
    """``Dim.AUTO`` for each declared dim: torch.export finds the ranges (a stride-2 conv
    needs ``h >= 3``) and the equalities itself."""
    return [{axis: torch.export.Dim.AUTO for axis in dims} for dims in spec]


def _recorded_ranges(ep: Any, spec: Any) -> Any:
    """``spec`` with the ranges torch.export recorded for its dims; a dim it specialized to a
    constant raises (the model cannot keep it dynamic)."""
    from transpiler.signature import DynamicDim

    user = [n for n in ep.graph.nodes if n.op == "placeholder"]
    names = set(ep.graph_signature.user_inputs)
    vals = [n.meta.get("val") for n in user if n.name in names]
    out = []
    for k, dims in enumerate(spec):
        per = {}
        for axis, d in dims.items():
            size = vals[k].shape[axis] if k < len(vals) and vals[k] is not None else None
            if not isinstance(size, torch.SymInt):
                raise TranspileError(
                    f"torch.export specialized the declared dynamic dimension {d.name} (input "
                    f"{k}, axis {axis}) to {size}: the model cannot keep it dynamic."
                )
            ranges = ep.range_constraints.get(size.node.expr)
            low = _as_int(ranges.lower) if ranges is not None else None
            high = _as_int(ranges.upper) if ranges is not None else None
            low = max(d.low, low or 2)
            high = min(x for x in (d.high, high) if x is not None) if (d.high or high) else None
            per[axis] = DynamicDim(d.name, low, high)
        out.append(per)
    return out


def _bounded_spec(spec: Any, message: str) -> Any:
    """``spec`` (a DynamicSpec) with the bounds torch.export suggests for its dims
    (``seq = Dim('seq', max=64)``); None when it suggests none for them."""
    from transpiler.signature import DynamicDim

    fixes = message.partition("Suggested fixes:")[2]
    changed = False
    out = []
    for dims in spec:
        per = {}
        for axis, d in dims.items():
            pattern = rf"\bDim\('{re.escape(d.name)}'(?:, min=(\d+))?(?:, max=(\d+))?\)"
            found = re.search(pattern, fixes)
            if found is not None and any(found.groups()):
                low, high = found.groups()
                d = DynamicDim(d.name, max(2, int(low or d.low)), int(high) if high else d.high)
                changed = True
            per[axis] = d
        out.append(per)
    return out if changed else None


def _violation(message: str) -> str:
    """The first constraint violation of a torch.export error, on one line."""
    for line in message.splitlines():
        line = line.strip()
        if line.startswith("- "):
            return line[2:].strip()
    return message.strip().splitlines()[0] if message.strip() else "unknown reason"


def _hint(v: Any) -> int | None:
    """The traced size behind an int or a backed SymInt (None when torch has none)."""
    if isinstance(v, torch.SymInt):
        hint = v.node.hint
        return int(hint) if hint is not None else None
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def _narrow_pieces(x: torch.Tensor, dim: int, piece: Any, count: int) -> Any:
    """``count`` pieces of ``x`` along ``dim``, each ``piece`` long but the last (the rest)."""
    size = x.shape[dim]
    return tuple(
        x.narrow(dim, k * piece, piece if k < count - 1 else size - (count - 1) * piece)
        for k in range(count)
    )


def _symbolic_pieces(x: Any, piece: Any, count: int | None, dim: int) -> Any:
    """``x`` cut along ``dim`` into ``count`` pieces of ``piece`` (the last one shorter), as
    torch.chunk / torch.split would, when the axis size or the piece is symbolic; None when
    that is not the case or the traced sizes do not give ``count`` pieces.

    torch decomposes chunk / split with ``guard_int(ceil(size / piece))``, a guard on a
    floor division of symbols it cannot prove: RAFT cuts its two images' features (``2B``) in
    two and gets ``(3B - 1) // B == 2``, for which torch.export specializes the batch. The same
    count is kept here with the two guards that define it, ``(count - 1) * piece < size <=
    count * piece``, which torch proves (``B < 2B``), and the pieces are ``narrow`` slices whose
    bounds are symbolic (``x[B:2B]``), which the importer converts. Where torch cannot prove
    them, it refuses the dynamic batch as before."""
    if not isinstance(x, torch.Tensor) or not isinstance(dim, int):
        return None
    size = x.shape[dim]
    if not any(isinstance(v, torch.SymInt) for v in (size, piece)):
        return None
    size_hint, piece_hint = _hint(size), _hint(piece)
    if size_hint is None or not piece_hint or piece_hint <= 0:
        return None
    if count is None:
        count = -(-size_hint // piece_hint)
    if count < 2 or not ((count - 1) * piece_hint < size_hint <= count * piece_hint):
        return None
    if not ((count - 1) * piece < size and size <= count * piece):  # guards (see above)
        return None
    return _narrow_pieces(x, dim, piece, count)


@contextlib.contextmanager
def _symbolic_splits() -> Any:
    """While torch.export traces: ``torch.chunk`` / ``Tensor.chunk`` / ``Tensor.split`` (and so
    ``torch.split``) with an integer size cut a symbolic axis without the guard that
    specializes it (``_symbolic_pieces``); every other call goes to torch's own."""
    chunk_fn, chunk_method, split_method = torch.chunk, torch.Tensor.chunk, torch.Tensor.split
    cuts: list[Any] = []  # the pieces cut here (the caller checks that they convert)

    def chunk(input: Any, chunks: int, dim: int = 0) -> Any:
        pieces = None
        if isinstance(input, torch.Tensor) and isinstance(chunks, int) and chunks > 1:
            size = input.shape[dim] if isinstance(dim, int) else None
            if isinstance(size, torch.SymInt):
                pieces = _symbolic_pieces(input, (size + chunks - 1) // chunks, chunks, dim)
        if pieces is not None:
            cuts.append(pieces)
        return pieces if pieces is not None else chunk_fn(input, chunks, dim)

    def chunk_as_method(self: Any, chunks: int, dim: int = 0) -> Any:
        return chunk(self, chunks, dim)  # torch.chunk(x, ...) is x.chunk(...)

    def split_as_method(self: Any, split_size: Any, dim: int = 0) -> Any:
        pieces = None
        if isinstance(split_size, int | torch.SymInt) and not isinstance(split_size, bool):
            pieces = _symbolic_pieces(self, split_size, None, dim)
        if pieces is not None:
            cuts.append(pieces)
        return pieces if pieces is not None else split_method(self, split_size, dim)

    torch.chunk, torch.Tensor.chunk, torch.Tensor.split = chunk, chunk_as_method, split_as_method
    try:
        yield cuts
    finally:
        torch.chunk, torch.Tensor.chunk, torch.Tensor.split = chunk_fn, chunk_method, split_method


def _export(
    model: torch.nn.Module, inputs: Sequence[torch.Tensor], dim: Any, extra: Any = None
) -> Any:
    """One torch.export call (``dim``: the batch Dim, None for a static batch). Symbolic axes
    are cut by chunk / split without torch's specializing guard (``_symbolic_splits``); where
    a cut gives a slice the importer cannot convert, the export is redone with torch's own."""
    dynamic = None if dim is None else _dynamic_shapes(model, inputs, dim, extra)
    with _symbolic_splits() as cuts:
        ep = torch.export.export(model, tuple(inputs), dynamic_shapes=dynamic, strict=False)
    if cuts and _unconvertible_slice(ep) is not None:
        ep = torch.export.export(model, tuple(inputs), dynamic_shapes=dynamic, strict=False)
    return ep


def _export_dims(spec: Any) -> list[dict[int, Any]] | None:
    """``torch.export.Dim`` objects for a DynamicSpec (one per name, shared)."""
    if not spec or not any(spec):
        return None
    made: dict[str, Any] = {}
    out = []
    for dims in spec:
        per: dict[int, Any] = {}
        for axis, d in dims.items():
            if d.name not in made:
                kwargs = {"min": max(2, d.low)} | ({"max": d.high} if d.high else {})
                made[d.name] = torch.export.Dim(d.name, **kwargs)
            per[axis] = made[d.name]
        out.append(per)
    return out


def export_program(
    model: torch.nn.Module, inputs: Sequence[torch.Tensor], dynamic: Any = None
) -> tuple[Any, BatchSpec]:
    """``torch.export`` with a symbolic batch; the inference graph (no decompositions) and what
    is known of its batch.

    First a batch ``Dim("batch", min=1)``; when torch.export refuses it and suggests bounds
    (a guard ``batch <= 63`` in the model: ``Dim("batch", max=63)``), those bounds; only when
    neither works, the batch specialized to the example's size, which the returned
    ``BatchSpec`` then says (the generated model takes that batch only)."""
    from transpiler._hygiene import block_triton_if_tensorflow

    block_triton_if_tensorflow()
    traced = _batch_of_two(inputs)
    example = int(inputs[0].shape[0]) if inputs and inputs[0].dim() else 1
    extra = _export_dims(dynamic)
    try:
        return _export(model, traced, torch.export.Dim("batch", min=1), extra).run_decompositions(
            {}
        ), BatchSpec()
    except Exception as exc:  # noqa: BLE001 - retried below
        first = exc
    if extra is not None:  # torch.export infers the dims' ranges itself (Dim.AUTO)
        try:
            ep = _export(model, traced, torch.export.Dim("batch", min=1), _auto_dims(dynamic))
            dynamic[:] = _recorded_ranges(ep, dynamic)
            return ep.run_decompositions({}), BatchSpec()
        except TranspileError:
            raise
        except Exception:  # noqa: BLE001 - the suggested bounds below, else the first error
            pass
    bounded = _bounded_spec(dynamic, str(first)) if extra is not None else None
    if bounded is not None:  # torch.export's suggested bounds (a position table: seq <= 64)
        try:
            ep = _export(model, traced, torch.export.Dim("batch", min=1), _export_dims(bounded))
            dynamic[:] = bounded  # the caller's second run stays inside the bounds
            return ep.run_decompositions({}), BatchSpec()
        except Exception as exc:  # noqa: BLE001 - reported below
            first = exc
    if extra is not None:  # the declared dims (beyond the batch) are not negotiable
        raise TranspileError(
            f"torch.export could not keep the declared dynamic dimensions of "
            f"{type(model).__name__} dynamic: {type(first).__name__}: {str(first)[:800]}"
        ) from first
    bounds = _suggested_bounds(str(first))
    traced_batch = max((int(x.shape[0]) for x in traced if x.dim()), default=1)
    if bounds is not None and (bounds[1] is None or bounds[1] >= max(traced_batch, example)):
        low = min(bounds[0] or 1, example, traced_batch)
        dim = torch.export.Dim("batch", min=low, max=bounds[1]) if bounds[1] else None
        dim = dim or torch.export.Dim("batch", min=low)
        try:
            ep = _export(model, traced, dim)
            limits = f"min={low}" + (f", max={bounds[1]}" if bounds[1] else "")
            why = f"torch.export: {_violation(str(first))}; exported with Dim('batch', {limits})"
            return ep.run_decompositions({}), BatchSpec(low, bounds[1], why=why)
        except Exception:  # noqa: BLE001 - fall through to a static batch
            pass
    try:  # a model whose batch cannot be symbolic (a fixed-size reshape): static batch
        ep = _export(model, inputs, None)
    except Exception:  # noqa: BLE001
        raise TranspileError(
            f"torch.export could not export {type(model).__name__}: "
            f"{type(first).__name__}: {str(first)[:800]}"
        ) from first
    why = f"torch.export could not keep it dynamic: {_violation(str(first))}"
    return ep.run_decompositions({}), BatchSpec(static=example, why=why)


def program_batch(ep: Any) -> BatchSpec:
    """What an exported program's signature says of its batch: the range torch.export
    recorded for the first user input's leading dimension, or static when it has none."""
    user = set(ep.graph_signature.user_inputs)
    for node in ep.graph.nodes:
        val = node.meta.get("val") if node.op == "placeholder" and node.name in user else None
        if not isinstance(val, torch.Tensor) or val.dim() == 0:
            continue
        size = val.shape[0]
        if not isinstance(size, torch.SymInt):
            return BatchSpec(
                static=int(size), why="the ExportedProgram was exported without a dynamic batch"
            )
        ranges = ep.range_constraints.get(size.node.expr)
        if ranges is None:
            return BatchSpec()
        low = max(1, _as_int(ranges.lower) or 1)
        high = _as_int(ranges.upper)
        why = "the ExportedProgram's range for the batch" if high is not None else ""
        return BatchSpec(low, high, why=why)
    return BatchSpec()


def _as_int(bound: Any) -> int | None:
    try:
        return int(bound)
    except (TypeError, ValueError, AttributeError, OverflowError):
        return None


def export_to_fx(ep: Any) -> tuple[torch.nn.Module, fx.Graph]:
    """An exported program -> (holder module, fx graph over ATen ops the importer converts)."""
    holder = _Holder()
    sig = ep.graph_signature
    state = dict(ep.state_dict)
    consts = dict(getattr(ep, "constants", {}) or {})
    lifted: dict[str, str] = {}  # placeholder name -> state/constant key
    lifted.update(sig.inputs_to_parameters)
    lifted.update(sig.inputs_to_buffers)
    lifted.update(getattr(sig, "inputs_to_lifted_tensor_constants", {}) or {})
    graph = fx.Graph()
    env: dict[fx.Node, fx.Node] = {}
    for i, (name, key) in enumerate(sorted(lifted.items())):
        value = state[key] if key in state else consts[key]
        attr = f"c{i}"
        if isinstance(value, torch.nn.Parameter):
            holder.register_parameter(attr, value)
        else:
            holder.register_buffer(
                attr, value.detach() if isinstance(value, torch.Tensor) else value
            )
        lifted[name] = attr
    bn_users: dict[fx.Node, fx.Node] = {}

    def copy(node: fx.Node, op: str, target: Any, args=(), kwargs=None) -> fx.Node:
        new = graph.create_node(op, target, args, kwargs or {}, name=node.name)
        for key in ("nn_module_stack", "stack_trace", "val"):  # val: symbolic sizes
            if key in node.meta:
                new.meta[key] = node.meta[key]
        env[node] = new
        return new

    for node in ep.graph.nodes:
        if node.op == "placeholder":
            if node.name in lifted:
                copy(node, "get_attr", lifted[node.name])
            else:
                copy(node, "placeholder", node.name)
        elif node.op == "output":
            graph.output(fx.node.map_arg(node.args[0], lambda n: env[n]))
        elif node.op == "call_function":
            target = node.target
            if target is operator.getitem and node.args[0] in bn_users:
                if node.args[1] == 0:  # mean / invstd of an inference batch norm: unused
                    env[node] = env[node.args[0]]
                continue
            kind, alias = ATEN.get(target, ("function", target))
            if kind == "call":
                target = alias
            args = fx.node.map_arg(node.args, lambda n: env[n])
            kwargs = fx.node.map_arg(node.kwargs, lambda n: env[n])
            copy(node, "call_function", target, args, kwargs)
            if alias is _bn_inference:
                bn_users[node] = env[node]
        else:
            raise TranspileError(f"unexpected node {node.op} {node.target} in the exported graph")
    graph.lint()
    return holder, graph


def load_pt2(path: str) -> Any:
    """A ``torch.export.save``d program."""
    try:
        return torch.export.load(path)
    except Exception as exc:  # noqa: BLE001
        raise TranspileError(f"could not load the torch.export program {path!r}: {exc}") from exc
