//! batchllm-host: run large batches of LLM requests through sandboxed
//! WebAssembly provider plugins.
//!
//! The crate is laid out along the data flow:
//! - [`model`] is the vocabulary every layer shares (classes, usage, jobs, records);
//! - [`input`] reads and validates the jobs file;
//! - [`plugin`] finds a plugin (built-in or a file) and its digest;
//! - [`sandbox`] compiles, links and runs plugins under limits;
//! - [`egress`] is the plugins' only way out: granted hosts, secrets, one client;
//! - [`run`] is the engine: workers, attempts, retry policy, the run report;
//! - [`results`] writes one record per input line;
//! - [`providers`] is the table of built-in providers: names, hosts, keys;
//! - [`report`] turns a results file (and its events) into an HTML page;
//! - [`cluster`] spreads one batch over several hosts (`--shard`, `--cluster`);
//! - [`options`] defines every run option once (flag and `--config` key),
//!   checks it and builds a [`run::RunConfig`]; [`cli`] is the command line;
//! - [`serve`] is the multi-tenant service (OpenAI Files and Batches API)
//!   that runs each batch through [`run`].

pub mod check;
pub mod cli;
pub mod cluster;
pub mod cost;
pub mod egress;
pub mod input;
pub mod model;
pub mod options;
pub mod plugin;
pub mod providers;
pub mod report;
pub mod results;
pub mod run;
pub mod sandbox;
pub mod scaffold;
pub mod schema;
pub mod serve;
pub mod validate;

#[cfg(test)]
mod build_script_tests;
/// The seeds and the kept crash inputs of the fuzz target `target`
/// (`fuzz/seeds/TARGET`, `fuzz/regressions/TARGET`), for the unit tests
/// that replay them: `(file name, bytes)`.
#[cfg(test)]
pub(crate) fn fuzz_inputs(target: &str) -> Vec<(String, Vec<u8>)> {
    let fuzz = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let mut inputs = Vec::new();
    for kind in ["seeds", "regressions"] {
        let Ok(entries) = std::fs::read_dir(fuzz.join(kind).join(target)) else { continue };
        for entry in entries.flatten() {
            let bytes = std::fs::read(entry.path()).expect("read a fuzz input");
            inputs.push((format!("{kind}/{target}/{}", entry.file_name().to_string_lossy()), bytes));
        }
    }
    inputs.sort();
    assert!(!inputs.is_empty(), "no inputs for the fuzz target {target} under {}", fuzz.display());
    inputs
}
