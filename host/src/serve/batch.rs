//! A batch's life: validating → in_progress → finalizing → completed (or
//! failed, expired, cancelling → cancelled), one engine run in the middle.
//!
//! Each step saves the batch's new status before the next begins, so a
//! server killed at any moment picks the batch up where it was: validation
//! again (it sends nothing), the run again (the engine resumes from its
//! results file, and its in-flight journal turns what was on the wire into
//! `outcome_unknown` instead of sending it twice), finalization again
//! (it writes the same files under the same ids, and records the spend in
//! the same transaction as the end state, so it counts once).
//!
//! Finalization splits the engine's results file, line by line and
//! unchanged, into the output file (successes) and the error file
//! (failures), and gives every input line without a record one: a cancelled
//! batch's unsent lines end `aborted` ("the batch was cancelled"), an
//! expired batch's `batch_deadline_exceeded`, and a line that was on the
//! wire when the server died `outcome_unknown`. So every `custom_id` ends in
//! exactly one of the two files.

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde::Deserialize;
use sha2::Digest as _;

use super::objects::{
    BatchError, BatchErrors, BatchStatus, FileObject, InputTokensDetails, OutputTokensDetails, RequestCounts, Usage,
    now_unix,
};
use super::service::{Active, Service, lock, utc_day};
use super::tenants::Tenant;
use crate::input::{InputError, JobsSource, SpoolWriter};
use crate::model::{FailureClass, Fingerprint, ItemStatus, ResultRecord, TokenUsage};
use crate::run::{Metrics, RunError, RunHooks, Termination};
use crate::validate::{Decision, read_once};

/// Most validation errors reported on a batch.
const MAX_ERRORS: usize = 20;

/// What happens after a step.
enum Step {
    /// The batch has a new status: take the next step.
    Next,
    /// Stop driving it (an end state, or the server is stopping).
    Stop,
}

/// How a batch ends, as finalization sees it.
#[derive(Debug, Clone)]
enum End {
    /// The run ended: completed, or expired if the deadline cut it.
    Ran,
    Cancelled,
    Expired,
    /// The run could not go on; what it recorded is kept.
    Failed(Vec<BatchError>),
}

/// Drives `active` to an end state (or until the server stops), on the
/// service's task tracker.
pub fn start(svc: &Arc<Service>, tenant: Arc<Tenant>, active: Arc<Active>) {
    let id = lock(&active.batch).id.clone();
    {
        let mut running = lock(&svc.active);
        // One driver per batch, whoever starts it (a create, a reload).
        if running.contains_key(&id) {
            return;
        }
        running.insert(id.clone(), active.clone());
    }
    // Created while the server stops: it must not hold the shutdown up; it
    // starts at the next start, from the state it was saved in.
    if svc.is_shutting_down() {
        active.stop.stop();
    }
    let svc = svc.clone();
    svc.tasks.clone().spawn(async move {
        loop {
            let status = lock(&active.batch).status;
            let step = match status {
                BatchStatus::Validating => validate(&svc, &tenant, &active).await,
                BatchStatus::InProgress => execute(&svc, &tenant, &active).await,
                BatchStatus::Finalizing => finalize(&svc, &active, End::Ran).await,
                BatchStatus::Cancelling => finalize(&svc, &active, End::Cancelled).await,
                _ => Step::Stop,
            };
            if matches!(step, Step::Stop) {
                break;
            }
        }
        lock(&svc.active).remove(&id);
    });
}

/// Saves the batch as it is now; a failure is logged (the batch goes on
/// in memory, and a restart takes it up from the last saved state).
async fn save(svc: &Service, active: &Active) -> bool {
    let batch = lock(&active.batch).clone();
    let tenant = active.tenant.clone();
    match svc.db(move |s| s.put_batch(&tenant, &batch)).await {
        Ok(()) => true,
        Err(e) => {
            tracing::error!(error = %e, "saving a batch failed");
            false
        }
    }
}

async fn transition(svc: &Service, active: &Active, f: impl FnOnce(&mut super::objects::Batch)) -> Step {
    active.update(f);
    if save(svc, active).await { Step::Next } else { Step::Stop }
}

async fn cancel_if_asked(svc: &Service, active: &Active) -> Option<Step> {
    if !active.cancel.load(Ordering::Acquire) {
        return None;
    }
    let now = now_unix();
    Some(
        transition(svc, active, |b| {
            b.status = BatchStatus::Cancelling;
            b.cancelling_at.get_or_insert(now);
        })
        .await,
    )
}

/// `validating`: the whole input is checked before anything is sent.
async fn validate(svc: &Arc<Service>, tenant: &Tenant, active: &Active) -> Step {
    if let Some(step) = cancel_if_asked(svc, active).await {
        return step;
    }
    let (id, endpoint) = {
        let b = lock(&active.batch);
        (b.id.clone(), b.endpoint.clone())
    };
    let input = svc.store.batch_dir(&id).join("input.jsonl");
    let max_lines = tenant.quotas.max_lines_per_batch;
    let checked = tokio::task::spawn_blocking(move || check_input(&input, &endpoint, max_lines)).await;
    let checked = checked.unwrap_or_else(|e| Err(vec![host_error(format!("validation failed: {e}"))]));
    if let Some(step) = cancel_if_asked(svc, active).await {
        return step;
    }
    let now = now_unix();
    match checked {
        Ok((jobs, model)) => {
            transition(svc, active, |b| {
                b.status = BatchStatus::InProgress;
                b.in_progress_at = Some(now);
                b.request_counts = RequestCounts { total: jobs, completed: 0, failed: 0 };
                b.model = model;
            })
            .await
        }
        Err(errors) => {
            transition(svc, active, |b| {
                b.status = BatchStatus::Failed;
                b.failed_at = Some(now);
                b.errors = Some(BatchErrors::new(errors));
            })
            .await;
            Step::Stop
        }
    }
}

/// Checks every line (the engine's own one pass over the input, plus the
/// batch's endpoint and line quota). Returns the number of requests and the
/// model of the first line. What the pass spools is not needed here (the
/// run makes its own pass, with its resume): it goes to a private file next
/// to the input, removed on return, and overwritten by the next validation
/// should a killed server leave it behind.
fn check_input(path: &Path, endpoint: &str, max_lines: u64) -> Result<(u64, Option<String>), Vec<BatchError>> {
    let input = JobsSource::from(path);
    let spool = SpoolWriter::create(&path.with_extension("validation.spool"))
        .map_err(|e| vec![host_error(format!("the input cannot be checked (no room for its spool): {e}"))])?;
    let mut model = None;
    let checked = read_once(&input, MAX_ERRORS, spool, &|| true, |job| {
        if model.is_none() {
            model = job.params.model().map(str::to_string);
        }
        let problem = match job.endpoint.as_deref() {
            Some(url) if url == endpoint => return Decision::Keep,
            Some(url) => format!("`url` is {url:?}, but the batch's endpoint is {endpoint:?}"),
            None => "the line has no `url`".to_string(),
        };
        Decision::Reject(InputError::Line {
            input: input.clone(),
            line: job.line,
            problem,
            fix: "every line must be {\"custom_id\", \"method\": \"POST\", \"url\": <the batch's endpoint>, \"body\"}",
        })
    });
    let (summary, _spool) = checked.map_err(|errors| errors.into_iter().map(batch_error).collect::<Vec<_>>())?;
    let jobs = summary.jobs as u64;
    if jobs == 0 {
        // The command line takes an empty input as nothing to do; OpenAI's
        // Batch API refuses an empty file, and so does the service.
        return Err(vec![BatchError {
            code: "empty_file".into(),
            message: "the input file has no requests; it needs one JSON object per line".into(),
            param: None,
            line: None,
        }]);
    }
    if jobs > max_lines {
        return Err(vec![BatchError {
            code: "too_many_requests_in_file".into(),
            message: format!(
                "the input has {jobs} requests; this tenant's limit is {max_lines} per batch; split the file"
            ),
            param: None,
            line: None,
        }]);
    }
    Ok((jobs, model))
}

/// A validation error as a batch's `errors` entry (no server paths in it).
fn batch_error(e: InputError) -> BatchError {
    let at = |line: usize| Some(line as u64);
    match e {
        InputError::Line { line, problem, fix, .. } => {
            let code = if problem.starts_with("invalid JSON") {
                "invalid_json_line"
            } else if problem.contains("`url`") {
                "invalid_url"
            } else {
                "invalid_request"
            };
            BatchError {
                code: code.into(),
                message: format!("line {line}: {problem}; {fix}"),
                param: None,
                line: at(line),
            }
        }
        InputError::Duplicate { line, first, id, .. } => BatchError {
            code: "duplicate_custom_id".into(),
            message: format!(
                "line {line}: duplicate custom_id `{id}` (first used on line {first}); ids must be unique"
            ),
            param: Some("custom_id".into()),
            line: at(line),
        },
        InputError::Io { source, .. } => host_error(format!("the input file cannot be read: {source}")),
        InputError::Spool { source, .. } => host_error(format!("the input cannot be checked: {source}")),
        InputError::Stopped { .. } => host_error("the server stopped while the input was read".into()),
    }
}

fn host_error(message: String) -> BatchError {
    BatchError { code: "host_error".into(), message, param: None, line: None }
}

/// `in_progress`: one engine run, resuming from what an earlier one kept.
async fn execute(svc: &Arc<Service>, tenant: &Tenant, active: &Active) -> Step {
    if let Some(step) = cancel_if_asked(svc, active).await {
        return step;
    }
    let (id, expires_at) = {
        let b = lock(&active.batch);
        (b.id.clone(), b.expires_at.unwrap_or(b.created_at.saturating_add(86_400)))
    };
    let now = now_unix();
    if now >= expires_at {
        return finalize(svc, active, End::Expired).await;
    }
    let dir = svc.store.batch_dir(&id);
    let mut config = match tenant.run_config(dir.join("input.jsonl"), dir.join("results.jsonl"), &svc.cache_dir) {
        Ok(config) => config,
        Err(e) => {
            return finalize(svc, active, End::Failed(vec![host_error(format!("the tenant's configuration: {e}"))]))
                .await;
        }
    };
    let window = Duration::from_secs(u64::try_from(expires_at.saturating_sub(now)).unwrap_or(0));
    config.batch_timeout = Some(config.batch_timeout.map_or(window, |t| t.min(window)));
    // The tenant's configuration may have changed since the batch began (a
    // reload): what is done stays done, the rest runs with the new one.
    config.resume.force = true;
    if let Some(max) = tenant.quotas.max_cost_per_day {
        let name = tenant.name.clone();
        let spent = svc.db(move |s| s.spend(&name, utc_day(now))).await.unwrap_or(max);
        let left = (max - spent - svc.live_spend(&tenant.name)).max(0.0);
        config.max_cost = Some(config.max_cost.map_or(left, |c| c.min(left)));
    }
    let runtime = svc.runtime(tenant, &config.egress.secrets().fingerprint());
    let metrics = Arc::new(Metrics::default());
    *lock(&active.metrics) = Some(metrics.clone());
    let hooks =
        RunHooks { gates: Some(runtime.gates.clone()), items: Some(runtime.items.clone()), metrics: Some(metrics) };
    tracing::info!(batch = %id, tenant = %tenant.name, "running");
    let result = crate::run::run_with(config, active.stop.clone(), hooks).await;
    if let Some(step) = cancel_if_asked(svc, active).await {
        return step;
    }
    match result {
        // A stop while the input was read (a cancel was handled above):
        // the server is stopping; the batch resumes at the next start.
        Err(e) if e.is_stopped() => {
            tracing::info!(batch = %id, "stopped with the server while reading its input; it resumes at the next start");
            Step::Stop
        }
        Err(RunError::Input(errors)) => {
            let errors = errors.into_iter().take(MAX_ERRORS).map(batch_error).collect();
            finalize(svc, active, End::Failed(errors)).await
        }
        Err(e @ RunError::Prepare { .. }) => {
            let error =
                BatchError { code: "plugin_prepare_failed".into(), message: e.to_string(), param: None, line: None };
            finalize(svc, active, End::Failed(vec![error])).await
        }
        Err(e) => finalize(svc, active, End::Failed(vec![host_error(crate::model::error_chain(&e))])).await,
        Ok(report) if report.termination == Termination::Interrupted && svc.is_shutting_down() => {
            tracing::info!(batch = %id, "stopped with the server; it resumes at the next start");
            Step::Stop
        }
        Ok(report) if report.termination == Termination::Failed => {
            let message = report.host_failure.unwrap_or_else(|| "the host failed".into());
            finalize(svc, active, End::Failed(vec![host_error(message)])).await
        }
        Ok(_) => {
            let now = now_unix();
            transition(svc, active, |b| {
                b.status = BatchStatus::Finalizing;
                b.finalizing_at = Some(now);
            })
            .await
        }
    }
}

/// What finalization learned from the records.
#[derive(Debug, Default)]
struct Split {
    succeeded: u64,
    failed: u64,
    usage: TokenUsage,
    cost_usd: f64,
    failures: BTreeMap<String, u64>,
    output_bytes: u64,
    error_bytes: u64,
}

/// The parts of a results line finalization reads.
#[derive(Deserialize)]
struct Line {
    custom_id: String,
    batchllm: LineBlock,
}

#[derive(Deserialize)]
struct LineBlock {
    status: ItemStatus,
    #[serde(default)]
    error_class: Option<String>,
    #[serde(default)]
    usage: TokenUsage,
    #[serde(default)]
    cost_usd: Option<f64>,
}

/// The id of a file a batch writes: derived from the batch, so a second
/// finalization (after a crash) writes the same file again.
fn output_id(batch: &str, what: &str) -> String {
    let digest = sha2::Sha256::digest(format!("{batch}:{what}").as_bytes());
    let hex = hex::encode(digest);
    format!("file-{}", hex.get(..24).unwrap_or(&hex))
}

/// Ends the batch: the output and error files, the counts, the end state.
async fn finalize(svc: &Arc<Service>, active: &Active, end: End) -> Step {
    let (id, created) = {
        let b = lock(&active.batch);
        (b.id.clone(), b.created_at)
    };
    let dir = svc.store.batch_dir(&id);
    let out_id = output_id(&id, "output");
    let err_id = output_id(&id, "errors");
    let out_path = svc.store.file_path(&out_id);
    let err_path = svc.store.file_path(&err_id);
    let unrecorded = match &end {
        End::Cancelled => Some((FailureClass::Aborted, "the batch was cancelled before this request was sent")),
        End::Expired => Some((
            FailureClass::BatchDeadlineExceeded,
            "the batch's completion window ended before this request was sent",
        )),
        // Every line of a run that ended has a record; one that did not
        // (the server died before the run began) has none to give.
        End::Ran | End::Failed(_) => None,
    };
    let split = {
        let (dir, out_path, err_path) = (dir.clone(), out_path.clone(), err_path.clone());
        tokio::task::spawn_blocking(move || split_results(&dir, &out_path, &err_path, unrecorded)).await
    };
    let split = match split {
        Ok(Ok(split)) => split,
        Ok(Err(e)) => {
            tracing::error!(batch = %id, error = %e, "finalizing failed; it is retried at the next start");
            return Step::Stop;
        }
        Err(e) => {
            tracing::error!(batch = %id, error = %e, "finalizing failed; it is retried at the next start");
            return Step::Stop;
        }
    };
    let now = now_unix();
    let expired =
        matches!(end, End::Expired) || split.failures.contains_key(FailureClass::BatchDeadlineExceeded.code());
    let file = |fid: &str, bytes: u64, name: String| FileObject {
        id: fid.to_string(),
        object: "file".into(),
        bytes,
        created_at: now,
        filename: name,
        purpose: "batch_output".into(),
        status: "processed".into(),
        expires_at: None,
        status_details: None,
    };
    let mut files = Vec::new();
    let batch = active.update(|b| {
        b.request_counts = RequestCounts {
            total: split.succeeded.saturating_add(split.failed),
            completed: split.succeeded,
            failed: split.failed,
        };
        if b.request_counts.total < b.request_counts.completed {
            b.request_counts.total = b.request_counts.completed;
        }
        let u = &split.usage;
        b.usage = Some(Usage {
            input_tokens: u.input_tokens,
            input_tokens_details: InputTokensDetails { cached_tokens: u.cached_input_tokens },
            output_tokens: u.output_tokens,
            output_tokens_details: OutputTokensDetails { reasoning_tokens: u.reasoning_tokens },
            total_tokens: u.total(),
        });
        b.batchllm.cost_usd = split.cost_usd;
        b.batchllm.failures = split.failures.clone();
        if split.succeeded > 0 {
            files.push(file(&out_id, split.output_bytes, format!("{}_output.jsonl", b.id)));
            b.output_file_id = Some(out_id.clone());
        }
        if split.failed > 0 {
            files.push(file(&err_id, split.error_bytes, format!("{}_error.jsonl", b.id)));
            b.error_file_id = Some(err_id.clone());
        }
        b.finalizing_at.get_or_insert(now);
        match &end {
            End::Cancelled => {
                b.status = BatchStatus::Cancelled;
                b.cancelled_at = Some(now);
            }
            End::Failed(errors) => {
                b.status = BatchStatus::Failed;
                b.failed_at = Some(now);
                b.errors = Some(BatchErrors::new(errors.clone()));
            }
            End::Ran | End::Expired if expired => {
                b.status = BatchStatus::Expired;
                b.expired_at = Some(now);
            }
            End::Ran | End::Expired => {
                b.status = BatchStatus::Completed;
                b.completed_at = Some(now);
            }
        }
    });
    let tenant = active.tenant.clone();
    let cost = split.cost_usd;
    let saved = svc.db(move |s| s.finish_batch(&tenant, &batch, &files, utc_day(now), cost)).await;
    match saved {
        Ok(()) => {
            let _ = created;
            tracing::info!(batch = %id, status = lock(&active.batch).status.as_str(), "batch finished");
        }
        Err(e) => {
            tracing::error!(batch = %id, error = %e, "saving the finished batch failed; retried at the next start")
        }
    }
    Step::Stop
}

/// Splits `<dir>/results.jsonl` into the output and error files (written to
/// a scratch name, synced, then renamed), adding a record for every input
/// line that has none when `unrecorded` says how such lines end.
fn split_results(
    dir: &Path,
    out_path: &Path,
    err_path: &Path,
    unrecorded: Option<(FailureClass, &str)>,
) -> std::io::Result<Split> {
    let results = dir.join("results.jsonl");
    let tmp = |p: &Path| -> PathBuf {
        let mut name = p.file_name().map(|n| n.to_os_string()).unwrap_or_default();
        name.push(".partial");
        p.with_file_name(name)
    };
    let (out_tmp, err_tmp) = (tmp(out_path), tmp(err_path));
    let mut out = BufWriter::new(crate::results::create_private(&out_tmp)?);
    let mut err = BufWriter::new(crate::results::create_private(&err_tmp)?);
    let mut split = Split::default();
    let mut seen: HashSet<String> = HashSet::new();
    let mut write_line = |text: &str, line: Line, split: &mut Split| -> std::io::Result<()> {
        let b = &line.batchllm;
        split.usage.add(&b.usage);
        split.cost_usd += b.cost_usd.unwrap_or(0.0);
        let bytes = text.len() as u64 + 1;
        match b.status {
            ItemStatus::Succeeded => {
                split.succeeded += 1;
                split.output_bytes += bytes;
                writeln!(out, "{text}")
            }
            ItemStatus::Failed => {
                split.failed += 1;
                split.error_bytes += bytes;
                *split.failures.entry(b.error_class.clone().unwrap_or_else(|| "other".into())).or_default() += 1;
                writeln!(err, "{text}")
            }
        }
    };
    match std::fs::File::open(&results) {
        Ok(file) => {
            for text in std::io::BufReader::new(file).lines() {
                let text = text?;
                // A torn last line (a crash mid-write) is not a record.
                let Ok(line) = serde_json::from_str::<Line>(&text) else { continue };
                if !seen.insert(line.custom_id.clone()) {
                    tracing::error!(custom_id = %line.custom_id, "a second record for one request; kept the first");
                    continue;
                }
                write_line(&text, line, &mut split)?;
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    if let Some((class, message)) = unrecorded {
        // On the wire when the server died: the provider may have answered.
        let in_flight = crate::results::read_journal(&crate::results::journal_path(&results))?;
        let input = dir.join("input.jsonl");
        for (n, text) in std::io::BufReader::new(std::fs::File::open(&input)?).lines().enumerate() {
            let text = text?;
            if text.trim().is_empty() {
                continue;
            }
            let Ok(job) = crate::input::parse_line(&text, n + 1) else { continue };
            if seen.contains(&job.id) {
                continue;
            }
            let (class, message) = if in_flight.contains(&job.id) {
                (
                    FailureClass::OutcomeUnknown,
                    "the server stopped while this request was in flight; the provider may have answered it, so it \
                     was not sent again",
                )
            } else {
                (class, message)
            };
            let record = unrecorded_record(&job, class, message);
            let text = serde_json::to_string(&record).map_err(std::io::Error::other)?;
            let line = Line {
                custom_id: job.id.clone(),
                batchllm: LineBlock {
                    status: ItemStatus::Failed,
                    error_class: Some(class.code().to_string()),
                    usage: TokenUsage::default(),
                    cost_usd: None,
                },
            };
            seen.insert(job.id);
            write_line(&text, line, &mut split)?;
        }
    }
    for (w, tmp, path) in [(out, &out_tmp, out_path), (err, &err_tmp, err_path)] {
        let file = w.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        std::fs::rename(tmp, path)?;
    }
    // Outputs that are empty are not files of the batch.
    for (n, path) in [(split.succeeded, out_path), (split.failed, err_path)] {
        if n == 0 {
            let _ = std::fs::remove_file(path);
        }
    }
    Ok(split)
}

fn unrecorded_record(job: &crate::model::Job, class: FailureClass, message: &str) -> ResultRecord {
    let fingerprint = Fingerprint { input: job.fingerprint.clone(), plugin: String::new(), config: String::new() };
    let mut record = ResultRecord::failed_without_answer(&job.id, job.line, fingerprint, class, message);
    record.batchllm.context = job.context.clone();
    record
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, lines: &[&str]) {
        std::fs::write(path, lines.join("\n") + "\n").expect("write");
    }

    fn line(id: &str, url: &str) -> String {
        serde_json::json!({"custom_id": id, "method": "POST", "url": url, "body": {"model": "m", "messages": []}})
            .to_string()
    }

    #[test]
    fn validation_reports_lines_with_openai_codes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("in.jsonl");
        let a = line("a", "/v1/chat/completions");
        let b = line("b", "/v1/embeddings");
        write(&path, &[&a, "{not json", &b, &a]);
        let errors = check_input(&path, "/v1/chat/completions", 100).expect_err("invalid");
        let codes: Vec<(&str, Option<u64>)> = errors.iter().map(|e| (e.code.as_str(), e.line)).collect();
        assert_eq!(codes, [("invalid_json_line", Some(2)), ("invalid_url", Some(3)), ("duplicate_custom_id", Some(4))]);
        assert!(!errors.iter().any(|e| e.message.contains(dir.path().to_str().unwrap_or("/"))), "no server paths");
        write(&path, &[&a]);
        assert_eq!(check_input(&path, "/v1/chat/completions", 100).expect("valid"), (1, Some("m".into())));
        let c = line("c", "/v1/chat/completions");
        write(&path, &[&a, &c]);
        let errors = check_input(&path, "/v1/chat/completions", 1).expect_err("too many");
        assert_eq!(errors[0].code, "too_many_requests_in_file");
        write(&path, &[""]);
        assert_eq!(check_input(&path, "/v1/chat/completions", 1).expect_err("empty")[0].code, "empty_file");
        let left: Vec<_> = std::fs::read_dir(dir.path()).expect("dir").map(|e| e.expect("entry").file_name()).collect();
        assert_eq!(left, ["in.jsonl"], "the validation's spool is removed");
    }

    #[test]
    fn every_line_ends_in_exactly_one_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let input: Vec<String> = ["a", "b", "c", "d"].iter().map(|id| line(id, "/v1/chat/completions")).collect();
        write(&dir.path().join("input.jsonl"), &input.iter().map(String::as_str).collect::<Vec<_>>());
        let ok = r#"{"custom_id":"a","batchllm":{"status":"succeeded","usage":{"input_tokens":3,"output_tokens":2,"cached_input_tokens":0,"cache_write_tokens":0,"reasoning_tokens":0},"cost_usd":0.5}}"#;
        let bad = r#"{"custom_id":"b","batchllm":{"status":"failed","error_class":"auth"}}"#;
        let torn = r#"{"custom_id":"c","batchll"#;
        std::fs::write(dir.path().join("results.jsonl"), format!("{ok}\n{bad}\n{ok}\n{torn}")).expect("write");
        std::fs::write(dir.path().join("results.jsonl.inflight"), "\"c\"\n").expect("journal");
        let (out, err) = (dir.path().join("out"), dir.path().join("err"));
        let split = split_results(dir.path(), &out, &err, Some((FailureClass::Aborted, "cancelled"))).expect("split");
        assert_eq!((split.succeeded, split.failed), (1, 3));
        assert_eq!(split.usage.total(), 5);
        assert_eq!(split.failures.get("outcome_unknown"), Some(&1), "c was on the wire");
        assert_eq!(split.failures.get("aborted"), Some(&1), "d was never sent");
        let ids = |p: &Path| -> Vec<String> {
            std::fs::read_to_string(p)
                .unwrap_or_default()
                .lines()
                .map(|l| {
                    serde_json::from_str::<serde_json::Value>(l).expect("json")["custom_id"]
                        .as_str()
                        .unwrap_or("")
                        .to_string()
                })
                .collect()
        };
        assert_eq!(ids(&out), ["a"]);
        assert_eq!(ids(&err), ["b", "c", "d"]);
        let split = split_results(dir.path(), &out, &err, None).expect("again");
        assert_eq!((split.succeeded, split.failed), (1, 1), "without cancel, unrecorded lines get nothing");
    }
}
