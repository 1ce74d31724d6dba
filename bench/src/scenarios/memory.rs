//! Memory against input size: the same run on a small and a large input
//! (default 1,000,000 lines) at zero latency; the host reads its input
//! lazily, so peak RSS must stay flat. What does grow is the validation
//! pass's set of id hashes (8 bytes per line), reported as such.

use crate::host::{self, Setup};
use crate::jobs;
use crate::report::{Row, factor};
use crate::scenarios::{Options, mock, thousands};

const CONCURRENCY: usize = 100;
const SMALL: usize = 10_000;

pub(crate) async fn run(setup: &Setup, options: &Options) -> anyhow::Result<Vec<Row>> {
    let big = if options.quick { 50_000 } else { options.big_input };
    let server = mock(|_| {}).await?;
    let mut peaks = Vec::new();
    for items in [SMALL, big] {
        let jobs = jobs::write(&setup.work, items)?;
        server.reset();
        let usage = host::run(setup, &server, &jobs, items, CONCURRENCY, &[]).await?;
        eprintln!("memory: {items} lines: {:.0} MiB peak in {:.1} s", usage.peak_rss_mib(), usage.wall.as_secs_f64());
        peaks.push(usage.peak_rss_mib());
    }
    server.shutdown().await;
    let (small_mib, big_mib) = (peaks[0], peaks[1]);
    let growth_per_million = (big_mib - small_mib) * 1e6 / (big - SMALL) as f64;
    Ok(vec![
        Row::info(
            "memory",
            format!("peak RSS, {} lines, concurrency {CONCURRENCY}", thousands(big as f64)),
            format!("{big_mib:.0} MiB"),
        )
        .against(format!("{small_mib:.0} MiB ({} lines)", thousands(SMALL as f64)), factor(big_mib, small_mib))
        .target("flat: < 32 MiB more per million lines", growth_per_million < 32.0),
    ])
}
