"""Backends: IR (after the pipeline) -> artifacts. ``keras``: readable Keras 3 source + weights."""

BACKENDS = ("keras",)

__all__ = ["BACKENDS"]
