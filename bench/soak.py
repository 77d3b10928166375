#!/usr/bin/env python3
"""Soak: a long constant-arrival-rate HTTP test streaming to the exporter,
which writes to a real InfluxDB 1.x with alert rules active; the RSS and CPU
of the generator and the exporter are sampled every 10 s.

    python3 bench/soak.py --duration 30m --rate 50000

Reports whether both processes stay flat after warm-up (RSS growth over the
last 25 minutes of a 30-minute run, and the least-squares slope), whether
every window reached InfluxDB (the exporter's totals equal the generator's
summary), and what the alert webhook received. Writes the samples as JSON
and a PNG chart (matplotlib, installed from PyPI when missing) to
bench/results/.
"""

import argparse
import http.server
import json
import signal

from common import *

RESULTS = os.path.join(ROOT, "bench", "results")


def parse_duration(text):
    units = {"s": 1, "m": 60, "h": 3600}
    return int(float(text[:-1]) * units[text[-1]]) if text[-1] in units else int(text)


class Webhook(http.server.BaseHTTPRequestHandler):
    """Records every alert notification (the Alertmanager webhook shape)."""

    received = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        try:
            Webhook.received.append((time.time(), json.loads(body)))
        except ValueError:
            Webhook.received.append((time.time(), {"unparsed": body.decode(errors="replace")}))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def sample(pid, last):
    cpu, rss = proc_cpu_seconds(pid), proc_rss_bytes(pid)
    if cpu is None or rss is None:
        return None, last
    now = time.monotonic()
    pct = None if last is None else 100 * (cpu - last[1]) / max(now - last[0], 1e-9)
    return (rss, pct), (now, cpu)


def growth(samples, warmup_s, span_s=300):
    """RSS after warm-up, robust to the load-driven ups and downs of a busy
    process: the median of the first `span_s` past `warmup_s` against the
    median of the last `span_s` (growth), the least-squares trend over
    everything past warm-up (as a percentage of the start level over that
    time), and the peak. None with too few samples."""
    late = [(t, rss) for t, rss in samples if t >= warmup_s]
    if len(late) < 4:
        return None
    median = lambda xs: sorted(xs)[len(xs) // 2]
    t_end = late[-1][0]
    first = median([r for t, r in late if t < warmup_s + span_s])
    last = median([r for t, r in late if t > t_end - span_s])
    n = len(late)
    mt = sum(t for t, _ in late) / n
    mr = sum(r for _, r in late) / n
    slope = sum((t - mt) * (r - mr) for t, r in late) / max(sum((t - mt) ** 2 for t, _ in late), 1e-9)
    peak = max(r for _, r in late)
    return {"first": first, "last": last, "growth_pct": 100 * (last - first) / first,
            "trend_pct": 100 * slope * (t_end - late[0][0]) / first, "slope_mb_h": slope * 3600 / 1e6,
            "peak": peak, "peak_pct": 100 * (peak - first) / first}


def chart(path, series, title):
    try:
        import matplotlib
    except ImportError:
        sh(f"{sys.executable} -m pip install --quiet --disable-pip-version-check matplotlib")
        import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(10, 6.5), sharex=True)
    for name, pts in series.items():
        ax1.plot([t / 60 for t, _, _ in pts], [r / 1e6 for _, r, _ in pts], label=name)
        ax2.plot([t / 60 for t, _, c in pts if c is not None], [c for _, _, c in pts if c is not None], label=name)
    ax1.set_ylabel("RSS (MB)")
    ax1.set_ylim(bottom=0)
    ax1.legend(loc="lower right")
    ax1.grid(alpha=0.3)
    ax2.set_ylabel("CPU (% of one core, per 10 s)")
    ax2.set_xlabel("minutes")
    ax2.set_ylim(bottom=0)
    ax2.legend(loc="lower right")
    ax2.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", default="30m")
    ap.add_argument("--rate", type=int, default=50000)
    ap.add_argument("--every", type=int, default=10, help="seconds between samples")
    ap.add_argument("--warmup", default="5m", help="RSS growth is measured after this")
    ap.add_argument("--name", default="soak", help="file name stem under bench/results/")
    ap.add_argument("--no-alerts", action="store_true", help="run without the exporter's alert rules")
    ap.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                    help="set for the generator and the exporter only (e.g. MALLOC_CONF=...), repeatable")
    args = ap.parse_args()
    duration, warmup = parse_duration(args.duration), parse_duration(args.warmup)
    extra_env = dict(e.split("=", 1) for e in args.env)
    sh("cargo build --release --locked -p volley -p volley-testbed -p volley-exporter", cwd=ROOT)
    bin_dir = os.path.join(ROOT, "target", "release")
    work = tempfile.mkdtemp(prefix="volley-bench-soak-")
    os.makedirs(RESULTS, exist_ok=True)

    hook = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Webhook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    rules = write(os.path.join(work, "rules.yaml"), f"""
webhook: http://127.0.0.1:{hook.server_address[1]}/hook
rules:
  - name: P99High
    expr: "p(99) of http_req_duration over 5m > 300"
    for: 1m
  - name: FailureRate
    expr: "rate of http_req_failed over 1m > 0.01"
    for: 1m
  - name: GeneratorSilent
    expr: "no data from a generator for 10s"
""")
    db_port = free_port()
    db = influxd(db_port, free_port(), work)
    testbed = subprocess.Popen([os.path.join(bin_dir, "volley-testbed"), "http", "--listen", "127.0.0.1:0"],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    target = testbed.stdout.readline().split()[-1].rstrip("/")
    token = "soak-token-0123456789"
    health = free_port()
    exporter = subprocess.Popen([os.path.join(bin_dir, "volley-exporter"), "--listen", "127.0.0.1:0", "--token", token,
                                 "--out", f"influxdb=http://127.0.0.1:{db_port}/volley",
                                 "--health-listen", f"127.0.0.1:{health}", "--stats-interval", "60s", "--open-stats"]
                                + ([] if args.no_alerts else ["--alert-rules", rules]),
                                stdout=subprocess.PIPE, stderr=open(os.path.join(work, "exporter.log"), "w"), text=True,
                                env={**os.environ, **extra_env})
    exporter_url = exporter.stdout.readline().split()[-1]
    scenario = write(os.path.join(work, "soak.json"), json.dumps({
        "options": {"scenarios": {"soak": {
            "executor": "constant-arrival-rate", "rate": args.rate, "timeUnit": "1s", "duration": f"{duration}s",
            "preAllocatedVUs": 1000, "maxVUs": 1000}},
            "thresholds": {"http_req_failed": ["rate<0.01"], "http_req_duration": ["p(99)<300"]}},
        "flows": {"default": {"type": "http", "steps": [{"request": {"url": f"{target}/"}}]}},
    }))
    export = os.path.join(work, "summary.json")
    gen_log = os.path.join(work, "generator.log")
    gen = subprocess.Popen([os.path.join(bin_dir, "volley"), "run", "--quiet", "--test-id", "soak",
                            "--exporter", exporter_url, "--summary-export", export,
                            "--report", os.path.join(RESULTS, f"{args.name}-report.html"), scenario],
                           env={**os.environ, **extra_env, "VOLLEY_EXPORTER_TOKEN": token},
                           stdout=subprocess.DEVNULL, stderr=open(gen_log, "w"))
    t0 = time.monotonic()
    series = {"generator": [], "exporter": [], "testbed": [], "influxd": []}
    pids = {"generator": gen.pid, "exporter": exporter.pid, "testbed": testbed.pid, "influxd": db.pid}
    last = {k: None for k in pids}
    try:
        while gen.poll() is None:
            for name, pid in pids.items():
                s, last[name] = sample(pid, last[name])
                if s is not None:
                    series[name].append((time.monotonic() - t0, s[0], s[1]))
            g = series["generator"][-1] if series["generator"] else None
            if g and int(g[0]) % 60 < args.every:
                print(f"{g[0] / 60:5.1f} min  generator {g[1] / 1e6:6.1f} MB {g[2] or 0:5.1f}%  "
                      f"exporter {series['exporter'][-1][1] / 1e6:6.1f} MB", flush=True)
            time.sleep(args.every - (time.monotonic() - t0) % args.every)
        code = gen.wait()
        time.sleep(3)
        stats = json.load(urllib.request.urlopen(f"http://127.0.0.1:{health}/stats", timeout=10))
        exporter.send_signal(signal.SIGINT)
        exporter.wait(timeout=60)
        summary = json.load(open(export))
        stored = {}
        for metric in ["http_reqs", "iterations", "dropped_iterations"]:
            r = query(db_port, f"SELECT sum(\"count\") FROM \"{metric}\" WHERE \"testid\" = 'soak'")
            stored[metric] = int(r["results"][0]["series"][0]["values"][0][1]) if "series" in r["results"][0] else 0
    finally:
        for p in [gen, exporter, testbed, db]:
            if p.poll() is None:
                p.kill()
        hook.shutdown()
    gen_text = open(gen_log).read()
    exp_text = open(os.path.join(work, "exporter.log")).read()
    count = lambda k: int(summary["metrics"].get(k, {}).get("count", 0))
    print()
    print(f"generator exit {code}; {gen_text.strip().splitlines()[-1] if gen_text.strip() else ''}")
    rows, growths = [], {}
    for name in ["generator", "exporter", "testbed", "influxd"]:
        pts = series[name]
        g = growth([(t, r) for t, r, _ in pts], warmup)
        cpus = [c for t, _, c in pts if c is not None and t >= warmup]
        if g:
            growths[name] = g
            rows.append([name, f"{g['first'] / 1e6:.1f}", f"{g['last'] / 1e6:.1f}", f"{g['growth_pct']:+.2f}%",
                         f"{g['trend_pct']:+.2f}%", f"{g['peak'] / 1e6:.1f} ({g['peak_pct']:+.1f}%)",
                         f"{sum(cpus) / max(len(cpus), 1):.1f}%"])
    m = warmup // 60
    table(rows, ["process", f"median RSS min {m}-{m + 5} MB", "median RSS last 5 min MB", "growth",
                 f"trend after min {m}", "peak after warm-up MB", "mean CPU after warm-up"])
    print()
    table([[m, count(m), stored[m], "yes" if count(m) == stored[m] else "NO"] for m in stored],
          ["metric", "summary", "InfluxDB", "equal"])
    print()
    print(f"exporter /stats: {json.dumps(stats)}")
    alerts = [(round(t - time.time(), 1), b.get("status"), [a["labels"].get("alertname") for a in b.get("alerts", [])])
              for t, b in Webhook.received]
    print(f"alert notifications: {len(alerts)} {alerts[:10]}")
    print(f"achieved rate: {count('iterations') / duration:.0f}/s; dropped {count('dropped_iterations')}")
    out = {"args": vars(args), "series": series, "summary_counts": {m: count(m) for m in stored}, "influx": stored,
           "exporter_stats": stats, "growth": growths, "alerts": len(alerts), "generator_exit": code,
           "windows_line": [l for l in gen_text.splitlines() if "windows" in l][-1:]}
    json.dump(out, open(os.path.join(RESULTS, f"{args.name}.json"), "w"))
    chart(os.path.join(RESULTS, f"{args.name}.png"), {k: series[k] for k in ["generator", "exporter"]},
          f"volley soak: {args.rate}/s HTTP for {duration // 60} min, streaming to volley-exporter → InfluxDB")
    print(f"wrote {RESULTS}/{args.name}.json, {args.name}.png, {args.name}-report.html")
    print("exporter log tail:", "\n".join(exp_text.strip().splitlines()[-3:]))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
