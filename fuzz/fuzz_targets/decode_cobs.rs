#![no_main]
use fastnet_fuzz::{check_decoder, cobs, Expect, Input};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    if let Some((dec, _)) = cobs(&mut input) {
        check_decoder(dec, Expect::Frames, &mut input);
    }
});
