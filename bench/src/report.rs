//! The benchmark's one table: each row a measured figure, what it is
//! compared with in the same run, the ratio, the target and whether it was
//! met.

use serde::Serialize;

/// Whether a row has a target, and if so whether it was met.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Verdict {
    Met,
    Missed,
    /// A figure reported for information, without a target.
    Info,
}

impl Verdict {
    /// `Met` when `ok`, else `Missed`.
    pub(crate) fn of(ok: bool) -> Self {
        if ok { Verdict::Met } else { Verdict::Missed }
    }

    fn mark(self) -> &'static str {
        match self {
            Verdict::Met => "met",
            Verdict::Missed => "**MISSED**",
            Verdict::Info => "",
        }
    }
}

/// One row of the table.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Row {
    pub section: &'static str,
    pub metric: String,
    pub measured: String,
    /// What the figure is compared with (the ideal or the baseline), if anything.
    pub reference: String,
    /// `measured / reference` as the table shows it (e.g. "93%" or "1.4x").
    pub ratio: String,
    pub target: String,
    pub verdict: Verdict,
}

impl Row {
    /// A row with a figure and nothing to compare it with.
    pub(crate) fn info(section: &'static str, metric: impl Into<String>, measured: impl Into<String>) -> Self {
        Row {
            section,
            metric: metric.into(),
            measured: measured.into(),
            reference: String::new(),
            ratio: String::new(),
            target: String::new(),
            verdict: Verdict::Info,
        }
    }

    /// Sets what the figure is compared with and the ratio.
    pub(crate) fn against(mut self, reference: impl Into<String>, ratio: impl Into<String>) -> Self {
        self.reference = reference.into();
        self.ratio = ratio.into();
        self
    }

    /// Sets the target and whether it was met.
    pub(crate) fn target(mut self, target: impl Into<String>, met: bool) -> Self {
        self.target = target.into();
        self.verdict = Verdict::of(met);
        self
    }
}

/// Renders rows as a Markdown table (what BENCHMARKS.md shows).
pub(crate) fn markdown(rows: &[Row]) -> String {
    let mut out = String::from("| Section | Metric | Measured | Compared with | Ratio | Target | |\n");
    out.push_str("|---|---|---:|---:|---:|---|---|\n");
    for r in rows {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} |\n",
            r.section,
            r.metric,
            r.measured,
            r.reference,
            r.ratio,
            r.target,
            r.verdict.mark()
        ));
    }
    out
}

/// `part / whole` as a whole percentage.
pub(crate) fn percent(part: f64, whole: f64) -> String {
    if whole > 0.0 { format!("{:.0}%", 100.0 * part / whole) } else { "n/a".into() }
}

/// `a / b` as a factor.
pub(crate) fn factor(a: f64, b: f64) -> String {
    if b > 0.0 { format!("{:.2}x", a / b) } else { "n/a".into() }
}

/// A duration in the most readable unit.
pub(crate) fn duration(d: std::time::Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us < 1_000.0 {
        format!("{us:.1} µs")
    } else if us < 1_000_000.0 {
        format!("{:.1} ms", us / 1e3)
    } else {
        format!("{:.2} s", us / 1e6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn renders_targets_and_info_rows() {
        let rows = vec![
            Row::info("throughput", "concurrency 1000", "9,300/s")
                .against("10,000/s", percent(9300.0, 10000.0))
                .target(">= 90%", true),
            Row::info("memory", "peak RSS", "120 MiB"),
            Row::info("cpu", "per item", "300 µs").against("100 µs", factor(300.0, 100.0)).target("<= 2x", false),
        ];
        let table = markdown(&rows);
        assert!(
            table.contains("| throughput | concurrency 1000 | 9,300/s | 10,000/s | 93% | >= 90% | met |"),
            "{table}"
        );
        assert!(table.contains("| memory | peak RSS | 120 MiB |  |  |  |  |"), "{table}");
        assert!(table.contains("| 3.00x | <= 2x | **MISSED** |"), "{table}");
    }

    #[test]
    fn durations_pick_a_unit() {
        assert_eq!(duration(Duration::from_nanos(2_500)), "2.5 µs");
        assert_eq!(duration(Duration::from_micros(45_200)), "45.2 ms");
        assert_eq!(duration(Duration::from_millis(6_100)), "6.10 s");
    }
}
