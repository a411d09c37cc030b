#![no_main]
use fastnet_fuzz::{ops, Input};
use fastnet_proto::connection::model;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    model::check(&ops(&mut Input::new(data)));
});
