#![no_main]
use fastnet_fuzz::{check_roundtrip, naive_varint, varint, Expect, Input};
use fastnet_proto::codec::{VarintDecoder, VarintEncoder};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let cfg = varint(&mut input);
    if let (Ok(dec), Ok(enc)) = (VarintDecoder::new(cfg), VarintEncoder::new(cfg)) {
        let naive = |p: &[u8]| naive_varint(&cfg, p);
        check_roundtrip(&enc, dec, Expect::Frames, naive, &mut input);
    }
});
