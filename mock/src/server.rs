//! [`MockServer`]: binds, serves on a background task, shuts down.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::MockConfig;
use crate::log::LoggedRequest;
use crate::state::{App, Shared};
use crate::{anthropic, control, gemini, openai};

/// How long [`MockServer::shutdown`] waits for open connections to finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// A running mock provider, serving on a background tokio task.
///
/// Dropping it also stops the server (without waiting); prefer
/// [`MockServer::shutdown`] to know when the port is free again.
#[derive(Debug)]
pub struct MockServer {
    addr: SocketAddr,
    app: App,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl MockServer {
    /// Validates `config`, binds `config.bind` and starts serving.
    ///
    /// Must be called within a tokio runtime (any flavour).
    pub async fn start(config: MockConfig) -> anyhow::Result<MockServer> {
        config.validate()?;
        let listener =
            TcpListener::bind(config.bind).await.with_context(|| format!("cannot listen on {}", config.bind))?;
        let addr = listener.local_addr()?;
        let (stop, stopping) = watch::channel(false);
        let app = Arc::new(Shared::new(config, stopping.clone())?);
        let task = tokio::spawn(serve(listener, routes(app.clone()), stopping));
        tracing::info!(%addr, "mock provider listening");
        Ok(MockServer { addr, app, stop, task: Some(task) })
    }

    /// The address actually bound (with the real port when `bind` had 0).
    pub fn addr(&self) -> std::net::SocketAddr {
        self.addr
    }

    /// The OpenAI-style base URL, `http://IP:PORT/v1`; an unspecified bind
    /// address (`0.0.0.0`, `::`) is given as `127.0.0.1`.
    pub fn base_url(&self) -> String {
        format!("{}/v1", self.origin())
    }

    /// The bare origin, `http://IP:PORT`, the base URL of the Anthropic
    /// (`/v1/messages`) and Gemini (`/v1beta/...`) endpoints; an unspecified
    /// bind address is given as `127.0.0.1`.
    pub fn origin(&self) -> String {
        let mut addr = self.addr;
        if addr.ip().is_unspecified() {
            addr.set_ip(Ipv4Addr::LOCALHOST.into());
        }
        format!("http://{addr}")
    }

    /// A snapshot of the request log, ordered by `seq`.
    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.app.log.snapshot()
    }

    /// Requests answered per status code since start or the last reset,
    /// counted whether or not [`MockConfig::keep_requests`] is set.
    pub fn status_counts(&self) -> std::collections::BTreeMap<u16, u64> {
        self.app.log.counts()
    }

    /// When requests were answered 2xx since start or the last reset (the
    /// longest gap shows a client that stalled), kept whether or not
    /// [`MockConfig::keep_requests`] is set.
    pub fn pace(&self) -> crate::log::Pace {
        self.app.log.pace()
    }

    /// Clears the log, the rate windows and the fault state, like
    /// `POST /_mock/reset`; request numbering continues, and the capacity
    /// schedule starts again.
    pub fn reset(&self) {
        self.app.reset();
    }

    /// Stops accepting connections, cuts injected delays short (so hung
    /// requests answer at once) and waits briefly for open connections.
    pub async fn shutdown(mut self) {
        self.stop.send_replace(true);
        let Some(mut task) = self.task.take() else {
            return;
        };
        if tokio::time::timeout(SHUTDOWN_GRACE, &mut task).await.is_err() {
            tracing::warn!("mock provider did not stop in time; aborting it");
            task.abort();
        }
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        self.stop.send_replace(true);
    }
}

/// Every route of the server.
fn routes(app: App) -> Router {
    Router::new()
        .merge(control::router())
        .merge(openai::router())
        .merge(anthropic::router())
        .merge(gemini::router())
        .fallback(openai::not_found)
        .with_state(app)
}

/// Serves until `stopping` turns `true`.
async fn serve(listener: TcpListener, router: Router, mut stopping: watch::Receiver<bool>) {
    let signal = async move {
        // An error means the sender is gone, which also means "stop".
        let _ = stopping.wait_for(|stop| *stop).await;
    };
    if let Err(err) = axum::serve(listener, router).with_graceful_shutdown(signal).await {
        tracing::error!(%err, "mock provider stopped with an error");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send<T: Send + Sync + 'static>() {}

    #[test]
    fn server_is_send() {
        assert_send::<MockServer>();
    }
}
