#!/usr/bin/env python3
"""Long differential campaigns: random nbx programs (tests/programs.py) on a target against
the reference interpreter, in batches of Hypothesis runs; each failure is shrunk to a minimal
program and written to OUT/failure-N.txt (with its arguments), and the campaign goes on.

    python benchmarks/fuzz.py --programs 20000                     # cpu
    NUMBA_ENABLE_CUDASIM=1 python benchmarks/fuzz.py --target cuda --programs 2000
    python benchmarks/fuzz.py --target cuda --programs 5000         # on a GPU
    python benchmarks/fuzz.py --seconds 500 --no-shrink --seed 7    # time-boxed, one of many

For cuda-ufunc the programs have one result and no reductions (what that target takes).
--no-shrink records a failure as found (shrinking compiles hundreds of kernels and can take
many minutes); shrink it later by rerunning the same --seed without it.

A summary (programs, argument sets, outcomes, failures, time) is printed every batch and
written to OUT/summary.json. A failure becomes a regression test by adding its program and
arguments to tests/test_regressions.py.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
import warnings
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from hypothesis import HealthCheck, Phase, given, seed, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from programs import check, describe, inputs, programs, run  # noqa: E402

import nbx  # noqa: E402


def ufunc_refusal(program) -> bool:
    """The cuda-ufunc target refuses kernels a ufunc cannot express (no array, positions,
    broadcasting other than NumPy's trailing one): fine when the cuda target takes it."""
    try:
        nbx.compile(program.source, filename="fuzz.nbx", target="cuda")
    except nbx.CompileError:
        return False
    return True


def campaign(target: str, total: int, batch: int, out: Path, first_seed: int,
             seconds: float = float("inf"), shrink: bool = True) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    stats = Counter()
    failures = []
    start = time.time()
    batch_seed = first_seed
    strategy = programs(reductions=False, max_results=1) if target == "cuda-ufunc" \
        else programs()
    phases = list(Phase) if shrink else [p for p in Phase if p is not Phase.shrink]
    last = {}                    # what the batch's latest example was doing
    while stats["programs"] < total and time.time() - start < seconds:
        last.clear()

        @seed(batch_seed)
        @settings(max_examples=batch, deadline=None, database=None, phases=phases,
                  suppress_health_check=list(HealthCheck))
        @given(strategy, st.data())
        def one(program, data):
            stats["programs"] += 1
            try:
                kernel = nbx.compile(program.source, filename="fuzz.nbx", target=target,
                                     parallel=program.parallel)[program.name]
            except nbx.CompileError as err:
                if target == "cuda-ufunc" and ufunc_refusal(program):
                    stats["not a ufunc kernel (refused, as documented)"] += 1
                    return
                stats["refused by the checker"] += 1
                last.update(program=program, lengths={}, args=[], error=f"refused: {err}")
                raise
            for _ in range(2):
                lengths, args = data.draw(inputs(program))
                stats["argument sets"] += 1
                got, err = run(kernel, args)
                stats["ran" if err is None else f"raised {type(err).__name__}"] += 1
                try:
                    check(program, kernel, args)
                except Exception as exc:
                    last.update(program=program, lengths=lengths, args=args,
                                error=f"{type(exc).__name__}: {exc}")
                    raise

        try:
            one()
        except Exception as exc:  # noqa: BLE001  the shrunk failure: written down, then on
            stats["failures"] += 1
            path = out / f"failure-{stats['failures']}.txt"
            text = (f"{last.get('error', repr(exc))}\n(batch seed {batch_seed}, batch "
                    f"{batch}, target {target})\n\n"
                    + (describe(last["program"], last["lengths"], last["args"])
                       if "program" in last else traceback.format_exc()))
            path.write_text(text)
            failures.append(str(path))
            print(f"FAILURE -> {path}\n{text}\n", flush=True)
        batch_seed += 1
        elapsed = time.time() - start
        summary = {"target": target, "seeds": [first_seed, batch_seed - 1], **stats,
                   "failure files": failures, "seconds": round(elapsed),
                   "programs per second": round(stats["programs"] / elapsed, 2)}
        (out / "summary.json").write_text(json.dumps(summary, indent=1))
        print(json.dumps(summary), flush=True)
    return summary


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", default="cpu", choices=["cpu", "cuda", "cuda-ufunc"])
    parser.add_argument("--programs", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("fuzz-out"))
    parser.add_argument("--seconds", type=float, default=float("inf"),
                        help="start no batch after this many seconds")
    parser.add_argument("--no-shrink", dest="shrink", action="store_false")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    os.environ.setdefault("NBX_CACHE_DIR", str(args.out / "cache"))
    campaign(args.target, args.programs, args.batch, args.out, args.seed, args.seconds,
             args.shrink)


if __name__ == "__main__":
    main()
