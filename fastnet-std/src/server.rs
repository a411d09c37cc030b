//! [`Server`]: the builder, the accept loop, admission, and shutdown.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use fastnet_proto::codec::{AnyDecoder, AnyEncoder, CodecSpec};
use fastnet_proto::connection::{Buffers, Limits, PushQueue};
use fastnet_proto::server::{Admission, RejectReason, ServerConfig, ServerStats, StatsSnapshot};
use fastnet_proto::Connection;

use crate::buffers::BufferPool;
use crate::handle::{lock, ConnShared};
use crate::handler::{ConnInfo, Handler};
use crate::workers::{Run, WorkerPool, Workers};

/// Configures and binds a [`Server`]; from [`Server::builder`].
///
/// Setters take and return the builder by value. Every setting has a
/// default (see [`ServerConfig::new`]); the address defaults to
/// `127.0.0.1:0`.
#[derive(Debug)]
pub struct ServerBuilder {
    addr: io::Result<Vec<SocketAddr>>,
    config: ServerConfig,
    #[cfg(feature = "tls")]
    tls: Option<crate::tls::TlsServerConfig>,
}

impl ServerBuilder {
    /// Where to listen (port 0 picks a free port; see
    /// [`Server::local_addr`]). The first address that binds is used.
    pub fn addr(mut self, addr: impl ToSocketAddrs) -> Self {
        self.addr = addr.to_socket_addrs().map(Iterator::collect);
        self
    }

    /// Framing of replies, when it differs from the framing of requests.
    pub fn reply_codec(mut self, codec: CodecSpec) -> Self {
        self.config.reply_codec = Some(codec);
        self
    }

    /// Per-connection limits and timeouts.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.config.limits = limits;
        self
    }

    /// Most connections served at once; more are refused
    /// ([`RejectReason::MaxConnections`]).
    pub fn max_connections(mut self, n: usize) -> Self {
        self.config.max_connections = n;
        self
    }

    /// Most connections served at once from one IP address (IPv6 included;
    /// IPv4-mapped IPv6 counts as IPv4); more are refused
    /// ([`RejectReason::MaxPerIp`]).
    pub fn max_connections_per_ip(mut self, n: usize) -> Self {
        self.config.max_connections_per_ip = Some(n);
        self
    }

    /// Most worker threads (each serves one connection at a time). When all
    /// are busy, a new connection is refused
    /// ([`RejectReason::WorkersBusy`]). 0 (the default) means one worker
    /// per allowed connection (`max_connections`).
    pub fn workers(mut self, n: usize) -> Self {
        self.config.workers = n;
        self
    }

    /// How long an idle worker thread waits for a connection before it
    /// exits.
    pub fn worker_idle_expiry(mut self, expiry: Duration) -> Self {
        self.config.worker_idle_expiry = expiry;
        self
    }

    /// Receive buffer per connection in bytes (raised to the codec's
    /// maximum frame if smaller).
    pub fn rx_buffer(mut self, n: usize) -> Self {
        self.config.rx_buffer = n;
        self
    }

    /// Reply buffer per connection in bytes (raised to twice the reply
    /// codec's maximum frame if smaller, so a maximum-size reply always
    /// fits below the default high-water mark).
    pub fn tx_buffer(mut self, n: usize) -> Self {
        self.config.tx_buffer = n;
        self
    }

    /// Bytes that [`ConnHandle`](crate::ConnHandle)s may queue for one
    /// connection (encoded frames, plus 4 bytes each) before `send`
    /// reports [`SendError::Full`](crate::SendError::Full). Default 64 KiB.
    pub fn push_queue(mut self, bytes: usize) -> Self {
        self.config.push_queue = bytes;
        self
    }

    /// Sets `TCP_NODELAY` on accepted sockets (default: on).
    pub fn nodelay(mut self, on: bool) -> Self {
        self.config.nodelay = on;
        self
    }

    /// Completed connections the kernel may queue before `accept` (default
    /// 1024; capped by the kernel). See [`ServerConfig::listen_backlog`].
    pub fn listen_backlog(mut self, n: u32) -> Self {
        self.config.listen_backlog = n;
        self
    }

    /// Replaces every setting but the address (and TLS) at once.
    pub fn config(mut self, config: ServerConfig) -> Self {
        self.config = config;
        self
    }

    /// Serves TLS: every connection starts with a handshake (within the
    /// configuration's handshake timeout) before its first frame. Feature
    /// `tls`.
    #[cfg(feature = "tls")]
    pub fn tls(mut self, tls: crate::tls::TlsServerConfig) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Checks the configuration and binds the listening socket.
    pub fn bind(self) -> io::Result<Server> {
        #[allow(unused_mut)]
        let mut settings = Settings::new(self.config)?;
        #[cfg(feature = "tls")]
        if let Some(tls) = &self.tls {
            settings.tls = Some(TlsSettings::new(tls)?);
        }
        let addrs = match &self.addr {
            Ok(addrs) => addrs.as_slice(),
            Err(e) => return Err(io::Error::new(e.kind(), format!("server address: {e}"))),
        };
        let listener = TcpListener::bind(addrs)?;
        // std listens with a backlog of 128, which a burst of a few hundred
        // connects overflows; listening again sets the configured one.
        socket2::SockRef::from(&listener)
            .listen(i32::try_from(self.config.listen_backlog).unwrap_or(i32::MAX))?;
        let local_addr = listener.local_addr()?;
        let workers = Arc::new(Workers::new(
            settings.workers,
            self.config.worker_idle_expiry,
        ));
        Ok(Server {
            listener,
            local_addr,
            control: Arc::new(Control {
                wake_addr: wake_addr(local_addr),
                shutting_down: AtomicBool::new(false),
                aborted: AtomicBool::new(false),
                deadline: Mutex::new(None),
            }),
            stats: Arc::new(ServerStats::new()),
            #[cfg(feature = "tls")]
            tls_stats: Arc::new(crate::tls::TlsStats::default()),
            workers,
            settings,
        })
    }
}

/// The TLS configuration, checked.
#[cfg(feature = "tls")]
#[derive(Debug)]
pub(crate) struct TlsSettings {
    pub(crate) config: Arc<rustls::ServerConfig>,
    pub(crate) handshake_timeout: Duration,
}

#[cfg(feature = "tls")]
impl TlsSettings {
    fn new(tls: &crate::tls::TlsServerConfig) -> io::Result<Self> {
        let config = tls.build()?;
        // A session is made per connection at accept; check once that it
        // can be.
        crate::tls::SharedSession::new(&config, Duration::ZERO, Duration::ZERO).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("tls: server session: {e}"),
            )
        })?;
        Ok(TlsSettings {
            config,
            handshake_timeout: tls.configured_handshake_timeout(),
        })
    }
}

/// The address a shutdown connects to, to wake the accept loop.
fn wake_addr(local: SocketAddr) -> SocketAddr {
    let ip = match local.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, local.port())
}

fn invalid(what: &str, e: fastnet_proto::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, format!("{what}: {e}"))
}

/// The configuration, checked and resolved.
#[derive(Debug)]
pub(crate) struct Settings {
    pub(crate) config: ServerConfig,
    pub(crate) decoder: AnyDecoder,
    pub(crate) encoder: AnyEncoder,
    pub(crate) rx_len: usize,
    pub(crate) tx_len: usize,
    pub(crate) workers: usize,
    /// Whether the limits set a timeout, so connections need a clock.
    pub(crate) timed: bool,
    #[cfg(feature = "tls")]
    pub(crate) tls: Option<TlsSettings>,
}

impl Settings {
    /// Whether connections are served over TLS.
    pub(crate) fn is_tls(&self) -> bool {
        #[cfg(feature = "tls")]
        if self.tls.is_some() {
            return true;
        }
        false
    }

    fn new(config: ServerConfig) -> io::Result<Self> {
        let decoder = config.codec.decoder().map_err(|e| invalid("codec", e))?;
        let reply = config.reply_codec();
        let encoder = reply.encoder().map_err(|e| invalid("reply codec", e))?;
        let rx_len = config.rx_buffer_len();
        let tx_len = config.tx_buffer.max(reply.max_frame().saturating_mul(2));
        // Building one connection checks buffers against limits once, so
        // accepting cannot fail on them later.
        Connection::new(
            decoder.clone(),
            encoder.clone(),
            Buffers {
                rx: vec![0u8; rx_len],
                tx: vec![0u8; tx_len],
            },
            config.limits,
            Duration::ZERO,
        )
        .map_err(|e| invalid("connection settings", e))?;
        if config.max_connections == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "max_connections must be at least 1",
            ));
        }
        let workers = if config.workers == 0 {
            config.max_connections
        } else {
            config.workers
        };
        Ok(Settings {
            config,
            decoder,
            encoder,
            rx_len,
            tx_len,
            workers,
            timed: config.limits.needs_clock(),
            #[cfg(feature = "tls")]
            tls: None,
        })
    }
}

/// Shutdown state, shared by the server and its [`ShutdownHandle`]s.
#[derive(Debug)]
pub(crate) struct Control {
    wake_addr: SocketAddr,
    shutting_down: AtomicBool,
    /// The deadline is near: connections still open are closed at once.
    aborted: AtomicBool,
    deadline: Mutex<Option<Instant>>,
}

impl Control {
    pub(crate) fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::SeqCst)
    }

    pub(crate) fn is_aborted(&self) -> bool {
        self.aborted.load(Ordering::SeqCst)
    }
}

/// Stops a [`Server`] from another thread; from
/// [`Server::shutdown_handle`]. Cheap to clone.
#[derive(Clone, Debug)]
pub struct ShutdownHandle {
    control: Arc<Control>,
}

impl ShutdownHandle {
    /// Starts a graceful shutdown and returns at once: the server stops
    /// accepting, every connection stops reading, flushes the replies it
    /// has queued and closes ([`CloseReason::Local`]); connections still
    /// open near the deadline are closed at once, and
    /// [`Server::serve`] returns within `deadline` of this call.
    ///
    /// Calling it again can only bring the deadline closer.
    ///
    /// [`CloseReason::Local`]: fastnet_proto::connection::CloseReason::Local
    pub fn shutdown(&self, deadline: Duration) {
        let at = Instant::now() + deadline;
        {
            let mut d = lock(&self.control.deadline);
            *d = Some(d.map_or(at, |old| old.min(at)));
        }
        self.control.shutting_down.store(true, Ordering::SeqCst);
        // Wake the accept loop, blocked in accept(): connect to it.
        let _ = TcpStream::connect_timeout(&self.control.wake_addr, Duration::from_millis(200));
    }

    /// Whether a shutdown was requested.
    pub fn is_shutting_down(&self) -> bool {
        self.control.is_shutting_down()
    }
}

/// A framed TCP server on std sockets, bound and ready to [`serve`](Self::serve).
///
/// See the [crate documentation](crate) for an example and for how
/// connections, workers and shutdown work.
pub struct Server {
    listener: TcpListener,
    local_addr: SocketAddr,
    control: Arc<Control>,
    stats: Arc<ServerStats>,
    #[cfg(feature = "tls")]
    tls_stats: Arc<crate::tls::TlsStats>,
    workers: Arc<Workers<Job>>,
    settings: Settings,
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("local_addr", &self.local_addr)
            .field("config", &self.settings.config)
            .finish_non_exhaustive()
    }
}

/// One accepted connection, on its way to a worker.
pub(crate) struct Job {
    pub(crate) shared: Arc<ConnShared>,
}

/// Everything a worker needs to serve connections.
pub(crate) struct Inner<H> {
    pub(crate) handler: H,
    pub(crate) settings: Settings,
    pub(crate) epoch: Instant,
    pub(crate) stats: Arc<ServerStats>,
    pub(crate) control: Arc<Control>,
    pub(crate) buffers: BufferPool,
    #[cfg(feature = "tls")]
    pub(crate) tls_stats: Arc<crate::tls::TlsStats>,
    admission: Mutex<Admission>,
    /// Connections being served, to wake them at shutdown.
    registry: Mutex<HashMap<u64, Arc<ConnShared>>>,
    drained: Condvar,
}

impl<H> Inner<H> {
    /// Time as the connections see it. Without an idle or read timeout
    /// the state machine arms no timer, so the clock stays at zero rather
    /// than being read several times per request.
    pub(crate) fn now(&self) -> Duration {
        if self.settings.timed {
            self.epoch.elapsed()
        } else {
            Duration::ZERO
        }
    }

    /// A connection is closing: free its admission slot (once). Done
    /// before the close is reported, so a client that reconnects on seeing
    /// it is admitted.
    pub(crate) fn free_slot(&self, shared: &ConnShared) {
        if !shared
            .released
            .swap(true, std::sync::atomic::Ordering::AcqRel)
        {
            lock(&self.admission).release(shared.info.peer_addr().ip());
        }
    }

    /// A connection is done: free its admission slot if still held, then
    /// its registry slot. The registry goes last, so `serve` (which waits
    /// for it to empty) returns statistics that include the close.
    pub(crate) fn release(&self, shared: &ConnShared) {
        self.free_slot(shared);
        let mut registry = lock(&self.registry);
        registry.remove(&shared.info.id());
        if registry.is_empty() {
            self.drained.notify_all();
        }
    }
}

impl Server {
    /// A builder for a server whose requests use `codec` (and, unless
    /// [`reply_codec`](ServerBuilder::reply_codec) says otherwise, its
    /// replies too).
    pub fn builder(codec: CodecSpec) -> ServerBuilder {
        ServerBuilder {
            addr: Ok(vec![SocketAddr::from((Ipv4Addr::LOCALHOST, 0))]),
            config: ServerConfig::new(codec),
            #[cfg(feature = "tls")]
            tls: None,
        }
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// A handle to stop the server from another thread.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle {
            control: Arc::clone(&self.control),
        }
    }

    /// Live counters, readable while serving
    /// ([`ServerStats::snapshot`]).
    pub fn stats(&self) -> Arc<ServerStats> {
        Arc::clone(&self.stats)
    }

    /// Live TLS counters: handshakes completed and failed, sessions that
    /// failed later. Feature `tls`.
    #[cfg(feature = "tls")]
    pub fn tls_stats(&self) -> Arc<crate::tls::TlsStats> {
        Arc::clone(&self.tls_stats)
    }

    /// Whether the server serves TLS.
    pub fn is_tls(&self) -> bool {
        self.settings.is_tls()
    }

    /// Live counts of the worker threads.
    pub fn worker_pool(&self) -> WorkerPool {
        WorkerPool::new(&self.workers)
    }

    /// The configuration in force (buffer sizes as given; see
    /// [`ServerBuilder::rx_buffer`] and [`ServerBuilder::tx_buffer`] for
    /// how they are raised).
    pub fn config(&self) -> &ServerConfig {
        &self.settings.config
    }

    /// Serves connections with `handler` until a [`ShutdownHandle`] stops
    /// the server; returns the final counters.
    ///
    /// Errors only if the listening socket fails for good; a failing
    /// connection is closed with its reason and the others go on.
    pub fn serve<H: Handler>(self, handler: H) -> io::Result<StatsSnapshot> {
        let Server {
            listener,
            local_addr: _,
            control,
            stats,
            #[cfg(feature = "tls")]
            tls_stats,
            workers,
            settings,
        } = self;
        let config = settings.config;
        let inner = Arc::new(Inner {
            handler,
            buffers: BufferPool::new(settings.rx_len, settings.tx_len, settings.workers),
            settings,
            epoch: Instant::now(),
            stats,
            #[cfg(feature = "tls")]
            tls_stats,
            control,
            admission: Mutex::new(Admission::new(
                config.max_connections,
                config.max_connections_per_ip,
            )),
            registry: Mutex::new(HashMap::new()),
            drained: Condvar::new(),
        });
        let run: Run<Job> = {
            let inner = Arc::clone(&inner);
            Arc::new(move |job: Job| inner.serve_conn(&job.shared))
        };
        let mut next_id = 0u64;
        while !inner.control.is_shutting_down() {
            match listener.accept() {
                Ok((stream, peer)) => {
                    if inner.control.is_shutting_down() {
                        break;
                    }
                    next_id += 1;
                    inner.admit(stream, peer, next_id, &workers, &run);
                }
                Err(e) => match e.kind() {
                    io::ErrorKind::Interrupted
                    | io::ErrorKind::ConnectionAborted
                    | io::ErrorKind::ConnectionReset
                    | io::ErrorKind::WouldBlock => {}
                    // Out of descriptors or memory: let connections end
                    // before trying again, instead of spinning.
                    _ => thread::sleep(Duration::from_millis(5)),
                },
            }
        }
        drop(listener);
        drop(run);
        workers.close();
        inner.drain();
        Ok(inner.stats.snapshot())
    }
}

impl<H: Handler> Inner<H> {
    /// Admission control, then hand-off to a worker.
    fn admit(
        &self,
        stream: TcpStream,
        peer: SocketAddr,
        id: u64,
        workers: &Arc<Workers<Job>>,
        run: &Run<Job>,
    ) {
        if let Err(reason) = lock(&self.admission).try_admit(peer.ip()) {
            drop(stream);
            self.reject(peer, reason);
            return;
        }
        let config = &self.settings.config;
        // Best effort: a socket that refuses an option is still served.
        let _ = stream.set_nodelay(config.nodelay);
        #[cfg(feature = "tls")]
        let tls = match &self.settings.tls {
            Some(tls) => match crate::tls::SharedSession::new(
                &tls.config,
                tls.handshake_timeout,
                self.epoch.elapsed(),
            ) {
                Ok(session) => Some(session),
                // Checked at bind; unreachable unless rustls changes its
                // mind.
                Err(_) => {
                    drop(stream);
                    lock(&self.admission).release(peer.ip());
                    self.reject(peer, RejectReason::Refused);
                    return;
                }
            },
            None => None,
        };
        let info = ConnInfo::new(id, peer, Instant::now(), self.settings.is_tls());
        let shared = Arc::new(ConnShared::new(
            info,
            stream,
            self.settings.encoder.clone(),
            PushQueue::new(config.push_queue, self.settings.tx_len),
            #[cfg(feature = "tls")]
            tls,
        ));
        lock(&self.registry).insert(id, Arc::clone(&shared));
        if let Err(job) = workers.dispatch(Job { shared }, run) {
            let _ = job.shared.stream.shutdown(std::net::Shutdown::Both);
            self.release(&job.shared);
            self.reject(peer, RejectReason::WorkersBusy);
        }
    }

    pub(crate) fn reject(&self, peer: SocketAddr, reason: RejectReason) {
        self.stats.on_reject(reason);
        self.handler.on_reject(peer, reason);
    }
}

impl<H> Inner<H> {
    /// Shutdown: wake every connection, give them until shortly before the
    /// deadline to flush and close, then close what is left at once and
    /// wait (at most until the deadline) for their workers to finish.
    fn drain(&self) {
        let start = Instant::now();
        let deadline = lock(&self.control.deadline).unwrap_or(start);
        let total = deadline.saturating_duration_since(start);
        // Keep a margin for the workers to report the forced closes.
        let soft = deadline - (total / 5).min(Duration::from_millis(100));
        for shared in lock(&self.registry).values() {
            shared.wake();
        }
        if !self.wait_drained(soft) {
            self.control.aborted.store(true, Ordering::SeqCst);
            for shared in lock(&self.registry).values() {
                let _ = shared.stream.shutdown(std::net::Shutdown::Both);
            }
            self.wait_drained(deadline);
        }
    }

    /// Waits until no connection is registered, or `until`.
    fn wait_drained(&self, until: Instant) -> bool {
        let mut registry = lock(&self.registry);
        loop {
            if registry.is_empty() {
                return true;
            }
            let Some(left) = until.checked_duration_since(Instant::now()) else {
                return false;
            };
            if left.is_zero() {
                return false;
            }
            registry = self
                .drained
                .wait_timeout(registry, left)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
    }
}
