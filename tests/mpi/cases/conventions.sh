# The conventions of LIBLINEAR, scikit-learn, Vowpal Wabbit and cluster
# users, sourced by tests/mpi/run.sh (uses run_np, pass, fail,
# final_field, $LOGDIR, $BIN): a gzipped libsvm training file learns as the
# plain one does; +1/-1 labels come back from predict as +1/-1 (also with
# --proba, as LIBLINEAR's -b 1 writes them); --holdout trains on one file;
# --log-format json progress and final lines parse; the metrics file
# starts with its header record and every line has time_unix; model.npz
# and model.json load in Python; a hashed model scores outside adamps with
# the README's hash; adamps-launch finds adamps beside it; BLAS threads
# that oversubscribe the cores are warned about.

PY=/usr/bin/python3
CV="$LOGDIR/conv"

# py_verdict NAME RC OUT: passes NAME when RC is 0 and the Python check's
# output OUT starts with "ok".
py_verdict() {
    if [ "$2" -eq 0 ] && [ "${3%% *}" = ok ]; then
        pass "$1 ($3)"
    else
        fail "$1" "rc=$2 $3"
    fi
}
rm -rf "$CV"
mkdir -p "$CV"

# Data: synthetic libsvm, labels 0/1; the same with +1/-1 labels, and
# gzipped. 4000 training lines, 1000 test lines.
"$BIN" synth --synthetic rows=5000,features=2000,nnz=10,classes=2,noise=0.2 --seed 3 \
    --out "$CV/all.svm" >"$CV/synth.log" 2>&1
head -n 4000 "$CV/all.svm" >"$CV/train.svm"
tail -n 1000 "$CV/all.svm" >"$CV/test.svm"
for f in train test; do
    awk '{ $1 = ($1 == 1 ? "+1" : "-1"); print }' "$CV/$f.svm" >"$CV/$f-pm.svm"
done
gzip -c "$CV/train.svm" >"$CV/train.svm.gz"
gzip -c "$CV/test-pm.svm" >"$CV/test-pm.svm.gz"
CVARGS=(--model logreg --batch 64 --lr 0.05 --servers 1)

# 1. gzip: the same job on the gzipped file (split by lines, not bytes)
# learns like the plain one.
run_np conv_plain 3 train "${CVARGS[@]}" --epochs 2 --quiet --train "$CV/train.svm" --test "$CV/test.svm"
plain_acc=$(final_field test_acc)
run_np conv_gzip 3 train "${CVARGS[@]}" --epochs 2 --quiet --train "$CV/train.svm.gz" --test "$CV/test.svm" \
    --hash-bits 12
gz_acc=$(final_field test_acc)
if [ "$RC" -eq 0 ] && ge "$gz_acc" 0.75 && ge "$plain_acc" 0.75; then
    pass "conv_gzip_libsvm_learns (acc $gz_acc, plain $plain_acc)"
else
    fail conv_gzip_libsvm_learns "rc=$RC acc=$gz_acc plain=$plain_acc (want >= 0.75)"
fi

# 2. +1/-1 labels: two classes (no unused 0), predicted back as +1/-1;
# --proba writes "labels -1 1" and label, p(-1), p(+1) per line.
rm -rf "$CV/pm-model"
run_np conv_pm_train 3 train "${CVARGS[@]}" --epochs 2 --quiet --train "$CV/train-pm.svm" \
    --test "$CV/test-pm.svm.gz" --save-model "$CV/pm-model"
pm_acc=$(final_field test_acc)
LOG="$LOGDIR/conv_pm_predict.log"
"$BIN" predict --model "$CV/pm-model" --test "$CV/test-pm.svm.gz" --out "$CV/pm.pred" \
    >"$LOG" 2>&1
RC=$?
pred_acc=$(grep '^loss=' "$LOG" | tr ' ' '\n' | grep '^accuracy=' | cut -d= -f2)
# The file's accuracy against the test labels, in the labels' own terms.
file_acc=$(paste -d' ' "$CV/pm.pred" <(cut -d' ' -f1 "$CV/test-pm.svm") |
    awk '{ n++; if ($1 != "-1" && $1 != "1") bad++; if ($1 + 0 == $2 + 0) ok++ }
         END { if (bad) print "bad"; else printf "%.6f", ok / n }')
if [ "$RC" -eq 0 ] && [ "$(wc -l <"$CV/pm.pred")" -eq 1000 ] && [ "$file_acc" != bad ] &&
    awk -v a="$file_acc" -v b="$pred_acc" -v c="$pm_acc" \
        'BEGIN { exit !(a - b < 1e-6 && b - a < 1e-6 && a - c < 1e-4 && c - a < 1e-4) }'; then
    pass "conv_pm_labels_predicted_as_pm (accuracy $file_acc from the +1/-1 file)"
else
    fail conv_pm_labels_predicted_as_pm "rc=$RC file=$file_acc predict=$pred_acc train=$pm_acc"
fi
LOG="$LOGDIR/conv_pm_proba.log"
"$BIN" predict --model "$CV/pm-model" --test "$CV/test-pm.svm" --out "$CV/pm.proba" \
    --proba >"$LOG" 2>&1
RC=$?
proba_ok=$(awk 'NR == 1 { if ($0 != "labels -1 1") { print "header: " $0; exit } next }
    { s = $2 + $3; if (NF != 3 || s < 0.9999 || s > 1.0001) { print "line " NR ": " $0; exit }
      if (($2 > $3 ? -1 : 1) != $1 && $2 != $3) { print "argmax " NR ": " $0; exit } }
    END { if (NR != 1001) print "lines " NR }' "$CV/pm.proba")
if [ "$RC" -eq 0 ] && [ -z "$proba_ok" ] &&
    cmp -s <(tail -n +2 "$CV/pm.proba" | cut -d' ' -f1) "$CV/pm.pred"; then
    pass "conv_pm_proba_like_liblinear_b1"
else
    fail conv_pm_proba_like_liblinear_b1 "rc=$RC ${proba_ok:-labels differ from those of --out}"
fi

# 3. --holdout on one file: no --test; the run header and the metrics say
# held-out; the evaluation set is about the fraction.
rm -f "$CV/hold.jsonl"
run_np conv_holdout 3 train "${CVARGS[@]}" --epochs 2 --train "$CV/train-pm.svm" --holdout 0.2 \
    --metrics "$CV/hold.jsonl" --log-every 10
h_acc=$(final_field test_acc)
held=$(sed -n 's/.* \([0-9][0-9]*\) held-out samples.*/\1/p' "$LOG" | head -1)
if [ "$RC" -eq 0 ] && ge "$h_acc" 0.75 && [ -n "$held" ] && [ "$held" -gt 700 ] &&
    [ "$held" -lt 900 ]; then
    pass "conv_holdout_without_test (acc $h_acc on $held held-out of 4000)"
else
    fail conv_holdout_without_test "rc=$RC acc=$h_acc held=$held (want ~800)"
fi
# The same on IDX data: a 10% slice of the first 2000 images.
run_np conv_holdout_idx 3 train --dataset fashion-mnist --model logreg --train-limit 2000 \
    --holdout 0.1 --batch 32 --lr 0.01 --steps 40 --servers 1
held=$(sed -n 's/.* \([0-9][0-9]*\) held-out samples.*/\1/p' "$LOG" | head -1)
if [ "$RC" -eq 0 ] && [ -n "$(final_field test_acc)" ] && [ -n "$held" ] && [ "$held" -gt 150 ] &&
    [ "$held" -lt 250 ]; then
    pass "conv_holdout_idx ($held held-out images of 2000)"
else
    fail conv_holdout_idx "rc=$RC held=$held"
fi

# 4. The metrics file: a header record first (its run id the run header's),
# time_unix on every line, train_loss_ma records every 10 steps.
if [ -x "$PY" ]; then
    run_id=$(sed -n 's/.* train, run \([0-9a-f]\{16\}\):.*/\1/p' "$LOGDIR/conv_holdout.log")
    out=$("$PY" - "$CV/hold.jsonl" "$run_id" <<'EOF' 2>&1
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
h = rows[0]
assert h["event"] == "header" and h["run_id"] == sys.argv[2], h
assert h["time"].endswith("Z") and h["time"][10] == "T", h["time"]
assert isinstance(h["config"], dict) and h["config"]["holdout"] == 0.2, h["config"]
assert h["config"]["quiet"] is False and h["config"]["batch"] == 64, h["config"]
assert all(isinstance(r["time_unix"], float) for r in rows), "time_unix"
assert all(r["time_unix"] >= h["time_unix"] for r in rows), "time_unix order"
train = [r["step"] for r in rows if r.get("event") == "train_loss_ma"]
assert train and all(s % 10 == 0 for s in train), train
assert all("train_loss_ma" in r and "time_s" in r for r in rows if r.get("event") == "train_loss_ma")
evals = [r for r in rows if "event" not in r]
assert evals and all("test_acc" in r for r in evals), evals
print("ok %d lines, %d train_loss_ma records" % (len(rows), len(train)))
EOF
    )
    py_verdict conv_metrics_header_and_records 0 "$out"
else
    echo "skip conv_metrics_header_and_records: $PY not found"
fi

# 5. --log-format json: progress lines with their numbers as fields, and a
# JSON final line on stdout.
run_np conv_log_json 3 train "${CVARGS[@]}" --epochs 2 --train "$CV/train.svm" \
    --test "$CV/test.svm" --log-format json --progress-every 0
if [ -x "$PY" ]; then
    out=$("$PY" - "$LOG" <<'EOF' 2>&1
import json, re, sys
prog, final = [], None
for line in open(sys.argv[1]):
    if not line.startswith("{"):
        continue  # lines from mpirun itself
    o = json.loads(line)
    if o.get("event") == "progress":
        prog.append(o)
    elif o.get("event") == "final":
        final = o
assert prog, "no progress lines"
for p in prog:
    for k in ("step", "epoch", "samples_per_sec", "train_loss_ma", "eta_s", "eta", "level", "msg"):
        assert k in p, (k, p)
    assert re.fullmatch(r"\d+:\d\d:\d\d|-:--:--", p["eta"]), p["eta"]
assert prog[-1]["step"] == prog[-1]["steps_total"], prog[-1]
assert final and final["step"] == prog[-1]["steps_total"] and final["test_acc"] > 0.7, final
assert len(final["run_id"]) == 16, final
print("ok %d progress lines" % len(prog))
EOF
    )
    py_verdict conv_log_format_json_parses "$RC" "$out"
else
    echo "skip conv_log_format_json_parses: $PY not found"
fi

# 6. A hashed model: model.npz equals the .npy files, model.json is typed
# and states the hash, and scoring the test file in Python with the
# README's hash and the npz gives adamps predict's labels.
rm -rf "$CV/hash-model"
run_np conv_hash_train 3 train "${CVARGS[@]}" --epochs 2 --quiet --train "$CV/train-pm.svm" \
    --test "$CV/test-pm.svm" --hash-bits 10 --save-model "$CV/hash-model"
"$BIN" predict --model "$CV/hash-model" --test "$CV/test-pm.svm" --out "$CV/hash.pred" \
    >"$LOGDIR/conv_hash_predict.log" 2>&1
hrc=$?
if [ -x "$PY" ] && "$PY" -c 'import numpy' >/dev/null 2>&1; then
    sed -n '/^  ```python$/,/^  ```$/p' README.md | sed '1d;$d;s/^  //' >"$CV/fhash.py"
    out=$("$PY" - "$CV/hash-model" "$CV/test-pm.svm" "$CV/hash.pred" "$CV/fhash.py" <<'EOF' 2>&1
import json, os, sys
import numpy as np
d, test, pred, ref = sys.argv[1:5]
exec(open(ref).read())  # fhash, from the README
m = json.load(open(os.path.join(d, "model.json")))
assert m["labels"] == [-1, 1] and m["hash_bits"] == 10, m
fh = m["feature_hash"]
assert int(fh["seed"], 16) == SEED and fh["bits"] == 10, fh
assert m["config"]["hash_bits"] == 10 and m["config"]["zero_based"] is False, m["config"]
z = np.load(os.path.join(d, "model.npz"))
for t in m["tables"]:
    assert (z[t["name"]] == np.load(os.path.join(d, t["file"]))).all(), t["name"]
w, b = z["w"], z["b"][0]
got = []
for line in open(test):
    f = line.split()
    zz = b.astype(np.float64).copy()
    for tok in f[1:]:
        i, v = tok.split(":")
        zz += float(v) * w[fhash(int(i) - 1, 10)]
    got.append(m["labels"][int(np.argmax(zz))])
want = [int(l) for l in open(pred)]
same = sum(g == p for g, p in zip(got, want))
assert len(got) == len(want) and same >= len(want) - 2, (same, len(want))
print("ok %d of %d labels as adamps predicts" % (same, len(want)))
EOF
    )
    py_verdict conv_hashed_model_served_in_python "$hrc" "$out"
else
    echo "skip conv_hashed_model_served_in_python: numpy not found for $PY"
fi

# 7. An installed adamps-launch finds the adamps beside it (no ./adamps,
# none on PATH).
mkdir -p "$CV/prefix/bin" "$CV/elsewhere"
cp deploy/launch "$CV/prefix/bin/adamps-launch"
ln -sf "$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")" "$CV/prefix/bin/adamps"
LOG="$LOGDIR/conv_launch.log"
(cd "$CV/elsewhere" && PATH=/usr/bin:/bin MPIRUN="$(command -v mpirun)" \
    timeout 120 "$CV/prefix/bin/adamps-launch" -n 2 --restarts 0 -- --model logreg \
    --synthetic rows=500,features=100,nnz=5,classes=2 --steps 3 --quiet) >"$LOG" 2>&1
RC=$?
if [ "$RC" -eq 0 ] && grep -q '^final ' "$LOG"; then
    pass "conv_installed_launch_finds_adamps"
else
    fail conv_installed_launch_finds_adamps "rc=$RC"
fi

# 8. Two BLAS threads in each of 3 ranks on this machine's cores: the run
# header warns, naming the counts.
cores=$(nproc)
OPENBLAS_NUM_THREADS=2 run_np conv_blas_warning 3 train "${CVARGS[@]}" \
    --train "$CV/train.svm" --test "$CV/test.svm" --steps 2
if [ "$cores" -ge 6 ]; then
    echo "skip conv_blas_warning: $cores cores hold 3 ranks x 2 threads"
elif [ "$RC" -eq 0 ] && grep -q "3 ranks x 2 OpenBLAS threads = 6 threads on this node's $cores cores" "$LOG"; then
    pass conv_blas_oversubscription_warned
else
    fail conv_blas_oversubscription_warned "rc=$RC, no warning"
fi
