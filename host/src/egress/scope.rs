//! The call a plugin instance is serving, and the HTTP it may make in it.
//!
//! One scope per plugin instance, shared by the store's data (the
//! `http.send` import) and its `wasi:http` hooks (which must hand out
//! `'static` futures), so both doors record into the same place and draw on
//! the same budgets:
//! - **requests per call** ([`EgressLimits::max_requests_per_call`]):
//!   `wasi:http` lets a guest start requests without waiting for any, so one
//!   call could otherwise put thousands in flight, and nothing else would
//!   notice: `--concurrency`, the RPM/TPM buckets, cooldowns and budgets all
//!   act per attempt. A request over the budget is denied;
//! - **requests in flight** per instance
//!   ([`EgressLimits::max_requests_in_flight`]): the rest wait their turn
//!   (within their own timeout);
//! - **response bytes held** per instance
//!   ([`EgressLimits::max_buffered_response_bytes`]): a response is read into
//!   host memory before the plugin takes it, and a guest may leave
//!   `wasi:http` responses unread; their bytes count until the guest has
//!   read or dropped them ([`BufferHold`]). A response that would go over is
//!   refused as too large.
//!
//! Requests belong to the call that started them: when the call ends, those
//! still running are cancelled, and a late answer is never recorded against
//! the next call (another item's exchanges).
//!
//! The record is bounded too: a plugin calling the host in a loop (say,
//! retrying a denied request until its CPU budget runs out) must not grow
//! the host's memory. The engine needs the most recent answers (status,
//! rate-limit headers) and whether anything was denied, so the scope keeps
//! the last [`MAX_EXCHANGES`] exchanges plus the first denial.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use super::client::EgressLimits;
use super::policy::Denial;
use crate::model::Exchange;

/// Exchanges kept per call (the most recent ones).
pub const MAX_EXCHANGES: usize = 64;

/// The current call's item, deadline, budgets and the HTTP exchanges it made.
#[derive(Debug, Clone)]
pub struct CallScope {
    inner: Arc<Mutex<ScopeInner>>,
    in_flight: Arc<Semaphore>,
    buffered: ByteBudget,
    max_requests: u32,
}

#[derive(Debug, Default)]
struct ScopeInner {
    item_id: Option<String>,
    deadline: Option<Instant>,
    exchanges: VecDeque<Exchange>,
    /// The first denial of the call, kept even when it falls out of `exchanges`.
    first_denial: Option<Exchange>,
    /// Which call this is; requests of earlier calls record nothing.
    generation: u64,
    /// Requests admitted in this call.
    requests: u32,
    /// Cancelled when the call ends: its requests stop with it.
    ended: CancellationToken,
}

impl Default for CallScope {
    fn default() -> Self {
        CallScope::new(&EgressLimits::default())
    }
}

/// One request admitted into a call (or refused by its budget).
#[derive(Debug, Clone)]
pub struct Ticket {
    generation: u64,
    ended: CancellationToken,
    deadline: Option<Instant>,
    refused: Option<Denial>,
    /// The in-flight slot, once taken ([`CallScope::seat`]).
    slot: Option<Arc<OwnedSemaphorePermit>>,
}

impl Ticket {
    /// The call's deadline when the request was made.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// Why the call's budget refused the request, if it did.
    pub fn refused(&self) -> Option<&Denial> {
        self.refused.as_ref()
    }

    /// Resolves when the call that made the request has ended.
    pub async fn call_ended(&self) {
        self.ended.cancelled().await;
    }

    /// Whether the request already holds an in-flight slot.
    pub(crate) fn seated(&self) -> bool {
        self.slot.is_some()
    }
}

impl CallScope {
    /// A scope for one plugin instance, with the budgets of `limits`.
    pub fn new(limits: &EgressLimits) -> Self {
        CallScope {
            inner: Arc::default(),
            in_flight: Arc::new(Semaphore::new(limits.max_requests_in_flight.max(1))),
            buffered: ByteBudget::new(limits.max_buffered_response_bytes),
            max_requests: limits.max_requests_per_call,
        }
    }

    fn lock(&self) -> MutexGuard<'_, ScopeInner> {
        // A poisoned lock only means another thread panicked mid-update of
        // plain data; the data is still usable.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts a call: sets its item and deadline, a fresh request budget,
    /// and clears old exchanges.
    pub fn begin(&self, item_id: Option<&str>, deadline: Option<Instant>) {
        let mut s = self.lock();
        s.ended.cancel();
        s.ended = CancellationToken::new();
        s.generation = s.generation.wrapping_add(1);
        s.requests = 0;
        s.item_id = item_id.map(str::to_string);
        s.deadline = deadline;
        s.exchanges.clear();
        s.first_denial = None;
    }

    /// Ends a call: cancels the requests still running and returns the
    /// exchanges it made.
    pub fn finish(&self) -> Vec<Exchange> {
        let mut s = self.lock();
        s.ended.cancel();
        s.generation = s.generation.wrapping_add(1);
        s.item_id = None;
        s.deadline = None;
        let mut exchanges = std::mem::take(&mut s.exchanges);
        if let Some(denial) = s.first_denial.take()
            && !exchanges.iter().any(|e| e.denied.is_some())
        {
            exchanges.push_front(denial);
        }
        exchanges.into()
    }

    /// The item being processed, for log tags.
    pub fn item_id(&self) -> Option<String> {
        self.lock().item_id.clone()
    }

    /// The current call's deadline.
    pub fn deadline(&self) -> Option<Instant> {
        self.lock().deadline
    }

    /// Takes one request from the current call's budget. Call it when the
    /// plugin hands the request over (not later, in a spawned task), so the
    /// request belongs to the call that made it.
    pub fn admit(&self) -> Ticket {
        let mut s = self.lock();
        let refused = if s.requests >= self.max_requests {
            Some(Denial::RequestBudget { limit: self.max_requests })
        } else {
            s.requests += 1;
            None
        };
        Ticket { generation: s.generation, ended: s.ended.clone(), deadline: s.deadline, refused, slot: None }
    }

    /// Waits for a free in-flight slot of this instance.
    pub(crate) async fn slot(&self) -> Option<OwnedSemaphorePermit> {
        self.in_flight.clone().acquire_owned().await.ok()
    }

    /// Takes an in-flight slot for `ticket` now, before its request body is
    /// read (a `wasi:http` body streams in after the request is handed
    /// over): requests waiting for a slot hold no body.
    pub async fn seat(&self, ticket: &mut Ticket) {
        if ticket.slot.is_none() {
            ticket.slot = self.slot().await.map(Arc::new);
        }
    }

    /// The instance's budget of buffered response bytes.
    pub(crate) fn buffered(&self) -> &ByteBudget {
        &self.buffered
    }

    /// Records one HTTP exchange of the call `ticket` belongs to; one of an
    /// earlier call is dropped.
    pub fn record(&self, ticket: &Ticket, exchange: Exchange) {
        let mut s = self.lock();
        if ticket.generation != s.generation {
            tracing::debug!(target: "batchllm::egress", authority = %exchange.authority,
                "an HTTP exchange ended after its call; not recorded");
            return;
        }
        if exchange.denied.is_some() && s.first_denial.is_none() {
            s.first_denial = Some(exchange.clone());
        }
        if s.exchanges.len() == MAX_EXCHANGES {
            s.exchanges.pop_front();
        }
        s.exchanges.push_back(exchange);
    }
}

/// Bytes of responses the host holds for one instance, with a ceiling.
#[derive(Debug, Clone)]
pub struct ByteBudget {
    used: Arc<AtomicUsize>,
    max: usize,
}

impl ByteBudget {
    /// A budget of `max` bytes.
    pub fn new(max: usize) -> Self {
        ByteBudget { used: Arc::default(), max }
    }

    /// The ceiling.
    pub fn max(&self) -> usize {
        self.max
    }

    /// Bytes held now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }

    /// An empty hold on this budget, grown as a response is read.
    pub fn hold(&self) -> BufferHold {
        BufferHold { budget: self.clone(), bytes: 0 }
    }
}

/// Bytes reserved from a [`ByteBudget`] for one response; given back when
/// dropped (when the plugin has the response, or dropped it).
#[derive(Debug)]
pub struct BufferHold {
    budget: ByteBudget,
    bytes: usize,
}

impl BufferHold {
    /// Reserves `n` more bytes; refuses (reserving nothing) when the budget
    /// would go over its ceiling.
    pub fn grow(&mut self, n: usize) -> Result<(), BudgetExceeded> {
        let used = &self.budget.used;
        let mut current = used.load(Ordering::Acquire);
        loop {
            let next = current.checked_add(n).filter(|&next| next <= self.budget.max);
            let Some(next) = next else {
                return Err(BudgetExceeded { max: self.budget.max });
            };
            match used.compare_exchange_weak(current, next, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => break,
                Err(actual) => current = actual,
            }
        }
        self.bytes += n;
        Ok(())
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

impl Drop for BufferHold {
    fn drop(&mut self) {
        self.budget.used.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

/// A [`ByteBudget`] had no room left.
#[derive(Debug, Clone, Copy, thiserror::Error, PartialEq, Eq)]
#[error("the responses this plugin instance holds would exceed {max} bytes (read or drop earlier responses first)")]
pub struct BudgetExceeded {
    pub max: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exchange(status: u16) -> Exchange {
        Exchange { status: Some(status), ..Exchange::default() }
    }

    #[test]
    fn the_record_is_bounded_and_keeps_the_last_answers_and_the_first_denial() {
        let scope = CallScope::default();
        scope.begin(Some("a"), None);
        let ticket = scope.admit();
        scope.record(&ticket, Exchange { denied: Some("first".into()), ..Exchange::default() });
        for i in 0..10_000 {
            scope.record(&ticket, exchange(200 + (i % 2) as u16));
        }
        scope.record(&ticket, exchange(429));
        let kept = scope.finish();
        assert_eq!(kept.len(), MAX_EXCHANGES + 1);
        assert_eq!(kept[0].denied.as_deref(), Some("first"));
        assert_eq!(kept.last().and_then(|e| e.status), Some(429));
        scope.begin(None, None);
        assert!(scope.finish().is_empty(), "a new call starts empty");
    }

    #[test]
    fn each_call_has_its_own_request_budget() {
        let limits = EgressLimits { max_requests_per_call: 3, ..EgressLimits::default() };
        let scope = CallScope::new(&limits);
        scope.begin(Some("a"), None);
        let refused: Vec<bool> = (0..5).map(|_| scope.admit().refused().is_some()).collect();
        assert_eq!(refused, [false, false, false, true, true]);
        let denial = scope.admit().refused().cloned().expect("refused");
        assert!(denial.to_string().contains("3 requests"), "{denial}");
        scope.finish();
        scope.begin(Some("b"), None);
        assert!(scope.admit().refused().is_none(), "the next call starts afresh");
    }

    #[tokio::test]
    async fn a_request_of_an_ended_call_is_cancelled_and_not_recorded_in_the_next() {
        let scope = CallScope::default();
        scope.begin(Some("a"), None);
        let late = scope.admit();
        scope.finish();
        tokio::time::timeout(std::time::Duration::from_secs(1), late.call_ended()).await.expect("cancelled");
        scope.begin(Some("b"), None);
        scope.record(&late, exchange(429));
        let current = scope.admit();
        scope.record(&current, exchange(200));
        let kept = scope.finish();
        assert_eq!(kept.iter().map(|e| e.status).collect::<Vec<_>>(), [Some(200)]);
    }

    #[test]
    fn held_bytes_are_bounded_and_given_back() {
        let budget = ByteBudget::new(100);
        let mut a = budget.hold();
        a.grow(60).expect("fits");
        let mut b = budget.hold();
        assert_eq!(b.grow(50), Err(BudgetExceeded { max: 100 }));
        assert_eq!(b.bytes(), 0, "a refused reservation takes nothing");
        b.grow(40).expect("fits exactly");
        assert_eq!(budget.used(), 100);
        drop(a);
        assert_eq!(budget.used(), 40);
        drop(b);
        assert_eq!(budget.used(), 0);
        assert!(budget.hold().grow(usize::MAX).is_err(), "no overflow");
    }
}
