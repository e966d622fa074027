"""The converter registry: torch modules, functions and tensor methods -> IR-building functions.

A registry is an object, not a module-level mutable dict, so tests and users can build their own
(``DEFAULT_REGISTRY.copy()`` then ``@reg.converts(...)``) without touching the default one.

A converter's parameter list mirrors the torch signature it converts; it receives a ``Builder``
first (and, for module converters, the module instance second), IR ``Value``s for tensors and
plain Python values for everything else. It returns a ``Value`` (or a tuple/list of them).
Converters only build IR: no Keras, no TensorFlow, no layout decisions.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["ConverterRegistry", "DEFAULT_REGISTRY", "converts"]

Converter = Callable[..., Any]


class ConverterRegistry:
    def __init__(self) -> None:
        self.modules: dict[type, Converter] = {}
        self.functions: dict[Any, Converter] = {}
        self.methods: dict[str, Converter] = {}

    def converts(self, *targets: Any) -> Callable[[Converter], Converter]:
        """Register ``fn`` for module classes, torch callables, and method names (strings)."""

        def register(fn: Converter) -> Converter:
            for target in targets:
                if isinstance(target, str):
                    self.methods[target] = fn
                elif isinstance(target, type):
                    self.modules[target] = fn
                else:
                    self.functions[target] = fn
            return fn

        return register

    def copy(self) -> ConverterRegistry:
        new = ConverterRegistry()
        new.modules.update(self.modules)
        new.functions.update(self.functions)
        new.methods.update(self.methods)
        return new

    def merge(self, other: ConverterRegistry) -> ConverterRegistry:
        """A new registry with this one's converters and ``other``'s, ``other``'s taking
        precedence; neither input changes."""
        new = self.copy()
        new.modules.update(other.modules)
        new.functions.update(other.functions)
        new.methods.update(other.methods)
        return new

    def module_converter(self, module: Any) -> Converter | None:
        """The converter for ``module``: its class's, or that of a base whose forward it keeps."""
        forward = type(module).forward
        for cls in type(module).__mro__:
            fn = self.modules.get(cls)
            if fn is not None and getattr(cls, "forward", None) is forward:
                return fn
        return None


DEFAULT_REGISTRY = ConverterRegistry()
converts = DEFAULT_REGISTRY.converts
