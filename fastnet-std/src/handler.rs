//! What the application plugs into a [`Server`](crate::Server): the
//! [`Handler`] trait, and what it sees of a connection ([`ConnInfo`],
//! [`Ctx`]).

use std::io;
use std::net::SocketAddr;

pub use fastnet_driver::conn::{ConnInfo, Ctx};
use fastnet_proto::connection::CloseReason;
use fastnet_proto::server::RejectReason;

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

    /// The connection is open (after the TLS handshake, if any) and about
    /// to be served: a greeting queued with [`Ctx::send`] is its first
    /// bytes, and [`Ctx::handle`] gives a handle to register it for
    /// pushes. Called once, on the connection's worker, before any frame.
    fn on_open(&self, ctx: &mut Ctx<'_, Self::State>) {
        let _ = ctx;
    }

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

    /// Accepting a connection failed with `error`, for a reason that is
    /// the server's (out of file descriptors or memory, say), not the
    /// peer's: the server counts it
    /// ([`StatsSnapshot::accept_errors`](fastnet_proto::server::StatsSnapshot::accept_errors)),
    /// pauses accepting briefly, longer while the failures go on, and
    /// resumes by itself; the connection waits in the kernel's queue
    /// meanwhile. Called on the accept loop's thread, so it should return
    /// quickly; a panic in it is caught and costs nothing.
    fn on_accept_error(&self, error: &io::Error) {
        let _ = error;
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
