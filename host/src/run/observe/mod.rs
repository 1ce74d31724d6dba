//! Observability: what the run tells the user while and after it runs.
//!
//! - [`events`]: the typed lifecycle log (`--events`);
//! - [`metrics`]: live Prometheus counters (`--metrics-addr`);
//! - [`progress`]: the bar or periodic lines on stderr;
//! - [`report`]: the summary and the exit code's facts.
//!
//! Nothing here decides anything: it reads what the engine reports.

pub mod events;
pub mod metrics;
pub mod progress;
pub mod report;

pub use events::{Event, EventLog, EventsError};
pub use metrics::{Metrics, MetricsSnapshot};
pub use progress::{Live, Progress, ProgressMode, SuspendingStderr};
pub use report::{ClassCount, RunReport, Termination};
