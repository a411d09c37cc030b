//! A fixed-capacity ring buffer over caller-owned storage.

use crate::Error;

/// A byte ring over storage the caller owns: bytes are pushed at the back
/// and taken from the front without ever being moved, so a slow reader
/// costs no compaction. The filled bytes are one or two slices
/// ([`as_slices`](Ring::as_slices)), ready for one vectored write.
///
/// ```
/// use fastnet_proto::Ring;
///
/// let mut ring = Ring::new([0u8; 4]);
/// ring.push(b"abc").unwrap();
/// ring.consume(2);
/// ring.push(b"def").unwrap(); // wraps around
/// assert_eq!(ring.as_slices(), (&b"cd"[..], &b"ef"[..]));
/// assert!(ring.push(b"g").is_err(), "full");
/// ```
#[derive(Clone, Debug)]
pub struct Ring<S> {
    storage: S,
    head: usize,
    len: usize,
}

impl<S: AsRef<[u8]> + AsMut<[u8]>> Ring<S> {
    /// An empty ring over `storage`; its capacity is the storage's length.
    pub fn new(storage: S) -> Self {
        Ring {
            storage,
            head: 0,
            len: 0,
        }
    }

    /// Total capacity in bytes.
    pub fn capacity(&self) -> usize {
        self.storage.as_ref().len()
    }

    /// Bytes waiting.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no bytes are waiting.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes that can still be pushed.
    pub fn free(&self) -> usize {
        self.capacity() - self.len
    }

    /// The waiting bytes, oldest first, as two slices (the second is empty
    /// unless the bytes wrap around the end of the storage).
    pub fn as_slices(&self) -> (&[u8], &[u8]) {
        let buf = self.storage.as_ref();
        let first_len = self.len.min(buf.len() - self.head);
        let first = &buf[self.head..self.head + first_len];
        let second = &buf[..self.len - first_len];
        (first, second)
    }

    /// Appends all of `bytes`, or nothing if they do not fit.
    #[inline]
    pub fn push(&mut self, bytes: &[u8]) -> Result<(), Error> {
        let mut append = self.appender();
        append.put(bytes);
        match append.commit() {
            true => Ok(()),
            false => Err(Error::BufferTooSmall {
                needed: bytes.len(),
                capacity: self.free(),
            }),
        }
    }

    /// Drops `n` bytes from the front (at most [`len`](Self::len)). When the
    /// ring empties, it rewinds to the start so the next bytes are one slice.
    pub fn consume(&mut self, n: usize) {
        let n = n.min(self.len);
        self.len -= n;
        self.head = if self.len == 0 {
            0
        } else {
            let head = self.head + n;
            if head >= self.capacity() {
                head - self.capacity()
            } else {
                head
            }
        };
    }

    /// Appends several pieces as one: what [`Appender::put`] hands it lands
    /// only when [`Appender::commit`] finds that every piece fit. One
    /// reservation for a reply's header, payload and trailer, instead of
    /// a check and a rewind per piece.
    #[inline]
    pub(crate) fn appender(&mut self) -> Appender<'_> {
        let cap = self.capacity();
        // `head < cap` and `len <= cap`, so one subtraction wraps the tail
        // (no division on the reply path).
        let mut tail = self.head + self.len;
        if tail >= cap {
            tail -= cap;
        }
        Appender {
            room: cap - self.len,
            buf: self.storage.as_mut(),
            len: &mut self.len,
            tail,
            written: 0,
            fits: true,
        }
    }

    /// Drops everything.
    pub fn clear(&mut self) {
        self.head = 0;
        self.len = 0;
    }

    /// Gives the storage back.
    pub fn into_inner(self) -> S {
        self.storage
    }
}

/// Pieces appended to a [`Ring`] as one; see [`Ring::appender`].
pub(crate) struct Appender<'a> {
    buf: &'a mut [u8],
    /// The ring's length, raised by [`commit`](Self::commit).
    len: &'a mut usize,
    /// Where the next piece goes.
    tail: usize,
    /// Free bytes after what was put.
    room: usize,
    written: usize,
    fits: bool,
}

impl Appender<'_> {
    /// Writes `bytes` after the pieces before them, if they fit.
    #[inline]
    pub(crate) fn put(&mut self, bytes: &[u8]) {
        if !self.fits || bytes.len() > self.room {
            self.fits = false;
            return;
        }
        match self.buf.get_mut(self.tail..self.tail + bytes.len()) {
            Some(dst) => copy_bytes(dst, bytes),
            None => push_wrapped(self.buf, self.tail, bytes),
        }
        self.room -= bytes.len();
        self.written += bytes.len();
        self.tail += bytes.len();
        if self.tail >= self.buf.len() {
            self.tail -= self.buf.len();
        }
    }

    /// Makes the pieces part of the ring if all of them fit; otherwise
    /// the ring is as before. Returns whether they fit.
    #[inline]
    pub(crate) fn commit(self) -> bool {
        if self.fits {
            *self.len += self.written;
        }
        self.fits
    }
}

/// Copies `src` into `dst` (of the same length). A frame's header or
/// trailer is a few bytes: copied with two overlapping moves rather than a
/// `memcpy` call, which costs more than the copy at that size.
#[inline(always)]
fn copy_bytes(dst: &mut [u8], src: &[u8]) {
    let n = src.len();
    // Always equal (the caller cuts `dst` to `src`'s length); checked so
    // the compiler can drop the bounds checks below.
    if n != dst.len() {
        return;
    }
    if (4..=8).contains(&n) {
        dst[..4].copy_from_slice(&src[..4]);
        dst[n - 4..].copy_from_slice(&src[n - 4..]);
    } else if (1..4).contains(&n) {
        dst[0] = src[0];
        dst[n / 2] = src[n / 2];
        dst[n - 1] = src[n - 1];
    } else {
        dst.copy_from_slice(src);
    }
}

/// The rare push that wraps around the end of the storage, out of line so
/// the common one stays small enough to inline.
#[cold]
#[inline(never)]
fn push_wrapped(buf: &mut [u8], tail: usize, bytes: &[u8]) {
    let first = bytes.len().min(buf.len().saturating_sub(tail));
    let (head_part, tail_part) = bytes.split_at(first);
    if let Some(dst) = buf.get_mut(tail..tail + first) {
        dst.copy_from_slice(head_part);
    }
    if let Some(dst) = buf.get_mut(..tail_part.len()) {
        dst.copy_from_slice(tail_part);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::VecDeque;
    use std::vec::Vec;

    #[test]
    fn full_ring_refuses_without_writing() {
        let mut r = Ring::new([0u8; 3]);
        r.push(b"ab").unwrap();
        assert_eq!(
            r.push(b"cd"),
            Err(Error::BufferTooSmall {
                needed: 2,
                capacity: 1
            })
        );
        assert_eq!(r.as_slices(), (&b"ab"[..], &b""[..]));
    }

    #[test]
    fn zero_capacity_ring() {
        let mut r = Ring::new([0u8; 0]);
        assert!(r.push(b"").is_ok());
        assert!(r.push(b"a").is_err());
        assert_eq!(r.as_slices(), (&b""[..], &b""[..]));
    }

    #[test]
    fn short_and_long_copies_write_exactly_their_bytes() {
        // Every length through the short paths (1..=3, 4..=8) and past them,
        // at every offset around the wrap of a 24-byte ring. One byte stays
        // queued ahead of the push, so the ring does not rewind.
        let src: Vec<u8> = (1..=23).collect();
        // Under Miri, the offsets at and around the wrap only.
        let starts: Vec<usize> = match cfg!(miri) {
            true => std::vec![0, 1, 15, 16, 20, 22, 23],
            false => (0..24).collect(),
        };
        for n in 0..=src.len() {
            for &start in &starts {
                let mut r = Ring::new([0u8; 24]);
                r.push(&[0xEE; 24][..=start]).unwrap();
                r.consume(start);
                r.push(&src[..n]).unwrap();
                let (a, b) = r.as_slices();
                let got: Vec<u8> = a.iter().chain(b).copied().collect();
                assert_eq!(got[0], 0xEE);
                assert_eq!(&got[1..], &src[..n], "{n} bytes after {start}");
                // Nothing beyond the pushed bytes was touched.
                let storage = r.into_inner();
                let written: Vec<usize> = (1..=n).map(|i| (start + i) % 24).collect();
                for (i, &byte) in storage.iter().enumerate() {
                    if !written.contains(&i) {
                        let was = if i <= start { 0xEE } else { 0 };
                        assert_eq!(byte, was, "byte {i} changed ({n} after {start})");
                    }
                }
            }
        }
    }

    proptest! {
        #[test]
        fn behaves_like_a_deque(ops in proptest::collection::vec((any::<bool>(), 0usize..9), 0..100),
                                cap in 1usize..16) {
            let mut r = Ring::new(std::vec![0u8; cap]);
            let mut model = VecDeque::new();
            let mut next = 0u8;
            for (push, n) in ops {
                if push {
                    let bytes: Vec<u8> = (0..n).map(|_| { next = next.wrapping_add(1); next }).collect();
                    let ok = r.push(&bytes).is_ok();
                    prop_assert_eq!(ok, model.len() + n <= cap);
                    if ok { model.extend(bytes); }
                } else {
                    r.consume(n);
                    for _ in 0..n.min(model.len()) { model.pop_front(); }
                }
                let (a, b) = r.as_slices();
                let got: Vec<u8> = a.iter().chain(b).copied().collect();
                prop_assert_eq!(got, model.iter().copied().collect::<Vec<u8>>());
                prop_assert_eq!(r.free(), cap - model.len());
            }
        }

        /// Pieces appended together land together or not at all, wherever
        /// the tail is: in the run after it, across the end of the
        /// storage, or past a piece that did not fit.
        #[test]
        fn pieces_land_all_or_none(
            ops in proptest::collection::vec(
                (any::<bool>(), proptest::collection::vec(0usize..9, 0..4)), 0..100),
            cap in 1usize..16,
        ) {
            let mut r = Ring::new(std::vec![0u8; cap]);
            let mut model = VecDeque::new();
            let mut next = 0u8;
            for (append, sizes) in ops {
                if append {
                    let pieces: Vec<Vec<u8>> = sizes
                        .iter()
                        .map(|&n| (0..n).map(|_| { next = next.wrapping_add(1); next }).collect())
                        .collect();
                    let total: usize = sizes.iter().sum();
                    let mut a = r.appender();
                    for piece in &pieces {
                        a.put(piece);
                    }
                    let ok = a.commit();
                    prop_assert_eq!(ok, model.len() + total <= cap);
                    if ok {
                        model.extend(pieces.concat());
                    }
                } else {
                    let n = sizes.first().copied().unwrap_or(0);
                    r.consume(n);
                    for _ in 0..n.min(model.len()) { model.pop_front(); }
                }
                let (a, b) = r.as_slices();
                let got: Vec<u8> = a.iter().chain(b).copied().collect();
                prop_assert_eq!(got, model.iter().copied().collect::<Vec<u8>>());
            }
        }
    }
}
