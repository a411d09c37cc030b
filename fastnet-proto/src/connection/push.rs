//! Server push: frames queued for a connection from outside its driver
//! loop (other threads or tasks), bounded in bytes, moved into the
//! connection's transmit ring by [`Connection::handle_pushes`].
//!
//! A push is a command on the state machine like a reply: it leaves through
//! the same transmit ring, so it counts in `frames_out` and the byte
//! counters, its write keeps the idle timer honest, and it waits for room
//! below the high-water mark like replies do. What a driver shares with the
//! pushing threads is only the [`PushQueue`] (behind its own lock); the
//! connection itself stays the driver's alone.
//!
//! [`Connection::handle_pushes`]: super::Connection::handle_pushes

use core::fmt;

use crate::Error;

/// Why a push was not queued.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SendError {
    /// The push queue holds `queued` bytes and the frame would take it past
    /// its `limit`: the peer (or the connection) is not keeping up. Nothing
    /// was queued; a later push may fit.
    Full {
        /// Bytes queued (encoded frames and their record headers).
        queued: usize,
        /// The queue's limit in bytes.
        limit: usize,
    },
    /// The connection is closing or closed: it takes no more pushes.
    Closed,
    /// The encoder refused the payload, or the encoded frame can never fit
    /// the queue or the connection's transmit buffer
    /// ([`Error::BufferTooSmall`] naming both sizes).
    Encode(Error),
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::Full { queued, limit } => write!(
                f,
                "push queue full: {queued} of {limit} bytes queued, the peer is not reading fast enough"
            ),
            SendError::Closed => f.write_str("connection closed: it takes no more pushes"),
            SendError::Encode(e) => write!(f, "cannot push the frame: {e}"),
        }
    }
}

impl core::error::Error for SendError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            SendError::Encode(e) => Some(e),
            _ => None,
        }
    }
}

/// Bytes of the header in front of each queued frame: its encoded length.
#[cfg(feature = "alloc")]
const HEADER: usize = 4;

/// Encoded frames pushed to one connection, waiting for room in its
/// transmit ring; bounded in bytes, not frames, so a slow peer costs at
/// most `limit` bytes whatever the frame sizes.
///
/// Frames are encoded when pushed (so an encoder error reaches the pusher
/// at once) and kept whole, so [`Connection::handle_pushes`] never splits
/// one between pushes and replies. Storage grows with use up to the limit
/// and is kept for reuse; [`shrink`](Self::shrink) gives it back while the
/// queue is empty (an idle connection holds none).
///
/// [`Connection::handle_pushes`]: super::Connection::handle_pushes
///
/// ```
/// use fastnet_proto::codec::DelimiterEncoder;
/// use fastnet_proto::connection::{PushQueue, SendError};
///
/// let enc = DelimiterEncoder::lines(64).unwrap();
/// let mut q = PushQueue::new(16, 64);
/// q.push(&enc, b"hello").unwrap(); // 6 bytes encoded + 4 of header
/// assert_eq!(q.push(&enc, b"world"), Err(SendError::Full { queued: 10, limit: 16 }));
/// assert_eq!(q.frames(), 1);
/// assert_eq!(q.close(), 1); // not delivered: counted
/// assert_eq!(q.push(&enc, b"late"), Err(SendError::Closed));
/// assert_eq!(q.dropped(), 1);
/// ```
#[cfg(feature = "alloc")]
#[derive(Debug, Default)]
pub struct PushQueue {
    /// `[u32 LE encoded length][encoded frame]` records, oldest first.
    records: alloc::collections::VecDeque<u8>,
    // u32 fields: this sits in every connection's shared record, idle or
    // not; a queue of 4 GiB is beyond any sensible limit.
    frames: u32,
    limit: u32,
    max_frame: u32,
    closed: bool,
    dropped: u64,
}

#[cfg(feature = "alloc")]
impl PushQueue {
    /// An empty queue holding at most `limit` bytes (frames plus a 4-byte
    /// header each), taking no encoded frame longer than `max_frame` (the
    /// transmit buffer's capacity: a longer one could never be sent).
    /// Allocates nothing until the first push. Sizes past `u32::MAX` count
    /// as `u32::MAX`.
    pub fn new(limit: usize, max_frame: usize) -> Self {
        PushQueue {
            records: alloc::collections::VecDeque::new(),
            frames: 0,
            limit: u32::try_from(limit).unwrap_or(u32::MAX),
            max_frame: u32::try_from(max_frame).unwrap_or(u32::MAX),
            closed: false,
            dropped: 0,
        }
    }

    /// Encodes `payload` with `encoder` and queues it, or says why not;
    /// never blocks and never queues part of a frame.
    pub fn push<E: crate::codec::Encoder>(
        &mut self,
        encoder: &E,
        payload: &[u8],
    ) -> Result<(), SendError> {
        if self.closed {
            return Err(SendError::Closed);
        }
        let before = self.records.len();
        let limit = self.limit as usize;
        let max_frame = self.max_frame as usize;
        let room = limit.saturating_sub(before);
        let mut fits = room >= HEADER;
        if fits {
            self.records.extend([0u8; HEADER]);
        }
        let records = &mut self.records;
        // Written optimistically, as replies are: one validation, and a
        // frame that does not fit is taken back.
        let encoded = encoder.encode_with(payload, |piece| {
            fits = fits && records.len() + piece.len() <= limit;
            if fits {
                records.extend(piece);
            }
        });
        let len = match encoded {
            Ok(len) => len,
            Err(e) => {
                self.records.truncate(before);
                return Err(SendError::Encode(e));
            }
        };
        let header = u32::try_from(len).ok().filter(|_| len <= max_frame);
        let never = len.saturating_add(HEADER) > limit;
        let (Some(header), true, false) = (header, fits, never) else {
            self.records.truncate(before);
            return Err(if header.is_none() {
                SendError::Encode(Error::BufferTooSmall {
                    needed: len,
                    capacity: max_frame,
                })
            } else if never {
                SendError::Encode(Error::BufferTooSmall {
                    needed: len + HEADER,
                    capacity: limit,
                })
            } else {
                SendError::Full {
                    queued: before,
                    limit,
                }
            });
        };
        for (i, b) in header.to_le_bytes().into_iter().enumerate() {
            self.records[before + i] = b;
        }
        self.frames += 1;
        Ok(())
    }

    /// Frames queued.
    pub fn frames(&self) -> usize {
        self.frames as usize
    }

    /// Bytes queued: encoded frames and their headers.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether no frame is queued.
    pub fn is_empty(&self) -> bool {
        self.frames == 0
    }

    /// The limit in bytes.
    pub fn limit(&self) -> usize {
        self.limit as usize
    }

    /// Whether the queue takes no more pushes.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Frames that were queued and never reached the connection because it
    /// closed first.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Takes no more pushes; frames already queued still go out (a graceful
    /// close).
    pub fn seal(&mut self) {
        self.closed = true;
    }

    /// Takes no more pushes; frames still queued are dropped and counted
    /// (see [`dropped`](Self::dropped)). Returns how many were dropped now.
    pub fn close(&mut self) -> usize {
        self.closed = true;
        let n = self.frames as usize;
        self.dropped += n as u64;
        self.frames = 0;
        self.records.clear();
        n
    }

    /// Frees the storage if nothing is queued (for idle connections).
    pub fn shrink(&mut self) {
        if self.records.is_empty() && self.records.capacity() > 0 {
            self.records = alloc::collections::VecDeque::new();
        }
    }

    /// The encoded length of the oldest frame.
    pub(crate) fn front_len(&self) -> Option<usize> {
        let mut header = [0u8; HEADER];
        for (i, b) in header.iter_mut().enumerate() {
            *b = *self.records.get(i)?;
        }
        Some(u32::from_le_bytes(header) as usize)
    }

    /// Removes the oldest frame, handing its bytes to `put` in one or two
    /// pieces.
    pub(crate) fn pop_front_with(&mut self, mut put: impl FnMut(&[u8])) {
        let Some(len) = self.front_len() else {
            return;
        };
        self.records.drain(..HEADER);
        let (a, b) = self.records.as_slices();
        let a_len = a.len().min(len);
        put(&a[..a_len]);
        if a_len < len {
            put(&b[..len - a_len]);
        }
        self.records.drain(..len);
        self.frames -= 1;
    }
}

#[cfg(all(test, feature = "alloc"))]
mod tests {
    use super::*;
    use crate::codec::{CodecSpec, Encoder, LengthFieldConfig};
    use proptest::prelude::*;

    fn drain(q: &mut PushQueue) -> std::vec::Vec<u8> {
        let mut out = std::vec::Vec::new();
        while !q.is_empty() {
            q.pop_front_with(|p| out.extend_from_slice(p));
        }
        out
    }

    #[test]
    fn bounded_in_bytes_whatever_the_frame_count() {
        let enc = CodecSpec::lines(1024).encoder().unwrap();
        let mut q = PushQueue::new(100, 1024);
        // 9 one-byte lines: 2 + 4 bytes each = 54; a 10th of 45 bytes does not fit.
        for _ in 0..9 {
            q.push(&enc, b"x").unwrap();
        }
        let big = [b'y'; 44];
        assert_eq!(
            q.push(&enc, &big),
            Err(SendError::Full {
                queued: 54,
                limit: 100
            })
        );
        assert_eq!((q.frames(), q.len()), (9, 54), "nothing half-queued");
        assert_eq!(drain(&mut q), b"x\nx\nx\nx\nx\nx\nx\nx\nx\n");
        q.push(&enc, &big).unwrap();
    }

    #[test]
    fn frames_that_can_never_fit_are_encode_errors_not_full() {
        let enc = CodecSpec::lines(1024).encoder().unwrap();
        let mut q = PushQueue::new(20, 1024);
        assert_eq!(
            q.push(&enc, &[b'a'; 30]),
            Err(SendError::Encode(Error::BufferTooSmall {
                needed: 35,
                capacity: 20
            }))
        );
        let mut q = PushQueue::new(1000, 8);
        assert_eq!(
            q.push(&enc, &[b'a'; 30]),
            Err(SendError::Encode(Error::BufferTooSmall {
                needed: 31,
                capacity: 8
            }))
        );
        // The encoder's own refusal passes through.
        assert!(matches!(
            q.push(&enc, b"a\nb"),
            Err(SendError::Encode(Error::PayloadContainsDelimiter { .. }))
        ));
        assert_eq!(q.len(), 0);
    }

    #[test]
    fn closing_counts_what_was_not_delivered() {
        let enc = CodecSpec::lines(64).encoder().unwrap();
        let mut q = PushQueue::new(1000, 64);
        q.push(&enc, b"a").unwrap();
        q.push(&enc, b"b").unwrap();
        q.pop_front_with(|_| {});
        assert_eq!(q.close(), 1);
        assert_eq!(q.close(), 0);
        assert_eq!(q.dropped(), 1);
        assert_eq!(q.push(&enc, b"c"), Err(SendError::Closed));
        q.shrink();
        assert_eq!(q.records.capacity(), 0);
    }

    proptest! {
        /// Whatever is accepted comes out whole, in order, encoded exactly
        /// as the encoder encodes it, and the queue never holds more than
        /// its limit.
        #[test]
        fn accepted_frames_come_out_whole_and_in_order(
            payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..40),
            limit in 0usize..2000,
            pops in proptest::collection::vec(any::<bool>(), 40),
        ) {
            let mut cfg = LengthFieldConfig::new(2, crate::codec::Endian::Big);
            cfg.max_frame = 250;
            let enc = CodecSpec::LengthField(cfg).encoder().unwrap();
            let mut q = PushQueue::new(limit, 200);
            let mut expected = std::vec::Vec::new();
            let mut out = std::vec::Vec::new();
            for (p, pop) in payloads.iter().zip(pops) {
                let before = q.len();
                match q.push(&enc, p) {
                    Ok(()) => expected.extend(enc.encode_vec_for_test(p)),
                    Err(_) => prop_assert_eq!(q.len(), before),
                }
                prop_assert!(q.len() <= limit);
                if pop {
                    q.pop_front_with(|piece| out.extend_from_slice(piece));
                }
            }
            out.extend(drain(&mut q));
            prop_assert_eq!(out, expected);
        }
    }

    trait EncodeVec {
        fn encode_vec_for_test(&self, p: &[u8]) -> std::vec::Vec<u8>;
    }
    impl<E: Encoder> EncodeVec for E {
        fn encode_vec_for_test(&self, p: &[u8]) -> std::vec::Vec<u8> {
            let mut v = std::vec::Vec::new();
            self.encode_with(p, |piece| v.extend_from_slice(piece))
                .unwrap();
            v
        }
    }
}
