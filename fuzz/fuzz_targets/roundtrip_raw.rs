#![no_main]
use fastnet_fuzz::{check_roundtrip, raw, Expect, Input};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    if let Some((dec, enc)) = raw(&mut input) {
        check_roundtrip(&enc, dec, Expect::Concatenation, <[u8]>::to_vec, &mut input);
    }
});
