"""The compile cache (part of load): generated source in, a verified file on disk and an
imported module out; also the parser tables that parse would otherwise rebuild per process.

Layout of cache_root() (NBX_CACHE_DIR, else the platform's user cache directory):

    modules/nbx_<sha256 of the source, 32 hex>_<environment tag>.py   generated source
    modules/__pycache__/nbx_<...>.<function>-<line>.pyXY.nbi / .N.nbc  Numba's cache of it
    parser-<key>.pickle     "nbx-sha256:<hex of the rest>" line, then Lark's pickled parser

Why it can be trusted:
- Importing a module or unpickling a file runs code, so every directory nbx reads from must
  be the user's own and writable by no one else; otherwise CacheError, never a silent import.
- A module's name holds the hash of its bytes (so the file is byte for byte `kernel.source`)
  and the environment tag hashes the nbx, Numba, llvmlite, NumPy and Python versions: an
  upgrade never reuses an entry. The bytes are checked when they are stored and the checked
  bytes are what gets compiled (no .pyc is read or written).
- Writes go to a temporary file first, then link (first writer wins, so Numba's source stamp,
  the file's mtime, stays put) or os.replace: another process never sees a torn file.
- A corrupted entry is discarded with a CacheWarning and rebuilt. Numba raises at the first
  call on an unreadable .nbi/.nbc (its loader only expects a missing file): import_module
  makes each dispatcher's cache load discard the entry's Numba files and compile instead.
"""

from __future__ import annotations

import atexit
import hashlib
import importlib.machinery
import importlib.util
import io
import json
import os
import platform
import re
import shutil
import stat
import sys
import tempfile
import threading
import warnings
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import IO, TypeVar

T = TypeVar("T")

_STEM = re.compile(r"nbx_([0-9a-f]{32})_([0-9a-f]{12})")
_BLOB_MAGIC = b"nbx-sha256:"
_PACKAGE = "_nbx_generated"       # sys.modules prefix of generated modules
_IMPORT_LOCK = threading.Lock()


class CacheError(PermissionError):
    """nbx refuses to use its cache directory (owned by someone else, writable by others, not
    a directory) or an entry in it: importing from there could run someone else's code."""


class CacheWarning(UserWarning):
    """A cache entry was unreadable or corrupted; nbx discarded it and rebuilt it."""


# the directory ------------------------------------------------------------------------------
def cache_dir() -> Path:
    """Where the cache is (NBX_CACHE_DIR, else the user cache directory); touches nothing."""
    env = os.environ.get("NBX_CACHE_DIR")
    if env:
        return Path(env).expanduser().absolute()
    import platformdirs
    return Path(platformdirs.user_cache_dir("nbx"))


def cache_root() -> Path:
    """The cache directory, created private (0700) if missing, refused (CacheError) if it is
    not the user's own or is writable by group or others."""
    return _private_dir(cache_dir())


def _modules_dir() -> Path:
    modules = _private_dir(cache_root() / "modules")
    _private_dir(modules / "__pycache__")  # Numba's files are pickles: also ours alone
    return modules


def _current_uid() -> int | None:
    """The user the checks compare owners with (a function, so tests can pretend)."""
    return os.getuid() if hasattr(os, "getuid") else None


def directory_problem(path: Path, st: os.stat_result, uid: int | None) -> str | None:
    """Why a directory must not be trusted with code nbx imports, or None if it can be."""
    if not stat.S_ISDIR(st.st_mode):
        return (f"nbx cannot use {path} as its cache directory: it is not a directory. "
                f"Remove it, or set NBX_CACHE_DIR to another directory.")
    if uid is not None and st.st_uid != uid:
        return (f"nbx refuses the cache directory {path}: it is owned by {_user(st.st_uid)}, "
                f"not by you ({_user(uid)}), so modules imported from it could run someone "
                f"else's code. Set NBX_CACHE_DIR to a directory of your own.")
    if st.st_mode & 0o022:
        who = {0o020: "its group", 0o002: "all users"}.get(st.st_mode & 0o022,
                                                            "its group and all users")
        mode = stat.S_IMODE(st.st_mode)
        return (f"nbx refuses the cache directory {path}: it is writable by {who} (mode "
                f"{mode:04o}, {stat.filemode(st.st_mode)}), so modules imported from it could "
                f"run someone else's code. Make it private with `chmod 700 {path}`, or set "
                f"NBX_CACHE_DIR to a private directory.")
    return None


def _user(uid: int) -> str:
    try:
        import pwd
        return f"user {pwd.getpwuid(uid).pw_name!r} (uid {uid})"
    except (ImportError, KeyError):
        return f"uid {uid}"


def _check_private(path: Path) -> None:
    if os.name == "nt":  # no POSIX owner and mode bits; the user profile's ACLs apply
        return
    problem = directory_problem(path, os.stat(path), _current_uid())
    if problem:
        raise CacheError(problem)


def _private_dir(path: Path) -> Path:
    """Create `path` with mode 0700 if missing (parents as usual), then check it."""
    if not path.is_dir():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            path.mkdir(mode=0o700)
        except FileExistsError:  # another process made it, or it is a file: the check says
            pass
        else:
            if os.name != "nt":
                os.chmod(path, 0o700)  # mkdir's mode went through the umask
    _check_private(path)
    return path


# keys ---------------------------------------------------------------------------------------
@lru_cache(maxsize=1)
def versions() -> dict[str, str]:
    """Everything besides the source that decides what a cached module compiles to."""
    import llvmlite
    import numba
    import numpy

    from . import __version__
    return {"nbx": __version__, "numba": numba.__version__, "llvmlite": llvmlite.__version__,
            "numpy": numpy.__version__,
            "python": f"{platform.python_implementation()} {platform.python_version()}"}


def environment_tag() -> str:
    text = json.dumps(versions(), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _content_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:32]


def module_stem(source: str) -> str:
    """The file name (without .py) of a generated module: its content hash and environment."""
    return f"nbx_{_content_hash(source.encode())}_{environment_tag()}"


def verify_module(path: Path, data: bytes | None = None) -> bool:
    """Whether a cache entry's bytes still hash to the name they were stored under."""
    match = _STEM.fullmatch(Path(path).stem)
    if match is None:
        return False
    if data is None:
        try:
            data = Path(path).read_bytes()
        except OSError:
            return False
    return _content_hash(data) == match.group(1)


# storing ------------------------------------------------------------------------------------
def store_module(source: str, cache: bool) -> tuple[Path, bool]:
    """Write generated source under its key and return (path, hit): hit is True when the cache
    already held this exact module. A corrupted entry is replaced, with a CacheWarning.
    Without `cache`, the module goes into a fresh private directory removed at exit."""
    data = source.encode()
    stem = module_stem(source)
    if not cache:
        directory = Path(tempfile.mkdtemp(prefix="nbx-"))  # 0700, ours alone: write directly
        atexit.register(shutil.rmtree, directory, True)
        path = directory / f"{stem}.py"
        path.write_bytes(data)
        return path, False
    path = _modules_dir() / f"{stem}.py"
    found = _read(path)
    if found == data:
        return path, True
    if found is not None:
        _warn(f"nbx cache entry {path} is corrupted ({len(found)} bytes, expected "
              f"{len(data)}; its content does not match its hash); discarding it and "
              f"writing it again")
        discard_numba_files(path)
    _publish(path, data, replace=found is not None)
    return path, False


write_module = store_module  # the name the backends use


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def _publish(path: Path, data: bytes, *, replace: bool) -> None:
    """Make `path` hold `data` without ever exposing a partial file: write a temporary file
    in the same directory, then hard-link it into place (if someone else got there first
    with the same bytes, theirs stays) or, to replace a bad file, os.replace it."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        if not replace:
            try:
                os.link(tmp, path)
                return
            except FileExistsError:
                if _read(path) == data:  # another process wrote the same entry
                    return
            except (OSError, NotImplementedError):  # no hard links on this file system
                pass
        os.replace(tmp, path)
    finally:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass


def _warn(message: str) -> None:
    warnings.warn(message, CacheWarning, stacklevel=3)


# importing ----------------------------------------------------------------------------------
class _VerifiedLoader(importlib.machinery.SourceFileLoader):
    """Compiles exactly the bytes nbx checked; reads and writes no .pyc (CPython raises at
    import on a .pyc with a valid header and a torn body: importlib _bootstrap_external.py,
    get_code -> _compile_bytecode -> marshal.loads, outside its try)."""

    def __init__(self, fullname: str, path: str, data: bytes):
        super().__init__(fullname, path)
        self._data = data

    def get_code(self, fullname):
        return self.source_to_code(self._data, self.path)


def import_module(path: Path):
    """Import a generated module from its file (one module object per file per process),
    after checking a cache entry's bytes against its name; Numba's cache loads of its
    functions are guarded (see _guard_numba_cache)."""
    path = Path(path)
    name = f"{_PACKAGE}.{path.stem}"
    with _IMPORT_LOCK:
        module = sys.modules.get(name)
        if module is not None and getattr(module, "__file__", None) == str(path):
            return module
        data = path.read_bytes()
        if _STEM.fullmatch(path.stem) and not verify_module(path, data):
            discard_numba_files(path)
            path.unlink(missing_ok=True)
            raise CacheError(f"nbx cache entry {path} changed on disk after nbx wrote it "
                             f"(another program or a disk problem); it was removed, so running "
                             f"again rebuilds it")
        loader = _VerifiedLoader(name, str(path), data)
        spec = importlib.util.spec_from_file_location(name, path, loader=loader)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            loader.exec_module(module)
        except BaseException:
            del sys.modules[name]
            raise
        _guard_numba_cache(module, path)
        return module


def _guard_numba_cache(module, path: Path) -> None:
    """Make each Numba dispatcher of the module survive an unreadable cache file.

    Numba 0.68 reads its index and data files with bare pickle.load/loads and only expects a
    missing file (numba/core/caching.py: IndexDataCacheFile._load_index catches only
    FileNotFoundError, .load only OSError around _load_data; Cache.load_overload does not
    catch, and Dispatcher.compile calls it unguarded). A truncated or garbled .nbi/.nbc thus
    raises UnpicklingError, EOFError, UnicodeDecodeError or LLVM's "bitcode parsing error" at
    the kernel's first call, in every process, until the files are deleted. The wrapper turns
    that into: warn, delete the entry's Numba files, return None (a cache miss), so Numba
    compiles and saves fresh files. It uses the dispatcher's private `_cache` attribute;
    tests/test_cache.py checks that it is installed, so a Numba change shows up there.
    """
    try:
        from numba.core.caching import NullCache
        from numba.core.dispatcher import Dispatcher
    except ImportError:
        return
    for value in vars(module).values():
        if not isinstance(value, Dispatcher):
            continue
        cache = getattr(value, "_cache", None)
        load = getattr(cache, "load_overload", None)
        if cache is None or isinstance(cache, NullCache) or load is None \
                or getattr(load, "nbx_guarded", False):
            continue
        cache.load_overload = _recovering_load(load, Path(cache.cache_path), path)


def _recovering_load(load, numba_dir: Path, path: Path):
    def load_overload(sig, target_context):
        try:
            return load(sig, target_context)
        except Exception as err:  # any failure to read Numba's files means: compile again
            removed = discard_numba_files(path, numba_dir)
            reason = f"{type(err).__name__}: {err}".splitlines()[0][:200]
            warnings.warn(f"nbx: Numba's cache files for {path.name} in {numba_dir} could not "
                          f"be read ({reason}); removed {removed} file(s), compiling again",
                          CacheWarning, stacklevel=2)
            return None
    load_overload.nbx_guarded = True
    return load_overload


def numba_files(path: Path, numba_dir: Path | None = None) -> list[Path]:
    """Numba's index, data and leftover temporary files for one generated module."""
    directory = numba_dir if numba_dir is not None else Path(path).parent / "__pycache__"
    stem = Path(path).stem
    try:
        names = os.listdir(directory)
    except (FileNotFoundError, NotADirectoryError):
        return []
    return [directory / n for n in names if n.startswith(stem + ".")
            and (n.endswith((".nbi", ".nbc")) or ".nbi.tmp." in n or ".nbc.tmp." in n)]


def discard_numba_files(path: Path, numba_dir: Path | None = None) -> int:
    """Delete Numba's cache files for one generated module; how many were removed."""
    removed = 0
    for file in numba_files(path, numba_dir):
        try:
            file.unlink()
            removed += 1
        except FileNotFoundError:  # another process cleaned up first
            pass
    return removed


# other cached objects -----------------------------------------------------------------------
def cached_object(name: str, build: Callable[[], T], dump: Callable[[T, IO[bytes]], None],
                  load: Callable[[IO[bytes]], T]) -> T:
    """An object slow to build (the parser tables), kept as one file `name` in the cache:
    a `nbx-sha256:<hex>` line, then `dump`'s bytes. A file that fails its hash or `load` is
    discarded with a CacheWarning and built again; if the directory cannot be used (missing
    rights, or refused with CacheError) the object is built in memory, and nothing is read."""
    try:
        path = cache_root() / name
        raw = _read(path)
    except OSError:
        return build()
    if raw is not None:
        payload = _unwrap(raw)
        if payload is None:
            problem = "its content does not match its hash"
        else:
            try:
                return load(io.BytesIO(payload))
            except Exception as err:
                problem = f"{type(err).__name__}: {err}".splitlines()[0][:200]
        _warn(f"nbx cache file {path} is corrupted ({problem}); discarding it and building "
              f"it again")
    value = build()
    buffer = io.BytesIO()
    dump(value, buffer)
    payload = buffer.getvalue()
    header = _BLOB_MAGIC + hashlib.sha256(payload).hexdigest().encode() + b"\n"
    try:
        _publish(path, header + payload, replace=True)
    except OSError:  # a read-only cache: the object still works
        pass
    return value


def _unwrap(raw: bytes) -> bytes | None:
    header, _, payload = raw.partition(b"\n")
    if not header.startswith(_BLOB_MAGIC):
        return None
    if hashlib.sha256(payload).hexdigest().encode() != header[len(_BLOB_MAGIC):]:
        return None
    return payload


# nbxc cache ---------------------------------------------------------------------------------
def _files(root: Path) -> dict[str, list[Path]]:
    """nbx's own files in the cache, by kind (anything else there is left alone)."""
    kinds: dict[str, list[Path]] = {"modules": [], "numba": [], "parser": [], "temp": [],
                                    "other": []}
    modules = root / "modules"
    for directory, sub in ((root, "parser"), (modules, "modules"),
                           (modules / "__pycache__", "numba")):
        try:
            names = sorted(os.listdir(directory))
        except (FileNotFoundError, NotADirectoryError):
            continue
        for n in names:
            if n.startswith(".tmp-"):
                kinds["temp"].append(directory / n)
            elif sub == "parser" and n.startswith("parser-") \
                    and n.endswith((".pickle", ".lark")):  # .lark: Lark's own format, before
                kinds["parser"].append(directory / n)
            elif sub == "modules" and n.startswith("nbx_") and n.endswith(".py"):
                kinds["modules"].append(directory / n)
            elif sub == "numba" and n.startswith("nbx_"):
                kind = "temp" if ".tmp." in n else "numba" if n.endswith((".nbi", ".nbc")) \
                    else "other"  # e.g. a .pyc of an older nbx
                kinds[kind].append(directory / n)
    return kinds


def cache_info() -> dict:
    """What the cache holds: directory, entries, bytes, Numba's files, versions. Refuses
    (CacheError) a directory it would refuse to import from; a missing one is empty."""
    root = cache_dir()
    exists = root.exists()
    if exists:
        _check_private(root)
        for sub in (root / "modules", root / "modules" / "__pycache__"):
            if sub.exists():
                _check_private(sub)
    files = _files(root)
    tag = environment_tag()

    def size(paths: list[Path]) -> int:
        total = 0
        for p in paths:
            try:
                total += p.stat().st_size
            except FileNotFoundError:
                pass
        return total

    current = [p for p in files["modules"] if p.stem.endswith("_" + tag)]
    corrupt = [p for p in files["modules"] if _STEM.fullmatch(p.stem) and not verify_module(p)]
    return {
        "directory": str(root),
        "exists": exists,
        "modules": len(files["modules"]),
        "modules_other_versions": len(files["modules"]) - len(current),
        "modules_corrupted": len(corrupt),
        "numba_files": len(files["numba"]),
        "parser_files": len(files["parser"]),
        "temp_files": len(files["temp"]),
        "bytes": sum(size(v) for v in files.values()),
        "module_bytes": size(files["modules"]),
        "numba_bytes": size(files["numba"]),
        "environment": tag,
        "versions": dict(versions()),
    }


def clear_cache() -> int:
    """Remove nbx's files from the cache (modules with their Numba files, parser tables,
    leftover temporary files): the number of entries (modules and parser files) removed.
    Other files stay; a missing directory is already clear."""
    root = cache_dir()
    if not root.exists():
        return 0
    _check_private(root)
    files = _files(root)
    removed = 0
    for kind, paths in files.items():
        for p in paths:
            try:
                p.unlink()
            except FileNotFoundError:
                continue
            removed += kind in ("modules", "parser")
    for directory in (root / "modules" / "__pycache__", root / "modules"):
        try:
            directory.rmdir()  # only if empty
        except OSError:
            pass
    return removed
