#!/usr/bin/env python3
"""HTTP GET throughput against nginx on loopback: wrk, k6 and volley.

nginx answers `return 200 "ok"` with one worker and keep-alive; each client
keeps 64 connections busy for the same time. Reports requests/s, client CPU
seconds per 1000 requests, requests per client CPU-second relative to wrk's,
and peak RSS.

    python3 bench/http_nginx.py --duration 20
"""

import argparse
import json
import re
import tempfile

from common import *


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=int, default=20)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--threads", default="1,2", help="client threads to compare at, comma-separated")
    args = ap.parse_args()
    ensure_tools(need_nginx=True, need_wrk=True)
    bin_dir = build_release()
    port = free_port()
    stop_nginx = nginx(port)
    url = f"http://127.0.0.1:{port}/"
    rows = []
    threads = [int(t) for t in args.threads.split(",")]
    try:
        for t in threads:
            # wrk is the ceiling; every tool gets the same number of threads
            # (k6 through GOMAXPROCS), since a second client thread on a
            # 2-core machine competes with nginx and costs context switches.
            m = Measured(["wrk", f"-t{t}", f"-c{args.connections}", f"-d{args.duration}s", url]).wait()
            results = {"wrk": (int(re.search(r"(\d+) requests in", m.stdout).group(1)), m)}
            work = tempfile.mkdtemp(prefix="volley-bench-")
            opts = {"scenarios": {"s": {"executor": "constant-vus", "vus": args.connections,
                                        "duration": f"{args.duration}s"}}}
            script = (f"import http from 'k6/http';\nexport const options = {json.dumps(opts)};\n"
                      f"export default function () {{ http.get('{url}'); }}\n")
            m, summary = k6_run(script, work, env={"GOMAXPROCS": str(t)})
            m.wait()
            results["k6"] = (int(metric(summary, "http_reqs")), m)
            doc = {"options": opts, "flows": {"default": {"type": "http", "steps": [{"request": {"url": url}}]}}}
            m, summary = volley_run(bin_dir, doc, work, extra=["--threads", str(t)])
            m.wait()
            results["volley"] = (int(metric(summary, "http_reqs")), m)
            wrk_per_cpu = results["wrk"][0] / max(results["wrk"][1].cpu_seconds(), 1e-9)
            for tool, (total, m) in results.items():
                cpu = m.cpu_seconds()
                per_cpu = total / max(cpu, 1e-9)
                rows.append([tool, t, f"{total / args.duration:,.0f}", f"{cpu:.1f}", f"{1000 * cpu / max(total, 1):.3f}",
                             f"{per_cpu:,.0f}", f"{per_cpu / wrk_per_cpu:.2f}x", f"{m.rss_peak():.1f}"])
                print(rows[-1], flush=True)
    finally:
        stop_nginx()
    print()
    table(rows, ["tool", "threads", "req/s", "client CPU s", "CPU s / 1000 req", "req per CPU s", "vs wrk",
                 "peak RSS MB"])

if __name__ == "__main__":
    main()
