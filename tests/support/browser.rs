//! Headless Chromium (Debian `chromium`) for the report tests: renders a
//! local file, returns the DOM after its scripts ran and a screenshot.

use super::Scratch;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// What the browser made of a page.
pub struct Rendered {
    /// `document.documentElement.outerHTML` after the scripts ran.
    pub dom: String,
    /// The screenshot, decoded: RGBA rows.
    pub pixels: Vec<[u8; 4]>,
    /// Chromium's own log, with the page's console messages.
    pub log: String,
}

fn chromium() -> &'static str {
    for c in ["chromium", "chromium-browser"] {
        if Command::new(c).arg("--version").output().is_ok_and(|o| o.status.success()) {
            return c;
        }
    }
    panic!("chromium is not installed: apt-get install chromium (tests/run.sh does)");
}

/// Flags that keep Chromium headless, sandbox-free (tests run as root) and
/// off the network.
fn base(profile: &Path) -> Command {
    let mut cmd = Command::new(chromium());
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--enable-logging=stderr",
        "--v=0",
    ])
    .arg(format!("--user-data-dir={}", profile.display()));
    cmd
}

fn run(mut cmd: Command) -> std::process::Output {
    let child =
        cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().expect("start chromium");
    // A hung browser must not hang the suite.
    let pid = child.id();
    let watchdog = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(90));
        let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
    });
    let out = child.wait_with_output().expect("chromium output");
    drop(watchdog);
    out
}

/// Renders `page` at 1280×`height`.
pub fn render(page: &Path, height: u32) -> Rendered {
    let dir = Scratch::new("chromium");
    let url = format!("file://{}", page.canonicalize().expect("page path").display());
    let mut dump = base(&dir.path("profile-dom"));
    dump.args(["--virtual-time-budget=5000", "--dump-dom", &url]);
    let dom_out = run(dump);
    let shot = dir.path("shot.png");
    let mut screenshot = base(&dir.path("profile-shot"));
    screenshot.arg(format!("--screenshot={}", shot.display())).arg(format!("--window-size=1280,{height}")).arg(&url);
    let shot_out = run(screenshot);
    let log = format!("{}\n{}", String::from_utf8_lossy(&dom_out.stderr), String::from_utf8_lossy(&shot_out.stderr));
    let file = std::fs::File::open(&shot).unwrap_or_else(|e| panic!("no screenshot ({e}); chromium said:\n{log}"));
    let mut reader = png::Decoder::new(std::io::BufReader::new(file)).read_info().expect("a PNG");
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).expect("PNG frame");
    let channels = info.color_type.samples();
    let pixels = buf[..info.buffer_size()]
        .chunks(channels)
        .map(|c| match channels {
            4 => [c[0], c[1], c[2], c[3]],
            3 => [c[0], c[1], c[2], 255],
            _ => [c[0], c[0], c[0], 255],
        })
        .collect();
    Rendered { dom: String::from_utf8_lossy(&dom_out.stdout).to_string(), pixels, log }
}

impl Rendered {
    /// Pixels within a small distance of `rgb`.
    pub fn pixels_near(&self, rgb: [u8; 3]) -> usize {
        self.pixels.iter().filter(|p| (0..3).all(|i| (p[i] as i32 - rgb[i] as i32).abs() <= 24)).count()
    }

    /// Distinct colours in the screenshot (a blank page has one).
    pub fn colours(&self) -> usize {
        let mut seen: Vec<[u8; 4]> = self.pixels.clone();
        seen.sort_unstable();
        seen.dedup();
        seen.len()
    }

    /// Every console message of the page (errors and uncaught exceptions
    /// included), from Chromium's log: Chromium logs them all at one level,
    /// so a page that should log nothing is checked for none at all.
    pub fn console_messages(&self) -> Vec<&str> {
        self.log.lines().filter(|l| l.contains(":CONSOLE")).collect()
    }
}
