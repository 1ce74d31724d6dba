#![no_main]
//! See `batchllm_fuzz::checkpoint`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| batchllm_fuzz::checkpoint::run(data));
