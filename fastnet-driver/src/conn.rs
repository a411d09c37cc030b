//! What an application sees of one served connection, the same in both
//! drivers: who it is ([`ConnInfo`]), what a frame's handler can do with
//! it ([`Ctx`]), and a handle to push frames to it from anywhere
//! ([`ConnHandle`]). A driver plugs in through two small traits:
//! [`PushTarget`] (its per-connection shared state, as handles see it) and
//! [`Replies`] (where a frame's replies go).

use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use fastnet_proto::codec::Encoder;
use fastnet_proto::connection::{Outbox, PushQueue, SendError};
use fastnet_proto::Error;

use crate::sync::lock;
use crate::tls::{Link, TlsInfo};

/// Who a connection is: its id (unique within its server), its peer, when
/// it was accepted and whether it is encrypted. Plain data, `Copy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConnInfo {
    id: u64,
    peer: SocketAddr,
    connected_at: Instant,
    tls: bool,
}

impl ConnInfo {
    /// Made by the driver when it accepts a connection.
    pub fn new(id: u64, peer: SocketAddr, connected_at: Instant, tls: bool) -> Self {
        ConnInfo {
            id,
            peer,
            connected_at,
            tls,
        }
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

    /// Whether the connection is served over TLS (what was negotiated is
    /// [`Ctx::tls`], once the handshake completed).
    pub fn is_tls(&self) -> bool {
        self.tls
    }
}

/// A connection's shared state as its [`ConnHandle`]s see it: a driver
/// implements this for its per-connection record.
pub trait PushTarget: Send + Sync + 'static {
    /// Who the connection is.
    fn info(&self) -> &ConnInfo;
    /// The connection's push queue.
    fn queue(&self) -> &Mutex<PushQueue>;
    /// Encodes `payload` with the connection's reply encoder into `queue`.
    fn push_into(&self, queue: &mut PushQueue, payload: &[u8]) -> Result<(), SendError>;
    /// Frames were pushed: wake the connection's task or worker.
    fn pushed(&self);
    /// A handle asked to close: wake the connection to close gracefully.
    fn close(&self);
}

/// A cloneable, `Send + Sync` handle to one connection: push frames to it
/// or close it from any thread or task.
///
/// A push never blocks and never touches the socket: it is encoded into
/// the connection's push queue, bounded in bytes (the server's
/// `push_queue` setting), and the connection sends it like a reply
/// (counted in `frames_out`, held back by the high-water mark). A push that
/// does not fit fails at once with [`SendError::Full`]; frames still queued
/// when the connection closes are counted as
/// [`undelivered`](Self::undelivered) and in the server's `pushes_dropped`.
/// A handle that outlives its connection answers [`SendError::Closed`].
///
/// ```no_run
/// # fn demo(handles: &[fastnet_driver::conn::ConnHandle]) {
/// // Broadcast: every handle gets the frame; slow peers report `Full`.
/// for h in handles {
///     let _ = h.send(b"hello everyone");
/// }
/// # }
/// ```
#[derive(Clone)]
pub struct ConnHandle {
    target: Arc<dyn PushTarget>,
}

impl ConnHandle {
    /// A handle to the connection behind `target` (made by the driver).
    pub fn new(target: Arc<dyn PushTarget>) -> Self {
        ConnHandle { target }
    }

    /// The connection's id.
    pub fn id(&self) -> u64 {
        self.target.info().id()
    }

    /// Who the connection is.
    pub fn info(&self) -> &ConnInfo {
        self.target.info()
    }

    /// Encodes `payload` with the reply codec and queues it for the peer;
    /// returns at once: [`SendError::Full`] when the queue has no room for
    /// it, [`SendError::Closed`] once the connection is closing, and
    /// [`SendError::Encode`] when the frame can never be sent. Frames from
    /// one thread keep their order.
    pub fn send(&self, payload: &[u8]) -> Result<(), SendError> {
        self.target
            .push_into(&mut lock(self.target.queue()), payload)?;
        self.target.pushed();
        Ok(())
    }

    /// Asks the connection to close: it stops reading, flushes queued
    /// replies and pushes, and closes with
    /// [`CloseReason::Local`](fastnet_proto::connection::CloseReason::Local);
    /// a peer that does not take them within the drain timeout
    /// ([`Limits::drain_timeout`](field@fastnet_proto::connection::Limits::drain_timeout))
    /// is closed at once.
    pub fn close(&self) {
        self.target.close();
    }

    /// Whether the connection takes no more pushes (it is closing or
    /// closed).
    pub fn is_closed(&self) -> bool {
        lock(self.target.queue()).is_closed()
    }

    /// Pushed frames that were queued but never sent because the
    /// connection closed first.
    pub fn undelivered(&self) -> u64 {
        lock(self.target.queue()).dropped()
    }
}

impl fmt::Debug for ConnHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnHandle")
            .field("id", &self.id())
            .field("peer", &self.info().peer_addr())
            .finish_non_exhaustive()
    }
}

/// Where a frame's replies go: the connection's reply ring, through the
/// outbox of the frame being handled.
pub trait Replies {
    /// Queues a reply; see [`Ctx::send`].
    fn send(&mut self, payload: &[u8]) -> Result<(), Error>;
    /// Bytes free in the reply buffer.
    fn free(&self) -> usize;
    /// Closes after this frame; see [`Ctx::close`].
    fn close(&mut self);
}

impl<E: Encoder, T: AsRef<[u8]> + AsMut<[u8]>> Replies for Outbox<'_, E, T> {
    // Forced: where the driver calls a handler as a plain function (every
    // fastnet-std frame, fastnet-smol's `on_frame_now`), the call through
    // `Ctx` resolves to this and the reply's encoding then inlines into
    // the frame loop (17 and 22 instructions a pipelined frame,
    // BENCHMARKS.md).
    #[inline(always)]
    fn send(&mut self, payload: &[u8]) -> Result<(), Error> {
        Outbox::send(self, payload)
    }

    fn free(&self) -> usize {
        Outbox::free(self)
    }

    fn close(&mut self) {
        Outbox::close(self);
    }
}

/// Outside a frame (`on_open`), replies go straight to the connection.
impl<D, E, R, T> Replies for fastnet_proto::Connection<D, E, R, T>
where
    D: fastnet_proto::codec::Decoder,
    E: Encoder,
    R: AsRef<[u8]> + AsMut<[u8]>,
    T: AsRef<[u8]> + AsMut<[u8]>,
{
    fn send(&mut self, payload: &[u8]) -> Result<(), Error> {
        fastnet_proto::Connection::send(self, payload)
    }

    fn free(&self) -> usize {
        self.tx_free()
    }

    fn close(&mut self) {
        fastnet_proto::Connection::close(self);
    }
}

/// The connection a [`Ctx`] belongs to, as the driver lends it: who it
/// is, and handles to it.
pub trait HandleSource {
    /// Who the connection is.
    fn info(&self) -> &ConnInfo;
    /// A new handle.
    fn handle(&self) -> ConnHandle;
}

/// What a handler can do with its connection while it handles an event:
/// read who it is and its state, queue replies, close it, take a
/// [`ConnHandle`] to push frames later from elsewhere.
pub struct Ctx<'a, S> {
    state: &'a mut S,
    // `Send` and `Sync` so an async handler's future can hold the context
    // across `.await`s and still move between threads.
    out: &'a mut (dyn Replies + Send),
    handles: &'a (dyn HandleSource + Sync),
    #[cfg_attr(not(feature = "tls"), allow(dead_code))]
    tls: Option<&'a TlsInfo>,
}

impl<'a, S> Ctx<'a, S> {
    /// A context (made by the driver for each event).
    pub fn new(
        handles: &'a (dyn HandleSource + Sync),
        state: &'a mut S,
        out: &'a mut (dyn Replies + Send),
    ) -> Self {
        Ctx {
            state,
            out,
            handles,
            tls: None,
        }
    }

    /// With what the connection's TLS handshake negotiated, if it has TLS
    /// (set by the driver).
    pub fn with_tls(mut self, link: &'a Link) -> Self {
        self.tls = link.info();
        self
    }
}

impl<S> Ctx<'_, S> {
    /// Who this connection is.
    pub fn info(&self) -> &ConnInfo {
        self.handles.info()
    }

    /// The connection's id (`info().id()`).
    pub fn id(&self) -> u64 {
        self.info().id()
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
    /// buffer; it leaves with the replies to the other frames of the same
    /// read, in one write. Fails, queuing nothing, if the encoder refuses
    /// the payload or the reply buffer lacks room for the whole frame
    /// ([`Error::BufferTooSmall`]; once replies pass the high-water mark
    /// the driver writes before the next frame, so this happens only when
    /// one frame's replies exceed what is left of the buffer).
    pub fn send(&mut self, payload: &[u8]) -> Result<(), Error> {
        self.out.send(payload)
    }

    /// Bytes free in the reply buffer.
    pub fn reply_room(&self) -> usize {
        self.out.free()
    }

    /// Closes the connection after this frame: replies queued (also after
    /// this call, within this frame) are flushed, later frames are not
    /// handed out, the reason is
    /// [`CloseReason::Local`](fastnet_proto::connection::CloseReason::Local).
    pub fn close(&mut self) {
        self.out.close();
    }

    /// A handle to push frames to this connection later, from any thread
    /// or task.
    pub fn handle(&self) -> ConnHandle {
        self.handles.handle()
    }

    /// What the TLS handshake negotiated: protocol version, cipher suite,
    /// ALPN protocol, the client's certificates. `None` without TLS.
    /// Feature `tls`.
    #[cfg(feature = "tls")]
    pub fn tls(&self) -> Option<&TlsInfo> {
        self.tls
    }
}

impl<S> fmt::Debug for Ctx<'_, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ctx")
            .field("info", self.info())
            .field("reply_room", &self.out.free())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fastnet_proto::codec::CodecSpec;
    use fastnet_proto::codec::{AnyEncoder, Encoder};
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Target {
        info: ConnInfo,
        queue: Mutex<PushQueue>,
        encoder: AnyEncoder,
        woken: AtomicUsize,
        closed: AtomicUsize,
    }

    impl PushTarget for Target {
        fn info(&self) -> &ConnInfo {
            &self.info
        }
        fn queue(&self) -> &Mutex<PushQueue> {
            &self.queue
        }
        fn push_into(&self, queue: &mut PushQueue, payload: &[u8]) -> Result<(), SendError> {
            queue.push(&self.encoder, payload)
        }
        fn pushed(&self) {
            self.woken.fetch_add(1, Ordering::SeqCst);
        }
        fn close(&self) {
            self.closed.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_handle_pushes_wakes_and_reports_what_was_never_delivered() {
        let target = Arc::new(Target {
            info: ConnInfo::new(7, "127.0.0.1:9".parse().unwrap(), Instant::now(), false),
            queue: Mutex::new(PushQueue::new(16, 64)),
            encoder: CodecSpec::lines(64).encoder().unwrap(),
            woken: AtomicUsize::new(0),
            closed: AtomicUsize::new(0),
        });
        let h = ConnHandle::new(target.clone());
        assert_eq!(h.id(), 7);
        h.send(b"hello").unwrap();
        assert_eq!(target.woken.load(Ordering::SeqCst), 1);
        assert!(matches!(h.send(b"world!!"), Err(SendError::Full { .. })));
        assert_eq!(
            target.woken.load(Ordering::SeqCst),
            1,
            "no wake for a refused push"
        );
        assert!(matches!(h.send(b"a\nb"), Err(SendError::Encode(_))));
        h.close();
        assert_eq!(target.closed.load(Ordering::SeqCst), 1);
        lock(&target.queue).close();
        assert!(h.is_closed());
        assert_eq!(h.undelivered(), 1);
        assert_eq!(h.send(b"late"), Err(SendError::Closed));
        assert!(format!("{h:?}").contains("id: 7"));
        let _ = target.encoder.encoded_len(b"x");
    }
}
