//! The framed echo server behind `fastnet serve` and the in-process server
//! of `fastnet bench`, on either driver.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use fastnet_proto::codec::{
    AnyDecoder, AnyEncoder, CodecSpec, Encoder, SharedDecoder, SplitDecoder,
};
use fastnet_proto::connection::Limits;
use fastnet_proto::server::{ServerConfig, ServerStats, StatsSnapshot};
use fastnet_std::tls::TlsServerConfig;

/// Which driver serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Driver {
    /// fastnet-smol: async, on smol / async-io.
    Smol,
    /// fastnet-std: blocking, a pooled thread per connection.
    Std,
}

/// How to serve.
#[derive(Debug, Clone)]
pub struct EchoConfig {
    /// Driver.
    pub driver: Driver,
    /// Address to bind (port 0 picks one).
    pub addr: SocketAddr,
    /// Everything else the drivers share.
    pub server: ServerConfig,
    /// Serve TLS. Both drivers take the same `fastnet-tls` configuration,
    /// so one serves either.
    pub tls: Option<TlsServerConfig>,
}

impl EchoConfig {
    /// Defaults for `codec` on `driver` at `addr`.
    pub fn new(driver: Driver, addr: SocketAddr, codec: CodecSpec) -> Self {
        EchoConfig {
            driver,
            addr,
            server: ServerConfig::new(codec),
            tls: None,
        }
    }

    /// Sets the limits.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.server.limits = limits;
        self
    }
}

/// Starts a graceful shutdown with the given deadline.
pub type ShutdownFn = Box<dyn Fn(Duration) + Send + Sync>;

/// A server running on its own threads.
pub struct RunningEcho {
    /// The bound address.
    pub addr: SocketAddr,
    /// The server's live statistics.
    pub stats: Arc<ServerStats>,
    shutdown: ShutdownFn,
    join: JoinHandle<io::Result<StatsSnapshot>>,
}

impl std::fmt::Debug for RunningEcho {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningEcho")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl RunningEcho {
    /// A handle that starts a graceful shutdown with the given deadline.
    pub fn shutdown(&self, deadline: Duration) {
        (self.shutdown)(deadline)
    }

    /// Waits for the server to finish; its final statistics.
    pub fn join(self) -> io::Result<StatsSnapshot> {
        self.join
            .join()
            .map_err(|_| io::Error::other("server thread panicked"))?
    }

    /// Starts shutdown and returns a function to trigger it from elsewhere
    /// (a signal thread), plus the server to join.
    pub fn split(self) -> (ShutdownFn, JoinHandle<io::Result<StatsSnapshot>>) {
        (self.shutdown, self.join)
    }
}

/// The echo server's handler, for either driver: both drivers hand it the
/// same `Ctx`, so what it does is written once here and each driver's
/// `Handler` impl only forwards. Accepts, refusals, closes and TLS
/// failures are the drivers' own `tracing` events.
struct Echo;

impl Echo {
    // Inlined into each driver's frame loop, so a frame costs no call
    // into the handler (about 11 instructions a pipelined request,
    // BENCHMARKS.md, run AJ); the warning stays out of line.
    #[inline(always)]
    fn frame(&self, ctx: &mut fastnet_std::Ctx<'_, ()>, frame: &[u8]) {
        if let Err(e) = ctx.send(frame) {
            refused(ctx, frame.len(), e);
        }
    }
}

/// A frame that could not be echoed: said, and the connection closed.
#[cold]
#[inline(never)]
fn refused(ctx: &mut fastnet_std::Ctx<'_, ()>, len: usize, e: fastnet_proto::Error) {
    // Named here, not by the connection's span: that span is DEBUG, so a
    // server at the default level would print the warning without it.
    let info = ctx.info();
    tracing::warn!(
        target: "fastnet",
        parent: None,
        id = info.id(),
        peer = %info.peer_addr(),
        "cannot echo a {len}-byte frame: {e}; closing"
    );
    ctx.close();
}

impl fastnet_std::Handler for Echo {
    type State = ();

    fn on_connect(&self, _info: &fastnet_std::ConnInfo) -> Option<()> {
        Some(())
    }

    fn on_frame(&self, ctx: &mut fastnet_std::Ctx<'_, ()>, frame: &[u8]) {
        self.frame(ctx, frame);
    }
}

impl fastnet_smol::Handler for Echo {
    type State = ();

    fn on_connect(&self, _info: &fastnet_smol::ConnInfo) -> Option<()> {
        Some(())
    }

    // Every echo is answered at once, here; `on_frame` is never called.
    fn on_frame_now(&self, ctx: &mut fastnet_smol::Ctx<'_, ()>, frame: &[u8]) -> bool {
        self.frame(ctx, frame);
        true
    }

    async fn on_frame(&self, ctx: &mut fastnet_smol::Ctx<'_, ()>, frame: &[u8]) {
        self.frame(ctx, frame);
    }
}

/// Binds and starts serving on background threads.
///
/// Each built-in framing is served with its own codec types rather than
/// the run-time choice of [`AnyDecoder`] and [`AnyEncoder`]: a frame then
/// costs no dispatch on the codec's kind, and the decoder's and encoder's
/// fast paths inline into the connection's loop (about 80 instructions a
/// frame fewer for the length field, BENCHMARKS.md). A reply codec of
/// another kind than the request codec keeps the run-time pair.
pub fn start(cfg: EchoConfig) -> io::Result<RunningEcho> {
    let invalid = |what: &str, e: fastnet_proto::Error| {
        io::Error::new(io::ErrorKind::InvalidInput, format!("{what}: {e}"))
    };
    let decoder = cfg
        .server
        .codec
        .decoder()
        .map_err(|e| invalid("codec", e))?;
    let encoder = cfg
        .server
        .reply_codec()
        .encoder()
        .map_err(|e| invalid("reply codec", e))?;
    match (decoder, encoder) {
        (AnyDecoder::Raw(d), AnyEncoder::Raw(e)) => start_with(cfg, d, e),
        (AnyDecoder::Delimiter(d), AnyEncoder::Delimiter(e)) => start_with(cfg, d, e),
        (AnyDecoder::Fixed(d), AnyEncoder::Fixed(e)) => start_with(cfg, d, e),
        (AnyDecoder::LengthField(d), AnyEncoder::LengthField(e)) => start_with(cfg, d, e),
        (AnyDecoder::Varint(d), AnyEncoder::Varint(e)) => start_with(cfg, d, e),
        (AnyDecoder::Cobs(d), AnyEncoder::Cobs(e)) => start_with(cfg, d, e),
        (d, e) => start_with(cfg, d, e),
    }
}

/// [`start`] with a decoder and an encoder of known types. The decoder's
/// configuration is shared by the connections, which keep only its state
/// ([`SharedDecoder`]), as the drivers do for a [`CodecSpec`].
fn start_with<D, E>(cfg: EchoConfig, decoder: D, encoder: E) -> io::Result<RunningEcho>
where
    D: SplitDecoder + Send + Sync + 'static,
    D::State: Send + Sync + 'static,
    E: Encoder + Send + Sync + 'static,
{
    let decoder = SharedDecoder::new(decoder);
    match cfg.driver {
        Driver::Std => {
            let mut builder = fastnet_std::Server::builder_with(decoder, encoder)
                .config(cfg.server)
                .addr(cfg.addr);
            if let Some(tls) = cfg.tls {
                builder = builder.tls(tls);
            }
            let server = builder.bind()?;
            let addr = server.local_addr();
            let handle = server.shutdown_handle();
            let stats = server.stats();
            let join = std::thread::Builder::new()
                .name("fastnet-std-serve".into())
                .spawn(move || server.serve(Echo))?;
            Ok(RunningEcho {
                addr,
                stats,
                shutdown: Box::new(move |d| handle.shutdown(d)),
                join,
            })
        }
        Driver::Smol => {
            let mut builder = fastnet_smol::Server::builder_with(decoder, encoder)
                .config(cfg.server)
                .addr(cfg.addr);
            if let Some(tls) = cfg.tls {
                builder = builder.tls(tls);
            }
            let server = builder.bind()?;
            let addr = server.local_addr();
            let handle = server.shutdown_handle();
            let stats = server.stats();
            let join = std::thread::Builder::new()
                .name("fastnet-smol-serve".into())
                .spawn(move || server.run(Echo))?;
            Ok(RunningEcho {
                addr,
                stats,
                shutdown: Box::new(move |d| handle.shutdown(d)),
                join,
            })
        }
    }
}
