"""The compile cache (nbx/cache.py): keys and hits, several processes filling one cache,
recovery from corrupted entries (ours, Numba's, the parser's), directory checks, nbxc cache.

Each test uses its own cache directory. New processes are what the cache is for, so the
end-to-end tests run kernels through subprocesses; the rest stays in-process and cheap.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import pickletools
import random
import shutil
import stat
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

import nbx
from nbx import cache

REPO = Path(__file__).resolve().parent.parent
posix_only = pytest.mark.skipif(os.name == "nt", reason="POSIX owners and modes")
KERNEL = "kernel f(x: f64[n]) -> f64[n]:\n    return 2*x + 1\n"
SCRIPT = """
import sys
import numpy as np
import nbx
m = nbx.load(sys.argv[1])
x = np.arange(7.0)
y = m.f(x)
assert y.tolist() == (2 * x + 1).tolist(), y
print("ok", m.f.specialize().path)
"""


def env_for(cache_dir: Path) -> dict:
    env = dict(os.environ, NBX_CACHE_DIR=str(cache_dir))
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [env.get("PYTHONPATH")])])
    env.pop("PYTHONWARNINGS", None)
    return env


def start(cache_dir: Path, kernel: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-W", "default", "-c", SCRIPT, str(kernel)],
                            env=env_for(cache_dir), cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def run_kernel(cache_dir: Path, kernel: Path) -> subprocess.CompletedProcess:
    proc = start(cache_dir, kernel)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert out.startswith("ok "), out
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def nbxc(cache_dir: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nbx", *args], env=env_for(cache_dir),
                          cwd=REPO, capture_output=True, text=True, timeout=120)


def pickles_are_whole(path: Path) -> bool:
    """Whether a file is a sequence of complete pickles (Numba's .nbi is two, .nbc one),
    checked opcode by opcode without unpickling anything."""
    data = path.read_bytes()
    stream = io.BytesIO(data)
    try:
        while stream.tell() < len(data):
            for _ in pickletools.genops(stream):
                pass
    except Exception:
        return False
    return len(data) > 0


def assert_consistent(cache_dir: Path) -> dict:
    """Every entry verifies, Numba's files are whole pickles, no temporary file is left."""
    modules = cache_dir / "modules"
    for path in modules.glob("nbx_*.py"):
        assert cache.verify_module(path), path
    numba = list((modules / "__pycache__").glob("nbx_*.nb[ic]"))
    assert numba and all(pickles_are_whole(p) for p in numba), numba
    leftovers = [p.name for p in cache_dir.rglob("*") if ".tmp" in p.name]
    assert not leftovers
    return {"modules": sorted(modules.glob("nbx_*.py")), "numba": numba}


@pytest.fixture
def kernel(tmp_path) -> Path:
    path = tmp_path / "twice.nbx"
    path.write_text(KERNEL)
    return path


@pytest.fixture
def cache_env(tmp_path, monkeypatch) -> Path:
    """An empty NBX_CACHE_DIR for in-process tests."""
    directory = tmp_path / "cache"
    monkeypatch.setenv("NBX_CACHE_DIR", str(directory))
    return directory


@pytest.fixture(scope="module")
def warm(tmp_path_factory) -> tuple[Path, Path]:
    """A cache filled by one process that ran the kernel (copied by the tests that need one)."""
    base = tmp_path_factory.mktemp("warm")
    path = base / "twice.nbx"
    path.write_text(KERNEL)
    run_kernel(base / "cache", path)
    return base / "cache", path


@pytest.fixture
def warm_copy(warm, tmp_path) -> tuple[Path, Path]:
    directory, kernel_path = warm
    copy = tmp_path / "cache"
    shutil.copytree(directory, copy)  # copy2 keeps mtimes: Numba's index stays fresh
    return copy, kernel_path


# keys, hits, writes ---------------------------------------------------------------------------
def test_entries_are_keyed_by_source_and_versions(cache_env, monkeypatch):
    source = "# a generated module\nX = 1\n"
    path, hit = cache.store_module(source, True)
    assert not hit and path.read_text() == source  # the file is kernel.source, byte for byte
    assert cache.store_module(source, True) == (path, True)
    assert path.parent == cache_env / "modules" and cache.verify_module(path)
    assert path.stem == cache.module_stem(source)
    assert cache.store_module(source + "Y = 2\n", True)[0] != path
    versions = dict(cache.versions(), numba="0.0.1")
    monkeypatch.setattr(cache, "versions", lambda: versions)  # an upgraded Numba
    upgraded, hit = cache.store_module(source, True)
    assert upgraded != path and not hit
    assert not list(cache_env.rglob(".tmp*"))


def test_cache_false_writes_outside_the_cache(cache_env):
    path, hit = cache.store_module("X = 1\n", False)
    assert not hit and not path.is_relative_to(cache_env) and path.read_text() == "X = 1\n"
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_a_corrupted_module_is_rebuilt_with_a_warning(cache_env):
    source = "X = 1\n" * 50
    path, _ = cache.store_module(source, True)
    numba_file = path.parent / "__pycache__" / f"{path.stem}.f-1.py311.nbi"
    numba_file.write_bytes(b"stale")
    path.write_bytes(path.read_bytes()[:100])  # truncated
    assert not cache.verify_module(path)
    with pytest.warns(cache.CacheWarning, match=f"{path.name} is corrupted"):
        assert cache.store_module(source, True) == (path, False)
    assert path.read_text() == source and not numba_file.exists()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert cache.store_module(source, True) == (path, True)


def test_import_checks_the_bytes_and_guards_numbas_cache(cache_env):
    source = "from numba import njit\n\n\n@njit(cache=True)\ndef g(x):\n    return 2 * x + 1\n"
    path, _ = cache.store_module(source, True)
    module = cache.import_module(path)
    # the guard sits on a private attribute of Numba's dispatcher: if a Numba release moves
    # it, this line says so (and corrupted Numba files would raise at the first call again)
    assert module.g._cache.load_overload.nbx_guarded
    assert module.g(1.0) == 3.0
    nbc = next((path.parent / "__pycache__").glob(f"{path.stem}.g-*.nbc"))
    nbc.write_bytes(nbc.read_bytes()[:40])
    del sys.modules[module.__name__]  # a fresh dispatcher, as in a new process
    again = cache.import_module(path)
    assert again is not module
    with pytest.warns(cache.CacheWarning, match="could not be read"):
        assert again.g(2.0) == 5.0
    assert all(pickles_are_whole(p) for p in (path.parent / "__pycache__").glob("nbx_*"))

    other, _ = cache.store_module(source + "\nY = 1\n", True)
    other.write_text("import os  # not what was stored\n")
    with pytest.raises(cache.CacheError, match="changed on disk"):
        cache.import_module(other)
    assert not other.exists()


def test_cached_object_survives_corruption_and_untrusted_directories(cache_env):
    builds = []

    def build():
        builds.append(1)
        return {"tables": list(range(100))}

    def get():
        return cache.cached_object("thing.pickle", build, pickle.dump, pickle.load)

    assert get() == {"tables": list(range(100))} and len(builds) == 1
    assert get() == {"tables": list(range(100))} and len(builds) == 1  # from the file
    path = cache_env / "thing.pickle"
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.warns(cache.CacheWarning, match="thing.pickle is corrupted"):
        assert get() == {"tables": list(range(100))} and len(builds) == 2
    assert get() and len(builds) == 2  # rewritten whole
    os.chmod(cache_env, 0o777)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing is read from there, so nothing to warn about
        assert get() and len(builds) == 3
    os.chmod(cache_env, 0o700)


# several processes, corrupted files -----------------------------------------------------------
def test_four_processes_fill_an_empty_cache_at_once(tmp_path, kernel):
    directory = tmp_path / "cache"
    procs = [start(directory, kernel) for _ in range(4)]
    results = [(p.communicate(timeout=300), p.returncode) for p in procs]
    for (out, err), code in results:
        assert code == 0, err
        assert out.startswith("ok "), out
        assert "CacheWarning" not in err and "Traceback" not in err, err
    files = assert_consistent(directory)
    assert len(files["modules"]) == 1  # one kernel, one specialisation
    assert len(list(directory.glob("parser-*.pickle"))) == 1


@pytest.mark.parametrize("damage", ["module", "nbi", "nbc", "parser"])
def test_a_damaged_file_is_rebuilt_by_the_next_process(warm_copy, damage):
    directory, kernel_path = warm_copy
    pattern = {"module": "modules/nbx_*.py", "nbi": "modules/__pycache__/nbx_*.nbi",
               "nbc": "modules/__pycache__/nbx_*.nbc", "parser": "parser-*.pickle"}[damage]
    targets = list(directory.glob(pattern))
    assert targets
    for path in targets:
        data = path.read_bytes()
        if damage == "nbc":
            data = random.Random(0).randbytes(len(data))  # garbage
        else:
            data = data[:len(data) // 2]  # truncated
        path.write_bytes(data)
    proc = run_kernel(directory, kernel_path)
    assert "CacheWarning" in proc.stderr, proc.stderr
    name = targets[0].name if damage in ("module", "parser") else targets[0].name.split(".")[0]
    assert name in proc.stderr
    assert_consistent(directory)
    for path in directory.glob("parser-*.pickle"):
        assert cache._unwrap(path.read_bytes()) is not None


# directories -----------------------------------------------------------------------------------
@posix_only
def test_created_directories_are_private_whatever_the_umask(tmp_path, monkeypatch):
    old = os.umask(0o377)  # mkdir(mode=0o700) alone would give 0o400
    try:
        monkeypatch.setenv("NBX_CACHE_DIR", str(tmp_path / "new" / "parents" / "cache"))
        path, _ = cache.store_module("X = 1\n", True)
        existing = tmp_path / "existing"
        existing.mkdir()
        monkeypatch.setenv("NBX_CACHE_DIR", str(existing / "cache"))
        root = cache.cache_root()
    finally:
        os.umask(old)
    for directory in (path.parent.parent, path.parent, path.parent / "__pycache__", root):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700, directory


@posix_only
@pytest.mark.parametrize("mode,who", [(0o777, "its group and all users"),
                                      (0o770, "its group"), (0o703, "all users")])
def test_a_directory_others_can_write_is_refused(cache_env, mode, who):
    cache_env.mkdir()
    os.chmod(cache_env, mode)
    with pytest.raises(cache.CacheError, match=f"writable by {who}") as info:
        cache.store_module("X = 1\n", True)
    assert isinstance(info.value, PermissionError)
    message = str(info.value)
    assert str(cache_env) in message and f"{mode:04o}" in message
    assert f"chmod 700 {cache_env}" in message and "NBX_CACHE_DIR" in message
    assert not (cache_env / "modules").exists()
    os.chmod(cache_env, 0o700)
    (cache_env / "modules").mkdir(mode=0o700)
    os.chmod(cache_env / "modules", 0o777)  # the subdirectory is checked too
    with pytest.raises(cache.CacheError, match="modules"):
        cache.store_module("X = 1\n", True)


@posix_only
def test_a_directory_owned_by_someone_else_is_refused(cache_env, monkeypatch):
    cache.cache_root()
    monkeypatch.setattr(cache, "_current_uid", lambda: os.getuid() + 1)
    with pytest.raises(cache.CacheError, match="owned by .*not by you"):
        cache.cache_root()


def test_the_decision_reads_owner_type_and_mode():
    def st(mode, uid):
        return os.stat_result((mode, 0, 0, 1, uid, 0, 4096, 0, 0, 0))

    here = Path("/somewhere/cache")
    assert cache.directory_problem(here, st(stat.S_IFDIR | 0o700, 1000), 1000) is None
    assert cache.directory_problem(here, st(stat.S_IFDIR | 0o755, 1000), 1000) is None
    assert cache.directory_problem(here, st(stat.S_IFDIR | 0o700, 1000), None) is None
    owned = cache.directory_problem(here, st(stat.S_IFDIR | 0o700, 1234), 1000)
    assert "owned by" in owned and "1234" in owned and "NBX_CACHE_DIR" in owned
    # root is not exempt: root importing a user's files would run that user's code
    assert "owned by" in cache.directory_problem(here, st(stat.S_IFDIR | 0o700, 1000), 0)
    assert "not a directory" in cache.directory_problem(here, st(stat.S_IFREG | 0o600, 7), 7)
    assert "writable" in cache.directory_problem(here, st(stat.S_IFDIR | 0o1777, 7), 7)


# nbxc cache -------------------------------------------------------------------------------------
def test_nbxc_cache_info_and_clear(warm_copy):
    directory, _ = warm_copy
    (directory / "notes.txt").write_text("not nbx's")
    proc = nbxc(directory, "cache", "info", "--json")
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert info["directory"] == str(directory) and info["modules"] == 1
    assert info["numba_files"] >= 2 and info["parser_files"] == 1
    assert info["modules_corrupted"] == 0 and info["temp_files"] == 0
    assert info["versions"]["numba"] and info["bytes"] > info["module_bytes"] > 0
    text = nbxc(directory, "cache", "info")
    assert text.returncode == 0 and f"directory:     {directory}" in text.stdout
    assert "modules:       1 (" in text.stdout
    cleared = nbxc(directory, "cache", "clear")
    assert cleared.returncode == 0, cleared.stderr
    assert cleared.stdout.strip() == f"removed 2 entries from {directory}"
    assert sorted(p.name for p in directory.rglob("*")) == ["notes.txt"]
    assert json.loads(nbxc(directory, "cache", "info", "--json").stdout)["modules"] == 0


@posix_only
def test_nbxc_refuses_a_shared_cache_with_exit_1(tmp_path):
    directory = tmp_path / "cache"
    directory.mkdir()
    os.chmod(directory, 0o777)
    proc = nbxc(directory, "cache", "info")
    assert proc.returncode == 1
    assert proc.stderr.startswith(f"nbxc: error: nbx refuses the cache directory {directory}")
    assert "Traceback" not in proc.stderr


def test_clear_and_info_of_a_missing_directory(cache_env):
    assert cache.clear_cache() == 0
    info = cache.cache_info()
    assert info["exists"] is False and info["modules"] == 0
    assert not cache_env.exists()


def test_nbx_compile_uses_the_cache(cache_env):
    import numpy as np
    module = nbx.compile(KERNEL, filename="twice.nbx")
    np.testing.assert_array_equal(module.f(np.arange(3.0)), [1.0, 3.0, 5.0])
    path = Path(module.f.specialize().path)
    assert path.parent == cache_env / "modules" and cache.verify_module(path)
