//! A throwaway `redis-server` on loopback, for the tests, the benchmark and
//! trying `--cluster` on one machine.
//!
//! It listens on 127.0.0.1 on a free port, keeps its data in its own folder
//! with the append-only file synced on every write (so a `kill -9` and a
//! restart lose nothing a client was told was written), and is stopped by
//! its PID. A missing `redis-server` is an error saying how to install it,
//! never a silent skip.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// How to install the server where it is missing.
pub const INSTALL_HINT: &str =
    "redis-server is not installed; install it with `apt-get install -y redis-server` (scripts/setup-redis.sh does)";

/// Why a local Redis could not be started.
#[derive(Debug, thiserror::Error)]
pub enum LocalRedisError {
    #[error("{INSTALL_HINT}")]
    Missing,
    #[error("cannot start redis-server: {0}")]
    Spawn(#[source] std::io::Error),
    #[error("redis-server did not answer PING on 127.0.0.1:{port} within {secs} s (log: {log})")]
    NotReady { port: u16, secs: u64, log: String },
}

/// A running `redis-server` child.
#[derive(Debug)]
pub struct LocalRedis {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
}

impl LocalRedis {
    /// Starts a server keeping its data under `dir`, on a free port.
    pub async fn start(dir: &Path) -> Result<Self, LocalRedisError> {
        let port = free_port().map_err(LocalRedisError::Spawn)?;
        let mut redis = LocalRedis { child: None, port, dir: dir.to_path_buf() };
        redis.spawn().await?;
        Ok(redis)
    }

    /// `redis://127.0.0.1:PORT/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's PID, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills the server at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port with the same data.
    pub async fn restart(&mut self) -> Result<(), LocalRedisError> {
        self.kill();
        self.spawn().await
    }

    async fn spawn(&mut self) -> Result<(), LocalRedisError> {
        std::fs::create_dir_all(&self.dir).map_err(LocalRedisError::Spawn)?;
        let log = self.dir.join("redis.log");
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .arg("--dir")
            .arg(&self.dir)
            .args(["--appendonly", "yes", "--appendfsync", "always", "--save", ""])
            .args(["--daemonize", "no", "--protected-mode", "yes"])
            .arg("--logfile")
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| {
                if e.kind() == std::io::ErrorKind::NotFound {
                    LocalRedisError::Missing
                } else {
                    LocalRedisError::Spawn(e)
                }
            })?;
        self.child = Some(child);
        let started = Instant::now();
        let limit = Duration::from_secs(10);
        while started.elapsed() < limit {
            if ping(self.port).await {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.kill();
        Err(LocalRedisError::NotReady { port: self.port, secs: limit.as_secs(), log: log.display().to_string() })
    }
}

impl Drop for LocalRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Whether a Redis on `port` answers PING.
async fn ping(port: u16) -> bool {
    let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else { return false };
    if stream.write_all(b"PING\r\n").await.is_err() {
        return false;
    }
    let mut buf = [0u8; 16];
    matches!(
        tokio::time::timeout(Duration::from_secs(1), stream.read(&mut buf)).await,
        Ok(Ok(n)) if buf.get(..n).is_some_and(|b| b.starts_with(b"+PONG"))
    )
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind(("127.0.0.1", 0))?.local_addr()?.port())
}
