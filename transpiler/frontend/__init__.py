"""Frontends: PyTorch module (or ``torch.export`` program) -> IR. ``load()`` is the entry
point (tracer choice, working copy, inputs); ``import_model`` the fx graph -> IR importer."""

from .fx_importer import DYNAMIC, Builder, ImportedModel, import_model
from .registry import DEFAULT_REGISTRY, ConverterRegistry, converts

__all__ = [
    "DYNAMIC",
    "Builder",
    "ConverterRegistry",
    "DEFAULT_REGISTRY",
    "ImportedModel",
    "Loaded",
    "converts",
    "import_model",
    "load",
]

from . import converters  # noqa: E402, F401 - registers the default converters
from .load import Loaded, load  # noqa: E402
