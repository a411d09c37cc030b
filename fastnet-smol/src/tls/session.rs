//! One server connection's TLS inside the connection task: moves the bytes
//! of a [`ServerSession`] (fastnet-tls) between the socket and the
//! connection. The session decides everything else: the handshake deadline,
//! what is decrypted when, which replies count as written, the
//! close_notify policy.
//!
//! Only the task touches the session, so no lock is needed and records
//! leave in the order they were made: replies and pushes both reach the
//! session through the connection's reply ring.
//!
//! - Reading: plaintext the session holds goes into the connection's
//!   receive buffer first; only when none is left is the socket read (into
//!   the session's buffer). A read that fills less than offered means the
//!   socket is drained, so no read is spent on `WouldBlock`.
//! - Writing: the replies queued in the ring (both slices) are encrypted at
//!   once and their records go out with one write; they count as written
//!   ([`Conn::handle_written`]) only once all their ciphertext is, so
//!   backpressure and draining see the socket, and the next batch is
//!   encrypted only after the previous one left.

use std::future::Future;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use fastnet_proto::connection::CloseReason;
use smol::{future, Async, Timer};

use super::{ServerSession, TlsError, TlsInfo};
use fastnet_driver::server::Conn;
use fastnet_driver::server::TlsSettings;
use fastnet_proto::codec::{Decoder, Encoder};

/// The TLS state of one server connection.
#[derive(Debug)]
pub(crate) struct ServerTls {
    session: ServerSession,
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

impl ServerTls {
    /// A session whose handshake must complete within the configured
    /// timeout from `now`.
    pub(crate) fn new(settings: &TlsSettings, now: Duration) -> Option<Box<Self>> {
        let session = settings.session(now).ok()?;
        Some(Box::new(ServerTls { session }))
    }

    /// What the handshake negotiated, once it completed.
    pub(crate) fn info(&self) -> Option<&TlsInfo> {
        self.session.info()
    }

    /// Whether the session holds input not yet handed out: read it before
    /// waiting for the socket.
    pub(crate) fn has_buffered(&self) -> bool {
        self.session.has_buffered()
    }

    /// Whether the session holds records to send.
    pub(crate) fn wants_write(&self) -> bool {
        self.session.wants_write()
    }

    /// Runs the handshake until it completes or fails; `epoch` is the
    /// clock the session's deadline counts from. Application data that came
    /// with the client's last flight stays in the session for
    /// [`read`](Self::read); an alert stays for [`goodbye`](Self::goodbye).
    pub(crate) async fn handshake(
        &mut self,
        stream: &Async<TcpStream>,
        epoch: Instant,
    ) -> Result<(), TlsError> {
        let s = &mut self.session;
        loop {
            while s.wants_write() {
                match stream.get_ref().write(s.poll_transmit()) {
                    Ok(0) => return Err(TlsError::Io(io::ErrorKind::WriteZero)),
                    Ok(n) => {
                        s.handle_written(n);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        wait(s, stream.writable(), epoch).await?;
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(TlsError::Io(e.kind())),
                }
            }
            if !s.is_handshaking() {
                return Ok(());
            }
            let Some(buf) = s.read_buf() else {
                // Only after an error.
                return Err(s.error().cloned().unwrap_or(TlsError::HandshakeEof));
            };
            match stream.get_ref().read(buf) {
                Ok(n) => s.handle_read(n)?,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    wait(s, stream.readable(), epoch).await?;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(TlsError::Io(e.kind())),
            }
        }
    }

    /// Decrypts into `conn` until the socket is drained or `conn` takes no
    /// more. `Ok(true)` when it stopped for lack of room (more may be
    /// there). An end of stream, with or without close_notify, goes to
    /// [`Conn::handle_eof`]; a socket error is `Err(None)`, a TLS failure
    /// `Err(Some(..))` (its alert is queued for [`goodbye`](Self::goodbye)).
    pub(crate) fn read<D: Decoder, E: Encoder>(
        &mut self,
        stream: &TcpStream,
        conn: &mut Conn<D, E>,
        now: Duration,
    ) -> Result<bool, Option<TlsError>> {
        let s = &mut self.session;
        let mut drained = false;
        loop {
            loop {
                let Some(buf) = conn.read_buf() else {
                    return Ok(true);
                };
                match s.poll_plaintext(buf).map_err(Some)? {
                    0 => break,
                    n => conn.handle_read(n, now),
                }
            }
            if s.is_read_closed() {
                conn.handle_eof(now);
                return Ok(false);
            }
            if drained {
                return Ok(false);
            }
            let Some(buf) = s.read_buf() else {
                return Ok(false);
            };
            let offered = buf.len();
            match (&*stream).read(buf) {
                Ok(n) => {
                    drained = n < offered;
                    s.handle_read(n).map_err(Some)?;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Err(None),
            }
        }
    }

    /// Encrypts the replies queued in `conn` (once the previous batch has
    /// left) and writes their records.
    pub(crate) fn write<D: Decoder, E: Encoder>(
        &mut self,
        stream: &TcpStream,
        conn: &mut Conn<D, E>,
        now: Duration,
    ) -> Wrote {
        let s = &mut self.session;
        loop {
            if !s.wants_write() {
                if conn.wants_write() {
                    let (a, b) = conn.poll_transmit();
                    if s.handle_plaintext(a, b).is_err() {
                        return Wrote::Failed;
                    }
                }
                if !s.wants_write() {
                    return Wrote::All;
                }
            }
            match (&*stream).write(s.poll_transmit()) {
                Ok(0) => return Wrote::Failed,
                Ok(n) => {
                    let plain = s.handle_written(n);
                    if plain > 0 {
                        conn.handle_written(plain, now);
                    }
                    if s.wants_write() {
                        return Wrote::Blocked;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Wrote::Blocked,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Wrote::Failed,
            }
        }
    }

    /// Before the socket closes: what the session's close policy queues for
    /// `reason` (a close_notify, an alert), in one non-blocking attempt.
    pub(crate) fn goodbye(&mut self, stream: &TcpStream, reason: CloseReason) {
        self.session.close(reason);
        let out = self.session.poll_transmit();
        if !out.is_empty() {
            let _ = (&*stream).write(out);
        }
    }
}

/// Waits for `ready`, or the session's handshake deadline; past the
/// deadline, the session's timeout error.
async fn wait(
    s: &mut ServerSession,
    ready: impl Future<Output = io::Result<()>>,
    epoch: Instant,
) -> Result<(), TlsError> {
    if let Some(at) = s.poll_timeout() {
        let deadline = async {
            Timer::at(epoch + at).await;
            Ok(())
        };
        future::or(ready, deadline)
            .await
            .map_err(|e| TlsError::Io(e.kind()))?;
    } else {
        ready.await.map_err(|e| TlsError::Io(e.kind()))?;
    }
    s.handle_timeout(epoch.elapsed())
}
