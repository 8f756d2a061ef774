#!/usr/bin/python3
"""Cost model of one adamps clock (docs/scaling.md, "Cost model"),
calibrated only from `make bench` figures and the job counters of a
deploy/sweep run, validated against every point of that sweep and then
evaluated for clusters.

    deploy/costmodel.py --sweep runs/sweep.jsonl [--sweep runs/sweep-mlp.jsonl]
                        [--bench bench/results.json | --bench bench.jsonl]
                        [--cores 2] [--nodes 8,16,32,64,128,256]

Per clock (one minibatch per worker), W workers, S servers:

  t_w   worker CPU per clock: compute + its share of messaging (counters:
        train_time_s x (1 - pull_wait_fraction) / steps of the 1-worker,
        1-server run of the same model and transport), plus o_msg for each
        server beyond the first (fan-out: one push, one pull and one reply
        per server touched; o_msg from bench push/pull: the round-trip
        overhead of adamps over a raw MPI ping-pong of the same bytes, at
        the smallest size);
  b     bytes per worker per clock on the wire, push + pull (counters of
        the 1-worker run with the same server count);
  t_s   server CPU per clock = W x (b / S) x sigma_s, sigma_s the server's
        busy seconds per byte it handled (counters of the 1-worker,
        1-server run: server_busy_fraction x train_time_s / bytes);
  t_net one round trip alpha + b / beta on the worker's link, and
        W x b / S / beta on a server's link. beta: bench's raw ping-pong
        fitted as alpha_raw + bytes / beta. alpha: on the sweep's node, what
        a BSP clock of the 1-worker, 1-server run costs beyond both sides'
        CPU (counters: wake-ups and the node's other load included); for
        clusters the stated network's latency plus 3 x o_msg.

  BSP:    T = t_w + t_net + t_s      (the reply waits for every push)
  SSP/ASP: T = max(t_w, alpha + b / beta, t_s, W b / (S beta))  (the
        prefetched pull hides the round trip; the slowest stage sets the pace)
  on one node of C cores with more ranks than cores: T >= (W t_w + S t_s) / C,
  with C the node's cores (--cores) and C_eff fitted to the sweep (the share
  of the node the job had beside other jobs), both reported.

  samples/s = W x batch / T.

Standard library only."""

import argparse
import json
import math
import statistics
import sys

TRANSPORT_BENCH = {"shm": "shm", "tcp": "tcp", "default": "shm"}
# bench/results.json before issue 15 labelled shared memory "sm".
BENCH_LABEL = {"sm": "shm"}


def die(msg):
    print("costmodel: " + msg, file=sys.stderr)
    sys.exit(1)


def load_lines(path):
    with open(path) as f:
        text = f.read()
    try:
        d = json.loads(text)
        if isinstance(d, dict) and "results" in d:
            return d["results"]
    except ValueError:
        pass
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                out.append(json.loads(line))
            except ValueError as e:
                die("%s:%d: not JSON: %s" % (path, n, e))
    return out


def fit_line(xs, ys):
    """Least squares y = a + b x; with one point, a line through 0."""
    if len(xs) == 1:
        return 0.0, ys[0] / xs[0]
    mx, my = statistics.mean(xs), statistics.mean(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx
    return my - b * mx, b


def bench_params(rows):
    """Per bench transport: raw alpha (s), beta (B/s), o_msg (s)."""
    net = {}
    rows = [dict(r, transport=BENCH_LABEL.get(r["transport"], r["transport"]))
            for r in rows if r.get("bench") == "pushpull"]
    for t in sorted({r["transport"] for r in rows}):
        pp = [r for r in rows if r["transport"] == t]
        xs = [r["req_bytes"] + r["reply_bytes"] for r in pp]
        a, b = fit_line(xs, [r["raw_round_trip_us"] * 1e-6 for r in pp])
        small = min(pp, key=lambda r: r["req_bytes"] + r["reply_bytes"])
        over = (small["round_trip_us"] - small["raw_round_trip_us"]) * 1e-6
        net[t] = {"alpha": max(a, 1e-7), "beta": 1 / b if b > 0 else float("inf"),
                  "o_msg": max(over, 0) / 3, "points": len(pp)}
    return net


def med(rs, f):
    vals = [r[f] for r in rs if r.get(f) is not None]
    return statistics.median(vals) if vals else None


def groups(runs):
    g = {}
    for r in runs:
        if r.get("rc") == 0:
            k = (r["model"], r["batch"], r["transport"], r["servers"], r["consistency"],
                 r["workers"])
            g.setdefault(k, []).append(r)
    return g


def per_clock(rs):
    steps = rs[0]["steps"]
    return {
        "t_w": med([dict(x=r["train_time_s"] * (1 - r["pull_wait_fraction"]) / steps)
                    for r in rs], "x"),
        "b": med([dict(x=(r["push_bytes_total"] + r["pull_bytes_total"]) /
                       (r["workers"] * steps)) for r in rs], "x"),
        "sigma_s": med([dict(x=r["server_busy_fraction"] * r["train_time_s"] /
                             (r["push_bytes_received_total"] + r["pull_bytes_total"]))
                        for r in rs], "x"),
        # What a BSP clock costs beyond both sides' CPU: the round trip as
        # this node delivers it (wake-ups, the other jobs on its cores).
        # clock - worker CPU - server CPU = wait - server CPU, per clock.
        "a_eff": med([dict(x=max(0.0, r["train_time_s"] / steps *
                                 (r["pull_wait_fraction"] - r["server_busy_fraction"])))
                      for r in rs], "x"),
    }


def calibrate(g):
    """From the 1-worker runs: per (model, batch, transport) t_w and
    sigma_s (1 server), and b per server count."""
    cal = {}
    for (model, batch, transport, s, cons, w), rs in g.items():
        if w != 1:
            continue
        key = (model, batch, transport)
        c = cal.setdefault(key, {"b": {}, "t_w": [], "sigma_s": [], "a_eff": []})
        pc = per_clock(rs)
        c["b"].setdefault(s, []).append(pc["b"])
        if s == 1:
            c["t_w"].append(pc["t_w"])
            c["sigma_s"].append(pc["sigma_s"])
            if cons == "bsp":
                c["a_eff"].append(pc["a_eff"])
    out = {}
    for key, c in cal.items():
        if not c["t_w"]:
            continue
        out[key] = {"t_w": statistics.median(c["t_w"]),
                    "sigma_s": statistics.median(c["sigma_s"]),
                    "a_eff": statistics.median(c["a_eff"]) if c["a_eff"] else None,
                    "b": {s: statistics.median(v) for s, v in c["b"].items()}}
    return out


def clock_time(p, w, s, cons, alpha, beta, o_msg, cores=None):
    b = p["b"].get(s) or p["b"][min(p["b"], key=lambda k: abs(k - s))]
    t_w = p["t_w"] + o_msg * 3 * (s - 1)
    t_s = w * (b / s) * p["sigma_s"]
    link_s = w * b / s / beta
    lat = alpha + b / beta
    if cons == "bsp":
        t = t_w + lat + t_s + link_s
    else:
        t = max(t_w, lat, t_s, link_s)
    if cores and w + s > cores:
        t = max(t, (w * t_w + s * t_s) / cores)
    return t, t_w, t_s, link_s


def validate(g, cal, net, cores):
    rows = []
    for (model, batch, transport, s, cons, w), rs in sorted(g.items(), key=lambda kv: str(kv[0])):
        p = cal.get((model, batch, transport))
        n = net.get(TRANSPORT_BENCH.get(transport, transport))
        if not p or not n:
            continue
        alpha = p["a_eff"] if p["a_eff"] is not None else n["alpha"]
        t, _, _, _ = clock_time(p, w, s, cons, alpha, n["beta"], n["o_msg"], cores)
        pred = w * batch / t
        meas = med(rs, "samples_per_sec")
        rows.append((model, transport, w, s, cons, len(rs), meas, pred, (pred - meas) / meas))
    return rows


def fit_cores(g, cal, net):
    """The cores the sweep effectively had (other jobs on the node take
    their share): the C that minimises the median |log(predicted /
    measured)| over every point, on a grid of 0.05."""
    best = None
    for i in range(2, 81):
        c = i * 0.05
        rows = validate(g, cal, net, c)
        e = statistics.median(abs(math.log((1 + r[8]))) for r in rows)
        if best is None or e < best[1]:
            best = (c, e)
    return best[0]


def fmt_si(v):
    for d, p in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= d:
            return "%.3g%s" % (v / d, p)
    return "%.3g" % v


def cluster(cal, net_soft, nodes, networks):
    """For each model and network: per node count N (one rank per node), the
    server count S that maximises samples/s under BSP and SSP, the ratio,
    and where a server's CPU or link is the slowest stage."""
    out = []
    for (model, batch, transport), p in sorted(cal.items()):
        if transport != "shm":
            continue
        for name, alpha, beta in networks:
            for N in nodes:
                best = {}
                for cons in ("bsp", "ssp"):
                    cands = []
                    for s in range(1, N):
                        w = N - s
                        t, t_w, t_s, link = clock_time(p, w, s, cons,
                                                       alpha + 3 * net_soft["o_msg"], beta,
                                                       net_soft["o_msg"])
                        cands.append((w * batch / t, s, w, t_w, t_s, link))
                    best[cons] = max(cands)
                rate, s, w, t_w, t_s, link = best["ssp"]
                # Fewest servers with servers no slower than the workers.
                need = next((c[1] for c in sorted(cands, key=lambda c: c[1])
                             if max(c[4], c[5]) <= c[3]), None)
                out.append((model, name, N, best["bsp"][1], best["bsp"][0], s, rate,
                            rate / best["bsp"][0], need, N - need if need else None,
                            "server CPU" if t_s >= max(t_w, link) else
                            "server link" if link >= t_w else "worker"))
    return out


def main(argv):
    ap = argparse.ArgumentParser(prog="deploy/costmodel.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("--sweep", action="append", required=True, help="deploy/sweep JSON lines")
    ap.add_argument("--bench", required=True, help="bench/results.json or BENCH_JSON lines")
    ap.add_argument("--cores", type=int, default=2, help="cores of the node the sweep ran on")
    ap.add_argument("--nodes", default="8,16,32,64,128,256")
    a = ap.parse_args(argv)
    runs = []
    for f in a.sweep:
        runs += load_lines(f)
    net = bench_params(load_lines(a.bench))
    if not net:
        die("%s has no push/pull rows (make bench, or bench_pushpull with BENCH_JSON)" % a.bench)
    g = groups(runs)
    cal = calibrate(g)
    if not cal:
        die("no 1-worker runs to calibrate from in %s" % " ".join(a.sweep))
    print("## Parameters\n")
    print("| transport (bench) | alpha (raw round trip) | beta (raw) | o_msg (adamps per message) |")
    print("|---|---|---|---|")
    for t, n in sorted(net.items()):
        print("| %s | %.1f us | %.2f GB/s | %.1f us |" % (t, n["alpha"] * 1e6, n["beta"] / 1e9,
                                                        n["o_msg"] * 1e6))
    print("\n| model | batch | transport | t_w (worker CPU / clock) | sigma_s (server s/MB) | b (bytes / worker-clock, by servers) |")
    print("|---|---|---|---|---|---|")
    for (model, batch, t), p in sorted(cal.items()):
        print("| %s | %d | %s | %.1f us | %.3f ms/MB | %s |" % (
            model, batch, t, p["t_w"] * 1e6, p["sigma_s"] * 1e9,
            ", ".join("S=%d: %.1f kB" % (s, b / 1e3) for s, b in sorted(p["b"].items()))))
    rows = validate(g, cal, net, a.cores)
    ceff = fit_cores(g, cal, net)
    fitted = validate(g, cal, net, ceff)
    print("\n## Validation: predicted vs measured samples/s (medians of the runs)\n")
    print("C = %d: the node's cores; C_eff = %.2f: the cores fitted to the sweep (the "
          "share of the node this job got beside the other jobs on it).\n" % (a.cores, ceff))
    print("| model | transport | workers | servers | consistency | runs | measured | predicted (C=%d) | error | predicted (C_eff) | error |" % a.cores)
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    errs, ferrs = [], []
    for r, f in zip(rows, fitted):
        model, t, w, s, cons, n, meas, pred, err = r
        errs.append(abs(err))
        ferrs.append(abs(f[8]))
        print("| %s | %s | %d | %d | %s | %d | %s | %s | %+.0f%% | %s | %+.0f%% |" % (
            model, t, w, s, cons, n, fmt_si(meas), fmt_si(pred), 100 * err, fmt_si(f[7]),
            100 * f[8]))
    if errs:
        print("\nMedian |error| %.0f%% (C=%d), %.0f%% (C_eff); largest %.0f%%, %.0f%%; "
              "%d points." % (100 * statistics.median(errs), a.cores,
                              100 * statistics.median(ferrs), 100 * max(errs),
                              100 * max(ferrs), len(errs)))
    soft = net.get("shm") or next(iter(net.values()))
    networks = [("100 Gb/s, 2 us", 2e-6, 100e9 / 8), ("10 Gb/s, 2 us", 2e-6, 10e9 / 8)]
    nodes = [int(x) for x in a.nodes.split(",")]
    print("\n## Prediction: one rank per node, the stated network\n")
    print("| model | network | nodes | BSP best servers | BSP samples/s | SSP best servers | SSP samples/s | SSP / BSP | fewest servers as fast as workers | workers then | slowest stage (SSP best) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in cluster(cal, soft, nodes, networks):
        model, name, N, sb, rb, ss, rs, ratio, need, wneed, stage = r
        print("| %s | %s | %d | %d | %s | %d | %s | %.2f | %s | %s | %s |" % (
            model, name, N, sb, fmt_si(rb), ss, fmt_si(rs), ratio,
            need if need else "none", wneed if wneed else "-", stage))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
