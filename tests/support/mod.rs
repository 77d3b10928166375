//! Shared helpers for the end-to-end tests: locating the built binaries,
//! scratch directories, and running `volley` and `k6` as a user would.

pub mod browser;
pub mod exporter;
pub mod grafana;
pub mod im;
pub mod servers;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};

/// Directory holding the workspace's built binaries (`target/<profile>`).
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> → target/<profile>
    exe.parent().and_then(Path::parent).expect("target directory").to_path_buf()
}

/// Path of a workspace binary; panics with the fix when it was not built.
pub fn binary(name: &str) -> PathBuf {
    let path = bin_dir().join(name);
    assert!(
        path.exists(),
        "{} is missing: build the binaries first (cargo build --workspace --bins), as tests/run.sh does",
        path.display()
    );
    path
}

/// A fresh scratch directory under the system temp dir, removed on drop.
pub struct Scratch(pub PathBuf);

impl Scratch {
    /// Creates `volley-test-<label>-<pid>-<n>`.
    pub fn new(label: &str) -> Scratch {
        static N: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "volley-test-{label}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("create scratch dir");
        Scratch(dir)
    }

    /// Path of `name` inside the directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// Writes `text` to `name` and returns its path.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, text).expect("write scratch file");
        p
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `volley` with `args`.
pub fn volley(args: &[&str]) -> Output {
    Command::new(binary("volley")).args(args).output().expect("run volley")
}

/// The `k6` executable: `$K6` or `k6` on the PATH.
pub fn k6_command() -> Command {
    let exe = std::env::var("K6").unwrap_or_else(|_| "k6".into());
    let mut cmd = Command::new(exe);
    cmd.env("K6_NO_USAGE_REPORT", "true");
    cmd
}

/// Text of a process's stdout and stderr, for assertion messages.
pub fn describe(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Reads a JSON file.
pub fn read_json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parse {}: {e}", path.display()))
}

/// `metrics[key].count` of a k6-shaped summary export, 0 when absent
/// (k6 leaves out metrics that never received a sample).
pub fn export_count(summary: &serde_json::Value, key: &str) -> u64 {
    summary["metrics"][key]["count"].as_f64().map_or(0, |c| c.round() as u64)
}

/// A `volley-testbed http` process on a free loopback port, killed on drop.
pub struct Testbed {
    child: std::process::Child,
    /// `http://127.0.0.1:PORT`
    pub url: String,
}

impl Testbed {
    /// Starts the HTTP testbed and waits for its address.
    pub fn http() -> Testbed {
        Self::start(&[])
    }

    /// Starts the HTTP testbed over TLS (self-signed certificate).
    pub fn https() -> Testbed {
        Self::start(&["--tls"])
    }

    /// Starts the HTTP testbed with extra flags (`--token-ttl 3s`, …).
    pub fn start(extra: &[&str]) -> Testbed {
        use std::io::BufRead;
        let mut child = Command::new(binary("volley-testbed"))
            .args(["http", "--listen", "127.0.0.1:0", "--threads", "1"])
            .args(extra)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start volley-testbed");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("read testbed address");
        let url = line.trim().rsplit(' ').next().unwrap_or_default().to_string();
        assert!(
            url.starts_with("http://127.0.0.1:") || url.starts_with("https://127.0.0.1:"),
            "unexpected testbed banner {line:?}"
        );
        Testbed { child, url }
    }

    /// The server's `/stats` counters.
    pub fn stats(&self) -> serde_json::Value {
        let out = Command::new("curl").args(["-s", "-k", &format!("{}/stats", self.url)]).output();
        match out {
            Ok(o) if o.status.success() => serde_json::from_slice(&o.stdout).expect("stats JSON"),
            _ => stats_without_curl(&self.url),
        }
    }
}

/// Reads `/stats` with a plain HTTP/1.0 request (no client dependency).
fn stats_without_curl(url: &str) -> serde_json::Value {
    use std::io::{Read, Write};
    let addr = url.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr).expect("connect to testbed");
    write!(s, "GET /stats HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let body = resp.split("\r\n\r\n").nth(1).expect("response body");
    serde_json::from_str(body).expect("stats JSON")
}

impl Drop for Testbed {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback port nothing listens on (bound, then released).
pub fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().unwrap().port()
}

/// Runs `volley run` on a scenario document; returns the process output
/// and the parsed summary export.
pub fn run_scenario(doc: &serde_json::Value, extra: &[&str]) -> (Output, serde_json::Value) {
    let dir = Scratch::new("run");
    let file = dir.write("scenario.json", &serde_json::to_string_pretty(doc).unwrap());
    let export = dir.path("summary.json");
    let mut args = vec!["run", "--quiet", "--summary-export", export.to_str().unwrap(), file.to_str().unwrap()];
    args.extend_from_slice(extra);
    let out = volley(&args);
    let summary = if export.exists() { read_json(&export) } else { serde_json::Value::Null };
    (out, summary)
}

/// `volley run --quiet --no-summary FILE` in the background, with `extra`
/// flags and `env` set: its summary export goes to `DIR/NAME-summary.json`,
/// its stderr to `DIR/NAME.log` (see [`log_of`]).
pub fn spawn_run(dir: &Scratch, name: &str, file: &Path, extra: &[&str], env: &[(&str, &str)]) -> Child {
    Command::new(binary("volley"))
        .args(["run", "--quiet", "--no-summary"])
        .args(["--summary-export", dir.path(&format!("{name}-summary.json")).to_str().unwrap()])
        .args(extra)
        .arg(file)
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path(&format!("{name}.log"))).unwrap())
        .spawn()
        .expect("start volley")
}

/// What a [`spawn_run`] generator wrote to stderr so far.
pub fn log_of(dir: &Scratch, name: &str) -> String {
    std::fs::read_to_string(dir.path(&format!("{name}.log"))).unwrap_or_default()
}
