"""torch.fx frontend: trace a module symbolically and import it into the IR.

One loop over the fx graph, dispatching on ``node.op`` into the converter registry (TVM's
``from_fx`` shape). Before anything is converted, every unsupported target is collected and
raised at once.

Shapes come from running the traced graph twice, with the example inputs and with inputs whose
dynamic dimensions (the batch, and the spatial sizes in the one-line form) have other sizes:
a dimension that differs between the two runs is dynamic (``None`` in the IR). Nodes that do
not depend on the inputs (parameter arithmetic, ``torch.ones`` in forward) and non-tensor values
(``x.size(0)``) are folded to constants; a folded Python value that differs between the runs is
``DYNAMIC`` and a converter that needs it static says so.

We never use ``GraphModule`` code generation (it breaks on hostile module names): the graph is
built with ``fx.Tracer().trace`` and interpreted here node by node.
"""

from __future__ import annotations

import inspect
import operator
import os
import re
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.fx as fx

from .._pytree import flatten
from ..errors import TranspileError, UnsupportedOpError
from ..ir import Graph, SourceInfo, TensorType, Value
from ..signature import BatchSpec, alternate_inputs
from .registry import DEFAULT_REGISTRY, ConverterRegistry

__all__ = [
    "import_model",
    "Builder",
    "DYNAMIC",
    "DimRef",
    "is_dynamic",
    "ImportedModel",
    "torch_dtype_name",
    "example_batch",
]


class _Dynamic:
    """A Python value (a size, a shape) that depends on the dynamic input dimensions."""

    def __repr__(self) -> str:
        return "DYNAMIC"


DYNAMIC = _Dynamic()


class DimRef(_Dynamic):
    """A dynamic size read from an IR value: ``value.shape[axis]`` at run time (``x.size(1)``
    of token ids whose sequence axis is dynamic). Converters that can build a tensor of that
    size (``arange``, a constant sliced to it, ``expand``) take ``value`` as a reference input;
    the others see a ``DYNAMIC`` like any other."""

    def __init__(self, value: Value, axis: int) -> None:
        self.value, self.axis = value, axis

    def __repr__(self) -> str:
        return f"DYNAMIC({self.value.name}.shape[{self.axis}])"


def is_dynamic(value: Any) -> bool:
    """``value`` is DYNAMIC or a DimRef."""
    return isinstance(value, _Dynamic)


_TORCH_DIR = os.path.dirname(torch.__file__)
_OUR_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_FRAME = re.compile(r'File "([^"]+)", line (\d+), in (\S+)')


def torch_dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).replace("torch.", "")


def _target_name(node: fx.Node) -> str:
    t = node.target
    if node.op == "call_method":
        return f"Tensor.{t}"
    if node.op == "call_function" and isinstance(t, torch._ops.OpOverload):
        return f"aten.{t.overloadpacket.__name__}"  # torch.export's ATen ops
    if node.op == "call_function":
        mod = getattr(t, "__module__", None) or ""
        name = getattr(t, "__name__", repr(t))
        if mod.startswith("torch._C") or mod == "torch":
            mod = "torch"
        return f"{mod}.{name}" if mod else name
    return str(t)


def _source_line(node: fx.Node) -> str:
    trace = node.meta.get("stack_trace") or ""
    for path, line, _fn in reversed(_FRAME.findall(trace)):
        if not path.startswith((_TORCH_DIR + os.sep, _OUR_DIR + os.sep)):  # not torchvision/
            return f"{os.path.basename(path)}:{line}"
    return ""


class _Tracer(fx.Tracer):
    def __init__(self, registry: ConverterRegistry) -> None:
        super().__init__()
        self.registry = registry
        self.record_stack_traces = True

    def is_leaf_module(self, m: torch.nn.Module, module_qualified_name: str) -> bool:
        return self.registry.module_converter(m) is not None

    def _filter_traceback_frames(self, frames: traceback.StackSummary) -> traceback.StackSummary:
        """A node's stack trace: the frames from the first ``forward`` on, as torch.fx keeps
        them, without fx's further filter of its own files (``uninteresting_files()`` imports
        torch._dynamo, torch._inductor and torch.export on first use: seconds of the first
        transpile in a process); ``_source_line`` skips torch's frames itself."""
        for i, frame in enumerate(frames):
            if frame.name == "forward":
                return traceback.StackSummary.from_list(list(frames)[i:])
        return traceback.StackSummary.from_list([])


@dataclass
class _Run:
    """Concrete values of one run of the traced graph."""

    values: dict[fx.Node, Any] = field(default_factory=dict)


class Builder:
    """What a converter uses to add IR: ``op``, ``const``, and facts about the current fx node."""

    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self.source: SourceInfo | None = None
        self.out_type: TensorType | None = None
        self.example_args: tuple = ()  # its arguments in the first run
        self.example_kwargs: dict = {}
        self.example_out: Any = None  # its result in the first run
        self.fx_node: fx.Node | None = None  # the fx node being converted
        self.other_args: tuple = ()  # its arguments in the second run
        self.batches: tuple[int, int] | None = None  # the two runs' batch sizes
        self._ref: str | None = None

    def op(
        self, name: str, inputs: Sequence[Value], out_type: TensorType | None = None, **attrs: Any
    ) -> Value:
        out_type = out_type or self.out_type
        if out_type is None:
            raise TranspileError(f"internal: no output type for {name} at {self.where()}")
        node = self.graph.make_node(name, list(inputs), out_type, attrs, self.source, self._hint())
        self.graph.nodes.append(node)
        return node.output

    def op_multi(
        self, name: str, inputs: Sequence[Value], out_types: Sequence[TensorType], **attrs: Any
    ) -> list[Value]:
        """A node with several outputs (e.g. rnn: the sequence and the final states)."""
        node = self.graph.make_node(
            name, list(inputs), out_types[0], attrs, self.source, self._hint()
        )
        for k, t in enumerate(out_types[1:], 1):
            v = Value(self.graph.fresh_name(f"{self._hint()}_{k}"), t, producer=node)
            node.outputs.append(v)
        self.graph.nodes.append(node)
        return list(node.outputs)

    def const(self, data: Any, hint: str = "const") -> Value:
        if isinstance(data, torch.Tensor):
            data = data.detach().cpu()
            if data.is_floating_point():
                data = data.float()
            data = data.numpy()
        arr = np.asarray(data)
        if arr.dtype == np.float64:
            arr = arr.astype(np.float32)
        return self.graph.add_constant(np.ascontiguousarray(arr), hint)

    def scalar(self, value: Any, like: Value | None = None) -> Value:
        dtype = np.float32
        if isinstance(value, bool | int) and like is not None and not like.type.is_float:
            dtype = np.dtype(like.type.dtype)
        return self.graph.add_constant(np.asarray(value, dtype=dtype), "scalar")

    def static(self, value: Any, what: str) -> Any:
        """``value`` with every element known; raise if it depends on a dynamic size."""
        if _contains_dynamic(value):
            raise TranspileError(
                f"{what} at {self.where()} depends on a dynamic input size; pass example_inputs "
                "with the sizes you need, or compute it from static sizes."
            )
        return value

    def where(self) -> str:
        return self.source.describe() if self.source else "<unknown>"

    def _hint(self) -> str:
        path = self.source.module_path if self.source else ""
        return re.sub(r"\W", "_", path) or "v"


def _contains_dynamic(value: Any) -> bool:
    if isinstance(value, _Dynamic):
        return True
    if isinstance(value, list | tuple):
        return any(_contains_dynamic(v) for v in value)
    if isinstance(value, dict):
        return any(_contains_dynamic(v) for v in value.values())
    return False


def _merge_static(a: Any, b: Any) -> Any:
    """A Python value seen in both runs: equal parts stay, differing parts become DYNAMIC."""
    if isinstance(a, tuple | list) and isinstance(b, tuple | list) and len(a) == len(b):
        merged = [_merge_static(x, y) for x, y in zip(a, b, strict=True)]
        return tuple(merged) if isinstance(a, tuple) else merged
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return DYNAMIC
    try:
        return a if type(a) is type(b) and a == b else DYNAMIC
    except Exception:  # noqa: BLE001 - unusual objects: not foldable
        return DYNAMIC


def _tensor_type(a: torch.Tensor, b: Any) -> TensorType:
    """The IR type of a traced tensor: dims that differ between the two runs are dynamic."""
    if isinstance(b, torch.Tensor) and b.dim() == a.dim():
        shape = tuple(int(x) if x == y else None for x, y in zip(a.shape, b.shape, strict=True))
    else:
        shape = tuple(int(x) for x in a.shape)
    dtype = "float32" if a.is_floating_point() else torch_dtype_name(a.dtype)
    return TensorType(shape, dtype)


def _is_tensorish(obj: Any) -> bool:
    return any(isinstance(x, torch.Tensor) for x in flatten(obj))


@dataclass
class ImportedModel:
    graph: Graph
    fx_graph: fx.Graph
    root: torch.nn.Module
    # shapes of the traced graph's flattened outputs in the two runs (example, other batch)
    output_shapes: tuple[list[tuple[int, ...]], list[tuple[int, ...]]] = ([], [])
    # set when the import made the batch static itself (PyTorch's unbatched conv form), with
    # the second run's inputs it used instead of the caller's
    batch: BatchSpec | None = None
    inputs_b: list[torch.Tensor] | None = None

    def run_values(self, inputs: Sequence[torch.Tensor]) -> dict[str, Any]:
        """Every fx node's value on ``inputs``, by node name (what an IR value's ``torch_ref``
        names): the PyTorch side of the per-layer diagnosis."""
        return {n.name: v for n, v in _run(self.fx_graph, self.root, inputs).values.items()}


def _get_attr(root: torch.nn.Module, target: str) -> Any:
    """``root``'s submodule, parameter, buffer or attribute at the dotted ``target``, looked up
    as data (``_modules``/``_parameters``/``_buffers`` first): a submodule may be named
    ``__init__`` or ``forward``, which ``getattr`` would answer with a method."""
    obj: Any = root
    for part in target.split("."):
        if isinstance(obj, torch.nn.Module):
            for table in (obj._modules, obj._parameters, obj._buffers):
                if part in table:
                    obj = table[part]
                    break
            else:
                obj = getattr(obj, part)
        else:
            obj = getattr(obj, part)
    return obj


def _map_tensors(fn: Callable[[torch.Tensor], Any], value: Any) -> Any:
    """``value`` with ``fn`` applied to every tensor in it (also inside tuples/lists)."""
    if isinstance(value, torch.Tensor):
        return fn(value)
    if isinstance(value, tuple | list):
        return type(value)(_map_tensors(fn, v) for v in value)
    return value


def _as_meta(value: Any) -> Any:
    """Tensors (also inside tuples/lists) -> storage-free "meta" tensors of the same shape/dtype."""
    return _map_tensors(lambda t: torch.empty_like(t, device="meta"), value)


class _NeedsValues(Exception):
    """A meta shape run reached a node that reads the values of a meta tensor."""


def _meta_call(module: torch.nn.Module, args: Any, kwargs: Any) -> Any:
    """``module(*args, **kwargs)`` with its parameters and buffers as meta tensors."""
    state = {
        name: torch.empty_like(t, device="meta")
        for name, t in [*module.named_parameters(), *module.named_buffers()]
    }
    return torch.func.functional_call(module, state, tuple(args), kwargs)


def _has_meta(value: Any) -> bool:
    return any(isinstance(t, torch.Tensor) and t.is_meta for t in flatten(value))


def _materialize(value: Any) -> Any:
    """Meta tensors (also in tuples/lists) -> uninitialized CPU tensors of their shape and
    dtype: for arguments of which a node reads only the shape, dtype or device."""
    return _map_tensors(lambda t: torch.empty(t.shape, dtype=t.dtype) if t.is_meta else t, value)


def _metadata_only_args(node: fx.Node) -> set[int] | None:
    """Positions of ``node``'s arguments of which it reads only metadata (all: None)."""
    if _is_shape_query(node):
        return None
    keep = _METADATA_ARGS.get(_op_name(node)) if node.op != "call_module" else None
    return set() if keep is None else {k for k in range(len(node.args)) if k not in keep}


def _run(
    fx_graph: fx.Graph,
    root: torch.nn.Module,
    inputs: Sequence[torch.Tensor],
    slim: set[fx.Node] | None = None,
    meta: set[fx.Node] | None = None,
) -> _Run:
    """Interpret the fx graph on concrete inputs (no GraphModule code generation).

    ``slim``: nodes whose tensors are replaced by storage-free meta tensors (shape and dtype
    kept) once their last user has run, so that the import's shape runs hold only the live
    activations, not every intermediate of the model at once.
    ``meta``: nodes computed on meta tensors from the start (shapes and dtypes, no arithmetic:
    the nodes whose values depend on the inputs' values, which the import reads only the shapes
    of). Raises ``_NeedsValues`` where a node outside ``meta`` would read such a tensor's
    values, or a node cannot run on meta tensors.
    """
    run = _Run()
    last_use: dict[fx.Node, fx.Node] = {}
    if slim:
        for node in fx_graph.nodes:
            for used in node.all_input_nodes:
                last_use[used] = node
    done_at: dict[fx.Node, list[fx.Node]] = {}
    for used, user in last_use.items():
        if used in slim and user.op != "output":
            done_at.setdefault(user, []).append(used)
    env = run.values
    inputs = list(inputs)
    n_params = sum(1 for n in fx_graph.nodes if n.op == "placeholder")
    if len(inputs) > n_params:
        raise TranspileError(
            f"example_inputs has {len(inputs)} tensors but forward() takes {n_params} input(s); "
            "pass one tensor per forward() argument."
        )

    def load(a: Any) -> Any:
        return fx.node.map_arg(a, lambda n: env[n])

    def load_real(node: fx.Node) -> tuple[Any, Any]:
        """The node's arguments, meta tensors read for their metadata only made zeros."""
        args, kwargs = load(node.args), load(node.kwargs)
        if not meta or node.op == "output" or not _has_meta((args, kwargs)):
            return args, kwargs
        metadata_only = _metadata_only_args(node)
        if metadata_only is None:
            return _materialize(args), _materialize(kwargs)
        if _has_meta(kwargs) or any(
            _has_meta(a) for k, a in enumerate(args) if k not in metadata_only
        ):
            raise _NeedsValues(node.name)
        return [_materialize(a) if k in metadata_only else a for k, a in enumerate(args)], kwargs

    def compute(node: fx.Node) -> Any:
        if meta and node in meta and node.op != "placeholder":
            args, kwargs = _as_meta(load(node.args)), _as_meta(load(node.kwargs))
            try:
                if node.op == "call_module":
                    return _meta_call(_get_attr(root, node.target), args, kwargs)
                if node.op == "call_function":
                    return node.target(*args, **kwargs)
                self_, *rest = args
                return getattr(self_, node.target)(*rest, **kwargs)
            except Exception as exc:  # noqa: BLE001 - the caller runs with values instead
                raise _NeedsValues(node.name) from exc
        args, kwargs = load_real(node)
        if node.op == "call_module":
            return _get_attr(root, node.target)(*args, **kwargs)
        if node.op == "call_function":
            return node.target(*args, **kwargs)
        self_, *rest = args
        return getattr(self_, node.target)(*rest, **kwargs)

    with torch.no_grad():
        for node in fx_graph.nodes:
            if node.op == "placeholder":
                if inputs:
                    env[node] = inputs.pop(0)
                elif node.args:
                    env[node] = node.args[0]
                else:
                    raise TranspileError(
                        f"forward() takes an input {node.target!r} that example_inputs does not "
                        "provide; pass one tensor per forward() argument."
                    )
            elif node.op == "get_attr":
                env[node] = _get_attr(root, node.target)
            elif node.op in ("call_module", "call_function", "call_method"):
                env[node] = compute(node)
            elif node.op == "output":
                env[node] = load(node.args[0])
            for used in done_at.get(node, ()):
                env[used] = _as_meta(env[used])
    return run


class _Root(torch.nn.Module):
    """Wraps a model that is a single convertible layer (e.g. a bare nn.ConvTranspose2d), so
    tracing records one call of it instead of stepping into its forward()."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input: Any) -> Any:
        return self.model(input)


def wrap_single_layer(model: torch.nn.Module, registry: ConverterRegistry) -> torch.nn.Module:
    """``model`` itself, or wrapped when it is one layer the registry converts whole."""
    if registry.module_converter(model) is None:
        return model
    params = list(inspect.signature(model.forward).parameters.values())
    required = [p for p in params if p.default is p.empty and p.kind == p.POSITIONAL_OR_KEYWORD]
    return _Root(model) if len(required) == 1 else model


def trace(model: torch.nn.Module, registry: ConverterRegistry) -> fx.Graph:
    try:
        params = inspect.signature(model.forward).parameters.values()
    except (TypeError, ValueError):
        params = []
    if any(p.kind == p.VAR_POSITIONAL for p in params):
        raise TranspileError(
            f"torch.fx could not trace {type(model).__name__}: forward() takes variable "
            "positional arguments (*args), which symbolic tracing sees as one input; use "
            "tracer='export' (tracer='auto' does)."
        )
    tracer = _Tracer(registry)
    try:
        return tracer.trace(model)
    except Exception as exc:  # noqa: BLE001 - any tracing failure becomes one clear message
        raise TranspileError(
            f"torch.fx could not trace {type(model).__name__}: {type(exc).__name__}: {exc}\n"
            "Symbolic tracing cannot follow Python control flow that depends on tensor values "
            "(e.g. `if x.sum() > 0`) or iterate over tensors. Make that code static, or move it "
            "out of forward()."
        ) from exc


def import_model(
    model: torch.nn.Module,
    inputs_a: Sequence[torch.Tensor],
    inputs_b: Sequence[torch.Tensor],
    *,
    registry: ConverterRegistry = DEFAULT_REGISTRY,
    fx_graph: fx.Graph | None = None,
) -> ImportedModel:
    """Trace ``model`` and import it; ``inputs_b`` differ from ``inputs_a`` in the dynamic dims."""

    if fx_graph is None:
        model = wrap_single_layer(model, registry)
        fx_graph = trace(model, registry)
    depends = _input_dependence(fx_graph)
    value_depends = _input_dependence(fx_graph, through_shapes=False)
    run_a = _shape_run(fx_graph, model, inputs_a, value_depends, None)
    unbatched = _unbatched_conv(fx_graph, model, run_a)
    batch = None
    if unbatched is not None and [x.shape for x in inputs_a] != [x.shape for x in inputs_b]:
        # PyTorch's unbatched conv form (C, *spatial): there is no batch axis to vary, the
        # leading axis is the channels the weight fixes. Static shapes, said in the report.
        batch = BatchSpec(static=int(inputs_a[0].shape[0]), why=unbatched)
        inputs_b = alternate_inputs(list(inputs_a), batch=batch)
    run_b = _shape_run(fx_graph, model, inputs_b, value_depends, inputs_a)

    # computed from static shapes only (e.g. a detection head's anchor grid): equal in both
    # runs, so a constant (a batch-sized result differs between the runs and stays dynamic)
    depends = {
        n
        for n in depends
        if n in value_depends or not _static_equal(run_a.values.get(n), run_b.values.get(n))
    }
    # ... or one sample repeated over the batch (EdgeNeXt's positional encoding, built from
    # torch.zeros(B, H, W)): a constant broadcast to the dynamic batch
    batch_const = {
        n
        for n in depends
        if n not in value_depends
        and _batch_repeated(run_a.values.get(n), run_b.values.get(n), inputs_a, inputs_b)
    }
    depends -= batch_const
    _precheck(fx_graph, model, registry, depends, run_a)

    graph = Graph()
    graph.meta["model_class"] = type(model).__name__
    # module path -> (class name, Python module of the class): the structured Keras writer
    # turns each class into a function (issue 13)
    graph.meta["modules"] = {
        path: (type(m).__name__, type(m).__module__) for path, m in model.named_modules()
    }
    for node in fx_graph.nodes:  # torch.export: the classes its module stack recorded
        for path, cls in (node.meta.get("nn_module_stack") or {}).values():
            name = cls if isinstance(cls, str) else f"{cls.__module__}.{cls.__qualname__}"
            module, _, short = str(name).rpartition(".")
            graph.meta["modules"].setdefault(str(path), (short, module))
    graph.meta["example_batch"] = int(inputs_a[0].shape[0]) if inputs_a else None
    varied = _varied_symbols(fx_graph, inputs_a, inputs_b)
    coincident = _coincident_numbers(fx_graph, run_a, run_b)
    b = Builder(graph)
    if inputs_a and inputs_b and inputs_a[0].dim() and inputs_b[0].dim():
        b.batches = (int(inputs_a[0].shape[0]), int(inputs_b[0].shape[0]))
    env: dict[fx.Node, Any] = {}
    modules = dict(model.named_modules())

    def arg(a: Any) -> Any:
        return fx.node.map_arg(a, lambda n: env[n])

    for node in fx_graph.nodes:
        a, bb = run_a.values.get(node), run_b.values.get(node)
        b.source = _source_info(node, modules)
        b.out_type = _tensor_type(a, bb) if isinstance(a, torch.Tensor) else None
        if node.op == "placeholder" and not isinstance(a, torch.Tensor):
            env[node] = a  # an optional forward() argument left at its default (None, False)
        elif node.op == "placeholder":
            if a.numel() == 0:
                raise TranspileError(
                    f"example input {node.target!r} has a zero-size shape {tuple(a.shape)}; "
                    "pass inputs with at least one element per dimension."
                )
            value = Value(graph.fresh_name("input"), b.out_type, torch_ref=node.name)
            graph.inputs.append(value)
            graph.input_names.append(str(node.target))
            env[node] = value
        elif node.op == "output":
            graph.outputs = _output_values(node, arg(node.args[0]), b)
        elif node in batch_const:
            const = b.const(a[:1], _attr_hint(node, "per_sample"))
            env[node] = b.op("broadcast_to", [const, graph.inputs[0]], shape=(None, *a.shape[1:]))
        elif not _is_tensorish(a) and (node in coincident or _follows_varied(node, varied)):
            # a size of the batch (torch.export's SymInt), even where the two runs give the
            # same value (s0 // 2 at batches 2 and 3); a size read off a tensor stays a DimRef
            env[node] = _symbolic_size(node, env, DYNAMIC)
        elif node not in depends:
            if isinstance(a, torch.Tensor) and _follows_varied(node, varied):
                raise TranspileError(
                    f"{_target_name(node)} at {_source_info(node, modules).describe()} builds a "
                    f"tensor whose shape {tuple(node.meta['val'].shape)} depends on the batch "
                    "size in a way the two shape runs do not show (equal at both batch sizes); "
                    "build it from the batch size directly, or use a static batch."
                )
            hint = _attr_hint(node, "const")
            env[node] = b.const(a, hint) if isinstance(a, torch.Tensor) else _merge_static(a, bb)
        elif not _is_tensorish(a):  # sizes, shapes, dims: folded (dynamic ones: DimRef)
            env[node] = _symbolic_size(node, env, _merge_static(a, bb))
        else:
            _check_same_rank(node, a, bb, b)
            fn = _converter(node, modules, registry)
            args, kwargs = arg(node.args), arg(node.kwargs)
            b.example_out = a  # the traced run's result (shape checks in converters)
            b.fx_node = node
            b.example_args = fx.node.map_arg(node.args, lambda n: run_a.values.get(n))
            b.example_kwargs = fx.node.map_arg(node.kwargs, lambda n: run_a.values.get(n))
            b.other_args = fx.node.map_arg(node.args, lambda n: run_b.values.get(n))
            try:
                if node.op == "call_module":
                    out = fn(b, modules[node.target], *args, **kwargs)
                else:
                    out = fn(b, *args, **kwargs)
            except TranspileError:
                raise
            except Exception as exc:  # noqa: BLE001 - name the node
                if _contains_dynamic((args, kwargs)):  # a converter that takes sizes as numbers
                    raise TranspileError(
                        f"{_target_name(node)} at {b.where()} takes a number that depends on a "
                        "dynamic input size (the batch size); compute it from static sizes, or "
                        "use a static batch."
                    ) from exc
                raise TranspileError(
                    f"converting {_target_name(node)} at {b.where()} failed: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
            if isinstance(out, Value):
                out.torch_ref = node.name
                _check_type(out, b, node)
            env[node] = out
    out = next(n for n in fx_graph.nodes if n.op == "output")
    shapes = [
        [tuple(t.shape) for t in flatten(run.values.get(out)) if isinstance(t, torch.Tensor)]
        for run in (run_a, run_b)
    ]
    return ImportedModel(graph, fx_graph, model, (shapes[0], shapes[1]), batch, list(inputs_b))


_CONV_FUNCTIONS = {f"conv{k}{n}d" for k in ("", "_transpose") for n in (1, 2, 3)}


def _symbols(value: Any) -> set:
    """The free symbols of a SymInt / SymFloat / SymBool (a tensor: of its shape)."""
    if isinstance(value, torch.Tensor):
        return set().union(*(_symbols(d) for d in value.shape)) if value.dim() else set()
    if isinstance(value, torch.SymInt | torch.SymFloat | torch.SymBool):
        return set(getattr(value.node.expr, "free_symbols", ()))
    return set()


def _varied_symbols(
    fx_graph: fx.Graph, inputs_a: Sequence[torch.Tensor], inputs_b: Sequence[torch.Tensor]
) -> set:
    """The symbols (torch.export's ``val`` metadata) of the input sizes that differ between
    the two shape runs: the batch, and the declared dynamic dims."""
    placeholders = [n for n in fx_graph.nodes if n.op == "placeholder"]
    out: set = set()
    for node, x, y in zip(placeholders, inputs_a, inputs_b, strict=False):
        val = node.meta.get("val")
        if not isinstance(val, torch.Tensor) or not isinstance(x, torch.Tensor):
            continue
        if not isinstance(y, torch.Tensor) or val.dim() != x.dim() or x.dim() != y.dim():
            continue
        for d, (p, q) in enumerate(zip(x.shape, y.shape, strict=True)):
            if p != q:
                out |= _symbols(val.shape[d])
    return out


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, torch.Tensor)


def _coincident_numbers(fx_graph: fx.Graph, run_a: _Run, run_b: _Run) -> set[fx.Node]:
    """Numbers computed from a size that differs between the two runs, whose own values happen
    to be equal in both (``x.shape[0] // 2`` at batches 2 and 3): folding them would build a
    model wrong at other batch sizes, so they stay ``DYNAMIC``. A size read directly
    (``x.shape[1]``, ``x.size(1)``) varies only where its value differs; arithmetic on numbers
    varies where an operand does."""
    varies: set[fx.Node] = set()
    out: set[fx.Node] = set()
    for node in fx_graph.nodes:
        a, bb = run_a.values.get(node), run_b.values.get(node)
        if node.op == "placeholder" or _is_tensorish(a):
            continue
        differs = _merge_static(a, bb) is DYNAMIC if _is_number(a) else False
        read = _is_shape_query(node) or (
            node.op == "call_function"
            and node.target is operator.getitem
            and node.args
            and isinstance(node.args[0], fx.Node)
            and not _is_tensorish(run_a.values.get(node.args[0]))
        )
        if differs:
            varies.add(node)
        elif (
            not read
            and node.op == "call_function"
            and _is_number(a)
            and any(i in varies for i in node.all_input_nodes)
        ):
            varies.add(node)
            out.add(node)
    return out


def _follows_varied(node: fx.Node, varied: set) -> bool:
    """``node``'s value (a size, or a tensor's shape) is an expression of a varied symbol."""
    return bool(varied) and bool(_symbols(node.meta.get("val")) & varied)


def _unbatched_conv(fx_graph: fx.Graph, model: torch.nn.Module, run: _Run) -> str | None:
    """Why the model has no batch axis, when a convolution in the example run takes PyTorch's
    unbatched form (an input of rank ``n + 1`` for an ``n``-d kernel); else None."""
    for node in fx_graph.nodes:
        if node.op == "call_module":
            module = _get_attr(model, str(node.target))
            if not isinstance(module, torch.nn.modules.conv._ConvNd):
                continue
            rank, name = len(module.kernel_size) + 2, type(module).__name__
        elif node.op == "call_function" and _op_name(node) in _CONV_FUNCTIONS:
            weight = run.values.get(node.args[1]) if len(node.args) > 1 else None
            if not isinstance(weight, torch.Tensor):
                continue
            rank, name = weight.dim(), _op_name(node)
        else:
            continue
        x = run.values.get(node.args[0]) if node.args else None
        if isinstance(x, torch.Tensor) and x.dim() == rank - 1:
            return (
                f"{name} at {node.name} takes PyTorch's unbatched form {tuple(x.shape)}, "
                "channels first with no batch axis"
            )
    return None


def _shape_run(
    fx_graph: fx.Graph,
    model: torch.nn.Module,
    inputs: Sequence[torch.Tensor],
    slim: set[fx.Node],
    example: Sequence[torch.Tensor] | None,
) -> _Run:
    """One of the import's two runs; a failure says which run it was. ``example``: None for
    the run on example_inputs, else the example inputs (the second run's inputs differ from
    them in the batch size, or, in the one-line form, the spatial sizes)."""
    try:
        try:  # the input-dependent values on meta tensors: their shapes, without the arithmetic
            return _run(fx_graph, model, inputs, slim=slim, meta=slim)
        except _NeedsValues:
            return _run(fx_graph, model, inputs, slim=slim)
    except TranspileError:
        raise
    except Exception as exc:  # noqa: BLE001
        what = f"{type(exc).__name__}: {str(exc)[:600]}"
        if example is None:
            raise TranspileError(
                f"running {type(model).__name__} on the example inputs failed: {what}\nCheck "
                "that example_inputs has the shapes and dtypes that forward() expects."
            ) from exc
        shapes = ", ".join(str(tuple(x.shape)) for x in inputs)
        raise TranspileError(
            f"the model ran on example_inputs, but our second run of {type(model).__name__}, on "
            f"random inputs of shape {shapes} (another batch size, to tell the dynamic "
            f"dimensions apart), failed: {what}\nThe model may not accept that batch size; "
            "pass example_inputs at the batch size you need, or make forward() independent "
            "of the batch size."
        ) from exc


def example_batch(graph: Graph) -> int | None:
    """The batch size of the example inputs the graph was imported with."""
    return graph.meta.get("example_batch")


def _check_same_rank(node: fx.Node, a: Any, bb: Any, b: Builder) -> None:
    """A result whose rank depends on the batch size (``x.squeeze()`` on a batch of 1) cannot
    be one model for every batch size."""
    if isinstance(a, torch.Tensor) and isinstance(bb, torch.Tensor) and a.dim() != bb.dim():
        raise TranspileError(
            f"{_target_name(node)} at {b.where()} gives a rank-{a.dim()} result "
            f"{tuple(a.shape)} at one batch size and rank {bb.dim()} {tuple(bb.shape)} at "
            "another (e.g. squeeze() removing a batch of 1): the converted model keeps the batch "
            "dimension dynamic; squeeze only the axes you mean (e.g. squeeze(-1)), or squeeze the "
            "batch outside the model."
        )


def _check_type(out: Value, b: Builder, node: fx.Node) -> None:
    if b.out_type is not None and out.type.shape != b.out_type.shape:
        raise TranspileError(
            f"internal: converter for {_target_name(node)} at {b.where()} produced shape "
            f"{out.type.shape}, torch gives {b.out_type.shape}"
        )


def _symbolic_size(node: fx.Node, env: dict[fx.Node, Any], merged: Any) -> Any:
    """``merged`` (a folded size or shape) with the dynamic entries that a shape query reads
    off an IR value as ``DimRef``s: ``x.size(1)``, ``x.shape`` (and an item of it),
    ``aten.sym_size(x, 1)``."""
    if not _contains_dynamic(merged):
        return merged
    name = _op_name(node)
    args = [env.get(a) if isinstance(a, fx.Node) else a for a in node.args]
    src = args[0] if args else None
    if isinstance(src, Value) and (
        name in ("size", "sym_size", "_sym_size")
        or (node.op == "call_function" and node.target is getattr and args[1:2] == ["shape"])
    ):
        dim = args[1] if len(args) > 1 and isinstance(args[1], int) else node.kwargs.get("dim")
        if isinstance(dim, int) and merged is DYNAMIC:
            axis = dim % src.rank
            return DimRef(src, axis) if src.shape[axis] is None else merged
        if dim is None and isinstance(merged, tuple | list) and len(merged) == src.rank:
            return tuple(
                DimRef(src, k) if m is DYNAMIC and src.shape[k] is None else m
                for k, m in enumerate(merged)
            )
    if name == "getitem" and isinstance(src, tuple | list) and isinstance(args[1], int):
        try:
            return src[args[1]] if is_dynamic(src[args[1]]) else merged
        except IndexError:
            return merged
    return merged


def _output_values(node: fx.Node, out: Any, b: Builder) -> list[Value]:
    leaves = flatten(out)
    values = []
    for leaf in leaves:
        if not isinstance(leaf, Value):
            raise TranspileError(
                f"forward() returns {type(leaf).__name__} {leaf!r}, which does not depend on the "
                "inputs; return only tensors computed from the inputs."
            )
        if b.graph.is_constant(leaf):
            raise TranspileError(
                "forward() returns a tensor that does not depend on the inputs; return it from "
                "outside the model instead."
            )
        values.append(leaf)
    return values


_SHAPE_QUERIES = {"size", "dim", "numel", "shape", "sym_size", "_sym_size", "sym_numel"}


def _is_shape_query(node: fx.Node) -> bool:
    if node.op == "call_function" and node.target is getattr:
        return len(node.args) > 1 and node.args[1] in ("shape", "ndim", "device", "dtype")
    return node.op in ("call_method", "call_function") and _op_name(node) in _SHAPE_QUERIES


# ops that read only the dtype/shape of some arguments: name -> positions whose values matter
_METADATA_ARGS = {
    "type_as": (0,),
    "new_full": (1, 2),
    "new_zeros": (1,),
    "new_ones": (1,),
    "new_empty": (1,),
    "zeros_like": (),
    "ones_like": (),
    "empty_like": (),
    "full_like": (1,),
}


def _op_name(node: fx.Node) -> str:
    t = node.target
    if node.op == "call_method":
        return str(t)
    if isinstance(t, torch._ops.OpOverload):
        return t.overloadpacket.__name__
    return getattr(t, "__name__", "")


def _input_dependence(fx_graph: fx.Graph, through_shapes: bool = True) -> set[fx.Node]:
    """Nodes whose value depends on the inputs; with ``through_shapes=False`` only those that
    depend on input *values* (shape and dtype queries cut the dependence)."""
    depends: set[fx.Node] = set()
    for node in fx_graph.nodes:
        inputs = node.all_input_nodes
        if not through_shapes:
            if _is_shape_query(node):
                continue
            keep = _METADATA_ARGS.get(_op_name(node)) if node.op != "call_module" else None
            if keep is not None:
                inputs = [a for k, a in enumerate(node.args) if k in keep]
                inputs = [a for a in inputs if isinstance(a, fx.Node)]
        if node.op == "placeholder" or any(i in depends for i in inputs):
            depends.add(node)
    return depends


def _batch_repeated(a: Any, b: Any, inputs_a: Sequence[Any], inputs_b: Sequence[Any]) -> bool:
    """``a`` and ``b`` (the two runs) hold one sample repeated over the runs' batch sizes."""
    if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)) or a.dim() == 0:
        return False
    if "meta" in (a.device.type, b.device.type) or not inputs_a or not inputs_b:
        return False
    n_a, n_b = inputs_a[0].shape[0], inputs_b[0].shape[0]
    if n_a == n_b or a.shape[0] != n_a or b.shape[0] != n_b or a.shape[1:] != b.shape[1:]:
        return False
    return bool(
        torch.equal(a[:1], b[:1])
        and torch.equal(a, a[:1].expand_as(a))
        and torch.equal(b, b[:1].expand_as(b))
    )


def _static_equal(a: Any, b: Any) -> bool:
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        if a.device.type == "meta" or b.device.type == "meta":
            return False
        return a.shape == b.shape and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, tuple | list) and isinstance(b, tuple | list):
        return len(a) == len(b) and all(_static_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return False
    try:
        return bool(a == b)
    except Exception:  # noqa: BLE001
        return False


def _attr_hint(node: fx.Node, default: str) -> str:
    """A constant's name: the torch attribute it comes from (``class_token``), where it is one
    parameter or buffer read directly or through one op (``expand``), else ``default``."""
    attrs = [n for n in (node, *node.all_input_nodes) if n.op == "get_attr"]
    if len(attrs) == 1:
        return re.sub(r"\W+", "_", str(attrs[0].target).rsplit(".", 1)[-1]).strip("_") or default
    return default


def _source_info(node: fx.Node, modules: dict[str, torch.nn.Module]) -> SourceInfo:
    if node.op == "call_module":
        path = str(node.target)
        mtype = type(modules[path]).__name__
        op = f"call_module {mtype}"
    else:
        stack = node.meta.get("nn_module_stack") or {}
        # values are (qualified path, class); keys of shared modules' later calls end in "@k"
        path, cls = next(reversed(stack.values())) if stack else ("", None)
        mod = modules.get(path)
        if isinstance(cls, str):  # torch.export records the class by its qualified name
            mtype = cls.rsplit(".", 1)[-1]
        else:
            mtype = type(mod).__name__ if mod is not None else getattr(cls, "__name__", "")
        op = f"{node.op} {_target_name(node)}"
        if isinstance(cls, str) and cls.startswith("torch.nn.modules."):
            op = f"call_module {mtype}"  # an op of a torch.nn layer: named after the layer
    return SourceInfo(path, mtype, op, _source_line(node))


def _converter(
    node: fx.Node, modules: dict[str, torch.nn.Module], registry: ConverterRegistry
) -> Callable[..., Any] | None:
    if node.op == "call_module":
        return registry.module_converter(modules[node.target])
    if node.op == "call_function":
        return registry.functions.get(node.target)
    if node.op == "call_method":
        return registry.methods.get(node.target)
    return None


def _precheck(
    fx_graph: fx.Graph,
    model: torch.nn.Module,
    registry: ConverterRegistry,
    depends: set[fx.Node],
    run_a: _Run,
) -> None:
    """Collect every unsupported op, then raise once."""
    modules = dict(model.named_modules())
    missing: list[dict[str, str]] = []
    for node in fx_graph.nodes:
        if node.op not in ("call_module", "call_function", "call_method"):
            continue
        if node not in depends or not _is_tensorish(run_a.values.get(node)):
            continue
        if _converter(node, modules, registry) is None:
            info = _source_info(node, modules)
            missing.append(
                {
                    "target": _target_name(node),
                    "module_path": info.module_path or "<top>",
                    "module_type": info.module_type,
                    "source_line": info.source_line,
                }
            )
    if missing:
        lines = [
            f"  - {m['target']} in {m['module_path']} ({m['module_type']})"
            + (f" at {m['source_line']}" if m["source_line"] else "")
            for m in missing
        ]
        raise UnsupportedOpError(
            f"{len(missing)} unsupported operation(s); nothing was written:\n"
            + "\n".join(lines)
            + "\nAdd converters with transpile(..., extra_converters=registry) (see README, "
            "'Adding a converter'), or rewrite these parts of the model.",
            missing,
        )
