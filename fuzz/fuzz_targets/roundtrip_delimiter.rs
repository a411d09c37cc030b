#![no_main]
use fastnet_fuzz::{check_roundtrip, delimiter, naive_delimiter, Expect, Input};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    if let Some((dec, Some(enc), keep)) = delimiter(&mut input) {
        let naive = |p: &[u8]| naive_delimiter(&dec, keep, p);
        check_roundtrip(&enc, dec, Expect::Frames, naive, &mut input);
    }
});
