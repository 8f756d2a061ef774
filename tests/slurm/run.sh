#!/usr/bin/env bash
# `make test-slurm`: deploy/adamps.sbatch on a real one-node Slurm cluster
# (tests/slurm/cluster.sh: munged, slurmctld, slurmd on localhost, own ports
# and files). Submits a small BSP job and checks that
#   - it runs unchanged on stock Debian Slurm + Open MPI (srun --mpi=pmix),
#     each job with its own checkpoint directory;
#   - `scontrol requeue` mid-run resumes from the checkpoint and ends with a
#     model byte-identical to an uninterrupted run;
#   - the preemption signal (SIGUSR1 to the batch shell, as --signal=B:USR1
#     sends it) makes adamps checkpoint at the next clock, exit 75 and the
#     job requeue itself, again ending byte-identical;
#   - a job that cannot work (bad flag) fails at once with exit 2, no retry;
#   - a rank killed with kill -9 is retried inside the allocation (no
#     requeue), again byte-identical;
#   - a 2-task job launched with LAUNCHER=mpirun runs.
# Every daemon it started is stopped by PID when it ends.
set -u
T0=$(date +%s)
cd "$(dirname "$0")/../.."
root=$(pwd)
BIN=${BIN:-$root/adamps}
[ -x "$BIN" ] || {
    echo "test-slurm: $BIN missing (make first)" >&2
    exit 2
}

work=$(mktemp -d /tmp/adamps-slurm.XXXXXX)
# The daemons are stopped by the pid files in $work, so the directory goes
# (when every case passed) only after them.
cleanup() {
    if [ -n "${SLURM_CONF:-}" ]; then
        scancel --full -u "$(id -un)" >/dev/null 2>&1
    fi
    tests/slurm/cluster.sh stop "$work/cluster"
    [ "${FAIL:-1}" -ne 0 ] || rm -rf "$work"
}
trap cleanup EXIT

out=$(tests/slurm/cluster.sh start "$work/cluster") || {
    echo "FAIL slurm cluster did not start" >&2
    tail -n 20 "$work"/cluster/log/*.log >&2
    exit 1
}
export "${out?}"
export PATH="$PATH:/usr/sbin"

PASS=0
FAIL=0
pass() {
    echo "[$(( $(date +%s) - T0 ))s]"
    PASS=$((PASS + 1))
    echo "ok   $1"
}
fail() {
    FAIL=$((FAIL + 1))
    echo "FAIL $1: $2"
    [ -z "${3:-}" ] || [ ! -f "$3" ] || tail -n 25 "$3" | sed 's/^/     | /'
}

job_field() { # job_field ID KEY: one field of `scontrol show job`
    scontrol show job "$1" 2>/dev/null | tr ' ' '\n' | sed -n "s/^$2=//p" | head -1
}
# wait_state ID SECONDS STATE...: waits until the job is in one of STATEs.
wait_state() {
    local id=$1 secs=$2 s
    shift 2
    for _ in $(seq $((secs * 5))); do
        s=$(job_field "$id" JobState)
        for want in "$@"; do
            [ "$s" = "$want" ] && return 0
        done
        sleep 0.2
    done
    echo "job $id still $s after ${secs}s (wanted $*)" >&2
    return 1
}
# Slurm holds a requeued job back (BeginTime about two minutes ahead); a
# test has no reason to wait for that: make it eligible as soon as it is
# pending again and the old run's step daemons are gone. (They can outlive
# the job's requeue by seconds, in PMIx's finalize; a step of the new run
# that starts before then cannot bind its PMIx socket. Two minutes covers
# that on a real cluster.)
release() { # release ID
    wait_state "$1" 60 PENDING || return 1
    for _ in $(seq 150); do
        pgrep -f "^slurmstepd: \[$1\." >/dev/null || break
        sleep 0.2
    done
    scontrol update JobId="$1" StartTime=now
}
wait_file() { # wait_file PATH SECONDS
    for _ in $(seq $(($2 * 10))); do
        [ -e "$1" ] && return 0
        sleep 0.1
    done
    return 1
}

# A small BSP job that runs long enough to interrupt: 3 ranks (1 server, 2
# workers) oversubscribing the 2 cores.
SMALL="--dataset fashion-mnist --model logreg --train-limit 4000 --test-limit 500 --batch 32 --lr 0.01 --steps 240 --inject-delay-ms 25 --quiet"
submit() { # submit NAME [VAR=VALUE...]: sbatch with the small job (NTASKS, default 3); prints the job id
    local name=$1
    shift
    mkdir -p "$work/$name"
    (cd "$work/$name" && env "$@" ADAMPS="$BIN" CKPT_EVERY=40 \
        sbatch --parsable --ntasks="${NTASKS:-3}" --overcommit --job-name="$name" \
        --output="$work/$name/slurm-%j.out" "$root/deploy/adamps.sbatch")
}
same_model() { # same_model DIR1 DIR2: every table's .npy identical
    local a=$1 b=$2 n=0
    for f in "$a"/*.npy; do
        [ -e "$f" ] || return 1
        cmp -s "$f" "$b/$(basename "$f")" || return 1
        n=$((n + 1))
    done
    [ "$n" -gt 0 ]
}

# 1. Uninterrupted reference run.
ref=$(submit ref TRAIN_ARGS="$SMALL --save-model $work/ref/model")
if wait_state "$ref" 240 COMPLETED FAILED && [ "$(job_field "$ref" JobState)" = COMPLETED ] &&
    [ -f "$work/ref/model/w.npy" ] && [ -d "$work/ref/adamps-ckpt/$ref" ]; then
    pass "sbatch_runs (job $ref, srun --mpi=pmix, checkpoints in adamps-ckpt/$ref)"
else
    fail sbatch_runs "job $ref: $(job_field "$ref" JobState)" "$work/ref/slurm-$ref.out"
fi

# 2. scontrol requeue after the first checkpoint: resumes, same model.
rq=$(submit requeue TRAIN_ARGS="$SMALL --save-model $work/requeue/model")
ck="$work/requeue/adamps-ckpt/$rq/MANIFEST"
if wait_file "$ck" 120 && wait_state "$rq" 30 RUNNING && scontrol requeue "$rq"; then
    release "$rq"
    wait_state "$rq" 300 COMPLETED FAILED
    restarts=$(job_field "$rq" Restarts)
    if [ "$(job_field "$rq" JobState)" = COMPLETED ] && [ "${restarts:-0}" -ge 1 ] &&
        grep -q "resuming from" "$work/requeue/slurm-$rq.out" &&
        same_model "$work/ref/model" "$work/requeue/model"; then
        pass "requeue_resumes_bit_identical (restarts $restarts)"
    else
        fail requeue_resumes_bit_identical "state $(job_field "$rq" JobState), restarts $restarts" \
            "$work/requeue/slurm-$rq.out"
    fi
else
    fail requeue_resumes_bit_identical "no checkpoint to requeue from" "$work/requeue/slurm-$rq.out"
fi

# 3. The preemption signal: checkpoint at the next clock, exit 75, requeue.
pe=$(submit preempt TRAIN_ARGS="$SMALL --save-model $work/preempt/model")
ck="$work/preempt/adamps-ckpt/$pe/MANIFEST"
if wait_file "$ck" 120 && scancel --batch --signal=USR1 "$pe"; then
    release "$pe"
    wait_state "$pe" 300 COMPLETED FAILED
    log="$work/preempt/slurm-$pe.out"
    restarts=$(job_field "$pe" Restarts)
    if [ "$(job_field "$pe" JobState)" = COMPLETED ] && [ "${restarts:-0}" -ge 1 ] &&
        grep -q "requeueing job" "$log" && same_model "$work/ref/model" "$work/preempt/model"; then
        pass "preemption_signal_checkpoints_and_requeues (restarts $restarts)"
    else
        fail preemption_signal_checkpoints_and_requeues \
            "state $(job_field "$pe" JobState), restarts $restarts" "$log"
    fi
else
    fail preemption_signal_checkpoints_and_requeues "no checkpoint before the signal" \
        "$work/preempt/slurm-$pe.out"
fi

# 4. A bad flag: exit 2 at once, not retried, not requeued.
bad=$(submit bad TRAIN_ARGS="$SMALL --bogus-flag 1")
wait_state "$bad" 120 COMPLETED FAILED
log="$work/bad/slurm-$bad.out"
if [ "$(job_field "$bad" JobState)" = FAILED ] && grep -q "not retrying" "$log" &&
    [ "$(grep -c 'srun ' "$log")" -eq 1 ]; then
    pass "bad_flag_fails_once (exit $(job_field "$bad" ExitCode))"
else
    fail bad_flag_fails_once "state $(job_field "$bad" JobState)" "$log"
fi

# 5. A rank killed (kill -9, as a crashed node's would be) after the first
# checkpoint: the script retries inside the allocation, no requeue, same model.
cr=$(submit crash TRAIN_ARGS="$SMALL --save-model $work/crash/model")
ck="$work/crash/adamps-ckpt/$cr/MANIFEST"
victim=
if wait_file "$ck" 120; then
    for p in $(pgrep -x adamps); do
        if tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx "SLURM_JOB_ID=$cr" &&
            tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx "SLURM_PROCID=1"; then
            victim=$p
        fi
    done
fi
[ -z "$victim" ] || kill -9 "$victim"
wait_state "$cr" 300 COMPLETED FAILED
log="$work/crash/slurm-$cr.out"
if [ -n "$victim" ] && [ "$(job_field "$cr" JobState)" = COMPLETED ] &&
    [ "$(job_field "$cr" Restarts)" = 0 ] && grep -q "retry 1 of 2 inside this allocation" "$log" &&
    same_model "$work/ref/model" "$work/crash/model"; then
    pass "rank_crash_retried_inside_the_allocation_bit_identical"
else
    fail rank_crash_retried_inside_the_allocation "victim '$victim', state $(job_field "$cr" JobState)" "$log"
fi

# 6. Two tasks (1 server + 1 worker) launched with mpirun inside the
# allocation instead of srun: a 2-task job is accepted and trains.
tw=$(NTASKS=2 submit two LAUNCHER=mpirun TRAIN_ARGS="$SMALL --save-model $work/two/model")
wait_state "$tw" 240 COMPLETED FAILED
log="$work/two/slurm-$tw.out"
if [ "$(job_field "$tw" JobState)" = COMPLETED ] && grep -q "mpirun -np 2" "$log" &&
    [ -f "$work/two/model/w.npy" ]; then
    pass "two_tasks_under_launcher_mpirun"
else
    fail two_tasks_under_launcher_mpirun "state $(job_field "$tw" JobState)" "$log"
fi

echo "slurm: $PASS passed, $FAIL failed"
[ "$FAIL" -eq 0 ]
