//! Runs a child process and measures what it cost: wall time, CPU time
//! (user + sys) and peak resident memory, from the kernel's own accounting
//! (`wait4`), so nothing in the measured process has to cooperate.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// What one child process cost.
#[derive(Debug, Clone, Copy)]
pub struct Usage {
    pub wall: Duration,
    /// User + system CPU time.
    pub cpu: Duration,
    /// Peak resident set size.
    pub peak_rss_bytes: u64,
    /// The exit code, or `None` when a signal ended the process.
    pub exit_code: Option<i32>,
}

impl Usage {
    /// Peak RSS in MiB.
    pub fn peak_rss_mib(&self) -> f64 {
        self.peak_rss_bytes as f64 / f64::from(1u32 << 20)
    }
}

/// Spawns `command`, waits for it on a blocking thread (so the async mock
/// provider in this process keeps serving it) and returns its usage.
pub async fn measure(mut command: Command) -> anyhow::Result<Usage> {
    let program = command.get_program().to_string_lossy().into_owned();
    let started = Instant::now();
    let child = command.spawn().with_context(|| format!("cannot start {program}"))?;
    let pid = libc::pid_t::try_from(child.id()).context("pid out of range")?;
    // `wait4` reaps the child here; the `Child` handle is never waited on.
    let (status, rusage) = tokio::task::spawn_blocking(move || wait4(pid)).await??;
    let wall = started.elapsed();
    let cpu = timeval(rusage.ru_utime) + timeval(rusage.ru_stime);
    // Linux reports ru_maxrss in KiB.
    let peak_rss_bytes = u64::try_from(rusage.ru_maxrss).unwrap_or(0) * 1024;
    let exit_code = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
    drop(child);
    Ok(Usage { wall, cpu, peak_rss_bytes, exit_code })
}

/// CPU time (user + sys) this process has used so far: in the benchmark,
/// that is the in-process mock provider's share of the machine.
pub fn own_cpu() -> Duration {
    // SAFETY: `rusage` is plain old data; zeroed is a valid value for it.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: the pointer is to a live, writable local of the right type.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return Duration::ZERO;
    }
    timeval(usage.ru_utime) + timeval(usage.ru_stime)
}

fn wait4(pid: libc::pid_t) -> anyhow::Result<(libc::c_int, libc::rusage)> {
    let mut status: libc::c_int = 0;
    // SAFETY: `rusage` is plain old data; zeroed is a valid value for it.
    let mut rusage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: both pointers are to live, writable locals of the right
        // types for the duration of the call.
        let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut rusage) };
        if rc == pid {
            return Ok((status, rusage));
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            bail!("wait4({pid}) failed: {err}");
        }
    }
}

fn timeval(tv: libc::timeval) -> Duration {
    let secs = u64::try_from(tv.tv_sec).unwrap_or(0);
    let micros = u32::try_from(tv.tv_usec).unwrap_or(0);
    Duration::from_secs(secs) + Duration::from_micros(u64::from(micros))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn measures_cpu_memory_and_exit_code() {
        // A shell loop burns some CPU; `exit 3` is reported as such.
        let mut command = Command::new("sh");
        command.args(["-c", "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; exit 3"]);
        let usage = measure(command).await.expect("runs");
        assert_eq!(usage.exit_code, Some(3));
        assert!(usage.cpu > Duration::ZERO, "{usage:?}");
        assert!(usage.peak_rss_bytes > 100 * 1024, "{usage:?}");
        assert!(usage.wall >= usage.cpu / 2, "{usage:?}");
    }
}
