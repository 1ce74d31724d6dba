//! Properties of the limits learned from headers, whatever the server
//! sends (the `wire_headers` fuzz target's checks on generated headers).

use std::time::{Duration, SystemTime};

use proptest::prelude::*;
use tokio::time::Instant;

use super::*;
use crate::run::policy::MAX_WAIT;

fn exchange(headers: Vec<(&str, String)>) -> Exchange {
    Exchange {
        authority: "api:443".into(),
        status: Some(200),
        signal_headers: headers.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
        ..Exchange::default()
    }
}

fn header_value() -> impl Strategy<Value = String> {
    prop_oneof![
        "\\PC{0,16}",
        "-?[0-9]{1,22}",
        "([0-9]{1,4}(\\.[0-9]{1,12})?(h|m|s|ms|us|µs|ns)){1,4}",
        "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]{2})?",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Go-style durations as OpenAI writes them read back (to float
    /// precision); anything else is none or a wait within the host's
    /// longest.
    #[test]
    fn go_durations_read_back(h in 0u64..1000, m in 0u64..60, s in 0u64..60, ms in 0u64..1000, junk in "\\PC{0,16}") {
        let d = parse_go_duration(&format!("{h}h{m}m{s}.{ms:03}s")).expect("a Go duration");
        let expected = Duration::from_millis(((h * 60 + m) * 60 + s) * 1000 + ms);
        prop_assert!(d.abs_diff(expected) < Duration::from_micros(1), "{d:?} != {expected:?}");
        prop_assert!(parse_go_duration(&junk).is_none_or(|d| d <= MAX_WAIT));
    }

    /// Whatever the rate-limit headers say, the budget holds attempts no
    /// longer than the longest server wait the host honours.
    #[test]
    fn any_budget_headers_hold_no_longer_than_the_longest_wait(
        openai in any::<bool>(),
        remaining in header_value(),
        reset in header_value(),
        limit in header_value(),
        in_flight in any::<i64>(),
        rounds in 1usize..4,
    ) {
        let headers = if openai {
            vec![("x-ratelimit-remaining-requests", remaining), ("x-ratelimit-reset-requests", reset), ("x-ratelimit-limit-requests", limit)]
        } else {
            vec![("anthropic-ratelimit-requests-remaining", remaining), ("anthropic-ratelimit-requests-reset", reset), ("anthropic-ratelimit-requests-limit", limit)]
        };
        let e = exchange(headers);
        let max_wait = Duration::from_secs(120);
        let now = Instant::now();
        let mut budget = None;
        for round in 0..rounds {
            let at = now + Duration::from_millis(round as u64 * 10);
            if let Some(report) = observe(&mut budget, &e, in_flight, max_wait, at, SystemTime::now()) {
                prop_assert!(report.reset_at <= at + max_wait);
            }
            if let Some(b) = budget.as_ref() {
                prop_assert!(b.wait(in_flight, at) <= max_wait);
            }
        }
    }
}
