#!/usr/bin/env bash
# deploy/plot end to end: two small metrics files (one with a null, a
# repeated step, as a resumed run writes, train_nll, and the header,
# resumed and --log-every records, which are skipped; the other with the
# pre-rename train_loss key) give four PNGs; a bad line is rejected with an
# error naming the file and line; -m with --logy and --grid (the
# experiments' figures) draw too. Prints one pass/fail line and exits
# non-zero on failure.
set -u
here=$(cd "$(dirname "$0")/.." && pwd)
plot="$here/deploy/plot"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/adamps-test-plot.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
fails=()

fail() {
    fails+=("$1")
}

line() { # step epoch time_s train_loss_ma test_loss test_acc [train_nll]
    printf '{"step":%s,"epoch":%s,"time_s":%s,"samples_total":%s,"train_loss_ma":%s,"train_nll":%s,"test_loss":%s,"test_acc":%s,"samples_per_sec":1000.5,"push_bytes_total":123,"pull_bytes_total":456}\n' \
        "$1" "$2" "$3" $(($1 * 64)) "$4" "${7:-null}" "$5" "$6"
}

old_line() { # the same, as files from before train_loss was renamed
    printf '{"step":%s,"epoch":%s,"time_s":%s,"train_loss":%s,"test_loss":%s,"test_acc":%s}\n' \
        "$1" "$2" "$3" "$4" "$5" "$6"
}

{
    # Records that are not evaluations: the header, a --log-every record
    # at an evaluation's step, a resume marker.
    echo '{"event":"header","time":"2026-11-29T10:15:00.123Z","time_unix":1.5e9,"run_id":"ab","adamps_version":"0.3.0","config":{"lr":0.001}}'
    echo '{"event":"train_loss_ma","step":100,"epoch":1,"time_s":1.5,"train_loss_ma":0.9,"time_unix":1.5e9}'
    line 100 1 1.5 0.9 0.95 0.70 0.85
    line 200 2 3.0 0.6 0.70 0.78 0.62
    line 300 3 4.4 0.5 0.65 0.80 0.55
    echo '{"event":"resumed","checkpoint":"ckpt-200","resume_step":200}'
    line 200 2 3.1 0.61 0.71 0.79 0.63 # re-run after a resume: replaces step 200
    line 400 4 6.0 0.45 null 0.81 0.50
} >"$tmp/run a.jsonl"
{
    old_line 100 1 2.0 1.2 1.1 0.60
    echo
    old_line 200 2 4.0 0.8 0.85 0.72
} >"$tmp/run'b.jsonl"

out="$tmp/out"
if ! "$plot" -o "$out" "$tmp/run a.jsonl" "$tmp/run'b.jsonl" >"$tmp/log" 2>&1; then
    fail "plot exited non-zero: $(tr '\n' ' ' <"$tmp/log")"
fi
for png in loss_vs_epoch acc_vs_epoch loss_vs_time acc_vs_time; do
    f="$out/$png.png"
    if [ ! -s "$f" ]; then
        fail "$png.png missing"
    elif [ "$(head -c 8 "$f" | od -An -tx1 | tr -d ' \n')" != 89504e470d0a1a0a ]; then
        fail "$png.png lacks the PNG signature"
    fi
done

# Bad input: the error names the file and the line, and nothing succeeds.
{
    line 100 1 1.5 0.9 0.95 0.70
    echo '{"step": 200, "epoch": '
} >"$tmp/bad.jsonl"
if "$plot" -o "$tmp/out2" "$tmp/bad.jsonl" >"$tmp/log2" 2>&1; then
    fail "plot accepted a bad JSON line"
elif ! grep -q "bad.jsonl:2:" "$tmp/log2"; then
    fail "bad-line error does not name file:line: $(tr '\n' ' ' <"$tmp/log2")"
fi
echo '{"step": 1, "test_acc": "high"}' >"$tmp/str.jsonl"
if "$plot" -o "$tmp/out3" "$tmp/str.jsonl" >"$tmp/log3" 2>&1; then
    fail "plot accepted a string where a number belongs"
fi
if "$plot" -o "$tmp/out4" "$tmp/missing.jsonl" >/dev/null 2>&1; then
    fail "plot accepted a missing file"
fi

# One metric on a log axis (a null and a missing key are left out), and the
# small-multiples grid with a diverged (nan) and an off-scale point.
png_ok() {
    [ -s "$1" ] && [ "$(head -c 8 "$1" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ]
}
if ! "$plot" -o "$out" -m test_loss --logy --title "t" --name one.png "$tmp/run a.jsonl" \
    "$tmp/run'b.jsonl" >"$tmp/log5" 2>&1 || ! png_ok "$out/one.png"; then
    fail "-m test_loss --logy: $(tr '\n' ' ' <"$tmp/log5")"
fi
printf 'panel\tseries\tx\ty\nA\ts1\t-5\t300\nA\ts1\t-4\t200\nA\ts2\t-5\tnan\nA\ts2\t-4\t9000\nB\ts1\t-5\t310\n' \
    >"$tmp/grid.tsv"
if ! "$plot" -o "$out" --grid "$tmp/grid.tsv" --cols 2 --ymax 600 --key "2:top right" \
    >"$tmp/log6" 2>&1 || ! png_ok "$out/grid.png"; then
    fail "--grid: $(tr '\n' ' ' <"$tmp/log6")"
fi
printf 'a\tb\n1\t2\n' >"$tmp/badgrid.tsv"
if "$plot" -o "$out" --grid "$tmp/badgrid.tsv" >/dev/null 2>&1; then
    fail "--grid accepted a table without the panel/series/x/y header"
fi

if [ ${#fails[@]} -eq 0 ]; then
    echo "PASS test_plot: 4 PNGs written, one-metric log plot and grid drawn, bad input rejected"
    exit 0
fi
echo "FAIL test_plot: ${fails[*]}"
exit 1
