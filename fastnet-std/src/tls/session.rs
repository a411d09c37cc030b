//! One server connection's TLS, shared by the worker (reading) and whoever
//! holds the connection's writer lock (writing): a
//! [`ServerSession`](fastnet_tls::ServerSession) behind a mutex, and the
//! socket calls around it. The session decides everything else: the
//! handshake deadline, what is decrypted when, the close_notify policy.
//!
//! # Locks and the order of records
//!
//! The session sits in its own mutex, held only for in-memory work
//! (decrypting what the worker read, encrypting what a writer writes),
//! never across a socket call: a pusher blocked on a full socket does not
//! stop the worker from decrypting. Records carry sequence numbers, so
//! ciphertext must reach the socket in the order the session made it.
//! Hence the rule: ciphertext is taken out of the session only by the
//! holder of the writer lock, which writes it before letting go. The
//! worker's reads may make the session queue records of its own (session
//! tickets, alerts); they stay in the session until the next writer takes
//! them, and the read path asks for a flush when there are some.
//!
//! Lock order: writer lock, then session lock; the session lock alone
//! never waits for the writer lock.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use fastnet_proto::connection::CloseReason;

use super::{ServerSession, TlsError, TlsInfo};
use crate::handle::lock;

/// Ciphertext read from the socket (outside the session lock) and not yet
/// taken by the session.
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

    /// Hands buffered ciphertext to the session (as much as it takes);
    /// returns how much it took.
    fn feed(&mut self, session: &mut ServerSession) -> Result<usize, TlsError> {
        let n = session.handle_ciphertext(&self.buf[self.start..self.end])?;
        self.start += n;
        Ok(n)
    }
}

/// The TLS state of one server connection.
#[derive(Debug)]
pub(crate) struct SharedSession {
    session: Mutex<ServerSession>,
    /// A copy of the session's, readable without its lock.
    info: OnceLock<TlsInfo>,
}

impl SharedSession {
    /// A session whose handshake must complete within `timeout` from `now`
    /// (time since the server's epoch).
    pub(crate) fn new(
        config: &Arc<rustls::ServerConfig>,
        timeout: Duration,
        now: Duration,
    ) -> Result<Self, TlsError> {
        Ok(SharedSession {
            session: Mutex::new(ServerSession::new(config, timeout, now)?),
            info: OnceLock::new(),
        })
    }

    /// What the handshake negotiated, once it completed.
    pub(crate) fn info(&self) -> Option<&TlsInfo> {
        self.info.get()
    }

    /// Runs the handshake on the worker, before any handle to the
    /// connection exists (so nobody else writes), by the session's
    /// deadline; `epoch` is the clock it counts from. Ciphertext that
    /// arrived with the client's last handshake message (application data)
    /// stays in `input` or the session for [`read`](Self::read); an alert
    /// stays in the session for the goodbye.
    pub(crate) fn handshake(
        &self,
        stream: &TcpStream,
        input: &mut CipherIn,
        epoch: Instant,
    ) -> Result<(), TlsError> {
        let mut s = lock(&self.session);
        let result = handshake(&mut s, stream, input, epoch);
        let _ = stream.set_read_timeout(None);
        let _ = stream.set_write_timeout(None);
        if let Some(info) = s.info() {
            let _ = self.info.set(info.clone());
        }
        result
    }

    /// Reads plaintext into `buf`: what the session has decrypted already,
    /// else what the ciphertext in `input` decrypts to, else blocks in the
    /// socket's `read` for more. As much as is available without blocking
    /// goes in at once (several records), so the replies to everything a
    /// socket read brought leave together.
    ///
    /// `Ok(0)` is the end of input (a close_notify, or the socket's end of
    /// stream). [`io::ErrorKind::Interrupted`] means "the session has
    /// records to send first: flush, then read again". A TLS failure is an
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
            let (closed, wants_write) = {
                let mut s = lock(&self.session);
                loop {
                    filled += s.poll_plaintext(&mut buf[filled..]).map_err(io_error)?;
                    if filled == buf.len() || input.is_empty() || s.is_read_closed() {
                        break;
                    }
                    if input.feed(&mut s).map_err(io_error)? == 0 {
                        break;
                    }
                }
                (s.is_read_closed(), s.wants_write())
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
                // The session takes no more (a close_notify came): the end.
                return Ok(0);
            }
            if input.fill(stream)? == 0 {
                lock(&self.session).handle_eof().map_err(io_error)?;
            }
        }
    }

    /// Whether a [`read`](Self::read) would return without waiting for the
    /// socket: ciphertext is buffered, or the session has plaintext, an end
    /// or records of its own to act on.
    pub(crate) fn has_buffered(&self, input: &CipherIn) -> bool {
        if !input.is_empty() {
            return true;
        }
        let s = lock(&self.session);
        s.has_buffered() || s.is_read_closed() || s.wants_write()
    }

    /// Whether the session holds records to send.
    pub(crate) fn wants_write(&self) -> bool {
        lock(&self.session).wants_write()
    }

    /// Encrypts `parts` and appends every record the session has to send
    /// (including its own) to `out`. The caller holds the writer lock and
    /// counts which plaintext `out` carries.
    pub(crate) fn encrypt(&self, parts: &[&[u8]], out: &mut Vec<u8>) -> io::Result<()> {
        let mut s = lock(&self.session);
        for part in parts.iter().filter(|p| !p.is_empty()) {
            s.handle_plaintext(part, &[]).map_err(io_error)?;
        }
        s.take_transmit(out);
        Ok(())
    }

    /// The connection closes for `reason`: queues what the session's close
    /// policy says (sent by the next [`encrypt`](Self::encrypt)).
    pub(crate) fn close(&self, reason: CloseReason) {
        lock(&self.session).close(reason);
    }
}

/// The handshake loop, the session lock held (nobody else uses the
/// connection yet).
fn handshake(
    s: &mut ServerSession,
    mut stream: &TcpStream,
    input: &mut CipherIn,
    epoch: Instant,
) -> Result<(), TlsError> {
    loop {
        s.handle_timeout(epoch.elapsed())?;
        // What is left until the deadline: the longest a socket call may
        // block (at least a millisecond: zero means "no timeout").
        let left = s.poll_timeout().map(|at| {
            (epoch + at)
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(1))
        });
        if s.wants_write() {
            let _ = stream.set_write_timeout(left);
            match stream.write(s.poll_transmit()) {
                Ok(0) => return Err(TlsError::Io(io::ErrorKind::WriteZero)),
                Ok(n) => {
                    s.handle_written(n);
                }
                Err(e) if is_retry(&e) => {}
                Err(e) => return Err(TlsError::Io(e.kind())),
            }
            continue;
        }
        if !s.is_handshaking() {
            return Ok(());
        }
        if input.is_empty() {
            let _ = stream.set_read_timeout(left);
            match input.fill(stream) {
                Ok(0) => return s.handle_eof(),
                Ok(_) => {}
                Err(e) if is_retry(&e) => continue,
                Err(e) => return Err(TlsError::Io(e.kind())),
            }
        }
        if input.feed(s)? == 0 {
            // Only once the session holds plaintext, which it does not
            // before the handshake completes.
            return Err(s.error().cloned().unwrap_or(TlsError::HandshakeEof));
        }
    }
}

/// A socket error the handshake loop goes around for (the deadline check
/// at its top ends it in time).
fn is_retry(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// A session error as the read path reports it: a rustls error inside an
/// [`io::ErrorKind::InvalidData`] error, anything else by its kind.
fn io_error(e: TlsError) -> io::Error {
    match e {
        TlsError::Rustls(e) => io::Error::new(io::ErrorKind::InvalidData, e),
        TlsError::Io(kind) => kind.into(),
        e => io::Error::new(io::ErrorKind::InvalidData, e.to_string()),
    }
}
