#!/usr/bin/python3
"""deploy/plot --scaling -o OUTDIR sweep.jsonl [more.jsonl ...]

Scaling figures from deploy/sweep's JSON lines (one per run), as PNGs
through gnuplot, one panel per transport, one line per server count and
consistency model, against the number of workers; the median of a point's
repeats (runs with rc 0 only):

  throughput_vs_workers.png    training samples/s (samples_per_sec)
  speedup_vs_workers.png       samples/s over the 1-worker run of the same
                               line, with the ideal (= workers) dashed
  efficiency_vs_workers.png    speed-up / workers
  time_to_target_vs_workers.png  training seconds to the sweep's target loss
                               (points that never reached it are left out)
  wait_fraction_vs_workers.png worker time blocked on pulls (pull_wait_fraction)
  server_busy_vs_workers.png   server time not waiting (server_busy_fraction)
  bytes_per_sample_vs_workers.png  push + pull bytes per training sample

Also writes OUTDIR/scaling.tsv, the medians drawn. Standard library only."""

import json
import os
import shutil
import statistics
import subprocess
import sys

FIGURES = [
    # name, ylabel, value of a median row (None: leave out), ideal line
    ("throughput_vs_workers", "training samples/s", lambda r: r["samples_per_sec"], False),
    ("speedup_vs_workers", "speed-up over 1 worker", lambda r: r.get("speedup"), True),
    ("efficiency_vs_workers", "parallel efficiency (speed-up / workers)",
     lambda r: r["speedup"] / r["workers"] if r.get("speedup") else None, False),
    ("time_to_target_vs_workers", "training seconds to target test loss",
     lambda r: r.get("time_to_target_s"), False),
    ("wait_fraction_vs_workers", "fraction of worker time blocked on pulls",
     lambda r: r["pull_wait_fraction"], False),
    ("server_busy_vs_workers", "fraction of server time busy",
     lambda r: r["server_busy_fraction"], False),
    ("bytes_per_sample_vs_workers", "bytes on the wire per sample",
     lambda r: r["bytes_per_sample"], False),
]
NUMERIC = ("samples_per_sec", "time_to_target_s", "pull_wait_fraction", "server_busy_fraction",
           "bytes_per_sample", "train_time_s")


def die(msg):
    print("plot: " + msg, file=sys.stderr)
    sys.exit(1)


def load(paths):
    runs = []
    for path in paths:
        with open(path) as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    d = json.loads(line)
                except ValueError as e:
                    die("%s:%d: not JSON: %s" % (path, n, e))
                if not isinstance(d, dict) or "workers" not in d:
                    die("%s:%d: not a deploy/sweep line (no \"workers\")" % (path, n))
                if d.get("rc") == 0:
                    runs.append(d)
    return runs


def medians(runs):
    """One row per (model, batch, transport, servers, consistency, workers)."""
    groups = {}
    for r in runs:
        k = (r["model"], r["batch"], r["transport"], r["servers"], r["consistency"], r["workers"])
        groups.setdefault(k, []).append(r)
    rows = []
    for k, rs in sorted(groups.items(), key=lambda kv: [str(x) for x in kv[0][:5]] + [kv[0][5]]):
        row = dict(zip(("model", "batch", "transport", "servers", "consistency", "workers"), k))
        row["runs"] = len(rs)
        for f in NUMERIC:
            vals = [r[f] for r in rs if r.get(f) is not None]
            # A point reached the target only if most of its runs did.
            ok = len(vals) * 2 > len(rs) if f == "time_to_target_s" else vals
            row[f] = statistics.median(vals) if ok else None
        rows.append(row)
    base = {(r["model"], r["batch"], r["transport"], r["servers"], r["consistency"]):
            r["samples_per_sec"] for r in rows if r["workers"] == 1}
    for r in rows:
        b = base.get((r["model"], r["batch"], r["transport"], r["servers"], r["consistency"]))
        r["speedup"] = r["samples_per_sec"] / b if b else None
    return rows


def gq(s):
    return "'" + str(s).replace("'", "''") + "'"


def draw(rows, outdir, tmp, gnuplot, term):
    transports = sorted({r["transport"] for r in rows})
    lines = sorted({(r["model"], r["batch"], r["servers"], r["consistency"]) for r in rows},
                   key=lambda x: [str(v) for v in x])
    models = {l[0] for l in lines}
    batches = {l[1] for l in lines}
    maxw = max(r["workers"] for r in rows)
    made = []
    for name, ylabel, value, ideal in FIGURES:
        gp = ["set terminal %s" % term, "set output %s" % gq(os.path.join(outdir, name + ".png")),
              "set grid", "set key below", "set xtics 1", "set xlabel 'workers'",
              "set ylabel %s" % gq(ylabel),
              "set xrange [0.8:%g]" % (maxw + 0.2), "set yrange [0:*]",
              "set multiplot layout 1,%d" % len(transports)]
        drawn = False
        for t in transports:
            series = []
            for i, ln in enumerate(lines):
                pts = sorted((r["workers"], value(r)) for r in rows
                             if (r["model"], r["batch"], r["servers"], r["consistency"]) == ln
                             and r["transport"] == t and value(r) is not None)
                if not pts:
                    continue
                path = os.path.join(tmp, "%s-%s-%d.dat" % (name, t, i))
                with open(path, "w") as f:
                    for x, y in pts:
                        f.write("%g %.9g\n" % (x, y))
                title = "%d server%s, %s" % (ln[2], "" if ln[2] == 1 else "s", ln[3])
                if len(models) > 1:
                    title = ln[0] + " " + title
                if len(batches) > 1:
                    title += " b=%d" % ln[1]
                series.append("%s using 1:2 with linespoints lw 2 pt 7 title %s" % (gq(path),
                                                                                    gq(title)))
            if ideal:
                series.append("x with lines dt 2 lc 'gray' title 'ideal'")
            empty = not series or (ideal and len(series) == 1)
            drawn = drawn or not empty
            gp.append("set title %s" % gq("transport: " + t))
            if empty:
                gp += ["set label 1 'no data' at graph 0.5,0.5 center",
                       "plot [1:2] [0:1] 0 lc rgb '#ffffff' notitle", "unset label 1"]
            else:
                gp.append("plot " + ", ".join(series))
        gp.append("unset multiplot")
        if not drawn:
            continue
        script = os.path.join(tmp, name + ".gp")
        with open(script, "w") as f:
            f.write("\n".join(gp) + "\n")
        r = subprocess.run([gnuplot, script], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           universal_newlines=True)
        if r.returncode != 0:
            die("gnuplot failed on %s: %s" % (name, r.stdout.strip()[-400:]))
        made.append(name + ".png")
    return made


def main(argv):
    args = [a for a in argv if a != "--scaling"]
    outdir = None
    files = []
    i = 0
    while i < len(args):
        if args[i] == "-o" and i + 1 < len(args):
            outdir = args[i + 1]
            i += 2
        elif args[i].startswith("-"):
            die("--scaling takes -o OUTDIR and sweep files only, not %s" % args[i])
        else:
            files.append(args[i])
            i += 1
    if not outdir or not files:
        print(__doc__.split("\n\n")[0], file=sys.stderr)
        sys.exit(2)
    for f in files:
        if not os.access(f, os.R_OK):
            die("%s: cannot read" % f)
    gnuplot = os.environ.get("GNUPLOT", "gnuplot")
    if not shutil.which(gnuplot):
        die("%s not found (apt-get install gnuplot-nox)" % gnuplot)
    runs = load(files)
    if not runs:
        die("no finished runs (rc 0) in %s" % " ".join(files))
    rows = medians(runs)
    os.makedirs(outdir, exist_ok=True)
    cols = ["model", "batch", "transport", "servers", "consistency", "workers", "runs",
            "samples_per_sec", "speedup", "time_to_target_s", "pull_wait_fraction",
            "server_busy_fraction", "bytes_per_sample", "train_time_s"]
    with open(os.path.join(outdir, "scaling.tsv"), "w") as f:
        f.write("\t".join(cols) + "\n")
        for r in rows:
            f.write("\t".join("" if r.get(c) is None else
                              ("%.6g" % r[c] if isinstance(r[c], float) else str(r[c]))
                              for c in cols) + "\n")
    probe = subprocess.run([gnuplot, "-e", "set terminal"], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, universal_newlines=True).stdout
    ntrans = len({r["transport"] for r in rows})
    width = 520 * ntrans + 80
    term = ("pngcairo size %d,520 noenhanced font ',9'" % width if "pngcairo" in probe
            else "png size %d,520 noenhanced" % width)
    tmp = os.path.join(outdir, ".plot-tmp")
    os.makedirs(tmp, exist_ok=True)
    try:
        made = draw(rows, outdir, tmp, gnuplot, term)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for m in made:
        print(os.path.join(outdir, m))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
