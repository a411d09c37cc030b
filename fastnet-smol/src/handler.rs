//! What the application plugs in: [`Handler`] and the per-frame [`Ctx`].

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;

use fastnet_proto::connection::CloseReason;
use fastnet_proto::server::RejectReason;

use crate::handle::{ConnHandle, ConnInfo};
use crate::server::Outbox;

/// The application side of a server: called for each connection's life
/// events and for every frame.
///
/// `on_frame` is async so a handler can await (a database, another
/// service, a timer) while its connection waits; a handler that answers at
/// once can return [`std::future::ready`] and pays nothing for the future.
/// The frame is lent straight from the connection's receive buffer (no
/// copy), and stays valid across the handler's `.await`s; the connection
/// reads nothing more until `on_frame` completes, so frames of one
/// connection are handled in order.
///
/// ```
/// use fastnet_smol::{Ctx, ConnInfo, Handler};
///
/// struct Echo;
///
/// impl Handler for Echo {
///     type State = ();
///     fn on_connect(&self, _info: &ConnInfo) -> Option<()> {
///         Some(())
///     }
///     async fn on_frame(&self, ctx: &mut Ctx<'_, ()>, frame: &[u8]) {
///         let _ = ctx.send(frame);
///     }
/// }
/// ```
pub trait Handler: Send + Sync + 'static {
    /// Per-connection state, created by [`on_connect`](Self::on_connect)
    /// and handed back to [`on_close`](Self::on_close).
    type State: Send + 'static;

    /// A connection was admitted. Return its state, or `None` to refuse it
    /// (counted as [`RejectReason::Refused`], reported to
    /// [`on_reject`](Self::on_reject)).
    fn on_connect(&self, info: &ConnInfo) -> Option<Self::State>;

    /// A complete frame arrived; `frame` is its payload, borrowed from the
    /// receive buffer. Queue replies with [`Ctx::send`]; they leave
    /// together with the replies to every other frame of the same read, in
    /// one write.
    fn on_frame(
        &self,
        ctx: &mut Ctx<'_, Self::State>,
        frame: &[u8],
    ) -> impl Future<Output = ()> + Send;

    /// The connection closed, for `reason`. Called exactly once per
    /// connection that `on_connect` accepted.
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
    /// alert). Called on the connection's task just before it closes;
    /// [`on_close`](Self::on_close) follows with the error's
    /// [`close_reason`](crate::tls::TlsError::close_reason), a
    /// [`CloseReason::Tls`] with the alert. Feature `tls`.
    #[cfg(feature = "tls")]
    fn on_tls_error(&self, info: &ConnInfo, error: &crate::tls::TlsError) {
        let _ = (info, error);
    }
}

/// What [`Handler::on_frame`] can do with its connection: read its info
/// and state, queue replies, close it, get a handle to it.
pub struct Ctx<'a, S> {
    pub(crate) info: &'a ConnInfo,
    pub(crate) state: &'a mut S,
    /// The lent frame's outbox: replies go straight into the reply ring.
    pub(crate) out: Outbox<'a>,
    /// What the TLS handshake negotiated.
    #[cfg(feature = "tls")]
    pub(crate) tls: Option<&'a crate::tls::TlsInfo>,
}

impl<S> Ctx<'_, S> {
    /// The connection's identity.
    pub fn info(&self) -> &ConnInfo {
        self.info
    }

    /// The connection's id.
    pub fn id(&self) -> u64 {
        self.info.id()
    }

    /// The per-connection state.
    pub fn state(&self) -> &S {
        self.state
    }

    /// The per-connection state, mutably.
    pub fn state_mut(&mut self) -> &mut S {
        self.state
    }

    /// Frames and queues a reply. Fails, queuing nothing, if the encoder
    /// refuses `payload` or the reply buffer lacks room for the whole
    /// frame ([`Error::BufferTooSmall`](fastnet_proto::Error::BufferTooSmall);
    /// once replies pass the high-water mark the driver writes before the
    /// next frame, so this only happens when one frame's replies exceed
    /// what is left of the buffer).
    pub fn send(&mut self, payload: &[u8]) -> Result<(), fastnet_proto::Error> {
        self.out.send(payload)
    }

    /// Bytes free in the reply buffer.
    pub fn reply_room(&self) -> usize {
        self.out.free()
    }

    /// Closes the connection after this frame: replies queued (also after
    /// this call, within this frame) are flushed, later frames are not
    /// handed out, the reason is [`CloseReason::Local`].
    pub fn close(&mut self) {
        self.out.close();
    }

    /// A handle to push frames to this connection later, from anywhere.
    pub fn handle(&self) -> ConnHandle {
        self.info.handle()
    }

    /// What the TLS handshake negotiated: protocol version, cipher suite,
    /// ALPN protocol, the client's certificates. `None` without TLS.
    /// Feature `tls`.
    #[cfg(feature = "tls")]
    pub fn tls(&self) -> Option<&crate::tls::TlsInfo> {
        self.tls
    }
}

impl<S> fmt::Debug for Ctx<'_, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ctx")
            .field("info", self.info)
            .field("reply_room", &self.out.free())
            .finish_non_exhaustive()
    }
}
