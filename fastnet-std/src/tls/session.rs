//! One server-side TLS session, shared by the worker (reading) and whoever
//! holds the connection's writer lock (writing).
//!
//! # Locks and the order of records
//!
//! The rustls session sits in its own mutex, held only for in-memory work
//! (decrypting what the worker read, encrypting what a writer writes),
//! never across a socket call: a pusher blocked on a full socket does not
//! stop the worker from decrypting. Records carry sequence numbers, so
//! ciphertext must reach the socket in the order rustls produced it. Hence
//! the rule: ciphertext is taken out of the session (`write_tls`) only by
//! the holder of the writer lock, which writes it before letting go. The
//! worker's reads may make rustls queue records of its own (session
//! tickets, alerts); they stay in the session until the next writer takes
//! them, and the read path asks for a flush when there are some.
//!
//! Lock order: writer lock, then session lock; the session lock alone
//! never waits for the writer lock.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use rustls::ServerConnection;

use super::{TlsError, TlsInfo};
use crate::handle::lock;

/// Ciphertext read from the socket and not yet handed to rustls.
#[derive(Debug)]
pub(crate) struct CipherIn {
    buf: Box<[u8]>,
    start: usize,
    end: usize,
}

/// Bytes read from the socket at once: a little more than one full record.
const CIPHER_IN: usize = 20 * 1024;

impl CipherIn {
    pub(crate) fn new() -> Self {
        CipherIn {
            buf: vec![0; CIPHER_IN].into_boxed_slice(),
            start: 0,
            end: 0,
        }
    }

    fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// Reads from the socket into the (empty) buffer.
    fn fill(&mut self, mut stream: &TcpStream) -> io::Result<usize> {
        debug_assert!(self.is_empty());
        self.start = 0;
        self.end = 0;
        let n = stream.read(&mut self.buf)?;
        self.end = n;
        Ok(n)
    }

    /// Hands buffered ciphertext to rustls (as much as it takes).
    fn feed(&mut self, session: &mut ServerConnection) -> io::Result<usize> {
        let mut pending = &self.buf[self.start..self.end];
        let n = session.read_tls(&mut pending)?;
        self.start += n;
        Ok(n)
    }
}

/// The TLS state of one server connection.
#[derive(Debug)]
pub(crate) struct ServerSession {
    conn: Mutex<ServerConnection>,
    info: OnceLock<TlsInfo>,
}

impl ServerSession {
    pub(crate) fn new(config: &Arc<rustls::ServerConfig>) -> Result<Self, rustls::Error> {
        let mut conn = ServerConnection::new(Arc::clone(config))?;
        // Every writer takes all ciphertext out after encrypting, so the
        // session holds at most one batch of replies or one push: bounded
        // by the tx buffer and the push queue, not by rustls.
        conn.set_buffer_limit(None);
        Ok(ServerSession {
            conn: Mutex::new(conn),
            info: OnceLock::new(),
        })
    }

    /// What the handshake negotiated, once it completed.
    pub(crate) fn info(&self) -> Option<&TlsInfo> {
        self.info.get()
    }

    /// Runs the handshake on the worker, before any handle to the
    /// connection exists (so nobody else writes), within `timeout`.
    /// Ciphertext that arrived with the client's last handshake message
    /// (application data) stays in `input` for [`read`](Self::read).
    pub(crate) fn handshake(
        &self,
        stream: &TcpStream,
        input: &mut CipherIn,
        timeout: Duration,
    ) -> Result<(), TlsError> {
        let deadline = Instant::now() + timeout;
        let mut s = lock(&self.conn);
        let mut out = Vec::new();
        let result = loop {
            if s.wants_write() {
                out.clear();
                while s.wants_write() {
                    // Writing into a Vec cannot fail.
                    let _ = s.write_tls(&mut out);
                }
                if let Err(e) = write_until(stream, &out, deadline, timeout) {
                    break Err(e);
                }
                continue;
            }
            if !s.is_handshaking() {
                break Ok(());
            }
            if input.is_empty() {
                let Some(left) = left(deadline) else {
                    break Err(TlsError::HandshakeTimeout(timeout));
                };
                let _ = stream.set_read_timeout(Some(left));
                match input.fill(stream) {
                    Ok(0) => break Err(TlsError::HandshakeEof),
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => break Err(io_failure(&e, timeout)),
                }
            }
            match input.feed(&mut s) {
                // Only after a close_notify: the peer gave up.
                Ok(0) => break Err(TlsError::HandshakeEof),
                Ok(_) => {}
                Err(e) => break Err(TlsError::Io(e.kind())),
            }
            if let Err(e) = s.process_new_packets() {
                // Tell the peer why (an alert), briefly and best effort.
                out.clear();
                while s.wants_write() {
                    let _ = s.write_tls(&mut out);
                }
                let soon = Instant::now() + Duration::from_millis(100);
                let _ = write_until(stream, &out, deadline.min(soon), timeout);
                break Err(TlsError::Rustls(e));
            }
        };
        let _ = stream.set_read_timeout(None);
        let _ = stream.set_write_timeout(None);
        if result.is_ok() {
            let _ = self.info.set(TlsInfo::new(&s, s.server_name()));
        }
        result
    }

    /// Reads plaintext into `buf`: what rustls has decrypted already, else
    /// what the ciphertext in `input` decrypts to, else blocks in the
    /// socket's `read` for more. As much as is available without blocking
    /// goes in at once (several records), so the replies to everything a
    /// socket read brought leave together.
    ///
    /// `Ok(0)` is the end of input (a close_notify, or the socket's end of
    /// stream). [`io::ErrorKind::Interrupted`] means "rustls has records to
    /// send first: flush, then read again". A TLS failure is an
    /// [`io::ErrorKind::InvalidData`] error carrying the
    /// [`rustls::Error`]; socket errors (timeouts included) are passed on.
    pub(crate) fn read(
        &self,
        stream: &TcpStream,
        input: &mut CipherIn,
        buf: &mut [u8],
    ) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            let mut filled = 0;
            let mut closed = false;
            let wants_write = {
                let mut s = lock(&self.conn);
                loop {
                    match s.reader().read(&mut buf[filled..]) {
                        Ok(0) => {
                            closed = true;
                            break;
                        }
                        Ok(n) => filled += n,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                        Err(e) => return Err(e),
                    }
                    if filled == buf.len() || input.is_empty() || !s.wants_read() {
                        break;
                    }
                    if input.feed(&mut s)? == 0 {
                        break;
                    }
                    if let Err(e) = s.process_new_packets() {
                        return Err(io::Error::new(io::ErrorKind::InvalidData, e));
                    }
                }
                s.wants_write()
            };
            if filled > 0 {
                return Ok(filled);
            }
            if closed {
                return Ok(0);
            }
            if wants_write {
                return Err(io::ErrorKind::Interrupted.into());
            }
            if !input.is_empty() {
                // rustls takes no more (a close_notify came): the end.
                return Ok(0);
            }
            // An end of stream without close_notify is an end all the same:
            // the connection state machine judges a cut-off frame.
            if input.fill(stream)? == 0 {
                return Ok(0);
            }
        }
    }

    /// Whether rustls holds records to send.
    pub(crate) fn wants_write(&self) -> bool {
        lock(&self.conn).wants_write()
    }

    /// Encrypts `parts` and appends every record rustls has to send
    /// (including its own) to `out`. The caller holds the writer lock.
    pub(crate) fn encrypt(&self, parts: &[&[u8]], out: &mut Vec<u8>) -> io::Result<()> {
        let mut s = lock(&self.conn);
        for part in parts.iter().filter(|p| !p.is_empty()) {
            s.writer().write_all(part)?;
        }
        while s.wants_write() {
            s.write_tls(out)?;
        }
        Ok(())
    }

    /// Queues a close_notify alert (sent by the next
    /// [`encrypt`](Self::encrypt)).
    pub(crate) fn close_notify(&self) {
        lock(&self.conn).send_close_notify();
    }
}

fn left(deadline: Instant) -> Option<Duration> {
    deadline
        .checked_duration_since(Instant::now())
        .filter(|d| !d.is_zero())
}

fn io_failure(e: &io::Error, timeout: Duration) -> TlsError {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => TlsError::HandshakeTimeout(timeout),
        kind => TlsError::Io(kind),
    }
}

/// Writes all of `bytes` by `deadline`.
fn write_until(
    mut stream: &TcpStream,
    bytes: &[u8],
    deadline: Instant,
    timeout: Duration,
) -> Result<(), TlsError> {
    let mut at = 0;
    while at < bytes.len() {
        let Some(left) = left(deadline) else {
            return Err(TlsError::HandshakeTimeout(timeout));
        };
        let _ = stream.set_write_timeout(Some(left));
        match stream.write(&bytes[at..]) {
            Ok(0) => return Err(TlsError::Io(io::ErrorKind::WriteZero)),
            Ok(n) => at += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io_failure(&e, timeout)),
        }
    }
    Ok(())
}
