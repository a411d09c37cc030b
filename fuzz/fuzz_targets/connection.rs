#![no_main]
use fastnet_fuzz::{ops, Input};
use fastnet_proto::connection::{model, stress};

// The same bytes twice: as operations on a lines echo server checked
// against its reference model, and as a codec, limits and operations for
// any connection checked against its invariants.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    model::check(&ops(&mut Input::new(data)));
    stress::run(data);
});
