#!/usr/bin/env bash
# A time-boxed campaign of random programs on the lent GPU machine (16 cores): many
# benchmarks/fuzz.py processes at once, each with its own seeds, on cpu (one Numba thread
# each), cuda and cuda-ufunc; then one summary of them all in $OUT/fuzz-summary.json, every
# failure (not shrunk: rerun its batch seed without --no-shrink to shrink it) in
# $OUT/failures.txt, and the processes' logs in $OUT/logs.txt (the device tool brings back a
# few files only).
#
#   device run, carry [".whl"] (bash ../shared/device/wheels.sh interegular hypothesis sortedcontainers):
#       bash benchmarks/fuzz_device.sh
#   options through the environment:
#       SECONDS_EACH=470   start no batch after this (the device tool stops a command at 600 s)
#       CPU=10 CUDA=3 UFUNC=2 processes per target;  SEED=100000 first seed (process i: +1000 i)
set -u
OUT=${OUT:-/tmp/nbx-fuzz-out}
mkdir -p "$OUT"
SECONDS_EACH=${SECONDS_EACH:-470}
CPU=${CPU:-10}; CUDA=${CUDA:-3}; UFUNC=${UFUNC:-2}; SEED=${SEED:-100000}
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH="$PWD:/tmp/site"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
nproc

rm -rf /tmp/nbx-fuzz            # a warm machine keeps the last run's folders
start() {   # start TARGET I
    local dir="/tmp/nbx-fuzz/$1-$2"
    mkdir -p "$dir"
    NBX_CACHE_DIR="/tmp/nbx-cache-$1-$2" NUMBA_NUM_THREADS=1 \
        timeout $((SECONDS_EACH + 100)) python3 benchmarks/fuzz.py --target "$1" \
        --programs 1000000 --batch 25 --seconds "$SECONDS_EACH" --no-shrink \
        --seed $((SEED + 1000 * $2)) --out "$dir" > "$dir/log.txt" 2>&1 &
}
i=0
for _ in $(seq "$CPU"); do start cpu $i; i=$((i + 1)); done
for _ in $(seq "$CUDA"); do start cuda $i; i=$((i + 1)); done
for _ in $(seq "$UFUNC"); do start cuda-ufunc $i; i=$((i + 1)); done
wait

python3 - /tmp/nbx-fuzz "$OUT" <<'PY'
import json, sys
from collections import Counter
from pathlib import Path
runs, out = Path(sys.argv[1]), Path(sys.argv[2])
totals = {}
failures, logs = [], []
for path in sorted(runs.glob("*/summary.json")):
    s = json.loads(path.read_text())
    t = totals.setdefault(s["target"], Counter())
    for key, value in s.items():
        if isinstance(value, int) and key != "seconds":
            t[key] += value
    t["processes"] += 1
    t["failures"] += 0
    for f in s["failure files"]:
        print("failure:", f)
        failures.append(f"=== {f}\n{Path(f).read_text()}\n")
for path in sorted(runs.glob("*/log.txt")):
    logs.append(f"=== {path}\n{path.read_text()[-4000:]}\n")
(out / "failures.txt").write_text("".join(failures) or "no failures\n")
(out / "logs.txt").write_text("".join(logs))
summary = {target: {k: v for k, v in t.items() if k != "seeds"} for target, t in totals.items()}
(out / "fuzz-summary.json").write_text(json.dumps(summary, indent=1))
print(json.dumps(summary, indent=1))
PY
