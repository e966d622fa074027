"""Speed of the converted model on CPU, side by side with PyTorch and hand-written Keras.

    python benchmarks/cpu_latency.py [--models resnet50 mobilenet_v2 ...] [--threads N]

For each model: the generated Keras model (TensorFlow backend, inside ``tf.function``, with and
without ``jit_compile=True``), the ``backend="tf"`` SavedModel function, PyTorch eager, and the
hand-written ``keras.applications`` model where one exists (ResNet50, MobileNetV2; random
weights, same input size). Median latency at batch 1 and throughput at batch 16, all timed
round-robin in one process; ratios are against PyTorch eager and against keras.applications.
The converted models take NHWC input (io_layout="nhwc"), as keras.applications does.
"""

from __future__ import annotations

import argparse
import tempfile

import _harness
import numpy as np
import torch

MODELS = {
    # name: (torchvision factory, keras.applications class or None, input size)
    "resnet50": ("resnet50", "ResNet50", 224),
    "mobilenet_v2": ("mobilenet_v2", "MobileNetV2", 224),
    "deeplabv3_mobilenet_v3_large": ("segmentation.deeplabv3_mobilenet_v3_large", None, 224),
}


def _torchvision(path: str):
    return _harness.torchvision_model(path)


def _candidates(name: str, batch: int, keep: dict) -> dict:
    import keras
    import tensorflow as tf
    from helpers import randomize_bn

    from transpiler import transpile

    path, app, size = MODELS[name]
    if name not in keep:
        torch.manual_seed(0)
        model = randomize_bn(_torchvision(path)).eval()
        x = torch.randn(1, 3, size, size)
        out = tempfile.mkdtemp()
        keras_result = transpile(model, x, io_layout="nhwc", out_dir=f"{out}/keras")
        tf_result = transpile(model, x, backend="tf", io_layout="nhwc", out_dir=f"{out}/tf")
        keep[name] = (model, keras_result.keras_model(), tf_result)
    model, kmodel, tf_result = keep[name]
    xt = torch.randn(batch, 3, size, size)
    xk = tf.constant(xt.permute(0, 2, 3, 1).numpy())

    def forward(m):
        return lambda x: m(x, training=False)

    eager = tf.function(forward(kmodel))
    xla = tf.function(forward(kmodel), jit_compile=True)
    saved = tf.saved_model.load(str(tf_result.saved_model_path))
    cands = {
        "pytorch eager": lambda: model(xt),
        "ours keras (tf.function)": lambda: eager(xk).numpy(),
        "ours keras (jit_compile)": lambda: xla(xk).numpy(),
        "ours tf backend (SavedModel)": lambda: saved.serve(xk).numpy(),
    }
    if app is not None:
        ref = getattr(keras.applications, app)(weights=None, input_shape=(size, size, 3))
        ref_fn = tf.function(forward(ref))
        cands[f"keras.applications.{app} (tf.function)"] = lambda: ref_fn(xk).numpy()
        ref_xla = tf.function(forward(ref), jit_compile=True)
        cands[f"keras.applications.{app} (jit_compile)"] = lambda: ref_xla(xk).numpy()
    return cands


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", default=list(MODELS))
    parser.add_argument("--threads", type=int, default=0, help="intra-op threads (0: default)")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument(
        "--without-pass",
        help="drop one pass from the pipeline (e.g. prune_conv_taps), to measure what it buys",
    )
    args = parser.parse_args()
    if args.without_pass:
        import transpiler.passes as passes

        passes.DEFAULT_PIPELINE[:] = [
            p for p in passes.DEFAULT_PIPELINE if p.__name__ != args.without_pass
        ]
    _harness.pin_threads(args.threads)
    print(f"machine: {_harness.machine()}; threads: {args.threads or 'default'}\n")
    keep: dict = {}
    for name in args.models:
        print(f"### {name}\n")
        print("| runtime | batch 1 median ms | × PyTorch | batch 16 images/s | × PyTorch |")
        print("|---|---|---|---|---|")
        with torch.no_grad():
            b1 = _harness.time_interleaved(_candidates(name, 1, keep), rounds=args.rounds)
            b16 = _harness.time_interleaved(
                _candidates(name, 16, keep), rounds=max(3, args.rounds // 2), per_round=2
            )
        base1 = _harness.median_ms(b1["pytorch eager"])
        base16 = 16000.0 / _harness.median_ms(b16["pytorch eager"])
        for cand in b1:
            ms = _harness.median_ms(b1[cand])
            ips = 16000.0 / _harness.median_ms(b16[cand])
            print(f"| {cand} | {ms:.1f} | {ms / base1:.2f} | {ips:.1f} | {ips / base16:.2f} |")
        apps = [c for c in b1 if c.startswith("keras.applications") and "tf.function" in c]
        if apps:
            ref1, ref16 = _harness.median_ms(b1[apps[0]]), _harness.median_ms(b16[apps[0]])
            ours1 = _harness.median_ms(b1["ours keras (tf.function)"])
            ours16 = _harness.median_ms(b16["ours keras (tf.function)"])
            print(
                f"\nours / {apps[0]}: batch 1 latency {ours1 / ref1:.3f}×, batch 16 time "
                f"{ours16 / ref16:.3f}× (≤ 1.05 is the target)"
            )
        print(flush=True)
    np.random.seed(0)


if __name__ == "__main__":
    main()
