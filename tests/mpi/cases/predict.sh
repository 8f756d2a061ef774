# adamps predict, sourced by tests/mpi/run.sh (uses run_np, pass, fail,
# final_field, $LOGDIR, $BIN, SMALL). A model saved by a training run scores
# the same 500-sample test slice to the same accuracy as that run's final
# evaluation; its classes file has one class per line and agrees with that
# accuracy; its .npy tables load in numpy with model.json's shapes. predict
# reads model.bin alone, and refuses a corrupt one. predict is a single
# process: no mpirun.

PY=/usr/bin/python3

# run_predict NAME ARGS...: runs `$BIN predict ARGS...` into $LOGDIR/NAME.log;
# sets RC and LOG like run_np.
run_predict() {
    local name=$1
    shift
    LOG="$LOGDIR/$name.log"
    timeout --kill-after=10 "$CASE_TIMEOUT" "$BIN" predict "$@" >"$LOG" 2>&1
    RC=$?
}

# predict_field KEY: the value of KEY=... on predict's result line.
predict_field() {
    grep '^loss=' "$LOG" | tail -1 | tr ' ' '\n' | grep "^$1=" | cut -d= -f2
}

# predict_case NAME TRAIN_ARGS...: trains with TRAIN_ARGS and --save-model,
# then predicts on the training run's test slice and checks the outcome.
predict_case() {
    local name=$1
    shift
    local pm="$LOGDIR/pm_$name" pred="$LOGDIR/pred_$name.txt"
    rm -rf "$pm" "$pred"
    run_np "predict_train_$name" 3 train "${SMALL[@]}" --servers 1 --steps 60 "$@" \
        --save-model "$pm"
    local train_rc=$RC train_acc
    train_acc=$(final_field test_acc)
    if [ "$train_rc" -ne 0 ] || [ -z "$train_acc" ] || [ ! -f "$pm/model.json" ] ||
        [ ! -f "$pm/model.bin" ]; then
        fail "predict_$name" "training with --save-model failed (rc=$train_rc)"
        return
    fi

    run_predict "predict_$name" --model "$pm" --dataset fashion-mnist --test-limit 500 \
        --out "$pred"
    local acc samples lines bad
    acc=$(predict_field accuracy)
    samples=$(predict_field samples)
    lines=$(wc -l <"$pred" 2>/dev/null || echo 0)
    bad=$(grep -cvE '^[0-9]$' "$pred" 2>/dev/null)
    if [ "$RC" -eq 0 ] && [ -n "$acc" ] &&
        awk -v a="$acc" -v b="$train_acc" 'BEGIN { d = a - b; exit !(d < 0.00005 && d > -0.00005) }' &&
        [ "$samples" = 500 ] && [ "$lines" -eq 500 ] && [ "$bad" = 0 ]; then
        pass "predict_$name (accuracy $acc = train test_acc $train_acc, 500 classes in 0..9)"
    else
        fail "predict_$name" "rc=$RC accuracy=$acc train test_acc=$train_acc samples=$samples \
lines=$lines non-class lines=$bad"
        return
    fi

    if ! [ -x "$PY" ]; then
        echo "skip predict_${name}_files: $PY not found"
        return
    fi
    # The classes file scores the printed accuracy against the IDX labels
    # (the per-sample path must agree with the evaluation path).
    local fileacc
    fileacc=$("$PY" - "$pred" "$FM/t10k-labels-idx1-ubyte.gz" <<'EOF'
import gzip, sys
pred = [int(l) for l in open(sys.argv[1])]
lab = gzip.open(sys.argv[2]).read()[8:8 + len(pred)]
print("%.6f" % (sum(p == l for p, l in zip(pred, lab)) / len(pred)))
EOF
    )
    if [ "$fileacc" = "$acc" ]; then
        pass "predict_${name}_classes_match_labels (accuracy $fileacc)"
    else
        fail "predict_${name}_classes_match_labels" "accuracy from $pred is $fileacc, printed $acc"
    fi
    if ! "$PY" -c 'import numpy' >/dev/null 2>&1; then
        echo "skip predict_${name}_npy: numpy not found for $PY"
        return
    fi
    local out
    out=$("$PY" - "$pm" <<'EOF' 2>&1
import json, os, sys
import numpy as np
d = sys.argv[1]
meta = json.load(open(os.path.join(d, "model.json")))
for t in meta["tables"]:
    a = np.load(os.path.join(d, t["file"]))
    assert a.dtype == np.float32, (t["name"], a.dtype)
    assert list(a.shape) == t["shape"], (t["name"], a.shape, t["shape"])
    assert np.isfinite(a).all(), t["name"]
print("ok %d tables" % len(meta["tables"]))
EOF
    )
    if [ "${out%% *}" = ok ]; then
        pass "predict_${name}_npy_loads_in_numpy ($out)"
    else
        fail "predict_${name}_npy_loads_in_numpy" "$out"
    fi
}

predict_case logreg
predict_case mlp --model mlp --hidden 32

# model.bin is all predict reads: alone in a directory it gives the same
# accuracy as the full export.
rm -rf "$LOGDIR/pm_bin_only"
if [ -f "$LOGDIR/pm_logreg/model.bin" ]; then
    mkdir -p "$LOGDIR/pm_bin_only"
    cp "$LOGDIR/pm_logreg/model.bin" "$LOGDIR/pm_bin_only/"
    run_predict predict_bin_only --model "$LOGDIR/pm_bin_only" --dataset fashion-mnist \
        --test-limit 500
    only_acc=$(predict_field accuracy)
    run_predict predict_bin_full --model "$LOGDIR/pm_logreg" --dataset fashion-mnist \
        --test-limit 500
    full_acc=$(predict_field accuracy)
    if [ -n "$only_acc" ] && [ "$only_acc" = "$full_acc" ]; then
        pass "predict_reads_only_model_bin (accuracy $only_acc)"
    else
        fail predict_reads_only_model_bin "model.bin alone: $only_acc, full directory: $full_acc"
    fi
fi

# Bad input: exit 2 with one line naming the file and the check that failed.
# One payload bit flipped (the last byte, a bias value) fails the CRC.
rm -rf "$LOGDIR/pm_bad"
if [ -d "$LOGDIR/pm_logreg" ]; then
    cp -r "$LOGDIR/pm_logreg" "$LOGDIR/pm_bad"
    bin="$LOGDIR/pm_bad/model.bin"
    size=$(stat -c %s "$bin")
    byte=$(od -An -tu1 -j $((size - 1)) -N1 "$bin" | tr -d ' ')
    # shellcheck disable=SC2059 # the format is the octal escape built here
    printf "$(printf '\\%03o' $((byte ^ 1)))" |
        dd of="$bin" bs=1 seek=$((size - 1)) conv=notrunc 2>/dev/null
    run_predict predict_corrupt_model --model "$LOGDIR/pm_bad" --dataset fashion-mnist \
        --test-limit 10
    if [ "$RC" -eq 2 ] && grep -q "pm_bad/model.bin: bad file: CRC check failed" "$LOG"; then
        pass predict_corrupt_model_exits_2
    else
        fail predict_corrupt_model_exits_2 "rc=$RC, wanted 2 and a CRC message naming model.bin"
    fi
fi
run_predict predict_no_model --model "$LOGDIR/no-such-model" --dataset fashion-mnist
if [ "$RC" -eq 2 ] && grep -q "no-such-model/model.bin" "$LOG"; then
    pass predict_missing_model_exits_2
else
    fail predict_missing_model_exits_2 "rc=$RC, wanted 2 and the missing file's name"
fi
