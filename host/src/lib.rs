//! batchllm-host: run large batches of LLM requests through sandboxed
//! WebAssembly provider plugins.
//!
//! The crate is laid out along the data flow:
//! - [`input`] reads and validates the jobs file;
//! - [`plugin`] finds a plugin (built-in or a file) and its digest;
//! - [`sandbox`] compiles, links and runs plugins under limits;
//! - [`egress`] is the plugins' only way out: granted hosts, secrets, one client;
//! - [`run`] is the engine: workers, attempts, retry policy, the run report;
//! - [`results`] writes one record per input line;
//! - [`cli`] turns the command line into a [`run::RunConfig`].

pub mod check;
pub mod cli;
pub mod config_file;
pub mod cost;
pub mod egress;
pub mod input;
pub mod plugin;
pub mod results;
pub mod run;
pub mod sandbox;
pub mod scaffold;
pub mod schema;
pub mod usage;
pub mod validate;
