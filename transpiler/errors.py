"""Exceptions raised by the transpiler. Every message says what is wrong and what to do."""

from __future__ import annotations

from typing import Any

__all__ = ["TranspileError", "UnsupportedOpError"]


class TranspileError(Exception):
    """The model could not be transpiled; ``report`` holds what was done before the failure."""

    def __init__(self, message: str, *, report: Any = None) -> None:
        super().__init__(message)
        self.report = report


class UnsupportedOpError(TranspileError):
    """One or more operations have no converter; ``ops`` lists every one of them."""

    def __init__(self, message: str, ops: list[dict[str, str]], *, report: Any = None) -> None:
        super().__init__(message, report=report)
        self.ops = ops
