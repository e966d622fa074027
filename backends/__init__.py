"""Backends: IR (after the pipeline) -> artifacts. ``keras``: readable Keras 3 source + weights;
``tf``: TensorFlow ops in a tf.function, saved as a SavedModel."""

BACKENDS = ("keras", "tf")

__all__ = ["BACKENDS"]
