//! Per-connection identity and the cross-task handle: [`ConnInfo`],
//! [`ConnHandle`], [`SendError`].

use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Waker;
use std::time::Instant;

use fastnet_proto::connection::PushQueue;
pub use fastnet_proto::connection::SendError;

use crate::server::ServerShared;
use crate::sync::{lock, WakerId};

/// A frame pushed through a [`ConnHandle`] is waiting.
pub(crate) const PUSH: u8 = 1;
/// [`ConnHandle::close`] was called.
pub(crate) const CLOSE: u8 = 2;
/// The server is shutting down: flush and close.
pub(crate) const SHUTDOWN: u8 = 4;
/// The shutdown deadline passed: close at once.
pub(crate) const ABORT: u8 = 8;

/// State shared between a connection's task and its handles.
///
/// `repr(C)`, the fields every wake-up reads first: they share the first
/// cache line, which the reactor fetches ahead of waking the task.
#[repr(C)]
pub(crate) struct ConnShared {
    /// Signals for the task: [`PUSH`], [`CLOSE`], [`SHUTDOWN`], [`ABORT`].
    pub(crate) flags: AtomicU8,
    /// Which waker `waker` holds (written only by the task).
    registered: WakerId,
    /// The buffer pool shard of the connection's thread.
    pub(crate) shard: usize,
    pub(crate) server: Arc<ServerShared>,
    /// The connection task's waker: registered once (a task's waker does
    /// not change between polls) and woken by reference, so a poll costs
    /// no locked instruction for it; signals are rare and take the lock.
    waker: Mutex<Option<Waker>>,
    pub(crate) id: u64,
    pub(crate) peer: SocketAddr,
    pub(crate) connected_at: Instant,
    /// Frames pushed through handles, encoded, until the task moves them
    /// into the connection (`Connection::handle_pushes`).
    pub(crate) push: Mutex<PushQueue>,
}

impl ConnShared {
    pub(crate) fn new(id: u64, peer: SocketAddr, server: Arc<ServerShared>, shard: usize) -> Self {
        ConnShared {
            id,
            peer,
            connected_at: Instant::now(),
            push: Mutex::new(PushQueue::new(server.config.push_queue, server.tx_len)),
            server,
            shard,
            waker: Mutex::new(None),
            registered: WakerId::default(),
            flags: AtomicU8::new(0),
        }
    }

    pub(crate) fn queue(&self) -> MutexGuard<'_, PushQueue> {
        lock(&self.push)
    }

    /// Raises `flag` and wakes the task unless the flag was already up (the
    /// task is then already due to run: no second cross-thread wake-up).
    pub(crate) fn signal(&self, flag: u8) {
        if self.flags.fetch_or(flag, Ordering::SeqCst) & flag == 0 {
            if let Some(w) = lock(&self.waker).as_ref() {
                w.wake_by_ref();
            }
        }
    }

    /// Makes `waker` the task's waker (called by the task on every poll,
    /// before it looks at the flags; a lock only when the waker changed).
    pub(crate) fn register(&self, waker: &Waker) {
        if self.registered.is(waker) {
            return;
        }
        let old = lock(&self.waker).replace(waker.clone());
        self.registered.set(waker);
        drop(old);
        // Pairs with `signal`'s read-modify-write: a flag raised before the
        // registration is seen by the task's next look at the flags.
        std::sync::atomic::fence(Ordering::SeqCst);
    }

    /// Forgets the task's waker (the task ends; a handle may outlive it
    /// and must not keep the task's memory).
    pub(crate) fn unregister(&self) {
        let old = lock(&self.waker).take();
        self.registered.clear();
        drop(old);
    }
}

/// Who a connection is: id, peer, when it connected, and a handle to it.
///
/// Cheap to clone (one reference count).
#[derive(Clone)]
pub struct ConnInfo {
    pub(crate) shared: Arc<ConnShared>,
}

impl ConnInfo {
    /// The connection's id, unique within its server.
    pub fn id(&self) -> u64 {
        self.shared.id
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.shared.peer
    }

    /// When the connection was accepted.
    pub fn connected_at(&self) -> Instant {
        self.shared.connected_at
    }

    /// Whether the connection is served over TLS (what was negotiated is
    /// [`Ctx::tls`](crate::Ctx::tls), once the handshake completed).
    pub fn is_tls(&self) -> bool {
        self.shared.server.is_tls()
    }

    /// A handle to push frames to this connection from any task or thread
    /// (for example to register it for broadcasts in
    /// [`Handler::on_connect`](crate::Handler::on_connect)).
    pub fn handle(&self) -> ConnHandle {
        ConnHandle {
            shared: self.shared.clone(),
        }
    }
}

impl fmt::Debug for ConnInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnInfo")
            .field("id", &self.shared.id)
            .field("peer", &self.shared.peer)
            .finish()
    }
}

/// A cloneable, `Send + Sync` handle to one connection: push frames to it
/// or close it from any task or thread.
///
/// Pushed frames wait in a per-connection queue bounded in bytes
/// ([`push_queue`](crate::ServerBuilder::push_queue)) until the
/// connection's task moves them into its reply buffer, where they leave
/// like replies (counted in `frames_out`, subject to backpressure); a full
/// queue is reported as [`SendError::Full`] at once, never by blocking.
/// Frames still queued when the connection closes are counted as
/// [`undelivered`](Self::undelivered) and in
/// [`StatsSnapshot::pushes_dropped`](fastnet_proto::server::StatsSnapshot::pushes_dropped).
///
/// ```no_run
/// # fn demo(handles: &[fastnet_smol::ConnHandle]) {
/// // Broadcast: every handle gets the frame; slow peers report `Full`.
/// for h in handles {
///     let _ = h.send(b"hello everyone");
/// }
/// # }
/// ```
#[derive(Clone)]
pub struct ConnHandle {
    shared: Arc<ConnShared>,
}

impl ConnHandle {
    /// The connection's id.
    pub fn id(&self) -> u64 {
        self.shared.id
    }

    /// Encodes `payload` with the reply codec and queues it for the peer;
    /// returns at once: [`SendError::Full`] when the queue has no room for
    /// it, [`SendError::Closed`] once the connection is closing.
    pub fn send(&self, payload: &[u8]) -> Result<(), SendError> {
        self.shared
            .queue()
            .push(&self.shared.server.encoder, payload)?;
        self.shared.signal(PUSH);
        Ok(())
    }

    /// Asks the connection to close: frames already queued (replies and
    /// pushes) are flushed, then it closes with
    /// [`CloseReason::Local`](fastnet_proto::connection::CloseReason::Local);
    /// a peer that does not take them within the drain timeout
    /// ([`Limits::drain_timeout`](fastnet_proto::connection::Limits::drain_timeout))
    /// is closed at once.
    pub fn close(&self) {
        self.shared.signal(CLOSE);
    }

    /// Pushed frames that were queued but not sent because the connection
    /// closed first.
    pub fn undelivered(&self) -> u64 {
        self.shared.queue().dropped()
    }

    /// Whether the connection has closed (a `send` would fail with
    /// [`SendError::Closed`]).
    pub fn is_closed(&self) -> bool {
        self.shared.queue().is_closed()
    }
}

impl fmt::Debug for ConnHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnHandle")
            .field("id", &self.shared.id)
            .finish()
    }
}
