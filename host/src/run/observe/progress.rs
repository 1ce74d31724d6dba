//! Live progress on stderr: a bar on a terminal, plain periodic lines
//! otherwise (logs, CI), nothing with `--quiet`.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::RunReport;

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressMode {
    /// A live bar (stderr is a terminal).
    Bar,
    /// A plain line every `interval`.
    Lines { interval: Duration },
    /// Nothing.
    Off,
}

/// The bar currently drawn, so log lines can be printed above it instead
/// of through it (see [`SuspendingStderr`]).
static ACTIVE_BAR: OnceLock<ProgressBar> = OnceLock::new();

/// How often the bar's text is rebuilt at most.
const BAR_REFRESH: Duration = Duration::from_millis(100);

/// Live facts besides the report's counts.
#[derive(Debug, Clone, Default)]
pub struct Live {
    /// The limit learned for the busiest scope without rate-limit headers.
    pub learned: Option<crate::run::gate::Estimate>,
    /// Time left in the longest active cooldown.
    pub cooldown: Duration,
    /// Rate limits seen so far.
    pub rate_limits: u64,
    /// Items waiting before their next attempt.
    pub retrying: u64,
    /// The configured requests-per-minute and tokens-per-minute limits.
    pub rpm: Option<f64>,
    pub tpm: Option<f64>,
}

/// Shows a run's progress.
#[derive(Debug)]
pub struct Progress {
    mode: ProgressMode,
    bar: Option<ProgressBar>,
    total: u64,
    started: Instant,
    last_refresh: Instant,
}

impl Progress {
    /// `total` items will get a record in this run.
    pub fn new(mode: ProgressMode, total: u64) -> Self {
        let now = Instant::now();
        let bar = (mode == ProgressMode::Bar).then(|| {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr_with_hz(4));
            let style = ProgressStyle::with_template("{elapsed:>4} [{bar:30.cyan/blue}] {pos}/{len} {msg} · ETA {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> ");
            bar.set_style(style);
            let _ = ACTIVE_BAR.set(bar.clone());
            bar
        });
        Progress { mode, bar, total, started: now, last_refresh: now }
    }

    /// Whether the display should be refreshed now. Asked on every record
    /// and on a timer, so it is cheap and gathering [`Live`] facts can wait
    /// until it says yes: the bar redraws at most ten times a second, plain
    /// lines every `interval`, nothing when off.
    pub fn due(&mut self) -> bool {
        let every = match self.mode {
            ProgressMode::Off => return false,
            ProgressMode::Bar => BAR_REFRESH,
            ProgressMode::Lines { interval } => interval,
        };
        if self.last_refresh.elapsed() < every {
            return false;
        }
        self.last_refresh = Instant::now();
        true
    }

    /// Refreshes the display from the report.
    pub fn update(&mut self, report: &RunReport, live: Live) {
        match self.mode {
            ProgressMode::Off => {}
            ProgressMode::Bar => {
                if let Some(bar) = &self.bar {
                    bar.set_position(report.items);
                    bar.set_message(self.message(report, live));
                }
            }
            ProgressMode::Lines { .. } => {
                eprintln!("progress: {}/{} {}", report.items, self.total, self.message(report, live));
            }
        }
    }

    fn message(&self, report: &RunReport, live: Live) -> String {
        let secs = self.started.elapsed().as_secs_f64().max(1e-3);
        let mut msg = format!("ok {} · failed {}", report.succeeded, report.failed);
        if live.retrying > 0 {
            msg.push_str(&format!(" · retrying {}", live.retrying));
        }
        msg.push_str(&format!(" · {:.1} items/s", report.items as f64 / secs));
        if let Some(rpm) = live.rpm {
            msg.push_str(&format!(" ({:.0}/min of {rpm:.0})", report.attempts as f64 * 60.0 / secs));
        }
        msg.push_str(&format!(" · {:.0} tok/s", report.usage.total() as f64 / secs));
        if let Some(tpm) = live.tpm {
            msg.push_str(&format!(" ({:.0}/min of {tpm:.0})", report.usage.total() as f64 * 60.0 / secs));
        }
        if report.cost_usd > 0.0 {
            msg.push_str(&format!(" · ${:.4}", report.cost_usd));
        }
        if live.rate_limits > 0 {
            msg.push_str(&format!(" · rate limited {}", live.rate_limits));
        }
        if !live.cooldown.is_zero() {
            msg.push_str(&format!(" · cooling down {:.1}s", live.cooldown.as_secs_f64()));
        }
        if let Some(e) = live.learned {
            msg.push_str(&format!(" · {}", describe(&e)));
        }
        msg
    }

    /// Removes the bar before the summary is printed.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// A learned limit in words: `limit ≈ 600 req + 6000 tok / 10s`, or
/// `limit ≈ 600 req, window unknown` while it is being found.
pub fn describe(e: &crate::run::gate::Estimate) -> String {
    let mut parts = Vec::new();
    if let Some(r) = e.requests {
        parts.push(format!("{r:.0} req"));
    }
    if let Some(t) = e.tokens {
        parts.push(format!("{t:.0} tok"));
    }
    match e.window {
        Some(w) => format!("limit ≈ {} / {}s", parts.join(" + "), w.as_secs()),
        None => format!("limit ≈ {}, finding its window", parts.join(" + ")),
    }
}

/// stderr for log lines that does not tear the progress bar: while a bar is
/// drawn, each write happens with the bar suspended.
#[derive(Debug, Clone, Copy, Default)]
pub struct SuspendingStderr;

impl std::io::Write for SuspendingStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match ACTIVE_BAR.get().filter(|b| !b.is_finished()) {
            Some(bar) => bar.suspend(|| std::io::stderr().write_all(buf)).map(|()| buf.len()),
            None => std::io::stderr().write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_names_the_counts_and_the_cooldown() {
        let p = Progress::new(ProgressMode::Off, 10);
        let mut report = RunReport::default();
        (report.items, report.succeeded, report.failed) = (4, 3, 1);
        let learned =
            crate::run::gate::Estimate { requests: Some(600.0), tokens: None, window: Some(Duration::from_secs(10)) };
        let live = Live {
            learned: Some(learned),
            cooldown: Duration::from_millis(2500),
            rate_limits: 2,
            retrying: 1,
            rpm: Some(600.0),
            tpm: None,
        };
        let msg = p.message(&report, live);
        assert!(msg.contains("limit ≈ 600 req / 10s"), "{msg}");
        assert!(msg.starts_with("ok 3 · failed 1 · retrying 1 ·"), "{msg}");
        assert!(msg.contains("cooling down 2.5s"), "{msg}");
        assert!(msg.contains("rate limited 2"), "{msg}");
        assert!(msg.contains("retrying 1") && msg.contains("/min of 600)"), "{msg}");
    }
}
