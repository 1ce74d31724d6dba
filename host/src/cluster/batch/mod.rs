//! `--cluster`: one batch run by several hosts that share one Redis and
//! one data location.
//!
//! Every host is started the same way (`batchllm-host jobs.jsonl --cluster
//! redis://... -o /shared/results.jsonl`). Each validates the whole input
//! and reads it once more to name the batch (SHA-256 of the file, the
//! plugin and its configuration, the results file's name) and to cut it
//! into chunks of `--cluster-chunk` lines; the first host to arrive writes
//! the chunks into a Redis stream, the others find them there (one script:
//! no election). Then every host:
//!
//! - *claims* chunks from the stream's consumer group, each claim with a
//!   new lease epoch; renews its claims every third of `--cluster-lease`;
//!   takes over a chunk whose owner stopped renewing it (XAUTOCLAIM);
//! - before each attempt notes the item in the chunk's journal in Redis,
//!   *only if its claim is still the current epoch* (a host paused past its
//!   lease cannot send anything after it wakes up), so an item a dead host
//!   had on the wire is known to its successor;
//! - writes records to the claim's own part file, and *commits* the chunk
//!   once every record is durable, again only at the current epoch;
//! - admits every attempt through the shared limiter
//!   ([`crate::cluster::limiter`]): one RPM/TPM bucket, one cooldown, one
//!   learned budget for all hosts.
//!
//! A successor salvages the earlier claims' records and turns every id the
//! journal lists without a record into `outcome_unknown`, never sending it
//! again: the CLI's at-most-once rule, across hosts. When every chunk is
//! committed each host writes the results file from the committed part
//! files (the same content whoever does it) and exits.

mod parts;
mod plan;
mod store;
mod table;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::input::parse_line;
use crate::input::{InputError, JobsSource, SpoolWriter};
use crate::model::{Fingerprint, Job, short_digest};
use crate::results::RunIdentity;
use crate::run::engine::{self, InFlight, Sink, queue};
use crate::run::gate::Gates;
use crate::run::observe::{self, EventLog};
use crate::run::{RunConfig, RunError, RunHooks, RunReport, StopHandle};
use crate::validate::{Decision, InputSummary, read_once};

pub use parts::{Merged, parts_dir};
use store::{BatchStore, Claim, Claimed};
use table::{ChunkSink, Chunks, ClusterJournal, PartWriter};

use super::limiter::{self, RedisLimiter};
use super::tick::Ticker;

fn cluster_error(e: impl std::error::Error + Send + Sync + 'static) -> RunError {
    RunError::Cluster(Box::new(e))
}

fn message(text: String) -> RunError {
    RunError::Cluster(text.into())
}

/// The jobs file of a cluster batch: every host reads its chunks as byte
/// ranges, so it must be a plain file they all can open, not stdin or gzip.
fn cluster_input(jobs: &JobsSource) -> Result<std::path::PathBuf, RunError> {
    let JobsSource::Path(path) = jobs else {
        return Err(message("the jobs must be a file every host can read (on shared storage), not stdin".into()));
    };
    let mut head = [0u8; 2];
    let gzip = std::fs::File::open(path)
        .and_then(|mut f| std::io::Read::read(&mut f, &mut head))
        .is_ok_and(|n| n == 2 && head == [0x1f, 0x8b]);
    if gzip {
        return Err(message(format!(
            "{} is gzip-compressed; hosts read their chunks as byte ranges of the file: decompress it first (gunzip -k)",
            path.display()
        )));
    }
    Ok(path.clone())
}

/// Validates every line of the input before this host claims anything (a
/// bad line stops every host, and nothing is sent). Nothing is spooled:
/// hosts read their chunks from the file itself.
async fn validate(jobs: &JobsSource, stop: &StopHandle) -> Result<InputSummary, RunError> {
    let (input, stop) = (jobs.clone(), stop.clone());
    let pass = tokio::task::spawn_blocking(move || {
        let spool = SpoolWriter::create_temp(&std::env::temp_dir())
            .map_err(|source| vec![InputError::Spool { path: std::env::temp_dir(), source }])?;
        let keep_going = || !stop.is_stopping();
        read_once(&input, 20, spool, &keep_going, |_| Decision::Skip).map(|(summary, _spool)| summary)
    });
    match pass.await {
        Ok(result) => result.map_err(RunError::Input),
        Err(e) => Err(cluster_error(e)),
    }
}

/// Runs this host's part of the cluster batch of `config` (whose
/// `cluster` is set), until every chunk is committed or `stop` asks.
pub async fn run(config: RunConfig, stop: StopHandle) -> Result<RunReport, RunError> {
    let started = Instant::now();
    let Some(cluster) = config.cluster.clone() else {
        return Err(message("no --cluster URL".into()));
    };
    let jobs = cluster_input(&config.jobs)?;
    let summary = validate(&config.jobs, &stop).await?;
    let chunk_lines = cluster.chunk_lines;
    let plan = tokio::task::spawn_blocking(move || plan::plan(&jobs, chunk_lines))
        .await
        .map_err(cluster_error)?
        .map_err(cluster_error)?;
    let identity = crate::run::run_identity(&config);
    let output_name = config.output.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let batch =
        short_digest(format!("{}:{}:{}:{output_name}", plan.digest, identity.plugin, identity.config).as_bytes());
    let conn = limiter::connect(cluster.url.as_str())
        .await
        .map_err(|e| message(format!("cannot reach Redis at {:?}: {e}", cluster.url)))?;
    let consumer = format!("{}-{}-{:08x}", hostname(), std::process::id(), rand::random::<u32>());
    // One ticker for the journal and the limiter: one round trip a tick.
    let ticker = Ticker::new(conn.clone());
    let store = BatchStore::new(conn, ticker.clone(), &batch, consumer);
    let chunks_total = store.init(chunk_lines, summary.jobs, &plan.ranges).await.map_err(cluster_error)?;
    tracing::info!(batch = %batch, chunks = chunks_total, host = store.consumer(), "joined the cluster batch");

    let events = EventLog::open(config.events.as_deref())?;
    let metrics_listener = match config.metrics_addr {
        Some(addr) => Some(observe::metrics::bind(addr).await.map_err(|source| RunError::Metrics { addr, source })?),
        None => None,
    };
    let (factory, first) = crate::run::load_and_prepare(&config).await?;

    // From here on `cleanup` runs on every way out.
    let namespace = config.egress.secrets().fingerprint();
    let shared = Arc::new(RedisLimiter::on(ticker, &namespace, "cli"));
    let gates = Arc::new(Gates::shared(crate::run::gate_settings(&config), started, shared));
    let (chunks, commits) = Chunks::new(store);
    let journal = InFlight::Shared(Arc::new(ClusterJournal(chunks.clone())));
    let hooks = RunHooks { gates: Some(gates), ..RunHooks::default() };
    let ctx = Arc::new(crate::run::new_context(&config, identity.clone(), started, stop, events, journal, hooks));
    let metrics_server = metrics_listener.and_then(|listener| {
        observe::metrics::serve(listener, ctx.observe.metrics.clone(), ctx.gates.clone(), config.egress.clone())
            .ok()
            .map(|(_, handle)| handle)
    });

    let (job_tx, job_rx) = queue::bounded::<Job>(config.concurrency.saturating_mul(2));
    let claimer = tokio::spawn(claim_loop(
        ctx.clone(),
        chunks.clone(),
        Arc::new(job_tx),
        ClaimSetup {
            jobs: cluster_input(&config.jobs)?,
            parts: parts_dir(&config.output),
            identity,
            lease: cluster.lease,
            fsync: config.resume.fsync,
        },
    ));
    let heartbeat = tokio::spawn(heartbeat_loop(chunks.clone(), cluster.lease));
    let committer = tokio::spawn(commit_loop(chunks.clone(), commits));
    let mut sink = Sink::new(ChunkSink(chunks.clone()), RunReport::default(), config.progress, summary.jobs as u64);
    let spare = engine::drive(ctx.clone(), factory.clone(), Some(first), config.concurrency, job_rx, &mut sink).await;
    let claimed = claimer.await.unwrap_or_else(|e| Err(e.to_string()));
    if let Some(server) = metrics_server {
        server.abort();
    }
    crate::run::cleanup(spare, &factory).await;
    let (mut report, write_error, writer) = sink.finish();
    drop(writer);
    // The last commits (bounded), then nothing of this host is held any more.
    let waited = Instant::now();
    while chunks.pending.load(std::sync::atomic::Ordering::SeqCst) > 0 && waited.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    committer.abort();
    heartbeat.abort();
    let all_done = match claimed {
        Ok(done) => done,
        Err(e) => {
            ctx.control.fail(e);
            false
        }
    };
    if all_done && write_error.is_none() {
        match merge(&chunks.store, &config.output, chunks_total).await {
            Ok(merged) => {
                report.already_done = merged.records.saturating_sub(report.items);
                report.already_failed = merged.failed.saturating_sub(report.failed);
                tracing::info!(records = merged.records, failed = merged.failed, "results merged from every chunk");
            }
            Err(e) => ctx.control.fail(format!("merging the results failed: {e}")),
        }
    }
    report.outcome_unknown = chunks.unknown.load(std::sync::atomic::Ordering::Relaxed);
    let report = crate::run::finish_report(report, &ctx, &config.egress, started);
    ctx.observe.events.flush();
    Ok(report)
}

async fn merge(store: &BatchStore, output: &std::path::Path, chunks: u64) -> Result<Merged, String> {
    let committed = store.committed().await.map_err(|e| e.to_string())?;
    let output = output.to_path_buf();
    tokio::task::spawn_blocking(move || parts::merge(&output, chunks, &committed))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".into())
}

/// What the claimer needs besides the table.
struct ClaimSetup {
    jobs: std::path::PathBuf,
    parts: std::path::PathBuf,
    identity: RunIdentity,
    lease: Duration,
    fsync: bool,
}

/// How often a host with nothing to claim looks for chunks to take over.
fn poll_interval(lease: Duration) -> Duration {
    (lease / 4).clamp(Duration::from_millis(100), Duration::from_millis(500))
}

/// Claims chunks and queues their items until every chunk is committed
/// (`Ok(true)`) or the run stops (`Ok(false)`).
async fn claim_loop(
    ctx: Arc<engine::RunContext>,
    chunks: Arc<Chunks>,
    jobs: Arc<queue::Producer<Job>>,
    setup: ClaimSetup,
) -> Result<bool, String> {
    let setup = Arc::new(setup);
    loop {
        if ctx.control.stopping() || ctx.control.aborted().is_some() {
            return Ok(false);
        }
        match chunks.store.claim(setup.lease).await {
            Ok(Claimed::Chunk(claim)) => {
                tracing::debug!(chunk = claim.chunk, epoch = claim.epoch, "claimed");
                let (chunks, jobs, setup) = (chunks.clone(), jobs.clone(), setup.clone());
                let queued = tokio::task::spawn_blocking(move || queue_claim(&chunks, &jobs, &setup, &claim))
                    .await
                    .map_err(|e| e.to_string())?;
                match queued {
                    Ok(true) => {}
                    // The workers are gone: the run is stopping.
                    Ok(false) => return Ok(false),
                    Err(e) => return Err(e),
                }
            }
            Ok(Claimed::Again) => {}
            Ok(Claimed::Nothing { done, chunks: total }) => {
                if done >= total {
                    return Ok(true);
                }
                tokio::select! {
                    () = tokio::time::sleep(poll_interval(setup.lease)) => {}
                    () = ctx.control.until_stopping() => return Ok(false),
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot claim a chunk; trying again");
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_millis(500)) => {}
                    () = ctx.control.until_stopping() => return Ok(false),
                }
            }
        }
    }
}

/// Prepares a claim (salvage, `outcome_unknown`, the part file) and queues
/// the items still to run. `Ok(false)`: the workers stopped taking items.
fn queue_claim(
    chunks: &Chunks,
    jobs: &queue::Producer<Job>,
    setup: &ClaimSetup,
    claim: &Claim,
) -> Result<bool, String> {
    let path = &setup.jobs;
    let lines = plan::read_range(path, claim.range).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut parsed = Vec::new();
    for (line, text) in lines {
        if text.trim().is_empty() {
            continue;
        }
        let job = parse_line(&text, line)
            .map_err(|e| format!("{}:{line} changed during the run ({}); stopping", path.display(), e.problem))?;
        parsed.push(job);
    }
    let ids: HashSet<String> = parsed.iter().map(|j| j.id.clone()).collect();
    let kept = parts::salvage(&setup.parts, claim.chunk, claim.epoch, &ids)
        .map_err(|e| format!("cannot read the part files in {}: {e}", setup.parts.display()))?;
    let mut unknown = Vec::new();
    let mut to_run = Vec::new();
    let mut kept_lines = Vec::new();
    for job in parsed {
        if let Some(line) = kept.get(&job.id) {
            kept_lines.push(line.clone());
        } else if claim.journal.contains_key(&job.id) {
            let fingerprint = Fingerprint {
                input: job.fingerprint.clone(),
                plugin: setup.identity.plugin.clone(),
                config: setup.identity.config.clone(),
            };
            unknown.push(crate::model::ResultRecord::outcome_unknown(
                &job.id,
                job.line,
                fingerprint,
                parts::IN_FLIGHT_ON_A_STOPPED_HOST,
            ));
        } else {
            to_run.push(job);
        }
    }
    if !unknown.is_empty() {
        chunks.unknown.fetch_add(unknown.len() as u64, std::sync::atomic::Ordering::Relaxed);
        tracing::warn!(
            chunk = claim.chunk,
            items = unknown.len(),
            "took over a chunk with items in flight: recorded outcome_unknown, not sent again"
        );
    }
    let part = parts::part_file(&setup.parts, claim.chunk, claim.epoch);
    parts::start_part(&part, &kept_lines, &unknown).map_err(|e| format!("cannot write {}: {e}", part.display()))?;
    let writer =
        PartWriter::open(part.clone(), setup.fsync).map_err(|e| format!("cannot open {}: {e}", part.display()))?;
    let expected = to_run.iter().map(|j| j.id.clone()).collect();
    let queue: HashSet<String> = chunks.hold(claim, writer, expected).into_iter().collect();
    for job in to_run.into_iter().filter(|j| queue.contains(&j.id)) {
        if jobs.push_blocking(job).is_err() {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Renews this host's claims every third of the lease; learns of takeovers.
async fn heartbeat_loop(chunks: Arc<Chunks>, lease: Duration) {
    let mut tick = tokio::time::interval(lease / 3);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let held = chunks.held();
        if held.is_empty() {
            continue;
        }
        match chunks.store.renew(&held).await {
            Ok(lost) => lost.into_iter().for_each(|c| chunks.lose(c)),
            Err(e) => tracing::warn!(error = %e, "cannot renew this host's claims"),
        }
    }
}

/// Commits chunks whose records are durable, in the order they complete.
async fn commit_loop(chunks: Arc<Chunks>, mut commits: tokio::sync::mpsc::UnboundedReceiver<table::Commit>) {
    while let Some(commit) = commits.recv().await {
        let started = Instant::now();
        commit_one(&chunks, &commit, started).await;
        chunks.pending.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

async fn commit_one(chunks: &Chunks, commit: &table::Commit, started: Instant) {
    loop {
        match chunks.store.commit(commit.chunk, commit.epoch, &commit.entry).await {
            Ok(Some((done, total))) => {
                tracing::debug!(chunk = commit.chunk, done, total, "committed");
                return;
            }
            Ok(None) => {
                tracing::warn!(chunk = commit.chunk, "commit refused: the chunk was taken over by another host");
                return;
            }
            Err(e) if started.elapsed() < Duration::from_secs(60) => {
                tracing::warn!(error = %e, "cannot commit a chunk yet");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(e) => {
                tracing::error!(error = %e, chunk = commit.chunk, "giving up committing the chunk; it will be taken over");
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cluster_batch_needs_a_plain_file_every_host_can_read() {
        let stdin = cluster_input(&JobsSource::Stdin).expect_err("stdin");
        assert!(stdin.to_string().contains("not stdin"), "{stdin}");
        let dir = tempfile::tempdir().expect("tempdir");
        let gz = dir.path().join("jobs.jsonl.gz");
        std::fs::write(&gz, [0x1f, 0x8b, 8, 0]).expect("write");
        let e = cluster_input(&JobsSource::Path(gz)).expect_err("gzip");
        assert!(e.to_string().contains("gunzip"), "{e}");
        let plain = dir.path().join("jobs.jsonl");
        std::fs::write(&plain, "{\"id\":\"a\",\"prompt\":\"p\"}\n").expect("write");
        assert_eq!(cluster_input(&JobsSource::Path(plain.clone())).ok(), Some(plain));
    }
}
