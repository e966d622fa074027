"""Backends: IR (after the pipeline) -> artifacts. ``keras``: readable Keras 3 source + weights;
``tf``: TensorFlow ops in a tf.function, saved as a SavedModel.

``BACKENDS`` maps each name to its ``Backend`` (backends/base.py); iterating it gives the names.
"""

from .base import Artifact, Backend
from .keras_source import BACKEND as _KERAS
from .tf_graph import BACKEND as _TF

BACKENDS: dict[str, Backend] = {b.name: b for b in (_KERAS, _TF)}

__all__ = ["Artifact", "Backend", "BACKENDS"]
