"""The backend interface: what ``transpile()`` needs from a backend, and nothing else.

A backend turns the IR (after the pipeline) into files in a folder and answers for them:

- ``write(graph, folder, model_name=..., layouts=...)`` writes the artifact into ``folder`` (a
  staging folder: the api moves ``artifact.files`` into ``out_dir`` once the check passed) and
  returns an ``Artifact``: a runner for the numeric check, probes for the per-layer diagnosis,
  and the report's tables;
- ``load(out_dir, graph)`` / ``keras_model(out_dir)`` / ``concrete_function(out_dir, graph)``
  load what was written, for ``TranspileResult``;
- ``check_out_dir(out_dir)`` refuses, before anything is written, an ``out_dir`` whose existing
  entries the artifact would wrongly replace.

Backends import only the IR (``transpiler.ir``, ``transpiler.ops``, ``transpiler.errors``) and
the shared backend helpers (``_naming``, ``_layouts``, ``_tf_runtime``), never the api, the
frontend or each other (tests/test_architecture.py checks it).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from transpiler.errors import TranspileError
from transpiler.ir import Graph

__all__ = ["Artifact", "Backend"]


class Artifact(Protocol):
    """A written model, as the api uses it."""

    files: list[str]  # the entries written into the folder (names, not paths)
    run: Callable[..., Any]  # numpy arrays in (io_layout), numpy array(s) out
    value_layers: dict[str, str]  # IR value name -> layer / op scope that computes it
    module_layers: dict[str, list[str]]  # PyTorch module path -> its layers / op scopes
    transpose_count: int | None  # TF Transpose ops in the graph (None: not measurable)
    batchnorm_layers: int  # BatchNorms left as layers / ops

    def probe(self, arrays: list[Any], names: list[str]) -> list[Any]:
        """The outputs of the named layers (``value_layers``' values) on ``arrays``."""
        ...


class Backend:
    """Base class of the backends; ``transpiler.backends.BACKENDS`` maps names to instances."""

    name: str = ""
    source_file: str | None = None  # the generated Python source, if any
    weights_file: str | None = None  # the weights file beside it, if any
    saved_model_dir: str | None = None  # the SavedModel folder, if any

    def check_out_dir(self, out_dir: Path) -> None:
        """Raise TranspileError if writing into ``out_dir`` would replace something that is
        not an earlier artifact of this backend. Default: nothing to check."""

    def write(
        self, graph: Graph, folder: Path, *, model_name: str, layouts: tuple[str, str]
    ) -> Artifact:
        raise NotImplementedError

    def load(self, out_dir: Path, graph: Graph) -> Callable[..., Any]:
        """The written model as a plain callable (numpy in, numpy out; see CONTRACT.md)."""
        raise NotImplementedError

    def keras_model(self, out_dir: Path) -> Any:
        """The written model as a fresh ``keras.Model`` with its weights."""
        raise TranspileError(
            f"the {self.name} backend has no Keras model; use result.load() (or "
            "result.concrete_function()), or transpile with backend='keras' for one."
        )

    def concrete_function(self, out_dir: Path, graph: Graph) -> Any:
        """The written model as a TF concrete function with a dynamic batch (TFLite export)."""
        raise NotImplementedError
