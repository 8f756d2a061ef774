# Checkpoints (sourced by tests/mpi/run.sh): a BSP job killed mid-run and
# resumed from its last checkpoint ends bit-identical to one never killed,
# also when it resumes on more servers (re-sharding) or with another shard
# mode; the newest K checkpoints are kept; a corrupt newest checkpoint
# falls back to the one before (saying so) and still ends bit-identical;
# when none verifies, the resume is refused naming the file (exit 2).
CK=(--dataset fashion-mnist --model mlp --hidden 32 --train-limit 2000 --test-limit 300
    --batch 32 --quiet --steps 40 --servers 1)
rm -rf "$LOGDIR"/ck_* "$LOGDIR"/ck[0-9]*
run_np ckpt_reference 3 train "${CK[@]}" --save-model "$LOGDIR/ck_ref"
ref_rc=$RC
ADAMPS_TEST_INJECT=crash-at-25 run_np ckpt_crash 3 train "${CK[@]}" \
    --checkpoint-dir "$LOGDIR/ck1" --checkpoint-every 10
crash_rc=$RC
for d in ck2 ck3 ck4 ck5 ck6; do
    cp -r "$LOGDIR/ck1" "$LOGDIR/$d"
done

same_model() {
    same_npy "$LOGDIR/ck_ref" "$1"
}

# How replies are cut into pieces changes no bit: 1K-float pieces (W1,
# 784 x 32, in 25) end where the default's one piece per table does.
run_np reply_chunk_bit_identical 3 train "${CK[@]}" --reply-chunk 1024 \
    --save-model "$LOGDIR/ck_chunk"
if [ "$RC" -eq 0 ] && same_model "$LOGDIR/ck_chunk"; then
    pass "reply_chunk_bit_identical (--reply-chunk 1024)"
else
    fail reply_chunk_bit_identical "rc=$RC or parameters differ from the default piece size"
fi

if [ "$ref_rc" -eq 0 ] && [ "$crash_rc" -ne 0 ] && [ -f "$LOGDIR/ck1/MANIFEST" ] &&
    [ -f "$LOGDIR/ck1/ckpt-20/MANIFEST" ] && [ -f "$LOGDIR/ck1/ckpt-10/shard-0.bin" ] &&
    grep -q ckpt-20 "$LOGDIR/ck1/MANIFEST" && [ ! -e "$LOGDIR/ck1/ckpt-30" ]; then
    pass "ckpt_written (ckpt-10 and ckpt-20 kept, the manifest names ckpt-20)"
else
    fail ckpt_written "reference rc=$ref_rc, crash rc=$crash_rc, files: $(ls -R "$LOGDIR/ck1" 2>&1 | tr '\n' ' ')"
fi

run_np ckpt_resume 3 train "${CK[@]}" --checkpoint-dir "$LOGDIR/ck1" --checkpoint-every 10 \
    --resume --save-model "$LOGDIR/ck_m1"
if [ "$RC" -eq 0 ] && same_model "$LOGDIR/ck_m1" && grep -q "resuming from .*ckpt-20" "$LOG"; then
    pass "ckpt_resume_bit_identical"
else
    fail ckpt_resume_bit_identical "rc=$RC or parameters differ from the uninterrupted run"
fi
# It went on to 30 and the final checkpoint at 40; the newest two remain.
if [ -f "$LOGDIR/ck1/ckpt-40/MANIFEST" ] && [ -f "$LOGDIR/ck1/ckpt-30/MANIFEST" ] &&
    [ ! -e "$LOGDIR/ck1/ckpt-20" ] && [ ! -e "$LOGDIR/ck1/ckpt-10" ]; then
    pass "ckpt_keeps_newest_two_and_a_final_one"
else
    fail ckpt_keeps_newest_two_and_a_final_one "files: $(ls "$LOGDIR/ck1" | tr '\n' ' ')"
fi

run_np ckpt_reshard 4 train "${CK[@]}" --servers 2 --checkpoint-dir "$LOGDIR/ck2" \
    --resume --save-model "$LOGDIR/ck_m2"
if [ "$RC" -eq 0 ] && same_model "$LOGDIR/ck_m2"; then
    pass "ckpt_resume_on_2_servers_from_1_bit_identical"
else
    fail ckpt_resume_on_2_servers_from_1 "rc=$RC or parameters differ"
fi

# --shard changed on resume: re-sharded like a change of server count.
run_np ckpt_shard_change 3 train "${CK[@]}" --shard hash --checkpoint-dir "$LOGDIR/ck6" \
    --resume --save-model "$LOGDIR/ck_m6"
if [ "$RC" -eq 0 ] && same_model "$LOGDIR/ck_m6"; then
    pass "ckpt_resume_with_another_shard_mode_bit_identical"
else
    fail ckpt_resume_with_another_shard_mode "rc=$RC or parameters differ"
fi

# Flip one byte in the middle of the newest shard's payload: the resume
# says ckpt-20 does not verify and takes ckpt-10, and still ends the same.
flip() { # flip FILE OFFSET
    printf '\x55' | dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}
shard="$LOGDIR/ck3/ckpt-20/shard-0.bin"
flip "$shard" $(($(stat -c %s "$shard") / 2))
run_np ckpt_corrupt_falls_back 3 train "${CK[@]}" --checkpoint-dir "$LOGDIR/ck3" --resume \
    --save-model "$LOGDIR/ck_m3"
if [ "$RC" -eq 0 ] && grep -q "ckpt-20/shard-0.bin.*CRC" "$LOG" &&
    grep -q "ckpt-20 does not verify" "$LOG" && grep -q "resuming from .*ckpt-10" "$LOG" &&
    same_model "$LOGDIR/ck_m3"; then
    pass "ckpt_corrupt_newest_falls_back_to_previous_bit_identical"
else
    fail ckpt_corrupt_newest_falls_back "rc=$RC (want 0, ckpt-20 skipped naming its CRC, ckpt-10 taken)"
fi

# A byte of a header (the clock field region) edited, in both checkpoints:
# refused naming the header CRC, and nothing left to resume (exit 2).
for c in 10 20; do
    flip "$LOGDIR/ck4/ckpt-$c/shard-0.bin" 20
done
run_np ckpt_header_edit 3 train "${CK[@]}" --checkpoint-dir "$LOGDIR/ck4" --resume
if [ "$RC" -eq 2 ] && grep -q "ckpt-20/shard-0.bin: bad file: header CRC check failed" "$LOG" &&
    grep -q "none of the 2 checkpoints" "$LOG"; then
    pass "ckpt_header_edit_refused"
else
    fail ckpt_header_edit_refused "rc=$RC (want 2 and a header CRC error naming the shard)"
fi

run_np ckpt_workers_mismatch 4 train "${CK[@]}" --checkpoint-dir "$LOGDIR/ck2" --resume
if [ "$RC" -eq 2 ] && grep -q "written by 2 workers, this job has 3" "$LOG"; then
    pass "ckpt_worker_count_mismatch_refused"
else
    fail ckpt_worker_count_mismatch_refused "rc=$RC"
fi
