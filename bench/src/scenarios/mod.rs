//! The scenarios, one module each; every one returns its rows of the table.

pub(crate) mod cluster;
pub(crate) mod cpu;
pub(crate) mod memory;
pub(crate) mod plugins;
pub(crate) mod quota;
pub(crate) mod throughput;

use batchllm_mock::{MockConfig, MockServer, RateProfile};

use crate::host::KEY;

/// Knobs shared by the scenarios.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    /// Smaller runs: a smoke test of the harness, not figures to quote.
    pub quick: bool,
    /// Lines of the large input of the memory scenario.
    pub big_input: usize,
    /// Rows of the provider matrix to run (empty: all).
    pub rows: Vec<RateProfile>,
    /// Run the rows of the provider matrix one at a time.
    pub serial: bool,
}

/// A mock provider that requires the bench key, counts requests without
/// keeping them (its bookkeeping must not steal CPU from the host), and
/// takes `tweak`.
pub(crate) async fn mock(tweak: impl FnOnce(&mut MockConfig)) -> anyhow::Result<MockServer> {
    let mut config = MockConfig { api_key: Some(KEY.into()), keep_requests: false, ..MockConfig::default() };
    tweak(&mut config);
    MockServer::start(config).await
}

/// Items per second.
pub(crate) fn rate(items: usize, wall: std::time::Duration) -> f64 {
    items as f64 / wall.as_secs_f64().max(1e-9)
}

/// A count with thousands separators, e.g. `9,312`.
pub(crate) fn thousands(n: f64) -> String {
    let digits = format!("{:.0}", n.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn thousands_separators() {
        assert_eq!(super::thousands(9312.4), "9,312");
        assert_eq!(super::thousands(100.0), "100");
        assert_eq!(super::thousands(1_000_000.0), "1,000,000");
    }
}
