//! Shared helpers for the end-to-end tests: locating the built binaries,
//! scratch directories, and running `volley` and `k6` as a user would.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
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
        let dir = std::env::temp_dir().join(format!("volley-test-{label}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed)));
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
