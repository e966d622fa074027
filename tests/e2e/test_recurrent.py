"""nn.LSTM / nn.GRU / nn.RNN end to end: every argument, both backends, a CRNN, and training.

The Keras backend must emit real recurrent layers (layers.LSTM / GRU / SimpleRNN, wrapped in
layers.Bidirectional), so the generated model is readable and trainable; the tf backend lowers
them to a while loop over time. Both export to float32 TFLite with builtin ops only (a WHILE
loop) at a dynamic batch and sequence length.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import LAYOUTS, assert_checks_ok, check_against_torch, stable_seed
from torch import nn

from transpiler import TranspileError, transpile
from transpiler.tflite import op_names, run_tflite


class Wrap(nn.Module):
    """Returns everything the recurrent layer returns; optional initial states as inputs.

    The states come in batch-first, (N, L*D, H), and are moved to PyTorch's (L*D, N, H) here:
    every graph input has its (dynamic) batch on axis 0."""

    def __init__(self, rnn: nn.RNNBase, states: int = 0):
        super().__init__()
        self.rnn, self.states = rnn, states

    def forward(self, x, h0=None, c0=None):
        if self.states == 0:
            return self.rnn(x)
        h0 = h0.transpose(0, 1).contiguous()
        if isinstance(self.rnn, nn.LSTM):
            return self.rnn(x, (h0, c0.transpose(0, 1)))
        return self.rnn(x, h0)


# name -> (factory, number of initial-state inputs)
CONFIGS = {
    "lstm": (lambda: nn.LSTM(5, 6, batch_first=True), 0),
    "lstm-bi-2layer-seqfirst": (lambda: nn.LSTM(5, 6, num_layers=2, bidirectional=True), 0),
    "lstm-h0c0-nobias": (lambda: nn.LSTM(5, 6, 2, bias=False, batch_first=True), 2),
    "gru-bi-2layer": (lambda: nn.GRU(5, 6, 2, batch_first=True, bidirectional=True), 0),
    "gru-h0-bi": (lambda: nn.GRU(5, 6, batch_first=True, bidirectional=True), 1),
    "rnn-relu-bi": (lambda: nn.RNN(5, 6, nonlinearity="relu", bidirectional=True), 0),
    "rnn-tanh-h0-nobias": (lambda: nn.RNN(5, 6, 2, bias=False, batch_first=True), 1),
}
KERAS_LAYER = {nn.LSTM: "layers.LSTM(", nn.GRU: "layers.GRU(", nn.RNN: "layers.SimpleRNN("}


def _inputs(rnn: nn.RNNBase, states: int, batch: int, seed: int) -> tuple[torch.Tensor, ...]:
    gen = torch.Generator().manual_seed(seed)
    t = 7
    x = torch.randn((batch, t, 5) if rnn.batch_first else (t, batch, 5), generator=gen)
    d = (2 if rnn.bidirectional else 1) * rnn.num_layers
    hs = [torch.randn((batch, d, 6), generator=gen) for _ in range(states)]
    return (x, *hs)


# the default suite runs one configuration per backend; the rest are slow
FAST = {("lstm-h0c0-nobias", "keras"), ("gru-h0-bi", "tf")}
PARAMS = [
    pytest.param(name, backend, marks=() if (name, backend) in FAST else pytest.mark.slow)
    for name in CONFIGS
    for backend in ("keras", "tf")
]


@pytest.mark.parametrize(("name", "backend"), PARAMS)
def test_recurrent_layer(name: str, backend: str, tmp_path):
    make, states = CONFIGS[name]
    torch.manual_seed(stable_seed(name))
    rnn = make()
    model = Wrap(rnn, states).eval()
    if states and not rnn.batch_first:
        pytest.fail("initial states are tested batch-first only (axis 0 is the batch)")
    inputs = _inputs(rnn, states, 2, stable_seed(name, "x"))
    example = inputs[0] if len(inputs) == 1 else inputs
    result = transpile(model, example, backend=backend, out_dir=tmp_path / "out")
    assert_checks_ok(result)
    check_against_torch(model, inputs, result)
    if rnn.batch_first:  # another batch size (seq-first models vary the time axis instead)
        check_against_torch(model, _inputs(rnn, states, 3, 1), result)
    if backend == "keras":
        source = result.source_path.read_text()
        assert KERAS_LAYER[type(rnn)] in source
        assert ("layers.Bidirectional(" in source) == rnn.bidirectional
        assert source.count(KERAS_LAYER[type(rnn)]) == rnn.num_layers
        if states:
            assert "initial_state=[" in source


class CRNN(nn.Module):
    """Text-recognition CRNN: conv stack -> (N, W, C*H) sequence -> BiLSTM -> Linear."""

    def __init__(self, classes: int = 11):
        super().__init__()
        self.cnn = nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1),
            nn.BatchNorm2d(8),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d((2, 1)),
        )
        self.rnn = nn.LSTM(16 * 4, 12, num_layers=2, bidirectional=True, batch_first=True)
        self.fc = nn.Linear(24, classes)

    def forward(self, x):
        f = self.cnn(x)  # (N, 16, 4, W/2)
        n, c, h, w = f.shape
        seq = f.permute(0, 3, 1, 2).reshape(n, w, c * h)
        out, _ = self.rnn(seq)
        return self.fc(out).log_softmax(-1)


@pytest.mark.parametrize(
    ("backend", "io_layout"),
    [
        pytest.param(b, lay, marks=() if (b, lay) == ("keras", "nchw") else pytest.mark.slow)
        for b in ("keras", "tf")
        for lay in LAYOUTS
    ],
)
def test_crnn(backend: str, io_layout, tmp_path):
    torch.manual_seed(stable_seed("crnn"))
    model = CRNN().eval()
    x = torch.randn(2, 1, 16, 20)
    result = transpile(model, x, backend=backend, io_layout=io_layout, out_dir=tmp_path / "o")
    assert_checks_ok(result)
    check_against_torch(model, x, result, io_layout)
    check_against_torch(model, torch.randn(3, 1, 16, 20), result, io_layout)


def test_generated_lstm_trains(tmp_path):
    """One SGD step on the loaded Keras model moves the recurrent weights and lowers the loss."""
    import keras

    torch.manual_seed(0)
    model = Wrap(nn.GRU(4, 5, batch_first=True, bidirectional=True)).eval()
    x = torch.randn(3, 6, 4)
    result = transpile(model, x, out_dir=tmp_path / "out")
    kmodel = result.keras_model()
    rnn_layers = [lay for lay in kmodel.layers if type(lay).__name__ == "Bidirectional"]
    assert len(rnn_layers) == 1 and len(rnn_layers[0].trainable_weights) == 6
    xs = x.numpy()
    target = np.random.default_rng(0).normal(size=(3, 6, 10)).astype("float32")
    kmodel.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1), loss="mse")
    before_w = [np.array(w) for w in rnn_layers[0].trainable_weights]
    out0 = kmodel(xs)[0]
    loss0 = float(np.mean((np.asarray(out0) - target) ** 2))
    # the model has 3 outputs (sequence, h_n): train the sequence output only
    seq_model = keras.Model(kmodel.inputs, kmodel.outputs[0])
    seq_model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1), loss="mse")
    seq_model.train_on_batch(xs, target)
    after_w = [np.array(w) for w in rnn_layers[0].trainable_weights]
    assert all(not np.allclose(a, b) for a, b in zip(before_w, after_w, strict=True))
    loss1 = float(np.mean((np.asarray(seq_model(xs)) - target) ** 2))
    assert loss1 < loss0


def test_lstm_proj_size_is_refused(tmp_path):
    model = Wrap(nn.LSTM(4, 6, proj_size=3, batch_first=True)).eval()
    with pytest.raises(TranspileError, match="proj_size=3"):
        transpile(model, torch.randn(2, 5, 4), out_dir=tmp_path / "out")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


class TokenTagger(nn.Module):
    """Token ids -> Embedding -> a recurrent layer -> Linear; returns the tags and the final
    states (every output the layer has)."""

    def __init__(self, rnn: nn.RNNBase):
        super().__init__()
        self.emb = nn.Embedding(50, rnn.input_size)
        self.rnn = rnn
        self.out = nn.Linear(rnn.hidden_size * (2 if rnn.bidirectional else 1), 4)

    def forward(self, ids):
        seq, states = self.rnn(self.emb(ids))
        return self.out(seq), states


TFLITE_RNNS = {
    "lstm": lambda: nn.LSTM(16, 8, batch_first=True),
    "gru-bi": lambda: nn.GRU(16, 8, batch_first=True, bidirectional=True),
    "lstm-bi-2layer": lambda: nn.LSTM(16, 8, 2, batch_first=True, bidirectional=True),
}
TFLITE_PARAMS = [
    pytest.param(name, backend, marks=() if (name, backend) == ("gru-bi", "keras") else slow)
    for slow in [pytest.mark.slow]
    for name in TFLITE_RNNS
    for backend in ("keras", "tf")
]


def _tflite_callable(path):
    blob = path.read_bytes()
    ops = op_names(blob)
    assert "WHILE" in ops and not [op for op in ops if op.startswith("Flex")], ops
    return lambda *arrays: tuple(run_tflite(blob, list(arrays)))


@pytest.mark.parametrize(("name", "backend"), TFLITE_PARAMS)
def test_recurrent_tflite_dynamic_length(name: str, backend: str, tmp_path):
    """The sequence axis of token ids stays dynamic (the default on fx): the float32 .tflite
    (builtin ops, a WHILE loop) matches PyTorch at other batch sizes and lengths."""
    torch.manual_seed(stable_seed(name, "tflite"))
    model = TokenTagger(TFLITE_RNNS[name]()).eval()
    result = transpile(model, torch.randint(0, 50, (2, 9)), backend=backend, out_dir=tmp_path / "o")
    assert result.report.dynamic == "ids[1]=seq"
    path = result.to_tflite(tmp_path / "m.tflite")
    assert result.report.tflite[-1].checks and all(c.ok for c in result.report.tflite[-1].checks)
    run = _tflite_callable(path)
    for batch, length in ((1, 4), (3, 13), (2, 1)):
        check_against_torch(model, torch.randint(0, 50, (batch, length)), run)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["keras", "tf"])
def test_recurrent_tflite_static_length(backend: str, tmp_path):
    """dynamic_shapes=None (a fixed length): the export works with a dynamic batch and with a
    static one (batch_size=)."""
    torch.manual_seed(0)
    model = TokenTagger(nn.LSTM(16, 8, 2, batch_first=True, bidirectional=True)).eval()
    ids = torch.randint(0, 50, (2, 9))
    result = transpile(model, ids, backend=backend, dynamic_shapes=None, out_dir=tmp_path / "o")
    assert result.report.dynamic == ""
    run = _tflite_callable(result.to_tflite(tmp_path / "m.tflite"))
    check_against_torch(model, torch.randint(0, 50, (3, 9)), run)
    run = _tflite_callable(result.to_tflite(tmp_path / "m2.tflite", batch_size=2))
    # one batch of 2 (run_tflite would split a larger one on axis 0, and h_n's batch is axis 1)
    check_against_torch(model, torch.randint(0, 50, (2, 9)), run)


def test_builtin_loops_match_keras_loop():
    """scan_over_time, as the TFLite trace runs Keras' recurrent layers, against Keras' own
    loop: sequences and final states, forward and backward, return_sequences off too."""
    import keras
    from transpiler.backends._tf_runtime import keras_function

    inp = keras.Input((None, 5))
    seq, h, c = keras.layers.LSTM(6, return_sequences=True, return_state=True)(inp)
    back = keras.layers.GRU(4, go_backwards=True, return_sequences=True)(seq)
    last = keras.layers.SimpleRNN(3)(back)
    model = keras.Model(inp, [seq, h, c, back, last])
    plain, builtin = keras_function(model), keras_function(model, builtin_loops=True)
    graph = builtin.get_concrete_function().graph.as_graph_def()
    nodes = [n.op for f in graph.library.function for n in f.node_def] + [n.op for n in graph.node]
    assert not [op for op in nodes if op.startswith("TensorList")]
    for batch, length in ((2, 7), (3, 1)):
        x = np.random.default_rng(length).normal(size=(batch, length, 5)).astype("float32")
        for a, b in zip(plain(x), builtin(x), strict=True):
            np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=0, atol=1e-6)
