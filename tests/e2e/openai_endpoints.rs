//! The openai plugin on every endpoint of the OpenAI Batch API that answers
//! with text or vectors, end to end: the real binary and the real plugin
//! against the mock provider's `/v1/responses` and `/v1/completions` (chat
//! completions and embeddings are covered by `batch`, `retries` and
//! `conformance`). Outputs, usage (the Responses API's own names: cached and
//! reasoning tokens as subsets), metadata, the requests sent, retries and
//! failure classes are checked against what the mock logged.

use batchllm_mock::LoggedRequest;
use serde_json::{Value, json};

use crate::support::*;

fn line(id: &str, url: &str, body: Value) -> String {
    json!({"custom_id": id, "method": "POST", "url": url, "body": body}).to_string()
}

/// The one request the mock logged with `prompt`.
fn served<'a>(requests: &'a [LoggedRequest], prompt: &str) -> &'a LoggedRequest {
    let mut found = requests.iter().filter(|r| r.prompt.as_deref() == Some(prompt) && r.status == 200);
    let first = found.next().unwrap_or_else(|| panic!("no successful request for {prompt:?}: {requests:?}"));
    assert!(found.next().is_none(), "{prompt:?} succeeded twice");
    first
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_and_completions_run_end_to_end() {
    // Half of a long prompt is reported as cached, so the cached subset is real.
    let server = mock(|c| c.cached_ratio = 0.5).await;
    let long = format!("long {}", "x".repeat(8000));
    let lines = vec![
        line(
            "resp",
            "/v1/responses",
            json!({"model": "o4-mini", "instructions": "Be brief.",
                   "input": [{"role": "user", "content": "think [[mock:reasoning=40]]"}]}),
        ),
        line("resp-cached", "/v1/responses", json!({"input": long})),
        line("resp-short", "/v1/responses", json!({"input": "cut me short please", "max_output_tokens": 2})),
        line("resp-limited", "/v1/responses", json!({"input": "[[mock:fail-first=1]] [[mock:status=429]] r"})),
        line("resp-bad", "/v1/responses", json!({"input": "[[mock:status=400]] bad"})),
        line("comp", "/v1/completions", json!({"model": "gpt-3.5-turbo-instruct", "prompt": "Once upon a time"})),
        line("comp-flaky", "/v1/completions", json!({"prompt": "[[mock:fail-first=1]] [[mock:status=500]] c"})),
        line("comp-garbled", "/v1/completions", json!({"prompt": "[[mock:malformed]] garbled"})),
    ];
    let ws = Workspace::new();
    let jobs = ws.jobs(&lines);
    let mut args = openai_args(&server);
    args.extend(
        ["--fail-fast", "none", "--max-attempts", "3", "--backoff-initial", "0.01", "--backoff-max", "0.05"]
            .map(str::to_owned),
    );
    let out = ws.run(&jobs, &strs(&args), &[("E2E_API_KEY", API_KEY)]).await;
    let requests = server.requests();
    server.shutdown().await;
    assert_eq!(out.code, 1, "some items fail by design; stderr:\n{}", out.stderr);
    assert_eq!(out.results.len(), lines.len(), "stderr:\n{}", out.stderr);

    // Responses: the output_text parts, the Responses usage names mapped.
    let resp = out.result("resp");
    let b = &resp["batchllm"];
    assert_eq!(b["status"], "succeeded", "{resp}");
    assert_eq!(b["output"], "echo: think [[mock:reasoning=40]]", "{resp}");
    let billed = served(&requests, "think [[mock:reasoning=40]]");
    assert_eq!(billed.path, "/v1/responses");
    assert_eq!(billed.body["model"], "o4-mini", "the job's model is sent");
    assert_eq!(billed.body["instructions"], "Be brief.");
    let usage = billed.usage.as_ref().expect("usage logged");
    assert_eq!(b["usage"]["input_tokens"], usage["input_tokens"], "{resp}");
    assert_eq!(b["usage"]["output_tokens"], usage["output_tokens"], "{resp}");
    assert_eq!(b["usage"]["reasoning_tokens"], 40, "{resp}");
    assert_eq!(usage["output_tokens_details"]["reasoning_tokens"], 40);
    assert!(b["usage"]["output_tokens"].as_u64() > Some(40), "reasoning is a subset of the output: {resp}");
    assert_eq!(b["metadata"]["status"], "completed", "{resp}");
    assert_eq!(b["metadata"]["model"], "o4-mini", "{resp}");
    assert_eq!(resp["response"]["body"]["object"], "response", "the provider's body is kept: {resp}");

    let cached = &out.result("resp-cached")["batchllm"];
    let billed = served(&requests, &long).usage.clone().expect("usage logged");
    assert_eq!(cached["usage"]["input_tokens"], billed["input_tokens"]);
    assert_eq!(cached["usage"]["cached_input_tokens"], billed["input_tokens_details"]["cached_tokens"]);
    assert!(cached["usage"]["cached_input_tokens"].as_u64() > Some(0), "{cached}");
    assert_eq!(cached["metadata"]["model"], "gpt-4o-mini", "the configured default model: {cached}");

    // Out of output tokens: the text so far is the output, the status says why.
    let short = &out.result("resp-short")["batchllm"];
    assert_eq!(short["status"], "succeeded", "{short}");
    assert_eq!(short["output"], "echo: cu", "{short}");
    assert_eq!(short["metadata"]["status"], "incomplete", "{short}");
    assert_eq!(short["metadata"]["incomplete_details"]["reason"], "max_output_tokens", "{short}");

    let limited = &out.result("resp-limited")["batchllm"];
    assert_eq!((limited["status"].as_str(), limited["attempts"].as_u64()), (Some("succeeded"), Some(2)), "{limited}");
    assert_eq!(limited["rate_limit_retries"], 1, "{limited}");
    let bad = out.result("resp-bad");
    assert_eq!(bad["error"]["code"], "client_error", "{bad}");
    assert_eq!((bad["batchllm"]["attempts"].as_u64(), bad["batchllm"]["http_status"].as_u64()), (Some(1), Some(400)));

    // Legacy completions: choices[0].text and chat-style usage.
    let comp = out.result("comp");
    let b = &comp["batchllm"];
    assert_eq!(b["status"], "succeeded", "{comp}");
    assert_eq!(b["output"], "echo: Once upon a time", "{comp}");
    let billed = served(&requests, "Once upon a time");
    assert_eq!(billed.path, "/v1/completions");
    assert_eq!(billed.body, json!({"model": "gpt-3.5-turbo-instruct", "prompt": "Once upon a time"}));
    let usage = billed.usage.as_ref().expect("usage logged");
    assert_eq!(b["usage"]["input_tokens"], usage["prompt_tokens"], "{comp}");
    assert_eq!(b["usage"]["output_tokens"], usage["completion_tokens"], "{comp}");
    assert_eq!(b["metadata"]["finish_reason"], "stop", "{comp}");
    assert_eq!(comp["response"]["body"]["object"], "text_completion");

    let flaky = &out.result("comp-flaky")["batchllm"];
    assert_eq!((flaky["status"].as_str(), flaky["attempts"].as_u64()), (Some("succeeded"), Some(2)), "{flaky}");
    let garbled = out.result("comp-garbled");
    assert_eq!(garbled["error"]["code"], "invalid_response", "{garbled}");
    assert_eq!(garbled["batchllm"]["attempts"], 3, "invalid responses are retried: {garbled}");

    // Every request carried the key the host substituted, and went where the
    // endpoint says.
    for r in &requests {
        assert!(
            r.headers.iter().any(|(k, v)| k == "authorization" && v == &format!("Bearer {API_KEY}")),
            "{:?}",
            r.headers
        );
        assert!(r.path == "/v1/responses" || r.path == "/v1/completions", "{}", r.path);
    }
    // One request per attempt: 1 + 1 + 1 + 2 + 1 (responses) + 1 + 2 + 3 (completions).
    assert_eq!(requests.len(), 12, "{requests:?}");
}
