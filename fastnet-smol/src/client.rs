//! The async client: [`Client`] (one framed connection) and [`Pool`]
//! (reusable client connections).

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use fastnet_proto::codec::{AnyDecoder, AnyEncoder, CodecSpec, Decoded, Decoder, Encoder};
use fastnet_proto::Buffer;
use smol::lock::{Semaphore, SemaphoreGuardArc};
use smol::{future, Async, Timer};

use crate::sync::lock;

/// One framed TCP connection to a server.
///
/// [`send`](Self::send) frames and writes a payload;
/// [`recv`](Self::recv) returns the next frame, borrowed from the client's
/// buffer until the next call. Any IO or framing error marks the client
/// [broken](Self::is_broken) (a [`Pool`] then discards it).
///
/// ```no_run
/// # async fn demo(addr: std::net::SocketAddr) -> std::io::Result<()> {
/// use std::time::Duration;
/// use fastnet_smol::{Client, CodecSpec};
///
/// let mut client = Client::connect(addr, CodecSpec::lines(1024), Duration::from_secs(1)).await?;
/// client.send(b"ping").await?;
/// assert_eq!(client.recv().await?, Some(&b"ping"[..]));
/// # Ok(()) }
/// ```
pub struct Client {
    stream: Async<TcpStream>,
    decoder: AnyDecoder,
    encoder: AnyEncoder,
    rx: Buffer<Vec<u8>>,
    /// Encoded frames not yet written.
    tx: Vec<u8>,
    /// Bytes of the frame `recv` returned last, dropped at the next call.
    pending: usize,
    broken: bool,
    /// The TLS session, for [`connect_tls`](Self::connect_tls).
    #[cfg(feature = "tls")]
    tls: Option<Box<ClientTls>>,
}

impl Client {
    /// Connects to `addr` within `timeout`; frames use `codec` both ways.
    pub async fn connect(
        addr: SocketAddr,
        codec: CodecSpec,
        timeout: Duration,
    ) -> io::Result<Client> {
        let decoder = codec.decoder().map_err(invalid)?;
        let encoder = codec.encoder().map_err(invalid)?;
        let stream = future::or(Async::<TcpStream>::connect(addr), async {
            Timer::after(timeout).await;
            Err(io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))
        })
        .await?;
        let _ = stream.get_ref().set_nodelay(true);
        let len = decoder.max_frame().max(8 * 1024);
        Ok(Client {
            stream,
            decoder,
            encoder,
            rx: Buffer::new(vec![0; len]),
            tx: Vec::new(),
            pending: 0,
            broken: false,
            #[cfg(feature = "tls")]
            tls: None,
        })
    }

    /// Connects as [`connect`](Self::connect) does, then runs a TLS
    /// handshake (within the connector's handshake timeout) that checks
    /// the server's certificate against the connector's roots and server
    /// name. Feature `tls`.
    ///
    /// With TLS 1.3 a server that refuses this client's certificate (or its
    /// lack of one) says so after the client's side of the handshake is
    /// done: that shows as an error of the first [`recv`](Self::recv).
    #[cfg(feature = "tls")]
    pub async fn connect_tls(
        addr: SocketAddr,
        codec: CodecSpec,
        timeout: Duration,
        tls: &crate::tls::TlsConnector,
    ) -> io::Result<Client> {
        let mut session = tls.session()?;
        // Ciphertext is written out right after each `flush` encrypts it,
        // so the session holds no more than the frames fed since the last.
        session.set_buffer_limit(None);
        let mut client = Client::connect(addr, codec, timeout).await?;
        let limit = tls.handshake_timeout();
        future::or(client_handshake(&client.stream, &mut session), async {
            Timer::after(limit).await;
            Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("TLS handshake with {addr} not completed within {limit:?}"),
            ))
        })
        .await?;
        client.tls = Some(Box::new(ClientTls {
            info: crate::tls::TlsInfo::new(&session, None),
            session,
        }));
        Ok(client)
    }

    /// Whether the connection is encrypted.
    pub fn is_tls(&self) -> bool {
        #[cfg(feature = "tls")]
        if self.tls.is_some() {
            return true;
        }
        false
    }

    /// What the TLS handshake negotiated (`None` without TLS). Feature
    /// `tls`.
    #[cfg(feature = "tls")]
    pub fn tls(&self) -> Option<&crate::tls::TlsInfo> {
        self.tls.as_ref().map(|t| &t.info)
    }

    /// The server's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.stream.get_ref().peer_addr()
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.stream.get_ref().local_addr()
    }

    /// Whether an IO or framing error happened on this connection.
    pub fn is_broken(&self) -> bool {
        self.broken
    }

    /// Frames `payload` and queues it without writing (for pipelining;
    /// [`flush`](Self::flush) writes everything queued).
    pub fn feed(&mut self, payload: &[u8]) -> io::Result<()> {
        self.encoder
            .encode_vec(payload, &mut self.tx)
            .map(drop)
            .map_err(invalid)
    }

    /// Writes every queued frame.
    pub async fn flush(&mut self) -> io::Result<()> {
        #[cfg(feature = "tls")]
        if let Some(tls) = self.tls.as_mut() {
            let res = tls.write(&self.stream, &self.tx).await;
            self.tx.clear();
            return res.map_err(|e| self.fail(e));
        }
        let mut off = 0;
        while off < self.tx.len() {
            let res = self
                .stream
                .write_with(|s| (&*s).write(&self.tx[off..]))
                .await;
            match res {
                Ok(0) => return Err(self.fail(io::ErrorKind::WriteZero.into())),
                Ok(n) => off += n,
                Err(e) => return Err(self.fail(e)),
            }
        }
        self.tx.clear();
        Ok(())
    }

    /// Frames `payload` and writes it.
    pub async fn send(&mut self, payload: &[u8]) -> io::Result<()> {
        self.feed(payload)?;
        self.flush().await
    }

    /// The next frame, or `None` when the server closed the connection
    /// cleanly between frames. The frame borrows the client's buffer.
    pub async fn recv(&mut self) -> io::Result<Option<&[u8]>> {
        if self.pending > 0 {
            self.rx.consume(self.pending);
            self.pending = 0;
        }
        loop {
            match self.decoder.decode(self.rx.filled_mut()) {
                Ok(Decoded::Frame(frame)) => {
                    self.pending = frame.consumed;
                    return Ok(Some(frame.payload(self.rx.filled())));
                }
                Ok(Decoded::Skip(n)) => {
                    self.rx.consume(n);
                    continue;
                }
                Ok(Decoded::NeedMore { .. }) => {}
                Err(e) => {
                    return Err(self.fail(io::Error::new(
                        io::ErrorKind::InvalidData,
                        e.error.to_string(),
                    )))
                }
            }
            if self.rx.spare_len() < self.rx.free() {
                self.rx.compact();
            }
            let spare = self.rx.spare_mut();
            #[cfg(feature = "tls")]
            let res = match self.tls.as_mut() {
                Some(tls) => tls.read(&self.stream, spare).await,
                None => self.stream.read_with(|s| (&*s).read(spare)).await,
            };
            #[cfg(not(feature = "tls"))]
            let res = self.stream.read_with(|s| (&*s).read(spare)).await;
            match res {
                Ok(0) if self.rx.is_empty() => return Ok(None),
                Ok(0) => {
                    return Err(self.fail(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "connection closed inside a frame",
                    )))
                }
                Ok(n) => self.rx.commit(n),
                Err(e) => return Err(self.fail(e)),
            }
        }
    }

    /// Sends `payload` and waits for one reply frame, copied into `out`.
    pub async fn request(&mut self, payload: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
        self.send(payload).await?;
        match self.recv().await? {
            Some(frame) => {
                out.clear();
                out.extend_from_slice(frame);
                Ok(())
            }
            None => Err(self.fail(io::ErrorKind::UnexpectedEof.into())),
        }
    }

    fn fail(&mut self, e: io::Error) -> io::Error {
        self.broken = true;
        e
    }

    /// Whether the connection can be reused: not broken, nothing unread,
    /// and the server has not closed it.
    fn reusable(&mut self) -> bool {
        if self.pending > 0 {
            self.rx.consume(self.pending);
            self.pending = 0;
        }
        if self.broken || !self.rx.is_empty() || !self.tx.is_empty() {
            return false;
        }
        let mut probe = [0u8; 1];
        #[cfg(feature = "tls")]
        if let Some(tls) = self.tls.as_mut() {
            return tls.is_quiet(self.stream.get_ref());
        }
        matches!(self.stream.get_ref().peek(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("peer", &self.stream.get_ref().peer_addr().ok())
            .field("broken", &self.broken)
            .field("tls", &self.is_tls())
            .finish_non_exhaustive()
    }
}

/// A client's TLS session and what its handshake negotiated.
#[cfg(feature = "tls")]
struct ClientTls {
    session: rustls::ClientConnection,
    info: crate::tls::TlsInfo,
}

#[cfg(feature = "tls")]
fn tls_failure(e: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

/// Runs a client handshake to completion (the caller bounds it in time).
#[cfg(feature = "tls")]
async fn client_handshake(
    stream: &Async<TcpStream>,
    session: &mut rustls::ClientConnection,
) -> io::Result<()> {
    loop {
        while session.wants_write() {
            stream.write_with(|s| session.write_tls(&mut &*s)).await?;
        }
        if !session.is_handshaking() {
            return Ok(());
        }
        if stream.read_with(|s| session.read_tls(&mut &*s)).await? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "server closed the connection during the TLS handshake",
            ));
        }
        if let Err(e) = session.process_new_packets() {
            let _ = session.write_tls(&mut stream.get_ref());
            return Err(tls_failure(e));
        }
    }
}

#[cfg(feature = "tls")]
impl ClientTls {
    /// Encrypts `plain` and writes every record the session holds.
    async fn write(&mut self, stream: &Async<TcpStream>, plain: &[u8]) -> io::Result<()> {
        self.session.writer().write_all(plain)?;
        while self.session.wants_write() {
            stream
                .write_with(|s| self.session.write_tls(&mut &*s))
                .await?;
        }
        Ok(())
    }

    /// Reads plaintext into `buf`, like `read` on the socket: `Ok(0)` at
    /// the end of the stream (with or without close_notify).
    async fn read(&mut self, stream: &Async<TcpStream>, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.session.reader().read(buf) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                Err(e) => return Err(e),
            }
            // Records of the session's own first (alerts, key updates).
            while self.session.wants_write() {
                stream
                    .write_with(|s| self.session.write_tls(&mut &*s))
                    .await?;
            }
            stream
                .read_with(|s| self.session.read_tls(&mut &*s))
                .await?;
            if let Err(e) = self.session.process_new_packets() {
                let _ = self.session.write_tls(&mut stream.get_ref());
                return Err(tls_failure(e));
            }
        }
    }

    /// Whether nothing but housekeeping (session tickets) arrived: takes
    /// in what the socket holds without blocking.
    fn is_quiet(&mut self, stream: &TcpStream) -> bool {
        let mut probe = [0u8; 1];
        loop {
            match self.session.reader().read(&mut probe) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                _ => return false,
            }
            match self.session.read_tls(&mut &*stream) {
                Ok(0) => return false,
                Ok(_) if self.session.process_new_packets().is_ok() => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                _ => return false,
            }
        }
    }
}

fn invalid(e: fastnet_proto::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, e.to_string())
}

/// Settings of a [`Pool`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolConfig {
    /// Most connections out of and in the pool at once.
    pub max_size: usize,
    /// Most idle connections kept.
    pub max_idle: usize,
    /// Idle connections older than this are closed instead of reused.
    pub idle_expiry: Duration,
    /// Time allowed to connect.
    pub connect_timeout: Duration,
    /// Time [`Pool::get`] waits for a connection when `max_size` are out.
    pub wait_timeout: Duration,
}

impl Default for PoolConfig {
    /// 16 connections, 16 idle, 60 s idle expiry, 5 s connect timeout,
    /// 5 s wait timeout.
    fn default() -> Self {
        PoolConfig {
            max_size: 16,
            max_idle: 16,
            idle_expiry: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(5),
            wait_timeout: Duration::from_secs(5),
        }
    }
}

struct PoolInner {
    addr: SocketAddr,
    codec: CodecSpec,
    config: PoolConfig,
    #[cfg(feature = "tls")]
    tls: Option<crate::tls::TlsConnector>,
    idle: Mutex<Vec<(Client, Instant)>>,
    permits: Arc<Semaphore>,
}

impl PoolInner {
    fn idle(&self) -> MutexGuard<'_, Vec<(Client, Instant)>> {
        lock(&self.idle)
    }
}

/// A pool of [`Client`] connections to one server.
///
/// [`get`](Self::get) hands out an idle connection (newest first) or opens
/// one, waiting up to `wait_timeout` while `max_size` are out. A
/// [`Pooled`] connection goes back to the pool when dropped, unless it is
/// broken, has unread bytes, the server closed it, or it was
/// [discarded](Pooled::discard).
///
/// ```no_run
/// # async fn demo(addr: std::net::SocketAddr) -> std::io::Result<()> {
/// use fastnet_smol::{CodecSpec, Pool, PoolConfig};
///
/// let pool = Pool::new(addr, CodecSpec::lines(1024), PoolConfig::default());
/// let mut conn = pool.get().await?;
/// conn.send(b"ping").await?;
/// let _reply = conn.recv().await?;
/// drop(conn); // back to the pool
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Pool {
    inner: Arc<PoolInner>,
}

impl Pool {
    /// A pool of connections to `addr` framed with `codec`.
    pub fn new(addr: SocketAddr, codec: CodecSpec, config: PoolConfig) -> Pool {
        Pool {
            inner: Arc::new(PoolInner {
                addr,
                codec,
                config,
                #[cfg(feature = "tls")]
                tls: None,
                idle: Mutex::new(Vec::new()),
                permits: Arc::new(Semaphore::new(config.max_size)),
            }),
        }
    }

    /// A pool of TLS connections ([`Client::connect_tls`]) to `addr`. Its
    /// connections share `tls`'s session cache, so a connection opened to
    /// replace a discarded one resumes the TLS session instead of a full
    /// handshake. Feature `tls`.
    #[cfg(feature = "tls")]
    pub fn with_tls(
        addr: SocketAddr,
        codec: CodecSpec,
        config: PoolConfig,
        tls: crate::tls::TlsConnector,
    ) -> Pool {
        let mut pool = Pool::new(addr, codec, config);
        if let Some(inner) = Arc::get_mut(&mut pool.inner) {
            inner.tls = Some(tls);
        }
        pool
    }

    /// A connection: an idle one if any is fresh, else a new one.
    ///
    /// Fails with [`io::ErrorKind::TimedOut`] if none frees up within
    /// `wait_timeout`, or with the connect error.
    pub async fn get(&self) -> io::Result<Pooled> {
        let inner = &self.inner;
        let permit = future::or(async { Some(inner.permits.acquire_arc().await) }, async {
            Timer::after(inner.config.wait_timeout).await;
            None
        })
        .await
        .ok_or_else(|| {
            io::Error::new(io::ErrorKind::TimedOut, "no pooled connection became free")
        })?;
        loop {
            let Some((mut client, since)) = inner.idle().pop() else {
                break;
            };
            if since.elapsed() < inner.config.idle_expiry && client.reusable() {
                return Ok(Pooled {
                    client: Some(client),
                    pool: inner.clone(),
                    _permit: permit,
                    discard: false,
                });
            }
        }
        let timeout = inner.config.connect_timeout;
        #[cfg(feature = "tls")]
        let client = match &inner.tls {
            Some(tls) => Client::connect_tls(inner.addr, inner.codec, timeout, tls).await?,
            None => Client::connect(inner.addr, inner.codec, timeout).await?,
        };
        #[cfg(not(feature = "tls"))]
        let client = Client::connect(inner.addr, inner.codec, timeout).await?;
        Ok(Pooled {
            client: Some(client),
            pool: inner.clone(),
            _permit: permit,
            discard: false,
        })
    }

    /// Idle connections in the pool.
    pub fn idle_count(&self) -> usize {
        self.inner.idle().len()
    }
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("addr", &self.inner.addr)
            .field("config", &self.inner.config)
            .field("idle", &self.idle_count())
            .finish()
    }
}

/// A [`Client`] lent by a [`Pool`]; dereferences to the client and goes
/// back to the pool when dropped.
pub struct Pooled {
    client: Option<Client>,
    pool: Arc<PoolInner>,
    _permit: SemaphoreGuardArc,
    discard: bool,
}

impl Pooled {
    /// Closes this connection instead of returning it to the pool.
    pub fn discard(mut self) {
        self.discard = true;
    }
}

impl Deref for Pooled {
    type Target = Client;
    fn deref(&self) -> &Client {
        self.client.as_ref().expect("present until drop")
    }
}

impl DerefMut for Pooled {
    fn deref_mut(&mut self) -> &mut Client {
        self.client.as_mut().expect("present until drop")
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        let Some(mut client) = self.client.take() else {
            return;
        };
        if self.discard || !client.reusable() {
            return;
        }
        let mut idle = self.pool.idle();
        if idle.len() < self.pool.config.max_idle {
            idle.push((client, Instant::now()));
        }
    }
}

impl fmt::Debug for Pooled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pooled")
            .field("client", &self.client)
            .finish()
    }
}
