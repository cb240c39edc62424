#!/usr/bin/env bash
# One run on the lent GPU machine, from the repository root: install the carried wheels, print the
# machine, run the CUDA test suites on the real GPU, the GPU benchmark, and compute-sanitizer on
# small runs of every nbx kernel (device memory errors only: the driver's own probes at start-up
# fail by design and are not reported). Every step runs even when an earlier one failed; a summary of
# all steps is printed last, and the exit code is 0 only when every step passed.
#
#   device run, carry [".whl"] (from `bash ../shared/device/wheels.sh interegular`: Lark's strict
#   mode needs interegular, which the script does not fetch by itself):
#       bash benchmarks/gpu_run.sh
#   options through the environment:
#       STEPS="setup env tests bench sanitize"   the steps to run (default: all, in this order)
#       BENCH_ARGS="--quick"                     extra arguments of benchmarks/gpu.py
#       TEST_TIMEOUT=420 BENCH_TIMEOUT=300 SANITIZE_TIMEOUT=90   seconds per step
#       SANITIZE_TOOLS="memcheck racecheck"      compute-sanitizer tools (default: memcheck)
# Logs and gpu.json go to $OUT (the device tool's output folder; /tmp/nbx-gpu-out elsewhere).
set -u

OUT=${OUT:-/tmp/nbx-gpu-out}
mkdir -p "$OUT"
STEPS=${STEPS:-"setup env tests bench sanitize"}
TEST_TIMEOUT=${TEST_TIMEOUT:-420}
BENCH_TIMEOUT=${BENCH_TIMEOUT:-300}
SANITIZE_TIMEOUT=${SANITIZE_TIMEOUT:-90}
SANITIZE_TOOLS=${SANITIZE_TOOLS:-memcheck}
BENCH_ARGS=${BENCH_ARGS:-}
PY=python3
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
# never let a program started here use NVLink multicast (KINDS.md); harmless on one GPU
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1

SUMMARY=()
FAILED=0
T_START=$(date +%s)

# record NAME RC SECONDS [NOTE]
record() {
    local status=ok
    if [ "$2" -ne 0 ]; then status="FAIL (rc $2)"; FAILED=1; fi
    [ "$2" -eq 124 ] && status="TIMEOUT"
    SUMMARY+=("$(printf '%-22s %-14s %5ss  %s' "$1" "$status" "$3" "${4:-}")")
}

wants() { case " $STEPS " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

banner() { echo; echo "=== $* ($(date -u +%H:%M:%S), $(( $(date +%s) - T_START ))s in)"; }

# --- setup: the wheels the machine lacks (numpy 2.4 for numba-cuda, lark, ...) ---------------
if wants setup; then
    banner "setup: carried wheels"
    t0=$(date +%s)
    if ls .whl/*.whl >/dev/null 2>&1; then
        $PY -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl \
            2>&1 | tail -5
        rc=${PIPESTATUS[0]}
        export PYTHONPATH="$PWD:/tmp/site"
        record "setup (wheels)" "$rc" $(( $(date +%s) - t0 )) "$(ls .whl | wc -l) wheels"
    else
        echo "no .whl/ folder: carry it (bash ../shared/device/wheels.sh interegular, then carry [\".whl\"])"
        record "setup (wheels)" 1 0 "no .whl/ carried"
    fi
fi
# a warm machine keeps /tmp/site from an earlier call that ran the setup step
[ -d /tmp/site ] && export PYTHONPATH="$PWD:/tmp/site"

# --- env: the machine and the versions that will actually be imported -------------------------
if wants env; then
    banner "env"
    t0=$(date +%s)
    {
        nvidia-smi 2>&1 || echo "nvidia-smi failed"
        echo
        uname -a
        $PY - <<'PY' 2>&1
import importlib, sys
print("python", sys.version.split()[0], sys.executable)
for name in ("numpy", "numba", "numba_cuda", "llvmlite", "cupy", "torch", "lark", "nbx"):
    try:
        m = importlib.import_module(name)
        print(f"{name:<11} {getattr(m, '__version__', '?'):<14} {getattr(m, '__file__', '')}")
    except Exception as e:  # noqa: BLE001
        print(f"{name:<11} MISSING: {type(e).__name__}: {e}")
try:
    from numba import cuda
    print("numba.cuda.is_available():", cuda.is_available())
    d = cuda.get_current_device()
    print("numba device:", d.name, "cc", d.compute_capability, "SMs", d.MULTIPROCESSOR_COUNT)
except Exception as e:  # noqa: BLE001
    print("numba.cuda:", type(e).__name__, e)
PY
        command -v compute-sanitizer || echo "compute-sanitizer: not on PATH"
        command -v nvcc && nvcc --version | tail -2
    } 2>&1 | tee "$OUT/env.txt"
    record "env" 0 $(( $(date +%s) - t0 ))
fi

# --- tests: the CUDA suites, on the real GPU ----------------------------------------------------
if wants tests; then
    banner "tests: tests/test_cuda*.py and the trust suites' GPU cases on the GPU"
    t0=$(date +%s)
    shopt -s nullglob
    suites=(tests/test_cuda*.py tests/test_concurrency.py tests/test_regressions.py
            tests/test_bad_calls.py)
    shopt -u nullglob
    if [ ${#suites[@]} -eq 0 ]; then
        echo "no tests/test_cuda*.py yet"
        record "tests (cuda)" 0 0 "no suites found"
    else
        env -u NUMBA_ENABLE_CUDASIM NBX_TEST_GPU=1 timeout -k 10 "$TEST_TIMEOUT" \
            $PY -m pytest -q -p no:cacheprovider "${suites[@]}" 2>&1 | tee "$OUT/pytest_cuda.log"
        rc=${PIPESTATUS[0]}
        record "tests (cuda)" "$rc" $(( $(date +%s) - t0 )) \
            "$(grep -E '(passed|failed|error)' "$OUT/pytest_cuda.log" | tail -1)"
    fi
fi

# --- bench: benchmarks/gpu.py --------------------------------------------------------------------
if wants bench; then
    banner "bench: benchmarks/gpu.py $BENCH_ARGS"
    t0=$(date +%s)
    # progress lines (stderr) go to a file; the table (stdout) to the console and gpu.log
    # shellcheck disable=SC2086
    timeout -k 10 "$BENCH_TIMEOUT" $PY benchmarks/gpu.py --json "$OUT/gpu.json" $BENCH_ARGS \
        2>"$OUT/gpu_progress.log" | tee "$OUT/gpu.log"
    rc=${PIPESTATUS[0]}
    if [ "$rc" -ne 0 ]; then
        echo "--- last lines of $OUT/gpu_progress.log:"
        tail -n 25 "$OUT/gpu_progress.log"
    fi
    record "bench (gpu.py)" "$rc" $(( $(date +%s) - t0 )) \
        "$(grep -E 'targets met' "$OUT/gpu.log" | tail -1 | cut -c1-60)"
fi

# --- sanitize: compute-sanitizer on small runs of every nbx kernel -------------------------------
if wants sanitize; then
    if command -v compute-sanitizer >/dev/null 2>&1; then
        for tool in $SANITIZE_TOOLS; do
            banner "sanitize: compute-sanitizer --tool $tool benchmarks/gpu.py --smoke"
            t0=$(date +%s)
            PYTORCH_NO_CUDA_MEMORY_CACHING=1 timeout -k 10 "$SANITIZE_TIMEOUT" \
                compute-sanitizer --tool "$tool" --error-exitcode 9 --print-limit 50 \
                --report-api-errors no \
                $PY benchmarks/gpu.py --smoke --quiet 2>&1 | tee "$OUT/sanitize_$tool.log" \
                | tail -n 40
            rc=${PIPESTATUS[0]}
            record "sanitize ($tool)" "$rc" $(( $(date +%s) - t0 )) \
                "$(grep -E 'ERROR SUMMARY|smoke:' "$OUT/sanitize_$tool.log" | tr '\n' ' ' \
                   | cut -c1-70)"
        done
    else
        banner "sanitize: no compute-sanitizer; the small checked runs without it"
        t0=$(date +%s)
        timeout -k 10 "$SANITIZE_TIMEOUT" $PY benchmarks/gpu.py --smoke --quiet 2>&1 \
            | tee "$OUT/smoke.log" | tail -n 40
        rc=${PIPESTATUS[0]}
        record "smoke (no sanitizer)" "$rc" $(( $(date +%s) - t0 )) \
            "$(grep -E 'smoke:' "$OUT/smoke.log" | tail -1)"
    fi
fi

# --- summary ------------------------------------------------------------------------------------
banner "summary"
if [ -f "$OUT/gpu.log" ]; then
    sed -n '/^Targets (issue 4):/,$p' "$OUT/gpu.log"
    echo
fi
printf '%s\n' "${SUMMARY[@]}" | tee "$OUT/summary.txt"
echo "total $(( $(date +%s) - T_START ))s; logs in $OUT: $(ls "$OUT" | tr '\n' ' ')"
exit $FAILED
