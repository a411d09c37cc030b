//! One server connection's rustls session, driven sans-IO inside the
//! connection task (`read_tls` / `process_new_packets` / `write_tls`).
//!
//! Only the task touches the session, so no lock is needed and records
//! leave in the order rustls made them: replies and pushes both reach the
//! session through the connection's reply ring.
//!
//! - Reading: plaintext the session already holds goes into the
//!   connection's receive buffer first; only when none is left is the
//!   socket read (straight into rustls, no buffer of ours). A read that
//!   fills less than rustls offered means the socket is drained, so no read
//!   is spent on `WouldBlock`.
//! - Writing: the replies queued in the ring (both slices) are encrypted at
//!   once and the session's records go out with one vectored write. They
//!   count as written ([`Conn::handle_written`]) only once all their
//!   ciphertext is, so backpressure and draining see the socket, and the
//!   next batch is encrypted only after the previous one left.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use fastnet_proto::connection::CloseReason;
use rustls::ServerConnection;
use smol::Async;

use super::{TlsError, TlsInfo};
use crate::server::Conn;

/// The TLS state of one server connection.
#[derive(Debug)]
pub(crate) struct ServerTls {
    session: ServerConnection,
    /// What the handshake negotiated, once it completed.
    info: Option<TlsInfo>,
    /// Plaintext handed to the session whose ciphertext is not all written.
    unacked: usize,
    /// The session may hold plaintext the connection had no room for.
    buffered: bool,
}

/// Outcome of [`ServerTls::write`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Wrote {
    /// Nothing left to write.
    All,
    /// The socket took less than offered: wait until writable.
    Blocked,
    /// The socket failed.
    Failed,
}

/// The socket, remembering whether the last read filled what was offered.
struct Sock<'a> {
    stream: &'a TcpStream,
    short: bool,
}

impl Read for Sock<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = (&*self.stream).read(buf)?;
        self.short = n < buf.len();
        Ok(n)
    }
}

impl ServerTls {
    pub(crate) fn new(config: &Arc<rustls::ServerConfig>) -> Option<Box<Self>> {
        let mut session = ServerConnection::new(Arc::clone(config)).ok()?;
        // The session holds at most one batch of replies (bounded by the
        // tx buffer): the next is encrypted only once it left.
        session.set_buffer_limit(None);
        Some(Box::new(ServerTls {
            session,
            info: None,
            unacked: 0,
            buffered: false,
        }))
    }

    /// What the handshake negotiated, once it completed.
    pub(crate) fn info(&self) -> Option<&TlsInfo> {
        self.info.as_ref()
    }

    /// Whether the session may hold plaintext not yet handed out: read it
    /// before waiting for the socket.
    pub(crate) fn has_buffered(&self) -> bool {
        self.buffered
    }

    /// Whether the session holds records to send.
    pub(crate) fn wants_write(&self) -> bool {
        self.session.wants_write()
    }

    /// Runs the handshake (the caller bounds it in time). Application data
    /// that came with the client's last flight stays in the session for
    /// [`read`](Self::read).
    pub(crate) async fn handshake(&mut self, stream: &Async<TcpStream>) -> Result<(), TlsError> {
        let io = |e: io::Error| TlsError::Io(e.kind());
        loop {
            while self.session.wants_write() {
                match self.session.write_tls(&mut stream.get_ref()) {
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        stream.writable().await.map_err(io)?;
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(io(e)),
                }
            }
            if !self.session.is_handshaking() {
                self.info = Some(TlsInfo::new(&self.session, self.session.server_name()));
                self.buffered = true;
                return Ok(());
            }
            match self.session.read_tls(&mut stream.get_ref()) {
                Ok(0) => return Err(TlsError::HandshakeEof),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    stream.readable().await.map_err(io)?;
                    continue;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io(e)),
            }
            if let Err(e) = self.session.process_new_packets() {
                // Tell the peer why (the alert), best effort.
                let _ = self.session.write_tls(&mut stream.get_ref());
                return Err(TlsError::Rustls(e));
            }
        }
    }

    /// Decrypts into `conn` until the socket is drained or `conn` takes no
    /// more. `Ok(true)` when it stopped for lack of room (more may be
    /// there). An end of stream, with or without close_notify, goes to
    /// [`Conn::handle_eof`]; a socket error is `Err(None)`, a TLS failure
    /// `Err(Some(..))` (its alert is queued for [`goodbye`](Self::goodbye)).
    pub(crate) fn read(
        &mut self,
        stream: &TcpStream,
        conn: &mut Conn,
        now: Duration,
    ) -> Result<bool, Option<TlsError>> {
        let mut drained = false;
        loop {
            // What the session holds first: read_tls refuses more while
            // plaintext waits.
            loop {
                let Some(buf) = conn.read_buf() else {
                    self.buffered = true;
                    return Ok(true);
                };
                match self.session.reader().read(buf) {
                    Ok(0) => {
                        // close_notify.
                        self.buffered = false;
                        conn.handle_eof(now);
                        return Ok(false);
                    }
                    Ok(n) => conn.handle_read(n, now),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    // The socket ended without close_notify: an end all the
                    // same; the connection judges a cut-off frame.
                    Err(_) => {
                        self.buffered = false;
                        conn.handle_eof(now);
                        return Ok(false);
                    }
                }
            }
            self.buffered = false;
            if drained {
                return Ok(false);
            }
            let mut sock = Sock {
                stream,
                short: false,
            };
            match self.session.read_tls(&mut sock) {
                // End of stream (the reader reports it next round).
                Ok(0) => drained = true,
                Ok(_) => drained = sock.short,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return Err(None),
            }
            if let Err(e) = self.session.process_new_packets() {
                return Err(Some(TlsError::Rustls(e)));
            }
        }
    }

    /// Encrypts the replies queued in `conn` (once the previous batch has
    /// left) and writes the session's records with one vectored write.
    pub(crate) fn write(&mut self, stream: &TcpStream, conn: &mut Conn, now: Duration) -> Wrote {
        loop {
            if !self.session.wants_write() {
                if self.unacked > 0 {
                    conn.handle_written(self.unacked, now);
                    self.unacked = 0;
                }
                if conn.wants_write() {
                    let (a, b) = conn.poll_transmit();
                    let mut w = self.session.writer();
                    // Without a buffer limit the session takes everything.
                    if w.write_all(a).and_then(|()| w.write_all(b)).is_err() {
                        return Wrote::Failed;
                    }
                    self.unacked = a.len() + b.len();
                }
                if !self.session.wants_write() {
                    return Wrote::All;
                }
            }
            match self.session.write_tls(&mut &*stream) {
                Ok(0) => return Wrote::Failed,
                Ok(_) if self.session.wants_write() => return Wrote::Blocked,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Wrote::Blocked,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Wrote::Failed,
            }
        }
    }

    /// Before the socket closes: a close_notify after an orderly close,
    /// and whatever records the session still has (an alert), in one
    /// non-blocking attempt.
    pub(crate) fn goodbye(&mut self, stream: &TcpStream, reason: CloseReason) {
        if self.info.is_some()
            && !matches!(
                reason,
                CloseReason::Reset | CloseReason::IdleTimeout | CloseReason::Tls(_)
            )
        {
            self.session.send_close_notify();
        }
        if self.session.wants_write() {
            let _ = self.session.write_tls(&mut &*stream);
        }
    }
}
