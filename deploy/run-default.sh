#!/usr/bin/env bash
# `make run`: trains the paper's section 6.2 network (MLP 784-1000-1000-10,
# ReLU, dropout 0.2 on the input and 0.5 on hidden layers, Adam with the
# paper's defaults, batch 128 per worker) on Fashion-MNIST with 1 server and
# 2 workers, printing progress and the final test accuracy. Evaluation uses
# the paper's temporal average of the parameters (section 7.2, beta 0.99):
# with dropout this net needs about 12 epochs to pass 0.88 test accuracy,
# and the average gets there with less noise. Extra arguments are passed to
# `adamps train` (e.g. `make run ARGS="--epochs 1"`).
set -eu
BIN=${1:-./adamps}
shift || true
NP=3
flags=(--oversubscribe --bind-to none)
[ "$(id -u)" -eq 0 ] && flags+=(--allow-run-as-root)
# One BLAS thread per rank: the 3 ranks already share the machine's cores.
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}
mkdir -p runs
exec mpirun "${flags[@]}" -x OPENBLAS_NUM_THREADS -np "$NP" "$BIN" train \
    --dataset fashion-mnist --model mlp --hidden 1000,1000 \
    --dropout-input 0.2 --dropout 0.5 --optimizer adam --batch 128 \
    --epochs "${EPOCHS:-15}" --temporal-averaging 0.99 --servers 1 \
    --metrics runs/default.jsonl \
    --save-model runs/default-model "$@"
