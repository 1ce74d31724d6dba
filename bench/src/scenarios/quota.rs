//! Rate-limit efficiency: the provider admits R requests per window and
//! answers 429 with `retry-after` beyond it; the host runs without `--rpm`,
//! learning the limit from the answers. The fastest schedule the server
//! allows sends R at once, then the rest one window later.

use crate::host::{self, Setup};
use crate::jobs;
use crate::report::{Row, percent};
use crate::scenarios::{Options, mock};

pub async fn run(setup: &Setup, options: &Options) -> anyhow::Result<Vec<Row>> {
    let (limit, window_ms, items, concurrency) =
        if options.quick { (60u32, 2_000u64, 100usize, 20usize) } else { (600, 10_000, 1_000, 50) };
    let server = mock(|c| {
        c.rpm = Some(limit);
        c.window_ms = window_ms;
    })
    .await?;
    let jobs = jobs::write(&setup.work, items)?;
    let usage = host::run(setup, &server, &jobs, items, concurrency, &[]).await?;
    let counts = server.status_counts();
    server.shutdown().await;
    let requests: u64 = counts.values().sum();
    let rejected = counts.get(&429).copied().unwrap_or(0);
    let allowed_per_s = f64::from(limit) * 1_000.0 / window_ms as f64;
    // The ideal schedule finishes one window after the start (items <= 2R).
    let ideal_s = window_ms as f64 / 1_000.0;
    let achieved_of_r = items as f64 / usage.wall.as_secs_f64() / allowed_per_s;
    let share_429 = rejected as f64 / requests.max(1) as f64;
    eprintln!(
        "quota: {items} items, limit {limit}/{window_ms} ms: {:.2} s (ideal {ideal_s:.1} s), {requests} requests, {rejected} answered 429",
        usage.wall.as_secs_f64()
    );
    Ok(vec![
        Row::info(
            "rate limit",
            format!(
                "{items} items, limit {limit} per {} s with retry-after, concurrency {concurrency}",
                window_ms / 1_000
            ),
            format!("{:.2} s", usage.wall.as_secs_f64()),
        )
        .against(format!("{ideal_s:.1} s (ideal schedule)"), percent(ideal_s, usage.wall.as_secs_f64())),
        Row::info("rate limit", "achieved throughput / allowed R", format!("{:.0}%", 100.0 * achieved_of_r))
            .target(">= 95% of R", achieved_of_r >= 0.95),
        Row::info("rate limit", "requests answered 429", format!("{rejected} of {requests}"))
            .against("", percent(rejected as f64, requests.max(1) as f64))
            .target("< 2%", share_429 < 0.02),
    ])
}
