# Bad input never takes the node down (issue 10), sourced by tests/mpi/run.sh
# (uses run_np, pass, fail, $LOGDIR, $BIN). Each malformed file, impossible
# table or budget too small exits 2 within seconds with one line naming the
# file:line or the table and the way out, and every rank's peak RSS stays
# small. Each rank runs under an address-space cap (prlimit --as; under
# SAN=1, which needs the address space, ASan's own RSS and malloc limits)
# so a regression fails the case instead of taking the machine.
BD="$LOGDIR/badinput"
mkdir -p "$BD"
PY=/usr/bin/python3
REAL_BIN=$BIN

# hwm.py OUT CMD...: runs CMD, appends its peak RSS in kB (ru_maxrss of the
# child) to OUT, forwards SIGTERM/SIGINT, exits with CMD's status.
cat >"$BD/hwm.py" <<'EOF'
import os, resource, signal, subprocess, sys
child = subprocess.Popen(sys.argv[2:])
for s in (signal.SIGTERM, signal.SIGINT):
    signal.signal(s, lambda sig, frame: child.send_signal(sig))
rc = child.wait()
with open(sys.argv[1], "a") as f:
    f.write("%d\n" % resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
sys.exit(rc if rc >= 0 else 128 - rc)
EOF

if [ "${SAN:-0}" = 1 ]; then
    CAP=()
    BAD_ASAN="${ASAN_OPTIONS:-}:hard_rss_limit_mb=1500:malloc_limit_mb=1500"
    TIME_MAX=60
else
    CAP=(prlimit --as=$((4 << 30)))
    BAD_ASAN="${ASAN_OPTIONS:-}"
    TIME_MAX=20
fi
PEAK_MAX_KB=300000 # a rank of a tiny job peaks at ~20 MB (~30 MB under ASan)

# run_bad NAME NP ARGS...: `adamps ARGS` on NP ranks, each capped and
# measured; sets RC, LOG, PEAK (largest rank's peak RSS, kB) and TOOK (s).
run_bad() {
    local name=$1 np=$2
    shift 2
    local hwm="$BD/$name.hwm"
    rm -f "$hwm"
    local t0=$(date +%s)
    ASAN_OPTIONS="$BAD_ASAN" BIN=$PY run_np "$name" "$np" "$BD/hwm.py" "$hwm" "${CAP[@]}" \
        "$REAL_BIN" "$@"
    TOOK=$(($(date +%s) - t0))
    PEAK=$(sort -n "$hwm" 2>/dev/null | tail -1)
    PEAK=${PEAK:-0}
}

# expect_bad NAME NP WANT ARGS...: run_bad, then exit 2, WANT (a grep -E
# pattern) in the log exactly once, quick and small.
expect_bad() {
    local name=$1 np=$2 want=$3
    shift 3
    run_bad "$name" "$np" "$@"
    local n
    n=$(grep -cE -- "$want" "$LOG")
    if [ "$RC" -eq 2 ] && [ "$n" -eq 1 ] && [ "$TOOK" -le "$TIME_MAX" ] &&
        [ "$PEAK" -gt 0 ] && [ "$PEAK" -le "$PEAK_MAX_KB" ]; then
        pass "$name (exit 2 in ${TOOK}s, peak $((PEAK / 1024)) MB: $(grep -oE -- "$want" "$LOG" | head -1 | cut -c1-110))"
    else
        fail "$name" "rc=$RC, '$want' seen $n times (want 1), ${TOOK}s, peak ${PEAK} kB"
    fi
}

SVM_OK="$BD/ok.svm"
printf '1 1:1 3:0.5\n0 2:1\n1 1:0.25\n' >"$SVM_OK"
LR=(--model logreg --servers 1 --steps 4 --batch 2 --quiet)

# 1. Issue 10: one huge id without --hash-bits. The scan stops at the id no
# table in the budget could hold, naming file:line and --hash-bits.
for id in 2147483647 2147483648 4294967297; do
    printf '0 1:1\n1 %s:1\n' "$id" >"$BD/huge-$id.svm"
    expect_bad "bad_huge_id_$id" 3 "huge-$id.svm:2: feature index $id needs a table .*--hash-bits" \
        train --train "$BD/huge-$id.svm" --test "$SVM_OK" "${LR[@]}"
done

# 2. A table the flags make too big: refused by the memory plan before any
# rank allocates it, one line (from one rank) naming the table, its rows and
# width, the bytes per server and the ways out.
HASH_WAY="Ways out: --hash-bits [0-9]+ \(2\^[0-9]+ rows fit\),"
SERVER_WAY="--servers [0-9]+ \(one per node, more nodes\), or --max-memory BYTES"
expect_bad bad_plan_features 3 \
    "not enough memory: table w \(2147483648 rows x 2\) takes 98.0 GiB on server 0 of 1.*$HASH_WAY --features N .*$SERVER_WAY" \
    train --train "$SVM_OK" --test "$SVM_OK" --features 2147483648 "${LR[@]}"
expect_bad bad_plan_synthetic_hash34 4 \
    "not enough memory: table w \(17179869184 rows x 2\) takes 392.0 GiB on server 0 of 2.*$HASH_WAY $SERVER_WAY" \
    train --synthetic rows=2000,features=1000,nnz=5,classes=2 --hash-bits 34 --model logreg \
    --servers 2 --steps 4 --quiet
expect_bad bad_plan_max_memory 3 "worker 0's data takes .* over --max-memory 64.0 MiB per rank.*--train-limit N" \
    train --dataset fashion-mnist --model logreg --steps 4 --max-memory 64M --quiet
run_np bad_max_memory_flag 2 train --dataset fashion-mnist --max-memory 12Q
if [ "$RC" -eq 2 ] && grep -q -- "--max-memory: '12Q' is not a byte count" "$LOG"; then
    pass bad_max_memory_flag
else
    fail bad_max_memory_flag "rc=$RC"
fi

# 3. IDX: sizes promised by the header against the file, trailing bytes,
# gzip members cut short or followed by garbage. idx.py NAME N BODY [gz]
# [extra] writes NAME-images-idx3-ubyte(.gz) promising N samples of 28x28
# with BODY bytes of data (and extra appended after the gzip stream), and
# NAME-labels-idx1-ubyte with N labels i % 5.
cat >"$BD/idx.py" <<'EOF'
import gzip, random, struct, sys
name, n, body = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
gz = len(sys.argv) > 4 and sys.argv[4] == "gz"
extra = sys.argv[5].encode() if len(sys.argv) > 5 else b""
rnd = random.Random(1)
data = struct.pack(">BBBBIII", 0, 0, 8, 3, n, 28, 28) + bytes(rnd.getrandbits(8) for _ in range(body))
path = name + "-images-idx3-ubyte" + (".gz" if gz else "")
with open(path, "wb") as f:
    f.write(gzip.compress(data) + extra if gz else data)
labels = struct.pack(">BBBBI", 0, 0, 8, 1, min(n, 100000)) + bytes(i % 5 for i in range(min(n, 100000)))
with open(name + "-labels-idx1-ubyte" + (".gz" if gz else ""), "wb") as f:
    f.write(gzip.compress(labels) if gz else labels)
EOF
idx() { "$PY" "$BD/idx.py" "$BD/$1" "${@:2}"; }
IDXR=(--model logreg --servers 1 --steps 4 --batch 8 --quiet)
# 1.6 TiB promised in an 800-byte file: never allocated.
idx huge 2147483647 784
expect_bad bad_idx_huge_header 3 "huge-images-idx3-ubyte: the header promises 2147483647 samples of 784 bytes .* but the file has 800" \
    train --train "$BD/huge-images-idx3-ubyte" --test "$BD/huge-images-idx3-ubyte" "${IDXR[@]}"
idx hugez 2147483647 784 gz
expect_bad bad_idx_huge_header_gz 3 "hugez-images-idx3-ubyte.gz: the header promises .* inflates to at most 1032 times" \
    train --train "$BD/hugez-images-idx3-ubyte.gz" --test "$BD/hugez-images-idx3-ubyte.gz" "${IDXR[@]}"
# 100 samples promised, 60 present (within what gzip could hold).
idx shortz 100 $((60 * 784)) gz
expect_bad bad_idx_short_gz 2 "shortz-images-idx3-ubyte.gz: truncated file" \
    train --train "$BD/shortz-images-idx3-ubyte.gz" --test "$BD/shortz-images-idx3-ubyte.gz" "${IDXR[@]}"
# 50 samples promised, 51 present.
idx long 50 $((51 * 784))
expect_bad bad_idx_trailing 3 "long-images-idx3-ubyte: 784 bytes after the 50 samples" \
    train --train "$BD/long-images-idx3-ubyte" --test "$BD/long-images-idx3-ubyte" "${IDXR[@]}"
idx garbz 50 $((50 * 784)) gz "not gzip"
expect_bad bad_idx_gz_garbage 2 "garbz-images-idx3-ubyte.gz: 8 bytes after the end of the gzip data .*trailing garbage" \
    train --train "$BD/garbz-images-idx3-ubyte.gz" --test "$BD/garbz-images-idx3-ubyte.gz" "${IDXR[@]}"
# 0 samples: the empty training set names the file.
idx five 60 $((60 * 784))
idx empty 0 0
expect_bad bad_idx_empty 3 "empty-images-idx3-ubyte: no samples .*the training set is empty" \
    train --train "$BD/empty-images-idx3-ubyte" --test "$BD/five-images-idx3-ubyte" "${IDXR[@]}"
# Classes come from the labels (0..4 here): 5, not 10.
run_np idx_counts_classes 3 train --train "$BD/five-images-idx3-ubyte" --test "$BD/five-images-idx3-ubyte" \
    --model logreg --servers 1 --steps 4 --batch 8
if [ "$RC" -eq 0 ] && grep -q "784 features, 5 classes" "$LOG" && grep -q "table 0 w: 784 x 5" "$LOG"; then
    pass "idx_counts_classes (labels 0..4: 5 classes)"
else
    fail idx_counts_classes "rc=$RC"
fi

# 4. libsvm values: hex floats, inf, nan, infinity (any case) name file:line.
n=0
for v in 0x1p3 inf NaN -Infinity; do
    n=$((n + 1))
    printf '1 1:1\n0 2:1\n1 3:%s\n' "$v" >"$BD/value-$n.svm"
    expect_bad "bad_value_$n" 3 "value-$n.svm:3: value '$v' of feature 3 is not a decimal number" \
        train --train "$BD/value-$n.svm" --test "$SVM_OK" --hash-bits 8 "${LR[@]}"
done

# 5. An empty libsvm training set names the file, hashed or scanned.
printf '# a comment\n\n' >"$BD/empty.svm"
for h in 0 8; do
    flags=()
    [ "$h" != 0 ] && flags=(--hash-bits "$h")
    expect_bad "bad_empty_svm_$h" 3 "empty.svm: no samples .*the training set is empty" \
        train --train "$BD/empty.svm" --test "$SVM_OK" "${flags[@]}" "${LR[@]}"
done

# 6. No full scan when --hash-bits or --features fixes the shape; the scan,
# when needed, says so with the file's size. --train-limit is the first N
# samples of a libsvm file, split over the workers: 100 of 1000 lines over 2
# workers of batch 10 are 5 steps per epoch.
"$PY" -c '
import sys
with open(sys.argv[1], "w") as f:
    f.write("# header\n")
    for i in range(1000):
        f.write("%d %d:1 %d:0.5\n" % (i % 2, i % 97 + 1, i % 89 + 100))
' "$BD/lines.svm"
size=$(stat -c %s "$BD/lines.svm")
run_np svm_scan_announced 3 train --train "$BD/lines.svm" --test "$SVM_OK" --model logreg --servers 1 --steps 2
if [ "$RC" -eq 0 ] && grep -q "scanning $BD/lines.svm ($size bytes) for its largest feature id" "$LOG"; then
    pass "svm_scan_announced ($size bytes)"
else
    fail svm_scan_announced "rc=$RC"
fi
n=0
for f in "--hash-bits 12" "--features 200"; do
    n=$((n + 1))
    run_np "svm_no_scan_$n" 3 train --train "$BD/lines.svm" --test "$SVM_OK" $f --model logreg \
        --servers 1 --steps 2
    if [ "$RC" -eq 0 ] && ! grep -q "scanning" "$LOG" && grep -q "memory plan: " "$LOG"; then
        pass "svm_no_scan ($f)"
    else
        fail "svm_no_scan ($f)" "rc=$RC"
    fi
done
for s in on off; do
    run_np "svm_train_limit_$s" 3 train --train "$BD/lines.svm" --test "$SVM_OK" --hash-bits 12 \
        --train-limit 100 --batch 10 --epochs 1 --stream "$s" --model logreg --servers 1
    if [ "$RC" -eq 0 ] && grep -q "100 train" "$LOG" && grep -q "training 5 steps (5 per epoch)" "$LOG"; then
        pass "svm_train_limit (stream $s: 100 samples, 5 steps per epoch)"
    else
        fail "svm_train_limit_$s" "rc=$RC"
    fi
done
