"""Attention: F.scaled_dot_product_attention and nn.MultiheadAttention, decomposed into IR
matmul/softmax/linear/reshape ops (so every backend gets them without a special op)."""

from __future__ import annotations

import math

import numpy as np
import torch.nn as nn
import torch.nn.functional as F

from ...errors import TranspileError
from ...ir import TensorType, Value
from ..fx_importer import Builder
from ..registry import converts


def _t(shape, like: Value) -> TensorType:
    return TensorType(tuple(shape), like.type.dtype)


def _target(shape) -> tuple:
    if sum(d is None for d in shape) > 1:
        raise TranspileError("attention with more than one dynamic dimension is not supported")
    return tuple(-1 if d is None else d for d in shape)


def _note(v: Value, note: str, local: str | None = None) -> Value:
    """Say what a step of the decomposition is, for the generated source's comments and names."""
    if v.producer is not None:
        v.producer.meta["note"] = note
        if local:
            v.producer.meta["local"] = local
    return v


def _swap_last(b: Builder, x: Value) -> Value:
    r = x.rank
    perm = (*range(r - 2), r - 1, r - 2)
    return b.op("transpose", [x], _t([x.shape[i] for i in perm], x), perm=perm)


def _attend(
    b: Builder,
    q: Value,
    k: Value,
    v: Value,
    scale: float,
    mask: Value | None,
    rows: Value | None = None,
) -> tuple:
    """softmax(q k^T * scale + mask) v; returns (output, attention weights). ``rows``: a bool
    mask computed in forward(); its fully masked query rows get zero weights (PyTorch's safe
    softmax) instead of the NaN a softmax over -inf alone gives."""
    scores_shape = (*q.shape[:-1], k.shape[-2])
    k_t = _note(_swap_last(b, k), "scores = q @ k^T * scale (+ mask)", "k_t")
    scores = _note(
        b.op("matmul", [q, k_t], _t(scores_shape, q)), "scores = q @ k^T * scale", "scores"
    )
    if scale != 1.0:  # 1.0: the scale is already in q (MultiheadAttention's q projection)
        scores = b.op("mul", [scores, b.scalar(scale)], scores.type)
    if mask is not None:
        scores = b.op("add", [scores, mask], scores.type)
    weights = b.op("softmax", [scores], scores.type, axis=scores.rank - 1)
    if rows is not None:
        kept = (*rows.shape[:-1], 1)
        hit = b.op("cast", [rows], TensorType(rows.shape, "float32"), dtype="float32")
        hit = b.op(
            "reduce",
            [hit],
            TensorType(kept, "float32"),
            kind="max",
            axes=(rows.rank - 1,),
            keepdims=True,
        )
        live = b.op("greater", [hit, b.scalar(0.5)], TensorType(kept, "bool"))
        weights = b.op("where", [live, weights, b.scalar(0.0)], weights.type)
    _note(weights, "attention weights = softmax(scores)", "attn")
    out = b.op("matmul", [weights, v], _t((*q.shape[:-1], v.shape[-1]), q))
    _note(out, "weighted values = attn @ v", "out")
    return out, weights


def _mask(b: Builder, attn_mask, is_causal: bool, q: Value, k: Value) -> Value | None:
    if attn_mask is not None and is_causal:
        raise TranspileError(f"attention at {b.where()}: attn_mask together with is_causal")
    if is_causal:
        lq, lk = q.shape[-2], k.shape[-2]
        if lq is None or lk is None:
            raise TranspileError(f"causal attention at {b.where()} needs static sequence lengths")
        m = np.triu(np.full((lq, lk), -np.inf, np.float32), k=1)
        return b.const(m, "causal_mask")
    if attn_mask is None:
        return None
    if not b.graph.is_constant(attn_mask):  # computed in forward(): bool -> 0 / -inf
        if attn_mask.type.dtype != "bool":
            if attn_mask.type.is_float:
                return attn_mask
            raise TranspileError(
                f"attention at {b.where()}: a {attn_mask.type.dtype} mask (bool or float only)"
            )
        zero, neg = b.scalar(0.0), b.scalar(float("-inf"))
        out = TensorType(attn_mask.shape, "float32")
        return b.op("where", [attn_mask, zero, neg], out)
    m = b.graph.constant(attn_mask)
    if m.dtype == np.bool_:  # True = take part
        m = np.where(m, 0.0, -np.inf).astype(np.float32)
    return b.const(m, "attn_mask")


# F.scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p=0.0,
#                                is_causal=False, scale=None, enable_gqa=False)
@converts(F.scaled_dot_product_attention)
def scaled_dot_product_attention(
    b: Builder,
    query,
    key,
    value,
    attn_mask=None,
    dropout_p=0.0,
    is_causal=False,
    scale=None,
    enable_gqa=False,
):
    if enable_gqa:
        raise TranspileError(f"scaled_dot_product_attention(enable_gqa=True) at {b.where()}")
    if dropout_p:
        raise TranspileError(
            f"scaled_dot_product_attention(dropout_p={dropout_p}) at {b.where()} drops attention "
            "weights at random even in eval mode; pass dropout_p=0.0 outside training "
            "(e.g. `dropout_p=self.p if self.training else 0.0`)."
        )
    scale = 1.0 / math.sqrt(query.shape[-1]) if scale is None else float(scale)
    mask = _mask(b, attn_mask, is_causal, query, key)
    rows = None
    if isinstance(attn_mask, Value) and attn_mask.type.dtype == "bool":
        rows = None if b.graph.is_constant(attn_mask) else attn_mask
    out, _ = _attend(b, query, key, value, scale, mask, rows)
    return out


def _heads(b: Builder, x: Value, heads: int) -> Value:
    """(N, L, E) -> (N, H, L, E/H)."""
    n, length, e = x.shape
    shape = (n, length, heads, e // heads)
    split = _note(b.op("reshape", [x], _t(shape, x), shape=_target(shape)), "split the heads")
    return b.op("transpose", [split], _t((n, heads, length, e // heads), x), perm=(0, 2, 1, 3))


@converts(nn.MultiheadAttention)
def multihead_attention(
    b: Builder,
    m: nn.MultiheadAttention,
    query,
    key,
    value,
    key_padding_mask=None,
    need_weights=True,
    attn_mask=None,
    average_attn_weights=True,
    is_causal=False,
):
    if key_padding_mask is not None:
        raise TranspileError(
            f"MultiheadAttention key_padding_mask at {b.where()} is not supported yet"
        )
    if m.bias_k is not None or m.add_zero_attn:
        raise TranspileError(f"MultiheadAttention add_bias_kv/add_zero_attn at {b.where()}")
    self_attention = query is key and key is value
    if not m.batch_first:  # (L, N, E) -> (N, L, E)

        def batch_first(t: Value) -> Value:
            return b.op(
                "transpose", [t], _t((t.shape[1], t.shape[0], t.shape[2]), t), perm=(1, 0, 2)
            )

        if self_attention:
            query = key = value = batch_first(query)
        else:
            query, key, value = (batch_first(t) for t in (query, key, value))
    e, h = m.embed_dim, m.num_heads
    if m._qkv_same_embed_dim:
        w = m.in_proj_weight.detach()
        ws = [w[:e], w[e : 2 * e], w[2 * e :]]
    else:
        ws = [m.q_proj_weight.detach(), m.k_proj_weight.detach(), m.v_proj_weight.detach()]
    bias = m.in_proj_bias.detach() if m.in_proj_bias is not None else None
    bs = [bias[:e], bias[e : 2 * e], bias[2 * e :]] if bias is not None else [None] * 3
    # the softmax scale 1/sqrt(head size) goes into q's projection, not onto the (L x L)
    # scores: exact for a power of two (head size 64: 1/8), else one rounding per weight
    scale = 1.0 / math.sqrt(e // h)
    ws[0] = ws[0] * scale
    bs[0] = bs[0] * scale if bs[0] is not None else None
    projected = []
    for x, wi, bi in zip((query, key, value), ws, bs, strict=True):
        inputs = [x, b.const(wi, "in_proj_weight")] + (
            [b.const(bi, "in_proj_bias")] if bi is not None else []
        )
        projected.append(b.op("linear", inputs, _t((*x.shape[:-1], e), x)))
    for x, name in zip(projected, "qkv", strict=True):
        _note(x, "q, k, v projections (in_proj; q scaled by 1/sqrt(head size))", name)
    q, k, v = (_heads(b, x, h) for x in projected)
    mask = _mask(b, attn_mask, is_causal, q, k)
    out, weights = _attend(b, q, k, v, 1.0, mask)
    n, _, length, d = out.shape
    merged = b.op("transpose", [out], _t((n, length, h, d), out), perm=(0, 2, 1, 3))
    _note(merged, "merge the heads")
    merged = b.op("reshape", [merged], _t((n, length, e), out), shape=_target((n, length, e)))
    proj = [merged, b.const(m.out_proj.weight, "out_proj_weight")]
    if m.out_proj.bias is not None:
        proj.append(b.const(m.out_proj.bias, "out_proj_bias"))
    y = _note(b.op("linear", proj, merged.type), "output projection (out_proj)")
    if not m.batch_first:
        y = b.op("transpose", [y], _t((y.shape[1], y.shape[0], y.shape[2]), y), perm=(1, 0, 2))
    if not need_weights:
        return (y, None)
    if average_attn_weights:
        avg_shape = (weights.shape[0], weights.shape[2], weights.shape[3])
        weights = b.op(
            "reduce", [weights], _t(avg_shape, weights), kind="mean", axes=(1,), keepdims=False
        )
    return (y, weights)
