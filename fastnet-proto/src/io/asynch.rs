//! [`Async`]: a connection over `embedded_io_async::{Read, Write}`.

use core::time::Duration;

use embedded_io_async::{Read, Write};

use super::{end_of_run, finish_read, finish_write, fire_timers, IoError, ReadOutcome};
use crate::codec::{Decoder, Encoder};
use crate::connection::{CloseReason, Outbox};
use crate::Connection;

/// A transport with embedded-io-async's traits, ready to drive a
/// [`Connection`] from an async task, on any executor (embassy's among
/// them); feature `embedded-io-async`.
///
/// The same steps as [`Blocking`](super::Blocking), awaited:
/// [`read`](Self::read), [`flush`](Self::flush), [`run`](Self::run).
/// Each needs only the trait it uses, so split halves of a transport take
/// one adapter each.
///
/// Dropping a [`read`](Self::read) future before it completes leaves the
/// connection as it was, so a read can race a timer for
/// [`poll_timeout`](Connection::poll_timeout) (then
/// [`handle_timeout`](Connection::handle_timeout)); bytes the transport
/// had already copied are lost unless its own read is cancel-safe.
///
/// ```
/// use core::time::Duration;
/// use fastnet_proto::codec::{CobsDecoder, CobsEncoder};
/// use fastnet_proto::connection::{Buffers, Connection, Limits};
/// use fastnet_proto::io::Async;
///
/// let dec = CobsDecoder::new(32).unwrap();
/// let enc = CobsEncoder::new(32).unwrap();
/// let bufs = Buffers { rx: [0u8; 32], tx: [0u8; 32] };
/// let mut conn = Connection::new(dec, enc, bufs, Limits::default(), Duration::ZERO).unwrap();
///
/// // A stand-in for a UART or a socket: one COBS frame holding "hi", then EOF.
/// let mut rx = Async::new(&[0x03, b'h', b'i', 0x00][..]);
/// let mut wire = [0u8; 8];
/// let mut tx = Async::new(&mut wire[..]);
///
/// // In firmware this runs in a task; here a tiny executor polls it.
/// futures_lite::future::block_on(async {
///     let now = Duration::ZERO;
///     rx.read(&mut conn, now).await.unwrap();
///     conn.poll_frames(|frame, out| out.send(frame).unwrap());
///     tx.flush(&mut conn, now).await.unwrap();
/// });
/// assert_eq!(wire[..4], [0x03, b'h', b'i', 0x00]);
/// ```
#[derive(Debug)]
pub struct Async<T> {
    io: T,
}

impl<T> Async<T> {
    /// Wraps a transport (or `&mut` to one: embedded-io-async implements
    /// its traits for `&mut T`).
    pub const fn new(io: T) -> Self {
        Async { io }
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

impl<T: Read> Async<T> {
    /// Reads once into the connection, waiting until at least one byte
    /// arrives or the stream ends (which is reported as
    /// [`ReadOutcome::PeerClosed`]). Reads nothing, at once, when the
    /// connection does not want input ([`ReadOutcome::NotWanted`]).
    ///
    /// A transport error closes the connection
    /// ([`CloseReason::Reset`]).
    pub async fn read<D, E, R, Tx>(
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
        let result = self.io.read(buf).await;
        finish_read(conn, len, result, now)
    }
}

impl<T: Write> Async<T> {
    /// Writes the connection's queued bytes until none are left, then
    /// flushes the transport if any byte was written. Returns the bytes
    /// written.
    ///
    /// A transport error closes the connection
    /// ([`CloseReason::Reset`]).
    pub async fn flush<D, E, R, Tx>(
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
            let result = self.io.write(front).await;
            total += finish_write(conn, result, now)?;
        }
        if total > 0 {
            if let Err(e) = self.io.flush().await {
                return Err(super::fail(conn, IoError::Transport(e)));
            }
        }
        Ok(total)
    }
}

impl<T: Read + Write> Async<T> {
    /// Drives the connection until it closes, as
    /// [`Blocking::run`](super::Blocking::run) does, awaiting the
    /// transport.
    ///
    /// The timers fire only when a pass finds them due, and a pass waits
    /// for the peer's next byte; where they matter while the peer is
    /// silent, drive the steps from a loop that races
    /// [`read`](Self::read) against a timer instead.
    pub async fn run<D, E, R, Tx, F>(
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
            self.flush(conn, t).await?;
            if let Some(end) = end_of_run(conn) {
                return end;
            }
            // Writing may have lifted backpressure with frames waiting.
            if conn.wants_poll() {
                continue;
            }
            if self.read(conn, t).await? == ReadOutcome::NotWanted {
                // As in `Blocking::run`: parked, or pending pushes.
                return Err(IoError::Stalled);
            }
        }
    }
}
