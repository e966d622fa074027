"""The default converters, grouped by family; importing this package registers them."""

from . import (  # noqa: F401
    activation,
    attention,
    conv,
    elementwise,
    indexing,
    linear,
    norm,
    pooling,
    recurrent,
    resize,
    sequence,
    shape,
    swin,
    tensors,
)
