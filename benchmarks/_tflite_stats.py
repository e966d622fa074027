"""Op histogram and XNNPACK partition count of a TFLite flatbuffer (any converter's).

    from _tflite_stats import op_histogram, xnnpack_partitions, stats

    op_histogram(blob)        -> {"CONV_2D": 52, "RESIZE_BILINEAR": 2, ...} (sorted by name)
    xnnpack_partitions(blob)  -> (partitions, delegated_nodes, total_nodes)
    stats(blob)               -> {"ops": histogram, "total": n, "partitions": p,
                                  "delegated": d, "undelegated": {op: count}}

``blob`` is the file's bytes (or a path). The histogram is the interpreter's own op list with
no delegate applied. The partitions are counted as the XNNPACK delegate makes them: the
interpreter is built with the default delegates (TFLite's CPU default is XNNPACK), tensors are
allocated at the file's own shapes (a dynamic batch at 1), and the DELEGATE nodes of the
execution plan are counted, each one an XNNPACK partition. The nodes left outside are listed by
op (``undelegated``): each one splits the graph. ``python benchmarks/_tflite_stats.py a.tflite``
prints the same as JSON.
"""

from __future__ import annotations

import collections
import json
import sys
import warnings
from pathlib import Path


def _blob(model: bytes | str | Path) -> bytes:
    return model if isinstance(model, bytes | bytearray) else Path(model).read_bytes()


def _interpreter(blob: bytes, delegates: bool, threads: int = 1):
    try:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType
    except ImportError:
        import tensorflow as tf
        from tensorflow.lite.python.interpreter import OpResolverType

        Interpreter = tf.lite.Interpreter  # noqa: N806 - still shipped with TF 2.21
    kind = OpResolverType.AUTO if delegates else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        interp = Interpreter(
            model_content=bytes(blob), num_threads=threads, experimental_op_resolver_type=kind
        )
    for d in interp.get_input_details():  # dynamic dims (-1) at 1
        shape = [max(int(s), 1) for s in d["shape_signature"]] or list(d["shape"])
        interp.resize_tensor_input(d["index"], shape)
    interp.allocate_tensors()
    return interp


def op_histogram(model: bytes | str | Path) -> dict[str, int]:
    """Op name -> count, without any delegate."""
    ops = _interpreter(_blob(model), delegates=False)._get_ops_details()  # noqa: SLF001
    return dict(sorted(collections.Counter(o["op_name"] for o in ops).items()))


def _plan(blob: bytes) -> tuple[int, collections.Counter]:
    """(DELEGATE nodes, ops left outside XNNPACK by name). The interpreter lists the original
    nodes and the delegate nodes alike; the nodes left in the execution plan are found backwards
    from the model's outputs: a node is outside when a tensor the plan needs (a model output,
    an input of a delegate node or of a node outside) is produced by it, not by a delegate."""
    interp = _interpreter(blob, delegates=True)
    ops = interp._get_ops_details()  # noqa: SLF001
    delegates = [o for o in ops if o["op_name"] == "DELEGATE"]
    originals = [o for o in ops if o["op_name"] != "DELEGATE"]
    from_delegate = {int(t) for o in delegates for t in o["outputs"]}
    needed = {int(d["index"]) for d in interp.get_output_details()}
    needed |= {int(t) for o in delegates for t in o["inputs"]}
    outside: set[int] = set()
    changed = True
    while changed:
        changed = False
        for k, o in enumerate(originals):
            outs = {int(t) for t in o["outputs"]}
            if k not in outside and outs & needed and not outs & from_delegate:
                outside.add(k)
                needed |= {int(t) for t in o["inputs"] if int(t) >= 0}
                changed = True
    return len(delegates), collections.Counter(originals[k]["op_name"] for k in outside)


def xnnpack_partitions(model: bytes | str | Path) -> tuple[int, int, int]:
    """(XNNPACK partitions, nodes delegated, nodes in total) with the default delegates."""
    blob = _blob(model)
    total = sum(op_histogram(blob).values())
    partitions, outside = _plan(blob)
    return partitions, total - sum(outside.values()), total


def stats(model: bytes | str | Path) -> dict:
    """The histogram, the partitions, and the ops XNNPACK left outside (by name)."""
    blob = _blob(model)
    hist = op_histogram(blob)
    partitions, outside = _plan(blob)
    return {
        "ops": hist,
        "total": sum(hist.values()),
        "partitions": partitions,
        "delegated": sum(hist.values()) - sum(outside.values()),
        "undelegated": dict(sorted(outside.items())),
    }


if __name__ == "__main__":
    for path in sys.argv[1:]:
        print(json.dumps({"file": path, **stats(path)}))
