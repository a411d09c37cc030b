//! [`Server`]: the builder, the accept loop, admission, and shutdown.

use std::fmt;
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use fastnet_driver::server::SpecDecoder;
use fastnet_driver::server::{
    listen, reach, Core, PoolShape, ServerCodec, ServerDecoder, ServerEncoder,
};
use fastnet_driver::socket::{fit_max_connections, tune_accepted, AcceptBackoff};
use fastnet_driver::tls::{Link, ServerTls, TlsServerConfig};
use fastnet_proto::codec::{AnyEncoder, CodecSpec};
use fastnet_proto::connection::PushQueue;
use fastnet_proto::server::{RejectReason, ServerConfig, ServerStats, StatsSnapshot};

use crate::handle::ConnShared;
use crate::handler::{ConnInfo, Handler};
use crate::workers::{Run, WorkerPool, Workers};

/// File descriptors one connection holds: its socket. A connection with
/// push handles also makes a wake-up pair (`wake.rs`), but only then, and
/// one it cannot make (out of descriptors) costs it only promptness (its
/// worker looks for pushes at a short interval): counting three per
/// connection would refuse two thirds of the connections an echo or
/// request-reply server can hold.
const DESCRIPTORS_PER_CONNECTION: u64 = 1;

/// Buffer sets the pool keeps at most: more connections than this busy at
/// once take fresh ones (an allocation when a quiet connection wakes, not
/// per frame).
const KEPT_BUFFER_SETS: usize = 512;

/// Configures and binds a [`Server`]; from [`Server::builder`] (built-in
/// codecs) or [`Server::builder_with`] (a codec of your own: `D` decodes
/// requests, `E` encodes replies and pushes).
///
/// Setters take and return the builder by value. Every setting has a
/// default (see [`ServerConfig::new`]); the address defaults to
/// `127.0.0.1:0`.
#[derive(Debug)]
pub struct ServerBuilder<D = SpecDecoder, E = AnyEncoder> {
    addrs: io::Result<Vec<SocketAddr>>,
    config: ServerConfig,
    codec: ServerCodec<D, E>,
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
        /// Most worker threads (each serves one connection at a time). When
        /// all are busy, a new connection is refused
        /// ([`RejectReason::WorkersBusy`]). 0 (the default) means one
        /// worker per allowed connection (`max_connections`).
    }

    /// How long an idle worker thread waits for a connection before it
    /// exits.
    pub fn worker_idle_expiry(mut self, expiry: Duration) -> Self {
        self.config.worker_idle_expiry = expiry;
        self
    }

    /// Checks the configuration and binds the listening socket.
    pub fn bind(self) -> io::Result<Server<D, E>> {
        let mut config = self.config;
        config.max_connections =
            fit_max_connections(config.max_connections, DESCRIPTORS_PER_CONNECTION);
        let tls = ServerTls::new(self.tls.as_ref(), config.max_handshakes)?;
        let std = Std {
            wake_addr: None,
            listener: Mutex::new(None),
        };
        // By default a worker per allowed connection, and as many again:
        // a worker frees its connection's slot a moment before it is idle
        // again, and a connection admitted in that moment must not find
        // every worker busy (threads are made only when needed).
        let workers = match config.workers {
            0 => config.max_connections.saturating_mul(2),
            n => n,
        };
        // Sets kept for reuse: quiet connections give theirs back (see
        // `conn.rs`), so the pool serves the busy ones, not every worker.
        let pool = PoolShape {
            max: workers.min(KEPT_BUFFER_SETS),
            shards: 1,
        };
        let mut core = Core::new(config, self.codec, pool, tls, std)?;
        let (listener, local_addr) = listen(self.addrs, &config)?;
        core.driver.wake_addr = Some(reach(local_addr));
        if config.reuse_port {
            core.driver.listener = Mutex::new(Some(listener.try_clone()?));
        }
        Ok(Server {
            listener,
            local_addr,
            core: Arc::new(core),
            workers: Arc::new(Workers::new(workers, config.worker_idle_expiry)),
        })
    }
}

/// The server state workers and shutdown handles share.
pub(crate) type StdCore<D = SpecDecoder, E = AnyEncoder> = Core<Arc<ConnShared<E>>, Std, D, E>;

/// This driver's part of [`StdCore`].
#[derive(Debug)]
pub(crate) struct Std {
    /// What a shutdown connects to, to wake the accept loop.
    wake_addr: Option<SocketAddr>,
    /// With `reuse_port`, the listener, which a shutdown shuts down to
    /// wake the accept loop: a connect could reach another server on the
    /// port instead.
    listener: Mutex<Option<TcpListener>>,
}

/// Stops a [`Server`] from another thread; from
/// [`Server::shutdown_handle`]. Cheap to clone.
#[derive(Debug)]
pub struct ShutdownHandle<D = SpecDecoder, E = AnyEncoder> {
    core: Arc<StdCore<D, E>>,
}

// By hand: a derived `Clone` would ask the codec to be `Clone`.
impl<D, E> Clone for ShutdownHandle<D, E> {
    fn clone(&self) -> Self {
        ShutdownHandle {
            core: Arc::clone(&self.core),
        }
    }
}

impl<D, E> ShutdownHandle<D, E> {
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
        self.core.shut_down(deadline);
        // Wake the accept loop, blocked in accept(): shut the listener
        // down (Linux wakes accept() with an error then), else connect.
        let listener = fastnet_driver::sync::lock(&self.core.driver.listener).take();
        let woken = listener.is_some_and(|l| {
            socket2::SockRef::from(&l)
                .shutdown(std::net::Shutdown::Read)
                .is_ok()
        });
        if woken {
            return;
        }
        if let Some(addr) = &self.core.driver.wake_addr {
            let _ = TcpStream::connect_timeout(addr, Duration::from_millis(200));
        }
    }

    /// Whether a shutdown was requested.
    pub fn is_shutting_down(&self) -> bool {
        self.core.is_shutting_down()
    }
}

/// A framed TCP server on std sockets, bound and ready to [`serve`](Self::serve).
///
/// See the [crate documentation](crate) for an example and for how
/// connections, workers and shutdown work. `D` and `E` are the codec: the
/// built-in ones by default, any [`Decoder`] and [`Encoder`] through
/// [`Server::builder_with`].
///
/// [`Decoder`]: fastnet_proto::codec::Decoder
/// [`Encoder`]: fastnet_proto::codec::Encoder
pub struct Server<D = SpecDecoder, E = AnyEncoder> {
    listener: TcpListener,
    local_addr: SocketAddr,
    core: Arc<StdCore<D, E>>,
    workers: Arc<Workers<Job<E>>>,
}

impl<D, E> fmt::Debug for Server<D, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("local_addr", &self.local_addr)
            .field("config", &self.core.config)
            .finish_non_exhaustive()
    }
}

/// One accepted connection, on its way to a worker.
pub(crate) struct Job<E> {
    pub(crate) shared: Arc<ConnShared<E>>,
    /// Its TLS session, if any (the handshake deadline runs from accept).
    pub(crate) link: Link,
}

/// Everything a worker needs to serve connections.
pub(crate) struct Inner<H, D, E> {
    pub(crate) handler: H,
    pub(crate) core: Arc<StdCore<D, E>>,
}

impl Server {
    /// A builder for a server whose requests use `codec` (and, unless
    /// [`reply_codec`](ServerBuilder::reply_codec) says otherwise, its
    /// replies too).
    pub fn builder(codec: CodecSpec) -> ServerBuilder {
        ServerBuilder {
            addrs: Ok(vec![SocketAddr::from(([127, 0, 0, 1], 0))]),
            config: ServerConfig::new(codec),
            codec: ServerCodec::from_config(),
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
            tls: None,
        }
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// A handle to stop the server from another thread.
    pub fn shutdown_handle(&self) -> ShutdownHandle<D, E> {
        ShutdownHandle {
            core: Arc::clone(&self.core),
        }
    }

    /// Live counters, readable while serving
    /// ([`ServerStats::snapshot`]).
    pub fn stats(&self) -> Arc<ServerStats> {
        Arc::clone(&self.core.stats)
    }

    /// Live TLS counters: handshakes completed and failed, sessions that
    /// failed later. Feature `tls`.
    #[cfg(feature = "tls")]
    pub fn tls_stats(&self) -> Arc<crate::tls::TlsStats> {
        self.core.tls.stats()
    }

    /// Whether the server serves TLS.
    pub fn is_tls(&self) -> bool {
        self.core.is_tls()
    }

    /// Live counts of the worker threads.
    pub fn worker_pool(&self) -> WorkerPool {
        WorkerPool::new(&self.workers)
    }

    /// The configuration in force (buffer sizes as given; see
    /// [`ServerBuilder::rx_buffer`] and [`ServerBuilder::tx_buffer`] for
    /// how they are raised).
    pub fn config(&self) -> &ServerConfig {
        &self.core.config
    }

    /// Serves connections with `handler` until a [`ShutdownHandle`] stops
    /// the server; returns the final counters.
    ///
    /// Errors only if the listening socket fails for good; a failing
    /// connection is closed with its reason and the others go on.
    pub fn serve<H: Handler>(self, handler: H) -> io::Result<StatsSnapshot> {
        let Server {
            listener,
            core,
            workers,
            ..
        } = self;
        let inner = Arc::new(Inner { handler, core });
        let run: Run<Job<E>> = {
            let inner = Arc::clone(&inner);
            Arc::new(move |job: Job<E>| inner.serve_conn(&job.shared, job.link))
        };
        let mut backoff = AcceptBackoff::new();
        while !inner.core.is_shutting_down() {
            match listener.accept() {
                Ok((stream, peer)) => {
                    if inner.core.is_shutting_down() {
                        break;
                    }
                    backoff.accepted();
                    inner.admit(stream, peer, &workers, &run);
                }
                Err(e) => {
                    if let Some(pause) = backoff.failed(&e) {
                        inner.accept_failed(&e);
                        // Out of descriptors or memory: let connections
                        // end before trying again, instead of spinning.
                        thread::sleep(pause);
                    }
                }
            }
        }
        drop(listener);
        drop(run);
        workers.close();
        inner.drain();
        Ok(inner.core.stats.snapshot())
    }
}

impl<H: Handler, D: ServerDecoder, E: ServerEncoder> Inner<H, D, E> {
    /// Admission control, then hand-off to a worker.
    fn admit(
        &self,
        stream: TcpStream,
        peer: SocketAddr,
        workers: &Arc<Workers<Job<E>>>,
        run: &Run<Job<E>>,
    ) {
        let core = &self.core;
        let id = match core.admit(peer.ip()) {
            Ok(id) => id,
            Err(reason) => {
                drop(stream);
                return self.reject(peer, reason);
            }
        };
        tune_accepted(&stream, &core.config);
        // The handshake deadline counts from here.
        let link = match core.tls.link(core.epoch.elapsed()) {
            Ok(link) => link,
            Err(reason) => {
                drop(stream);
                core.cancel(peer.ip());
                return self.reject(peer, reason);
            }
        };
        let info = ConnInfo::new(id, peer, Instant::now(), core.is_tls());
        let shared = Arc::new(ConnShared::new(
            info,
            stream,
            core.encoder.clone(),
            PushQueue::new(core.config.push_queue, core.tx_len),
        ));
        core.register(&shared.info, Arc::clone(&shared));
        if let Err(job) = workers.dispatch(Job { shared, link }, run) {
            let _ = job.shared.stream.shutdown(std::net::Shutdown::Both);
            core.forget(&job.shared.info);
            self.reject(peer, RejectReason::WorkersBusy);
        }
    }

    /// Counts a failed accept and tells the handler.
    fn accept_failed(&self, e: &io::Error) {
        self.core.accept_failed(e);
        fastnet_driver::sync::guard(|| self.handler.on_accept_error(e));
    }

    pub(crate) fn reject(&self, peer: SocketAddr, reason: RejectReason) {
        self.core.rejected(peer, reason);
        fastnet_driver::sync::guard(|| self.handler.on_reject(peer, reason));
    }
}

impl<H, D, E> Inner<H, D, E> {
    /// Shutdown: wake every connection, give them until shortly before the
    /// deadline to flush and close, then close what is left at once and
    /// wait (at most until the deadline) for their workers to finish.
    fn drain(&self) {
        let core = &self.core;
        let start = Instant::now();
        let deadline = core.deadline().unwrap_or(start);
        let total = deadline.saturating_duration_since(start);
        // Keep a margin for the workers to report the forced closes.
        let soft = deadline - (total / 5).min(Duration::from_millis(100));
        for shared in core.connections() {
            shared.wake();
        }
        if !core.wait_drained(soft) {
            core.abort();
            for shared in core.connections() {
                let _ = shared.stream.shutdown(std::net::Shutdown::Both);
            }
            core.wait_drained(deadline);
        }
    }
}
