//! What every worker of a run shares, grouped by concern.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::control::RunControl;
use crate::model::{FailureClass, ResultRecord};
use crate::results::{Journal, RunIdentity};
use crate::run::gate::Gates;
use crate::run::observe::{Event, EventLog, Metrics};
use crate::run::policy::abort::AbortReason;
use crate::run::policy::retry::RetryPolicy;

/// Per-item time and retry settings.
#[derive(Debug, Clone)]
pub struct ItemSettings {
    pub retry: RetryPolicy,
    /// Limit on one attempt (plugin CPU and HTTP together).
    pub attempt_timeout: Duration,
    /// Limit on the whole item: admission waits, cooldowns, backoff, attempts.
    pub item_timeout: Option<Duration>,
    /// Output tokens charged to the TPM bucket when a job names no maximum.
    pub default_max_output_tokens: u64,
}

/// What stops the run early besides signals: fail-fast classes and budgets.
#[derive(Debug, Default)]
pub struct Budgets {
    /// Failure classes that abort the run.
    pub fail_fast: Vec<FailureClass>,
    /// Stop the run once this many tokens (input + output) are used.
    pub max_total_tokens: Option<u64>,
    /// Stop the run once this many dollars are spent.
    pub max_cost: Option<f64>,
    tokens_used: AtomicU64,
    micro_dollars: AtomicU64,
}

impl Budgets {
    pub fn new(fail_fast: Vec<FailureClass>, max_total_tokens: Option<u64>, max_cost: Option<f64>) -> Self {
        Budgets { fail_fast, max_total_tokens, max_cost, ..Budgets::default() }
    }

    /// Counts a finished item; returns the abort it triggers, if any.
    pub fn charge(&self, record: &ResultRecord) -> Option<AbortReason> {
        let b = &record.batchllm;
        let tokens = b.usage.total();
        let used = self.tokens_used.fetch_add(tokens, Ordering::SeqCst).saturating_add(tokens);
        let micros = micro_dollars(b.cost_usd.unwrap_or(0.0));
        let spent = self.micro_dollars.fetch_add(micros, Ordering::SeqCst).saturating_add(micros);
        // Fail-fast fires as the item ends, before any worker can take
        // another queued item.
        if let Some(class) = b.error_class.filter(|c| self.fail_fast.contains(c)) {
            return Some(AbortReason::FailFast { class, item: record.custom_id.clone() });
        }
        if let Some(limit) = self.max_total_tokens.filter(|&l| used >= l) {
            return Some(AbortReason::Budget { limit: format!("--max-total-tokens {limit}") });
        }
        if let Some(limit) = self.max_cost.filter(|&l| spent as f64 / 1e6 >= l) {
            return Some(AbortReason::Budget { limit: format!("--max-cost {limit}") });
        }
        None
    }
}

/// Dollars as whole micro-dollars, saturating (a price is finite and >= 0,
/// but a plugin's token counts are not trusted).
fn micro_dollars(usd: f64) -> u64 {
    let micros = (usd * 1e6).round();
    if micros.is_nan() || micros <= 0.0 {
        0
    } else if micros >= u64::MAX as f64 {
        u64::MAX
    } else {
        micros as u64
    }
}

/// How records are priced.
#[derive(Debug, Clone)]
pub struct Pricing {
    pub prices: crate::cost::PriceTable,
    /// The plugin configuration's `model`, for items that name none.
    pub default_model: Option<String>,
}

/// Where the run reports what it does.
#[derive(Debug, Default)]
pub struct Observers {
    /// `--events` output.
    pub events: EventLog,
    /// Live counters for `/metrics` (shared with a caller that watches the
    /// run, see `crate::run::RunHooks`).
    pub metrics: Arc<Metrics>,
    /// Items waiting before their next attempt (progress display).
    pub retrying: AtomicU64,
}

impl Observers {
    pub fn new(events: EventLog) -> Self {
        Observers { events, ..Observers::default() }
    }

    /// Emits an event built only when events are written.
    pub fn event<'a>(&self, build: impl FnOnce() -> Event<'a>) {
        if self.events.enabled() {
            self.events.emit(&build());
        }
    }
}

/// Where the ids of items on the wire are noted before they are sent: the
/// journal file beside the results, or a journal shared by the hosts of a
/// cluster (fenced: a host whose work was taken over may not add to it).
#[derive(Debug)]
pub enum InFlight {
    File(Journal),
    Shared(Arc<dyn SharedJournal>),
}

/// Why an item could not be journaled.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// The item is no longer this host's to send (its work was taken over):
    /// it ends here without a record, quietly.
    #[error("{0}")]
    Refused(String),
    /// The journal could not be written: nothing more may be sent.
    #[error("{0}")]
    Failed(String),
}

/// The in-flight journal of a cluster (see `cluster::batch`).
pub trait SharedJournal: Send + Sync + std::fmt::Debug {
    /// Notes that `id` is about to be sent; returns once it is durable.
    fn started<'a>(&'a self, id: &'a str) -> futures_util::future::BoxFuture<'a, Result<(), JournalError>>;
    /// Notes that `id` got a definite answer and is off the wire.
    fn settled<'a>(&'a self, id: &'a str) -> futures_util::future::BoxFuture<'a, Result<(), JournalError>>;
}

impl InFlight {
    /// Records that `id` is about to be sent.
    pub async fn started(&self, id: &str) -> Result<(), JournalError> {
        match self {
            InFlight::File(journal) => journal.started(id).map_err(|e| JournalError::Failed(e.to_string())),
            InFlight::Shared(journal) => journal.started(id).await,
        }
    }

    /// Records that `id` is off the wire with a definite answer.
    pub async fn settled(&self, id: &str) -> Result<(), JournalError> {
        match self {
            InFlight::File(journal) => journal.settled(id).map_err(|e| JournalError::Failed(e.to_string())),
            InFlight::Shared(journal) => journal.settled(id).await,
        }
    }

    /// Removes the journal file: every started item has its record.
    pub fn remove(&self) {
        if let InFlight::File(journal) = self {
            journal.remove();
        }
    }
}

/// What every worker of a run shares.
#[derive(Debug)]
pub struct RunContext {
    pub settings: ItemSettings,
    /// The run's own gates, or gates shared with other runs (a service's
    /// tenant-wide RPM/TPM and cooldowns).
    pub gates: Arc<Gates>,
    /// Items in flight across runs: a worker holds a permit from taking an
    /// item until its record is written. `None`: the run's workers are the
    /// only bound.
    pub items: Option<Arc<tokio::sync::Semaphore>>,
    pub control: RunControl,
    pub budgets: Budgets,
    pub pricing: Pricing,
    /// The plugin and configuration digests stamped on every record.
    pub identity: RunIdentity,
    /// `--schema`: every output must match it.
    pub schema: Option<Arc<crate::schema::OutputSchema>>,
    /// Ids of items on the wire, for at-most-once after a crash.
    pub journal: InFlight,
    pub observe: Observers,
}

impl RunContext {
    /// Aborts the run (the first reason wins) and records the event.
    pub fn abort(&self, reason: AbortReason) {
        let message = reason.message();
        if self.control.abort(reason) {
            self.observe.event(|| Event::Aborted { reason: message });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_saturates() {
        assert_eq!(micro_dollars(f64::NAN), 0);
        assert_eq!(micro_dollars(-1.0), 0);
        assert_eq!(micro_dollars(f64::INFINITY), u64::MAX);
        assert_eq!(micro_dollars(0.25), 250_000);
    }
}
