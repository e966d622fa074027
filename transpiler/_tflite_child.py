"""TF's MLIR converter (GraphDef -> TFLite flatbuffer) in a process of its own.

Run by ``transpiler/tflite.py`` (``convert_in_child``) as a script, not imported: it uses the
standard library only and loads TF's two extension modules by path, without importing the
TensorFlow Python package (~0.5 s instead of seconds).

    python _tflite_child.py CONVERTER_API_SO FUNCTION_LIB_SO  < request > reply

request: four little-endian int64 lengths (model flags, converter flags, input GraphDef, debug
info; -1 for none), then those byte strings. reply: ``b"T"``, an int64 length and the
flatbuffer; or ``b"E"``, an int64 length and the error text (exit status 1).
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import struct
import sys

HEADER = struct.Struct("<4q")
LENGTH = struct.Struct("<q")


def load(name: str, path: str):
    """The extension module at ``path``, imported under ``name`` (its package not imported)."""
    loader = importlib.machinery.ExtensionFileLoader(name, path)
    spec = importlib.util.spec_from_file_location(name, path, loader=loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def read_exact(stream, n: int) -> bytes:
    data = stream.read(n)
    if len(data) != n:
        raise EOFError(f"expected {n} bytes of request, got {len(data)}")
    return data


def reply(kind: bytes, payload: bytes) -> None:
    out = sys.stdout.buffer
    out.write(kind + LENGTH.pack(len(payload)))
    out.write(payload)
    out.flush()


def main() -> int:
    try:
        converter = load("_pywrap_converter_api", sys.argv[1])
        functions = load("pywrap_function_lib", sys.argv[2])

        class Library(functions.PyFunctionLibrary):
            """No Python callbacks: the float conversions this runs call none."""

        stdin = sys.stdin.buffer
        lengths = HEADER.unpack(read_exact(stdin, HEADER.size))
        model_flags, converter_flags, graph_def, debug_info = (
            read_exact(stdin, n) if n >= 0 else None for n in lengths
        )
        blob = converter.Convert(
            model_flags, converter_flags, graph_def, False, debug_info, Library()
        )
    except BaseException as exc:  # noqa: BLE001 - reported; the parent converts in-process
        reply(b"E", f"{type(exc).__name__}: {exc}"[:2000].encode("utf-8", "replace"))
        return 1
    reply(b"T", bytes(blob))
    return 0


if __name__ == "__main__":
    sys.exit(main())
