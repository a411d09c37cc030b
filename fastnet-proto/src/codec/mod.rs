//! Decoders and encoders: bytes in, frames out.
//!
//! A [`Decoder`] looks at the bytes buffered so far and answers with
//! [`Decoded`]: need more, a frame (a range into the caller's bytes plus how
//! many bytes it took), or bytes to skip. It never copies the payload
//! elsewhere and never allocates. An [`Encoder`] writes the header and
//! trailer around a payload; where the codec does not transform the payload
//! it can hand them out as an [`Envelope`] so the payload goes out by
//! vectored write without a copy.
//!
//! | codec | decoder | encoder |
//! |---|---|---|
//! | delimiter, lines | [`DelimiterDecoder`] | [`DelimiterEncoder`] |
//! | fixed length | [`FixedDecoder`] | [`FixedEncoder`] |
//! | length field | [`LengthFieldDecoder`] | [`LengthFieldEncoder`] |
//! | varint length | [`VarintDecoder`] | [`VarintEncoder`] |
//! | COBS | [`CobsDecoder`] | [`CobsEncoder`] |
//! | raw | [`RawDecoder`] | [`RawEncoder`] |
//! | any of them, chosen at run time | [`AnyDecoder`] | [`AnyEncoder`] |
//!
//! Every built-in decoder is also a [`SplitDecoder`]: its configuration
//! and one stream's state apart, so many streams can share one
//! configuration (`SharedDecoder`, with the `alloc` feature).
//!
//! # The decode contract
//!
//! Call [`Decoder::decode`] with every unconsumed byte, oldest first. Between
//! two calls the caller may only *append* bytes, except that after a result
//! that reports `consumed` (or [`Decoded::Skip`]) it must drop exactly that
//! many bytes from the front. Decoders keep resumable state (a parsed header,
//! how far a delimiter search got), so no byte is examined twice. Feeding a
//! stream in any split gives the same frames and the same first error as
//! feeding it whole (chunking invariance); the one exception is
//! [`RawDecoder`], whose frames are, by definition, whatever arrived.

use crate::DecodeError;
use crate::Error;

mod any;
mod cobs;
mod delimiter;
mod fixed;
mod length_field;
mod raw;
mod split;
mod varint;

#[cfg(any(test, fuzzing))]
#[doc(hidden)]
pub mod testutil;

pub use any::{AnyDecoder, AnyEncoder, AnyState, CodecSpec};
pub use cobs::{CobsDecoder, CobsEncoder};
pub use delimiter::{
    DelimiterDecoder, DelimiterEncoder, DelimiterState, Delimiters, MAX_DELIMITERS,
    MAX_DELIMITER_LEN,
};
pub use fixed::{FixedDecoder, FixedEncoder};
pub use length_field::{
    Endian, LengthFieldConfig, LengthFieldDecoder, LengthFieldEncoder, PrefixState,
};
pub use raw::{RawDecoder, RawEncoder};
#[cfg(all(feature = "alloc", target_has_atomic = "ptr"))]
pub use split::SharedDecoder;
pub use split::SplitDecoder;
pub use varint::{VarintConfig, VarintDecoder, VarintEncoder};

/// The default maximum frame length, 64 KiB, used by every `new`-style
/// constructor that does not take one.
pub const DEFAULT_MAX_FRAME: usize = 64 * 1024;

/// What a decoder does with a frame longer than its maximum.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Oversize {
    /// Report [`Error::FrameTooLarge`] as fatal: the stream cannot continue.
    #[default]
    Close,
    /// Report [`Error::FrameTooLarge`] once as recoverable, discard the
    /// frame's bytes as they arrive, and resume at the next frame boundary.
    Skip,
}

/// A complete frame: its payload is `src[start..end]` and it occupies the
/// first `consumed` bytes of `src`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Frame {
    /// Bytes at the front of the buffer that this frame occupied on the wire.
    pub consumed: usize,
    /// Start of the payload within the buffer.
    pub start: usize,
    /// End (exclusive) of the payload within the buffer.
    pub end: usize,
}

impl Frame {
    /// The payload as a range into the buffer passed to `decode`.
    pub const fn range(&self) -> core::ops::Range<usize> {
        self.start..self.end
    }

    /// The payload's length.
    pub const fn len(&self) -> usize {
        self.end - self.start
    }

    /// Whether the payload is empty (the frame may still have consumed bytes).
    pub const fn is_empty(&self) -> bool {
        self.end == self.start
    }

    /// The payload within `src`, the buffer that was passed to `decode`.
    ///
    /// Returns an empty slice if `src` is not that buffer and is too short.
    pub fn payload<'a>(&self, src: &'a [u8]) -> &'a [u8] {
        src.get(self.start..self.end).unwrap_or(&[])
    }
}

/// The answer of one [`Decoder::decode`] call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Decoded {
    /// No complete frame yet. `frame_len` is the length the current frame
    /// will have on the wire, counted from the start of the buffer, when the
    /// decoder already knows it (a parsed length field); a driver can use it
    /// to reject a frame that cannot fit its buffer before reading it.
    NeedMore {
        /// Total bytes of the pending frame, if known.
        frame_len: Option<usize>,
    },
    /// A complete frame.
    Frame(Frame),
    /// Drop this many bytes from the front and call again: bytes of an
    /// oversized frame being skipped, or padding between frames.
    Skip(usize),
}

/// A framing decoder: a small resumable state machine over caller-owned bytes.
///
/// See the [module documentation](self) for the contract between calls.
pub trait Decoder {
    /// Looks for the next frame at the front of `src`.
    ///
    /// `src` is mutable so that decoders whose wire format transforms the
    /// payload (COBS) can undo the transform in place; a decoder writes only
    /// inside the frame it returns.
    fn decode(&mut self, src: &mut [u8]) -> Result<Decoded, DecodeError>;

    /// Forgets any partial state, for reuse on a new stream.
    fn reset(&mut self);

    /// The maximum frame length on the wire this decoder accepts.
    fn max_frame(&self) -> usize;

    /// Whether the decoder is discarding the rest of an oversized frame
    /// under [`Oversize::Skip`]: the frame is still arriving although the
    /// bytes of it seen so far were dropped. A
    /// [`Connection`](crate::Connection) keeps its read timeout running
    /// meanwhile, so a peer cannot trickle an endless oversized frame. A
    /// decoder that never skips keeps the default, `false`.
    fn is_skipping(&self) -> bool {
        false
    }
}

/// Header and trailer bytes that frame a payload without changing it.
///
/// Written by [`Encoder::envelope`]; send `header`, the payload and `trailer`
/// with one vectored write.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Envelope {
    header: [u8; Envelope::MAX_HEADER],
    header_len: u8,
    trailer: [u8; Envelope::MAX_TRAILER],
    trailer_len: u8,
}

impl Envelope {
    /// Largest header any encoder writes (a 10-byte varint prefix fits).
    pub const MAX_HEADER: usize = 16;
    /// Largest trailer any encoder writes (the longest delimiter).
    pub const MAX_TRAILER: usize = MAX_DELIMITER_LEN;

    /// An envelope with neither header nor trailer.
    pub const EMPTY: Envelope = Envelope {
        header: [0; Self::MAX_HEADER],
        header_len: 0,
        trailer: [0; Self::MAX_TRAILER],
        trailer_len: 0,
    };

    /// Bytes that go before the payload.
    pub fn header(&self) -> &[u8] {
        &self.header[..usize::from(self.header_len)]
    }

    /// Bytes that go after the payload.
    pub fn trailer(&self) -> &[u8] {
        &self.trailer[..usize::from(self.trailer_len)]
    }

    /// Header plus trailer length.
    pub fn overhead(&self) -> usize {
        usize::from(self.header_len) + usize::from(self.trailer_len)
    }

    pub(crate) fn with_header(bytes: &[u8]) -> Self {
        let mut env = Envelope::EMPTY;
        let n = bytes.len().min(Self::MAX_HEADER);
        env.header[..n].copy_from_slice(&bytes[..n]);
        env.header_len = n as u8;
        env
    }

    pub(crate) fn with_trailer(bytes: &[u8]) -> Self {
        let mut env = Envelope::EMPTY;
        let n = bytes.len().min(Self::MAX_TRAILER);
        env.trailer[..n].copy_from_slice(&bytes[..n]);
        env.trailer_len = n as u8;
        env
    }
}

/// A framing encoder, the mirror of a [`Decoder`].
///
/// An encoder refuses any payload its decoder would refuse or would decode
/// differently (oversize, a length the field cannot hold, a payload that
/// contains the delimiter), and checks before it writes anything, so a
/// failed encode leaves the destination untouched.
pub trait Encoder {
    /// The length of the whole encoded frame for `payload`, or why it cannot
    /// be encoded.
    fn encoded_len(&self, payload: &[u8]) -> Result<usize, Error>;

    /// Header and trailer for `payload`, or `Ok(None)` if this codec rewrites
    /// the payload itself (COBS) and only [`Encoder::encode_with`] can frame it.
    fn envelope(&self, payload: &[u8]) -> Result<Option<Envelope>, Error>;

    /// Validates `payload`, then hands the encoded frame to `put` piece by
    /// piece, in order. Returns the frame length.
    fn encode_with<F: FnMut(&[u8])>(&self, payload: &[u8], put: F) -> Result<usize, Error>;

    /// Writes the whole frame to the front of `dst`; returns its length.
    fn encode(&self, payload: &[u8], dst: &mut [u8]) -> Result<usize, Error> {
        let len = self.encoded_len(payload)?;
        if len > dst.len() {
            return Err(Error::BufferTooSmall {
                needed: len,
                capacity: dst.len(),
            });
        }
        let mut at = 0;
        self.encode_with(payload, |piece| {
            // In bounds: pieces add up to `len`, which fits `dst`.
            if let Some(slot) = dst.get_mut(at..at + piece.len()) {
                slot.copy_from_slice(piece);
            }
            at += piece.len();
        })
    }

    /// Appends the whole frame to a `heapless::Vec`; returns its length.
    fn encode_heapless<const N: usize>(
        &self,
        payload: &[u8],
        dst: &mut heapless::Vec<u8, N>,
    ) -> Result<usize, Error> {
        let len = self.encoded_len(payload)?;
        let capacity = N - dst.len();
        if len > capacity {
            return Err(Error::BufferTooSmall {
                needed: len,
                capacity,
            });
        }
        self.encode_with(payload, |piece| {
            // Cannot fail: capacity was checked above.
            let _ = dst.extend_from_slice(piece);
        })
    }

    /// Appends the whole frame to a `Vec`; returns its length.
    #[cfg(feature = "alloc")]
    fn encode_vec(&self, payload: &[u8], dst: &mut alloc::vec::Vec<u8>) -> Result<usize, Error> {
        let len = self.encoded_len(payload)?;
        dst.reserve(len);
        self.encode_with(payload, |piece| dst.extend_from_slice(piece))
    }

    /// Appends the whole frame to a [`bytes::BufMut`]; returns its length.
    #[cfg(feature = "bytes")]
    fn encode_buf<B: bytes::BufMut>(&self, payload: &[u8], dst: &mut B) -> Result<usize, Error> {
        let len = self.encoded_len(payload)?;
        if len > dst.remaining_mut() {
            return Err(Error::BufferTooSmall {
                needed: len,
                capacity: dst.remaining_mut(),
            });
        }
        self.encode_with(payload, |piece| dst.put_slice(piece))
    }
}

/// Decodes one frame from a [`bytes::BytesMut`], tokio-util style: on a
/// frame, its bytes are split off the front and the payload returned; bytes
/// to skip are dropped. Returns `Ok(None)` when more bytes are needed.
///
/// On an error, the error's `consumed` bytes are dropped before it is
/// returned.
#[cfg(feature = "bytes")]
pub fn decode_bytes<D: Decoder + ?Sized>(
    decoder: &mut D,
    buf: &mut bytes::BytesMut,
) -> Result<Option<bytes::BytesMut>, DecodeError> {
    use bytes::Buf;
    loop {
        match decoder.decode(&mut buf[..]) {
            Ok(Decoded::NeedMore { .. }) => return Ok(None),
            Ok(Decoded::Skip(n)) => buf.advance(n.min(buf.len())),
            Ok(Decoded::Frame(frame)) => {
                let mut whole = buf.split_to(frame.consumed.min(buf.len()));
                whole.truncate(frame.end);
                whole.advance(frame.start.min(whole.len()));
                return Ok(Some(whole));
            }
            Err(e) => {
                buf.advance(e.consumed.min(buf.len()));
                return Err(e);
            }
        }
    }
}

/// The index of the first `needle` in `hay`.
///
/// For short frames (lines, small COBS frames) the cost of a `memchr` call
/// (dispatch, alignment, its wide loop reading past a short frame) is most
/// of the search. So on x86 the first [`INLINE_SCAN`] bytes are scanned
/// here, 16 at a time: the comparison of a 16-byte array folds to one
/// vector compare and mask, and the position within the 16 comes from two
/// 8-byte words. A tail shorter than 16 is checked as the last 16 bytes
/// (overlapping bytes already seen, which hold no match). Past
/// [`INLINE_SCAN`] bytes, and on other targets, `memchr`.
#[inline(always)]
pub(crate) fn find_byte(needle: u8, hay: &[u8]) -> Option<usize> {
    #[cfg(target_feature = "sse2")]
    {
        if hay.len() < 16 {
            return hay.iter().position(|&b| b == needle);
        }
        let mut at = 0;
        while at < INLINE_SCAN {
            let Some(chunk) = hay.get(at..).and_then(<[u8]>::first_chunk::<16>) else {
                // Under 16 left: the last 16 bytes.
                let last = hay.len() - 16;
                let chunk = hay.last_chunk::<16>()?;
                return has_in_16(needle, chunk).then(|| last + first_in_16(needle, chunk));
            };
            if has_in_16(needle, chunk) {
                return Some(at + first_in_16(needle, chunk));
            }
            at += 16;
        }
        memchr::memchr(needle, hay.get(at..)?).map(|i| at + i)
    }
    #[cfg(not(target_feature = "sse2"))]
    {
        memchr::memchr(needle, hay)
    }
}

/// Whether a 16-byte chunk holds `needle`.
#[cfg(target_feature = "sse2")]
#[inline(always)]
fn has_in_16(needle: u8, chunk: &[u8; 16]) -> bool {
    // Or, not `any`: no early exit, so it stays one vector compare.
    chunk.iter().fold(false, |found, &b| found | (b == needle))
}

/// Bytes [`find_byte`] scans itself before calling `memchr`.
#[cfg(target_feature = "sse2")]
const INLINE_SCAN: usize = 64;

/// The index of the first `needle` in a 16-byte chunk that holds one.
#[cfg(target_feature = "sse2")]
#[inline(always)]
fn first_in_16(needle: u8, chunk: &[u8; 16]) -> usize {
    let (lo, hi) = chunk.split_at(8);
    let word = |half: &[u8]| {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(half);
        u64::from_le_bytes(bytes)
    };
    match first_in_word(needle, word(lo)) {
        Some(i) => i,
        None => 8 + first_in_word(needle, word(hi)).unwrap_or(8),
    }
}

/// The index of the first byte equal to `needle` in a little-endian word:
/// the classic "has a zero byte" bit trick on `word ^ needle`. Its lowest
/// set bit is exact (false positives only appear above a true match).
#[cfg(target_feature = "sse2")]
#[inline(always)]
fn first_in_word(needle: u8, word: u64) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let x = word ^ (ONES * u64::from(needle));
    let zeros = x.wrapping_sub(ONES) & !x & HIGHS;
    (zeros != 0).then(|| zeros.trailing_zeros() as usize / 8)
}

/// Checks a maximum frame length given to a constructor.
pub(crate) const fn check_max_frame(max_frame: usize) -> Result<(), Error> {
    if max_frame == 0 {
        Err(Error::InvalidConfig {
            reason: "max_frame must be at least 1",
        })
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::find_byte;
    use proptest::prelude::*;
    use std::vec::Vec;

    proptest! {
        #[test]
        fn find_byte_finds_the_first(needle in prop_oneof![Just(0u8), Just(b'\n'), any::<u8>()],
                                     hay in proptest::collection::vec(
                                         prop_oneof![9 => any::<u8>(), 1 => Just(b'\n'), 1 => Just(0u8)],
                                         0..300),
                                     at in any::<proptest::sample::Index>()) {
            prop_assert_eq!(find_byte(needle, &hay), hay.iter().position(|&b| b == needle));
            // The needle at every offset, alone in the haystack.
            let mut lone: Vec<u8> = hay.iter().map(|&b| if b == needle { b.wrapping_add(1) } else { b }).collect();
            if !lone.is_empty() {
                let i = at.index(lone.len());
                lone[i] = needle;
                prop_assert_eq!(find_byte(needle, &lone), Some(i));
            }
        }
    }

    #[test]
    fn find_byte_at_every_position_of_the_inline_scan() {
        for len in 0..100 {
            for needle in [0u8, b'\n', 0x80, 0xFF] {
                let other = needle ^ 0x01;
                let mut hay = std::vec![other; len];
                assert_eq!(find_byte(needle, &hay), None);
                for i in 0..len {
                    hay[i] = needle;
                    assert_eq!(find_byte(needle, &hay), Some(i), "len {len} at {i}");
                    // A second match after it changes nothing.
                    if i + 1 < len {
                        hay[len - 1] = needle;
                        assert_eq!(find_byte(needle, &hay), Some(i));
                        hay[len - 1] = other;
                    }
                    hay[i] = other;
                }
            }
        }
    }
}
