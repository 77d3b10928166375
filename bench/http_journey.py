#!/usr/bin/env python3
"""A user journey against the testbed's shop: volley against k6, and the
memory a journey costs.

1. Throughput. Each iteration logs in with a form (POST /shop/login, which
   answers 302 with a session cookie: the redirect to /shop/me is a second
   request), captures the user id from the JSON answer, and GETs
   /shop/orders?user={{id}} with the cookie: three requests. The same
   journey runs in k6 JavaScript, and volley also runs a plain GET of the
   testbed's `/` for the same time. Both clients get one thread
   (GOMAXPROCS=1, --threads 1) and 64 VUs; the testbed runs on one thread.
   The runs alternate over several rounds (the machine's speed drifts).
   Reports requests per client CPU-second, the ratio to k6's, and the
   journey's ratio to volley's plain GET.
2. Memory per VU: 10,000 VUs that each do one iteration and then sleep,
   once with a plain GET and once with the login, a cookie in the jar and
   ten captured values; the RSS difference per VU.
3. Test data: a 1,000,000-row CSV file, RSS with and without it.

    python3 bench/http_journey.py --duration 15 --rounds 3
"""

import argparse
import os
import tempfile
import time

from common import *


JOURNEY_K6 = """
import http from 'k6/http';
export const options = __OPTIONS__;
const BASE = '__BASE__';
export default function () {
  const res = http.post(`${BASE}/shop/login`, { user: `user${__VU}`, pass: `pw-user${__VU}` });
  const id = res.json('user.id');
  http.get(`${BASE}/shop/orders?user=${id}`);
}
"""


def journey_steps(base):
    return [
        {"request": {"method": "POST", "url": f"{base}/shop/login", "form": {"user": "user{{vu}}", "pass": "pw-user{{vu}}"}},
         "capture": {"id": {"json": "$.user.id"}}},
        {"request": {"url": f"{base}/shop/orders?user={{{{id}}}}"}},
    ]


def testbed(bin_dir, port):
    m = Measured([os.path.join(bin_dir, "volley-testbed"), "http", "--listen", f"127.0.0.1:{port}", "--threads", "1"])
    wait_listening(port)
    return m


def throughput(bin_dir, duration, vus, rounds):
    port = free_port()
    server = testbed(bin_dir, port)
    base = f"http://127.0.0.1:{port}"
    opts = {"scenarios": {"s": {"executor": "constant-vus", "vus": vus, "duration": f"{duration}s"}}}
    script = JOURNEY_K6.replace("__OPTIONS__", json.dumps(opts)).replace("__BASE__", base)
    docs = {
        "volley journey": {"options": opts, "flows": {"default": {"type": "http", "steps": journey_steps(base)}}},
        "volley plain GET": {"options": opts, "flows": {"default": {"type": "http", "steps": [{"request": {"url": f"{base}/"}}]}}},
    }
    # Rounds alternate the tools, so a machine that speeds up or slows down
    # meanwhile affects each alike; totals are summed over the rounds.
    runs = {k: [0.0, 0.0, 0.0] for k in ["k6 journey", *docs]}  # requests, CPU s, peak RSS
    try:
        for _ in range(rounds):
            work = tempfile.mkdtemp(prefix="volley-bench-journey-")
            m, summary = k6_run(script, work, env={"GOMAXPROCS": "1"})
            m.wait()
            add(runs["k6 journey"], metric(summary, "http_reqs"), m)
            for name, doc in docs.items():
                m, summary = volley_run(bin_dir, doc, work, extra=["--threads", "1"])
                m.wait()
                add(runs[name], metric(summary, "http_reqs"), m)
    finally:
        server.stop()
    per_cpu = {k: total / max(cpu, 1e-9) for k, (total, cpu, _) in runs.items()}
    rows = []
    for k, (total, cpu, rss) in runs.items():
        rows.append([k, f"{total / (duration * rounds):,.0f}", f"{cpu:.1f}", f"{per_cpu[k]:,.0f}",
                     f"{per_cpu[k] / per_cpu['k6 journey']:.2f}x", f"{per_cpu[k] / per_cpu['volley plain GET']:.2f}x",
                     f"{rss:.1f}"])
    table(rows, ["run", "req/s", "client CPU s", "req per CPU s", "vs k6 journey", "vs volley plain GET", "peak RSS MB"])


def add(acc, requests, m):
    acc[0] += requests
    acc[1] += m.cpu_seconds()
    acc[2] = max(acc[2], m.rss_peak())


def memory_per_vu(bin_dir, vus):
    port = free_port()
    server = testbed(bin_dir, port)
    base = f"http://127.0.0.1:{port}"
    # Every VU does its one iteration, then sleeps while RSS is read.
    opts = {"scenarios": {"s": {"executor": "per-vu-iterations", "vus": vus, "iterations": 1, "maxDuration": "2m"}}}
    captures = {
        "id": {"json": "$.user.id"}, "name": {"json": "$.user.name"}, "active": {"json": "$.user.active"},
        "ok": {"json": "$.ok"}, "csrf": {"header": "X-CSRF-Token"}, "type": {"header": "Content-Type"},
        "user": {"regex": '"name":"([^"]+)"'}, "idText": {"regex": '"id":(\\d+)'},
        "whole": {"json": "$.user"}, "len": {"header": "Content-Length"},
    }
    plain = [{"request": {"url": f"{base}/json"}}, {"sleep": "25s"}]
    journey = [
        {"request": {"method": "POST", "url": f"{base}/shop/login", "form": {"user": "user{{vu}}", "pass": "pw-user{{vu}}"}},
         "capture": captures},
        {"sleep": "25s"},
    ]
    rss = {}
    try:
        for name, steps in [("plain GET", plain), ("cookie jar + 10 captures", journey)]:
            work = tempfile.mkdtemp(prefix="volley-bench-vumem-")
            doc = {"options": opts, "flows": {"default": {"type": "http", "steps": steps}}}
            m, _ = volley_run(bin_dir, doc, work, extra=["--threads", "1"])
            time.sleep(20)
            rss[name] = proc_rss_bytes(m.proc.pid) / 1e6
            m.wait()
    finally:
        server.stop()
    extra = (rss["cookie jar + 10 captures"] - rss["plain GET"]) * 1e6 / vus
    table([[k, f"{v:.1f}", f"{v * 1e6 / vus:,.0f}"] for k, v in rss.items()], ["VUs: " + str(vus), "RSS MB", "bytes per VU"])
    print(f"\nextra per VU: {extra:,.0f} bytes")


def csv_memory(bin_dir, rows):
    work = tempfile.mkdtemp(prefix="volley-bench-csv-")
    path = os.path.join(work, "users.csv")
    with open(path, "w") as f:
        f.write("username,password,email\n")
        for i in range(1, rows + 1):
            f.write(f"user{i},pw-user{i},user{i}@example.test\n")
    size = os.path.getsize(path)
    rss = {}
    for name, data in [("without data", None), ("with the CSV", {"users": {"file": path, "pick": "sequential"}})]:
        doc = {"options": {"scenarios": {"s": {"executor": "constant-vus", "vus": 1, "duration": "6s"}}},
               "flows": {"default": {"type": "http", "steps": [{"sleep": "100ms"}]}}}
        if data:
            doc["data"] = data
        m, _ = volley_run(bin_dir, doc, work)
        time.sleep(4)
        rss[name] = proc_rss_bytes(m.proc.pid)
        m.wait()
    held = rss["with the CSV"] - rss["without data"]
    print(f"\n{rows:,} rows, file {size / 1e6:.1f} MB; RSS {rss['without data'] / 1e6:.1f} MB without, "
          f"{rss['with the CSV'] / 1e6:.1f} MB with: {held / 1e6:.1f} MB held, {held / size:.2f}x the file")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=int, default=20)
    ap.add_argument("--vus", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--memory-vus", type=int, default=10000)
    ap.add_argument("--csv-rows", type=int, default=1_000_000)
    ap.add_argument("--only", choices=["throughput", "memory", "csv"])
    args = ap.parse_args()
    ensure_tools()
    bin_dir = build_release()
    if args.only in (None, "throughput"):
        throughput(bin_dir, args.duration, args.vus, args.rounds)
    if args.only in (None, "memory"):
        memory_per_vu(bin_dir, args.memory_vus)
    if args.only in (None, "csv"):
        csv_memory(bin_dir, args.csv_rows)


if __name__ == "__main__":
    main()
