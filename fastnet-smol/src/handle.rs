//! Per-connection identity and the cross-task handle: [`ConnInfo`],
//! [`ConnHandle`], [`SendError`].

use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Waker;
use std::time::Instant;

use fastnet_proto::codec::Encoder;

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
    pub(crate) push: Mutex<PushQueue>,
}

/// Frames pushed from other tasks, as `[u32 LE length][payload]` records.
#[derive(Debug, Default)]
pub(crate) struct PushQueue {
    pub(crate) bytes: Vec<u8>,
    pub(crate) frames: usize,
    pub(crate) closed: bool,
}

impl ConnShared {
    pub(crate) fn new(id: u64, peer: SocketAddr, server: Arc<ServerShared>, shard: usize) -> Self {
        ConnShared {
            id,
            peer,
            connected_at: Instant::now(),
            server,
            shard,
            waker: Mutex::new(None),
            registered: WakerId::default(),
            flags: AtomicU8::new(0),
            push: Mutex::new(PushQueue::default()),
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

/// Why [`ConnHandle::send`] did not queue a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SendError {
    /// The connection's push queue holds
    /// [`handle_queue`](crate::ServerBuilder::handle_queue) frames already:
    /// the peer or the connection is not keeping up.
    Full,
    /// The connection is closing or closed.
    Closed,
    /// The reply encoder refuses the payload (too large for the codec or
    /// for the connection's tx buffer, contains a delimiter, …).
    Encode(fastnet_proto::Error),
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::Full => f.write_str("connection push queue full"),
            SendError::Closed => f.write_str("connection closed"),
            SendError::Encode(e) => write!(f, "cannot encode frame: {e}"),
        }
    }
}

impl std::error::Error for SendError {}

/// A cloneable, `Send + Sync` handle to one connection: push frames to it
/// or close it from any task or thread.
///
/// Pushed frames wait in a bounded per-connection queue
/// ([`handle_queue`](crate::ServerBuilder::handle_queue) frames) until the
/// connection's task moves them into its reply buffer; a full queue is
/// reported as [`SendError::Full`], never by blocking.
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

    /// Queues `payload` to be framed and sent to the peer.
    pub fn send(&self, payload: &[u8]) -> Result<(), SendError> {
        let server = &self.shared.server;
        let len = server
            .encoder
            .encoded_len(payload)
            .map_err(SendError::Encode)?;
        if len > server.tx_len || u32::try_from(payload.len()).is_err() {
            return Err(SendError::Encode(fastnet_proto::Error::BufferTooSmall {
                needed: len,
                capacity: server.tx_len,
            }));
        }
        {
            let mut q = self.shared.queue();
            if q.closed {
                return Err(SendError::Closed);
            }
            if q.frames >= server.config.handle_queue {
                return Err(SendError::Full);
            }
            q.bytes
                .extend_from_slice(&(payload.len() as u32).to_le_bytes());
            q.bytes.extend_from_slice(payload);
            q.frames += 1;
        }
        self.shared.signal(PUSH);
        Ok(())
    }

    /// Asks the connection to close: frames already queued are flushed,
    /// then it closes with [`CloseReason::Local`](fastnet_proto::connection::CloseReason::Local).
    pub fn close(&self) {
        self.shared.signal(CLOSE);
    }

    /// Whether the connection has closed (a `send` would fail with
    /// [`SendError::Closed`]).
    pub fn is_closed(&self) -> bool {
        self.shared.queue().closed
    }
}

impl fmt::Debug for ConnHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnHandle")
            .field("id", &self.shared.id)
            .finish()
    }
}
