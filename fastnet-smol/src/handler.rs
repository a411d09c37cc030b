//! What the application plugs in: [`Handler`].

use std::future::Future;
use std::io;
use std::net::SocketAddr;

pub use fastnet_driver::conn::{ConnInfo, Ctx};
use fastnet_proto::connection::CloseReason;
use fastnet_proto::server::RejectReason;

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

    /// The connection is open (after the TLS handshake, if any) and about
    /// to be served: a greeting queued with [`Ctx::send`] is its first
    /// bytes, and [`Ctx::handle`] gives a handle to register it for
    /// pushes. Called once, on the connection's task, before any frame.
    fn on_open(&self, ctx: &mut Ctx<'_, Self::State>) {
        let _ = ctx;
    }

    /// A complete frame arrived; `frame` is its payload, borrowed from the
    /// receive buffer. Queue replies with [`Ctx::send`]; they leave
    /// together with the replies to every other frame of the same read, in
    /// one write.
    fn on_frame(
        &self,
        ctx: &mut Ctx<'_, Self::State>,
        frame: &[u8],
    ) -> impl Future<Output = ()> + Send;

    /// Answers a frame at once, without awaiting, if the handler can, and
    /// returns whether it did. A frame answered here does not go to
    /// [`on_frame`](Self::on_frame); a frame declined (`false`, what the
    /// default does) goes there next, so decline before acting on it.
    ///
    /// A handler that answers some or all frames without awaiting
    /// anything implements this beside `on_frame`: the driver calls it as
    /// a plain function in its frame loop, where the compiler sees which
    /// reply buffer the [`Ctx`] holds and inlines each reply's encoding,
    /// instead of building a future and reaching the reply buffer through
    /// a dynamic call (on a 512-byte pipelined echo about a tenth of the
    /// instructions a request, BENCHMARKS.md). Frames are handled one at a
    /// time and in order whichever of the two takes them.
    ///
    /// ```
    /// use fastnet_smol::{Ctx, ConnInfo, Handler};
    ///
    /// /// Answers `ping` at once; other frames wait for a slower answer.
    /// struct Pinger;
    ///
    /// impl Handler for Pinger {
    ///     type State = ();
    ///     fn on_connect(&self, _info: &ConnInfo) -> Option<()> {
    ///         Some(())
    ///     }
    ///     fn on_frame_now(&self, ctx: &mut Ctx<'_, ()>, frame: &[u8]) -> bool {
    ///         frame == b"ping" && ctx.send(b"pong").is_ok()
    ///     }
    ///     async fn on_frame(&self, ctx: &mut Ctx<'_, ()>, frame: &[u8]) {
    ///         smol::Timer::after(std::time::Duration::from_millis(1)).await;
    ///         let _ = ctx.send(frame);
    ///     }
    /// }
    /// ```
    fn on_frame_now(&self, ctx: &mut Ctx<'_, Self::State>, frame: &[u8]) -> bool {
        let _ = (ctx, frame);
        false
    }

    /// The connection closed, for `reason`. Called exactly once per
    /// connection that `on_connect` accepted.
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
    /// meanwhile. Called on the accept loop's task, so it should return
    /// quickly; a panic in it is caught and costs nothing.
    fn on_accept_error(&self, error: &io::Error) {
        let _ = error;
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
