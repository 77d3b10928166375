#!/usr/bin/env python3
"""What a shared auth token costs per request: k6's Redis recipe against volley's {{token}}.

The k6 recipe for one token shared by all VUs (the source document's) is a
Redis GET before every request, through k6's built-in `k6/experimental/redis`
module. volley's readers hold the token in memory, fed by pub/sub and a GET
per second, with a token-manager flow logging in to the reference HTTP target
and keeping the token in the same Redis. Every client sends
`GET / Authorization: Bearer <token>` to nginx with 64 connections for the
same time; wrk (a static header) and k6 and volley with a static header are
the baselines. Reports requests/s, client CPU per 1000 requests, requests per
client CPU-second against wrk's, the Redis commands the run issued, and peak
RSS. The Redis server's own CPU is not counted for anyone.

    python3 bench/shared_token.py --duration 20
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import tempfile
import urllib.request

from common import *

KEY = "volley:bench:token"


def redis_server(port):
    exe = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not os.path.exists(exe):
        sudo = "" if os.geteuid() == 0 else "sudo "
        sh(f"{sudo}apt-get update -qq && {sudo}apt-get install -y -qq redis-server >/dev/null")
    proc = subprocess.Popen([exe, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_listening(port)
    return proc


def redis_cli(port, *args):
    return subprocess.run(["redis-cli", "-p", str(port), *args], capture_output=True, text=True, check=True).stdout


def redis_commands(port):
    """Commands the server has processed so far."""
    out = redis_cli(port, "INFO", "stats")
    return int(re.search(r"total_commands_processed:(\d+)", out).group(1))


def testbed(bin_dir):
    proc = subprocess.Popen([os.path.join(bin_dir, "volley-testbed"), "http", "--listen", "127.0.0.1:0",
                             "--threads", "1", "--token-ttl", "60s"], stdout=subprocess.PIPE, text=True)
    url = proc.stdout.readline().strip().rsplit(" ", 1)[-1]
    return proc, url


def login(base):
    req = urllib.request.Request(f"{base}/auth/login", data=b'{"username":"bench"}', method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req) as r:
        return json.load(r)["access_token"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=int, default=20)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1, help="client threads (k6: GOMAXPROCS)")
    args = ap.parse_args()
    ensure_tools(need_nginx=True, need_wrk=True)
    bin_dir = build_release()
    nginx_port, redis_port = free_port(), free_port()
    stop_nginx = nginx(nginx_port)
    redis = redis_server(redis_port)
    target, base = testbed(bin_dir)
    url = f"http://127.0.0.1:{nginx_port}/"
    redis_url = f"redis://127.0.0.1:{redis_port}"
    rows = []
    d, c, t = args.duration, args.connections, args.threads
    try:
        token = login(base)
        redis_cli(redis_port, "SET", KEY, token)
        work = tempfile.mkdtemp(prefix="volley-bench-")
        load = {"executor": "constant-vus", "vus": c, "duration": f"{d}s"}
        runs = []

        def measure(tool, variant, start, count):
            before = redis_commands(redis_port)
            m, summary = start()
            m.wait()
            total = count(m, summary)
            runs.append((tool, variant, total, m, redis_commands(redis_port) - before))
            print(runs[-1][:3], flush=True)

        measure("wrk", "static header", lambda: (Measured(["wrk", f"-t{t}", f"-c{c}", f"-d{d}s", "-H",
                                                           f"Authorization: Bearer {token}", url]), None),
                lambda m, _: int(re.search(r"(\d+) requests in", m.stdout).group(1)))

        k6_static = (f"import http from 'k6/http';\nexport const options = {json.dumps({'scenarios': {'s': load}})};\n"
                     f"const params = {{ headers: {{ Authorization: 'Bearer {token}' }} }};\n"
                     f"export default function () {{ http.get('{url}', params); }}\n")
        measure("k6", "static header", lambda: k6_run(k6_static, work, env={"GOMAXPROCS": str(t)}),
                lambda m, s: int(metric(s, "http_reqs")))
        k6_redis = (f"import http from 'k6/http';\nimport redis from 'k6/experimental/redis';\n"
                    f"const client = new redis.Client('{redis_url}');\n"
                    f"export const options = {json.dumps({'scenarios': {'s': load}})};\n"
                    f"export default async function () {{\n"
                    f"  const token = await client.get('{KEY}');\n"
                    f"  http.get('{url}', {{ headers: {{ Authorization: `Bearer ${{token}}` }} }});\n}}\n")
        measure("k6", "Redis GET per request", lambda: k6_run(k6_redis, work, env={"GOMAXPROCS": str(t)}),
                lambda m, s: int(metric(s, "http_reqs")))

        static_doc = {"options": {"scenarios": {"s": load}}, "flows": {"default": {"type": "http", "steps": [
            {"request": {"url": url, "headers": {"Authorization": f"Bearer {token}"}}}]}}}
        measure("volley", "static header", lambda: volley_run(bin_dir, static_doc, work, extra=["--threads", str(t)]),
                lambda m, s: int(metric(s, "http_reqs")))
        shared_doc = {
            "options": {"scenarios": {
                "token": {"executor": "constant-vus", "vus": 1, "duration": f"{d}s", "exec": "auth"},
                "s": dict(load, exec="api"),
            }},
            "flows": {
                "auth": {"type": "token-manager", "redis": redis_url, "key": KEY + ":volley",
                         "login": {"method": "POST", "url": f"{base}/auth/login", "body": {"username": "bench"}}},
                "api": {"type": "http", "steps": [
                    {"request": {"url": url, "headers": {"Authorization": "Bearer {{token}}"}}}]},
            },
        }
        # http_reqs of the load scenario only (the manager's login is one more).
        measure("volley", "{{token}} via Redis", lambda: volley_run(bin_dir, shared_doc, work,
                                                                     extra=["--threads", str(t)]),
                lambda m, s: int(metric(s, "http_reqs{scenario:s}")) or int(metric(s, "http_reqs")) - 1)
    finally:
        stop_nginx()
        redis.terminate()
        target.terminate()
    wrk_per_cpu = runs[0][2] / max(runs[0][3].cpu_seconds(), 1e-9)
    for tool, variant, total, m, cmds in runs:
        cpu = m.cpu_seconds()
        per_cpu = total / max(cpu, 1e-9)
        rows.append([tool, variant, f"{total / d:,.0f}", f"{1000 * cpu / max(total, 1):.3f}", f"{per_cpu:,.0f}",
                     f"{per_cpu / wrk_per_cpu:.2f}x", f"{cmds:,}", f"{m.rss_peak():.1f}"])
    print()
    table(rows, ["tool", "token", "req/s", "CPU s / 1000 req", "req per CPU s", "vs wrk", "Redis commands",
                 "peak RSS MB"])


if __name__ == "__main__":
    main()
