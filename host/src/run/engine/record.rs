//! An item's terminal record, built from what its attempts learnt.

use tokio::time::Instant;

use super::worker::{AttemptFailure, Progress, last_answer};
use crate::model::{
    Answer, Exchange, Fingerprint, HostBlock, ItemStatus, Job, ProviderResponse, ResultError, ResultRecord, body_json,
    body_value, line_id, null_json, raw_json,
};
use crate::results::RunIdentity;

fn fingerprint(job: &Job, id: &RunIdentity) -> Fingerprint {
    Fingerprint { input: job.fingerprint.clone(), plugin: id.plugin.clone(), config: id.config.clone() }
}

fn latency_ms(started: Instant) -> f64 {
    started.elapsed().as_secs_f64() * 1000.0
}

/// The record of an item whose last attempt succeeded.
pub(super) fn success(
    job: &Job,
    (answer, exchanges): (Answer, Vec<Exchange>),
    progress: &Progress,
    started: Instant,
    id: &RunIdentity,
) -> ResultRecord {
    let last = last_answer(&exchanges);
    let status_code = last.and_then(|e| e.status).unwrap_or(200);
    let body = answer
        .response_body
        .as_deref()
        .map_or_else(|| raw_json(&serde_json::json!({ "output": answer.output })), body_json);
    ResultRecord {
        id: line_id(&job.id),
        custom_id: job.id.clone(),
        response: Some(ProviderResponse {
            status_code,
            request_id: last.and_then(|e| e.request_id().map(str::to_string)),
            body,
        }),
        error: None,
        batchllm: HostBlock {
            status: ItemStatus::Succeeded,
            output: Some(answer.output),
            attempts: progress.attempts,
            rate_limit_retries: progress.counts.rate_limits,
            usage: progress.usage,
            latency_ms: latency_ms(started),
            error_class: None,
            http_status: last.and_then(|e| e.status),
            metadata: answer.metadata.as_deref().map(body_value),
            context: job.context.clone(),
            line: job.line,
            finished_at: Some(crate::model::now_rfc3339()),
            fingerprint: fingerprint(job, id),
            cost_usd: None,
        },
    }
}

/// The record of an item that ended with `failure`.
pub(super) fn failure(
    job: &Job,
    failure: AttemptFailure,
    progress: &Progress,
    started: Instant,
    id: &RunIdentity,
) -> ResultRecord {
    let response = failure.http_status.map(|status_code| ProviderResponse {
        status_code,
        request_id: failure.request_id.clone(),
        body: failure.body.clone().unwrap_or_else(null_json),
    });
    ResultRecord {
        id: line_id(&job.id),
        custom_id: job.id.clone(),
        response,
        error: Some(ResultError { code: failure.class, message: failure.message }),
        batchllm: HostBlock {
            status: ItemStatus::Failed,
            output: None,
            attempts: progress.attempts,
            rate_limit_retries: progress.counts.rate_limits,
            usage: progress.usage,
            latency_ms: latency_ms(started),
            error_class: Some(failure.class),
            http_status: failure.http_status,
            metadata: None,
            context: job.context.clone(),
            line: job.line,
            finished_at: Some(crate::model::now_rfc3339()),
            fingerprint: fingerprint(job, id),
            cost_usd: None,
        },
    }
}

/// The record of an item whose worker failed (a bug in the host): the
/// provider may have answered, so it is not sent again unless asked.
pub(super) fn host_failure(job: &Job, message: String, started: Instant, id: &RunIdentity) -> ResultRecord {
    let failure = AttemptFailure::host(crate::model::FailureClass::HostError, message);
    self::failure(job, failure, &Progress::default(), started, id)
}
