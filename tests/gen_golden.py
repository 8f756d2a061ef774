#!/usr/bin/python3
"""Golden vectors for server/optim.c (tests/unit/test_optim.c reads them).

Run from the repo root with Debian's python (it has torch 1.13 and numpy):

    /usr/bin/python3 tests/gen_golden.py [outdir]     # default tests/data/golden

Inputs (seeded, so the output is reproducible):
  dense_grads.txt   16 parameters, 300 steps of gradients: mostly N(0, 1),
                    some exact zeros, some tiny (1e-7..1e-3) and some large
                    (1e2..1e3) magnitudes; parameter 0 never gets a non-zero
                    gradient (an untouched row in dense mode).
  sparse_grads.txt  8 rows x 4 floats, 300 steps; each step pushes 0..4
                    distinct rows (sometimes none, sometimes a row whose
                    gradient is all zero).

Expected values: one file per case, w after selected steps. Where torch
implements the rule as we do, torch.optim computes them:
  Adam, Adam + invsqrt schedule (group lr set to alpha/sqrt(t) before each
  step), Adam(amsgrad=True), AdamW, Adagrad, RMSprop, Adadelta, SGD,
  SGD(nesterov).
Where torch departs from the paper, numpy computes the paper's formula in
float32, mirroring the C order of operations (scalars in double, rounded to
float once per step):
  adam_nobc  Adam without bias correction (section 6.4): torch has none.
  adamax     AdaMax (section 7.1): torch puts eps inside the max,
             u = max(b2 u, |g| + eps), and divides 0/0 for a parameter that
             never saw a gradient; the paper (and we) have no eps and we leave
             such a w unchanged. The numpy reference is cross-checked here
             against torch.optim.Adamax(eps=0) where u > 0.
Lazy mode: torch.optim.SparseAdam. Its state['step'] is one counter per
parameter tensor, incremented on every step() in which the tensor has a
gradient (even one with no rows), and only rows present in the gradient
move: exactly our lazy mode with the global t. (torch 1.13 fails on a
sparse gradient with no rows, so for such steps the script advances
state['step'] itself, as our global clock does.) But it uses the paper's
"efficient version" (end of section 2): step = lr sqrt(1-b2^t)/(1-b1^t),
denominator sqrt(v) + eps, i.e. eps_hat = eps instead of Alg. 1's
eps sqrt(1-b2^t). The lazy case therefore runs with eps = 1e-30 on both
sides, where the two placements cannot differ (sqrt(v) is either 0, when
the update is 0/eps = 0 either way, or far above 1e-24).

Hyper-parameters are float32 values (what ps_opt_hp holds), passed to torch
as the doubles they equal, so both sides start from the same numbers.
Values are written with "%.9g", which round-trips float32 exactly.
"""
import math
import os
import sys

import numpy as np
import torch

F = np.float32
N = 16
ROWS, WIDTH = 8, 4
STEPS = 300
CHECKS = [1, 2, 3, 10, 50, 100, 200, 300]
SEED = 20150101


def f32(x):
    """The double equal to x rounded to float32."""
    return float(F(x))


def fmt(vals):
    return " ".join("%.9g" % float(v) for v in vals)


def make_dense_inputs(rng):
    w0 = rng.standard_normal(N).astype(F)
    grads = []
    for _ in range(STEPS):
        g = rng.standard_normal(N)
        kind = rng.random(N)
        tiny = 10.0 ** rng.uniform(-7, -3, N)
        large = 10.0 ** rng.uniform(2, 3, N)
        g = np.where(kind < 0.15, 0.0, g)
        g = np.where((kind >= 0.15) & (kind < 0.25), g * tiny, g)
        g = np.where((kind >= 0.25) & (kind < 0.30), g * large, g)
        g[0] = 0.0
        grads.append(g.astype(F))
    return w0, grads


def make_sparse_inputs(rng):
    w0 = rng.standard_normal(ROWS * WIDTH).astype(F)
    steps = []
    for t in range(1, STEPS + 1):
        k = int(rng.integers(0, 5)) if t > 1 else 3  # step 1 creates torch's state
        rows = np.sort(rng.choice(ROWS, size=k, replace=False)).astype(np.int64)
        vals = rng.standard_normal((k, WIDTH))
        scale = np.where(rng.random((k, WIDTH)) < 0.1, 1e-4, 1.0)
        vals = (vals * scale).astype(F)
        if k > 0 and t % 37 == 0:
            vals[0, :] = 0.0  # a pushed row whose gradient is all zero
        steps.append((rows, vals))
    return w0, steps


def write_dense_inputs(path, w0, grads):
    with open(path, "w") as f:
        f.write("# dense inputs for test_optim.c, written by tests/gen_golden.py\n")
        f.write("# inputs dense <n> <steps>; w0 <n>; g <t> <n values>\n")
        f.write("inputs dense %d %d\n" % (N, STEPS))
        f.write("w0 %s\n" % fmt(w0))
        for t, g in enumerate(grads, 1):
            f.write("g %d %s\n" % (t, fmt(g)))


def write_sparse_inputs(path, w0, steps):
    with open(path, "w") as f:
        f.write("# lazy inputs for test_optim.c, written by tests/gen_golden.py\n")
        f.write("# inputs sparse <rows> <width> <steps>; w0 <rows*width>;\n")
        f.write("# g <t> <nrows> <row ids> <nrows*width values>\n")
        f.write("inputs sparse %d %d %d\n" % (ROWS, WIDTH, STEPS))
        f.write("w0 %s\n" % fmt(w0))
        for t, (rows, vals) in enumerate(steps, 1):
            ids = " ".join(str(int(r)) for r in rows)
            line = "g %d %d" % (t, len(rows))
            if len(rows):
                line += " %s %s" % (ids, fmt(vals.reshape(-1)))
            f.write(line + "\n")


def hp(kind, lr, beta1=0.9, beta2=0.999, eps=1e-8, bc=1, momentum=0.0, wd=0.0,
       schedule="const"):
    return dict(kind=kind, lr=f32(lr), beta1=f32(beta1), beta2=f32(beta2), eps=f32(eps),
                bias_correction=bc, momentum=f32(momentum), weight_decay=f32(wd),
                schedule=schedule)


def run_torch_dense(h, w0, grads):
    p = torch.nn.Parameter(torch.tensor(w0.copy()))
    k = h["kind"]
    if k in ("adam", "amsgrad"):
        opt = torch.optim.Adam([p], lr=h["lr"], betas=(h["beta1"], h["beta2"]), eps=h["eps"],
                               amsgrad=(k == "amsgrad"))
    elif k == "adamw":
        opt = torch.optim.AdamW([p], lr=h["lr"], betas=(h["beta1"], h["beta2"]), eps=h["eps"],
                                weight_decay=h["weight_decay"])
    elif k == "adagrad":
        opt = torch.optim.Adagrad([p], lr=h["lr"], eps=h["eps"])
    elif k == "rmsprop":
        opt = torch.optim.RMSprop([p], lr=h["lr"], alpha=h["beta2"], eps=h["eps"])
    elif k == "adadelta":
        opt = torch.optim.Adadelta([p], lr=h["lr"], rho=h["beta2"], eps=h["eps"])
    elif k == "sgd":
        opt = torch.optim.SGD([p], lr=h["lr"])
    elif k == "nesterov":
        opt = torch.optim.SGD([p], lr=h["lr"], momentum=h["momentum"], nesterov=True)
    else:
        raise ValueError(k)
    out = {}
    for t, g in enumerate(grads, 1):
        if h["schedule"] == "invsqrt":
            opt.param_groups[0]["lr"] = h["lr"] / math.sqrt(t)  # section 6.1
        p.grad = torch.tensor(g.copy())
        opt.step()
        if t in CHECKS:
            out[t] = p.detach().numpy().copy()
    return out


def coef(h, t):
    """The C make_coef(): double math, each scalar rounded to float once."""
    lr = h["lr"]
    if h["schedule"] == "invsqrt":
        lr /= math.sqrt(t)
    b1, b2 = h["beta1"], h["beta2"]
    c = dict(b1=F(b1), omb1=F(1.0 - b1), b2=F(b2), omb2=F(1.0 - b2), eps=F(h["eps"]),
             lr=F(lr))
    if h["bias_correction"]:
        c["step"] = F(lr / (1.0 - b1 ** t))
        c["isb2"] = F(1.0 / math.sqrt(1.0 - b2 ** t))
    else:
        c["step"] = F(lr)
        c["isb2"] = F(1.0)
    return c


def run_numpy_dense(h, w0, grads):
    """Paper formulas in float32, in the C kernels' order of operations."""
    w = w0.copy()
    m = np.zeros(N, F)
    v = np.zeros(N, F)
    out = {}
    for t, g in enumerate(grads, 1):
        c = coef(h, t)
        m = c["b1"] * m + c["omb1"] * g
        if h["kind"] == "adam":
            # Alg. 1 (section 6.4 when bias correction is off).
            v = c["b2"] * v + c["omb2"] * (g * g)
            w = w * F(1.0) - (c["step"] * m) / (np.sqrt(v) * c["isb2"] + c["eps"])
        elif h["kind"] == "adamax":
            # Section 7.1; v holds u. No step where u == 0 (m is 0 there).
            v = np.maximum(c["b2"] * v, np.abs(g))
            live = np.where(v > 0, c["step"], F(0)).astype(F)
            d = np.where(v > 0, v, F(1)).astype(F)
            w = w - (live * m) / d
        else:
            raise ValueError(h["kind"])
        assert w.dtype == F and m.dtype == F and v.dtype == F
        if t in CHECKS:
            out[t] = w.copy()
    return out


def run_torch_sparse(h, w0, steps):
    p = torch.nn.Parameter(torch.tensor(w0.reshape(ROWS, WIDTH).copy()))
    opt = torch.optim.SparseAdam([p], lr=h["lr"], betas=(h["beta1"], h["beta2"]), eps=h["eps"])
    out = {}
    for t, (rows, vals) in enumerate(steps, 1):
        if len(rows) == 0:
            # torch 1.13 SparseAdam fails on a gradient with no rows (size
            # mismatch in sparse_mask); our clock still advances, so advance
            # its step counter by hand: no row moves either way.
            opt.state[p]["step"] += 1
        else:
            idx = torch.tensor(rows.reshape(1, -1))
            val = torch.tensor(vals.reshape(-1, WIDTH).copy())
            p.grad = torch.sparse_coo_tensor(idx, val, (ROWS, WIDTH))
            opt.step()
        assert opt.state[p]["step"] == t  # one global step per tensor
        if t in CHECKS:
            out[t] = p.detach().numpy().reshape(-1).copy()
    return out


def max_rel(a, b):
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-30)))


def cross_check(w0, grads):
    """The numpy mirror against torch where both implement the same rule."""
    h = hp("adam", 1e-3)
    a, b = run_numpy_dense(h, w0, grads), run_torch_dense(h, w0, grads)
    err = max(max_rel(a[t], b[t]) for t in CHECKS)
    assert err < 1e-5, "numpy Adam mirror vs torch.optim.Adam: %g" % err
    # torch Adamax with eps = 0 is the paper's rule wherever u > 0.
    h = hp("adamax", 2e-3)
    ours = run_numpy_dense(h, w0, grads)
    p = torch.nn.Parameter(torch.tensor(w0.copy()))
    opt = torch.optim.Adamax([p], lr=h["lr"], betas=(h["beta1"], h["beta2"]), eps=0.0)
    for t, g in enumerate(grads, 1):
        p.grad = torch.tensor(g.copy())
        opt.step()
        if t in CHECKS:
            tw = p.detach().numpy()
            live = np.isfinite(tw)
            assert not live[0], "torch Adamax should give 0/0 on the untouched parameter"
            err = max_rel(ours[t][live], tw[live])
            assert err < 1e-5, "numpy AdaMax mirror vs torch.optim.Adamax(eps=0): %g" % err
    return err


def write_case(outdir, name, h, source, inputs, tol_rel, tol_abs, expected):
    with open(os.path.join(outdir, name + ".txt"), "w") as f:
        f.write("# golden case for test_optim.c, written by tests/gen_golden.py\n")
        f.write("# expected values from: %s\n" % source)
        f.write("inputs %s\n" % inputs)
        f.write("kind %s\n" % h["kind"])
        for key in ("lr", "beta1", "beta2", "eps", "momentum", "weight_decay"):
            f.write("%s %.9g\n" % (key, h[key]))
        f.write("bias_correction %d\n" % h["bias_correction"])
        f.write("schedule %s\n" % h["schedule"])
        f.write("lazy %d\n" % (1 if inputs.startswith("sparse") else 0))
        f.write("tol_rel %g\ntol_abs %g\n" % (tol_rel, tol_abs))
        for t in CHECKS:
            f.write("check %d %s\n" % (t, fmt(expected[t])))


def main():
    outdir = sys.argv[1] if len(sys.argv) > 1 else "tests/data/golden"
    os.makedirs(outdir, exist_ok=True)
    torch.set_num_threads(1)
    rng = np.random.default_rng(SEED)
    w0, grads = make_dense_inputs(rng)
    sw0, ssteps = make_sparse_inputs(rng)
    write_dense_inputs(os.path.join(outdir, "dense_grads.txt"), w0, grads)
    write_sparse_inputs(os.path.join(outdir, "sparse_grads.txt"), sw0, ssteps)
    cross_check(w0, grads)

    # Tolerance |ours - expected| <= tol_abs + tol_rel |expected|. Against
    # torch: its CPU kernels use FMA (a + alpha*b in one rounding) and a
    # different operation order, we do not; a few ulp per step, accumulated
    # over 300 steps. Against the numpy mirror: same operations, same order.
    torch_cases = [
        ("adam", hp("adam", 1e-3), "torch.optim.Adam"),
        ("adam_invsqrt", hp("adam", 1e-2, schedule="invsqrt"),
         "torch.optim.Adam, group lr = alpha/sqrt(t) before step t"),
        ("amsgrad", hp("amsgrad", 1e-3), "torch.optim.Adam(amsgrad=True)"),
        ("adamw", hp("adamw", 1e-3, wd=0.01), "torch.optim.AdamW(weight_decay=0.01)"),
        ("adagrad", hp("adagrad", 1e-2, eps=1e-10), "torch.optim.Adagrad"),
        ("rmsprop", hp("rmsprop", 1e-2, beta2=0.99), "torch.optim.RMSprop(alpha=0.99)"),
        ("adadelta", hp("adadelta", 1.0, beta2=0.9, eps=1e-6),
         "torch.optim.Adadelta(lr=1.0, rho=0.9, eps=1e-6)"),
        ("sgd", hp("sgd", 1e-2), "torch.optim.SGD"),
        ("nesterov", hp("nesterov", 1e-2, momentum=0.9),
         "torch.optim.SGD(momentum=0.9, nesterov=True)"),
    ]
    for name, h, src in torch_cases:
        write_case(outdir, name, h, src, "dense_grads.txt", 1e-6, 1e-7,
                   run_torch_dense(h, w0, grads))
    numpy_cases = [
        ("adam_nobc", hp("adam", 1e-3, bc=0),
         "numpy float32, Alg. 1 without bias correction (section 6.4); torch has none"),
        ("adamax", hp("adamax", 2e-3),
         "numpy float32, section 7.1 (torch puts eps inside the max)"),
    ]
    for name, h, src in numpy_cases:
        write_case(outdir, name, h, src, "dense_grads.txt", 1e-6, 1e-7,
                   run_numpy_dense(h, w0, grads))
    h = hp("adam", 1e-3, eps=1e-30)
    write_case(outdir, "lazy_adam", h,
               "torch.optim.SparseAdam(eps=1e-30): only pushed rows step, global t",
               "sparse_grads.txt", 1e-6, 1e-7, run_torch_sparse(h, sw0, ssteps))


if __name__ == "__main__":
    main()
