//! COBS framing: Consistent Overhead Byte Stuffing, frames ended by `0x00`.
//!
//! # Wire format
//!
//! A frame is the COBS encoding of its payload followed by one `0x00`. The
//! encoding has no zero bytes: it is a sequence of groups, each a code byte
//! `c` in `1..=255` followed by `c - 1` non-zero data bytes. After each group
//! a zero is implied, unless `c == 0xFF` (a full run of 254 data bytes) or
//! the group ends the frame. For example `[11 22 00 33]` goes on the wire as
//! `03 11 22 02 33 00`, and an empty payload as `01 00`.
//!
//! This is a delimiter codec with delimiter `0x00` plus an in-place
//! transform: the decoder finds the `0x00` (walking a new frame's code
//! bytes, then searching resumably, each byte once or twice), then undoes
//! the stuffing inside the caller's buffer: the payload starts one byte
//! into its frame. A decoded payload is never longer than its
//! encoding, so the rewrite only ever moves bytes backwards, and only after
//! a full group (254 bytes without a zero).
//!
//! A lone `0x00` (an empty encoding, e.g. a sync byte between frames) is not
//! a frame and is skipped. A frame whose code byte runs past the frame's end
//! is reported as [`Error::InvalidCobs`]; its `0x00` still marks where the
//! next frame begins, so the error is recoverable.

use super::{Decoded, Decoder, Encoder, Envelope, Frame, Oversize};
use crate::{DecodeError, Error};

/// The code byte of a full group: 254 data bytes and no implied zero.
const FULL_CODE: u8 = 0xFF;
/// Data bytes in a full group.
const FULL_RUN: usize = FULL_CODE as usize - 1;

/// Checks a maximum frame length for COBS: room for the smallest real frame,
/// a code byte and the `0x00`.
const fn check_cobs_max_frame(max_frame: usize) -> Result<(), Error> {
    if max_frame < 2 {
        Err(Error::InvalidConfig {
            reason: "COBS max_frame must be at least 2 (a code byte and the 0x00)",
        })
    } else {
        Ok(())
    }
}

/// Undoes COBS in place: `buf` holds one frame's encoded bytes without its
/// `0x00`. On success the payload is `buf[start..end]` for the returned
/// `(start, end)`.
///
/// The payload is `buf[1..]` with each code byte turned into the zero it
/// stands for, except that the code byte after a full group stands for
/// nothing and is dropped (what follows moves back one byte per drop). So
/// a frame without full groups (every frame of up to 254 bytes) costs a
/// read of each code byte and a write of each zero, and moves nothing;
/// after a full group the bytes move in runs between full groups, one move
/// per run rather than one per group. The write position never passes the
/// read position, so the rewrite is safe in place; on error `buf` may be
/// partly rewritten.
///
/// Whether a group is full is as random as the payload, so the walk does
/// not branch on it: each code byte is masked to its zero (or kept, when
/// dropped), and a drop's position is noted in a batch whose runs are
/// moved after the walk has covered [`DROP_BATCH`] groups. The moves only
/// write below the drop that ends their run, so code bytes further on are
/// still as they came when the walk reads them.
#[inline(always)]
fn unstuff_in_place(buf: &mut [u8]) -> Result<(usize, usize), Error> {
    let end = buf.len();
    let first = buf.first().map_or(0, |&c| usize::from(c));
    if first == end {
        // One group (every frame of a payload under 254 bytes without a
        // zero): the payload is in place already.
        return Ok((1, end));
    }
    // A zero code cannot occur (the scan stopped at the first 0x00), but
    // it would never advance, so it is refused rather than trusted.
    if first == 0 || first > end {
        return Err(Error::InvalidCobs {
            pos: 0,
            code: first as u8,
        });
    }
    // `buf[seg..]` is still to move back by `shift` up to the next drop:
    // nothing moves before the first full group.
    let (mut seg, mut shift) = (1, 0);
    let mut at = first;
    let mut after_full = first == usize::from(FULL_CODE);
    let mut drops = [0usize; DROP_BATCH];
    while at < end {
        let mut noted = 0;
        while noted < DROP_BATCH {
            let Some(slot) = buf.get_mut(at) else {
                break;
            };
            let code = *slot;
            // Kept after a full group (the byte is dropped by the moves),
            // else the zero it stands for.
            *slot = code & 0u8.wrapping_sub(u8::from(after_full));
            if let Some(note) = drops.get_mut(noted) {
                *note = at;
            }
            noted += usize::from(after_full);
            let next = at + usize::from(code);
            if code == 0 || next > end {
                return Err(Error::InvalidCobs { pos: at, code });
            }
            after_full = code == FULL_CODE;
            at = next;
        }
        for &drop in drops.get(..noted).unwrap_or(&[]) {
            if shift > 0 {
                move_back(buf, seg..drop, shift);
            }
            seg = drop + 1;
            shift += 1;
        }
    }
    if shift > 0 {
        move_back(buf, seg..end, shift);
    }
    // `shift` counts code bytes after the first: at most `end - 1`.
    Ok((1, end.saturating_sub(shift).max(1)))
}

/// Drops noted by [`unstuff_in_place`]'s walk before their runs move.
const DROP_BATCH: usize = 16;

/// Decodes `0x00`-terminated COBS frames in place.
///
/// The maximum frame length counts the frame on the wire: the encoded bytes
/// plus the `0x00`. Oversize is reported as soon as `max_frame` bytes are
/// buffered without a `0x00` among them. The search is resumable: a byte is
/// examined once (twice at most where a walk of the frame's code bytes
/// stops short), then each frame's bytes once more to undo the stuffing.
///
/// Payloads are delivered one byte into their frame (`start` is always 1,
/// past the first code byte); the frame's bytes in the caller's buffer are
/// rewritten to hold them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CobsDecoder {
    max_frame: usize,
    oversize: Oversize,
    /// Bytes at the front of the buffer already searched for a `0x00`, or
    /// [`DISCARDING`]. One field for both, so a frame loop's fast path
    /// tests one word (0: a new frame at the front) to take a frame.
    scanned: usize,
}

/// [`CobsDecoder::scanned`] while an oversized frame is discarded up to its
/// `0x00`; never a count of bytes searched, which is at most a slice's
/// length.
const DISCARDING: usize = usize::MAX;

impl CobsDecoder {
    /// A decoder that closes on oversize.
    ///
    /// `max_frame` must be at least 2, the smallest real frame (`01 00`).
    pub fn new(max_frame: usize) -> Result<Self, Error> {
        check_cobs_max_frame(max_frame)?;
        Ok(CobsDecoder {
            max_frame,
            oversize: Oversize::Close,
            scanned: 0,
        })
    }

    /// Sets the oversize policy.
    #[must_use]
    pub fn oversize(mut self, policy: Oversize) -> Self {
        self.oversize = policy;
        self
    }
}

/// Moves `buf[from]` back by `shift` (at least 1) bytes.
///
/// Up to 32 bytes are moved inline, as two possibly overlapping chunks
/// that are both read before either is written (so the overlap of source
/// and destination does not matter); longer runs by `copy_within`.
#[inline(always)]
fn move_back(buf: &mut [u8], from: core::ops::Range<usize>, shift: usize) {
    // In bounds by construction; checked all the same, never panicking.
    let _ = move_back_checked(buf, from, shift);
}

#[inline(always)]
fn move_back_checked(buf: &mut [u8], from: core::ops::Range<usize>, shift: usize) -> Option<()> {
    let len = from.len();
    // The destination at 0, the source at `shift`.
    let region = buf.get_mut(from.start.checked_sub(shift)?..from.end)?;
    match len {
        0 => {}
        1..=3 => {
            // The first, middle and last byte: all of them, read first.
            let (a, b, c) = (
                *region.get(shift)?,
                *region.get(shift + len / 2)?,
                *region.get(shift + len - 1)?,
            );
            *region.get_mut(0)? = a;
            *region.get_mut(len / 2)? = b;
            *region.get_mut(len - 1)? = c;
        }
        4..=7 => {
            let head = *region.get(shift..)?.first_chunk::<4>()?;
            let tail = *region.get(shift + len - 4..)?.first_chunk::<4>()?;
            *region.first_chunk_mut::<4>()? = head;
            *region.get_mut(len - 4..)?.first_chunk_mut::<4>()? = tail;
        }
        8..=16 => {
            let head = *region.get(shift..)?.first_chunk::<8>()?;
            let tail = *region.get(shift + len - 8..)?.first_chunk::<8>()?;
            *region.first_chunk_mut::<8>()? = head;
            *region.get_mut(len - 8..)?.first_chunk_mut::<8>()? = tail;
        }
        17..=32 => {
            let head = *region.get(shift..)?.first_chunk::<16>()?;
            let tail = *region.get(shift + len - 16..)?.first_chunk::<16>()?;
            *region.first_chunk_mut::<16>()? = head;
            *region.get_mut(len - 16..)?.first_chunk_mut::<16>()? = tail;
        }
        _ => region.copy_within(shift.., 0),
    }
    Some(())
}

impl Decoder for CobsDecoder {
    // Small enough to inline into a caller's frame loop: a frame whose
    // `0x00` is within the maximum is answered here, with one search from
    // where the last stopped; everything else (nothing found yet, oversize,
    // discarding) in `CobsDecoder::decode_general`.
    //
    // A frame's code bytes say where its `0x00` must be, so a new frame's
    // code bytes are followed to it first, and the frame then checked for
    // a zero in one go: no position to find, no search call per frame.
    // Where that fails (a partial, invalid or long frame), the search
    // starts over from the frame's start.
    //
    // Every path's answer is built here, the general path's from a
    // two-word `Step`: inlined into a frame loop, the answer then stays in
    // registers instead of being stored and loaded back for each frame.
    #[inline(always)]
    fn decode(&mut self, src: &mut [u8]) -> Result<Decoded, DecodeError> {
        let zero = 'found: {
            let from = self.scanned;
            let limit = src.len().min(self.max_frame);
            // A new frame at the front (never while discarding).
            if from == 0 {
                match frame_end(src.get(..limit).unwrap_or(&[])) {
                    // One group: nothing to rewrite.
                    Some((zero, true)) => return Ok(one_group_frame(zero)),
                    Some((zero, false)) => break 'found zero,
                    None => {}
                }
            }
            if from != DISCARDING {
                if let Some(zero) = self.search_from(src, from, limit) {
                    break 'found zero;
                }
            }
            match self.decode_general(src) {
                Ok(zero) => zero,
                Err(step) => return step.answer(self.max_frame),
            }
        };
        unstuff_frame(src, zero)
    }

    fn reset(&mut self) {
        self.scanned = 0;
    }

    fn max_frame(&self) -> usize {
        self.max_frame
    }

    fn is_skipping(&self) -> bool {
        self.scanned == DISCARDING
    }
}

impl CobsDecoder {
    /// [`Decoder::decode`] without the walk: the search alone, from where
    /// the last one stopped. The tests hold the walk to it.
    #[cfg(test)]
    fn decode_searching(&mut self, src: &mut [u8]) -> Result<Decoded, DecodeError> {
        if self.scanned != DISCARDING {
            let limit = src.len().min(self.max_frame);
            if let Some(zero) = self.search_from(src, self.scanned, limit) {
                return unstuff_frame(src, zero);
            }
        }
        match self.decode_general(src) {
            Ok(zero) => unstuff_frame(src, zero),
            Err(step) => step.answer(self.max_frame),
        }
    }

    /// Searches `src[from..limit]` for the frame's `0x00` (none before
    /// `from`): its index; else records the search and leaves the answer
    /// to the general path.
    #[inline(always)]
    fn search_from(&mut self, src: &[u8], from: usize, limit: usize) -> Option<usize> {
        if let Some(i) = src
            .get(from..limit)
            .and_then(|rest| super::find_byte(0, rest))
        {
            self.scanned = 0;
            return Some(from + i);
        }
        // Searched up to `limit`: the general path does not search again.
        self.scanned = from.max(limit);
        None
    }
}

/// What [`CobsDecoder::decode_general`] answers when it finds no frame.
/// With the index of a frame's `0x00` it is small enough to come back in
/// registers, and the decoder's answer is built where `decode` is inlined:
/// a caller's frame loop then keeps every path's answer out of memory.
#[derive(Clone, Copy, Debug)]
enum Step {
    /// Bytes dropped (a discarded frame's, up to and with its `0x00`).
    Skip(usize),
    /// No `0x00` yet, within the maximum.
    NeedMore,
    /// `max_frame` bytes without a `0x00`, and the connection closes.
    TooLarge,
    /// As `TooLarge`, and the frame is discarded: this many bytes now.
    TooLargeSkipped(usize),
}

impl Step {
    /// The decoder's answer.
    #[inline(always)]
    fn answer(self, max_frame: usize) -> Result<Decoded, DecodeError> {
        // `max_frame` bytes and no 0x00 among them: the frame is at least
        // one byte too long.
        let too_large = Error::FrameTooLarge {
            len: (max_frame as u64).saturating_add(1),
            max: max_frame,
        };
        match self {
            Step::Skip(n) => Ok(Decoded::Skip(n)),
            Step::NeedMore => Ok(Decoded::NeedMore { frame_len: None }),
            Step::TooLarge => Err(DecodeError::fatal(too_large)),
            Step::TooLargeSkipped(consumed) => Err(DecodeError::recoverable(too_large, consumed)),
        }
    }
}

/// Bytes of a frame whose code bytes are followed before the search takes
/// over: past them, `memchr`'s wider scan costs less than the walk.
const WALK_MAX: usize = 256;

/// Follows the code bytes of the frame at the front of `window` to the
/// `0x00` they lead to, then checks that no zero comes before it: the
/// index of that `0x00` (0 for a lone `0x00`), the frame's end, and
/// whether the frame is one group (its first code byte leads to the
/// `0x00`). `None` when the code bytes run past `window` or past
/// [`WALK_MAX`] bytes, or a zero comes earlier (the frame is invalid, and
/// the search finds where it ends).
///
/// The code bytes alone decide the walk, and the check is one pass over
/// the frame: no branch on each group's length, which is as random as the
/// payload. The first step is taken before the loop, so a one-group frame
/// (a short payload without a zero) costs two loads and no loop.
#[inline(always)]
fn frame_end(window: &[u8]) -> Option<(usize, bool)> {
    let mut at = usize::from(*window.first()?);
    if at == 0 {
        return Some((0, true));
    }
    // The data is checked from past the first code byte, which is not
    // zero: checking it again would have the compiler splice the value it
    // loaded into the first chunk.
    let mut code = *window.get(at)?;
    if code == 0 {
        // One group, checked on a path of its own: with the walk's, it
        // would take a second test of which way it came.
        let data = window.get(1..at)?;
        return (!has_zero(data)).then_some((at, true));
    }
    while code != 0 {
        if at >= WALK_MAX {
            return None;
        }
        at += usize::from(code);
        code = *window.get(at)?;
    }
    let rest = window.get(1..at)?;
    (!has_zero(rest)).then_some((at, false))
}

/// The answer for a frame of one group whose `0x00` is at `zero`: its
/// payload is the group's data, in place after the code byte.
#[inline(always)]
fn one_group_frame(zero: usize) -> Decoded {
    if zero == 0 {
        // A lone 0x00: an empty encoding, not a frame.
        return Decoded::Skip(1);
    }
    Decoded::Frame(Frame {
        consumed: zero + 1,
        start: 1,
        end: zero,
    })
}

/// Whether `data` holds a zero byte. Checking a run of known length needs
/// no position, so whole chunks are checked at once (the last one
/// overlapping the one before), with no early exit inside a chunk.
#[inline(always)]
fn has_zero(data: &[u8]) -> bool {
    // Short frames first, with one compare: they are the ones whose
    // dispatch shows.
    if (16..32).contains(&data.len()) {
        return zero_in_ends::<16>(data);
    }
    if data.len() >= 32 {
        if data.len() < 64 {
            return zero_in_ends::<32>(data);
        }
        return zero_in_chunks::<64>(data);
    }
    let word = |w: Option<&[u8; 8]>| w.map_or(0, |w| u64::from_le_bytes(*w));
    if data.len() >= 8 {
        return zero_in_word(word(data.first_chunk())) || zero_in_word(word(data.last_chunk()));
    }
    let (first, last) = (data.first_chunk::<4>(), data.last_chunk::<4>());
    if let (Some(&first), Some(&last)) = (first, last) {
        let both = u64::from(u32::from_le_bytes(first)) | u64::from(u32::from_le_bytes(last)) << 32;
        return zero_in_word(both);
    }
    // Under 4 bytes: the first, middle and last cover them all.
    let pick = |i: usize| data.get(i).map_or(1, |&b| b);
    !data.is_empty() && (pick(0) == 0 || pick(data.len() / 2) == 0 || pick(data.len() - 1) == 0)
}

/// [`has_zero`] for `data` of at least `N` bytes: whole `N`-byte chunks,
/// then the last `N` bytes for what is left.
#[inline(always)]
fn zero_in_chunks<const N: usize>(data: &[u8]) -> bool {
    let mut rest = data;
    while let Some((chunk, tail)) = rest.split_first_chunk::<N>() {
        if zero_in(chunk) {
            return true;
        }
        rest = tail;
    }
    !rest.is_empty() && data.last_chunk::<N>().is_some_and(zero_in)
}

/// [`has_zero`] for `data` of `N` to `2 * N` bytes: its first and last
/// `N` bytes, both checked, with no loop.
#[inline(always)]
fn zero_in_ends<const N: usize>(data: &[u8]) -> bool {
    match (data.first_chunk::<N>(), data.last_chunk::<N>()) {
        (Some(first), Some(last)) => zero_in(first) | zero_in(last),
        // Unreachable: `data` holds at least `N` bytes.
        _ => data.contains(&0),
    }
}

/// Whether a chunk of 16-byte lanes holds a zero: the lanes' bytewise
/// minimum (vertical, one vector instruction per lane), then one compare of
/// it with zero; no horizontal reduction per lane.
#[inline(always)]
fn zero_in<const N: usize>(chunk: &[u8; N]) -> bool {
    let mut least = [u8::MAX; 16];
    for lane in chunk.chunks_exact(16) {
        for (m, &b) in least.iter_mut().zip(lane) {
            *m = (*m).min(b);
        }
    }
    least.iter().fold(false, |found, &b| found | (b == 0))
}

/// Whether a little-endian word holds a zero byte (the classic bit trick).
#[inline(always)]
fn zero_in_word(word: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    word.wrapping_sub(ONES) & !word & HIGHS != 0
}

/// The answer for the frame that ends with the `0x00` at `src[zero]`.
#[inline(always)]
fn unstuff_frame(src: &mut [u8], zero: usize) -> Result<Decoded, DecodeError> {
    if zero == 0 {
        // A lone 0x00: an empty encoding, not a frame.
        return Ok(Decoded::Skip(1));
    }
    let consumed = zero + 1;
    let Some(encoded) = src.get_mut(..zero) else {
        // Unreachable: `zero` is an index into `src`.
        return Ok(Decoded::Skip(consumed));
    };
    match unstuff_in_place(encoded) {
        Ok((start, end)) => Ok(Decoded::Frame(Frame {
            consumed,
            start,
            end,
        })),
        Err(error) => Err(DecodeError::recoverable(error, consumed)),
    }
}

impl CobsDecoder {
    /// Every frame, every state, every error: the search where the fast
    /// paths left it, and discarding. `Ok` holds the index of the `0x00`
    /// that ends the frame found.
    #[inline(never)]
    fn decode_general(&mut self, src: &[u8]) -> Result<usize, Step> {
        if self.scanned == DISCARDING {
            // Everything before `src` was dropped, so nothing here was
            // searched yet; bytes without a 0x00 are dropped as they come.
            return match memchr::memchr(0, src) {
                Some(i) => {
                    self.scanned = 0;
                    Err(Step::Skip(i + 1))
                }
                None if src.is_empty() => Err(Step::NeedMore),
                None => Err(Step::Skip(src.len())),
            };
        }
        let limit = src.len().min(self.max_frame);
        let found = src
            .get(self.scanned..limit)
            .and_then(|rest| memchr::memchr(0, rest))
            .map(|i| self.scanned + i);
        if let Some(zero) = found {
            self.scanned = 0;
            return Ok(zero);
        }
        self.scanned = self.scanned.max(limit);
        if src.len() < self.max_frame {
            return Err(Step::NeedMore);
        }
        Err(match self.oversize {
            Oversize::Close => Step::TooLarge,
            Oversize::Skip => {
                let consumed = self.scanned;
                self.scanned = DISCARDING;
                Step::TooLargeSkipped(consumed)
            }
        })
    }
}

/// The groups of a payload's minimal COBS encoding: `(code, data)` with
/// `data` borrowed from the payload.
#[derive(Clone, Debug)]
struct Groups<'a> {
    /// The payload not yet grouped; `None` once the last group is out.
    rest: Option<&'a [u8]>,
}

impl<'a> Groups<'a> {
    fn new(payload: &'a [u8]) -> Self {
        Groups {
            rest: Some(payload),
        }
    }
}

impl<'a> Iterator for Groups<'a> {
    type Item = (u8, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let rest = self.rest?;
        let (window, after) = rest.split_at(rest.len().min(FULL_RUN));
        match super::find_byte(0, window) {
            Some(i) => {
                // A run of `i` bytes, then a zero the code byte implies. What
                // follows the zero (possibly nothing) is the next group.
                let data = window.get(..i).unwrap_or(&[]);
                self.rest = rest.get(i + 1..);
                Some((i as u8 + 1, data))
            }
            None if window.len() == FULL_RUN => {
                // A full run implies no zero; end here if nothing follows
                // (minimal encoding: no trailing empty group).
                self.rest = if after.is_empty() { None } else { Some(after) };
                Some((FULL_CODE, window))
            }
            None => {
                // The last group: under 254 bytes and no zero.
                self.rest = None;
                Some((window.len() as u8 + 1, window))
            }
        }
    }
}

/// Writes payloads as minimal COBS followed by `0x00`.
///
/// COBS rewrites the payload, so there is no zero-copy [`Envelope`]:
/// [`Encoder::envelope`] returns `Ok(None)` and [`Encoder::encode_with`]
/// streams the frame as code bytes interleaved with borrowed runs of the
/// payload. Any payload can be encoded; it is refused only if the encoded
/// frame (with its `0x00`) is longer than `max_frame`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CobsEncoder {
    max_frame: usize,
}

impl CobsEncoder {
    /// An encoder with the same limit as [`CobsDecoder::new`] (`max_frame`
    /// ≥ 2).
    pub fn new(max_frame: usize) -> Result<Self, Error> {
        check_cobs_max_frame(max_frame)?;
        Ok(CobsEncoder { max_frame })
    }

    /// The exact encoded frame length, refused if over the maximum.
    fn check(&self, payload: &[u8]) -> Result<usize, Error> {
        let len = encoded_frame_len(payload);
        if len > self.max_frame {
            return Err(Error::PayloadTooLarge {
                len,
                max: self.max_frame,
            });
        }
        Ok(len)
    }

    /// [`Encoder::encode`] for a payload that is one group (under
    /// [`FULL_RUN`] bytes, no zero) and whose frame fits both the maximum
    /// and `dst`; `None`, with nothing written, for anything else.
    #[inline(always)]
    fn encode_one_group(&self, payload: &[u8], dst: &mut [u8]) -> Option<usize> {
        let len = payload.len();
        if len >= FULL_RUN || has_zero(payload) {
            return None;
        }
        let n = len + 2;
        if n > self.max_frame {
            return None;
        }
        let (code, rest) = dst.get_mut(..n)?.split_first_mut()?;
        let (zero, data) = rest.split_last_mut()?;
        // Under 254: the code byte is at most 254.
        *code = len as u8 + 1;
        copy_small(data, payload);
        *zero = 0;
        Some(n)
    }
}

/// Payload plus one byte per group plus the `0x00`.
fn encoded_frame_len(payload: &[u8]) -> usize {
    Groups::new(payload).fold(1usize, |n, (_, data)| n.saturating_add(1 + data.len()))
}

/// Writes the frame for `payload` (its groups and the `0x00`) to the front
/// of `dst`, which must hold [`max_frame_len`] bytes; returns its length.
/// The groups are those of [`Groups`], found inline.
#[inline(always)]
fn write_frame(payload: &[u8], dst: &mut [u8]) -> usize {
    let mut rest = payload;
    let mut at = 0;
    loop {
        let (window, after) = rest.split_at(rest.len().min(FULL_RUN));
        let (data, next) = match super::find_byte(0, window) {
            // A run, then the zero the code byte implies.
            Some(i) => (window.get(..i).unwrap_or(&[]), rest.get(i + 1..)),
            // A full run: nothing implied; the end if nothing follows.
            None if window.len() == FULL_RUN => (window, (!after.is_empty()).then_some(after)),
            // The last group.
            None => (window, None),
        };
        if let Some((code, slot)) = dst
            .get_mut(at..at + 1 + data.len())
            .and_then(<[u8]>::split_first_mut)
        {
            // At most 255: the window is at most 254 bytes.
            *code = data.len() as u8 + 1;
            copy_small(slot, data);
        }
        at += 1 + data.len();
        match next {
            Some(next) => rest = next,
            None => break,
        }
    }
    if let Some(slot) = dst.get_mut(at) {
        *slot = 0;
    }
    at + 1
}

/// The longest frame any payload of `len` bytes encodes to: a code byte
/// per started 254 bytes (at least one) and the `0x00`.
fn max_frame_len(len: usize) -> usize {
    len.saturating_add(len / FULL_RUN).saturating_add(2)
}

/// `dst.copy_from_slice(src)` (same lengths), inline up to 32 bytes: two
/// possibly overlapping chunks rather than a `memcpy` call, which costs
/// more than the copy for the short runs of small frames.
#[inline(always)]
fn copy_small(dst: &mut [u8], src: &[u8]) {
    let len = src.len();
    if len != dst.len() {
        return;
    }
    match len {
        8..=16 => {
            if let (Some(h), Some(t)) = (src.first_chunk::<8>(), src.last_chunk::<8>()) {
                if let Some(d) = dst.first_chunk_mut::<8>() {
                    *d = *h;
                }
                if let Some(d) = dst.last_chunk_mut::<8>() {
                    *d = *t;
                }
            }
        }
        17..=32 => {
            if let (Some(h), Some(t)) = (src.first_chunk::<16>(), src.last_chunk::<16>()) {
                if let Some(d) = dst.first_chunk_mut::<16>() {
                    *d = *h;
                }
                if let Some(d) = dst.last_chunk_mut::<16>() {
                    *d = *t;
                }
            }
        }
        _ => dst.copy_from_slice(src),
    }
}

impl Encoder for CobsEncoder {
    fn encoded_len(&self, payload: &[u8]) -> Result<usize, Error> {
        self.check(payload)
    }

    /// One pass when the frame surely fits (its longest possible length is
    /// within both the maximum and `dst`): then it cannot fail, so it is
    /// written straight away without measuring it first. Otherwise the
    /// exact length is checked before anything is written, as always.
    ///
    /// A payload under 254 bytes without a zero (most small frames) is one
    /// group: checked with the decoder's chunked zero test and written as
    /// code, payload, `0x00`, with no search for a position.
    #[inline]
    fn encode(&self, payload: &[u8], dst: &mut [u8]) -> Result<usize, Error> {
        if let Some(n) = self.encode_one_group(payload, dst) {
            return Ok(n);
        }
        let bound = max_frame_len(payload.len());
        if bound > self.max_frame || bound > dst.len() {
            let len = self.check(payload)?;
            if len > dst.len() {
                return Err(Error::BufferTooSmall {
                    needed: len,
                    capacity: dst.len(),
                });
            }
        }
        Ok(write_frame(payload, dst))
    }

    fn envelope(&self, payload: &[u8]) -> Result<Option<Envelope>, Error> {
        self.check(payload)?;
        Ok(None)
    }

    fn encode_with<F: FnMut(&[u8])>(&self, payload: &[u8], mut put: F) -> Result<usize, Error> {
        let len = self.check(payload)?;
        for (code, data) in Groups::new(payload) {
            put(&[code]);
            if !data.is_empty() {
                put(data);
            }
        }
        put(&[0]);
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

    fn encode(payload: &[u8]) -> Vec<u8> {
        let enc = CobsEncoder::new(usize::MAX).unwrap();
        let mut wire = Vec::new();
        let n = enc
            .encode_with(payload, |p| wire.extend_from_slice(p))
            .unwrap();
        assert_eq!(n, wire.len());
        assert_eq!(enc.encoded_len(payload), Ok(n));
        wire
    }

    fn decoder() -> CobsDecoder {
        CobsDecoder::new(4096).unwrap()
    }

    /// A plain, allocating COBS decoder of one frame's encoded bytes (no
    /// 0x00), written independently of the in-place one.
    fn reference_decode(encoded: &[u8]) -> Result<Vec<u8>, Error> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < encoded.len() {
            let code = encoded[i];
            let n = usize::from(code);
            if code == 0 || i + n > encoded.len() {
                return Err(Error::InvalidCobs { pos: i, code });
            }
            out.extend_from_slice(&encoded[i + 1..i + n]);
            i += n;
            if code != 0xFF && i < encoded.len() {
                out.push(0);
            }
        }
        Ok(out)
    }

    /// What a whole stream must decode to, by the reference decoder, with
    /// frames up to `max` bytes on the wire and oversize skipped.
    fn reference_stream(input: &[u8], max: usize) -> Outcome {
        let mut out = Outcome {
            frames: Vec::new(),
            errors: Vec::new(),
            fatal: false,
        };
        let mut rest = input;
        while !rest.is_empty() {
            match rest.iter().position(|&b| b == 0) {
                Some(z) if z < max => {
                    if z > 0 {
                        match reference_decode(&rest[..z]) {
                            Ok(f) => out.frames.push(f),
                            Err(e) => out.errors.push(e),
                        }
                    }
                    rest = &rest[z + 1..];
                }
                found if rest.len() >= max => {
                    out.errors.push(Error::FrameTooLarge {
                        len: max as u64 + 1,
                        max,
                    });
                    rest = match found {
                        Some(z) => &rest[z + 1..],
                        None => &[],
                    };
                }
                _ => break,
            }
        }
        out
    }

    fn seq(range: core::ops::RangeInclusive<u8>) -> Vec<u8> {
        range.collect()
    }

    fn cat(parts: &[&[u8]]) -> Vec<u8> {
        parts.concat()
    }

    /// (payload, wire) pairs: the Wikipedia examples and a few more.
    fn vectors() -> Vec<(Vec<u8>, Vec<u8>)> {
        vec![
            (vec![], vec![0x01, 0x00]),
            (vec![0x00], vec![0x01, 0x01, 0x00]),
            (vec![0x00, 0x00], vec![0x01, 0x01, 0x01, 0x00]),
            (vec![0x00, 0x11, 0x00], vec![0x01, 0x02, 0x11, 0x01, 0x00]),
            (
                vec![0x11, 0x22, 0x00, 0x33],
                vec![0x03, 0x11, 0x22, 0x02, 0x33, 0x00],
            ),
            (
                vec![0x11, 0x22, 0x33, 0x44],
                vec![0x05, 0x11, 0x22, 0x33, 0x44, 0x00],
            ),
            (
                vec![0x11, 0x00, 0x00, 0x00],
                vec![0x02, 0x11, 0x01, 0x01, 0x01, 0x00],
            ),
            // 01..FE: one full group, no trailing empty group.
            (
                seq(0x01..=0xFE),
                cat(&[&[0xFF], &seq(0x01..=0xFE), &[0x00]]),
            ),
            // 00..FE: a leading zero, then a full group.
            (
                seq(0x00..=0xFE),
                cat(&[&[0x01, 0xFF], &seq(0x01..=0xFE), &[0x00]]),
            ),
            // 01..FF: a full group, then the last byte.
            (
                seq(0x01..=0xFF),
                cat(&[&[0xFF], &seq(0x01..=0xFE), &[0x02, 0xFF, 0x00]]),
            ),
            // 02..FF 00: a full group, then a zero (an empty group).
            (
                cat(&[&seq(0x02..=0xFF), &[0x00]]),
                cat(&[&[0xFF], &seq(0x02..=0xFF), &[0x01, 0x01, 0x00]]),
            ),
            // 03..FF 00 01: a full group, then 00 01.
            (
                cat(&[&seq(0x03..=0xFF), &[0x00, 0x01]]),
                cat(&[&[0xFE], &seq(0x03..=0xFF), &[0x02, 0x01, 0x00]]),
            ),
        ]
    }

    #[test]
    fn known_vectors_encode() {
        for (payload, wire) in vectors() {
            assert_eq!(encode(&payload), wire, "payload {payload:02x?}");
            // And through the slice convenience.
            let enc = CobsEncoder::new(wire.len()).unwrap();
            let mut buf = vec![0xAA; wire.len()];
            assert_eq!(enc.encode(&payload, &mut buf), Ok(wire.len()));
            assert_eq!(buf, wire);
        }
    }

    #[test]
    fn known_vectors_decode() {
        for (payload, wire) in vectors() {
            let mut d = decoder();
            let mut buf = wire.clone();
            assert_eq!(
                d.decode(&mut buf),
                Ok(Decoded::Frame(Frame {
                    consumed: wire.len(),
                    start: 1,
                    end: 1 + payload.len()
                })),
                "wire {wire:02x?}"
            );
            // Decoded in place, one byte into the frame.
            assert_eq!(&buf[1..=payload.len()], &payload[..]);
            assert_eq!(decode_bytewise(&mut decoder(), &wire).frames, [payload]);
        }
    }

    #[test]
    fn payload_without_zeros() {
        let payload = b"hello, serial world";
        let wire = encode(payload);
        assert_eq!(wire.len(), payload.len() + 2);
        assert_eq!(wire[0], payload.len() as u8 + 1);
        assert_eq!(&wire[1..wire.len() - 1], payload);
        assert_eq!(
            decode_whole(&mut decoder(), &wire).frames,
            [payload.to_vec()]
        );
    }

    #[test]
    fn long_non_zero_runs() {
        for (run, codes) in [
            (253usize, &[0xFEu8][..]),
            (254, &[0xFF]),
            (255, &[0xFF, 0x02]),
            (508, &[0xFF, 0xFF]),
            (509, &[0xFF, 0xFF, 0x02]),
        ] {
            let payload: Vec<u8> = (0..run).map(|i| (i % 255) as u8 + 1).collect();
            let wire = encode(&payload);
            assert_eq!(wire.len(), run + codes.len() + 1, "run {run}");
            let found: Vec<u8> = Groups::new(&payload).map(|(c, _)| c).collect();
            assert_eq!(found, codes, "run {run}");
            assert_eq!(wire.iter().position(|&b| b == 0), Some(wire.len() - 1));
            // The run alone, then with a zero on each side.
            let mut padded = vec![0];
            padded.extend_from_slice(&payload);
            padded.push(0);
            let mut stream = wire.clone();
            stream.extend_from_slice(&encode(&padded));
            for chunks in [&[stream.len()][..], &[1], &[7, 100]] {
                let out = decode_chunked(&mut decoder(), &stream, chunks);
                assert_eq!(out.frames, [payload.clone(), padded.clone()], "run {run}");
                assert!(out.errors.is_empty());
            }
        }
    }

    #[test]
    fn many_full_groups_span_several_batches_of_drops() {
        // Runs of full groups (each drops the code byte after it) longer
        // than a batch of drops, between short groups and zeros, so that
        // batches end on every kind of group.
        let full = |n: usize| -> Vec<u8> { (0..254 * n).map(|i| (i % 251) as u8 + 1).collect() };
        // Under Miri, fewer and shorter payloads and no bytewise feed: the
        // same batches are crossed, for far less interpreting.
        let counts: &[usize] = if cfg!(miri) {
            &[2 * DROP_BATCH + 3]
        } else {
            &[
                DROP_BATCH - 1,
                DROP_BATCH,
                DROP_BATCH + 1,
                2 * DROP_BATCH + 3,
            ]
        };
        let mut payloads = Vec::new();
        for &n in counts {
            payloads.push(full(n));
            payloads.push(cat(&[&full(n), &[0], &[7, 8], &[0, 0], &full(n), &[9]]));
            payloads.push(cat(&[&[1, 0], &full(n), &[0]]));
        }
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        payloads.push(
            (0..if cfg!(miri) { 2_000 } else { 40_000 })
                .map(|_| {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    // Mostly non-zero, so most groups are full.
                    if rng.is_multiple_of(700) {
                        0
                    } else {
                        (rng >> 8) as u8 | 1
                    }
                })
                .collect(),
        );
        let stream: Vec<u8> = payloads.iter().flat_map(|p| encode(p)).collect();
        let chunkings: &[&[usize]] = if cfg!(miri) {
            &[&[stream.len()], &[4093]]
        } else {
            &[&[stream.len()], &[4093], &[1]]
        };
        for chunks in chunkings {
            let out = decode_chunked(&mut CobsDecoder::new(1 << 20).unwrap(), &stream, chunks);
            assert!(out.errors.is_empty(), "{:?}", out.errors);
            assert_eq!(out.frames, payloads);
        }
        // A bad code byte after several batches: the reference's error, and
        // the next frame still decoded.
        let mut bad = encode(&cat(&[&full(3 * DROP_BATCH), &[5]]));
        let last_code = 255 * 3 * DROP_BATCH;
        assert_eq!(bad[last_code..], [2, 5, 0]);
        bad[last_code] = 9; // runs past the frame's end
        let want = reference_decode(&bad[..bad.len() - 1]).unwrap_err();
        assert!(matches!(want, Error::InvalidCobs { .. }));
        bad.extend_from_slice(&encode(b"next"));
        let out = decode_chunked(&mut CobsDecoder::new(1 << 20).unwrap(), &bad, &[bad.len()]);
        assert_eq!(out.errors, [want]);
        assert_eq!(out.frames, [b"next".to_vec()]);
    }

    #[test]
    fn has_zero_sees_a_lone_zero_at_every_position() {
        // Every length through two 64-byte chunks and a tail, so each way
        // of checking (words, two ends, chunks with an overlapping last
        // one) meets a zero at each of its positions.
        let max = if cfg!(miri) { 40 } else { 140 };
        let mut data = vec![0x5a; max];
        for len in 0..=max {
            assert!(!has_zero(&data[..len]), "no zero in {len} bytes");
            for at in 0..len {
                data[at] = 0;
                assert!(has_zero(&data[..len]), "zero at {at} of {len}");
                data[at] = 0x5a;
            }
        }
    }

    #[test]
    fn empty_payload() {
        assert_eq!(encode(&[]), [0x01, 0x00]);
        let mut d = decoder();
        assert_eq!(
            d.decode(&mut [0x01, 0x00]),
            Ok(Decoded::Frame(Frame {
                consumed: 2,
                start: 1,
                end: 1
            }))
        );
    }

    #[test]
    fn lone_zeros_are_skipped() {
        let mut d = decoder();
        assert_eq!(d.decode(&mut [0x00, 0x01]), Ok(Decoded::Skip(1)));
        let input = [0x00, 0x00, 0x01, 0x00, 0x00, 0x02, 0x11, 0x00, 0x00];
        for out in [
            decode_whole(&mut decoder(), &input),
            decode_bytewise(&mut decoder(), &input),
        ] {
            assert_eq!(out.frames, [vec![], vec![0x11]]);
            assert!(out.errors.is_empty());
        }
    }

    #[test]
    fn frame_of_exactly_max_is_accepted_and_max_plus_one_refused() {
        // 4 payload bytes: 1 code byte + 4 + 0x00 = 6 on the wire.
        let payload = [1u8, 2, 3, 4];
        let wire = encode(&payload);
        assert_eq!(wire.len(), 6);
        let mut d = CobsDecoder::new(6).unwrap();
        assert_eq!(decode_whole(&mut d, &wire).frames, [payload.to_vec()]);
        let mut d = CobsDecoder::new(6).unwrap();
        assert_eq!(decode_bytewise(&mut d, &wire).frames, [payload.to_vec()]);

        let wire = encode(&[1, 2, 3, 4, 5]);
        for out in [
            decode_whole(&mut CobsDecoder::new(6).unwrap(), &wire),
            decode_bytewise(&mut CobsDecoder::new(6).unwrap(), &wire),
        ] {
            assert!(out.frames.is_empty());
            assert_eq!(out.errors, [Error::FrameTooLarge { len: 7, max: 6 }]);
            assert!(out.fatal);
        }

        // The smallest maximum still carries an empty payload.
        let mut d = CobsDecoder::new(2).unwrap();
        assert_eq!(
            decode_whole(&mut d, &[1, 0, 0, 1, 0]).frames,
            [vec![], vec![]]
        );
    }

    #[test]
    fn oversize_fails_fast_without_the_zero() {
        let mut d = CobsDecoder::new(4).unwrap();
        assert_eq!(
            d.decode(&mut [5, 1, 2]),
            Ok(Decoded::NeedMore { frame_len: None })
        );
        assert_eq!(
            d.decode(&mut [5, 1, 2, 3]),
            Err(DecodeError::fatal(Error::FrameTooLarge { len: 5, max: 4 }))
        );
    }

    #[test]
    fn one_group_frames_at_their_limits() {
        // 253 bytes without a zero: the longest one-group payload.
        let long: Vec<u8> = (0..253).map(|i| (i % 255 + 1) as u8).collect();
        for payload in [&b""[..], b"\x01", b"abc", &long[..], &long[..252]] {
            let n = payload.len() + 2;
            let want = encode(payload);
            assert_eq!(want.len(), n);
            assert_eq!(want[0] as usize, payload.len() + 1);
            // The frame fits the maximum and the room exactly.
            let enc = CobsEncoder::new(n).unwrap();
            let mut buf = vec![0xA5; n];
            assert_eq!(enc.encode(payload, &mut buf), Ok(n));
            assert_eq!(buf, want);
            // One byte short of either: refused, nothing written.
            let mut short = vec![0xA5; n - 1];
            assert_eq!(
                enc.encode(payload, &mut short),
                Err(Error::BufferTooSmall {
                    needed: n,
                    capacity: n - 1
                })
            );
            assert!(short.iter().all(|&b| b == 0xA5));
            if n > 2 {
                let tight = CobsEncoder::new(n - 1).unwrap();
                assert_eq!(
                    tight.encode(payload, &mut buf),
                    Err(Error::PayloadTooLarge { len: n, max: n - 1 })
                );
            }
        }
    }

    #[test]
    fn encoder_refuses_over_max() {
        let e = CobsEncoder::new(6).unwrap();
        assert_eq!(e.encoded_len(&[1, 2, 3, 4]), Ok(6));
        assert_eq!(e.encoded_len(&[0, 0, 0, 0]), Ok(6));
        assert_eq!(
            e.encoded_len(&[1, 2, 3, 4, 5]),
            Err(Error::PayloadTooLarge { len: 7, max: 6 })
        );
        // 254 + 1 bytes need two code bytes: 258 on the wire.
        let e = CobsEncoder::new(257).unwrap();
        assert_eq!(e.encoded_len(&[7; 254]), Ok(256));
        assert_eq!(
            e.encoded_len(&[7; 255]),
            Err(Error::PayloadTooLarge { len: 258, max: 257 })
        );
        assert_eq!(
            e.envelope(&[7; 255]),
            Err(Error::PayloadTooLarge { len: 258, max: 257 })
        );
        let mut buf = [9u8; 300];
        assert!(e.encode(&[7; 255], &mut buf).is_err());
        assert_eq!(buf, [9; 300], "a refused payload writes nothing");
        let mut calls = 0;
        assert!(e.encode_with(&[7; 255], |_| calls += 1).is_err());
        assert_eq!(calls, 0);
    }

    #[test]
    fn invalid_cobs_is_recoverable_and_the_next_frame_delivered() {
        // 03 needs two data bytes; only one before the 0x00.
        let mut d = decoder();
        assert_eq!(
            d.decode(&mut [0x03, 0x11, 0x00, 0x01, 0x00]),
            Err(DecodeError::recoverable(
                Error::InvalidCobs { pos: 0, code: 3 },
                3
            ))
        );
        // A bad code byte after a good group (already partly rewritten).
        let input = [
            0x02, 0x11, 0x05, 0x22, 0x00, // bad: 05 at offset 2
            0x02, 0x33, 0x00, // good
        ];
        for chunks in [&[input.len()][..], &[1], &[2, 3]] {
            let out = decode_chunked(&mut decoder(), &input, chunks);
            assert_eq!(out.errors, [Error::InvalidCobs { pos: 2, code: 5 }]);
            assert_eq!(out.frames, [vec![0x33]]);
            assert!(!out.fatal);
        }
    }

    #[test]
    fn frames_before_a_bad_one_are_delivered() {
        let mut input = encode(b"one");
        input.extend_from_slice(&encode(&[0, 2, 0]));
        input.extend_from_slice(&[0xFF, 1, 2, 0]);
        input.extend_from_slice(&encode(b"two"));
        let out = decode_whole(&mut decoder(), &input);
        assert_eq!(
            out.frames,
            [b"one".to_vec(), vec![0, 2, 0], b"two".to_vec()]
        );
        assert_eq!(out.errors, [Error::InvalidCobs { pos: 0, code: 0xFF }]);
    }

    #[test]
    fn skip_resumes_after_the_oversized_frame_in_any_chunking() {
        let mut input = encode(b"ab");
        input.extend_from_slice(&encode(b"0123456789"));
        input.extend_from_slice(&encode(b"cd"));
        input.extend_from_slice(&[0x00]);
        input.extend_from_slice(&encode(&[0; 8]));
        input.extend_from_slice(&encode(b""));
        for chunks in [&[input.len()][..], &[1], &[3, 7], &[5], &[2, 1, 9]] {
            let mut d = CobsDecoder::new(6).unwrap().oversize(Oversize::Skip);
            let out = decode_chunked(&mut d, &input, chunks);
            assert_eq!(
                out.frames,
                [b"ab".to_vec(), b"cd".to_vec(), vec![]],
                "chunks {chunks:?}"
            );
            assert_eq!(out.errors, [Error::FrameTooLarge { len: 7, max: 6 }; 2]);
            assert!(!out.fatal);
        }
    }

    #[test]
    fn skip_reports_once_and_drops_as_it_goes() {
        let mut d = CobsDecoder::new(3).unwrap().oversize(Oversize::Skip);
        assert_eq!(
            d.decode(&mut [9, 9, 9, 9]),
            Err(DecodeError::recoverable(
                Error::FrameTooLarge { len: 4, max: 3 },
                3
            ))
        );
        assert!(d.is_skipping());
        assert_eq!(d.decode(&mut []), Ok(Decoded::NeedMore { frame_len: None }));
        assert_eq!(d.decode(&mut [9, 9]), Ok(Decoded::Skip(2)));
        assert!(d.is_skipping());
        assert_eq!(d.decode(&mut [9, 0, 2, 7, 0]), Ok(Decoded::Skip(2)));
        assert!(!d.is_skipping());
        assert_eq!(
            d.decode(&mut [2, 7, 0]),
            Ok(Decoded::Frame(Frame {
                consumed: 3,
                start: 1,
                end: 2
            }))
        );
    }

    #[test]
    fn no_rescan_the_scan_position_advances() {
        let mut d = CobsDecoder::new(1000).unwrap();
        let mut buf = vec![0xFF];
        buf.extend_from_slice(&[b'x'; 254]);
        buf.push(0x0A);
        assert!(matches!(d.decode(&mut buf), Ok(Decoded::NeedMore { .. })));
        assert_eq!(d.scanned, 256);
        buf.extend_from_slice(&[b'y'; 9]);
        buf.push(0);
        assert_eq!(
            d.decode(&mut buf),
            Ok(Decoded::Frame(Frame {
                consumed: 266,
                start: 1,
                end: 264
            }))
        );
        assert_eq!(d.scanned, 0);
        assert_eq!(&buf[1..255], &[b'x'; 254][..]);
        assert_eq!(&buf[255..264], &[b'y'; 9][..]);
    }

    #[test]
    fn reset_forgets_partial_state() {
        let mut d = CobsDecoder::new(3).unwrap().oversize(Oversize::Skip);
        assert!(d.decode(&mut [1, 1, 1]).is_err());
        d.reset();
        assert_eq!(d, CobsDecoder::new(3).unwrap().oversize(Oversize::Skip));
        assert_eq!(d.max_frame(), 3);
    }

    #[test]
    fn the_general_path_answers_in_two_words() {
        // Two words come back in registers; a larger answer would go
        // through memory, and with it every fast path's answer too.
        assert_eq!(
            core::mem::size_of::<Result<usize, Step>>(),
            2 * core::mem::size_of::<usize>()
        );
    }

    #[test]
    fn bad_configs_are_refused() {
        assert!(matches!(
            CobsDecoder::new(0),
            Err(Error::InvalidConfig { .. })
        ));
        assert!(CobsDecoder::new(1).is_err());
        assert!(CobsDecoder::new(2).is_ok());
        assert!(CobsEncoder::new(1).is_err());
        assert!(CobsEncoder::new(2).is_ok());
    }

    #[test]
    fn no_envelope_and_runs_are_borrowed() {
        let e = CobsEncoder::new(64).unwrap();
        let payload = [1u8, 2, 3, 0, 4, 5];
        assert_eq!(e.envelope(&payload), Ok(None));
        let range = payload.as_ptr_range();
        let mut pieces = Vec::new();
        e.encode_with(&payload, |p| {
            if p.len() > 1 {
                // A run of data goes out straight from the payload.
                assert!(range.contains(&p.as_ptr()));
            }
            pieces.push(p.to_vec());
        })
        .unwrap();
        assert_eq!(
            pieces,
            [vec![4], vec![1, 2, 3], vec![3], vec![4, 5], vec![0]]
        );
    }

    #[test]
    fn heapless_encoding() {
        let e = CobsEncoder::new(64).unwrap();
        let mut v = heapless::Vec::<u8, 8>::new();
        assert_eq!(e.encode_heapless(&[0x11, 0x22, 0x00, 0x33], &mut v), Ok(6));
        assert_eq!(&v[..], [0x03, 0x11, 0x22, 0x02, 0x33, 0x00]);
        assert_eq!(
            e.encode_heapless(&[1, 2, 3], &mut v),
            Err(Error::BufferTooSmall {
                needed: 5,
                capacity: 2
            })
        );
    }

    /// Payloads rich in zeros and in long non-zero runs.
    fn payload() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(
            prop_oneof![
                3 => proptest::collection::vec(any::<u8>(), 0..8),
                2 => proptest::collection::vec(Just(0u8), 1..4),
                2 => proptest::collection::vec(1u8..=255, 0..600),
                1 => (250usize..=260).prop_map(|n| vec![0x5A; n]),
            ],
            0..4,
        )
        .prop_map(|parts| parts.concat())
    }

    /// Arbitrary wire bytes, biased to zeros and small code bytes so that
    /// both valid and invalid frames occur.
    fn wire_bytes() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(
            prop_oneof![3 => Just(0u8), 4 => 1u8..6, 2 => any::<u8>()],
            0..300,
        )
    }

    proptest! {
        #[test]
        fn encode_into_a_slice_writes_what_encode_with_streams(
                payload in proptest::collection::vec(
                    prop_oneof![4 => any::<u8>(), 1 => Just(0u8)], 0..700),
                max in 2usize..800, room in 0usize..800, spare in 0usize..8) {
            encode_into_a_slice(&payload, max, room, spare)?;
        }

        /// Zero-free payloads around the one-group limit (253 bytes), with
        /// maxima and room around their frame's length.
        #[test]
        fn one_group_payloads_encode_as_the_general_path_does(
                payload in proptest::collection::vec(1u8..=255, 0..300),
                max_off in 0usize..4, room in 0usize..300, spare in 0usize..4) {
            let max = (payload.len() + 3).saturating_sub(max_off).max(2);
            encode_into_a_slice(&payload, max, room, spare)?;
        }
    }

    /// `encode` into slices of several sizes writes exactly what
    /// `encode_with` streams, or fails as `encoded_len` and the room say,
    /// writing nothing.
    fn encode_into_a_slice(
        payload: &[u8],
        max: usize,
        room: usize,
        spare: usize,
    ) -> Result<(), TestCaseError> {
        let enc = CobsEncoder::new(max).unwrap();
        let streamed = match enc.encoded_len(payload) {
            Ok(_) => {
                let mut v = Vec::new();
                enc.encode_with(payload, |p| v.extend_from_slice(p))
                    .unwrap();
                Some(v)
            }
            Err(_) => None,
        };
        // Room enough for the longest frame, exactly the frame, or too
        // little: the same bytes, the same error, nothing else written.
        let exact = streamed.as_ref().map_or(0, Vec::len);
        for cap in [
            room,
            exact,
            exact + spare,
            exact.saturating_sub(1),
            payload.len() * 2 + 4,
        ] {
            let mut buf = vec![0xA5u8; cap];
            let got = enc.encode(payload, &mut buf);
            match (&streamed, got) {
                (Some(w), Ok(n)) => {
                    prop_assert_eq!(&buf[..n], &w[..]);
                    prop_assert!(buf[n..].iter().all(|&b| b == 0xA5));
                }
                (Some(w), Err(e)) => {
                    prop_assert!(w.len() > cap);
                    prop_assert_eq!(
                        e,
                        Error::BufferTooSmall {
                            needed: w.len(),
                            capacity: cap
                        }
                    );
                    prop_assert!(buf.iter().all(|&b| b == 0xA5));
                }
                (None, got) => {
                    prop_assert_eq!(got, Err(enc.encoded_len(payload).unwrap_err()));
                    prop_assert!(buf.iter().all(|&b| b == 0xA5));
                }
            }
        }
        Ok(())
    }

    proptest! {
        #[test]
        fn roundtrip_in_any_chunking(payloads in proptest::collection::vec(payload(), 0..8),
                                     chunks in proptest::collection::vec(1usize..700, 1..8)) {
            let enc = CobsEncoder::new(4096).unwrap();
            let wire = encode_all(&enc, &payloads);
            let mut d = CobsDecoder::new(4096).unwrap();
            let out = decode_chunked(&mut d, &wire, &chunks);
            prop_assert!(out.errors.is_empty());
            prop_assert_eq!(out.frames, payloads);
        }

        #[test]
        fn encoding_is_minimal_cobs(payload in payload()) {
            let wire = encode(&payload);
            // One 0x00, at the end.
            prop_assert_eq!(wire.iter().position(|&b| b == 0), Some(wire.len() - 1));
            // Minimal overhead: one code byte per started 254-byte run.
            let least = payload.len() + 2;
            prop_assert!(wire.len() >= least);
            prop_assert!(wire.len() <= least + payload.len() / 254);
            prop_assert_eq!(reference_decode(&wire[..wire.len() - 1]), Ok(payload));
        }

        #[test]
        fn whole_equals_bytewise(input in wire_bytes(), max in 2usize..40, skip in any::<bool>()) {
            let policy = if skip { Oversize::Skip } else { Oversize::Close };
            let mk = || CobsDecoder::new(max).unwrap().oversize(policy);
            let whole = decode_whole(&mut mk(), &input);
            let bytewise = decode_bytewise(&mut mk(), &input);
            prop_assert_eq!(&whole, &bytewise);
            for f in &whole.frames {
                prop_assert!(f.len() + 2 <= max);
            }
        }

        #[test]
        fn any_chunking_matches_the_reference(input in wire_bytes(), max in 2usize..40,
                                              chunks in proptest::collection::vec(1usize..50, 1..8)) {
            let mut d = CobsDecoder::new(max).unwrap().oversize(Oversize::Skip);
            let out = decode_chunked(&mut d, &input, &chunks);
            prop_assert_eq!(out, reference_stream(&input, max));
        }

        #[test]
        fn the_walk_answers_as_the_search_alone(
                parts in proptest::collection::vec(prop_oneof![
                    3 => payload().prop_map(|p| encode(&p)),
                    // A frame cut short, or with a byte changed.
                    1 => (payload(), any::<proptest::sample::Index>())
                        .prop_map(|(p, i)| { let w = encode(&p); w[..i.index(w.len())].to_vec() }),
                    1 => (payload(), any::<proptest::sample::Index>(), prop_oneof![Just(0u8), any::<u8>()])
                        .prop_map(|(p, i, b)| { let mut w = encode(&p); let n = w.len(); w[i.index(n)] = b; w }),
                    2 => wire_bytes(),
                ], 0..6),
                slack in 0usize..4, below in any::<bool>(), skip in any::<bool>(),
                chunks in proptest::collection::vec(1usize..400, 1..6)) {
            let input = parts.concat();
            // The maximum near some frame's length: just above or below it.
            let first = input.iter().position(|&b| b == 0).unwrap_or(input.len()) + 1;
            let max = if below { first.saturating_sub(slack) } else { first + slack }.max(2);
            let policy = if skip { Oversize::Skip } else { Oversize::Close };
            let mut walking = CobsDecoder::new(max).unwrap().oversize(policy);
            let mut searching = walking;
            // The same buffer for both, fed in chunks; every answer, every
            // rewrite and every state the same.
            let (mut a, mut b): (Vec<u8>, Vec<u8>) = (Vec::new(), Vec::new());
            let mut fed = 0;
            for &step in chunks.iter().cycle() {
                if fed >= input.len() {
                    break;
                }
                let end = (fed + step).min(input.len());
                a.extend_from_slice(&input[fed..end]);
                b.extend_from_slice(&input[fed..end]);
                fed = end;
                loop {
                    let got = walking.decode(&mut a);
                    let want = searching.decode_searching(&mut b);
                    prop_assert_eq!(&got, &want);
                    prop_assert_eq!(&a, &b);
                    prop_assert_eq!(walking, searching);
                    let drop = match got {
                        Ok(Decoded::Frame(f)) => f.consumed,
                        Ok(Decoded::Skip(n)) => n,
                        Ok(Decoded::NeedMore { .. }) => break,
                        Err(e) if e.can_continue => e.consumed,
                        Err(_) => return Ok(()),
                    };
                    a.drain(..drop);
                    b.drain(..drop);
                }
            }
        }

        #[test]
        fn has_zero_finds_any_zero(data in proptest::collection::vec(
                prop_oneof![30 => 1u8..=255, 1 => Just(0u8)], 0..300)) {
            prop_assert_eq!(has_zero(&data), data.contains(&0));
            for len in 0..data.len().min(70) {
                prop_assert_eq!(has_zero(&data[..len]), data[..len].contains(&0));
            }
        }

        #[test]
        fn never_panics_on_any_bytes(input in proptest::collection::vec(any::<u8>(), 0..600),
                                     max in 2usize..700,
                                     chunks in proptest::collection::vec(1usize..100, 1..4)) {
            let mut d = CobsDecoder::new(max).unwrap().oversize(Oversize::Skip);
            let out = decode_chunked(&mut d, &input, &chunks);
            prop_assert_eq!(out, reference_stream(&input, max));
            let mut d = CobsDecoder::new(max).unwrap();
            let _ = decode_chunked(&mut d, &input, &chunks);
        }
    }
}
