"""Names both backends derive from the IR: safe identifiers, printable text, node hints.

A Keras layer name and a TF name scope come from the same hint (the node's PyTorch module path,
or its op), so the two backends name a model's parts alike.
"""

from __future__ import annotations

import builtins
import keyword
import re
from collections.abc import Iterable

from transpiler.ir import Node

__all__ = ["Namespace", "sanitize_text", "node_hint", "torch_short"]


class Namespace:
    """Unique, safe Python identifiers (also valid Keras layer and TF scope names) from
    arbitrary strings. ``reserved`` names (and Python's builtins) are never handed out."""

    def __init__(self, reserved: Iterable[str] = ()) -> None:
        self._used: set[str] = set(reserved) | set(dir(builtins))  # no shadowed builtins

    def create(self, hint: str) -> str:
        base = re.sub(r"[^0-9A-Za-z_]+", "_", hint).strip("_")[:60] or "v"
        base = re.sub(r"_+", "_", base)
        if base[0].isdigit():
            base = f"m_{base}"
        if keyword.iskeyword(base) or keyword.issoftkeyword(base):
            base = f"{base}_"
        name, k = base, 1
        while name in self._used:
            name, k = f"{base}_{k}", k + 1
        self._used.add(name)
        return name


def sanitize_text(text: str, limit: int = 200) -> str:
    """Any string -> one printable line safe inside a comment or docstring."""
    s = text.encode("unicode_escape").decode("ascii").replace('"""', '\\"\\"\\"')
    return s if len(s) <= limit else s[: limit - 3] + "..."


def torch_short(torch_op: str) -> str:
    """ "call_function torch.flatten" -> "flatten"; "call_method Tensor.view" -> "view"."""
    return torch_op.rsplit(".", 1)[-1].rsplit(" ", 1)[-1].strip("_")


def node_hint(node: Node) -> str:
    """The name hint of a node's layer (Keras) or op scope (TF): its PyTorch module path, plus
    the function for a functional call; the direction for a layout transpose."""
    src = node.source
    if node.op == "transpose":
        perm = tuple(node.attrs["perm"])
        r = len(perm)
        if r >= 3 and perm == (0, *range(2, r), 1):
            return "to_channels_last"
        if r >= 3 and perm == (0, r - 1, *range(1, r - 1)):
            return "to_channels_first"
        return "transpose"
    if src is None:
        return node.op
    if not src.module_path:
        return torch_short(src.torch_op) or node.op
    if len(node.outputs) > 1 and src.torch_op.startswith("call_module"):
        return src.module_path  # a recurrent layer: its module
    if node.outputs[0].torch_ref is None:  # a helper node (explicit pad, BN scale, ...)
        return f"{src.module_path}_{node.op}"
    if src.torch_op.startswith("call_module"):
        return src.module_path
    return f"{src.module_path}_{torch_short(src.torch_op) or node.op}"
