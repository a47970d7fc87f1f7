#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| provisor_fuzz::appws(data));
