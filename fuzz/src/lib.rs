//! What the fuzz targets share: a reader that turns the fuzzer's bytes into
//! a codec configuration, chunk sizes and a stream or payloads, and the
//! checks each target runs.
//!
//! # Input layout
//!
//! Every target reads its input front to back with [`Input`]; bytes past the
//! end read as zero, so every input is valid.
//!
//! - decode targets: `config | splits | stream`
//! - roundtrip targets: `config | splits | payload*`, each payload a
//!   little-endian `u16` length (modulo 1024) and then its bytes
//! - `connection`: a sequence of operations (see [`ops`])
//!
//! `splits` is a length byte and that many chunk sizes (0 counts as 1,
//! cycled; none means the stream whole). Configurations are read by
//! [`delimiter`], [`fixed`], [`length_field`], [`varint`], [`cobs`] and
//! [`raw`], documented on each; [`size`](Input::size) and
//! [`small_size`](Input::small_size) read `0xFFFF` and `0xFF` as
//! `usize::MAX`, and [`signed`](Input::signed) reads one byte as an `i8`
//! unless it is `0x80`, which announces a full little-endian `i64`.

use fastnet_proto::codec::testutil::{decode_chunked, decode_whole, Outcome};
use fastnet_proto::codec::{
    CobsDecoder, CobsEncoder, Decoder, DelimiterDecoder, DelimiterEncoder, Delimiters, Encoder,
    Endian, FixedDecoder, FixedEncoder, LengthFieldConfig, Oversize, RawDecoder, RawEncoder,
    VarintConfig,
};
use fastnet_proto::connection::model::Op;

/// The fuzzer's bytes, read front to back; zeros once they run out.
#[derive(Debug)]
pub struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    /// Reads `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Input(data)
    }

    /// Whether every byte was read.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// One byte.
    pub fn u8(&mut self) -> u8 {
        let (&b, rest) = self.0.split_first().unwrap_or((&0, &[]));
        self.0 = rest;
        b
    }

    /// A little-endian `u16`.
    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }

    /// Up to `n` bytes.
    pub fn bytes(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.0.split_at(n.min(self.0.len()));
        self.0 = rest;
        head
    }

    /// A length byte, then up to that many bytes.
    pub fn short(&mut self) -> &'a [u8] {
        let n = self.u8();
        self.bytes(n.into())
    }

    /// Everything left.
    pub fn rest(&mut self) -> &'a [u8] {
        self.bytes(self.0.len())
    }

    /// A size from a `u16`; `0xFFFF` is `usize::MAX`.
    pub fn size(&mut self) -> usize {
        match self.u16() {
            u16::MAX => usize::MAX,
            n => n.into(),
        }
    }

    /// A size from one byte; `0xFF` is `usize::MAX`.
    pub fn small_size(&mut self) -> usize {
        match self.u8() {
            u8::MAX => usize::MAX,
            n => n.into(),
        }
    }

    /// A signed number: one byte as an `i8`, except that `0x80` announces a
    /// full little-endian `i64` (so `i64::MIN` is reachable).
    pub fn signed(&mut self) -> i64 {
        match self.u8() as i8 {
            i8::MIN => i64::from_le_bytes(core::array::from_fn(|_| self.u8())),
            n => n.into(),
        }
    }

    /// Chunk sizes for [`decode_chunked`]: a length byte, then one byte each.
    pub fn splits(&mut self) -> Vec<usize> {
        self.short().iter().map(|&b| usize::from(b)).collect()
    }

    /// Payloads until the input ends: a `u16` length (modulo 1024), then
    /// up to that many bytes each.
    pub fn payloads(&mut self) -> Vec<&'a [u8]> {
        let mut payloads = Vec::new();
        while !self.is_empty() {
            let n = self.u16() % 1024;
            payloads.push(self.bytes(n.into()));
        }
        payloads
    }
}

fn policy(skip: bool) -> Oversize {
    if skip {
        Oversize::Skip
    } else {
        Oversize::Close
    }
}

/// A delimiter codec: the decoder, the encoder if the set can be written,
/// and whether the delimiter is kept.
pub type DelimiterCodec = (DelimiterDecoder, Option<DelimiterEncoder>, bool);

/// A flags byte (bit 0 keep, bit 1 skip oversize), a count byte (1 + n % 8
/// delimiters), each delimiter as a byte `n` and `1 + n % 16` bytes, then
/// `max_frame` ([`Input::size`]).
pub fn delimiter(input: &mut Input<'_>) -> Option<DelimiterCodec> {
    let flags = input.u8();
    let count = 1 + usize::from(input.u8() % 8);
    let delims: Vec<&[u8]> = (0..count)
        .map(|_| {
            let n = 1 + usize::from(input.u8() % 16);
            input.bytes(n)
        })
        .collect();
    let set = Delimiters::new(&delims).ok()?;
    let max = input.size();
    let keep = flags & 1 != 0;
    let dec = DelimiterDecoder::new(set, max).ok()?;
    let enc = DelimiterEncoder::new(set, max).ok();
    Some((
        dec.keep_delimiter(keep).oversize(policy(flags & 2 != 0)),
        enc.map(|e| e.keep_delimiter(keep)),
        keep,
    ))
}

/// The frame length ([`Input::size`]).
pub fn fixed(input: &mut Input<'_>) -> Option<(FixedDecoder, FixedEncoder)> {
    let len = input.size();
    Some((FixedDecoder::new(len).ok()?, FixedEncoder::new(len).ok()?))
}

/// A flags byte (width `[1, 2, 3, 4, 8][n % 5]` from bits 0-2, bit 3
/// little-endian, bit 4 skip oversize, bit 5 strip the header (`None`)),
/// the offset ([`Input::small_size`]), the adjustment ([`Input::signed`]),
/// unless bit 5: the bytes to strip ([`Input::small_size`]); then
/// `max_frame` ([`Input::size`]).
pub fn length_field(input: &mut Input<'_>) -> LengthFieldConfig {
    let flags = input.u8();
    let width = [1, 2, 3, 4, 8][usize::from(flags & 7) % 5];
    let endian = if flags & 8 != 0 {
        Endian::Little
    } else {
        Endian::Big
    };
    LengthFieldConfig::new(width, endian)
        .offset(input.small_size())
        .adjust(input.signed())
        .strip((flags & 32 == 0).then(|| input.small_size()))
        .max_frame(input.size())
        .oversize(policy(flags & 16 != 0))
}

/// A flags byte (`max_prefix` = bits 0-3, 0 to 15, of which 1 to 10 are
/// valid; bit 4 skip oversize, bit 5 strip the prefix (`None`)), then the
/// offset, adjustment, strip and `max_frame` as for [`length_field`].
pub fn varint(input: &mut Input<'_>) -> VarintConfig {
    let flags = input.u8();
    // The setters run in this order, so the input is read in the order
    // documented above.
    VarintConfig::new()
        .max_prefix(flags & 15)
        .offset(input.small_size())
        .adjust(input.signed())
        .strip((flags & 32 == 0).then(|| input.small_size()))
        .max_frame(input.size())
        .oversize(policy(flags & 16 != 0))
}

/// A flags byte (bit 1 skip oversize), then `max_frame` ([`Input::size`]).
pub fn cobs(input: &mut Input<'_>) -> Option<(CobsDecoder, CobsEncoder)> {
    let skip = input.u8() & 2 != 0;
    let max = input.size();
    let dec = CobsDecoder::new(max).ok()?.oversize(policy(skip));
    Some((dec, CobsEncoder::new(max).ok()?))
}

/// `max_frame` ([`Input::size`]).
pub fn raw(input: &mut Input<'_>) -> Option<(RawDecoder, RawEncoder)> {
    let max = input.size();
    Some((RawDecoder::new(max).ok()?, RawEncoder::new(max).ok()?))
}

/// What decoding must preserve.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// The frames (one per encoded payload, equal to it).
    Frames,
    /// Raw: frames are wherever reads ended; only their concatenation counts.
    Concatenation,
}

/// The rest of the input is `splits | stream`. Decodes the stream whole, in
/// the fuzzer's splits, and again whole after [`Decoder::reset`] of the
/// decoder used for the splits. The driver asserts the decode contract on
/// every answer (consumed ≤ buffered, ranges in bounds, progress, frames
/// within `max_frame`); this asserts chunking invariance (same frames, same
/// errors; for [`Expect::Concatenation`], frames that add up to the stream)
/// and that a reset decoder starts afresh.
pub fn check_decoder<D: Decoder + Clone>(dec: D, expect: Expect, input: &mut Input<'_>) {
    let splits = input.splits();
    let stream = input.rest();
    let whole = decode_whole(&mut dec.clone(), stream);
    let mut used = dec.clone();
    let split = decode_chunked(&mut used, stream, &splits);
    match expect {
        Expect::Frames => assert_eq!(whole, split, "whole vs splits {splits:?}"),
        Expect::Concatenation => {
            assert_eq!(whole.frames.concat(), stream);
            assert_eq!(split.frames.concat(), stream, "splits {splits:?}");
            assert!(whole.errors.is_empty() && split.errors.is_empty());
        }
    }
    used.reset();
    assert_eq!(decode_whole(&mut used, stream), whole, "after reset");
}

/// The rest of the input is `splits | payload*`. Encodes every payload the
/// encoder accepts, checking that `encoded_len`, `encode_with`, `encode`
/// and `envelope` agree, that the frame alone decodes back to the payload,
/// and that the whole stream, in the fuzzer's splits, decodes back to the
/// accepted payloads without an error. For every payload it refuses, checks
/// that it writes nothing and that `naive(payload)` (the frame it would
/// have written had it not checked) does not decode back to the payload.
pub fn check_roundtrip<E: Encoder, D: Decoder + Clone>(
    enc: &E,
    dec: D,
    expect: Expect,
    naive: impl Fn(&[u8]) -> Vec<u8>,
    input: &mut Input<'_>,
) {
    let splits = input.splits();
    let mut wire = Vec::new();
    let mut accepted = Vec::new();
    for payload in input.payloads() {
        let just = |frames: Vec<Vec<u8>>| Outcome {
            frames,
            errors: Vec::new(),
            fatal: false,
        };
        let alone = vec![payload.to_vec()];
        match enc.encoded_len(payload) {
            Ok(len) => {
                let frame = encode(enc, payload, len);
                let out = decode_whole(&mut dec.clone(), &frame);
                match expect {
                    Expect::Frames => assert_eq!(out, just(alone), "frame {frame:?}"),
                    Expect::Concatenation => assert_eq!(out.frames.concat(), payload),
                }
                wire.extend_from_slice(&frame);
                accepted.push(payload.to_vec());
            }
            Err(e) => {
                assert_eq!(enc.envelope(payload), Err(e));
                let mut dst = [0xA5u8; 64];
                assert_eq!(enc.encode(payload, &mut dst), Err(e));
                assert_eq!(dst, [0xA5; 64], "a refused payload writes nothing");
                let naive = naive(payload);
                let out = decode_whole(&mut dec.clone(), &naive);
                assert_ne!(out, just(alone), "refused ({e:?}) but decodes back");
            }
        }
    }
    let out = decode_chunked(&mut dec.clone(), &wire, &splits);
    match expect {
        Expect::Frames => assert_eq!(out.frames, accepted, "splits {splits:?}"),
        Expect::Concatenation => assert_eq!(out.frames.concat(), accepted.concat()),
    }
    assert!(out.errors.is_empty(), "{:?}", out.errors);
}

/// Encodes an accepted payload three ways, which must agree.
fn encode<E: Encoder>(enc: &E, payload: &[u8], len: usize) -> Vec<u8> {
    let mut frame = Vec::new();
    let n = enc.encode_with(payload, |piece| frame.extend_from_slice(piece));
    assert_eq!((n, frame.len()), (Ok(len), len));
    let mut dst = vec![0u8; len];
    assert_eq!(enc.encode(payload, &mut dst), Ok(len));
    assert_eq!(dst, frame);
    if len > 0 {
        let mut short = vec![0u8; len - 1];
        assert!(enc.encode(payload, &mut short).is_err());
    }
    if let Some(env) = enc.envelope(payload).unwrap() {
        assert_eq!([env.header(), payload, env.trailer()].concat(), frame);
    }
    frame
}

/// The delimiter frame for `payload` without the encoder's checks: the
/// payload and the primary delimiter, or the payload alone if kept.
pub fn naive_delimiter(dec: &DelimiterDecoder, keep: bool, payload: &[u8]) -> Vec<u8> {
    let trailer = if keep {
        &[][..]
    } else {
        dec.delimiters().primary()
    };
    [payload, trailer].concat()
}

/// The length field frame for `payload` without the encoder's checks: the
/// value `len - adjust`, truncated to the field's width.
pub fn naive_length_field(cfg: &LengthFieldConfig, payload: &[u8]) -> Vec<u8> {
    // Truncation is the point: this is the frame a careless encoder writes.
    let value = (payload.len() as i128 - i128::from(cfg.adjust)) as u64;
    let width = usize::from(cfg.width);
    let field = match cfg.endian {
        Endian::Big => value.to_be_bytes()[8 - width..].to_vec(),
        Endian::Little => value.to_le_bytes()[..width].to_vec(),
    };
    [&field[..], payload].concat()
}

/// The varint frame for `payload` without the encoder's checks: LEB128 of
/// `len - adjust` (as a `u64`, wrapped), however long.
pub fn naive_varint(cfg: &VarintConfig, payload: &[u8]) -> Vec<u8> {
    let mut value = (payload.len() as i128 - i128::from(cfg.adjust)) as u64;
    let mut frame = Vec::new();
    while value >= 0x80 {
        frame.push(value as u8 | 0x80);
        value >>= 7;
    }
    frame.push(value as u8);
    frame.extend_from_slice(payload);
    frame
}

/// The COBS frame for `payload` without the limit (COBS refuses only an
/// oversize frame).
pub fn naive_cobs(payload: &[u8]) -> Vec<u8> {
    let mut frame = Vec::new();
    let unlimited = CobsEncoder::new(usize::MAX).expect("a valid limit");
    let _ = unlimited.encode_with(payload, |piece| frame.extend_from_slice(piece));
    frame
}

/// Operations for the connection model until the input ends: a tag byte
/// `t`, then by `t % 10`: 0-3 send (a length byte, then bytes mapped to
/// `a`, `b`, `\n` by value modulo 3), 4-6 write (a capacity byte), 7-8
/// advance the clock (a byte of milliseconds), 9 EOF.
pub fn ops(input: &mut Input<'_>) -> Vec<Op> {
    let mut ops = Vec::new();
    while !input.is_empty() {
        ops.push(match input.u8() % 10 {
            0..=3 => Op::Send(
                input
                    .short()
                    .iter()
                    .map(|b| b"ab\n"[usize::from(b % 3)])
                    .collect(),
            ),
            4..=6 => Op::Write(input.u8().into()),
            7..=8 => Op::Advance(input.u8().into()),
            _ => Op::Eof,
        });
    }
    ops
}
