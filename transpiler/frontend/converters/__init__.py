"""The default converters, grouped by family; importing this package registers them."""

from . import activation, conv, elementwise, linear, norm, pooling, shape  # noqa: F401
