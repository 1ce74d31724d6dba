#![no_main]
//! See `batchllm_fuzz::scrub`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| batchllm_fuzz::scrub::run(data));
