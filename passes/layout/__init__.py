"""The layout pass (the one pass big enough to be a package): policy + rewrite.

Establishes: every spatial op has ``data_format="channels_last"``; axis attributes are
remapped to the physical layout; every value's ``perm`` says how it relates to PyTorch's
layout; the only ``transpose`` nodes are those a consumer (or a graph input/output in
``io_layout="nchw"``) cannot do without, each with its ``reason``.
"""

from .rewrite import Layouts, layout

__all__ = ["layout", "Layouts"]
