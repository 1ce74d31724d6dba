//! The status page on `/`, looked at the way a person would: headless
//! Chromium (Debian's `chromium`) takes a screenshot of it while a batch
//! runs next to finished, cancelled and failed ones; the HTML is checked
//! for what it must show and for what it must not (another tenant's
//! batches, unescaped tenant text), and `/metrics` for per-tenant series.
//!
//! Chromium missing fails the test with the command that installs it,
//! unless that command could not install it here (see `crate::chromium`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::chromium::chromium;
use crate::serve_support::*;
use crate::support::mock;

/// A screenshot of `url` into `png`.
fn screenshot(browser: &Path, url: &str, png: &Path, profile: &Path) {
    let out = std::process::Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1280,900",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--screenshot={}", png.display()))
        .arg(url)
        .output()
        .expect("chromium runs");
    assert!(out.status.success(), "chromium failed: {}", String::from_utf8_lossy(&out.stderr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_shows_each_tenants_batches_with_progress_counts_cost_and_failures() {
    let fast = mock(|_| {}).await;
    let slow = mock(|c| c.latency_ms = 400).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let tenants =
        operator() + &tenant("acme", &fast, "concurrency = 4") + &tenant("slowpoke", &slow, "concurrency = 2");
    let server = Server::start(dir.path(), &tenants).await;
    let (acme, slowpoke) = (key("acme"), key("slowpoke"));

    // acme: one completed batch with failures, one cancelled.
    let mut lines: Vec<String> = (0..40).map(|i| line(&format!("p{i}"), &format!("page {i}"))).collect();
    lines[3] = line("p3", "page 3 [[mock:status=400]]");
    lines[9] = line("p9", "page 9 [[mock:malformed]]");
    let file = server.upload(&acme, &lines.join("\n")).await;
    let id = server.create(&acme, &file).await["id"].as_str().expect("id").to_string();
    let done = server.wait_end(&acme, &id, Duration::from_secs(60)).await;
    assert_eq!(done["status"], "completed", "{done}");
    // slowpoke: one that fails validation, one running while we look.
    let file = server.upload(&slowpoke, "{\"custom_id\": \"x\", \"<script>\": 1}\n").await;
    let bad = server.create(&slowpoke, &file).await["id"].as_str().expect("id").to_string();
    server.wait_end(&slowpoke, &bad, Duration::from_secs(60)).await;
    let many: Vec<String> = (0..200).map(|i| line(&format!("s{i}"), &format!("slow {i}"))).collect();
    let file = server.upload(&slowpoke, &many.join("\n")).await;
    let running = server.create(&slowpoke, &file).await["id"].as_str().expect("id").to_string();
    let started = std::time::Instant::now();
    while server.batch(&slowpoke, &running).await["request_counts"]["completed"].as_u64().unwrap_or(0) < 6 {
        assert!(started.elapsed() < Duration::from_secs(60), "the slow batch does not progress");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The HTML: the operator sees every tenant; a tenant only itself.
    let page = |user: &str, key: &str| {
        let url = server.url("/");
        let (user, key) = (user.to_string(), key.to_string());
        async move { http().get(url).basic_auth(user, Some(key)).send().await.expect("page") }
    };
    let r = http().get(server.url("/")).send().await.expect("page");
    assert_eq!(r.status(), 401);
    assert!(r.headers().get("www-authenticate").is_some(), "a browser asks for the key");
    let html = page("op", &key("operator")).await.text().await.expect("html");
    for want in [
        "acme",
        "slowpoke",
        &id,
        &running,
        "in progress",
        "completed",
        "failed",
        "client_error × 1",
        "invalid_response × 1",
    ] {
        assert!(html.contains(want), "the page shows {want:?}");
    }
    assert!(!html.contains("<script>"), "tenant text is escaped");
    let own = page("", &slowpoke).await.text().await.expect("html");
    assert!(own.contains(&running) && !own.contains(&id), "a tenant sees only its own batches");

    // /metrics: per-tenant series, operator only.
    let r = http().get(server.url("/metrics")).bearer_auth(key("operator")).send().await.expect("metrics");
    let metrics = r.text().await.expect("text");
    assert!(metrics.contains("batchllm_serve_requests{tenant=\"acme\",status=\"succeeded\"} 38"), "{metrics}");
    assert!(metrics.contains("batchllm_serve_batches{tenant=\"slowpoke\",status=\"in_progress\"} 1"), "{metrics}");
    assert!(metrics.contains("batchllm_serve_items_in_flight{tenant=\"slowpoke\"}"), "{metrics}");
    let r = http().get(server.url("/metrics")).bearer_auth(&acme).send().await.expect("metrics");
    assert_eq!(r.status(), 403);

    // The screenshot: what a person sees (kept beside the test's target
    // dir for a look: target/tmp/serve-page.png).
    if let Some(browser) = chromium("the status page's screenshot") {
        let png = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("serve-page.png");
        let _ = std::fs::remove_file(&png);
        let profile = dir.path().join("chromium-profile");
        std::fs::create_dir_all(&profile).expect("profile");
        let url = format!("http://op:{}@{}/", key("operator"), server.base.trim_start_matches("http://"));
        screenshot(browser, &url, &png, &profile);
        let bytes = std::fs::read(&png).expect("screenshot written");
        assert!(bytes.starts_with(b"\x89PNG"), "a PNG");
        // A blank or error page compresses to a few KiB; the table does not.
        assert!(bytes.len() > 30_000, "the screenshot has content: {} bytes", bytes.len());
        eprintln!("status page screenshot: {}", png.display());
    }

    let k = slowpoke.clone();
    let r =
        server.req(reqwest::Method::POST, &format!("/v1/batches/{running}/cancel"), &k).send().await.expect("cancel");
    assert!(r.status().is_success());
    assert_eq!(server.stop().await, Some(0));
}
