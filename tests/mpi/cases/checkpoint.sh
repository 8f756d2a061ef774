# Checkpoints (sourced by tests/mpi/run.sh): a BSP job killed mid-run and
# resumed from its last checkpoint ends bit-identical to one never killed,
# also when it resumes on more servers (re-sharding); a corrupt checkpoint
# is refused naming the file.
CK=(--dataset fashion-mnist --model mlp --hidden 32 --train-limit 2000 --test-limit 300
    --batch 32 --quiet --steps 40 --servers 1)
rm -rf "$LOGDIR/ck_ref" "$LOGDIR/ck1" "$LOGDIR/ck2" "$LOGDIR/ck3" "$LOGDIR/ck_m1" "$LOGDIR/ck_m2"
run_np ckpt_reference 3 train "${CK[@]}" --save-model "$LOGDIR/ck_ref"
ref_rc=$RC
ADAMPS_TEST_INJECT=crash-at-25 run_np ckpt_crash 3 train "${CK[@]}" \
    --checkpoint-dir "$LOGDIR/ck1" --checkpoint-every 10
crash_rc=$RC
cp -r "$LOGDIR/ck1" "$LOGDIR/ck2"
cp -r "$LOGDIR/ck1" "$LOGDIR/ck3"

same_model() {
    for t in w1 b1 w2 b2; do
        cmp -s "$LOGDIR/ck_ref/$t.npy" "$1/$t.npy" || return 1
    done
}

if [ "$ref_rc" -eq 0 ] && [ "$crash_rc" -ne 0 ] && [ -f "$LOGDIR/ck1/MANIFEST" ] &&
    [ -f "$LOGDIR/ck1/ckpt-20/shard-0.bin" ] && [ ! -e "$LOGDIR/ck1/ckpt-10" ]; then
    pass "ckpt_written (manifest names ckpt-20, ckpt-10 removed)"
else
    fail ckpt_written "reference rc=$ref_rc, crash rc=$crash_rc, files: $(ls -R "$LOGDIR/ck1" 2>&1 | tr '\n' ' ')"
fi

run_np ckpt_resume 3 train "${CK[@]}" --checkpoint-dir "$LOGDIR/ck1" --checkpoint-every 10 \
    --resume --save-model "$LOGDIR/ck_m1"
if [ "$RC" -eq 0 ] && same_model "$LOGDIR/ck_m1"; then
    pass "ckpt_resume_bit_identical"
else
    fail ckpt_resume_bit_identical "rc=$RC or parameters differ from the uninterrupted run"
fi

run_np ckpt_reshard 4 train "${CK[@]}" --servers 2 --checkpoint-dir "$LOGDIR/ck2" \
    --resume --save-model "$LOGDIR/ck_m2"
if [ "$RC" -eq 0 ] && same_model "$LOGDIR/ck_m2"; then
    pass "ckpt_resume_on_2_servers_from_1_bit_identical"
else
    fail ckpt_resume_on_2_servers_from_1 "rc=$RC or parameters differ"
fi

# Flip one byte in the middle of the shard's payload.
shard="$LOGDIR/ck3/ckpt-20/shard-0.bin"
size=$(stat -c %s "$shard")
printf '\x55' | dd of="$shard" bs=1 seek=$((size / 2)) conv=notrunc status=none
run_np ckpt_corrupt 3 train "${CK[@]}" --checkpoint-dir "$LOGDIR/ck3" --resume
if [ "$RC" -eq 2 ] && grep -q "shard-0.bin.*CRC" "$LOG"; then
    pass "ckpt_corrupt_refused"
else
    fail ckpt_corrupt_refused "rc=$RC (want 2 and a CRC error naming shard-0.bin)"
fi

run_np ckpt_workers_mismatch 4 train "${CK[@]}" --checkpoint-dir "$LOGDIR/ck2" --resume
if [ "$RC" -eq 2 ] && grep -q "written by 2 workers, this job has 3" "$LOG"; then
    pass "ckpt_worker_count_mismatch_refused"
else
    fail ckpt_worker_count_mismatch_refused "rc=$RC"
fi
