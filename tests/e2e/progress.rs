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
