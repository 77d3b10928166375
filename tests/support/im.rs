//! Real servers for the IM tests: `redis-server` (Debian `redis-server`,
//! installed by tests/run.sh) and `volley-testbed im` gateways, each on a
//! free loopback port, stopped on drop.

use super::{binary, closed_port, Scratch};
use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `redis-server` with persistence off.
pub struct Redis {
    child: Child,
    /// `redis://127.0.0.1:PORT`
    pub url: String,
    _dir: Scratch,
}

impl Redis {
    /// Starts redis-server and waits until it accepts connections.
    pub fn start() -> Redis {
        let exe = ["/usr/bin/redis-server", "/usr/local/bin/redis-server"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .expect("redis-server is not installed: apt-get install redis-server (tests/run.sh does)");
        let dir = Scratch::new("redis");
        let port = closed_port();
        let child = Command::new(exe)
            .args(["--bind", "127.0.0.1", "--port", &port.to_string(), "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&dir.0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not listen on {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        Redis { child, url: format!("redis://127.0.0.1:{port}"), _dir: dir }
    }
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
    pub fn start(secret: &str, extra: &[&str]) -> Gateway {
        let port = closed_port();
        let mut args: Vec<String> =
            vec!["im".into(), "--listen".into(), format!("127.0.0.1:{port}"), "--jwt-secret".into(), secret.into()];
        args.extend(extra.iter().map(|s| s.to_string()));
        let mut g = Gateway { child: None, args, addr: format!("127.0.0.1:{port}") };
        g.spawn();
        g
    }

    fn spawn(&mut self) {
        let mut child = Command::new(binary("volley-testbed"))
            .args(&self.args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start volley-testbed im");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("banner");
        assert!(line.contains(&format!("ws://{}/ws", self.addr)), "unexpected gateway banner {line:?}");
        self.child = Some(child);
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

    /// Starts it again on the same port.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.kill();
    }
}
