"""Layout arithmetic both backends share: weight layouts (PyTorch -> TF) and pooling windows."""

from __future__ import annotations

import numpy as np

__all__ = ["spatial_kernel", "adaptive_windows"]


def spatial_kernel(w: np.ndarray) -> np.ndarray:
    """(O, I/g, *k) -> (*k, I/g, O) for Conv; also (I, O/g, *k) -> (*k, O/g, I) for transposed."""
    n = w.ndim - 2
    return w.transpose(*range(2, 2 + n), 1, 0)


def adaptive_windows(n: int, out: int) -> list[tuple[int, int]]:
    """PyTorch's adaptive pooling windows on one axis: [floor(i n / out), ceil((i+1) n / out))."""
    return [((i * n) // out, -(-((i + 1) * n) // out)) for i in range(out)]
