#!/usr/bin/env python3
"""Self-noise and memory at a fixed arrival rate: constant-arrival-rate
5000 req/s against nginx, k6 and volley one after the other.

A load generator's own scheduling and GC noise shows up as latency: the
lower its p99/p50 ratio against the same fast server, the truer its numbers.
Reports p50, p95, p99, p99/p50, dropped iterations and RSS growth.

    python3 bench/arrival_latency.py --duration 60
"""

import argparse
import json
import tempfile

from common import *


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=int, default=60)
    ap.add_argument("--rate", type=int, default=5000)
    ap.add_argument("--tools", default="k6,volley", help="which tools to run, comma-separated")
    args = ap.parse_args()
    ensure_tools(need_nginx=True)
    bin_dir = build_release()
    port = free_port()
    stop_nginx = nginx(port)
    url = f"http://127.0.0.1:{port}/"
    stats = ["avg", "min", "med", "max", "p(95)", "p(99)"]
    opts = {"scenarios": {"s": {"executor": "constant-arrival-rate", "rate": args.rate, "timeUnit": "1s",
                                "duration": f"{args.duration}s", "preAllocatedVUs": 200, "maxVUs": 1000}},
            "summaryTrendStats": stats}
    rows = []
    try:
        work = tempfile.mkdtemp(prefix="volley-bench-")
        script = f"import http from 'k6/http';\nexport const options = {json.dumps(opts)};\nexport default function () {{ http.get('{url}'); }}\n"
        tools = args.tools.split(",")
        runs = []
        if "k6" in tools:
            runs.append(("k6",) + k6_run(script, work))
            runs[-1][1].wait()
        if "volley" in tools:
            doc = {"options": opts, "flows": {"default": {"type": "http", "steps": [{"request": {"url": url}}]}}}
            runs.append(("volley",) + volley_run(bin_dir, doc, work))
            runs[-1][1].wait()
    finally:
        stop_nginx()
    for tool, m, summary in runs:
        p50 = metric(summary, "http_req_duration", "med")
        p95 = metric(summary, "http_req_duration", "p(95)")
        p99 = metric(summary, "http_req_duration", "p(99)")
        dropped = metric(summary, "dropped_iterations")
        rss10, rss_end = m.rss_at(10), m.rss_last()
        growth = (rss_end - rss10) / max((m.samples[-1][0] - 10) / 60, 1e-9) if m.samples else 0
        rows.append([tool, f"{p50:.3f}", f"{p95:.3f}", f"{p99:.3f}", f"{p99 / max(p50, 1e-9):.1f}", f"{dropped:.0f}",
                     f"{100 * m.cpu_seconds() / m.wall:.0f}%", f"{rss10:.1f}", f"{m.rss_at(60):.1f}", f"{rss_end:.1f}",
                     f"{growth:+.1f}"])
    table(rows, ["tool", "p50 ms", "p95 ms", "p99 ms", "p99/p50", "dropped", "CPU", "RSS@10s MB", "RSS@60s MB",
                 "RSS@end MB", "RSS MB/min"])


if __name__ == "__main__":
    main()
