# --eval-samples (sourced by tests/mpi/run.sh): evaluations before the final
# one score the first N test samples, the final one all of them; training
# is the same with or without it (same final line, same model).
EV=(--dataset fashion-mnist --model logreg --train-limit 2000 --test-limit 500 --batch 32
    --lr 0.01 --quiet --servers 1 --steps 60 --eval-every 20)
rm -rf "$LOGDIR"/ev_*
run_np ev_all 3 train "${EV[@]}" --save-model "$LOGDIR/ev_all_model"
all_final=$(grep "^final " "$LOG" | sed 's/ time_s=.*//')
run_np ev_some 3 train "${EV[@]}" --eval-samples 100 --metrics "$LOGDIR/ev_some.jsonl" \
    --save-model "$LOGDIR/ev_some_model"
some_final=$(grep "^final " "$LOG" | sed 's/ time_s=.*//')
counts=$(python3 - "$LOGDIR/ev_some.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
print(" ".join(f"{r['step']}:{r['test_samples']}" for r in rows if "test_samples" in r))
PY
)
if [ "$RC" -eq 0 ] && [ "$counts" = "20:100 40:100 60:500" ] && [ -n "$all_final" ] &&
    [ "$some_final" = "$all_final" ] && same_npy "$LOGDIR/ev_all_model" "$LOGDIR/ev_some_model"; then
    pass "eval_samples_bounds_periodic_evaluations_final_on_all ($counts)"
else
    fail eval_samples "rc=$RC counts '$counts' (want 20:100 40:100 60:500), finals '$some_final' vs '$all_final'"
fi
