//! Varint length framing: the frame's length is an unsigned LEB128 prefix.
//!
//! See [`VarintDecoder`] for the format, the checks and an MQTT example.

use super::length_field::{frame_bounds, prefix_decoder_impls, FrameState, PrefixState};
use super::{check_max_frame, Decoded, Decoder, Encoder, Envelope, Frame, Oversize, SplitDecoder};
use crate::{DecodeError, Error};

/// Most bytes a LEB128 `u64` takes.
const MAX_LEN: usize = 10;

/// Layout and limits of a varint-prefixed frame (see [`VarintDecoder`]).
///
/// Start from [`VarintConfig::new`] or [`VarintConfig::mqtt`] and chain the
/// setters, or assign the fields (settings may be added in a minor
/// release, so outside this crate the struct is not built with a literal).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct VarintConfig {
    /// Most bytes the prefix may take, 1 to 10 (10 holds any `u64`).
    pub max_prefix: u8,
    /// Bytes before the prefix.
    pub offset: usize,
    /// Signed adjustment added to the prefix value to get the number of
    /// bytes that follow the prefix.
    pub adjust: i64,
    /// Bytes stripped from the start of the frame; `None` strips the offset
    /// and the prefix, leaving the payload only.
    pub strip: Option<usize>,
    /// Maximum length of a whole frame on the wire, prefix included, after
    /// adjustment.
    pub max_frame: usize,
    /// What the decoder does with a frame longer than `max_frame`.
    pub oversize: Oversize,
}

impl VarintConfig {
    /// A LEB128 `u64` prefix (up to 10 bytes) at the start of the frame
    /// that counts the payload after it; the payload alone is delivered;
    /// frames up to [`DEFAULT_MAX_FRAME`](super::DEFAULT_MAX_FRAME);
    /// oversize closes.
    pub const fn new() -> Self {
        VarintConfig {
            max_prefix: 10,
            offset: 0,
            adjust: 0,
            strip: None,
            max_frame: super::DEFAULT_MAX_FRAME,
            oversize: Oversize::Close,
        }
    }

    /// Like [`new`](Self::new) with the prefix limited to 4 bytes, as MQTT's
    /// remaining length (values below 2²⁸). For whole MQTT packets add
    /// `.offset(1).strip(Some(0))` (see [`VarintDecoder`]).
    pub const fn mqtt() -> Self {
        VarintConfig {
            max_prefix: 4,
            ..Self::new()
        }
    }

    crate::setters! {
        max_prefix: u8,
        offset: usize,
        adjust: i64,
        strip: Option<usize>,
        max_frame: usize,
        oversize: Oversize,
    }

    fn check(&self) -> Result<(), Error> {
        if self.max_prefix == 0 || usize::from(self.max_prefix) > MAX_LEN {
            return Err(Error::InvalidConfig {
                reason: "varint max_prefix must be 1 to 10 bytes",
            });
        }
        check_max_frame(self.max_frame)?;
        if self.offset >= self.max_frame {
            return Err(Error::InvalidConfig {
                reason: "offset + 1 byte of varint prefix must not exceed max_frame",
            });
        }
        Ok(())
    }
}

impl Default for VarintConfig {
    fn default() -> Self {
        Self::new()
    }
}

/// Decodes frames whose length is an unsigned LEB128 varint prefix
/// (protobuf's length-delimited messages, MQTT's "remaining length").
///
/// LEB128 stores 7 bits per byte, least significant group first; a set high
/// bit (`0x80`) means another byte follows. The layout, the adjustment, the
/// bytes to strip and the order of the checks are those of the
/// [length field codec](super::LengthFieldDecoder), with the varint in place
/// of the fixed-width field:
///
/// `frame_len = offset + prefix length + value + adjust`
///
/// and `strip` defaulting to `offset + prefix length`.
///
/// # What the decoder refuses
///
/// All of these are fatal:
///
/// - [`Error::VarintTooLong`]: byte number `max_prefix` of the prefix still
///   has the continuation bit. The decoder never reads more than
///   `max_prefix` bytes of prefix, whatever follows.
/// - [`Error::VarintOverflow`]: a 10-byte prefix whose last byte is above 1,
///   a value above `u64::MAX`.
/// - [`Error::FrameTooLarge`] with `len = max_frame + 1`: when `max_frame`
///   is so small that the prefix would end past it (`offset + max_prefix >
///   max_frame`), a prefix still continuing at byte `max_frame` is refused
///   there. Such a frame is too large whatever its value, and its length
///   cannot be known without reading past the maximum, so this one is fatal
///   even under [`Oversize::Skip`]. It keeps the guarantee that the decoder
///   never needs more than `max_frame` bytes buffered.
/// - then the length field checks: [`Error::LengthOverflow`],
///   [`Error::LengthTooShort`], [`Error::FrameTooLarge`] (fail fast, and
///   skippable under [`Oversize::Skip`]), [`Error::StripTooLarge`].
///
/// Non-minimal encodings (such as `0x80 0x00` for 0, or the ten-byte
/// `0x80 … 0x80 0x00`) are accepted, as protobuf decoders do; encoders always
/// write the minimal form.
///
/// # MQTT
///
/// An MQTT control packet is one fixed-header byte, then the remaining
/// length as a varint of at most 4 bytes, counting the bytes after it. With
/// offset 1 and nothing stripped the payload is the whole packet:
///
/// ```
/// use fastnet_proto::codec::{Decoded, Decoder, VarintConfig, VarintDecoder};
///
/// let cfg = VarintConfig::mqtt().offset(1).strip(Some(0));
/// let mut dec = VarintDecoder::new(cfg).unwrap();
///
/// // PINGREQ, then a PUBLISH with 200 bytes after its remaining length
/// // (200 = 0xC8 0x01).
/// let mut wire = [0u8; 205];
/// wire[..5].copy_from_slice(&[0xC0, 0x00, 0x30, 0xC8, 0x01]);
///
/// let Ok(Decoded::Frame(ping)) = dec.decode(&mut wire) else { panic!() };
/// assert_eq!(ping.payload(&wire), [0xC0, 0x00]);
/// let rest = &mut wire[ping.consumed..];
/// let Ok(Decoded::Frame(publish)) = dec.decode(rest) else { panic!() };
/// assert_eq!((publish.consumed, publish.len()), (203, 203));
/// assert_eq!(publish.payload(rest)[..3], [0x30, 0xC8, 0x01]);
///
/// // A remaining length still continuing after 4 bytes is refused.
/// assert!(dec.decode(&mut [0x30, 0xFF, 0xFF, 0xFF, 0xFF]).is_err());
/// ```
///
/// Resumable: the prefix is parsed once per frame (it is at most 10 bytes,
/// reread while incomplete); while the body is incomplete the decoder
/// answers [`Decoded::NeedMore`] with the frame's total length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VarintDecoder {
    cfg: VarintConfig,
    state: FrameState,
    /// Longest prefix, 0 to 2 bytes, that the fast path reads, decided
    /// once in [`VarintDecoder::new`]: 0 unless the layout is plain (offset
    /// 0, adjustment 0, the prefix stripped), where every frame is its
    /// prefix plus the value's bytes and only the maximum is left to check;
    /// 2 if a 2-byte prefix is allowed and fits the maximum.
    fast: usize,
}

impl VarintDecoder {
    /// A decoder for `cfg`.
    ///
    /// Fails with [`Error::InvalidConfig`] unless `max_prefix` is 1 to 10,
    /// `max_frame` is at least 1 and `offset` plus one prefix byte fits
    /// within `max_frame`.
    pub fn new(cfg: VarintConfig) -> Result<Self, Error> {
        cfg.check()?;
        let plain = cfg.offset == 0 && cfg.adjust == 0 && cfg.strip.is_none();
        let fast = if !plain {
            0
        } else if cfg.max_prefix >= 2 && cfg.max_frame >= 2 {
            2
        } else {
            1
        };
        Ok(VarintDecoder {
            cfg,
            state: FrameState::Header,
            fast,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &VarintConfig {
        &self.cfg
    }

    /// The prefix's value and where it ends, if it is complete.
    fn read_prefix(&self, src: &[u8]) -> Result<Option<(u64, usize)>, Error> {
        let max_prefix = usize::from(self.cfg.max_prefix);
        // The prefix may not run past `max_frame` either (`offset <
        // max_frame` by construction).
        let room = self.cfg.max_frame - self.cfg.offset;
        let cap = max_prefix.min(room);
        let Some(prefix) = src.get(self.cfg.offset..) else {
            return Ok(None);
        };
        let mut value = 0u64;
        for (i, &byte) in prefix.iter().take(cap).enumerate() {
            let more = byte & 0x80 != 0;
            if more && i + 1 == cap {
                return Err(if cap == max_prefix {
                    Error::VarintTooLong {
                        max_bytes: self.cfg.max_prefix,
                    }
                } else {
                    Error::FrameTooLarge {
                        len: u64::try_from(self.cfg.max_frame)
                            .unwrap_or(u64::MAX)
                            .saturating_add(1),
                        max: self.cfg.max_frame,
                    }
                });
            }
            // The tenth group holds bit 63 only.
            if i + 1 == MAX_LEN && byte > 1 {
                return Err(Error::VarintOverflow);
            }
            // `i` < 10, so the shift is at most 63.
            value |= u64::from(byte & 0x7F) << (7 * i);
            if !more {
                return Ok(Some((value, self.cfg.offset + i + 1)));
            }
        }
        Ok(None)
    }
}

prefix_decoder_impls!(VarintDecoder);

impl VarintDecoder {
    // Small enough to inline into a caller's frame loop: on the plain
    // layout, a whole frame with a 1- or 2-byte prefix is answered here,
    // the prefix read unrolled; everything else in
    // `VarintDecoder::decode_general`.
    #[inline(always)]
    fn decode_in(&self, state: &mut FrameState, src: &mut [u8]) -> Result<Decoded, DecodeError> {
        if self.fast > 0 && *state == FrameState::Header {
            if let Some(&[b0, b1]) = src.first_chunk::<2>() {
                let prefix = if b0 < 0x80 {
                    Some((usize::from(b0), 1))
                } else if b1 < 0x80 && self.fast == 2 {
                    Some((usize::from(b0 & 0x7F) | usize::from(b1) << 7, 2))
                } else {
                    None
                };
                if let Some((value, header)) = prefix {
                    // At most 2^14 + 2: no overflow.
                    let frame_len = header + value;
                    if frame_len <= self.cfg.max_frame && frame_len <= src.len() {
                        return Ok(Decoded::Frame(Frame {
                            consumed: frame_len,
                            start: header,
                            end: frame_len,
                        }));
                    }
                }
            } else if src.is_empty() {
                // The call after a wake-up's last frame: answered here as
                // the general path would, without the call.
                return Ok(Decoded::NeedMore { frame_len: None });
            }
        }
        self.decode_general(state, src)
    }

    /// Every layout, every prefix, every state, every error.
    #[inline(never)]
    fn decode_general(&self, state: &mut FrameState, src: &[u8]) -> Result<Decoded, DecodeError> {
        if let Some(answer) = state.resume(src.len()) {
            return Ok(answer);
        }
        match self.read_prefix(src) {
            Ok(None) => Ok(Decoded::NeedMore { frame_len: None }),
            Ok(Some((value, header))) => {
                let bounds = frame_bounds(
                    value,
                    header,
                    self.cfg.adjust,
                    self.cfg.strip,
                    self.cfg.max_frame,
                );
                state.on_header(bounds, self.cfg.oversize, src.len())
            }
            Err(error) => Err(DecodeError::fatal(error)),
        }
    }
}

/// Bytes the minimal LEB128 encoding of `value` takes (1 to 10).
fn varint_len(value: u64) -> usize {
    let bits = 64 - value.leading_zeros() as usize;
    bits.div_ceil(7).max(1)
}

/// Writes the minimal LEB128 encoding of `value`; returns its length.
fn write_varint(mut value: u64, out: &mut [u8; MAX_LEN]) -> usize {
    for (i, slot) in out.iter_mut().enumerate() {
        // Masked to 7 bits: the cast keeps every bit.
        let low = (value & 0x7F) as u8;
        value >>= 7;
        if value == 0 {
            *slot = low;
            return i + 1;
        }
        *slot = low | 0x80;
    }
    // Unreachable: ten groups of 7 bits hold any u64.
    MAX_LEN
}

/// Writes the minimal LEB128 prefix followed by the payload, the mirror of a
/// [`VarintDecoder`] with the same configuration.
///
/// The prefix holds `payload.len() - adjust`. A payload is refused, before
/// anything is written, with [`Error::LengthNotRepresentable`] (`width` is
/// `max_prefix`) if that value is negative or needs more than `max_prefix`
/// bytes, and with [`Error::PayloadTooLarge`] if the whole frame exceeds
/// `max_frame`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VarintEncoder {
    cfg: VarintConfig,
    /// With no adjustment, the longest payload that passes both checks of
    /// [`VarintEncoder::check`]: one comparison instead of them on every
    /// frame. `None` with an adjustment (the general path).
    plain_max: Option<usize>,
}

impl VarintEncoder {
    /// An encoder for `cfg`.
    ///
    /// Besides the decoder's checks, the frame must be writable from the
    /// payload alone: `offset` must be 0 and `strip` `None`, otherwise
    /// [`Error::NotEncodable`].
    pub fn new(cfg: VarintConfig) -> Result<Self, Error> {
        cfg.check()?;
        if cfg.offset != 0 {
            return Err(Error::NotEncodable {
                reason: "a varint prefix with bytes before it",
            });
        }
        if cfg.strip.is_some() {
            return Err(Error::NotEncodable {
                reason: "a varint prefix whose decoder strips other than the prefix",
            });
        }
        // A payload no longer than `max_frame - L`, where `L` is the
        // prefix length of `max_frame` itself, has a prefix of at most `L`
        // bytes, so its frame fits; capped where the prefix would pass
        // `max_prefix` bytes.
        let plain_max = (cfg.adjust == 0).then(|| {
            let frame_max = cfg
                .max_frame
                .saturating_sub(varint_len(cfg.max_frame as u64));
            let bits = 7 * u32::from(cfg.max_prefix);
            let prefix_max = if bits >= 64 {
                u64::MAX
            } else {
                (1 << bits) - 1
            };
            usize::try_from(prefix_max).map_or(frame_max, |p| p.min(frame_max))
        });
        Ok(VarintEncoder { cfg, plain_max })
    }

    /// The configuration.
    pub fn config(&self) -> &VarintConfig {
        &self.cfg
    }

    /// The prefix value for `payload`, after checking it can be framed;
    /// returns `(value, frame length)`.
    fn check(&self, payload: &[u8]) -> Result<(u64, usize), Error> {
        // Lossless: usize is at most 64 bits.
        let value = payload.len() as i128 - i128::from(self.cfg.adjust);
        let prefix = u64::try_from(value)
            .ok()
            .filter(|&v| varint_len(v) <= usize::from(self.cfg.max_prefix))
            .ok_or(Error::LengthNotRepresentable {
                payload: payload.len(),
                adjust: self.cfg.adjust,
                width: self.cfg.max_prefix,
            })?;
        let len = payload.len().saturating_add(varint_len(prefix));
        if len > self.cfg.max_frame {
            return Err(Error::PayloadTooLarge {
                len,
                max: self.cfg.max_frame,
            });
        }
        Ok((prefix, len))
    }

    /// [`check`](Self::check) for the replies off the common layout, kept
    /// out of the inlined reply path.
    #[cold]
    #[inline(never)]
    fn check_out_of_line(&self, payload: &[u8]) -> Result<(u64, usize), Error> {
        self.check(payload)
    }

    fn header(value: u64) -> Envelope {
        let mut bytes = [0u8; MAX_LEN];
        let n = write_varint(value, &mut bytes);
        Envelope::with_header(bytes.get(..n).unwrap_or(&[]))
    }
}

impl Encoder for VarintEncoder {
    fn encoded_len(&self, payload: &[u8]) -> Result<usize, Error> {
        self.check(payload).map(|(_, len)| len)
    }

    fn envelope(&self, payload: &[u8]) -> Result<Option<Envelope>, Error> {
        let (value, _) = self.check(payload)?;
        Ok(Some(Self::header(value)))
    }

    #[inline(always)]
    fn encode_with<F: FnMut(&[u8])>(&self, payload: &[u8], mut put: F) -> Result<usize, Error> {
        let value = match self.plain_max {
            // The prefix is the payload's length, known to fit: every reply
            // of the common layout takes this path.
            Some(max) if payload.len() <= max => payload.len() as u64,
            _ => self.check_out_of_line(payload)?.0,
        };
        let mut prefix = [0u8; MAX_LEN];
        let n = write_varint(value, &mut prefix);
        put(prefix.get(..n).unwrap_or(&[]));
        put(payload);
        Ok(payload.len() + n)
    }
}

#[cfg(test)]
mod tests {
    use std::vec;
    use std::vec::Vec;

    use super::*;
    use crate::codec::testutil::*;
    use crate::codec::{Frame, DEFAULT_MAX_FRAME};
    use proptest::prelude::*;

    fn dec(cfg: VarintConfig) -> VarintDecoder {
        VarintDecoder::new(cfg).unwrap()
    }

    fn enc(cfg: VarintConfig) -> VarintEncoder {
        VarintEncoder::new(cfg).unwrap()
    }

    /// The fast path answers an empty buffer itself (the call after a
    /// wake-up's last frame); the general path must give the same answer.
    #[test]
    fn an_empty_buffer_needs_more_on_both_paths() {
        for max_frame in [10, 200, 20_000, DEFAULT_MAX_FRAME] {
            let mut d = dec(VarintConfig::new().max_frame(max_frame));
            assert!(d.fast > 0, "max_frame {max_frame}");
            let general = d.decode_general(&mut FrameState::Header, &[]);
            assert_eq!(general, Ok(Decoded::NeedMore { frame_len: None }));
            assert_eq!(d.decode(&mut []), general, "max_frame {max_frame}");
        }
    }

    #[test]
    fn setters_set_their_field() {
        // Built in a `const`, so the setters stay usable there. The literal
        // names every field, so a new setting without a setter fails here.
        const SET: VarintConfig = VarintConfig::new()
            .max_prefix(4)
            .offset(1)
            .adjust(-2)
            .strip(Some(0))
            .max_frame(300)
            .oversize(Oversize::Skip);
        let want = VarintConfig {
            max_prefix: 4,
            offset: 1,
            adjust: -2,
            strip: Some(0),
            max_frame: 300,
            oversize: Oversize::Skip,
        };
        assert_eq!(SET, want);
    }

    fn with(adjust: i64, strip: Option<usize>, max_frame: usize) -> VarintConfig {
        VarintConfig {
            adjust,
            strip,
            max_frame,
            ..VarintConfig::new()
        }
    }

    fn cat(parts: &[&[u8]]) -> Vec<u8> {
        parts.concat()
    }

    fn decodes_to(cfg: VarintConfig, input: &[u8], expected: &[u8]) {
        assert_decodes_to(|| dec(cfg), input, expected);
    }

    /// The first answer for `input` fed whole, and fed bytewise.
    fn first_error(cfg: VarintConfig, input: &[u8]) -> (Outcome, Outcome) {
        (
            decode_whole(&mut dec(cfg), input),
            decode_bytewise(&mut dec(cfg), input),
        )
    }

    #[test]
    fn single_and_multi_byte_prefixes() {
        decodes_to(VarintConfig::new(), b"\x05hello", b"hello");
        decodes_to(VarintConfig::new(), &[0x00], b"");
        let payload = vec![3u8; 300];
        decodes_to(
            VarintConfig::new(),
            &cat(&[&[0xAC, 0x02], &payload]),
            &payload,
        );
        let payload = vec![4u8; 127];
        decodes_to(VarintConfig::new(), &cat(&[&[0x7F], &payload]), &payload);
        let payload = vec![5u8; 128];
        decodes_to(
            VarintConfig::new(),
            &cat(&[&[0x80, 0x01], &payload]),
            &payload,
        );
    }

    #[test]
    fn prefix_split_across_reads_is_resumable() {
        let mut d = dec(VarintConfig::new());
        let mut buf = vec![0xAC];
        assert_eq!(
            d.decode(&mut buf),
            Ok(Decoded::NeedMore { frame_len: None })
        );
        buf.push(0x02);
        assert_eq!(
            d.decode(&mut buf),
            Ok(Decoded::NeedMore {
                frame_len: Some(302)
            })
        );
        buf.extend_from_slice(&[1; 299]);
        assert_eq!(
            d.decode(&mut buf),
            Ok(Decoded::NeedMore {
                frame_len: Some(302)
            })
        );
        // Parsed once: the prefix bytes are not looked at again.
        buf[..2].fill(0);
        buf.push(1);
        assert_eq!(
            d.decode(&mut buf),
            Ok(Decoded::Frame(Frame {
                consumed: 302,
                start: 2,
                end: 302
            }))
        );
    }

    #[test]
    fn non_minimal_prefixes_are_accepted() {
        decodes_to(VarintConfig::new(), &[0x80, 0x00], b"");
        decodes_to(
            VarintConfig::new(),
            &[0x83, 0x80, 0x00, 1, 2, 3],
            &[1, 2, 3],
        );
    }

    #[test]
    fn ten_byte_prefix_is_accepted() {
        let mut zero = vec![0x80; 9];
        zero.push(0x00);
        decodes_to(VarintConfig::new(), &zero, b"");
        let mut three = vec![0x83];
        three.extend_from_slice(&[0x80; 8]);
        three.extend_from_slice(&[0x00, 7, 8, 9]);
        decodes_to(VarintConfig::new(), &three, &[7, 8, 9]);
    }

    #[test]
    #[cfg(target_pointer_width = "64")]
    fn ten_byte_u64_max() {
        let mut max = vec![0xFF; 9];
        max.push(0x01);
        let (whole, bytewise) = first_error(VarintConfig::new(), &max);
        assert_eq!(
            whole.errors,
            [Error::LengthOverflow {
                field: u64::MAX,
                adjust: 0
            }]
        );
        assert_eq!(whole, bytewise);
        // With the prefix length taken off again, just representable.
        let c = with(-10, None, usize::MAX);
        assert_eq!(
            dec(c).decode(&mut max),
            Ok(Decoded::NeedMore {
                frame_len: Some(usize::MAX)
            })
        );
    }

    #[test]
    fn value_above_u64_max_is_refused() {
        for last in [0x02, 0x7F] {
            let mut input = vec![0xFF; 9];
            input.push(last);
            let (whole, bytewise) = first_error(VarintConfig::new(), &input);
            assert_eq!(whole.errors, [Error::VarintOverflow]);
            assert!(whole.fatal);
            assert_eq!(whole, bytewise);
        }
    }

    #[test]
    fn eleven_byte_prefix_is_refused_at_the_tenth_byte() {
        // Peer mistake: a varint reader with no cap on continuation bytes.
        let mut input = vec![0x80; 10];
        input.push(0x00);
        let (whole, bytewise) = first_error(VarintConfig::new(), &input);
        assert_eq!(whole.errors, [Error::VarintTooLong { max_bytes: 10 }]);
        assert_eq!(whole, bytewise);
        // Fail fast: the tenth byte is enough to know.
        let mut d = dec(VarintConfig::new());
        assert_eq!(
            d.decode(&mut [0x80; 9]),
            Ok(Decoded::NeedMore { frame_len: None })
        );
        assert_eq!(
            d.decode(&mut [0x80; 10]),
            Err(DecodeError::fatal(Error::VarintTooLong { max_bytes: 10 }))
        );
        // The continuation bit wins over the overflow check on byte ten.
        assert_eq!(
            d.decode(&mut [0xFF; 10]).unwrap_err().error,
            Error::VarintTooLong { max_bytes: 10 }
        );
    }

    #[test]
    fn an_endless_continuation_stream_is_refused_after_max_prefix_bytes() {
        // Peer mistake: no cap on continuation bytes, reading forever.
        for max_prefix in 1..=10u8 {
            let c = VarintConfig {
                max_prefix,
                ..VarintConfig::new()
            };
            let input = vec![0x80; 100_000];
            let mut d = dec(c);
            assert_eq!(
                d.decode(&mut input.clone()),
                Err(DecodeError::fatal(Error::VarintTooLong {
                    max_bytes: max_prefix
                }))
            );
            let n = usize::from(max_prefix);
            assert_eq!(
                dec(c).decode(&mut input[..n - 1].to_vec()),
                Ok(Decoded::NeedMore { frame_len: None })
            );
            assert!(dec(c).decode(&mut input[..n].to_vec()).is_err());
        }
    }

    #[test]
    fn mqtt_four_byte_limit() {
        let c = VarintConfig {
            offset: 1,
            strip: Some(0),
            max_frame: usize::MAX,
            ..VarintConfig::mqtt()
        };
        // The largest remaining length, 268 435 455.
        assert_eq!(
            dec(c).decode(&mut [0x30, 0xFF, 0xFF, 0xFF, 0x7F]),
            Ok(Decoded::NeedMore {
                frame_len: Some(1 + 4 + 268_435_455)
            })
        );
        for fifth in [0x80, 0xFF] {
            assert_eq!(
                dec(c).decode(&mut [0x30, 0xFF, 0xFF, 0xFF, fifth, 0x01]),
                Err(DecodeError::fatal(Error::VarintTooLong { max_bytes: 4 }))
            );
        }
        // Packets as the MQTT spec shows them: CONNACK and DISCONNECT.
        let packets = [0x20, 0x02, 0x00, 0x00, 0xE0, 0x00];
        let out = decode_bytewise(&mut dec(c), &packets);
        assert_eq!(out.frames, [packets[..4].to_vec(), packets[4..].to_vec()]);
        // The encoder refuses values needing a fifth byte.
        let e = enc(VarintConfig {
            adjust: -(1 << 28) + 1,
            max_frame: usize::MAX,
            ..VarintConfig::mqtt()
        });
        assert_eq!(e.encoded_len(b""), Ok(4));
        assert_eq!(
            e.encoded_len(b"x"),
            Err(Error::LengthNotRepresentable {
                payload: 1,
                adjust: -(1 << 28) + 1,
                width: 4
            })
        );
    }

    #[test]
    fn empty_payloads() {
        let input = [0u8; 5];
        for chunks in [&[5][..], &[1], &[2, 3]] {
            let out = decode_chunked(&mut dec(VarintConfig::new()), &input, chunks);
            assert_eq!(out.frames, vec![Vec::<u8>::new(); 5]);
        }
        assert_eq!(
            encode_all(&enc(VarintConfig::new()), &[vec![], vec![]]),
            [0, 0]
        );
    }

    #[test]
    fn max_size_frame_accepted_and_max_plus_one_refused() {
        // 128 payload bytes take a 2-byte prefix: 130 on the wire.
        let c = with(0, None, 130);
        let ok = cat(&[&[0x80, 0x01], &[9; 128]]);
        decodes_to(c, &ok, &[9; 128]);
        let out = decode_whole(&mut dec(c), &cat(&[&[0x81, 0x01], &[9; 129]]));
        assert_eq!(out.errors, [Error::FrameTooLarge { len: 131, max: 130 }]);
        assert!(out.fatal);

        let e = enc(c);
        let mut buf = [0u8; 140];
        assert_eq!(e.encode(&[9; 128], &mut buf), Ok(130));
        assert_eq!(&buf[..130], &ok[..]);
        let mut buf = [7u8; 140];
        assert_eq!(
            e.encode(&[9; 129], &mut buf),
            Err(Error::PayloadTooLarge { len: 131, max: 130 })
        );
        assert_eq!(buf, [7; 140], "a refused payload writes nothing");
        // At the prefix-length boundary: 127 bytes fit a smaller maximum.
        assert_eq!(enc(with(0, None, 128)).encoded_len(&[0; 127]), Ok(128));
        assert_eq!(
            enc(with(0, None, 128)).encoded_len(&[0; 128]),
            Err(Error::PayloadTooLarge { len: 130, max: 128 })
        );
    }

    #[test]
    fn oversize_fails_fast_with_only_the_prefix() {
        let mut d = dec(with(0, None, 1000));
        assert_eq!(
            d.decode(&mut [0xFF, 0xFF]),
            Ok(Decoded::NeedMore { frame_len: None })
        );
        assert_eq!(
            d.decode(&mut [0xFF, 0xFF, 0x7F]),
            Err(DecodeError::fatal(Error::FrameTooLarge {
                len: 3 + 0x1F_FFFF,
                max: 1000
            }))
        );
    }

    #[test]
    fn a_prefix_longer_than_max_frame_is_refused_at_max_frame() {
        // max_frame 3 < 10: a prefix still going at byte 3 makes the frame
        // too large whatever its value; the decoder does not ask for more.
        for oversize in [Oversize::Close, Oversize::Skip] {
            let c = VarintConfig {
                oversize,
                ..with(0, None, 3)
            };
            assert_eq!(
                dec(c).decode(&mut [0x80, 0x80]),
                Ok(Decoded::NeedMore { frame_len: None })
            );
            let (whole, bytewise) = first_error(c, &[0x80, 0x80, 0x80, 0x80, 0x00]);
            assert_eq!(whole.errors, [Error::FrameTooLarge { len: 4, max: 3 }]);
            assert!(whole.fatal);
            assert_eq!(whole, bytewise);
            // A 3-byte prefix ending within the maximum is fine.
            decodes_to(c, &[0x80, 0x80, 0x00], b"");
        }
        // With an offset, the room left is max_frame - offset.
        let c = VarintConfig {
            offset: 2,
            ..with(0, None, 4)
        };
        assert_eq!(
            dec(c).decode(&mut [0, 0, 0x80, 0x80]),
            Err(DecodeError::fatal(Error::FrameTooLarge { len: 5, max: 4 }))
        );
    }

    #[test]
    fn adjustment_making_the_length_negative() {
        // Counting the whole frame with a 1-byte prefix: adjust -1.
        let c = with(-1, Some(0), 100);
        decodes_to(c, &[0x03, 1, 2], &[0x03, 1, 2]);
        assert_eq!(
            dec(c).decode(&mut [0x00, 0x00]),
            Err(DecodeError::fatal(Error::LengthTooShort {
                field: 0,
                adjust: -1,
                header: 1
            }))
        );
        assert_eq!(
            dec(with(-100, None, 100)).decode(&mut [0x05]),
            Err(DecodeError::fatal(Error::LengthTooShort {
                field: 5,
                adjust: -100,
                header: 1
            }))
        );
    }

    #[test]
    fn extreme_adjustments() {
        assert_eq!(
            dec(with(i64::MIN, None, 100)).decode(&mut [0x7F]),
            Err(DecodeError::fatal(Error::LengthTooShort {
                field: 127,
                adjust: i64::MIN,
                header: 1
            }))
        );
        let mut max = vec![0xFF; 9];
        max.push(0x01);
        // u64::MAX + 10 - 2^63.
        assert_eq!(
            dec(with(i64::MIN, None, 100)).decode(&mut max),
            Err(DecodeError::fatal(Error::FrameTooLarge {
                len: (1 << 63) + 9,
                max: 100
            }))
        );
        assert_eq!(
            dec(with(i64::MAX, None, 100)).decode(&mut [0x00]),
            Err(DecodeError::fatal(Error::FrameTooLarge {
                len: 1 << 63,
                max: 100
            }))
        );
        assert_eq!(
            dec(with(i64::MAX, None, 100))
                .decode(&mut max)
                .unwrap_err()
                .error,
            Error::LengthOverflow {
                field: u64::MAX,
                adjust: i64::MAX
            }
        );
        // Encoder: i64::MIN puts 2^63 + len in the prefix, which decodes back.
        let c = with(i64::MIN, None, 100);
        let wire = encode_all(&enc(c), &[b"ab".to_vec()]);
        assert_eq!(wire.len(), 12);
        decodes_to(c, &wire, b"ab");
        assert_eq!(
            enc(with(i64::MAX, None, 100)).encoded_len(b"ab"),
            Err(Error::LengthNotRepresentable {
                payload: 2,
                adjust: i64::MAX,
                width: 10
            })
        );
    }

    #[test]
    fn strip_larger_than_frame() {
        assert_eq!(
            dec(with(0, Some(5), 100)).decode(&mut [0x03]),
            Err(DecodeError::fatal(Error::StripTooLarge {
                strip: 5,
                frame_len: 4
            }))
        );
        decodes_to(with(0, Some(5), 100), &[0x04, 1, 2, 3, 4], b"");
    }

    #[test]
    fn frames_before_a_bad_one_are_delivered() {
        let input = cat(&[b"\x02ab\x00\x01c", &[0x80; 10], b"\x01d"]);
        for chunks in [&[input.len()][..], &[1], &[3, 4]] {
            let out = decode_chunked(&mut dec(VarintConfig::new()), &input, chunks);
            assert_eq!(out.frames, [b"ab".to_vec(), vec![], b"c".to_vec()]);
            assert_eq!(out.errors, [Error::VarintTooLong { max_bytes: 10 }]);
            assert!(out.fatal);
        }
    }

    #[test]
    fn skip_resumes_at_the_next_frame_in_any_chunking() {
        let c = VarintConfig {
            oversize: Oversize::Skip,
            ..with(0, None, 10)
        };
        let input = cat(&[
            b"\x02ab",
            &[0x80, 0x01],
            &[0xEE; 128],
            b"\x04cdef",
            b"\x0a0123456789",
            b"\x00",
        ]);
        let mut all_chunks: Vec<Vec<usize>> = vec![vec![input.len()], vec![1], vec![3, 7]];
        all_chunks.extend((1..input.len()).map(|i| vec![i, input.len()]));
        for chunks in all_chunks {
            let out = decode_chunked(&mut dec(c), &input, &chunks);
            assert_eq!(
                out.frames,
                [b"ab".to_vec(), b"cdef".to_vec(), vec![]],
                "chunks {chunks:?}"
            );
            assert_eq!(
                out.errors,
                [
                    Error::FrameTooLarge { len: 130, max: 10 },
                    Error::FrameTooLarge {
                        len: 10 + 1,
                        max: 10
                    }
                ],
                "chunks {chunks:?}"
            );
            assert!(!out.fatal);
        }
    }

    #[test]
    fn offset_and_strip() {
        // Two bytes of type before the prefix, delivered with the payload.
        let c = VarintConfig {
            offset: 2,
            strip: Some(0),
            ..VarintConfig::new()
        };
        decodes_to(c, b"\xAB\xCD\x02hi", b"\xAB\xCD\x02hi");
        let c = VarintConfig { strip: None, ..c };
        decodes_to(c, b"\xAB\xCD\x02hi", b"hi");
    }

    #[test]
    fn bad_configs_are_refused() {
        for max_prefix in [0, 11, 255] {
            assert!(matches!(
                VarintDecoder::new(VarintConfig {
                    max_prefix,
                    ..VarintConfig::new()
                }),
                Err(Error::InvalidConfig { .. })
            ));
        }
        assert!(VarintDecoder::new(with(0, None, 0)).is_err());
        assert!(VarintDecoder::new(with(0, None, 1)).is_ok());
        let c = VarintConfig {
            offset: 4,
            ..with(0, None, 4)
        };
        assert!(VarintDecoder::new(c).is_err());
        assert!(VarintDecoder::new(VarintConfig { max_frame: 5, ..c }).is_ok());
        assert!(matches!(
            VarintEncoder::new(VarintConfig { max_frame: 5, ..c }),
            Err(Error::NotEncodable { .. })
        ));
        for strip in [0, 1] {
            assert!(matches!(
                VarintEncoder::new(VarintConfig {
                    strip: Some(strip),
                    ..VarintConfig::new()
                }),
                Err(Error::NotEncodable { .. })
            ));
        }
        assert_eq!(VarintConfig::default(), VarintConfig::new());
        assert_eq!(VarintConfig::mqtt().max_prefix, 4);
        assert_eq!(VarintConfig::new().max_frame, DEFAULT_MAX_FRAME);
        let d = dec(VarintConfig::mqtt());
        assert_eq!(d.config(), &VarintConfig::mqtt());
        assert_eq!(d.max_frame(), DEFAULT_MAX_FRAME);
    }

    #[test]
    fn reset_forgets_a_parsed_prefix() {
        let mut d = dec(VarintConfig::new());
        assert!(matches!(
            d.decode(&mut [5, 1]),
            Ok(Decoded::NeedMore { .. })
        ));
        d.reset();
        assert_eq!(
            d.decode(&mut [1, 1]),
            Ok(Decoded::Frame(Frame {
                consumed: 2,
                start: 1,
                end: 2
            }))
        );
    }

    #[test]
    fn encoder_writes_the_minimal_prefix() {
        // Peer mistake: an inverted guard so nothing is ever encoded.
        let e = enc(VarintConfig::new());
        let mut buf = [0u8; 400];
        assert_eq!(e.encode(b"hey", &mut buf), Ok(4));
        assert_eq!(&buf[..4], b"\x03hey");
        assert_eq!(e.encode(&[1; 300], &mut buf), Ok(302));
        assert_eq!(&buf[..3], [0xAC, 0x02, 1]);
        let env = e.envelope(&[1; 300]).unwrap().unwrap();
        assert_eq!((env.header(), env.trailer()), (&[0xAC, 0x02][..], &b""[..]));
        let mut hv = heapless::Vec::<u8, 8>::new();
        assert_eq!(e.encode_heapless(b"hey", &mut hv), Ok(4));
        assert_eq!(&hv[..], b"\x03hey");
        assert_eq!(
            e.encode(b"hey", &mut [0; 3]),
            Err(Error::BufferTooSmall {
                needed: 4,
                capacity: 3
            })
        );
        assert_eq!(e.config(), &VarintConfig::new());

        for (value, bytes) in [
            (0u64, &[0x00][..]),
            (1, &[0x01]),
            (127, &[0x7F]),
            (128, &[0x80, 0x01]),
            (300, &[0xAC, 0x02]),
            (16_383, &[0xFF, 0x7F]),
            (16_384, &[0x80, 0x80, 0x01]),
            (
                u64::MAX,
                &[0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01],
            ),
        ] {
            assert_eq!(VarintEncoder::header(value).header(), bytes);
            assert_eq!(varint_len(value), bytes.len());
        }
    }

    #[test]
    fn encoder_refuses_negative_and_too_wide_values() {
        let e = enc(with(5, None, 100));
        assert_eq!(
            e.encoded_len(b"ab"),
            Err(Error::LengthNotRepresentable {
                payload: 2,
                adjust: 5,
                width: 10
            })
        );
        assert_eq!(e.encoded_len(b"abcde"), Ok(6));
        let e = enc(VarintConfig {
            max_prefix: 1,
            ..VarintConfig::new()
        });
        assert_eq!(e.encoded_len(&[0; 127]), Ok(128));
        assert_eq!(
            e.encoded_len(&[0; 128]),
            Err(Error::LengthNotRepresentable {
                payload: 128,
                adjust: 0,
                width: 1
            })
        );
    }

    #[test]
    fn max_is_checked_against_the_adjusted_frame_not_the_raw_value() {
        // Value 5 < 10, but the frame is 1 + 5 + 6 = 12.
        assert_eq!(
            dec(with(6, Some(0), 10)).decode(&mut [5]),
            Err(DecodeError::fatal(Error::FrameTooLarge {
                len: 12,
                max: 10
            }))
        );
        // Value 20 > 10, but the frame is 1 + 20 - 12 = 9.
        let c = with(-12, Some(0), 10);
        let input = cat(&[&[20], &[1; 8]]);
        decodes_to(c, &input, &input);
    }

    #[test]
    fn zero_or_huge_values_never_loop_or_slice_out_of_bounds() {
        // Zero with whole-frame counting is too short, not an empty frame
        // that consumes nothing.
        let mut d = dec(with(-1, Some(0), 100));
        assert!(!d.decode(&mut [0; 8]).unwrap_err().can_continue);
        // Zero counting the payload still consumes its prefix.
        let out = decode_whole(&mut dec(VarintConfig::new()), &[0; 64]);
        assert_eq!(out.frames.len(), 64);
        // Huge values with huge strips: an error or NeedMore, never a slice
        // past the buffer.
        for adjust in [i64::MIN, -1, 0, 1, i64::MAX] {
            let c = VarintConfig {
                offset: 1,
                ..with(adjust, Some(usize::MAX), usize::MAX)
            };
            let mut buf = [0, 0xFF, 0xFF, 0xFF, 0x0F, 1, 2];
            match dec(c).decode(&mut buf) {
                Ok(Decoded::NeedMore { frame_len: Some(n) }) => assert!(n > buf.len()),
                Ok(other) => panic!("{other:?}"),
                Err(e) => assert!(!e.can_continue),
            }
        }
    }

    fn adjust() -> impl Strategy<Value = i64> {
        prop_oneof![
            8 => -12i64..12,
            1 => Just(i64::MIN),
            1 => Just(i64::MAX),
            1 => any::<i64>(),
        ]
    }

    /// Bytes biased towards small values and continuation bytes.
    fn wire() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(
            prop_oneof![4 => 0u8..6, 1 => 0x80u8..0x83, 1 => any::<u8>()],
            0..160,
        )
    }

    proptest! {
        #[test]
        fn plain_encode_path_answers_as_the_general_check(
                max_prefix in 1u8..=10,
                len in prop_oneof![0usize..300, 16_370usize..16_400],
                max_extra in prop_oneof![0usize..300, 16_370usize..16_400]) {
            // Lengths and maxima around the 1-, 2- and 3-byte prefixes' limits.
            let c = VarintConfig {
                max_prefix,
                max_frame: 1 + max_extra,
                ..VarintConfig::new()
            };
            let enc = VarintEncoder::new(c).unwrap();
            let payload = vec![0x5A; len];
            let mut pieces = Vec::new();
            let got = enc.encode_with(&payload, |p| pieces.extend_from_slice(p));
            match enc.check(&payload) {
                Ok((value, n)) => {
                    prop_assert_eq!(got, Ok(n));
                    let mut want = VarintEncoder::header(value).header().to_vec();
                    want.extend_from_slice(&payload);
                    prop_assert_eq!(pieces, want);
                }
                Err(e) => {
                    prop_assert_eq!(got, Err(e));
                    prop_assert!(pieces.is_empty());
                }
            }
        }

        #[test]
        fn fast_path_answers_as_the_general_path(
                max_prefix in 1u8..=10, max_frame in 1usize..400, skip in any::<bool>(),
                input in proptest::collection::vec(
                    prop_oneof![3 => 0u8..8, 2 => any::<u8>(), 1 => 0x80u8..0x83], 0..300),
                chunks in proptest::collection::vec(1usize..40, 1..6)) {
            let c = VarintConfig {
                max_prefix,
                max_frame,
                oversize: if skip { Oversize::Skip } else { Oversize::Close },
                ..VarintConfig::new()
            };
            let fast = dec(c);
            prop_assert!(fast.fast > 0);
            let mut general = fast;
            general.fast = 0;
            for chunks in [&chunks[..], &[1], &[input.len().max(1)]] {
                prop_assert_eq!(
                    decode_chunked(&mut fast.clone(), &input, chunks),
                    decode_chunked(&mut general.clone(), &input, chunks)
                );
            }
        }

        #[test]
        fn roundtrip_in_any_chunking(max_prefix in 1u8..=10, adjust in -300i64..40,
                                     max_frame in 1usize..400,
                                     payloads in proptest::collection::vec(
                                         proptest::collection::vec(any::<u8>(), 0..200), 0..10),
                                     chunks in proptest::collection::vec(1usize..60, 1..8)) {
            let c = VarintConfig { max_prefix, adjust, max_frame, ..VarintConfig::new() };
            let e = enc(c);
            let payloads: Vec<Vec<u8>> =
                payloads.into_iter().filter(|p| e.encoded_len(p).is_ok()).collect();
            let wire = encode_all(&e, &payloads);
            let out = decode_chunked(&mut dec(c), &wire, &chunks);
            prop_assert!(out.errors.is_empty());
            prop_assert_eq!(out.frames, payloads);
        }

        #[test]
        fn encoder_refuses_exactly_what_the_decoder_refuses(
                max_prefix in 1u8..=10, adjust in adjust(), len in 0usize..300,
                max_frame in 1usize..400) {
            let c = VarintConfig { max_prefix, adjust, max_frame, ..VarintConfig::new() };
            let e = enc(c);
            let payload = vec![0xA5; len];
            match e.encoded_len(&payload) {
                Ok(n) => {
                    let out = decode_whole(&mut dec(c), &encode_all(&e, std::slice::from_ref(&payload)));
                    prop_assert_eq!(out.frames, vec![payload]);
                    prop_assert!(n <= max_frame);
                }
                Err(Error::PayloadTooLarge { len: n, max }) => prop_assert!(n > max),
                Err(Error::LengthNotRepresentable { payload: p, adjust: a, width }) => {
                    prop_assert_eq!((p, width), (len, max_prefix));
                    let value = p as i128 - i128::from(a);
                    let fits = u64::try_from(value)
                        .is_ok_and(|v| varint_len(v) <= usize::from(max_prefix));
                    prop_assert!(!fits);
                }
                Err(e) => prop_assert!(false, "unexpected {:?}", e),
            }
        }

        #[test]
        fn varint_encoding_roundtrips(value in any::<u64>()) {
            let env = VarintEncoder::header(value);
            let c = VarintConfig { max_frame: usize::MAX, ..VarintConfig::new() };
            let d = dec(c);
            let mut prefix = env.header().to_vec();
            prefix.push(0);
            prop_assert_eq!(d.read_prefix(&prefix), Ok(Some((value, varint_len(value)))));
        }

        #[test]
        fn whole_equals_bytewise(max_prefix in 1u8..=10, offset in 0usize..3, adjust in adjust(),
                                 strip in proptest::option::of(0usize..10), max_extra in 0usize..40,
                                 skip in any::<bool>(), input in wire(),
                                 chunks in proptest::collection::vec(1usize..20, 1..6)) {
            let c = VarintConfig {
                max_prefix,
                offset,
                adjust,
                strip,
                max_frame: offset + 1 + max_extra,
                oversize: if skip { Oversize::Skip } else { Oversize::Close },
            };
            let whole = decode_whole(&mut dec(c), &input);
            let bytewise = decode_bytewise(&mut dec(c), &input);
            let chunked = decode_chunked(&mut dec(c), &input, &chunks);
            prop_assert_eq!(&whole, &bytewise);
            prop_assert_eq!(&whole, &chunked);
            for f in &whole.frames {
                prop_assert!(f.len() <= c.max_frame);
            }
        }

        #[test]
        fn never_panics_on_any_config(max_prefix in any::<u8>(), offset in any::<usize>(),
                                      adjust in any::<i64>(), strip in proptest::option::of(any::<usize>()),
                                      max_frame in any::<usize>(),
                                      input in proptest::collection::vec(any::<u8>(), 0..64)) {
            let c = VarintConfig {
                max_prefix: max_prefix % 12,
                offset: offset % 16,
                adjust,
                strip,
                max_frame,
                oversize: Oversize::Skip,
            };
            if let Ok(mut d) = VarintDecoder::new(c) {
                let _ = decode_whole(&mut d, &input);
            }
            if let Ok(e) = VarintEncoder::new(c) {
                let _ = e.encoded_len(&input);
                let _ = e.envelope(&input);
                let _ = e.encode(&input, &mut [0u8; 80]);
            }
        }
    }
}
