//! One connection's task: the `Connection` driver loop over its runtime
//! [`Socket`], with buffers borrowed from the pool only while bytes are in
//! flight.
//!
//! Per wake-up the task reads until the socket is drained (a read that
//! fills less than the buffer ends it, so no read is wasted on
//! `WouldBlock`), lends every complete frame to the handler straight from
//! the receive buffer ([`Conn::poll_frame`]: no copy, replies encoded into
//! the reply ring through the frame's outbox; `on_frame_now` first, then
//! `on_frame` if it declined), and writes all replies with
//! one vectored write. Only if the replies reach the high-water mark does
//! the connection stop handing out frames and write before the next one.
//! Traffic is added to the server statistics once per wake-up.

use std::future::Future;
use std::io;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use fastnet_proto::connection::{Buffers, CloseReason, ConnStats, State};
use smol::{future, Timer};

use crate::handle::{forget, ConnShared, ServerShared, Shared, ABORT, CLOSE, PUSH, SHUTDOWN};
use crate::runtime::{ReadWait, Socket};
use crate::{Ctx, Handler};
use fastnet_driver::server::{Conn, ServerDecoder, ServerEncoder};
use fastnet_driver::socket;
use fastnet_driver::sync::{guard, later};
use fastnet_driver::tls::{Fault, Handshake, Input, Link, TlsError};

/// How a connection's task ended.
enum End {
    Done,
    Aborted,
    Panicked,
}

/// `Driver::timer_at` when no deadline is armed.
const NOT_ARMED: u64 = u64::MAX;

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

/// The task serving one admitted connection until it closes or the server
/// aborts it, or `None` (after `on_close`) if the connection could not be
/// set up.
///
/// The driver is built here, outside the future, so the future stores it
/// once: an `async fn` would also keep its arguments and the pieces the
/// driver is built from, roughly doubling what every idle connection costs.
pub(crate) fn task<H: Handler, D: ServerDecoder, E: ServerEncoder>(
    handler: Arc<H>,
    stream: Socket,
    link: Link,
    shared: Arc<ConnShared<D, E>>,
    state: H::State,
) -> Option<impl Future<Output = ()> + Send> {
    let mut driver = Driver::new(handler, stream, link, shared, state)?;
    Some(async move {
        let end = {
            let shared = driver.shared.clone();
            let mut run = std::pin::pin!(driver.run());
            // Every poll registers the waker (a compare unless it changed)
            // before anything looks at the signal flags, so a signal is
            // never missed, also while the handler's future is pending.
            // The closure owns the record and the pinned reference (a
            // borrowing one would keep both twice, in every idle task).
            future::poll_fn(move |cx| {
                shared.register(cx.waker());
                if shared.flags.load(Ordering::SeqCst) & ABORT != 0 {
                    return Poll::Ready(End::Aborted);
                }
                // The handler runs inside: its panic ends this task only.
                match guard(|| run.as_mut().poll(cx)) {
                    Some(poll) => poll.map(|()| End::Done),
                    None => Poll::Ready(End::Panicked),
                }
            })
            .await
        };
        match end {
            End::Aborted => driver.conn.abort(),
            End::Panicked => driver.conn.handle_failure(CloseReason::Panic),
            End::Done => {}
        }
        // `driver` drops here: statistics, buffers, `on_close`.
    })
}

struct Driver<H: Handler, D: ServerDecoder, E: ServerEncoder> {
    handler: Arc<H>,
    /// Also reaches the server (`shared.server`).
    shared: Shared<D, E>,
    /// `None` only after `on_close` took it.
    state: Option<H::State>,
    stream: Socket,
    conn: Conn<D, E>,
    /// The deadline the socket's timer is armed for, in nanoseconds from
    /// the server's epoch, or [`NOT_ARMED`] (an `Option<Instant>` would
    /// take twice the room). Armed no later than `conn.poll_timeout()`;
    /// re-armed lazily (only when the deadline moves earlier or the timer
    /// fired), so traffic does not touch the reactor's timer set.
    timer_at: u64,
    /// Pushed frames are waiting for room in the tx buffer.
    push_backlog: bool,
    /// Shutdown or a handle asked to close; honoured after queued pushes.
    closing_requested: bool,
    /// Frames were pushed since the last park: the push queue may hold
    /// storage to free (otherwise parking leaves its lock alone).
    pushed: bool,
    /// The TLS session and its socket calls (one null pointer without).
    link: Link,
}

impl<H: Handler, D: ServerDecoder, E: ServerEncoder> Driver<H, D, E> {
    /// A driver with a parked connection (no buffers until bytes move).
    fn new(
        handler: Arc<H>,
        stream: Socket,
        link: Link,
        shared: Arc<ConnShared<D, E>>,
        state: H::State,
    ) -> Option<Self> {
        // The shared record is touched on every wake-up.
        stream.prefetch_also(Arc::as_ptr(&shared) as usize);
        let info = shared.info;
        let server = &shared.server;
        // Made with pooled buffers, then parked at once: they go back to
        // the pool and come out again when bytes arrive.
        let bufs = server.pool.take_hot(shared.shard());
        let Ok(conn) = server.connection(bufs, server.now()) else {
            // Validated at bind; cannot happen. Close as reset.
            server.free_slot(&info);
            guard(|| handler.on_close(&info, state, CloseReason::Reset));
            forget(server, &info);
            return None;
        };
        let mut driver = Driver {
            link,
            handler,
            shared: Shared(shared),
            state: Some(state),
            stream,
            conn,
            timer_at: NOT_ARMED,
            push_backlog: false,
            closing_requested: false,
            pushed: false,
        };
        driver.park();
        Some(driver)
    }

    fn server(&self) -> &ServerShared<D, E> {
        &self.shared.server
    }

    fn now(&self) -> Duration {
        self.server().now()
    }

    async fn run(&mut self) {
        // Boxed: the handshake's timer and readiness futures would
        // otherwise widen every connection's task, TLS or not.
        if self.link.is_tls() && !Box::pin(self.tls_handshake()).await {
            return;
        }
        self.open();
        let mut wake = Wake::default();
        loop {
            // A look first: the read-modify-write only when a flag is up.
            let signals = PUSH | CLOSE | SHUTDOWN;
            let shared = &self.shared;
            let flags = if shared.flags.load(Ordering::SeqCst) & signals != 0 {
                shared.flags.fetch_and(!signals, Ordering::SeqCst)
            } else {
                0
            };
            if flags & PUSH != 0 {
                self.push_backlog = true;
                self.pushed = true;
            }
            if flags & (CLOSE | SHUTDOWN) != 0 {
                self.closing_requested = true;
                // No new pushes; those queued still go out.
                shared.queue().seal();
            }
            if wake.timer {
                self.conn.handle_timeout(self.now());
            }
            // On shutdown, frames the peer already sent are still answered:
            // read what the socket holds once more before closing.
            let read = wake.readable || flags & SHUTDOWN != 0 || self.link.has_buffered();
            let more_to_read = read && self.conn.wants_read() && self.read();
            // Every complete frame goes to the handler, in order, straight
            // from the rx buffer, until the decoder needs more bytes (then,
            // at EOF or past the byte limit, the connection starts closing,
            // after the last frame's replies were queued), replies reach the
            // high-water mark (written below, then back here) or the
            // connection starts closing. Written out here, not as an `async
            // fn`: a nested future keeps its own copies of `self` in every
            // connection's task. `loop` and `let else`, not `while let`: the
            // latter keeps the `Option` beside the frame across the
            // handler's `.await`, 40 bytes more.
            if self.conn.wants_poll() {
                loop {
                    let Some(mut frame) = self.conn.poll_frame() else {
                        break;
                    };
                    let Some(state) = self.state.as_mut() else {
                        break;
                    };
                    let (payload, mut out) = frame.parts();
                    // A plain call first: a frame answered there costs no
                    // future, and its replies no dynamic call. In a block,
                    // so its `Ctx` is not kept across the `.await` below
                    // (that would add 48 bytes to every connection's task).
                    let answered = {
                        let mut now =
                            Ctx::new(&self.shared, &mut *state, &mut out).with_tls(&self.link);
                        self.handler.on_frame_now(&mut now, payload)
                    };
                    if answered {
                        continue;
                    }
                    let mut ctx = Ctx::new(&self.shared, state, &mut out).with_tls(&self.link);
                    self.handler.on_frame(&mut ctx, payload).await;
                }
            }
            if self.push_backlog {
                self.drain_push();
            }
            if self.closing_requested {
                // Waits for queued pushes too, within the drain timeout.
                self.conn.close();
            }
            let mut flushed = self.write();
            // Room again: queue the rest and write until the socket is
            // full or the pushes are out (the PUSH flag is already spent:
            // pushes left queued here would wait for the next one).
            while self.push_backlog && flushed == Flushed::All && self.drain_push() > 0 {
                flushed = self.write();
            }
            self.report();
            if self.conn.is_closed() {
                return;
            }
            if self.conn.state() != State::Open && !self.closing_requested {
                self.closing_requested = true;
                self.shared.queue().seal();
            }
            if self.conn.should_yield() {
                // This wake's work budget is spent: the thread's other
                // connections (and the accept loop) run first, then this
                // one carries on where it stopped, without waiting (bytes
                // may be left in the socket and no event will say so).
                future::yield_now().await;
                self.conn.begin_wake();
                wake = Wake {
                    readable: true,
                    ..Wake::default()
                };
                continue;
            }
            // Go around without waiting if the socket may hold more, or
            // frames wait in rx (the write lifted backpressure).
            if (more_to_read && self.conn.wants_read()) || self.conn.wants_poll() {
                wake = Wake {
                    readable: more_to_read,
                    ..Wake::default()
                };
                continue;
            }
            if !self.push_backlog {
                self.park();
            }
            self.arm_timer();
            let want_read = self.conn.wants_read();
            let want_write = self.conn.wants_write() || self.link.wants_write();
            let mut read_wait = ReadWait::default();
            wake = future::poll_fn(|cx| self.poll_wait(cx, want_read, want_write, &mut read_wait))
                .await;
            self.conn.begin_wake();
        }
    }

    /// Waits for a signal, readiness in the wanted directions, or the timer.
    /// `read_wait` is this wait's (see [`ReadWait`]).
    fn poll_wait(
        &mut self,
        cx: &mut Context<'_>,
        read: bool,
        write: bool,
        read_wait: &mut ReadWait,
    ) -> Poll<Wake> {
        // The task's wrapper registered the waker before this poll.
        let shared = &self.shared;
        let mut wake = Wake::default();
        let signalled = shared.flags.load(Ordering::SeqCst) & (PUSH | CLOSE | SHUTDOWN) != 0;
        if self.timer_at != NOT_ARMED && self.stream.poll_timer(cx).is_ready() {
            self.timer_at = NOT_ARMED;
            wake.timer = true;
        }
        if write && self.stream.poll_writable(cx).is_ready() {
            wake.writable = true;
        }
        if read {
            let other_cause = signalled || wake.timer || wake.writable;
            wake.readable = self
                .stream
                .poll_readable(cx, read_wait, other_cause)
                .is_ready();
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
        let now = self.now();
        if self.link.is_tls() {
            return match self
                .link
                .read(self.stream.get_ref(), &mut self.conn, || now, false)
            {
                Ok(Input::Full) => true,
                Ok(Input::Drained) => false,
                Ok(Input::Eof) => {
                    self.conn.handle_eof(now);
                    false
                }
                Err(fault) => {
                    self.failed(fault);
                    false
                }
            };
        }
        self.stream.begin_read();
        loop {
            let Some(buf) = self.conn.read_buf() else {
                // No room: bytes may be left, and no new event will say so.
                self.stream.still_readable();
                return true;
            };
            let offered = buf.len();
            match socket::read(self.stream.get_ref(), buf) {
                Ok(0) => {
                    // Frames that arrived before the EOF are still handed
                    // out and answered; the connection closes after them.
                    self.conn.handle_eof(now);
                    return false;
                }
                Ok(n) => {
                    self.conn.handle_read(n, now);
                    if n < offered && !self.stream.peer_closed() {
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

    /// Tells the handler the connection is open; what it queues goes out
    /// with the first write.
    fn open(&mut self) {
        self.unpark();
        let Some(state) = self.state.as_mut() else {
            return;
        };
        let mut ctx = Ctx::new(&self.shared, state, &mut self.conn).with_tls(&self.link);
        self.handler.on_open(&mut ctx);
    }

    /// One vectored write of everything queued (again only if the socket
    /// took all of it and more was queued meanwhile).
    fn write(&mut self) -> Flushed {
        let now = self.now();
        if self.link.is_tls() {
            return match self
                .link
                .write(self.stream.get_ref(), &mut self.conn, || now, false)
            {
                Ok(w) if w.blocked => Flushed::Blocked,
                Ok(_) => Flushed::All,
                Err(fault) => {
                    self.failed(fault);
                    Flushed::All
                }
            };
        }
        if self.conn.wants_write() {
            self.stream.begin_write();
        }
        while self.conn.wants_write() {
            let (a, b) = self.conn.poll_transmit();
            let total = a.len() + b.len();
            let res = socket::write_slices(self.stream.get_ref(), a, b);
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

    /// Runs the TLS handshake within its deadline (the session's); a
    /// shutdown or close request ends it early. Returns whether the
    /// connection goes on.
    async fn tls_handshake(&mut self) -> bool {
        let shared = self.shared.clone();
        let server = &shared.server;
        // The task's wrapper registered the waker before this poll.
        let stopped = future::poll_fn(|_| {
            if shared.flags.load(Ordering::Acquire) & (CLOSE | SHUTDOWN) != 0 {
                Poll::Ready(Err(None))
            } else {
                Poll::Pending
            }
        });
        let handshake = async {
            // TLS connections are always made on async-io (`admit`).
            let stream = self.stream.as_async().ok_or(None)?;
            loop {
                let read = match self
                    .link
                    .handshake(stream.get_ref(), server.epoch.elapsed())
                {
                    Ok(Handshake::Done) => return Ok(()),
                    Ok(Handshake::Again) => continue,
                    Ok(Handshake::Read) => true,
                    Ok(Handshake::Write) => false,
                    Err(e) => return Err(Some(e)),
                };
                // Past the deadline the next step fails with the timeout; a
                // readiness error, with the socket's own error.
                let deadline = async {
                    match self.link.poll_timeout() {
                        Some(at) => Timer::at(later(server.epoch, at)).await,
                        None => future::pending().await,
                    };
                    Ok(())
                };
                let _ = if read {
                    future::or(stream.readable(), deadline).await
                } else {
                    future::or(stream.writable(), deadline).await
                };
            }
        };
        match future::or(handshake, stopped).await {
            Ok(()) => {
                server.tls.handshake_done();
                true
            }
            Err(None) => {
                self.conn.handle_failure(CloseReason::Local);
                false
            }
            Err(Some(e)) => {
                server.tls_failed(&self.shared.info, &e, true);
                self.tls_error(&e);
                self.conn.handle_failure(e.close_reason());
                false
            }
        }
    }

    /// The socket or an established TLS session failed: a TLS failure is
    /// counted and reported, and closes with its alert (sent by the
    /// goodbye on drop); a socket failure resets.
    fn failed(&mut self, fault: Fault) {
        match fault {
            Fault::Io(_) => self.conn.handle_reset(),
            Fault::Tls(e) => {
                self.server().tls_failed(&self.shared.info, &e, false);
                self.tls_error(&e);
                self.conn.handle_failure(e.close_reason());
            }
        }
    }

    /// Tells the handler about a TLS failure.
    fn tls_error(&self, e: &TlsError) {
        #[cfg(feature = "tls")]
        guard(|| self.handler.on_tls_error(&self.shared.info, e));
        // Without the feature no handler hook exists (and another crate
        // in the build may have turned fastnet-driver's `tls` on, so the
        // error type need not be empty).
        #[cfg(not(feature = "tls"))]
        let _ = e;
    }

    /// Moves pushed frames into the connection, as many as fit; returns
    /// how many moved.
    fn drain_push(&mut self) -> usize {
        let shared = self.shared.clone();
        let mut q = shared.queue();
        if !q.is_empty() {
            self.unpark();
        }
        let moved = self.conn.handle_pushes(&mut q, self.now());
        self.push_backlog = !q.is_empty();
        moved
    }

    /// Arms the timer for `poll_timeout` if it is not already armed for an
    /// earlier instant.
    fn arm_timer(&mut self) {
        let Some(at) = self.conn.poll_timeout() else {
            return;
        };
        // Below NOT_ARMED even when saturated (584 years on: never).
        let nanos = u64::try_from(at.as_nanos()).unwrap_or(NOT_ARMED - 1);
        if nanos < self.timer_at {
            let at = later(self.server().epoch, at);
            self.stream.set_timer(at);
            self.timer_at = nanos;
        }
    }

    /// Adds this wake-up's traffic to the server statistics (taken from
    /// the connection: no copy of what was already added is kept).
    fn report(&mut self) {
        let traffic = self.conn.take_stats();
        if traffic != ConnStats::default() {
            self.shared
                .server
                .stats
                .add_conn_on(self.shared.shard(), &traffic);
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
            self.server().pool.give_hot(self.shared.shard(), bufs);
            // An idle connection keeps no push storage either.
            if self.pushed {
                self.pushed = false;
                self.shared.queue().shrink();
            }
        }
    }

    /// Borrows buffers from the pool if parked.
    fn unpark(&mut self) {
        if !self.conn.is_parked() {
            return;
        }
        let bufs = self.server().pool.take_hot(self.shared.shard());
        let _ = self.conn.unpark(bufs);
    }
}

impl<H: Handler, D: ServerDecoder, E: ServerEncoder> Drop for Driver<H, D, E> {
    fn drop(&mut self) {
        self.shared.unregister();
        self.conn.abort();
        let reason = self.conn.close_reason().unwrap_or(CloseReason::Local);
        self.link.goodbye(self.stream.get_ref(), reason);
        // Pushes still queued are dropped and counted, then reported.
        let now = self.now();
        self.conn.handle_pushes(&mut self.shared.queue(), now);
        self.report();
        // Give the storage back: clear it, then park it out.
        self.conn.reset(now);
        self.park();
        self.server().free_slot(&self.shared.info);
        self.server().closed(&self.shared.info, reason);
        if let Some(state) = self.state.take() {
            guard(|| self.handler.on_close(&self.shared.info, state, reason));
        }
        forget(self.server(), &self.shared.info);
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CodecSpec, ConnInfo, Server};
    use fastnet_driver::server::SpecDecoder;
    use fastnet_proto::codec::AnyEncoder;
    use std::net::{TcpListener, TcpStream};

    struct Echo;

    impl Handler for Echo {
        type State = ();
        fn on_connect(&self, _: &ConnInfo) -> Option<()> {
            Some(())
        }
        fn on_frame(&self, ctx: &mut Ctx<'_, ()>, frame: &[u8]) -> impl Future<Output = ()> + Send {
            let _ = ctx.send(frame);
            std::future::ready(())
        }
    }

    /// Every idle connection is one task holding this future: keep it small
    /// (memory per idle connection; `examples/idle_memory.rs` measures it
    /// all).
    #[test]
    fn connection_task_stays_small() {
        let server = Server::builder(CodecSpec::lines(1024)).bind().unwrap();
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let s = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let peer = s.local_addr().unwrap();
        let stream = Socket::on_async_io(s).unwrap();
        let info = fastnet_driver::conn::ConnInfo::new(1, peer, std::time::Instant::now(), false);
        let shared = Arc::new(ConnShared::new(info, server.shared.clone(), 0));
        let fut = task(Arc::new(Echo), stream, Link::default(), shared, ()).unwrap();
        let size = std::mem::size_of_val(&fut);
        eprintln!(
            "task future {size} bytes; Conn {}, Driver {}",
            std::mem::size_of::<Conn>(),
            std::mem::size_of::<Driver<Echo, SpecDecoder, AnyEncoder>>()
        );
        // Never polled, never registered: dropping it would report a close
        // for a connection the server never admitted.
        std::mem::forget(fut);
        // 592 on x86_64 with `tls` (its link), 584 without: the driver
        // (its connection keeps its limits in nanoseconds, 64 bytes, only
        // its own decoding state beside a pointer to the server's codec,
        // and no copy of reported statistics; the socket's timer lives in
        // the reactor), the run loop's state (the frame, a one-pointer
        // outbox, the handler's `Ctx` and future across the handler's
        // `.await`, written into `run` rather than a nested future) and
        // the wrapper's. Grows only with a reason.
        assert!(size <= 592, "connection task future is {size} bytes");
    }
}
