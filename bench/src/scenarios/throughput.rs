//! Throughput against the ideal: the provider answers every request after
//! 100 ms and imposes no limit, so the fastest possible run completes
//! `concurrency / 0.1 s` items per second. Also the peak RSS at each
//! concurrency, a short run (30,000 items at concurrency 1,000, where the
//! first and last waves and the run's fixed costs weigh five times more),
//! the host against the plain client at concurrency 5,000, and the memory
//! each item in flight costs (the peak RSS at 5,000 less the one at 100).

use crate::host::{self, Setup};
use crate::jobs;
use crate::report::{Row, percent};
use crate::scenarios::{Options, mock, rate, thousands};

const LATENCY_MS: u64 = 100;
/// Each run lasts about this long at the ideal rate: long enough that the
/// fixed costs of a run (validating the whole file up front, loading the
/// plugin, the last wave's tail: about 0.25 s at concurrency 1,000) weigh
/// as they would in a batch of a few hundred thousand items, not in a
/// toy one.
const IDEAL_SECONDS: usize = 15;
/// The short run's items (issue: batches of tens of thousands are common).
const SHORT_RUN_ITEMS: usize = 30_000;

pub(crate) async fn run(setup: &Setup, options: &Options) -> anyhow::Result<Vec<Row>> {
    let mut rows = Vec::new();
    let server = mock(|c| c.latency_ms = LATENCY_MS).await?;
    // Peak RSS (MiB) of the host and of the plain client per concurrency.
    let mut peaks: Vec<(usize, f64, f64)> = Vec::new();
    for concurrency in [100usize, 1_000, 5_000] {
        let ideal = concurrency as f64 * 1_000.0 / LATENCY_MS as f64;
        let seconds = if options.quick { 1 } else { IDEAL_SECONDS };
        let items = ideal as usize * seconds;
        let jobs = jobs::write(&setup.work, items)?;
        server.reset();
        let usage = host::run(setup, &server, &jobs, items, concurrency, &[]).await?;
        let mock_cpu = usage.own_cpu;
        let achieved = rate(items, usage.wall);
        let mut row = Row::info(
            "throughput",
            format!("items/s, concurrency {concurrency}, {LATENCY_MS} ms latency"),
            thousands(achieved),
        )
        .against(format!("{} (ideal)", thousands(ideal)), percent(achieved, ideal));
        if concurrency == 1_000 {
            row = row.target(">= 92% of ideal", achieved >= 0.92 * ideal);
        }
        rows.push(row);
        // The plain client at the same settings: what this machine allows a
        // client with no sandbox and no policy.
        server.reset();
        let plain = host::run_baseline(setup, &server, &jobs, items, concurrency).await?;
        let plain_rate = rate(items, plain.wall);
        rows.push(
            Row::info("throughput", format!("baseline client, concurrency {concurrency}"), thousands(plain_rate))
                .against(format!("{} (ideal)", thousands(ideal)), percent(plain_rate, ideal)),
        );
        peaks.push((concurrency, usage.peak_rss_mib(), plain.peak_rss_mib()));
        if concurrency == 5_000 {
            rows.push(
                Row::info("throughput", "items/s at concurrency 5,000: host vs baseline client", thousands(achieved))
                    .against(format!("{} (baseline)", thousands(plain_rate)), percent(achieved, plain_rate))
                    .target(">= 85% of baseline", achieved >= 0.85 * plain_rate),
            );
        }
        if concurrency == 1_000 {
            // A short run: its first and last waves and the fixed costs of
            // a run weigh five times what they do in the 15 s run.
            let items = if options.quick { SHORT_RUN_ITEMS / 10 } else { SHORT_RUN_ITEMS };
            let jobs = jobs::write(&setup.work, items)?;
            server.reset();
            let short = host::run(setup, &server, &jobs, items, concurrency, &[]).await?;
            let short_rate = rate(items, short.wall);
            rows.push(
                Row::info(
                    "throughput",
                    format!("items/s, short run: {} items, concurrency 1,000", thousands(items as f64)),
                    thousands(short_rate),
                )
                .against(format!("{} (ideal)", thousands(ideal)), percent(short_rate, ideal))
                .target(">= 90% of ideal", short_rate >= 0.9 * ideal),
            );
            eprintln!("throughput: short run: {items} items in {:.2} s", short.wall.as_secs_f64());
        }
        eprintln!(
            "throughput: baseline at concurrency {concurrency}: {plain_rate:.0}/s ({})",
            percent(plain_rate, ideal)
        );
        let mut memory = Row::info(
            "memory",
            format!("peak RSS, concurrency {concurrency}"),
            format!("{:.0} MiB", usage.peak_rss_mib()),
        );
        if concurrency == 1_000 {
            memory = memory.target("<= 300 MiB", usage.peak_rss_mib() <= 300.0);
        }
        rows.push(memory);
        let host_us = usage.cpu.as_secs_f64() * 1e6 / items as f64;
        let mock_us = mock_cpu.as_secs_f64() * 1e6 / items as f64;
        // Both processes share the machine's cores: their CPU per item
        // bounds the rate the machine can sustain at all.
        let cores = std::thread::available_parallelism().map_or(1, usize::from) as f64;
        let bound = cores * 1e6 / (host_us + mock_us);
        rows.push(
            Row::info(
                "throughput",
                format!("CPU per item at concurrency {concurrency}: host + mock"),
                format!("{host_us:.0} + {mock_us:.0} µs"),
            )
            .against(format!("{} items/s: {cores} cores / that", thousands(bound)), percent(achieved, bound)),
        );
        eprintln!(
            "throughput: concurrency {concurrency}: {items} items in {:.2} s = {achieved:.0}/s ({}), {:.0} MiB peak, CPU/item: host {host_us:.0} µs, mock {mock_us:.0} µs",
            usage.wall.as_secs_f64(),
            percent(achieved, ideal),
            usage.peak_rss_mib(),
        );
    }
    server.shutdown().await;
    // What one more item in flight costs: the growth of the peak RSS from
    // concurrency 100 to 5,000, per item (the instance and stack each
    // worker keeps, its buffers; the plain client's buffers alongside).
    if let (Some(low), Some(high)) = (peaks.first(), peaks.last()) {
        let extra = (high.0 - low.0) as f64;
        let per_item = |a: f64, b: f64| (b - a) * 1024.0 / extra;
        rows.push(
            Row::info(
                "memory",
                format!("per item in flight (peak RSS at {} less at {}, per item)", high.0, low.0),
                format!("{:.0} KiB", per_item(low.1, high.1)),
            )
            .against(format!("{:.0} KiB (baseline)", per_item(low.2, high.2)), String::new()),
        );
    }
    Ok(rows)
}
