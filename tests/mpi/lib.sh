# Helpers for the mpirun integration tests (modelled on IOR's test-lib.sh).
# Sourced by tests/mpi/run.sh. Each case runs with a timeout and keeps its
# log under $LOGDIR; a failing case prints the tail of its log.

: "${BIN:=./adamps}"
: "${CASE_TIMEOUT:=180}"
LOGDIR=${LOGDIR:-$(mktemp -d /tmp/adamps-mpitest.XXXXXX)}
PASS=0
FAIL=0
FAILED=()

MPIRUN_FLAGS=(--oversubscribe --bind-to none)
if [ "$(id -u)" -eq 0 ]; then
    MPIRUN_FLAGS+=(--allow-run-as-root)
fi
# Quiet Open MPI's warnings about missing network interfaces in containers.
MPIRUN_FLAGS+=(--mca btl_base_warn_component_unused 0)
if [ "${SAN:-0}" = 1 ]; then
    # Open MPI's own allocations show up as leaks at exit from plugin frames
    # no suppression can name; memory errors are still caught.
    export ASAN_OPTIONS=detect_leaks=0:abort_on_error=0
    MPIRUN_FLAGS+=(-x ASAN_OPTIONS)
fi
# One BLAS thread per rank: ranks already share the cores.
export OPENBLAS_NUM_THREADS=1
MPIRUN_FLAGS+=(-x OPENBLAS_NUM_THREADS)

# run_np NAME N ARGS...: runs `mpirun -np N $BIN ARGS...` into $LOGDIR/NAME.log;
# sets RC to its exit status (124 on timeout).
run_np() {
    local name=$1 np=$2
    shift 2
    LOG="$LOGDIR/$name.log"
    timeout --kill-after=10 "$CASE_TIMEOUT" mpirun "${MPIRUN_FLAGS[@]}" -np "$np" "$BIN" "$@" \
        >"$LOG" 2>&1
    RC=$?
}

pass() {
    PASS=$((PASS + 1))
    echo "ok   $1"
}

fail() {
    FAIL=$((FAIL + 1))
    FAILED+=("$1")
    echo "FAIL $1: $2"
    if [ -n "${LOG:-}" ] && [ -f "$LOG" ]; then
        tail -n 15 "$LOG" | sed 's/^/     | /'
    fi
}

# final_field KEY: the value of KEY=... on the log's "final" line.
final_field() {
    grep '^final ' "$LOG" | tail -1 | tr ' ' '\n' | grep "^$1=" | cut -d= -f2
}

# ge A B: A >= B as floats.
ge() {
    awk -v a="$1" -v b="$2" 'BEGIN { exit !(a != "" && a + 0 >= b + 0) }'
}

summary() {
    echo "mpi: $PASS passed, $FAIL failed"
    if [ "$FAIL" -ne 0 ]; then
        echo "failed cases: ${FAILED[*]} (logs in $LOGDIR)" >&2
        return 1
    fi
    rm -rf "$LOGDIR"
}
