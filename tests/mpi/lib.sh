# Helpers for the mpirun integration tests (modelled on IOR's test-lib.sh).
# Sourced by tests/mpi/run.sh. Each case runs with a timeout and keeps its
# log under $LOGDIR; a failing case prints the tail of its log.

: "${BIN:=./adamps}"
: "${CASE_TIMEOUT:=180}"
LOGDIR=${LOGDIR:-$(mktemp -d /tmp/adamps-mpitest.XXXXXX)}
mkdir -p "$LOGDIR"
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

# start_np NAME N ARGS...: like run_np, but in the background: JOB is
# mpirun's pid, LOG its log. wait_np then waits for it (at most CASE_TIMEOUT
# seconds, then kills it) and sets RC and TOOK (seconds, with decimals,
# from the call of wait_np, or from MARK when set).
start_np() {
    local name=$1 np=$2
    shift 2
    LOG="$LOGDIR/$name.log"
    mpirun "${MPIRUN_FLAGS[@]}" -np "$np" "$BIN" "$@" >"$LOG" 2>&1 &
    JOB=$!
    MARK=
}

wait_np() {
    local t0=${MARK:-$(date +%s.%N)} i
    for ((i = 0; i < CASE_TIMEOUT * 10; i++)); do
        kill -0 "$JOB" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$JOB" 2>/dev/null; then
        echo "wait_np: job $JOB still running after ${CASE_TIMEOUT}s; killing it" >>"$LOG"
        kill -9 "$JOB" 2>/dev/null
    fi
    wait "$JOB"
    RC=$?
    TOOK=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
}

# rank_pid R: the pid of rank R of the job started by start_np (its ranks
# are mpirun's children on this node), or nothing.
rank_pid() {
    local c
    for c in $(pgrep -P "$JOB" 2>/dev/null); do
        if tr '\0' '\n' <"/proc/$c/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$1"; then
            echo "$c"
            return 0
        fi
    done
    return 1
}

# freeze_rank R: SIGSTOPs rank R of the job started by start_np, waits for
# the job to end (wait_np: RC, and TOOK from the signal), then lets the
# stopped process go on (if mpirun left it). VICTIM is its pid, or empty.
freeze_rank() {
    VICTIM=$(rank_pid "$1")
    MARK=$(date +%s.%N)
    [ -n "$VICTIM" ] && kill -STOP "$VICTIM"
    wait_np
    [ -n "$VICTIM" ] && kill -CONT "$VICTIM" 2>/dev/null
}

# wait_for PATH SECONDS: until PATH exists (a checkpoint, say).
wait_for() {
    local i
    for ((i = 0; i < $2 * 20; i++)); do
        [ -e "$1" ] && return 0
        sleep 0.05
    done
    return 1
}

# same_npy DIR1 DIR2: the .npy files of two saved models are identical.
same_npy() {
    local f n=0
    for f in "$1"/*.npy; do
        [ -e "$f" ] && cmp -s "$f" "$2/$(basename "$f")" || return 1
        n=$((n + 1))
    done
    [ "$n" -gt 0 ]
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
