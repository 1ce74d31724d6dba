//! Options as the real binary reads them: out-of-range values from a flag or
//! the config file, the provider's key and base-URL variables, and a secret
//! nobody configured, each refused at start (exit code 2, nothing sent) or
//! used as documented.

use crate::support::*;

/// Every variable a built-in plugin reads on its own: a test decides which
/// of them the binary sees.
const PROVIDER_VARS: [&str; 6] = [
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_BASE_URL",
    "GOOGLE_API_KEY",
    "GEMINI_API_KEY",
];

/// Runs the binary with exactly the provider variables in `env`.
async fn run_clean(ws: &Workspace, args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let jobs = ws.jobs(&[job("a", "x"), job("b", "y")]);
    let mut cmd = ws.command(&jobs, &[&["--overwrite"][..], args].concat(), env);
    for var in PROVIDER_VARS.iter().filter(|v| !env.iter().any(|(k, _)| k == *v)) {
        cmd.env_remove(var);
    }
    let out = cmd.output().await.expect("binary runs");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// Before: `--plugin anthropic` without a key ran, sent nothing, and wrote
/// one `egress_denied` failure per item (exit code 1); the openai case with
/// a base_url of the user's is in `egress.rs`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_whose_key_is_not_set_stops_at_start_naming_the_variable() {
    let ws = Workspace::new();
    let (code, stderr) = run_clean(&ws, &["--plugin", "anthropic"], &[]).await;
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("the anthropic plugin sends secret `api-key`, and none is configured"), "{stderr}");
    assert!(stderr.contains("ANTHROPIC_API_KEY is not set; set it, or add --api-key-env VAR"), "{stderr}");
    assert!(ws.results().is_empty(), "no record is written");
}

/// The SDK conventions: `OPENAI_BASE_URL` and `OPENAI_API_KEY` alone run a
/// batch against that server, with the key, and no flag but `--plugin`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_providers_variables_run_a_batch_without_flags() {
    let server = mock(|_| {}).await;
    let ws = Workspace::new();
    let base = server.base_url();
    let (code, stderr) =
        run_clean(&ws, &["--plugin", "openai"], &[("OPENAI_BASE_URL", &base), ("OPENAI_API_KEY", API_KEY)]).await;
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(ws.results().len(), 2);
    assert_eq!(chat_requests(&server).len(), 2);

    // Plain http to another machine is not taken from the environment.
    let (code, stderr) = run_clean(
        &ws,
        &["--plugin", "openai"],
        &[("OPENAI_BASE_URL", "http://192.0.2.7:8000/v1"), ("OPENAI_API_KEY", API_KEY)],
    )
    .await;
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("OPENAI_BASE_URL=http://192.0.2.7:8000/v1: plain http"), "{stderr}");
    assert!(stderr.contains("--allow-host 192.0.2.7:8000"), "{stderr}");
}

/// Values the config file used to accept (or that panicked later) are
/// refused like the flag, naming the key, the file and the range.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_range_values_exit_2_naming_the_key_from_the_file_and_the_flag() {
    let ws = Workspace::new();
    let config = ws.path("run.toml");
    let config_arg = config.display().to_string();
    for (key, value, range) in [
        ("rpm", "0", "expected a rate per minute from 0.000002 (about one a year) to 1e12"),
        ("concurrency", "0", "expected an integer from 1 to 16384"),
        ("concurrency", "20000", "expected an integer from 1 to 16384"),
        ("attempt-timeout", "0", "expected seconds from 0.001 to 31536000 (a year)"),
        ("max-cpu-per-call", "0", "expected seconds from 0.001 to 31536000 (a year)"),
    ] {
        std::fs::write(&config, format!("plugin = \"mock\"\n{key} = {value}\n")).expect("write");
        let (code, stderr) = run_clean(&ws, &["--config", &config_arg], &[]).await;
        assert_eq!(code, 2, "{key} = {value}: {stderr}");
        let named = format!("error: {key} = {value} in {config_arg} is out of range: {range}");
        assert!(stderr.contains(&named), "expected `{named}` in:\n{stderr}");

        let (code, stderr) = run_clean(&ws, &["--plugin", "mock", &format!("--{key}"), value], &[]).await;
        assert_eq!(code, 2, "--{key} {value}: {stderr}");
        assert!(stderr.contains(&format!("error: --{key} {value}")) && stderr.contains(range), "{stderr}");
    }
    // Used to panic in the engine.
    let (code, stderr) = run_clean(&ws, &["--plugin", "mock", "--rpm", "1e-300"], &[]).await;
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("--rpm 1e-300 is out of range"), "{stderr}");
    assert!(ws.results().is_empty());
}

/// `--cooldown 120` with `--cooldown-max 60` used to pause 60 s silently.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cooldown_above_its_maximum_is_refused_with_the_fix() {
    let ws = Workspace::new();
    let (code, stderr) = run_clean(&ws, &["--plugin", "mock", "--cooldown", "120", "--cooldown-max", "60"], &[]).await;
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("--cooldown 120 is above --cooldown-max 60: set --cooldown-max to at least 120,"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_file_mistakes_name_the_file_and_the_key() {
    let ws = Workspace::new();
    let config = ws.path("run.toml");
    let config_arg = config.display().to_string();
    for (text, expected) in [
        ("plugin = \"mock\"\nconcurency = 3\n", "unknown key `concurency` (did you mean `concurrency`?)"),
        ("plugin = \"mock\"\noverwrite = true\n", "`overwrite` belongs to one invocation, so it is a flag only"),
        ("plugin = \"mock\"\nrpm = \"fast\"\n", "run.toml:2: rpm = \"fast\": invalid type: string \"fast\""),
    ] {
        std::fs::write(&config, text).expect("write");
        let (code, stderr) = run_clean(&ws, &["--config", &config_arg], &[]).await;
        assert_eq!(code, 2, "{stderr}");
        assert!(stderr.contains(expected), "expected `{expected}` in:\n{stderr}");
    }
}
