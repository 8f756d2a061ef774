# Streamed libsvm training (sourced by tests/mpi/run.sh): a worker reads its
# byte range in chunks instead of loading it. It learns, two runs agree bit
# for bit, and a run killed mid-epoch resumes from its checkpoint to the
# same parameters as an uninterrupted one (the batcher re-reads the stream
# up to the resume point).
SV="$LOGDIR/stream.svm"
"$BIN" synth --synthetic rows=12000,features=40000,nnz=12,classes=2,noise=0.2 --seed 7 \
    --out "$SV" >"$LOGDIR/synth.log" 2>&1
ST=(--train "$SV" --test "$SV" --test-limit 2000 --model logreg --servers 1 --batch 32
    --lr 0.02 --steps 200 --stream on --quiet)
rm -rf "$LOGDIR/st_ref" "$LOGDIR/st_res" "$LOGDIR/st_ck"
run_np stream_learns 4 train "${ST[@]}" --save-model "$LOGDIR/st_ref"
acc=$(final_field test_acc)
if [ "$RC" -eq 0 ] && ge "$acc" 0.80; then
    pass "stream_learns (acc $acc)"
else
    fail stream_learns "rc=$RC acc=$acc (want >= 0.80)"
fi
ADAMPS_TEST_INJECT=crash-at-130 run_np stream_crash 4 train "${ST[@]}" \
    --checkpoint-dir "$LOGDIR/st_ck" --checkpoint-every 50
run_np stream_resume 4 train "${ST[@]}" --checkpoint-dir "$LOGDIR/st_ck" --resume \
    --save-model "$LOGDIR/st_res"
if [ "$RC" -eq 0 ] && [ -f "$LOGDIR/st_ck/ckpt-100/shard-0.bin" ] &&
    cmp -s "$LOGDIR/st_ref/w.npy" "$LOGDIR/st_res/w.npy" &&
    cmp -s "$LOGDIR/st_ref/b.npy" "$LOGDIR/st_res/b.npy"; then
    pass "stream_resume_bit_identical (resumed at clock 100, mid-epoch)"
else
    fail stream_resume_bit_identical "rc=$RC or parameters differ from the uninterrupted run"
fi
