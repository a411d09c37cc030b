//! Diagnostics through [`tracing`](https://docs.rs/tracing) (feature
//! `tracing`): a span per connection and an event at each step of its
//! life. Without the feature every item here is empty and compiles away.
//!
//! Every event has the target `fastnet` and is a root event (outside any
//! span), carrying the connection's `id` and `peer` itself, so that it
//! reads whole whatever a subscriber does with spans:
//!
//! | event | level | fields |
//! |---|---|---|
//! | `accepted` | DEBUG | `id`, `peer`, `tls` |
//! | `rejected` | INFO | `peer`, `reason` |
//! | `closed` | WARN for a violation ([`CloseReason::is_violation`]) or a panic, else DEBUG | `id`, `peer`, `reason` |
//! | `TLS failed` | DEBUG | `id`, `peer`, `handshake`, `error` |
//! | `accept failed` | WARN (DEBUG for a connection aborted before it was accepted) | `error` |
//!
//! `reason` is the reason's stable name ([`CloseReason::name`],
//! [`RejectReason::name`]); the message says it in words. The span,
//! `conn` at DEBUG with `id` and `peer` (a subscriber keeps each live
//! span, so at INFO none is made), is entered while the handler runs,
//! so the application's own events carry the connection.
//!
//! Nothing here runs per frame.

use std::future::Future;
use std::io;
use std::marker::PhantomData;
use std::net::SocketAddr;

use fastnet_proto::connection::CloseReason;
use fastnet_proto::server::RejectReason;

use crate::conn::ConnInfo;
use crate::tls::TlsError;

/// One connection's span (`conn`, with its `id` and `peer`); empty
/// without the feature `tracing`. Made by
/// [`Core::accepted`](crate::server::Core::accepted).
#[derive(Clone, Debug)]
pub struct ConnSpan {
    #[cfg(feature = "tracing")]
    span: tracing::Span,
}

/// The span entered, until this drops.
#[derive(Debug)]
pub struct Entered<'a> {
    #[cfg(feature = "tracing")]
    _entered: tracing::span::Entered<'a>,
    _span: PhantomData<&'a ConnSpan>,
}

impl ConnSpan {
    /// The span of the connection `info` describes.
    pub fn new(info: &ConnInfo) -> Self {
        #[cfg(feature = "tracing")]
        {
            // DEBUG: a subscriber keeps each live span's data, memory per
            // open connection that an INFO-level server should not pay.
            let span = tracing::debug_span!(target: "fastnet", "conn", id = info.id(), peer = %info.peer_addr());
            ConnSpan { span }
        }
        #[cfg(not(feature = "tracing"))]
        {
            let _ = info;
            ConnSpan {}
        }
    }

    /// Enters the span on this thread until the guard drops (a blocking
    /// driver, around a connection's life on its worker).
    pub fn enter(&self) -> Entered<'_> {
        Entered {
            #[cfg(feature = "tracing")]
            _entered: self.span.enter(),
            _span: PhantomData,
        }
    }

    /// Whether a subscriber records this span (without the feature, or
    /// below the subscriber's level, it is a no-op and need not be kept).
    pub fn is_enabled(&self) -> bool {
        #[cfg(feature = "tracing")]
        return !self.span.is_disabled();
        #[cfg(not(feature = "tracing"))]
        false
    }

    /// `fut`, entering the span whenever it is polled (an async driver,
    /// around a connection's task). Without the feature, `fut` itself.
    pub fn instrument<F: Future>(self, fut: F) -> impl Future<Output = F::Output> {
        #[cfg(feature = "tracing")]
        {
            tracing::Instrument::instrument(fut, self.span)
        }
        #[cfg(not(feature = "tracing"))]
        {
            fut
        }
    }
}

/// A connection was accepted and will be served.
pub(crate) fn accepted(info: &ConnInfo) {
    #[cfg(feature = "tracing")]
    tracing::debug!(target: "fastnet", parent: None, id = info.id(), peer = %info.peer_addr(), tls = info.is_tls(), "accepted");
    #[cfg(not(feature = "tracing"))]
    let _ = info;
}

/// A connection from `peer` was refused: a limit at work, worth a line
/// by default.
pub(crate) fn rejected(peer: SocketAddr, reason: RejectReason) {
    #[cfg(feature = "tracing")]
    tracing::info!(target: "fastnet", parent: None, peer = %peer, reason = %reason.name(), "rejected: {reason}");
    #[cfg(not(feature = "tracing"))]
    let _ = (peer, reason);
}

/// A served connection closed: loud when the peer or the handler
/// misbehaved, quiet for an ordinary close.
pub(crate) fn closed(info: &ConnInfo, reason: CloseReason) {
    #[cfg(feature = "tracing")]
    {
        let (id, peer, name) = (info.id(), info.peer_addr(), reason.name());
        if reason.is_violation() || reason == CloseReason::Panic {
            tracing::warn!(target: "fastnet", parent: None, id, peer = %peer, reason = %name, "closed: {reason}");
        } else {
            tracing::debug!(target: "fastnet", parent: None, id, peer = %peer, reason = %name, "closed: {reason}");
        }
    }
    #[cfg(not(feature = "tracing"))]
    let _ = (info, reason);
}

/// A connection's TLS handshake (`handshake`) or session failed.
pub(crate) fn tls_failed(info: &ConnInfo, e: &TlsError, handshake: bool) {
    #[cfg(feature = "tracing")]
    tracing::debug!(target: "fastnet", parent: None, id = info.id(), peer = %info.peer_addr(), handshake, error = %e, "TLS failed");
    #[cfg(not(feature = "tracing"))]
    let _ = (info, e, handshake);
}

/// Accepting a connection failed.
pub(crate) fn accept_failed(e: &io::Error) {
    #[cfg(feature = "tracing")]
    {
        // A peer that gave up while queued is not the server's trouble.
        if matches!(
            e.kind(),
            io::ErrorKind::ConnectionAborted
                | io::ErrorKind::ConnectionReset
                | io::ErrorKind::Interrupted
                | io::ErrorKind::WouldBlock
        ) {
            tracing::debug!(target: "fastnet", parent: None, error = %e, "accept failed");
        } else {
            tracing::warn!(target: "fastnet", parent: None, error = %e, "accept failed");
        }
    }
    #[cfg(not(feature = "tracing"))]
    let _ = e;
}
