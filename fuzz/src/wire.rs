//! What the host itself reads from a provider's answer, whatever the
//! plugin says: `retry-after*` (policy/reconcile), Go-style durations and
//! the request budgets of `x-ratelimit-*` / `anthropic-ratelimit-*`
//! headers with their RFC 3339 resets (gate/learned), through the gates a
//! run uses.
//!
//! Input format: as the `classify` target (`<api> <status>`, then headers);
//! the body is ignored.

use std::time::Duration;

use batchllm_host::model::{Exchange, FailureClass};
use batchllm_host::run::gate::{GateSettings, Gates, LimitKind, Verdict, parse_go_duration};
use batchllm_host::run::policy::MAX_WAIT;
use batchllm_host::run::policy::reconcile::{reconcile, retry_after};
use batchllm_host::run::{AdmissionLimits, CooldownPolicy};

const DAY: Duration = Duration::from_secs(86_400);
const MAX_SERVER_WAIT: Duration = Duration::from_secs(120);
/// The longest the gates hold an attempt: a server wait is cut to
/// `MAX_SERVER_WAIT`, but the learned-limit mirror paces by its own window
/// (at most 120 s, whatever reset a header names) plus a 2% margin.
const LONGEST_HOLD: Duration = Duration::from_millis(122_400);

/// Input: see the module docs.
pub fn run(data: &[u8]) {
    let answer = super::classify::parse(data);
    let exchange = Exchange {
        authority: "api.example.com:443".into(),
        status: Some(answer.status),
        // The egress layer keeps header names lower-case.
        signal_headers: answer.headers.iter().map(|(k, v)| (k.to_ascii_lowercase(), v.clone())).collect(),
        ..Exchange::default()
    };

    for (_, value) in &exchange.signal_headers {
        if let Some(d) = parse_go_duration(value) {
            assert!(d <= MAX_WAIT, "{value:?} gave {d:?}");
        }
    }
    let wait = retry_after(&exchange);
    assert!(wait.is_none_or(|w| !w.is_zero() && w <= DAY), "{wait:?}");
    for class in [FailureClass::Other, FailureClass::Auth, FailureClass::QuotaExhausted, FailureClass::Network] {
        let r = reconcile(class, None, std::slice::from_ref(&exchange));
        assert_eq!(r.server_wait, wait);
        if answer.status == 429 {
            assert!(
                matches!(r.class, FailureClass::RateLimited | FailureClass::QuotaExhausted | FailureClass::TooLarge),
                "a 429 reconciled to {:?}",
                r.class
            );
        }
    }

    let settings = GateSettings {
        cooldown: CooldownPolicy::default(),
        admission: AdmissionLimits { rpm: None, tpm: None, burst_secs: 1.0 },
        learn_from_headers: true,
        adaptive: true,
        max_server_wait: MAX_SERVER_WAIT,
        startup_ramp: None,
    };
    let start = tokio::time::Instant::now();
    let gates = Gates::new(settings, start);
    let scope = exchange.authority.as_str();
    for step in 0..4u64 {
        let now = start + Duration::from_millis(step * 700);
        match gates.try_admit(Some(scope), 100, now) {
            Ok(ticket) => {
                let verdict = if answer.status == 429 {
                    Verdict::RateLimited { hint: wait, kind: LimitKind::Unknown }
                } else {
                    Verdict::Success
                };
                let _ = ticket.answered(Some(scope), verdict, std::slice::from_ref(&exchange), 100, now);
            }
            Err(hold) => assert!(hold <= LONGEST_HOLD, "held for {hold:?}"),
        }
        assert!(gates.longest_cooldown(now) <= MAX_SERVER_WAIT.max(CooldownPolicy::default().max));
    }
}
