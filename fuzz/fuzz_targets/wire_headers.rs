#![no_main]
//! See `batchllm_fuzz::wire`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| batchllm_fuzz::wire::run(data));
