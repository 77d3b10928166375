//! Real metric stores for the output tests: InfluxDB 1.x (`influxd`, Debian
//! package `influxdb`) and VictoriaMetrics (Debian `victoria-metrics`), each
//! on free loopback ports with a scratch data directory, stopped on drop.
//! tests/run.sh installs both.

use super::{closed_port, Scratch};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn find(binary: &str, package: &str) -> String {
    for dir in ["/usr/bin", "/usr/sbin", "/usr/local/bin"] {
        let p = format!("{dir}/{binary}");
        if std::path::Path::new(&p).exists() {
            return p;
        }
    }
    panic!("{binary} is not installed: apt-get install {package} (tests/run.sh does)");
}

/// GET or POST with curl; returns (HTTP status, body).
pub fn curl(args: &[&str]) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-s", "-o", "-", "-w", "\n%{http_code}", "--max-time", "10"])
        .args(args)
        .output()
        .expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

fn wait_ready(url: &str, ok: u16, what: &str, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if curl(&[url]).0 == ok {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited during start-up: {status}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{what} did not become ready at {url} within 30 s");
}

/// An `influxd` (InfluxDB 1.x) with database `volley`.
pub struct Influxd {
    child: Option<Child>,
    config: std::path::PathBuf,
    /// `http://127.0.0.1:PORT`
    pub url: String,
    auth: Option<String>,
    _dir: Scratch,
}

impl Influxd {
    /// Starts influxd and creates database `volley`.
    pub fn start() -> Influxd {
        Self::start_with(None)
    }

    /// Starts influxd with authentication on: `user` (an admin, password
    /// `password`) must sign every request; creates database `volley`.
    pub fn start_with_auth(user: &str, password: &str) -> Influxd {
        Self::start_with(Some((user, password)))
    }

    /// Changes `user`'s password (a rotated credential): requests signed
    /// with the old one are refused (401) from now on.
    pub fn set_password(&mut self, user: &str, password: &str) {
        let q = format!("q=SET PASSWORD FOR \"{user}\" = '{password}'");
        let (code, body) = self.curl(&["-XPOST", &format!("{}/query", self.url), "--data-urlencode", &q]);
        assert_eq!(code, 200, "set password: {body}");
        self.auth = Some(format!("{user}:{password}"));
    }

    fn start_with(auth: Option<(&str, &str)>) -> Influxd {
        let dir = Scratch::new("influxd");
        let (http, rpc) = (closed_port(), closed_port());
        let d = dir.0.display();
        let config = dir.write(
            "influxdb.conf",
            &format!(
                "reporting-disabled = true\nbind-address = \"127.0.0.1:{rpc}\"\n\
                 [meta]\n  dir = \"{d}/meta\"\n\
                 [data]\n  dir = \"{d}/data\"\n  wal-dir = \"{d}/wal\"\n  query-log-enabled = false\n\
                 [http]\n  bind-address = \"127.0.0.1:{http}\"\n  log-enabled = false\n  auth-enabled = {}\n\
                 [monitor]\n  store-enabled = false\n",
                auth.is_some()
            ),
        );
        let mut db = Influxd {
            child: None,
            config,
            url: format!("http://127.0.0.1:{http}"),
            auth: auth.map(|(u, p)| format!("{u}:{p}")),
            _dir: dir,
        };
        db.run();
        if let Some((user, password)) = auth {
            // The first user may be created without credentials.
            let q = format!("q=CREATE USER \"{user}\" WITH PASSWORD '{password}' WITH ALL PRIVILEGES");
            let (code, body) = curl(&["-XPOST", &format!("{}/query", db.url), "--data-urlencode", &q]);
            assert_eq!(code, 200, "create user: {body}");
        }
        let (code, body) =
            db.curl(&["-XPOST", &format!("{}/query", db.url), "--data-urlencode", "q=CREATE DATABASE volley"]);
        assert_eq!(code, 200, "create database: {body}");
        db
    }

    fn curl(&self, args: &[&str]) -> (u16, String) {
        match &self.auth {
            Some(a) => {
                let mut all = vec!["-u", a.as_str()];
                all.extend_from_slice(args);
                curl(&all)
            }
            None => curl(args),
        }
    }

    fn run(&mut self) {
        let mut child = Command::new(find("influxd", "influxdb"))
            .args(["-config", self.config.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start influxd");
        wait_ready(&format!("{}/ping", self.url), 204, "influxd", &mut child);
        self.child = Some(child);
    }

    /// Stops the server (SIGKILL), keeping its data.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port and data.
    pub fn restart(&mut self) {
        self.stop();
        self.run();
    }

    /// Runs an InfluxQL query on database `volley`; returns the JSON answer.
    pub fn query(&self, q: &str) -> serde_json::Value {
        let (code, body) = self.curl(&[
            "-G",
            &format!("{}/query", self.url),
            "--data-urlencode",
            "db=volley",
            "--data-urlencode",
            &format!("q={q}"),
        ]);
        assert_eq!(code, 200, "query {q}: {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("query {q}: {e}: {body}"))
    }

    /// POSTs line protocol to database `volley` (millisecond precision).
    pub fn write_lines(&self, body: &str) -> (u16, String) {
        let dir = Scratch::new("lines");
        let file = dir.write("body.txt", body);
        let data = format!("@{}", file.display());
        self.curl(&["-XPOST", &format!("{}/write?db=volley&precision=ms", self.url), "--data-binary", &data])
    }

    /// The first value of the first row of a single-value query (0 if no rows).
    pub fn scalar(&self, q: &str) -> f64 {
        let v = self.query(q);
        let series = &v["results"][0]["series"];
        if series.is_null() {
            return 0.0;
        }
        series[0]["values"][0][1].as_f64().unwrap_or_else(|| panic!("query {q}: no number in {v}"))
    }
}

impl Drop for Influxd {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A VictoriaMetrics single-node server (accepts InfluxDB line protocol on
/// the v1 and v2 write paths).
pub struct VictoriaMetrics {
    child: Child,
    /// `http://127.0.0.1:PORT`
    pub url: String,
    _dir: Scratch,
}

impl VictoriaMetrics {
    /// Starts it.
    pub fn start() -> VictoriaMetrics {
        let dir = Scratch::new("victoria");
        let port = closed_port();
        let url = format!("http://127.0.0.1:{port}");
        let mut child = Command::new(find("victoria-metrics", "victoria-metrics"))
            .args([
                &format!("-httpListenAddr=127.0.0.1:{port}"),
                &format!("-storageDataPath={}", dir.0.display()),
                "-loggerLevel=ERROR",
                // Keep points as written (no deduplication or rounding).
                "-search.disableCache",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start victoria-metrics");
        wait_ready(&format!("{url}/health"), 200, "victoria-metrics", &mut child);
        VictoriaMetrics { child, url, _dir: dir }
    }

    /// Every raw sample of the series matching `selector`, summed per
    /// metric name (`measurement_field`), after making recent writes visible.
    pub fn export_sums(&self, selector: &str) -> std::collections::BTreeMap<String, (f64, usize)> {
        let (code, _) = curl(&[&format!("{}/internal/force_flush", self.url)]);
        assert_eq!(code, 200, "force_flush");
        let (code, body) =
            curl(&["-G", &format!("{}/api/v1/export", self.url), "--data-urlencode", &format!("match[]={selector}")]);
        assert_eq!(code, 200, "export {selector}: {body}");
        let mut sums = std::collections::BTreeMap::new();
        for line in body.lines().filter(|l| !l.trim().is_empty()) {
            let v: serde_json::Value = serde_json::from_str(line).expect("export line");
            let name = v["metric"]["__name__"].as_str().unwrap_or_default().to_string();
            let values: Vec<f64> = v["values"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
            let e = sums.entry(name).or_insert((0.0, 0));
            e.0 += values.iter().sum::<f64>();
            e.1 += values.len();
        }
        sums
    }
}

impl Drop for VictoriaMetrics {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
