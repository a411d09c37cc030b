//! What the application plugs into a [`Server`](crate::Server): the
//! [`Handler`] trait, and what it sees of a connection ([`ConnInfo`],
//! [`Ctx`]).

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use fastnet_driver::server::Outbox;
use fastnet_proto::connection::CloseReason;
use fastnet_proto::server::RejectReason;
use fastnet_proto::Error;

use crate::handle::{ConnHandle, ConnShared};

/// The application side of a server: called on the connection's worker
/// thread for every event of that connection.
///
/// One value serves every connection (hence `Sync`); what belongs to one
/// connection lives in [`State`](Self::State), created by
/// [`on_connect`](Self::on_connect) and handed back by
/// [`on_close`](Self::on_close).
///
/// ```
/// use fastnet_std::{ConnInfo, Ctx, Handler};
///
/// /// Echoes every frame and counts them per connection.
/// struct Echo;
///
/// impl Handler for Echo {
///     type State = u64;
///     fn on_connect(&self, _info: &ConnInfo) -> Option<u64> {
///         Some(0)
///     }
///     fn on_frame(&self, ctx: &mut Ctx<'_, u64>, frame: &[u8]) {
///         *ctx.state_mut() += 1;
///         if ctx.send(frame).is_err() {
///             ctx.close();
///         }
///     }
/// }
/// ```
pub trait Handler: Send + Sync + 'static {
    /// Per-connection state.
    type State: Send + 'static;

    /// A connection was admitted; return its state, or `None` to refuse it
    /// (counted and reported as [`RejectReason::Refused`]).
    fn on_connect(&self, info: &ConnInfo) -> Option<Self::State>;

    /// A complete frame arrived; `frame` is its payload. Replies queued with
    /// [`Ctx::send`] go out after this call returns (together with replies
    /// to the other frames that arrived in the same read).
    fn on_frame(&self, ctx: &mut Ctx<'_, Self::State>, frame: &[u8]);

    /// The connection closed, for `reason`; its socket is already shut.
    /// Called exactly once for every connection `on_connect` accepted.
    fn on_close(&self, info: &ConnInfo, state: Self::State, reason: CloseReason) {
        let _ = (info, state, reason);
    }

    /// A connection from `peer` was refused before it was served.
    fn on_reject(&self, peer: SocketAddr, reason: RejectReason) {
        let _ = (peer, reason);
    }

    /// A TLS connection failed: its handshake (a peer that does not speak
    /// TLS, fails certificate verification, stalls past the handshake
    /// timeout, leaves) or, later, its session (a corrupted record, an
    /// alert). Called on the connection's worker just before it closes;
    /// [`on_close`](Self::on_close) follows with the error's
    /// [`close_reason`](crate::tls::TlsError::close_reason), a
    /// [`CloseReason::Tls`] with the alert.
    #[cfg(feature = "tls")]
    fn on_tls_error(&self, info: &ConnInfo, error: &crate::tls::TlsError) {
        let _ = (info, error);
    }
}

/// Who a connection is: its id (unique within a server), its peer, when
/// it was accepted and whether it is encrypted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnInfo {
    id: u64,
    peer: SocketAddr,
    connected_at: Instant,
    tls: bool,
}

impl ConnInfo {
    pub(crate) fn new(id: u64, peer: SocketAddr, connected_at: Instant, tls: bool) -> Self {
        ConnInfo {
            id,
            peer,
            connected_at,
            tls,
        }
    }

    /// Whether the connection is served over TLS (what was negotiated is
    /// [`Ctx::tls`], once the handshake completed).
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// The connection's id, unique within its server.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer
    }

    /// When the connection was accepted.
    pub fn connected_at(&self) -> Instant {
        self.connected_at
    }
}

/// Queues replies on behalf of [`Ctx`], hiding the outbox's lifetime.
pub(crate) trait Replies {
    fn send(&mut self, payload: &[u8]) -> Result<(), Error>;
    fn close(&mut self);
}

impl Replies for Outbox<'_> {
    fn send(&mut self, payload: &[u8]) -> Result<(), Error> {
        Outbox::send(self, payload)
    }

    fn close(&mut self) {
        Outbox::close(self);
    }
}

/// What [`Handler::on_frame`] can do with its connection: read its
/// [`ConnInfo`] and state, queue replies, close it, or take a
/// [`ConnHandle`] to push frames from elsewhere.
pub struct Ctx<'a, S> {
    pub(crate) shared: &'a Arc<ConnShared>,
    pub(crate) state: &'a mut S,
    pub(crate) replies: &'a mut dyn Replies,
}

impl<S> Ctx<'_, S> {
    /// Who this connection is.
    pub fn info(&self) -> &ConnInfo {
        &self.shared.info
    }

    /// The connection's id (`info().id()`).
    pub fn id(&self) -> u64 {
        self.shared.info.id()
    }

    /// The connection's state.
    pub fn state(&self) -> &S {
        self.state
    }

    /// The connection's state, to change.
    pub fn state_mut(&mut self) -> &mut S {
        self.state
    }

    /// Encodes `payload` with the reply codec into the connection's reply
    /// buffer. Fails, queuing nothing, if the encoder refuses the payload
    /// or the reply buffer lacks room ([`Error::BufferTooSmall`]).
    pub fn send(&mut self, payload: &[u8]) -> Result<(), Error> {
        self.replies.send(payload)
    }

    /// Closes the connection after this frame: no more frames are handed
    /// out, queued replies are flushed, the reason is
    /// [`CloseReason::Local`].
    pub fn close(&mut self) {
        self.replies.close();
    }

    /// A handle to push frames to this connection from other threads.
    pub fn handle(&self) -> ConnHandle {
        ConnHandle::new(Arc::clone(self.shared))
    }

    /// What the TLS handshake negotiated: protocol version, cipher suite,
    /// ALPN protocol, the client's certificates. `None` without TLS.
    #[cfg(feature = "tls")]
    pub fn tls(&self) -> Option<&crate::tls::TlsInfo> {
        self.shared.tls_info()
    }
}

impl<S: fmt::Debug> fmt::Debug for Ctx<'_, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ctx")
            .field("info", &self.shared.info)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}
