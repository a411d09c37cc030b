//! [`Pool`]: reusable client connections to one server.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use fastnet_driver::client::{Checkout, PoolClient, PoolShared, SelfWaking};
pub use fastnet_driver::client::{PoolConfig, PoolStats};
use fastnet_proto::codec::{AnyDecoder, AnyEncoder, Decoder, Encoder};
use smol::lock::{Semaphore, SemaphoreGuardArc};
use smol::{future, Timer};

use crate::client::Client;
use crate::sync::lock;
use fastnet_driver::tls::TlsConnector;

/// What the pool's handles and lent connections share; `waiters` are
/// one permit per connection in use or being opened (waiting for a connection is waiting for a permit).
type Shared<D, E> = PoolShared<Client<D, E>, D, E, Permits>;

/// One permit per connection in use or being opened.
type Permits = SelfWaking<Arc<Semaphore>>;

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
///
/// `D` and `E` are the codec: the built-in ones by default, any
/// [`Decoder`] and [`Encoder`] (that can be cloned for each new
/// connection) through [`Pool::with_codec`].
pub struct Pool<D = AnyDecoder, E = AnyEncoder> {
    shared: Arc<Shared<D, E>>,
}

fastnet_driver::pool_constructors! { tls: crate::tls::TlsConnector }

impl<D: Decoder + Clone, E: Encoder + Clone> Pool<D, E> {
    fn build(
        addrs: Vec<SocketAddr>,
        decoder: D,
        encoder: E,
        config: PoolConfig,
        tls: Option<TlsConnector>,
    ) -> io::Result<Self> {
        let waiters = SelfWaking(Arc::new(Semaphore::new(config.max_size)));
        Ok(Pool {
            shared: Arc::new(PoolShared::new(
                addrs, decoder, encoder, config, tls, waiters,
            )?),
        })
    }

    /// A connection: an idle one, a new one, or one returned within
    /// `wait_timeout` ([`io::ErrorKind::TimedOut`] otherwise).
    pub async fn get(&self) -> io::Result<Pooled<D, E>> {
        let shared = &self.shared;
        let (wait, connect_timeout, keepalive) = {
            let state = lock(&shared.state);
            let config = state.config();
            (
                config.wait_timeout,
                config.connect_timeout,
                config.keepalive,
            )
        };
        let permit = future::or(
            async { Some(shared.waiters.0.acquire_arc().await) },
            async {
                Timer::after(wait).await;
                None
            },
        )
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
                let res = connect(shared, connect_timeout, keepalive).await;
                lock(&shared.state).connected(res.is_ok());
                res?
            }
        };
        Ok(Pooled::new(client, Arc::clone(shared), permit))
    }

    /// The pool's counters.
    pub fn stats(&self) -> PoolStats {
        lock(&self.shared.state).stats()
    }
}

/// Opens a new connection of the pool.
async fn connect<D: Decoder + Clone, E: Encoder + Clone>(
    shared: &Shared<D, E>,
    timeout: std::time::Duration,
    keepalive: Option<std::time::Duration>,
) -> io::Result<Client<D, E>> {
    let (decoder, encoder) = (shared.decoder.clone(), shared.encoder.clone());
    let tls = shared.tls.as_ref();
    Client::connect_link(&shared.addrs[..], decoder, encoder, timeout, tls, keepalive).await
}

/// A connection borrowed from a [`Pool`]; derefs to [`Client`] and goes
/// back to the pool when dropped (unless it broke or was
/// [discarded](fastnet_driver::client::Pooled::discard)); its permit is
/// released after that.
pub type Pooled<D = AnyDecoder, E = AnyEncoder> =
    fastnet_driver::client::Pooled<Client<D, E>, D, E, Permits, SemaphoreGuardArc>;

impl<D: Decoder, E: Encoder> PoolClient for Client<D, E> {
    fn is_reusable(&mut self) -> bool {
        Client::is_reusable(self)
    }
}
