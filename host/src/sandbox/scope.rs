//! The facts of the call a plugin instance is currently serving.
//!
//! Shared between a store's data and its `wasi:http` hooks (which must hand
//! out `'static` futures), so both HTTP paths record into the same place.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use crate::egress::Exchange;

/// The current call's item, deadline and the HTTP exchanges it made.
#[derive(Debug, Clone, Default)]
pub struct CallScope {
    inner: Arc<Mutex<ScopeInner>>,
}

#[derive(Debug, Default)]
struct ScopeInner {
    item_id: Option<String>,
    deadline: Option<Instant>,
    exchanges: Vec<Exchange>,
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
    }

    /// Ends a call and returns the exchanges it made.
    pub fn finish(&self) -> Vec<Exchange> {
        let mut s = self.lock();
        s.item_id = None;
        s.deadline = None;
        std::mem::take(&mut s.exchanges)
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
        self.lock().exchanges.push(exchange);
    }
}
