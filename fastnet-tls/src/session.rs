//! [`ServerSession`]: one server connection's TLS, sans-IO.

use std::io::{self, Read, Write};
use std::sync::Arc;
use std::time::Duration;

use fastnet_proto::connection::CloseReason;
use rustls::ServerConnection;

use crate::{TlsError, TlsInfo};

/// Ciphertext taken from the transport at once: a little more than one
/// full record (16 KiB of plaintext plus overhead).
const INPUT_SIZE: usize = 18 * 1024;

/// The TLS side of one server connection, as a state machine that never
/// touches a socket or reads a clock: the driver moves bytes in and out and
/// passes the time in, as it does for fastnet-proto's `Connection`. A
/// driver keeps one per TLS connection, between the socket and the
/// `Connection`: ciphertext from the socket goes in, plaintext comes out
/// into the connection's receive buffer; replies go in as plaintext and
/// come out as ciphertext for the socket.
///
/// The session owns what both directions need to stay consistent: the
/// handshake deadline, the ciphertext read but not yet decrypted, the
/// ciphertext encrypted but not yet written (and how much reply plaintext
/// it carries, so replies count as written only once their ciphertext is),
/// and the close_notify policy.
///
/// # Methods
///
/// - Getters: [`info`](Self::info), [`is_handshaking`](Self::is_handshaking),
///   [`has_buffered`](Self::has_buffered),
///   [`is_read_closed`](Self::is_read_closed),
///   [`wants_write`](Self::wants_write).
/// - Inputs: [`handle_ciphertext`](Self::handle_ciphertext) (bytes the
///   caller holds) or [`read_buf`](Self::read_buf) then
///   [`handle_read`](Self::handle_read) (bytes read into a buffer the
///   session lends; `0` is the transport's end of stream);
///   [`handle_eof`](Self::handle_eof) (the transport's end, for callers of
///   `handle_ciphertext`); [`handle_plaintext`](Self::handle_plaintext)
///   (replies to encrypt);
///   [`handle_written`](Self::handle_written) (ciphertext the transport
///   took); [`handle_timeout`](Self::handle_timeout) (the time, for the
///   handshake deadline).
/// - Outputs: [`poll_plaintext`](Self::poll_plaintext) (decrypted bytes into
///   a caller's slice), [`poll_transmit`](Self::poll_transmit) or
///   [`take_transmit`](Self::take_transmit) (ciphertext to write),
///   [`poll_timeout`](Self::poll_timeout) (the handshake deadline).
/// - Commands: [`close`](Self::close) (the close_notify policy).
///
/// # Drain order
///
/// After ciphertext goes in: write what [`poll_transmit`](Self::poll_transmit)
/// gives (the handshake's flights, alerts, session tickets), then call
/// [`poll_plaintext`](Self::poll_plaintext) until it returns `0` or the
/// receiver is full, then look at [`is_read_closed`](Self::is_read_closed).
/// Lend a new [`read_buf`](Self::read_buf) only once `poll_plaintext`
/// returned `0` (before, it is `None`: the ciphertext in hand is not all
/// decrypted). Before closing the transport, call [`close`](Self::close) and
/// write what `poll_transmit` gives one last time.
///
/// Errors are final: after a [`TlsError`] the session only hands out the
/// alert it queued (through `poll_transmit`); close the connection with
/// [`TlsError::close_reason`].
///
/// # Example
///
/// A handshake and one message each way, by hand, in memory:
///
/// ```
/// use std::io::{Read, Write};
/// use std::time::Duration;
/// use fastnet_tls::{ServerSession, TlsClientConfig, TlsServerConfig};
///
/// let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
/// let server = TlsServerConfig::from_pem(cert.cert.pem().as_bytes(), cert.signing_key.serialize_pem().as_bytes())?
///     .build()?;
/// let mut client = TlsClientConfig::new("localhost")?.ca_pem(cert.cert.pem().as_bytes())?.build()?.session()?;
/// let now = Duration::ZERO;
/// let mut session = ServerSession::new(&server, Duration::from_secs(5), now).unwrap();
///
/// client.writer().write_all(b"hello")?;
/// while session.is_handshaking() || client.is_handshaking() {
///     let mut flight = Vec::new();
///     while client.wants_write() {
///         client.write_tls(&mut flight)?;
///     }
///     let mut at = 0;
///     while at < flight.len() {
///         at += session.handle_ciphertext(&flight[at..]).unwrap();
///     }
///     let reply = session.poll_transmit();
///     let n = reply.len();
///     client.read_tls(&mut &reply[..])?;
///     session.handle_written(n);
///     client.process_new_packets().unwrap();
/// }
/// let mut plain = [0; 64];
/// let n = session.poll_plaintext(&mut plain).unwrap();
/// assert_eq!(&plain[..n], b"hello");
///
/// session.handle_plaintext(b"wor", b"ld").unwrap();
/// let records = session.poll_transmit().to_vec();
/// // All of it written: the five reply bytes count as written.
/// assert_eq!(session.handle_written(records.len()), 5);
/// client.read_tls(&mut &records[..])?;
/// client.process_new_packets().unwrap();
/// let mut got = [0; 5];
/// client.reader().read_exact(&mut got)?;
/// assert_eq!(&got, b"world");
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct ServerSession {
    conn: ServerConnection,
    info: Option<TlsInfo>,
    handshake_timeout: Duration,
    /// When the handshake must have completed; `None` once it did.
    deadline: Option<Duration>,
    /// Ciphertext read and not yet handed to rustls (`input[start..end]`);
    /// empty until first lent.
    input: Vec<u8>,
    start: usize,
    end: usize,
    /// rustls may hold decrypted plaintext not yet handed out.
    plaintext: bool,
    /// The transport reached its end of stream.
    eof: bool,
    /// The peer's close_notify arrived: rustls takes no more ciphertext.
    peer_closed: bool,
    /// The peer's close_notify arrived (or the transport ended) and every
    /// plaintext byte before it was handed out.
    read_closed: bool,
    /// The first error; the session does nothing more but hand out its
    /// alert.
    failed: Option<TlsError>,
    /// Ciphertext to write (`output[at..]`).
    output: Vec<u8>,
    at: usize,
    /// Plaintext whose records are in `output`, or still in rustls.
    unacked: usize,
}

impl ServerSession {
    /// A session for one new connection, whose handshake must complete
    /// within `handshake_timeout` from `now` (time since an epoch of the
    /// caller's choosing, the same for every call).
    pub fn new(
        config: &Arc<rustls::ServerConfig>,
        handshake_timeout: Duration,
        now: Duration,
    ) -> Result<Self, TlsError> {
        let mut conn = ServerConnection::new(Arc::clone(config)).map_err(TlsError::Rustls)?;
        // Callers take all ciphertext out after each batch of plaintext, so
        // rustls holds at most one batch (bounded by the caller's reply
        // buffer); a limit would only make it refuse part of a batch.
        conn.set_buffer_limit(None);
        Ok(ServerSession {
            conn,
            info: None,
            handshake_timeout,
            deadline: Some(now.saturating_add(handshake_timeout)),
            input: Vec::new(),
            start: 0,
            end: 0,
            plaintext: false,
            eof: false,
            peer_closed: false,
            read_closed: false,
            failed: None,
            output: Vec::new(),
            at: 0,
            unacked: 0,
        })
    }

    // ---- getters ----

    /// What the handshake negotiated, once it completed.
    pub fn info(&self) -> Option<&TlsInfo> {
        self.info.as_ref()
    }

    /// Whether the handshake has yet to complete (also after it failed).
    pub fn is_handshaking(&self) -> bool {
        self.info.is_none()
    }

    /// Whether the session holds input not yet handed out (plaintext,
    /// ciphertext not yet decrypted, or the peer's close_notify): call
    /// [`poll_plaintext`](Self::poll_plaintext) before waiting for the
    /// transport.
    pub fn has_buffered(&self) -> bool {
        // A close_notify that came with the client's last handshake flight
        // is processed there and nothing more arrives: a driver that waited
        // for the socket instead would wait for its idle timeout.
        self.failed.is_none()
            && !self.read_closed
            && (self.plaintext || self.start < self.end || self.peer_closed)
    }

    /// Whether input has ended (the peer's close_notify, or the transport's
    /// end of stream) and all plaintext before the end was handed out.
    pub fn is_read_closed(&self) -> bool {
        self.read_closed
    }

    /// Whether there is ciphertext to write.
    pub fn wants_write(&self) -> bool {
        self.at < self.output.len() || self.conn.wants_write()
    }

    /// The error the session failed with, if it did.
    pub fn error(&self) -> Option<&TlsError> {
        self.failed.as_ref()
    }

    // ---- inputs ----

    /// Takes ciphertext the caller holds; returns how much of `data` was
    /// taken. Less than all means the session holds decrypted plaintext:
    /// drain [`poll_plaintext`](Self::poll_plaintext), then offer the rest.
    /// An error is final (see the type's documentation).
    pub fn handle_ciphertext(&mut self, data: &[u8]) -> Result<usize, TlsError> {
        self.check()?;
        let mut rest = data;
        while !rest.is_empty() && self.takes_input() {
            match self.conn.read_tls(&mut rest) {
                Ok(0) => break,
                Ok(_) => self.process()?,
                Err(e) => return Err(self.fail(TlsError::Io(e.kind()))),
            }
        }
        Ok(data.len() - rest.len())
    }

    /// A buffer to read ciphertext into, for [`handle_read`](Self::handle_read);
    /// `None` while the session holds input not yet handed out (drain
    /// [`poll_plaintext`](Self::poll_plaintext) first), after input ended or
    /// after an error.
    pub fn read_buf(&mut self) -> Option<&mut [u8]> {
        if self.has_buffered() || self.eof || self.read_closed || self.failed.is_some() {
            return None;
        }
        if self.input.is_empty() {
            // Once per connection, and only once it reads.
            self.input = vec![0; INPUT_SIZE];
        }
        self.start = 0;
        self.end = 0;
        Some(&mut self.input)
    }

    /// `n` bytes were read into the last [`read_buf`](Self::read_buf); `0`
    /// is the transport's end of stream (during the handshake, a
    /// [`TlsError::HandshakeEof`]).
    pub fn handle_read(&mut self, n: usize) -> Result<(), TlsError> {
        if n == 0 {
            return self.handle_eof();
        }
        self.check()?;
        self.end = n.min(self.input.len());
        self.feed()
    }

    /// The transport reached its end of stream (for a caller feeding
    /// [`handle_ciphertext`](Self::handle_ciphertext)): during the
    /// handshake a [`TlsError::HandshakeEof`], after it the end of input
    /// once the plaintext before it is handed out.
    pub fn handle_eof(&mut self) -> Result<(), TlsError> {
        self.check()?;
        self.eof = true;
        if self.is_handshaking() {
            return Err(self.fail(TlsError::HandshakeEof));
        }
        if !self.plaintext && self.start == self.end {
            self.read_closed = true;
        }
        Ok(())
    }

    /// Encrypts `a` then `b` (both halves of a reply ring at once). Their
    /// bytes count as written (in [`handle_written`](Self::handle_written))
    /// once all ciphertext queued so far is.
    pub fn handle_plaintext(&mut self, a: &[u8], b: &[u8]) -> Result<(), TlsError> {
        self.check()?;
        let mut w = self.conn.writer();
        // Without a buffer limit rustls takes everything; an error means
        // the session cannot send (before the handshake, after a close).
        if let Err(e) = w.write_all(a).and_then(|()| w.write_all(b)) {
            return Err(self.fail(TlsError::Io(e.kind())));
        }
        self.unacked += a.len() + b.len();
        Ok(())
    }

    /// The transport took `n` bytes of [`poll_transmit`](Self::poll_transmit).
    /// Returns the plaintext bytes now written: everything given to
    /// [`handle_plaintext`](Self::handle_plaintext) so far once no
    /// ciphertext is left, else `0`.
    pub fn handle_written(&mut self, n: usize) -> usize {
        self.at = (self.at + n).min(self.output.len());
        if self.at < self.output.len() {
            return 0;
        }
        self.output.clear();
        self.at = 0;
        if self.conn.wants_write() {
            return 0;
        }
        std::mem::take(&mut self.unacked)
    }

    /// Checks the handshake deadline at `now`: past it, the session fails
    /// with [`TlsError::HandshakeTimeout`].
    pub fn handle_timeout(&mut self, now: Duration) -> Result<(), TlsError> {
        self.check()?;
        match self.deadline {
            Some(at) if now >= at => {
                Err(self.fail(TlsError::HandshakeTimeout(self.handshake_timeout)))
            }
            _ => Ok(()),
        }
    }

    // ---- outputs ----

    /// Hands out decrypted plaintext into `buf`: as much as is there,
    /// several records at once, decrypting ciphertext the session holds as
    /// `buf` has room. `0` means none is left: read more ciphertext, or,
    /// if [`is_read_closed`](Self::is_read_closed), input has ended.
    pub fn poll_plaintext(&mut self, buf: &mut [u8]) -> Result<usize, TlsError> {
        self.check()?;
        let mut filled = 0;
        while filled < buf.len() && !self.read_closed {
            match self.conn.reader().read(&mut buf[filled..]) {
                // The peer's close_notify, after all plaintext before it.
                Ok(0) => {
                    self.plaintext = false;
                    self.read_closed = true;
                }
                Ok(n) => filled += n,
                // Nothing decrypted: decrypt more, if there is more.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.plaintext = false;
                    if self.start == self.end {
                        self.read_closed = self.eof;
                        break;
                    }
                    self.feed()?;
                }
                // The transport ended without close_notify: an end all the
                // same, the caller's framing judges a cut-off message.
                Err(_) => {
                    self.plaintext = false;
                    self.read_closed = true;
                }
            }
        }
        Ok(filled)
    }

    /// The ciphertext to write now (empty if none): records of replies,
    /// and of the session itself (handshake flights, session tickets,
    /// alerts, close_notify). Report what the transport took with
    /// [`handle_written`](Self::handle_written).
    pub fn poll_transmit(&mut self) -> &[u8] {
        if self.at == self.output.len() {
            self.output.clear();
            self.at = 0;
            while self.conn.wants_write() {
                // Writing into a Vec cannot fail.
                if self.conn.write_tls(&mut self.output).is_err() {
                    break;
                }
            }
        }
        &self.output[self.at..]
    }

    /// Appends all ciphertext to write to `out` and returns the plaintext
    /// bytes it carries, for a caller that writes it outside of whatever
    /// guards the session (the bytes then count as written once `out` is).
    pub fn take_transmit(&mut self, out: &mut Vec<u8>) -> usize {
        if self.at < self.output.len() {
            out.extend_from_slice(&self.output[self.at..]);
        }
        self.output.clear();
        self.at = 0;
        while self.conn.wants_write() {
            if self.conn.write_tls(out).is_err() {
                break;
            }
        }
        std::mem::take(&mut self.unacked)
    }

    /// When [`handle_timeout`](Self::handle_timeout) is due: the handshake
    /// deadline, until the handshake completes or fails.
    pub fn poll_timeout(&self) -> Option<Duration> {
        self.deadline.filter(|_| self.failed.is_none())
    }

    // ---- commands ----

    /// The connection closes for `reason`: after an orderly close of an
    /// established session, queues a close_notify (the peer learns nothing
    /// was cut off). After [`CloseReason::Reset`],
    /// [`CloseReason::IdleTimeout`] or [`CloseReason::Tls`], or before the
    /// handshake completed, queues nothing: only an alert already queued
    /// goes out. Write what [`poll_transmit`](Self::poll_transmit) gives
    /// next, best effort.
    pub fn close(&mut self, reason: CloseReason) {
        let orderly = !matches!(
            reason,
            CloseReason::Reset | CloseReason::IdleTimeout | CloseReason::Tls(_)
        );
        if orderly && self.info.is_some() && self.failed.is_none() {
            self.conn.send_close_notify();
        }
    }

    // ---- internals ----

    fn check(&self) -> Result<(), TlsError> {
        match &self.failed {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }

    fn fail(&mut self, e: TlsError) -> TlsError {
        self.deadline = None;
        self.failed = Some(e.clone());
        e
    }

    /// Whether rustls takes more ciphertext now: not while it holds
    /// plaintext (that bounds what it buffers), nor after close_notify.
    fn takes_input(&self) -> bool {
        !self.plaintext && !self.read_closed && !self.peer_closed
    }

    /// Hands held ciphertext to rustls until it holds plaintext or none is
    /// left.
    fn feed(&mut self) -> Result<(), TlsError> {
        while self.start < self.end && self.takes_input() {
            let mut pending = &self.input[self.start..self.end];
            match self.conn.read_tls(&mut pending) {
                Ok(0) => break,
                Ok(n) => self.start += n,
                Err(e) => return Err(self.fail(TlsError::Io(e.kind()))),
            }
            self.process()?;
        }
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        Ok(())
    }

    /// Lets rustls process what it was given.
    fn process(&mut self) -> Result<(), TlsError> {
        let state = match self.conn.process_new_packets() {
            Ok(state) => state,
            // The alert rustls queued goes out through poll_transmit.
            Err(e) => return Err(self.fail(TlsError::Rustls(e))),
        };
        if self.info.is_none() && !self.conn.is_handshaking() {
            self.info = Some(TlsInfo::new(&self.conn, self.conn.server_name()));
            self.deadline = None;
        }
        self.peer_closed = state.peer_has_closed();
        if self.peer_closed && self.info.is_none() {
            // The peer gave up before the handshake completed.
            return Err(self.fail(TlsError::HandshakeEof));
        }
        self.plaintext = state.plaintext_bytes_to_read() > 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{TlsClientConfig, TlsServerConfig};
    use fastnet_proto::connection::TlsFailure;
    use rustls::{AlertDescription, ClientConnection};

    const TIMEOUT: Duration = Duration::from_secs(5);

    fn pair() -> (ServerSession, ClientConnection) {
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        let server = TlsServerConfig::from_pem(
            cert.cert.pem().as_bytes(),
            cert.signing_key.serialize_pem().as_bytes(),
        )
        .unwrap()
        .alpn(["fastnet"])
        .build()
        .unwrap();
        let client = TlsClientConfig::new("localhost")
            .unwrap()
            .ca_pem(cert.cert.pem().as_bytes())
            .unwrap()
            .alpn(["fastnet"])
            .build()
            .unwrap()
            .session()
            .unwrap();
        (
            ServerSession::new(&server, TIMEOUT, Duration::ZERO).unwrap(),
            client,
        )
    }

    /// The client's pending records.
    fn client_out(client: &mut ClientConnection) -> Vec<u8> {
        let mut out = Vec::new();
        while client.wants_write() {
            client.write_tls(&mut out).unwrap();
        }
        out
    }

    /// Ciphertext into the session through its lent buffer, in pieces as
    /// a socket would give them; plaintext out into `plain`.
    fn to_server(session: &mut ServerSession, mut bytes: &[u8], plain: &mut Vec<u8>) {
        let mut buf = [0; 1000];
        loop {
            loop {
                let n = session.poll_plaintext(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                plain.extend_from_slice(&buf[..n]);
            }
            if bytes.is_empty() {
                return;
            }
            let into = session.read_buf().expect("all ciphertext decrypted");
            let n = into.len().min(bytes.len()).min(3000);
            into[..n].copy_from_slice(&bytes[..n]);
            bytes = &bytes[n..];
            session.handle_read(n).unwrap();
        }
    }

    /// The session's records into the client; the plaintext they carry.
    fn to_client(session: &mut ServerSession, client: &mut ClientConnection) -> Vec<u8> {
        let out = session.poll_transmit().to_vec();
        session.handle_written(out.len());
        let mut rest = &out[..];
        let mut plain = Vec::new();
        while !rest.is_empty() {
            client.read_tls(&mut rest).unwrap();
            client.process_new_packets().unwrap();
            let _ = client.reader().read_to_end(&mut plain);
        }
        plain
    }

    fn handshake(session: &mut ServerSession, client: &mut ClientConnection) {
        let mut plain = Vec::new();
        while session.is_handshaking() || client.is_handshaking() {
            let flight = client_out(client);
            to_server(session, &flight, &mut plain);
            to_client(session, client);
        }
        assert!(plain.is_empty());
    }

    fn established() -> (ServerSession, ClientConnection) {
        let (mut session, mut client) = pair();
        handshake(&mut session, &mut client);
        (session, client)
    }

    /// A client that says close_notify with its Finished (a connection
    /// opened and closed at once): once the handshake is done the end is
    /// input waiting to be handed out, not something to wait for.
    #[test]
    fn close_notify_with_the_last_flight_is_buffered_input() {
        let (mut session, mut client) = pair();
        let mut plain = Vec::new();
        while client.is_handshaking() {
            let flight = client_out(&mut client);
            to_server(&mut session, &flight, &mut plain);
            to_client(&mut session, &mut client);
        }
        assert!(session.is_handshaking());
        client.send_close_notify();
        let last = client_out(&mut client);
        let into = session.read_buf().expect("handshake input");
        into[..last.len()].copy_from_slice(&last);
        session.handle_read(last.len()).unwrap();
        assert!(!session.is_handshaking());
        assert!(session.has_buffered(), "the close_notify waits to be seen");
        assert!(
            session.read_buf().is_none(),
            "nothing more to read after it"
        );
        let mut buf = [0; 64];
        assert_eq!(session.poll_plaintext(&mut buf).unwrap(), 0);
        assert!(session.is_read_closed());
        assert!(!session.has_buffered());
    }

    #[test]
    fn handshake_then_data_both_ways() {
        let (mut session, mut client) = pair();
        client.set_buffer_limit(None);
        assert!(session.info().is_none());
        handshake(&mut session, &mut client);
        let info = session.info().expect("negotiated");
        assert_eq!(info.alpn(), Some(&b"fastnet"[..]));
        assert_eq!(info.server_name(), Some("localhost"));
        assert_eq!(session.poll_timeout(), None);

        // Several records, read in pieces smaller than one.
        let big: Vec<u8> = (0..70_000u32).map(|i| i as u8).collect();
        client.writer().write_all(&big).unwrap();
        let mut plain = Vec::new();
        to_server(&mut session, &client_out(&mut client), &mut plain);
        assert_eq!(plain, big);
        assert!(!session.has_buffered());
        assert!(!session.is_read_closed());

        session.handle_plaintext(b"both ", b"halves").unwrap();
        assert!(session.wants_write());
        let out = session.poll_transmit().to_vec();
        // Part written: the replies are not written yet.
        assert_eq!(session.handle_written(out.len() - 1), 0);
        assert_eq!(session.poll_transmit().len(), 1);
        assert_eq!(session.handle_written(1), 11);
        assert!(!session.wants_write());
        let mut rest = &out[..];
        client.read_tls(&mut rest).unwrap();
        client.process_new_packets().unwrap();
        let mut got = Vec::new();
        let _ = client.reader().read_to_end(&mut got);
        assert_eq!(got, b"both halves");

        // The same through take_transmit.
        session.handle_plaintext(b"again", b"").unwrap();
        let mut out = Vec::new();
        assert_eq!(session.take_transmit(&mut out), 5);
        assert!(!session.wants_write());
        assert!(!out.is_empty());
    }

    #[test]
    fn plaintext_beyond_the_receivers_room_stays_buffered() {
        let (mut session, mut client) = established();
        client.writer().write_all(&[7; 5000]).unwrap();
        let records = client_out(&mut client);
        assert_eq!(session.handle_ciphertext(&records).unwrap(), records.len());
        assert!(session.has_buffered());
        assert!(session.read_buf().is_none());
        let mut small = [0; 1000];
        let mut total = 0;
        loop {
            let n = session.poll_plaintext(&mut small).unwrap();
            if n == 0 {
                break;
            }
            total += n;
        }
        assert_eq!(total, 5000);
        assert!(!session.has_buffered());
        assert!(session.read_buf().is_some());
    }

    #[test]
    fn handshake_deadline_fires_on_passed_in_time() {
        let (mut session, mut client) = pair();
        assert_eq!(session.poll_timeout(), Some(TIMEOUT));
        let hello = client_out(&mut client);
        session.handle_ciphertext(&hello).unwrap();
        session
            .handle_timeout(TIMEOUT - Duration::from_millis(1))
            .unwrap();
        let e = session.handle_timeout(TIMEOUT).unwrap_err();
        assert_eq!(e, TlsError::HandshakeTimeout(TIMEOUT));
        assert_eq!(
            e.close_reason(),
            CloseReason::Tls(TlsFailure::HandshakeTimeout)
        );
        assert_eq!(session.poll_timeout(), None);
        // Final: everything after says the same.
        assert_eq!(session.handle_ciphertext(b"x").unwrap_err(), e);
        // No close_notify for a session that never was.
        session.close(CloseReason::Local);
        let _ = session.poll_transmit().len();
        session.handle_written(usize::MAX);
        session.close(CloseReason::Local);
        assert!(session.poll_transmit().is_empty());
    }

    #[test]
    fn an_established_session_has_no_deadline() {
        let (mut session, _client) = established();
        session.handle_timeout(TIMEOUT * 100).unwrap();
    }

    #[test]
    fn close_notify_only_after_an_orderly_close() {
        let orderly = [
            CloseReason::PeerClosed,
            CloseReason::Local,
            CloseReason::ReadTimeout,
            CloseReason::FrameTooLarge,
            CloseReason::ByteLimit,
            CloseReason::Protocol(fastnet_proto::Error::FrameTooLarge { len: 9, max: 8 }),
        ];
        for reason in orderly {
            let (mut session, mut client) = established();
            session.close(reason);
            assert!(session.wants_write(), "{reason:?}");
            to_client(&mut session, &mut client);
            let mut buf = [0; 8];
            assert_eq!(client.reader().read(&mut buf).unwrap(), 0, "{reason:?}");
        }
        let abrupt = [
            CloseReason::Reset,
            CloseReason::IdleTimeout,
            CloseReason::Tls(TlsFailure::AlertSent(20)),
            CloseReason::Tls(TlsFailure::HandshakeTimeout),
        ];
        for reason in abrupt {
            let (mut session, _client) = established();
            session.close(reason);
            assert!(!session.wants_write(), "{reason:?}");
            assert!(session.poll_transmit().is_empty(), "{reason:?}");
        }
        // Before the handshake completed: nothing either.
        let (mut session, _client) = pair();
        session.close(CloseReason::Local);
        assert!(session.poll_transmit().is_empty());
    }

    #[test]
    fn corrupted_record_sends_bad_record_mac() {
        let (mut session, mut client) = established();
        client.writer().write_all(b"payload").unwrap();
        let mut record = client_out(&mut client);
        let last = record.len() - 1;
        record[last] ^= 0xff;
        let e = session.handle_ciphertext(&record).unwrap_err();
        assert!(
            matches!(e, TlsError::Rustls(rustls::Error::DecryptError)),
            "{e:?}"
        );
        let alert = u8::from(AlertDescription::BadRecordMac);
        assert_eq!(
            e.close_reason(),
            CloseReason::Tls(TlsFailure::AlertSent(alert))
        );
        assert_eq!(session.error(), Some(&e));
        // The alert goes out; the close adds no close_notify.
        session.close(e.close_reason());
        session.close(CloseReason::Local);
        let out = session.poll_transmit().to_vec();
        assert!(!out.is_empty());
        client.read_tls(&mut &out[..]).unwrap();
        assert_eq!(
            client.process_new_packets().unwrap_err(),
            rustls::Error::AlertReceived(AlertDescription::BadRecordMac)
        );
        session.handle_written(out.len());
        assert!(!session.wants_write());
        assert!(session.read_buf().is_none());
    }

    #[test]
    fn not_tls_at_all_fails_the_handshake() {
        let (mut session, _client) = pair();
        let e = session
            .handle_ciphertext(b"GET / HTTP/1.1\r\n\r\n")
            .unwrap_err();
        assert!(matches!(
            e.close_reason(),
            CloseReason::Tls(TlsFailure::AlertSent(_))
        ));
        assert!(session.is_handshaking());
        assert_eq!(session.poll_timeout(), None);
    }

    #[test]
    fn end_of_input() {
        // The transport ends during the handshake.
        let (mut session, mut client) = pair();
        session.handle_ciphertext(&client_out(&mut client)).unwrap();
        assert!(session.read_buf().is_some());
        assert_eq!(session.handle_read(0).unwrap_err(), TlsError::HandshakeEof);

        // The peer's close_notify, after data.
        let (mut session, mut client) = established();
        client.writer().write_all(b"last").unwrap();
        client.send_close_notify();
        let mut plain = Vec::new();
        to_server(&mut session, &client_out(&mut client), &mut plain);
        assert_eq!(plain, b"last");
        assert!(session.is_read_closed());
        assert!(session.read_buf().is_none());

        // The transport ends without close_notify, after data.
        let (mut session, mut client) = established();
        client.writer().write_all(b"cut").unwrap();
        let mut plain = Vec::new();
        to_server(&mut session, &client_out(&mut client), &mut plain);
        assert!(!session.is_read_closed());
        assert!(session.read_buf().is_some());
        session.handle_read(0).unwrap();
        assert_eq!(session.poll_plaintext(&mut [0; 8]).unwrap(), 0);
        assert!(session.is_read_closed());
        assert_eq!(plain, b"cut");
    }
}
