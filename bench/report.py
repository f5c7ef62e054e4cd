#!/usr/bin/env python3
"""bench/report.py RESULTS_DIR OUT.json [--smoke]

Reads the one-line JSON results bench/run collected, prints the table of
figures, baselines and ratios with PASS/FAIL against the targets of the
benchmark issue, and writes everything (the raw results too) to OUT.json.
Exit status: 0 when every piece ran and produced its figure; 1 otherwise.
PASS/FAIL of a target does not change the exit status: the bench measures.
"""
import datetime
import json
import os
import pathlib
import platform
import subprocess
import sys

res_dir = pathlib.Path(sys.argv[1])
out_path = pathlib.Path(sys.argv[2])
smoke = "--smoke" in sys.argv[3:]

raw = {}
for p in sorted(res_dir.glob("*.json")):
    text = p.read_text().strip()
    try:
        raw[p.stem] = json.loads(text.splitlines()[-1]) if text else None
    except (json.JSONDecodeError, IndexError):
        raw[p.stem] = None

problems = []


def get(name, *path, default=None):
    d = raw.get(name)
    for k in path:
        if not isinstance(d, dict) or k not in d:
            return default
        d = d[k]
    return d


def need(name, *path):
    v = get(name, *path)
    if v is None:
        problems.append("missing result: %s %s" % (name, "/".join(path)))
    return v


def check_load(name):
    """A load run counts only with successes and no failures."""
    d = raw.get(name)
    if not d:
        problems.append("missing result: %s" % name)
        return
    if not d.get("ok"):
        problems.append("%s: no 2xx answer" % name)
    bad = {k: v for k, v in d.get("errors", {}).items() if v and k != "unsent"}
    if d.get("non_2xx") or bad:
        problems.append("%s: %d non-2xx answers %s, errors %s" % (name, d.get("non_2xx", 0), d.get("status"), bad))


meta = raw.get("meta") or {}
meta_end = raw.get("meta-end") or {}
scales = meta.get("scales", [])

# ---- machine and version -------------------------------------------------------------------------


def sh(*cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


cpu = None
try:
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
except OSError:
    pass
mem_kib = None
try:
    for line in open("/proc/meminfo"):
        if line.startswith("MemTotal:"):
            mem_kib = int(line.split()[1])
except OSError:
    pass
machine = {"cores": os.cpu_count(), "cpu": cpu, "mem_gib": round(mem_kib / 1048576, 1) if mem_kib else None,
           "kernel": platform.release()}
git = {"commit": sh("git", "rev-parse", "--short", "HEAD"),
       "dirty": bool(sh("git", "status", "--porcelain", "--untracked-files=no"))}

# ---- figures -------------------------------------------------------------------------------------


def lat_ms(name):
    l = get(name, "latency_us") or {}
    return {k: round(l[k] / 1000.0, 2) for k in ("p50", "p90", "p99", "p999", "max", "mean") if k in l}


ceiling = need("ceiling", "topups_per_s")
pg_tps = get("pgbench", "tps")
engine = need("engine", "topups_per_s")
if get("engine", "ledger_ok") is False:
    problems.append("engine: the ledger check failed after the run")
# bench/run: three windows at half of peak; "half" is a copy of the median one's
for n in ("peak", "half-1", "half-2", "half-3", "get"):
    check_load(n)
peak = get("peak", "ok_per_s")
half_p99 = get("half", "latency_us", "p99")
half_windows = [round(v / 1000.0, 2) for v in (get("half-%d" % k, "latency_us", "p99") for k in (1, 2, 3))
                if v is not None]
get_rate = get("get", "ok_per_s")

scale = {}
for n in scales:
    k = str(n)
    check_load("scale-%s" % k)
    scale[k] = {
        "sims": n,
        "topups_per_s": get("scale-%s" % k, "ok_per_s"),
        "latency_ms": lat_ms("scale-%s" % k),
        "db_bytes": need("size-%s" % k, "db_bytes"),
        "start_ms": need("start-scale-%s" % k, "ready_ms"),
        "rss_kib": need("rss-%s" % k, "vmhwm_kib"),
        "log_max_bytes": get("log-%s" % k, "max_bytes"),
        "import_rss_kib": get("build-%s" % k, "import_vmhwm_kib"),
        "build_s": get("build-%s" % k, "seconds"),
        "write_bytes_per_topup": get("scale-%s" % k, "topupd_write_bytes_per_ok"),
        "thread_cpu_us_per_topup": get("scale-%s" % k, "topupd_thread_cpu_us_per_ok"),
    }

# The smallest population run again just before and just after the largest
# one's run (bench/run: A B A); the scale ratio is taken against their mean.
bracket = None
if raw.get("bracket-before") or raw.get("bracket-after"):
    for k in ("bracket-before", "bracket-after"):
        check_load(k)
    b = [get("bracket-%s" % k, "ok_per_s") for k in ("before", "after")]
    bracket = {"sims": scales[0] if scales else None, "before": b[0], "after": b[1],
               "mean": round((b[0] + b[1]) / 2, 1) if None not in b else None,
               "latency_ms": {"before": lat_ms("bracket-before"), "after": lat_ms("bracket-after")},
               "thread_cpu_us_per_topup": {k: get("bracket-%s" % k, "topupd_thread_cpu_us_per_ok")
                                           for k in ("before", "after")}}

imports = {k: v for k, v in raw.items() if k.startswith("import-") and v}
for k, v in imports.items():
    if v.get("status") != 200 or v.get("failed") or v.get("imported") != v.get("count"):
        problems.append("%s: status %s, imported %s of %s, failed %s" % (
            k, v.get("status"), v.get("imported"), v.get("count"), v.get("failed")))
fig6 = raw.get("import-figure6")
if fig6 is None:
    problems.append("missing result: import-figure6")

sweep = sorted(({"connections": v["connections"], "topups_per_s": v["ok_per_s"], "latency_ms": lat_ms(k),
                 "seconds": v["seconds"], "others_busy": (v.get("cpu") or {}).get("others")}
                for k, v in raw.items() if k.startswith("sweep-") and v), key=lambda x: x["connections"])

figures = {
    "engine": {"topups_per_s": engine, "sims": get("engine", "sims"), "inflight": get("engine", "inflight"),
               "avg_batch": get("engine", "avg_batch"), "commits_per_s": get("engine", "commits_per_s")},
    "http_peak": {"topups_per_s": peak, "connections": get("peak", "connections"), "latency_ms": lat_ms("peak"),
                  "write_bytes_per_topup": get("peak", "topupd_write_bytes_per_ok"),
                  "status": get("peak", "status"), "sims": get("peak", "sims"), "sweep": sweep},
    "http_half_peak": {"rate": get("half", "rate"), "topups_per_s": get("half", "ok_per_s"),
                       "latency_ms": lat_ms("half"), "unsent": get("half", "errors", "unsent"),
                       "write_bytes_per_topup": get("half", "topupd_write_bytes_per_ok"),
                       "status": get("half", "status"),
                       "p99_ms_of_each_window": half_windows},
    "get_sim": {"per_s": get_rate, "connections": get("get", "connections"), "latency_ms": lat_ms("get")},
    "http_rss_kib": get("rss-http", "vmhwm_kib"),
    "cpu_cores_during": {k: get(k, "cpu") for k in ["ceiling", "engine", "peak", "half", "get"] +
                         ["scale-%s" % x for x in scales]},
    "scale": scale,
    "scale_bracket": bracket,
    "import": {"rows": get("import-figure6", "count"), "seconds": get("import-figure6", "seconds"),
               "rows_per_s": get("import-figure6", "rows_per_s"), "csv_bytes": get("import-figure6", "csv_bytes")},
}
baselines = {
    "sqlite_ceiling": {"topups_per_s": ceiling, "sims": get("ceiling", "sims"), "batch": get("ceiling", "batch"),
                       "sql_matches_src": meta.get("ceiling_sql_matches_src")},
    "pgbench_tpcb": raw.get("pgbench"),
}

# ---- targets -----------------------------------------------------------------------------------------
# Each target: the measured value against the limit, with op ">=" or "<=".
# For a relative target the value is the ratio itself (of the two figures in
# "of"); for an absolute one it is the figure, in "unit".
targets = []


def target(tid, text, value, op, limit, unit="", of=None, note=None):
    ok = None if value is None else (value >= limit if op == ">=" else value <= limit)
    t = {"id": tid, "target": text, "value": value, "op": op, "limit": limit, "unit": unit,
         "pass": ok, "margin": None if value is None or not limit else round(value / limit, 3)}
    if of:
        t["of"] = of
    if note:
        t["note"] = note
    targets.append(t)


def ratio(a, b):
    return round(a / b, 3) if a is not None and b else None


target("engine_vs_ceiling", "engine / raw SQLite ceiling", ratio(engine, ceiling), ">=", 0.7, "x", [engine, ceiling])
target("http_vs_pgbench", "HTTP peak top-ups / pgbench tps", ratio(peak, pg_tps), ">=", 8, "x", [peak, pg_tps],
       None if pg_tps else "pgbench not run")
p99 = None if half_p99 is None else round(half_p99 / 1000.0, 2)
target("p99_half_peak", "p99 at half of peak", p99, "<=", 10, "ms")
lo, hi = (str(scales[0]), str(scales[-1])) if scales else (None, None)
big = scale.get(hi, {})
full_scale = lo == "100000" and hi == "10000000"
note = None if full_scale else "scale run at %s..%s SIMs, not 100k..10M" % (lo, hi)
small = bracket["mean"] if bracket else scale.get(lo, {}).get("topups_per_s")
target("scale_rate", "top-up rate at 10M / at 100k" + (" beside it" if bracket else ""),
       ratio(big.get("topups_per_s"), small), ">=", 0.75, "x", [big.get("topups_per_s"), small], note)
rss_mib = None if big.get("rss_kib") is None else round(big["rss_kib"] / 1024, 1)
target("scale_rss", "topupd peak RSS at 10M", rss_mib, "<=", 512, "MiB", note=note)
start_s = None if big.get("start_ms") is None else round(big["start_ms"] / 1000, 3)
target("scale_start", "topupd start at 10M", start_s, "<=", 1, "s", note=note)
imp_s = get("import-figure6", "seconds")
imp_ok = fig6 is not None and fig6.get("status") == 200 and fig6.get("imported") == fig6.get("count")
target("import_1m", "CSV import of 1M SIMs", imp_s if imp_ok else None, "<=", 60, "s",
       note=None if get("import-figure6", "count") == 1000000 else
       "import of %s rows, not 1M" % get("import-figure6", "count"))

# ---- table ----------------------------------------------------------------------------------------------


def n(v, unit=""):
    if v is None:
        return "—"
    if isinstance(v, float) and v < 100:
        return "%.2f%s" % (v, unit)
    return "{:,.0f}{}".format(v, unit)


def size(b):
    return "—" if b is None else "%.2f GB" % (b / 1e9) if b >= 1e9 else "%.0f MB" % (b / 1e6)


def lat(name):
    l = lat_ms(name)
    return "p50 %s  p99 %s  p99.9 %s ms" % (l.get("p50", "—"), l.get("p99", "—"), l.get("p999", "—")) if l else "—"


def busy(name):
    """A warning when other processes used the CPUs during the measured window."""
    o = get(name, "cpu", "others")
    return "  [others busy: %.2f cores]" % o if o is not None and o >= 0.2 else ""


def thread_us(size, name):
    """A scale run's CPU microseconds per top-up: one thread name's, or all of topupd's (name None)."""
    t = scale[str(size)]["thread_cpu_us_per_topup"]
    if not t:
        return "—"
    v = t.get(name) if name else sum(t.values())
    return "—" if v is None else "%.1f us" % v


def label(n_):
    return {100000: "100k", 1000000: "1M", 10000000: "10M"}.get(n_, "{:,}".format(n_))


now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
lines = []
w = lines.append
w("")
w("topup bench%s — %s — %s, %s cores, %s GiB — topupd %s%s" % (
    " SMOKE (tiny scale; figures are not meaningful)" if smoke else "", now.isoformat().replace("+00:00", "Z"),
    machine["cpu"] or "?", machine["cores"], machine["mem_gib"], git["commit"], " (uncommitted changes)" if git["dirty"] else ""))
w("load average at start %s, at end %s; wall time %s s; every run %s s after %s s of warm-up" % (
    meta.get("load_at_start"), meta_end.get("load_at_end"), meta_end.get("wall_s"), meta.get("seconds"),
    meta.get("warmup")))
noisy = [(k, get(k, "cpu", "others")) for k in ["ceiling", "engine", "peak", "half", "get"] +
         ["scale-%s" % x for x in scales]]
noisy = [(k, o) for k, o in noisy if o is not None]
worst = max((o for _, o in noisy), default=0)
if worst >= 0.3:
    w("WARNING: other processes kept up to %.2f of the %s cores busy during the measured windows (marked" % (
        worst, machine["cores"]))
    w("         [others busy] below): those figures, and ratios between them, understate topupd; re-run on a")
    w("         quiet machine (BENCH_WAIT_QUIET=600 make bench) before drawing conclusions.")
w("")
w("%-62s %s" % ("BASELINES", ""))
w("%-62s %s%s" % ("(a) raw SQLite ceiling: %s writes/top-up, 1,000/tx, %s SIMs" % (
                      get("ceiling", "writes_per_topup", default="?"), n(get("ceiling", "sims"))),
                  n(ceiling, " top-ups/s"), busy("ceiling")))
if pg_tps:
    w("%-62s %s" % ("(b) pgbench TPC-B: scale 10, 8 clients, %s s, fsync on" % get("pgbench", "seconds"),
                    n(pg_tps, " tps")))
    pg_runs = get("pgbench", "runs_tps") or []
    if len(pg_runs) > 1:
        w("%-62s %s" % ("    the best of %d runs" % len(pg_runs), ", ".join(n(t) for t in pg_runs)))
else:
    w("%-62s %s" % ("(b) pgbench TPC-B", "not run"))
w("")
w("FIGURES")
w("%-62s %s%s" % ("(1) engine top-ups in-process (%s in flight, no HTTP)" % get("engine", "inflight"),
                  n(engine, " /s"), busy("engine")))
w("%-62s %s   %s" % ("(2) HTTP top-ups, peak (%s keep-alive conns, closed loop)" % get("peak", "connections"),
                     n(peak, " /s"), lat("peak") + busy("peak")))
if sweep:
    w("%-62s %s" % ("    connection sweep (%g s each; the best is the peak)" % sweep[0]["seconds"],
                    ", ".join("%d: %s/s" % (s["connections"], n(s["topups_per_s"])) for s in sweep)))
w("%-62s %s   %s" % ("(3) HTTP top-ups at half peak (open loop, %s/s, %s conns)" % (
    n(get("half", "rate")), get("half", "connections")), n(get("half", "ok_per_s"), " /s"), lat("half") + busy("half")))
if len(half_windows) > 1:
    w("%-62s %s" % ("    p99 of each %g s window (the median one is shown)" % get("half", "seconds"),
                    ", ".join("%s ms" % v for v in half_windows)))
if get("half", "errors", "unsent"):
    w("%-62s %s" % ("    requests never sent (server behind schedule)", n(get("half", "errors", "unsent"))))
w("%-62s %s   %s" % ("(4) GET /v1/sims/{iccid} (%s conns)" % get("get", "connections"), n(get_rate, " /s"),
                     lat("get") + busy("get")))
w("(5) scale%s" % ("" if scales else ": not run"))
if scales:
    w("    %-22s" % "SIMs" + "".join("%16s" % label(x) for x in scales))
    w("    %-22s" % "top-ups/s" + "".join("%16s" % n(scale[str(x)]["topups_per_s"]) for x in scales))
    w("    %-22s" % "p99 latency (ms)" + "".join("%16s" % n(scale[str(x)]["latency_ms"].get("p99")) for x in scales))
    w("    %-22s" % "written per top-up" + "".join(
        "%16s" % ("—" if get("scale-%s" % x, "topupd_write_bytes_per_ok") is None else
                  "%.0f KB" % (get("scale-%s" % x, "topupd_write_bytes_per_ok") / 1000)) for x in scales))
    # The one writer is the stage every top-up passes through in turn: its CPU
    # per top-up at each size is what the rates' ratio follows (bench/README.md).
    w("    %-22s" % "writer CPU per top-up" + "".join("%16s" % thread_us(x, "topupd-writer") for x in scales))
    w("    %-22s" % "topupd CPU per top-up" + "".join("%16s" % thread_us(x, None) for x in scales))
    w("    %-22s" % "others busy (cores)" + "".join(
        "%16s" % n(get("scale-%s" % x, "cpu", "others")) for x in scales))
    w("    %-22s" % "database size" + "".join("%16s" % size(scale[str(x)]["db_bytes"]) for x in scales))
    w("    %-22s" % "log at most (loaded)" + "".join(
        "%16s" % ("—" if scale[str(x)]["log_max_bytes"] is None else size(scale[str(x)]["log_max_bytes"]))
        for x in scales))
    w("    %-22s" % "start (exec → healthz)" + "".join(
        "%16s" % ("—" if scale[str(x)]["start_ms"] is None else "%.0f ms" % scale[str(x)]["start_ms"]) for x in scales))
    w("    %-22s" % "peak RSS serving" + "".join(
        "%16s" % ("—" if scale[str(x)]["rss_kib"] is None else "%.0f MiB" % (scale[str(x)]["rss_kib"] / 1024))
        for x in scales))
if bracket:
    w("    %s again just before and after the %s run: %s and %s top-ups/s (mean %s: the ratio's base)" % (
        label(bracket["sims"]), label(scales[-1]), n(bracket["before"]), n(bracket["after"]), n(bracket["mean"])))
    wr = [(bracket["thread_cpu_us_per_topup"].get(k) or {}).get("topupd-writer") for k in ("before", "after")]
    if None not in wr:
        w("    the writer's CPU per top-up in those two runs: %.1f and %.1f us" % tuple(wr))
w("%-62s %s" % ("(6) CSV import of %s SIMs (one POST /v1/sims/import)" % n(get("import-figure6", "count")),
                "—" if imp_s is None else "%.1f s (%s rows/s)" % (imp_s, n(get("import-figure6", "rows_per_s")))))
w("")
w("%-45s %-26s %-13s %s" % ("TARGETS", "measured", "target", "verdict"))
for t in targets:
    verdict = "—" if t["pass"] is None else ("PASS" if t["pass"] else "FAIL")
    v, u = t["value"], t["unit"]
    if v is None:
        vs = "—"
    elif u == "x":
        vs = "%.2f (%s / %s)" % (v, n(t["of"][0]), n(t["of"][1]))
    else:
        vs = "%s %s" % (("%.3g" % v) if v < 100 else n(v), u)
    lim = ("%s %g%s" % ("≥" if t["op"] == ">=" else "≤", t["limit"], "" if u == "x" else " " + u))
    w("  %-43s %-26s %-13s %s%s" % (t["target"], vs, lim, verdict, "  (%s)" % t["note"] if t.get("note") else ""))
cr = ratio(ceiling, pg_tps)
if cr is not None and cr < 8:
    w("  note: the raw SQLite ceiling is %.2f x pgbench here: the same %s writes a top-up, but each commit of" %
      (cr, get("ceiling", "writes_per_topup", default="its")))
    w("        1,000 synced before the next begins; topupd syncs one batch while it runs the next (engine.h E8)")
if not meta.get("ceiling_sql_matches_src", True):
    w("  WARNING: the ceiling's statements or the engine bench's exec_topup no longer match src/ (bench/check_sql.py)")
if problems:
    w("")
    w("PROBLEMS")
    for p in problems:
        w("  " + p)
w("")
print("\n".join(lines))

report = {
    "generated_at": now.isoformat().replace("+00:00", "Z"),
    "smoke": smoke,
    "machine": machine,
    "git": git,
    "settings": {**meta, **meta_end},
    "baselines": baselines,
    "figures": figures,
    "targets": targets,
    "problems": problems,
    "context": {"ceiling_over_pgbench": ratio(ceiling, pg_tps), "max_others_busy_cores": worst,
                "others_busy_cores": dict(noisy)},
    "raw": raw,
}
out_path.parent.mkdir(parents=True, exist_ok=True)
out_path.write_text(json.dumps(report, indent=2, sort_keys=False) + "\n")
print("written %s" % out_path)
sys.exit(1 if problems else 0)
