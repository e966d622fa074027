"""Frontends: PyTorch module -> IR."""

from .fx_importer import DYNAMIC, Builder, ImportedModel, import_model
from .registry import DEFAULT_REGISTRY, ConverterRegistry, converts

__all__ = [
    "DYNAMIC",
    "Builder",
    "ConverterRegistry",
    "DEFAULT_REGISTRY",
    "ImportedModel",
    "converts",
    "import_model",
]

from . import converters  # noqa: E402, F401 - registers the default converters
