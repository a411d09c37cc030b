//! Delimiter framing: frames end at one of a set of byte strings.
//!
//! # Where a frame ends
//!
//! A frame ends at the first byte position where *some* delimiter ends; when
//! several delimiters end at that position, the longest one is the
//! delimiter. For `\r\n` and `\n` that is exactly "lines with an optional
//! CR". This rule is decided by the bytes seen so far, never by bytes still
//! to come, so the decoder is chunking-invariant, can fail fast on oversize,
//! and never rescans a byte. (It differs from "the earliest-starting
//! occurrence" only when one delimiter occurs strictly inside another, e.g.
//! `Y` inside `XYZ`.)

use super::{check_max_frame, Decoded, Decoder, Encoder, Envelope, Frame, Oversize, SplitDecoder};
use crate::{DecodeError, Error};

/// Most delimiters one codec can have.
pub const MAX_DELIMITERS: usize = 8;
/// Longest delimiter, in bytes.
pub const MAX_DELIMITER_LEN: usize = 16;

/// A set of 1 to [`MAX_DELIMITERS`] non-empty delimiters of up to
/// [`MAX_DELIMITER_LEN`] bytes, stored inline (no allocation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Delimiters {
    /// Delimiters sorted longest first, so the first match at a position is
    /// the longest.
    bytes: [[u8; MAX_DELIMITER_LEN]; MAX_DELIMITERS],
    lens: [u8; MAX_DELIMITERS],
    count: u8,
    /// Index (in sorted order) of the delimiter that was given first: the
    /// one an encoder writes.
    primary: u8,
    max_len: u8,
    /// Distinct last bytes of the delimiters; the scan looks for these.
    last: [u8; MAX_DELIMITERS],
    last_count: u8,
    /// Bit set of the last bytes, for the scan when there are more than three.
    last_set: [u32; 8],
    /// Exactly `\n` and `\r\n`: lines, which take a shorter path.
    lines: bool,
}

impl Delimiters {
    /// Builds a set. The first delimiter in `delims` is the one encoders
    /// write.
    pub fn new(delims: &[&[u8]]) -> Result<Self, Error> {
        if delims.is_empty() || delims.len() > MAX_DELIMITERS {
            return Err(Error::InvalidConfig {
                reason: "between 1 and 8 delimiters are allowed",
            });
        }
        let mut set = Delimiters {
            bytes: [[0; MAX_DELIMITER_LEN]; MAX_DELIMITERS],
            lens: [0; MAX_DELIMITERS],
            count: 0,
            primary: 0,
            max_len: 0,
            last: [0; MAX_DELIMITERS],
            last_count: 0,
            last_set: [0; 8],
            lines: false,
        };
        for d in delims {
            if d.is_empty() || d.len() > MAX_DELIMITER_LEN {
                return Err(Error::InvalidConfig {
                    reason: "a delimiter must be 1 to 16 bytes long",
                });
            }
        }
        // Insert longest first (stable for equal lengths); track where the
        // first-given delimiter lands.
        let mut used = [false; MAX_DELIMITERS];
        for slot in 0..delims.len() {
            let mut best = usize::MAX;
            for (i, d) in delims.iter().enumerate() {
                if !used[i] && (best == usize::MAX || d.len() > delims[best].len()) {
                    best = i;
                }
            }
            used[best] = true;
            let d = delims[best];
            if best == 0 {
                set.primary = slot as u8;
            }
            set.bytes[slot][..d.len()].copy_from_slice(d);
            set.lens[slot] = d.len() as u8;
            set.max_len = set.max_len.max(d.len() as u8);
            let last = d[d.len() - 1];
            if !set.has_last(last) {
                set.last[usize::from(set.last_count)] = last;
                set.last_count += 1;
                set.last_set[usize::from(last / 32)] |= 1 << (last % 32);
            }
        }
        set.count = delims.len() as u8;
        set.lines =
            delims.len() == 2 && delims.contains(&&b"\n"[..]) && delims.contains(&&b"\r\n"[..]);
        Ok(set)
    }

    /// `\r\n` and `\n` (the encoder writes `\n`): lines with an optional CR,
    /// which is stripped with the LF.
    pub fn lines() -> Self {
        // Cannot fail: two short delimiters.
        match Delimiters::new(&[b"\n", b"\r\n"]) {
            Ok(d) => d,
            Err(_) => unreachable!(),
        }
    }

    /// How many delimiters the set has.
    pub fn len(&self) -> usize {
        usize::from(self.count)
    }

    /// Always false: a set has at least one delimiter.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Every delimiter, longest first.
    pub fn iter(&self) -> impl Iterator<Item = &[u8]> + '_ {
        (0..self.len()).map(|i| self.get(i))
    }

    /// The delimiter encoders write (the first one given).
    pub fn primary(&self) -> &[u8] {
        self.get(usize::from(self.primary))
    }

    /// Length of the longest delimiter.
    pub fn max_len(&self) -> usize {
        usize::from(self.max_len)
    }

    fn get(&self, i: usize) -> &[u8] {
        &self.bytes[i][..usize::from(self.lens[i])]
    }

    fn has_last(&self, b: u8) -> bool {
        self.last_set[usize::from(b / 32)] & (1 << (b % 32)) != 0
    }

    /// The next index in `hay[from..]` holding the last byte of some
    /// delimiter.
    fn next_candidate(&self, hay: &[u8], from: usize) -> Option<usize> {
        let rest = hay.get(from..)?;
        let found = match self.last_count {
            1 => memchr::memchr(self.last[0], rest),
            2 => memchr::memchr2(self.last[0], self.last[1], rest),
            3 => memchr::memchr3(self.last[0], self.last[1], self.last[2], rest),
            _ => rest.iter().position(|&b| self.has_last(b)),
        };
        found.map(|i| from + i)
    }

    /// The longest delimiter that ends exactly at `end` in `hay`.
    ///
    /// Compared byte by byte from the end: delimiters are short, their
    /// lengths are only known at run time, and a `memcmp` call per
    /// candidate costs more than the comparison (for lines: one byte, the
    /// CR before the LF).
    fn match_ending_at(&self, hay: &[u8], end: usize) -> Option<usize> {
        let head = hay.get(..end)?;
        'delims: for i in 0..self.len() {
            let d = self.get(i);
            let Some(start) = head.len().checked_sub(d.len()) else {
                continue;
            };
            for (a, b) in head[start..].iter().rev().zip(d.iter().rev()) {
                if a != b {
                    continue 'delims;
                }
            }
            return Some(d.len());
        }
        None
    }

    /// The first position in `hay[..to]` at or after end position `from + 1`
    /// where a delimiter ends: `(end, delimiter length)`.
    fn first_end(&self, hay: &[u8], from: usize, to: usize) -> Option<(usize, usize)> {
        let hay = hay.get(..to)?;
        if self.lines {
            // One search for LF and one byte compare for the CR before it.
            let end = from + memchr::memchr(b'\n', hay.get(from..)?)? + 1;
            let cr = end >= 2 && hay.get(end - 2) == Some(&b'\r');
            return Some((end, if cr { 2 } else { 1 }));
        }
        let mut at = from;
        while let Some(i) = self.next_candidate(hay, at) {
            if let Some(len) = self.match_ending_at(hay, i + 1) {
                return Some((i + 1, len));
            }
            at = i + 1;
        }
        None
    }
}

/// Decodes frames that end with a delimiter.
///
/// A frame ends at the first byte position where some delimiter ends; when
/// several end there, the longest is the delimiter. This is decided by the
/// bytes seen so far, never by bytes still to come, so the decoder is
/// chunking-invariant, fails fast, and never rescans a byte. (It differs
/// from "the earliest-starting occurrence" only when one delimiter occurs
/// strictly inside another, e.g. `Y` inside `XYZ`.)
///
/// The maximum frame length counts the delimiter. Oversize is reported as
/// soon as `max_frame` bytes are buffered without a delimiter ending in
/// them. The search is resumable: each byte is examined once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DelimiterDecoder {
    cfg: DelimiterConfig,
    st: DelimiterState,
}

/// The configuration half of a [`DelimiterDecoder`] (see [`SplitDecoder`]):
/// a field of its own so that decoding borrows it and the state apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct DelimiterConfig {
    delims: Delimiters,
    keep: bool,
    max_frame: usize,
    oversize: Oversize,
}

/// Where one stream of a [`DelimiterDecoder`] stands: how far the search
/// got, and whether an oversized frame is being discarded. The state of a
/// [`SplitDecoder`] stream.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DelimiterState {
    /// Bytes at the front of the buffer already searched for a delimiter end.
    scanned: usize,
    /// Discarding an oversized frame up to its delimiter.
    discarding: bool,
}

impl DelimiterDecoder {
    /// A decoder that strips the delimiter and closes on oversize.
    ///
    /// `max_frame` must be at least the longest delimiter.
    pub fn new(delims: Delimiters, max_frame: usize) -> Result<Self, Error> {
        check_max_frame(max_frame)?;
        if max_frame < delims.max_len() {
            return Err(Error::InvalidConfig {
                reason: "max_frame must be at least the longest delimiter",
            });
        }
        Ok(DelimiterDecoder {
            cfg: DelimiterConfig {
                delims,
                keep: false,
                max_frame,
                oversize: Oversize::Close,
            },
            st: DelimiterState::default(),
        })
    }

    /// Lines: LF-terminated, a CR before the LF stripped with it.
    pub fn lines(max_frame: usize) -> Result<Self, Error> {
        Self::new(Delimiters::lines(), max_frame)
    }

    /// Keeps the delimiter at the end of each payload instead of stripping it.
    #[must_use]
    pub fn keep_delimiter(mut self, keep: bool) -> Self {
        self.cfg.keep = keep;
        self
    }

    /// Sets the oversize policy.
    #[must_use]
    pub fn oversize(mut self, policy: Oversize) -> Self {
        self.cfg.oversize = policy;
        self
    }

    /// The delimiter set.
    pub fn delimiters(&self) -> &Delimiters {
        &self.cfg.delims
    }
}

impl DelimiterConfig {
    /// Drops scanned bytes while discarding, keeping the last
    /// `max_len - 1` so a delimiter that straddles the cut is still seen.
    fn discard_scanned(&self, st: &mut DelimiterState) -> usize {
        let keep = self.delims.max_len() - 1;
        let drop = st.scanned.saturating_sub(keep);
        st.scanned -= drop;
        drop
    }
}

impl Decoder for DelimiterDecoder {
    #[inline(always)]
    fn decode(&mut self, src: &mut [u8]) -> Result<Decoded, DecodeError> {
        self.cfg.decode_in(&mut self.st, src)
    }

    fn reset(&mut self) {
        self.st = DelimiterState::default();
    }

    fn max_frame(&self) -> usize {
        self.cfg.max_frame
    }

    fn is_skipping(&self) -> bool {
        self.st.discarding
    }
}

impl SplitDecoder for DelimiterDecoder {
    type State = DelimiterState;

    fn new_state(&self) -> DelimiterState {
        DelimiterState::default()
    }

    #[inline(always)]
    fn decode_with(&self, st: &mut DelimiterState, src: &mut [u8]) -> Result<Decoded, DecodeError> {
        self.cfg.decode_in(st, src)
    }

    fn is_skipping_with(&self, st: &DelimiterState) -> bool {
        st.discarding
    }
}

impl DelimiterConfig {
    // Small enough to inline into a caller's frame loop: lines found
    // within the maximum are answered here, with one search from where the
    // last one stopped; everything else in
    // `DelimiterDecoder::decode_general`.
    #[inline(always)]
    fn decode_in(&self, st: &mut DelimiterState, src: &[u8]) -> Result<Decoded, DecodeError> {
        if self.delims.lines && !st.discarding {
            let limit = src.len().min(self.max_frame);
            let from = st.scanned;
            if let Some(lf) = src
                .get(from..limit)
                .and_then(|rest| super::find_byte(b'\n', rest))
            {
                let end = from + lf + 1;
                let cr = end >= 2 && src.get(end - 2) == Some(&b'\r');
                st.scanned = 0;
                return Ok(Decoded::Frame(Frame {
                    consumed: end,
                    start: 0,
                    end: if self.keep {
                        end
                    } else {
                        end - 1 - usize::from(cr)
                    },
                }));
            }
            // Searched up to `limit`: the general path does not search again.
            st.scanned = from.max(limit);
        }
        self.decode_general(st, src)
    }

    /// Every delimiter set, every state, every error.
    #[inline(never)]
    fn decode_general(&self, st: &mut DelimiterState, src: &[u8]) -> Result<Decoded, DecodeError> {
        if st.discarding {
            return Ok(match self.delims.first_end(src, st.scanned, src.len()) {
                Some((end, _)) => {
                    st.discarding = false;
                    st.scanned = 0;
                    Decoded::Skip(end)
                }
                None => {
                    st.scanned = src.len();
                    match self.discard_scanned(st) {
                        0 => Decoded::NeedMore { frame_len: None },
                        n => Decoded::Skip(n),
                    }
                }
            });
        }
        let limit = src.len().min(self.max_frame);
        if let Some((end, dlen)) = self.delims.first_end(src, st.scanned, limit) {
            st.scanned = 0;
            let payload_end = if self.keep { end } else { end - dlen };
            return Ok(Decoded::Frame(Frame {
                consumed: end,
                start: 0,
                end: payload_end,
            }));
        }
        st.scanned = st.scanned.max(limit);
        if src.len() < self.max_frame {
            return Ok(Decoded::NeedMore { frame_len: None });
        }
        // `max_frame` bytes and no delimiter ends among them: the frame is
        // at least one byte too long.
        let error = Error::FrameTooLarge {
            len: self.max_frame as u64 + 1,
            max: self.max_frame,
        };
        match self.oversize {
            Oversize::Close => Err(DecodeError::fatal(error)),
            Oversize::Skip => {
                st.discarding = true;
                Err(DecodeError::recoverable(error, self.discard_scanned(st)))
            }
        }
    }
}

/// Writes a payload followed by the primary delimiter (or, with
/// [`keep_delimiter`](Self::keep_delimiter), a payload that already ends
/// with its delimiter, as it is).
///
/// When the payload's end would merge with the primary delimiter into a
/// longer one, another delimiter of the set that ends the frame exactly is
/// written instead: for lines, `ab\r` goes out as `ab\r\r\n`, which the
/// decoder gives back as `ab\r`. A payload is refused if the decoder could
/// not give it back unchanged: it contains a delimiter, or no delimiter of
/// the set can end it cleanly.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DelimiterEncoder {
    delims: Delimiters,
    keep: bool,
    max_frame: usize,
}

impl DelimiterEncoder {
    /// An encoder that appends the primary delimiter.
    pub fn new(delims: Delimiters, max_frame: usize) -> Result<Self, Error> {
        // Same limits as the decoder.
        DelimiterDecoder::new(delims, max_frame)?;
        let primary = delims.primary();
        if delims.first_end(primary, 0, primary.len()) != Some((primary.len(), primary.len())) {
            return Err(Error::InvalidConfig {
                reason:
                    "another delimiter ends inside the first delimiter, so it cannot be written",
            });
        }
        Ok(DelimiterEncoder {
            delims,
            keep: false,
            max_frame,
        })
    }

    /// Lines: writes `\n` (`\r\n` after a final CR); refuses payloads
    /// that contain an LF.
    pub fn lines(max_frame: usize) -> Result<Self, Error> {
        Self::new(Delimiters::lines(), max_frame)
    }

    /// Mirror of [`DelimiterDecoder::keep_delimiter`]: payloads are whole
    /// frames that already end with their delimiter, written unchanged.
    #[must_use]
    pub fn keep_delimiter(mut self, keep: bool) -> Self {
        self.keep = keep;
        self
    }

    /// Validates `payload`; returns the frame length and the trailer to
    /// write after it (empty when the delimiter is kept).
    #[inline(always)]
    fn check(&self, payload: &[u8]) -> Result<(usize, &[u8]), Error> {
        // Lines: a payload without an LF takes the primary delimiter,
        // unless it is `\n` after a final CR (which would read as `\r\n`);
        // one search instead of the general path's trailer checks.
        if self.delims.lines && !self.keep && memchr::memchr(b'\n', payload).is_none() {
            let primary = self.delims.primary();
            if primary.len() == 2 || payload.last() != Some(&b'\r') {
                let len = self.check_len(payload.len().saturating_add(primary.len()))?;
                return Ok((len, primary));
            }
        }
        self.check_general(payload)
    }

    /// [`check`](Self::check) for every other set, kept delimiters, and
    /// the payloads the lines path leaves.
    #[inline(never)]
    fn check_general(&self, payload: &[u8]) -> Result<(usize, &[u8]), Error> {
        if self.keep {
            self.check_len(payload.len())?;
            // The payload must be exactly one frame.
            return match self.delims.first_end(payload, 0, payload.len()) {
                Some((end, _)) if end == payload.len() => Ok((payload.len(), &[])),
                Some((end, dlen)) => Err(Error::PayloadContainsDelimiter { pos: end - dlen }),
                None => Err(Error::NotEncodable {
                    reason: "with the delimiter kept, a payload must end with a delimiter",
                }),
            };
        }
        if let Some((end, dlen)) = self.delims.first_end(payload, 0, payload.len()) {
            return Err(Error::PayloadContainsDelimiter { pos: end - dlen });
        }
        // The primary delimiter, unless the payload's tail would join it
        // into a longer one (lines: "ab\r" + "\n"); then the first other
        // delimiter that ends the frame exactly ("ab\r" + "\r\n").
        let primary = usize::from(self.delims.primary);
        let mut first_clash = None;
        for i in core::iter::once(primary).chain((0..self.delims.len()).filter(|&i| i != primary)) {
            let trailer = self.delims.get(i);
            match self.ends_exactly(payload, trailer) {
                Ok(()) => {
                    let len = self.check_len(payload.len().saturating_add(trailer.len()))?;
                    return Ok((len, trailer));
                }
                Err(pos) => {
                    first_clash.get_or_insert(pos);
                }
            }
        }
        Err(Error::PayloadContainsDelimiter {
            pos: first_clash.unwrap_or(payload.len()),
        })
    }

    fn check_len(&self, len: usize) -> Result<usize, Error> {
        if len > self.max_frame {
            return Err(Error::PayloadTooLarge {
                len,
                max: self.max_frame,
            });
        }
        Ok(len)
    }

    /// Whether `payload` followed by `trailer` decodes as one frame ending
    /// exactly at the end of `trailer`, with `trailer` as its delimiter.
    /// The payload alone must already hold no delimiter. On a clash, the
    /// offset in the payload where it begins.
    fn ends_exactly(&self, payload: &[u8], trailer: &[u8]) -> Result<(), usize> {
        let tail_len = payload.len().min(self.delims.max_len() - 1);
        let tail = &payload[payload.len() - tail_len..];
        let mut joint = [0u8; 2 * MAX_DELIMITER_LEN];
        joint[..tail_len].copy_from_slice(tail);
        joint[tail_len..tail_len + trailer.len()].copy_from_slice(trailer);
        let joint_len = tail_len + trailer.len();
        match self.delims.first_end(&joint, tail_len, joint_len) {
            Some((end, dlen)) if end == joint_len && dlen == trailer.len() => Ok(()),
            Some((end, dlen)) => Err((payload.len() - tail_len + end).saturating_sub(dlen)),
            // Unreachable: `trailer` ends at `joint_len`.
            None => Err(payload.len()),
        }
    }
}

impl Encoder for DelimiterEncoder {
    fn encoded_len(&self, payload: &[u8]) -> Result<usize, Error> {
        self.check(payload).map(|(len, _)| len)
    }

    fn envelope(&self, payload: &[u8]) -> Result<Option<Envelope>, Error> {
        let (_, trailer) = self.check(payload)?;
        Ok(Some(Envelope::with_trailer(trailer)))
    }

    #[inline(always)]
    fn encode_with<F: FnMut(&[u8])>(&self, payload: &[u8], mut put: F) -> Result<usize, Error> {
        let (len, trailer) = self.check(payload)?;
        put(payload);
        if !trailer.is_empty() {
            put(trailer);
        }
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

    fn frames(v: &[&[u8]]) -> Vec<Vec<u8>> {
        v.iter().map(|f| f.to_vec()).collect()
    }

    #[test]
    fn lines_strip_lf_and_crlf() {
        let mut d = DelimiterDecoder::lines(64).unwrap();
        let out = decode_whole(&mut d, b"a\nbb\r\n\n\r\nc\rd\ntail");
        assert_eq!(out.frames, frames(&[b"a", b"bb", b"", b"", b"c\rd"]));
        assert!(out.errors.is_empty());
    }

    #[test]
    fn keep_delimiter() {
        let mut d = DelimiterDecoder::lines(64).unwrap().keep_delimiter(true);
        let out = decode_whole(&mut d, b"a\nbb\r\n");
        assert_eq!(out.frames, frames(&[b"a\n", b"bb\r\n"]));
    }

    #[test]
    fn delimiter_split_across_reads() {
        let delims = Delimiters::new(&[b"END"]).unwrap();
        let mut d = DelimiterDecoder::new(delims, 64).unwrap();
        let out = decode_chunked(&mut d, b"helloENDworldEND", &[6, 1, 1, 3, 5]);
        assert_eq!(out.frames, frames(&[b"hello", b"world"]));
    }

    #[test]
    fn delimiter_at_buffer_start_is_an_empty_frame() {
        let delims = Delimiters::new(&[b"||"]).unwrap();
        let mut d = DelimiterDecoder::new(delims, 8).unwrap();
        let out = decode_whole(&mut d, b"||||x||");
        assert_eq!(out.frames, frames(&[b"", b"", b"x"]));
    }

    #[test]
    fn longest_delimiter_wins_at_the_same_end() {
        let delims = Delimiters::new(&[b"b", b"ab", b"cab"]).unwrap();
        let mut d = DelimiterDecoder::new(delims, 16).unwrap();
        let out = decode_whole(&mut d, b"xcabyab");
        assert_eq!(out.frames, frames(&[b"x", b"y"]));
    }

    #[test]
    fn earliest_end_wins() {
        let delims = Delimiters::new(&[b"XYZ", b"Y"]).unwrap();
        let mut d = DelimiterDecoder::new(delims, 16).unwrap();
        let out = decode_whole(&mut d, b"aXYZ");
        assert_eq!(out.frames, frames(&[b"aX"]));
        assert_eq!(
            d.decode(&mut b"Z".to_vec()),
            Ok(Decoded::NeedMore { frame_len: None })
        );
    }

    #[test]
    fn more_than_three_last_bytes() {
        let delims = Delimiters::new(&[b"1", b"2", b"3", b"4"]).unwrap();
        let mut d = DelimiterDecoder::new(delims, 16).unwrap();
        let out = decode_whole(&mut d, b"a1b2c3d4e");
        assert_eq!(out.frames, frames(&[b"a", b"b", b"c", b"d"]));
    }

    #[test]
    fn frame_of_exactly_max_is_accepted_and_max_plus_one_refused() {
        // 4 payload bytes + LF = 5 on the wire.
        let mut d = DelimiterDecoder::lines(5).unwrap();
        assert_eq!(decode_whole(&mut d, b"abcd\n").frames, frames(&[b"abcd"]));
        let mut d = DelimiterDecoder::lines(5).unwrap();
        let out = decode_whole(&mut d, b"abcde\n");
        assert_eq!(out.errors, [Error::FrameTooLarge { len: 6, max: 5 }]);
        assert!(out.fatal);
    }

    #[test]
    fn oversize_fails_fast_without_the_delimiter() {
        let mut d = DelimiterDecoder::lines(4).unwrap();
        assert_eq!(
            d.decode(&mut b"abc".to_vec()),
            Ok(Decoded::NeedMore { frame_len: None })
        );
        let err = d.decode(&mut b"abcd".to_vec()).unwrap_err();
        assert_eq!(
            err,
            DecodeError::fatal(Error::FrameTooLarge { len: 5, max: 4 })
        );
    }

    #[test]
    fn frames_before_an_oversize_frame_are_delivered() {
        let mut d = DelimiterDecoder::lines(4).unwrap();
        let out = decode_whole(&mut d, b"ab\ncd\nxxxxxxxx\nef\n");
        assert_eq!(out.frames, frames(&[b"ab", b"cd"]));
        assert!(out.fatal);
    }

    #[test]
    fn skip_resumes_after_the_oversized_frame() {
        let delims = Delimiters::new(&[b"\r\n"]).unwrap();
        let input = b"ab\r\n0123456789\r\ncd\r\n0123456\r\r\n\r\n";
        for chunks in [&[input.len()][..], &[1], &[3, 7], &[5]] {
            let mut d = DelimiterDecoder::new(delims, 5)
                .unwrap()
                .oversize(Oversize::Skip);
            let out = decode_chunked(&mut d, input, chunks);
            assert_eq!(
                out.frames,
                frames(&[b"ab", b"cd", b""]),
                "chunks {chunks:?}"
            );
            assert_eq!(out.errors, [Error::FrameTooLarge { len: 6, max: 5 }; 2]);
            assert!(!out.fatal);
        }
    }

    #[test]
    fn no_rescan_the_scan_position_advances() {
        let mut d = DelimiterDecoder::lines(1000).unwrap();
        let mut buf = vec![b'x'; 500];
        assert!(matches!(d.decode(&mut buf), Ok(Decoded::NeedMore { .. })));
        assert_eq!(d.st.scanned, 500);
        buf.extend_from_slice(b"yy\n");
        assert_eq!(
            d.decode(&mut buf),
            Ok(Decoded::Frame(Frame {
                consumed: 503,
                start: 0,
                end: 502
            }))
        );
        assert_eq!(d.st.scanned, 0);
    }

    #[test]
    fn bad_configs_are_refused() {
        assert!(Delimiters::new(&[]).is_err());
        assert!(Delimiters::new(&[b""]).is_err());
        assert!(Delimiters::new(&[&[0u8; 17][..]]).is_err());
        assert!(Delimiters::new(&[&b"a"[..]; 9]).is_err());
        assert!(DelimiterDecoder::new(Delimiters::new(&[b"abc"]).unwrap(), 2).is_err());
        assert!(DelimiterDecoder::lines(0).is_err());
        // "Y" ends inside "XYZ", so "XYZ" cannot be written as a trailer.
        assert!(DelimiterEncoder::new(Delimiters::new(&[b"XYZ", b"Y"]).unwrap(), 16).is_err());
        assert!(DelimiterEncoder::new(Delimiters::new(&[b"Y", b"XYZ"]).unwrap(), 16).is_ok());
    }

    #[test]
    fn encoder_writes_the_primary_delimiter() {
        let e = DelimiterEncoder::lines(16).unwrap();
        let mut buf = [0u8; 16];
        assert_eq!(e.encode(b"hi", &mut buf), Ok(3));
        assert_eq!(&buf[..3], b"hi\n");
        let env = e.envelope(b"hi").unwrap().unwrap();
        assert_eq!((env.header(), env.trailer()), (&b""[..], &b"\n"[..]));
    }

    #[test]
    fn encoder_refuses_what_would_not_decode_back() {
        let e = DelimiterEncoder::lines(16).unwrap();
        assert_eq!(
            e.encoded_len(b"a\nb"),
            Err(Error::PayloadContainsDelimiter { pos: 1 })
        );
        assert_eq!(
            e.encoded_len(b"a\r\nb"),
            Err(Error::PayloadContainsDelimiter { pos: 1 })
        );
        // "ab\r\n" would decode as "ab", so a final CR goes out as "ab\r\r\n".
        assert_eq!(e.encoded_len(b"ab\r"), Ok(5));
        let mut out = [0u8; 8];
        assert_eq!(e.encode(b"ab\r", &mut out), Ok(5));
        assert_eq!(&out[..5], b"ab\r\r\n");
        assert_eq!(e.encoded_len(b"a\rb"), Ok(4));
        assert_eq!(e.encoded_len(&[b'x'; 15]), Ok(16));
        assert_eq!(
            e.encoded_len(&[b'x'; 16]),
            Err(Error::PayloadTooLarge { len: 17, max: 16 })
        );
        let mut buf = [9u8; 4];
        assert!(e.encode(b"a\n", &mut buf).is_err());
        assert_eq!(buf, [9; 4], "a refused payload writes nothing");
    }

    #[test]
    fn keep_encoder_writes_whole_frames_unchanged() {
        let e = DelimiterEncoder::lines(16).unwrap().keep_delimiter(true);
        let mut buf = [0u8; 16];
        assert_eq!(e.encode(b"ab\r\n", &mut buf), Ok(4));
        assert_eq!(&buf[..4], b"ab\r\n");
        assert!(matches!(
            e.encoded_len(b"ab"),
            Err(Error::NotEncodable { .. })
        ));
        assert_eq!(
            e.encoded_len(b"a\nb\n"),
            Err(Error::PayloadContainsDelimiter { pos: 1 })
        );
    }

    fn delimiter_set() -> impl Strategy<Value = Vec<Vec<u8>>> {
        // Small alphabet so delimiters actually occur in random input.
        proptest::collection::vec(proptest::collection::vec(0u8..4, 1..4), 1..4)
    }

    proptest! {
        #[test]
        fn lines_path_answers_as_the_general_check(
                crlf_first in any::<bool>(), keep in any::<bool>(),
                payload in proptest::collection::vec(
                    prop_oneof![4 => Just(b'a'), 2 => Just(b'\r'), 1 => Just(b'\n')], 0..12),
                max in 2usize..16) {
            let set: &[&[u8]] = if crlf_first { &[b"\r\n", b"\n"] } else { &[b"\n", b"\r\n"] };
            let enc = DelimiterEncoder::new(Delimiters::new(set).unwrap(), max)
                .unwrap()
                .keep_delimiter(keep);
            prop_assert_eq!(enc.check(&payload), enc.check_general(&payload));
        }

        #[test]
        fn whole_equals_bytewise(delims in delimiter_set(),
                                 input in proptest::collection::vec(0u8..5, 0..200),
                                 max in 3usize..20, skip in any::<bool>(), keep in any::<bool>()) {
            let refs: Vec<&[u8]> = delims.iter().map(|d| &d[..]).collect();
            let set = Delimiters::new(&refs).unwrap();
            let policy = if skip { Oversize::Skip } else { Oversize::Close };
            let mk = || DelimiterDecoder::new(set, max).unwrap().oversize(policy).keep_delimiter(keep);
            let whole = decode_whole(&mut mk(), &input);
            let bytewise = decode_bytewise(&mut mk(), &input);
            prop_assert_eq!(&whole, &bytewise);
            for f in &whole.frames {
                prop_assert!(f.len() <= max);
            }
        }

        #[test]
        fn lines_fast_path_matches_a_reference(input in proptest::collection::vec(
                                                   prop_oneof![Just(b'a'), Just(b'\r'), Just(b'\n')], 0..200),
                                               chunks in proptest::collection::vec(1usize..16, 1..6)) {
            // Reference: split at each LF, drop one CR before it.
            let mut want = Vec::new();
            let mut rest = &input[..];
            while let Some(i) = rest.iter().position(|&b| b == b'\n') {
                let line = &rest[..i];
                want.push(line.strip_suffix(b"\r").unwrap_or(line).to_vec());
                rest = &rest[i + 1..];
            }
            let out = decode_chunked(&mut DelimiterDecoder::lines(1000).unwrap(), &input, &chunks);
            prop_assert_eq!(out.frames, want);
        }

        #[test]
        fn lines_fast_path_answers_as_the_general_path(
                input in proptest::collection::vec(
                    prop_oneof![4 => Just(b'a'), 2 => Just(b'\n'), 2 => Just(b'\r'), 1 => any::<u8>()],
                    0..200),
                max in 2usize..40, keep in any::<bool>(), skip in any::<bool>(),
                chunks in proptest::collection::vec(1usize..70, 1..6)) {
            let policy = if skip { Oversize::Skip } else { Oversize::Close };
            let fast = DelimiterDecoder::lines(max).unwrap().keep_delimiter(keep).oversize(policy);
            // The same set through the general search.
            let mut general = fast;
            general.cfg.delims.lines = false;
            for chunks in [&chunks[..], &[1], &[input.len().max(1)]] {
                prop_assert_eq!(
                    decode_chunked(&mut fast.clone(), &input, chunks),
                    decode_chunked(&mut general.clone(), &input, chunks)
                );
            }
        }

        #[test]
        fn roundtrip_in_any_chunking(payloads in proptest::collection::vec(
                                         proptest::collection::vec(any::<u8>(), 0..40), 0..20),
                                     chunks in proptest::collection::vec(1usize..64, 1..8)) {
            let enc = DelimiterEncoder::lines(64).unwrap();
            let payloads: Vec<Vec<u8>> =
                payloads.into_iter().filter(|p| enc.encoded_len(p).is_ok()).collect();
            let wire = encode_all(&enc, &payloads);
            let mut d = DelimiterDecoder::lines(64).unwrap();
            let out = decode_chunked(&mut d, &wire, &chunks);
            prop_assert!(out.errors.is_empty());
            prop_assert_eq!(out.frames, payloads);
        }

        #[test]
        fn encoder_and_decoder_agree(delims in delimiter_set(),
                                     payload in proptest::collection::vec(0u8..5, 0..30),
                                     keep in any::<bool>()) {
            let refs: Vec<&[u8]> = delims.iter().map(|d| &d[..]).collect();
            let set = Delimiters::new(&refs).unwrap();
            let Ok(enc) = DelimiterEncoder::new(set, 64) else { return Ok(()) };
            let enc = enc.keep_delimiter(keep);
            if let Ok(n) = enc.encoded_len(&payload) {
                let mut wire = Vec::new();
                enc.encode_with(&payload, |p| wire.extend_from_slice(p)).unwrap();
                prop_assert_eq!(wire.len(), n);
                let mut d = DelimiterDecoder::new(set, 64).unwrap().keep_delimiter(keep);
                let out = decode_whole(&mut d, &wire);
                prop_assert_eq!(out.frames, vec![payload]);
            }
        }
    }
}
