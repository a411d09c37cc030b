#![no_main]
use fastnet_fuzz::{check_roundtrip, length_field, naive_length_field, Expect, Input};
use fastnet_proto::codec::{LengthFieldDecoder, LengthFieldEncoder};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let cfg = length_field(&mut input);
    if let (Ok(dec), Ok(enc)) = (LengthFieldDecoder::new(cfg), LengthFieldEncoder::new(cfg)) {
        let naive = |p: &[u8]| naive_length_field(&cfg, p);
        check_roundtrip(&enc, dec, Expect::Frames, naive, &mut input);
    }
});
