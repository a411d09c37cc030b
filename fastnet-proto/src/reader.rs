//! [`FrameReader`]: the receive half of a framed stream, for clients.

use core::fmt;

use crate::codec::{Decoded, Decoder, Frame};
use crate::{Buffer, Error};

/// What [`FrameReader::poll_frame`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next<'a> {
    /// A complete frame's payload, borrowed from the reader's buffer until
    /// the next [`poll_frame`](FrameReader::poll_frame).
    Frame(&'a [u8]),
    /// No complete frame yet: read into [`read_buf`](FrameReader::read_buf)
    /// and report [`handle_read`](FrameReader::handle_read) (or
    /// [`handle_eof`](FrameReader::handle_eof)), then poll again.
    NeedMore,
    /// The stream ended cleanly, between two frames: no frame follows.
    End,
}

/// Why a [`FrameReader`] stopped; once returned, every later poll returns
/// it again (the stream cannot be resynchronised).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReadError {
    /// The decoder rejected the stream: malformed bytes, or a frame over
    /// the maximum under [`Oversize::Close`](crate::codec::Oversize::Close).
    Decode(Error),
    /// The stream ended inside a frame, `unfinished` bytes into it.
    Truncated {
        /// Bytes of the cut-off frame that had arrived.
        unfinished: usize,
    },
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::Decode(e) => write!(f, "bad frame: {e}"),
            ReadError::Truncated { unfinished } => write!(
                f,
                "the stream ended inside a frame, with {unfinished} bytes of it unfinished"
            ),
        }
    }
}

impl core::error::Error for ReadError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            ReadError::Decode(e) => Some(e),
            ReadError::Truncated { .. } => None,
        }
    }
}

/// A decoder and an rx [`Buffer`] over caller storage: bytes in, frames
/// out, one at a time. It is the receive side of a [`Connection`](crate::Connection)
/// without replies, timers or backpressure, which is what a client needs:
/// it asks for a frame and waits for it.
///
/// Every framing decision is taken here: [`Decoded::Skip`], an oversized
/// frame under [`Oversize::Skip`](crate::codec::Oversize::Skip) (stepped
/// over and counted), other recoverable errors (fatal unless
/// [`skip_malformed`](Self::skip_malformed)), an end of stream inside a
/// frame ([`ReadError::Truncated`]).
///
/// # Method families
///
/// - getters: [`frame`](Self::frame), [`is_idle`](Self::is_idle),
///   [`buffered`](Self::buffered), [`frames_skipped`](Self::frames_skipped),
///   [`last_skipped`](Self::last_skipped), [`decoder`](Self::decoder)
/// - inputs, `handle_*`: [`handle_read`](Self::handle_read) (after reading
///   into [`read_buf`](Self::read_buf)), [`handle_bytes`](Self::handle_bytes),
///   [`handle_eof`](Self::handle_eof)
/// - output, `poll_*`: [`poll_frame`](Self::poll_frame); the frame it
///   returned is consumed by the next call
///
/// ```
/// use fastnet_proto::codec::DelimiterDecoder;
/// use fastnet_proto::reader::{FrameReader, Next, ReadError};
///
/// let dec = DelimiterDecoder::lines(16).unwrap();
/// let mut reader = FrameReader::new(dec, [0u8; 16]).unwrap();
/// assert_eq!(reader.poll_frame(), Ok(Next::NeedMore));
///
/// // A driver reads the socket into `read_buf`; here the bytes are copied.
/// let buf = reader.read_buf();
/// buf[..9].copy_from_slice(b"one\ntwo\nt");
/// reader.handle_read(9);
/// assert_eq!(reader.poll_frame(), Ok(Next::Frame(b"one")));
/// assert_eq!(reader.poll_frame(), Ok(Next::Frame(b"two")));
/// assert_eq!(reader.poll_frame(), Ok(Next::NeedMore));
///
/// // The peer closes one byte into the third frame.
/// reader.handle_eof();
/// assert_eq!(reader.poll_frame(), Err(ReadError::Truncated { unfinished: 1 }));
/// ```
#[derive(Debug)]
pub struct FrameReader<D, R> {
    decoder: D,
    rx: Buffer<R>,
    /// The frame `poll_frame` returned last, consumed by the next call.
    returned: Option<Frame>,
    eof: bool,
    failed: Option<ReadError>,
    skip_malformed: bool,
    frames_skipped: u64,
    last_skipped: Option<Error>,
}

impl<D: Decoder, R: AsRef<[u8]> + AsMut<[u8]>> FrameReader<D, R> {
    /// A reader over `storage`; fails if it cannot hold a maximum-size
    /// frame, so a frame the decoder accepts always fits.
    pub fn new(decoder: D, storage: R) -> Result<Self, Error> {
        let rx = Buffer::new(storage);
        if rx.capacity() < decoder.max_frame() {
            return Err(Error::InvalidConfig {
                reason: "the rx buffer must hold at least one maximum-size frame",
            });
        }
        Ok(FrameReader {
            decoder,
            rx,
            returned: None,
            eof: false,
            failed: None,
            skip_malformed: false,
            frames_skipped: 0,
            last_skipped: None,
        })
    }

    /// Whether a malformed frame whose end is known is stepped over (and
    /// counted) instead of ending the stream. Oversized frames under
    /// [`Oversize::Skip`](crate::codec::Oversize::Skip) are always stepped
    /// over.
    pub fn skip_malformed(mut self, skip: bool) -> Self {
        self.skip_malformed = skip;
        self
    }

    /// Empties the reader for a new stream, keeping storage and settings.
    pub fn reset(&mut self) {
        self.decoder.reset();
        self.rx.clear();
        self.returned = None;
        self.eof = false;
        self.failed = None;
        self.frames_skipped = 0;
        self.last_skipped = None;
    }

    // ---- getters ----

    /// The payload [`poll_frame`](Self::poll_frame) returned last, until
    /// the next poll.
    pub fn frame(&self) -> Option<&[u8]> {
        self.returned.map(|f| f.payload(self.rx.filled()))
    }

    /// Bytes received and not yet consumed, the last returned frame
    /// included.
    pub fn buffered(&self) -> usize {
        self.rx.len()
    }

    /// Whether nothing is buffered beyond the frame returned last and the
    /// stream is still open and sound: the state in which a connection can
    /// be handed to another user.
    pub fn is_idle(&self) -> bool {
        let held = self.returned.map_or(0, |f| f.consumed);
        !self.eof && self.failed.is_none() && self.rx.len() == held
    }

    /// Frames stepped over: oversized under `Oversize::Skip`, or malformed
    /// with [`skip_malformed`](Self::skip_malformed).
    pub fn frames_skipped(&self) -> u64 {
        self.frames_skipped
    }

    /// The last decode error stepped over, for logging.
    pub fn last_skipped(&self) -> Option<Error> {
        self.last_skipped
    }

    /// The decoder.
    pub fn decoder(&self) -> &D {
        &self.decoder
    }

    // ---- inputs ----

    /// Where to read the next bytes into: all free space (compacting first,
    /// since moving one partial frame is cheaper than a second read). Empty
    /// once the stream has ended or failed.
    pub fn read_buf(&mut self) -> &mut [u8] {
        if self.eof || self.failed.is_some() {
            return &mut [];
        }
        self.release();
        if self.rx.spare_len() < self.rx.free() {
            self.rx.compact();
        }
        self.rx.spare_mut()
    }

    /// `n` bytes were read into [`read_buf`](Self::read_buf). `n == 0` is
    /// not the end of the stream; call [`handle_eof`](Self::handle_eof).
    ///
    /// # Panics
    ///
    /// If `n` is larger than the slice `read_buf` returned (a driver bug).
    pub fn handle_read(&mut self, n: usize) {
        self.rx.commit(n);
    }

    /// Copies in as many of `bytes` as fit, as if read; returns how many.
    /// For transports that hand out bytes, and for tests.
    pub fn handle_bytes(&mut self, bytes: &[u8]) -> usize {
        let buf = self.read_buf();
        let n = buf.len().min(bytes.len());
        buf[..n].copy_from_slice(&bytes[..n]);
        self.handle_read(n);
        n
    }

    /// The stream ended. Buffered frames are still returned; then
    /// [`Next::End`], or [`ReadError::Truncated`] if a frame was cut off.
    pub fn handle_eof(&mut self) {
        self.eof = true;
    }

    // ---- output ----

    /// The next frame, after consuming the one returned before.
    ///
    /// [`Next::NeedMore`] asks for input; [`Next::End`] and errors are
    /// final and repeated by every later call.
    pub fn poll_frame(&mut self) -> Result<Next<'_>, ReadError> {
        self.release();
        if let Some(e) = self.failed {
            return Err(e);
        }
        loop {
            match self.decoder.decode(self.rx.filled_mut()) {
                Ok(Decoded::Frame(frame)) => {
                    self.returned = Some(frame);
                    return Ok(Next::Frame(frame.payload(self.rx.filled())));
                }
                Ok(Decoded::Skip(n)) => self.rx.consume(n),
                Ok(Decoded::NeedMore { .. }) => break,
                Err(e) => {
                    let oversize = matches!(e.error, Error::FrameTooLarge { .. });
                    if !(e.can_continue && (oversize || self.skip_malformed)) {
                        return Err(self.fail(ReadError::Decode(e.error)));
                    }
                    self.frames_skipped += 1;
                    self.last_skipped = Some(e.error);
                    self.rx.consume(e.consumed);
                }
            }
        }
        if self.eof {
            return match self.rx.len() {
                0 => Ok(Next::End),
                unfinished => Err(self.fail(ReadError::Truncated { unfinished })),
            };
        }
        if self.rx.free() == 0 {
            // Unreachable with a decoder that keeps its own maximum (the
            // storage holds one maximum frame); a stream must not wedge
            // the reader all the same.
            let error = Error::FrameExceedsBuffer {
                needed: self.rx.len() + 1,
                capacity: self.rx.capacity(),
            };
            return Err(self.fail(ReadError::Decode(error)));
        }
        Ok(Next::NeedMore)
    }

    /// Gives the storage back.
    pub fn into_inner(self) -> R {
        self.rx.into_inner()
    }

    // ---- internals ----

    fn release(&mut self) {
        if let Some(frame) = self.returned.take() {
            self.rx.consume(frame.consumed);
        }
    }

    fn fail(&mut self, e: ReadError) -> ReadError {
        self.rx.clear();
        self.failed = Some(e);
        e
    }
}

#[cfg(test)]
mod tests;
