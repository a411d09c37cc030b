//! [`Pool`]: reusable client connections to one server.

use std::fmt;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use fastnet_driver::client::{check_codec, Checkout, PoolState};
pub use fastnet_driver::client::{PoolConfig, PoolStats};
use fastnet_proto::codec::CodecSpec;
use smol::lock::{Semaphore, SemaphoreGuardArc};
use smol::{future, Timer};

use crate::client::Client;
use crate::sync::lock;

#[derive(Debug)]
struct Shared {
    addrs: Vec<SocketAddr>,
    codec: CodecSpec,
    #[cfg(feature = "tls")]
    tls: Option<crate::tls::TlsConnector>,
    state: Mutex<PoolState<Client>>,
    /// One permit per connection in use or being opened: waiting for a
    /// connection is waiting for a permit.
    permits: Arc<Semaphore>,
}

/// A pool of [`Client`] connections to one server, shared between tasks
/// (clones share the pool).
///
/// [`get`](Self::get) hands out an idle connection (newest first), or
/// opens one while the pool is below `max_size`, or waits up to
/// `wait_timeout` for one to be returned. A [`Pooled`] goes back to the
/// pool when dropped, unless it broke (an IO or framing error, the
/// server's close, unread bytes) or was [discarded](Pooled::discard).
///
/// ```no_run
/// # async fn demo(addr: std::net::SocketAddr) -> std::io::Result<()> {
/// use fastnet_smol::{CodecSpec, Pool, PoolConfig};
///
/// let pool = Pool::new(addr, CodecSpec::lines(1024), PoolConfig::default())?;
/// let mut conn = pool.get().await?;
/// conn.send(b"ping").await?;
/// let _reply = conn.recv().await?;
/// drop(conn); // back to the pool
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Pool {
    shared: Arc<Shared>,
}

impl Pool {
    /// A pool of connections to `addr` framed with `codec`. The address is
    /// resolved now, with the blocking resolver (pass an IP address, or
    /// build the pool before entering async code); no connection is opened.
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
                permits: Arc::new(Semaphore::new(config.max_size)),
            }),
        })
    }

    /// A connection: an idle one, a new one, or one returned within
    /// `wait_timeout` ([`io::ErrorKind::TimedOut`] otherwise).
    pub async fn get(&self) -> io::Result<Pooled> {
        let shared = &self.shared;
        let (wait, connect_timeout) = {
            let state = lock(&shared.state);
            (state.config().wait_timeout, state.config().connect_timeout)
        };
        let permit = future::or(async { Some(shared.permits.acquire_arc().await) }, async {
            Timer::after(wait).await;
            None
        })
        .await;
        let Some(permit) = permit else {
            return Err(lock(&shared.state).exhausted(shared.addrs[0]));
        };
        let checkout = lock(&shared.state).checkout(Instant::now(), |c| c.is_reusable());
        let client = match checkout {
            Checkout::Idle(client) => client,
            // The permit guarantees a slot (idle connections hold none);
            // `Full` cannot happen, and would be a connect all the same.
            Checkout::Connect | Checkout::Full => {
                let res = shared.connect(connect_timeout).await;
                lock(&shared.state).connected(res.is_ok());
                res?
            }
        };
        Ok(Pooled {
            client: Some(client),
            pool: Arc::clone(shared),
            _permit: permit,
            discard: false,
        })
    }

    /// The pool's counters.
    pub fn stats(&self) -> PoolStats {
        lock(&self.shared.state).stats()
    }
}

impl Shared {
    async fn connect(&self, timeout: std::time::Duration) -> io::Result<Client> {
        #[cfg(feature = "tls")]
        if let Some(tls) = &self.tls {
            return Client::connect_tls(&self.addrs[..], self.codec, timeout, tls).await;
        }
        Client::connect(&self.addrs[..], self.codec, timeout).await
    }
}

/// A connection borrowed from a [`Pool`]; derefs to [`Client`] and goes
/// back to the pool when dropped.
pub struct Pooled {
    client: Option<Client>,
    pool: Arc<Shared>,
    _permit: SemaphoreGuardArc,
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
        let Some(mut client) = self.client.take() else {
            return;
        };
        let reusable = !self.discard && client.is_reusable();
        lock(&self.pool.state).checkin(client, reusable, Instant::now());
        // The permit is released after this, so a waiter finds the
        // connection idle.
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
