#!/usr/bin/env bash
# End-to-end PS overhead, 1 server + 1 worker:
# - `adamps train` of the MLP 784-1000-1000-10 (dropout 0.2/0.5, batch 128,
#   Fashion-MNIST, Adam) for E2E_STEPS steps (2,500: long enough for Adam's
#   state to decay into the subnormal range, issue 15), under BSP and ssp:1,
#   samples/s from the "final" line, beside the same model stepped as many
#   times in one process without the parameter server (bench_mlp
#   --run-steps, state carried), and PyTorch's step (bench/torch_mlp.py,
#   when installed), both run again just before each PS run: PS overhead =
#   1 - ps/local, targets <= 25% (BSP) and <= 10% (ssp:1), and >= 1.5x torch.
# - sparse logistic regression, nnz 100 per row, 2^20 features, batch 1000,
#   BSP: non-zeros/s (samples/s x 100) beside the worker's own keys+gradient
#   rate for the same shape (bench_mlp), measured right before it; three
#   such pairs, the median of their ratios (the machine's speed drifts
#   over minutes; a bound taken before the 2-minute MLP runs paired a fast
#   bound with a slow run or the reverse, 0.40-0.65 on one day); target
#   >= 0.5.
# Env: BIN (./adamps), BUILD (build), E2E_STEPS (2500), E2E_SPARSE_STEPS
# (300), BENCH_JSON (append one JSON object per row). OPENBLAS_NUM_THREADS=1.
set -u
cd "$(dirname "$0")/.." || exit 1

: "${BIN:=./adamps}"
: "${BUILD:=build}"
: "${E2E_STEPS:=2500}"
: "${E2E_SPARSE_STEPS:=300}"
export OPENBLAS_NUM_THREADS=1
TMP=$(mktemp -d /tmp/adamps-e2e.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
# tests/mpi/lib.sh has the mpirun flags (root, oversubscribe, no binding)
# and run_np / final_field; its logs go to our temp dir.
# shellcheck disable=SC2034 # both read by lib.sh
LOGDIR=$TMP CASE_TIMEOUT=$((E2E_STEPS / 10 + 120))
# shellcheck source=tests/mpi/lib.sh disable=SC2034
. tests/mpi/lib.sh

MLP=$BUILD/bench/bench_mlp
if [ ! -x "$MLP" ] || [ ! -x "$BIN" ]; then
    echo "bench_e2e: needs $BIN and $MLP (make bench builds both)" >&2
    exit 1
fi

# jfield FILE BENCH KEY: KEY of the row {"bench":"BENCH",...} in FILE (the C
# benches write no space after a colon, Python's json.dumps one).
jfield() {
    grep "\"bench\": \?\"$2\"" "$1" | sed "s/.*\"$3\": \?\([0-9.e+-]*\).*/\1/"
}

J=$TMP/mlp.json
# mlp_json TAG ARGS...: bench_mlp ARGS, its JSON rows into $J.TAG.
mlp_json() {
    local tag=$1
    shift
    BENCH_JSON=$J.$tag "$MLP" "$@" >"$TMP/mlp.$tag.log" 2>&1 && return 0
    echo "bench_e2e: bench_mlp failed:" >&2
    tail -5 "$TMP/mlp.$tag.log" >&2
    return 1
}

# local_sps TAG: the in-process bound (bench_mlp --run-steps) into LOCAL,
# and PyTorch's step (when python3 has torch) into TORCH, just before the
# PS run they are set beside.
local_sps() {
    mlp_json "$1" --run-steps "$E2E_STEPS" || return 1
    LOCAL=$(jfield "$J.$1" mlp_run samples_per_sec)
    TORCH=
    if /usr/bin/python3 -c 'import torch' 2>/dev/null; then
        BENCH_JSON=$J.$1.torch /usr/bin/python3 bench/torch_mlp.py >/dev/null 2>&1 &&
            TORCH=$(jfield "$J.$1.torch" torch_mlp_step samples_per_sec_with_adam)
    fi
}

# train_sps NAME NRANKS ARGS...: samples/s of one adamps train run.
train_sps() {
    local name=$1 np=$2
    shift 2
    run_np "$name" "$np" "$@"
    SPS=$(final_field samples_per_sec)
    if [ "$RC" -ne 0 ] || [ -z "$SPS" ]; then
        echo "bench_e2e: $name failed (rc $RC):" >&2
        tail -15 "$LOG" >&2
        return 1
    fi
}

# One evaluation only (the final one), on 1000 test samples, so it costs
# well under 1% of the run.
ARGS=(train --dataset fashion-mnist --model mlp --hidden "1000,1000" --dropout-input 0.2
    --dropout 0.5 --batch 128 --optimizer adam --servers 1 --steps "$E2E_STEPS"
    --eval-every "$E2E_STEPS" --test-limit 1000 --quiet)
printf '\nend to end: MLP 784-1000-1000-10 on Fashion-MNIST, batch 128, Adam, %s steps\n' \
    "$E2E_STEPS"
printf 'each PS run beside the same steps in one process (bench_mlp --run-steps %s) and\n' \
    "$E2E_STEPS"
printf 'PyTorch'"'"'s step (bench/torch_mlp.py, when installed), both measured just before it\n'
printf '%-36s %12s %12s %8s %12s %10s\n' "run" "samples/s" "local" "ratio" "ps_overhead" "torch"
for cons in bsp ssp:1; do
    local_sps "${cons//:/}" || exit 1
    train_sps "e2e_mlp_${cons//:/}" 2 "${ARGS[@]}" --consistency "$cons" || exit 1
    read -r ratio overhead < <(awk -v p="$SPS" -v l="$LOCAL" \
        'BEGIN { printf "%.4f %.4f\n", p / l, 1 - p / l }')
    printf '%-36s %12s %12s %8s %11.1f%% %10s\n' "1 server + 1 worker, $cons" "$SPS" "$LOCAL" \
        "$ratio" "$(awk -v o="$overhead" 'BEGIN { print o * 100 }')" "${TORCH:--}"
    if [ -n "${BENCH_JSON:-}" ]; then
        printf '{"bench":"e2e_mlp","servers":1,"workers":1,"steps":%s,"batch":128,' \
            "$E2E_STEPS" >>"$BENCH_JSON"
        printf '"consistency":"%s","samples_per_sec":%s,"local_samples_per_sec":%s,' \
            "$cons" "$SPS" "$LOCAL" >>"$BENCH_JSON"
        [ -n "$TORCH" ] && printf '"torch_samples_per_sec":%s,' "$TORCH" >>"$BENCH_JSON"
        printf '"ratio_vs_local":%s,"ps_overhead":%s}\n' "$ratio" "$overhead" >>"$BENCH_JSON"
    fi
done

SROWS=$((E2E_SPARSE_STEPS * 1000 + 1000))
printf '\nsparse logreg 2^20 features, 100 nnz/row, batch 1000, BSP, %s steps\n' \
    "$E2E_SPARSE_STEPS"
PAIRS=3 # odd, so one pair is the median
RATIOS=()
for pair in $(seq "$PAIRS"); do
    mlp_json "$pair" || exit 1
    bound=$(jfield "$J.$pair" sparse_logreg_grad nnz_per_sec_with_keys)
    train_sps "e2e_sparse_logreg_$pair" 2 train --model logreg --servers 1 --batch 1000 \
        --synthetic "rows=$SROWS,features=1048576,nnz=100,classes=2" --optimizer adam \
        --steps "$E2E_SPARSE_STEPS" --eval-every "$E2E_SPARSE_STEPS" --test-limit 1000 \
        --quiet || exit 1
    read -r nnz ratio < <(awk -v p="$SPS" -v b="$bound" \
        'BEGIN { printf "%.0f %.4f\n", p * 100, p * 100 / b }')
    printf 'pair %s: 1 server + 1 worker %s nnz/s; worker keys+gradient alone %s nnz/s; ratio %s\n' \
        "$pair" "$nnz" "$bound" "$ratio"
    RATIOS+=("$ratio $nnz $bound")
done
# The pair with the median ratio gives all three figures.
read -r sratio snnz sbound < <(printf '%s\n' "${RATIOS[@]}" | sort -g |
    sed -n "$(((PAIRS + 1) / 2))p")
printf 'median of %s pairs: ratio %s (%s nnz/s against %s)\n' "$PAIRS" "$sratio" "$snnz" \
    "$sbound"
if [ -n "${BENCH_JSON:-}" ]; then
    printf '{"bench":"e2e_sparse","servers":1,"workers":1,"steps":%s,"batch":1000,' \
        "$E2E_SPARSE_STEPS" >>"$BENCH_JSON"
    printf '"consistency":"bsp","nnz_per_sec":%s,"bound_nnz_per_sec":%s,"ratio_vs_local":%s,' \
        "$snnz" "$sbound" "$sratio" >>"$BENCH_JSON"
    printf '"pairs":%s}\n' "$PAIRS" >>"$BENCH_JSON"
fi
