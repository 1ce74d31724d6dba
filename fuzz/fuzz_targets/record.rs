#![no_main]
//! See `batchllm_fuzz::record`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| batchllm_fuzz::record::run(data));
