#![no_main]
//! See `batchllm_fuzz::config`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| batchllm_fuzz::config::run(data));
