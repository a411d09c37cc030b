#![no_main]
use fastnet_fuzz::{check_decoder, varint, Expect, Input};
use fastnet_proto::codec::VarintDecoder;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    if let Ok(dec) = VarintDecoder::new(varint(&mut input)) {
        check_decoder(dec, Expect::Frames, &mut input);
    }
});
