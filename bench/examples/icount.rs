// Runs one implementation of one benchmark case a given number of times,
// for counting instructions (repeatable on a loaded machine, unlike time):
//
//   cargo build -p fastnet-bench --profile bench --example icount
//   valgrind --tool=callgrind --collect-atstart=no --toggle-collect='*icount::measured*' \
//     target/release/examples/icount decode_length_16 fastnet 10
//
// callgrind's total (`Collected`) over 10 iterations divided by 10 times the
// case's frames (printed) is the instructions per frame. Run without
// valgrind it also prints the fastest iteration's frames/s. Only `measured` is
// counted: building the case and copying the input for decoders that
// rewrite it are not. Case and implementation names are those of the
// criterion benchmark (`benches/decode.rs`), whose code this runs.

//! Instruction-count driver for the codec benchmark's implementations.

#[path = "../benches/common/mod.rs"]
mod common;

use bytes::BytesMut;
use common::*;
use fastnet_bench::{cases, Case, Kind};
use fastnet_proto::codec::CobsEncoder;

/// What one iteration works on.
enum Input {
    Slice(Vec<u8>),
    Bytes(BytesMut),
}

/// One iteration of `imp` on `case`; the only code callgrind counts.
#[inline(never)]
fn measured(case: &Case, imp: &str, input: &mut Input, out: &mut [u8]) -> usize {
    let payload = match case.kind {
        Kind::CobsEncode { payload } => payload,
        _ => 0,
    };
    match (case.kind, imp, input) {
        (Kind::Length { .. }, "fastnet", Input::Slice(b)) => {
            fastnet_in_place(&mut fastnet_length(), b)
        }
        (Kind::Length { .. }, "fastnet_bytes", Input::Bytes(b)) => {
            fastnet_bytes(&mut fastnet_length(), b)
        }
        (Kind::Length { .. }, "fastnet_tokio", Input::Bytes(b)) => {
            tokio(&mut fastnet_tokio_length(), b)
        }
        (Kind::Length { .. }, "tokio_length_delimited", Input::Bytes(b)) => {
            tokio(&mut tokio_length(), b)
        }
        (Kind::Length { .. }, "skip_loop", Input::Slice(b)) => skip_loop(b),
        (Kind::Lines { .. }, "fastnet", Input::Slice(b)) => {
            fastnet_in_place(&mut fastnet_lines(), b)
        }
        (Kind::Lines { .. }, "fastnet_bytes", Input::Bytes(b)) => {
            fastnet_bytes(&mut fastnet_lines(), b)
        }
        (Kind::Lines { .. }, "tokio_lines", Input::Bytes(b)) => tokio(&mut tokio_lines(), b),
        (Kind::Lines { .. }, "tokio_any_delimiter", Input::Bytes(b)) => {
            tokio(&mut tokio_any_delimiter(), b)
        }
        (Kind::Lines { .. }, "memchr", Input::Slice(b)) => memchr_lines(b),
        (Kind::CobsDecode { .. }, "fastnet", Input::Slice(b)) => {
            fastnet_in_place(&mut fastnet_cobs(), b)
        }
        (Kind::CobsDecode { .. }, "cobs", Input::Slice(b)) => cobs_in_place(b),
        (Kind::CobsDecode { .. }, "cobs_stream", Input::Slice(b)) => cobs_stream(b, out),
        (Kind::CobsDecode { .. }, "corncobs", Input::Slice(b)) => corncobs_in_place(b),
        (Kind::CobsDecode { .. }, "corncobs_buf", Input::Slice(b)) => corncobs_buf(b, out),
        (Kind::CobsDecode { .. }, "find_floor", Input::Slice(b)) => cobs_find_floor(b),
        (Kind::CobsDecode { .. }, "find_move_floor", Input::Slice(b)) => cobs_find_move_floor(b),
        (Kind::CobsEncode { .. }, "fastnet", Input::Slice(b)) => {
            let enc = CobsEncoder::new(MAX_FRAME).expect("COBS encoder");
            fastnet_cobs_encode(&enc, b, payload, out)
        }
        (Kind::CobsEncode { .. }, "cobs", Input::Slice(b)) => cobs_encode(b, payload, out),
        (Kind::CobsEncode { .. }, "corncobs", Input::Slice(b)) => corncobs_encode(b, payload, out),
        (Kind::Varint { .. }, "fastnet", Input::Slice(b)) => {
            fastnet_in_place(&mut fastnet_varint(), b)
        }
        (Kind::Varint { .. }, "fastnet_bytes", Input::Bytes(b)) => {
            fastnet_bytes(&mut fastnet_varint(), b)
        }
        (Kind::Varint { .. }, "unsigned_varint", Input::Bytes(b)) => tokio(&mut uvi_bytes(), b),
        (Kind::Varint { .. }, "unsigned_varint_fn", Input::Slice(b)) => uvi_fn(b),
        _ => panic!("no implementation {imp} for {}", case.group),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [group, imp, iters] = &args[..] else {
        eprintln!("usage: icount GROUP IMPLEMENTATION ITERATIONS");
        std::process::exit(2);
    };
    let iters: usize = iters.parse().expect("iterations");
    let case = cases()
        .into_iter()
        .find(|c| &c.group == group)
        .unwrap_or_else(|| panic!("no case {group}"));
    let bytes = matches!(
        imp.as_str(),
        "fastnet_bytes"
            | "fastnet_tokio"
            | "tokio_length_delimited"
            | "tokio_lines"
            | "tokio_any_delimiter"
            | "unsigned_varint"
    );
    let mut out = vec![0u8; case.input.len() * 2 + 64];
    let mut frames = 0;
    let mut fastest = std::time::Duration::MAX;
    for _ in 0..iters {
        // A fresh input each time: some decoders rewrite or consume it.
        let mut input = if bytes {
            Input::Bytes(BytesMut::from(&case.input[..]))
        } else {
            Input::Slice(case.input.clone())
        };
        let start = std::time::Instant::now();
        frames = measured(&case, imp, &mut input, &mut out);
        fastest = fastest.min(start.elapsed());
    }
    // An encoder returns the bytes it wrote, not a frame count.
    if !matches!(case.kind, Kind::CobsEncode { .. }) {
        assert_eq!(frames, case.frames, "frames of {group}");
    }
    // Fields: the frame count first (scripts read it), then the fastest
    // iteration: a rough, load-resistant time where callgrind is not used.
    println!(
        "{group} {imp}: {} frames x {iters}, fastest {:.1} Mframes/s",
        case.frames,
        case.frames as f64 / fastest.as_secs_f64() / 1e6
    );
}
