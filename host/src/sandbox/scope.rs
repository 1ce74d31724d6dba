//! The facts of the call a plugin instance is currently serving.
//!
//! Shared between a store's data and its `wasi:http` hooks (which must hand
//! out `'static` futures), so both HTTP paths record into the same place.
//!
//! The record is bounded: a plugin calling the host in a loop (say, retrying
//! a denied request until its CPU budget runs out) must not grow the host's
//! memory. The engine needs the most recent answers (status, rate-limit
//! headers) and whether anything was denied, so the scope keeps the last
//! [`MAX_EXCHANGES`] exchanges plus the first denial.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use crate::model::Exchange;

/// The current call's item, deadline and the HTTP exchanges it made.
#[derive(Debug, Clone, Default)]
pub struct CallScope {
    inner: Arc<Mutex<ScopeInner>>,
}

/// Exchanges kept per call (the most recent ones).
pub const MAX_EXCHANGES: usize = 64;

#[derive(Debug, Default)]
struct ScopeInner {
    item_id: Option<String>,
    deadline: Option<Instant>,
    exchanges: VecDeque<Exchange>,
    /// The first denial of the call, kept even when it falls out of `exchanges`.
    first_denial: Option<Exchange>,
}

impl CallScope {
    fn lock(&self) -> MutexGuard<'_, ScopeInner> {
        // A poisoned lock only means another thread panicked mid-update of
        // plain data; the data is still usable.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts a call: sets its item and deadline and clears old exchanges.
    pub fn begin(&self, item_id: Option<&str>, deadline: Option<Instant>) {
        let mut s = self.lock();
        s.item_id = item_id.map(str::to_string);
        s.deadline = deadline;
        s.exchanges.clear();
        s.first_denial = None;
    }

    /// Ends a call and returns the exchanges it made.
    pub fn finish(&self) -> Vec<Exchange> {
        let mut s = self.lock();
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

    /// Records one HTTP exchange of the current call.
    pub fn record(&self, exchange: Exchange) {
        let mut s = self.lock();
        if exchange.denied.is_some() && s.first_denial.is_none() {
            s.first_denial = Some(exchange.clone());
        }
        if s.exchanges.len() == MAX_EXCHANGES {
            s.exchanges.pop_front();
        }
        s.exchanges.push_back(exchange);
    }
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
        scope.record(Exchange { denied: Some("first".into()), ..Exchange::default() });
        for i in 0..10_000 {
            scope.record(exchange(200 + (i % 2) as u16));
        }
        scope.record(exchange(429));
        let kept = scope.finish();
        assert_eq!(kept.len(), MAX_EXCHANGES + 1);
        assert_eq!(kept[0].denied.as_deref(), Some("first"));
        assert_eq!(kept.last().and_then(|e| e.status), Some(429));
        scope.begin(None, None);
        assert!(scope.finish().is_empty(), "a new call starts empty");
    }
}
