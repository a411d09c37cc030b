//! IO-free types shared by the connection state machine and the drivers:
//! limits, close reasons, states, per-connection counters.

use core::fmt;
use core::num::NonZeroU32;
use core::time::Duration;

use crate::Error;

/// Per-connection limits. All are optional; the defaults impose none but
/// the buffer sizes and the decoder's maximum frame, because the core also
/// serves links where no timer makes sense (a device on a serial line that
/// speaks once an hour). Servers get safe defaults from
/// [`ServerConfig::new`](crate::server::ServerConfig::new) instead.
///
/// Every duration may be as long as [`Duration::MAX`], which means never:
/// deadlines saturate instead of overflowing. [`validate`](Self::validate)
/// refuses the values that cannot work (zero timeouts, inverted
/// watermarks).
///
/// Limits may be added in a minor release, so outside this crate the
/// struct is not built with a literal: start from [`Limits::default`] (or
/// [`ServerConfig::default_limits`]) and chain the setters, or assign the
/// fields.
///
/// ```
/// use core::time::Duration;
/// use fastnet_proto::connection::Limits;
///
/// let limits = Limits::default()
///     .idle_timeout(Some(Duration::from_secs(300)))
///     .max_bytes_in(Some(1 << 30));
/// assert_eq!(limits.idle_timeout, Some(Duration::from_secs(300)));
/// ```
///
/// [`ServerConfig::default_limits`]: crate::server::ServerConfig::default_limits
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Close when no byte moved in either direction for this long.
    pub idle_timeout: Option<Duration>,
    /// Close when a frame has been started but not finished for this long
    /// (a slow trickle of bytes does not reset it; see
    /// [`CloseReason::ReadTimeout`]). An oversized frame being skipped
    /// under [`Oversize::Skip`](crate::codec::Oversize::Skip) counts as
    /// started until its last byte arrives, though none of it is buffered.
    pub read_timeout: Option<Duration>,
    /// Close with [`CloseReason::WriteStall`] when the peer does not take
    /// queued bytes in time. The stall timer starts when bytes are queued
    /// on an empty transmit queue; every byte queued at that moment must
    /// be written within this long. Once they are, the timer starts again
    /// over what is queued then, or stops if nothing is. So the peer must
    /// keep reading at least (queued bytes / this timeout) on average:
    /// one that takes a byte now and then from a full queue is closed,
    /// however often it takes one (each write still resets the idle
    /// timer), while one that keeps up is not, however busy the queue
    /// stays. Applies while closing too, alongside
    /// [`drain_timeout`](field@Self::drain_timeout).
    pub write_stall_timeout: Option<Duration>,
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
    /// How much work one wake of the driver may do before it should let
    /// other connections run: every read that brings bytes and every frame
    /// handed out or skipped costs one. Once spent,
    /// [`Connection::should_yield`](crate::Connection::should_yield) is
    /// true and the connection hands out no frame and offers no read
    /// buffer until the driver calls
    /// [`Connection::begin_wake`](crate::Connection::begin_wake). A driver
    /// that sets a budget must call `begin_wake` every time it comes back
    /// to the connection; `None` (the default) sets no budget.
    pub wake_budget: Option<NonZeroU32>,
}

impl Limits {
    /// No limits: the same as [`Limits::default`], usable in `const`
    /// items.
    pub const fn none() -> Self {
        Limits {
            idle_timeout: None,
            read_timeout: None,
            write_stall_timeout: None,
            max_bytes_in: None,
            tx_high_water: None,
            tx_low_water: None,
            drain_timeout: None,
            skip_malformed: false,
            wake_budget: None,
        }
    }

    crate::setters! {
        idle_timeout: Option<Duration>,
        read_timeout: Option<Duration>,
        write_stall_timeout: Option<Duration>,
        max_bytes_in: Option<u64>,
        tx_high_water: Option<usize>,
        tx_low_water: Option<usize>,
        drain_timeout: Option<Duration>,
        skip_malformed: bool,
        wake_budget: Option<NonZeroU32>,
    }

    /// Whether any timer can be armed: without one, a driver may pass the
    /// connection a constant time instead of reading the clock.
    pub fn needs_clock(&self) -> bool {
        self.idle_timeout.is_some()
            || self.read_timeout.is_some()
            || self.write_stall_timeout.is_some()
            || self.drain_timeout.is_some()
    }

    /// Checks that every limit can work, naming the first one that cannot
    /// ([`Error::InvalidConfig`]): a timeout of zero (it would fire at
    /// once; use `None` for no timeout), a byte limit of zero, a zero
    /// high-water mark, or a low-water mark above the high-water mark.
    /// [`Duration::MAX`] is valid and means never, as does any timeout of
    /// 2^64 nanoseconds (about 584 years) or more: a connection's clock
    /// ends there. A driver checks this when it binds; [`Connection::new`]
    /// checks it too, along with the watermarks against the transmit
    /// buffer.
    ///
    /// [`Connection::new`]: crate::Connection::new
    ///
    /// ```
    /// use core::time::Duration;
    /// use fastnet_proto::connection::Limits;
    ///
    /// let never = Limits::default().idle_timeout(Some(Duration::MAX));
    /// assert!(never.validate().is_ok());
    /// let zero = Limits::default().read_timeout(Some(Duration::ZERO));
    /// assert!(zero.validate().unwrap_err().to_string().contains("read_timeout"));
    /// ```
    pub fn validate(&self) -> Result<(), Error> {
        let invalid = |reason| Err(Error::InvalidConfig { reason });
        let zero = |t: Option<Duration>| t == Some(Duration::ZERO);
        if zero(self.idle_timeout) {
            return invalid("limits.idle_timeout must be above zero (None for no timeout)");
        }
        if zero(self.read_timeout) {
            return invalid("limits.read_timeout must be above zero (None for no timeout)");
        }
        if zero(self.write_stall_timeout) {
            return invalid("limits.write_stall_timeout must be above zero (None for no timeout)");
        }
        if zero(self.drain_timeout) {
            return invalid("limits.drain_timeout must be above zero (None for no timeout)");
        }
        if self.max_bytes_in == Some(0) {
            return invalid("limits.max_bytes_in must be above zero (None for no limit)");
        }
        if self.tx_high_water == Some(0) {
            return invalid("limits.tx_high_water must be above zero");
        }
        if let (Some(low), Some(high)) = (self.tx_low_water, self.tx_high_water) {
            if low > high {
                return invalid("limits.tx_low_water must not be above limits.tx_high_water");
            }
        }
        Ok(())
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
    /// The peer did not take queued bytes within the write-stall timeout
    /// (see [`Limits::write_stall_timeout`](field@Limits::write_stall_timeout)).
    WriteStall,
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
            CloseReason::WriteStall => "write-stall",
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
                | CloseReason::WriteStall
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
            CloseReason::WriteStall => f.write_str("write stall: the peer did not read in time"),
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
///
/// Counters may be added in a minor release: read them by name.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
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
    /// frames stepped over with
    /// [`Limits::skip_malformed`](field@Limits::skip_malformed).
    pub frames_skipped: u64,
    /// Pushed frames dropped because the connection closed before they
    /// could be queued for sending.
    pub pushes_dropped: u64,
}
