// Decode throughput: fastnet-proto (in place, through `decode_bytes`, and
// through fastnet-tokio's tokio-util adapter) vs tokio-util (and memchr, for
// lines).
//
// Run:    cargo bench -p fastnet-bench --bench decode -- --warm-up-time 1 --measurement-time 3
// Table:  cargo run -p fastnet-bench --release --bin codec_report
// Both, 3 runs, medians:  bench/run_decode.sh
//
// Each case decodes ALL frames of the same 1 MiB input and touches every
// payload (its length and first byte go through `black_box`). fastnet
// decoders work in place on one pre-built buffer (they write nothing for
// these codecs); tokio-util codecs get a fresh `BytesMut` copy of the input
// from `iter_batched` setup, outside the measurement.

//! Criterion benchmarks of decode throughput.

use std::hint::black_box;

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use fastnet_bench::{cases, Case, Kind};
use fastnet_proto::codec::{
    decode_bytes, Decoded, Decoder, DelimiterDecoder, Endian, LengthFieldConfig, LengthFieldDecoder,
};
use fastnet_tokio::FastnetCodec;
use tokio_util::codec::{
    AnyDelimiterCodec, Decoder as TokioDecoder, LengthDelimitedCodec, LinesCodec,
};

/// Largest frame any decoder is configured for: far above every case.
const MAX_FRAME: usize = 8 << 20;

/// What every implementation does with each payload.
#[inline(always)]
fn touch(payload: &[u8]) {
    black_box((payload.len(), payload.first().copied()));
}

/// Decodes every frame of `buf` in place; returns the frame count.
fn fastnet_in_place<D: Decoder>(dec: &mut D, buf: &mut [u8]) -> usize {
    let mut pos = 0;
    let mut frames = 0;
    loop {
        match dec.decode(&mut buf[pos..]) {
            Ok(Decoded::Frame(frame)) => {
                touch(frame.payload(&buf[pos..]));
                pos += frame.consumed;
                frames += 1;
            }
            Ok(Decoded::Skip(n)) => pos += n,
            Ok(Decoded::NeedMore { .. }) => return frames,
            Err(e) => panic!("fastnet decode error: {e:?}"),
        }
    }
}

/// Decodes every frame of `buf` through fastnet's `BytesMut` adapter.
fn fastnet_bytes<D: Decoder>(dec: &mut D, buf: &mut BytesMut) -> usize {
    let mut frames = 0;
    while let Some(payload) = decode_bytes(dec, buf).expect("fastnet decode error") {
        touch(&payload);
        frames += 1;
    }
    frames
}

/// Decodes every frame of `buf` with a tokio-util codec.
fn tokio<C, T>(codec: &mut C, buf: &mut BytesMut) -> usize
where
    C: TokioDecoder<Item = T>,
    C::Error: std::fmt::Debug,
    T: AsRef<[u8]>,
{
    let mut frames = 0;
    while let Some(payload) = codec.decode(buf).expect("tokio-util decode error") {
        touch(payload.as_ref());
        frames += 1;
    }
    frames
}

/// The ceiling for any line decoder: find every `\n`, touch each line.
fn memchr_lines(buf: &[u8]) -> usize {
    let mut start = 0;
    let mut frames = 0;
    for end in memchr::memchr_iter(b'\n', buf) {
        touch(&buf[start..end]);
        start = end + 1;
        frames += 1;
    }
    frames
}

fn fastnet_length() -> LengthFieldDecoder {
    // Offset 0, adjustment 0, payload only: tokio-util's default framing.
    let mut cfg = LengthFieldConfig::new(4, Endian::Big);
    cfg.max_frame = MAX_FRAME;
    LengthFieldDecoder::new(cfg).expect("length field config")
}

/// fastnet's length field decoder behind tokio-util's `Decoder` trait, as
/// `Framed` would call it (no encoder: decoding only).
fn fastnet_tokio_length() -> FastnetCodec<LengthFieldDecoder, ()> {
    FastnetCodec::new(fastnet_length(), ())
}

fn fastnet_lines() -> DelimiterDecoder {
    DelimiterDecoder::lines(MAX_FRAME).expect("lines config")
}

fn tokio_length() -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .max_frame_length(MAX_FRAME)
        .new_codec()
}

fn tokio_lines() -> LinesCodec {
    LinesCodec::new_with_max_length(MAX_FRAME)
}

fn tokio_any_delimiter() -> AnyDelimiterCodec {
    AnyDelimiterCodec::new_with_max_length(b"\n".to_vec(), vec![], MAX_FRAME)
}

/// Checks once, outside any measurement, that every implementation finds
/// every frame of the case.
fn check(case: &Case) {
    let mut input = case.input.clone();
    let fresh = || BytesMut::from(&case.input[..]);
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
        }
        group.finish();
    }
}

criterion_group!(benches, decode);
criterion_main!(benches);
