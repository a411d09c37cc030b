//! [`Pool`]: reusable client connections to one server.

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use fastnet_proto::codec::CodecSpec;

use crate::client::Client;
use crate::handle::lock;

/// How a [`Pool`] manages its connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolConfig {
    /// Most connections open at once (in use plus idle).
    pub max_size: usize,
    /// Most idle connections kept; more are closed when returned.
    pub max_idle: usize,
    /// An idle connection older than this is closed instead of reused.
    pub idle_expiry: Duration,
    /// Limit for establishing one connection.
    pub connect_timeout: Duration,
    /// How long [`Pool::get`] waits for a free connection when all
    /// `max_size` are in use.
    pub wait_timeout: Duration,
}

impl Default for PoolConfig {
    /// 16 connections, all may idle for 60 s; 5 s to connect or to wait.
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

/// Counters of a [`Pool`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Connections established over the pool's life.
    pub connects: u64,
    /// Connections dropped because they broke or were discarded.
    pub discarded: u64,
    /// Connections open now (in use plus idle).
    pub open: usize,
    /// Idle connections now.
    pub idle: usize,
}

#[derive(Debug)]
struct State {
    /// Idle connections with the time they were returned, oldest first.
    idle: VecDeque<(Client, Instant)>,
    /// Connections open or being opened.
    open: usize,
}

#[derive(Debug)]
struct Shared {
    addrs: Vec<SocketAddr>,
    codec: CodecSpec,
    config: PoolConfig,
    #[cfg(feature = "tls")]
    tls: Option<crate::tls::TlsConnector>,
    state: Mutex<State>,
    freed: Condvar,
    connects: AtomicU64,
    discarded: AtomicU64,
}

/// A pool of [`Client`] connections to one server, shared between threads
/// (clones share the pool).
///
/// [`get`](Self::get) hands out an idle connection, or opens one while the
/// pool is below `max_size`, or waits up to `wait_timeout` for one to be
/// returned. A [`Pooled`] goes back to the pool when dropped, unless it
/// broke (an IO or framing error) or was [discarded](Pooled::discard).
///
/// ```no_run
/// use fastnet_proto::codec::CodecSpec;
/// use fastnet_std::{Pool, PoolConfig};
///
/// let pool = Pool::new("127.0.0.1:7000", CodecSpec::lines(1024), PoolConfig::default())?;
/// let mut conn = pool.get()?;
/// conn.send(b"ping")?;
/// let reply = conn.recv()?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Pool {
    shared: Arc<Shared>,
}

impl Pool {
    /// A pool of connections to `addr` (resolved now) framed with `codec`.
    /// Opens no connection yet.
    pub fn new(addr: impl ToSocketAddrs, codec: CodecSpec, config: PoolConfig) -> io::Result<Pool> {
        Self::build(
            addr,
            codec,
            config,
            #[cfg(feature = "tls")]
            None,
        )
    }

    /// A pool of TLS connections ([`Client::connect_tls`]) to `addr`. Its
    /// connections share `tls`'s session cache, so a connection opened to
    /// replace a discarded one resumes the TLS session instead of a full
    /// handshake. Feature `tls`.
    #[cfg(feature = "tls")]
    pub fn with_tls(
        addr: impl ToSocketAddrs,
        codec: CodecSpec,
        config: PoolConfig,
        tls: crate::tls::TlsConnector,
    ) -> io::Result<Pool> {
        Self::build(addr, codec, config, Some(tls))
    }

    fn build(
        addr: impl ToSocketAddrs,
        codec: CodecSpec,
        config: PoolConfig,
        #[cfg(feature = "tls")] tls: Option<crate::tls::TlsConnector>,
    ) -> io::Result<Pool> {
        let addrs: Vec<SocketAddr> = addr.to_socket_addrs()?.collect();
        if addrs.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "pool: no address",
            ));
        }
        if config.max_size == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "pool: max_size must be at least 1",
            ));
        }
        codec
            .encoder()
            .and_then(|_| codec.decoder())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("pool codec: {e}")))?;
        Ok(Pool {
            shared: Arc::new(Shared {
                addrs,
                codec,
                config,
                #[cfg(feature = "tls")]
                tls,
                state: Mutex::new(State {
                    idle: VecDeque::new(),
                    open: 0,
                }),
                freed: Condvar::new(),
                connects: AtomicU64::new(0),
                discarded: AtomicU64::new(0),
            }),
        })
    }

    /// A connection: an idle one, a new one, or one returned within
    /// `wait_timeout` ([`io::ErrorKind::TimedOut`] otherwise).
    pub fn get(&self) -> io::Result<Pooled> {
        let shared = &self.shared;
        let config = &shared.config;
        let deadline = Instant::now() + config.wait_timeout;
        let mut state = lock(&shared.state);
        loop {
            let now = Instant::now();
            while let Some((_, since)) = state.idle.front() {
                if now.duration_since(*since) < config.idle_expiry {
                    break;
                }
                state.idle.pop_front();
                state.open -= 1;
            }
            if let Some((client, _)) = state.idle.pop_back() {
                return Ok(self.pooled(client));
            }
            if state.open < config.max_size {
                state.open += 1;
                drop(state);
                return match shared.connect() {
                    Ok(client) => {
                        shared.connects.fetch_add(1, Ordering::Relaxed);
                        Ok(self.pooled(client))
                    }
                    Err(e) => {
                        lock(&shared.state).open -= 1;
                        shared.freed.notify_one();
                        Err(e)
                    }
                };
            }
            let Some(left) = deadline
                .checked_duration_since(now)
                .filter(|d| !d.is_zero())
            else {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "pool: no free connection to {} within {:?} (all {} in use)",
                        shared.addrs[0], config.wait_timeout, config.max_size
                    ),
                ));
            };
            state = shared
                .freed
                .wait_timeout(state, left)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
    }

    fn pooled(&self, client: Client) -> Pooled {
        Pooled {
            client: Some(client),
            pool: Arc::clone(&self.shared),
            discard: false,
        }
    }

    /// The pool's counters.
    pub fn stats(&self) -> PoolStats {
        let state = lock(&self.shared.state);
        PoolStats {
            connects: self.shared.connects.load(Ordering::Relaxed),
            discarded: self.shared.discarded.load(Ordering::Relaxed),
            open: state.open,
            idle: state.idle.len(),
        }
    }
}

impl Shared {
    fn connect(&self) -> io::Result<Client> {
        #[cfg(feature = "tls")]
        if let Some(tls) = &self.tls {
            return Client::connect_tls(
                &self.addrs[..],
                self.codec,
                self.config.connect_timeout,
                tls,
            );
        }
        Client::connect(&self.addrs[..], self.codec, self.config.connect_timeout)
    }
}

/// A connection borrowed from a [`Pool`]; derefs to [`Client`] and goes
/// back to the pool when dropped.
pub struct Pooled {
    client: Option<Client>,
    pool: Arc<Shared>,
    discard: bool,
}

impl Pooled {
    /// Closes this connection instead of returning it to the pool (for
    /// example after a reply that left the protocol out of step).
    pub fn discard(mut self) {
        self.discard = true;
    }
}

impl Deref for Pooled {
    type Target = Client;

    fn deref(&self) -> &Client {
        // Only `drop` takes the client out.
        self.client.as_ref().expect("client present until drop")
    }
}

impl DerefMut for Pooled {
    fn deref_mut(&mut self) -> &mut Client {
        self.client.as_mut().expect("client present until drop")
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        let Some(client) = self.client.take() else {
            return;
        };
        let pool = &self.pool;
        let mut state = lock(&pool.state);
        if self.discard || client.is_broken() {
            pool.discarded.fetch_add(1, Ordering::Relaxed);
            state.open -= 1;
        } else if state.idle.len() >= pool.config.max_idle {
            state.open -= 1;
        } else {
            state.idle.push_back((client, Instant::now()));
        }
        drop(state);
        pool.freed.notify_one();
    }
}

impl fmt::Debug for Pooled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pooled")
            .field("client", &self.client)
            .field("discard", &self.discard)
            .finish()
    }
}
