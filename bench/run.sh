#!/usr/bin/env bash
# `make bench`: runs every benchmark, each figure beside its bound measured
# in the same process, collects their JSON lines into bench/results.json
# ({"machine": {...}, "results": [...]}, gitignored) and prints a summary:
# figure, bound, ratio, the issue's target, met or not. See bench/README.md.
# Env: BIN (./adamps), BUILD (build), BENCH_QUICK=1 (small sizes, for a smoke
# test of the harness; its figures mean nothing). Takes ~5 minutes on 2 cores.
set -u
cd "$(dirname "$0")/.." || exit 1

: "${BIN:=./adamps}"
: "${BUILD:=build}"
: "${BENCH_QUICK:=0}"
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
OUT=bench/results.json
TMP=$(mktemp -d /tmp/adamps-bench.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
export BENCH_JSON=$TMP/results.jsonl
: >"$BENCH_JSON"
# One BLAS thread per process everywhere: ranks share the cores, and the
# issue's figures are per core. OPENBLAS_CORETYPE is never set: the kernel
# printed is the one OpenBLAS picked for this CPU.
export OPENBLAS_NUM_THREADS=1

MPIRUN=(mpirun --oversubscribe --bind-to none --mca btl_base_warn_component_unused 0)
if [ "$(id -u)" -eq 0 ]; then
    MPIRUN+=(--allow-run-as-root)
fi
MPIRUN+=(-x OPENBLAS_NUM_THREADS -x BENCH_JSON)

if [ "$BENCH_QUICK" = 1 ]; then
    OPTIM_ARGS=(--params 1000000 --reps 3)
    PP_ARGS=(--keys "1000,65536" --reps 3)
    export E2E_STEPS=60 E2E_SPARSE_STEPS=20
else
    OPTIM_ARGS=(--params "10000000,100000000" --reps 5)
    PP_ARGS=(--keys "1000,65536,1048576" --reps 5)
    export E2E_STEPS=2500 E2E_SPARSE_STEPS=300
fi

# The BLAS kernel and thread count, asked of the library the binaries link.
BLAS_INFO=$("$PY" - <<'EOF' 2>/dev/null || echo "unknown 0"
import ctypes
lib = ctypes.CDLL("libopenblas.so.0")
lib.openblas_get_corename.restype = ctypes.c_char_p
print(lib.openblas_get_corename().decode(), lib.openblas_get_num_threads())
EOF
)
read -r BLAS_CORE BLAS_THREADS <<<"$BLAS_INFO"
CPU=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')
NPROC=$(nproc)
DATE=$(date -u +%Y-%m-%dT%H:%M:%SZ)
echo "adamps bench: $DATE, $NPROC cores, $CPU"
echo "OpenBLAS core $BLAS_CORE, $BLAS_THREADS thread(s) (OPENBLAS_NUM_THREADS=1)"
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg) (other processes skew every figure)"

FAILED=()
# section TITLE CMD...: runs one benchmark, keeps going if it fails.
section() {
    local title=$1
    shift
    printf '\n== %s ==\n' "$title"
    "$@"
    local rc=$?
    if [ "$rc" -ne 0 ]; then
        echo "bench: $title failed (exit $rc)" >&2
        FAILED+=("$title")
    fi
}

T0=$(date +%s)
section "1. server apply: optimizer kernels vs read-modify-write" \
    "$BUILD/bench/bench_optim" "${OPTIM_ARGS[@]}"
section "2. codec: push encode+decode vs memcpy" "$BUILD/bench/bench_codec"
section "3a. push/pull vs raw MPI, shared memory (default btl)" \
    timeout 600 "${MPIRUN[@]}" -np 2 "$BUILD/bench/bench_pushpull" "${PP_ARGS[@]}" \
    --transport shm
section "3b. push/pull vs raw MPI, --mca btl tcp,self" \
    timeout 600 "${MPIRUN[@]}" --mca btl tcp,self -np 2 "$BUILD/bench/bench_pushpull" \
    "${PP_ARGS[@]}" --transport tcp
section "4. worker: MLP step vs its sgemm calls; sparse logreg" "$BUILD/bench/bench_mlp"
if [ "$BENCH_QUICK" != 1 ] && /usr/bin/python3 -c 'import torch' 2>/dev/null; then
    section "4b. PyTorch reference (same MLP step)" /usr/bin/python3 bench/torch_mlp.py
else
    echo "bench: skipping the PyTorch reference: no torch for /usr/bin/python3" \
        "(ADAMPS_DEV_DEPS=1 deploy/install-deps.sh installs python3-torch)"
fi
section "5. end to end: PS overhead (MLP), sparse logreg vs worker compute" env BIN="$BIN" BUILD="$BUILD" bench/bench_e2e.sh
ELAPSED=$(($(date +%s) - T0))

"$PY" - "$BENCH_JSON" "$OUT" "$NPROC" "$CPU" "$BLAS_CORE" "$BLAS_THREADS" "$DATE" \
    "$ELAPSED" <<'EOF'
import json
import sys

src, out, nproc, cpu, core, threads, date, elapsed = sys.argv[1:9]
results = []
with open(src) as f:
    for line in f:
        line = line.strip()
        if line:
            results.append(json.loads(line))

rows = []  # (name, value, bound, ratio, target, met) for the table


def si(v, unit):
    for div, p in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= div:
            return f"{v / div:.2f} {p}{unit}"
    return f"{v:.1f} {unit}"


def row(r, name, figure, unit, bound, ratio, target=None, met=None, shown=None):
    """Gives result r the common fields (name, figure, unit, bound, ratio,
    target, met) and adds its line to the summary table."""
    r.update({"name": name, "figure": figure, "unit": unit, "bound": bound, "ratio": ratio,
              "target": target, "met": met})
    rows.append((name, shown or si(figure, unit), "-" if bound is None else si(bound, unit),
                 ratio, target or "-", "-" if met is None else ("met" if met else "NOT met")))


torch_sps = [r["samples_per_sec_with_adam"] for r in results if r.get("bench") == "torch_mlp_step"]
for r in results:
    b = r.get("bench")
    if b == "optim":
        mode = r["mode"] + (f" w{r['width']}" if r["mode"] == "lazy" else "")
        bpp = r["bytes_per_param"]
        row(r, f"apply {r['rule']} {mode} {r['params']:.0e} (bound {r['bound_loop']})",
            r["params_per_sec"], "param/s", r["bound_gb_per_s"] * 1e9 / bpp, r["ratio_vs_bound"])
    elif b == "codec_push":
        row(r, f"codec push w{r['width']} {r['density_pct']}%", r["gb_per_s"], "GB/s",
            r["memcpy_gb_per_s"], r["ratio_vs_memcpy"], shown=f"{r['gb_per_s']:.2f} GB/s")
        rows[-1] = rows[-1][:2] + (f"memcpy {r['memcpy_gb_per_s']:.2f} GB/s",) + rows[-1][3:]
    elif b == "pushpull":
        big = r["keys"] >= 65536
        row(r, f"push/pull {r['transport']} {r['keys']} keys w{r['width']}",
            r["gb_per_s"], "GB/s", r["raw_gb_per_s"], r["ratio_vs_raw"],
            ">= 0.7 fresh raw" if big else None, r["ratio_vs_raw"] >= 0.7 if big else None,
            shown=f"{si(r['keys_per_sec'], 'key/s')} {r['gb_per_s']:.3f} GB/s")
        rows[-1] = rows[-1][:2] + (f"raw {r['raw_gb_per_s']:.3f} GB/s",) + rows[-1][3:]
    elif b == "mlp_step":
        sg = r["batch"] / (r["sgemm_ms"] * 1e-3)
        row(r, "MLP fwd+bwd (dropout) vs its sgemm calls", r["samples_per_sec"], "sample/s", sg,
            r["sgemm_ms"] / r["step_ms"])
    elif b == "mlp_run":
        row(r, f"MLP fwd+bwd+adam, 1 process, {r['steps']} steps", r["samples_per_sec"],
            "sample/s", None, None)
    elif b == "sparse_logreg_grad":
        row(r, "sparse logreg keys+gradient (worker alone)", r["nnz_per_sec_with_keys"], "nnz/s",
            r["nnz_per_sec"], r["nnz_per_sec_with_keys"] / r["nnz_per_sec"])
        rows[-1] = rows[-1][:2] + (f"grad only {si(r['nnz_per_sec'], 'nnz/s')}",) + rows[-1][3:]
    elif b == "torch_mlp_step":
        row(r, "torch 1.13 fwd+bwd+adam, 1 thread", r["samples_per_sec_with_adam"], "sample/s",
            None, None)
    elif b == "e2e_mlp":
        limit = 0.25 if r["consistency"] == "bsp" else 0.10
        row(r, f"e2e MLP 1+1 {r['consistency']} {r['steps']} steps vs 1 process",
            r["samples_per_sec"], "sample/s", r["local_samples_per_sec"], r["ratio_vs_local"],
            f"overhead <= {limit:.0%}", r["ps_overhead"] <= limit)
        rows.append((f"  PS overhead = 1 - ps/local", f"{100 * r['ps_overhead']:.1f}%", "-",
                     None, "-", "-"))
        # PyTorch measured just before this run (bench_e2e.sh), else 4b's.
        t = r.get("torch_samples_per_sec") or (torch_sps[0] if torch_sps else None)
        if t:
            x = r["samples_per_sec"] / t
            rows.append((f"  vs torch 1 thread ({t:.0f} sample/s)", f"{x:.2f}x", "-",
                         None, ">= 1.5x", "met" if x >= 1.5 else "NOT met"))
            r["ratio_vs_torch"] = x
    elif b == "e2e_sparse":
        row(r, f"e2e sparse logreg 1+1 bsp vs worker keys+gradient", r["nnz_per_sec"], "nnz/s",
            r["bound_nnz_per_sec"], r["ratio_vs_local"], ">= 0.5", r["ratio_vs_local"] >= 0.5)
if not torch_sps and any(r.get("bench") == "e2e_mlp" for r in results):
    rows.append(("  vs torch 1 thread", "skipped: no torch", "-", None, ">= 1.5x", "-"))

machine = {"nproc": int(nproc), "cpu_model": cpu, "openblas_core": core,
           "openblas_threads": int(threads), "date": date,
           "bench_seconds": int(elapsed)}
with open(out, "w") as f:
    json.dump({"machine": machine, "results": results}, f, indent=1)
    f.write("\n")

print(f"\n== summary ({len(results)} results in {out}; {elapsed} s; "
      f"OpenBLAS {core}, {threads} thread(s); {nproc} cores) ==")
w = max(len(r[0]) for r in rows) if rows else 10
print(f"{'figure':<{w}}  {'value':<28} {'bound':<24} {'ratio':>7}  {'target':<16} status")
for name, value, bound, ratio, target, met in rows:
    rs = f"{ratio:.3f}" if isinstance(ratio, float) else "-"
    print(f"{name:<{w}}  {value:<28} {bound:<24} {rs:>7}  {target:<16} {met}")
EOF
if [ ${#FAILED[@]} -ne 0 ]; then
    echo "bench: failed: ${FAILED[*]}" >&2
    exit 1
fi
