//! Rate gating: whether an attempt may start now, for every worker at once.
//!
//! Four gates decide, all before anything is sent:
//! - the [`cooldown`] of the attempt's quota scope (after a rate limit);
//! - the budget [`learned`] from the provider's rate-limit headers, or,
//!   for a scope whose answers carry none, the limit learned from what the
//!   provider accepts and refuses ([`adaptive`]);
//! - the user's RPM/TPM buckets ([`admission`]), a ceiling on top.
//!
//! They are checked together under one lock and booked together, so an
//! attempt is only ever sent when every gate says yes *at that moment*: an
//! item that waited for a bucket token re-checks the cooldown that began
//! while it waited. Workers that must wait queue in FIFO order and only the
//! head of the queue sleeps on the gates, so the end of a pause wakes one
//! worker, not the whole pool.
//!
//! Time comes in as an argument (`tokio::time::Instant`, so tests run on
//! paused time) and every wait saturates at `policy::MAX_WAIT`.
//!
//! On several hosts the same decisions move into a [`SharedGate`] (one
//! state for every host, see [`shared`]); these gates then keep only the
//! waiting discipline and the counters.

pub mod adaptive;
pub mod admission;
pub mod cooldown;
pub mod learned;
pub mod shared;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

pub use adaptive::{Estimate, LimitKind};
pub use admission::AdmissionLimits;
pub use cooldown::{CooldownPolicy, RateLimitEffect};
pub use learned::parse_go_duration;
pub use shared::{Reservation, Reserve, Settlement, SharedGate, SharedGateError};

use crate::model::Exchange;
use adaptive::Adaptive;
use admission::Buckets;
use cooldown::Cooldown;
use learned::Budget;

/// The scope of a plugin that reported a rate limit without any HTTP the
/// host saw (a plugin with its own transport, or the mock plugin).
pub const NO_SCOPE: &str = "-";

/// Settings of the gates.
#[derive(Debug, Clone, PartialEq)]
pub struct GateSettings {
    pub cooldown: CooldownPolicy,
    pub admission: AdmissionLimits,
    /// Follow the provider's limit headers (off when the user set `--rpm`).
    pub learn_from_headers: bool,
    /// Learn the limit of a scope without headers from its answers.
    pub adaptive: bool,
    /// Longest server-requested wait honoured: `retry-after` and header
    /// resets beyond it are cut to it.
    pub max_server_wait: Duration,
    /// Start-up ramp: over this long from the start of the run, attempts in
    /// flight grow from one to `concurrency` (a fresh quota is not hit by
    /// the whole pool at once).
    pub startup_ramp: Option<StartupRamp>,
}

/// The start-up ramp: `concurrency` attempts in flight reached after `over`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StartupRamp {
    pub over: Duration,
    pub concurrency: usize,
}

impl StartupRamp {
    /// Attempts allowed in flight `elapsed` into the run.
    fn allowed(&self, elapsed: Duration) -> i64 {
        if elapsed >= self.over || self.over.is_zero() {
            return i64::MAX;
        }
        let share = elapsed.as_secs_f64() / self.over.as_secs_f64();
        ((self.concurrency as f64 * share).ceil() as i64).max(1)
    }
}

/// Rate-limit totals for the summary.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct GateStats {
    pub rate_limits: u64,
    pub cooldowns: u64,
    pub total_cooldown: Duration,
}

/// How an attempt ended, as far as the gates care.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Verdict {
    Success,
    /// Rate limited, with the server's wait if it gave one, and the limit
    /// the refusal named.
    RateLimited {
        hint: Option<Duration>,
        kind: LimitKind,
    },
    /// Any other failure.
    Failed,
}

#[derive(Debug, Default)]
struct ScopeGate {
    cooldown: Cooldown,
    budget: Option<Budget>,
    adaptive: Adaptive,
}

/// The key of sends made before any scope is known (the first attempts of
/// a run); their history moves to the first scope an answer names.
const UNSCOPED: &str = "";

#[derive(Debug)]
struct State {
    scopes: HashMap<String, ScopeGate>,
    /// The scope the run's answers come from (the last one seen): where an
    /// attempt whose item has no scope yet is counted.
    default_scope: Option<String>,
    buckets: Buckets,
    /// Attempts admitted and not yet answered.
    in_flight: i64,
    stats: GateStats,
    /// With a shared gate: the end of the last pause it reported.
    shared_until: Option<Instant>,
}

/// The gates of a run, shared by every worker.
#[derive(Debug)]
pub struct Gates {
    settings: GateSettings,
    /// When the gates were made (the start of the run, for the ramp).
    started: Instant,
    state: Mutex<State>,
    /// Workers waiting for the gates line up here; only the head sleeps.
    queue: tokio::sync::Mutex<()>,
    /// Wakes the head of the queue when an answer changed the gates (a
    /// refund of over-estimated tokens, a new budget), so it never sleeps
    /// on a wait computed before the change.
    changed: tokio::sync::Notify,
    /// Where the decisions are made when several hosts share the limits.
    shared: Option<Arc<dyn SharedGate>>,
}

/// An admitted attempt. Report its answer with [`Ticket::answered`]; a
/// ticket dropped unanswered (a cancelled call) just leaves the in-flight
/// count.
#[derive(Debug)]
pub struct Ticket<'a> {
    gates: &'a Gates,
    sent: Instant,
    tokens: u64,
    /// Where the send was counted for the adaptive limit, by sequence.
    counted: Option<(String, u64)>,
    open: bool,
    /// The slot a shared gate granted (`None`: decided locally).
    reservation: Option<Reservation>,
}

/// What an answer changed, for events and logs.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Changes {
    pub rate_limit: Option<RateLimitEffect>,
    /// The learned limit of the scope, when it changed.
    pub estimate: Option<Estimate>,
}

impl Gates {
    pub fn new(settings: GateSettings, now: Instant) -> Self {
        let buckets = Buckets::new(settings.admission, now);
        Gates {
            settings,
            started: now,
            state: Mutex::new(State {
                scopes: HashMap::new(),
                default_scope: None,
                buckets,
                in_flight: 0,
                stats: GateStats::default(),
                shared_until: None,
            }),
            queue: tokio::sync::Mutex::new(()),
            changed: tokio::sync::Notify::new(),
            shared: None,
        }
    }

    /// Gates whose decisions `shared` makes, for every host at once.
    pub fn shared(settings: GateSettings, now: Instant, shared: Arc<dyn SharedGate>) -> Self {
        Gates { shared: Some(shared), ..Gates::new(settings, now) }
    }

    /// The settings the gates run with.
    pub fn settings(&self) -> &GateSettings {
        &self.settings
    }

    /// Whether token estimates matter: RPM/TPM buckets exist, or limits
    /// are learned (a token limit is learned from them).
    pub fn is_limited(&self) -> bool {
        self.settings.adaptive || self.lock().buckets.is_limited()
    }

    /// The learned limit of every scope that has one (progress, metrics).
    pub fn estimates(&self) -> Vec<(String, Estimate)> {
        let state = self.lock();
        let mut out: Vec<(String, Estimate)> = state
            .scopes
            .iter()
            .map(|(k, g)| (k.clone(), g.adaptive.estimate()))
            .filter(|(_, e)| e.requests.is_some() || e.tokens.is_some())
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every critical section leaves the state consistent, so a panic in
        // another worker does not make it unusable.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Admits an attempt to `scope` (`None`: not known yet, so every scope
    /// must allow it) costing `tokens`, or says how long to wait first.
    pub fn try_admit(&self, scope: Option<&str>, tokens: u64, now: Instant) -> Result<Ticket<'_>, Duration> {
        let policy = &self.settings.cooldown;
        let adaptive = self.settings.adaptive;
        let mut state = self.lock();
        let state = &mut *state;
        // Where this send counts for a learned limit: its scope, else the
        // run's scope, else the history kept until a scope is known.
        let counted =
            scope.map(str::to_string).or_else(|| state.default_scope.clone()).unwrap_or_else(|| UNSCOPED.to_string());
        let mut wait = Duration::ZERO;
        let in_flight = state.in_flight;
        for_scopes(&mut state.scopes, scope, |gate| {
            wait = wait.max(gate.cooldown.wait(now));
            // Once the limit is learned, the mirror paces instead of the
            // header budget (which waits until the window is empty).
            if let Some(budget) = gate.budget.as_ref().filter(|_| !(adaptive && gate.adaptive.is_active())) {
                wait = wait.max(budget.wait(in_flight, now));
            }
        });
        if adaptive && let Some(gate) = state.scopes.get_mut(&counted) {
            wait = wait.max(gate.adaptive.wait(tokens, now));
        }
        wait = wait.max(state.buckets.wait(tokens, now));
        if let Some(ramp) = self.settings.startup_ramp
            && state.in_flight >= ramp.allowed(now.saturating_duration_since(self.started))
        {
            // One more is allowed after another share of the ramp.
            let step = ramp.over / u32::try_from(ramp.concurrency.max(1)).unwrap_or(u32::MAX);
            wait = wait.max(step.max(Duration::from_millis(1)));
        }
        if !wait.is_zero() {
            return Err(wait);
        }
        for_scopes(&mut state.scopes, scope, |gate| {
            gate.cooldown.admit(policy, now);
        });
        let counted = adaptive.then(|| {
            let gate = state.scopes.entry(counted.clone()).or_default();
            (counted, gate.adaptive.admit(tokens, now))
        });
        state.buckets.take(tokens);
        state.in_flight += 1;
        Ok(Ticket { gates: self, sent: now, tokens, counted, open: true, reservation: None })
    }

    /// Waits until an attempt is admitted, or `stop` resolves first (`None`).
    pub async fn admit(
        &self,
        scope: Option<&str>,
        tokens: u64,
        stop: impl std::future::Future<Output = ()>,
    ) -> Option<Ticket<'_>> {
        if let Some(shared) = &self.shared {
            return self.admit_shared(shared.as_ref(), scope, tokens, stop).await;
        }
        if let Ok(ticket) = self.try_admit(scope, tokens, Instant::now()) {
            return Some(ticket);
        }
        tokio::pin!(stop);
        let _turn = tokio::select! {
            turn = self.queue.lock() => turn,
            () = &mut stop => return None,
        };
        loop {
            // Registered before the check, so a change between the check
            // and the sleep still wakes us.
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            match self.try_admit(scope, tokens, Instant::now()) {
                Ok(ticket) => return Some(ticket),
                Err(wait) => tokio::select! {
                    () = tokio::time::sleep(wait.max(Duration::from_millis(1))) => {}
                    () = changed => {}
                    () = &mut stop => return None,
                },
            }
        }
    }

    /// [`Gates::admit`] through a shared gate: reserve a slot, sleep until
    /// it, confirm it. While the gates are closed (or the shared gate cannot
    /// be reached: fail closed) workers line up and only the head asks
    /// again, after the wait the gate gave.
    async fn admit_shared(
        &self,
        shared: &dyn SharedGate,
        scope: Option<&str>,
        tokens: u64,
        stop: impl std::future::Future<Output = ()>,
    ) -> Option<Ticket<'_>> {
        tokio::pin!(stop);
        let mut turn = None;
        let mut late_slots = 0;
        loop {
            let asked = tokio::select! {
                asked = shared.reserve(&self.settings, scope, tokens) => asked,
                () = &mut stop => return None,
            };
            let wait = match asked {
                Ok(Reserve::Granted(reservation)) => {
                    // The next worker may reserve the slot after this one.
                    drop(turn.take());
                    let tolerance =
                        (late_slots < LATE_SLOTS).then(|| late_tolerance(&self.settings.admission, tokens)).flatten();
                    match self.hold(shared, scope, tokens, reservation, tolerance, &mut stop).await {
                        Held::Ticket(ticket) => return Some(ticket),
                        Held::Stopped => return None,
                        Held::Voided(wait) => wait,
                        Held::Late => {
                            late_slots += 1;
                            Duration::ZERO
                        }
                    }
                }
                Ok(Reserve::Closed(wait)) => {
                    self.note_shared_wait(wait);
                    wait
                }
                Ok(Reserve::Later(wait)) => wait,
                Err(e) => {
                    tracing::warn!(error = %e, "waiting for the shared limiter (nothing is sent without it)");
                    UNREACHABLE_RETRY
                }
            };
            if turn.is_none() {
                turn = tokio::select! {
                    turn = self.queue.lock() => Some(turn),
                    () = &mut stop => return None,
                };
                // At the head of the queue: ask again at once, the wait may
                // have ended while in line.
                continue;
            }
            tokio::select! {
                () = tokio::time::sleep(wait.max(Duration::from_millis(1))) => {}
                () = &mut stop => return None,
            }
        }
    }

    /// Sleeps until a reserved slot, confirming it on the way when it had
    /// to wait; gives it up when this worker reached it more than
    /// `tolerance` late.
    async fn hold(
        &self,
        shared: &dyn SharedGate,
        scope: Option<&str>,
        tokens: u64,
        reservation: Reservation,
        tolerance: Option<Duration>,
        stop: &mut std::pin::Pin<&mut impl std::future::Future<Output = ()>>,
    ) -> Held<'_> {
        if let Some(confirm_at) = reservation.confirm_at {
            tokio::select! {
                () = tokio::time::sleep_until(confirm_at) => {}
                () = stop.as_mut() => {
                    shared.release(&reservation);
                    return Held::Stopped;
                }
            }
            let confirmed = tokio::select! {
                confirmed = shared.confirm(scope, &reservation) => confirmed,
                () = stop.as_mut() => {
                    shared.release(&reservation);
                    return Held::Stopped;
                }
            };
            match confirmed {
                Ok(None) => {}
                Ok(Some(wait)) => return Held::Voided(wait),
                Err(e) => {
                    tracing::warn!(error = %e, "waiting for the shared limiter (nothing is sent without it)");
                    shared.release(&reservation);
                    return Held::Voided(UNREACHABLE_RETRY);
                }
            }
        }
        tokio::select! {
            () = tokio::time::sleep_until(reservation.due) => {}
            () = stop.as_mut() => {
                shared.release(&reservation);
                return Held::Stopped;
            }
        }
        let late = Instant::now().saturating_duration_since(reservation.due);
        if tolerance.is_some_and(|tolerance| late > tolerance) {
            tracing::debug!(
                late_ms = late.as_millis(),
                "a shared slot was reached too late to use; asking for another"
            );
            shared.release(&reservation);
            return Held::Late;
        }
        self.lock().in_flight += 1;
        Held::Ticket(Ticket {
            gates: self,
            sent: Instant::now(),
            tokens,
            counted: None,
            open: true,
            reservation: Some(reservation),
        })
    }

    fn note_shared_wait(&self, wait: Duration) {
        let until = crate::run::policy::later(Instant::now(), wait);
        let mut state = self.lock();
        state.shared_until = Some(state.shared_until.map_or(until, |u| u.max(until)));
    }

    /// Time left in the longest active cooldown (progress display).
    pub fn longest_cooldown(&self, now: Instant) -> Duration {
        let state = self.lock();
        let shared = state.shared_until.map(|u| u.saturating_duration_since(now)).unwrap_or_default();
        state.scopes.values().map(|g| g.cooldown.remaining(now)).max().unwrap_or_default().max(shared)
    }

    /// Totals so far.
    pub fn stats(&self) -> GateStats {
        self.lock().stats
    }
}

/// How often the head of the queue asks again while the shared gate cannot
/// be reached.
const UNREACHABLE_RETRY: Duration = Duration::from_millis(500);

/// How many shared slots one admission may give up for being reached too
/// late before it takes a late one: a host too slow to keep any slot
/// still sends, at its own pace. Each is a horizon's wait at most
/// (`cluster::limiter::HORIZON`). With Redis stalled a third of the time
/// (the e2e test), about one admission in 1,500 ends up taking a late
/// slot.
const LATE_SLOTS: u32 = 6;

/// The bounds of [`late_tolerance`].
const LATE_MIN: Duration = Duration::from_millis(20);
const LATE_MAX: Duration = Duration::from_millis(250);

/// How late a worker may send at a shared slot: the room one request takes
/// in the buckets (its slot's share of `--rpm`, its tokens' of `--tpm`),
/// between [`LATE_MIN`] and [`LATE_MAX`]. Sends at most that late put at
/// most one request more into any window than booked (above 3,000 RPM,
/// where the floor holds, 20 ms of the rate); later ones, from a slow
/// reply or a busy host, would bunch. Without buckets no slot is booked
/// ahead and none is late.
fn late_tolerance(limits: &AdmissionLimits, tokens: u64) -> Option<Duration> {
    let per_request = limits.rpm.filter(|r| *r > 0.0).map(|rpm| 60.0 / rpm);
    let per_tokens = limits.tpm.filter(|t| *t > 0.0).map(|tpm| tokens.max(1) as f64 * 60.0 / tpm);
    let room = match (per_request, per_tokens) {
        (None, None) => return None,
        (a, b) => a.unwrap_or(0.0).max(b.unwrap_or(0.0)),
    };
    Some(Duration::from_secs_f64(room.clamp(LATE_MIN.as_secs_f64(), LATE_MAX.as_secs_f64())))
}

/// What became of a reserved slot.
enum Held<'a> {
    Ticket(Ticket<'a>),
    Stopped,
    /// A cooldown began before the slot: line up again after this wait.
    Voided(Duration),
    /// Reached too late to use: given up, ask again.
    Late,
}

/// Calls `f` on the gate of `scope`, or on every known gate for `None`.
fn for_scopes(scopes: &mut HashMap<String, ScopeGate>, scope: Option<&str>, mut f: impl FnMut(&mut ScopeGate)) {
    match scope {
        Some(s) => {
            if let Some(gate) = scopes.get_mut(s) {
                f(gate);
            }
        }
        None => scopes.values_mut().for_each(f),
    }
}

impl Ticket<'_> {
    /// When the attempt was admitted.
    pub fn sent(&self) -> Instant {
        self.sent
    }

    /// Tells the gates how the attempt ended: `scope` is where it went (if
    /// it made any request), `exchanges` what the host saw, `used_tokens`
    /// what the provider billed. Returns what a rate limit did.
    pub fn answered(
        mut self,
        scope: Option<&str>,
        verdict: Verdict,
        exchanges: &[Exchange],
        used_tokens: u64,
        now: Instant,
    ) -> Changes {
        self.open = false;
        let gates = self.gates;
        let changes = self.record_answer(scope, verdict, exchanges, used_tokens, now);
        gates.changed.notify_waiters();
        changes
    }

    /// [`Ticket::answered`], told to the shared gate when there is one (the
    /// local gates answer without waiting).
    pub async fn settle(
        mut self,
        scope: Option<&str>,
        verdict: Verdict,
        exchanges: &[Exchange],
        used_tokens: u64,
        now: Instant,
    ) -> Changes {
        let gates = self.gates;
        match (&gates.shared, self.reservation.take()) {
            (Some(shared), Some(reservation)) => {
                self.open = false;
                let rate_limit =
                    self.settle_shared(shared.as_ref(), &reservation, scope, verdict, exchanges, used_tokens).await;
                Changes { rate_limit, estimate: None }
            }
            _ => self.answered(scope, verdict, exchanges, used_tokens, now),
        }
    }

    async fn settle_shared(
        &self,
        shared: &dyn SharedGate,
        reservation: &Reservation,
        scope: Option<&str>,
        verdict: Verdict,
        exchanges: &[Exchange],
        used_tokens: u64,
    ) -> Option<RateLimitEffect> {
        let settings = &self.gates.settings;
        let verdict = match verdict {
            Verdict::RateLimited { hint, kind } => {
                Verdict::RateLimited { hint: hint.map(|h| h.min(settings.max_server_wait)), kind }
            }
            other => other,
        };
        let wall_now = SystemTime::now();
        let budgets = if settings.learn_from_headers {
            exchanges
                .iter()
                .filter(|e| !e.authority.is_empty())
                .filter_map(|e| {
                    learned::reported(e, settings.max_server_wait, wall_now).map(|(r, d)| (e.authority.as_str(), r, d))
                })
                .collect()
        } else {
            Vec::new()
        };
        let settlement = Settlement { scope, verdict, budgets, estimated_tokens: self.tokens, used_tokens };
        let effect = match shared.settle(settings, reservation, settlement).await {
            Ok(effect) => effect,
            Err(e) => {
                tracing::warn!(error = %e, "the shared limiter did not record an answer");
                shared.release(reservation);
                None
            }
        };
        let mut state = self.gates.lock();
        state.in_flight -= 1;
        if matches!(verdict, Verdict::RateLimited { .. }) {
            state.stats.rate_limits += 1;
        }
        if let Some(RateLimitEffect::Started(d)) = effect {
            state.stats.cooldowns += 1;
            state.stats.total_cooldown = state.stats.total_cooldown.saturating_add(d);
            let until = crate::run::policy::later(Instant::now(), d);
            state.shared_until = Some(state.shared_until.map_or(until, |u| u.max(until)));
            tracing::warn!(scope = scope.unwrap_or(NO_SCOPE), cooldown = ?d, "rate limited: pausing the scope on every host");
        }
        effect
    }

    fn record_answer(
        &self,
        scope: Option<&str>,
        verdict: Verdict,
        exchanges: &[Exchange],
        used_tokens: u64,
        now: Instant,
    ) -> Changes {
        let gates = self.gates;
        let settings = &gates.settings;
        let mut state = gates.lock();
        let state = &mut *state;
        state.in_flight -= 1;
        let mut changes = Changes::default();
        if let Some(scope) = scope.filter(|s| !s.is_empty()) {
            if state.default_scope.is_none()
                && let Some(unscoped) = state.scopes.remove(UNSCOPED)
            {
                // The run's first scope inherits the history of the sends
                // made before it was known.
                let gate = state.scopes.entry(scope.to_string()).or_default();
                gate.adaptive = unscoped.adaptive;
            }
            state.default_scope = Some(scope.to_string());
        }
        // A send made before any scope was known was counted in the
        // history the run's first scope has since taken over.
        let counted = self.counted.as_ref().map(|(key, seq)| match (key.as_str(), &state.default_scope) {
            (UNSCOPED, Some(scope)) => (scope.clone(), *seq),
            _ => (key.clone(), *seq),
        });
        // Whether the learned limit decides when this scope sends again.
        let mut learned_governs = false;
        if let Some((key, seq)) = &counted
            && let Some(gate) = state.scopes.get_mut(key)
        {
            let changed = match verdict {
                Verdict::RateLimited { kind, hint } => {
                    let refused = gate.adaptive.on_refused(*seq, kind, now);
                    let hinted =
                        hint.is_some_and(|h| gate.adaptive.on_refusal_hint(h.min(settings.max_server_wait), now));
                    refused || hinted
                }
                Verdict::Success | Verdict::Failed => gate.adaptive.on_accepted(*seq, now),
            };
            learned_governs = settings.adaptive && gate.adaptive.answers_refusals();
            if changed {
                let estimate = gate.adaptive.estimate();
                tracing::info!(scope = %key, ?estimate, "learned rate limit");
                changes.estimate = Some(estimate);
            }
        }
        state.buckets.reconcile(self.tokens, used_tokens);
        if settings.learn_from_headers {
            let wall_now = SystemTime::now();
            for e in exchanges.iter().filter(|e| !e.authority.is_empty()) {
                let gate = state.scopes.entry(e.authority.clone()).or_default();
                let report =
                    learned::observe(&mut gate.budget, e, state.in_flight, settings.max_server_wait, now, wall_now);
                // The server's own count says the window is full (not the
                // budget less what is in flight, which may still fit).
                if settings.adaptive
                    && let Some(report) = report.filter(|r| r.remaining <= 0)
                    && gate.adaptive.on_exhausted(self.sent, report.limit, report.reset_at, now)
                {
                    changes.estimate = Some(gate.adaptive.estimate());
                }
            }
        }
        let key = scope.unwrap_or(NO_SCOPE);
        changes.rate_limit = match verdict {
            Verdict::Success => {
                if let Some(gate) = state.scopes.get_mut(key) {
                    gate.cooldown.on_success(self.sent);
                }
                None
            }
            Verdict::RateLimited { .. } if learned_governs => {
                // The learned limit has taken this refusal in (a probe of a
                // window, a step beyond the capacity, or a capacity that
                // dropped) and holds the scope exactly as long as its count
                // says. A cooldown on top (a second or more, then a ramp)
                // idled a run a window's worth for every refusal.
                state.stats.rate_limits += 1;
                Some(RateLimitEffect::Absorbed)
            }
            Verdict::RateLimited { hint, .. } => {
                let hint = hint.map(|h| h.min(settings.max_server_wait));
                let gate = state.scopes.entry(key.to_string()).or_default();
                let effect = gate.cooldown.on_rate_limit(&settings.cooldown, self.sent, hint, now);
                state.stats.rate_limits += 1;
                if let RateLimitEffect::Started(d) = effect {
                    state.stats.cooldowns += 1;
                    state.stats.total_cooldown = state.stats.total_cooldown.saturating_add(d);
                    tracing::warn!(scope = key, cooldown = ?d, "rate limited: pausing the scope");
                }
                Some(effect)
            }
            Verdict::Failed => None,
        };
        changes
    }
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        if self.open {
            let mut state = self.gates.lock();
            state.in_flight -= 1;
            if let Some((key, seq)) = &self.counted {
                let key = match (key.as_str(), &state.default_scope) {
                    (UNSCOPED, Some(scope)) => scope.clone(),
                    _ => key.clone(),
                };
                if let Some(gate) = state.scopes.get_mut(&key) {
                    gate.adaptive.on_dropped(*seq);
                }
            }
            drop(state);
            if let (Some(shared), Some(reservation)) = (&self.gates.shared, &self.reservation) {
                shared.release(reservation);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> GateSettings {
        GateSettings {
            cooldown: CooldownPolicy { slow_start_attempts: 0, ..CooldownPolicy::default() },
            admission: AdmissionLimits::default(),
            learn_from_headers: true,
            adaptive: false,
            max_server_wait: Duration::from_secs(120),
            startup_ramp: None,
        }
    }

    #[test]
    fn the_startup_ramp_grows_attempts_in_flight_from_one() {
        let now = Instant::now();
        let ramp = StartupRamp { over: Duration::from_secs(10), concurrency: 10 };
        let g = Gates::new(GateSettings { startup_ramp: Some(ramp), ..settings() }, now);
        let first = g.try_admit(None, 0, now).expect("one at the start");
        assert!(g.try_admit(None, 0, now).is_err(), "only one at first");
        let later = now + Duration::from_millis(4500);
        let admitted: Vec<_> = (0..10).map_while(|_| g.try_admit(None, 0, later).ok()).collect();
        assert_eq!(admitted.len() + 1, 5, "half-way: five in flight");
        let end = now + Duration::from_secs(10);
        let rest: Vec<_> = (0..100).map_while(|_| g.try_admit(None, 0, end).ok()).collect();
        assert_eq!(rest.len(), 100, "after the ramp, no cap");
        drop((first, admitted, rest));
    }

    fn limit_headers(remaining: &str, reset: &str) -> Exchange {
        Exchange {
            authority: "api:443".into(),
            status: Some(200),
            signal_headers: vec![
                ("x-ratelimit-remaining-requests".into(), remaining.into()),
                ("x-ratelimit-reset-requests".into(), reset.into()),
            ],
            ..Exchange::default()
        }
    }

    #[test]
    fn a_rate_limit_closes_its_scope_and_unknown_scopes_wait_for_every_scope() {
        let now = Instant::now();
        let g = Gates::new(settings(), now);
        let t = g.try_admit(Some("api:443"), 0, now).expect("open");
        let hint = Some(Duration::from_secs(3));
        let effect = t.answered(Some("api:443"), Verdict::RateLimited { hint, kind: LimitKind::Unknown }, &[], 0, now);
        assert_eq!(effect.rate_limit, Some(RateLimitEffect::Started(Duration::from_secs(3))));
        assert_eq!(g.try_admit(Some("api:443"), 0, now).map(|_| ()), Err(Duration::from_secs(3)));
        assert!(g.try_admit(Some("other:443"), 0, now).is_ok());
        assert_eq!(g.try_admit(None, 0, now).map(|_| ()), Err(Duration::from_secs(3)));
        assert_eq!(g.stats().cooldowns, 1);
    }

    #[test]
    fn a_bucket_wait_rechecks_a_cooldown_that_began_meanwhile() {
        let now = Instant::now();
        let g = Gates::new(
            GateSettings { admission: AdmissionLimits { rpm: Some(60.0), tpm: None, burst_secs: 1.0 }, ..settings() },
            now,
        );
        let first = g.try_admit(Some("s"), 0, now).expect("burst of one");
        let wait = g.try_admit(Some("s"), 0, now).map(|_| ()).expect_err("bucket empty");
        assert_eq!(wait, Duration::from_secs(1));
        // While the second attempt waits for its token, the first is refused.
        first.answered(
            Some("s"),
            Verdict::RateLimited { hint: Some(Duration::from_secs(5)), kind: LimitKind::Unknown },
            &[],
            0,
            now,
        );
        let later = now + wait;
        assert_eq!(g.try_admit(Some("s"), 0, later).map(|_| ()), Err(Duration::from_secs(4)));
    }

    #[test]
    fn learned_budgets_count_attempts_in_flight_and_hold_until_the_reset() {
        let now = Instant::now();
        let g = Gates::new(settings(), now);
        let a = g.try_admit(None, 0, now).expect("nothing known yet");
        let b = g.try_admit(None, 0, now).expect("nothing known yet");
        // The server says 2 left while one more attempt is still in flight.
        a.answered(Some("api:443"), Verdict::Success, &[limit_headers("2", "10s")], 0, now);
        let c = g.try_admit(Some("api:443"), 0, now).expect("one left");
        assert_eq!(g.try_admit(Some("api:443"), 0, now).map(|_| ()), Err(Duration::from_secs(10)));
        drop((b, c));
    }

    #[test]
    fn a_burst_spends_the_whole_announced_budget_whatever_order_its_answers_come_in() {
        let now = Instant::now();
        let g = Gates::new(settings(), now);
        let scope = Some("api:443");
        // A window of 6: three attempts reach the server, which answers 5,
        // 4 and 3 left; the answers come back last first.
        let mut sent = (0..3).map(|_| g.try_admit(None, 0, now).expect("nothing known yet")).collect::<Vec<_>>();
        let (c, b, a) = (sent.pop().expect("c"), sent.pop().expect("b"), sent.pop().expect("a"));
        c.answered(scope, Verdict::Success, &[limit_headers("3", "10s")], 0, now);
        // The two still in flight may not be counted yet: one more now.
        let d = g.try_admit(scope, 0, now).expect("3 left less 2 in flight");
        assert!(g.try_admit(scope, 0, now).is_err());
        // They were counted: each answer gives its place back.
        a.answered(scope, Verdict::Success, &[limit_headers("5", "10s")], 0, now);
        b.answered(scope, Verdict::Success, &[limit_headers("4", "10s")], 0, now);
        let e = g.try_admit(scope, 0, now).expect("3 left less 1 in flight");
        let f = g.try_admit(scope, 0, now).expect("3 left less 2 in flight");
        assert_eq!(g.try_admit(scope, 0, now).map(|_| ()), Err(Duration::from_secs(10)), "the seventh waits");
        d.answered(scope, Verdict::Success, &[limit_headers("2", "10s")], 0, now);
        assert!(g.try_admit(scope, 0, now).is_err(), "2 left less the 2 in flight");
        drop((e, f));
    }

    #[test]
    fn a_refusal_the_learned_limit_takes_in_starts_no_cooldown() {
        let now = Instant::now();
        let ms = Duration::from_millis;
        let g = Gates::new(GateSettings { adaptive: true, ..settings() }, now);
        let scope = Some("api:443");
        let limited = Verdict::RateLimited { hint: None, kind: LimitKind::Requests };
        g.try_admit(scope, 0, now).expect("open").answered(scope, Verdict::Success, &[], 0, now + ms(1));
        let first = g.try_admit(scope, 0, now + ms(2)).expect("open");
        let changes = first.answered(scope, limited, &[], 0, now + ms(10));
        assert!(matches!(changes.rate_limit, Some(RateLimitEffect::Started(_))), "one refusal: a cooldown only");
        assert_eq!(changes.estimate, None);
        let after = now + Duration::from_secs(2);
        let second = g.try_admit(scope, 0, after).expect("the cooldown is over");
        let changes = second.answered(scope, limited, &[], 0, after + ms(10));
        assert!(changes.estimate.is_some(), "a second refusal confirms a limit");
        assert_eq!(changes.rate_limit, Some(RateLimitEffect::Absorbed));
        assert_eq!(g.longest_cooldown(after + ms(10)), Duration::ZERO, "the learned limit holds the scope alone");
        assert_eq!(g.stats().rate_limits, 2);
    }

    #[test]
    fn a_refusal_under_an_announced_limit_still_pauses_the_scope() {
        // Another client on the same key: the announced limit is paced, and
        // the provider refuses anyway. A retry must wait for its
        // retry-after, not find the mirror's room at once.
        let now = Instant::now();
        let ms = Duration::from_millis;
        let g = Gates::new(GateSettings { adaptive: true, ..settings() }, now);
        let scope = Some("api:443");
        let announced = |remaining: &str| {
            let mut e = limit_headers(remaining, "1s");
            e.signal_headers.push(("x-ratelimit-limit-requests".into(), "10".into()));
            e
        };
        let full = g.try_admit(scope, 0, now).expect("open");
        let changes = full.answered(scope, Verdict::Success, &[announced("0")], 0, now + ms(1));
        assert!(changes.estimate.is_some(), "the window is full: the announced limit is learned");
        // The probe a window later is accepted: the limit is paced.
        let probe_at = now + ms(1100);
        let probe = g.try_admit(scope, 0, probe_at).expect("the window has room again");
        probe.answered(scope, Verdict::Success, &[announced("9")], 0, probe_at + ms(1));
        let refused = g.try_admit(scope, 0, probe_at + ms(2)).expect("room for ten");
        let limited = Verdict::RateLimited { hint: Some(Duration::from_secs(1)), kind: LimitKind::Requests };
        let changes = refused.answered(scope, limited, &[], 0, probe_at + ms(3));
        assert!(matches!(changes.rate_limit, Some(RateLimitEffect::Started(_))), "{changes:?}");
        assert!(g.try_admit(scope, 0, probe_at + ms(4)).is_err(), "the retry waits");
    }

    #[test]
    fn headers_are_ignored_when_the_user_sets_the_rate() {
        let now = Instant::now();
        let g = Gates::new(GateSettings { learn_from_headers: false, ..settings() }, now);
        let t = g.try_admit(None, 0, now).expect("open");
        t.answered(Some("api:443"), Verdict::Success, &[limit_headers("0", "1h")], 0, now);
        assert!(g.try_admit(Some("api:443"), 0, now).is_ok());
    }

    #[test]
    fn a_server_hint_is_capped_by_the_longest_honoured_wait() {
        let now = Instant::now();
        let g = Gates::new(settings(), now);
        let t = g.try_admit(None, 0, now).expect("open");
        t.answered(None, Verdict::RateLimited { hint: Some(Duration::MAX), kind: LimitKind::Unknown }, &[], 0, now);
        assert_eq!(g.try_admit(None, 0, now).map(|_| ()), Err(Duration::from_secs(120)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_refund_wakes_a_worker_waiting_on_the_token_debt_it_caused() {
        // A job asking for an absurd max_tokens is admitted alone and leaves
        // a debt of years; its answer reports the real usage, and the next
        // item goes at once instead of sleeping on the old wait.
        let now = Instant::now();
        let admission = AdmissionLimits { rpm: None, tpm: Some(60_000.0), burst_secs: 1.0 };
        let g = std::sync::Arc::new(Gates::new(GateSettings { admission, ..settings() }, now));
        let huge = g.try_admit(Some("s"), u64::MAX, now).expect("admitted alone on a full bucket");
        let waiter = {
            let g = g.clone();
            tokio::spawn(async move { g.admit(Some("s"), 10, std::future::pending()).await.is_some() })
        };
        tokio::time::sleep(Duration::from_secs(2)).await;
        huge.answered(Some("s"), Verdict::Success, &[], 50, Instant::now());
        assert!(waiter.await.expect("join"));
        assert!(Instant::now() - now < Duration::from_secs(3));
    }

    #[tokio::test(start_paused = true)]
    async fn waiting_workers_queue_and_the_stop_signal_ends_a_wait_at_once() {
        let now = Instant::now();
        let g = std::sync::Arc::new(Gates::new(settings(), now));
        let t = g.try_admit(Some("s"), 0, now).expect("open");
        t.answered(
            Some("s"),
            Verdict::RateLimited { hint: Some(Duration::from_secs(30)), kind: LimitKind::Unknown },
            &[],
            0,
            now,
        );
        let stop = tokio_util::sync::CancellationToken::new();
        let waiter = {
            let (g, stop) = (g.clone(), stop.clone());
            tokio::spawn(async move { g.admit(Some("s"), 0, stop.cancelled()).await.is_some() })
        };
        tokio::time::sleep(Duration::from_secs(1)).await;
        stop.cancel();
        let started = Instant::now();
        assert!(!waiter.await.expect("join"), "stopped, not admitted");
        assert!(started.elapsed() < Duration::from_millis(10));
        // Without a stop, the wait ends with the cooldown.
        let admitted = g.admit(Some("s"), 0, std::future::pending()).await;
        assert!(admitted.is_some());
        assert_eq!(Instant::now() - now, Duration::from_secs(30));
    }

    /// A shared gate answering reservations from a script, recording when
    /// it was asked.
    #[derive(Debug, Default)]
    struct ScriptedShared {
        /// The slot each reservation gets: due this long from the ask
        /// (negative: already past when the answer came), and whether it
        /// is confirmed 10 ms before.
        slots: Mutex<std::collections::VecDeque<(i64, bool)>>,
        reserved: Mutex<Vec<Instant>>,
        confirmed: Mutex<Vec<Instant>>,
        released: Mutex<u32>,
    }

    impl SharedGate for ScriptedShared {
        fn reserve<'a>(
            &'a self,
            _: &'a GateSettings,
            _: Option<&'a str>,
            _: u64,
        ) -> futures_util::future::BoxFuture<'a, Result<Reserve, SharedGateError>> {
            Box::pin(async move {
                let now = Instant::now();
                self.reserved.lock().expect("lock").push(now);
                let (ms, confirm) = self.slots.lock().expect("lock").pop_front().unwrap_or((0, false));
                let offset = Duration::from_millis(ms.unsigned_abs());
                let due = if ms < 0 { now - offset } else { now + offset };
                let confirm_at = confirm.then(|| due - Duration::from_millis(10));
                Ok(Reserve::Granted(Reservation { due, confirm_at, id: 1, send_ms: 0.0 }))
            })
        }

        fn confirm<'a>(
            &'a self,
            _: Option<&'a str>,
            _: &'a Reservation,
        ) -> futures_util::future::BoxFuture<'a, Result<Option<Duration>, SharedGateError>> {
            Box::pin(async move {
                self.confirmed.lock().expect("lock").push(Instant::now());
                Ok(None)
            })
        }

        fn settle<'a>(
            &'a self,
            _: &'a GateSettings,
            _: &'a Reservation,
            _: Settlement<'a>,
        ) -> futures_util::future::BoxFuture<'a, Result<Option<RateLimitEffect>, SharedGateError>> {
            Box::pin(async move { Ok(None) })
        }

        fn release(&self, _: &Reservation) {
            *self.released.lock().expect("lock") += 1;
        }
    }

    fn scripted(rpm: Option<f64>, slots: &[(i64, bool)]) -> (Arc<ScriptedShared>, Gates) {
        let shared =
            Arc::new(ScriptedShared { slots: Mutex::new(slots.iter().copied().collect()), ..Default::default() });
        let admission = AdmissionLimits { rpm, tpm: None, burst_secs: 0.05 };
        let gates = Gates::shared(GateSettings { admission, ..settings() }, Instant::now(), shared.clone());
        (shared, gates)
    }

    #[tokio::test(start_paused = true)]
    async fn a_shared_slot_is_confirmed_ahead_and_taken_at_its_time() {
        let (shared, gates) = scripted(Some(1200.0), &[(300, true)]);
        let asked = Instant::now();
        let ticket = gates.admit(Some("s"), 0, std::future::pending()).await.expect("admitted");
        assert_eq!(Instant::now() - asked, Duration::from_millis(300), "sent at the slot");
        let confirmed = shared.confirmed.lock().expect("lock").clone();
        assert_eq!(confirmed, vec![asked + Duration::from_millis(290)], "confirmed before the slot");
        assert_eq!(*shared.released.lock().expect("lock"), 0);
        drop(ticket);
    }

    #[tokio::test(start_paused = true)]
    async fn a_shared_slot_reached_too_late_is_given_up_and_asked_again_a_bounded_number_of_times() {
        // At 1,200 RPM a slot may be used up to 50 ms late: one 40 ms late
        // is kept; one 80 ms late (its answer came late) is given up.
        // (The ticket is kept while counting: dropped unanswered, it
        // gives its slot back too.)
        let (shared, gates) = scripted(Some(1200.0), &[(-40, false)]);
        let ticket = gates.admit(Some("s"), 0, std::future::pending()).await.expect("admitted");
        assert_eq!(shared.reserved.lock().expect("lock").len(), 1);
        assert_eq!(*shared.released.lock().expect("lock"), 0);
        drop(ticket);

        let (shared, gates) = scripted(Some(1200.0), &[(-80, false), (200, true)]);
        let asked = Instant::now();
        let ticket = gates.admit(Some("s"), 0, std::future::pending()).await.expect("admitted");
        assert_eq!(shared.reserved.lock().expect("lock").len(), 2, "asked again");
        assert_eq!(*shared.released.lock().expect("lock"), 1, "the late slot was given up");
        assert_eq!(Instant::now() - asked, Duration::from_millis(200), "sent at the second slot");
        drop(ticket);

        // A host that can keep no slot still sends: after LATE_SLOTS given
        // up, the next is taken late.
        let late = vec![(-80, false); LATE_SLOTS as usize + 2];
        let (shared, gates) = scripted(Some(1200.0), &late);
        let ticket = gates.admit(Some("s"), 0, std::future::pending()).await.expect("admitted");
        assert_eq!(shared.reserved.lock().expect("lock").len(), LATE_SLOTS as usize + 1);
        assert_eq!(*shared.released.lock().expect("lock"), LATE_SLOTS);
        drop(ticket);
    }

    #[tokio::test(start_paused = true)]
    async fn without_buckets_a_shared_slot_is_never_late() {
        let (shared, gates) = scripted(None, &[(-5000, false)]);
        let ticket = gates.admit(Some("s"), 0, std::future::pending()).await.expect("admitted");
        assert_eq!(shared.reserved.lock().expect("lock").len(), 1);
        assert_eq!(*shared.released.lock().expect("lock"), 0);
        drop(ticket);
    }

    #[test]
    fn the_late_tolerance_is_one_requests_room_within_bounds() {
        let limits = |rpm, tpm| AdmissionLimits { rpm, tpm, burst_secs: 1.0 };
        assert_eq!(late_tolerance(&limits(Some(1200.0), None), 0), Some(Duration::from_millis(50)));
        assert_eq!(late_tolerance(&limits(Some(60.0), None), 0), Some(LATE_MAX));
        assert_eq!(late_tolerance(&limits(Some(60_000.0), None), 0), Some(LATE_MIN));
        // 6,000 tokens of 60,000 a minute take 6 s: the cap.
        assert_eq!(late_tolerance(&limits(Some(60_000.0), Some(60_000.0)), 6000), Some(LATE_MAX));
        assert_eq!(late_tolerance(&limits(None, Some(600_000.0)), 1000), Some(Duration::from_millis(100)));
        assert_eq!(late_tolerance(&limits(None, None), 1000), None);
    }
}
