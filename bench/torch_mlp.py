#!/usr/bin/python3
"""The step bench/bench_mlp.c measures, in PyTorch, for a side-by-side ratio.

MLP 784-1000-1000-10, batch 128, dropout 0.2 on the input and 0.5 on the
hidden layers, softmax cross-entropy, backward and torch.optim.Adam's update,
on one thread. Prints samples/s (median of 7 repetitions of 10 steps) for
the step with and without the Adam update; if BENCH_JSON names a file,
appends one JSON object. Exits 0 with a message when torch is missing.
Run with /usr/bin/python3 (Debian's, which has torch 1.13).
"""
import json
import os
import statistics
import sys
import time

REPS, STEPS, BATCH = 7, 10, 128


def main():
    try:
        import torch
    except ImportError as e:
        print(f"torch_mlp: torch not available ({e}); skipped")
        return 0
    torch.set_num_threads(1)
    torch.manual_seed(7)
    model = torch.nn.Sequential(
        torch.nn.Dropout(0.2),
        torch.nn.Linear(784, 1000), torch.nn.ReLU(), torch.nn.Dropout(0.5),
        torch.nn.Linear(1000, 1000), torch.nn.ReLU(), torch.nn.Dropout(0.5),
        torch.nn.Linear(1000, 10))
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.rand(BATCH, 784)
    x[x < 0.4] = 0.0
    y = torch.randint(0, 10, (BATCH,))
    loss_fn = torch.nn.CrossEntropyLoss()

    def fwd_bwd():
        opt.zero_grad(set_to_none=False)
        loss = loss_fn(model(x), y)
        loss.backward()

    def step():
        fwd_bwd()
        opt.step()

    times = {}
    for name, fn in (("fwd_bwd", fwd_bwd), ("fwd_bwd_adam", step)):
        fn()  # warm-up
        per = []
        for _ in range(REPS):
            t0 = time.perf_counter()
            for _ in range(STEPS):
                fn()
            per.append((time.perf_counter() - t0) / STEPS)
        times[name] = statistics.median(per)

    sps = BATCH / times["fwd_bwd"]
    sps_adam = BATCH / times["fwd_bwd_adam"]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), "
          f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(auto)')}")
    print(f"{'row':<22} {'step_ms':>10} {'samples/s':>12}")
    print(f"{'torch fwd+bwd':<22} {times['fwd_bwd'] * 1e3:>10.3f} {sps:>12.0f}")
    print(f"{'torch fwd+bwd+adam':<22} {times['fwd_bwd_adam'] * 1e3:>10.3f} {sps_adam:>12.0f}")
    out = os.environ.get("BENCH_JSON")
    if out:
        with open(out, "a") as f:
            f.write(json.dumps({
                "bench": "torch_mlp_step", "torch": torch.__version__,
                "threads": torch.get_num_threads(), "batch": BATCH,
                "step_ms": round(times["fwd_bwd"] * 1e3, 4),
                "samples_per_sec": round(sps, 1),
                "samples_per_sec_with_adam": round(sps_adam, 1)}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
