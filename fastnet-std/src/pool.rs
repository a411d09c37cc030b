//! [`Pool`]: reusable client connections to one server.

use std::fmt;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

use fastnet_driver::client::{check_codec, Checkout, PoolState};
pub use fastnet_driver::client::{PoolConfig, PoolStats};
use fastnet_driver::sync::lock;
use fastnet_proto::codec::CodecSpec;

use crate::client::Client;

#[derive(Debug)]
struct Shared {
    addrs: Vec<SocketAddr>,
    codec: CodecSpec,
    #[cfg(feature = "tls")]
    tls: Option<crate::tls::TlsConnector>,
    state: Mutex<PoolState<Client>>,
    freed: Condvar,
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
        check_codec(&codec)?;
        Ok(Pool {
            shared: Arc::new(Shared {
                addrs,
                codec,
                #[cfg(feature = "tls")]
                tls,
                state: Mutex::new(PoolState::new(config)?),
                freed: Condvar::new(),
            }),
        })
    }

    /// A connection: an idle one, a new one, or one returned within
    /// `wait_timeout` ([`io::ErrorKind::TimedOut`] otherwise).
    pub fn get(&self) -> io::Result<Pooled> {
        let shared = &self.shared;
        let mut state = lock(&shared.state);
        let deadline = Instant::now() + state.config().wait_timeout;
        loop {
            let now = Instant::now();
            match state.checkout(now, |c| c.is_reusable()) {
                Checkout::Idle(client) => return Ok(self.pooled(client)),
                Checkout::Connect => {
                    let timeout = state.config().connect_timeout;
                    drop(state);
                    let res = shared.connect(timeout);
                    lock(&shared.state).connected(res.is_ok());
                    if res.is_err() {
                        shared.freed.notify_one();
                    }
                    return res.map(|client| self.pooled(client));
                }
                Checkout::Full => {}
            }
            let Some(left) = deadline
                .checked_duration_since(now)
                .filter(|d| !d.is_zero())
            else {
                return Err(state.exhausted(shared.addrs[0]));
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
        lock(&self.shared.state).stats()
    }
}

impl Shared {
    fn connect(&self, timeout: std::time::Duration) -> io::Result<Client> {
        #[cfg(feature = "tls")]
        if let Some(tls) = &self.tls {
            return Client::connect_tls(&self.addrs[..], self.codec, timeout, tls);
        }
        Client::connect(&self.addrs[..], self.codec, timeout)
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
        let reusable = !self.discard && client.is_reusable();
        lock(&self.pool.state).checkin(client, reusable, Instant::now());
        self.pool.freed.notify_one();
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
