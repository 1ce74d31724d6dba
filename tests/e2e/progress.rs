//! Progress on stderr: a live bar in a terminal, plain lines otherwise.

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminal_gets_a_live_bar() {
    let server = mock(|c| c.latency_ms = 150).await;
    let ws = Workspace::new();
    let jobs = ws.jobs(&(0..16).map(|i| job(&format!("j{i}"), &format!("q{i}"))).collect::<Vec<_>>());
    let results = ws.path("results.jsonl");
    let command = format!(
        "{BIN} {} --output {} --cache-dir {} --plugin openai --allow-host {} --plugin-config base_url={} --api-key-env E2E_API_KEY --concurrency 2",
        jobs.display(),
        results.display(),
        cache_dir().display(),
        grant(&server),
        server.base_url()
    );
    // `script` runs the command in a pseudo-terminal and copies what it drew.
    let out = tokio::process::Command::new("script")
        .args(["-q", "-e", "-c", &command, "/dev/null"])
        .env("E2E_API_KEY", API_KEY)
        .env("TERM", "xterm")
        .output()
        .await
        .expect("script(1) runs");
    let screen = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{screen}");
    assert!(screen.contains("/16 ok "), "the bar shows done/total and counts:\n{screen}");
    assert!(screen.contains("items/s") && screen.contains("ETA"), "{screen}");
    assert!(screen.contains("[") && screen.contains("=>"), "a drawn bar:\n{screen}");
    assert!(screen.contains("16 items: 16 succeeded, 0 failed"), "the summary follows:\n{screen}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipe_gets_plain_periodic_lines_and_quiet_gets_none() {
    let server = mock(|c| c.latency_ms = 100).await;
    let ws = Workspace::new();
    let jobs = ws.jobs(&(0..10).map(|i| job(&format!("j{i}"), &format!("q{i}"))).collect::<Vec<_>>());
    let args = openai_args(&server);
    let env = [("E2E_API_KEY", API_KEY)];
    let out =
        ws.run(&jobs, &[&strs(&args)[..], &["--concurrency", "1", "--progress-interval", "0.2"]].concat(), &env).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let lines: Vec<&str> = out.stderr.lines().filter(|l| l.starts_with("progress: ")).collect();
    assert!(lines.len() >= 2, "periodic lines:\n{}", out.stderr);
    assert!(lines.iter().all(|l| l.contains("/10 ok ")), "{lines:?}");
    assert!(!out.stderr.contains('\r'), "no terminal control in a pipe");
    let quiet = ws.run(&jobs, &[&strs(&args)[..], &["--quiet", "--progress-interval", "0.2"]].concat(), &env).await;
    assert_eq!(quiet.code, 0);
    assert!(quiet.stderr.trim().is_empty(), "--quiet prints nothing: {}", quiet.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_metrics_are_served_while_running() {
    let server = mock(|c| c.latency_ms = 100).await;
    let ws = Workspace::new();
    let jobs = ws.jobs(&(0..20).map(|i| job(&format!("j{i}"), &format!("q{i}"))).collect::<Vec<_>>());
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("free port").local_addr().expect("addr").port();
    let addr = format!("127.0.0.1:{port}");
    let args = openai_args(&server);
    let mut child = ws
        .command(
            &jobs,
            &[&strs(&args)[..], &["--overwrite", "--quiet", "--concurrency", "2", "--metrics-addr", &addr]].concat(),
            &[("E2E_API_KEY", API_KEY)],
        )
        .spawn()
        .expect("spawn");
    let url = format!("http://{addr}/metrics");
    let mut scrapes = Vec::new();
    while child.try_wait().expect("status").is_none() {
        if let Ok(resp) = reqwest::get(&url).await
            && let Ok(body) = resp.text().await
        {
            scrapes.push(body);
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(child.wait().await.expect("exit").code(), Some(0));
    assert!(scrapes.len() >= 3, "scraped while running: {}", scrapes.len());
    let value = |body: &str, series: &str| -> f64 {
        body.lines().find_map(|l| l.strip_prefix(series)).map(|v| v.trim().parse().expect("number")).unwrap_or(-1.0)
    };
    let last = scrapes.last().expect("a scrape");
    assert_eq!(value(last, "batchllm_items_to_run "), 20.0, "{last}");
    assert!(last.contains("# TYPE batchllm_items_total counter"), "{last}");
    let done: Vec<f64> = scrapes.iter().map(|b| value(b, "batchllm_items_total{status=\"succeeded\"} ")).collect();
    assert!(done.windows(2).all(|w| w[0] <= w[1]), "counters only grow: {done:?}");
    assert!(done.iter().any(|&d| d > 0.0 && d < 20.0), "progress seen mid-run: {done:?}");
    assert!(value(last, "batchllm_http_requests_total ") > 0.0, "{last}");
    assert!(value(last, "batchllm_tokens_total{kind=\"input\"} ") > 0.0, "{last}");
}
