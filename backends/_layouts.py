"""Layout arithmetic both backends share: weight layouts (PyTorch -> TF) and pooling windows."""

from __future__ import annotations

import numpy as np

__all__ = ["spatial_kernel", "transposed_as_conv_kernel", "adaptive_windows"]


def spatial_kernel(w: np.ndarray) -> np.ndarray:
    """(O, I/g, *k) -> (*k, I/g, O) for Conv; also (I, O/g, *k) -> (*k, O/g, I) for transposed."""
    n = w.ndim - 2
    return w.transpose(*range(2, 2 + n), 1, 0)


def transposed_as_conv_kernel(w: np.ndarray, groups: int) -> np.ndarray:
    """A transposed conv's weight (I, O/g, *k) as the (*k, I/g, O) kernel of the plain (grouped)
    conv that computes it on zero-inserted, fully padded input: in/out roles swapped per group,
    taps flipped."""
    k = w.shape[2:]
    ipg, opg = w.shape[0] // groups, w.shape[1]
    kernel = w.reshape(groups, ipg, opg, *k).transpose(*range(3, 3 + len(k)), 1, 0, 2)
    return kernel.reshape(*k, ipg, groups * opg)[tuple(slice(None, None, -1) for _ in k)]


def adaptive_windows(n: int, out: int) -> list[tuple[int, int]]:
    """PyTorch's adaptive pooling windows on one axis: [floor(i n / out), ceil((i+1) n / out))."""
    return [((i * n) // out, -(-((i + 1) * n) // out)) for i in range(out)]
