//! A fixed-capacity byte buffer over caller-owned storage.

use crate::Error;

/// A linear byte buffer over storage the caller owns: `[u8; N]`,
/// `&mut [u8]`, or (with `alloc`) a `Vec<u8>` / `Box<[u8]>`.
///
/// Bytes are appended at the back (read from a socket into
/// [`spare_mut`](Buffer::spare_mut), then [`commit`](Buffer::commit)) and
/// taken from the front ([`filled`](Buffer::filled), then
/// [`consume`](Buffer::consume)). It never grows: when the back runs out of
/// room, [`compact`](Buffer::compact) moves the unconsumed bytes to the
/// front, and [`reserve`](Buffer::reserve) says clearly when a frame cannot
/// fit at all.
///
/// ```
/// use fastnet_proto::Buffer;
///
/// let mut buf = Buffer::new([0u8; 8]);
/// buf.spare_mut()[..5].copy_from_slice(b"hello");
/// buf.commit(5);
/// assert_eq!(buf.filled(), b"hello");
/// buf.consume(2);
/// assert_eq!(buf.filled(), b"llo");
/// buf.compact();
/// assert_eq!(buf.spare_mut().len(), 5);
/// ```
#[derive(Clone, Debug)]
pub struct Buffer<S> {
    storage: S,
    start: usize,
    end: usize,
}

impl<S: AsRef<[u8]> + AsMut<[u8]>> Buffer<S> {
    /// An empty buffer over `storage`; its capacity is the storage's length.
    pub fn new(storage: S) -> Self {
        Buffer {
            storage,
            start: 0,
            end: 0,
        }
    }

    /// Total capacity in bytes.
    pub fn capacity(&self) -> usize {
        self.storage.as_ref().len()
    }

    /// Bytes committed and not yet consumed.
    pub fn len(&self) -> usize {
        self.end - self.start
    }

    /// Whether no bytes are waiting.
    pub fn is_empty(&self) -> bool {
        self.end == self.start
    }

    /// Bytes that can still be committed without compacting.
    pub fn spare_len(&self) -> usize {
        self.capacity() - self.end
    }

    /// Bytes that can be committed after a compaction.
    pub fn free(&self) -> usize {
        self.capacity() - self.len()
    }

    /// The committed, unconsumed bytes.
    pub fn filled(&self) -> &[u8] {
        &self.storage.as_ref()[self.start..self.end]
    }

    /// The committed, unconsumed bytes, mutably (decoders that rewrite a
    /// frame in place need this).
    pub fn filled_mut(&mut self) -> &mut [u8] {
        &mut self.storage.as_mut()[self.start..self.end]
    }

    /// The free space after the committed bytes: read into it, then
    /// [`commit`](Self::commit).
    pub fn spare_mut(&mut self) -> &mut [u8] {
        let end = self.end;
        &mut self.storage.as_mut()[end..]
    }

    /// Marks `n` bytes at the front of [`spare_mut`](Self::spare_mut) as
    /// filled.
    ///
    /// # Panics
    ///
    /// If `n` is larger than the spare space: that is a bug in the caller
    /// (it claims to have written past the slice it was given), never a
    /// property of the data.
    pub fn commit(&mut self, n: usize) {
        assert!(
            n <= self.spare_len(),
            "commit of {n} bytes with only {} spare",
            self.spare_len()
        );
        self.end += n;
    }

    /// Drops `n` bytes from the front (at most [`len`](Self::len)). When the
    /// buffer becomes empty both cursors return to the start, so a buffer
    /// that is drained as fast as it fills never needs a compaction.
    pub fn consume(&mut self, n: usize) {
        self.start += n.min(self.len());
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Keeps only the first `len` unconsumed bytes, dropping bytes from the
    /// back (no effect if `len >= self.len()`).
    pub fn truncate(&mut self, len: usize) {
        if len < self.len() {
            self.end = self.start + len;
        }
    }

    /// Drops everything.
    pub fn clear(&mut self) {
        self.start = 0;
        self.end = 0;
    }

    /// Moves the unconsumed bytes to the front of the storage so all free
    /// space is spare space.
    pub fn compact(&mut self) {
        if self.start > 0 {
            let (start, end) = (self.start, self.end);
            self.storage.as_mut().copy_within(start..end, 0);
            self.end -= start;
            self.start = 0;
        }
    }

    /// Makes sure at least `n` bytes of spare space follow the filled
    /// bytes, compacting if needed, and returns that space.
    ///
    /// Fails with [`Error::FrameExceedsBuffer`] if the buffer cannot hold
    /// `len() + n` bytes at all.
    pub fn reserve(&mut self, n: usize) -> Result<&mut [u8], Error> {
        if n > self.free() {
            return Err(Error::FrameExceedsBuffer {
                needed: self.len() + n,
                capacity: self.capacity(),
            });
        }
        if n > self.spare_len() {
            self.compact();
        }
        Ok(self.spare_mut())
    }

    /// Appends `bytes`, compacting if needed.
    pub fn extend_from_slice(&mut self, bytes: &[u8]) -> Result<(), Error> {
        self.reserve(bytes.len())?[..bytes.len()].copy_from_slice(bytes);
        self.end += bytes.len();
        Ok(())
    }

    /// Gives the storage back.
    pub fn into_inner(self) -> S {
        self.storage
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_consume_compact() {
        let mut b = Buffer::new([0u8; 4]);
        assert_eq!(b.capacity(), 4);
        b.extend_from_slice(b"abc").unwrap();
        b.consume(2);
        assert_eq!(b.filled(), b"c");
        assert_eq!(b.spare_len(), 1);
        assert_eq!(b.free(), 3);
        b.extend_from_slice(b"def").unwrap();
        assert_eq!(b.filled(), b"cdef");
        assert_eq!(b.spare_len(), 0);
    }

    #[test]
    fn frame_larger_than_buffer_is_an_error() {
        let mut b = Buffer::new([0u8; 4]);
        b.extend_from_slice(b"ab").unwrap();
        assert_eq!(
            b.reserve(3).unwrap_err(),
            Error::FrameExceedsBuffer {
                needed: 5,
                capacity: 4
            }
        );
        assert_eq!(
            b.extend_from_slice(b"xyz"),
            Err(Error::FrameExceedsBuffer {
                needed: 5,
                capacity: 4
            })
        );
        assert_eq!(b.filled(), b"ab", "a failed append leaves the bytes alone");
    }

    #[test]
    fn consume_more_than_len_saturates_and_resets() {
        let mut b = Buffer::new([0u8; 4]);
        b.extend_from_slice(b"ab").unwrap();
        b.consume(10);
        assert!(b.is_empty());
        assert_eq!(b.spare_len(), 4);
    }

    #[test]
    fn works_over_a_borrowed_slice() {
        let mut storage = [0u8; 3];
        let mut b = Buffer::new(&mut storage[..]);
        b.spare_mut()[0] = 7;
        b.commit(1);
        assert_eq!(b.filled(), &[7]);
    }

    #[test]
    #[should_panic(expected = "commit of 5 bytes")]
    fn commit_past_spare_panics() {
        Buffer::new([0u8; 4]).commit(5);
    }
}
