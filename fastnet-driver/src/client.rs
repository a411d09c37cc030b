//! What both drivers' clients and client pools share: the framing state of
//! one client ([`Framing`], over the core's
//! [`FrameReader`]), pool settings
//! ([`PoolConfig`]), counters ([`PoolStats`]) and the pool's bookkeeping
//! ([`PoolState`]: open count, idle list, expiry, discards). A driver adds
//! the sockets and its way of waiting.

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::tls::TlsConnector;
use fastnet_proto::codec::{AnyDecoder, AnyEncoder, CodecSpec, Decoder, Encoder};
use fastnet_proto::reader::{FrameReader, Next, ReadError};

/// Smallest receive buffer, so small frames do not cost a read each.
const MIN_RX: usize = 4096;

/// Checks that `codec` makes a decoder and an encoder (before connecting).
pub fn check_codec(codec: &CodecSpec) -> io::Result<()> {
    spec_codec(codec).map(drop)
}

/// The decoder and encoder `codec` names, or why it names none.
pub fn spec_codec(codec: &CodecSpec) -> io::Result<(AnyDecoder, AnyEncoder)> {
    Ok((
        codec.decoder().map_err(codec_error)?,
        codec.encoder().map_err(codec_error)?,
    ))
}

fn codec_error(e: fastnet_proto::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, format!("codec: {e}"))
}

/// What [`Framing::poll`] found; the frame itself is [`Framing::frame`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// A frame is ready.
    Frame,
    /// Read more bytes into [`Framing::read_buf`].
    NeedMore,
    /// The server closed the connection between frames.
    End,
}

/// One client connection's framing: frames out into a reused send buffer,
/// frames in through a [`FrameReader`]. No IO: the driver writes
/// [`unsent`](Self::unsent) and reads into [`read_buf`](Self::read_buf).
///
/// `D` and `E` are the codec: by default the built-in ones a [`CodecSpec`]
/// names, any [`Decoder`] and [`Encoder`] otherwise.
pub struct Framing<D = AnyDecoder, E = AnyEncoder> {
    reader: FrameReader<D, Box<[u8]>>,
    encoder: E,
    /// Encoded frames not yet written; its capacity is reused.
    tx: Vec<u8>,
    peer: SocketAddr,
    broken: bool,
}

impl Framing {
    /// Framing for a connection to `peer` with `codec` both ways.
    pub fn new(codec: &CodecSpec, peer: SocketAddr) -> io::Result<Framing> {
        let (decoder, encoder) = spec_codec(codec)?;
        Framing::with_codec(decoder, encoder, peer)
    }
}

impl<D: Decoder, E: Encoder> Framing<D, E> {
    /// Framing for a connection to `peer` that frames requests with
    /// `encoder` and reads replies with `decoder` (a fresh one); the
    /// receive buffer holds the decoder's maximum frame.
    pub fn with_codec(decoder: D, encoder: E, peer: SocketAddr) -> io::Result<Self> {
        let rx = vec![0; decoder.max_frame().max(MIN_RX)].into_boxed_slice();
        Ok(Framing {
            reader: FrameReader::new(decoder, rx).map_err(codec_error)?,
            encoder,
            tx: Vec::new(),
            peer,
            broken: false,
        })
    }

    /// The server's address.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// Whether an error or the server's close left the connection unusable.
    pub fn is_broken(&self) -> bool {
        self.broken
    }

    /// Whether the connection can go to another user: not broken, nothing
    /// received beyond the last frame, nothing fed and unsent.
    pub fn is_idle(&self) -> bool {
        !self.broken && self.reader.is_idle() && self.tx.is_empty()
    }

    /// Frames `payload` into the send buffer. A payload the codec refuses
    /// fails with [`io::ErrorKind::InvalidInput`], queuing nothing.
    pub fn feed(&mut self, payload: &[u8]) -> io::Result<()> {
        let before = self.tx.len();
        let res = self.encoder.encode_vec(payload, &mut self.tx);
        res.map(drop).map_err(|e| {
            self.tx.truncate(before);
            io::Error::new(io::ErrorKind::InvalidInput, e.to_string())
        })
    }

    /// The frames fed and not yet written.
    pub fn unsent(&self) -> &[u8] {
        &self.tx
    }

    /// The first `n` bytes of [`unsent`](Self::unsent) were written.
    pub fn handle_sent(&mut self, n: usize) {
        self.tx.drain(..n.min(self.tx.len()));
    }

    /// Decodes the next frame (after consuming the previous one). Framing
    /// errors ([`io::ErrorKind::InvalidData`], or
    /// [`io::ErrorKind::UnexpectedEof`] for a close inside a frame) and the
    /// server's close mark the connection broken.
    pub fn poll(&mut self) -> io::Result<Step> {
        match self.reader.poll_frame() {
            Ok(Next::Frame(_)) => Ok(Step::Frame),
            Ok(Next::NeedMore) => Ok(Step::NeedMore),
            Ok(Next::End) => {
                // Clean, but the connection is finished all the same.
                self.broken = true;
                Ok(Step::End)
            }
            Err(e) => {
                let kind = match e {
                    ReadError::Decode(_) => io::ErrorKind::InvalidData,
                    ReadError::Truncated { .. } => io::ErrorKind::UnexpectedEof,
                };
                self.broken = true;
                Err(io::Error::new(kind, format!("from {}: {e}", self.peer)))
            }
        }
    }

    /// The frame the last [`poll`](Self::poll) found.
    pub fn frame(&self) -> Option<&[u8]> {
        self.reader.frame()
    }

    /// Where to read the next bytes into.
    pub fn read_buf(&mut self) -> &mut [u8] {
        self.reader.read_buf()
    }

    /// `n` bytes were read into [`read_buf`](Self::read_buf); 0 is the
    /// end of the stream.
    pub fn handle_read(&mut self, n: usize) {
        if n == 0 {
            self.reader.handle_eof();
        } else {
            self.reader.handle_read(n);
        }
    }

    /// Records an IO error: the connection is broken unless the error only
    /// says that a timeout passed (the partial frame is kept for the next
    /// call). Returns the error.
    pub fn fail(&mut self, e: io::Error) -> io::Error {
        if !matches!(
            e.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
        ) {
            self.broken = true;
        }
        e
    }
}

impl<D: Decoder, E> fmt::Debug for Framing<D, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Framing")
            .field("peer", &self.peer)
            .field("buffered", &self.reader.buffered())
            .field("unsent", &self.tx.len())
            .field("broken", &self.broken)
            .finish()
    }
}

/// How a client pool manages its connections.
///
/// Settings may be added in a minor release, so outside this crate the
/// struct is not built with a literal: start from [`PoolConfig::default`]
/// and chain the setters, or assign the fields.
///
/// ```
/// use std::time::Duration;
/// use fastnet_driver::client::PoolConfig;
///
/// let cfg = PoolConfig::default()
///     .max_size(4)
///     .wait_timeout(Duration::from_millis(500));
/// assert_eq!(cfg.max_idle, 16);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct PoolConfig {
    /// Most connections open at once (in use plus idle).
    pub max_size: usize,
    /// Most idle connections kept; more are closed when returned.
    pub max_idle: usize,
    /// An idle connection older than this is closed instead of reused.
    pub idle_expiry: Duration,
    /// Limit for establishing one connection.
    pub connect_timeout: Duration,
    /// How long the pool's `get` waits for a free connection when all
    /// `max_size` are in use.
    pub wait_timeout: Duration,
    /// TCP keepalive of the pool's connections: probes after this long
    /// without traffic, so a connection whose server vanished is found
    /// broken, not handed out; `None` turns it off. See
    /// [`set_keepalive`](crate::socket::set_keepalive).
    pub keepalive: Option<Duration>,
}

impl PoolConfig {
    /// Sets [`max_size`](field@Self::max_size).
    pub const fn max_size(mut self, max_size: usize) -> Self {
        self.max_size = max_size;
        self
    }

    /// Sets [`max_idle`](field@Self::max_idle).
    pub const fn max_idle(mut self, max_idle: usize) -> Self {
        self.max_idle = max_idle;
        self
    }

    /// Sets [`idle_expiry`](field@Self::idle_expiry).
    pub const fn idle_expiry(mut self, idle_expiry: Duration) -> Self {
        self.idle_expiry = idle_expiry;
        self
    }

    /// Sets [`connect_timeout`](field@Self::connect_timeout).
    pub const fn connect_timeout(mut self, connect_timeout: Duration) -> Self {
        self.connect_timeout = connect_timeout;
        self
    }

    /// Sets [`wait_timeout`](field@Self::wait_timeout).
    pub const fn wait_timeout(mut self, wait_timeout: Duration) -> Self {
        self.wait_timeout = wait_timeout;
        self
    }

    /// Sets [`keepalive`](field@Self::keepalive).
    pub const fn keepalive(mut self, keepalive: Option<Duration>) -> Self {
        self.keepalive = keepalive;
        self
    }
}

impl Default for PoolConfig {
    /// 16 connections, all may idle for 60 s; 5 s to connect or to wait;
    /// keepalive after 60 s of silence
    /// ([`DEFAULT_KEEPALIVE`](fastnet_proto::server::DEFAULT_KEEPALIVE)).
    fn default() -> Self {
        PoolConfig {
            max_size: 16,
            max_idle: 16,
            idle_expiry: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(5),
            wait_timeout: Duration::from_secs(5),
            keepalive: Some(fastnet_proto::server::DEFAULT_KEEPALIVE),
        }
    }
}

/// Counters of a client pool.
///
/// Counters may be added in a minor release: read them by name.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PoolStats {
    /// Connections established over the pool's life.
    pub connects: u64,
    /// Connections dropped because they broke (in use or while idle) or
    /// were discarded.
    pub discarded: u64,
    /// Connections open now (in use, idle, or being opened).
    pub open: usize,
    /// Idle connections now.
    pub idle: usize,
}

/// What [`PoolState::checkout`] decided.
#[derive(Debug)]
pub enum Checkout<C> {
    /// Reuse this idle connection.
    Idle(C),
    /// A slot is reserved: open a connection, then report
    /// [`PoolState::connected`].
    Connect,
    /// All `max_size` connections are in use: wait for one to come back.
    Full,
}

/// A client pool's bookkeeping, kept behind the driver's lock: how many
/// connections are open, the idle ones (newest reused first, oldest expire
/// first), and the counters.
#[derive(Debug)]
pub struct PoolState<C> {
    config: PoolConfig,
    /// Idle connections with the time they were returned, oldest first.
    idle: VecDeque<(C, Instant)>,
    /// Connections in use, idle, or being opened.
    open: usize,
    connects: u64,
    discarded: u64,
}

impl<C> PoolState<C> {
    /// An empty pool; fails if `config.max_size` is 0.
    pub fn new(config: PoolConfig) -> io::Result<Self> {
        if config.max_size == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "pool: max_size must be at least 1",
            ));
        }
        Ok(PoolState {
            config,
            idle: VecDeque::new(),
            open: 0,
            connects: 0,
            discarded: 0,
        })
    }

    /// The settings.
    pub fn config(&self) -> &PoolConfig {
        &self.config
    }

    /// An idle connection that has not expired and that `usable` accepts
    /// (the others are closed), else a slot to open a new one, else
    /// [`Checkout::Full`].
    pub fn checkout(
        &mut self,
        now: Instant,
        mut usable: impl FnMut(&mut C) -> bool,
    ) -> Checkout<C> {
        while let Some((_, since)) = self.idle.front() {
            if now.saturating_duration_since(*since) < self.config.idle_expiry {
                break;
            }
            self.idle.pop_front();
            self.open -= 1;
        }
        while let Some((mut conn, _)) = self.idle.pop_back() {
            if usable(&mut conn) {
                return Checkout::Idle(conn);
            }
            self.discarded += 1;
            self.open -= 1;
        }
        if self.open < self.config.max_size {
            self.open += 1;
            Checkout::Connect
        } else {
            Checkout::Full
        }
    }

    /// The connection opened for a [`Checkout::Connect`] slot is
    /// established (`ok`) or failed (the slot is freed).
    pub fn connected(&mut self, ok: bool) {
        if ok {
            self.connects += 1;
        } else {
            self.open -= 1;
        }
    }

    /// A connection comes back: kept idle if `reusable` and there is room,
    /// closed otherwise (counted as discarded if not `reusable`).
    pub fn checkin(&mut self, conn: C, reusable: bool, now: Instant) {
        if !reusable {
            self.discarded += 1;
            self.open -= 1;
        } else if self.idle.len() >= self.config.max_idle {
            self.open -= 1;
        } else {
            self.idle.push_back((conn, now));
        }
    }

    /// The counters now.
    pub fn stats(&self) -> PoolStats {
        PoolStats {
            connects: self.connects,
            discarded: self.discarded,
            open: self.open,
            idle: self.idle.len(),
        }
    }

    /// The error of a `get` that waited `wait_timeout` for `addr` in vain.
    pub fn exhausted(&self, addr: SocketAddr) -> io::Error {
        io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "pool: no free connection to {addr} within {:?} (all {} in use)",
                self.config.wait_timeout, self.config.max_size
            ),
        )
    }
}

/// What `Client::request` makes of the reply `recv` returned: the frame
/// copied into `out`, or, for the end of the stream, an error naming the
/// peer that closed before replying.
pub fn take_reply(
    peer: std::net::SocketAddr,
    reply: Option<&[u8]>,
    out: &mut Vec<u8>,
) -> io::Result<()> {
    let frame = reply.ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("{peer} closed the connection before replying"),
        )
    })?;
    out.clear();
    out.extend_from_slice(frame);
    Ok(())
}

/// The addresses `addr` resolves to (blocking), or an error if none.
pub fn resolve(addr: impl std::net::ToSocketAddrs) -> io::Result<Vec<std::net::SocketAddr>> {
    let addrs: Vec<std::net::SocketAddr> = addr.to_socket_addrs()?.collect();
    if addrs.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "pool: the address resolves to no socket address",
        ));
    }
    Ok(addrs)
}

/// What a driver's client pool shares between its handles and the
/// connections it lends: where and how to connect, the books, and
/// `waiters`, how the driver waits for a connection to come back (a
/// semaphore, a condition variable).
pub struct PoolShared<C, D, E, W> {
    /// The server's addresses, resolved once.
    pub addrs: Vec<SocketAddr>,
    /// Cloned into each new connection (never used itself, so fresh).
    pub decoder: D,
    /// Cloned into each new connection.
    pub encoder: E,
    /// TLS for every connection, if the pool speaks it.
    pub tls: Option<TlsConnector>,
    /// The pool's books (idle connections, counters).
    pub state: std::sync::Mutex<PoolState<C>>,
    /// How borrowers wait for a connection.
    pub waiters: W,
}

impl<C, D, E, W> PoolShared<C, D, E, W> {
    /// A pool's shared record; checks `config`.
    pub fn new(
        addrs: Vec<SocketAddr>,
        decoder: D,
        encoder: E,
        config: PoolConfig,
        tls: Option<TlsConnector>,
        waiters: W,
    ) -> io::Result<Self> {
        Ok(PoolShared {
            addrs,
            decoder,
            encoder,
            tls,
            state: std::sync::Mutex::new(PoolState::new(config)?),
            waiters,
        })
    }

    /// The pool's books, locked.
    pub fn state(&self) -> std::sync::MutexGuard<'_, PoolState<C>> {
        crate::sync::lock(&self.state)
    }
}

impl<C, D, E, W> fmt::Debug for PoolShared<C, D, E, W>
where
    PoolState<C>: fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("addrs", &self.addrs)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

/// A client connection as a pool sees it.
pub trait PoolClient {
    /// Whether the connection can be lent again: idle framing, nothing
    /// unread, not closed by the server.
    fn is_reusable(&mut self) -> bool;
}

/// How a pool's borrowers learn that a connection came back.
pub trait Waiters {
    /// A connection was returned (or discarded, freeing its slot).
    fn returned(&self);
}

impl Waiters for std::sync::Condvar {
    fn returned(&self) {
        self.notify_one();
    }
}

/// Waiters woken by what the borrower holds (an async semaphore, whose
/// permit the borrower drops last), so a return needs no call of its own.
#[derive(Debug)]
pub struct SelfWaking<T>(pub T);

impl<T> Waiters for SelfWaking<T> {
    fn returned(&self) {}
}

/// A connection borrowed from a pool: derefs to the client `C` and goes
/// back to the pool when dropped, unless it broke or was
/// [discarded](Self::discard). `P` is what else the borrower holds until
/// then (an async driver's permit), released after the connection is back.
pub struct Pooled<C: PoolClient, D, E, W: Waiters, P = ()> {
    client: Option<C>,
    pool: std::sync::Arc<PoolShared<C, D, E, W>>,
    discard: bool,
    _permit: P,
}

impl<C: PoolClient, D, E, W: Waiters, P> Pooled<C, D, E, W, P> {
    /// Lends `client` from `pool`, holding `permit` until it is back.
    pub fn new(client: C, pool: std::sync::Arc<PoolShared<C, D, E, W>>, permit: P) -> Self {
        Pooled {
            client: Some(client),
            pool,
            discard: false,
            _permit: permit,
        }
    }

    /// Closes this connection instead of returning it to the pool (for
    /// example after a reply that left the protocol out of step).
    pub fn discard(mut self) {
        self.discard = true;
    }
}

impl<C: PoolClient, D, E, W: Waiters, P> std::ops::Deref for Pooled<C, D, E, W, P> {
    type Target = C;

    fn deref(&self) -> &C {
        // Only `drop` takes the client out.
        self.client.as_ref().expect("client present until drop")
    }
}

impl<C: PoolClient, D, E, W: Waiters, P> std::ops::DerefMut for Pooled<C, D, E, W, P> {
    fn deref_mut(&mut self) -> &mut C {
        self.client.as_mut().expect("client present until drop")
    }
}

impl<C: PoolClient, D, E, W: Waiters, P> Drop for Pooled<C, D, E, W, P> {
    fn drop(&mut self) {
        let Some(mut client) = self.client.take() else {
            return;
        };
        let reusable = !self.discard && client.is_reusable();
        self.pool.state().checkin(client, reusable, Instant::now());
        // `_permit` is released after this, so a waiter finds the
        // connection idle.
        self.pool.waiters.returned();
    }
}

impl<C: PoolClient + fmt::Debug, D, E, W: Waiters, P> fmt::Debug for Pooled<C, D, E, W, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pooled")
            .field("client", &self.client)
            .field("discard", &self.discard)
            .finish()
    }
}

/// The constructors of a driver's `Pool`, with their docs, and its `Clone`
/// and `Debug`, written once (expanded in each driver, whose feature `tls`
/// they follow). The driver's `Pool<D, E>` is `{ shared: Arc<Shared<D, E>> }`
/// and provides `fn build(addrs: Vec<SocketAddr>, decoder: D,
/// encoder: E, config: PoolConfig, tls: Option<$tls>) -> io::Result<Self>`
/// (the `tls` argument only with its feature `tls`).
#[macro_export]
macro_rules! pool_constructors {
    (tls: $tls:ty) => {
        // By hand: a derived `Clone` would ask the codec to be `Clone` for
        // a clone that only shares the pool.
        impl<D, E> Clone for Pool<D, E> {
            fn clone(&self) -> Self {
                Pool {
                    shared: ::std::sync::Arc::clone(&self.shared),
                }
            }
        }

        impl<D, E> ::std::fmt::Debug for Pool<D, E>
        where
            Shared<D, E>: ::std::fmt::Debug,
        {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                ::std::fmt::Debug::fmt(&*self.shared, f)
            }
        }

        impl Pool {
            /// A pool of connections to `addr` framed with `codec`. The
            /// address is resolved now, with the blocking resolver (pass an
            /// IP address to avoid a lookup); no connection is opened.
            pub fn new(
                addr: impl ::std::net::ToSocketAddrs,
                codec: ::fastnet_proto::codec::CodecSpec,
                config: $crate::client::PoolConfig,
            ) -> ::std::io::Result<Pool> {
                let (decoder, encoder) = $crate::client::spec_codec(&codec)?;
                let addrs = $crate::client::resolve(addr)?;
                Self::build(addrs, decoder, encoder, config, None)
            }

            /// A pool of TLS connections ([`Client::connect_tls`]) to
            /// `addr`. Its connections share `tls`'s session cache, so a
            /// connection opened to replace a discarded one resumes the TLS
            /// session instead of a full handshake. Feature `tls`.
            #[cfg(feature = "tls")]
            pub fn with_tls(
                addr: impl ::std::net::ToSocketAddrs,
                codec: ::fastnet_proto::codec::CodecSpec,
                config: $crate::client::PoolConfig,
                tls: $tls,
            ) -> ::std::io::Result<Pool> {
                let (decoder, encoder) = $crate::client::spec_codec(&codec)?;
                let addrs = $crate::client::resolve(addr)?;
                Self::build(addrs, decoder, encoder, config, Some(tls))
            }
        }

        impl<D, E> Pool<D, E>
        where
            D: ::fastnet_proto::codec::Decoder + Clone,
            E: ::fastnet_proto::codec::Encoder + Clone,
        {
            /// A pool of connections to `addr` with a codec of your own:
            /// each connection gets a clone of `decoder` (keep it fresh)
            /// and of `encoder` ([`Client::connect_with`]). The address is
            /// resolved as [`new`](Pool::new) does; no connection is opened.
            pub fn with_codec(
                addr: impl ::std::net::ToSocketAddrs,
                decoder: D,
                encoder: E,
                config: $crate::client::PoolConfig,
            ) -> ::std::io::Result<Self> {
                Self::build(
                    $crate::client::resolve(addr)?,
                    decoder,
                    encoder,
                    config,
                    None,
                )
            }

            /// [`with_tls`](Pool::with_tls) with a codec of your own (see
            /// [`with_codec`](Self::with_codec)). Feature `tls`.
            #[cfg(feature = "tls")]
            pub fn with_codec_tls(
                addr: impl ::std::net::ToSocketAddrs,
                decoder: D,
                encoder: E,
                config: $crate::client::PoolConfig,
                tls: $tls,
            ) -> ::std::io::Result<Self> {
                Self::build(
                    $crate::client::resolve(addr)?,
                    decoder,
                    encoder,
                    config,
                    Some(tls),
                )
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_config_setters_set_their_field() {
        // The literal names every field, so a new setting without a setter
        // fails here.
        let ms = Duration::from_millis;
        let set = PoolConfig::default()
            .max_size(1)
            .max_idle(2)
            .idle_expiry(ms(3))
            .connect_timeout(ms(4))
            .wait_timeout(ms(5))
            .keepalive(None);
        let want = PoolConfig {
            max_size: 1,
            max_idle: 2,
            idle_expiry: ms(3),
            connect_timeout: ms(4),
            wait_timeout: ms(5),
            keepalive: None,
        };
        assert_eq!(set, want);
    }

    fn state(max_size: usize, max_idle: usize) -> PoolState<u32> {
        PoolState::new(PoolConfig {
            max_size,
            max_idle,
            idle_expiry: Duration::from_secs(10),
            ..PoolConfig::default()
        })
        .unwrap()
    }

    #[test]
    fn slots_idle_reuse_and_discards_are_counted() {
        let mut s = state(2, 1);
        let t = Instant::now();
        assert!(matches!(s.checkout(t, |_| true), Checkout::Connect));
        s.connected(true);
        assert!(matches!(s.checkout(t, |_| true), Checkout::Connect));
        s.connected(false);
        assert!(matches!(s.checkout(t, |_| true), Checkout::Connect));
        s.connected(true);
        assert!(matches!(s.checkout(t, |_| true), Checkout::Full));
        s.checkin(1, true, t);
        s.checkin(2, true, t); // over max_idle: closed
        let stats = s.stats();
        assert_eq!(
            (stats.connects, stats.open, stats.idle, stats.discarded),
            (2, 1, 1, 0)
        );
        assert!(matches!(s.checkout(t, |_| true), Checkout::Idle(1)));
        s.checkin(1, false, t);
        assert_eq!((s.stats().open, s.stats().discarded), (0, 1));
    }

    #[test]
    fn expired_and_unusable_idle_connections_are_closed() {
        let mut s = state(3, 3);
        let t = Instant::now();
        for _ in 0..3 {
            assert!(matches!(s.checkout(t, |_| true), Checkout::Connect));
            s.connected(true);
        }
        s.checkin(0, true, t);
        s.checkin(1, true, t + Duration::from_secs(5));
        s.checkin(2, true, t + Duration::from_secs(5));
        // 0 expired; 2 (newest) refused by the check; 1 reused.
        let later = t + Duration::from_secs(11);
        assert!(matches!(s.checkout(later, |c| *c != 2), Checkout::Idle(1)));
        assert_eq!(
            (s.stats().open, s.stats().idle, s.stats().discarded),
            (1, 0, 1)
        );
        let err = s.exhausted("127.0.0.1:1".parse().unwrap());
        assert!(err.to_string().contains("all 3 in use"), "{err}");
        assert!(PoolState::<u32>::new(PoolConfig {
            max_size: 0,
            ..PoolConfig::default()
        })
        .is_err());
    }
}
