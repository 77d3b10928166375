#!/usr/bin/env python3
"""WebSocket connections: memory per connection and CPU per message.

Two parts, both against `volley-testbed im` gateways on this machine:

--scale N,N,...   volley only (k6 cannot hold these): N authenticated
                  connections pinging every 10 s, spread over several
                  generator processes (one process holds ~19k connections
                  under this machine's open-files hard limit of 20,000), each
                  with its own --user-base and source address (--local-addrs),
                  all streaming their windows to one volley-exporter that
                  merges them. Each generator has its own gateway process
                  (a gateway is bound by the same limit). Memory is read once
                  every connection is authenticated and has exchanged at
                  least two more PINGs.

--k6 N,N,...      volley and k6 side by side: N connections in im-e2e pairs,
                  every sender sending one message per second (N/2 msg/s),
                  the same gateway, the same duration: RSS per connection and
                  generator CPU per message.

Example (what BENCHMARKS.md records):
  python3 bench/ws_connections.py --scale 10000,50000,100000 --k6 1000,5000
"""

import argparse
import base64
import hashlib
import hmac
import json
import math
import os
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import ROOT, Measured, ensure_tools, free_port, k6_run, proc_cpu_seconds, proc_rss_bytes, sh  # noqa: E402

SECRET = "bench-secret-change-me"
PER_PROCESS = 16_000


def build():
    sh("cargo build --release --locked -p volley -p volley-testbed -p volley-exporter", cwd=ROOT)
    return os.path.join(ROOT, "target", "release")


def gateway(bin_dir, i=0):
    """A gateway process on a free port; returns (process, port)."""
    port = free_port()
    p = subprocess.Popen(
        [os.path.join(bin_dir, "volley-testbed"), "im", "--listen", f"127.0.0.1:{port}", "--jwt-secret", SECRET,
         "--instance-id", str(i), "--threads", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    p.stdout.readline()
    return p, port


def stats(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/stats", timeout=5) as r:
        return json.load(r)


def stop(procs):
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            p.kill()


def scale(bin_dir, n, keep):
    """n connections over ceil(n / PER_PROCESS) generators and as many gateways."""
    procs_needed = math.ceil(n / PER_PROCESS)
    gws = [gateway(bin_dir, i) for i in range(procs_needed)]
    exp_port = free_port()
    exporter = subprocess.Popen(
        [os.path.join(bin_dir, "volley-exporter"), "--token", "t", "--listen", f"127.0.0.1:{exp_port}"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    exporter.stdout.readline()
    gens = []
    per = math.ceil(n / procs_needed)
    for i in range(procs_needed):
        vus = min(per, n - i * per)
        cmd = [os.path.join(bin_dir, "volley"), "ws-ping", "--ws-urls", f"ws://127.0.0.1:{gws[i][1]}/ws",
               "--jwt-secret", SECRET, "--vus", str(vus), "--duration", f"{keep}s", "--ping-interval-ms", "10000",
               "--auth", "frame", "--user-base", str(1_000_000 * (i + 1)), "--local-addrs", f"127.0.0.{i + 2}",
               "--exporter", f"ws://127.0.0.1:{exp_port}", "--exporter-token", "t", "--quiet", "--test-id", f"ws-scale-{n}"]
        gens.append(Measured(cmd))
    start = time.monotonic()
    # Every connection authenticated, then two full ping intervals.
    connected_at = None
    while time.monotonic() - start < keep - 25:
        if sum(stats(port)["auth_ok"] for _, port in gws) >= n:
            connected_at = time.monotonic() - start
            break
        time.sleep(1)
    time.sleep(21)
    t = time.monotonic() - start
    gen_rss = sum(proc_rss_bytes(g.proc.pid) or 0 for g in gens) / 1e6
    gw_rss = sum(proc_rss_bytes(g.pid) or 0 for g, _ in gws) / 1e6
    gen_cpu = sum(proc_cpu_seconds(g.proc.pid) or 0 for g in gens)
    gw_cpu = sum(proc_cpu_seconds(g.pid) or 0 for g, _ in gws)
    pings = sum(stats(port)["pings"] for _, port in gws)
    for g in gens:
        g.wait(timeout=keep + 60)
    exp_rss = proc_rss_bytes(exporter.pid) / 1e6
    exporter.terminate()
    exporter.wait(timeout=30)
    stop([g for g, _ in gws])
    connects = sum(_summary_count(g.stdout, "ws_auth_ok") for g in gens)
    return {
        "connections": n,
        "generators": len(gens),
        "gateways": len(gws),
        "all_connected_s": round(connected_at, 1) if connected_at is not None else None,
        "measured_at_s": round(t, 1),
        "generator_rss_mb": round(gen_rss, 1),
        "generator_kb_per_conn": round(gen_rss * 1000 / n, 2),
        "generator_cpu_pct_of_core": round(gen_cpu / t * 100, 1),
        "gateway_rss_mb": round(gw_rss, 1),
        "gateway_kb_per_conn": round(gw_rss * 1000 / n, 2),
        "gateway_cpu_pct_of_core": round(gw_cpu / t * 100, 1),
        "exporter_rss_mb": round(exp_rss, 1),
        "ws_auth_ok": connects,
        "pings_answered": pings,
    }


def _summary_count(text, metric):
    for line in (text or "").splitlines():
        if line.strip().startswith(metric + "."):
            return int(line.split(":")[1].split()[0])
    return 0


def jwt(sub):
    enc = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()  # noqa: E731
    head = enc(b'{"alg":"HS256","typ":"JWT"}')
    body = enc(json.dumps({"sub": sub, "exp": int(time.time()) + 3600}).encode())
    sig = enc(hmac.new(SECRET.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest())
    return f"{head}.{body}.{sig}"


K6_SCRIPT = """
import { WebSocket } from 'k6/experimental/websockets';
import { SharedArray } from 'k6/data';
import { Counter, Trend } from 'k6/metrics';
import { setInterval, setTimeout, clearInterval } from 'k6/timers';
const tokens = new SharedArray('tokens', () => JSON.parse(open(__ENV.TOKENS)));
const sent = new Counter('im_sent_total');
const recv = new Counter('im_recv_unique_total');
const e2e = new Trend('im_e2e_latency_ms', true);
const BASE = 1000000;
export const options = { scenarios: { chat: { executor: 'constant-vus', vus: Number(__ENV.VUS), duration: __ENV.DURATION, gracefulStop: '5s' } } };
export default function () {
  const idx = __VU - 1;
  const ws = new WebSocket(__ENV.URL);
  let seq = 0;
  let timer = null;
  ws.onopen = () => ws.send(JSON.stringify({ type: 'AUTH', token: tokens[idx] }));
  ws.onmessage = (e) => {
    const m = JSON.parse(e.data);
    if (m.type === 'AUTH_OK' && idx % 2 === 0) {
      timer = setInterval(() => {
        seq++;
        ws.send(JSON.stringify({ type: 'MSG', to: String(BASE + __VU + 1), seq: seq, ts: Date.now() * 1000, body: 'hello' }));
        sent.add(1);
      }, 1000);
    } else if (m.type === 'MSG') {
      recv.add(1);
      e2e.add(Date.now() - m.ts / 1000);
    }
  };
  setTimeout(() => { if (timer) clearInterval(timer); ws.close(); }, Number(__ENV.DURATION_MS));
}
"""


def im_pair(bin_dir, n, duration, workdir):
    """volley im-e2e and k6 with the same pairs against one gateway each."""
    out = {}
    for tool in ("volley", "k6"):
        gw, port = gateway(bin_dir)
        url = f"ws://127.0.0.1:{port}/ws"
        if tool == "volley":
            m = Measured([os.path.join(bin_dir, "volley"), "im-e2e", "--ws-urls", url, "--jwt-secret", SECRET,
                          "--vus", str(n), "--duration", f"{duration}s", "--msg-interval-ms", "1000",
                          "--auth", "frame", "--user-base", "1000000", "--quiet"])
        else:
            tokens = os.path.join(workdir, "tokens.json")
            with open(tokens, "w") as f:
                json.dump([jwt(str(1_000_000 + vu)) for vu in range(1, n + 1)], f)
            m, _ = k6_run(K6_SCRIPT, workdir, env={"TOKENS": tokens, "VUS": str(n), "URL": url,
                                                   "DURATION": f"{duration}s", "DURATION_MS": str(duration * 1000)})
        m.wait(timeout=duration + 120)
        delivered = stats(port)["delivered"]
        stop([gw])
        rss = m.rss_at(duration - 5)
        out[tool] = {
            "rss_mb": round(rss, 1),
            "kb_per_conn": round(rss * 1000 / n, 1),
            "cpu_s": round(m.cpu_seconds(), 2),
            "messages": delivered,
            "cpu_us_per_msg": round(m.cpu_seconds() / max(delivered, 1) * 1e6, 1),
        }
    out["rss_ratio_k6_over_volley"] = round(out["k6"]["rss_mb"] / out["volley"]["rss_mb"], 1)
    out["cpu_ratio_k6_over_volley"] = round(out["k6"]["cpu_us_per_msg"] / out["volley"]["cpu_us_per_msg"], 1)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", default="10000,50000,100000", help="connection counts for volley alone ('' to skip)")
    ap.add_argument("--keep", type=int, default=90, help="seconds each scale run holds its connections")
    ap.add_argument("--k6", default="1000,5000", help="connection counts for volley vs k6 ('' to skip)")
    ap.add_argument("--duration", type=int, default=60, help="seconds of each volley/k6 run")
    args = ap.parse_args()
    ensure_tools()
    bin_dir = build()
    results = {"scale": [], "vs_k6": {}}
    for n in [int(x) for x in args.scale.split(",") if x]:
        r = scale(bin_dir, n, args.keep)
        print(json.dumps(r), flush=True)
        results["scale"].append(r)
    for n in [int(x) for x in args.k6.split(",") if x]:
        with tempfile.TemporaryDirectory(prefix="volley-bench-ws-") as work:
            r = im_pair(bin_dir, n, args.duration, work)
        print(json.dumps({"connections": n, **r}), flush=True)
        results["vs_k6"][n] = r
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
