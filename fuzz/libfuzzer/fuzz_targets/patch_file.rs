#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    hotreload_fuzz::targets::patch_file(data);
});
