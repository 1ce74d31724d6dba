//! `--cluster`: three real host processes, one real `redis-server`, the
//! in-process mock enforcing the provider's limit, on loopback.
//!
//! - **The shared limit.** At 60 and 600 RPM (a sliding 60 s window at the
//!   mock, both limits at once, each with its own Redis and mock), three
//!   hosts run with `--rpm LIMIT` and a mock latency that lets them offer
//!   twice the limit (3 hosts x 2 workers / latency = 2 x LIMIT). Reported:
//!   the worst 60 s window of requests the mock received (every 60 s window
//!   that starts at a request), the lowest full window as a share of the
//!   limit, and the share of 429s, next to LiteLLM's router with a shared
//!   Redis (280 in the worst 60 s window against a limit of 60, three
//!   processes: 467%, see `../shared/reference/service-and-scaleout.md`).
//! - **`kill -9` of one host** at a moment drawn from a seed (three seeds),
//!   once it holds a chunk: every id exactly once in the merged results, no
//!   prompt answered twice by the mock, `outcome_unknown` at most the dead
//!   host's concurrency, and how long after the kill another host took its
//!   chunk over (a part file of a later epoch appears) against lease + 1 s.
//! - **`SIGSTOP` past the lease**, then `SIGCONT`: the woken host's commit
//!   is refused (it says so on stderr) and no id has two records.
//! - **CPU per item** at zero latency, concurrency 100: one host without
//!   `--cluster` against three cluster hosts of 34 workers each (their CPU
//!   summed, plus the redis-server's), rounds alternating, medians.

use std::collections::HashMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use batchllm_host::cluster::local::LocalRedis;
use batchllm_mock::MockServer;

use crate::host::{KEY, Setup};
use crate::jobs;
use crate::process::{Usage, measure_child};
use crate::report::{Row, factor, percent};
use crate::scenarios::{Options, mock};

const HOSTS: usize = 3;

/// LiteLLM's figure, measured by the peers' study: three router processes
/// sharing a Redis, a limit of 60 RPM.
const LITELLM: &str = "280 (LiteLLM router + Redis, 3 processes)";

pub(crate) async fn run(setup: &Setup, options: &Options) -> anyhow::Result<Vec<Row>> {
    let mut rows = Vec::new();
    let secs = if options.quick { 75 } else { 150 };
    let (slow, fast) =
        tokio::join!(limit_held(setup, 60, 1.0, secs, "rpm60"), limit_held(setup, 600, 0.5, secs, "rpm600"));
    rows.extend(slow?);
    rows.extend(fast?);
    for seed in [1u64, 2, 3] {
        rows.extend(killed(setup, seed, options.quick).await?);
    }
    rows.extend(stopped(setup).await?);
    rows.extend(cpu(setup, options.quick).await?);
    Ok(rows)
}

/// A fresh folder for one run.
fn fresh(setup: &Setup, name: &str) -> anyhow::Result<PathBuf> {
    let dir = setup.work.join("cluster").join(name);
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("cannot clear {}", dir.display()))?;
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}

async fn start_redis(dir: &Path) -> anyhow::Result<LocalRedis> {
    LocalRedis::start(&dir.join("redis")).await.context("the cluster scenario needs redis-server")
}

/// A host of the cluster (or, with `redis: None`, a single host), writing
/// `dir/results.jsonl` and its stderr to `dir/host-<n>.log`.
fn spawn_host(
    setup: &Setup,
    server: &MockServer,
    jobs: &Path,
    dir: &Path,
    n: usize,
    redis: Option<&str>,
    extra: &[&str],
) -> anyhow::Result<(std::process::Child, Instant)> {
    let log = std::fs::File::create(dir.join(format!("host-{n}.log")))?;
    let mut command = Command::new(&setup.host);
    command
        .arg(jobs)
        .args(["--plugin", "openai", "--progress-interval", "600"])
        .arg("--output")
        .arg(dir.join("results.jsonl"))
        .arg("--cache-dir")
        .arg(setup.cache_dir())
        .args(["--allow-host", &format!("127.0.0.1:{}", server.addr().port())])
        .args(["--plugin-config", &format!("base_url={}", server.base_url())])
        .args(["--api-key-env", "BENCH_KEY"])
        .args(extra)
        .env("BENCH_KEY", KEY)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log);
    if let Some(url) = redis {
        command.args(["--cluster", url]);
    }
    let started = Instant::now();
    let child = command.spawn().with_context(|| format!("cannot start {}", setup.host.display()))?;
    Ok((child, started))
}

/// Records of the results file by id; fails when an id has two.
fn records(dir: &Path) -> anyhow::Result<HashMap<String, serde_json::Value>> {
    let path = dir.join("results.jsonl");
    let file = std::fs::File::open(&path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut by_id = HashMap::new();
    for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
        let record: serde_json::Value =
            serde_json::from_str(&line?).with_context(|| format!("{}:{}: not JSON", path.display(), n + 1))?;
        let id = record["custom_id"].as_str().unwrap_or_default().to_string();
        if by_id.insert(id.clone(), record).is_some() {
            bail!("{}: {id} has two records", path.display());
        }
    }
    Ok(by_id)
}

/// Prompts the mock answered 200 more than once.
fn answered_twice(server: &MockServer) -> usize {
    let mut answered: HashMap<String, usize> = HashMap::new();
    for r in server.requests().into_iter().filter(|r| r.status == 200) {
        *answered.entry(r.prompt.unwrap_or_default()).or_default() += 1;
    }
    answered.values().filter(|n| **n > 1).count()
}

/// Worst (most) and least requests in a 60 s window: the most over every
/// window that starts at a request, the least over the windows that end
/// before the last request (full windows of the run).
fn windows(at_ms: &[u64]) -> (usize, Option<usize>) {
    const W: u64 = 60_000;
    let mut worst = 0;
    let mut least: Option<usize> = None;
    let last = at_ms.last().copied().unwrap_or(0);
    let mut end = 0;
    for (i, &t) in at_ms.iter().enumerate() {
        while end < at_ms.len() && at_ms[end] < t + W {
            end += 1;
        }
        let n = end - i;
        worst = worst.max(n);
        if t + W <= last {
            least = Some(least.map_or(n, |l| l.min(n)));
        }
    }
    (worst, least)
}

async fn limit_held(setup: &Setup, limit: u32, burst: f64, secs: u64, name: &'static str) -> anyhow::Result<Vec<Row>> {
    let dir = fresh(setup, name)?;
    let redis = start_redis(&dir).await?;
    let workers = 2;
    // 3 hosts x 2 workers, each request taking `latency`: 2x the limit.
    let latency_ms = (HOSTS * workers) as u64 * 60_000 / (2 * u64::from(limit));
    let server = mock(|c| {
        c.keep_requests = true;
        c.rpm = Some(limit);
        c.window_ms = 60_000;
        c.latency_ms = latency_ms;
    })
    .await?;
    let items = (u64::from(limit) * secs / 60) as usize;
    let jobs = jobs::write(&setup.work, items)?;
    let (rpm, burst, chunk) = (limit.to_string(), burst.to_string(), (items / 30).max(5).to_string());
    let extra = ["-j", "2", "--rpm", &rpm, "--burst", &burst, "--cluster-chunk", &chunk, "--quiet"];
    let mut runs = Vec::new();
    for n in 0..HOSTS {
        let (child, started) = spawn_host(setup, &server, &jobs, &dir, n, Some(&redis.url()), &extra)?;
        runs.push(tokio::spawn(measure_child(child, started, Some(Duration::from_secs(secs * 3 + 60)))));
    }
    for run in runs {
        let usage = run.await??;
        if usage.exit_code != Some(0) {
            bail!("{name}: a host exited with {:?} (see {})", usage.exit_code, dir.display());
        }
    }
    let requests = server.requests();
    server.shutdown().await;
    drop(redis);
    let by_id = records(&dir)?;
    if by_id.len() != items {
        bail!("{name}: {} of {items} ids have a record", by_id.len());
    }
    let mut at: Vec<u64> = requests.iter().map(|r| r.at_ms).collect();
    at.sort_unstable();
    let refused = requests.iter().filter(|r| r.status == 429).count();
    let (worst, least) = windows(&at);
    let bound = if limit <= 60 { 1.02 } else { 1.01 };
    let least = least.unwrap_or(0);
    // LiteLLM's figure was measured at 60 RPM: it goes next to that row.
    let reference =
        if limit == 60 { format!("{limit} (limit); {LITELLM} at 60: 467%") } else { format!("{limit} (limit)") };
    eprintln!("cluster {name}: {} requests, worst 60 s window {worst}, least {least}, {refused} refused", at.len());
    Ok(vec![
        Row::info(
            "cluster",
            format!("worst 60 s window at the mock, 3 hosts, --rpm {limit} --burst {burst}"),
            worst.to_string(),
        )
        .against(reference, percent(worst as f64, f64::from(limit)))
        .target(format!("<= {:.0}% of the limit", bound * 100.0), worst as f64 <= bound * f64::from(limit)),
        Row::info("cluster", format!("least full 60 s window, hosts offering 2x {limit} RPM"), least.to_string())
            .against(format!("{limit} (limit)"), percent(least as f64, f64::from(limit)))
            .target(">= 95% of the limit", least as f64 >= 0.95 * f64::from(limit)),
        Row::info("cluster", format!("requests answered 429 at {limit} RPM"), format!("{refused} of {}", at.len()))
            .against("", percent(refused as f64, at.len() as f64))
            .target("< 1%", (refused as f64) < 0.01 * at.len() as f64),
    ])
}

/// Waits (bounded) until the host of `pid` owns a chunk (its consumer name
/// carries its process id).
async fn holds_a_chunk(url: &str, pid: u32, limit: Duration) -> anyhow::Result<()> {
    let client = redis::Client::open(url)?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let mark = format!("-{pid}-");
    let since = Instant::now();
    while since.elapsed() < limit {
        let keys: Vec<String> = redis::cmd("KEYS").arg("batchllm:batch:*:owner").query_async(&mut conn).await?;
        for key in keys {
            let owners: HashMap<String, String> = redis::cmd("HGETALL").arg(&key).query_async(&mut conn).await?;
            if owners.values().any(|o| o.contains(&mark)) {
                return Ok(());
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    bail!("host {pid} claimed no chunk within {limit:?}")
}

/// How long until a part file of a later epoch than the first appears.
async fn first_takeover(parts: &Path, since: Instant, limit: Duration) -> Option<Duration> {
    while since.elapsed() < limit {
        let found = std::fs::read_dir(parts)
            .map(|d| d.flatten().any(|e| !e.file_name().to_string_lossy().ends_with(".e1.jsonl")))
            .unwrap_or(false);
        if found {
            return Some(since.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    None
}

fn signal(pid: u32, sig: libc::c_int) -> anyhow::Result<()> {
    let pid = libc::pid_t::try_from(pid)?;
    // SAFETY: our own child, not reaped yet (its waiter runs until it exits).
    if unsafe { libc::kill(pid, sig) } != 0 {
        bail!("kill({pid}, {sig}): {}", std::io::Error::last_os_error());
    }
    Ok(())
}

/// A small deterministic generator (SplitMix64): the kill moments come
/// from the seed alone.
fn splitmix(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

const LEASE_SECS: u64 = 5;

async fn killed(setup: &Setup, seed: u64, quick: bool) -> anyhow::Result<Vec<Row>> {
    let dir = fresh(setup, &format!("kill-{seed}"))?;
    let redis = start_redis(&dir).await?;
    let server = mock(|c| {
        c.keep_requests = true;
        c.latency_ms = 100;
    })
    .await?;
    let items = if quick { 1_500 } else { 3_000 };
    let jobs = jobs::write(&setup.work, items)?;
    let workers = 10;
    let lease = LEASE_SECS.to_string();
    let extra = ["-j", "10", "--cluster-chunk", "50", "--cluster-lease", &lease, "--quiet"];
    let mut runs = Vec::new();
    let mut pids = Vec::new();
    for n in 0..HOSTS {
        let (child, started) = spawn_host(setup, &server, &jobs, &dir, n, Some(&redis.url()), &extra)?;
        pids.push(child.id());
        runs.push(tokio::spawn(measure_child(child, started, Some(Duration::from_secs(300)))));
    }
    let victim = pids[0];
    holds_a_chunk(&redis.url(), victim, Duration::from_secs(60)).await?;
    // 0 to 3 s into its work (a run takes about 4 s per host at this pace).
    let delay = Duration::from_millis(splitmix(seed) % 3_000);
    tokio::time::sleep(delay).await;
    signal(victim, libc::SIGKILL)?;
    let killed_at = Instant::now();
    let takeover = first_takeover(&dir.join("results.jsonl.parts"), killed_at, Duration::from_secs(60)).await;
    for (n, run) in runs.into_iter().enumerate() {
        let usage = run.await??;
        if n > 0 && !matches!(usage.exit_code, Some(0 | 1)) {
            bail!("kill seed {seed}: a surviving host exited with {:?} (see {})", usage.exit_code, dir.display());
        }
    }
    let twice = answered_twice(&server);
    server.shutdown().await;
    drop(redis);
    let by_id = records(&dir)?;
    let unknown = by_id.values().filter(|r| r["error"]["code"] == "outcome_unknown").count();
    let succeeded = by_id.values().filter(|r| r["error"].is_null()).count();
    let complete = by_id.len() == items && succeeded + unknown == items;
    eprintln!(
        "cluster kill seed {seed}: killed {delay:?} after its first claim; {} records, {unknown} outcome_unknown, \
         {twice} answered twice, takeover after {takeover:?}",
        by_id.len()
    );
    let bound = Duration::from_secs(LEASE_SECS + 1);
    let mut rows = vec![
        Row::info(
            "cluster",
            format!("kill -9 of one host (seed {seed}): ids with exactly one record; prompts answered twice"),
            format!("{} of {items}; {twice}", by_id.len()),
        )
        .target("every id once, none answered twice", complete && twice == 0),
        Row::info("cluster", format!("kill -9 (seed {seed}): outcome_unknown"), unknown.to_string())
            .against(format!("{workers} (its concurrency)"), "")
            .target("<= the dead host's in flight", unknown <= workers),
    ];
    rows.push(match takeover {
        Some(t) => {
            Row::info("cluster", format!("kill -9 (seed {seed}): takeover after the kill"), crate::report::duration(t))
                .against(format!("{LEASE_SECS} s (lease)"), "")
                .target("<= lease + 1 s", t <= bound)
        }
        None => Row::info("cluster", format!("kill -9 (seed {seed}): takeover"), "none seen")
            .target("<= lease + 1 s", false),
    });
    Ok(rows)
}

async fn stopped(setup: &Setup) -> anyhow::Result<Vec<Row>> {
    let dir = fresh(setup, "sigstop")?;
    let redis = start_redis(&dir).await?;
    let server = mock(|c| {
        c.keep_requests = true;
        c.latency_ms = 300;
    })
    .await?;
    let items = 400;
    let jobs = jobs::write(&setup.work, items)?;
    let lease = 3u64;
    let extra = ["-j", "4", "--cluster-chunk", "20", "--cluster-lease", "3"];
    let (sleeper, started) = spawn_host(setup, &server, &jobs, &dir, 0, Some(&redis.url()), &extra)?;
    let sleeper_pid = sleeper.id();
    let sleeper_run = tokio::spawn(measure_child(sleeper, started, Some(Duration::from_secs(300))));
    holds_a_chunk(&redis.url(), sleeper_pid, Duration::from_secs(60)).await?;
    tokio::time::sleep(Duration::from_millis(700)).await;
    signal(sleeper_pid, libc::SIGSTOP)?;
    let paused = Instant::now();
    let (other, started) = spawn_host(setup, &server, &jobs, &dir, 1, Some(&redis.url()), &extra)?;
    let other_run = tokio::spawn(measure_child(other, started, Some(Duration::from_secs(300))));
    let takeover = first_takeover(&dir.join("results.jsonl.parts"), paused, Duration::from_secs(60)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stopped_for = paused.elapsed();
    signal(sleeper_pid, libc::SIGCONT)?;
    let (a, b) = (sleeper_run.await??, other_run.await??);
    let twice = answered_twice(&server);
    server.shutdown().await;
    drop(redis);
    let log = std::fs::read_to_string(dir.join("host-0.log")).unwrap_or_default();
    let refused = log.contains("commit refused") || log.contains("no longer holds the chunk");
    let by_id = records(&dir)?;
    eprintln!(
        "cluster SIGSTOP: stopped {stopped_for:?} (lease {lease} s), takeover after {takeover:?}; exits {:?} {:?}; \
         refused: {refused}; {} records; {twice} answered twice",
        a.exit_code,
        b.exit_code,
        by_id.len()
    );
    Ok(vec![
        Row::info(
            "cluster",
            format!(
                "SIGSTOP for {:.1} s (lease {lease} s), then SIGCONT: the woken host fenced",
                stopped_for.as_secs_f64()
            ),
            if refused { "commit refused" } else { "not refused" },
        )
        .target("commit refused", refused && takeover.is_some()),
        Row::info(
            "cluster",
            "SIGSTOP/SIGCONT: ids with exactly one record; prompts answered twice",
            format!("{} of {items}; {twice}", by_id.len()),
        )
        .target("no duplicate lines", by_id.len() == items && twice == 0),
    ])
}

/// CPU time (user + sys) of a running process, from `/proc/<pid>/stat`.
fn proc_cpu(pid: u32) -> Duration {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return Duration::ZERO };
    // The fields after the command (which may hold spaces) start after ')'.
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else { return Duration::ZERO };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
    // utime and stime are fields 14 and 15 of the line: 11 and 12 after ')'.
    // SAFETY: sysconf has no preconditions.
    let hz = u64::try_from(unsafe { libc::sysconf(libc::_SC_CLK_TCK) }).unwrap_or(100).max(1);
    Duration::from_micros((ticks(11) + ticks(12)) * 1_000_000 / hz)
}

pub(crate) async fn cpu(setup: &Setup, quick: bool) -> anyhow::Result<Vec<Row>> {
    let items = if quick { 3_000 } else { 15_000 };
    let jobs = jobs::write(&setup.work, items)?;
    let server = mock(|_| {}).await?;
    let (mut single, mut cluster, mut redis_share) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..3 {
        let dir = fresh(setup, &format!("cpu-single-{round}"))?;
        let (child, started) = spawn_host(setup, &server, &jobs, &dir, 0, None, &["-j", "100", "--quiet"])?;
        let usage = measure_child(child, started, Some(Duration::from_secs(600))).await?;
        check_all(&dir, items, &usage, "single host")?;
        single.push(usage.cpu.as_secs_f64() * 1e6 / items as f64);

        let dir = fresh(setup, &format!("cpu-cluster-{round}"))?;
        let redis = start_redis(&dir).await?;
        let redis_pid = redis.pid().context("redis runs")?;
        let redis_before = proc_cpu(redis_pid);
        let mut runs = Vec::new();
        let extra = ["-j", "34", "--cluster-chunk", "500", "--quiet"];
        for n in 0..HOSTS {
            let (child, started) = spawn_host(setup, &server, &jobs, &dir, n, Some(&redis.url()), &extra)?;
            runs.push(tokio::spawn(measure_child(child, started, Some(Duration::from_secs(600)))));
        }
        let mut hosts_cpu = Duration::ZERO;
        for run in runs {
            let usage = run.await??;
            if usage.exit_code != Some(0) {
                bail!("cluster cpu: a host exited with {:?} (see {})", usage.exit_code, dir.display());
            }
            hosts_cpu += usage.cpu;
        }
        let redis_cpu = proc_cpu(redis_pid).saturating_sub(redis_before);
        drop(redis);
        let by_id = records(&dir)?;
        if by_id.len() != items || by_id.values().any(|r| !r["error"].is_null()) {
            bail!("cluster cpu: {} of {items} records, not all succeeded", by_id.len());
        }
        cluster.push((hosts_cpu + redis_cpu).as_secs_f64() * 1e6 / items as f64);
        redis_share.push(redis_cpu.as_secs_f64() * 1e6 / items as f64);
        let per_item = |d: Duration| d.as_secs_f64() * 1e6 / items as f64;
        eprintln!(
            "cluster cpu, round {round}: single {:.0} µs/item; cluster hosts {:.0} + redis {:.0} µs/item",
            single.last().copied().unwrap_or_default(),
            per_item(hosts_cpu),
            per_item(redis_cpu)
        );
    }
    server.shutdown().await;
    let (single, cluster, redis) = (median(single), median(cluster), median(redis_share));
    eprintln!("cluster cpu: single {single:.0} µs/item, cluster {cluster:.0} µs/item (redis {redis:.0})");
    Ok(vec![
        Row::info(
            "cluster",
            "CPU per item, concurrency 100, zero latency: 3 cluster hosts x 34 + redis-server",
            format!("{cluster:.0} µs (redis {redis:.0})"),
        )
        .against(format!("{single:.0} µs (1 host, no --cluster)"), factor(cluster, single))
        .target("<= 1.15x single host", cluster <= 1.15 * single),
    ])
}

fn check_all(dir: &Path, items: usize, usage: &Usage, what: &str) -> anyhow::Result<()> {
    if usage.exit_code != Some(0) {
        bail!("cluster cpu: the {what} exited with {:?} (see {})", usage.exit_code, dir.display());
    }
    let by_id = records(dir)?;
    if by_id.len() != items || by_id.values().any(|r| !r["error"].is_null()) {
        bail!("cluster cpu: the {what} wrote {} of {items} records, not all succeeded", by_id.len());
    }
    Ok(())
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_count_the_worst_and_the_least_full_window() {
        // One a second for 150 s, plus a burst of 5 at 10 s.
        let mut at: Vec<u64> = (0..150).map(|s| s * 1000).collect();
        at.extend([10_001, 10_002, 10_003, 10_004, 10_005]);
        at.sort_unstable();
        let (worst, least) = windows(&at);
        assert_eq!(worst, 65);
        assert_eq!(least, Some(60));
        assert_eq!(windows(&[]), (0, None));
    }

    #[test]
    fn the_kill_moments_come_from_the_seed() {
        assert_eq!(splitmix(1), splitmix(1));
        assert_ne!(splitmix(1) % 3_000, splitmix(2) % 3_000);
    }
}
