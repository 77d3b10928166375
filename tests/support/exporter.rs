//! A `volley-exporter` process for the streaming tests: started on a free
//! loopback port, killable and restartable on the same port, its stderr kept
//! for the counters it prints when it stops.

use super::{binary, Scratch};
use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running (or stopped) exporter.
pub struct Exporter {
    child: Option<Child>,
    args: Vec<String>,
    /// `ws://127.0.0.1:PORT`
    pub url: String,
    dir: Scratch,
    runs: usize,
}

impl Exporter {
    /// Starts `volley-exporter --token TOKEN` with `extra` flags.
    pub fn start(token: &str, extra: &[&str]) -> Exporter {
        let mut args: Vec<String> = vec!["--token".into(), token.into(), "--stats-interval".into(), "0s".into()];
        args.extend(extra.iter().map(|s| s.to_string()));
        let mut e = Exporter { child: None, args, url: String::new(), dir: Scratch::new("exporter"), runs: 0 };
        e.run("127.0.0.1:0");
        e
    }

    fn run(&mut self, listen: &str) {
        let log = std::fs::File::create(self.dir.path(&format!("stderr-{}.log", self.runs))).unwrap();
        self.runs += 1;
        let mut child = Command::new(binary("volley-exporter"))
            .args(["--listen", listen])
            .args(&self.args)
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("start volley-exporter");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let url = line.trim().rsplit(' ').next().unwrap_or_default().to_string();
        assert!(url.starts_with("ws://127.0.0.1:") || url.starts_with("wss://127.0.0.1:"), "banner {line:?}");
        self.url = url;
        self.child = Some(child);
    }

    /// `host:port` it listens on.
    pub fn addr(&self) -> String {
        self.url.split("://").nth(1).unwrap().to_string()
    }

    /// SIGKILL: no flush, no goodbye.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same address.
    pub fn restart(&mut self) {
        let addr = self.addr();
        self.kill9();
        // The port was just released; retry briefly if the kernel lingers.
        for _ in 0..50 {
            if std::net::TcpListener::bind(&addr).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        self.run(&addr);
    }

    /// SIGINT, wait, and return everything it wrote to stderr (all runs).
    pub fn stop(&mut self) -> String {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill").args(["-INT", &c.id().to_string()]).status();
            let _ = c.wait();
        }
        (0..self.runs)
            .map(|i| std::fs::read_to_string(self.dir.path(&format!("stderr-{i}.log"))).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("")
    }

    /// The value of `name=` in the last status line of `log`.
    pub fn counter(log: &str, name: &str) -> u64 {
        let line =
            log.lines().rev().find(|l| l.contains(" merged=")).unwrap_or_else(|| panic!("no status line in {log}"));
        let key = format!("{name}=");
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(&key))
            .unwrap_or_else(|| panic!("no {name} in {line}"))
            .trim_end_matches(']')
            .parse()
            .unwrap()
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        self.kill9();
    }
}
