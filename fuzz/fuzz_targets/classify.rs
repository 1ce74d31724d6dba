#![no_main]
//! See `batchllm_fuzz::classify`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| batchllm_fuzz::classify::run(data));
