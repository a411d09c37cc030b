#![no_main]
use fastnet_fuzz::{check_decoder, length_field, Expect, Input};
use fastnet_proto::codec::LengthFieldDecoder;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    if let Ok(dec) = LengthFieldDecoder::new(length_field(&mut input)) {
        check_decoder(dec, Expect::Frames, &mut input);
    }
});
