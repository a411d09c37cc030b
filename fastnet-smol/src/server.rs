//! The server: [`ServerBuilder`], [`Server`], [`ShutdownHandle`], and the
//! accept loop.

use std::fmt;
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};

use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use atomic_waker::AtomicWaker;
use fastnet_driver::server::SpecDecoder;
use fastnet_driver::server::{listen, Core, PoolShape, ServerCodec, ServerDecoder, ServerEncoder};
use fastnet_driver::socket::{fit_max_connections, tune_accepted, AcceptBackoff};
use fastnet_driver::tls::{ServerTls, TlsServerConfig};
use fastnet_proto::codec::{AnyEncoder, CodecSpec};
use fastnet_proto::server::{RejectReason, ServerConfig, ServerStats, StatsSnapshot};
use smol::{future, Async, Executor, Timer};

use crate::conn;
use crate::handle::{signal_all, ConnShared, ServerShared, Smol, ABORT, SHUTDOWN};
use crate::runtime::{self, Executors, Global, OnExecutor, Spawn};
use crate::Handler;
use fastnet_driver::sync::guard;
use fastnet_proto::connection::CloseReason;

/// Buffer sets kept for reuse by default (each holds an rx and a tx
/// buffer); busy connections borrow one only while bytes are in flight, so
/// this bounds the pool, not the server.
const DEFAULT_BUFFER_POOL: usize = 256;

/// File descriptors one connection holds: its socket.
const DESCRIPTORS_PER_CONNECTION: u64 = 1;

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
    /// registered once and never re-armed; and while a thread with at
    /// most 128 connections is kept from its core (another process holds
    /// it), an idle thread serves its ready connections, so their tail
    /// latency does not wait for the scheduler. A handler that computes
    /// for long delays the other connections of its thread only.
    #[default]
    PerThread,
    /// One `smol::Executor` run by every thread: any idle thread picks up
    /// any woken connection, which evens out uneven load at the price of
    /// more cross-thread wake-ups.
    Shared,
}

/// Configures and binds a [`Server`]. Start with [`Server::builder`]
/// (built-in codecs) or [`Server::builder_with`] (a codec of your own: `D`
/// decodes requests, `E` encodes replies and pushes).
#[derive(Debug)]
pub struct ServerBuilder<D = SpecDecoder, E = AnyEncoder> {
    addrs: io::Result<Vec<SocketAddr>>,
    config: ServerConfig,
    codec: ServerCodec<D, E>,
    buffer_pool: usize,
    layout: Layout,
    tls: Option<TlsServerConfig>,
}

impl ServerBuilder {
    /// Framing of replies, if it differs from the framing of requests.
    pub fn reply_codec(mut self, codec: CodecSpec) -> Self {
        self.config.reply_codec = Some(codec);
        self
    }
}

impl<D: ServerDecoder, E: ServerEncoder> ServerBuilder<D, E> {
    fastnet_driver::server_builder_setters! {
        tls: crate::tls::TlsServerConfig,
        workers:
        /// Executor threads [`Server::run`] starts; 0 (the default) means
        /// one per core. Ignored by [`Server::serve_on`], which runs on the
        /// caller's executor.
    }

    /// How [`Server::run`] spreads connections over its threads (default
    /// [`Layout::PerThread`]). Ignored by [`Server::serve_on`] and
    /// [`Server::serve`], which run on the caller's executor.
    pub fn layout(mut self, layout: Layout) -> Self {
        self.layout = layout;
        self
    }

    /// Buffer sets kept for reuse (default 256). Connections borrow a set
    /// only while they have bytes in flight.
    pub fn buffer_pool(mut self, n: usize) -> Self {
        self.buffer_pool = n;
        self
    }

    /// The configuration so far.
    pub fn server_config(&self) -> &ServerConfig {
        &self.config
    }

    /// Validates the configuration and binds the listening socket.
    pub fn bind(self) -> io::Result<Server<D, E>> {
        let mut config = self.config;
        config.max_connections =
            fit_max_connections(config.max_connections, DESCRIPTORS_PER_CONNECTION);
        let tls = ServerTls::new(self.tls.as_ref(), config.max_handshakes)?;
        let smol = Smol {
            serve_waker: AtomicWaker::new(),
        };
        // One pool shard per thread of `run` with a thread per executor.
        let shards = match self.layout {
            Layout::PerThread => worker_threads(&config),
            Layout::Shared => 1,
        };
        let pool = PoolShape {
            max: self.buffer_pool,
            shards,
        };
        let shared = Arc::new(Core::new(config, self.codec, pool, tls, smol)?);
        let (listener, local_addr) = listen(self.addrs, &config)?;
        let listener = Async::new(listener)?;
        Ok(Server {
            listener,
            local_addr,
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

/// A bound framed TCP server, ready to serve a [`Handler`].
///
/// Build one with [`Server::builder`]; serve it on your executor with
/// [`serve_on`](Self::serve_on) (or smol's global one with
/// [`serve`](Self::serve)), or let [`run`](Self::run) start its own
/// threads. Stop it with a [`ShutdownHandle`]. `D` and `E` are the codec:
/// the built-in ones by default, any [`Decoder`] and [`Encoder`] through
/// [`Server::builder_with`].
///
/// [`Decoder`]: fastnet_proto::codec::Decoder
/// [`Encoder`]: fastnet_proto::codec::Encoder
pub struct Server<D = SpecDecoder, E = AnyEncoder> {
    listener: Async<TcpListener>,
    local_addr: SocketAddr,
    pub(crate) shared: Arc<ServerShared<D, E>>,
    layout: Layout,
}

impl<D, E> fmt::Debug for Server<D, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("local_addr", &self.local_addr)
            .field("shared", &self.shared)
            .field("layout", &self.layout)
            .finish()
    }
}

impl Server {
    /// A builder for a server whose frames use `codec`; replies use the
    /// same codec unless [`ServerBuilder::reply_codec`] says otherwise.
    pub fn builder(codec: CodecSpec) -> ServerBuilder {
        ServerBuilder {
            addrs: Ok(vec![SocketAddr::from(([127, 0, 0, 1], 0))]),
            config: ServerConfig::new(codec),
            codec: ServerCodec::from_config(),
            buffer_pool: DEFAULT_BUFFER_POOL,
            layout: Layout::default(),
            tls: None,
        }
    }
}

impl<D: ServerDecoder, E: ServerEncoder> Server<D, E> {
    /// A builder for a server with a codec of your own: `decoder` (a fresh
    /// one, cloned into each connection) reads requests, `encoder` frames
    /// replies and pushes. The receive buffer is raised to the decoder's
    /// maximum frame, the reply buffer to twice that. The configuration's
    /// codec fields are not used.
    pub fn builder_with(decoder: D, encoder: E) -> ServerBuilder<D, E> {
        let max_frame = decoder.max_frame();
        ServerBuilder {
            addrs: Ok(vec![SocketAddr::from(([127, 0, 0, 1], 0))]),
            // The codec fields only document the frame size here.
            config: ServerConfig::new(CodecSpec::raw(max_frame)),
            codec: ServerCodec::new(decoder, encoder),
            buffer_pool: DEFAULT_BUFFER_POOL,
            layout: Layout::default(),
            tls: None,
        }
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// A handle to stop the server from any thread.
    pub fn shutdown_handle(&self) -> ShutdownHandle<D, E> {
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
        self.shared.tls.stats()
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
        let mut backoff = AcceptBackoff::new();
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
                Some(Ok((stream, peer))) => {
                    backoff.accepted();
                    admit(&shared, &handler, stream, peer, &spawn);
                }
                Some(Err(e)) => {
                    let Some(pause) = backoff.failed(&e) else {
                        continue;
                    };
                    shared.accept_failed(&e);
                    guard(|| handler.on_accept_error(&e));
                    // Accepting again at once would fail again at once:
                    // the connection waits in the kernel's queue.
                    future::or(
                        async {
                            Timer::after(pause).await;
                        },
                        wait_shutdown(&shared),
                    )
                    .await;
                }
            }
        }
        // Stop accepting: new connection attempts are refused by the OS.
        drop(listener);
        signal_all(&shared, SHUTDOWN);
        let deadline = shared.deadline().unwrap_or_else(Instant::now);
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
            shared.abort();
            signal_all(&shared, ABORT);
            wait_idle(&shared).await;
        }
        Ok(shared.stats.snapshot())
    }
}

/// Admission, `on_connect`, then a task for the connection.
fn admit<H: Handler, D: ServerDecoder, E: ServerEncoder>(
    shared: &Arc<ServerShared<D, E>>,
    handler: &Arc<H>,
    stream: TcpStream,
    peer: SocketAddr,
    spawn: &impl Spawn,
) {
    let reject = |reason| {
        shared.rejected(peer, reason);
        guard(|| handler.on_reject(peer, reason));
    };
    if shared.is_shutting_down() {
        return reject(RejectReason::ShuttingDown);
    }
    let id = match shared.admit(peer.ip()) {
        Ok(id) => id,
        Err(reason) => return reject(reason),
    };
    // The handshake deadline counts from here.
    let link = match shared.tls.link(shared.epoch.elapsed()) {
        Ok(link) => link,
        Err(reason) => {
            shared.cancel(peer.ip());
            return reject(reason);
        }
    };
    let place = spawn.place();
    let info = crate::ConnInfo::new(id, peer, Instant::now(), shared.is_tls());
    let state = match guard(|| handler.on_connect(&info)) {
        Some(Some(state)) => state,
        Some(None) => {
            shared.cancel(peer.ip());
            return reject(RejectReason::Refused);
        }
        None => return shared.connect_panicked(&info),
    };
    tune_accepted(&stream, &shared.config);
    let stream = match place.register(stream) {
        Ok(s) => s,
        Err(_) => {
            // Could not register with the reactor: treat as reset at once.
            shared.cancel(peer.ip());
            guard(|| handler.on_close(&info, state, CloseReason::Reset));
            return;
        }
    };
    let span = shared.accepted(&info);
    let conn_shared = Arc::new(ConnShared::new(info, shared.clone(), place.index()));
    shared.register(&conn_shared.info, conn_shared.clone());
    if shared.is_shutting_down() {
        conn_shared.signal(SHUTDOWN);
    }
    if let Some(task) = conn::task(handler.clone(), stream, link, conn_shared, state) {
        // A disabled span would still widen every idle connection's task.
        if span.is_enabled() {
            spawn.spawn(&place, span.instrument(task));
        } else {
            spawn.spawn(&place, task);
        }
    }
}

async fn wait_shutdown<D, E>(shared: &ServerShared<D, E>) {
    future::poll_fn(|cx| {
        shared.driver.serve_waker.register(cx.waker());
        if shared.is_shutting_down() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await
}

async fn wait_idle<D, E>(shared: &ServerShared<D, E>) {
    future::poll_fn(|cx| {
        shared.driver.serve_waker.register(cx.waker());
        if shared.live() == 0 {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await
}

/// Stops a [`Server`] from any thread: cloneable, `Send + Sync`.
pub struct ShutdownHandle<D = SpecDecoder, E = AnyEncoder> {
    shared: Arc<ServerShared<D, E>>,
}

// By hand: a derived `Clone` would ask the codec to be `Clone`.
impl<D, E> Clone for ShutdownHandle<D, E> {
    fn clone(&self) -> Self {
        ShutdownHandle {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<D, E> ShutdownHandle<D, E> {
    /// Stops accepting, lets every connection flush its queued replies and
    /// close, and closes whatever is still open `deadline` from now with
    /// [`CloseReason::Local`](fastnet_proto::connection::CloseReason::Local).
    /// The serve future then returns.
    ///
    /// Calling it again can only bring the deadline closer.
    pub fn shutdown(&self, deadline: Duration) {
        self.shared.shut_down(deadline);
        self.shared.driver.serve_waker.wake();
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

impl<D, E> fmt::Debug for ShutdownHandle<D, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShutdownHandle")
            .field("shutting_down", &self.is_shutting_down())
            .finish()
    }
}
