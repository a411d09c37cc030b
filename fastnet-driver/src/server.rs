//! The server state both drivers keep, whatever their way of waiting: the
//! checked configuration, the clock, the buffer pool, admission and the
//! registry of live connections, and shutdown control ([`Core`]); binding
//! the listener ([`listen`]); and the builder's common setters
//! ([`server_builder_setters!`](crate::server_builder_setters)).

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use fastnet_proto::codec::{AnyDecoder, AnyEncoder, Decoder, Encoder, Envelope, SharedDecoder};
use fastnet_proto::connection::{Buffers, CloseReason, Connection};
use fastnet_proto::server::{Admission, RejectReason, ServerConfig, ServerStats};

use crate::buffers::{BufPool, BufSet};
use crate::conn::ConnInfo;
use crate::sync::lock;
use crate::tls::{ServerTls, TlsError};
use crate::trace::{self, ConnSpan};

/// The connection state machine as both drivers instantiate it; the
/// default parameters are the built-in codecs ([`CodecSpec`]).
///
/// [`CodecSpec`]: fastnet_proto::codec::CodecSpec
pub type Conn<D = SpecDecoder, E = AnyEncoder> = Connection<D, SharedEncoder<E>, Vec<u8>, Vec<u8>>;

/// The request decoder of a server whose codec is a [`CodecSpec`]: every
/// connection shares the codec's configuration and keeps only its own
/// decoding state (40 bytes instead of about 200; see
/// [`SharedDecoder`]).
///
/// [`CodecSpec`]: fastnet_proto::codec::CodecSpec
pub type SpecDecoder = SharedDecoder<AnyDecoder>;

/// What a server needs of a request decoder: a [`Decoder`] that can be
/// cloned into each connection (decoders keep per-stream state) and moved
/// between threads. Every such decoder is one.
pub trait ServerDecoder: Decoder + Clone + Send + Sync + 'static {}

impl<D: Decoder + Clone + Send + Sync + 'static> ServerDecoder for D {}

/// What a server needs of a reply encoder: an [`Encoder`] that the
/// connections and their push handles share across threads. Every such
/// encoder is one.
pub trait ServerEncoder: Encoder + Send + Sync + 'static {}

impl<E: Encoder + Send + Sync + 'static> ServerEncoder for E {}

/// The reply encoder, shared by every connection of a server: encoders keep
/// no per-connection state, so each connection holds a pointer instead of
/// a copy of the configuration (about 190 bytes per connection for the
/// built-in codecs).
#[derive(Debug)]
pub struct SharedEncoder<E = AnyEncoder>(Arc<E>);

impl<E> SharedEncoder<E> {
    /// Shares `encoder`.
    pub fn new(encoder: E) -> Self {
        SharedEncoder(Arc::new(encoder))
    }
}

// By hand: a derived `Clone` would ask `E: Clone`, which sharing avoids.
impl<E> Clone for SharedEncoder<E> {
    fn clone(&self) -> Self {
        SharedEncoder(Arc::clone(&self.0))
    }
}

impl<E: Encoder> Encoder for SharedEncoder<E> {
    #[inline]
    fn encoded_len(&self, payload: &[u8]) -> Result<usize, fastnet_proto::Error> {
        self.0.encoded_len(payload)
    }

    #[inline]
    fn envelope(&self, payload: &[u8]) -> Result<Option<Envelope>, fastnet_proto::Error> {
        self.0.envelope(payload)
    }

    #[inline(always)]
    fn encode_with<F: FnMut(&[u8])>(
        &self,
        payload: &[u8],
        put: F,
    ) -> Result<usize, fastnet_proto::Error> {
        self.0.encode_with(payload, put)
    }
}

/// A server's codec as its builder holds it until `bind`: read from the
/// configuration's [`CodecSpec`] fields then (the built-in codecs), or a
/// decoder and an encoder given as values (a codec of the user's own).
///
/// [`CodecSpec`]: fastnet_proto::codec::CodecSpec
pub struct ServerCodec<D = SpecDecoder, E = AnyEncoder> {
    from: CodecFrom<D, E>,
}

enum CodecFrom<D, E> {
    /// `ServerConfig::codec` and `reply_codec`, read at bind so that the
    /// builder's setters may still change them.
    Config(fn(&ServerConfig) -> io::Result<(D, E)>),
    Given(D, E),
}

impl ServerCodec {
    /// The codecs that [`ServerConfig::codec`](field@ServerConfig::codec) and
    /// [`ServerConfig::reply_codec`](field@ServerConfig::reply_codec) name.
    pub fn from_config() -> Self {
        ServerCodec {
            from: CodecFrom::Config(|config| {
                let decoder = config.codec.decoder().map_err(|e| invalid("codec", e))?;
                let decoder = SharedDecoder::new(decoder);
                let encoder = config.reply_codec().encoder();
                Ok((decoder, encoder.map_err(|e| invalid("reply codec", e))?))
            }),
        }
    }
}

impl<D: Decoder, E: Encoder> ServerCodec<D, E> {
    /// `decoder` for requests (a fresh one, cloned into each connection)
    /// and `encoder` for replies and pushes; the configuration's codec
    /// fields are then not used.
    pub fn new(decoder: D, encoder: E) -> Self {
        ServerCodec {
            from: CodecFrom::Given(decoder, encoder),
        }
    }

    /// Whether the codec comes from the configuration's codec fields.
    pub fn is_from_config(&self) -> bool {
        matches!(self.from, CodecFrom::Config(_))
    }

    /// The decoder and encoder, and the receive and reply buffer lengths
    /// they need with `config`: for the configuration's own codecs,
    /// [`ServerConfig::rx_buffer_len`] and [`ServerConfig::tx_buffer_len`];
    /// for given ones, the same rule with the decoder's maximum frame (an
    /// [`Encoder`] states none, so replies are taken to be no longer than
    /// requests).
    pub fn resolve(self, config: &ServerConfig) -> io::Result<Resolved<D, E>> {
        Ok(match self.from {
            CodecFrom::Config(make) => {
                let (decoder, encoder) = make(config)?;
                Resolved {
                    decoder,
                    encoder,
                    rx_len: config.rx_buffer_len(),
                    tx_len: config.tx_buffer_len(),
                }
            }
            CodecFrom::Given(decoder, encoder) => {
                let max = decoder.max_frame();
                Resolved {
                    rx_len: config.rx_buffer.max(max),
                    tx_len: config.tx_buffer.max(max.saturating_mul(2)),
                    decoder,
                    encoder,
                }
            }
        })
    }
}

impl<D, E> fmt::Debug for ServerCodec<D, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let from = match self.from {
            CodecFrom::Config(_) => "config",
            CodecFrom::Given(..) => "given",
        };
        f.debug_struct("ServerCodec")
            .field("from", &from)
            .finish_non_exhaustive()
    }
}

/// A [`ServerCodec`] resolved at bind.
#[derive(Debug)]
pub struct Resolved<D, E> {
    /// The request decoder, fresh.
    pub decoder: D,
    /// The reply encoder.
    pub encoder: E,
    /// Receive buffer length per connection.
    pub rx_len: usize,
    /// Reply buffer length per connection.
    pub tx_len: usize,
}

/// A configuration error `bind` reports: `what` names the setting.
pub fn invalid(what: &str, e: impl fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, format!("{what}: {e}"))
}

/// Binds a listener to the first of `addrs` that binds, with
/// [`ServerConfig::listen_backlog`] completed connections queued at most
/// and, if [`ServerConfig::reuse_port`], `SO_REUSEPORT`; returns it with
/// its address.
///
/// [`ServerConfig::listen_backlog`]: field@ServerConfig::listen_backlog
/// [`ServerConfig::reuse_port`]: field@ServerConfig::reuse_port
pub fn listen(
    addrs: io::Result<Vec<SocketAddr>>,
    config: &ServerConfig,
) -> io::Result<(TcpListener, SocketAddr)> {
    let addrs = addrs.map_err(|e| io::Error::new(e.kind(), format!("server address: {e}")))?;
    let backlog = i32::try_from(config.listen_backlog).unwrap_or(i32::MAX);
    let listener = if config.reuse_port {
        // The first that binds, as `TcpListener::bind` does.
        let mut bound = Err(invalid("server address", "no address to bind"));
        for addr in &addrs {
            bound = bind_reusing_port(*addr, backlog);
            if bound.is_ok() {
                break;
            }
        }
        bound?
    } else {
        let listener = TcpListener::bind(&addrs[..])?;
        // std listens with a backlog of 128, which a burst of a few hundred
        // connects overflows; listening again sets the configured one.
        socket2::SockRef::from(&listener).listen(backlog)?;
        listener
    };
    let local = listener.local_addr()?;
    Ok((listener, local))
}

/// A listener on `addr` with `SO_REUSEPORT` (set before bind, where it
/// counts), and `SO_REUSEADDR` as std sets it.
#[cfg(all(
    unix,
    not(any(target_os = "solaris", target_os = "illumos", target_os = "cygwin"))
))]
fn bind_reusing_port(addr: SocketAddr, backlog: i32) -> io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.bind(&addr.into())?;
    socket.listen(backlog)?;
    Ok(socket.into())
}

/// `SO_REUSEPORT` is not available here.
#[cfg(not(all(
    unix,
    not(any(target_os = "solaris", target_os = "illumos", target_os = "cygwin"))
)))]
fn bind_reusing_port(_: SocketAddr, _: i32) -> io::Result<TcpListener> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "reuse_port: SO_REUSEPORT is not available on this platform",
    ))
}

/// The address to connect to in order to reach a listener on `local`: an
/// unspecified address (listening on all interfaces) becomes loopback.
pub fn reach(local: SocketAddr) -> SocketAddr {
    let ip = match local.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, local.port())
}

/// How many buffer sets a server's pool keeps, over how many shards.
#[derive(Clone, Copy, Debug)]
pub struct PoolShape {
    /// Sets kept for reuse, in all.
    pub max: usize,
    /// Stacks (one per thread that takes and gives sets).
    pub shards: usize,
}

/// What one server shares between its accept loop, its connections and
/// its shutdown handles: the configuration, checked and resolved; the
/// clock; statistics; the buffer pool; admission and the live connections
/// (`C`, the driver's per-connection shared state); shutdown control; and
/// the driver's own part, `driver`. `D` and `E` are the codec (by default
/// the built-in ones, dispatched statically).
pub struct Core<C, X, D = SpecDecoder, E = AnyEncoder> {
    /// The configuration in force (buffer sizes as given).
    pub config: ServerConfig,
    /// The request decoder, cloned into every connection.
    pub decoder: D,
    /// The reply encoder, shared by every connection.
    pub encoder: SharedEncoder<E>,
    /// Receive buffer length in use (see [`ServerCodec::resolve`]).
    pub rx_len: usize,
    /// Reply buffer length in use (see [`ServerCodec::resolve`]).
    pub tx_len: usize,
    /// When the clock of the connections' state machines started.
    pub epoch: Instant,
    /// Whether the limits set a timeout, so connections need a clock.
    timed: bool,
    /// TLS settings and counters (off for a plain server).
    pub tls: ServerTls,
    /// Live counters.
    pub stats: Arc<ServerStats>,
    /// Receive and reply storage for the connections.
    pub pool: BufPool,
    /// What only the driver keeps.
    pub driver: X,
    live: Mutex<Live<C>>,
    /// Notified when the last live connection is forgotten.
    drained: Condvar,
    shutting_down: AtomicBool,
    /// The deadline is near: connections still open close at once.
    aborted: AtomicBool,
    deadline: Mutex<Option<Instant>>,
}

/// Admission and the connections admitted, under one lock.
/// The live connections by id. Their peers' addresses, which admission
/// slots are counted under, come with each call from the connection's
/// [`ConnInfo`]; whether a slot is still held is kept only for the few
/// connections whose slot was freed ahead of being forgotten. So an idle
/// connection costs the registry one id and one handle.
struct Live<C> {
    admission: Admission,
    next_id: u64,
    conns: HashMap<u64, C>,
    /// Live connections whose admission slot is already free.
    slot_freed: HashSet<u64>,
}

impl<C, X, D: Decoder + Clone, E: Encoder> Core<C, X, D, E> {
    /// Checks `config` and resolves it with `codec`: codecs, buffer
    /// lengths, and one connection built from them (so that making one per
    /// accepted connection cannot fail later); at least one connection
    /// allowed. `tls` is the server's TLS, if it speaks it.
    pub fn new(
        config: ServerConfig,
        codec: ServerCodec<D, E>,
        pool: PoolShape,
        tls: ServerTls,
        driver: X,
    ) -> io::Result<Self> {
        let Resolved {
            decoder,
            encoder,
            rx_len,
            tx_len,
        } = codec.resolve(&config)?;
        let encoder = SharedEncoder::new(encoder);
        if config.max_connections == 0 {
            return Err(invalid("max_connections", "must be at least 1, not 0"));
        }
        let mut core = Core {
            config,
            decoder,
            encoder,
            rx_len,
            tx_len,
            epoch: Instant::now(),
            timed: config.limits.needs_clock(),
            tls,
            stats: Arc::new(ServerStats::new()),
            pool: BufPool::new(rx_len, tx_len, pool.max, pool.shards),
            driver,
            live: Mutex::new(Live {
                admission: Admission::new(config.max_connections, config.max_connections_per_ip)
                    .with_prefix(config.per_ip_prefix),
                next_id: 0,
                conns: HashMap::new(),
                slot_freed: HashSet::new(),
            }),
            drained: Condvar::new(),
            shutting_down: AtomicBool::new(false),
            aborted: AtomicBool::new(false),
            deadline: Mutex::new(None),
        };
        let probe = Buffers {
            rx: vec![0; rx_len],
            tx: vec![0; tx_len],
        };
        core.connection(probe, Duration::ZERO)
            .map_err(|e| invalid("connection settings", e))?;
        core.epoch = Instant::now();
        Ok(core)
    }

    /// A connection state machine on `bufs`, its clock at `now`.
    pub fn connection(
        &self,
        bufs: BufSet,
        now: Duration,
    ) -> Result<Conn<D, E>, fastnet_proto::Error> {
        Conn::new(
            self.decoder.clone(),
            self.encoder.clone(),
            bufs,
            self.config.limits,
            now,
        )
    }
}

impl<C, X, D, E> Core<C, X, D, E> {
    /// Time since the epoch, the clock of every connection. Without an
    /// idle or read timeout no state machine arms a timer, so the clock
    /// stays at zero rather than being read on every wake-up.
    #[inline]
    pub fn now(&self) -> Duration {
        if self.timed {
            self.epoch.elapsed()
        } else {
            Duration::ZERO
        }
    }

    /// Whether connections are served over TLS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_on()
    }

    /// Takes an admission slot for a connection from `ip` and gives it an
    /// id (unique within the server), or says why it is refused.
    pub fn admit(&self, ip: IpAddr) -> Result<u64, RejectReason> {
        let mut live = lock(&self.live);
        live.admission.try_admit(ip)?;
        live.next_id += 1;
        Ok(live.next_id)
    }

    /// Gives back the slot [`admit`](Self::admit) took for a connection
    /// that is not served after all (never [`register`](Self::register)ed).
    pub fn cancel(&self, ip: IpAddr) {
        lock(&self.live).admission.release(ip);
    }

    /// `on_connect` panicked for an admitted connection (not registered):
    /// gives its slot back and reports it as accepted and closed with
    /// [`CloseReason::Panic`].
    pub fn connect_panicked(&self, info: &ConnInfo) {
        self.cancel(info.peer_addr().ip());
        self.accepted(info);
        self.closed(info, CloseReason::Panic);
    }

    /// A connection was accepted and will be served: counts it, reports it
    /// (feature `tracing`) and returns its span, for the driver to run the
    /// connection in.
    pub fn accepted(&self, info: &ConnInfo) -> ConnSpan {
        self.stats.on_accept();
        trace::accepted(info);
        ConnSpan::new(info)
    }

    /// A connection from `peer` was refused for `reason`: counts and
    /// reports it. The driver then tells its handler (`on_reject`).
    pub fn rejected(&self, peer: SocketAddr, reason: RejectReason) {
        self.stats.on_reject(reason);
        trace::rejected(peer, reason);
    }

    /// A served connection closed for `reason`: counts and reports it.
    /// The driver then tells its handler (`on_close`).
    pub fn closed(&self, info: &ConnInfo, reason: CloseReason) {
        self.stats.on_close(reason);
        trace::closed(info, reason);
    }

    /// A connection's TLS handshake (`handshake`) or established session
    /// failed with `e`: counts and reports it.
    pub fn tls_failed(&self, info: &ConnInfo, e: &TlsError, handshake: bool) {
        self.tls.failed(e, handshake);
        trace::tls_failed(info, e, handshake);
    }

    /// Accepting a connection failed with `e` (one that counts, see
    /// [`AcceptBackoff`](crate::socket::AcceptBackoff)): counts it and
    /// reports it, unless the server is shutting down (which may be what
    /// woke the accept).
    pub fn accept_failed(&self, e: &io::Error) {
        self.stats.on_accept_error();
        if !self.is_shutting_down() {
            trace::accept_failed(e);
        }
    }

    /// Records an admitted connection as live, holding its slot.
    pub fn register(&self, info: &ConnInfo, conn: C) {
        lock(&self.live).conns.insert(info.id(), conn);
    }

    /// A connection is closing: frees its admission slot (once). Done
    /// before the close is reported, so a client that reconnects on seeing
    /// it is admitted.
    pub fn free_slot(&self, info: &ConnInfo) {
        let live = &mut *lock(&self.live);
        if live.conns.contains_key(&info.id()) && live.slot_freed.insert(info.id()) {
            live.admission.release(info.peer_addr().ip());
        }
    }

    /// A connection is done and its close was counted: frees its slot if
    /// still held, then forgets it. Done last, so a server that waits for
    /// its connections returns statistics that include the close. Returns
    /// whether no connection is left.
    pub fn forget(&self, info: &ConnInfo) -> bool {
        let live = &mut *lock(&self.live);
        if live.conns.remove(&info.id()).is_some() && !live.slot_freed.remove(&info.id()) {
            live.admission.release(info.peer_addr().ip());
        }
        let drained = live.conns.is_empty();
        if drained {
            self.drained.notify_all();
        }
        drained
    }

    /// Connections registered and not yet forgotten.
    pub fn live(&self) -> usize {
        lock(&self.live).conns.len()
    }

    /// The live connections, copied out (so that waking them takes no
    /// lock of the server's).
    pub fn connections(&self) -> Vec<C>
    where
        C: Clone,
    {
        let live = lock(&self.live);
        live.conns.values().cloned().collect()
    }

    /// Blocks until no connection is live, or `until`; returns whether
    /// none is. For a driver whose accept loop may block.
    pub fn wait_drained(&self, until: Instant) -> bool {
        let mut live = lock(&self.live);
        while !live.conns.is_empty() {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            live = self
                .drained
                .wait_timeout(live, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        true
    }

    /// Starts a shutdown due within `within` from now. Calling it again can
    /// only bring the deadline closer.
    pub fn shut_down(&self, within: Duration) {
        let at = crate::sync::later(Instant::now(), within);
        {
            let mut d = lock(&self.deadline);
            *d = Some(d.map_or(at, |old| old.min(at)));
        }
        self.shutting_down.store(true, Ordering::SeqCst);
    }

    /// Whether a shutdown was requested.
    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::SeqCst)
    }

    /// When the shutdown must be done (`None` before one was requested).
    pub fn deadline(&self) -> Option<Instant> {
        *lock(&self.deadline)
    }

    /// The deadline is near: connections still open are to close at once.
    pub fn abort(&self) {
        self.aborted.store(true, Ordering::SeqCst);
    }

    /// Whether [`abort`](Self::abort) was called.
    pub fn is_aborted(&self) -> bool {
        self.aborted.load(Ordering::SeqCst)
    }
}

impl<C, X, D, E> fmt::Debug for Core<C, X, D, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Core")
            .field("config", &self.config)
            .field("live", &self.live())
            .field("shutting_down", &self.is_shutting_down())
            .finish_non_exhaustive()
    }
}

/// The setters both drivers' `ServerBuilder`s have, with their docs, for
/// an inherent `impl` of a builder with fields `addrs:
/// io::Result<Vec<SocketAddr>>`, `config: ServerConfig` and (with the
/// caller's feature `tls`) `tls: Option<T>`. The caller names `T` and
/// gives the docs of `workers`, the one setting whose meaning depends on
/// how the driver runs connections.
#[macro_export]
macro_rules! server_builder_setters {
    (tls: $tls:ty, workers: $(#[$workers:meta])*) => {
        /// Where to listen (default `127.0.0.1:0`; port 0 picks a free
        /// port, read back with `Server::local_addr`). The first address
        /// that binds is used.
        pub fn addr(mut self, addr: impl ::std::net::ToSocketAddrs) -> Self {
            self.addrs = addr.to_socket_addrs().map(Iterator::collect);
            self
        }

        /// Per-connection limits and timeouts (idle, read, byte limit, tx
        /// watermarks, drain).
        pub fn limits(mut self, limits: ::fastnet_proto::connection::Limits) -> Self {
            self.config.limits = limits;
            self
        }

        /// Most connections open at once; more are refused at accept
        /// ([`RejectReason::MaxConnections`](::fastnet_proto::server::RejectReason::MaxConnections)).
        /// Default 10 000; at least 1.
        ///
        /// On unix, `bind` fits it to the file-descriptor limit
        /// (`RLIMIT_NOFILE`): if the connections need more descriptors
        /// than the soft limit (a connection holds one in fastnet-smol,
        /// up to three in fastnet-std, plus 64 kept for everything else),
        /// the soft limit is raised as far as needed, up to the hard
        /// limit; if even that is too few, the value is lowered to what
        /// fits. `Server::config` shows the value in force. See
        /// [`fit_max_connections`](::fastnet_driver::socket::fit_max_connections).
        pub fn max_connections(mut self, n: usize) -> Self {
            self.config.max_connections = n;
            self
        }

        /// Most connections open at once from one IP address, counted by
        /// network ([`per_ip_prefix`](Self::per_ip_prefix): /32 for IPv4,
        /// /64 for IPv6 by default; IPv4-mapped IPv6 counts as IPv4); more
        /// are refused
        /// ([`RejectReason::MaxPerIp`](::fastnet_proto::server::RejectReason::MaxPerIp)).
        /// Default: no limit.
        pub fn max_connections_per_ip(mut self, n: usize) -> Self {
            self.config.max_connections_per_ip = Some(n);
            self
        }

        /// The network prefix lengths by which
        /// [`max_connections_per_ip`](Self::max_connections_per_ip) counts
        /// peers: addresses sharing their first `v4` (IPv4) or `v6` (IPv6)
        /// bits count as one peer. Default /32 and /64; lengths past the
        /// address size count whole addresses.
        pub fn per_ip_prefix(mut self, v4: u8, v6: u8) -> Self {
            self.config.per_ip_prefix = ::fastnet_proto::server::IpPrefix { v4, v6 };
            self
        }

        $(#[$workers])*
        pub fn workers(mut self, n: usize) -> Self {
            self.config.workers = n;
            self
        }

        /// Receive buffer per connection, in bytes (raised to the codec's
        /// maximum frame if smaller). Default 8 KiB.
        pub fn rx_buffer(mut self, n: usize) -> Self {
            self.config.rx_buffer = n;
            self
        }

        /// Reply buffer per connection, in bytes (raised to twice the
        /// reply codec's maximum frame if smaller, so a maximum-size reply
        /// always fits below the default high-water mark). Default 8 KiB.
        pub fn tx_buffer(mut self, n: usize) -> Self {
            self.config.tx_buffer = n;
            self
        }

        /// Bytes that `ConnHandle`s may queue for one connection (encoded
        /// frames, plus 4 bytes each) before `send` reports
        /// [`SendError::Full`](::fastnet_proto::connection::SendError::Full).
        /// Default 64 KiB.
        pub fn push_queue(mut self, bytes: usize) -> Self {
            self.config.push_queue = bytes;
            self
        }

        /// Sets `TCP_NODELAY` on accepted sockets (default: on).
        pub fn nodelay(mut self, on: bool) -> Self {
            self.config.nodelay = on;
            self
        }

        /// TCP keepalive on accepted sockets: probes start after `idle`
        /// without traffic, so a peer that vanished without closing is
        /// found out and its connection closed; `None` turns it off.
        /// Default 60 s. See
        /// [`ServerConfig::keepalive`](field@::fastnet_proto::server::ServerConfig::keepalive).
        pub fn keepalive(mut self, idle: Option<::std::time::Duration>) -> Self {
            self.config.keepalive = idle;
            self
        }

        /// Completed connections the kernel may queue before `accept`
        /// (default 1024; capped by the kernel). See
        /// [`ServerConfig::listen_backlog`](field@::fastnet_proto::server::ServerConfig::listen_backlog).
        pub fn listen_backlog(mut self, n: u32) -> Self {
            self.config.listen_backlog = n;
            self
        }

        /// Most TLS handshakes in progress at once (default 256); more are
        /// refused at accept
        /// ([`RejectReason::Handshakes`](::fastnet_proto::server::RejectReason::Handshakes)),
        /// so a flood of peers that never finish a handshake cannot hold
        /// every slot. At least 1; ignored without TLS.
        pub fn max_handshakes(mut self, n: usize) -> Self {
            self.config.max_handshakes = n;
            self
        }

        /// Binds with `SO_REUSEPORT` (default off), so that several
        /// servers, in this process or others, can listen on one port and
        /// the kernel spreads new connections over them. Unix only:
        /// elsewhere `bind` fails naming this setting. See
        /// [`ServerConfig::reuse_port`](field@::fastnet_proto::server::ServerConfig::reuse_port).
        pub fn reuse_port(mut self, on: bool) -> Self {
            self.config.reuse_port = on;
            self
        }

        /// Replaces every setting but the address (and TLS) at once. With a
        /// codec given as values, the configuration's codec fields are not
        /// used.
        pub fn config(mut self, config: ::fastnet_proto::server::ServerConfig) -> Self {
            self.config = config;
            self
        }

        /// Serves TLS: every connection runs a handshake (within the
        /// configuration's handshake timeout) before its first frame; a
        /// failed one closes only that connection (`Handler::on_tls_error`,
        /// then
        /// [`CloseReason::Tls`](::fastnet_proto::connection::CloseReason::Tls)).
        /// The configuration is checked at `bind`. Feature `tls`.
        #[cfg(feature = "tls")]
        pub fn tls(mut self, tls: $tls) -> Self {
            self.tls = Some(tls);
            self
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use fastnet_proto::codec::CodecSpec;

    fn core(config: ServerConfig) -> io::Result<Core<u64, ()>> {
        let pool = PoolShape { max: 4, shards: 1 };
        Core::new(
            config,
            ServerCodec::from_config(),
            pool,
            ServerTls::default(),
            (),
        )
    }

    #[test]
    fn a_bad_configuration_names_the_setting() {
        let mut config = ServerConfig::new(CodecSpec::lines(64));
        config.max_connections = 0;
        let e = core(config).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        assert!(e.to_string().contains("max_connections"), "{e}");
    }

    #[test]
    fn slots_are_freed_once_and_the_registry_empties_last() {
        let mut config = ServerConfig::new(CodecSpec::lines(64));
        config.max_connections = 1;
        let core = core(config).unwrap();
        let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let id = core.admit(ip).unwrap();
        assert_eq!(core.admit(ip), Err(RejectReason::MaxConnections));
        let info = ConnInfo::new(id, SocketAddr::new(ip, 9), Instant::now(), false);
        core.register(&info, 7);
        assert_eq!(core.connections(), vec![7]);
        core.free_slot(&info);
        core.free_slot(&info);
        // Free again, the slot goes to the next connection; the first is
        // still live until forgotten.
        let next = core.admit(ip).unwrap();
        assert!(next > id);
        assert_eq!(core.live(), 1);
        assert!(!core.wait_drained(Instant::now()));
        assert!(core.forget(&info));
        assert!(core.wait_drained(Instant::now()));
        core.cancel(ip);
        assert!(core.admit(ip).is_ok());
    }

    #[test]
    fn the_shutdown_deadline_only_moves_closer() {
        let core = core(ServerConfig::new(CodecSpec::lines(64))).unwrap();
        assert!(!core.is_shutting_down() && core.deadline().is_none());
        core.shut_down(Duration::from_secs(1));
        let first = core.deadline().unwrap();
        core.shut_down(Duration::from_secs(60));
        assert_eq!(core.deadline(), Some(first));
        core.shut_down(Duration::ZERO);
        assert!(core.deadline().unwrap() < first);
        assert!(core.is_shutting_down() && !core.is_aborted());
    }
}
