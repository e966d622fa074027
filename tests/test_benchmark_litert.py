"""Smoke test of the LiteRT-Torch comparison benchmarks' own logic (no litert_torch needed):
the TFLite statistics (op histogram, XNNPACK partitions, dynamic batch), output matching and
the table, on a tiny Keras model converted with TFLite's converter."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, str(BENCH))
    try:
        import tflite_vs_litert

        yield tflite_vs_litert
    finally:
        sys.path.remove(str(BENCH))


@pytest.fixture(scope="module")
def tiny_tflite(tmp_path_factory) -> Path:
    """conv -> cumsum (no XNNPACK kernel: splits the graph) -> conv -> flatten, dynamic batch."""
    import tensorflow as tf

    x = tf.keras.Input((8, 8, 3))
    y = tf.keras.layers.Conv2D(4, 3)(x)
    y = tf.keras.layers.Lambda(lambda t: tf.math.cumsum(t, axis=1))(y)
    y = tf.keras.layers.Flatten()(tf.keras.layers.Conv2D(4, 3)(y))
    blob = tf.lite.TFLiteConverter.from_keras_model(tf.keras.Model(x, y)).convert()
    path = tmp_path_factory.mktemp("tflite") / "tiny.tflite"
    path.write_bytes(blob)
    return path


def test_specs_cover_the_issue_models(bench):
    from _litert_models import SPECS

    assert set(SPECS) == {
        "resnet18",
        "mobilenet_v2",
        "mobilenet_v3_small",
        "efficientnet_b0",
        "convnext_tiny",
        "shufflenet_v2_x1_0",
        "vit_b_16",
        "deeplabv3_mobilenet_v3_large",
        "yolo11n",
    }


def test_tflite_stats(bench, tiny_tflite):
    stats = bench.tflite_stats(tiny_tflite)
    assert stats["ops"]["CONV_2D"] == 2 and stats["ops"]["CUMSUM"] == 1
    assert stats["transpose"] == 0 and stats["n_ops"] == sum(stats["ops"].values())
    assert stats["xnnpack_partitions"] == 2  # the CUMSUM between the convs stays outside
    assert stats["dynamic_batch"] is True


def test_outputs_matched_by_shape(bench):
    refs = [np.ones((1, 3)), np.zeros((1, 2, 2))]
    outs = [np.zeros((1, 2, 2)) + 0.5, np.ones((1, 3)) + 0.25]
    err, scale = bench.max_error(refs, outs)
    assert err == 0.5 and scale == 1.0
    with pytest.raises(ValueError, match="no output of shape"):
        bench.max_error([np.ones((2, 2))], outs)


def test_table_row(bench, tiny_tflite):
    stats = bench.tflite_stats(tiny_tflite)
    side = stats | {"latency_ms": 2.0, "max_abs_err": 1e-6, "conversion": {"total_s": 3.0}}
    row = {"model": "tiny", "input": "8x8", "ours": side, "litert": side | {"latency_ms": 4.0}}
    row |= {"latency_ratio": 0.5}
    line = bench.table([row]).splitlines()[-1]
    assert line.startswith("| tiny 8x8 | 2.0 / 4.0 (**0.50**) | 2 / 2 |")
    assert bench.histogram_diff([row]) == "- tiny: same histogram"


def test_table_row_with_repeats_shows_their_range(bench, tiny_tflite):
    stats = bench.tflite_stats(tiny_tflite)
    side = stats | {"latency_ms": 2.0, "max_abs_err": 1e-6, "conversion": {"total_s": 3.0}}
    row = {"model": "tiny", "input": "8x8", "ours": side, "litert": side | {"latency_ms": 2.1}}
    row |= {"latency_ratio": 0.95, "latency_ratios": [1.04, 0.95, 0.93]}
    line = bench.table([row]).splitlines()[-1]
    assert line.startswith("| tiny 8x8 | 2.0 / 2.1 (**0.95**, 0.93–1.04) |")


def test_alternating_timing_reverses_the_order(bench):
    calls = []
    samples = bench.alternating(
        {"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, 2, 1, warmup=0
    )
    assert calls == ["a", "b", "b", "a"] and all(len(s) == 2 for s in samples.values())
