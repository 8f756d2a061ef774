#!/usr/bin/env bash
# deploy/experiments and deploy/experiments-data without training: the
# metrics reader keeps only evaluation records (a crafted file with the
# header, --log-every, resumed and summary records and a step rerun after a
# resume) and names file and line of a bad one; spam2svm writes the same
# bytes whatever the order of the archive's members, with rows in MD5 order
# of the message text; the runner refuses a binary without --eval-train and
# passes --eval-train to every training run (--dry-run with a stand-in
# binary). Prints one pass/fail line and exits non-zero on failure.
set -u
here=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/adamps-test-exp.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
fails=()

fail() {
    fails+=("$1")
}

# --- the metrics reader ---
cat >"$tmp/m.jsonl" <<'EOF'
{"event":"header","time":"2026-12-02T10:00:00.000Z","time_unix":1.8e9,"run_id":"ab","adamps_version":"0.3.0","config":{"lr":0.001}}
{"event":"train_loss_ma","step":5,"epoch":0.5,"time_s":0.1,"train_loss_ma":2.3,"time_unix":1.8e9}
{"step":10,"epoch":1.0,"time_s":0.2,"train_loss_ma":2.0,"train_nll":1.5,"test_loss":1.6,"test_acc":0.5}
{"step":20,"epoch":2.0,"time_s":0.4,"train_loss_ma":1.4,"train_nll":1.1,"test_loss":1.2,"test_acc":0.6}

{"event":"resumed","checkpoint":"ckpt-10","resume_step":10}
{"step":20,"epoch":2.0,"time_s":0.5,"train_loss_ma":1.4,"train_nll":1.0,"test_loss":1.2,"test_acc":0.6}
{"step":30,"epoch":3.0,"time_s":0.6,"train_loss_ma":1.2,"train_nll":0.9,"test_loss":1.1,"test_acc":0.7}
{"event":"summary","samples_per_sec":1000.0,"samples_total":300,"wall_time_s":0.7,"workers":2,"servers":1}
EOF
printf '%s\n' '{"event":"header","run_id":"cd"}' '{"step":1,"epoch":0.1,"train_nll":1}' \
    '{"step":2,"epoch":0.2,' >"$tmp/bad.jsonl"
if ! out=$(python3 - "$here/deploy/experiments" "$tmp" 2>&1 <<'EOF'
import importlib.machinery, importlib.util, sys
loader = importlib.machinery.SourceFileLoader("experiments", sys.argv[1])
spec = importlib.util.spec_from_loader("experiments", loader)
exp = importlib.util.module_from_spec(spec)
loader.exec_module(exp)
lines = exp.read_metrics(sys.argv[2] + "/m.jsonl")
print("steps", [x["step"] for x in lines])
print("nll", [x["train_nll"] for x in lines])
try:
    exp.read_metrics(sys.argv[2] + "/bad.jsonl")
    print("bad: accepted")
except ValueError as e:
    print("bad:", e)
EOF
); then
    fail "reader: python failed: $(tr '\n' ' ' <<<"$out")"
else
    grep -qx 'steps \[10, 20, 30\]' <<<"$out" ||
        fail "reader: evaluation steps are not 10, 20, 30: $(tr '\n' ' ' <<<"$out")"
    # Step 20 was evaluated twice; the record after the resume wins.
    grep -qx 'nll \[1.5, 1.0, 0.9\]' <<<"$out" ||
        fail "reader: train_nll is not 1.5, 1.0, 0.9: $(tr '\n' ' ' <<<"$out")"
    grep -q "bad: .*bad.jsonl:3: not JSON" <<<"$out" ||
        fail "reader: a bad line is not reported as bad.jsonl:3: $(tr '\n' ' ' <<<"$out")"
fi

# --- spam2svm: the same output from archives in two member orders ---
if ! python3 - "$tmp" 2>"$tmp/mk.err" <<'EOF'
import io, json, sys, tarfile
msgs = [("spam-1", "00001", "Subject: cheap pills\n\nbuy cheap pills now now"),
        ("easy-ham-1", "00001", "Subject: meeting\n\nthe meeting is at noon"),
        ("spam-2", "00007", "Subject: winner\n\nyou are a winner claim now"),
        ("hard-ham-1", "00003", "Subject: newsletter\n\ncheap flights this week"),
        ("easy-ham-2", "00002", "Subject: lunch\n\nlunch at noon then the meeting")]
for name, order in (("a", msgs), ("b", msgs[::-1])):
    with tarfile.open("%s/%s.tgz" % (sys.argv[1], name), "w:gz") as tar:
        for group, mid, text in order:
            data = json.dumps({"id": mid, "group": group, "text": text}).encode()
            info = tarfile.TarInfo("package/data/%s/%s.json" % (group, mid))
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
EOF
then
    fail "spam2svm: could not build the archives: $(tr '\n' ' ' <"$tmp/mk.err")"
fi
s2s="$here/deploy/experiments-data/spam2svm.py"
for x in a b; do
    python3 "$s2s" "$tmp/$x.tgz" "$tmp/svm-$x" --test-fraction 0 >"$tmp/s2s-$x.log" 2>&1 ||
        fail "spam2svm $x: exited non-zero: $(tr '\n' ' ' <"$tmp/s2s-$x.log")"
done
if [ -f "$tmp/svm-a/train.svm" ] && [ -f "$tmp/svm-b/train.svm" ]; then
    cmp -s "$tmp/svm-a/train.svm" "$tmp/svm-b/train.svm" ||
        fail "spam2svm: train.svm depends on the order of the archive's members"
    cmp -s "$tmp/svm-a/vocab.txt" "$tmp/svm-b/vocab.txt" ||
        fail "spam2svm: vocab.txt depends on the order of the archive's members"
    # Expected labels in MD5 order of the texts, computed here from md5sum.
    want=$(python3 -c '
import json, sys, tarfile
with tarfile.open(sys.argv[1]) as t:
    for m in t:
        o = json.load(t.extractfile(m))
        print(o["group"].startswith("spam") and 1 or 0, o["text"].replace("\n", "\\n"))
' "$tmp/a.tgz" | while read -r label text; do
        printf '%s %s\n' "$(printf '%b' "$text" | md5sum | cut -c1-32)" "$label"
    done | sort | cut -d' ' -f2 | tr '\n' ' ')
    got=$(cut -d' ' -f1 "$tmp/svm-a/train.svm" | tr '\n' ' ')
    [ "$got" = "$want" ] ||
        fail "spam2svm: row labels '$got' are not in MD5 order of the texts ('$want')"
fi

# --- the runner: --eval-train required and passed ---
mkbin() { # name help-text
    printf '#!/bin/sh\necho "%s"\n' "$2" >"$tmp/$1"
    chmod +x "$tmp/$1"
}
mkbin old "  --metrics FILE   JSON lines"
if "$here/deploy/experiments" --bin "$tmp/old" --out "$tmp/o1" --only logreg --dry-run \
    >"$tmp/old.log" 2>&1; then
    fail "runner: accepted a binary without --eval-train"
elif ! grep -q -- "--eval-train" "$tmp/old.log"; then
    fail "runner: the refusal does not name --eval-train: $(tr '\n' ' ' <"$tmp/old.log")"
fi
mkbin new "  --eval-train N   train_nll"
if ! "$here/deploy/experiments" --bin "$tmp/new" --out "$tmp/o2" --only logreg,mlp,cnn,vae \
    --dry-run >"$tmp/new.log" 2>&1; then
    fail "runner --dry-run failed: $(tail -3 "$tmp/new.log" | tr '\n' ' ')"
else
    n=$(grep -c " train " "$tmp/new.log")
    m=$(grep " train " "$tmp/new.log" | grep -c -- "--eval-train [1-9]")
    [ "$n" -gt 60 ] && [ "$n" = "$m" ] ||
        fail "runner: $m of $n training commands pass --eval-train N"
fi

if [ ${#fails[@]} -eq 0 ]; then
    echo "test_experiments: pass (metrics reader, spam2svm order, --eval-train)"
    exit 0
fi
for f in "${fails[@]}"; do
    echo "test_experiments: FAIL: $f"
done
exit 1
