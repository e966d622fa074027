"""Pass infrastructure: ``PassResult``, ``PassContext`` and ``run_pipeline``.

Convention: ``run_pipeline`` clones the graph once on entry, so the caller's graph is never
mutated; each pass may then rewrite that working copy in place and returns it in a
``PassResult``. The manager verifies the graph after every pass and, when a pass raises or
leaves an invalid graph, names the pass, the passes that ran before it and the node.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from transpiler.errors import TranspileError
from transpiler.ir import Graph

__all__ = ["PassContext", "PassResult", "PassRecord", "PassError", "run_pipeline"]

LAYOUTS = ("nchw", "nhwc")


@dataclass(frozen=True)
class PassContext:
    input_layout: str = "nchw"  # "nchw" | "nhwc": the layout of graph inputs (ranks 3-5)
    output_layout: str = "nchw"
    fold_batchnorm: bool = True


@dataclass
class PassResult:
    graph: Graph
    changed: bool
    detail: str = ""  # a short human summary, e.g. "folded 20 batch_norm"


@dataclass(frozen=True)
class PassRecord:
    name: str
    nodes_before: int
    nodes_after: int
    changed: bool
    detail: str = ""

    def __str__(self) -> str:
        extra = f" ({self.detail})" if self.detail else ""
        return f"{self.name}: {self.nodes_before} -> {self.nodes_after} nodes{extra}"


class PassError(TranspileError):
    """A pass failed or broke the IR; the message names the pass and those that ran before."""


Pass = Callable[[Graph, PassContext], PassResult]


@dataclass
class PipelineRun:
    graph: Graph
    records: list[PassRecord] = field(default_factory=list)


def run_pipeline(
    graph: Graph, pipeline: Sequence[Pass], ctx: PassContext, *, verify: bool = True
) -> PipelineRun:
    run = PipelineRun(graph.clone())
    if verify:
        run.graph.verify()
    for p in pipeline:
        name = getattr(p, "__name__", repr(p))
        before = len(run.graph.nodes)
        ran = ", ".join(r.name for r in run.records) or "none"
        try:
            result = p(run.graph, ctx)
            if verify:
                result.graph.verify()
        except PassError:
            raise
        except TranspileError as exc:
            raise PassError(f"pass {name!r} failed (after: {ran}): {exc}") from exc
        except Exception as exc:  # noqa: BLE001 - a failing pass stops the pipeline, named
            raise PassError(
                f"pass {name!r} failed (after: {ran}): {type(exc).__name__}: {exc}"
            ) from exc
        run.graph = result.graph
        run.records.append(
            PassRecord(name, before, len(run.graph.nodes), result.changed, result.detail)
        )
    return run
