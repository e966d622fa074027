"""Recurrent layers: nn.LSTM, nn.GRU and nn.RNN as one IR ``rnn`` node per layer.

Each layer (one or both directions) becomes one ``rnn`` node over a batch-first sequence, with the
weights in PyTorch's order (the backends reorder gates). The converter does the plumbing around it:
time-major input and output (``batch_first=False``), the initial states split per layer and
direction, and the final states ``h_n``/``c_n`` reassembled as PyTorch's ``(L*D, N, H)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn as nn

from ...errors import TranspileError
from ...ir import TensorType, Value
from ..fx_importer import Builder
from ..registry import converts

_MODES = {nn.LSTM: "lstm", nn.GRU: "gru"}


def _mode(module: nn.RNNBase) -> str:
    for cls, mode in _MODES.items():
        if isinstance(module, cls):
            return mode
    return "rnn_relu" if getattr(module, "nonlinearity", "tanh") == "relu" else "rnn_tanh"


def _swap01(b: Builder, x: Value) -> Value:
    """(T, N, F) <-> (N, T, F)."""
    shape = (x.shape[1], x.shape[0], *x.shape[2:])
    return b.op("transpose", [x], TensorType(shape, x.type.dtype), perm=(1, 0, 2))


def _state_slices(b: Builder, h: Value, count: int) -> list[Value]:
    """(count, N, H) -> ``count`` tensors (N, H)."""
    n, hidden = h.shape[1], h.shape[2]
    out = []
    for k in range(count):
        piece = b.op(
            "slice",
            [h],
            TensorType((1, n, hidden), h.type.dtype),
            axes=(0,),
            starts=(k,),
            stops=(k + 1 if k + 1 < count else None,),
            steps=(1,),
        )
        target = (-1 if n is None else n, hidden)
        out.append(b.op("reshape", [piece], TensorType((n, hidden), h.type.dtype), shape=target))
    return out


def _stack_states(b: Builder, states: list[Value]) -> Value:
    """``count`` tensors (N, H) -> (count, N, H)."""
    n, hidden = states[0].shape
    one = TensorType((1, n, hidden), states[0].type.dtype)
    target = (1, -1 if n is None else n, hidden)
    pieces = [b.op("reshape", [s], one, shape=target) for s in states]
    if len(pieces) == 1:
        return pieces[0]
    out = TensorType((len(pieces), n, hidden), states[0].type.dtype)
    return b.op("cat", pieces, out, axis=0)


def _layer_weights(b: Builder, module: nn.RNNBase, layer: int, direction: int) -> list[Value]:
    suffix = f"_l{layer}" + ("_reverse" if direction else "")
    names = ["weight_ih", "weight_hh"] + (["bias_ih", "bias_hh"] if module.bias else [])
    return [b.const(getattr(module, name + suffix), name + suffix) for name in names]


# nn.LSTM / nn.GRU / nn.RNN: forward(input, hx=None) -> (output, h_n) or (output, (h_n, c_n))
@converts(nn.LSTM, nn.GRU, nn.RNN)
def rnn(b: Builder, module: nn.RNNBase, input, hx=None):
    if getattr(module, "proj_size", 0):
        raise TranspileError(
            f"nn.LSTM with proj_size={module.proj_size} at {b.where()} is not supported (Keras' "
            "LSTM has no projection); use proj_size=0 or a Linear after the LSTM."
        )
    directions = 2 if module.bidirectional else 1
    weights = [
        [_layer_weights(b, module, layer, d) for d in range(directions)]
        for layer in range(module.num_layers)
    ]
    spec = _Spec(_mode(module), module.hidden_size, module.bidirectional, bool(module.bias))
    return _build(b, type(module).__name__, spec, input, hx, weights, module.batch_first)


@dataclass(frozen=True)
class _Spec:
    mode: str
    hidden: int
    bidirectional: bool
    bias: bool


def _build(b: Builder, what: str, spec: _Spec, input, hx, weights, batch_first: bool):
    """One rnn node per layer; ``weights[layer][direction]`` are constant Values."""
    if not isinstance(input, Value):
        raise TranspileError(
            f"{what} at {b.where()} got a {type(input).__name__}; packed "
            "sequences are not supported: pass a padded tensor."
        )
    if input.rank != 3:
        raise TranspileError(
            f"{what} at {b.where()} got a rank-{input.rank} input; only batched "
            "(3-d) sequences are supported: add the batch dimension."
        )
    directions = 2 if spec.bidirectional else 1
    hidden, layers, mode = spec.hidden, len(weights), spec.mode
    lstm = mode == "lstm"
    x = input if batch_first else _swap01(b, input)
    n, t = x.shape[0], x.shape[1]
    count = layers * directions
    h0 = c0 = None
    if hx is not None:
        h_given, c_given = hx if lstm else (hx, None)
        if not isinstance(h_given, Value) or (lstm and not isinstance(c_given, Value)):
            raise TranspileError(f"the initial state of {what} at {b.where()}")
        h0 = _state_slices(b, h_given, count)
        c0 = _state_slices(b, c_given, count) if lstm else None
    state_type = TensorType((n, hidden), x.type.dtype)
    h_n, c_n = [], []
    per_dir = 2 if lstm else 1
    for layer in range(layers):
        inputs = [x]
        for d in range(directions):
            inputs += weights[layer][d]
        if h0 is not None:
            for d in range(directions):
                k = layer * directions + d
                inputs += [h0[k], c0[k]] if lstm else [h0[k]]
        seq_type = TensorType((n, t, directions * hidden), x.type.dtype)
        outs = b.op_multi(
            "rnn",
            inputs,
            [seq_type] + [state_type] * (per_dir * directions),
            mode=mode,
            hidden_size=hidden,
            bidirectional=spec.bidirectional,
            bias=spec.bias,
            initial_state=h0 is not None,
        )
        x = outs[0]
        for d in range(directions):
            h_n.append(outs[1 + d * per_dir])
            if lstm:
                c_n.append(outs[2 + d * per_dir])
    output = x if batch_first else _swap01(b, x)
    h = _stack_states(b, h_n)
    return (output, (h, _stack_states(b, c_n))) if lstm else (output, h)
