//! The implementations the decode benchmark measures, shared by the
//! criterion benchmark (`benches/decode.rs`) and the instruction-count
//! driver (`examples/icount.rs`), so both run exactly the same code.
//!
//! Each function handles ALL frames of one case's input and touches every
//! payload (its length and first byte go through `black_box`).

// Each user takes a different subset.
#![allow(dead_code)]

use std::hint::black_box;

use bytes::BytesMut;
use fastnet_proto::codec::{
    decode_bytes, CobsDecoder, CobsEncoder, Decoded, Decoder, DelimiterDecoder, Encoder, Endian,
    LengthFieldConfig, LengthFieldDecoder, VarintConfig, VarintDecoder,
};
use fastnet_tokio::FastnetCodec;
use tokio_util::codec::{
    AnyDelimiterCodec, Decoder as TokioDecoder, LengthDelimitedCodec, LinesCodec,
};

/// Largest frame any decoder is configured for: far above every case.
pub(crate) const MAX_FRAME: usize = 8 << 20;

/// What every implementation does with each payload.
#[inline(always)]
pub(crate) fn touch(payload: &[u8]) {
    black_box((payload.len(), payload.first().copied()));
}

/// Decodes every frame of `buf` in place; returns the frame count.
pub(crate) fn fastnet_in_place<D: Decoder>(dec: &mut D, buf: &mut [u8]) -> usize {
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
pub(crate) fn fastnet_bytes<D: Decoder>(dec: &mut D, buf: &mut BytesMut) -> usize {
    let mut frames = 0;
    while let Some(payload) = decode_bytes(dec, buf).expect("fastnet decode error") {
        touch(&payload);
        frames += 1;
    }
    frames
}

/// Decodes every frame of `buf` with a tokio-util codec.
pub(crate) fn tokio<C, T>(codec: &mut C, buf: &mut BytesMut) -> usize
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
pub(crate) fn memchr_lines(buf: &[u8]) -> usize {
    let mut start = 0;
    let mut frames = 0;
    for end in memchr::memchr_iter(b'\n', buf) {
        touch(&buf[start..end]);
        start = end + 1;
        frames += 1;
    }
    frames
}

/// The ceiling for any length field decoder: read each `u32` big-endian
/// length and skip that many bytes, touching each payload; no checks
/// beyond the slice bounds (no maximum, no state, no errors).
pub(crate) fn skip_loop(buf: &[u8]) -> usize {
    let mut rest = buf;
    let mut frames = 0;
    while let Some((len, tail)) = rest.split_first_chunk::<4>() {
        let len = u32::from_be_bytes(*len) as usize;
        let Some(payload) = tail.get(..len) else {
            break;
        };
        touch(payload);
        rest = &tail[len..];
        frames += 1;
    }
    frames
}

/// fastnet's length field decoder for the length cases.
pub(crate) fn fastnet_length() -> LengthFieldDecoder {
    // Offset 0, adjustment 0, payload only: tokio-util's default framing.
    let mut cfg = LengthFieldConfig::new(4, Endian::Big);
    cfg.max_frame = MAX_FRAME;
    LengthFieldDecoder::new(cfg).expect("length field config")
}

/// fastnet's length field decoder behind tokio-util's `Decoder` trait, as
/// `Framed` would call it (no encoder: decoding only).
pub(crate) fn fastnet_tokio_length() -> FastnetCodec<LengthFieldDecoder, ()> {
    FastnetCodec::new(fastnet_length(), ())
}

/// fastnet's lines decoder.
pub(crate) fn fastnet_lines() -> DelimiterDecoder {
    DelimiterDecoder::lines(MAX_FRAME).expect("lines config")
}

/// tokio-util's length codec, default framing.
pub(crate) fn tokio_length() -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .max_frame_length(MAX_FRAME)
        .new_codec()
}

/// tokio-util's lines codec.
pub(crate) fn tokio_lines() -> LinesCodec {
    LinesCodec::new_with_max_length(MAX_FRAME)
}

/// tokio-util's any-delimiter codec seeking `\n`.
pub(crate) fn tokio_any_delimiter() -> AnyDelimiterCodec {
    AnyDelimiterCodec::new_with_max_length(b"\n".to_vec(), vec![], MAX_FRAME)
}

// ---- COBS ----

/// fastnet's COBS decoder.
pub(crate) fn fastnet_cobs() -> CobsDecoder {
    CobsDecoder::new(MAX_FRAME).expect("COBS config")
}

/// The `cobs` crate's in-place decoder, each frame found with `memchr`
/// first (its own decoders go byte by byte; this is its fastest way
/// through a stream). Rewrites `buf`, like fastnet's.
pub(crate) fn cobs_in_place(buf: &mut [u8]) -> usize {
    each_frame_in_place(buf, |frame| {
        cobs::decode_in_place(frame).expect("cobs decode error")
    })
}

/// Decodes every `0x00`-terminated frame of `buf` in place with `decode`
/// (given the frame without its `0x00`, it returns the payload's length
/// at the frame's front), each frame found with `memchr` first, touching
/// each payload; returns how many frames.
fn each_frame_in_place(buf: &mut [u8], decode: impl Fn(&mut [u8]) -> usize) -> usize {
    let mut pos = 0;
    let mut frames = 0;
    while let Some(zero) = memchr::memchr(0, &buf[pos..]) {
        let frame = &mut buf[pos..pos + zero];
        let n = decode(frame);
        touch(&frame[..n]);
        pos += zero + 1;
        frames += 1;
    }
    frames
}

/// The `cobs` crate's streaming decoder (`CobsDecoder::push`) into `out`.
pub(crate) fn cobs_stream(buf: &[u8], out: &mut [u8]) -> usize {
    let mut pos = 0;
    let mut frames = 0;
    while pos < buf.len() {
        let mut dec = cobs::CobsDecoder::new(out);
        let report = dec
            .push(&buf[pos..])
            .expect("cobs decode error")
            .expect("a whole frame");
        touch(&dec.dest()[..report.frame_size()]);
        pos += report.parsed_size();
        frames += 1;
    }
    frames
}

/// `corncobs::decode_buf` into `out`, each frame found with `memchr` first
/// (`decode_buf` does not say where the frame ended).
pub(crate) fn corncobs_buf(buf: &[u8], out: &mut [u8]) -> usize {
    let mut pos = 0;
    let mut frames = 0;
    while let Some(zero) = memchr::memchr(0, &buf[pos..]) {
        let n = corncobs::decode_buf(&buf[pos..=pos + zero], out).expect("corncobs decode error");
        touch(&out[..n]);
        pos += zero + 1;
        frames += 1;
    }
    frames
}

/// `corncobs::decode_in_place`, each frame found with `memchr` first.
/// Rewrites `buf`.
pub(crate) fn corncobs_in_place(buf: &mut [u8]) -> usize {
    each_frame_in_place(buf, |frame| {
        corncobs::decode_in_place(frame).expect("corncobs decode error")
    })
}

/// The floor of any COBS decoder that finds its frames in a stream: each
/// frame's `0x00` found with `memchr`, and nothing decoded.
pub(crate) fn cobs_find_floor(buf: &mut [u8]) -> usize {
    each_frame_in_place(buf, |frame| frame.len())
}

/// The floor of an in-place decoder whose frames each hold a full
/// (254-byte) group, as random payloads of 256 bytes and more do: find the
/// frame, then move the bytes one place back (here the whole frame, which
/// bounds the move a decoder makes after its first full group).
pub(crate) fn cobs_find_move_floor(buf: &mut [u8]) -> usize {
    each_frame_in_place(buf, |frame| {
        frame.copy_within(1.., 0);
        frame.len().saturating_sub(1)
    })
}

/// Room to encode `plain` as COBS frames of `payload` bytes each: the
/// payload plus one code byte per started 254 bytes plus the `0x00`.
pub(crate) fn cobs_out_len(plain: &[u8], payload: usize) -> usize {
    let frames = plain.len().div_ceil(payload.max(1));
    plain.len() + frames * (payload / 254 + 2)
}

/// Encodes each `payload`-byte chunk of `plain` with fastnet's
/// `CobsEncoder::encode` into `out`; returns the bytes written.
pub(crate) fn fastnet_cobs_encode(
    enc: &CobsEncoder,
    plain: &[u8],
    payload: usize,
    out: &mut [u8],
) -> usize {
    let mut pos = 0;
    for p in plain.chunks(payload) {
        pos += enc
            .encode(p, &mut out[pos..])
            .expect("fastnet encode error");
    }
    black_box(&out[..pos]);
    pos
}

/// The same with `cobs::encode` (which writes no `0x00`: added here).
pub(crate) fn cobs_encode(plain: &[u8], payload: usize, out: &mut [u8]) -> usize {
    let mut pos = 0;
    for p in plain.chunks(payload) {
        pos += cobs::encode(p, &mut out[pos..]);
        out[pos] = 0;
        pos += 1;
    }
    black_box(&out[..pos]);
    pos
}

/// The same with `corncobs::encode_buf` (which writes the `0x00`).
pub(crate) fn corncobs_encode(plain: &[u8], payload: usize, out: &mut [u8]) -> usize {
    let mut pos = 0;
    for p in plain.chunks(payload) {
        pos += corncobs::encode_buf(p, &mut out[pos..]);
    }
    black_box(&out[..pos]);
    pos
}

// ---- varint prefix ----

/// fastnet's varint decoder: a LEB128 prefix counting the payload.
pub(crate) fn fastnet_varint() -> VarintDecoder {
    let cfg = VarintConfig::new().max_frame(MAX_FRAME);
    VarintDecoder::new(cfg).expect("varint config")
}

/// unsigned-varint's codec (`codec` feature): tokio-util's `Decoder` on a
/// `BytesMut`, as `Framed` calls it.
pub(crate) fn uvi_bytes() -> unsigned_varint::codec::UviBytes<bytes::Bytes> {
    let mut codec = unsigned_varint::codec::UviBytes::default();
    codec.set_max_len(MAX_FRAME);
    codec
}

/// unsigned-varint's decode function in a hand-written loop over the
/// input, in place: the prefix, the maximum, the payload.
pub(crate) fn uvi_fn(buf: &[u8]) -> usize {
    let mut rest = buf;
    let mut frames = 0;
    while !rest.is_empty() {
        let (len, tail) = unsigned_varint::decode::usize(rest).expect("varint decode error");
        assert!(len <= MAX_FRAME, "frame too large");
        let Some(payload) = tail.get(..len) else {
            break;
        };
        touch(payload);
        rest = &tail[len..];
        frames += 1;
    }
    frames
}
