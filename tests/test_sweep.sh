#!/usr/bin/env bash
# deploy/sweep end to end: a 2-point sweep (--quick: 1 and 2 workers, 1
# server, BSP, shared memory, 100 steps) writes two JSON lines whose
# counters are the job's and agree with each other (what the workers pushed
# is what the server received; every pull request reached it; samples are
# workers x steps x batch; fractions in [0, 1]; the staleness histogram has
# one entry per applied push, all at 0 under BSP); rerunning skips both
# points; an unknown transport is refused. Then deploy/plot --scaling draws
# from the lines. Prints one pass/fail line and exits non-zero on failure.
# BIN: the adamps binary (default ./adamps).
set -u
here=$(cd "$(dirname "$0")/.." && pwd)
bin=${BIN:-$here/adamps}
case $bin in /*) ;; *) bin=$here/$bin ;; esac
tmp=$(mktemp -d "${TMPDIR:-/tmp}/adamps-test-sweep.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
fails=()
fail() { fails+=("$1"); }

out=$tmp/sweep.jsonl
mpi=()
if [ "${SAN:-0}" = 1 ]; then
    # As tests/mpi/lib.sh: Open MPI's own allocations are not ours to report.
    export ASAN_OPTIONS=detect_leaks=0:abort_on_error=0
    mpi=(--mpirun-args "-x ASAN_OPTIONS")
fi
if ! "$here/deploy/sweep" --quick --bin "$bin" --out "$out" "${mpi[@]}" 2>"$tmp/first.log"; then
    fail "the sweep failed: $(tail -3 "$tmp/first.log")"
fi
/usr/bin/python3 - "$out" >"$tmp/check.log" 2>&1 <<'EOF' || fail "$(cat "$tmp/check.log")"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
bad = []
def check(cond, what):
    if not cond:
        bad.append(what)
check(len(rows) == 2, "%d lines, not 2" % len(rows))
check(sorted(r.get("workers") for r in rows) == [1, 2], "points are not workers 1 and 2")
need = ["rc", "samples_per_sec", "samples_total", "train_time_s", "load_time_s", "eval_time_s",
        "push_bytes_total", "push_msgs_total", "push_bytes_received_total",
        "pull_bytes_total", "pull_msgs_total", "pull_requests_received_total",
        "bytes_per_sample", "pull_wait_fraction", "server_busy_fraction",
        "worker_pull_wait_fraction", "server_busy_fractions", "server_push_bytes",
        "staleness_hist", "time_to_target_s", "final_test_loss", "transport", "consistency"]
for r in rows:
    w = r.get("workers")
    miss = [k for k in need if k not in r]
    check(not miss, "w=%s: missing %s" % (w, miss))
    if miss:
        continue
    check(r["rc"] == 0, "w=%s: rc %s" % (w, r["rc"]))
    check(r["push_bytes_total"] > 0 and r["push_bytes_total"] == r["push_bytes_received_total"],
          "w=%s: pushed %s bytes, the server got %s" % (w, r["push_bytes_total"],
                                                       r["push_bytes_received_total"]))
    check(r["push_msgs_total"] == r["push_msgs_received_total"] == w * r["steps"],
          "w=%s: %s pushes sent, %s received, %s clocks" % (w, r["push_msgs_total"],
                                                           r["push_msgs_received_total"],
                                                           w * r["steps"]))
    check(r["pull_msgs_total"] == r["pull_requests_received_total"] >= w * r["steps"],
          "w=%s: pull requests %s sent, %s received" % (w, r["pull_msgs_total"],
                                                       r["pull_requests_received_total"]))
    check(r["samples_total"] == w * r["steps"] * r["batch"],
          "w=%s: %s samples" % (w, r["samples_total"]))
    check(sum(r["server_push_bytes"]) == r["push_bytes_received_total"], "w=%s: per server" % w)
    check(r["samples_per_sec"] > 0 and r["train_time_s"] > 0, "w=%s: no rate" % w)
    check(len(r["worker_pull_wait_fraction"]) == w and len(r["server_busy_fractions"]) == 1,
          "w=%s: per-rank arrays" % w)
    for k in ("pull_wait_fraction", "server_busy_fraction"):
        check(0 <= r[k] <= 1, "w=%s: %s = %s" % (w, k, r[k]))
    h = r["staleness_hist"]
    check(sum(h) == r["push_msgs_received_total"] and h[0] == sum(h),
          "w=%s: BSP staleness %s" % (w, h))
    want = (r["push_bytes_total"] + r["pull_bytes_total"]) / r["samples_total"]
    check(0.5 * want < r["bytes_per_sample"] <= 1.5 * want,
          "w=%s: bytes_per_sample %s, traffic says %s" % (w, r["bytes_per_sample"], want))
if bad:
    print("; ".join(bad))
    sys.exit(1)
EOF
"$here/deploy/sweep" --quick --bin "$bin" --out "$out" "${mpi[@]}" 2>"$tmp/again.log" ||
    fail "the resumed sweep failed"
grep -q "2 already in" "$tmp/again.log" || fail "the resumed sweep did not skip: $(head -1 "$tmp/again.log")"
[ "$(wc -l <"$out")" -eq 2 ] || fail "the resumed sweep wrote lines"
if "$here/deploy/sweep" --dry-run --transport carrier-pigeon --out "$out" >/dev/null 2>"$tmp/bad.log"; then
    fail "an unknown transport was accepted"
fi
grep -q "carrier-pigeon" "$tmp/bad.log" || fail "the refusal does not name the transport"
if [ -x "$here/deploy/plot" ] && command -v gnuplot >/dev/null; then
    if "$here/deploy/plot" --scaling -o "$tmp/png" "$out" >"$tmp/plot.log" 2>&1; then
        [ -s "$tmp/png/throughput_vs_workers.png" ] || fail "plot --scaling drew no throughput PNG"
    else
        fail "plot --scaling failed: $(tail -2 "$tmp/plot.log")"
    fi
fi

if [ ${#fails[@]} -eq 0 ]; then
    echo "test_sweep: pass"
    exit 0
fi
echo "test_sweep: FAIL"
printf '  - %s\n' "${fails[@]}"
exit 1
