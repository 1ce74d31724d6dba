//! End-to-end tests: the real binary, real plugins built from `plugins/`, and
//! the real mock provider over loopback HTTP.
//!
//! One test binary (like wasmtime's `tests/all`) so the plugin compile cache
//! and the build are shared.

mod fixtures;
mod support;

mod bad_input;
mod batch;
mod chromium;
mod cluster_batch;
mod cluster_limiter;
mod cluster_serve;
mod cluster_shard;
mod conformance;
mod egress;
mod engine;
mod fuzz_replay;
mod hostile;
mod input;
mod install;
mod layering;
mod openai_endpoints;
mod options;
mod peers;
mod plugin_check;
mod plugin_new;
mod progress;
mod providers;
mod report;
mod resume;
mod retries;
mod serve;
mod serve_anthropic;
mod serve_isolation;
mod serve_page;
mod serve_restart;
mod serve_support;
mod stops;
mod templates;
