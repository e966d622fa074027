"""The architecture's edges, checked from the source (ast, nothing imported):

- a backend imports only the IR and the shared backend helpers: never ``transpiler.api``, the
  frontend, or another backend package (``backends/__init__.py``, the registry, excepted);
- nothing outside the frontend imports a frontend's private names;
- ``transpile()`` stays a short sequence (validate, load, pipeline, write, verify).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BACKENDS = ROOT / "backends"
BACKEND_PACKAGES = sorted(p.name for p in BACKENDS.iterdir() if (p / "__init__.py").exists())


def _module_name(path: Path) -> str:
    """The dotted name a file under backends/ or transpiler/ is imported as."""
    if path.is_relative_to(BACKENDS):
        parts = ["transpiler", "backends", *path.relative_to(BACKENDS).with_suffix("").parts]
    else:
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[tuple[str, list[str]]]:
    """(absolute module, imported names) for every import in ``path``, relative ones resolved."""
    package = _module_name(path)
    if path.name != "__init__.py":
        package = package.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")
            if node.level:
                base = base[: len(base) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            found.append((module, [alias.name for alias in node.names]))
    return found


def _within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def test_backend_packages_exist():
    assert {"keras_source", "tf_graph"} <= set(BACKEND_PACKAGES)


def test_backends_import_only_the_ir_and_shared_helpers():
    bad = []
    for path in sorted(BACKENDS.rglob("*.py")):
        if path == BACKENDS / "__init__.py":
            continue  # the registry names every backend
        rel = path.relative_to(BACKENDS).parts
        own = rel[0] if len(rel) > 1 else None
        for module, names in _imports(path):
            targets = [module] + [f"{module}.{n}" for n in names]
            for target in targets:
                forbidden = _within(target, "transpiler.api") or _within(
                    target, "transpiler.frontend"
                )
                forbidden |= any(
                    _within(target, f"transpiler.backends.{pkg}")
                    for pkg in BACKEND_PACKAGES
                    if pkg != own
                )
                if forbidden:
                    bad.append(f"{path.relative_to(ROOT)} imports {target}")
    assert not bad, "\n".join(bad)


def test_no_private_frontend_names_outside_the_frontend():
    bad = []
    for path in sorted([*(ROOT / "transpiler").rglob("*.py"), *BACKENDS.rglob("*.py")]):
        if _within(_module_name(path), "transpiler.frontend"):
            continue
        for module, names in _imports(path):
            if _within(module, "transpiler.frontend"):
                bad += [f"{path.relative_to(ROOT)}: {module}.{n}" for n in names if n[0] == "_"]
    assert not bad, "\n".join(bad)


def test_star_imports_of_the_backends_work():
    import importlib

    for name in [
        "transpiler.backends",
        "transpiler.backends.base",
        "transpiler.backends._naming",
        "transpiler.backends._layouts",
        "transpiler.backends._tf_runtime",
        "transpiler.backends.keras_source",
        "transpiler.backends.tf_graph",
    ]:
        module = importlib.import_module(name)
        missing = [n for n in module.__all__ if not hasattr(module, n)]
        assert not missing, f"{name}.__all__ names {missing}, which it does not define"


def test_backends_registry():
    from transpiler.backends import BACKENDS, Backend

    assert list(BACKENDS) == ["keras", "tf"]  # iterating gives the names (the CLI's choices)
    assert all(isinstance(b, Backend) and b.name == n for n, b in BACKENDS.items())


def test_transpile_is_a_short_sequence():
    tree = ast.parse((ROOT / "transpiler" / "api.py").read_text(encoding="utf-8"))
    fn = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "transpile")
    body = fn.body[1:] if isinstance(fn.body[0], ast.Expr) else fn.body  # without the docstring
    lines = fn.end_lineno - body[0].lineno + 1
    assert lines <= 50, f"transpile()'s body is {lines} lines"
