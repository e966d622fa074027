"""IR -> IR passes, composed as a literal, commented pipeline.

Each pass is one function ``(graph, ctx) -> PassResult`` in its own module whose docstring
states the invariant it establishes. ``run_pipeline`` clones the graph once, runs the passes in
order and verifies the graph after each one, naming the culprit if a pass fails.
"""

from .cancel_transposes import cancel_transposes
from .dead_code import dead_code
from .fold_batchnorm import fold_batchnorm
from .layout import layout
from .manager import PassContext, PassError, PassRecord, PassResult, run_pipeline
from .normalize_padding import normalize_padding
from .pad_class_tokens import pad_class_tokens
from .prune_conv_taps import prune_conv_taps
from .split_sparse_taps import split_sparse_taps

DEFAULT_PIPELINE = [
    prune_conv_taps,  # taps that only read zero padding go (large dilations on small maps)
    normalize_padding,  # first: pads/ceil_mode become explicit in NCHW, before layout remaps pads
    fold_batchnorm,  # before layout, so folded convs are plain conv2d (or BN becomes mul+add)
    split_sparse_taps,  # after folding: a dilated conv whose taps mostly read padding -> 1x1s
    pad_class_tokens,  # tokens broadcast to the batch and concatenated -> zero pad + constant
    layout,  # NCHW -> NHWC; transposes only where a consumer cannot do without
    cancel_transposes,  # T(p)∘T(q) -> T(p∘q), identity transposes dropped
    dead_code,  # last: drops what folding/layout left unused (old weights, dead nodes)
]

__all__ = [
    "DEFAULT_PIPELINE",
    "PassContext",
    "PassError",
    "PassRecord",
    "PassResult",
    "cancel_transposes",
    "dead_code",
    "fold_batchnorm",
    "layout",
    "normalize_padding",
    "pad_class_tokens",
    "prune_conv_taps",
    "split_sparse_taps",
    "run_pipeline",
]
