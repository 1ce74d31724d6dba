//! Deny by default: a plugin reaches only granted hosts, and secrets go only
//! where they are granted.

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_that_was_not_granted_gets_a_clear_denial_and_no_request() {
    let granted = mock(|_| {}).await;
    let other = mock(|_| {}).await;
    let ws = Workspace::new();
    let jobs = ws.jobs(&[job("a", "first"), job("b", "second")]);
    // Grant one server but point the plugin at the other.
    let args = [
        "--plugin",
        "openai",
        "--allow-host",
        &grant(&granted),
        "--plugin-config",
        &format!("base_url={}", other.base_url()),
        "--api-key-env",
        "E2E_API_KEY",
    ];
    let out = ws.run(&jobs, &args, &[("E2E_API_KEY", API_KEY)]).await;
    assert_eq!(out.code, 1, "items failed:\n{}", out.stderr);
    for id in ["a", "b"] {
        let r = out.result(id);
        assert_eq!(r["error"]["code"], "egress_denied", "{r}");
        let message = r["error"]["message"].as_str().expect("message");
        assert!(message.contains("is not granted to this plugin"), "{message}");
        assert!(message.contains(&format!("--allow-host 127.0.0.1:{}", other.addr().port())), "{message}");
        assert_eq!(r["batchllm"]["attempts"], 1, "a denial is not retried");
    }
    assert!(other.requests().is_empty(), "the other server saw no request");
    assert!(granted.requests().is_empty());
    assert!(out.stderr.contains("denied 2"), "{}", out.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_key_the_secret_placeholder_is_refused_not_sent() {
    let server = mock(|_| {}).await;
    let ws = Workspace::new();
    let jobs = ws.jobs(&[job("a", "x")]);
    let args = [
        "--plugin",
        "openai",
        "--allow-host",
        &grant(&server),
        "--plugin-config",
        &format!("base_url={}", server.base_url()),
    ];
    let mut cmd = ws.command(&jobs, &args, &[]);
    cmd.env_remove("OPENAI_API_KEY");
    let out = cmd.output().await.expect("binary runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The plugin's configuration names the secret, so the host refuses at
    // start, with the flag to add, rather than failing every item.
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("the openai plugin sends secret `api-key`, and none is configured"), "{stderr}");
    assert!(stderr.contains("e.g. --api-key-env OPENAI_API_KEY"), "names the flag:\n{stderr}");
    assert!(server.requests().is_empty(), "no request leaves with a literal placeholder");
    assert!(ws.results().is_empty(), "no record is written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_key_is_an_auth_failure_tried_once() {
    let server = mock(|_| {}).await;
    let ws = Workspace::new();
    let jobs = ws.jobs(&[job("a", "x")]);
    let args = openai_args(&server);
    let out = ws.run(&jobs, &strs(&args), &[("E2E_API_KEY", "sk-wrong")]).await;
    assert_eq!(out.code, 3, "auth is a fail-fast class by default:\n{}", out.stderr);
    let r = out.result("a");
    assert_eq!(r["error"]["code"], "auth", "{r}");
    assert_eq!(r["response"]["status_code"], 401);
    assert_eq!(r["batchllm"]["attempts"], 1);
    assert_eq!(chat_requests(&server).len(), 1);
}

/// Local servers take keys like `EMPTY` or `k`. Such a key is too plain to
/// scrub from answers: scrubbing it rewrote outputs, usage field names and
/// a Gemini cache name. Answers now come back intact, and the run says why
/// the key is not scrubbed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_key_leaves_answers_intact() {
    let server = mock(|c| c.api_key = Some("k".into())).await;
    let ws = Workspace::new();
    let jobs = ws.jobs(&[job("a", "kitchen knock"), job("b", "k")]);
    let args = openai_args(&server);
    let out = ws.run(&jobs, &strs(&args), &[("E2E_API_KEY", "k")]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains("too short or too plain to scrub"), "{}", out.stderr);
    let a = out.result("a");
    assert!(a["batchllm"]["output"].as_str().expect("output").contains("kitchen knock"), "{a}");
    assert!(!a.to_string().contains("[secret:"), "{a}");
    assert!(a["batchllm"]["usage"]["input_tokens"].as_u64().expect("usage") > 0, "{a}");

    // Gemini: a context cache named `cachedContents/mock-1` stays usable.
    let cache = serde_json::json!({"contents": "shared ".repeat(50), "ttl_seconds": 600});
    let gemini = [
        "--plugin".to_string(),
        "gemini".into(),
        "--allow-host".into(),
        grant(&server),
        "--plugin-config".into(),
        format!("base_url={}", server.origin()),
        "--plugin-config".into(),
        format!("cache={cache}"),
        "--api-key-env".into(),
        "E2E_API_KEY".into(),
    ];
    let out = ws.run(&jobs, &strs(&gemini), &[("E2E_API_KEY", "k")]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.results.len(), 2);
}
