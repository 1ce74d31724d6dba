//! The exit code of a run, from its report: in the library rather than the
//! binary so the engine's property tests check the code a run exits with
//! against the records it wrote ("exit 0 means every line succeeded").

use crate::run::observe::{RunReport, Termination};

pub const OK: u8 = 0;
pub const SOME_FAILED: u8 = 1;
pub const USAGE: u8 = 2;
pub const ABORTED: u8 = 3;
/// The host failed (results file unwritable, jobs file changed, ...):
/// requests may have been sent; re-running resumes.
pub const HOST_FAILURE: u8 = 4;
/// 128 + the signal that stopped the run, as shells report it.
pub const SIGHUP: u8 = 129;
pub const SIGINT: u8 = 130;
pub const SIGTERM: u8 = 143;

/// The code a run with `report` exits with; `signal` is the code of the
/// first signal that stopped it (used when it was interrupted).
pub fn code(report: &RunReport, signal: u8) -> u8 {
    match report.termination {
        Termination::Failed => HOST_FAILURE,
        Termination::Interrupted => signal,
        Termination::Aborted => ABORTED,
        Termination::Completed if report.failed > 0 || report.already_failed > 0 => SOME_FAILED,
        Termination::Completed => OK,
    }
}
