# Failure and recovery (sourced by tests/mpi/run.sh; the slow cases are in
# tests/mpi/faults.sh, `make test-faults`): a resume with a changed flag is
# refused naming it and an allowed change passes; a second job on a busy
# checkpoint directory is refused naming the first; a frozen worker or
# server ends the job within the peer timeout naming it, while a rank busy
# for longer than the timeout (with heartbeats) does not; SIGUSR1 gives a
# checkpoint at the next clock, exit 75 and a resume that ends bit-identical;
# a full disk stops the job leaving the previous checkpoint intact; a
# metrics file that cannot be written does not stop training; a checkpoint
# directory that cannot be made is refused at start-up; a failed
# --save-model leaves a final checkpoint that a resume exports.
RV=(--dataset fashion-mnist --model logreg --train-limit 2000 --test-limit 300 --batch 32
    --lr 0.01 --quiet --servers 1)
rm -rf "$LOGDIR"/rv_*
run_np rv_reference 3 train "${RV[@]}" --steps 60 --save-model "$LOGDIR/rv_ref"
ADAMPS_TEST_INJECT=crash-at-25 run_np rv_crash 3 train "${RV[@]}" --steps 60 \
    --checkpoint-dir "$LOGDIR/rv_ck" --checkpoint-every 10

# 1. Resuming with other settings: refused (exit 2), each flag named with
# both values; a safe change (longer --steps, --progress-every) or one named
# in --resume-allow passes.
run_np rv_changed_flags 3 train "${RV[@]}" --steps 60 --checkpoint-dir "$LOGDIR/rv_ck" --resume \
    --seed 2 --lr 0.02
if [ "$RC" -eq 2 ] && grep -q -- "--seed 1 (this job: 2)" "$LOG" &&
    grep -q -- "--lr 0.01 (this job: 0.02)" "$LOG"; then
    pass "resume_with_changed_flags_refused_naming_them"
else
    fail resume_with_changed_flags_refused "rc=$RC (want 2 naming --seed and --lr with both values)"
fi
run_np rv_changed_consistency 3 train "${RV[@]}" --steps 60 --checkpoint-dir "$LOGDIR/rv_ck" \
    --resume --consistency ssp:1
if [ "$RC" -eq 2 ] && grep -q -- "--consistency bsp (this job: ssp:1)" "$LOG"; then
    pass "resume_with_changed_consistency_refused"
else
    fail resume_with_changed_consistency_refused "rc=$RC"
fi
cp -r "$LOGDIR/rv_ck" "$LOGDIR/rv_ck2"
run_np rv_allowed 3 train "${RV[@]}" --steps 80 --progress-every 1 --lr 0.02 --resume-allow lr \
    --checkpoint-dir "$LOGDIR/rv_ck2" --resume
if [ "$RC" -eq 0 ] && [ "$(final_field step)" = 80 ]; then
    pass "resume_with_allowed_changes_passes (--steps 80, --lr with --resume-allow lr)"
else
    fail resume_with_allowed_changes_passes "rc=$RC step=$(final_field step)"
fi

# 2. Two jobs on one directory: the second is refused naming the first's
# pid and host; the first is not disturbed.
start_np rv_first 3 train "${RV[@]}" --steps 300 --inject-delay-ms 60 \
    --checkpoint-dir "$LOGDIR/rv_lock" --checkpoint-every 50 --save-model "$LOGDIR/rv_first"
first=$JOB
first_log=$LOG
wait_for "$LOGDIR/rv_lock/LOCK" 30
sleep 0.3
holder=$(cat "$LOGDIR/rv_lock/LOCK" 2>/dev/null)
run_np rv_second 3 train "${RV[@]}" --steps 300 --checkpoint-dir "$LOGDIR/rv_lock"
second_rc=$RC
second_log=$LOG
kill -0 "$first" 2>/dev/null
first_alive=$?
JOB=$first LOG=$first_log wait_np
if [ "$second_rc" -eq 2 ] && [ -n "$holder" ] &&
    grep -q "in use by another adamps job ($holder)" "$second_log" && [ "$first_alive" -eq 0 ] &&
    [ "$RC" -eq 0 ]; then
    pass "concurrent_job_on_one_directory_refused (holder: $holder)"
else
    LOG=$second_log
    fail concurrent_job_refused "second rc=$second_rc, first rc=$RC, holder '$holder'"
fi

# 3. A frozen rank (SIGSTOP) ends the job within the peer timeout, naming
# it: rank 1 is a worker, rank 2 the server.
for who in 1:worker 2:server; do
    r=${who%%:*}
    start_np "rv_freeze_${who#*:}" 3 train "${RV[@]}" --steps 100000 --peer-timeout 1.5
    sleep 1.5
    freeze_rank "$r"
    if [ -n "$VICTIM" ] && [ "$RC" -ne 0 ] && ge 4.5 "$TOOK" &&
        grep -q "rank $r (${who#*:} [0-9]) has sent nothing, not even a heartbeat, for 1\.[5-9] s" "$LOG"; then
        pass "frozen_${who#*:}_ends_the_job_naming_it (rc $RC after ${TOOK}s, timeout 1.5 s)"
    else
        fail "frozen_${who#*:}_ends_the_job" "victim '$VICTIM' rc=$RC after ${TOOK}s"
    fi
done

# 4. The coordinator busy for 3 s, 2x the timeout, with heartbeats: the job
# goes on. The control: the same pause without heartbeats ends it.
ADAMPS_TEST_INJECT=pause-at-10-3 run_np rv_long_pause 3 train "${RV[@]}" --steps 30 \
    --peer-timeout 1.5
pause_rc=$RC
ADAMPS_TEST_INJECT=freeze-at-10-3 run_np rv_hung_pause 3 train "${RV[@]}" --steps 30 \
    --peer-timeout 1.5
if [ "$pause_rc" -eq 0 ] && [ "$RC" -ne 0 ] && grep -q "rank 0 (worker 0) has sent nothing" "$LOG"; then
    pass "long_busy_pause_with_heartbeats_does_not_trip_the_timeout (hung control: rc $RC)"
else
    fail long_busy_pause "busy rc=$pause_rc (want 0), hung rc=$RC (want non-zero naming rank 0)"
fi

# 5. SIGUSR1 (to mpirun, which passes it to every rank): a checkpoint at the
# next clock, exit 75; the resume ends bit-identical to the reference.
start_np rv_usr1 3 train "${RV[@]}" --steps 60 --inject-delay-ms 40 \
    --checkpoint-dir "$LOGDIR/rv_usr1" --checkpoint-every 1000
sleep 1.2
kill -USR1 "$JOB"
wait_np
stop_rc=$RC
stop_at=$(sed -n 's/.*every worker stops at clock \([0-9]*\).*/\1/p' "$LOG" | head -1)
run_np rv_usr1_resume 3 train "${RV[@]}" --steps 60 --checkpoint-dir "$LOGDIR/rv_usr1" \
    --checkpoint-every 1000 --resume --save-model "$LOGDIR/rv_usr1_model"
if [ "$stop_rc" -eq 75 ] && [ -n "$stop_at" ] && [ "$stop_at" -lt 60 ] &&
    [ -f "$LOGDIR/rv_usr1/ckpt-$stop_at/MANIFEST" ] && [ "$RC" -eq 0 ] &&
    same_npy "$LOGDIR/rv_ref" "$LOGDIR/rv_usr1_model"; then
    pass "sigusr1_checkpoints_exits_75_and_resumes_bit_identical (stopped at clock $stop_at)"
else
    fail sigusr1_stop "stop rc=$stop_rc at '$stop_at', resume rc=$RC"
fi

# 6. A full disk at the second checkpoint: exit 2 saying so, and the first
# checkpoint is intact (a resume from a copy ends bit-identical). A small
# tmpfs when mounting is allowed, else an injected write failure.
mnt="$LOGDIR/rv_full"
mkdir -p "$mnt"
inject=
mnt_note="200 KiB tmpfs"
if ! mount -t tmpfs -o size=200k tmpfs "$mnt" 2>/dev/null; then
    inject=fail-ckpt-20
    mnt_note="injected write failure: mount not permitted"
fi
ADAMPS_TEST_INJECT=$inject run_np rv_full_disk 3 train "${RV[@]}" --steps 60 \
    --checkpoint-dir "$mnt/ck" --checkpoint-every 10
full_rc=$RC
full_log=$LOG
cp -r "$mnt/ck" "$LOGDIR/rv_full_copy" 2>/dev/null
mountpoint -q "$mnt" && umount "$mnt"
run_np rv_full_resume 3 train "${RV[@]}" --steps 60 --checkpoint-dir "$LOGDIR/rv_full_copy" \
    --checkpoint-every 10 --resume --save-model "$LOGDIR/rv_full_model"
if [ "$full_rc" -eq 2 ] && grep -q "No space left on device" "$full_log" &&
    grep -q "checkpoint 20 in .* could not be written; ckpt-10 is intact" "$full_log" &&
    [ "$RC" -eq 0 ] && grep -q "resuming from .*ckpt-10" "$LOG" &&
    same_npy "$LOGDIR/rv_ref" "$LOGDIR/rv_full_model"; then
    pass "full_disk_stops_with_exit_2_and_keeps_the_previous_checkpoint ($mnt_note)"
else
    LOG=$full_log
    fail full_disk "rc=$full_rc (want 2), resume rc=$RC"
fi

# 7. Metrics that cannot be written (/dev/full): a warning, training goes on.
# The lines lost: the header record and 4 evaluations.
run_np rv_metrics_full 3 train "${RV[@]}" --steps 40 --eval-every 10 --metrics /dev/full
if [ "$RC" -eq 0 ] && [ "$(final_field step)" = 40 ] &&
    grep -q "a metrics line was not written" "$LOG" &&
    grep -q "5 metrics lines could not be written" "$LOG"; then
    pass "metrics_write_failure_does_not_stop_training"
else
    fail metrics_write_failure "rc=$RC"
fi

# 8. A resumed run's metrics: the lines the crashed run wrote after its
# checkpoint (steps 20 and 25) go, a record says where it picked up, time_s
# goes on from the checkpoint's, and every step appears once.
rm -rf "$LOGDIR/rv_mck"
ADAMPS_TEST_INJECT=crash-at-27 run_np rv_metrics_crash 3 train "${RV[@]}" --steps 40 --eval-every 5 \
    --checkpoint-dir "$LOGDIR/rv_mck" --checkpoint-every 10 --metrics "$LOGDIR/rv_m.jsonl"
before=$(grep -c '"step":2[05]' "$LOGDIR/rv_m.jsonl")
t15=$(sed -n 's/.*"step":15,.*"time_s":\([0-9.e-]*\).*/\1/p' "$LOGDIR/rv_m.jsonl")
run_np rv_metrics_resume 3 train "${RV[@]}" --steps 40 --eval-every 5 \
    --checkpoint-dir "$LOGDIR/rv_mck" --checkpoint-every 10 --metrics "$LOGDIR/rv_m.jsonl" --resume
steps=$(sed -n 's/^{"step":\([0-9]*\),.*/\1/p' "$LOGDIR/rv_m.jsonl" | tr '\n' ' ')
t20=$(sed -n 's/.*"step":20,.*"time_s":\([0-9.e-]*\).*/\1/p' "$LOGDIR/rv_m.jsonl")
if [ "$RC" -eq 0 ] && [ "$before" = 2 ] && [ "$steps" = "5 10 15 20 25 30 35 40 " ] &&
    grep -q '"event":"resumed","checkpoint":"ckpt-20","resume_step":20' "$LOGDIR/rv_m.jsonl" &&
    grep -q "dropped 2 lines from step 20 on" "$LOG" && ge "$t20" "$t15" && ge "$t15" 0.000001; then
    pass "resumed_metrics_drop_rows_past_the_checkpoint_and_continue_time (steps $steps)"
else
    fail resumed_metrics "rc=$RC steps '$steps' time_s at 15: '$t15', at 20 after: '$t20'"
fi

# 9. A checkpoint directory that cannot be made (its parent is a file; root
# ignores permission bits, so a read-only directory would not do): exit 2 at
# start-up naming it, before any step is trained.
: >"$LOGDIR/rv_notadir"
run_np rv_ckdir_bad 3 train "${RV[@]}" --steps 60 --checkpoint-dir "$LOGDIR/rv_notadir/ck"
if [ "$RC" -eq 2 ] && grep -q "rv_notadir/ck" "$LOG" && ! grep -q "^final " "$LOG"; then
    pass "unmakeable_checkpoint_dir_refused_at_start_up_naming_it"
else
    fail unmakeable_checkpoint_dir "rc=$RC (want 2 at start-up naming the directory)"
fi

# 10. --save-model failing at the end: exit 2, the final checkpoint is
# already written, and a resume picks up at the end and exports, equal to
# the uninterrupted run's model.
rm -rf "$LOGDIR/rv_sm_ck" "$LOGDIR/rv_sm_model"
run_np rv_save_fails 3 train "${RV[@]}" --steps 60 --checkpoint-dir "$LOGDIR/rv_sm_ck" \
    --checkpoint-every 1000 --save-model "$LOGDIR/rv_notadir/model"
save_rc=$RC
save_log=$LOG
run_np rv_save_resume 3 train "${RV[@]}" --steps 60 --checkpoint-dir "$LOGDIR/rv_sm_ck" \
    --checkpoint-every 1000 --resume --save-model "$LOGDIR/rv_sm_model"
if [ "$save_rc" -eq 2 ] && grep -q "rv_notadir/model" "$save_log" &&
    [ -f "$LOGDIR/rv_sm_ck/ckpt-60/MANIFEST" ] && [ "$RC" -eq 0 ] &&
    same_npy "$LOGDIR/rv_ref" "$LOGDIR/rv_sm_model"; then
    pass "save_model_failure_keeps_a_final_checkpoint_and_the_resume_exports_it"
else
    LOG=$save_log
    fail save_model_failure "save rc=$save_rc (want 2), resume rc=$RC"
fi
