//! Writes wasmtime's WASI preview1 reactor adapter to the path given as the
//! only argument (see Cargo.toml for why this program exists).

use std::process::ExitCode;

fn main() -> ExitCode {
    let Some(path) = std::env::args_os().nth(1) else {
        eprintln!("usage: batchllm-go-adapter <output.wasm>");
        return ExitCode::from(2);
    };
    let bytes = wasi_preview1_component_adapter_provider::WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER;
    match std::fs::write(&path, bytes) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cannot write {}: {e}", std::path::Path::new(&path).display());
            ExitCode::FAILURE
        }
    }
}
