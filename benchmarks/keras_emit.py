"""The Keras emit step's build and weights file: the new path against Keras' public one.

    python benchmarks/keras_emit.py MODEL [--rounds N] [--whole]

MODEL is a torchvision model name (random weights, BatchNorm statistics randomized). Each round
runs the new path (backends/keras_source/weights.py) and the public one (build_model +
set_weights + save_weights: both fast paths switched off) one after the other, alternating which
goes first, in one process; medians and minima per stage at the end. Default: the two stages
alone on the same emitted graph (``build_with_weights``, ``save_weights``); ``--whole``: whole
``transpile`` calls (verify on) with the report's stage timings and the time spent in the two
stages and in the tf.function trace.
"""

from __future__ import annotations

import argparse
import collections
import functools
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--whole", action="store_true", help="time whole transpile calls")
    args = parser.parse_args()

    import torch
    import torchvision
    from helpers import randomize_bn

    from transpiler import transpile
    from transpiler._hygiene import import_keras

    import_keras()
    import transpiler.backends.keras_source as ks
    from transpiler.backends.keras_source import weights

    times: dict[str, float] = collections.defaultdict(float)

    def timed(module: object, name: str) -> None:
        function = getattr(module, name)

        @functools.wraps(function)
        def wrapper(*a, **k):
            start = time.perf_counter()
            try:
                return function(*a, **k)
            finally:
                times[name] += time.perf_counter() - start

        setattr(module, name, wrapper)

    graphs = []
    emit = ks.emit_source

    def capture(graph, **kwargs):
        graphs.append((graph, kwargs))
        return emit(graph, **kwargs)

    ks.emit_source = capture
    for name in ("build_with_weights", "save_weights", "count_tf_transposes"):
        timed(ks, name)
    fast = (weights._deferred_init_supported, weights._fast_store_supported)

    def use(new: bool) -> None:
        off = (lambda: False, lambda: False)
        weights._deferred_init_supported, weights._fast_store_supported = fast if new else off

    torch.manual_seed(0)
    model = randomize_bn(getattr(torchvision.models, args.model)(weights=None)).eval()
    x = torch.randn(1, 3, 224, 224)
    out = Path(tempfile.mkdtemp())
    module = None
    if not args.whole:
        result = transpile(model, x, out_dir=out / "first", verify=False)
        module = ks.import_module_from(result.source_path)
    results = collections.defaultdict(list)
    for i in range(args.rounds):
        for new in (True, False) if i % 2 == 0 else (False, True):
            use(new)
            times.clear()
            tag = "new" if new else "public"
            if args.whole:
                start = time.perf_counter()
                result = transpile(model, x, out_dir=out / f"{tag}{i}")
                row = {"total": time.perf_counter() - start, **result.report.timings, **times}
            else:
                graph, kwargs = graphs[0]
                layer_weights = emit(graph, **kwargs).layer_weights
                start = time.perf_counter()
                keras_model = ks.build_with_weights(module.build_model, layer_weights)
                ks.save_weights(keras_model, out / f"{tag}.weights.h5")
                row = {"total": time.perf_counter() - start, **times}
            for key, value in row.items():
                results[key, tag].append(value)
            print(i, tag, {k: round(v, 3) for k, v in row.items()}, flush=True)
    for (key, tag), values in sorted(results.items()):
        print(f"{key:22} {tag:6} median {statistics.median(values):.3f} min {min(values):.3f}")


if __name__ == "__main__":
    main()
