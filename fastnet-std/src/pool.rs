//! [`Pool`]: reusable client connections to one server.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Condvar};
use std::time::Instant;

use fastnet_driver::client::{Checkout, PoolClient, PoolShared};
pub use fastnet_driver::client::{PoolConfig, PoolStats};
use fastnet_driver::sync::lock;
use fastnet_proto::codec::{AnyDecoder, AnyEncoder, Decoder, Encoder};

use crate::client::Client;
use fastnet_driver::tls::TlsConnector;

/// What the pool's handles and lent connections share; `waiters` are
/// woken when a connection comes back.
type Shared<D, E> = PoolShared<Client<D, E>, D, E, Condvar>;

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
        let waiters = Condvar::new();
        Ok(Pool {
            shared: Arc::new(PoolShared::new(
                addrs, decoder, encoder, config, tls, waiters,
            )?),
        })
    }

    /// A connection: an idle one, a new one, or one returned within
    /// `wait_timeout` ([`io::ErrorKind::TimedOut`] otherwise).
    pub fn get(&self) -> io::Result<Pooled<D, E>> {
        let shared = &self.shared;
        let mut state = lock(&shared.state);
        let deadline = fastnet_driver::sync::later(Instant::now(), state.config().wait_timeout);
        loop {
            let now = Instant::now();
            match state.checkout(now, |c| c.is_reusable()) {
                Checkout::Idle(client) => return Ok(self.pooled(client)),
                Checkout::Connect => {
                    let (timeout, keepalive) =
                        (state.config().connect_timeout, state.config().keepalive);
                    drop(state);
                    let res = connect(shared, timeout, keepalive);
                    lock(&shared.state).connected(res.is_ok());
                    if res.is_err() {
                        shared.waiters.notify_one();
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
                .waiters
                .wait_timeout(state, left)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
    }

    fn pooled(&self, client: Client<D, E>) -> Pooled<D, E> {
        Pooled::new(client, Arc::clone(&self.shared), ())
    }

    /// The pool's counters.
    pub fn stats(&self) -> PoolStats {
        lock(&self.shared.state).stats()
    }
}

/// Opens a new connection of the pool.
fn connect<D: Decoder + Clone, E: Encoder + Clone>(
    shared: &Shared<D, E>,
    timeout: std::time::Duration,
    keepalive: Option<std::time::Duration>,
) -> io::Result<Client<D, E>> {
    let (decoder, encoder) = (shared.decoder.clone(), shared.encoder.clone());
    let tls = shared.tls.as_ref();
    Client::connect_link(&shared.addrs[..], decoder, encoder, timeout, tls, keepalive)
}

/// A connection borrowed from a [`Pool`]; derefs to [`Client`] and goes
/// back to the pool when dropped (unless it broke or was
/// [discarded](fastnet_driver::client::Pooled::discard)).
pub type Pooled<D = AnyDecoder, E = AnyEncoder> =
    fastnet_driver::client::Pooled<Client<D, E>, D, E, Condvar>;

impl<D: Decoder, E: Encoder> PoolClient for Client<D, E> {
    fn is_reusable(&mut self) -> bool {
        Client::is_reusable(self)
    }
}
