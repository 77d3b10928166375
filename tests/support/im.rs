//! Real servers for the IM tests: `redis-server` (Debian `redis-server`,
//! installed by tests/run.sh) and `volley-testbed im` gateways, each on a
//! free loopback port, stopped on drop.

use super::{binary, closed_port, Scratch};
use std::io::{BufRead, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `redis-server` with persistence off.
pub struct Redis {
    child: Child,
    port: u16,
    /// `redis://127.0.0.1:PORT` (`rediss://` over TLS)
    pub url: String,
    exe: &'static str,
    tls: Option<(PathBuf, PathBuf)>,
    _dir: Scratch,
}

impl Redis {
    /// Starts redis-server and waits until it accepts connections; a port
    /// lost to another test between choosing and binding is retried.
    pub fn start() -> Redis {
        Self::start_with(None)
    }

    /// Starts redis-server accepting only TLS, with this certificate and
    /// key (PEM files); clients need no certificate of their own.
    pub fn start_tls(cert: &Path, key: &Path) -> Redis {
        Self::start_with(Some((cert.to_path_buf(), key.to_path_buf())))
    }

    fn start_with(tls: Option<(PathBuf, PathBuf)>) -> Redis {
        let exe = ["/usr/bin/redis-server", "/usr/local/bin/redis-server"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .expect("redis-server is not installed: apt-get install redis-server (tests/run.sh does)");
        let dir = Scratch::new("redis");
        let scheme = if tls.is_some() { "rediss" } else { "redis" };
        for _ in 0..5 {
            let port = closed_port();
            let mut child = spawn_redis(exe, port, &dir, tls.as_ref());
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    let url = format!("{scheme}://127.0.0.1:{port}");
                    return Redis { child, port, url, exe, tls, _dir: dir };
                }
                if child.try_wait().ok().flatten().is_some() {
                    break;
                }
                assert!(Instant::now() < deadline, "redis-server did not listen on {port}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        panic!("redis-server exited at start five times");
    }

    /// Runs `redis-cli` against the server; returns its output, trimmed.
    pub fn cli(&self, args: &[&str]) -> String {
        let mut cmd = Command::new("redis-cli");
        cmd.args(["-h", "127.0.0.1", "-p", &self.port.to_string()]);
        if let Some((cert, _)) = &self.tls {
            cmd.arg("--tls").arg("--cacert").arg(cert);
        }
        let out = cmd.args(args).output().expect("run redis-cli (Debian redis-tools, a dependency of redis-server)");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Kills the server (SIGKILL: no goodbye to its clients), keeps it down
    /// for `down`, then starts it again, empty, on the same port.
    pub fn restart(&mut self, down: Duration) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::thread::sleep(down);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            self.child = spawn_redis(self.exe, self.port, &self._dir, self.tls.as_ref());
            let up = Instant::now() + Duration::from_secs(2);
            while Instant::now() < up {
                if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                    return;
                }
                if self.child.try_wait().ok().flatten().is_some() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
            assert!(Instant::now() < deadline, "redis-server did not come back on {}", self.port);
        }
    }
}

fn spawn_redis(exe: &str, port: u16, dir: &Scratch, tls: Option<&(PathBuf, PathBuf)>) -> Child {
    let mut cmd = Command::new(exe);
    match tls {
        None => cmd.args(["--port", &port.to_string()]),
        Some((cert, key)) => cmd
            .args(["--port", "0", "--tls-port", &port.to_string(), "--tls-auth-clients", "no"])
            .arg("--tls-cert-file")
            .arg(cert)
            .arg("--tls-key-file")
            .arg(key),
    };
    cmd.args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(&dir.0)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start redis-server")
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `volley-testbed im` process.
pub struct Gateway {
    child: Option<Child>,
    args: Vec<String>,
    /// `127.0.0.1:PORT`
    pub addr: String,
}

impl Gateway {
    /// Starts a gateway with secret `secret` and extra flags, on a free port.
    ///
    /// A port found free can be taken by another test's outgoing
    /// connection before the gateway binds it (both come from the same
    /// ephemeral range), so a failed start is retried on a new port.
    pub fn start(secret: &str, extra: &[&str]) -> Gateway {
        let mut last = String::new();
        for _ in 0..5 {
            let port = closed_port();
            let mut args: Vec<String> =
                vec!["im".into(), "--listen".into(), format!("127.0.0.1:{port}"), "--jwt-secret".into(), secret.into()];
            args.extend(extra.iter().map(|s| s.to_string()));
            let mut g = Gateway { child: None, args, addr: format!("127.0.0.1:{port}") };
            match g.spawn() {
                Ok(()) => return g,
                Err(e) => last = e,
            }
        }
        panic!("volley-testbed im did not start: {last}");
    }

    /// Starts the process and waits for its banner; on failure returns
    /// what it printed on stderr.
    fn spawn(&mut self) -> Result<(), String> {
        let mut child = Command::new(binary("volley-testbed"))
            .args(&self.args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start volley-testbed im");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("banner");
        if !line.contains(&format!("ws://{}/ws", self.addr)) {
            let _ = child.kill();
            let _ = child.wait();
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            return Err(format!("banner {line:?}, stderr {err:?}"));
        }
        // Nothing reads stderr from here on: a gateway that wrote enough
        // to fill the pipe would block, so it goes to a thread that drops it.
        if let Some(mut e) = child.stderr.take() {
            std::thread::spawn(move || std::io::copy(&mut e, &mut std::io::sink()));
        }
        self.child = Some(child);
        Ok(())
    }

    /// `ws://ADDR/ws`.
    pub fn url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    /// The gateway's `/stats`.
    pub fn stats(&self) -> serde_json::Value {
        let (code, body) = super::servers::curl(&[&format!("http://{}/stats", self.addr)]);
        assert_eq!(code, 200, "GET /stats: {body}");
        serde_json::from_str(&body).expect("stats JSON")
    }

    /// One counter of `/stats`.
    pub fn stat(&self, name: &str) -> u64 {
        self.stats()[name].as_u64().unwrap_or_else(|| panic!("no counter {name} in gateway stats"))
    }

    /// SIGKILL.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port, retrying while the port is
    /// still held by the killed process's connections.
    pub fn restart(&mut self) {
        self.kill();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self.spawn() {
                Ok(()) => return,
                Err(e) if Instant::now() > deadline => panic!("volley-testbed im did not restart: {e}"),
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.kill();
    }
}
