#!/usr/bin/env python3
"""Executor overhead: an empty iteration under constant-arrival-rate.

k6 runs an empty default function, volley a `noop` flow, with the same
options; both at the rates k6 can still reach and volley at the goal rates.
Reports achieved iterations/s, dropped iterations, CPU (% of one core), RSS at
10 s and at the end, and RSS growth per minute.

    python3 bench/empty_iterations.py --duration 120
"""

import argparse
import json
import tempfile

from common import *


def k6_script(rate, vus, duration):
    opts = {"scenarios": {"s": {"executor": "constant-arrival-rate", "rate": rate, "timeUnit": "1s",
                                "duration": f"{duration}s", "preAllocatedVUs": vus, "maxVUs": vus}}}
    return f"export const options = {json.dumps(opts)};\nexport default function () {{}}\n"


def volley_doc(rate, vus, duration):
    return {"options": {"scenarios": {"s": {"executor": "constant-arrival-rate", "rate": rate, "timeUnit": "1s",
                                            "duration": f"{duration}s", "preAllocatedVUs": vus, "maxVUs": vus}}},
            "flows": {"default": {"type": "noop"}}}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=int, default=120)
    ap.add_argument("--k6-rates", default="20000,50000")
    ap.add_argument("--volley-rates", default="20000,50000,200000:1000,400000:1000,1000000:4000")
    args = ap.parse_args()
    ensure_tools()
    bin_dir = build_release()
    rows = []
    runs = [("k6", r) for r in args.k6_rates.split(",") if r] + [("volley", r) for r in args.volley_rates.split(",") if r]
    for tool, spec in runs:
        rate, _, vus = spec.partition(":")
        rate, vus = int(rate), int(vus or 1000)
        work = tempfile.mkdtemp(prefix="volley-bench-")
        if tool == "k6":
            m, summary = k6_run(k6_script(rate, vus, args.duration), work)
        else:
            m, summary = volley_run(bin_dir, volley_doc(rate, vus, args.duration), work)
        m.wait()
        iters = metric(summary, "iterations")
        dropped = metric(summary, "dropped_iterations")
        cpu_pct = 100.0 * m.cpu_seconds() / max(m.wall, 1e-9)
        rss10, rss_end = m.rss_at(10), m.rss_last()
        growth = (rss_end - rss10) / max((m.samples[-1][0] - 10) / 60, 1e-9) if m.samples else 0
        rows.append([tool, rate, vus, f"{iters / args.duration:,.0f}", f"{dropped:,.0f}", f"{cpu_pct:.0f}%",
                     f"{rss10:.1f}", f"{rss_end:.1f}", f"{growth:+.1f}"])
        print(f"{tool} {rate}/s: {rows[-1]}", flush=True)
    print()
    table(rows, ["tool", "rate/s", "VUs", "achieved/s", "dropped", "CPU", "RSS@10s MB", "RSS@end MB", "RSS MB/min"])


if __name__ == "__main__":
    main()
