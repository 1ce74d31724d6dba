//! The service's shared state: the store, the tenants (swapped whole on a
//! reload), each tenant's shared limits, and the batches running now.
//!
//! **Fairness between tenants.** Every batch is its own engine run, with
//! its own plugin instances and its own egress (grants, secrets). What a
//! tenant's batches share is the tenant's [`TenantRuntime`]: one set of
//! gates (its RPM/TPM buckets and cooldowns, so a 429 storm pauses that
//! tenant only) and one semaphore of items in flight
//! (`max-concurrent-items`), so a tenant with many batches or a slow
//! plugin cannot take more than its share of workers, and each plugin call
//! is bounded in CPU and memory by the tenant's sandbox limits.
//!
//! **Several instances.** Started with `--cluster URL`, the gates of a
//! tenant decide in Redis (`cluster::limiter`) under the tenant's name and
//! the fingerprint of its secrets (its API key: one provider quota): every
//! `serve` instance on that Redis then holds the tenant to one RPM/TPM
//! budget, pauses it on one cooldown and learns one header budget. The item
//! semaphore stays per instance (it bounds this machine's work).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use tokio::sync::Semaphore;

use super::objects::{Batch, RequestCounts, Usage};
use super::store::{Store, StoreError};
use super::tenants::{Tenant, Tenants};
use crate::cluster::limiter::RedisLimiter;
use crate::run::gate::Gates;
use crate::run::{GateSettings, Metrics, StopHandle};

/// What all of a tenant's batches share.
#[derive(Debug)]
pub struct TenantRuntime {
    pub gates: Arc<Gates>,
    pub items: Arc<Semaphore>,
    /// What the runtime was built from, to keep it across a reload that
    /// changed nothing about it: the gates' settings, the items in flight
    /// and the fingerprint of the tenant's secrets (its provider quota).
    settings: (GateSettings, usize, String),
}

/// A batch that is not in an end state, while this process drives it.
#[derive(Debug)]
pub struct Active {
    pub tenant: String,
    /// The batch; the source of truth while it is active (the store has
    /// the last saved copy).
    pub batch: Mutex<Batch>,
    pub stop: StopHandle,
    /// The running engine's counters, once it runs.
    pub metrics: Mutex<Option<Arc<Metrics>>>,
    pub cancel: AtomicBool,
}

impl Active {
    pub fn new(tenant: &str, batch: Batch) -> Self {
        Active {
            tenant: tenant.into(),
            batch: Mutex::new(batch),
            stop: StopHandle::default(),
            metrics: Mutex::new(None),
            cancel: AtomicBool::new(false),
        }
    }

    /// The batch as a client sees it now: live counts while it runs.
    pub fn view(&self) -> Batch {
        let mut batch = lock(&self.batch).clone();
        if let Some(metrics) = lock(&self.metrics).as_ref() {
            let s = metrics.snapshot();
            if s.started && batch.output_file_id.is_none() && batch.error_file_id.is_none() {
                batch.request_counts = RequestCounts { total: s.jobs, completed: s.succeeded, failed: s.failed };
                let total = s.input_tokens.saturating_add(s.output_tokens);
                batch.usage = Some(Usage {
                    input_tokens: s.input_tokens,
                    input_tokens_details: super::objects::InputTokensDetails { cached_tokens: s.cached_input_tokens },
                    output_tokens: s.output_tokens,
                    output_tokens_details: super::objects::OutputTokensDetails { reasoning_tokens: s.reasoning_tokens },
                    total_tokens: total,
                });
                batch.batchllm.cost_usd = s.cost_usd;
            }
        }
        batch
    }

    /// Changes the batch under its lock and returns a copy to save.
    pub fn update(&self, f: impl FnOnce(&mut Batch)) -> Batch {
        let mut batch = lock(&self.batch);
        f(&mut batch);
        batch.clone()
    }

    pub fn live_cost(&self) -> f64 {
        lock(&self.metrics).as_ref().map_or(0.0, |m| m.snapshot().cost_usd)
    }
}

pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The service.
#[derive(Debug)]
pub struct Service {
    pub store: Arc<Store>,
    tenants: RwLock<Arc<Tenants>>,
    runtimes: Mutex<HashMap<String, Arc<TenantRuntime>>>,
    pub active: Mutex<HashMap<String, Arc<Active>>>,
    pub cache_dir: PathBuf,
    /// Set when the server stops: runs end without changing their batches'
    /// state, so the next start resumes them.
    pub shutting_down: AtomicBool,
    /// Driver tasks, to wait for on shutdown.
    pub tasks: tokio_util::task::TaskTracker,
    /// `--cluster`: the Redis the tenants' limits live in.
    shared: Option<redis::aio::ConnectionManager>,
}

impl Service {
    pub fn new(store: Store, tenants: Tenants, cache_dir: PathBuf) -> Self {
        Service {
            store: Arc::new(store),
            tenants: RwLock::new(Arc::new(tenants)),
            runtimes: Mutex::new(HashMap::new()),
            active: Mutex::new(HashMap::new()),
            cache_dir,
            shutting_down: AtomicBool::new(false),
            tasks: tokio_util::task::TaskTracker::new(),
            shared: None,
        }
    }

    /// Keeps every tenant's limits in this Redis (`--cluster`).
    pub fn with_shared_limits(self, shared: Option<redis::aio::ConnectionManager>) -> Self {
        Service { shared, ..self }
    }

    pub fn tenants(&self) -> Arc<Tenants> {
        self.tenants.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Replaces the tenants (a reload). Running batches keep the tenant and
    /// runtime they started with.
    pub fn replace_tenants(&self, tenants: Tenants) {
        *self.tenants.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(tenants);
    }

    /// The tenant's shared limits, kept across reloads that leave them as
    /// they were. `quota` is the fingerprint of the secrets its batches run
    /// with (what names its limits in Redis).
    pub fn runtime(&self, tenant: &Tenant, quota: &str) -> Arc<TenantRuntime> {
        let settings = (tenant.gates.clone(), tenant.max_concurrent_items(), quota.to_string());
        let mut runtimes = lock(&self.runtimes);
        if let Some(r) = runtimes.get(&tenant.name)
            && r.settings == settings
        {
            return r.clone();
        }
        let now = tokio::time::Instant::now();
        let gates = match &self.shared {
            Some(conn) => {
                let limiter = RedisLimiter::new(conn.clone(), quota, &format!("tenant={}", tenant.name));
                Gates::shared(settings.0.clone(), now, Arc::new(limiter))
            }
            None => Gates::new(settings.0.clone(), now),
        };
        let runtime =
            Arc::new(TenantRuntime { gates: Arc::new(gates), items: Arc::new(Semaphore::new(settings.1)), settings });
        runtimes.insert(tenant.name.clone(), runtime.clone());
        runtime
    }

    /// The runtime a tenant has now, if any batch of it ever ran.
    pub fn runtime_of(&self, tenant: &str) -> Option<Arc<TenantRuntime>> {
        lock(&self.runtimes).get(tenant).cloned()
    }

    pub fn active_batch(&self, tenant: &str, id: &str) -> Option<Arc<Active>> {
        lock(&self.active).get(id).filter(|a| a.tenant == tenant).cloned()
    }

    /// The tenant's live spend: cost of its running batches so far.
    pub fn live_spend(&self, tenant: &str) -> f64 {
        lock(&self.active).values().filter(|a| a.tenant == tenant).map(|a| a.live_cost()).sum()
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Acquire)
    }

    /// Runs a store call on the blocking pool.
    pub async fn db<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let store = self.store.clone();
        match tokio::task::spawn_blocking(move || f(&store)).await {
            Ok(result) => result,
            Err(e) => Err(StoreError::Io { path: PathBuf::from("serve.db"), source: std::io::Error::other(e) }),
        }
    }
}

/// Days since the epoch, UTC, for the daily cost quota.
pub fn utc_day(unix: i64) -> i64 {
    unix.div_euclid(86_400)
}

/// Seconds until the next UTC midnight.
pub fn until_midnight(unix: i64) -> i64 {
    86_400 - unix.rem_euclid(86_400)
}
