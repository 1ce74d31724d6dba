//! The shared limiter: [`SharedGate`] in Redis.
//!
//! Every decision runs atomically in Redis on its own clock (`TIME`), so
//! every host sees one state and no host's clock skew matters: *reserve*
//! (cooldown and learned budget open? then the earliest send time the
//! RPM/TPM buckets allow, booked at once), *confirm* (at a slot that had
//! to wait: did a pause begin meanwhile?) and *settle* (the answer: tokens
//! reconciled, header budgets learned, the cooldown moved). They travel in
//! the ticks of [`super::tick`] (one script call for all the requests a
//! host has at a moment), whose script ports the local gates' rules line
//! for line (`run::gate`). This is where peers went wrong: counters kept in
//! memory and synced every second let N hosts send N times the limit, and
//! a read of the state in one command and its write in another let two
//! hosts take the same slot.
//!
//! Attempts in flight (what the learned budgets subtract from what a
//! provider reports left) are counted here, per host, and published with
//! the ticks; a host that stops publishing stops counting after
//! `IN_FLIGHT_TTL`, so a dead host's attempts do not hold the budget.
//!
//! The keys live under one prefix per quota scope: the provider endpoint
//! (each scope's cooldown and budget, by `host:port`) and the fingerprint of
//! the run's secrets (the API key: two keys are two quotas), plus a tenant.
//! Values are plain text with expiries, so an abandoned scope disappears.
//!
//! What is not shared (yet): the adaptive limit learned without headers
//! stays per host.

use std::collections::HashSet;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_util::future::BoxFuture;
use redis::aio::ConnectionManager;

use super::tick::{Answer, Head, Request, TickError, Ticker};
use crate::run::gate::{
    GateSettings, RateLimitEffect, Reservation, Reserve, Settlement, SharedGate, SharedGateError, Verdict,
};

/// Helpers every script starts with (the server's clock, number formats).
pub(super) const COMMON: &str = include_str!("lua/common.lua");

/// The shared buckets pace this far under `--rpm`/`--tpm`. Sends from
/// several hosts reach the provider with a few milliseconds of jitter each;
/// paced at exactly the limit, the request that completes a provider's
/// sliding window would land a millisecond early about half the time and
/// be refused. 1% keeps 0.6 s of slack per minute and uses 99% of it.
pub const PACING: f64 = 0.99;

/// How far ahead a slot may be booked: a longer wait lines up locally and
/// asks again, so that few reservations are voided by a pause.
pub const HORIZON: Duration = Duration::from_secs(2);

/// How long attempts count as in flight when their host stops reporting
/// them (it died): then they no longer shrink what the learned budget
/// allows.
const IN_FLIGHT_TTL: Duration = Duration::from_secs(300);

/// How long one call may take before the host treats Redis as unreachable.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);

/// The limits of one quota scope and tenant, shared through Redis.
pub struct RedisLimiter {
    ticker: Arc<Ticker>,
    prefix: String,
    next_id: AtomicU64,
    /// This host's reservations not settled or given up yet.
    live: Mutex<HashSet<u64>>,
    /// Their number, published with the ticks.
    in_flight: Arc<AtomicU64>,
    /// The settings last sent (one `Arc` while they stay the same, so a
    /// tick sends them once for every request).
    head: Mutex<Option<Arc<Head>>>,
}

impl fmt::Debug for RedisLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisLimiter").field("prefix", &self.prefix).finish_non_exhaustive()
    }
}

/// Connects to `url` with the timeouts a limiter needs: a call that takes
/// longer than [`RESPONSE_TIMEOUT`] fails (the host then waits, it never
/// sends without an answer), and the connection is re-established in the
/// background after Redis restarts.
pub async fn connect(url: &str) -> Result<ConnectionManager, redis::RedisError> {
    let client = redis::Client::open(url)?;
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(1)))
        .set_response_timeout(Some(RESPONSE_TIMEOUT))
        .set_number_of_retries(2)
        .set_max_delay(Duration::from_millis(500));
    ConnectionManager::new_with_config(client, config).await
}

impl RedisLimiter {
    /// The limiter of quota `namespace` (the secrets' fingerprint) for
    /// `tenant`, over `conn`.
    pub fn new(conn: ConnectionManager, namespace: &str, tenant: &str) -> Self {
        Self::on(Ticker::new(conn), namespace, tenant)
    }

    /// [`RedisLimiter::new`] sending its ops with `ticker`'s (one round
    /// trip for this limiter and whatever else shares the ticker).
    pub fn on(ticker: Arc<Ticker>, namespace: &str, tenant: &str) -> Self {
        let prefix = format!("batchllm:lim:{namespace}:{tenant}");
        let in_flight = Arc::new(AtomicU64::new(0));
        let host = format!("{}-{:016x}", std::process::id(), rand::random::<u64>());
        ticker.track(&prefix, &host, in_flight.clone(), IN_FLIGHT_TTL);
        RedisLimiter {
            ticker,
            prefix,
            next_id: AtomicU64::new(1),
            live: Mutex::default(),
            in_flight,
            head: Mutex::default(),
        }
    }

    /// The prefix of every key this limiter uses.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The settings of `settings` as sent to Redis.
    fn head(&self, settings: &GateSettings) -> Arc<Head> {
        let limits = settings.admission;
        let policy = &settings.cooldown;
        let head = Head {
            prefix: self.prefix.clone(),
            rpm: limits.rpm.map_or(0.0, |r| r * PACING),
            tpm: limits.tpm.map_or(0.0, |t| t * PACING),
            burst_secs: limits.burst_secs,
            slow_start_attempts: policy.slow_start_attempts,
            slow_start_spacing_ms: policy.slow_start_spacing.as_secs_f64() * 1000.0,
            horizon_ms: millis(HORIZON),
            base_ms: policy.base.as_secs_f64() * 1000.0,
            multiplier: policy.multiplier,
            max_ms: policy.max.as_secs_f64() * 1000.0,
        };
        let mut last = self.head.lock().unwrap_or_else(PoisonError::into_inner);
        match &*last {
            Some(same) if **same == head => same.clone(),
            _ => {
                let head = Arc::new(head);
                *last = Some(head.clone());
                head
            }
        }
    }

    /// The settings last used (confirm is not given them again).
    fn last_head(&self) -> Arc<Head> {
        self.head.lock().unwrap_or_else(PoisonError::into_inner).clone().unwrap_or_else(|| {
            Arc::new(Head {
                prefix: self.prefix.clone(),
                rpm: 0.0,
                tpm: 0.0,
                burst_secs: 0.0,
                slow_start_attempts: 0,
                slow_start_spacing_ms: 0.0,
                horizon_ms: millis(HORIZON),
                base_ms: 0.0,
                multiplier: 1.0,
                max_ms: 0.0,
            })
        })
    }

    fn hold(&self) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut live = self.live.lock().unwrap_or_else(PoisonError::into_inner);
        live.insert(id);
        self.in_flight.store(live.len() as u64, Ordering::Relaxed);
        id
    }

    /// Ends a reservation's time in flight (once, however often asked).
    fn end(&self, id: u64) {
        let mut live = self.live.lock().unwrap_or_else(PoisonError::into_inner);
        if live.remove(&id) {
            self.in_flight.store(live.len() as u64, Ordering::Relaxed);
        }
    }
}

fn unreachable(e: TickError) -> SharedGateError {
    SharedGateError { message: e.to_string(), source: Some(Box::new(e)) }
}

fn bad_reply(reply: &str) -> SharedGateError {
    SharedGateError { message: format!("unexpected reply from the limiter script: {reply:?}"), source: None }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn parse_ms(text: Option<&str>) -> Option<Duration> {
    text.and_then(|t| t.parse::<u64>().ok()).map(Duration::from_millis)
}

fn words(reply: &str) -> Vec<&str> {
    reply.split(' ').collect()
}

impl SharedGate for RedisLimiter {
    fn reserve<'a>(
        &'a self,
        settings: &'a GateSettings,
        scope: Option<&'a str>,
        tokens: u64,
    ) -> BoxFuture<'a, Result<Reserve, SharedGateError>> {
        Box::pin(async move {
            let request = Request::Reserve { head: self.head(settings), scope: scope.unwrap_or("").into(), tokens };
            let reply = self.ticker.call(request).await.map_err(unreachable)?;
            let parts = words(&reply);
            let ms = |i: usize| parse_ms(parts.get(i).copied()).ok_or_else(|| bad_reply(&reply));
            match parts.first().copied() {
                Some("g") => {
                    let delay = ms(1)?;
                    let send_ms = parts.get(2).and_then(|t| t.parse().ok()).ok_or_else(|| bad_reply(&reply))?;
                    // The slot on this host's clock, however late the
                    // reply came; a slot that had to wait is confirmed a
                    // round trip before it.
                    let clock = self.ticker.clock();
                    let now = tokio::time::Instant::now();
                    let due = clock.local(send_ms, now);
                    let confirm_at = (!delay.is_zero()).then(|| due.checked_sub(clock.lead()).unwrap_or(due));
                    Ok(Reserve::Granted(Reservation { due, confirm_at, id: self.hold(), send_ms }))
                }
                Some("c") => Ok(Reserve::Closed(ms(1)?)),
                Some("l") => Ok(Reserve::Later(ms(1)?)),
                _ => Err(bad_reply(&reply)),
            }
        })
    }

    fn confirm<'a>(
        &'a self,
        scope: Option<&'a str>,
        reservation: &'a Reservation,
    ) -> BoxFuture<'a, Result<Option<Duration>, SharedGateError>> {
        Box::pin(async move {
            let request = Request::Confirm { head: self.last_head(), scope: scope.unwrap_or("").into() };
            let reply = self.ticker.call_now(request).await.map_err(unreachable)?;
            let parts = words(&reply);
            match parts.first().copied() {
                Some("ok") => Ok(None),
                Some("void") => {
                    let wait = parse_ms(parts.get(1).copied()).ok_or_else(|| bad_reply(&reply))?;
                    // The slot is given up: no longer in flight.
                    self.end(reservation.id);
                    Ok(Some(wait))
                }
                _ => Err(bad_reply(&reply)),
            }
        })
    }

    fn settle<'a>(
        &'a self,
        settings: &'a GateSettings,
        reservation: &'a Reservation,
        settlement: Settlement<'a>,
    ) -> BoxFuture<'a, Result<Option<RateLimitEffect>, SharedGateError>> {
        Box::pin(async move {
            let answer = match settlement.verdict {
                Verdict::Success => Answer::Success,
                Verdict::RateLimited { hint, .. } => {
                    Answer::RateLimited { hint_ms: hint.map_or(-1.0, |h| h.as_secs_f64() * 1000.0) }
                }
                Verdict::Failed => Answer::Failed,
            };
            let budgets = settlement
                .budgets
                .iter()
                .map(|(authority, remaining, reset)| {
                    ((*authority).to_string(), *remaining, reset.as_secs_f64() * 1000.0)
                })
                .collect();
            let request = Request::Settle {
                head: self.head(settings),
                scope: settlement.scope.unwrap_or(crate::run::gate::NO_SCOPE).into(),
                sent_ms: reservation.send_ms,
                answer,
                estimated: settlement.estimated_tokens,
                used: settlement.used_tokens,
                budgets,
            };
            // Off the wire: the budgets this answer reports must not count
            // it as in flight any more.
            self.end(reservation.id);
            let reply = self.ticker.call(request).await.map_err(unreachable)?;
            let parts = words(&reply);
            let ms = || parse_ms(parts.get(1).copied()).ok_or_else(|| bad_reply(&reply));
            match parts.first().copied() {
                Some("none") => Ok(None),
                Some("started") => Ok(Some(RateLimitEffect::Started(ms()?))),
                Some("extended") => Ok(Some(RateLimitEffect::Extended(ms()?))),
                Some("absorbed") => Ok(Some(RateLimitEffect::Absorbed)),
                _ => Err(bad_reply(&reply)),
            }
        })
    }

    fn release(&self, reservation: &Reservation) {
        self.end(reservation.id);
    }
}
