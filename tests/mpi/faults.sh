#!/usr/bin/env bash
# `make test-faults`: the slow fault cases, each a real job on this
# machine, timed. The quick ones (frozen worker and server, long pause,
# SIGUSR1, full disk, refused resumes, lock) are in tests/mpi/cases/ and
# run with `make test`.
#   - kill -9 of a worker, of the server and of the coordinator under
#     deploy/launch: restarted from the checkpoint, final parameters
#     bit-identical to an uninterrupted BSP run;
#   - a frozen coordinator, and a server frozen while writing a checkpoint,
#     end the job within the peer timeout naming them; a slow checkpoint
#     write (with heartbeats) does not;
#   - the stop signal reaching one rank only (a worker under BSP, the server
#     under SSP, the coordinator under ASP): a checkpoint, exit 75, resume;
#   - deploy/launch: the user's SIGTERM stops without a restart (and the
#     checkpoint it asks for resumes bit-identical), a stop signal to a
#     rank from outside launch is resumed, exit 2 is not retried,
#     a rank killed by a signal is, and an mpirun that hangs after an abort
#     is killed after --abort-grace.
set -u
cd "$(dirname "$0")/../.."
. tests/mpi/lib.sh
T0=$(date +%s)
LAUNCH=deploy/launch
FK=(--dataset fashion-mnist --model logreg --train-limit 2000 --test-limit 300 --batch 32
    --lr 0.01 --quiet)
rm -rf "$LOGDIR"/fk_*
run_np fk_reference 3 train "${FK[@]}" --servers 1 --steps 80 --save-model "$LOGDIR/fk_ref"
[ "$RC" -eq 0 ] || fail fk_reference "rc=$RC"

# start_launch NAME ARGS...: deploy/launch in the background, its output in
# LOG, its pid in JOB (wait_np waits for it).
start_launch() {
    local name=$1
    shift
    LOG="$LOGDIR/$name.log"
    ADAMPS=$BIN setsid "$LAUNCH" "$@" >"$LOG" 2>&1 &
    JOB=$!
    MARK=
}

# launch_rank R: the pid of rank R of the job launch (JOB) is running now.
launch_rank() {
    local m c
    for m in $(pgrep -P "$JOB"); do
        for c in $(pgrep -P "$m"); do
            if tr '\0' '\n' <"/proc/$c/environ" 2>/dev/null |
                grep -qx "OMPI_COMM_WORLD_RANK=$1"; then
                echo "$c"
                return 0
            fi
        done
    done
    return 1
}

# 1. kill -9 under deploy/launch. Rank 0 is the coordinator, 1 a worker, 2
# the server; each is killed once the first checkpoint is complete.
for who in 1:worker 2:server 0:coordinator; do
    r=${who%%:*}
    name="fk_kill9_${who#*:}"
    ck="$LOGDIR/${name}_ck"
    start_launch "$name" -n 3 --servers 1 --checkpoint-dir "$ck" --restarts 2 -- "${FK[@]}" \
        --steps 80 --inject-delay-ms 30 --checkpoint-every 20 --save-model "$LOGDIR/${name}_m"
    wait_for "$ck/ckpt-20/MANIFEST" 60
    victim=$(launch_rank "$r")
    MARK=$(date +%s.%N)
    [ -n "$victim" ] && kill -9 "$victim"
    wait_np
    if [ -n "$victim" ] && [ "$RC" -eq 0 ] && grep -q "restarting from the checkpoint" "$LOG" &&
        grep -q "resuming from" "$LOG" && same_npy "$LOGDIR/fk_ref" "$LOGDIR/${name}_m"; then
        pass "kill9_${who#*:}_under_launch_resumes_bit_identical (${TOOK}s to the end, restart included)"
    else
        fail "kill9_${who#*:}_under_launch" "victim '$victim' rc=$RC"
    fi
done

# 2. A frozen coordinator: the servers and workers name it.
start_np fk_freeze_coord 3 train "${FK[@]}" --servers 1 --steps 100000 --peer-timeout 2
sleep 1.5
freeze_rank 0
if [ -n "$VICTIM" ] && [ "$RC" -ne 0 ] && ge 5 "$TOOK" &&
    grep -q "rank 0 (worker 0) has sent nothing" "$LOG"; then
    pass "frozen_coordinator_ends_the_job_naming_it (rc $RC after ${TOOK}s, timeout 2 s)"
else
    fail frozen_coordinator "victim '$VICTIM' rc=$RC after ${TOOK}s"
fi

# 3. A server busy for 4 s writing each checkpoint, with heartbeats (a slow
# file system): the job completes. Frozen in the write instead: named.
ADAMPS_TEST_INJECT=slow-ckpt-4 run_np fk_slow_ckpt 3 train "${FK[@]}" --servers 1 --steps 30 \
    --peer-timeout 1.5 --checkpoint-dir "$LOGDIR/fk_slow" --checkpoint-every 10
slow_rc=$RC
MARK=$(date +%s.%N)
ADAMPS_TEST_INJECT=freeze-ckpt-30 start_np fk_frozen_ckpt 3 train "${FK[@]}" --servers 1 \
    --steps 30 --peer-timeout 1.5 --checkpoint-dir "$LOGDIR/fk_frozen" --checkpoint-every 10
wait_np
if [ "$slow_rc" -eq 0 ] && [ "$RC" -ne 0 ] && ge 10 "$TOOK" &&
    grep -q "rank 2 (server 0) has sent nothing" "$LOG"; then
    pass "slow_checkpoint_write_passes_frozen_one_is_named (frozen: rc $RC after ${TOOK}s)"
else
    fail slow_or_frozen_checkpoint "slow rc=$slow_rc (want 0), frozen rc=$RC after ${TOOK}s"
fi

# 4. The stop signal reaching one rank only.
#  BSP, to worker 1: exit 75 at a clock, resume bit-identical.
#  SSP:2 on 2 workers, to the server; ASP on 2 workers, to the coordinator:
#  exit 75, and the resume completes.
stop_case() { # stop_case NAME NP RANK ARGS...
    local name=$1 np=$2 r=$3
    shift 3
    rm -rf "$LOGDIR/${name}_ck"
    start_np "$name" "$np" train "${FK[@]}" --steps 80 --inject-delay-ms 60 \
        --checkpoint-dir "$LOGDIR/${name}_ck" --checkpoint-every 1000 "$@"
    sleep 1.5
    victim=$(rank_pid "$r")
    [ -n "$victim" ] && kill -USR1 "$victim"
    wait_np
    STOP_RC=$RC
    STOP_AT=$(sed -n 's/.*every worker stops at clock \([0-9]*\).*/\1/p' "$LOG" | head -1)
    STOP_LOG=$LOG
    run_np "${name}_resume" "$np" train "${FK[@]}" --steps 80 --checkpoint-dir "$LOGDIR/${name}_ck" \
        --checkpoint-every 1000 --resume --save-model "$LOGDIR/${name}_m" "$@"
}
stop_case fk_stop_bsp_worker 3 1 --servers 1
if [ "$STOP_RC" -eq 75 ] && [ -n "$STOP_AT" ] && [ "$RC" -eq 0 ] &&
    grep -q "rank 1 asks to stop" "$STOP_LOG" && same_npy "$LOGDIR/fk_ref" "$LOGDIR/fk_stop_bsp_worker_m"; then
    pass "stop_signal_to_one_worker_bsp_exit_75_resume_bit_identical (stopped at clock $STOP_AT)"
else
    LOG=$STOP_LOG
    fail stop_signal_to_one_worker "stop rc=$STOP_RC at '$STOP_AT', resume rc=$RC"
fi
stop_case fk_stop_ssp_server 4 3 --servers 1 --consistency ssp:2
if [ "$STOP_RC" -eq 75 ] && [ -n "$STOP_AT" ] && [ "$RC" -eq 0 ] &&
    [ -f "$LOGDIR/fk_stop_ssp_server_ck/ckpt-$STOP_AT/MANIFEST" ] && [ "$(final_field step)" = 80 ]; then
    pass "stop_signal_to_the_server_ssp_exit_75_and_resumes (stopped at clock $STOP_AT)"
else
    LOG=$STOP_LOG
    fail stop_signal_to_the_server_ssp "stop rc=$STOP_RC at '$STOP_AT', resume rc=$RC"
fi
stop_case fk_stop_asp_coord 4 0 --servers 1 --consistency asp
if [ "$STOP_RC" -eq 75 ] && [ -n "$STOP_AT" ] && [ "$RC" -eq 0 ] && [ "$(final_field step)" = 80 ]; then
    pass "stop_signal_to_the_coordinator_asp_exit_75_and_resumes (announced clock $STOP_AT)"
else
    LOG=$STOP_LOG
    fail stop_signal_to_the_coordinator_asp "stop rc=$STOP_RC at '$STOP_AT', resume rc=$RC"
fi

# 5. deploy/launch and exit codes.
#  The user's SIGTERM: adamps checkpoints and stops, launch does not
#  restart and exits 143; launch again resumes, bit-identical.
ck="$LOGDIR/fk_user_term_ck"
start_launch fk_user_term -n 3 --servers 1 --checkpoint-dir "$ck" -- "${FK[@]}" --steps 80 \
    --inject-delay-ms 60 --checkpoint-every 1000
sleep 2
kill -TERM "$JOB"
wait_np
term_rc=$RC
term_log=$LOG
ADAMPS=$BIN "$LAUNCH" -n 3 --servers 1 --checkpoint-dir "$ck" -- "${FK[@]}" --steps 80 \
    --checkpoint-every 1000 --resume --save-model "$LOGDIR/fk_user_term_m" >"$LOGDIR/fk_user_term2.log" 2>&1
again_rc=$?
if [ "$term_rc" -eq 143 ] && grep -q "not restarting" "$term_log" &&
    [ "$(grep -c '^launch: mpirun' "$term_log")" -eq 1 ] && [ "$again_rc" -eq 0 ] &&
    same_npy "$LOGDIR/fk_ref" "$LOGDIR/fk_user_term_m"; then
    pass "launch_user_sigterm_checkpoints_stops_without_restart (exit 143), resume bit-identical"
else
    LOG=$term_log
    fail launch_user_sigterm "launch rc=$term_rc"
fi

#  Exit 2 (here: a resume with another --seed) is not retried.
ADAMPS=$BIN "$LAUNCH" -n 3 --servers 1 --checkpoint-dir "$ck" --restarts 3 -- "${FK[@]}" \
    --steps 80 --seed 5 --resume >"$LOGDIR/fk_exit2.log" 2>&1
RC=$?
LOG="$LOGDIR/fk_exit2.log"
if [ "$RC" -eq 2 ] && [ "$(grep -c '^launch: mpirun' "$LOG")" -eq 1 ] &&
    grep -q "not restarting" "$LOG" && grep -q -- "--seed 1 (this job: 5)" "$LOG"; then
    pass "launch_does_not_retry_exit_2"
else
    fail launch_does_not_retry_exit_2 "rc=$RC"
fi

#  A rank killed by a signal (SIGSEGV here; mpirun says 139) is restarted.
ck="$LOGDIR/fk_segv_ck"
start_launch fk_segv -n 3 --servers 1 --checkpoint-dir "$ck" --restarts 1 -- "${FK[@]}" \
    --steps 80 --inject-delay-ms 30 --checkpoint-every 20 --save-model "$LOGDIR/fk_segv_m"
wait_for "$ck/ckpt-20/MANIFEST" 60
victim=$(launch_rank 1)
[ -n "$victim" ] && kill -SEGV "$victim"
wait_np
if [ -n "$victim" ] && [ "$RC" -eq 0 ] && grep -q "killed by signal 11" "$LOG" &&
    same_npy "$LOGDIR/fk_ref" "$LOGDIR/fk_segv_m"; then
    pass "launch_restarts_a_rank_killed_by_a_signal (SIGSEGV)"
else
    fail launch_restarts_after_sigsegv "victim '$victim' rc=$RC"
fi

#  A stop signal to a rank from outside launch (a node shutting down
#  sends SIGTERM to every process): the ranks checkpoint and exit 75,
#  and launch resumes from that checkpoint, ending bit-identical.
ck="$LOGDIR/fk_node_term_ck"
start_launch fk_node_term -n 3 --servers 1 --checkpoint-dir "$ck" --restarts 1 -- "${FK[@]}" \
    --steps 80 --inject-delay-ms 30 --checkpoint-every 1000 --save-model "$LOGDIR/fk_node_term_m"
victim=
for ((i = 0; i < 100; i++)); do
    sleep 0.2
    victim=$(launch_rank 1) && break
done
sleep 1
[ -n "$victim" ] && kill -TERM "$victim"
wait_np
if [ -n "$victim" ] && [ "$RC" -eq 0 ] && grep -q "exit 75: a stop signal from outside" "$LOG" &&
    [ "$(grep -c '^launch: mpirun' "$LOG")" -eq 2 ] && same_npy "$LOGDIR/fk_ref" "$LOGDIR/fk_node_term_m"; then
    pass "launch_resumes_after_a_stop_signal_from_outside (exit 75, restart, bit-identical)"
else
    fail launch_resumes_after_outside_stop "victim '$victim' rc=$RC"
fi

#  An mpirun that hangs after an abort (as Open MPI 4.1's did in its
#  finalize) is killed --abort-grace seconds after the abort shows; the
#  abort's own error code decides what comes next.
cat >"$LOGDIR/hung-mpirun" <<'EOF'
#!/bin/sh
echo "MPI_ABORT was invoked on rank 1 in communicator MPI_COMM_WORLD" >&2
echo "with errorcode 2." >&2
exec sleep 300
EOF
chmod +x "$LOGDIR/hung-mpirun"
MARK=$(date +%s.%N)
LOG="$LOGDIR/fk_hung.log"
MPIRUN="$LOGDIR/hung-mpirun" ADAMPS=$BIN setsid "$LAUNCH" -n 3 --checkpoint-dir "$ck" \
    --abort-grace 2 -- "${FK[@]}" >"$LOG" 2>&1 &
JOB=$!
wait_np
if [ "$RC" -eq 2 ] && ge 8 "$TOOK" && grep -q "still running 2s after the job began to end" "$LOG"; then
    pass "launch_kills_a_hung_mpirun_after_the_grace_period (${TOOK}s, exit 2 from the abort)"
else
    fail launch_kills_a_hung_mpirun "rc=$RC after ${TOOK}s"
fi

echo "test-faults: $(($(date +%s) - T0)) s"
summary
