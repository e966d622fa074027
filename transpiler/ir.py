"""The framework-neutral IR: a topologically ordered list of nodes over typed values.

Values are SSA: each has at most one producer. Graph inputs and constants (weights) have no
producer; constants keep their data in ``Graph.constants`` under the value's name, in PyTorch
order (OIHW for convolutions). Layout lives in node attributes (``data_format``, ``axis``) and,
after the layout pass, in ``Value.perm``: the permutation that maps PyTorch's logical axes to
the tensor's physical axes (``physical = logical.permute(perm)``).

``networkx`` is an optional extra (``pip install torch2keras-transpiler[analysis]``) for a
read-only analysis view (``Graph.to_networkx``), never the IR: the passes' analyses (liveness,
consumer search) are linear sweeps over the topologically ordered node list.
"""

from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import TranspileError

if TYPE_CHECKING:  # pragma: no cover
    import networkx as nx

__all__ = ["TensorType", "SourceInfo", "Value", "Node", "Graph", "IRVerificationError"]


class IRVerificationError(TranspileError):
    """The IR broke one of its invariants (a bug in an importer or a pass)."""


@dataclass(frozen=True)
class TensorType:
    shape: tuple[int | None, ...]  # None marks a dynamic dimension (the batch, or any size)
    dtype: str  # numpy dtype name: "float32", "int64", "bool", ...

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def is_float(self) -> bool:
        return self.dtype.startswith(("float", "bfloat"))

    def __str__(self) -> str:
        dims = ", ".join("?" if d is None else str(d) for d in self.shape)
        return f"{self.dtype}[{dims}]"


@dataclass(frozen=True)
class SourceInfo:
    module_path: str  # "layer1.0.conv1" ("" for the top-level module)
    module_type: str  # "Conv2d"
    torch_op: str  # "call_module Conv2d", "call_function torch.relu", ...
    source_line: str = ""  # "model.py:42" of the user's code, where known

    def describe(self) -> str:
        where = self.module_path or "<top>"
        line = f" at {self.source_line}" if self.source_line else ""
        return f"{where} ({self.module_type}){line}"


@dataclass(eq=False)
class Value:
    name: str
    type: TensorType
    producer: Node | None = None
    # The fx node whose torch output this value equals (up to ``perm``); used by diagnosis.
    torch_ref: str | None = None
    perm: tuple[int, ...] | None = None  # set by the layout pass; None = identity

    @property
    def shape(self) -> tuple[int | None, ...]:
        return self.type.shape

    @property
    def rank(self) -> int:
        return self.type.rank

    def __repr__(self) -> str:
        return f"%{self.name}: {self.type}"


@dataclass(eq=False)
class Node:
    op: str
    inputs: list[Value]
    outputs: list[Value]
    attrs: dict[str, Any] = field(default_factory=dict)
    source: SourceInfo | None = None
    # Non-semantic facts for humans (e.g. "folded": [SourceInfo of a folded BatchNorm]).
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def output(self) -> Value:
        if len(self.outputs) != 1:
            raise IRVerificationError(f"{self.op} has {len(self.outputs)} outputs, not one")
        return self.outputs[0]

    def format(self) -> str:
        outs = ", ".join(f"%{v.name}" for v in self.outputs)
        ins = ", ".join(f"%{v.name}" for v in self.inputs)
        attrs = ", ".join(f"{k}={v!r}" for k, v in sorted(self.attrs.items()))
        where = f"  # {self.source.describe()}" if self.source else ""
        return f"{outs} = {self.op}({ins}{', ' if ins and attrs else ''}{attrs}){where}"

    def __repr__(self) -> str:
        return self.format()


@dataclass
class Graph:
    nodes: list[Node] = field(default_factory=list)
    inputs: list[Value] = field(default_factory=list)
    outputs: list[Value] = field(default_factory=list)
    constants: dict[str, np.ndarray] = field(default_factory=dict)
    # Input names as the user's forward() spells them (sanitized later by the emitters).
    input_names: list[str] = field(default_factory=list)
    # Model-level facts the emitters print: the torch class, module paths, etc.
    meta: dict[str, Any] = field(default_factory=dict)
    _counter: itertools.count = field(default_factory=itertools.count, repr=False)

    # -- construction -----------------------------------------------------------------------
    def fresh_name(self, hint: str) -> str:
        return f"{hint}_{next(self._counter)}"

    def add_constant(self, array: np.ndarray, hint: str = "const") -> Value:
        array = np.asarray(array)
        name = self.fresh_name(hint)
        self.constants[name] = array
        return Value(name, TensorType(tuple(array.shape), array.dtype.name))

    def is_constant(self, v: Value) -> bool:
        return v.producer is None and v.name in self.constants

    def constant(self, v: Value) -> np.ndarray:
        return self.constants[v.name]

    def make_node(
        self,
        op: str,
        inputs: list[Value],
        out_type: TensorType,
        attrs: dict[str, Any] | None = None,
        source: SourceInfo | None = None,
        hint: str | None = None,
    ) -> Node:
        """Create (but do not insert) a single-output node. The op's declared attribute
        defaults are filled in and list values become tuples (``ops.with_defaults``)."""
        from .ops import with_defaults  # local: ops imports ir

        out = Value(self.fresh_name(hint or op), out_type)
        node = Node(op, list(inputs), [out], with_defaults(op, attrs or {}), source)
        out.producer = node
        return node

    def insert_before(self, anchor: Node, new: Node) -> None:
        self.nodes.insert(self.nodes.index(anchor), new)

    # -- queries ----------------------------------------------------------------------------
    def users(self, v: Value) -> list[Node]:
        return [n for n in self.nodes if any(i is v for i in n.inputs)]

    def use_counts(self) -> dict[int, int]:
        counts: dict[int, int] = {}
        for n in self.nodes:
            for i in n.inputs:
                counts[id(i)] = counts.get(id(i), 0) + 1
        for o in self.outputs:
            counts[id(o)] = counts.get(id(o), 0) + 1
        return counts

    def replace_all_uses(self, old: Value, new: Value) -> None:
        for n in self.nodes:
            n.inputs = [new if i is old else i for i in n.inputs]
        self.outputs = [new if o is old else o for o in self.outputs]

    def count(self, op: str) -> int:
        return sum(1 for n in self.nodes if n.op == op)

    # -- invariants ---------------------------------------------------------------------------
    def verify(self) -> None:
        """Check the structural invariants; raise IRVerificationError naming the node."""
        from .ops import OPS  # local: ops imports ir

        defined: set[int] = {id(v) for v in self.inputs}
        for v in self.inputs:
            if v.producer is not None:
                raise IRVerificationError(f"graph input %{v.name} has a producer")
        names: set[str] = set()
        for node in self.nodes:
            where = f"node `{node.format()}`"
            spec = OPS.get(node.op)
            if spec is None:
                raise IRVerificationError(f"{where}: unknown op {node.op!r}")
            spec.check(node)
            for i in node.inputs:
                if id(i) not in defined and not self.is_constant(i):
                    raise IRVerificationError(
                        f"{where}: input %{i.name} is used before it is defined (topological order)"
                    )
            for o in node.outputs:
                if o.producer is not node:
                    raise IRVerificationError(f"{where}: output %{o.name} has another producer")
                if o.name in names:
                    raise IRVerificationError(f"{where}: value name %{o.name} defined twice")
                names.add(o.name)
                defined.add(id(o))
        for o in self.outputs:
            if id(o) not in defined and not self.is_constant(o):
                raise IRVerificationError(f"graph output %{o.name} is never defined")

    # -- copies and views -----------------------------------------------------------------------
    def clone(self) -> Graph:
        """A deep copy of the structure; constant arrays are shared (passes replace them)."""
        memo: dict[int, Any] = {id(a): a for a in self.constants.values()}
        new = copy.deepcopy(self, memo)
        return new

    def to_networkx(self) -> nx.DiGraph:
        """A read-only analysis view: one vertex per node (by index), edges along values.
        Needs the optional ``networkx`` package (the ``analysis`` extra)."""
        try:
            import networkx as nx
        except ImportError as exc:
            raise TranspileError(
                "Graph.to_networkx needs networkx, an optional dependency: "
                "pip install 'torch2keras-transpiler[analysis]' (or networkx>=3.0)"
            ) from exc

        g = nx.DiGraph()
        producer_index = {id(n): k for k, n in enumerate(self.nodes)}
        for k, n in enumerate(self.nodes):
            g.add_node(k, op=n.op, node=n)
            for v in n.inputs:
                if v.producer is not None:
                    g.add_edge(producer_index[id(v.producer)], k, value=v.name)
        return g

    def format(self) -> str:
        lines = [f"graph({', '.join(repr(v) for v in self.inputs)}):"]
        lines += [f"    {n.format()}" for n in self.nodes]
        lines.append(f"    return {', '.join('%' + o.name for o in self.outputs)}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.format()
