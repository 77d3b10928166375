//! The HTML report, from `volley run --report` (here through `volley demo`,
//! which writes one by default) and from the exporter's `GET /report`,
//! rendered in headless Chromium: every chart draws, nothing errors, the
//! screenshot is not blank, and the numbers are the run's.

use std::path::Path;
use volley_tests::browser::{self, Rendered};
use volley_tests::exporter::Exporter;
use volley_tests::servers::curl;
use volley_tests::*;

/// The first series colour of every chart (chart.js `colors[0]`).
const FIRST_SERIES: [u8; 3] = [0x2f, 0x6f, 0xdf];

/// Renders `page` and checks that it drew: every chart div counted as drawn
/// by the page's script, no error caught on the page or logged by the
/// browser, lines of the first series colour on the screenshot.
fn assert_draws(page: &Path) -> Rendered {
    let html = std::fs::read_to_string(page).unwrap();
    let charts = html.matches("<div class=\"chart\"").count();
    let r = browser::render(page, 2400);
    assert!(
        r.dom.contains(&format!("data-charts-drawn=\"{charts}\"")),
        "{charts} charts in the page, the browser drew: {}",
        r.dom.split("<body").nth(1).map(|b| &b[..b.len().min(200)]).unwrap_or("no body")
    );
    assert!(!r.dom.contains("data-errors=\"yes\""), "a script error on the page: {}", r.dom);
    assert_eq!(r.console_messages(), Vec::<&str>::new(), "the report logs nothing when it works");
    assert!(r.colours() > 20, "a blank screenshot ({} colours)", r.colours());
    assert!(
        r.pixels_near(FIRST_SERIES) > 500,
        "no chart line on the screenshot: {} pixels",
        r.pixels_near(FIRST_SERIES)
    );
    r
}

/// The metrics table's value cell for a counter: `N (R/s)`.
fn counter_cell(html: &str, metric: &str) -> u64 {
    let head = format!("<td>{metric}</td><td>counter</td><td>");
    let at = html.find(&head).unwrap_or_else(|| panic!("no {metric} row"));
    html[at + head.len()..].split(' ').next().unwrap().parse().unwrap()
}

#[test]
fn the_demo_writes_a_self_contained_report_that_renders() {
    let dir = Scratch::new("report-demo");
    let (page, export) = (dir.path("report.html"), dir.path("summary.json"));
    let out = volley(&[
        "demo",
        "--duration",
        "5s",
        "--quiet",
        "--report",
        page.to_str().unwrap(),
        "--summary-export",
        export.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains(&format!("report written to {}", page.display())));
    let html = std::fs::read_to_string(&page).unwrap();
    let s = read_json(&export);
    // Self-contained: nothing to fetch.
    for outside in ["src=\"http", "href=\"http", "<link", "@import"] {
        assert!(!html.contains(outside), "{outside} in the report");
    }
    // The summary's numbers, from the same windows.
    assert_eq!(counter_cell(&html, "http_reqs"), export_count(&s, "http_reqs"));
    assert_eq!(counter_cell(&html, "im_sent_total"), export_count(&s, "im_sent_total"));
    assert!(html.contains("9 of 9 passed"), "the demo's thresholds");
    assert!(html.contains("<td>json user is &quot;demo&quot;</td>"), "checks by name");
    for chart in [
        "Requests and iterations per second",
        "HTTP request duration",
        "IM messages per second",
        "IM latency",
        "Generator memory",
    ] {
        assert!(html.contains(&format!("<h3>{chart}")), "no {chart} chart");
    }
    assert_draws(&page);
}

#[test]
fn the_exporter_serves_the_merged_report_of_a_test() {
    let target = Testbed::http();
    let health = format!("127.0.0.1:{}", closed_port());
    let token = "report-token-0123456789";
    let mut exp = Exporter::start(token, &["--health-listen", &health]);
    let dir = Scratch::new("report-exporter");
    let doc = serde_json::json!({
        "options": {
            "scenarios": {"api": {"executor": "constant-arrival-rate", "rate": 50, "timeUnit": "1s",
                                  "duration": "3s", "preAllocatedVUs": 5, "maxVUs": 5}},
            "thresholds": {"http_req_failed": ["rate<0.5"], "http_req_duration": ["p(99)<0.001"]}
        },
        "flows": {"default": {"type": "http", "steps": [
            {"request": {"url": format!("{}/delay/2", target.url)}, "checks": {"status": 200}}
        ]}}
    });
    let file = dir.write("scenario.json", &doc.to_string());
    let gens: Vec<_> = (0..2)
        .map(|i| {
            std::process::Command::new(binary("volley"))
                .args(["run", "--quiet", "--no-summary", "--test-id", "merged-report", "--exporter", &exp.url])
                .args(["--summary-export", dir.path(&format!("g{i}.json")).to_str().unwrap()])
                .arg(&file)
                .env("VOLLEY_EXPORTER_TOKEN", token)
                .stdout(std::process::Stdio::null())
                .stderr(std::fs::File::create(dir.path(&format!("g{i}.log"))).unwrap())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut total = 0;
    for (i, mut g) in gens.into_iter().enumerate() {
        let status = g.wait().unwrap();
        let log = std::fs::read_to_string(dir.path(&format!("g{i}.log"))).unwrap();
        assert_eq!(status.code(), Some(99), "the p(99) threshold fails on each generator: {log}");
        total += export_count(&read_json(&dir.path(&format!("g{i}.json"))), "http_reqs");
    }
    assert_eq!(total, 2 * 151);

    // The report needs the exporter token; a browser gives it as a Basic-auth password.
    let (code, _) = curl(&[&format!("http://{health}/report?testid=merged-report")]);
    assert_eq!(code, 401, "the report is not open");
    let basic = format!("viewer:{token}");
    let (code, html) = curl(&["-u", &basic, &format!("http://{health}/report?testid=merged-report")]);
    assert_eq!(code, 200, "{html}");
    assert_eq!(counter_cell(&html, "http_reqs"), total, "merged across both generators");
    assert!(html.contains("2 generators"), "{}", &html[..html.len().min(3000)]);
    assert!(html.contains("1 of 2 passed"), "verdicts from the threshold gauges");
    assert!(html.contains("<td>p(99)&lt;0.001</td>"));
    let page = dir.write("merged.html", &html);
    assert_draws(&page);

    let (code, list) = curl(&["-u", &basic, &format!("http://{health}/report")]);
    assert_eq!(code, 200);
    assert!(list.contains("href=\"/report?testid=merged-report\""), "{list}");
    let (code, missing) = curl(&["-u", &basic, &format!("http://{health}/report?testid=nope")]);
    assert_eq!((code, missing.trim()), (404, "no test \"nope\" here; held: merged-report"));
    exp.stop();
}
