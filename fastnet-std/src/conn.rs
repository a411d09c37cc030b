//! One connection on its worker: the `Connection` driver loop over a
//! blocking socket.

use std::io::{self, IoSlice, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use fastnet_proto::codec::{AnyDecoder, AnyEncoder};
use fastnet_proto::connection::{CloseReason, State};
use fastnet_proto::server::RejectReason;
use fastnet_proto::Connection;

use crate::handle::{lock, ConnShared};
use crate::handler::{Ctx, Handler};
use crate::server::Inner;

type Conn = Connection<AnyDecoder, AnyEncoder, Box<[u8]>, Box<[u8]>>;

/// Frees a connection's admission and registry slots however its worker
/// leaves (a panicking handler included).
struct Release<'a, H> {
    inner: &'a Inner<H>,
    shared: &'a ConnShared,
}

impl<H> Drop for Release<'_, H> {
    fn drop(&mut self) {
        self.shared.close_queue();
        let _ = self.shared.stream.shutdown(std::net::Shutdown::Both);
        self.inner.release(self.shared);
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
                w * 3 / 4
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

impl<H: Handler> Inner<H> {
    /// Serves one connection, start to end, on the calling worker.
    pub(crate) fn serve_conn(&self, shared: &Arc<ConnShared>) {
        let _release = Release {
            inner: self,
            shared,
        };
        let Some(mut state) = self.handler.on_connect(&shared.info) else {
            self.reject(shared.info.peer_addr(), RejectReason::Refused);
            return;
        };
        self.stats.on_accept();
        let settings = &self.settings;
        let limits = settings.config.limits;
        // A write that makes no progress for the idle timeout is idleness.
        let _ = shared.stream.set_write_timeout(limits.idle_timeout);
        let conn = Connection::new(
            settings.decoder.clone(),
            settings.encoder.clone(),
            self.buffers.take(),
            limits,
            self.now(),
        );
        let reason = match conn {
            Ok(mut conn) => {
                let reason = self.drive(shared, &mut conn, &mut state);
                self.buffers.give(conn.into_buffers());
                reason
            }
            // Checked at bind; unreachable unless the settings change.
            Err(_) => CloseReason::Reset,
        };
        shared.close_queue();
        let _ = shared.stream.shutdown(std::net::Shutdown::Both);
        self.stats.on_close(reason);
        self.handler.on_close(&shared.info, state, reason);
    }

    /// The driver loop of [`Connection`]: process, write, then block in
    /// `read` until bytes, end of input, or the next deadline.
    fn drive(
        &self,
        shared: &Arc<ConnShared>,
        conn: &mut Conn,
        state: &mut H::State,
    ) -> CloseReason {
        let stream = &shared.stream;
        let mut timeout = SocketTimeout { current: None };
        let mut counted = *conn.stats();
        loop {
            let progress = self.pump(shared, conn, state);
            self.stats.add_conn_delta(&counted, conn.stats());
            counted = *conn.stats();
            if conn.is_closed() {
                break;
            }
            if self.control.is_aborted() {
                conn.abort();
                break;
            }
            if conn.state() != State::Open {
                // Draining: pushes would only be dropped.
                shared.close_queue();
            }
            let now = self.now();
            let wait = conn.poll_timeout().map(|at| at.saturating_sub(now));
            let Some(buf) = conn.read_buf() else {
                // Not reading (draining or held back by unsent replies):
                // writes are blocking, so only time can move us on.
                conn.handle_timeout(now);
                if !progress && !conn.is_closed() {
                    if let Some(wait) = wait.filter(|w| !w.is_zero()) {
                        std::thread::sleep(wait.min(Duration::from_millis(10)));
                    }
                }
                continue;
            };
            timeout.set(stream, wait);
            match { stream }.read(buf) {
                Ok(0) => {
                    let now = self.now();
                    if shared.broken.load(Ordering::SeqCst) {
                        conn.handle_reset();
                    } else if self.control.is_shutting_down()
                        || shared.close_requested.load(Ordering::SeqCst)
                    {
                        conn.close();
                    } else {
                        conn.handle_eof(now);
                    }
                }
                Ok(n) => conn.handle_read(n, self.now()),
                Err(e) if is_timeout(&e) => conn.handle_timeout(self.now()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    if self.control.is_aborted() {
                        conn.abort();
                    } else {
                        conn.handle_reset();
                    }
                }
            }
        }
        conn.close_reason().unwrap_or(CloseReason::Reset)
    }

    /// Hands frames to the handler and writes replies until neither moves.
    /// Returns whether anything did.
    fn pump(&self, shared: &Arc<ConnShared>, conn: &mut Conn, state: &mut H::State) -> bool {
        let mut any = false;
        loop {
            let frames = if conn.wants_poll() {
                conn.poll_frames(|frame, out| {
                    let mut ctx = Ctx {
                        shared,
                        state: &mut *state,
                        replies: out,
                    };
                    self.handler.on_frame(&mut ctx, frame);
                })
            } else {
                0
            };
            let wrote = self.flush(shared, conn);
            if frames == 0 && wrote == 0 {
                return any;
            }
            any = true;
            if conn.is_closed() {
                return any;
            }
        }
    }

    /// Writes the connection's replies, and pushes queued by handles, under
    /// the writer lock. Returns the bytes written.
    fn flush(&self, shared: &Arc<ConnShared>, conn: &mut Conn) -> usize {
        if !conn.wants_write() && !shared.has_pushes() {
            return 0;
        }
        let mut total = 0;
        loop {
            let guard = lock(&shared.writer);
            while conn.wants_write() {
                let (a, b) = conn.poll_transmit();
                let bufs = [IoSlice::new(a), IoSlice::new(b)];
                match (&shared.stream).write_vectored(&bufs) {
                    Ok(0) => conn.handle_reset(),
                    Ok(n) => {
                        conn.handle_written(n, self.now());
                        total += n;
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    // No progress for the write timeout: idle, or not yet.
                    Err(e) if is_timeout(&e) => conn.handle_timeout(self.now()),
                    Err(_) => {
                        if self.control.is_aborted() {
                            conn.abort();
                        } else {
                            conn.handle_reset();
                        }
                    }
                }
            }
            total += shared.write_pushes(&guard);
            drop(guard);
            if !shared.pushes_pending() {
                return total;
            }
        }
    }
}
