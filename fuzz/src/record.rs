//! What plugins hand back becomes one line of the results file: `body_json`
//! keeps a body one line of valid JSON whatever its text, and a record
//! written by the host is read back by the next resume.
//!
//! Input format: parts separated by lines `===`: the body, the item id, the
//! output, the metadata, the context (missing parts are empty).

use batchllm_host::model::{
    FailureClass, Fingerprint, HostBlock, ItemStatus, ProviderResponse, ResultError, ResultRecord, TokenUsage,
    body_json, body_value, line_id,
};
use batchllm_host::results::{Judgement, Previous, ResultWriter, ResumeOptions, RunIdentity};

/// Input: see the module docs.
pub fn run(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.split("\n===\n");
    let body = parts.next().unwrap_or_default();
    let id = parts.next().unwrap_or("item-1");
    let output = parts.next();
    let metadata = parts.next();
    let context = parts.next();

    // What a plugin logs reaches the terminal and log files escaped.
    let shown = batchllm_host::sandbox::output::printable(body);
    assert!(
        !shown.chars().any(|c| c.is_control()
            || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')),
        "{shown:?}"
    );

    let raw = body_json(body);
    let kept = raw.get();
    assert!(!kept.contains(['\n', '\r']), "body_json broke the line: {kept:?}");
    assert!(super::is_strict_json(kept), "body_json gave invalid JSON: {kept:?}");
    let one_line_json = !body.contains(['\n', '\r']) && super::is_strict_json(body);
    if one_line_json && !body.contains("\\u") {
        assert_eq!(kept, body.trim_matches([' ', '\t']), "valid one-line JSON is kept as given");
    }

    // The whole record, written and read back as a resume does.
    let failed = data.len() % 2 == 1;
    let record = ResultRecord {
        id: line_id(id),
        custom_id: id.to_string(),
        response: Some(ProviderResponse { status_code: 200, request_id: output.map(str::to_string), body: raw }),
        error: failed.then(|| ResultError { code: FailureClass::Other, message: body.to_string() }),
        batchllm: HostBlock {
            status: if failed { ItemStatus::Failed } else { ItemStatus::Succeeded },
            output: output.map(str::to_string),
            attempts: 1,
            rate_limit_retries: 0,
            usage: TokenUsage::default(),
            latency_ms: 1.5,
            error_class: failed.then_some(FailureClass::Other),
            http_status: Some(200),
            metadata: metadata.map(body_value),
            context: context.map(body_json),
            line: data.len() + 1,
            finished_at: None,
            fingerprint: Fingerprint { input: body.chars().take(16).collect(), plugin: "p".into(), config: "c".into() },
            cost_usd: None,
        },
    };
    let dir = super::fresh_dir("record");
    let path = dir.join("results.jsonl");
    let mut writer = ResultWriter::open(&path, true, false).expect("open results");
    writer.write(&record).expect("write record");
    drop(writer);
    let written = std::fs::read_to_string(&path).expect("the results file is UTF-8");
    assert!(written.ends_with('\n') && written.matches('\n').count() == 1, "one record, one line: {written:?}");
    assert!(super::is_strict_json(written.trim_end_matches('\n')), "a record that is not JSON: {written:?}");

    let identity = RunIdentity { plugin: "p".into(), config: "c".into() };
    let mut previous = Previous::read(&path, ResumeOptions::default(), &identity)
        .unwrap_or_else(|e| panic!("the host cannot resume from its own record: {e}"))
        .expect("a non-empty results file");
    let judged = previous.judge(id, 1, &record.batchllm.fingerprint.input);
    assert!(
        matches!(judged, Judgement::Keep),
        "the record is found again under its id with its fingerprint: {judged:?}"
    );
}
