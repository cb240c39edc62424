"""What every backend shares: the source builder, names, literals, and the module loader.

Generated code is a real file: written into the cache directory under a content hash and
imported from there, so that Numba's cache=True works and tracebacks show real lines.
"""

from __future__ import annotations

import hashlib
import importlib.util
import math
import os
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from ..dsl.types import dtype_name


class CodeBuilder:
    """Indentation-aware lines of Python source."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.level = 0

    def line(self, text: str = "") -> None:
        self.lines.append(("    " * self.level + text) if text else "")

    def extend(self, lines) -> None:
        for text in lines:
            self.line(text)

    @contextmanager
    def block(self, header: str):
        self.line(header)
        self.level += 1
        try:
            yield
        finally:
            self.level -= 1

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


NUMPY_CTOR = {"bool": "np.bool_", "i8": "np.int8", "i16": "np.int16", "i32": "np.int32",
              "i64": "np.int64", "u8": "np.uint8", "u16": "np.uint16", "u32": "np.uint32",
              "u64": "np.uint64", "f32": "np.float32", "f64": "np.float64"}


def ctor(dtype: np.dtype) -> str:
    """The NumPy scalar constructor of a dtype, as generated code spells it."""
    return NUMPY_CTOR[dtype_name(dtype)]


def literal(value, dtype: np.dtype) -> str:
    """A typed literal: re-printed from the checked value with repr(), never user text."""
    if dtype.kind == "b":
        return "True" if value else "False"
    if dtype.kind == "f":
        v = float(value)
        if math.isnan(v):
            text = "np.nan"
        elif math.isinf(v):
            text = "np.inf" if v > 0 else "-np.inf"
        else:
            text = repr(v)
        return f"{ctor(dtype)}({text})"
    return f"{ctor(dtype)}({int(value)!r})"


def cache_root() -> Path:
    """NBX_CACHE_DIR, else the platform's user cache directory; created private (0700)."""
    env = os.environ.get("NBX_CACHE_DIR")
    if env:
        root = Path(env)
    else:
        import platformdirs
        root = Path(platformdirs.user_cache_dir("nbx"))
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    return root


def write_module(source: str, cache: bool) -> Path:
    """Write generated source under its content hash (atomically) and return the path."""
    digest = hashlib.sha256(source.encode()).hexdigest()[:24]
    directory = cache_root() / "modules" if cache else Path(tempfile.mkdtemp(prefix="nbx-"))
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = directory / f"nbx_{digest}.py"
    if path.exists() and path.read_text() == source:
        return path
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".py")
    with os.fdopen(fd, "w") as f:
        f.write(source)
    os.replace(tmp, path)
    return path


def import_module(path: Path):
    """Import a generated module from its file (one module object per file per process)."""
    name = f"_nbx_generated.{path.stem}"
    if name in sys.modules and getattr(sys.modules[name], "__file__", None) == str(path):
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
