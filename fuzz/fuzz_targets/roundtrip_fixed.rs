#![no_main]
use fastnet_fuzz::{check_roundtrip, fixed, Expect, Input};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    if let Some((dec, enc)) = fixed(&mut input) {
        check_roundtrip(&enc, dec, Expect::Frames, <[u8]>::to_vec, &mut input);
    }
});
