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
    pub fn push(&mut self, bytes: &[u8]) -> Result<(), Error> {
        if bytes.len() > self.free() {
            return Err(Error::BufferTooSmall {
                needed: bytes.len(),
                capacity: self.free(),
            });
        }
        let cap = self.capacity();
        // `head < cap` and `len <= cap`, so one subtraction wraps the tail
        // (no division on the reply path).
        let mut tail = self.head + self.len;
        if tail >= cap {
            tail -= cap;
        }
        let first = bytes.len().min(cap - tail);
        let buf = self.storage.as_mut();
        buf[tail..tail + first].copy_from_slice(&bytes[..first]);
        if first < bytes.len() {
            buf[..bytes.len() - first].copy_from_slice(&bytes[first..]);
        }
        self.len += bytes.len();
        Ok(())
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

    /// Drops the newest bytes so that `len` remain (nothing if fewer are
    /// waiting): takes back a push.
    pub(crate) fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
        if self.len == 0 {
            self.head = 0;
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
    }
}
