//! The server: [`ServerBuilder`], [`Server`], [`ShutdownHandle`], and the
//! accept loop.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::{Duration, Instant};

use atomic_waker::AtomicWaker;
use fastnet_proto::codec::{AnyDecoder, AnyEncoder, CodecSpec, Encoder, Envelope};
use fastnet_proto::connection::{Buffers, Limits};
use fastnet_proto::server::{Admission, RejectReason, ServerConfig, ServerStats, StatsSnapshot};
use fastnet_proto::Connection;
use smol::{future, Async, Executor, Timer};

use crate::buffers::{BufPool, BufSet};
use crate::conn;
use crate::handle::{ConnShared, ABORT, SHUTDOWN};
use crate::runtime::{self, Executors, Global, OnExecutor, Spawn};
use crate::sync::lock;
use crate::Handler;

/// The connection state machine as this driver instantiates it.
pub(crate) type Conn = Connection<AnyDecoder, SharedEncoder, Vec<u8>, Vec<u8>>;

/// The reply encoder, shared by every connection of a server: encoders keep
/// no per-connection state, so each connection holds a pointer instead of
/// a copy of the configuration (about 190 bytes per idle connection).
#[derive(Clone, Debug)]
pub(crate) struct SharedEncoder(Arc<AnyEncoder>);

impl Encoder for SharedEncoder {
    fn encoded_len(&self, payload: &[u8]) -> Result<usize, fastnet_proto::Error> {
        self.0.encoded_len(payload)
    }

    fn envelope(&self, payload: &[u8]) -> Result<Option<Envelope>, fastnet_proto::Error> {
        self.0.envelope(payload)
    }

    fn encode_with<F: FnMut(&[u8])>(
        &self,
        payload: &[u8],
        put: F,
    ) -> Result<usize, fastnet_proto::Error> {
        self.0.encode_with(payload, put)
    }
}

/// Buffer sets kept for reuse by default (each holds an rx and a tx
/// buffer); busy connections borrow one only while bytes are in flight, so
/// this bounds the pool, not the server.
const DEFAULT_BUFFER_POOL: usize = 256;

/// Pause after an accept error such as running out of file descriptors,
/// so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(10);

/// Everything the accept loop and the connection tasks share; not generic
/// over the handler.
pub(crate) struct ServerShared {
    pub(crate) config: ServerConfig,
    pub(crate) decoder: AnyDecoder,
    pub(crate) encoder: SharedEncoder,
    pub(crate) tx_len: usize,
    pub(crate) stats: Arc<ServerStats>,
    pub(crate) pool: BufPool,
    admission: Mutex<Admission>,
    /// Open connections, for shutdown.
    conns: Mutex<HashMap<u64, Arc<ConnShared>>>,
    /// Connection tasks alive.
    live: AtomicUsize,
    next_id: AtomicU64,
    /// When the clock of the connections' state machines started.
    pub(crate) epoch: Instant,
    /// Whether the limits set a timeout, so connections need a clock.
    timed: bool,
    shutting_down: AtomicBool,
    deadline: Mutex<Option<Instant>>,
    /// The serve future: woken by shutdown and by the last connection.
    serve_waker: AtomicWaker,
    /// TLS settings, if connections are encrypted.
    #[cfg(feature = "tls")]
    pub(crate) tls: Option<TlsSettings>,
    /// TLS counters (all zero without TLS).
    #[cfg(feature = "tls")]
    pub(crate) tls_stats: Arc<crate::tls::TlsStats>,
}

/// A server's TLS configuration, built once at bind.
#[cfg(feature = "tls")]
#[derive(Debug)]
pub(crate) struct TlsSettings {
    pub(crate) config: Arc<rustls::ServerConfig>,
    pub(crate) handshake_timeout: Duration,
}

impl ServerShared {
    /// Time since the epoch, the clock of every `Connection`. Without an
    /// idle or read timeout no state machine arms a timer, so the clock
    /// stays at zero rather than being read on every wake-up.
    pub(crate) fn now(&self) -> Duration {
        if self.timed {
            self.epoch.elapsed()
        } else {
            Duration::ZERO
        }
    }

    /// A new connection state machine, already parked: its buffers went
    /// back to the pool and come out again when bytes arrive. `None` only
    /// if the configuration is invalid, which `bind` rules out.
    pub(crate) fn new_conn(&self, now: Duration, shard: usize) -> Option<Conn> {
        let set = self.pool.take(shard);
        let bufs = Buffers {
            rx: set.rx,
            tx: set.tx,
        };
        let mut conn = Conn::new(
            self.decoder.clone(),
            self.encoder.clone(),
            bufs,
            self.config.limits,
            now,
        )
        .ok()?;
        let placeholder = Buffers {
            rx: Vec::new(),
            tx: Vec::new(),
        };
        if let Ok(bufs) = conn.park(placeholder) {
            self.pool.give(
                shard,
                BufSet {
                    rx: bufs.rx,
                    tx: bufs.tx,
                },
            );
        }
        Some(conn)
    }

    /// A connection is closing: free its admission slot. Done before the
    /// close is reported, so a client that reconnects on seeing it is
    /// admitted.
    pub(crate) fn free_slot(&self, peer: SocketAddr) {
        lock(&self.admission).release(peer.ip());
    }

    /// A connection task ended and its close was counted: forget it. Done
    /// last, so `serve` (which waits for every task) returns statistics
    /// that include the close.
    pub(crate) fn forget(&self, id: u64) {
        lock(&self.conns).remove(&id);
        if self.live.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.serve_waker.wake();
        }
    }

    fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Acquire)
    }

    /// Whether connections are served over TLS.
    pub(crate) fn is_tls(&self) -> bool {
        #[cfg(feature = "tls")]
        if self.tls.is_some() {
            return true;
        }
        false
    }

    fn signal_all(&self, flag: u8) {
        let conns: Vec<Arc<ConnShared>> = lock(&self.conns).values().cloned().collect();
        for c in conns {
            c.signal(flag);
        }
    }
}

impl fmt::Debug for ServerShared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerShared")
            .field("config", &self.config)
            .field("live", &self.live.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// How [`Server::run`] lays its connection tasks out over its threads.
///
/// Measured on a 2-core machine with 1000 ping-pong connections (512-byte
/// frames, `fastnet-smol/bench/cpu_per_request.sh`), `PerThread` costs
/// about 0.8x the server CPU time per request of `Shared`, which pays for
/// its load balancing in thread wake-ups (several times more context
/// switches per request).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Layout {
    /// One executor per thread; each new connection is placed on the next
    /// thread in turn and stays there (one listener, accepted on the
    /// calling thread). The default: a connection's wake-ups run where its
    /// state is, with no queue shared between threads. On Linux (plain
    /// TCP) each thread's executor is the driver's own, on an
    /// edge-triggered epoll reactor of the thread's own, so a socket is
    /// registered once and never re-armed. A handler that computes for long
    /// delays the other connections of its thread only.
    #[default]
    PerThread,
    /// One `smol::Executor` run by every thread: any idle thread picks up
    /// any woken connection, which evens out uneven load at the price of
    /// more cross-thread wake-ups.
    Shared,
}

/// Configures and binds a [`Server`]. Start with [`Server::builder`].
#[derive(Debug)]
pub struct ServerBuilder {
    addrs: io::Result<Vec<SocketAddr>>,
    config: ServerConfig,
    buffer_pool: usize,
    layout: Layout,
    #[cfg(feature = "tls")]
    tls: Option<crate::tls::TlsServerConfig>,
}

impl ServerBuilder {
    /// The address to listen on (default `127.0.0.1:0`: a free port on
    /// loopback; read it back with [`Server::local_addr`]).
    pub fn addr(mut self, addr: impl ToSocketAddrs) -> Self {
        self.addrs = addr.to_socket_addrs().map(Iterator::collect);
        self
    }

    /// Framing of replies, if it differs from the framing of requests.
    pub fn reply_codec(mut self, codec: CodecSpec) -> Self {
        self.config.reply_codec = Some(codec);
        self
    }

    /// Per-connection limits and timeouts (idle, read, byte limit, tx
    /// watermarks).
    pub fn limits(mut self, limits: Limits) -> Self {
        self.config.limits = limits;
        self
    }

    /// Most connections open at once; more are refused at accept
    /// ([`RejectReason::MaxConnections`]). Default 10 000.
    pub fn max_connections(mut self, n: usize) -> Self {
        self.config.max_connections = n;
        self
    }

    /// Most connections open at once from one IP address
    /// ([`RejectReason::MaxPerIp`]). Default: no limit.
    pub fn max_connections_per_ip(mut self, n: usize) -> Self {
        self.config.max_connections_per_ip = Some(n);
        self
    }

    /// Executor threads [`Server::run`] starts; 0 (the default) means one
    /// per core. Ignored by [`Server::serve_on`], which runs on the
    /// caller's executor.
    pub fn workers(mut self, n: usize) -> Self {
        self.config.workers = n;
        self
    }

    /// Receive buffer per busy connection, in bytes (raised to the codec's
    /// maximum frame if smaller). Default 8 KiB.
    pub fn rx_buffer(mut self, n: usize) -> Self {
        self.config.rx_buffer = n;
        self
    }

    /// Reply buffer per busy connection, in bytes (raised to twice the
    /// reply codec's maximum frame if smaller, so a maximum-size reply
    /// always fits). Default 8 KiB.
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

    /// How [`Server::run`] spreads connections over its threads (default
    /// [`Layout::PerThread`]). Ignored by [`Server::serve_on`] and
    /// [`Server::serve`], which run on the caller's executor.
    pub fn layout(mut self, layout: Layout) -> Self {
        self.layout = layout;
        self
    }

    /// Set `TCP_NODELAY` on accepted sockets (default `true`).
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

    /// Buffer sets kept for reuse (default 256). Connections borrow a set
    /// only while they have bytes in flight.
    pub fn buffer_pool(mut self, n: usize) -> Self {
        self.buffer_pool = n;
        self
    }

    /// Serves TLS: every connection runs a handshake (within the
    /// configuration's handshake timeout) before its first frame; a failed
    /// one closes only that connection
    /// ([`Handler::on_tls_error`](crate::Handler::on_tls_error), then
    /// [`CloseReason::Tls`](fastnet_proto::connection::CloseReason::Tls)).
    /// The configuration is checked at [`bind`](Self::bind). Feature `tls`.
    #[cfg(feature = "tls")]
    pub fn tls(mut self, tls: crate::tls::TlsServerConfig) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Replaces the whole configuration (the address is kept).
    pub fn config(mut self, config: ServerConfig) -> Self {
        self.config = config;
        self
    }

    /// The configuration so far.
    pub fn server_config(&self) -> &ServerConfig {
        &self.config
    }

    /// Validates the configuration and binds the listening socket.
    pub fn bind(self) -> io::Result<Server> {
        let config = self.config;
        let decoder = config.codec.decoder().map_err(invalid)?;
        let encoder = SharedEncoder(Arc::new(config.reply_codec().encoder().map_err(invalid)?));
        let rx_len = config.rx_buffer_len();
        let tx_len = config.tx_buffer_len();
        // Validate buffer sizes and watermarks once, as the tasks will.
        let probe = Conn::new(
            decoder.clone(),
            encoder.clone(),
            Buffers {
                rx: vec![0; rx_len],
                tx: vec![0; tx_len],
            },
            config.limits,
            Duration::ZERO,
        )
        .map_err(invalid)?;
        drop(probe);
        #[cfg(feature = "tls")]
        let tls = match &self.tls {
            Some(tls) => {
                let config = tls.build()?;
                // Fails only for a configuration rustls cannot serve with.
                rustls::ServerConnection::new(Arc::clone(&config)).map_err(|e| {
                    io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("tls: server session: {e}"),
                    )
                })?;
                Some(TlsSettings {
                    config,
                    handshake_timeout: tls.configured_handshake_timeout(),
                })
            }
            None => None,
        };
        let addrs = self.addrs?;
        let listener = TcpListener::bind(&addrs[..])?;
        // std listens with a backlog of 128, which a burst of a few hundred
        // connects overflows; listening again sets the configured one.
        socket2::SockRef::from(&listener)
            .listen(i32::try_from(config.listen_backlog).unwrap_or(i32::MAX))?;
        let listener = Async::new(listener)?;
        let shared = Arc::new(ServerShared {
            config,
            decoder,
            encoder,
            tx_len,
            stats: Arc::new(ServerStats::new()),
            // One shard per thread of `run` with a thread per executor.
            pool: BufPool::new(
                rx_len,
                tx_len,
                self.buffer_pool,
                match self.layout {
                    Layout::PerThread => worker_threads(&config),
                    Layout::Shared => 1,
                },
            ),
            admission: Mutex::new(Admission::new(
                config.max_connections,
                config.max_connections_per_ip,
            )),
            conns: Mutex::new(HashMap::new()),
            live: AtomicUsize::new(0),
            next_id: AtomicU64::new(1),
            epoch: Instant::now(),
            timed: config.limits.needs_clock(),
            shutting_down: AtomicBool::new(false),
            deadline: Mutex::new(None),
            serve_waker: AtomicWaker::new(),
            #[cfg(feature = "tls")]
            tls,
            #[cfg(feature = "tls")]
            tls_stats: Arc::new(crate::tls::TlsStats::default()),
        });
        Ok(Server {
            listener,
            shared,
            layout: self.layout,
        })
    }
}

/// The threads [`Server::run`] starts: `workers`, or one per core.
fn worker_threads(config: &ServerConfig) -> usize {
    match config.workers {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    }
}

fn invalid(e: fastnet_proto::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, e.to_string())
}

/// A bound framed TCP server, ready to serve a [`Handler`].
///
/// Build one with [`Server::builder`]; serve it on your executor with
/// [`serve_on`](Self::serve_on) (or smol's global one with
/// [`serve`](Self::serve)), or let [`run`](Self::run) start its own
/// threads. Stop it with a [`ShutdownHandle`].
#[derive(Debug)]
pub struct Server {
    listener: Async<TcpListener>,
    pub(crate) shared: Arc<ServerShared>,
    layout: Layout,
}

impl Server {
    /// A builder for a server whose frames use `codec`; replies use the
    /// same codec unless [`ServerBuilder::reply_codec`] says otherwise.
    pub fn builder(codec: CodecSpec) -> ServerBuilder {
        ServerBuilder {
            addrs: Ok(vec![SocketAddr::from(([127, 0, 0, 1], 0))]),
            config: ServerConfig::new(codec),
            buffer_pool: DEFAULT_BUFFER_POOL,
            layout: Layout::default(),
            #[cfg(feature = "tls")]
            tls: None,
        }
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.get_ref().local_addr()
    }

    /// A handle to stop the server from any thread.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle {
            shared: self.shared.clone(),
        }
    }

    /// Live statistics (read them with [`ServerStats::snapshot`]).
    pub fn stats(&self) -> Arc<ServerStats> {
        self.shared.stats.clone()
    }

    /// The configuration in force.
    pub fn config(&self) -> &ServerConfig {
        &self.shared.config
    }

    /// Whether connections are served over TLS.
    pub fn is_tls(&self) -> bool {
        self.shared.is_tls()
    }

    /// Live TLS counters: handshakes completed and failed (timeouts
    /// included), sessions that failed later. Feature `tls`.
    #[cfg(feature = "tls")]
    pub fn tls_stats(&self) -> Arc<crate::tls::TlsStats> {
        Arc::clone(&self.shared.tls_stats)
    }

    /// Serves on `executor` until shut down; returns the final statistics.
    ///
    /// Connection tasks are spawned on `executor`, which someone must be
    /// running (for example threads in `executor.run(..)`); this future
    /// itself runs the accept loop and can be awaited anywhere.
    pub async fn serve_on<H: Handler>(
        self,
        executor: &Arc<Executor<'static>>,
        handler: H,
    ) -> io::Result<StatsSnapshot> {
        self.serve_with(handler, OnExecutor(executor.clone())).await
    }

    /// Serves on smol's global executor (`smol::spawn`) until shut down;
    /// returns the final statistics.
    pub async fn serve<H: Handler>(self, handler: H) -> io::Result<StatsSnapshot> {
        self.serve_with(handler, Global).await
    }

    /// Serves with [`workers`](ServerBuilder::workers) threads (the
    /// calling thread is one of them) laid out as
    /// [`layout`](ServerBuilder::layout) says, blocking until shut down;
    /// returns the final statistics.
    pub fn run<H: Handler>(self, handler: H) -> io::Result<StatsSnapshot> {
        let workers = worker_threads(&self.shared.config);
        let executors = match self.layout {
            Layout::Shared => Executors::Shared,
            Layout::PerThread => Executors::PerThread {
                own_reactor: !self.shared.is_tls(),
            },
        };
        runtime::run(workers, executors, |spawn| self.serve_with(handler, spawn))?
    }

    async fn serve_with<H: Handler>(
        self,
        handler: H,
        spawn: impl Spawn,
    ) -> io::Result<StatsSnapshot> {
        let Server {
            listener, shared, ..
        } = self;
        let handler = Arc::new(handler);
        loop {
            let accepted = future::or(
                async { Some(listener.read_with(|l| l.accept()).await) },
                async {
                    wait_shutdown(&shared).await;
                    None
                },
            )
            .await;
            match accepted {
                None => break,
                Some(Ok((stream, peer))) => admit(&shared, &handler, stream, peer, &spawn),
                Some(Err(e)) => match e.kind() {
                    io::ErrorKind::ConnectionAborted
                    | io::ErrorKind::ConnectionReset
                    | io::ErrorKind::Interrupted => {}
                    _ => {
                        Timer::after(ACCEPT_BACKOFF).await;
                    }
                },
            }
        }
        // Stop accepting: new connection attempts are refused by the OS.
        drop(listener);
        shared.signal_all(SHUTDOWN);
        let deadline = lock(&shared.deadline).unwrap_or_else(Instant::now);
        let all_closed = future::or(
            async {
                wait_idle(&shared).await;
                true
            },
            async {
                Timer::at(deadline).await;
                false
            },
        )
        .await;
        if !all_closed {
            shared.signal_all(ABORT);
            wait_idle(&shared).await;
        }
        Ok(shared.stats.snapshot())
    }
}

/// Admission, `on_connect`, then a task for the connection.
fn admit<H: Handler>(
    shared: &Arc<ServerShared>,
    handler: &Arc<H>,
    stream: TcpStream,
    peer: SocketAddr,
    spawn: &impl Spawn,
) {
    let reject = |reason| {
        shared.stats.on_reject(reason);
        handler.on_reject(peer, reason);
    };
    if shared.is_shutting_down() {
        return reject(RejectReason::ShuttingDown);
    }
    if let Err(reason) = lock(&shared.admission).try_admit(peer.ip()) {
        return reject(reason);
    }
    let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
    let place = spawn.place();
    let info = crate::ConnInfo::new(id, peer, Instant::now(), shared.is_tls());
    let Some(state) = handler.on_connect(&info) else {
        lock(&shared.admission).release(peer.ip());
        return reject(RejectReason::Refused);
    };
    if shared.config.nodelay {
        let _ = stream.set_nodelay(true);
    }
    let stream = match place.register(stream) {
        Ok(s) => s,
        Err(_) => {
            // Could not register with the reactor: treat as reset at once.
            lock(&shared.admission).release(peer.ip());
            handler.on_close(&info, state, fastnet_proto::connection::CloseReason::Reset);
            return;
        }
    };
    shared.stats.on_accept();
    shared.live.fetch_add(1, Ordering::AcqRel);
    let conn_shared = Arc::new(ConnShared::new(info, shared.clone(), place.index()));
    lock(&shared.conns).insert(id, conn_shared.clone());
    if shared.is_shutting_down() {
        conn_shared.signal(SHUTDOWN);
    }
    if let Some(task) = conn::task(handler.clone(), stream, conn_shared, state) {
        spawn.spawn(&place, task);
    }
}

async fn wait_shutdown(shared: &ServerShared) {
    future::poll_fn(|cx| {
        shared.serve_waker.register(cx.waker());
        if shared.is_shutting_down() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await
}

async fn wait_idle(shared: &ServerShared) {
    future::poll_fn(|cx| {
        shared.serve_waker.register(cx.waker());
        if shared.live.load(Ordering::Acquire) == 0 {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await
}

/// Stops a [`Server`] from any thread: cloneable, `Send + Sync`.
#[derive(Clone)]
pub struct ShutdownHandle {
    shared: Arc<ServerShared>,
}

impl ShutdownHandle {
    /// Stops accepting, lets every connection flush its queued replies and
    /// close, and closes whatever is still open `deadline` from now with
    /// [`CloseReason::Local`](fastnet_proto::connection::CloseReason::Local).
    /// The serve future then returns. Only the first call's deadline counts.
    pub fn shutdown(&self, deadline: Duration) {
        {
            let mut d = lock(&self.shared.deadline);
            if d.is_none() {
                *d = Some(Instant::now() + deadline);
            }
        }
        self.shared.shutting_down.store(true, Ordering::Release);
        self.shared.serve_waker.wake();
    }

    /// Whether shutdown was requested.
    pub fn is_shutting_down(&self) -> bool {
        self.shared.is_shutting_down()
    }

    /// The server's live statistics.
    pub fn stats(&self) -> Arc<ServerStats> {
        self.shared.stats.clone()
    }
}

impl fmt::Debug for ShutdownHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShutdownHandle")
            .field("shutting_down", &self.is_shutting_down())
            .finish()
    }
}
