// Codec throughput: fastnet-proto (in place, through `decode_bytes`, and
// through fastnet-tokio's tokio-util adapter) vs tokio-util (and memchr, for
// lines, and a bare skip loop, for the length field), vs the cobs and
// corncobs crates (COBS decode and encode), vs unsigned-varint (varint
// length prefix).
//
// Run:    cargo bench -p fastnet-bench --bench decode -- --warm-up-time 1 --measurement-time 3
// Table:  cargo run -p fastnet-bench --release --bin codec_report
// Both, 3 runs, medians:  bench/run_decode.sh
//
// Each case handles ALL frames of the same (about) 1 MiB input and touches
// every payload (its length and first byte go through `black_box`). fastnet
// decoders work in place on one pre-built buffer (they write nothing for
// the length, lines and varint codecs); decoders that rewrite their input
// (COBS in place) and tokio-util codecs get a fresh copy of the input from
// `iter_batched` setup, outside the measurement. The implementations are
// in `common/mod.rs`, shared with `examples/icount.rs`.

//! Criterion benchmarks of codec throughput.

mod common;

use bytes::BytesMut;
use common::*;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use fastnet_bench::{cases, Case, Kind};
use fastnet_proto::codec::CobsEncoder;

/// Checks once, outside any measurement, that every implementation finds
/// every frame of the case (and, for COBS, the same payloads or wire).
fn check(case: &Case) {
    let mut input = case.input.clone();
    let fresh = || BytesMut::from(&case.input[..]);
    let copy = || case.input.clone();
    let mut out = vec![0u8; case.input.len() * 2 + 64];
    let counts: Vec<(&str, usize)> = match case.kind {
        Kind::Length { .. } => vec![
            (
                "fastnet",
                fastnet_in_place(&mut fastnet_length(), &mut input),
            ),
            (
                "fastnet_bytes",
                fastnet_bytes(&mut fastnet_length(), &mut fresh()),
            ),
            (
                "fastnet_tokio",
                tokio(&mut fastnet_tokio_length(), &mut fresh()),
            ),
            ("tokio", tokio(&mut tokio_length(), &mut fresh())),
            ("skip_loop", skip_loop(&case.input)),
        ],
        Kind::Lines { .. } => vec![
            (
                "fastnet",
                fastnet_in_place(&mut fastnet_lines(), &mut input),
            ),
            (
                "fastnet_bytes",
                fastnet_bytes(&mut fastnet_lines(), &mut fresh()),
            ),
            ("tokio_lines", tokio(&mut tokio_lines(), &mut fresh())),
            ("tokio_any", tokio(&mut tokio_any_delimiter(), &mut fresh())),
            ("memchr", memchr_lines(&case.input)),
        ],
        // (What each leaves of a frame's bytes after its payload differs;
        // fastnet-proto's own tests check its payloads.)
        Kind::CobsDecode { .. } => vec![
            (
                "fastnet",
                fastnet_in_place(&mut fastnet_cobs(), &mut copy()),
            ),
            ("cobs", cobs_in_place(&mut copy())),
            ("corncobs", corncobs_in_place(&mut copy())),
            ("cobs_stream", cobs_stream(&case.input, &mut out)),
            ("corncobs_buf", corncobs_buf(&case.input, &mut out)),
            ("find_floor", cobs_find_floor(&mut copy())),
            ("find_move_floor", cobs_find_move_floor(&mut copy())),
        ],
        Kind::CobsEncode { payload } => {
            let enc = CobsEncoder::new(MAX_FRAME).expect("COBS encoder");
            let n = cobs_out_len(&case.input, payload);
            let (mut a, mut b, mut c) = (vec![0; n], vec![0; n], vec![0; n]);
            let la = fastnet_cobs_encode(&enc, &case.input, payload, &mut a);
            let lb = cobs_encode(&case.input, payload, &mut b);
            let lc = corncobs_encode(&case.input, payload, &mut c);
            assert_eq!(a[..la], b[..lb], "fastnet and cobs encode alike");
            assert_eq!(a[..la], c[..lc], "fastnet and corncobs encode alike");
            let frames = fastnet_in_place(&mut fastnet_cobs(), &mut a[..la]);
            vec![("fastnet", frames)]
        }
        Kind::Varint { .. } => vec![
            (
                "fastnet",
                fastnet_in_place(&mut fastnet_varint(), &mut input),
            ),
            (
                "fastnet_bytes",
                fastnet_bytes(&mut fastnet_varint(), &mut fresh()),
            ),
            ("unsigned_varint", tokio(&mut uvi_bytes(), &mut fresh())),
            ("unsigned_varint_fn", uvi_fn(&case.input)),
        ],
    };
    for (name, n) in counts {
        assert_eq!(n, case.frames, "{name} on {}", case.group);
    }
}

fn decode(c: &mut Criterion) {
    for case in cases() {
        check(&case);
        let mut group = c.benchmark_group(&case.group);
        group.throughput(Throughput::Bytes(case.input.len() as u64));
        let mut input = case.input.clone();
        let fresh = || BytesMut::from(&case.input[..]);
        let copy = || case.input.clone();

        match case.kind {
            Kind::Length { .. } => {
                group.bench_function("fastnet", |b| {
                    b.iter(|| fastnet_in_place(&mut fastnet_length(), &mut input))
                });
                group.bench_function("fastnet_bytes", |b| {
                    b.iter_batched(
                        fresh,
                        |mut buf| (fastnet_bytes(&mut fastnet_length(), &mut buf), buf),
                        BatchSize::LargeInput,
                    )
                });
                group.bench_function("fastnet_tokio", |b| {
                    b.iter_batched(
                        fresh,
                        |mut buf| (tokio(&mut fastnet_tokio_length(), &mut buf), buf),
                        BatchSize::LargeInput,
                    )
                });
                group.bench_function("tokio_length_delimited", |b| {
                    b.iter_batched(
                        fresh,
                        |mut buf| (tokio(&mut tokio_length(), &mut buf), buf),
                        BatchSize::LargeInput,
                    )
                });
                group.bench_function("skip_loop", |b| b.iter(|| skip_loop(&case.input)));
            }
            Kind::Lines { .. } => {
                group.bench_function("fastnet", |b| {
                    b.iter(|| fastnet_in_place(&mut fastnet_lines(), &mut input))
                });
                group.bench_function("fastnet_bytes", |b| {
                    b.iter_batched(
                        fresh,
                        |mut buf| (fastnet_bytes(&mut fastnet_lines(), &mut buf), buf),
                        BatchSize::LargeInput,
                    )
                });
                group.bench_function("tokio_lines", |b| {
                    b.iter_batched(
                        fresh,
                        |mut buf| (tokio(&mut tokio_lines(), &mut buf), buf),
                        BatchSize::LargeInput,
                    )
                });
                group.bench_function("tokio_any_delimiter", |b| {
                    b.iter_batched(
                        fresh,
                        |mut buf| (tokio(&mut tokio_any_delimiter(), &mut buf), buf),
                        BatchSize::LargeInput,
                    )
                });
                group.bench_function("memchr", |b| b.iter(|| memchr_lines(&case.input)));
            }
            Kind::CobsDecode { .. } => {
                // In-place decoders rewrite their input: a fresh copy each.
                group.bench_function("fastnet", |b| {
                    b.iter_batched(
                        copy,
                        |mut buf| (fastnet_in_place(&mut fastnet_cobs(), &mut buf), buf),
                        BatchSize::LargeInput,
                    )
                });
                group.bench_function("cobs", |b| {
                    b.iter_batched(
                        copy,
                        |mut buf| (cobs_in_place(&mut buf), buf),
                        BatchSize::LargeInput,
                    )
                });
                group.bench_function("corncobs", |b| {
                    b.iter_batched(
                        copy,
                        |mut buf| (corncobs_in_place(&mut buf), buf),
                        BatchSize::LargeInput,
                    )
                });
                let mut out = vec![0u8; case.input.len()];
                group.bench_function("corncobs_buf", |b| {
                    b.iter(|| corncobs_buf(&case.input, &mut out))
                });
                // Floors: what no decoder of this stream can go below.
                group.bench_function("find_floor", |b| {
                    b.iter_batched(
                        copy,
                        |mut buf| (cobs_find_floor(&mut buf), buf),
                        BatchSize::LargeInput,
                    )
                });
                group.bench_function("find_move_floor", |b| {
                    b.iter_batched(
                        copy,
                        |mut buf| (cobs_find_move_floor(&mut buf), buf),
                        BatchSize::LargeInput,
                    )
                });
            }
            Kind::CobsEncode { payload } => {
                let enc = CobsEncoder::new(MAX_FRAME).expect("COBS encoder");
                let mut out = vec![0u8; cobs_out_len(&case.input, payload)];
                group.bench_function("fastnet", |b| {
                    b.iter(|| fastnet_cobs_encode(&enc, &case.input, payload, &mut out))
                });
                group.bench_function("cobs", |b| {
                    b.iter(|| cobs_encode(&case.input, payload, &mut out))
                });
                group.bench_function("corncobs", |b| {
                    b.iter(|| corncobs_encode(&case.input, payload, &mut out))
                });
            }
            Kind::Varint { .. } => {
                group.bench_function("fastnet", |b| {
                    b.iter(|| fastnet_in_place(&mut fastnet_varint(), &mut input))
                });
                group.bench_function("fastnet_bytes", |b| {
                    b.iter_batched(
                        fresh,
                        |mut buf| (fastnet_bytes(&mut fastnet_varint(), &mut buf), buf),
                        BatchSize::LargeInput,
                    )
                });
                group.bench_function("unsigned_varint", |b| {
                    b.iter_batched(
                        fresh,
                        |mut buf| (tokio(&mut uvi_bytes(), &mut buf), buf),
                        BatchSize::LargeInput,
                    )
                });
                group.bench_function("unsigned_varint_fn", |b| b.iter(|| uvi_fn(&case.input)));
            }
        }
        group.finish();
    }
}

criterion_group!(benches, decode);
criterion_main!(benches);
