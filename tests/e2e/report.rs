//! `batchllm-host report`: a real run with rate limits and failures, its
//! report rendered by headless Chromium, the page's numbers checked against
//! the run's `--summary-json`, and the screenshot checked for the charts.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::chromium::chromium;
use crate::support::*;

/// Runs Chromium headless on `page` with `extra` (a screenshot, or
/// `--dump-dom`); returns stdout. A new empty profile each time, nothing
/// fetched from the network.
fn browse(browser: &Path, page: &Path, profile: &Path, extra: &[String]) -> String {
    let out = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1280,1600",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium runs");
    assert!(out.status.success(), "chromium failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The page's embedded data, as the browser parsed the document.
fn embedded_data(dom: &str) -> Value {
    let start = dom.find(r#"id="report-data">"#).expect("the data block") + r#"id="report-data">"#.len();
    let end = start + dom[start..].find("</script>").expect("its end");
    serde_json::from_str(&dom[start..end]).expect("the data is JSON")
}

/// The text of the card `metric`'s value, as shown.
fn card_value(dom: &str, metric: &str) -> String {
    let at = dom.find(&format!(r#"data-metric="{metric}""#)).unwrap_or_else(|| panic!("no card {metric}"));
    let value = at + dom[at..].find(r#"class="value"#).expect("value");
    let open = value + dom[value..].find('>').expect(">") + 1;
    let close = open + dom[open..].find('<').expect("<");
    dom[open..close].to_string()
}

/// A decoded PNG: width, height and RGB pixels. Enough of the format for
/// Chromium's screenshots (8-bit RGB or RGBA, not interlaced).
fn decode_png(bytes: &[u8]) -> (usize, usize, Vec<[u8; 3]>) {
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "a PNG");
    let (mut width, mut height, mut channels) = (0, 0, 0);
    let mut data = Vec::new();
    let mut at = 8;
    while at + 8 <= bytes.len() {
        let len = u32::from_be_bytes(bytes[at..at + 4].try_into().expect("4 bytes")) as usize;
        let kind = &bytes[at + 4..at + 8];
        let body = &bytes[at + 8..at + 8 + len];
        match kind {
            b"IHDR" => {
                width = u32::from_be_bytes(body[..4].try_into().expect("4")) as usize;
                height = u32::from_be_bytes(body[4..8].try_into().expect("4")) as usize;
                assert_eq!((body[8], body[12]), (8, 0), "8-bit, not interlaced");
                channels = match body[9] {
                    2 => 3,
                    6 => 4,
                    other => panic!("colour type {other}"),
                };
            }
            b"IDAT" => data.extend_from_slice(body),
            _ => {}
        }
        at += 12 + len;
    }
    let mut raw = Vec::new();
    flate2::read::ZlibDecoder::new(&data[..]).read_to_end(&mut raw).expect("zlib");
    let stride = width * channels;
    let mut prev = vec![0u8; stride];
    let mut pixels = Vec::with_capacity(width * height);
    for row in raw.chunks(stride + 1).take(height) {
        let (filter, line) = (row[0], &row[1..]);
        let mut cur = vec![0u8; stride];
        for i in 0..stride {
            let a = if i >= channels { cur[i - channels] } else { 0 };
            let (b, c) = (prev[i], if i >= channels { prev[i - channels] } else { 0 });
            let predicted = match filter {
                0 => 0,
                1 => a,
                2 => b,
                3 => ((u16::from(a) + u16::from(b)) / 2) as u8,
                4 => {
                    let p = i16::from(a) + i16::from(b) - i16::from(c);
                    let (pa, pb, pc) = ((p - i16::from(a)).abs(), (p - i16::from(b)).abs(), (p - i16::from(c)).abs());
                    if pa <= pb && pa <= pc {
                        a
                    } else if pb <= pc {
                        b
                    } else {
                        c
                    }
                }
                other => panic!("filter {other}"),
            };
            cur[i] = line[i].wrapping_add(predicted);
        }
        pixels.extend(cur.chunks(channels).map(|p| [p[0], p[1], p[2]]));
        prev = cur;
    }
    (width, height, pixels)
}

fn near(p: [u8; 3], rgb: [u8; 3]) -> bool {
    p.iter().zip(rgb).all(|(a, b)| a.abs_diff(b) <= 6)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_report_shows_the_runs_numbers_and_renders_in_a_browser() {
    // Asked first, so a missing browser fails before the run.
    let browser = chromium("the report's rendering in a browser");
    // A provider with a token limit (429s, cooldowns), some 5xx and
    // malformed answers, and a few jobs it refuses.
    let server = mock(|c| {
        c.tpm = Some(2500);
        c.window_ms = 1500;
        c.latency_ms = 20;
        c.jitter_ms = 60;
        c.error_rate = 0.04;
        c.malformed_rate = 0.01;
        c.seed = 7;
    })
    .await;
    let ws = Workspace::new();
    let jobs: Vec<String> = (0..300)
        .map(|i| {
            let prompt = if i % 61 == 3 { format!("[[mock:status=400]] q{i}") } else { format!("question {i}") };
            serde_json::json!({"id": format!("item-{i:04}"), "prompt": prompt, "params": {"max_tokens": 40}})
                .to_string()
        })
        .collect();
    let jobs = ws.jobs(&jobs);
    let (events, summary) = (ws.path("events.jsonl"), ws.path("summary.json"));
    let args = openai_args(&server);
    let flags = [
        "--concurrency",
        "12",
        "--cooldown",
        "0.3",
        "--backoff-initial",
        "0.02",
        "--max-attempts",
        "2",
        "--events",
        events.to_str().expect("utf-8"),
        "--summary-json",
        summary.to_str().expect("utf-8"),
        "--quiet",
    ];
    let run = ws.run(&jobs, &[&strs(&args)[..], &flags].concat(), &[("E2E_API_KEY", API_KEY)]).await;
    assert!(run.code == 0 || run.code == 1, "{}", run.stderr);
    let summary: Value = serde_json::from_slice(&std::fs::read(&summary).expect("summary")).expect("json");
    assert!(summary["failed"].as_u64() > Some(0), "the run must have failures to show");
    assert!(summary["cooldown"]["rate_limits"].as_u64() > Some(0), "the run must have 429s to show");

    let page = ws.path("report.html");
    let out = Command::new(BIN)
        .args(["report", ws.path("results.jsonl").to_str().expect("utf-8"), "--events"])
        .arg(&events)
        .arg("-o")
        .arg(&page)
        .output()
        .expect("report runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let html = std::fs::read_to_string(&page).expect("page");
    for fetches in [" src=", " href=", "<link", "url(", "@import", "<iframe", "<object"] {
        assert!(!html.contains(fetches), "nothing to fetch when viewed: found `{fetches}`");
    }

    // What the browser parsed (or, when the browser could not be
    // installed, the page as written): the numbers of the summary.
    let profile = tempfile::tempdir().expect("profile");
    let dom = match browser {
        Some(browser) => browse(browser, &page, profile.path(), &["--dump-dom".to_string()]),
        None => html.clone(),
    };
    let data = embedded_data(&dom);
    let t = &data["totals"];
    for key in ["items", "succeeded", "failed", "attempts", "rate_limit_retries"] {
        assert_eq!(t[key], summary[key], "{key}");
    }
    assert_eq!(t["usage"], summary["usage"]);
    let cost = (t["cost_usd"].as_f64().expect("cost") - summary["cost_usd"].as_f64().expect("cost")).abs();
    assert!(cost < 1e-9, "cost differs by {cost}");
    assert_eq!(data["latency"], summary["latency"], "percentiles as the summary computes them");
    let classes: Vec<(String, u64)> = data["failures"]
        .as_array()
        .expect("failures")
        .iter()
        .map(|f| (f["class"].as_str().expect("class").to_string(), f["count"].as_u64().expect("count")))
        .collect();
    for (class, count) in &classes {
        assert_eq!(summary["failures"][class]["count"].as_u64(), Some(*count), "{class}");
    }
    assert_eq!(classes.len(), summary["failures"].as_object().expect("object").len());
    assert_eq!(data["rate_limits"], summary["cooldown"]["rate_limits"]);
    assert_eq!(data["cooldown_count"], summary["cooldown"]["cooldowns"]);
    let paused =
        data["cooldown_seconds"].as_f64().expect("secs") - summary["cooldown"]["total_seconds"].as_f64().expect("secs");
    assert!(paused.abs() < 1e-3, "cooldown time differs by {paused}");
    let finished: u64 = data["timeline"]
        .as_array()
        .expect("timeline")
        .iter()
        .map(|s| s["succeeded"].as_u64().unwrap_or(0) + s["failed"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(Some(finished), summary["items"].as_u64(), "every item is on the time axis");
    // And as people read them.
    let thousands = |n: u64| {
        let s = n.to_string();
        let mut out = String::new();
        for (i, c) in s.chars().enumerate() {
            if i > 0 && (s.len() - i).is_multiple_of(3) {
                out.push(',');
            }
            out.push(c);
        }
        out
    };
    for key in ["items", "succeeded", "failed"] {
        assert_eq!(card_value(&dom, key), thousands(summary[key].as_u64().expect("n")), "{key} card");
    }
    assert_eq!(card_value(&dom, "rate_limits"), thousands(summary["cooldown"]["rate_limits"].as_u64().expect("n")));

    // The screenshot: the page at its size, with the charts drawn in their
    // colours (succeeded bars, 429 bars, the latency histogram).
    let Some(browser) = browser else { return };
    let shot: PathBuf = ws.path("report.png");
    let profile = tempfile::tempdir().expect("profile");
    browse(browser, &page, profile.path(), &[format!("--screenshot={}", shot.display())]);
    let (width, height, pixels) = decode_png(&std::fs::read(&shot).expect("screenshot"));
    assert_eq!((width, height), (1280, 1600));
    let count = |rgb: [u8; 3]| pixels.iter().filter(|p| near(**p, rgb)).count();
    let (green, amber, blue) = (count([0x2f, 0x9e, 0x6e]), count([0xe8, 0xa3, 0x3d]), count([0x5b, 0x7e, 0xdf]));
    eprintln!("report screenshot: {green} green, {amber} amber, {blue} blue pixels");
    assert!(green > 5_000, "succeeded bars: {green} green pixels");
    assert!(amber > 300, "429 bars: {amber} amber pixels");
    assert!(blue > 2_000, "latency histogram: {blue} blue pixels");
    let white = count([255, 255, 255]);
    assert!(white < pixels.len() * 9 / 10, "not a blank page");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_from_a_gzip_results_file_without_events() {
    let ws = Workspace::new();
    let jobs = ws.jobs(&(0..20).map(|i| job(&format!("j{i}"), "x")).collect::<Vec<_>>());
    let results = ws.path("results.jsonl.gz");
    let out = Command::new(BIN)
        .arg(&jobs)
        .args(["--plugin", "mock", "--quiet", "--cache-dir"])
        .arg(cache_dir())
        .arg("-o")
        .arg(&results)
        .output()
        .expect("runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let page = ws.path("r.html");
    let out = Command::new(BIN).arg("report").arg(&results).arg("-o").arg(&page).output().expect("runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("20 records: 20 succeeded, 0 failed"));
    let html = std::fs::read_to_string(&page).expect("page");
    let data = embedded_data(&html);
    assert_eq!(data["totals"]["items"], 20);
    assert_eq!(data["time_source"], "records");
    assert!(html.contains("Pass <code>--events FILE</code>"), "says how to get the cooldowns");
    // Not a results file: the error names it.
    let out = Command::new(BIN).arg("report").arg(&jobs).arg("-o").arg(&page).output().expect("runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("jobs.jsonl:1: not a batchllm result record"));
}
