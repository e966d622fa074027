"""Which TF form of an op becomes the fastest float32 TFLite graph with a dynamic batch.

Small TF graphs, each written in several exact forms, converted with the TFLite converter
(dynamic batch, as our files are), checked against each other, and timed alternately in one
process (``tf.lite.Interpreter``, default XNNPACK delegate, 1 thread, batch 1; the ratio to the
first form is what to read on a shared machine). Per form: the op histogram and the XNNPACK
partitions / nodes left outside (benchmarks/_tflite_stats.py).

- ``split``: ShuffleNet's channel split (``chunk(2, dim=1)``), 20 times over a 28x28x116 map:
  ``x[..., :58]`` (STRIDED_SLICE, what Keras indexing gives), ``tf.slice`` with a literal ``-1``
  batch (SLICE), ``tf.split`` (one SPLIT), and ``tf.slice`` at a static batch 1 (LiteRT-Torch's
  SLICE, for reference: its file has no dynamic batch).
- ``shuffle``: ShuffleNet V2's block (split, a 1x1 conv on one half, cat, channel shuffle by 2),
  16 times over a 28x28x116 map: our former single 5-d transpose, LiteRT-Torch's NCHW round trip
  (3 transposes), one transpose with the pair axis first, a channels-last interleaving concat,
  and what the export now emits (transpiler/tflite_graph.py: the shuffled tensor kept
  channels-first between blocks, each cat + shuffle one interleaving concat of rows).
- ``maxpool_pad``: the stem max pool's padding (3x3, stride 2, padding 1 over 112x112x24):
  edge replication (ours), a zero PAD (exact after a ReLU), PADV2 with -inf (LiteRT-Torch's).
- ``layernorm``: three ConvNeXt blocks at 56x56x96 (depthwise 7x7, LayerNorm, Linear, GELU,
  Linear, layer scale, residual): Keras' ``ops.layer_normalization`` (what the generated code
  calls) against ``(x - mean) * rsqrt(var + eps) * gamma + beta``, each with our Linear (a 2-d
  matmul between reshapes) or a matmul on the 4-d tensor.

    python benchmarks/tflite_lowering_forms.py [--case split|layernorm|shuffle|maxpool_pad|all]
        [--rounds 16]
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import numpy as np
from _tflite_stats import stats


def _convert(fn, shape) -> bytes:
    import tensorflow as tf

    f = tf.function(fn, input_signature=[tf.TensorSpec(shape, tf.float32)])
    converter = tf.lite.TFLiteConverter.from_concrete_functions([f.get_concrete_function()], f)
    return converter.convert()


def split_forms() -> tuple[dict, tuple]:
    import tensorflow as tf

    h, c = 28, 116

    def chain(halves):
        def f(x):
            for _ in range(20):
                a, b = halves(x)
                x = tf.concat([b + 1.0, a], -1)
            return x

        return f

    def sliced(batch):
        return lambda x: (
            tf.slice(x, [0, 0, 0, 0], [batch, h, h, c // 2]),
            tf.slice(x, [0, 0, 0, c // 2], [batch, h, h, c // 2]),
        )

    forms = {
        "strided_slice": (chain(lambda x: (x[..., : c // 2], x[..., c // 2 :])), None),
        "slice_-1": (chain(sliced(-1)), None),
        "split": (chain(lambda x: tf.split(x, 2, axis=-1)), None),
        "slice_static_batch1": (chain(sliced(1)), 1),
    }
    blobs = {k: _convert(f, [b, h, h, c]) for k, (f, b) in forms.items()}
    return blobs, (1, h, h, c)


def shuffle_forms() -> tuple[dict, tuple]:
    """ShuffleNet V2's block 16 times over a 28x28x116 map: split the channels in halves, a
    branch on the second (a 1x1 conv: an elementwise op would commute with the transposes and
    be optimized away), ``cat``, channel shuffle by 2, in four forms."""
    import tensorflow as tf

    h, c = 28, 116
    half, hw = c // 2, 28 * 28
    w = np.random.default_rng(0).standard_normal((1, 1, half, half)).astype(np.float32) * 0.1
    w = tf.constant(w)

    def branch(b):
        return tf.nn.conv2d(b, w, 1, "VALID")

    def chain(tail):
        def f(x):
            for _ in range(16):
                x = tail(x[..., :half], branch(x[..., half:]))
            return x

        return f

    def transpose_5d(a, b):  # ours before: one 5-d TRANSPOSE of (N, H, W, 2, C/2)
        y = tf.reshape(tf.concat([a, b], -1), (-1, h, h, 2, half))
        return tf.reshape(tf.transpose(y, (0, 1, 2, 4, 3)), (-1, h, h, c))

    def nchw_round_trip(a, b):  # LiteRT-Torch's: to NCHW, PyTorch's shuffle, back
        y = tf.transpose(tf.concat([a, b], -1), (0, 3, 1, 2))
        y = tf.transpose(tf.reshape(y, (-1, 2, half, h, h)), (0, 2, 1, 3, 4))
        return tf.transpose(tf.reshape(y, (-1, c, h, h)), (0, 2, 3, 1))

    def pair_axis_first(a, b):  # one transpose of (N, 2, HW, C/2) to (N, HW, C/2, 2)
        pair = [tf.reshape(a, (-1, 1, hw, half)), tf.reshape(b, (-1, 1, hw, half))]
        return tf.reshape(tf.transpose(tf.concat(pair, 1), (0, 2, 3, 1)), (-1, h, h, c))

    def interleave_channels_last(a, b):  # one concat of (N, H, W, C/2, 1) pieces
        pair = [tf.reshape(a, (-1, h, h, half, 1)), tf.reshape(b, (-1, h, h, half, 1))]
        return tf.reshape(tf.concat(pair, -1), (-1, h, h, c))

    forms = {
        "transpose_5d": transpose_5d,
        "nchw_round_trip": nchw_round_trip,
        "pair_axis_first": pair_axis_first,
        "interleave_channels_last": interleave_channels_last,
    }
    blobs = {k: _convert(chain(f), [None, h, h, c]) for k, f in forms.items()}

    def channels_first(x):  # ours now: the shuffled tensor stays (N, C, HW) between blocks
        s = tf.transpose(tf.reshape(x, (-1, hw, c)), (0, 2, 1))
        for _ in range(16):
            b = tf.reshape(tf.transpose(s[:, half:], (0, 2, 1)), (-1, h, h, half))
            fb = tf.transpose(tf.reshape(branch(b), (-1, hw, half)), (0, 2, 1))
            rows = [tf.reshape(s[:, :half], (-1, half, 1, hw)), tf.reshape(fb, (-1, half, 1, hw))]
            s = tf.reshape(tf.concat(rows, 2), (-1, c, hw))
        return tf.reshape(tf.transpose(s, (0, 2, 1)), (-1, h, h, c))

    blobs["channels_first_interleave"] = _convert(channels_first, [None, h, h, c])
    return blobs, (1, h, h, c)


def maxpool_pad_forms() -> tuple[dict, tuple]:
    """The stem max pool (3x3, stride 2, padding 1) over a ReLU's 112x112x24 output, 8 times
    (on x + i, so that the copies are not shared): the padding as edge replication on both
    sides (ours), on the leading side only (the trailing row/column is never read at this
    size), a zero PAD (exact after a ReLU), and PADV2 with -inf (LiteRT-Torch's)."""
    import tensorflow as tf

    h, c = 112, 24

    def replicate(x, before, after):
        for axis in (1, 2):
            parts = [x[:, :1] if axis == 1 else x[:, :, :1]] * before + [x]
            parts += [x[:, -1:] if axis == 1 else x[:, :, -1:]] * after
            x = tf.concat(parts, axis)
        return x

    def constant(value, before, after):
        pads = [[0, 0], [before, after], [before, after], [0, 0]]
        return lambda x, *_: tf.pad(x, pads, constant_values=value)

    def chain(pad):
        def f(x):
            x = tf.nn.relu(x)
            outs = [tf.nn.max_pool2d(pad(x + float(i)), 3, 2, "VALID") for i in range(8)]
            return tf.add_n(outs)

        return f

    forms = {
        "replicate_1_1": chain(lambda x: replicate(x, 1, 1)),
        "replicate_1_0": chain(lambda x: replicate(x, 1, 0)),
        "zero_pad_1_1": chain(constant(0.0, 1, 1)),
        "zero_pad_1_0": chain(constant(0.0, 1, 0)),
        "-inf_padv2_1_1": chain(constant(float("-inf"), 1, 1)),
    }
    blobs = {k: _convert(f, [None, h, h, c]) for k, f in forms.items()}
    return blobs, (1, h, h, c)


def layernorm_forms() -> tuple[dict, tuple]:
    import keras
    import tensorflow as tf

    rng = np.random.default_rng(0)
    h, c = 56, 96

    def const(*shape, scale=1.0):
        return tf.constant((rng.standard_normal(shape) * scale).astype(np.float32))

    w1, b1, w2, b2 = const(c, 4 * c, scale=0.1), const(4 * c), const(4 * c, c, scale=0.1), const(c)
    gamma, beta, dw = const(c), const(c), const(7, 7, c, 1, scale=0.1)
    scale = tf.constant(np.full(c, 1e-6, np.float32))

    def ln_keras(x):
        return keras.ops.layer_normalization(x, gamma, beta, -1, 1e-6)

    def ln_explicit(x):
        mean = tf.reduce_mean(x, -1, keepdims=True)
        var = tf.reduce_mean(tf.math.squared_difference(x, mean), -1, keepdims=True)
        return (x - mean) * tf.math.rsqrt(var + 1e-6) * gamma + beta

    def linear_2d(x, w, b):
        y = tf.matmul(tf.reshape(x, (-1, x.shape[-1])), w) + b
        return tf.reshape(y, (-1, h, h, w.shape[-1]))

    def linear_4d(x, w, b):
        return tf.matmul(x, w) + b

    def blocks(ln, linear):
        def f(x):
            for _ in range(3):
                y = ln(tf.nn.depthwise_conv2d(x, dw, [1, 1, 1, 1], "SAME"))
                y = tf.nn.gelu(linear(y, w1, b1), approximate=False)
                x = x + linear(y, w2, b2) * scale
            return x

        return f

    forms = {
        "keras_ln+linear_2d": blocks(ln_keras, linear_2d),
        "keras_ln+linear_4d": blocks(ln_keras, linear_4d),
        "explicit_ln+linear_2d": blocks(ln_explicit, linear_2d),
        "explicit_ln+linear_4d": blocks(ln_explicit, linear_4d),
    }
    return {k: _convert(f, [None, h, h, c]) for k, f in forms.items()}, (1, h, h, c)


def measure(blobs: dict, shape: tuple, rounds: int, per_round: int = 3) -> list[dict]:
    import tensorflow as tf

    x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    interps = {}
    for k, blob in blobs.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            interp = tf.lite.Interpreter(model_content=blob, num_threads=1)
        interp.allocate_tensors()
        interps[k] = interp

    def run(interp):
        interp.set_tensor(interp.get_input_details()[0]["index"], x)
        interp.invoke()
        return interp.get_tensor(interp.get_output_details()[0]["index"])

    first = run(next(iter(interps.values())))
    errors = {k: float(np.abs(run(i) - first).max()) for k, i in interps.items()}
    samples: dict[str, list[float]] = {k: [] for k in interps}
    names = list(interps)
    for r in range(rounds):
        for k in names if r % 2 == 0 else names[::-1]:
            for _ in range(per_round):
                t0 = time.perf_counter()
                run(interps[k])
                samples[k].append(time.perf_counter() - t0)
    base = statistics.median(samples[names[0]])
    rows = []
    for k in names:
        s = stats(blobs[k])
        ms = 1e3 * statistics.median(samples[k])
        rows.append(
            {
                "form": k,
                "ms": ms,
                "ratio": ms / 1e3 / base,
                "max_diff": errors[k],
                "partitions": s["partitions"],
                "undelegated": s["undelegated"],
                "ops": s["ops"],
            }
        )
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--case", default="all", choices=["split", "layernorm", "shuffle", "maxpool_pad", "all"]
    )
    p.add_argument("--rounds", type=int, default=16)
    args = p.parse_args()
    cases = {
        "split": split_forms,
        "layernorm": layernorm_forms,
        "shuffle": shuffle_forms,
        "maxpool_pad": maxpool_pad_forms,
    }
    for case, build in cases.items():
        if args.case not in (case, "all"):
            continue
        print(f"\n{case}\n| form | ms | ratio | max diff | XNNPACK partitions | outside | ops |")
        print("|---|---|---|---|---|---|---|")
        for r in measure(*build(), rounds=args.rounds):
            ops = ", ".join(f"{k} {v}" for k, v in r["ops"].items())
            print(
                f"| {r['form']} | {r['ms']:.2f} | {r['ratio']:.3f} | {r['max_diff']:.1e} "
                f"| {r['partitions']} | {r['undelegated'] or '-'} | {ops} |"
            )


if __name__ == "__main__":
    main()
