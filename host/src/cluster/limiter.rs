//! The shared limiter: [`SharedGate`] in Redis.
//!
//! Every decision is one Lua script run atomically by Redis on its own
//! clock (`TIME`), so every host sees one state and no host's clock skew
//! matters: `reserve` (cooldown and learned budget open? then the earliest
//! send time the RPM/TPM buckets allow, booked at once), `confirm` (at a
//! slot that had to wait: did a pause begin meanwhile?) and `settle` (the
//! answer: tokens reconciled, header budgets learned, the cooldown moved).
//! The scripts port the local gates' rules line for line (`run::gate`).
//! This is where peers went wrong: counters kept in memory and synced every
//! second let N hosts send N times the limit, and a read of the state in
//! one command and its write in another let two hosts take the same slot.
//!
//! The keys live under one prefix per quota scope: the provider endpoint
//! (each scope's cooldown and budget, by `host:port`) and the fingerprint of
//! the run's secrets (the API key: two keys are two quotas), plus a tenant.
//! Values are plain text with expiries, so an abandoned scope disappears.
//!
//! What is not shared (yet): the adaptive limit learned without headers
//! stays per host.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use redis::aio::ConnectionManager;

use crate::run::gate::{
    GateSettings, RateLimitEffect, Reservation, Reserve, Settlement, SharedGate, SharedGateError, Verdict,
};

const COMMON: &str = include_str!("lua/common.lua");

/// The shared buckets pace this far under `--rpm`/`--tpm`. Sends from
/// several hosts reach the provider with a few milliseconds of jitter each;
/// paced at exactly the limit, the request that completes a provider's
/// sliding window would land a millisecond early about half the time and
/// be refused. 1% keeps 0.6 s of slack per minute and uses 99% of it.
pub const PACING: f64 = 0.99;

/// How far ahead a slot may be booked: a longer wait lines up locally and
/// asks again, so that few reservations are voided by a pause.
pub const HORIZON: Duration = Duration::from_secs(2);

/// How long an attempt counts as in flight when its answer never comes (a
/// host died): then it no longer shrinks what the learned budget allows.
const IN_FLIGHT_TTL: Duration = Duration::from_secs(300);

/// How long one call may take before the host treats Redis as unreachable.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);

/// The limiter scripts, loaded once per connection (EVALSHA, reloaded after
/// a Redis restart).
#[derive(Clone)]
struct Scripts {
    reserve: Arc<redis::Script>,
    confirm: Arc<redis::Script>,
    settle: Arc<redis::Script>,
}

impl Scripts {
    fn new() -> Self {
        let script = |body: &str| Arc::new(redis::Script::new(&format!("{COMMON}\n{body}")));
        Scripts {
            reserve: script(include_str!("lua/reserve.lua")),
            confirm: script(include_str!("lua/confirm.lua")),
            settle: script(include_str!("lua/settle.lua")),
        }
    }
}

/// The limits of one quota scope and tenant, shared through Redis.
#[derive(Clone)]
pub struct RedisLimiter {
    conn: ConnectionManager,
    prefix: String,
    scripts: Scripts,
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
        RedisLimiter { conn, prefix: format!("batchllm:lim:{namespace}:{tenant}"), scripts: Scripts::new() }
    }

    /// The prefix of every key this limiter uses.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }
}

fn unreachable(e: redis::RedisError) -> SharedGateError {
    SharedGateError { message: e.to_string() }
}

fn bad_reply(reply: &[String]) -> SharedGateError {
    SharedGateError { message: format!("unexpected reply from the limiter script: {reply:?}") }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn parse_ms(text: Option<&String>) -> Option<Duration> {
    text.and_then(|t| t.parse::<u64>().ok()).map(Duration::from_millis)
}

impl SharedGate for RedisLimiter {
    fn reserve<'a>(
        &'a self,
        settings: &'a GateSettings,
        scope: Option<&'a str>,
        tokens: u64,
    ) -> BoxFuture<'a, Result<Reserve, SharedGateError>> {
        Box::pin(async move {
            let mut conn = self.conn.clone();
            let limits = settings.admission;
            let reply: Vec<String> = self
                .scripts
                .reserve
                .key(&self.prefix)
                .arg(scope.unwrap_or(""))
                .arg(tokens)
                .arg(limits.rpm.map_or(0.0, |r| r * PACING))
                .arg(limits.tpm.map_or(0.0, |t| t * PACING))
                .arg(limits.burst_secs)
                .arg(settings.cooldown.slow_start_attempts)
                .arg(settings.cooldown.slow_start_spacing.as_secs_f64() * 1000.0)
                .arg(millis(HORIZON))
                .arg(millis(IN_FLIGHT_TTL))
                .invoke_async(&mut conn)
                .await
                .map_err(unreachable)?;
            match reply.first().map(String::as_str) {
                Some("granted") => {
                    let delay = parse_ms(reply.get(1)).ok_or_else(|| bad_reply(&reply))?;
                    let id = reply.get(2).and_then(|t| t.parse().ok()).ok_or_else(|| bad_reply(&reply))?;
                    let send_ms = reply.get(3).and_then(|t| t.parse().ok()).ok_or_else(|| bad_reply(&reply))?;
                    Ok(Reserve::Granted(Reservation { delay, id, send_ms }))
                }
                Some("closed") => Ok(Reserve::Closed(parse_ms(reply.get(1)).ok_or_else(|| bad_reply(&reply))?)),
                Some("later") => Ok(Reserve::Later(parse_ms(reply.get(1)).ok_or_else(|| bad_reply(&reply))?)),
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
            let mut conn = self.conn.clone();
            let reply: Vec<String> = self
                .scripts
                .confirm
                .key(&self.prefix)
                .arg(scope.unwrap_or(""))
                .arg(reservation.id)
                .invoke_async(&mut conn)
                .await
                .map_err(unreachable)?;
            match reply.first().map(String::as_str) {
                Some("ok") => Ok(None),
                Some("void") => Ok(Some(parse_ms(reply.get(1)).ok_or_else(|| bad_reply(&reply))?)),
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
            let mut conn = self.conn.clone();
            let (verdict, hint) = match settlement.verdict {
                Verdict::Success => ("ok", -1.0),
                Verdict::RateLimited { hint, .. } => ("rate_limited", hint.map_or(-1.0, |h| h.as_secs_f64() * 1000.0)),
                Verdict::Failed => ("failed", -1.0),
            };
            let policy = &settings.cooldown;
            let mut invocation = self.scripts.settle.key(&self.prefix);
            invocation
                .arg(settlement.scope.unwrap_or(crate::run::gate::NO_SCOPE))
                .arg(reservation.id)
                .arg(format!("{:.3}", reservation.send_ms))
                .arg(verdict)
                .arg(hint)
                .arg(settlement.estimated_tokens)
                .arg(settlement.used_tokens)
                .arg(settings.admission.tpm.map_or(0.0, |t| t * PACING))
                .arg(policy.base.as_secs_f64() * 1000.0)
                .arg(policy.multiplier)
                .arg(policy.max.as_secs_f64() * 1000.0)
                .arg(policy.slow_start_attempts)
                .arg(settlement.budgets.len());
            for (authority, remaining, reset) in &settlement.budgets {
                invocation.arg(*authority).arg(*remaining).arg(reset.as_secs_f64() * 1000.0);
            }
            let reply: Vec<String> = invocation.invoke_async(&mut conn).await.map_err(unreachable)?;
            let ms = || parse_ms(reply.get(1)).ok_or_else(|| bad_reply(&reply));
            match reply.first().map(String::as_str) {
                Some("none") => Ok(None),
                Some("started") => Ok(Some(RateLimitEffect::Started(ms()?))),
                Some("extended") => Ok(Some(RateLimitEffect::Extended(ms()?))),
                Some("absorbed") => Ok(Some(RateLimitEffect::Absorbed)),
                _ => Err(bad_reply(&reply)),
            }
        })
    }

    fn release(&self, reservation: &Reservation) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        let mut conn = self.conn.clone();
        let key = format!("{}:inflight", self.prefix);
        let id = reservation.id;
        runtime.spawn(async move {
            let _: Result<i64, _> = redis::cmd("ZREM").arg(key).arg(id).query_async(&mut conn).await;
        });
    }
}
