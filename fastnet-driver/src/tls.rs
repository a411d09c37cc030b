//! TLS as the drivers see it: one seam, so a driver's code reads the same
//! with the feature `tls` on or off.
//!
//! - [`ServerTls`]: a server's TLS settings (checked at bind) and counters.
//! - [`Link`]: one server connection's TLS session and the socket calls
//!   that move its bytes between the socket and the
//!   [`Connection`](fastnet_proto::Connection): the handshake, reading,
//!   writing, and the goodbye (close_notify or alert), on a non-blocking
//!   socket (fastnet-smol) or a blocking one with timeouts (fastnet-std).
//!   A connection without TLS has a link without a session, and the driver
//!   moves its bytes itself.
//!
//! With `tls`, [`TlsServerConfig`], [`TlsConnector`], [`TlsError`] and
//! [`TlsInfo`] are fastnet-tls's; without it they are stand-ins that have
//! no values, so code handling them type-checks and compiles away.

use std::io;
#[cfg(feature = "tls")]
use std::io::{Read, Write};
use std::net::TcpStream;
#[cfg(feature = "tls")]
use std::sync::Arc;
use std::time::Duration;

use fastnet_proto::codec::{Decoder, Encoder};
use fastnet_proto::connection::CloseReason;
use fastnet_proto::server::RejectReason;

use crate::server::Conn;

#[cfg(feature = "tls")]
pub use fastnet_tls::{ServerSession, TlsConnector, TlsError, TlsInfo, TlsServerConfig, TlsStats};
#[cfg(not(feature = "tls"))]
pub use off::{TlsConnector, TlsError, TlsInfo, TlsServerConfig};

/// Stand-ins without the feature `tls`: types with no values.
#[cfg(not(feature = "tls"))]
mod off {
    /// A server's TLS configuration; without the feature `tls`, none can
    /// be made.
    #[derive(Clone, Debug)]
    pub enum TlsServerConfig {}
    /// A client's TLS configuration; without the feature `tls`, none can
    /// be made.
    #[derive(Clone, Debug)]
    pub enum TlsConnector {}
    /// What a handshake negotiated; without the feature `tls`, never.
    #[derive(Clone, Debug)]
    pub enum TlsInfo {}
    /// A TLS failure; without the feature `tls`, never.
    #[derive(Clone, Debug)]
    pub enum TlsError {}

    impl std::fmt::Display for TlsError {
        fn fmt(&self, _: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            match *self {}
        }
    }

    impl TlsError {
        /// The reason a connection closes for this failure.
        pub fn close_reason(&self) -> fastnet_proto::connection::CloseReason {
            match *self {}
        }
    }
}

/// A server's TLS: the settings every connection's session is made from
/// (none for a plain server) and the server's TLS counters.
#[derive(Debug, Default)]
pub struct ServerTls {
    #[cfg(feature = "tls")]
    settings: Option<Settings>,
    #[cfg(feature = "tls")]
    stats: Arc<TlsStats>,
    /// Handshakes in progress, against `max_handshakes`.
    #[cfg(feature = "tls")]
    handshakes: Arc<Handshakes>,
}

/// Handshakes in progress and how many may be.
#[cfg(feature = "tls")]
#[derive(Debug, Default)]
struct Handshakes {
    running: std::sync::atomic::AtomicUsize,
    max: usize,
}

/// One handshake's place among those in progress, given back when it ends
/// (completed, failed, or the connection dropped).
#[cfg(feature = "tls")]
#[derive(Debug)]
struct HandshakeSlot(Arc<Handshakes>);

#[cfg(feature = "tls")]
impl Drop for HandshakeSlot {
    fn drop(&mut self) {
        self.0
            .running
            .fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

/// A server's TLS configuration, built and checked once at bind.
#[cfg(feature = "tls")]
#[derive(Debug)]
struct Settings {
    config: Arc<fastnet_tls::rustls::ServerConfig>,
    handshake_timeout: Duration,
}

impl ServerTls {
    /// Builds `config`, if given, and makes one session from it, so that
    /// making one per accepted connection cannot fail later; at most
    /// `max_handshakes` (at least 1) run at once.
    pub fn new(config: Option<&TlsServerConfig>, max_handshakes: usize) -> io::Result<Self> {
        let Some(config) = config else {
            return Ok(ServerTls::default());
        };
        #[cfg(feature = "tls")]
        {
            if max_handshakes == 0 {
                return Err(crate::server::invalid(
                    "max_handshakes",
                    "must be at least 1, not 0",
                ));
            }
            let settings = Settings {
                config: config.build()?,
                handshake_timeout: config.configured_handshake_timeout(),
            };
            let tls = ServerTls {
                settings: Some(settings),
                stats: Arc::default(),
                handshakes: Arc::new(Handshakes {
                    running: Default::default(),
                    max: max_handshakes,
                }),
            };
            if ServerSession::new(&tls.config().config, Duration::ZERO, Duration::ZERO).is_err() {
                return Err(crate::server::invalid(
                    "tls",
                    "the configuration makes no server session",
                ));
            }
            Ok(tls)
        }
        #[cfg(not(feature = "tls"))]
        {
            let _ = max_handshakes;
            match *config {}
        }
    }

    #[cfg(feature = "tls")]
    fn config(&self) -> &Settings {
        self.settings.as_ref().expect("a TLS server")
    }

    /// Whether connections are served over TLS.
    pub fn is_on(&self) -> bool {
        #[cfg(feature = "tls")]
        return self.settings.is_some();
        #[cfg(not(feature = "tls"))]
        false
    }

    /// The link of a connection accepted at `now` (time since the server's
    /// epoch): on a TLS server, with a session whose handshake must
    /// complete by the configured timeout, holding one of the
    /// `max_handshakes` places until it does. Refused
    /// ([`RejectReason::Handshakes`]) when every place is taken, or
    /// ([`RejectReason::Refused`]) if the session cannot be made (checked
    /// at bind, so only if rustls changes its mind).
    pub fn link(&self, now: Duration) -> Result<Link, RejectReason> {
        #[cfg(feature = "tls")]
        if let Some(s) = &self.settings {
            let h = &self.handshakes;
            let ordering = std::sync::atomic::Ordering::AcqRel;
            let max = h.max;
            if h.running
                .fetch_update(ordering, std::sync::atomic::Ordering::Acquire, |n| {
                    (n < max).then_some(n + 1)
                })
                .is_err()
            {
                return Err(RejectReason::Handshakes);
            }
            let slot = HandshakeSlot(Arc::clone(h));
            let session = ServerSession::new(&s.config, s.handshake_timeout, now)
                .map_err(|_| RejectReason::Refused)?;
            return Ok(Link {
                session: Some(Box::new(Session {
                    session,
                    slot: Some(slot),
                })),
            });
        }
        let _ = now;
        Ok(Link::default())
    }

    /// The server's TLS counters.
    #[cfg(feature = "tls")]
    pub fn stats(&self) -> Arc<TlsStats> {
        Arc::clone(&self.stats)
    }

    /// Counts a completed handshake.
    pub fn handshake_done(&self) {
        #[cfg(feature = "tls")]
        self.stats.on_handshake();
    }

    /// Counts a failed handshake (`handshake`) or a session that failed
    /// later.
    pub fn failed(&self, e: &TlsError, handshake: bool) {
        #[cfg(feature = "tls")]
        if handshake {
            self.stats.on_handshake_failure(e);
        } else {
            self.stats.on_session_error();
        }
        #[cfg(not(feature = "tls"))]
        let _ = (e, handshake);
    }
}

/// What a [`Link::handshake`] step asks for next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Handshake {
    /// The handshake completed.
    Done,
    /// Bytes moved: call again at once.
    Again,
    /// The socket would block reading: wait until it is readable (or the
    /// deadline, [`Link::poll_timeout`]).
    Read,
    /// The socket would block writing: wait until it is writable (or the
    /// deadline).
    Write,
}

/// How a [`Link::read`] ended (every byte read is in the connection).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Input {
    /// The connection has no room: more may be waiting, and no readiness
    /// event will say so.
    Full,
    /// The socket is drained (non-blocking), or one read was made
    /// (blocking): wait, or go around.
    Drained,
    /// The peer ended its side (close_notify, or the socket's end of
    /// stream) after everything before it was handed to the connection.
    Eof,
}

/// What a [`Link::write`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Wrote {
    /// Ciphertext bytes the socket took.
    pub bytes: usize,
    /// The socket took less than offered: wait until it is writable.
    pub blocked: bool,
}

/// Why a [`Link`] read or write failed.
#[derive(Debug)]
pub enum Fault {
    /// The socket failed (blocking: also a read or write timeout, which the
    /// driver tells apart by its kind).
    Io(io::Error),
    /// The TLS session failed; its alert leaves with
    /// [`Link::goodbye`].
    Tls(TlsError),
}

/// One server connection's TLS session, if it has one, and the socket
/// calls around it. The session decides what is decrypted when, which
/// replies count as written (only once all their ciphertext is, so
/// backpressure and draining see the socket), the handshake deadline and
/// the close_notify policy; the link only moves bytes.
///
/// Methods other than [`is_tls`](Self::is_tls) are meant for a link with a
/// session; on one without, they do nothing.
#[derive(Debug, Default)]
pub struct Link {
    /// Boxed: a plain connection's link is one null pointer.
    #[cfg(feature = "tls")]
    session: Option<Box<Session>>,
}

/// A TLS connection's session and its place among the handshakes in
/// progress (held until the handshake ends).
#[cfg(feature = "tls")]
#[derive(Debug)]
struct Session {
    session: ServerSession,
    slot: Option<HandshakeSlot>,
}

#[cfg(feature = "tls")]
impl std::ops::Deref for Session {
    type Target = ServerSession;
    fn deref(&self) -> &ServerSession {
        &self.session
    }
}

#[cfg(feature = "tls")]
impl std::ops::DerefMut for Session {
    fn deref_mut(&mut self) -> &mut ServerSession {
        &mut self.session
    }
}

impl Link {
    /// Whether the connection speaks TLS.
    #[inline]
    pub fn is_tls(&self) -> bool {
        #[cfg(feature = "tls")]
        return self.session.is_some();
        #[cfg(not(feature = "tls"))]
        false
    }

    /// What the handshake negotiated, once it completed.
    pub fn info(&self) -> Option<&TlsInfo> {
        #[cfg(feature = "tls")]
        return self.session.as_ref().and_then(|s| s.info());
        #[cfg(not(feature = "tls"))]
        None
    }

    /// Whether the session holds input not yet handed out: read it before
    /// waiting for the socket.
    pub fn has_buffered(&self) -> bool {
        #[cfg(feature = "tls")]
        if let Some(s) = &self.session {
            return s.has_buffered() || s.is_read_closed();
        }
        false
    }

    /// Whether the session holds records to send.
    pub fn wants_write(&self) -> bool {
        #[cfg(feature = "tls")]
        if let Some(s) = &self.session {
            return s.wants_write();
        }
        false
    }

    /// The handshake deadline (time since the server's epoch), while the
    /// handshake runs.
    pub fn poll_timeout(&self) -> Option<Duration> {
        #[cfg(feature = "tls")]
        if let Some(s) = &self.session {
            return s.poll_timeout().filter(|_| s.is_handshaking());
        }
        None
    }

    /// One step of the handshake at `now`: writes the session's flight,
    /// or reads the peer's, with one socket call. Past the deadline, the
    /// session's timeout error. Application data that came with the
    /// client's last flight stays in the session for [`read`](Self::read);
    /// an alert stays for [`goodbye`](Self::goodbye).
    pub fn handshake(&mut self, stream: &TcpStream, now: Duration) -> Result<Handshake, TlsError> {
        #[cfg(feature = "tls")]
        if let Some(s) = self.session.as_mut() {
            let step = Self::step(s, stream, now);
            if !matches!(
                step,
                Ok(Handshake::Again | Handshake::Read | Handshake::Write)
            ) {
                // Done or failed: the place goes to the next handshake.
                s.slot = None;
            }
            return step;
        }
        let _ = (stream, now);
        Ok(Handshake::Done)
    }

    /// One handshake step of `s` (see [`handshake`](Self::handshake)).
    #[cfg(feature = "tls")]
    fn step(
        s: &mut ServerSession,
        stream: &TcpStream,
        now: Duration,
    ) -> Result<Handshake, TlsError> {
        {
            s.handle_timeout(now)?;
            if s.wants_write() {
                return match (&*stream).write(s.poll_transmit()) {
                    Ok(0) => Err(TlsError::Io(io::ErrorKind::WriteZero)),
                    Ok(n) => {
                        s.handle_written(n);
                        Ok(Handshake::Again)
                    }
                    Err(e) if would_block(&e) => Ok(Handshake::Write),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(Handshake::Again),
                    Err(e) => Err(TlsError::Io(e.kind())),
                };
            }
            if !s.is_handshaking() {
                return Ok(Handshake::Done);
            }
            let Some(buf) = s.read_buf() else {
                // Only after an error.
                return Err(s.error().cloned().unwrap_or(TlsError::HandshakeEof));
            };
            match (&*stream).read(buf) {
                Ok(n) => s.handle_read(n).map(|()| Handshake::Again),
                Err(e) if would_block(&e) => Ok(Handshake::Read),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(Handshake::Again),
                Err(e) => Err(TlsError::Io(e.kind())),
            }
        }
    }

    /// Decrypts into `conn`: first what the session holds, then what the
    /// socket brings — until it is drained (a read filling less than
    /// offered) on a non-blocking socket, or with at most one read that
    /// waits, on a blocking one (and none if the session held plaintext or
    /// has records to send first). A blocking socket's timeout is a
    /// [`Fault::Io`]. `now` is the clock, read when bytes arrive.
    pub fn read<D: Decoder, E: Encoder>(
        &mut self,
        stream: &TcpStream,
        conn: &mut Conn<D, E>,
        now: impl Fn() -> Duration,
        blocking: bool,
    ) -> Result<Input, Fault> {
        #[cfg(feature = "tls")]
        if let Some(s) = self.session.as_mut() {
            let mut drained = false;
            let mut moved = false;
            loop {
                loop {
                    let Some(buf) = conn.read_buf() else {
                        return Ok(Input::Full);
                    };
                    match s.poll_plaintext(buf).map_err(Fault::Tls)? {
                        0 => break,
                        n => {
                            conn.handle_read(n, now());
                            moved = true;
                        }
                    }
                }
                if s.is_read_closed() {
                    return Ok(Input::Eof);
                }
                if drained || (blocking && (moved || s.wants_write())) {
                    return Ok(Input::Drained);
                }
                let Some(buf) = s.read_buf() else {
                    return Ok(Input::Drained);
                };
                let offered = buf.len();
                match (&*stream).read(buf) {
                    Ok(n) => {
                        drained = blocking || n < offered;
                        s.handle_read(n).map_err(Fault::Tls)?;
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) if !blocking && e.kind() == io::ErrorKind::WouldBlock => {
                        return Ok(Input::Drained)
                    }
                    Err(e) => return Err(Fault::Io(e)),
                }
            }
        }
        let _ = (stream, conn, now, blocking);
        Ok(Input::Drained)
    }

    /// Encrypts the replies queued in `conn` (once the previous batch has
    /// left, both slices of the ring at once) and writes their records,
    /// until nothing is left or, on a non-blocking socket, the socket takes
    /// less than offered. A blocking socket's timeout is a [`Fault::Io`].
    /// `now` is the clock, read when replies count as written.
    pub fn write<D: Decoder, E: Encoder>(
        &mut self,
        stream: &TcpStream,
        conn: &mut Conn<D, E>,
        now: impl Fn() -> Duration,
        blocking: bool,
    ) -> Result<Wrote, Fault> {
        let wrote = Wrote {
            bytes: 0,
            blocked: false,
        };
        #[cfg(feature = "tls")]
        if let Some(s) = self.session.as_mut() {
            let mut wrote = wrote;
            loop {
                if !s.wants_write() {
                    if conn.wants_write() {
                        let (a, b) = conn.poll_transmit();
                        s.handle_plaintext(a, b).map_err(Fault::Tls)?;
                    }
                    if !s.wants_write() {
                        return Ok(wrote);
                    }
                }
                match (&*stream).write(s.poll_transmit()) {
                    Ok(0) => return Err(Fault::Io(io::ErrorKind::WriteZero.into())),
                    Ok(n) => {
                        wrote.bytes += n;
                        let plain = s.handle_written(n);
                        if plain > 0 {
                            conn.handle_written(plain, now());
                        }
                        if !blocking && s.wants_write() {
                            wrote.blocked = true;
                            return Ok(wrote);
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) if !blocking && e.kind() == io::ErrorKind::WouldBlock => {
                        wrote.blocked = true;
                        return Ok(wrote);
                    }
                    Err(e) => return Err(Fault::Io(e)),
                }
            }
        }
        let _ = (stream, conn, now, blocking);
        Ok(wrote)
    }

    /// Before the socket closes: sends what the session's close policy
    /// queues for `reason` (a close_notify, an alert), best effort: what a
    /// non-blocking socket takes at once, or within a blocking socket's
    /// write timeout.
    pub fn goodbye(&mut self, stream: &TcpStream, reason: CloseReason) {
        #[cfg(feature = "tls")]
        if let Some(s) = self.session.as_mut() {
            s.close(reason);
            loop {
                let out = s.poll_transmit();
                if out.is_empty() {
                    break;
                }
                match (&*stream).write(out) {
                    Ok(n) if n > 0 => {
                        s.handle_written(n);
                    }
                    _ => break,
                }
            }
        }
        let _ = (stream, reason);
    }
}

/// A socket error that means "not now": a non-blocking socket's
/// `WouldBlock`, or a blocking one's timeout.
#[cfg(feature = "tls")]
fn would_block(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// One client connection's TLS session, if it has one, and the socket
/// calls around it. Every call is one attempt on the socket and passes its
/// `WouldBlock` on: a blocking client calls it as it is, an async one
/// inside its runtime's "retry when ready" (`read_with`, `write_with`).
#[derive(Debug, Default)]
pub struct ClientLink {
    /// Boxed: a plain client's link is one null pointer.
    #[cfg(feature = "tls")]
    tls: Option<Box<ClientSession>>,
}

#[cfg(feature = "tls")]
#[derive(Debug)]
struct ClientSession {
    session: fastnet_tls::rustls::ClientConnection,
    /// What the handshake negotiated, once it completed.
    info: Option<TlsInfo>,
    handshake_timeout: Duration,
}

impl ClientLink {
    /// A link through `connector`'s TLS (its handshake still to run), or
    /// a plain one.
    pub fn new(connector: Option<&TlsConnector>) -> io::Result<Self> {
        let Some(connector) = connector else {
            return Ok(ClientLink::default());
        };
        #[cfg(feature = "tls")]
        {
            let mut session = connector.session()?;
            // Ciphertext is written out right after each flush encrypts
            // it, so the session holds no more than one flush's frames.
            session.set_buffer_limit(None);
            Ok(ClientLink {
                tls: Some(Box::new(ClientSession {
                    session,
                    info: None,
                    handshake_timeout: connector.handshake_timeout(),
                })),
            })
        }
        #[cfg(not(feature = "tls"))]
        match *connector {}
    }

    /// Whether the connection speaks TLS.
    #[inline]
    pub fn is_tls(&self) -> bool {
        #[cfg(feature = "tls")]
        return self.tls.is_some();
        #[cfg(not(feature = "tls"))]
        false
    }

    /// What the handshake negotiated, once it completed.
    pub fn info(&self) -> Option<&TlsInfo> {
        #[cfg(feature = "tls")]
        return self.tls.as_ref().and_then(|t| t.info.as_ref());
        #[cfg(not(feature = "tls"))]
        None
    }

    /// How long the handshake may take (the connector's setting).
    pub fn handshake_timeout(&self) -> Duration {
        #[cfg(feature = "tls")]
        if let Some(t) = &self.tls {
            return t.handshake_timeout;
        }
        Duration::ZERO
    }

    /// One step of the handshake: writes the session's flight or reads the
    /// server's, with one socket call. A server that closes mid-handshake
    /// is [`io::ErrorKind::UnexpectedEof`]; a TLS failure is
    /// [`io::ErrorKind::InvalidData`] carrying the rustls error (its alert
    /// sent, best effort).
    pub fn handshake(&mut self, stream: &TcpStream) -> io::Result<Handshake> {
        #[cfg(feature = "tls")]
        if let Some(t) = self.tls.as_mut() {
            let s = &mut t.session;
            if s.wants_write() {
                return match s.write_tls(&mut &*stream) {
                    Ok(_) => Ok(Handshake::Again),
                    Err(e) if would_block(&e) => Ok(Handshake::Write),
                    Err(e) => Err(e),
                };
            }
            if !s.is_handshaking() {
                t.info = Some(TlsInfo::new(s, None));
                return Ok(Handshake::Done);
            }
            return match s.read_tls(&mut &*stream) {
                Ok(0) => Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the server closed the connection during the TLS handshake",
                )),
                Ok(_) => process(s, stream).map(|()| Handshake::Again),
                Err(e) if would_block(&e) => Ok(Handshake::Read),
                Err(e) => Err(e),
            };
        }
        let _ = stream;
        Ok(Handshake::Done)
    }

    /// Encrypts `plain` into the session; [`write`](Self::write) sends it.
    pub fn encrypt(&mut self, plain: &[u8]) -> io::Result<()> {
        #[cfg(feature = "tls")]
        if let Some(t) = self.tls.as_mut() {
            return t.session.writer().write_all(plain);
        }
        let _ = plain;
        Ok(())
    }

    /// Whether the session holds records to send.
    pub fn wants_write(&self) -> bool {
        #[cfg(feature = "tls")]
        if let Some(t) = &self.tls {
            return t.session.wants_write();
        }
        false
    }

    /// Writes some of the session's records (one socket call).
    pub fn write(&mut self, stream: &TcpStream) -> io::Result<usize> {
        #[cfg(feature = "tls")]
        if let Some(t) = self.tls.as_mut() {
            return t.session.write_tls(&mut &*stream);
        }
        let _ = stream;
        Ok(0)
    }

    /// Reads plaintext into `buf`: what the session holds, else what one
    /// socket read decrypts to (after sending records of the session's
    /// own, alerts and key updates, if the socket takes them). `Ok(0)` is
    /// the end of the stream, with or without close_notify (a frame cut
    /// off by it is still caught by the framing).
    pub fn read(&mut self, stream: &TcpStream, buf: &mut [u8]) -> io::Result<usize> {
        #[cfg(feature = "tls")]
        if let Some(t) = self.tls.as_mut() {
            let s = &mut t.session;
            loop {
                match s.reader().read(buf) {
                    Ok(n) => return Ok(n),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                    Err(e) => return Err(e),
                }
                while s.wants_write() {
                    match s.write_tls(&mut &*stream) {
                        Ok(_) => {}
                        Err(e) if would_block(&e) => break,
                        Err(e) => return Err(e),
                    }
                }
                if s.read_tls(&mut &*stream)? == 0 {
                    return Ok(0);
                }
                process(s, stream)?;
            }
        }
        let _ = (stream, buf);
        Ok(0)
    }

    /// Whether a non-blocking `stream` and the session are quiet: nothing
    /// to read, no end of stream (a pool's check before it reuses an idle
    /// connection).
    pub fn is_quiet(&mut self, stream: &TcpStream) -> bool {
        #[cfg(feature = "tls")]
        if let Some(t) = self.tls.as_mut() {
            let s = &mut t.session;
            let mut probe = [0u8; 1];
            loop {
                match s.reader().read(&mut probe) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    _ => return false,
                }
                match s.read_tls(&mut &*stream) {
                    Ok(0) => return false,
                    Ok(_) if s.process_new_packets().is_ok() => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                    _ => return false,
                }
            }
        }
        let mut probe = [0u8; 1];
        matches!(stream.peek(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }
}

/// Lets the session take the records read; on a TLS failure, sends its
/// alert (best effort) and reports the rustls error.
#[cfg(feature = "tls")]
fn process(s: &mut fastnet_tls::rustls::ClientConnection, stream: &TcpStream) -> io::Result<()> {
    if let Err(e) = s.process_new_packets() {
        let _ = s.write_tls(&mut &*stream);
        return Err(io::Error::new(io::ErrorKind::InvalidData, e));
    }
    Ok(())
}
