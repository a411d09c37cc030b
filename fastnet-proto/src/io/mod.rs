//! Driving a [`Connection`] over [embedded-io] transports: a UART, a socket
//! of an embedded network stack, or anything else that implements
//! `embedded_io::{Read, Write}` ([`Blocking`]) or
//! `embedded_io_async::{Read, Write}` ([`Async`], feature
//! `embedded-io-async`).
//!
//! The adapters only move bytes between the transport and the connection;
//! the application still takes frames from
//! [`poll_frames`](Connection::poll_frames) and time is still passed in.
//! Each method is one step of the driver loop written on [`Connection`]:
//!
//! - `read`: one read into [`read_buf`](Connection::read_buf), then
//!   [`handle_read`](Connection::handle_read); a read of 0 bytes is the peer
//!   closing ([`handle_eof`](Connection::handle_eof),
//!   [`ReadOutcome::PeerClosed`]);
//! - `flush`: writes [`poll_transmit`](Connection::poll_transmit) until the
//!   queue is empty, then flushes the transport;
//! - `run`: the whole loop, until the connection closes.
//!
//! [`Blocking`] also has `try_read` and `try_write`, which never block on a
//! transport that implements `ReadReady` / `WriteReady`: the steps of a
//! bare-metal main loop that polls the UART (see `examples/serial-cobs`).
//!
//! A transport error closes the connection with [`CloseReason::Reset`] (its
//! byte stream has a hole in it, or is gone) and comes back as
//! [`IoError::Transport`], apart from the peer's protocol violations
//! ([`IoError::Protocol`]). Nothing here allocates.
//!
//! [embedded-io]: https://docs.rs/embedded-io

#[cfg(feature = "embedded-io-async")]
mod asynch;
mod blocking;
#[cfg(test)]
mod tests;

use core::fmt;
use core::time::Duration;

#[cfg(feature = "embedded-io-async")]
pub use asynch::Async;
pub use blocking::Blocking;

use crate::codec::{Decoder, Encoder};
use crate::connection::CloseReason;
use crate::{Connection, Error};

/// What one read did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReadOutcome {
    /// This many bytes (at least one) were read into the connection.
    Read(usize),
    /// The transport reported end of stream (a read of 0 bytes): the peer
    /// closed. The connection processes what it has buffered, flushes the
    /// replies, then closes with [`CloseReason::PeerClosed`].
    PeerClosed,
    /// The connection does not want input now (backpressure, closing, or
    /// parked; see [`Connection::wants_read`]): nothing was read. Take its
    /// frames and flush its replies first.
    NotWanted,
    /// Only from `try_read`: the transport has no byte waiting.
    WouldBlock,
}

/// How the peer broke the protocol or a limit, as the connection closed.
/// `Display` names the limit or the offending byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Violation {
    /// A frame was longer than the decoder's maximum
    /// ([`CloseReason::FrameTooLarge`]).
    FrameTooLarge {
        /// The maximum frame length, on the wire.
        max: usize,
    },
    /// The peer sent more bytes than [`Limits::max_bytes_in`]
    /// ([`CloseReason::ByteLimit`]).
    ///
    /// [`Limits::max_bytes_in`]: field@crate::connection::Limits::max_bytes_in
    ByteLimit {
        /// The limit, in bytes.
        max: u64,
    },
    /// A frame was started and not finished within
    /// [`Limits::read_timeout`] ([`CloseReason::ReadTimeout`]).
    ///
    /// [`Limits::read_timeout`]: field@crate::connection::Limits::read_timeout
    ReadTimeout {
        /// The read timeout.
        timeout: Duration,
    },
    /// The decoder found the stream malformed ([`CloseReason::Protocol`]);
    /// the error says where and which byte.
    Malformed(Error),
}

impl Violation {
    /// The violation a connection closed for, with the limit it broke, or
    /// `None` for an orderly close or a timer that is not the peer's fault.
    fn of<D, E, R, T>(reason: CloseReason, conn: &Connection<D, E, R, T>) -> Option<Self>
    where
        D: Decoder,
        E: Encoder,
        R: AsRef<[u8]> + AsMut<[u8]>,
        T: AsRef<[u8]> + AsMut<[u8]>,
    {
        let limits = conn.limits();
        match reason {
            CloseReason::FrameTooLarge => Some(Violation::FrameTooLarge {
                max: conn.decoder().max_frame(),
            }),
            CloseReason::ByteLimit => Some(Violation::ByteLimit {
                max: limits.max_bytes_in.unwrap_or(0),
            }),
            CloseReason::ReadTimeout => Some(Violation::ReadTimeout {
                timeout: limits.read_timeout.unwrap_or_default(),
            }),
            CloseReason::Protocol(e) => Some(Violation::Malformed(e)),
            _ => None,
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Violation::FrameTooLarge { max } => {
                write!(f, "frame exceeds the maximum frame length of {max} bytes")
            }
            Violation::ByteLimit { max } => {
                write!(f, "peer sent more than the limit of {max} bytes")
            }
            Violation::ReadTimeout { timeout } => write!(
                f,
                "frame not completed within the read timeout of {} ms",
                timeout.as_millis()
            ),
            Violation::Malformed(e) => write!(f, "malformed stream: {e}"),
        }
    }
}

impl core::error::Error for Violation {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            Violation::Malformed(e) => Some(e),
            _ => None,
        }
    }
}

/// Why driving a connection over a transport stopped: the transport's
/// error `E`, kept apart from the peer's protocol violations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum IoError<E> {
    /// The transport failed; the connection is closed with
    /// [`CloseReason::Reset`].
    Transport(E),
    /// The transport accepted no byte of a non-empty write, which
    /// embedded-io's `Write` must not do; the connection is closed with
    /// [`CloseReason::Reset`] rather than retried forever.
    WriteZero,
    /// Only from `run`: the peer broke the protocol or a limit; the
    /// connection flushed the replies it could and closed.
    Protocol(Violation),
    /// Only from `run`: the connection waits for something the adapter
    /// cannot give it: it is [parked](Connection::park), or a graceful close
    /// waits for pushed frames. Nothing was lost; unpark it or hand it the
    /// pushes, then run again.
    Stalled,
}

impl<E: fmt::Display> fmt::Display for IoError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IoError::Transport(e) => write!(f, "transport error: {e}"),
            IoError::WriteZero => f.write_str("transport accepted no byte of a write"),
            IoError::Protocol(v) => write!(f, "protocol violation: {v}"),
            IoError::Stalled => {
                f.write_str("connection is parked or waits for pushed frames to close")
            }
        }
    }
}

impl<E: core::error::Error + 'static> core::error::Error for IoError<E> {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            IoError::Transport(e) => Some(e),
            IoError::Protocol(v) => Some(v),
            IoError::WriteZero | IoError::Stalled => None,
        }
    }
}

/// So code generic over embedded-io can pass the error on with `?`.
impl<E: embedded_io::Error + 'static> embedded_io::Error for IoError<E> {
    fn kind(&self) -> embedded_io::ErrorKind {
        match self {
            IoError::Transport(e) => e.kind(),
            IoError::WriteZero => embedded_io::ErrorKind::WriteZero,
            IoError::Protocol(_) => embedded_io::ErrorKind::InvalidData,
            IoError::Stalled => embedded_io::ErrorKind::Other,
        }
    }
}

// The steps both adapters share, around the one call that differs (a
// blocking or an awaited read or write).

/// Acts on what a read into the `len`-byte `read_buf` returned.
fn finish_read<D, E, R, T, X>(
    conn: &mut Connection<D, E, R, T>,
    len: usize,
    result: Result<usize, X>,
    now: Duration,
) -> Result<ReadOutcome, IoError<X>>
where
    D: Decoder,
    E: Encoder,
    R: AsRef<[u8]> + AsMut<[u8]>,
    T: AsRef<[u8]> + AsMut<[u8]>,
{
    match result {
        Ok(0) => {
            conn.handle_eof(now);
            Ok(ReadOutcome::PeerClosed)
        }
        Ok(n) => {
            // A transport that claims more than it was given is wrong, but
            // must not make `handle_read` panic.
            let n = n.min(len);
            conn.handle_read(n, now);
            Ok(ReadOutcome::Read(n))
        }
        Err(e) => Err(fail(conn, IoError::Transport(e))),
    }
}

/// Acts on what a write of the front of `poll_transmit` returned.
fn finish_write<D, E, R, T, X>(
    conn: &mut Connection<D, E, R, T>,
    result: Result<usize, X>,
    now: Duration,
) -> Result<usize, IoError<X>>
where
    D: Decoder,
    E: Encoder,
    R: AsRef<[u8]> + AsMut<[u8]>,
    T: AsRef<[u8]> + AsMut<[u8]>,
{
    match result {
        Ok(0) => Err(fail(conn, IoError::WriteZero)),
        Ok(n) => {
            conn.handle_written(n, now);
            Ok(n)
        }
        Err(e) => Err(fail(conn, IoError::Transport(e))),
    }
}

/// A transport failure closes the connection: its stream cannot be trusted.
fn fail<D, E, R, T, X>(conn: &mut Connection<D, E, R, T>, error: IoError<X>) -> IoError<X>
where
    D: Decoder,
    E: Encoder,
    R: AsRef<[u8]> + AsMut<[u8]>,
    T: AsRef<[u8]> + AsMut<[u8]>,
{
    conn.handle_reset();
    error
}

/// `run`'s result once the connection is closed: the reason, or the
/// violation it closed for.
fn end_of_run<D, E, R, T, X>(
    conn: &Connection<D, E, R, T>,
) -> Option<Result<CloseReason, IoError<X>>>
where
    D: Decoder,
    E: Encoder,
    R: AsRef<[u8]> + AsMut<[u8]>,
    T: AsRef<[u8]> + AsMut<[u8]>,
{
    let reason = match conn.state() {
        crate::connection::State::Closed(reason) => reason,
        _ => return None,
    };
    Some(match Violation::of(reason, conn) {
        Some(v) => Err(IoError::Protocol(v)),
        None => Ok(reason),
    })
}

/// Fires the timers that are due at `now`.
fn fire_timers<D, E, R, T>(conn: &mut Connection<D, E, R, T>, now: Duration)
where
    D: Decoder,
    E: Encoder,
    R: AsRef<[u8]> + AsMut<[u8]>,
    T: AsRef<[u8]> + AsMut<[u8]>,
{
    if conn.poll_timeout().is_some_and(|at| at <= now) {
        conn.handle_timeout(now);
    }
}
