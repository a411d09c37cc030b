//! One connection on its worker: the `Connection` driver loop over a
//! blocking socket, plain or through a TLS session.

use std::io;
use std::net::TcpStream;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fastnet_driver::server::{Conn, ServerDecoder, ServerEncoder};
use fastnet_driver::socket;
use fastnet_driver::sync::{guard, later};
use fastnet_driver::tls::{Fault, Handshake, Input, Link, TlsError};
use fastnet_proto::connection::{Buffers, CloseReason, State};
use fastnet_proto::server::RejectReason;

use crate::handle::{lock, ConnShared, Handles};
use crate::handler::{Ctx, Handler};
use crate::server::Inner;
use crate::wake::Ready;

/// How long a connection between frames keeps its buffers (see
/// `Inner::rest`): long enough that a request-reply client never waits
/// for them, short enough that idle connections hold none.
const IDLE_PARK: Duration = Duration::from_millis(200);

/// Frees a connection's admission and registry slots however its worker
/// leaves (a panicking handler included).
struct Release<'a, H, D, E> {
    inner: &'a Inner<H, D, E>,
    shared: &'a ConnShared<E>,
}

impl<H, D, E> Drop for Release<'_, H, D, E> {
    fn drop(&mut self) {
        self.shared.close_queue();
        let _ = self.shared.stream.shutdown(std::net::Shutdown::Both);
        self.inner.core.forget(&self.shared.info);
    }
}

/// The socket timeout currently set, to skip redundant `setsockopt` calls.
struct SocketTimeout {
    current: Option<Duration>,
}

impl SocketTimeout {
    /// Makes a blocking read return no later than `wait` from now. A
    /// shorter timeout than asked is kept (the loop wakes early, finds
    /// nothing due and sets a new one), so a steadily moving deadline costs
    /// no system call per read.
    fn set(&mut self, stream: &TcpStream, wait: Option<Duration>) {
        let wait = wait.map(|w| w.max(Duration::from_millis(1)));
        let keep = match (self.current, wait) {
            (None, None) => true,
            (Some(cur), Some(w)) => cur <= w && cur >= w / 2,
            _ => false,
        };
        if keep {
            return;
        }
        // Three quarters of the wait, so the next few reads can keep it.
        let next = wait.map(|w| {
            if w > Duration::from_millis(8) {
                w - w / 4
            } else {
                w
            }
        });
        if stream.set_read_timeout(next).is_ok() {
            self.current = next;
        }
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

impl<H: Handler, D: ServerDecoder, E: ServerEncoder> Inner<H, D, E> {
    /// Serves one connection, start to end, on the calling worker.
    pub(crate) fn serve_conn(&self, shared: &Arc<ConnShared<E>>, mut link: Link) {
        let _release = Release {
            inner: self,
            shared,
        };
        let mut state = match guard(|| self.handler.on_connect(&shared.info)) {
            Some(Some(state)) => state,
            Some(None) => return self.reject(shared.info.peer_addr(), RejectReason::Refused),
            None => {
                // Its slot goes back with `_release`.
                self.core.accepted(&shared.info);
                self.core.closed(&shared.info, CloseReason::Panic);
                return;
            }
        };
        let span = self.core.accepted(&shared.info);
        let _in_span = span.enter();
        if let Err(reason) = self.tls_handshake(shared, &mut link) {
            self.finish(shared, &mut link, state, reason);
            return;
        }
        let core = &self.core;
        let limits = core.config.limits;
        // A write that makes no progress for the idle or write-stall
        // timeout, or blocks a closing connection past its drain timeout,
        // ends it: the worker must come back to look at its timers.
        let stall = [
            limits.idle_timeout,
            limits.drain_timeout,
            limits.write_stall_timeout,
        ]
        .into_iter()
        .flatten()
        .min();
        let _ = shared.stream.set_write_timeout(stall);
        let conn = core.connection(core.pool.take(0), core.now());
        let reason = match conn {
            Ok(mut conn) => {
                // The handler runs inside: its panic closes this connection
                // only, with its own reason.
                let reason = guard(|| {
                    let handles = Handles(shared);
                    let mut ctx = Ctx::new(&handles, &mut state, &mut conn).with_tls(&link);
                    self.handler.on_open(&mut ctx);
                    self.drive(shared, &mut conn, &mut state, &mut link)
                });
                let reason = reason.unwrap_or_else(|| {
                    // Pushes still queued are dropped and counted.
                    conn.handle_failure(CloseReason::Panic);
                    conn.handle_pushes(&mut lock(&shared.push), core.now());
                    CloseReason::Panic
                });
                core.pool.give(0, conn.into_buffers());
                reason
            }
            // Checked at bind; unreachable unless the settings change.
            Err(_) => CloseReason::Reset,
        };
        self.finish(shared, &mut link, state, reason);
    }

    /// Closes the socket and reports the close.
    fn finish(
        &self,
        shared: &ConnShared<E>,
        link: &mut Link,
        state: H::State,
        reason: CloseReason,
    ) {
        shared.close_queue();
        if link.is_tls() && !self.core.is_aborted() {
            // The close_notify or alert: best effort and brief.
            let _ = shared
                .stream
                .set_write_timeout(Some(Duration::from_millis(100)));
            link.goodbye(&shared.stream, reason);
        }
        let _ = shared.stream.shutdown(std::net::Shutdown::Both);
        self.core.free_slot(&shared.info);
        self.core.closed(&shared.info, reason);
        guard(|| self.handler.on_close(&shared.info, state, reason));
    }

    /// Runs the TLS handshake, if the connection has a session, within its
    /// deadline; on failure, the reason to close with.
    fn tls_handshake(&self, shared: &ConnShared<E>, link: &mut Link) -> Result<(), CloseReason> {
        if !link.is_tls() {
            return Ok(());
        }
        let (stream, epoch) = (&shared.stream, self.core.epoch);
        let result = loop {
            // What is left until the deadline: the longest a socket call
            // may block (at least a millisecond: zero means no timeout).
            let left = link.poll_timeout().map(|at| {
                later(epoch, at)
                    .saturating_duration_since(Instant::now())
                    .max(Duration::from_millis(1))
            });
            let _ = stream.set_read_timeout(left);
            let _ = stream.set_write_timeout(left);
            match link.handshake(stream, epoch.elapsed()) {
                Ok(Handshake::Done) => break Ok(()),
                Ok(_) => {}
                Err(e) => break Err(e),
            }
        };
        let _ = stream.set_read_timeout(None);
        let _ = stream.set_write_timeout(None);
        match result {
            Ok(()) => {
                self.core.tls.handshake_done();
                Ok(())
            }
            // Woken for shutdown in the middle of the handshake.
            Err(_) if self.core.is_shutting_down() => Err(CloseReason::Local),
            Err(e) => {
                self.core.tls_failed(&shared.info, &e, true);
                self.tls_error(shared, &e);
                Err(e.close_reason())
            }
        }
    }

    /// Tells the handler about a TLS failure.
    fn tls_error(&self, shared: &ConnShared<E>, e: &TlsError) {
        #[cfg(feature = "tls")]
        guard(|| self.handler.on_tls_error(&shared.info, e));
        // Without the feature no handler hook exists (and another crate
        // in the build may have turned fastnet-driver's `tls` on, so the
        // error type need not be empty).
        #[cfg(not(feature = "tls"))]
        let _ = (shared, e);
    }

    /// Reads once into `conn` (blocking, up to the socket's timeout),
    /// through the TLS session if there is one.
    fn read(
        &self,
        shared: &ConnShared<E>,
        conn: &mut Conn<D, E>,
        link: &mut Link,
    ) -> Result<Input, Fault> {
        let now = || self.core.now();
        if link.is_tls() {
            return link.read(&shared.stream, conn, now, true);
        }
        let Some(buf) = conn.read_buf() else {
            return Ok(Input::Full);
        };
        match socket::read(&shared.stream, buf) {
            Ok(0) => Ok(Input::Eof),
            Ok(n) => {
                conn.handle_read(n, now());
                Ok(Input::Drained)
            }
            Err(e) => Err(Fault::Io(e)),
        }
    }

    /// The driver loop of [`Connection`]: process, write, then block in
    /// `read` until bytes, end of input, or the next deadline.
    fn drive(
        &self,
        shared: &Arc<ConnShared<E>>,
        conn: &mut Conn<D, E>,
        state: &mut H::State,
        link: &mut Link,
    ) -> CloseReason {
        let stream = &shared.stream;
        let mut timeout = SocketTimeout { current: None };
        loop {
            conn.begin_wake();
            let progress = self.pump(shared, conn, state, link);
            self.core.stats.add_conn(&conn.take_stats());
            if conn.is_closed() {
                break;
            }
            if self.core.is_aborted() {
                conn.abort();
                break;
            }
            if conn.state() == State::Open && shared.close_requested.load(Ordering::Relaxed) {
                // A handle asked while the worker was writing, not reading.
                self.close_gracefully(shared, conn);
            }
            if conn.state() != State::Open {
                // Draining: no new pushes; those queued still go out.
                lock(&shared.push).seal();
            }
            let now = self.core.now();
            let wait = conn.poll_timeout().map(|at| at.saturating_sub(now));
            // Between frames, a wait gives up after IDLE_PARK so that a
            // quiet connection can hand its buffers back (`rest`).
            let between_frames = conn.is_quiescent() && !link.has_buffered();
            let short_wait = match between_frames {
                true => Some(wait.map_or(IDLE_PARK, |w| w.min(IDLE_PARK))),
                false => wait,
            };
            if shared.has_handles() && conn.wants_read() && !link.has_buffered() {
                // Pushes wake the worker; a wait that ends for one goes
                // around to move them (`pump`).
                match crate::wake::wait(stream, shared.wake.get(), short_wait) {
                    Ok(Ready::Input) => {}
                    Ok(Ready::Woken) => continue,
                    Ok(Ready::Timeout) => {
                        conn.handle_timeout(self.core.now());
                        if between_frames && conn.state() == State::Open && conn.is_quiescent() {
                            self.rest(shared, conn);
                        }
                        continue;
                    }
                    Err(_) => {
                        conn.handle_reset();
                        continue;
                    }
                }
            }
            if conn.read_buf().is_none() {
                // Not reading (draining or held back by unsent replies):
                // writes are blocking, so only time can move us on.
                conn.handle_timeout(now);
                if !progress && !conn.is_closed() {
                    if let Some(wait) = wait.filter(|w| !w.is_zero()) {
                        std::thread::sleep(wait.min(Duration::from_millis(10)));
                    }
                }
                continue;
            }
            // The socket timeout changes rarely (`SocketTimeout`), so a busy
            // connection pays no system call for the shorter wait.
            timeout.set(stream, short_wait);
            match self.read(shared, conn, link) {
                Ok(Input::Eof) => {
                    if self.core.is_shutting_down() || shared.close_requested.load(Ordering::SeqCst)
                    {
                        self.close_gracefully(shared, conn);
                    } else {
                        conn.handle_eof(self.core.now());
                    }
                }
                Ok(_) => {}
                Err(Fault::Io(e)) if is_timeout(&e) => {
                    conn.handle_timeout(self.core.now());
                    if between_frames && conn.state() == State::Open && conn.is_quiescent() {
                        self.rest(shared, conn);
                    }
                }
                Err(Fault::Io(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) if self.core.is_aborted() => conn.abort(),
                Err(fault) => self.failed(shared, conn, fault),
            }
        }
        // Closed: pushes still queued are dropped and counted.
        conn.handle_pushes(&mut lock(&shared.push), self.core.now());
        self.core.stats.add_conn(&conn.take_stats());
        conn.close_reason().unwrap_or(CloseReason::Reset)
    }

    /// A quiet connection between frames: gives its buffers back to the
    /// pool and waits, without them, for input, a push, a shutdown or its
    /// next deadline, then takes buffers again. An idle connection then
    /// costs its worker's stack, not its buffers.
    fn rest(&self, shared: &ConnShared<E>, conn: &mut Conn<D, E>) {
        if cfg!(not(unix)) {
            // No `poll`: the read is the only wait, and it needs buffers.
            return;
        }
        let placeholder = Buffers {
            rx: Vec::new(),
            tx: Vec::new(),
        };
        let Ok(bufs) = conn.park(placeholder) else {
            return;
        };
        self.core.pool.give(0, bufs);
        let wait = conn
            .poll_timeout()
            .map(|at| at.saturating_sub(self.core.now()));
        // Whatever ends the wait, the loop looks at it with buffers back.
        // Without a handle nobody can push: wait for input (a shutdown
        // reads as the end of input) or the deadline alone.
        let _ = match shared.has_handles() {
            true => crate::wake::wait(&shared.stream, shared.wake.get(), wait),
            false => crate::wake::wait_input(&shared.stream, wait),
        };
        let _ = conn.unpark(self.core.pool.take(0));
    }

    /// Closes on request (a handle, shutdown): no new pushes, those queued
    /// and the replies go out first, within the drain timeout.
    fn close_gracefully(&self, shared: &ConnShared<E>, conn: &mut Conn<D, E>) {
        let mut queue = lock(&shared.push);
        queue.seal();
        conn.handle_pushes(&mut queue, self.core.now());
        if !queue.is_empty() {
            shared.set_pushed();
        }
        drop(queue);
        conn.close();
    }

    /// Moves frames pushed through handles into the connection, as many as
    /// fit. Returns how many moved.
    fn take_pushes(&self, shared: &ConnShared<E>, conn: &mut Conn<D, E>) -> usize {
        if !shared.take_pushed() {
            return 0;
        }
        let mut queue = lock(&shared.push);
        let moved = conn.handle_pushes(&mut queue, self.core.now());
        if !queue.is_empty() {
            // The rest after the next write.
            shared.set_pushed();
        }
        moved
    }

    /// Hands frames to the handler, moves pushes and writes replies until
    /// none of them moves. Returns whether anything did.
    fn pump(
        &self,
        shared: &Arc<ConnShared<E>>,
        conn: &mut Conn<D, E>,
        state: &mut H::State,
        link: &mut Link,
    ) -> bool {
        let mut any = false;
        loop {
            if conn.should_yield() {
                // The work budget is spent: other threads run first (with
                // a thread per connection, the OS shares the cores).
                std::thread::yield_now();
                conn.begin_wake();
            }
            let pushes = self.take_pushes(shared, conn);
            let frames = if conn.wants_poll() {
                conn.poll_frames(|frame, out| {
                    let handles = Handles(shared);
                    let mut ctx = Ctx::new(&handles, &mut *state, out).with_tls(link);
                    self.handler.on_frame(&mut ctx, frame);
                })
            } else {
                0
            };
            let wrote = self.flush(shared, conn, link);
            if frames == 0 && wrote == 0 && pushes == 0 {
                return any;
            }
            any = true;
            if conn.is_closed() {
                return any;
            }
        }
    }

    /// Writes the connection's replies and pushes (over TLS, through the
    /// session). Returns the bytes written.
    fn flush(&self, shared: &ConnShared<E>, conn: &mut Conn<D, E>, link: &mut Link) -> usize {
        if !conn.wants_write() && !link.wants_write() {
            return 0;
        }
        if link.is_tls() {
            return self.flush_tls(shared, conn, link);
        }
        self.write_replies(shared, conn)
    }

    /// Writes the connection's replies until none are left or the
    /// connection closes. Returns the bytes written.
    fn write_replies(&self, shared: &ConnShared<E>, conn: &mut Conn<D, E>) -> usize {
        let mut total = 0;
        while conn.wants_write() {
            let (a, b) = conn.poll_transmit();
            let written = socket::write_slices(&shared.stream, a, b);
            match written {
                Ok(0) => conn.handle_reset(),
                Ok(n) => {
                    conn.handle_written(n, self.core.now());
                    total += n;
                }
                Err(e) => {
                    self.write_failed(conn, &e);
                    // A stalled write goes back to the loop when there is
                    // a close to act on (its timers, a handle's request).
                    let closing = conn.state() != State::Open
                        || shared.close_requested.load(Ordering::Relaxed);
                    if is_timeout(&e) && closing {
                        break;
                    }
                }
            }
        }
        total
    }

    /// Acts on a failed write: an interrupted one is simply retried, one
    /// that made no progress for the write timeout is the connection's
    /// timeout (idle, or not yet), anything else resets the connection
    /// (aborts it during a forced shutdown).
    fn write_failed(&self, conn: &mut Conn<D, E>, e: &io::Error) {
        match e.kind() {
            io::ErrorKind::Interrupted => {}
            _ if is_timeout(e) => conn.handle_timeout(self.core.now()),
            _ if self.core.is_aborted() => conn.abort(),
            _ => conn.handle_reset(),
        }
    }

    /// [`flush`](Self::flush) over TLS: the session encrypts the queued
    /// replies (both slices of the ring, and records of its own) and writes
    /// them; replies count as written once their ciphertext is, so
    /// backpressure and draining see the socket, not the session. Returns
    /// the ciphertext bytes written.
    fn flush_tls(&self, shared: &ConnShared<E>, conn: &mut Conn<D, E>, link: &mut Link) -> usize {
        loop {
            match link.write(&shared.stream, conn, || self.core.now(), true) {
                Ok(wrote) => return wrote.bytes,
                Err(Fault::Io(e)) => {
                    self.write_failed(conn, &e);
                    let closing = conn.state() != State::Open
                        || shared.close_requested.load(Ordering::Relaxed);
                    if conn.is_closed() || (is_timeout(&e) && closing) {
                        return 0;
                    }
                }
                Err(fault) => {
                    self.failed(shared, conn, fault);
                    return 0;
                }
            }
        }
    }

    /// The socket or the TLS session failed: a TLS failure is counted and
    /// reported, and closes with its alert (sent by the goodbye); a socket
    /// failure resets.
    fn failed(&self, shared: &ConnShared<E>, conn: &mut Conn<D, E>, fault: Fault) {
        match fault {
            Fault::Io(_) => conn.handle_reset(),
            Fault::Tls(e) => {
                self.core.tls_failed(&shared.info, &e, false);
                self.tls_error(shared, &e);
                conn.handle_failure(e.close_reason());
            }
        }
    }
}
