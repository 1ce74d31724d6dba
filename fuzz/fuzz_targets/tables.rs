#![no_main]
//! See `batchllm_fuzz::tables`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| batchllm_fuzz::tables::run(data));
