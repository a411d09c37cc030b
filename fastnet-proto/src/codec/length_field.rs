//! Length field framing: a header holds the frame's length, Netty style.
//!
//! See [`LengthFieldDecoder`] for the layout and the checks.

use super::{check_max_frame, Decoded, Decoder, Encoder, Envelope, Frame, Oversize, SplitDecoder};
use crate::{DecodeError, Error};

/// Byte order of a length field.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Endian {
    /// Most significant byte first (network order).
    #[default]
    Big,
    /// Least significant byte first.
    Little,
}

/// Layout and limits of a length field frame (see [`LengthFieldDecoder`]).
///
/// Start from [`LengthFieldConfig::new`] and chain the setters, or assign
/// the fields (settings may be added in a minor release, so outside this
/// crate the struct is not built with a literal):
///
/// ```
/// use fastnet_proto::codec::{Endian, LengthFieldConfig, LengthFieldDecoder};
///
/// // A 4-byte little-endian length after a 2-byte magic, counting the whole
/// // frame; the payload is everything after the length.
/// let cfg = LengthFieldConfig::new(4, Endian::Little)
///     .offset(2)
///     .adjust(-6)
///     .max_frame(1024);
/// assert!(LengthFieldDecoder::new(cfg).is_ok());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct LengthFieldConfig {
    /// Width of the length field in bytes: 1, 2, 3, 4 or 8.
    pub width: u8,
    /// Byte order of the length field.
    pub endian: Endian,
    /// Bytes before the length field.
    pub offset: usize,
    /// Signed adjustment added to the field value to get the number of
    /// bytes that follow the field (Netty's `lengthAdjustment`).
    pub adjust: i64,
    /// Bytes stripped from the start of the frame; `None` strips
    /// `offset + width`, leaving the payload only.
    pub strip: Option<usize>,
    /// Maximum length of a whole frame on the wire, header included, after
    /// adjustment.
    pub max_frame: usize,
    /// What the decoder does with a frame longer than `max_frame`.
    pub oversize: Oversize,
}

impl LengthFieldConfig {
    /// A field of `width` bytes at the start of the frame that counts the
    /// payload after it; the payload alone is delivered; frames up to
    /// [`DEFAULT_MAX_FRAME`](super::DEFAULT_MAX_FRAME); oversize closes.
    pub const fn new(width: u8, endian: Endian) -> Self {
        LengthFieldConfig {
            width,
            endian,
            offset: 0,
            adjust: 0,
            strip: None,
            max_frame: super::DEFAULT_MAX_FRAME,
            oversize: Oversize::Close,
        }
    }

    crate::setters! {
        width: u8,
        endian: Endian,
        offset: usize,
        adjust: i64,
        strip: Option<usize>,
        max_frame: usize,
        oversize: Oversize,
    }

    /// Checks the configuration; returns the header length
    /// (`offset + width`).
    fn header_len(&self) -> Result<usize, Error> {
        if !matches!(self.width, 1 | 2 | 3 | 4 | 8) {
            return Err(Error::InvalidConfig {
                reason: "length field width must be 1, 2, 3, 4 or 8 bytes",
            });
        }
        check_max_frame(self.max_frame)?;
        match self.offset.checked_add(usize::from(self.width)) {
            Some(header) if header <= self.max_frame => Ok(header),
            _ => Err(Error::InvalidConfig {
                reason: "offset + width of the length field must not exceed max_frame",
            }),
        }
    }
}

/// Where a frame ends and where its payload starts, from a parsed header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FrameBounds {
    /// Length of the whole frame on the wire.
    pub(crate) frame_len: usize,
    /// Bytes stripped from the front: the payload is `strip..frame_len`.
    pub(crate) strip: usize,
}

/// The rule shared by the length field and varint decoders: from the value
/// of a length header that ends `header` bytes into the frame, the frame's
/// bounds, or why the frame is bad (checked in the order that
/// [`LengthFieldDecoder`] documents).
pub(crate) fn frame_bounds(
    field: u64,
    header: usize,
    adjust: i64,
    strip: Option<usize>,
    max_frame: usize,
) -> Result<FrameBounds, Error> {
    // Lossless: usize is at most 64 bits. The sum of three values of at most
    // 64 bits cannot overflow an i128.
    let header_wide = header as i128;
    let len = i128::from(field) + header_wide + i128::from(adjust);
    let frame_len = match usize::try_from(len) {
        Ok(n) if n >= header => n,
        Err(_) if len > header_wide => return Err(Error::LengthOverflow { field, adjust }),
        _ => {
            return Err(Error::LengthTooShort {
                field,
                adjust,
                header,
            })
        }
    };
    if frame_len > max_frame {
        return Err(Error::FrameTooLarge {
            len: u64::try_from(frame_len).unwrap_or(u64::MAX),
            max: max_frame,
        });
    }
    let strip = strip.unwrap_or(header);
    if strip > frame_len {
        return Err(Error::StripTooLarge { strip, frame_len });
    }
    Ok(FrameBounds { frame_len, strip })
}

/// Where one stream of a length-prefixed decoder ([`LengthFieldDecoder`],
/// [`VarintDecoder`](super::VarintDecoder)) stands: between frames, inside
/// one whose header was read, or skipping an oversized one. The state of a
/// [`SplitDecoder`] stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PrefixState(pub(crate) FrameState);

/// Resumable state of a length-prefixed decoder, shared by the length field
/// and varint decoders.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FrameState {
    /// Waiting for a complete header at the front of the buffer.
    Header,
    /// Header parsed; waiting for the rest of the frame.
    Body(FrameBounds),
    /// Discarding this many more bytes (at least 1) of an oversized frame.
    Skipping(usize),
}

impl FrameState {
    /// Answers a call without parsing, when a header was already parsed or
    /// an oversized frame is being skipped; `None` when a header must be
    /// parsed at the front of the buffer.
    pub(crate) fn resume(&mut self, buffered: usize) -> Option<Decoded> {
        match *self {
            FrameState::Header => None,
            FrameState::Body(bounds) => Some(self.body(bounds, buffered)),
            FrameState::Skipping(_) if buffered == 0 => Some(Decoded::NeedMore { frame_len: None }),
            FrameState::Skipping(rest) => {
                let now = rest.min(buffered);
                self.skip_rest(rest - now);
                Some(Decoded::Skip(now))
            }
        }
    }

    /// Acts on a freshly parsed header, given the [`frame_bounds`] it gave.
    pub(crate) fn on_header(
        &mut self,
        bounds: Result<FrameBounds, Error>,
        oversize: Oversize,
        buffered: usize,
    ) -> Result<Decoded, DecodeError> {
        match bounds {
            Ok(bounds) => Ok(self.body(bounds, buffered)),
            Err(error @ Error::FrameTooLarge { len, .. }) if oversize == Oversize::Skip => {
                // `len` came from a usize.
                let frame_len = usize::try_from(len).unwrap_or(usize::MAX);
                let now = frame_len.min(buffered);
                self.skip_rest(frame_len - now);
                Err(DecodeError::recoverable(error, now))
            }
            Err(error) => {
                *self = FrameState::Header;
                Err(DecodeError::fatal(error))
            }
        }
    }

    fn body(&mut self, bounds: FrameBounds, buffered: usize) -> Decoded {
        if buffered >= bounds.frame_len {
            *self = FrameState::Header;
            Decoded::Frame(Frame {
                consumed: bounds.frame_len,
                start: bounds.strip,
                end: bounds.frame_len,
            })
        } else {
            *self = FrameState::Body(bounds);
            Decoded::NeedMore {
                frame_len: Some(bounds.frame_len),
            }
        }
    }

    fn skip_rest(&mut self, rest: usize) {
        *self = if rest == 0 {
            FrameState::Header
        } else {
            FrameState::Skipping(rest)
        };
    }
}

/// Decodes frames whose length is given by a fixed-width integer field,
/// Netty style.
///
/// The layout is that of Netty's `LengthFieldBasedFrameDecoder`:
///
/// ```text
/// | offset bytes | length field (width bytes) | rest of the frame ... |
/// |<------------------------ frame_len ---------------------------->|
/// |<----- strip ----->|<----------------- payload ----------------->|
/// ```
///
/// with `frame_len = offset + width + field + adjust`. The adjustment says
/// what the field counts: `0` if it counts the bytes after itself, `-(offset +
/// width)` if it counts the whole frame, a positive value if more header
/// follows the field and is not counted. `strip` bytes are cut from the
/// front of the frame; by default the payload is everything after the field.
///
/// # Hardening
///
/// All arithmetic is checked, so no field value and no adjustment (down to
/// `i64::MIN`) can wrap, loop or slice out of bounds. Once the header is
/// parsed, the frame is checked in this order:
///
/// 1. [`Error::LengthOverflow`]: `frame_len` does not fit a `usize`;
/// 2. [`Error::LengthTooShort`]: `frame_len` is shorter than `offset + width`
///    (so no frame is ever empty on the wire: every frame makes progress);
/// 3. [`Error::FrameTooLarge`]: `frame_len` exceeds `max_frame`, which counts
///    the whole frame after adjustment, not the raw field. Reported as soon
///    as the header is parsed, before the body arrives;
/// 4. [`Error::StripTooLarge`]: more bytes to strip than the frame holds.
///
/// All of them are fatal except [`Error::FrameTooLarge`] under
/// [`Oversize::Skip`], where the frame's bytes are skipped as they arrive and
/// decoding resumes at the next frame. The decoder never needs more than
/// `max_frame` bytes buffered to make progress.
///
/// ```
/// use fastnet_proto::codec::{
///     Decoded, Decoder, Encoder, Endian, LengthFieldConfig, LengthFieldDecoder,
///     LengthFieldEncoder,
/// };
///
/// // A 2-byte big-endian length, counting the payload only.
/// let cfg = LengthFieldConfig::new(2, Endian::Big);
/// let enc = LengthFieldEncoder::new(cfg).unwrap();
/// let mut wire = [0u8; 16];
/// let n = enc.encode(b"hello", &mut wire).unwrap();
/// assert_eq!(&wire[..n], b"\x00\x05hello");
///
/// let mut dec = LengthFieldDecoder::new(cfg).unwrap();
/// assert_eq!(
///     dec.decode(&mut wire[..4]),
///     Ok(Decoded::NeedMore { frame_len: Some(7) })
/// );
/// let Ok(Decoded::Frame(frame)) = dec.decode(&mut wire[..n]) else { panic!() };
/// assert_eq!((frame.payload(&wire), frame.consumed), (&b"hello"[..], 7));
/// ```
///
/// Resumable: the header is parsed once per frame; while the body is
/// incomplete the decoder answers [`Decoded::NeedMore`] with the frame's
/// total length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LengthFieldDecoder {
    cfg: LengthFieldConfig,
    /// `offset + width`.
    header: usize,
    state: FrameState,
    /// How the fast path reads the field, decided once in
    /// [`LengthFieldDecoder::new`] rather than per frame.
    fast: Fast,
}

/// How [`LengthFieldDecoder::decode`] reads a header on its fast path,
/// taken for the plain layout: offset 0, adjustment 0, the header stripped
/// (tokio-util's and most protocols' layout). There every frame is at
/// least its header and the payload is what follows, so of the checks only
/// the maximum is left.
///
/// The field is read from the first 8 bytes as one `u64` and shifted or
/// masked to its width: one code path for every width and byte order, no
/// branch on the width per frame; buffers shorter than 8 bytes take the
/// general path. A 4-byte big-endian field has a path of its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Fast {
    /// Field values below this take the fast path: `max_frame - header +
    /// 1`, or 0 (none) when the layout is not plain, so one comparison
    /// per frame checks both.
    limit: u64,
    /// Big-endian field.
    big: bool,
    /// A 4-byte big-endian field, read without the shift.
    u32_be: bool,
    /// `64 - 8 * width`: big-endian, the field is the top `width` bytes of
    /// the big-endian `u64`; little-endian, the low ones of the
    /// little-endian `u64`.
    shift: u32,
}

impl Fast {
    fn of(cfg: &LengthFieldConfig, header: usize) -> Fast {
        let width = usize::from(cfg.width);
        let plain = cfg.offset == 0 && cfg.adjust == 0 && cfg.strip.is_none_or(|s| s == width);
        Fast {
            // Lossless: usize is at most 64 bits. No overflow: `header` is
            // at least 1 and at most `max_frame`.
            limit: if plain {
                (cfg.max_frame - header) as u64 + 1
            } else {
                0
            },
            big: cfg.endian == Endian::Big,
            u32_be: cfg.width == 4 && cfg.endian == Endian::Big,
            // The width is 1 to 8 (checked by `header_len`).
            shift: 64 - 8 * u32::from(cfg.width),
        }
    }

    /// The field in the first 8 bytes of a buffer.
    #[inline(always)]
    fn read(self, first: &[u8; 8]) -> u64 {
        let le = u64::from_le_bytes(*first);
        if self.big {
            le.swap_bytes() >> self.shift
        } else {
            le & (u64::MAX >> self.shift)
        }
    }
}

impl LengthFieldDecoder {
    /// A decoder for `cfg`.
    ///
    /// Fails with [`Error::InvalidConfig`] unless the width is 1, 2, 3, 4 or
    /// 8, `max_frame` is at least 1 and `offset + width` fits within
    /// `max_frame`.
    pub fn new(cfg: LengthFieldConfig) -> Result<Self, Error> {
        let header = cfg.header_len()?;
        Ok(LengthFieldDecoder {
            cfg,
            header,
            state: FrameState::Header,
            fast: Fast::of(&cfg, header),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &LengthFieldConfig {
        &self.cfg
    }

    /// The length field's value, if the whole field is buffered.
    fn read_field(&self, src: &[u8]) -> Option<u64> {
        let field = src.get(self.cfg.offset..self.header)?;
        let push = |acc: u64, &b: &u8| (acc << 8) | u64::from(b);
        Some(match self.cfg.endian {
            Endian::Big => field.iter().fold(0, push),
            Endian::Little => field.iter().rev().fold(0, push),
        })
    }
}

/// The [`Decoder`] and [`SplitDecoder`] impls of a length-prefixed decoder
/// (its `state: FrameState` field, its `decode_in` method and
/// `cfg.max_frame`): the length field and varint decoders alike.
macro_rules! prefix_decoder_impls {
    ($ty:ty) => {
        impl Decoder for $ty {
            #[inline(always)]
            fn decode(&mut self, src: &mut [u8]) -> Result<Decoded, DecodeError> {
                let mut state = self.state;
                let answer = self.decode_in(&mut state, src);
                self.state = state;
                answer
            }

            fn reset(&mut self) {
                self.state = FrameState::Header;
            }

            fn max_frame(&self) -> usize {
                self.cfg.max_frame
            }

            fn is_skipping(&self) -> bool {
                matches!(self.state, FrameState::Skipping(_))
            }
        }

        impl SplitDecoder for $ty {
            type State = PrefixState;

            fn new_state(&self) -> PrefixState {
                PrefixState(FrameState::Header)
            }

            #[inline(always)]
            fn decode_with(
                &self,
                state: &mut PrefixState,
                src: &mut [u8],
            ) -> Result<Decoded, DecodeError> {
                self.decode_in(&mut state.0, src)
            }

            fn is_skipping_with(&self, state: &PrefixState) -> bool {
                matches!(state.0, FrameState::Skipping(_))
            }
        }
    };
}
pub(crate) use prefix_decoder_impls;

prefix_decoder_impls!(LengthFieldDecoder);

impl LengthFieldDecoder {
    // Small enough to inline into a caller's frame loop: the fast path
    // (a plain layout, a header at the front, a frame within the maximum)
    // is here, everything else in `LengthFieldDecoder::decode_general`.
    #[inline(always)]
    fn decode_in(&self, state: &mut FrameState, src: &mut [u8]) -> Result<Decoded, DecodeError> {
        if *state == FrameState::Header {
            // tokio-util's default, a 4-byte big-endian field, needs no
            // shift and only 4 bytes buffered.
            let field = if self.fast.u32_be {
                src.first_chunk().map(|b| u64::from(u32::from_be_bytes(*b)))
            } else {
                src.first_chunk().map(|b| self.fast.read(b))
            };
            let field = field.unwrap_or(u64::MAX);
            // On the plain layout the frame is the header plus `field`
            // bytes: no overflow, never too short, the strip fits; only the
            // maximum is checked. Too large goes the general way, which
            // reports it.
            // A field not buffered yet (`u64::MAX`) is never below the
            // limit.
            if field < self.fast.limit {
                // At most `max_frame - header`: fits a usize.
                let frame_len = self.header + field as usize;
                if src.len() >= frame_len {
                    return Ok(Decoded::Frame(Frame {
                        consumed: frame_len,
                        start: self.header,
                        end: frame_len,
                    }));
                }
            } else if src.is_empty() {
                // The call after a wake-up's last frame: answered here as
                // the general path would, without the call.
                return Ok(Decoded::NeedMore { frame_len: None });
            }
        }
        self.decode_general(state, src)
    }

    /// Every layout, every state, every error.
    #[inline(never)]
    fn decode_general(&self, state: &mut FrameState, src: &[u8]) -> Result<Decoded, DecodeError> {
        if let Some(answer) = state.resume(src.len()) {
            return Ok(answer);
        }
        let Some(field) = self.read_field(src) else {
            return Ok(Decoded::NeedMore { frame_len: None });
        };
        let bounds = frame_bounds(
            field,
            self.header,
            self.cfg.adjust,
            self.cfg.strip,
            self.cfg.max_frame,
        );
        state.on_header(bounds, self.cfg.oversize, src.len())
    }
}

/// Writes a length field followed by the payload, the mirror of a
/// [`LengthFieldDecoder`] with the same configuration.
///
/// The field holds `payload.len() - adjust`. A payload is refused, before
/// anything is written, with [`Error::LengthNotRepresentable`] if that value
/// is negative or does not fit the field, and with
/// [`Error::PayloadTooLarge`] if the whole frame exceeds `max_frame`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LengthFieldEncoder {
    cfg: LengthFieldConfig,
    /// With no adjustment, the longest payload that passes both checks of
    /// [`LengthFieldEncoder::check`]: one comparison instead of them on every
    /// frame. `None` with an adjustment (the general path).
    plain_max: Option<usize>,
}

impl LengthFieldEncoder {
    /// An encoder for `cfg`.
    ///
    /// Besides the decoder's checks, the frame must be writable from the
    /// payload alone: `offset` must be 0 and `strip` `None` or
    /// `Some(width)`, otherwise [`Error::NotEncodable`].
    pub fn new(cfg: LengthFieldConfig) -> Result<Self, Error> {
        cfg.header_len()?;
        if cfg.offset != 0 {
            return Err(Error::NotEncodable {
                reason: "a length field with bytes before it",
            });
        }
        match cfg.strip {
            None => {}
            Some(strip) if strip == usize::from(cfg.width) => {}
            Some(_) => {
                return Err(Error::NotEncodable {
                    reason: "a length field whose decoder strips other than the header",
                })
            }
        }
        let plain_max = (cfg.adjust == 0).then(|| {
            let bits = 8 * u32::from(cfg.width);
            let field_max = u64::MAX.checked_shr(64 - bits).unwrap_or(u64::MAX);
            let frame_max = cfg.max_frame.saturating_sub(usize::from(cfg.width));
            usize::try_from(field_max).map_or(frame_max, |f| f.min(frame_max))
        });
        Ok(LengthFieldEncoder { cfg, plain_max })
    }

    /// The configuration.
    pub fn config(&self) -> &LengthFieldConfig {
        &self.cfg
    }

    /// The field value for `payload`, after checking it can be framed;
    /// returns `(field, frame length)`.
    fn check(&self, payload: &[u8]) -> Result<(u64, usize), Error> {
        let width = self.cfg.width;
        // Lossless: usize is at most 64 bits.
        let value = payload.len() as i128 - i128::from(self.cfg.adjust);
        let bits = 8 * u32::from(width);
        let field = u64::try_from(value)
            .ok()
            .filter(|&v| bits >= 64 || v >> bits == 0)
            .ok_or(Error::LengthNotRepresentable {
                payload: payload.len(),
                adjust: self.cfg.adjust,
                width,
            })?;
        let len = payload.len().saturating_add(usize::from(width));
        if len > self.cfg.max_frame {
            return Err(Error::PayloadTooLarge {
                len,
                max: self.cfg.max_frame,
            });
        }
        Ok((field, len))
    }

    /// [`check`](Self::check) for the replies off the common layout, kept
    /// out of the inlined reply path.
    #[cold]
    #[inline(never)]
    fn check_out_of_line(&self, payload: &[u8]) -> Result<(u64, usize), Error> {
        self.check(payload)
    }

    /// Hands `put` the field bytes for `field` (which fits the width).
    #[inline(always)]
    fn put_field<F: FnMut(&[u8])>(&self, field: u64, mut put: F) {
        let width = usize::from(self.cfg.width);
        let bytes = match self.cfg.endian {
            Endian::Big => field.to_be_bytes(),
            Endian::Little => field.to_le_bytes(),
        };
        let field = match self.cfg.endian {
            Endian::Big => bytes.get(bytes.len() - width..),
            Endian::Little => bytes.get(..width),
        };
        put(field.unwrap_or(&[]));
    }
}

impl Encoder for LengthFieldEncoder {
    fn encoded_len(&self, payload: &[u8]) -> Result<usize, Error> {
        self.check(payload).map(|(_, len)| len)
    }

    fn envelope(&self, payload: &[u8]) -> Result<Option<Envelope>, Error> {
        let (field, _) = self.check(payload)?;
        let mut envelope = Envelope::EMPTY;
        self.put_field(field, |bytes| envelope = Envelope::with_header(bytes));
        Ok(Some(envelope))
    }

    #[inline(always)]
    fn encode_with<F: FnMut(&[u8])>(&self, payload: &[u8], mut put: F) -> Result<usize, Error> {
        let (field, len) = match self.plain_max {
            // The field is the payload's length, known to fit: every reply of
            // the common layout takes this path.
            Some(max) if payload.len() <= max => (
                payload.len() as u64,
                payload.len() + usize::from(self.cfg.width),
            ),
            _ => self.check_out_of_line(payload)?,
        };
        self.put_field(field, &mut put);
        put(payload);
        Ok(len)
    }
}

#[cfg(test)]
mod tests {
    use std::vec;
    use std::vec::Vec;

    use super::*;
    use crate::codec::testutil::*;
    use proptest::prelude::*;

    const HELLO: &[u8] = b"HELLO, WORLD";

    #[test]
    fn setters_set_their_field() {
        // Built in a `const`, so the setters stay usable there. The literal
        // names every field, so a new setting without a setter fails here.
        const SET: LengthFieldConfig = LengthFieldConfig::new(1, Endian::Big)
            .width(2)
            .endian(Endian::Little)
            .offset(3)
            .adjust(-4)
            .strip(Some(5))
            .max_frame(600)
            .oversize(Oversize::Skip);
        let want = LengthFieldConfig {
            width: 2,
            endian: Endian::Little,
            offset: 3,
            adjust: -4,
            strip: Some(5),
            max_frame: 600,
            oversize: Oversize::Skip,
        };
        assert_eq!(SET, want);
    }
    const WIDTHS: [u8; 5] = [1, 2, 3, 4, 8];

    fn cfg(width: u8, offset: usize, adjust: i64, strip: Option<usize>) -> LengthFieldConfig {
        LengthFieldConfig {
            offset,
            adjust,
            strip,
            ..LengthFieldConfig::new(width, Endian::Big)
        }
    }

    fn dec(cfg: LengthFieldConfig) -> LengthFieldDecoder {
        LengthFieldDecoder::new(cfg).unwrap()
    }

    fn cat(parts: &[&[u8]]) -> Vec<u8> {
        parts.concat()
    }

    fn decodes_to(cfg: LengthFieldConfig, input: &[u8], expected: &[u8]) {
        assert_decodes_to(|| dec(cfg), input, expected);
    }

    /// The fast path answers an empty buffer itself (the call after a
    /// wake-up's last frame); the general path must give the same answer.
    #[test]
    fn an_empty_buffer_needs_more_on_both_paths() {
        for width in [1, 2, 3, 4, 8] {
            for endian in [Endian::Big, Endian::Little] {
                let mut d = dec(LengthFieldConfig::new(width, endian));
                let general = d.decode_general(&mut FrameState::Header, &[]);
                assert_eq!(general, Ok(Decoded::NeedMore { frame_len: None }));
                assert_eq!(d.decode(&mut []), general, "width {width}");
            }
        }
    }

    // The seven examples of Netty's LengthFieldBasedFrameDecoder javadoc.

    #[test]
    fn netty_1_length_only_no_strip() {
        let input = cat(&[&[0x00, 0x0C], HELLO]);
        assert_eq!(input.len(), 14);
        decodes_to(cfg(2, 0, 0, Some(0)), &input, &input);
    }

    #[test]
    fn netty_2_length_only_strip_header() {
        let input = cat(&[&[0x00, 0x0C], HELLO]);
        decodes_to(cfg(2, 0, 0, Some(2)), &input, HELLO);
        decodes_to(cfg(2, 0, 0, None), &input, HELLO);
    }

    #[test]
    fn netty_3_length_counts_whole_frame() {
        let input = cat(&[&[0x00, 0x0E], HELLO]);
        decodes_to(cfg(2, 0, -2, Some(0)), &input, &input);
    }

    #[test]
    fn netty_4_header_before_length() {
        let input = cat(&[&[0xCA, 0xFE, 0x00, 0x00, 0x0C], HELLO]);
        assert_eq!(input.len(), 17);
        decodes_to(cfg(3, 2, 0, Some(0)), &input, &input);
    }

    #[test]
    fn netty_5_header_after_length() {
        let input = cat(&[&[0x00, 0x00, 0x0C, 0xCA, 0xFE], HELLO]);
        assert_eq!(input.len(), 17);
        decodes_to(cfg(3, 0, 2, Some(0)), &input, &input);
    }

    #[test]
    fn netty_6_header_around_length_strip_first_part() {
        let input = cat(&[&[0xCA, 0x00, 0x0C, 0xFE], HELLO]);
        decodes_to(cfg(2, 1, 1, Some(3)), &input, &cat(&[&[0xFE], HELLO]));
    }

    #[test]
    fn netty_7_length_counts_whole_frame_strip_first_part() {
        let input = cat(&[&[0xCA, 0x00, 0x10, 0xFE], HELLO]);
        decodes_to(cfg(2, 1, -3, Some(3)), &input, &cat(&[&[0xFE], HELLO]));
    }

    #[test]
    fn every_width_and_endian() {
        for width in WIDTHS {
            for endian in [Endian::Big, Endian::Little] {
                let w = usize::from(width);
                let c = LengthFieldConfig {
                    endian,
                    ..LengthFieldConfig::new(width, Endian::Big)
                };
                // Field value 3, by hand.
                let mut input = vec![0u8; w];
                match endian {
                    Endian::Big => input[w - 1] = 3,
                    Endian::Little => input[0] = 3,
                }
                input.extend_from_slice(b"abc");
                decodes_to(c, &input, b"abc");
                // The encoder writes the same bytes.
                let mut buf = [0u8; 16];
                let n = LengthFieldEncoder::new(c)
                    .unwrap()
                    .encode(b"abc", &mut buf)
                    .unwrap();
                assert_eq!(&buf[..n], &input[..], "width {width} {endian:?}");
            }
        }
    }

    #[test]
    fn multi_byte_field_values_both_endians() {
        let payload = vec![7u8; 0x0102];
        let be = LengthFieldConfig::new(3, Endian::Big);
        decodes_to(be, &cat(&[&[0x00, 0x01, 0x02], &payload]), &payload);
        let le = LengthFieldConfig::new(3, Endian::Little);
        decodes_to(le, &cat(&[&[0x02, 0x01, 0x00], &payload]), &payload);
    }

    #[test]
    fn length_field_split_across_reads_is_resumable() {
        let mut d = dec(LengthFieldConfig::new(4, Endian::Big));
        let mut buf = vec![0x00, 0x00];
        assert_eq!(
            d.decode(&mut buf),
            Ok(Decoded::NeedMore { frame_len: None })
        );
        buf.push(0x00);
        assert_eq!(
            d.decode(&mut buf),
            Ok(Decoded::NeedMore { frame_len: None })
        );
        buf.push(0x03);
        assert_eq!(
            d.decode(&mut buf),
            Ok(Decoded::NeedMore { frame_len: Some(7) })
        );
        assert_eq!(
            d.state,
            FrameState::Body(FrameBounds {
                frame_len: 7,
                strip: 4
            })
        );
        buf.extend_from_slice(b"ab");
        assert_eq!(
            d.decode(&mut buf),
            Ok(Decoded::NeedMore { frame_len: Some(7) })
        );
        // The parsed header is kept: later calls do not reparse it, so
        // scribbling over it once parsed changes nothing.
        buf[..4].fill(0xFF);
        buf.push(b'c');
        assert_eq!(
            d.decode(&mut buf),
            Ok(Decoded::Frame(Frame {
                consumed: 7,
                start: 4,
                end: 7
            }))
        );
        assert_eq!(d.state, FrameState::Header);
    }

    #[test]
    fn empty_payloads() {
        for width in WIDTHS {
            let c = LengthFieldConfig::new(width, Endian::Little);
            let w = usize::from(width);
            let input = vec![0u8; 3 * w];
            for chunks in [&[input.len()][..], &[1], &[2, 5]] {
                let out = decode_chunked(&mut dec(c), &input, chunks);
                assert_eq!(out.frames, vec![Vec::<u8>::new(); 3]);
                assert!(out.errors.is_empty());
            }
            let e = LengthFieldEncoder::new(c).unwrap();
            assert_eq!(encode_all(&e, &[vec![]]), vec![0u8; w]);
        }
    }

    #[test]
    fn max_size_frame_accepted_and_max_plus_one_refused() {
        // 2-byte header + 8-byte payload = 10 = max.
        let c = LengthFieldConfig {
            max_frame: 10,
            ..LengthFieldConfig::new(2, Endian::Big)
        };
        let ok = cat(&[&[0, 8], &[1; 8]]);
        decodes_to(c, &ok, &[1; 8]);
        let mut d = dec(c);
        let out = decode_whole(&mut d, &cat(&[&[0, 9], &[1; 9]]));
        assert_eq!(out.errors, [Error::FrameTooLarge { len: 11, max: 10 }]);
        assert!(out.fatal && out.frames.is_empty());

        let e = LengthFieldEncoder::new(c).unwrap();
        let mut buf = [0u8; 16];
        assert_eq!(e.encode(&[1; 8], &mut buf), Ok(10));
        assert_eq!(&buf[..10], &ok[..]);
        let mut buf = [9u8; 16];
        assert_eq!(
            e.encode(&[1; 9], &mut buf),
            Err(Error::PayloadTooLarge { len: 11, max: 10 })
        );
        assert_eq!(buf, [9; 16], "a refused payload writes nothing");
        assert_eq!(
            e.envelope(&[1; 9]),
            Err(Error::PayloadTooLarge { len: 11, max: 10 })
        );
    }

    #[test]
    fn oversize_fails_fast_with_only_the_header() {
        let c = LengthFieldConfig {
            max_frame: 100,
            ..LengthFieldConfig::new(4, Endian::Big)
        };
        let mut d = dec(c);
        assert_eq!(
            d.decode(&mut [0x7F, 0xFF, 0xFF]),
            Ok(Decoded::NeedMore { frame_len: None })
        );
        assert_eq!(
            d.decode(&mut [0x7F, 0xFF, 0xFF, 0xFF]),
            Err(DecodeError::fatal(Error::FrameTooLarge {
                len: 0x7FFF_FFFF + 4,
                max: 100
            }))
        );
    }

    #[test]
    fn adjustment_making_the_length_negative() {
        // Whole-frame semantics (adjust -2) with a field smaller than the
        // header: the frame would end inside its own header.
        for field in [0u8, 1] {
            let mut d = dec(cfg(2, 0, -2, Some(0)));
            assert_eq!(
                d.decode(&mut [0, field, 0xAA]),
                Err(DecodeError::fatal(Error::LengthTooShort {
                    field: u64::from(field),
                    adjust: -2,
                    header: 2
                }))
            );
        }
        // field 2 with adjust -2 is the smallest frame: the header alone.
        decodes_to(cfg(2, 0, -2, Some(0)), &[0, 2], &[0, 2]);
        // Truly negative.
        let mut d = dec(cfg(1, 3, -100, None));
        assert_eq!(
            d.decode(&mut [0, 0, 0, 5]),
            Err(DecodeError::fatal(Error::LengthTooShort {
                field: 5,
                adjust: -100,
                header: 4
            }))
        );
    }

    #[test]
    fn extreme_adjustments() {
        // i64::MIN: never wraps to a small positive length.
        let mut d = dec(cfg(8, 0, i64::MIN, None));
        let mut buf = u64::MAX.to_be_bytes();
        // u64::MAX + 8 - 2^63 = 2^63 + 7: representable, but too large.
        assert_eq!(
            d.decode(&mut buf),
            Err(DecodeError::fatal(Error::FrameTooLarge {
                len: (1 << 63) + 7,
                max: crate::codec::DEFAULT_MAX_FRAME
            }))
        );
        let mut d = dec(cfg(2, 0, i64::MIN, None));
        assert_eq!(
            d.decode(&mut [0xFF, 0xFF]),
            Err(DecodeError::fatal(Error::LengthTooShort {
                field: 0xFFFF,
                adjust: i64::MIN,
                header: 2
            }))
        );
        // i64::MAX.
        let mut d = dec(cfg(2, 0, i64::MAX, None));
        assert_eq!(
            d.decode(&mut [0, 0]),
            Err(DecodeError::fatal(Error::FrameTooLarge {
                len: (1 << 63) + 1,
                max: crate::codec::DEFAULT_MAX_FRAME
            }))
        );
        let mut d = dec(cfg(8, 0, i64::MAX, None));
        assert_eq!(
            d.decode(&mut u64::MAX.to_le_bytes()),
            Err(DecodeError::fatal(Error::LengthOverflow {
                field: u64::MAX,
                adjust: i64::MAX
            }))
        );
        // The encoder does not wrap either: with i64::MIN the field holds
        // 2^63 + payload length, which decodes back.
        let c = cfg(8, 0, i64::MIN, None);
        let e = LengthFieldEncoder::new(c).unwrap();
        let wire = encode_all(&e, &[b"ab".to_vec()]);
        assert_eq!(wire, b"\x80\0\0\0\0\0\0\x02ab");
        decodes_to(c, &wire, b"ab");
        let e = LengthFieldEncoder::new(cfg(8, 0, i64::MAX, None)).unwrap();
        assert_eq!(
            e.encoded_len(b"ab"),
            Err(Error::LengthNotRepresentable {
                payload: 2,
                adjust: i64::MAX,
                width: 8
            })
        );
    }

    #[test]
    #[cfg(target_pointer_width = "64")]
    fn width_8_with_u64_max_field() {
        for endian in [Endian::Big, Endian::Little] {
            let c = LengthFieldConfig {
                max_frame: usize::MAX,
                ..LengthFieldConfig::new(8, endian)
            };
            let mut d = dec(c);
            assert_eq!(
                d.decode(&mut [0xFF; 8]),
                Err(DecodeError::fatal(Error::LengthOverflow {
                    field: u64::MAX,
                    adjust: 0
                }))
            );
            // Just representable: u64::MAX - 8 + 8 on a 64-bit target.
            let c = LengthFieldConfig { adjust: -8, ..c };
            let mut d = dec(c);
            let mut buf = [0xFF; 9];
            assert_eq!(
                d.decode(&mut buf),
                Ok(Decoded::NeedMore {
                    frame_len: Some(usize::MAX)
                })
            );
        }
    }

    #[test]
    fn strip_larger_than_frame() {
        let mut d = dec(cfg(1, 0, 0, Some(5)));
        // A 4-byte frame (field 3) cannot lose 5 bytes.
        assert_eq!(
            d.decode(&mut [3]),
            Err(DecodeError::fatal(Error::StripTooLarge {
                strip: 5,
                frame_len: 4
            }))
        );
        // A 5-byte frame can: an empty payload.
        decodes_to(cfg(1, 0, 0, Some(5)), &[4, 1, 2, 3, 4], &[]);
        // Oversize is reported before strip.
        let c = LengthFieldConfig {
            max_frame: 3,
            ..cfg(1, 0, 0, Some(100))
        };
        assert_eq!(
            dec(c).decode(&mut [10]).unwrap_err().error,
            Error::FrameTooLarge { len: 11, max: 3 }
        );
    }

    #[test]
    fn frames_before_a_bad_one_are_delivered() {
        // Peer mistake: after an error, complete frames still buffered are lost.
        let c = LengthFieldConfig {
            max_frame: 8,
            ..LengthFieldConfig::new(1, Endian::Big)
        };
        let input = cat(&[&[2], b"ab", &[0], &[3], b"cde", &[200], b"xyz", &[1], b"f"]);
        for chunks in [&[input.len()][..], &[1], &[4, 3]] {
            let out = decode_chunked(&mut dec(c), &input, chunks);
            assert_eq!(out.frames, [b"ab".to_vec(), vec![], b"cde".to_vec()]);
            assert_eq!(out.errors, [Error::FrameTooLarge { len: 201, max: 8 }]);
            assert!(out.fatal);
        }
    }

    #[test]
    fn skip_resumes_at_the_next_frame_in_any_chunking() {
        let c = LengthFieldConfig {
            max_frame: 6,
            oversize: Oversize::Skip,
            ..LengthFieldConfig::new(2, Endian::Big)
        };
        let big = vec![0xEE; 20];
        let input = cat(&[
            &[0, 2],
            b"ab",
            &[0, 20],
            &big,
            &[0, 4],
            b"cdef",
            &[0, 5],
            b"ghijk",
            &[0, 0],
        ]);
        let mut all_chunks: Vec<Vec<usize>> = vec![vec![input.len()], vec![1], vec![3, 7], vec![5]];
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
                    Error::FrameTooLarge { len: 22, max: 6 },
                    Error::FrameTooLarge { len: 7, max: 6 }
                ],
                "chunks {chunks:?}"
            );
            assert!(!out.fatal);
        }
    }

    #[test]
    fn skip_reports_once_then_skips_as_bytes_arrive() {
        let c = LengthFieldConfig {
            max_frame: 4,
            oversize: Oversize::Skip,
            ..LengthFieldConfig::new(1, Endian::Big)
        };
        let mut d = dec(c);
        // Header and 2 body bytes buffered: those 3 go with the error.
        assert_eq!(
            d.decode(&mut [9, 1, 2]),
            Err(DecodeError::recoverable(
                Error::FrameTooLarge { len: 10, max: 4 },
                3
            ))
        );
        assert_eq!(d.decode(&mut []), Ok(Decoded::NeedMore { frame_len: None }));
        assert_eq!(d.decode(&mut [3, 4, 5]), Ok(Decoded::Skip(3)));
        // 4 left: 4 of the next 6 bytes, then a normal frame.
        let mut buf = [6, 7, 8, 9, 1, b'z'];
        assert_eq!(d.decode(&mut buf), Ok(Decoded::Skip(4)));
        assert_eq!(
            d.decode(&mut buf[4..]),
            Ok(Decoded::Frame(Frame {
                consumed: 2,
                start: 1,
                end: 2
            }))
        );
        // Whole frame buffered: consumed entirely with the error.
        assert_eq!(
            d.decode(&mut [4, 1, 2, 3, 4, 0]),
            Err(DecodeError::recoverable(
                Error::FrameTooLarge { len: 5, max: 4 },
                5
            ))
        );
        assert_eq!(d.state, FrameState::Header);
    }

    #[test]
    fn reset_forgets_a_parsed_header_and_a_skip() {
        let mut d = dec(LengthFieldConfig {
            max_frame: 4,
            oversize: Oversize::Skip,
            ..LengthFieldConfig::new(1, Endian::Big)
        });
        assert!(matches!(d.decode(&mut [3]), Ok(Decoded::NeedMore { .. })));
        d.reset();
        assert_eq!(
            d.decode(&mut [0]),
            Ok(Decoded::Frame(Frame {
                consumed: 1,
                start: 1,
                end: 1
            }))
        );
        assert!(d.decode(&mut [9]).is_err());
        d.reset();
        assert_eq!(
            d.decode(&mut [0]),
            Ok(Decoded::Frame(Frame {
                consumed: 1,
                start: 1,
                end: 1
            }))
        );
        assert_eq!(d.max_frame(), 4);
    }

    #[test]
    fn bad_configs_are_refused() {
        for width in [0, 5, 6, 7, 9, 255] {
            assert!(matches!(
                LengthFieldDecoder::new(LengthFieldConfig::new(width, Endian::Big)),
                Err(Error::InvalidConfig { .. })
            ));
        }
        let c = LengthFieldConfig::new(2, Endian::Big);
        assert!(LengthFieldDecoder::new(LengthFieldConfig { max_frame: 0, ..c }).is_err());
        assert!(LengthFieldDecoder::new(LengthFieldConfig { max_frame: 1, ..c }).is_err());
        assert!(LengthFieldDecoder::new(LengthFieldConfig { max_frame: 2, ..c }).is_ok());
        assert!(LengthFieldDecoder::new(LengthFieldConfig {
            offset: 9,
            max_frame: 10,
            ..c
        })
        .is_err());
        assert!(LengthFieldDecoder::new(LengthFieldConfig {
            offset: usize::MAX,
            max_frame: usize::MAX,
            ..c
        })
        .is_err());
        assert_eq!(LengthFieldDecoder::new(c).unwrap().config(), &c);
    }

    #[test]
    fn encoder_refuses_layouts_it_cannot_write() {
        let c = LengthFieldConfig::new(2, Endian::Big);
        assert!(matches!(
            LengthFieldEncoder::new(LengthFieldConfig { offset: 1, ..c }),
            Err(Error::NotEncodable { .. })
        ));
        assert!(matches!(
            LengthFieldEncoder::new(LengthFieldConfig {
                strip: Some(0),
                ..c
            }),
            Err(Error::NotEncodable { .. })
        ));
        assert!(LengthFieldEncoder::new(LengthFieldConfig {
            strip: Some(2),
            ..c
        })
        .is_ok());
        assert!(matches!(
            LengthFieldEncoder::new(LengthFieldConfig { width: 5, ..c }),
            Err(Error::InvalidConfig { .. })
        ));
    }

    #[test]
    fn encoder_refuses_unrepresentable_lengths() {
        let e = LengthFieldEncoder::new(LengthFieldConfig::new(1, Endian::Big)).unwrap();
        assert_eq!(e.encoded_len(&[0; 255]), Ok(256));
        assert_eq!(
            e.encoded_len(&[0; 256]),
            Err(Error::LengthNotRepresentable {
                payload: 256,
                adjust: 0,
                width: 1
            })
        );
        // A positive adjustment: the field counts less than the payload, so
        // a short payload would need a negative field.
        let e = LengthFieldEncoder::new(cfg(2, 0, 2, None)).unwrap();
        assert_eq!(
            e.encoded_len(b"a"),
            Err(Error::LengthNotRepresentable {
                payload: 1,
                adjust: 2,
                width: 2
            })
        );
        let mut buf = [0u8; 8];
        assert_eq!(e.encode(b"abc", &mut buf), Ok(5));
        assert_eq!(&buf[..5], b"\x00\x01abc");
        // Whole-frame semantics.
        let e = LengthFieldEncoder::new(cfg(2, 0, -2, None)).unwrap();
        assert_eq!(e.encode(b"abc", &mut buf), Ok(5));
        assert_eq!(&buf[..5], b"\x00\x05abc");
        assert_eq!(
            e.encoded_len(&[0; 0xFFFE]),
            Err(Error::LengthNotRepresentable {
                payload: 0xFFFE,
                adjust: -2,
                width: 2
            })
        );
    }

    #[test]
    fn encoder_really_writes() {
        // Peer mistake: an inverted guard so nothing is ever encoded.
        let e = LengthFieldEncoder::new(LengthFieldConfig::new(2, Endian::Little)).unwrap();
        let mut buf = [0u8; 8];
        assert_eq!(e.encode(b"hey", &mut buf), Ok(5));
        assert_eq!(&buf, b"\x03\x00hey\0\0\0");
        let env = e.envelope(b"hey").unwrap().unwrap();
        assert_eq!((env.header(), env.trailer()), (&[3u8, 0][..], &b""[..]));
        let mut hv = heapless::Vec::<u8, 8>::new();
        assert_eq!(e.encode_heapless(b"hey", &mut hv), Ok(5));
        assert_eq!(&hv[..], b"\x03\x00hey");
        assert_eq!(
            e.encode(b"hey", &mut [0; 4]),
            Err(Error::BufferTooSmall {
                needed: 5,
                capacity: 4
            })
        );
        assert_eq!(e.config(), &LengthFieldConfig::new(2, Endian::Little));
    }

    #[test]
    fn max_is_checked_against_the_adjusted_frame_not_the_raw_field() {
        // Peer mistake: comparing the raw field with the maximum.
        let c = LengthFieldConfig {
            max_frame: 20,
            ..cfg(2, 0, 10, Some(0))
        };
        // Field 10 < 20, but the frame is 2 + 10 + 10 = 22.
        assert_eq!(
            dec(c).decode(&mut [0, 10]),
            Err(DecodeError::fatal(Error::FrameTooLarge {
                len: 22,
                max: 20
            }))
        );
        // Field 30 > 20, but the frame is 2 + 30 - 20 = 12.
        let c = LengthFieldConfig {
            max_frame: 20,
            ..cfg(2, 0, -20, Some(0))
        };
        let input = cat(&[&[0, 30], &[5; 10]]);
        decodes_to(c, &input, &input);
    }

    #[test]
    fn zero_or_huge_lengths_never_loop_or_slice_out_of_bounds() {
        // Peer mistake: a zero-length frame consumes nothing and loops.
        let mut d = dec(cfg(4, 0, -4, Some(0)));
        let err = d.decode(&mut [0; 16]).unwrap_err();
        assert_eq!(
            err,
            DecodeError::fatal(Error::LengthTooShort {
                field: 0,
                adjust: -4,
                header: 4
            })
        );
        // A zero field with a payload-counting field still consumes its header.
        let mut d = dec(LengthFieldConfig::new(4, Endian::Big));
        assert_eq!(
            d.decode(&mut [0; 16]),
            Ok(Decoded::Frame(Frame {
                consumed: 4,
                start: 4,
                end: 4
            }))
        );
        // Huge lengths on every width: an error or NeedMore, never a slice
        // past the buffer.
        for width in WIDTHS {
            for adjust in [i64::MIN, -1, 0, 1, i64::MAX] {
                let c = LengthFieldConfig {
                    max_frame: usize::MAX,
                    ..cfg(width, 1, adjust, Some(usize::MAX))
                };
                let mut buf = vec![0xFF; 1 + usize::from(width) + 3];
                match dec(c).decode(&mut buf) {
                    Ok(Decoded::NeedMore { frame_len: Some(n) }) => assert!(n > buf.len()),
                    Ok(other) => panic!("{other:?}"),
                    Err(e) => assert!(!e.can_continue),
                }
            }
        }
    }

    fn width() -> impl Strategy<Value = u8> {
        prop::sample::select(WIDTHS.to_vec())
    }

    fn endian() -> impl Strategy<Value = Endian> {
        prop_oneof![Just(Endian::Big), Just(Endian::Little)]
    }

    fn adjust() -> impl Strategy<Value = i64> {
        prop_oneof![
            8 => -12i64..12,
            1 => Just(i64::MIN),
            1 => Just(i64::MAX),
            1 => any::<i64>(),
        ]
    }

    /// Bytes biased towards zero and small values so that length fields of
    /// any width are often plausible.
    fn wire() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(
            prop_oneof![6 => Just(0u8), 3 => 1u8..6, 1 => any::<u8>()],
            0..160,
        )
    }

    proptest! {
        #[test]
        fn roundtrip_in_any_chunking(width in width(), endian in endian(), adjust in -40i64..40,
                                     strip_header in any::<bool>(), max_extra in 0usize..50,
                                     payloads in proptest::collection::vec(
                                         proptest::collection::vec(any::<u8>(), 0..40), 0..12),
                                     chunks in proptest::collection::vec(1usize..40, 1..8)) {
            let c = LengthFieldConfig {
                adjust,
                strip: strip_header.then_some(usize::from(width)),
                max_frame: usize::from(width) + max_extra,
                ..LengthFieldConfig::new(width, endian)
            };
            let enc = LengthFieldEncoder::new(c).unwrap();
            let payloads: Vec<Vec<u8>> =
                payloads.into_iter().filter(|p| enc.encoded_len(p).is_ok()).collect();
            let wire = encode_all(&enc, &payloads);
            let out = decode_chunked(&mut dec(c), &wire, &chunks);
            prop_assert!(out.errors.is_empty());
            prop_assert_eq!(out.frames, payloads);
        }

        #[test]
        fn encoder_refuses_exactly_what_the_decoder_refuses(
                width in width(), endian in endian(), adjust in adjust(), len in 0usize..300,
                max_extra in 0usize..300) {
            let c = LengthFieldConfig {
                adjust,
                max_frame: usize::from(width) + max_extra,
                ..LengthFieldConfig::new(width, endian)
            };
            let enc = LengthFieldEncoder::new(c).unwrap();
            let payload = vec![0x5A; len];
            match enc.encoded_len(&payload) {
                Ok(n) => {
                    let out = decode_whole(&mut dec(c), &encode_all(&enc, std::slice::from_ref(&payload)));
                    prop_assert_eq!(n, usize::from(width) + len);
                    prop_assert_eq!(out.frames, vec![payload]);
                }
                Err(Error::PayloadTooLarge { len: n, max }) => {
                    prop_assert_eq!(n, usize::from(width) + len);
                    prop_assert!(n > max);
                }
                Err(Error::LengthNotRepresentable { payload: p, adjust: a, width: w }) => {
                    prop_assert_eq!((p, w), (len, width));
                    let value = p as i128 - i128::from(a);
                    prop_assert!(value < 0 || value >> (8 * u32::from(width)) != 0);
                }
                Err(e) => prop_assert!(false, "unexpected {e:?}"),
            }
        }

        #[test]
        fn plain_fast_path_answers_as_the_general_check(
                width in width(), endian in endian(),
                len in prop_oneof![0usize..300, 65_500usize..65_600],
                max_extra in prop_oneof![0usize..300, 65_500usize..65_600]) {
            // Lengths and maxima around the 1- and 2-byte fields' limits.
            let c = LengthFieldConfig {
                max_frame: usize::from(width) + max_extra,
                ..LengthFieldConfig::new(width, endian)
            };
            let enc = LengthFieldEncoder::new(c).unwrap();
            let payload = vec![0x5A; len];
            let mut pieces = Vec::new();
            let got = enc.encode_with(&payload, |p| pieces.extend_from_slice(p));
            match enc.check(&payload) {
                Ok((field, n)) => {
                    prop_assert_eq!(got, Ok(n));
                    let mut want = Vec::new();
                    enc.put_field(field, |b| want.extend_from_slice(b));
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
        fn whole_equals_bytewise(width in width(), endian in endian(), offset in 0usize..4,
                                 adjust in adjust(), strip in proptest::option::of(0usize..10),
                                 max_extra in 0usize..40, skip in any::<bool>(),
                                 input in wire(), chunks in proptest::collection::vec(1usize..20, 1..6)) {
            let c = LengthFieldConfig {
                offset,
                adjust,
                strip,
                max_frame: offset + usize::from(width) + max_extra,
                oversize: if skip { Oversize::Skip } else { Oversize::Close },
                ..LengthFieldConfig::new(width, endian)
            };
            let whole = decode_whole(&mut dec(c), &input);
            let bytewise = decode_bytewise(&mut dec(c), &input);
            let chunked = decode_chunked(&mut dec(c), &input, &chunks);
            prop_assert_eq!(&whole, &bytewise);
            prop_assert_eq!(&whole, &chunked);
            for f in &whole.frames {
                prop_assert!(f.len() <= c.max_frame);
            }
            if skip && !whole.fatal {
                let all_oversize =
                    whole.errors.iter().all(|e| matches!(e, Error::FrameTooLarge { .. }));
                prop_assert!(all_oversize);
            }
        }

        #[test]
        fn fast_path_answers_as_the_general_path(width in width(), endian in endian(),
                                                 strip_header in any::<bool>(), max_extra in 0usize..40,
                                                 skip in any::<bool>(), input in wire(),
                                                 chunks in proptest::collection::vec(1usize..20, 1..6)) {
            // The plain layout, where the fast path is on.
            let c = LengthFieldConfig {
                strip: strip_header.then_some(usize::from(width)),
                max_frame: usize::from(width) + max_extra,
                oversize: if skip { Oversize::Skip } else { Oversize::Close },
                ..LengthFieldConfig::new(width, endian)
            };
            let fast = dec(c);
            prop_assert!(fast.fast.limit > 0);
            let mut general = fast;
            general.fast.limit = 0;
            prop_assert_eq!(decode_whole(&mut fast.clone(), &input), decode_whole(&mut general.clone(), &input));
            prop_assert_eq!(
                decode_chunked(&mut fast.clone(), &input, &chunks),
                decode_chunked(&mut general.clone(), &input, &chunks)
            );
            prop_assert_eq!(decode_bytewise(&mut fast.clone(), &input), decode_bytewise(&mut general.clone(), &input));
        }

        #[test]
        fn never_panics_on_any_config(width in any::<u8>(), offset in any::<usize>(), adjust in any::<i64>(),
                                      strip in proptest::option::of(any::<usize>()), max_frame in any::<usize>(),
                                      input in proptest::collection::vec(any::<u8>(), 0..64)) {
            let c = LengthFieldConfig {
                offset: offset % 16,
                adjust,
                strip,
                max_frame,
                ..LengthFieldConfig::new(width % 10, Endian::Little)
            };
            if let Ok(mut d) = LengthFieldDecoder::new(c) {
                let _ = decode_whole(&mut d, &input);
            }
            if let Ok(e) = LengthFieldEncoder::new(c) {
                let _ = e.encoded_len(&input);
                let _ = e.envelope(&input);
                let _ = e.encode(&input, &mut [0u8; 80]);
            }
        }
    }
}
