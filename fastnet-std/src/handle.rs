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
//!
//! Over TLS the same lock orders the ciphertext: a holder encrypts through
//! the connection's one rustls session and writes the records before it
//! lets go (see `tls::session`), so replies and pushes share one record
//! stream.

use std::collections::VecDeque;
use std::fmt;
use std::io::Write;
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{fence, AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

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

pub(crate) use fastnet_driver::sync::lock;

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

/// What the writer lock guards: over TLS, ciphertext encrypted but not yet
/// written (a write that timed out part way); nothing otherwise.
#[derive(Debug, Default)]
pub(crate) struct Writer {
    /// Records to write, from `out_at` on.
    #[cfg(feature = "tls")]
    pub(crate) out: Vec<u8>,
    #[cfg(feature = "tls")]
    pub(crate) out_at: usize,
    /// Reply bytes (plaintext) whose records are in `out`, reported to the
    /// connection as written once `out` is.
    #[cfg(feature = "tls")]
    pub(crate) plain: usize,
}

impl Writer {
    /// Ciphertext still to write.
    #[cfg(feature = "tls")]
    pub(crate) fn pending(&self) -> &[u8] {
        &self.out[self.out_at..]
    }

    /// `n` bytes of the pending ciphertext were written.
    #[cfg(feature = "tls")]
    pub(crate) fn advance(&mut self, n: usize) {
        self.out_at += n;
        if self.out_at >= self.out.len() {
            self.out.clear();
            self.out_at = 0;
        }
    }

    /// Drops the ciphertext not yet written (the connection is gone).
    #[cfg(feature = "tls")]
    pub(crate) fn discard(&mut self) {
        self.out.clear();
        self.out_at = 0;
        self.plain = 0;
    }
}

/// What the worker, the server and every [`ConnHandle`] of one connection
/// share.
///
/// `repr(C)` keeps the fields the worker reads on every request (the
/// socket and the push flags) together at the front, in one cache line:
/// with a thread per connection, that line is cold after every switch.
#[derive(Debug)]
#[repr(C)]
pub(crate) struct ConnShared {
    pub(crate) stream: TcpStream,
    /// The handler made a [`ConnHandle`] (on the worker's thread, so the
    /// worker reads this without ordering concerns): from then on other
    /// threads may write, and the worker takes the writer lock too.
    handles: AtomicBool,
    /// A handle asked to close.
    pub(crate) close_requested: AtomicBool,
    /// A pusher's write failed: the socket is unusable.
    pub(crate) broken: AtomicBool,
    /// The admission slot was given back.
    pub(crate) released: AtomicBool,
    /// Frames in `queue` (read without the lock, as a hint).
    queued: AtomicUsize,
    pub(crate) info: ConnInfo,
    /// Whoever holds it may write to `stream`; it writes whole frames only.
    pub(crate) writer: Mutex<Writer>,
    /// The TLS session, on a TLS server.
    #[cfg(feature = "tls")]
    pub(crate) tls: Option<crate::tls::SharedSession>,
    queue: Mutex<PushQueue>,
    stats: Arc<ServerStats>,
}

impl ConnShared {
    pub(crate) fn new(
        info: ConnInfo,
        stream: TcpStream,
        encoder: AnyEncoder,
        limit: usize,
        stats: Arc<ServerStats>,
        #[cfg(feature = "tls")] tls: Option<crate::tls::SharedSession>,
    ) -> Self {
        ConnShared {
            info,
            stream,
            writer: Mutex::new(Writer::default()),
            #[cfg(feature = "tls")]
            tls,
            queue: Mutex::new(PushQueue {
                frames: VecDeque::new(),
                spare: Vec::new(),
                encoder,
                limit,
                closed: false,
            }),
            queued: AtomicUsize::new(0),
            handles: AtomicBool::new(false),
            close_requested: AtomicBool::new(false),
            broken: AtomicBool::new(false),
            released: AtomicBool::new(false),
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
        // Pairs with the fence in `pushes_pending`: either this thread's
        // `try_lock` finds the writer lock free, or the holder, after
        // letting go, sees the frame counted.
        fence(Ordering::SeqCst);
        self.try_write_pushes();
        Ok(())
    }

    /// Writes the queued pushes if nobody else is writing; whoever is will
    /// write them before it lets go of the writer lock.
    fn try_write_pushes(&self) {
        loop {
            let mut guard = match self.writer.try_lock() {
                Ok(g) => g,
                Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
                Err(std::sync::TryLockError::WouldBlock) => return,
            };
            self.write_pushes(&mut guard);
            drop(guard);
            if !self.pushes_pending() {
                return;
            }
        }
    }

    /// Whether pushed frames wait, checked by a writer after it let go of
    /// the writer lock. A pusher counts its frame, then (after a fence that
    /// pairs with this one) tries the writer lock: so either it finds the
    /// lock free and writes the frame itself, or this check sees the count.
    /// No queue lock on the worker's path when nobody pushes.
    pub(crate) fn pushes_pending(&self) -> bool {
        fence(Ordering::SeqCst);
        self.queued.load(Ordering::Relaxed) > 0
    }

    /// Writes every queued push; the caller holds the writer lock.
    /// Returns the bytes written.
    pub(crate) fn write_pushes(&self, writer: &mut Writer) -> usize {
        let mut total = 0;
        loop {
            // The count is exact under the writer lock for this purpose: a
            // frame it misses is caught by `pushes_pending` after unlock.
            if self.queued.load(Ordering::Relaxed) == 0 {
                break;
            }
            let Some(frame) = lock(&self.queue).frames.pop_front() else {
                break;
            };
            let result = self.write_frame(writer, &frame);
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

impl ConnShared {
    /// Writes one whole frame (under the writer lock).
    fn write_frame(&self, writer: &mut Writer, frame: &[u8]) -> std::io::Result<()> {
        #[cfg(feature = "tls")]
        if let Some(tls) = &self.tls {
            tls.encrypt(&[frame], &mut writer.out)?;
            (&self.stream).write_all(writer.pending())?;
            let n = writer.pending().len();
            writer.advance(n);
            return Ok(());
        }
        let _ = writer;
        (&self.stream).write_all(frame)
    }

    /// What the TLS handshake negotiated (`None` without TLS, or before
    /// the handshake completed).
    #[cfg(feature = "tls")]
    pub(crate) fn tls_info(&self) -> Option<&crate::tls::TlsInfo> {
        self.tls.as_ref().and_then(|t| t.info())
    }

    /// Whether a [`ConnHandle`] was ever made for this connection.
    pub(crate) fn has_handles(&self) -> bool {
        self.handles.load(Ordering::Relaxed)
    }

    /// Whether the connection runs over TLS.
    pub(crate) fn is_tls(&self) -> bool {
        #[cfg(feature = "tls")]
        if self.tls.is_some() {
            return true;
        }
        false
    }

    /// Whether the TLS session holds records to send.
    pub(crate) fn tls_wants_write(&self) -> bool {
        #[cfg(feature = "tls")]
        if let Some(tls) = &self.tls {
            return tls.wants_write();
        }
        false
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
    /// Made by the connection's worker only (`Ctx::handle`): the worker
    /// stops writing without the writer lock from here on.
    pub(crate) fn new(shared: Arc<ConnShared>) -> Self {
        shared.handles.store(true, Ordering::Relaxed);
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

    /// What the connection's TLS handshake negotiated (`None` without
    /// TLS).
    #[cfg(feature = "tls")]
    pub fn tls(&self) -> Option<&crate::tls::TlsInfo> {
        self.shared.tls_info()
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
