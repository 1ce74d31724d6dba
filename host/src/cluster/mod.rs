//! Scale-out: one batch on several hosts.
//!
//! Two tiers:
//! - [`Shard`]: `--shard I/N`, no infrastructure; every host takes the ids
//!   of its shard and keeps its own results file;
//! - `--cluster redis://...`: hosts share one Redis for the provider limit
//!   (every admission decided in one script on the server's clock) and
//!   for the batch (chunks claimed with leases, fenced commits, the
//!   in-flight journal), so a dead host's work is taken over.

pub mod batch;
pub mod clock;
pub mod limiter;
pub mod local;
pub mod tick;

pub use crate::model::cluster::{ClusterSettings, ClusterUrl};
pub use crate::model::shard::{Shard, ShardError, ShardSpec};
pub use batch::run;
