//! `batchllm-host serve`: one long-running server that many tenants use at
//! once, through the OpenAI Files and Batches API their code already speaks
//! (`OpenAI(base_url="http://host:8080/v1", api_key=TENANT_KEY)`).
//!
//! Each batch is a run of the same engine the CLI runs, with the same
//! guarantees (the whole input validated before anything is sent, exactly
//! one record per line, at most one send per request across crashes, cost
//! per record). Around it:
//! - [`tenants`]: the tenants file: hashed keys, each tenant's plugin,
//!   grants, secrets, sandbox limits and quotas; reloaded on SIGHUP;
//! - [`store`]: files and batch state in an embedded SQLite database in the
//!   data directory (why SQLite: see there);
//! - [`service`]: what is shared at run time: the tenants, each tenant's
//!   gates and item semaphore, the batches running now; with `--cluster
//!   URL`, each tenant's gates decide in Redis (`cluster::limiter`), so
//!   several `serve` instances hold one limit per tenant and API key;
//! - [`batch`]: one batch's life, from `validating` to an end state, saved
//!   at every step so a killed server resumes it;
//! - [`api`]: the HTTP API (axum, already the metrics endpoint's server;
//!   uploads through axum's multipart extractor, streamed to disk);
//! - [`anthropic`]: Anthropic's Message Batches API over the same batches;
//! - [`page`]: the status page on `/` and per-tenant `/metrics`.
//!
//! **Signals.** SIGHUP reloads the tenants file: new batches use the new
//! settings, running ones keep theirs, and a file with a mistake is refused
//! (logged) while the old one stays in force. SIGINT and SIGTERM stop the
//! server: no new connection, every run stops as the CLI stops on a signal
//! (requests on the wire get the tenant's `stop-grace`), batches keep their
//! state, and the next start resumes them. A second signal drops the
//! requests on the wire (`outcome_unknown`).

pub mod anthropic;
pub mod api;
pub mod batch;
pub mod objects;
pub mod page;
pub mod service;
pub mod store;
pub mod tenants;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::routing::get;

use service::{Service, lock};
use store::{Store, StoreError};
use tenants::{Tenants, TenantsError};

/// How to run the server.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub tenants: PathBuf,
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    /// Compiled plugins [default: `<data>/plugin-cache`].
    pub cache_dir: Option<PathBuf>,
    /// `--cluster URL`: the tenants' limits live in this Redis, shared with
    /// every `serve` instance started with the same URL.
    pub cluster: Option<crate::cluster::ClusterUrl>,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Tenants(#[from] TenantsError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("the server failed: {0}")]
    Serve(#[source] std::io::Error),
    #[error("--cluster: cannot reach Redis at {url:?}: {source}")]
    Cluster {
        url: crate::cluster::ClusterUrl,
        #[source]
        source: redis::RedisError,
    },
}

/// Runs the server until SIGINT or SIGTERM; `ready` gets the bound address.
pub async fn serve(options: ServeOptions, ready: impl FnOnce(SocketAddr)) -> Result<(), ServeError> {
    let store = Store::open(&options.data_dir)?;
    let cache = options.cache_dir.clone().unwrap_or_else(|| options.data_dir.join("plugin-cache"));
    let tenants = Tenants::load(&options.tenants, &cache)?;
    tracing::info!(tenants = tenants.tenants.len(), file = %options.tenants.display(), "tenants loaded");
    let shared = match &options.cluster {
        Some(url) => {
            let conn = crate::cluster::limiter::connect(url.as_str())
                .await
                .map_err(|source| ServeError::Cluster { url: url.clone(), source })?;
            tracing::info!(redis = ?url, "tenants' limits shared with every serve instance on this Redis");
            Some(conn)
        }
        None => None,
    };
    let svc = Arc::new(Service::new(store, tenants, cache.clone()).with_shared_limits(shared));
    resume(&svc).await?;

    let listener = tokio::net::TcpListener::bind(options.listen)
        .await
        .map_err(|source| ServeError::Listen { addr: options.listen, source })?;
    let bound = listener.local_addr().map_err(ServeError::Serve)?;
    let app = Router::new()
        .route("/", get(page::page))
        .route("/metrics", get(page::metrics))
        .merge(api::routes())
        .merge(anthropic::routes())
        .fallback(api::unknown)
        .method_not_allowed_fallback(api::unknown)
        .with_state(svc.clone());
    ready(bound);
    tracing::info!(%bound, "serving the OpenAI Files and Batches API on http://{bound}/v1");

    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let signals = tokio::spawn(watch_signals(svc.clone(), options.tenants.clone(), cache, stop_tx));
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = stop_rx.await;
        })
        .await;
    // The runs were stopped by the signal; wait for their drivers.
    svc.tasks.close();
    svc.tasks.wait().await;
    signals.abort();
    served.map_err(ServeError::Serve)
}

/// Takes up every batch a previous process left unfinished.
async fn resume(svc: &Arc<Service>) -> Result<(), ServeError> {
    let pending = svc.db(|s| s.active_batches()).await?;
    let tenants = svc.tenants();
    for (tenant, batch) in pending {
        match tenants.get(&tenant) {
            Some(t) => {
                tracing::info!(batch = %batch.id, tenant = %tenant, status = batch.status.as_str(), "resuming");
                batch::start(svc, t.clone(), Arc::new(service::Active::new(&tenant, batch)));
            }
            None => tracing::warn!(
                batch = %batch.id,
                tenant = %tenant,
                "the batch's tenant is no longer in the tenants file; it waits until the tenant is back"
            ),
        }
    }
    Ok(())
}

async fn watch_signals(svc: Arc<Service>, path: PathBuf, cache: PathBuf, stop: tokio::sync::oneshot::Sender<()>) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term), Ok(mut hup)) =
        (signal(SignalKind::interrupt()), signal(SignalKind::terminate()), signal(SignalKind::hangup()))
    else {
        tracing::error!("cannot listen for signals");
        return;
    };
    loop {
        tokio::select! {
            _ = hup.recv() => reload(&svc, &path, &cache).await,
            _ = int.recv() => break,
            _ = term.recv() => break,
        }
    }
    tracing::warn!(
        "stopping: batches keep their state and resume at the next start (a second signal drops requests on the wire)"
    );
    svc.shutting_down.store(true, Ordering::Release);
    let active: Vec<_> = lock(&svc.active).values().cloned().collect();
    for a in &active {
        a.stop.stop();
    }
    let _ = stop.send(());
    tokio::select! {
        _ = int.recv() => {}
        _ = term.recv() => {}
    }
    tracing::error!("second signal: dropping the requests on the wire");
    for a in lock(&svc.active).values() {
        a.stop.stop_now();
    }
}

async fn reload(svc: &Arc<Service>, path: &std::path::Path, cache: &std::path::Path) {
    let (path, cache) = (path.to_path_buf(), cache.to_path_buf());
    let loaded = tokio::task::spawn_blocking(move || Tenants::load(&path, &cache)).await;
    match loaded {
        Ok(Ok(tenants)) => {
            tracing::info!(
                tenants = tenants.tenants.len(),
                "tenants reloaded (SIGHUP); running batches keep their settings"
            );
            svc.replace_tenants(tenants);
            // Batches that waited for their tenant to come back.
            if let Err(e) = resume_orphans(svc).await {
                tracing::error!(error = %e, "resuming batches after the reload failed");
            }
        }
        Ok(Err(e)) => tracing::error!(error = %e, "the tenants file was not reloaded; the previous one stays in force"),
        Err(e) => tracing::error!(error = %e, "the tenants file was not reloaded"),
    }
}

async fn resume_orphans(svc: &Arc<Service>) -> Result<(), StoreError> {
    let pending = svc.db(|s| s.active_batches()).await?;
    let tenants = svc.tenants();
    for (tenant, batch) in pending {
        let running = lock(&svc.active).contains_key(&batch.id);
        if let (false, Some(t)) = (running, tenants.get(&tenant)) {
            batch::start(svc, t.clone(), Arc::new(service::Active::new(&tenant, batch)));
        }
    }
    Ok(())
}
