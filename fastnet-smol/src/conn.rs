//! One connection's task: the `Connection` driver loop over an async-io
//! socket, with buffers borrowed from the pool only while bytes are in
//! flight.
//!
//! Per wake-up the task reads until the socket is drained (a read that
//! fills less than the buffer ends it, so no read is wasted on
//! `WouldBlock`), hands every complete frame to the handler, and writes all
//! replies with one vectored write. Traffic is added to the server
//! statistics once per wake-up.

use std::future::Future;
use std::io::{self, IoSlice, Read, Write};
use std::net::TcpStream;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use fastnet_proto::connection::{Buffers, CloseReason, ConnStats, State};
use fastnet_proto::Error;
use smol::{future, Async, Timer};

use crate::handle::{ABORT, CLOSE, PUSH, SHUTDOWN};
use crate::pool::BufSet;
use crate::server::{Conn, ServerShared};
use crate::{ConnInfo, Ctx, Handler};

/// What woke the task.
#[derive(Clone, Copy, Debug, Default)]
struct Wake {
    readable: bool,
    writable: bool,
    timer: bool,
}

/// Outcome of a write attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Flushed {
    /// Nothing left to write.
    All,
    /// The socket took less than offered: wait until writable.
    Blocked,
}

/// Serves one admitted connection until it closes or the server aborts it.
pub(crate) async fn task<H: Handler>(
    shared: Arc<ServerShared>,
    handler: Arc<H>,
    stream: Async<TcpStream>,
    info: ConnInfo,
    state: H::State,
) {
    let now = shared.now();
    let set = shared.pool.take();
    let conn = Conn::new(
        shared.decoder.clone(),
        shared.encoder.clone(),
        Buffers {
            rx: set.rx,
            tx: set.tx,
        },
        shared.config.limits,
        now,
    );
    let Ok(conn) = conn else {
        // Validated at bind; cannot happen. Close as reset.
        handler.on_close(&info, state, CloseReason::Reset);
        shared.release(info.id(), info.peer_addr());
        return;
    };
    let mut driver = Driver {
        shared,
        handler,
        info,
        state: Some(state),
        stream,
        conn,
        stage: set.stage,
        ends: set.ends,
        timer: Timer::never(),
        timer_at: None,
        reported: ConnStats::default(),
        eof_seen: false,
        eof_reported: false,
        push_backlog: false,
        closing_requested: false,
    };
    driver.park();
    let aborted = {
        let flags = &driver.info.shared.clone();
        future::or(
            async {
                driver.run().await;
                false
            },
            future::poll_fn(|cx| {
                flags.waker.register(cx.waker());
                if flags.flags.load(Ordering::Acquire) & ABORT != 0 {
                    Poll::Ready(true)
                } else {
                    Poll::Pending
                }
            }),
        )
        .await
    };
    if aborted {
        driver.conn.abort();
    }
    // `driver` drops here: statistics, buffers, `on_close`.
}

struct Driver<H: Handler> {
    shared: Arc<ServerShared>,
    handler: Arc<H>,
    info: ConnInfo,
    /// `None` only after `on_close` took it.
    state: Option<H::State>,
    stream: Async<TcpStream>,
    conn: Conn,
    /// Payloads of the frames of one read, copied out of the rx buffer so
    /// the async handler can borrow one while the connection takes replies.
    stage: Vec<u8>,
    ends: Vec<usize>,
    /// Armed no later than `conn.poll_timeout()`; re-armed lazily (only
    /// when the deadline moves earlier or the timer fired), so traffic does
    /// not touch the reactor's timer set.
    timer: Timer,
    timer_at: Option<Instant>,
    /// Traffic already added to the server statistics.
    reported: ConnStats,
    /// Read returned 0; reported to `conn` once the frames before it are handled.
    eof_seen: bool,
    eof_reported: bool,
    /// Pushed frames are waiting for room in the tx buffer.
    push_backlog: bool,
    /// Shutdown or a handle asked to close; honoured after queued pushes.
    closing_requested: bool,
}

impl<H: Handler> Driver<H> {
    async fn run(&mut self) {
        let mut wake = Wake::default();
        loop {
            let flags = self
                .info
                .shared
                .flags
                .fetch_and(!(PUSH | CLOSE | SHUTDOWN), Ordering::AcqRel);
            if flags & PUSH != 0 {
                self.push_backlog = true;
            }
            if flags & (CLOSE | SHUTDOWN) != 0 {
                self.closing_requested = true;
            }
            if wake.timer {
                self.conn.handle_timeout(self.shared.now());
            }
            let mut more_to_read = false;
            // On shutdown, frames the peer already sent are still answered:
            // read what the socket holds once more before closing.
            let last_read = flags & SHUTDOWN != 0;
            if (wake.readable || last_read) && self.conn.wants_read() {
                more_to_read = self.read();
            }
            self.process().await;
            if self.push_backlog {
                self.drain_push();
            }
            if self.closing_requested && !self.push_backlog {
                self.conn.close();
            }
            let paused = self.conn.is_backpressured();
            let flushed = self.write();
            if self.push_backlog && flushed == Flushed::All {
                // Room again: queue the rest, write once more.
                self.drain_push();
                self.write();
            }
            self.report();
            if self.conn.is_closed() {
                return;
            }
            if self.conn.state() != State::Open {
                self.info.shared.queue().closed = true;
            }
            // Go around without waiting if the socket may hold more, or the
            // write lifted backpressure (frames may wait in rx).
            let unpaused = paused && !self.conn.is_backpressured() && self.conn.wants_poll();
            let busy = (more_to_read && self.conn.wants_read()) || unpaused;
            if busy {
                wake = Wake {
                    readable: more_to_read,
                    ..Wake::default()
                };
                continue;
            }
            if !self.push_backlog && !self.eof_seen {
                self.park();
            }
            self.arm_timer();
            let want_read = self.conn.wants_read();
            let want_write = self.conn.wants_write();
            wake = future::poll_fn(|cx| self.poll_wait(cx, want_read, want_write)).await;
        }
    }

    /// Waits for a signal, readiness in the wanted directions, or the timer.
    fn poll_wait(&mut self, cx: &mut Context<'_>, read: bool, write: bool) -> Poll<Wake> {
        let shared = &self.info.shared;
        shared.waker.register(cx.waker());
        let mut wake = Wake::default();
        let signalled = shared.flags.load(Ordering::Acquire) & (PUSH | CLOSE | SHUTDOWN) != 0;
        if read && self.stream.poll_readable(cx).is_ready() {
            wake.readable = true;
        }
        if write && self.stream.poll_writable(cx).is_ready() {
            wake.writable = true;
        }
        if self.timer_at.is_some() && Pin::new(&mut self.timer).poll(cx).is_ready() {
            self.timer_at = None;
            wake.timer = true;
        }
        if signalled || wake.readable || wake.writable || wake.timer {
            Poll::Ready(wake)
        } else {
            Poll::Pending
        }
    }

    /// Reads until the socket is drained or the connection wants no more.
    /// Returns whether the last read filled the buffer (more may be there).
    fn read(&mut self) -> bool {
        self.unpark();
        let now = self.shared.now();
        loop {
            let Some(buf) = self.conn.read_buf() else {
                return true;
            };
            let offered = buf.len();
            match self.stream.get_ref().read(buf) {
                Ok(0) => {
                    self.eof_seen = true;
                    return false;
                }
                Ok(n) => {
                    self.conn.handle_read(n, now);
                    if n < offered {
                        return false;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    self.conn.handle_reset();
                    return false;
                }
            }
        }
    }

    /// Hands every complete frame to the handler; reports EOF once the
    /// frames before it are handled (so their replies are still sent);
    /// flushes when replies reach the high-water mark.
    async fn process(&mut self) {
        loop {
            if self.conn.is_closed() {
                return;
            }
            if self.conn.is_backpressured() {
                if !self.flush_blocking().await {
                    return;
                }
                continue;
            }
            self.stage.clear();
            self.ends.clear();
            let (stage, ends) = (&mut self.stage, &mut self.ends);
            let n = self.conn.poll_frames(|frame, _out| {
                stage.extend_from_slice(frame);
                ends.push(stage.len());
            });
            if n == 0 {
                if self.eof_seen && !self.eof_reported {
                    self.eof_reported = true;
                    self.conn.handle_eof(self.shared.now());
                    continue;
                }
                return;
            }
            let mut start = 0;
            for i in 0..self.ends.len() {
                if self.conn.state() != State::Open {
                    break;
                }
                if self.conn.is_backpressured() && !self.flush_blocking().await {
                    return;
                }
                let end = self.ends[i];
                let Some(state) = self.state.as_mut() else {
                    return;
                };
                let mut ctx = Ctx {
                    info: &self.info,
                    state,
                    conn: &mut self.conn,
                };
                let frame = &self.stage[start..end];
                self.handler.on_frame(&mut ctx, frame).await;
                start = end;
            }
        }
    }

    /// Writes until the backpressure lifts, waiting for the socket (and
    /// honouring timeouts). Returns `false` if the connection closed.
    async fn flush_blocking(&mut self) -> bool {
        while self.conn.is_backpressured() || self.conn.state() != State::Open {
            if self.conn.is_closed() || !self.conn.wants_write() {
                break;
            }
            if self.write() == Flushed::Blocked {
                self.arm_timer();
                let wake = future::poll_fn(|cx| self.poll_wait(cx, false, true)).await;
                if wake.timer {
                    self.conn.handle_timeout(self.shared.now());
                }
                if self.info.shared.flags.load(Ordering::Acquire) & ABORT != 0 {
                    self.conn.abort();
                }
            }
        }
        !self.conn.is_closed()
    }

    /// One vectored write of everything queued (again only if the socket
    /// took all of it and more was queued meanwhile).
    fn write(&mut self) -> Flushed {
        let now = self.shared.now();
        while self.conn.wants_write() {
            let (a, b) = self.conn.poll_transmit();
            let total = a.len() + b.len();
            let mut sock = self.stream.get_ref();
            let res = if b.is_empty() {
                sock.write(a)
            } else {
                sock.write_vectored(&[IoSlice::new(a), IoSlice::new(b)])
            };
            match res {
                Ok(0) => {
                    self.conn.handle_reset();
                    return Flushed::All;
                }
                Ok(n) => {
                    self.conn.handle_written(n, now);
                    if n < total {
                        return Flushed::Blocked;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Flushed::Blocked,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    self.conn.handle_reset();
                    return Flushed::All;
                }
            }
        }
        Flushed::All
    }

    /// Moves pushed frames into the tx buffer, as many as fit.
    fn drain_push(&mut self) {
        let shared = self.info.shared.clone();
        let mut q = shared.queue();
        if q.bytes.is_empty() {
            self.push_backlog = false;
            return;
        }
        self.unpark();
        let mut off = 0;
        let mut taken = 0;
        while let Some(header) = q.bytes.get(off..off + 4) {
            let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
            let Some(payload) = q.bytes.get(off + 4..off + 4 + len) else {
                break;
            };
            match self.conn.send(payload) {
                Err(Error::BufferTooSmall { .. }) if self.conn.tx_len() > 0 => break,
                // Sent, or refused for good (closing): either way it is done.
                _ => {
                    off += 4 + len;
                    taken += 1;
                }
            }
        }
        q.bytes.drain(..off);
        q.frames -= taken;
        self.push_backlog = !q.bytes.is_empty();
    }

    /// Arms the timer for `poll_timeout` if it is not already armed for an
    /// earlier instant.
    fn arm_timer(&mut self) {
        let Some(at) = self.conn.poll_timeout() else {
            return;
        };
        let at = self.shared.epoch + at;
        if self.timer_at.map_or(true, |armed| at < armed) {
            self.timer.set_at(at);
            self.timer_at = Some(at);
        }
    }

    /// Adds this wake-up's traffic to the server statistics.
    fn report(&mut self) {
        let now = *self.conn.stats();
        if now != self.reported {
            self.shared.stats.add_conn_delta(&self.reported, &now);
            self.reported = now;
        }
    }

    /// Returns the buffers to the pool if nothing is in flight.
    fn park(&mut self) {
        if self.conn.is_parked() || !self.conn.is_quiescent() {
            return;
        }
        let placeholder = Buffers {
            rx: Vec::new(),
            tx: Vec::new(),
        };
        if let Ok(bufs) = self.conn.park(placeholder) {
            self.shared.pool.give(BufSet {
                rx: bufs.rx,
                tx: bufs.tx,
                stage: std::mem::take(&mut self.stage),
                ends: std::mem::take(&mut self.ends),
            });
            // An idle connection keeps no push storage either.
            let mut q = self.info.shared.queue();
            if q.bytes.is_empty() && q.bytes.capacity() > 0 {
                q.bytes = Vec::new();
            }
        }
    }

    /// Borrows buffers from the pool if parked.
    fn unpark(&mut self) {
        if !self.conn.is_parked() {
            return;
        }
        let set = self.shared.pool.take();
        let bufs = Buffers {
            rx: set.rx,
            tx: set.tx,
        };
        if self.conn.unpark(bufs).is_ok() {
            self.stage = set.stage;
            self.ends = set.ends;
        }
    }
}

impl<H: Handler> Drop for Driver<H> {
    fn drop(&mut self) {
        self.conn.abort();
        let reason = self.conn.close_reason().unwrap_or(CloseReason::Local);
        self.report();
        let stats = &self.shared.stats;
        stats.on_close(reason);
        self.info.shared.queue().closed = true;
        // Give the storage back: clear it, then park it out.
        self.conn.reset(self.shared.now());
        self.park();
        self.shared.release(self.info.id(), self.info.peer_addr());
        if let Some(state) = self.state.take() {
            self.handler.on_close(&self.info, state, reason);
        }
    }
}
