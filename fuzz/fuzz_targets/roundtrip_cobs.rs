#![no_main]
use fastnet_fuzz::{check_roundtrip, cobs, naive_cobs, Expect, Input};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    if let Some((dec, enc)) = cobs(&mut input) {
        check_roundtrip(&enc, dec, Expect::Frames, naive_cobs, &mut input);
    }
});
