//! Runs a child process and measures what it cost: wall time, CPU time
//! (user + sys) and peak resident memory, from the kernel's own accounting
//! (`wait4`), so nothing in the measured process has to cooperate.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// What one child process cost.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Usage {
    pub wall: Duration,
    /// User + system CPU time.
    pub cpu: Duration,
    /// Peak resident set size.
    pub peak_rss_bytes: u64,
    /// The exit code, or `None` when a signal ended the process.
    pub exit_code: Option<i32>,
    /// CPU this (the benchmark's) process used while the child ran: the
    /// in-process mock provider serving it.
    pub own_cpu: Duration,
    /// Whether the child was killed for running past its deadline.
    pub killed: bool,
}

impl Usage {
    /// Peak RSS in MiB.
    pub(crate) fn peak_rss_mib(&self) -> f64 {
        self.peak_rss_bytes as f64 / f64::from(1u32 << 20)
    }
}

/// Spawns `command`, waits for it on a blocking thread (so the async mock
/// provider in this process keeps serving it) and returns its usage; kills
/// it (SIGKILL) once it has run for `deadline`, so that a benchmark of a
/// client that stalls still ends.
///
/// Peak memory is read from the child's own `/proc/<pid>/status` (`VmHWM`)
/// while it runs, not from `wait4`'s `ru_maxrss`: Linux carries the
/// parent's resident size at spawn time into the child's `ru_maxrss`, and
/// this process (the mock, the job files) is larger than a small run.
pub(crate) async fn measure_until(mut command: Command, deadline: Option<Duration>) -> anyhow::Result<Usage> {
    let program = command.get_program().to_string_lossy().into_owned();
    let child = command.spawn().with_context(|| format!("cannot start {program}"))?;
    measure_child(child, Instant::now(), deadline).await
}

/// [`measure_until`] for a child already spawned (at `started`), so that
/// the caller can signal it by its id meanwhile.
pub(crate) async fn measure_child(
    child: std::process::Child,
    started: Instant,
    deadline: Option<Duration>,
) -> anyhow::Result<Usage> {
    let own_before = own_cpu();
    let pid = libc::pid_t::try_from(child.id()).context("pid out of range")?;
    // `wait4` reaps the child here; the `Child` handle is never waited on.
    let (status, rusage, peak_kib, killed) =
        tokio::task::spawn_blocking(move || watch(pid, started, deadline)).await??;
    let wall = started.elapsed();
    let own_cpu = own_cpu().saturating_sub(own_before);
    let cpu = timeval(rusage.ru_utime) + timeval(rusage.ru_stime);
    let exit_code = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
    drop(child);
    Ok(Usage { wall, cpu, peak_rss_bytes: peak_kib * 1024, exit_code, own_cpu, killed })
}

/// How often a running child's peak RSS is sampled. `VmHWM` only grows, so
/// the last sample misses at most what the child added in its final
/// interval.
const SAMPLE: Duration = Duration::from_millis(10);

/// Waits for `pid` to exit, sampling its `VmHWM` meanwhile, and kills it
/// once `deadline` has passed since `started`; returns the wait status, its
/// rusage, the highest `VmHWM` seen, in KiB, and whether it was killed.
fn watch(
    pid: libc::pid_t,
    started: Instant,
    deadline: Option<Duration>,
) -> anyhow::Result<(libc::c_int, libc::rusage, u64, bool)> {
    let mut peak_kib = 0;
    let mut killed = false;
    loop {
        if let Some(kib) = vm_hwm_kib(pid) {
            peak_kib = peak_kib.max(kib);
        }
        if let Some((status, rusage)) = wait4(pid, libc::WNOHANG)? {
            return Ok((status, rusage, peak_kib, killed));
        }
        if !killed && deadline.is_some_and(|limit| started.elapsed() > limit) {
            // SAFETY: `pid` is our own child, not yet reaped (wait4 above
            // found it running), so the id cannot have been reused.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            killed = true;
        }
        std::thread::sleep(SAMPLE);
    }
}

/// The `VmHWM` line of `/proc/<pid>/status`, if the process still has memory.
fn vm_hwm_kib(pid: libc::pid_t) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// CPU time (user + sys) this process has used so far: in the benchmark,
/// that is the in-process mock provider's share of the machine.
pub(crate) fn own_cpu() -> Duration {
    // SAFETY: `rusage` is plain old data; zeroed is a valid value for it.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: the pointer is to a live, writable local of the right type.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return Duration::ZERO;
    }
    timeval(usage.ru_utime) + timeval(usage.ru_stime)
}

/// `wait4(pid, flags)`: `None` while a `WNOHANG` wait finds it running.
fn wait4(pid: libc::pid_t, flags: libc::c_int) -> anyhow::Result<Option<(libc::c_int, libc::rusage)>> {
    let mut status: libc::c_int = 0;
    // SAFETY: `rusage` is plain old data; zeroed is a valid value for it.
    let mut rusage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: both pointers are to live, writable locals of the right
        // types for the duration of the call.
        let rc = unsafe { libc::wait4(pid, &mut status, flags, &mut rusage) };
        if rc == pid {
            return Ok(Some((status, rusage)));
        }
        if rc == 0 {
            return Ok(None);
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
        let usage = measure_until(command, None).await.expect("runs");
        assert_eq!(usage.exit_code, Some(3));
        assert!(usage.cpu > Duration::ZERO, "{usage:?}");
        assert!(usage.peak_rss_bytes > 100 * 1024, "{usage:?}");
        assert!(usage.wall >= usage.cpu / 2, "{usage:?}");
        assert!(!usage.killed);
    }

    #[tokio::test]
    async fn kills_a_child_past_its_deadline() {
        let mut command = Command::new("sleep");
        command.arg("30");
        let usage = measure_until(command, Some(Duration::from_millis(200))).await.expect("runs");
        assert!(usage.killed, "{usage:?}");
        assert_eq!(usage.exit_code, None, "ended by a signal");
        assert!(usage.wall < Duration::from_secs(5), "{usage:?}");
    }
}
