#!/usr/bin/env bash
# MPI integration tests: real mpirun jobs on this machine, each checking an
# outcome (accuracy bound, bit-identical parameters, staleness bound, error
# naming the bad rank, exit status). Run by `make test`.
set -u
cd "$(dirname "$0")/../.."
. tests/mpi/lib.sh

FM=/usr/share/datasets/fashion-mnist
SMALL=(--dataset fashion-mnist --model logreg --train-limit 2000 --test-limit 500 --batch 32
    --lr 0.01 --quiet)

# 1. Servers x workers: Adam through push/pull learns (loss falls below a bound).
# Sharding must not change the arithmetic: with w workers, 1, 2 and 3 servers
# give the same final loss to the last printed digit.
declare -A loss_of
for s in 1 2 3; do
    for w in 1 2 3 4; do
        name="learn_s${s}_w${w}"
        run_np "$name" $((s + w)) train "${SMALL[@]}" --servers "$s" --steps 60
        acc=$(final_field test_acc)
        loss=$(final_field test_loss)
        loss_of[$s,$w]=$loss
        if [ "$RC" -eq 0 ] && ge "$acc" 0.70 && ge 0.95 "$loss"; then
            pass "$name (acc $acc, loss $loss)"
        else
            fail "$name" "rc=$RC acc=$acc loss=$loss (want acc >= 0.70, loss <= 0.95)"
        fi
    done
done

for w in 1 2 3 4; do
    if [ -n "${loss_of[1,$w]}" ] && [ "${loss_of[1,$w]}" = "${loss_of[2,$w]}" ] &&
        [ "${loss_of[1,$w]}" = "${loss_of[3,$w]}" ]; then
        pass "sharding_invariant_w$w (loss ${loss_of[1,$w]} on 1, 2 and 3 servers)"
    else
        LOG=
        fail "sharding_invariant_w$w" "losses ${loss_of[1,$w]} / ${loss_of[2,$w]} / ${loss_of[3,$w]}"
    fi
done

# 2. BSP is bitwise reproducible whatever the arrival order: random delays
# in workers, hash sharding over 2 servers, 3 workers, dense updates.
for run in 1 2; do
    rm -rf "$LOGDIR/bsp$run"
    run_np "bsp_repro_$run" 5 train "${SMALL[@]}" --servers 2 --steps 30 --shard hash \
        --sparse-update dense --inject-delay-ms 4 --save-model "$LOGDIR/bsp$run"
done
if [ "$RC" -eq 0 ] && [ -f "$LOGDIR/bsp1/w.npy" ] && cmp -s "$LOGDIR/bsp1/w.npy" "$LOGDIR/bsp2/w.npy" &&
    cmp -s "$LOGDIR/bsp1/b.npy" "$LOGDIR/bsp2/b.npy"; then
    pass "bsp_bit_identical"
else
    fail "bsp_bit_identical" "two BSP runs with random delays differ (or failed, rc=$RC)"
fi

# 3. SSP:K: no worker starts clock c before every worker has pushed c-K
# clocks. Workers log "push W C" before sending and "start W C" after their
# pull returns, appending to one file, so file order is causal order.
for k in 0 2; do
    clog="$LOGDIR/clocks_$k.txt"
    rm -f "$clog"
    run_np "ssp_$k" 5 train "${SMALL[@]}" --servers 1 --steps 40 --consistency "ssp:$k" \
        --inject-delay-ms 6 --clock-log "$clog"
    viol=$(awk -v K="$k" -v W=4 '
        $1 == "push" { pushed[$2]++ }
        $1 == "start" {
            c = $3
            for (w = 0; w < W; w++) if (pushed[w] + 0 < c - K) { bad++; break }
            if (c > maxc[$2]) maxc[$2] = c
        }
        END { print bad + 0 }' "$clog" 2>/dev/null)
    starts=$(grep -c '^start' "$clog" 2>/dev/null)
    if [ "$RC" -eq 0 ] && [ "$viol" = 0 ] && [ "$starts" = 160 ]; then
        pass "ssp_$k staleness bound held over $starts clock starts"
    else
        fail "ssp_$k" "rc=$RC violations=$viol starts=$starts"
    fi
done

# 4. ASP and lazy/dense both still learn.
# Each push is its own step under ASP, so a smaller step size keeps it stable:
# at 0.003 one CI run in many ended at acc 0.694 (loss 1.08; 0.49-0.84 over
# 12 runs here), at the paper's 0.001 ten runs gave acc 0.772-0.804.
run_np asp 4 train "${SMALL[@]}" --servers 1 --steps 200 --lr 0.001 --consistency asp
acc=$(final_field test_acc)
if [ "$RC" -eq 0 ] && ge "$acc" 0.70; then pass "asp_learns (acc $acc)"; else fail asp "rc=$RC acc=$acc"; fi

# 4b. The MLP (dropout on, 2 hidden layers) learns through the servers too,
# on 2 servers with hash sharding and temporal averaging.
run_np mlp_learns 4 train --dataset fashion-mnist --model mlp --hidden 64,32 --train-limit 3000 \
    --test-limit 500 --batch 32 --steps 200 --servers 2 --shard hash --temporal-averaging 0.9 \
    --dropout 0.2 --lr 0.003 --quiet
acc=$(final_field test_acc)
if [ "$RC" -eq 0 ] && ge "$acc" 0.72; then pass "mlp_learns (acc $acc)"; else fail mlp_learns "rc=$RC acc=$acc (want >= 0.72)"; fi

# 5. A worker that sends a key out of range: the job exits non-zero within
# seconds, with an error naming that worker's rank (the last worker: rank 2
# of 4 when rank 3 is the server).
start=$(date +%s)
ADAMPS_TEST_INJECT=bad-key run_np bad_key 4 train "${SMALL[@]}" --servers 1 --steps 40
took=$(($(date +%s) - start))
if [ "$RC" -ne 0 ] && [ "$RC" -ne 124 ] && [ "$took" -le 30 ] && grep -q "from rank 2" "$LOG"; then
    pass "bad_key_aborts (rc $RC in ${took}s)"
else
    fail bad_key_aborts "rc=$RC took=${took}s"
fi

# 6. Non-finite gradients: abort names worker, table and key; skip carries on.
# Non-finite weights name the server.

# aborted NAME WANT [UNWANTED]: NAME passes when the run ended in an error of
# its own (not the case timeout), its log matching WANT and not UNWANTED.
aborted() {
    local name=$1 want=$2 unwanted=${3:-}
    if [ "$RC" -ne 0 ] && [ "$RC" -ne 124 ] && grep -q "$want" "$LOG" &&
        { [ -z "$unwanted" ] || ! grep -q "$unwanted" "$LOG"; }; then
        pass "$name"
    else
        fail "$name" "rc=$RC"
    fi
}

ADAMPS_TEST_INJECT=nan run_np nan_abort 4 train "${SMALL[@]}" --servers 1 --steps 40
aborted nan_abort "non-finite gradient .* from worker 2: table w, key"
# Under ASP every push is a step of its own, applied with no pass over its
# gradients: the weight check after each part finds the NaN and blames the
# worker all the same.
ADAMPS_TEST_INJECT=nan run_np nan_abort_asp 4 train "${SMALL[@]}" --servers 1 --steps 40 \
    --consistency asp
aborted nan_abort_asp "non-finite gradient nan from worker 2: table w, key .*, clock 3" \
    "non-finite weight"
ADAMPS_TEST_INJECT=nan run_np nan_skip 4 train "${SMALL[@]}" --servers 1 --steps 40 --nonfinite skip
if [ "$RC" -eq 0 ] && grep -q "dropping the gradients of worker 2" "$LOG"; then
    pass nan_skip
else
    fail nan_skip "rc=$RC"
fi
# A step that overflows on a server (Adam's step alpha / (1 - beta1) is
# infinite at --lr 1e38) is that server's error, reported by it, and no
# worker is blamed for a gradient it computed from the broken weights.
run_np nan_server 4 train "${SMALL[@]}" --servers 2 --steps 5 --lr 1e38
aborted nan_server "non-finite weight .* on server [01] after step 1: table [wb], key" \
    "non-finite gradient"

# 7. Bad flags and impossible combinations: exit 2 with a one-line reason on
# every rank, before any work, never a hang.
check_usage() {
    local name=$1 np=$2 want=$3
    shift 3
    run_np "$name" "$np" "$@"
    if [ "$RC" -eq 2 ] && grep -q -- "$want" "$LOG"; then
        pass "$name"
    else
        fail "$name" "rc=$RC, wanted 2 and '$want'"
    fi
}
check_usage usage_no_worker 2 "leaves no worker" train "${SMALL[@]}" --servers 2
check_usage usage_unknown_flag 2 "unknown flag --bogus" train "${SMALL[@]}" --bogus 1
# Every rank parses argv; the message is printed once, with the nearest flag.
run_np usage_misspelt_flag_once 3 train "${SMALL[@]}" --bacth 3
if [ "$RC" -eq 2 ] && [ "$(grep -c 'did you mean --batch' "$LOG")" -eq 1 ]; then
    pass usage_misspelt_flag_once
else
    fail usage_misspelt_flag_once "rc=$RC, $(grep -c 'did you mean --batch' "$LOG") messages"
fi
run_np usage_single_rank 1 train "${SMALL[@]}"
if [ "$RC" -eq 2 ] && grep -q "run it under mpirun -np N (N >= 2)" "$LOG"; then
    pass usage_single_rank
else
    fail usage_single_rank "rc=$RC"
fi
check_usage usage_bad_number 2 "\-\-batch" train "${SMALL[@]}" --batch abc
check_usage usage_missing_file 2 "nope.svm" train --train /nonexistent/nope.svm \
    --test /nonexistent/nope.svm --model logreg --quiet
check_usage usage_bad_consistency 2 "\-\-consistency" train "${SMALL[@]}" --consistency sometimes
check_usage usage_steps_and_epochs 2 "\-\-steps" train "${SMALL[@]}" --steps 5 --epochs 2
check_usage usage_resume_needs_dir 2 "\-\-resume" train "${SMALL[@]}" --resume
check_usage usage_no_data 2 "data" train --model logreg --quiet
check_usage usage_resume_no_checkpoint 2 "no checkpoint to resume" train "${SMALL[@]}" \
    --checkpoint-dir "$LOGDIR/empty-ckpt" --resume

# Further cases live one file per feature in tests/mpi/cases/*.sh, sourced
# here so they share run_np, pass, fail and the tally.
for case in tests/mpi/cases/*.sh; do
    [ -e "$case" ] || continue
    . "$case"
done

summary
