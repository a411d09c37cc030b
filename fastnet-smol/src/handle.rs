//! The state shared between the server, the connection tasks and the
//! handles: the server's [`ServerShared`] and each connection's
//! [`ConnShared`] (signal flags, the task's waker, the push queue). Below
//! both `server.rs` and `conn.rs`, so neither imports the other's state.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Waker;

use atomic_waker::AtomicWaker;
use fastnet_driver::conn::{ConnHandle, ConnInfo, HandleSource, PushTarget};
use fastnet_driver::server::Core;
use fastnet_driver::server::SpecDecoder;
use fastnet_driver::server::{ServerDecoder, ServerEncoder};
use fastnet_proto::codec::AnyEncoder;
use fastnet_proto::connection::{PushQueue, SendError};

use crate::sync::{lock, WakerId};

/// A frame pushed through a [`ConnHandle`] is waiting.
pub(crate) const PUSH: u8 = 1;
/// [`ConnHandle::close`] was called.
pub(crate) const CLOSE: u8 = 2;
/// The server is shutting down: flush and close.
pub(crate) const SHUTDOWN: u8 = 4;
/// The shutdown deadline passed: close at once.
pub(crate) const ABORT: u8 = 8;

/// Everything the accept loop and the connection tasks share; not generic
/// over the handler.
pub(crate) type ServerShared<D = SpecDecoder, E = AnyEncoder> =
    Core<Arc<ConnShared<D, E>>, Smol, D, E>;

/// This driver's part of [`ServerShared`].
#[derive(Debug)]
pub(crate) struct Smol {
    /// The serve future: woken by shutdown and by the last connection.
    pub(crate) serve_waker: AtomicWaker,
}

/// A connection task ended and its close was counted: forget it, and wake
/// `serve` if it was the last.
pub(crate) fn forget<D, E>(shared: &ServerShared<D, E>, info: &ConnInfo) {
    if shared.forget(info) {
        shared.driver.serve_waker.wake();
    }
}

pub(crate) fn signal_all<D, E>(shared: &ServerShared<D, E>, flag: u8) {
    for c in shared.connections() {
        c.signal(flag);
    }
}

/// State shared between a connection's task and its handles.
///
/// `repr(C)`, the fields every wake-up reads first: they share the first
/// cache line, which the reactor fetches ahead of waking the task.
#[repr(C)]
pub(crate) struct ConnShared<D = SpecDecoder, E = AnyEncoder> {
    /// Signals for the task: [`PUSH`], [`CLOSE`], [`SHUTDOWN`], [`ABORT`].
    pub(crate) flags: AtomicU8,
    /// The buffer pool shard of the connection's thread ([`shard`](Self::shard)):
    /// a `u32` beside the flags, so the record is 8 bytes smaller.
    shard: u32,
    /// Which waker `waker` holds (written only by the task).
    registered: WakerId,
    pub(crate) server: Arc<ServerShared<D, E>>,
    /// The connection task's waker: registered once (a task's waker does
    /// not change between polls) and woken by reference, so a poll costs
    /// no locked instruction for it; signals are rare and take the lock.
    waker: Mutex<Option<Waker>>,
    pub(crate) info: ConnInfo,
    /// Frames pushed through handles, encoded, until the task moves them
    /// into the connection (`Connection::handle_pushes`).
    pub(crate) push: Mutex<PushQueue>,
}

impl<D, E> ConnShared<D, E> {
    pub(crate) fn new(info: ConnInfo, server: Arc<ServerShared<D, E>>, shard: usize) -> Self {
        ConnShared {
            info,
            push: Mutex::new(PushQueue::new(server.config.push_queue, server.tx_len)),
            server,
            // Shards are per thread: never near 2^32.
            shard: u32::try_from(shard).unwrap_or(u32::MAX),
            waker: Mutex::new(None),
            registered: WakerId::default(),
            flags: AtomicU8::new(0),
        }
    }

    /// The buffer pool (and statistics) shard of the connection's thread.
    pub(crate) fn shard(&self) -> usize {
        self.shard as usize
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

impl<D: ServerDecoder, E: ServerEncoder> PushTarget for ConnShared<D, E> {
    fn info(&self) -> &ConnInfo {
        &self.info
    }

    fn queue(&self) -> &Mutex<PushQueue> {
        &self.push
    }

    fn push_into(&self, queue: &mut PushQueue, payload: &[u8]) -> Result<(), SendError> {
        queue.push(&self.server.encoder, payload)
    }

    fn pushed(&self) {
        self.signal(PUSH);
    }

    fn close(&self) {
        self.signal(CLOSE);
    }
}

/// A connection's shared state as its task holds it; lent to the
/// handler's `Ctx` as is (no wrapper to keep across the handler's
/// `.await`s: every byte of the task counts for idle connections).
pub(crate) struct Shared<D, E>(pub(crate) Arc<ConnShared<D, E>>);

// By hand: a derived `Clone` would ask the codec to be `Clone`.
impl<D, E> Clone for Shared<D, E> {
    fn clone(&self) -> Self {
        Shared(Arc::clone(&self.0))
    }
}

impl<D, E> std::ops::Deref for Shared<D, E> {
    type Target = Arc<ConnShared<D, E>>;

    fn deref(&self) -> &Arc<ConnShared<D, E>> {
        &self.0
    }
}

impl<D: ServerDecoder, E: ServerEncoder> HandleSource for Shared<D, E> {
    fn info(&self) -> &ConnInfo {
        &self.0.info
    }

    fn handle(&self) -> ConnHandle {
        ConnHandle::new(Arc::clone(&self.0) as Arc<dyn PushTarget>)
    }
}
