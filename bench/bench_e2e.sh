#!/usr/bin/env bash
# End-to-end PS overhead: `adamps train` of the MLP 784-1000-1000-10
# (dropout 0.2/0.5, batch 128, Fashion-MNIST, BSP, Adam) at 1 server +
# 1 worker and at 1 server + 2 workers, samples/s from the "final" line,
# beside the same model trained in one process without the parameter
# server: bench_mlp's "fwd+bwd+adam" samples/s, measured in this run just
# before and just after the PS runs (their mean is the bound).
#   PS overhead = 1 - ps / local (1 worker); target <= 0.15.
# Env: BIN (./adamps), BUILD (build), E2E_SECONDS (20: rough length of each
# PS run), BENCH_JSON (append one JSON object per row). OPENBLAS_NUM_THREADS=1.
set -u
cd "$(dirname "$0")/.." || exit 1

: "${BIN:=./adamps}"
: "${BUILD:=build}"
: "${E2E_SECONDS:=20}"
export OPENBLAS_NUM_THREADS=1
TMP=$(mktemp -d /tmp/adamps-e2e.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
# tests/mpi/lib.sh has the mpirun flags (root, oversubscribe, no binding)
# and run_np / final_field; its logs go to our temp dir.
# shellcheck disable=SC2034 # both read by lib.sh
LOGDIR=$TMP CASE_TIMEOUT=$((E2E_SECONDS * 6 + 60))
# shellcheck source=tests/mpi/lib.sh disable=SC2034
. tests/mpi/lib.sh

MLP=$BUILD/bench/bench_mlp
if [ ! -x "$MLP" ] || [ ! -x "$BIN" ]; then
    echo "bench_e2e: needs $BIN and $MLP (make bench builds both)" >&2
    exit 1
fi

# local_sps: bench_mlp's in-process fwd+bwd+adam samples/s.
local_sps() {
    local j=$TMP/mlp.$1.json
    BENCH_JSON=$j "$MLP" >"$TMP/mlp.$1.log" 2>&1 || {
        echo "bench_e2e: bench_mlp failed:" >&2
        tail -5 "$TMP/mlp.$1.log" >&2
        return 1
    }
    grep '"bench":"mlp_step"' "$j" | sed 's/.*"samples_per_sec_with_adam":\([0-9.]*\).*/\1/'
}

LOCAL_BEFORE=$(local_sps before) || exit 1
# Steps for about E2E_SECONDS at 1 worker, guessing the PS at ~60% of local.
STEPS=$(awk -v s="$LOCAL_BEFORE" -v t="$E2E_SECONDS" 'BEGIN { n = int(s * 0.6 * t / 128);
    print (n < 50 ? 50 : n) }')
# One evaluation only (the final one, inside time_s), on 1000 test samples so
# it costs well under 1% of the run.
ARGS=(train --dataset fashion-mnist --model mlp --hidden "1000,1000" --dropout-input 0.2
    --dropout 0.5 --batch 128 --optimizer adam --servers 1 --steps "$STEPS"
    --eval-every "$STEPS" --test-limit 1000 --quiet)

# Runs: workers:consistency. BSP with one worker cannot overlap anything
# (batch t+1 needs the update of batch t); ssp:1 lets the pull of batch t+1
# overlap the compute of batch t, which is what the 15% target needs.
RUNS=("1:bsp" "1:ssp:1" "2:bsp")
declare -A SPS
for run in "${RUNS[@]}"; do
    nw=${run%%:*}
    cons=${run#*:}
    run_np "e2e_w${nw}_${cons//:/}" $((nw + 1)) "${ARGS[@]}" --consistency "$cons"
    SPS[$run]=$(final_field samples_per_sec)
    if [ "$RC" -ne 0 ] || [ -z "${SPS[$run]}" ]; then
        echo "bench_e2e: adamps train with 1 server + $nw workers ($cons) failed (rc $RC):" >&2
        tail -15 "$LOG" >&2
        exit 1
    fi
done
LOCAL_AFTER=$(local_sps after) || exit 1
LOCAL=$(awk -v a="$LOCAL_BEFORE" -v b="$LOCAL_AFTER" 'BEGIN { printf "%.1f", (a + b) / 2 }')

printf '\nend to end: MLP 784-1000-1000-10 on Fashion-MNIST, batch 128, Adam, %s steps\n' \
    "$STEPS"
printf 'local (bench_mlp fwd+bwd+adam, one process): %s samples/s (before %s, after %s)\n' \
    "$LOCAL" "$LOCAL_BEFORE" "$LOCAL_AFTER"
printf '%-30s %12s %12s %8s %12s\n' "run" "samples/s" "local" "ratio" "ps_overhead"
for run in "${RUNS[@]}"; do
    nw=${run%%:*}
    cons=${run#*:}
    read -r ratio overhead < <(awk -v p="${SPS[$run]}" -v l="$LOCAL" \
        'BEGIN { printf "%.4f %.4f\n", p / l, 1 - p / l }')
    printf '%-30s %12s %12s %8s %11.1f%%\n' "1 server + $nw worker(s), $cons" "${SPS[$run]}" \
        "$LOCAL" "$ratio" "$(awk -v o="$overhead" 'BEGIN { print o * 100 }')"
    if [ -n "${BENCH_JSON:-}" ]; then
        printf '{"bench":"e2e_mlp","servers":1,"workers":%d,"steps":%s,"batch":128,' "$nw" \
            "$STEPS" >>"$BENCH_JSON"
        printf '"consistency":"%s","samples_per_sec":%s,"local_samples_per_sec":%s,' \
            "$cons" "${SPS[$run]}" "$LOCAL" >>"$BENCH_JSON"
        printf '"local_before":%s,"local_after":%s,"ratio_vs_local":%s,"ps_overhead":%s}\n' \
            "$LOCAL_BEFORE" "$LOCAL_AFTER" "$ratio" "$overhead" >>"$BENCH_JSON"
    fi
done
