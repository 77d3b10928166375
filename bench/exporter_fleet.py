#!/usr/bin/env python3
"""Exporter load: many simulated generators streaming windows to one
volley-exporter that writes to InfluxDB 1.x.

`volley-fleet-sim` (bench/fleet) opens one connection per simulated
generator, speaks the real protocol, sends one window per second with a
fixed set of series (half trends of 200 samples, half counters), and
measures when each window's acknowledgement comes back. The exporter
acknowledges only after InfluxDB accepted the window, so that delay is the
time from a window's end to its point being queryable. Reports the
exporter's CPU (% of one core) and RSS, the delay percentiles, and checks
that InfluxDB holds exactly what was sent.

    python3 bench/exporter_fleet.py --generators 100 --series 50 --windows 60

With `--hostile N`, N more connections send random and corrupted frames,
truncated frames, text and frames before the hello for the whole run, reconnecting whenever the exporter
closes them (the release-build soak of hostile input):

    python3 bench/exporter_fleet.py --generators 5 --windows 300 --hostile 20
"""

import argparse
import json
import signal

from common import *


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--generators", type=int, default=100)
    ap.add_argument("--series", type=int, default=50)
    ap.add_argument("--windows", type=int, default=60)
    ap.add_argument("--samples", type=int, default=200)
    ap.add_argument("--hostile", type=int, default=0)
    args = ap.parse_args()
    sh("cargo build --release --locked -p volley-exporter -p volley-fleet-sim", cwd=ROOT)
    bin_dir = os.path.join(ROOT, "target", "release")
    work = tempfile.mkdtemp(prefix="volley-bench-fleet-")
    db_port = free_port()
    db = influxd(db_port, free_port(), work)
    token = "bench-token-0123456789"
    exporter = Measured([os.path.join(bin_dir, "volley-exporter"), "--listen", "127.0.0.1:0", "--token", token,
                         "--out", f"influxdb=http://127.0.0.1:{db_port}/volley", "--stats-interval", "0s"],
                        stderr_path=os.path.join(work, "exporter.log"))
    url = exporter.proc.stdout.readline().split()[-1]
    try:
        sim = subprocess.run([os.path.join(bin_dir, "volley-fleet-sim"), "--exporter", url, "--token", token,
                              "--generators", str(args.generators), "--series", str(args.series),
                              "--windows", str(args.windows), "--samples", str(args.samples),
                              "--hostile", str(args.hostile)],
                             capture_output=True, text=True, check=True)
        result = json.loads(sim.stdout)
        exporter.proc.send_signal(signal.SIGINT)
        exporter.wait(timeout=60)
        log = open(os.path.join(work, "exporter.log")).read().splitlines()
        print("\n".join(line for line in log if " merged=" in line or "output " in line))
        total = query(db_port, "SELECT sum(\"count\") FROM \"http_reqs\" WHERE \"testid\" = 'fleet-bench'")
        stored = total["results"][0]["series"][0]["values"][0][1]
    finally:
        db.terminate()
        db.wait()
        shutil.rmtree(work, ignore_errors=True)
    expected = args.generators * args.windows * (args.series // 2) * args.samples
    active = [s for s in exporter.samples if s[0] > 3]
    cpu = (active[-1][1] - active[0][1]) / max(active[-1][0] - active[0][0], 1e-9) if len(active) > 1 else 0
    rows = [[args.generators, args.series, args.windows, args.hostile, result["hostile_messages"],
             f"{result['acked']}/{result['expected']}", f"{stored}/{expected}", f"{100 * cpu:.1f}%",
             f"{exporter.rss_peak():.1f}", result["delay_ms_p50"], result["delay_ms_p99"], result["delay_ms_max"]]]
    table(rows, ["generators", "series", "windows", "hostile conns", "hostile msgs", "acked",
                 "http_reqs stored/sent", "exporter CPU", "exporter peak RSS MB", "delay p50 ms", "delay p99 ms",
                 "delay max ms"])


if __name__ == "__main__":
    main()
