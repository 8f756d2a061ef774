# The cnn, the vae, AdaDelta and non-ReLU units through the parameter
# server, sourced by tests/mpi/run.sh (uses run_np, pass, fail, final_field,
# ge, $LOGDIR, $BIN). Each learns below a bound in a few seconds on 2,000
# Fashion-MNIST images; a saved cnn and a tanh mlp score the same in
# `adamps predict` as in their training run's last evaluation (predict must
# rebuild the architecture from model.bin, activation included); predict
# refuses a vae by name.

MODELS=(--dataset fashion-mnist --train-limit 2000 --test-limit 500 --batch 32 --quiet
    --servers 1)

# models_predict NAME DIR: predict's accuracy on the same 500 test images.
models_predict() {
    timeout --kill-after=10 "$CASE_TIMEOUT" "$BIN" predict --model "$2" --dataset fashion-mnist \
        --test-limit 500 >"$LOGDIR/$1.log" 2>&1
    RC=$?
    grep '^loss=' "$LOGDIR/$1.log" | tr ' ' '\n' | grep '^accuracy=' | cut -d= -f2
}

# same_acc A B: equal to the 4 decimals the final line prints.
same_acc() {
    awk -v a="$1" -v b="$2" 'BEGIN { d = a - b; exit !(a != "" && d < 0.00005 && d > -0.00005) }'
}

# learns_and_predicts NAME MIN_ACC: the run just made reached MIN_ACC, and
# `adamps predict` on its saved model ($LOGDIR/NAME_model) scores the same.
learns_and_predicts() {
    local name=$1 min=$2 acc pacc
    acc=$(final_field test_acc)
    if [ "$RC" -ne 0 ] || ! ge "$acc" "$min"; then
        fail "$name" "rc=$RC acc=$acc (want >= $min)"
        return
    fi
    pacc=$(models_predict "${name}_predict" "$LOGDIR/${name}_model")
    if [ "$RC" -eq 0 ] && same_acc "$pacc" "$acc"; then
        pass "$name (acc $acc; predict $pacc)"
    else
        fail "$name" "predict rc=$RC accuracy=$pacc, training run's test_acc $acc"
    fi
}

rm -rf "$LOGDIR/cnn_learns_model" "$LOGDIR/tanh_learns_model" "$LOGDIR/vae_model"
run_np cnn_learns 3 train "${MODELS[@]}" --model cnn --conv c8-c16-64 --steps 60 --lr 0.003 \
    --save-model "$LOGDIR/cnn_learns_model"
learns_and_predicts cnn_learns 0.60

# The negative ELBO starts near 784 ln 2 = 543 nats; 60 Adam steps take it
# well below 300. No accuracy: null on the final line and in the metrics.
run_np vae_learns 3 train "${MODELS[@]}" --model vae --hidden 200 --latent 20 --steps 60 \
    --lr 0.003 --metrics "$LOGDIR/vae.jsonl" --save-model "$LOGDIR/vae_model"
loss=$(final_field test_loss)
acc=$(final_field test_acc)
if [ "$RC" -eq 0 ] && ge 300 "$loss" && [ "$acc" = null ] &&
    grep -q '"test_acc":null' "$LOGDIR/vae.jsonl"; then
    models_predict vae_predict "$LOGDIR/vae_model" >/dev/null
    if [ "$RC" -ne 0 ] && grep -q "a vae has no classes" "$LOGDIR/vae_predict.log"; then
        pass "vae_learns (negative ELBO $loss nats, no accuracy; predict refuses)"
    else
        LOG="$LOGDIR/vae_predict.log"
        fail vae_learns "predict on a vae: rc=$RC, wanted a refusal naming the vae"
    fi
else
    fail vae_learns "rc=$RC loss=$loss acc=$acc (want loss <= 300, acc null)"
fi

# AdaDelta at torch's defaults (lr 1.0, rho 0.9, eps 1e-6).
run_np adadelta_learns 3 train "${MODELS[@]}" --model mlp --hidden 64 --optimizer adadelta \
    --steps 100
acc=$(final_field test_acc)
if [ "$RC" -eq 0 ] && ge "$acc" 0.65; then
    pass "adadelta_learns (acc $acc)"
else
    fail adadelta_learns "rc=$RC acc=$acc (want >= 0.65)"
fi

run_np tanh_learns 3 train "${MODELS[@]}" --model mlp --hidden 64,32 --activation tanh \
    --steps 100 --lr 0.003 --save-model "$LOGDIR/tanh_learns_model"
learns_and_predicts tanh_learns 0.70
