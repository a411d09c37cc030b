//! Server push: [`ConnHandle`] and the per-connection state it shares with
//! the worker.
//!
//! # How a push reaches the peer while the worker sleeps in `read`
//!
//! A push is a command on the connection's state machine, which only the
//! worker touches: [`ConnHandle::send`] encodes the frame into the
//! connection's [`PushQueue`] (bounded in bytes) and returns at once,
//! never writing to the socket itself, so a peer that does not read cannot
//! stall the pushing thread ([`SendError::Full`] tells it so instead). It
//! then wakes the worker: once the handler has made a handle, the worker
//! waits for its socket *and* a wake-up socket pair (`poll`), so it moves
//! the frame into the connection (`Connection::handle_pushes`) and writes
//! it with the replies, counted, backpressured and timed like them.
//! Connections without handles keep the plain blocking `read` (one system
//! call per wait).

use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use fastnet_driver::conn::{ConnHandle, ConnInfo, HandleSource, PushTarget};
use fastnet_driver::server::{ServerEncoder, SharedEncoder};
use fastnet_proto::codec::AnyEncoder;
use fastnet_proto::connection::{PushQueue, SendError};

pub(crate) use fastnet_driver::sync::lock;

/// What the worker, the server and every [`ConnHandle`] of one connection
/// share.
///
/// `repr(C)` keeps the fields the worker reads on every request (the
/// socket and the flags) together at the front, in one cache line: with a
/// thread per connection, that line is cold after every switch.
#[derive(Debug)]
#[repr(C)]
pub(crate) struct ConnShared<E = AnyEncoder> {
    pub(crate) stream: TcpStream,
    /// The handler made a [`ConnHandle`] (on the worker's thread, so the
    /// worker reads this without ordering concerns): from then on the
    /// worker also waits for pushes.
    handles: AtomicBool,
    /// Frames were pushed since the worker last looked.
    pushed: AtomicBool,
    /// A handle asked to close.
    pub(crate) close_requested: AtomicBool,
    pub(crate) info: ConnInfo,
    encoder: SharedEncoder<E>,
    pub(crate) push: Mutex<PushQueue>,
    /// Wakes the worker out of its wait; made with the first handle.
    pub(crate) wake: OnceLock<crate::wake::Wake>,
}

impl<E> ConnShared<E> {
    pub(crate) fn new(
        info: ConnInfo,
        stream: TcpStream,
        encoder: SharedEncoder<E>,
        push: PushQueue,
    ) -> Self {
        ConnShared {
            info,
            stream,
            encoder,
            push: Mutex::new(push),
            handles: AtomicBool::new(false),
            pushed: AtomicBool::new(false),
            close_requested: AtomicBool::new(false),
            wake: OnceLock::new(),
        }
    }

    /// Whether frames were pushed since the last call (clears the flag).
    pub(crate) fn take_pushed(&self) -> bool {
        self.pushed.load(Ordering::Relaxed) && self.pushed.swap(false, Ordering::AcqRel)
    }

    /// Frames are still queued: look again after the next write.
    pub(crate) fn set_pushed(&self) {
        self.pushed.store(true, Ordering::Release);
    }

    /// Takes no more pushes and drops those still queued (counted).
    pub(crate) fn close_queue(&self) {
        lock(&self.push).close();
    }

    /// Wakes the worker out of a blocked `read` (it then sees end of input
    /// and checks why).
    pub(crate) fn wake(&self) {
        let _ = self.stream.shutdown(Shutdown::Read);
    }

    /// Whether a handle was ever made for this connection.
    pub(crate) fn has_handles(&self) -> bool {
        self.handles.load(Ordering::Relaxed)
    }
}

impl<E: ServerEncoder> PushTarget for ConnShared<E> {
    fn info(&self) -> &ConnInfo {
        &self.info
    }

    fn queue(&self) -> &Mutex<PushQueue> {
        &self.push
    }

    fn push_into(&self, queue: &mut PushQueue, payload: &[u8]) -> Result<(), SendError> {
        queue.push(&self.encoder, payload)
    }

    fn pushed(&self) {
        self.pushed.store(true, Ordering::Release);
        if let Some(wake) = self.wake.get() {
            wake.signal();
        }
    }

    fn close(&self) {
        self.close_requested.store(true, Ordering::SeqCst);
        self.wake();
    }
}

/// Makes handles to a connection: from the first one on, its worker waits
/// for pushes too (a wake-up pair; see the module docs).
pub(crate) struct Handles<'a, E>(pub(crate) &'a Arc<ConnShared<E>>);

impl<E: ServerEncoder> HandleSource for Handles<'_, E> {
    fn info(&self) -> &ConnInfo {
        &self.0.info
    }

    fn handle(&self) -> ConnHandle {
        let shared = self.0;
        // Handles are made on the worker's own thread (a `Ctx` lives only
        // in its callbacks), so the worker sees the flag before it waits.
        if !shared.handles.load(Ordering::Relaxed) {
            // Without a wake-up pair (out of descriptors) pushes still go
            // out: the worker then looks for them at a short interval.
            if let Ok(wake) = crate::wake::Wake::new() {
                let _ = shared.wake.set(wake);
            }
            shared.handles.store(true, Ordering::Relaxed);
        }
        ConnHandle::new(Arc::clone(shared) as Arc<dyn PushTarget>)
    }
}
