//! Throughput against the ideal: the provider answers every request after
//! 100 ms and imposes no limit, so the fastest possible run completes
//! `concurrency / 0.1 s` items per second. Also the peak RSS at each
//! concurrency.

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

pub(crate) async fn run(setup: &Setup, options: &Options) -> anyhow::Result<Vec<Row>> {
    let mut rows = Vec::new();
    let server = mock(|c| c.latency_ms = LATENCY_MS).await?;
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
            row = row.target(">= 90% of ideal", achieved >= 0.9 * ideal);
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
    Ok(rows)
}
