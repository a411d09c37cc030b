//! IO-free types shared by the connection state machine and the drivers:
//! limits, close reasons, states, per-connection counters.

use core::fmt;
use core::time::Duration;

use crate::Error;

/// Per-connection limits. All are optional; the defaults impose none but
/// the buffer sizes and the decoder's maximum frame.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Limits {
    /// Close when no byte moved in either direction for this long.
    pub idle_timeout: Option<Duration>,
    /// Close when a frame has been started but not finished for this long
    /// (a slow trickle of bytes does not reset it; see
    /// [`CloseReason::ReadTimeout`]).
    pub read_timeout: Option<Duration>,
    /// Close after this many bytes received in total.
    pub max_bytes_in: Option<u64>,
    /// Stop asking for input once this many reply bytes are queued
    /// (default: half the tx buffer).
    pub tx_high_water: Option<usize>,
    /// Ask for input again once the queue has drained to this many bytes
    /// (default: a quarter of the tx buffer).
    pub tx_low_water: Option<usize>,
    /// Close at once a closing connection that has not flushed its queued
    /// replies and pushes within this long (a peer that stopped reading
    /// would otherwise hold a closing connection forever); the close
    /// keeps its reason.
    pub drain_timeout: Option<Duration>,
    /// Step over malformed frames the decoder can resynchronise after (a
    /// corrupted COBS frame: the next `0x00` ends it) instead of closing
    /// with [`CloseReason::Protocol`]. Off by default: a peer that sends
    /// garbage is usually not worth serving, but a noisy serial link is.
    pub skip_malformed: bool,
}

impl Limits {
    /// Whether any timer can be armed: without one, a driver may pass the
    /// connection a constant time instead of reading the clock.
    pub fn needs_clock(&self) -> bool {
        self.idle_timeout.is_some() || self.read_timeout.is_some() || self.drain_timeout.is_some()
    }
}

/// Why a connection closed (or is closing).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CloseReason {
    /// The peer sent EOF; frames it sent before were processed and replies
    /// flushed.
    PeerClosed,
    /// No bytes moved in either direction within the idle timeout.
    IdleTimeout,
    /// A frame was started but not completed within the read timeout.
    ReadTimeout,
    /// A frame exceeded the maximum frame length (under the `Close` policy).
    FrameTooLarge,
    /// The peer sent more bytes than the per-connection limit.
    ByteLimit,
    /// The decoder found the stream malformed.
    Protocol(Error),
    /// This side asked to close (application, shutdown).
    Local,
    /// The transport failed: reset by the peer or an IO error, reported by
    /// the driver.
    Reset,
    /// TLS failed (handshake or record layer), reported by the driver.
    Tls(TlsFailure),
    /// The application's handler panicked while handling this connection,
    /// reported by the driver: this connection closes, no other.
    Panic,
}

/// Why TLS ended a connection. Drivers map their TLS library's errors here,
/// so the reason stays `Copy`, comparable and free of any TLS library type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TlsFailure {
    /// The handshake did not complete within the handshake timeout.
    HandshakeTimeout,
    /// The peer closed before the handshake completed.
    HandshakeEof,
    /// This side sent this fatal alert (an RFC 8446 section 6 code: 10
    /// unexpected_message, 20 bad_record_mac, 42 bad_certificate, 80
    /// internal_error, 116 certificate_required, ...).
    AlertSent(u8),
    /// The peer sent this fatal alert.
    AlertReceived(u8),
}

impl fmt::Display for TlsFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsFailure::HandshakeTimeout => f.write_str("handshake timeout"),
            TlsFailure::HandshakeEof => f.write_str("peer closed during the handshake"),
            TlsFailure::AlertSent(code) => write!(f, "alert {code} sent"),
            TlsFailure::AlertReceived(code) => write!(f, "alert {code} received"),
        }
    }
}

impl CloseReason {
    /// A short, stable name (for logs and statistics).
    pub const fn name(&self) -> &'static str {
        match self {
            CloseReason::PeerClosed => "peer-closed",
            CloseReason::IdleTimeout => "idle-timeout",
            CloseReason::ReadTimeout => "read-timeout",
            CloseReason::FrameTooLarge => "frame-too-large",
            CloseReason::ByteLimit => "byte-limit",
            CloseReason::Protocol(_) => "protocol",
            CloseReason::Local => "local",
            CloseReason::Reset => "reset",
            CloseReason::Panic => "panic",
            CloseReason::Tls(_) => "tls",
        }
    }

    /// Whether the peer misbehaved (as opposed to an orderly close).
    pub const fn is_violation(&self) -> bool {
        matches!(
            self,
            CloseReason::ReadTimeout
                | CloseReason::FrameTooLarge
                | CloseReason::ByteLimit
                | CloseReason::Protocol(_)
                | CloseReason::Tls(TlsFailure::HandshakeTimeout | TlsFailure::AlertSent(_))
        )
    }
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseReason::PeerClosed => f.write_str("peer closed the connection"),
            CloseReason::IdleTimeout => f.write_str("idle timeout"),
            CloseReason::ReadTimeout => f.write_str("read timeout: frame not completed in time"),
            CloseReason::FrameTooLarge => f.write_str("frame too large"),
            CloseReason::ByteLimit => f.write_str("per-connection byte limit reached"),
            CloseReason::Protocol(e) => write!(f, "protocol error: {e}"),
            CloseReason::Local => f.write_str("closed locally"),
            CloseReason::Reset => f.write_str("connection reset"),
            CloseReason::Panic => f.write_str("the handler panicked"),
            CloseReason::Tls(failure) => write!(f, "TLS: {failure}"),
        }
    }
}

/// Where a connection is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum State {
    /// Reading, processing frames, writing replies.
    Open,
    /// No longer reading; flushing queued replies, then closed with the reason.
    Draining(CloseReason),
    /// Done. The driver should close the socket.
    Closed(CloseReason),
}

/// Counters of one connection.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConnStats {
    /// Bytes received.
    pub bytes_in: u64,
    /// Bytes written.
    pub bytes_out: u64,
    /// Frames decoded and handed to the application.
    pub frames_in: u64,
    /// Frames queued for sending.
    pub frames_out: u64,
    /// Oversized frames skipped under the `Skip` policy, and malformed
    /// frames stepped over with [`Limits::skip_malformed`].
    pub frames_skipped: u64,
    /// Pushed frames dropped because the connection closed before they
    /// could be queued for sending.
    pub pushes_dropped: u64,
}
