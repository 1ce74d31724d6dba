//! CPU per item against a plain baseline: at zero provider latency both the
//! host and a minimal Rust client (`crate::baseline`, the same HTTP stack,
//! no WebAssembly, no policy) process the same jobs at the same
//! concurrency; their user + sys time per item is compared. Rounds
//! alternate host and baseline, and the median of each is reported, so
//! drift on a shared machine hits both alike.

use crate::host::{self, Setup};
use crate::jobs;
use crate::report::{Row, factor};
use crate::scenarios::{Options, mock, rate, thousands};

const CONCURRENCY: usize = 100;
const ROUNDS: usize = 3;

pub(crate) async fn run(setup: &Setup, options: &Options) -> anyhow::Result<Vec<Row>> {
    let items = if options.quick { 2_000 } else { 20_000 };
    let jobs = jobs::write(&setup.work, items)?;
    let server = mock(|_| {}).await?;
    let (mut host_runs, mut base_runs) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        server.reset();
        host_runs.push(host::run(setup, &server, &jobs, items, CONCURRENCY, &[]).await?);
        server.reset();
        base_runs.push(host::run_baseline(setup, &server, &jobs, items, CONCURRENCY).await?);
    }
    server.shutdown().await;
    let per_item = |u: &crate::process::Usage| u.cpu.as_secs_f64() * 1e6 / items as f64;
    let host_cpu = median(host_runs.iter().map(per_item).collect());
    let base_cpu = median(base_runs.iter().map(per_item).collect());
    let host_rate = median(host_runs.iter().map(|u| rate(items, u.wall)).collect());
    let base_rate = median(base_runs.iter().map(|u| rate(items, u.wall)).collect());
    eprintln!("cpu: host {host_cpu:.0} µs/item ({host_rate:.0}/s), baseline {base_cpu:.0} µs/item ({base_rate:.0}/s)");
    let metric = format!("CPU per item (user+sys), zero latency, concurrency {CONCURRENCY}");
    Ok(vec![
        Row::info("cpu", metric, format!("{host_cpu:.0} µs"))
            .against(format!("{base_cpu:.0} µs (baseline)"), factor(host_cpu, base_cpu))
            .target("<= 2x baseline", host_cpu <= 2.0 * base_cpu),
        Row::info("cpu", "items/s at zero latency (the cores shared with the mock)", thousands(host_rate))
            .against(format!("{} (baseline)", thousands(base_rate)), factor(host_rate, base_rate)),
    ])
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}
