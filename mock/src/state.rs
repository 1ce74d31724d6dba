//! The state shared by every handler of one server.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::http::{HeaderName, HeaderValue};
use tokio::sync::watch;

use crate::anthropic::PromptCache;
use crate::config::MockConfig;
use crate::faults::Faults;
use crate::gemini::CacheStore;
use crate::limits::Limits;
use crate::log::RequestLog;

/// Handle to the shared state, as handed to axum handlers.
pub(crate) type App = Arc<Shared>;

/// Everything one server's handlers share.
#[derive(Debug)]
pub(crate) struct Shared {
    /// The configuration the server was started with.
    pub config: MockConfig,
    /// The request log.
    pub log: RequestLog,
    /// The rate-limit window.
    pub limits: Limits,
    /// The fault injector.
    pub faults: Faults,
    /// Anthropic prompt-cache prefixes seen so far.
    pub prompt_cache: PromptCache,
    /// Gemini explicit context caches.
    pub gemini_caches: CacheStore,
    /// `MockConfig::extra_headers`, parsed once.
    pub extra_headers: Vec<(HeaderName, HeaderValue)>,
    /// Becomes `true` when the server shuts down; cuts injected delays short.
    stopping: watch::Receiver<bool>,
}

impl Shared {
    /// State for a server configured by `config`, stopping when `stopping`
    /// turns `true`. Fails if the log file cannot be opened.
    pub(crate) fn new(config: MockConfig, stopping: watch::Receiver<bool>) -> anyhow::Result<Self> {
        let log = RequestLog::open(config.log_file.as_deref(), config.keep_requests)?;
        let (limits, faults) = (Limits::new(&config), Faults::new(&config));
        let (prompt_cache, gemini_caches) = (PromptCache::default(), CacheStore::default());
        let extra_headers = config.parsed_headers()?;
        Ok(Self { config, log, limits, faults, prompt_cache, gemini_caches, extra_headers, stopping })
    }

    /// Clears the log, the rate windows, the fault state (per-prompt
    /// counters, RNG) and the provider caches; `seq` and the clock keep
    /// running.
    pub(crate) fn reset(&self) {
        self.log.clear();
        self.limits.clear();
        self.faults.reset();
        self.prompt_cache.clear();
        self.gemini_caches.clear();
    }

    /// Waits `delay`, or less if the server shuts down meanwhile (so that a
    /// hung request never holds up a shutdown).
    pub(crate) async fn sleep(&self, delay: Duration) {
        if delay.is_zero() {
            return;
        }
        let mut stopping = self.stopping.clone();
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            _ = stopping.wait_for(|stop| *stop) => {}
        }
    }
}

/// Locks `mutex`, ignoring poisoning: every critical section here leaves the
/// data consistent, so a panic elsewhere is no reason to stop serving.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
