//! Server push: [`ConnHandle`] and the per-connection state it shares with
//! the worker.
//!
//! # How a push reaches the peer while the worker sleeps in `read`
//!
//! The worker blocks in `read` on the socket, and std offers no way to wake
//! a blocked read short of shutting the socket down. So a push does not go
//! through the worker: it is written by whoever holds the connection's
//! *writer lock*. [`ConnHandle::send`] encodes the frame into a bounded
//! queue, then tries to take the writer lock; if it gets it, it writes the
//! queue out itself, on its own thread; if the worker (or another pusher)
//! holds it, that holder drains the queue before letting go and checks
//! again after. The worker writes its own replies under the same lock, and
//! every holder writes whole frames only, so frames never interleave.
//!
//! A push therefore reaches the peer at once, whatever the worker is doing,
//! at the price that the pushing thread may block in `write` while the
//! socket's send buffer is full (a peer that does not read); the other
//! pushers meanwhile see [`SendError::Full`] once `handle_queue` frames wait.

use std::collections::VecDeque;
use std::fmt;
use std::io::Write;
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use fastnet_proto::codec::{AnyEncoder, Encoder};
use fastnet_proto::server::ServerStats;

use crate::handler::ConnInfo;

/// Why [`ConnHandle::send`] did not queue a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SendError {
    /// The connection's push queue holds `handle_queue` frames already (the
    /// peer is not reading fast enough); nothing was queued.
    Full,
    /// The connection is closing or closed.
    Closed,
    /// The reply encoder refused the payload.
    Encode(fastnet_proto::Error),
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::Full => f.write_str("push queue full: the peer is not reading fast enough"),
            SendError::Closed => f.write_str("connection closed"),
            SendError::Encode(e) => write!(f, "cannot encode the frame: {e}"),
        }
    }
}

impl std::error::Error for SendError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SendError::Encode(e) => Some(e),
            _ => None,
        }
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Frames pushed through handles, encoded, waiting for the writer.
#[derive(Debug)]
struct PushQueue {
    frames: VecDeque<Vec<u8>>,
    /// Emptied frame buffers, reused by the next pushes.
    spare: Vec<Vec<u8>>,
    encoder: AnyEncoder,
    limit: usize,
    closed: bool,
}

/// What the worker, the server and every [`ConnHandle`] of one connection
/// share.
#[derive(Debug)]
pub(crate) struct ConnShared {
    pub(crate) info: ConnInfo,
    pub(crate) stream: TcpStream,
    /// Whoever holds it may write to `stream`; it writes whole frames only.
    pub(crate) writer: Mutex<()>,
    queue: Mutex<PushQueue>,
    /// Frames in `queue` (read without the lock, as a hint).
    queued: AtomicUsize,
    /// A handle asked to close.
    pub(crate) close_requested: AtomicBool,
    /// A pusher's write failed: the socket is unusable.
    pub(crate) broken: AtomicBool,
    stats: Arc<ServerStats>,
}

impl ConnShared {
    pub(crate) fn new(
        info: ConnInfo,
        stream: TcpStream,
        encoder: AnyEncoder,
        limit: usize,
        stats: Arc<ServerStats>,
    ) -> Self {
        ConnShared {
            info,
            stream,
            writer: Mutex::new(()),
            queue: Mutex::new(PushQueue {
                frames: VecDeque::new(),
                spare: Vec::new(),
                encoder,
                limit,
                closed: false,
            }),
            queued: AtomicUsize::new(0),
            close_requested: AtomicBool::new(false),
            broken: AtomicBool::new(false),
            stats,
        }
    }

    /// Whether pushed frames may be waiting (a hint: exact under the
    /// writer lock only).
    pub(crate) fn has_pushes(&self) -> bool {
        self.queued.load(Ordering::Relaxed) > 0
    }

    /// Takes no more pushes and drops those still queued.
    pub(crate) fn close_queue(&self) {
        let mut q = lock(&self.queue);
        q.closed = true;
        q.frames.clear();
        self.queued.store(0, Ordering::Relaxed);
    }

    /// Wakes the worker out of a blocked `read` (it then sees end of input
    /// and checks why).
    pub(crate) fn wake(&self) {
        let _ = self.stream.shutdown(Shutdown::Read);
    }

    /// Encodes and queues a pushed frame, then makes sure it gets written.
    fn push(&self, payload: &[u8]) -> Result<(), SendError> {
        {
            let mut q = lock(&self.queue);
            if q.closed {
                return Err(SendError::Closed);
            }
            if q.frames.len() >= q.limit {
                return Err(SendError::Full);
            }
            let mut frame = q.spare.pop().unwrap_or_default();
            frame.clear();
            if let Err(e) = q.encoder.encode_vec(payload, &mut frame) {
                q.spare.push(frame);
                return Err(SendError::Encode(e));
            }
            q.frames.push_back(frame);
            self.queued.fetch_add(1, Ordering::Relaxed);
        }
        self.try_write_pushes();
        Ok(())
    }

    /// Writes the queued pushes if nobody else is writing; whoever is will
    /// write them before it lets go of the writer lock.
    fn try_write_pushes(&self) {
        loop {
            let guard = match self.writer.try_lock() {
                Ok(g) => g,
                Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
                Err(std::sync::TryLockError::WouldBlock) => return,
            };
            self.write_pushes(&guard);
            drop(guard);
            if !self.pushes_pending() {
                return;
            }
        }
    }

    /// Exact check, under the queue lock: a push that was queued after the
    /// last holder's check finds the writer lock free, so checking after
    /// letting go of the lock cannot strand a frame.
    pub(crate) fn pushes_pending(&self) -> bool {
        !lock(&self.queue).frames.is_empty()
    }

    /// Writes every queued push; the caller holds the writer lock.
    /// Returns the bytes written.
    pub(crate) fn write_pushes(&self, _writer: &MutexGuard<'_, ()>) -> usize {
        let mut total = 0;
        loop {
            let Some(frame) = lock(&self.queue).frames.pop_front() else {
                break;
            };
            let result = (&self.stream).write_all(&frame);
            let len = frame.len();
            {
                let mut q = lock(&self.queue);
                q.spare.push(frame);
                self.queued.fetch_sub(1, Ordering::Relaxed);
            }
            match result {
                Ok(()) => {
                    total += len;
                    self.stats.add_traffic(0, 1, 0, len as u64);
                }
                Err(_) => {
                    // The worker sees the broken flag when its read ends.
                    self.broken.store(true, Ordering::SeqCst);
                    let _ = self.stream.shutdown(Shutdown::Both);
                    self.close_queue();
                    break;
                }
            }
        }
        total
    }
}

/// A cloneable, `Send` handle to one connection, for pushing frames to it
/// from other threads (broadcast, server push) or closing it.
///
/// Pushes are bounded: at most `handle_queue` frames wait at once, and a
/// push beyond that fails with [`SendError::Full`] instead of being lost or
/// growing memory. A handle that outlives its connection answers
/// [`SendError::Closed`] (it keeps the closed socket's file descriptor
/// until it is dropped).
#[derive(Clone)]
pub struct ConnHandle {
    shared: Arc<ConnShared>,
}

impl ConnHandle {
    pub(crate) fn new(shared: Arc<ConnShared>) -> Self {
        ConnHandle { shared }
    }

    /// The connection's id.
    pub fn id(&self) -> u64 {
        self.shared.info.id()
    }

    /// Who the connection is.
    pub fn info(&self) -> &ConnInfo {
        &self.shared.info
    }

    /// Encodes `payload` with the reply codec and sends it to the peer.
    ///
    /// When no other thread is writing to this connection, the frame is
    /// written before `send` returns (which may block while the peer's
    /// receive window is full); otherwise it is queued and written by the
    /// thread that is. Frames from one thread keep their order.
    pub fn send(&self, payload: &[u8]) -> Result<(), SendError> {
        self.shared.push(payload)
    }

    /// Asks the connection to close: it stops reading, flushes queued
    /// replies and closes with
    /// [`CloseReason::Local`](fastnet_proto::connection::CloseReason::Local).
    pub fn close(&self) {
        self.shared.close_requested.store(true, Ordering::SeqCst);
        self.shared.wake();
    }

    /// Whether the connection no longer takes pushes.
    pub fn is_closed(&self) -> bool {
        lock(&self.shared.queue).closed
    }
}

impl fmt::Debug for ConnHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnHandle")
            .field("id", &self.id())
            .field("peer", &self.shared.info.peer_addr())
            .finish_non_exhaustive()
    }
}
