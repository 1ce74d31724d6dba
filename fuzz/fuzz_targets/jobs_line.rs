#![no_main]
//! See `batchllm_fuzz::jobs`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| batchllm_fuzz::jobs::run(data));
