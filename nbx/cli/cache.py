"""nbxc cache info|clear: where the compile cache is and what it holds; emptying it."""

from __future__ import annotations

import json

from .. import cache


def add_parser(sub) -> None:
    p = sub.add_parser("cache", help="show or clear the compile cache",
                       description="The compile cache keeps generated modules and Numba's "
                       "machine code between runs, in NBX_CACHE_DIR or the user cache "
                       "directory.")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    info = actions.add_parser("info", help="the cache directory, its entries and their size",
                              description="Show the cache directory, how many modules and "
                              "Numba files it holds, their size, and the versions that key "
                              "new entries.")
    info.add_argument("--json", action="store_true", help="print a JSON object instead")
    info.set_defaults(run=run)
    clear = actions.add_parser("clear", help="remove nbx's files from the cache",
                               description="Remove the cached modules, their Numba files and "
                               "the parser tables (other files in the directory stay).")
    clear.set_defaults(run=run)


def _size(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB"):
        if n < 1024 or unit == "MiB":
            return f"{n} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"  # pragma: no cover (unreachable)


def run(args) -> int:
    if args.action == "clear":
        directory = cache.cache_dir()
        removed = cache.clear_cache()
        print(f"removed {removed} entr{'y' if removed == 1 else 'ies'} from {directory}")
        return 0
    info = cache.cache_info()
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    versions = ", ".join(f"{k} {v}" for k, v in info["versions"].items())
    notes = []
    if info["modules_other_versions"]:
        notes.append(f"{info['modules_other_versions']} from other versions")
    if info["modules_corrupted"]:
        notes.append(f"{info['modules_corrupted']} corrupted (rebuilt when next used)")
    lines = [
        ("directory", info["directory"] + ("" if info["exists"] else " (not created yet)")),
        ("modules", f"{info['modules']} ({_size(info['module_bytes'])})"
         + (f", {', '.join(notes)}" if notes else "")),
        ("numba files", f"{info['numba_files']} ({_size(info['numba_bytes'])})"),
        ("parser tables", str(info["parser_files"])),
        ("total", _size(info["bytes"])),
        ("versions", f"{versions} (tag {info['environment']})"),
    ]
    for key, value in lines:
        print(f"{key + ':':15}{value}")
    return 0
