"""Graph quality of the converted models: what TensorFlow actually runs.

    python benchmarks/graph_quality.py [--models resnet50 ...] [--io-layout nchw|nhwc]

Per model (random weights, 224x224 unless noted): Transpose ops, all ops, and each convolution
checked for being a single TF op: no SpaceToBatchND/BatchToSpaceND around it (TF's lowering of
dilation) and no Transpose feeding it. Explicit Pad ops before convs are counted separately:
they exist only where TF 'same' padding would differ from PyTorch's (the stride-2 even-size
case), where a Pad + 'valid' conv is the exact form. Counted in the graph of tf.function(model)
of the generated Keras model, and in the tf backend's SavedModel function.
"""

from __future__ import annotations

import argparse
import collections
import tempfile

import _harness  # noqa: F401 - sets sys.path for the tests' helpers
import torch

MODELS = {
    "resnet50": ("resnet50", 224),
    "mobilenet_v2": ("mobilenet_v2", 224),
    "efficientnet_b0": ("efficientnet_b0", 224),
    "convnext_tiny": ("convnext_tiny", 224),
    "shufflenet_v2_x1_0": ("shufflenet_v2_x1_0", 224),
    "vit_b_16": ("vit_b_16", 224),
    "deeplabv3_mobilenet_v3_large": ("segmentation.deeplabv3_mobilenet_v3_large", 224),
}
CONVS = {"Conv2D", "DepthwiseConv2dNative", "Conv3D", "Conv2DBackpropInput"}


def _nodes(concrete):
    """The forward graph's ops: variables frozen and function calls inlined (gradient
    functions that custom-gradient ops carry in the library are not part of inference)."""
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    return list(convert_variables_to_constants_v2(concrete).graph.as_graph_def().node)


def _quality(concrete) -> dict:
    nodes = _nodes(concrete)
    by_name = {n.name: n for n in nodes}
    ops = collections.Counter(n.op for n in nodes)
    convs = [n for n in nodes if n.op in CONVS]

    def producer(n):
        src = n.input[0].split(":")[0].lstrip("^")
        return by_name.get(src)

    fed = collections.Counter()
    for c in convs:
        p = producer(c)
        while p is not None and p.op in ("Identity",):
            p = producer(p)
        fed["Pad" if p is not None and p.op == "PadV2" else (p.op if p else "input")] += 1
    skip = {"Placeholder", "Identity", "IdentityN", "NoOp", "Const"}
    compute = sum(v for k, v in ops.items() if k not in skip)
    return {
        "transposes": ops["Transpose"],
        "ops": compute,
        "convs": len(convs),
        "space_to_batch": ops["SpaceToBatchND"],
        "conv_fed_by_transpose": fed["Transpose"],
        "conv_fed_by_pad": fed["Pad"],
    }


def main() -> None:
    from helpers import randomize_bn

    from transpiler import transpile

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", default=list(MODELS))
    parser.add_argument("--io-layout", default="nhwc")
    args = parser.parse_args()
    from _harness import torchvision_model as _torchvision

    print(f"io_layout={args.io_layout}\n")
    print(
        "| model | backend | Transpose | ops | convs | single-op convs | SpaceToBatchND "
        "| conv after Transpose | conv after Pad (TF 'same' would differ) |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name in args.models:
        path, size = MODELS[name]
        torch.manual_seed(0)
        model = randomize_bn(_torchvision(path)).eval()
        x = torch.randn(1, 3, size, size)
        for backend in ("keras", "tf"):
            with tempfile.TemporaryDirectory() as out:
                result = transpile(model, x, backend=backend, io_layout=args.io_layout, out_dir=out)
                q = _quality(result.concrete_function())
            single = q["convs"] - q["conv_fed_by_transpose"] - min(q["space_to_batch"], q["convs"])
            print(
                f"| {name} | {backend} | {q['transposes']} | {q['ops']} | {q['convs']} "
                f"| {single} | {q['space_to_batch']} | {q['conv_fed_by_transpose']} "
                f"| {q['conv_fed_by_pad']} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
