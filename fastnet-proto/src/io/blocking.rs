//! [`Blocking`]: a connection over `embedded_io::{Read, Write}`.

use core::time::Duration;

use embedded_io::{Read, ReadReady, Write, WriteReady};

use super::{end_of_run, finish_read, finish_write, fire_timers, IoError, ReadOutcome};
use crate::codec::{Decoder, Encoder};
use crate::connection::{CloseReason, Outbox};
use crate::Connection;

/// A transport with embedded-io's blocking traits, ready to drive a
/// [`Connection`] (feature `embedded-io`).
///
/// Each method needs only the trait it uses, so a transport split in two
/// (a UART's receive and transmit halves) takes two adapters: one that
/// reads, one that writes.
///
/// - [`read`](Self::read) / [`flush`](Self::flush): block until a byte
///   arrives / until every queued reply is written;
/// - [`try_read`](Self::try_read) / [`try_write`](Self::try_write): never
///   block, given `ReadReady` / `WriteReady` (a polled main loop);
/// - [`run`](Self::run): the driver loop until the connection closes.
///
/// ```
/// use core::time::Duration;
/// use fastnet_proto::codec::{DelimiterDecoder, DelimiterEncoder};
/// use fastnet_proto::connection::{Buffers, Connection, Limits};
/// use fastnet_proto::io::{Blocking, ReadOutcome};
///
/// let dec = DelimiterDecoder::lines(64).unwrap();
/// let enc = DelimiterEncoder::lines(64).unwrap();
/// let bufs = Buffers { rx: [0u8; 64], tx: [0u8; 64] };
/// let now = Duration::ZERO;
/// let mut conn = Connection::new(dec, enc, bufs, Limits::default(), now).unwrap();
///
/// // embedded-io reads from `&[u8]` and writes into `&mut [u8]`.
/// let mut rx = Blocking::new(&b"ping\n"[..]);
/// let mut wire = [0u8; 16];
/// let mut tx = Blocking::new(&mut wire[..]);
///
/// assert_eq!(rx.read(&mut conn, now), Ok(ReadOutcome::Read(5)));
/// conn.poll_frames(|frame, out| {
///     assert_eq!(frame, b"ping");
///     out.send(b"pong").unwrap();
/// });
/// assert_eq!(tx.flush(&mut conn, now), Ok(5));
/// // The slice is empty: end of stream, the peer closed.
/// assert_eq!(rx.read(&mut conn, now), Ok(ReadOutcome::PeerClosed));
/// assert_eq!(&wire[..5], b"pong\n");
/// ```
#[derive(Debug)]
pub struct Blocking<T> {
    io: T,
}

impl<T> Blocking<T> {
    /// Wraps a transport (or `&mut` to one: embedded-io implements its
    /// traits for `&mut T`).
    pub const fn new(io: T) -> Self {
        Blocking { io }
    }

    /// The transport.
    pub fn get_ref(&self) -> &T {
        &self.io
    }

    /// The transport, mutably.
    pub fn get_mut(&mut self) -> &mut T {
        &mut self.io
    }

    /// Gives the transport back.
    pub fn into_inner(self) -> T {
        self.io
    }
}

impl<T: Read> Blocking<T> {
    /// Reads once into the connection, blocking until at least one byte
    /// arrives or the stream ends (which is reported as
    /// [`ReadOutcome::PeerClosed`]). Reads nothing, at once, when the
    /// connection does not want input ([`ReadOutcome::NotWanted`]).
    ///
    /// A transport error closes the connection
    /// ([`CloseReason::Reset`]).
    pub fn read<D, E, R, Tx>(
        &mut self,
        conn: &mut Connection<D, E, R, Tx>,
        now: Duration,
    ) -> Result<ReadOutcome, IoError<T::Error>>
    where
        D: Decoder,
        E: Encoder,
        R: AsRef<[u8]> + AsMut<[u8]>,
        Tx: AsRef<[u8]> + AsMut<[u8]>,
    {
        let Some(buf) = conn.read_buf() else {
            return Ok(ReadOutcome::NotWanted);
        };
        let len = buf.len();
        let result = self.io.read(buf);
        finish_read(conn, len, result, now)
    }
}

impl<T: Read + ReadReady> Blocking<T> {
    /// Like [`read`](Self::read), but never blocks: when the transport has
    /// nothing waiting, reads nothing ([`ReadOutcome::WouldBlock`]).
    pub fn try_read<D, E, R, Tx>(
        &mut self,
        conn: &mut Connection<D, E, R, Tx>,
        now: Duration,
    ) -> Result<ReadOutcome, IoError<T::Error>>
    where
        D: Decoder,
        E: Encoder,
        R: AsRef<[u8]> + AsMut<[u8]>,
        Tx: AsRef<[u8]> + AsMut<[u8]>,
    {
        if !conn.wants_read() {
            return Ok(ReadOutcome::NotWanted);
        }
        match self.io.read_ready() {
            Ok(true) => self.read(conn, now),
            Ok(false) => Ok(ReadOutcome::WouldBlock),
            Err(e) => Err(super::fail(conn, IoError::Transport(e))),
        }
    }
}

impl<T: Write> Blocking<T> {
    /// Writes the connection's queued bytes until none are left, blocking
    /// while the transport is busy, then flushes the transport if any byte
    /// was written. Returns the bytes written.
    ///
    /// A transport error closes the connection
    /// ([`CloseReason::Reset`]).
    pub fn flush<D, E, R, Tx>(
        &mut self,
        conn: &mut Connection<D, E, R, Tx>,
        now: Duration,
    ) -> Result<usize, IoError<T::Error>>
    where
        D: Decoder,
        E: Encoder,
        R: AsRef<[u8]> + AsMut<[u8]>,
        Tx: AsRef<[u8]> + AsMut<[u8]>,
    {
        let mut total = 0;
        loop {
            // The ring's second slice becomes the first once the first is
            // written, so writing the front slice each time covers both.
            let (front, _) = conn.poll_transmit();
            if front.is_empty() {
                break;
            }
            let result = self.io.write(front);
            total += finish_write(conn, result, now)?;
        }
        if total > 0 {
            if let Err(e) = self.io.flush() {
                return Err(super::fail(conn, IoError::Transport(e)));
            }
        }
        Ok(total)
    }
}

impl<T: Write + WriteReady> Blocking<T> {
    /// Writes as many queued bytes as the transport takes without blocking;
    /// returns how many. Does not flush the transport (that may block).
    pub fn try_write<D, E, R, Tx>(
        &mut self,
        conn: &mut Connection<D, E, R, Tx>,
        now: Duration,
    ) -> Result<usize, IoError<T::Error>>
    where
        D: Decoder,
        E: Encoder,
        R: AsRef<[u8]> + AsMut<[u8]>,
        Tx: AsRef<[u8]> + AsMut<[u8]>,
    {
        let mut total = 0;
        while conn.wants_write() {
            // Readiness promises only the next write: ask before each.
            match self.io.write_ready() {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => return Err(super::fail(conn, IoError::Transport(e))),
            }
            let (front, _) = conn.poll_transmit();
            let result = self.io.write(front);
            total += finish_write(conn, result, now)?;
        }
        Ok(total)
    }
}

impl<T: Read + Write> Blocking<T> {
    /// Drives the connection until it closes: read, hand each frame to
    /// `on_frame` (which queues replies through the [`Outbox`]), write the
    /// replies, in the order written on [`Connection`]. `now` is the clock,
    /// read once per pass; the connection's timers fire when a pass finds
    /// them due.
    ///
    /// Returns the close reason for an orderly close or a timer that is not
    /// the peer's fault ([`CloseReason::PeerClosed`],
    /// [`CloseReason::Local`] after [`Outbox::close`],
    /// [`CloseReason::IdleTimeout`]), [`IoError::Protocol`] for a
    /// violation, or the transport's error.
    ///
    /// A blocking read waits for the peer however long it takes, so the
    /// timers can only fire when some byte arrives; on a link where they
    /// matter while the peer is silent, give the transport a read timeout
    /// of its own, or drive the steps from a loop that waits on
    /// [`poll_timeout`](Connection::poll_timeout).
    pub fn run<D, E, R, Tx, F>(
        &mut self,
        conn: &mut Connection<D, E, R, Tx>,
        mut now: impl FnMut() -> Duration,
        mut on_frame: F,
    ) -> Result<CloseReason, IoError<T::Error>>
    where
        D: Decoder,
        E: Encoder,
        R: AsRef<[u8]> + AsMut<[u8]>,
        Tx: AsRef<[u8]> + AsMut<[u8]>,
        F: FnMut(&[u8], &mut Outbox<'_, E, Tx>),
    {
        loop {
            let t = now();
            fire_timers(conn, t);
            conn.poll_frames(&mut on_frame);
            self.flush(conn, t)?;
            if let Some(end) = end_of_run(conn) {
                return end;
            }
            // Writing may have lifted backpressure with frames waiting.
            if conn.wants_poll() {
                continue;
            }
            if self.read(conn, t)? == ReadOutcome::NotWanted {
                // Open or draining, every reply written, no frame to take,
                // and still no input wanted: only a parked connection or
                // pending pushes end up here.
                return Err(IoError::Stalled);
            }
        }
    }
}
