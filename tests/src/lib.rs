//! # fastnet-tests
//!
//! One behaviour suite for every fastnet driver. A driver plugs in by
//! implementing [`TestDriver`] — start an echo server from a
//! [`ServerConfig`] on `127.0.0.1:0`, serving on a background thread, or
//! bind one without serving it — and
//! instantiating the suite functions in a file of `tests/`, for example:
//!
//! ```ignore
//! struct Std;
//! impl fastnet_tests::TestDriver for Std {
//!     const NAME: &'static str = "std";
//!     fn start_echo(config: ServerConfig) -> RunningServer { /* … */ }
//!     fn bind_unserved(config: ServerConfig) -> (SocketAddr, Box<dyn Any>) { /* … */ }
//!     fn config_in_force(config: ServerConfig) -> ServerConfig { /* … */ }
//!     // A codec of the user's own, on the server and the driver's clients:
//!     fn start_echo_with<Dec, Enc>(/* … */) -> RunningServer { /* … */ }
//!     fn echo_through_client<Dec, Enc>(/* … */) -> io::Result<Vec<Vec<u8>>> { /* … */ }
//! }
//! #[test]
//! fn echo_500_clients() {
//!     fastnet_tests::echo_500_clients::<Std>();
//! }
//! ```
//!
//! The echo handler a driver writes must, for every frame, call
//! [`before_echo`] and then send the frame back unchanged; it records close
//! and reject reasons in the [`Events`] it shares with the
//! [`RunningServer`]. That is all the suite needs.
//!
//! The suite's clients are plain blocking std sockets with fastnet-proto
//! encoders and decoders ([`FrameClient`]), never driver code, so it tests
//! the server side of any driver. All traffic is on 127.0.0.1 with port 0;
//! every wait is bounded and polls a condition; random data comes from
//! fixed seeds.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use fastnet_proto::codec::{
    AnyDecoder, AnyEncoder, CodecSpec, Decoded, Decoder, Encoder, Endian, LengthFieldConfig,
};
use fastnet_proto::connection::{CloseReason, Limits};
use fastnet_proto::server::{RejectReason, ServerConfig, StatsSnapshot};

pub mod adversarial;
pub mod checksum;
pub mod fairness;
pub mod panics;
pub mod push;
pub mod soak;
pub mod sockets;
#[cfg(feature = "tls")]
pub mod tls;
#[cfg(feature = "tracing")]
pub mod tracing;
mod user_codec;

pub use fairness::{every_duration_at_its_maximum, smallest_wake_budget_loses_nothing};
pub use panics::{panic_if_tagged, panicking_handler_costs_only_its_connection, PANIC_TAG};
pub use push::{wants_handle, PushHandle};
pub use user_codec::{
    user_codec_bad_checksum_closes_only_that_connection, user_codec_echo,
    user_codec_echo_through_driver_clients,
};

/// A driver under test.
pub trait TestDriver {
    /// The driver's name, for failure messages.
    const NAME: &'static str;

    /// Binds an echo server with `config` on `127.0.0.1:0` and serves it on
    /// a background thread. Its handler calls [`before_echo`] for every
    /// frame, then sends the frame back, and records every `on_close` and
    /// `on_reject` in the returned server's [`Events`].
    fn start_echo(config: ServerConfig) -> RunningServer;

    /// Like [`start_echo`](Self::start_echo), listening on `addr` instead
    /// (for example `[::1]:0`). `None` if the driver's adapter cannot choose
    /// its address; an error if binding failed. Cases that need it are
    /// skipped, with a line saying why, when it is unavailable.
    fn start_echo_on(addr: SocketAddr, config: ServerConfig) -> Option<io::Result<RunningServer>> {
        let _ = (addr, config);
        None
    }

    /// Binds a server with `config` on `127.0.0.1:0` and never serves it:
    /// connects wait in the kernel's accept queue. Returns the address and
    /// the server, which stops listening when dropped.
    fn bind_unserved(config: ServerConfig) -> (SocketAddr, Box<dyn std::any::Any>);

    /// Binds a server with `config` on `127.0.0.1:0` without serving it
    /// and returns its configuration in force (`Server::config`).
    fn config_in_force(config: ServerConfig) -> ServerConfig;

    /// Like [`start_echo`](Self::start_echo), with a codec of the user's
    /// own: `decoder` reads requests, `encoder` frames replies (the
    /// configuration's codec fields are not used).
    fn start_echo_with<Dec, Enc>(config: ServerConfig, decoder: Dec, encoder: Enc) -> RunningServer
    where
        Dec: Decoder + Clone + Send + Sync + 'static,
        Enc: Encoder + Send + Sync + 'static;

    /// Like [`start_echo`](Self::start_echo), serving TLS with `tls`
    /// (the driver's `ServerBuilder::tls`). `None` if the driver cannot;
    /// the soak then runs without TLS clients. Feature `tls`.
    #[cfg(feature = "tls")]
    fn start_tls_echo(
        config: ServerConfig,
        tls: fastnet_tls::TlsServerConfig,
    ) -> Option<RunningServer> {
        let _ = (config, tls);
        None
    }

    /// Sends each of `payloads` to `addr` and returns the replies, one per
    /// payload, through the driver's own client with a codec of the user's
    /// own: a `Client` if `pooled` is false, else connections of a `Pool`
    /// (one for the first half of the payloads, returned, then taken again
    /// for the rest).
    fn echo_through_client<Dec, Enc>(
        addr: SocketAddr,
        decoder: Dec,
        encoder: Enc,
        payloads: &[Vec<u8>],
        pooled: bool,
    ) -> io::Result<Vec<Vec<u8>>>
    where
        Dec: Decoder + Clone + Send + Sync + 'static,
        Enc: Encoder + Clone + Send + Sync + 'static;
}

/// A handle the echo handler recorded, with the bytes that followed
/// [`HANDLE_TAG`](push::HANDLE_TAG) in the frame that asked for it.
pub type NotedHandle = (Vec<u8>, Arc<dyn PushHandle>);

/// What the handler of a [`RunningServer`] saw.
#[derive(Default)]
pub struct Events {
    closes: Mutex<Vec<CloseReason>>,
    rejects: Mutex<Vec<RejectReason>>,
    handles: Mutex<Vec<NotedHandle>>,
    panics: panics::Panics,
}

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Events")
            .field("closes", &self.closes)
            .field("rejects", &self.rejects)
            .field("handles", &self.handles.lock().unwrap().len())
            .finish()
    }
}

impl Events {
    /// An empty record, to share between handler and test.
    pub fn new() -> Arc<Events> {
        Arc::default()
    }

    /// Call from `on_close`.
    pub fn record_close(&self, reason: CloseReason) {
        self.closes.lock().unwrap().push(reason);
        self.after_close();
    }

    /// Call from `on_reject`.
    pub fn record_reject(&self, reason: RejectReason) {
        self.rejects.lock().unwrap().push(reason);
    }

    /// Call from `on_frame` when [`wants_handle`] says so, with the frame.
    pub fn record_handle(&self, frame: &[u8], handle: impl PushHandle + 'static) {
        // What follows the tag says what the handle is for (the soak's
        // pusher reads it).
        let note = frame.get(push::HANDLE_TAG.len()..).unwrap_or_default();
        self.handles
            .lock()
            .unwrap()
            .push((note.to_vec(), Arc::new(handle)));
    }

    /// Handles recorded so far, in order.
    pub fn handles(&self) -> Vec<Arc<dyn PushHandle>> {
        let handles = self.handles.lock().unwrap();
        handles.iter().map(|(_, h)| Arc::clone(h)).collect()
    }

    /// Takes the handles recorded so far out of the record, in order, each
    /// with the bytes that followed [`HANDLE_TAG`](push::HANDLE_TAG) in its
    /// frame. A handle keeps its connection's shared state alive, so a
    /// long run takes them and drops each once its connection closed.
    pub fn take_handles(&self) -> Vec<NotedHandle> {
        std::mem::take(&mut *self.handles.lock().unwrap())
    }

    /// Close reasons so far, in order.
    pub fn closes(&self) -> Vec<CloseReason> {
        self.closes.lock().unwrap().clone()
    }

    /// Reject reasons so far, in order.
    pub fn rejects(&self) -> Vec<RejectReason> {
        self.rejects.lock().unwrap().clone()
    }

    /// How many connections closed for `reason`.
    pub fn closed(&self, reason: CloseReason) -> usize {
        self.closes().iter().filter(|r| **r == reason).count()
    }
}

type StatsFn = Box<dyn Fn() -> StatsSnapshot + Send + Sync>;
type StopFn = Box<dyn FnOnce(Duration) + Send>;
type JoinFn = Box<dyn FnOnce() -> io::Result<StatsSnapshot> + Send>;

/// A server serving on a background thread, as a driver's
/// [`TestDriver::start_echo`] returns it.
pub struct RunningServer {
    addr: SocketAddr,
    events: Arc<Events>,
    stats: StatsFn,
    stop: Option<StopFn>,
    join: Option<JoinFn>,
}

impl RunningServer {
    /// Wraps a running server: its address, the events its handler
    /// records, a way to read its live stats, a way to start its shutdown
    /// with a deadline (returning at once), and a way to wait for its serve
    /// call to return.
    pub fn new(
        addr: SocketAddr,
        events: Arc<Events>,
        stats: impl Fn() -> StatsSnapshot + Send + Sync + 'static,
        stop: impl FnOnce(Duration) + Send + 'static,
        join: impl FnOnce() -> io::Result<StatsSnapshot> + Send + 'static,
    ) -> Self {
        RunningServer {
            addr,
            events,
            stats: Box::new(stats),
            stop: Some(Box::new(stop)),
            join: Some(Box::new(join)),
        }
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its live counters.
    pub fn stats(&self) -> StatsSnapshot {
        (self.stats)()
    }

    /// What its handler saw.
    pub fn events(&self) -> &Events {
        &self.events
    }

    /// What its handler saw, to share with another thread.
    pub fn shared_events(&self) -> Arc<Events> {
        Arc::clone(&self.events)
    }

    /// Shuts it down with `deadline`; returns how long until serve
    /// returned, and its final counters.
    pub fn shutdown(&mut self, deadline: Duration) -> (Duration, StatsSnapshot) {
        let start = Instant::now();
        let stop = self.stop.take().expect("shut down once");
        let join = self.join.take().expect("shut down once");
        stop(deadline);
        let stats = join().expect("serve returned an error");
        (start.elapsed(), stats)
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        if let (Some(stop), Some(join)) = (self.stop.take(), self.join.take()) {
            stop(Duration::from_secs(1));
            let _ = join();
        }
    }
}

impl std::fmt::Debug for RunningServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningServer")
            .field("addr", &self.addr)
            .field("events", &self.events)
            .finish_non_exhaustive()
    }
}

/// Frames that start with this tag make the echo handler sleep first, for
/// the number of milliseconds in the next two bytes (big-endian).
pub const SLEEP_TAG: &[u8; 4] = b"\xffSLP";

/// Call in the echo handler's `on_frame` before echoing `frame`.
pub fn before_echo(frame: &[u8]) {
    if let Some([hi, lo, ..]) = frame.strip_prefix(SLEEP_TAG) {
        let ms = u16::from_be_bytes([*hi, *lo]);
        thread::sleep(Duration::from_millis(u64::from(ms)));
    }
}

/// A payload that makes the echo handler sleep `ms` before echoing it.
pub fn sleep_frame(ms: u16) -> Vec<u8> {
    let mut frame = SLEEP_TAG.to_vec();
    frame.extend_from_slice(&ms.to_be_bytes());
    frame
}

/// The suite's codec: a 4-byte big-endian length before the payload
/// (`len=u32be`), frames of at most `max_frame` bytes on the wire.
pub fn codec(max_frame: usize) -> CodecSpec {
    CodecSpec::LengthField(LengthFieldConfig::new(4, Endian::Big).max_frame(max_frame))
}

/// A deterministic xorshift64* generator.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed` (any value).
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..=max`.
    pub fn upto(&mut self, max: usize) -> usize {
        (self.next_u64() % (max as u64 + 1)) as usize
    }

    /// `len` random bytes.
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next_u64() as u8).collect()
    }
}

/// A blocking framed client on a plain std socket, independent of any
/// driver; with the built-in codecs by default, any decoder and encoder
/// through [`FrameClient::with_codec`].
#[derive(Debug)]
pub struct FrameClient<D = AnyDecoder, E = AnyEncoder> {
    stream: TcpStream,
    decoder: D,
    encoder: E,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    wire: Vec<u8>,
}

impl FrameClient {
    /// Connects to `addr` with the suite's [`codec`].
    pub fn connect(addr: SocketAddr, max_frame: usize) -> io::Result<Self> {
        Self::connect_with(addr, codec(max_frame))
    }

    /// Connects to `addr` with the codec `spec`.
    pub fn connect_with(addr: SocketAddr, spec: CodecSpec) -> io::Result<Self> {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        Self::from_stream(stream, spec)
    }

    /// A client on an already connected `stream` (say, one bound to a
    /// chosen local address), with the codec `spec`.
    pub fn from_stream(stream: TcpStream, spec: CodecSpec) -> io::Result<Self> {
        let invalid = |e: fastnet_proto::Error| io::Error::new(io::ErrorKind::InvalidInput, e);
        let decoder = spec.decoder().map_err(invalid)?;
        FrameClient::with_codec(stream, decoder, spec.encoder().map_err(invalid)?)
    }
}

impl<D: Decoder, E: Encoder> FrameClient<D, E> {
    /// A client on an already connected `stream` that frames with
    /// `encoder` and reads with `decoder` (a fresh one).
    pub fn with_codec(stream: TcpStream, decoder: D, encoder: E) -> io::Result<Self> {
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        let max_frame = decoder.max_frame();
        Ok(FrameClient {
            stream,
            decoder,
            encoder,
            buf: vec![0; 2 * max_frame.max(64)],
            start: 0,
            end: 0,
            wire: Vec::with_capacity(max_frame),
        })
    }

    /// The socket.
    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }

    /// Frames `payload` and writes it.
    pub fn send(&mut self, payload: &[u8]) -> io::Result<()> {
        self.wire.clear();
        self.encoder
            .encode_vec(payload, &mut self.wire)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        self.stream.write_all(&self.wire)
    }

    /// Writes raw bytes.
    pub fn send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// The next frame's payload, `Ok(None)` at a clean end of stream.
    pub fn recv(&mut self) -> io::Result<Option<&[u8]>> {
        loop {
            match self.decoder.decode(&mut self.buf[self.start..self.end]) {
                Ok(Decoded::Frame(f)) => {
                    let at = self.start;
                    self.start += f.consumed;
                    return Ok(Some(&self.buf[at + f.start..at + f.end]));
                }
                Ok(Decoded::Skip(n)) => self.start += n,
                Ok(Decoded::NeedMore { .. }) => {
                    if self.end == self.buf.len() {
                        self.buf.copy_within(self.start..self.end, 0);
                        self.end -= self.start;
                        self.start = 0;
                    }
                    match self.stream.read(&mut self.buf[self.end..]) {
                        Ok(0) if self.start == self.end => return Ok(None),
                        Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                        Ok(n) => self.end += n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => return Err(e),
                    }
                }
                Err(e) => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        e.error.to_string(),
                    ))
                }
            }
        }
    }

    /// Sends `payload` and checks that exactly it comes back.
    pub fn roundtrip(&mut self, payload: &[u8]) -> io::Result<()> {
        self.send(payload)?;
        match self.recv()? {
            Some(reply) if reply == payload => Ok(()),
            Some(reply) => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "echo mismatch: sent {} bytes, got {}",
                    payload.len(),
                    reply.len()
                ),
            )),
            None => Err(io::ErrorKind::UnexpectedEof.into()),
        }
    }

    /// Waits (up to `limit`) for the server to close the connection:
    /// `Ok(elapsed)` on end of stream or reset, an error if a frame or the
    /// timeout comes first.
    pub fn expect_closed(&mut self, limit: Duration) -> io::Result<Duration> {
        let start = Instant::now();
        self.stream.set_read_timeout(Some(limit))?;
        match self.recv() {
            Ok(None) => Ok(start.elapsed()),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::ConnectionReset
                        | io::ErrorKind::ConnectionAborted
                        | io::ErrorKind::UnexpectedEof
                ) =>
            {
                Ok(start.elapsed())
            }
            Ok(Some(_)) => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "got a frame, expected the connection to close",
            )),
            Err(e) => Err(e),
        }
    }
}

/// Whether a socket call ran out of time: a read or write timeout (which
/// the OS reports as `WouldBlock` or `TimedOut`, depending on the
/// platform) or a non-blocking socket with nothing to do.
pub fn timed_out(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}

/// Polls `cond` every few milliseconds until it holds or `limit` passes.
pub fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        thread::sleep(Duration::from_millis(2));
    }
}

/// The resident set size of this process, from `/proc/self/status`
/// (`None` where that file does not exist).
pub fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn config(max_frame: usize) -> ServerConfig {
    let mut c = ServerConfig::new(codec(max_frame));
    c.max_connections = 1000;
    c
}

// ---------------------------------------------------------------------------
// The suite.

/// Connects to `addr` one at a time, each within `timeout`, keeping every
/// socket open, until `limit` connects or the first that fails; returns how
/// many succeeded.
pub fn connects_until_one_fails(addr: SocketAddr, limit: usize, timeout: Duration) -> usize {
    let mut open = Vec::with_capacity(limit);
    while open.len() < limit {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(s) => open.push(s),
            Err(_) => break,
        }
    }
    open.len()
}

/// A burst of connects to a server that is not accepting yet (as one busy
/// for a moment) all complete: the listen backlog is the configured 1024,
/// not std's 128, whose overflow drops SYNs that the clients resend only
/// a second or more later. On Linux a backlog of 16 also shows the setting
/// reaches the socket: connect 18 or so waits.
pub fn listen_backlog_holds_a_connect_burst<D: TestDriver>() {
    const BURST: usize = 600;
    let (addr, server) = D::bind_unserved(config(64));
    let n = connects_until_one_fails(addr, BURST, Duration::from_millis(500));
    assert_eq!(n, BURST, "{}: connects queued before one waited", D::NAME);
    drop(server);
    if cfg!(target_os = "linux") {
        let mut small = config(64);
        small.listen_backlog = 16;
        let (addr, _server) = D::bind_unserved(small);
        assert_backlog_is(addr, 16, D::NAME);
    }
}

/// Checks, on Linux, that the server at `addr`, which is not accepting,
/// listens with a backlog of `backlog`: connects (each given 100 ms) queue
/// until the kernel's accept queue is full, which holds `backlog` and a few
/// more, at most twice as many.
pub fn assert_backlog_is(addr: SocketAddr, backlog: usize, who: &str) {
    let n = connects_until_one_fails(addr, backlog * 4, Duration::from_millis(100));
    assert!(
        (backlog..=backlog * 2).contains(&n),
        "{who}: {n} connects queued with a listen backlog of {backlog}"
    );
}

/// Largest frame in the echo test.
pub const ECHO_MAX_FRAME: usize = 4096;

/// 500 concurrent clients × 200 frames of random sizes up to the maximum
/// frame, every byte verified. Clients are multiplexed over a few threads
/// (each writes one frame on each of its sockets, then reads each reply),
/// so the count is real while the thread count stays small.
pub fn echo_500_clients<D: TestDriver>() {
    const CLIENTS: usize = 500;
    const FRAMES: usize = 200;
    const THREADS: usize = 10;
    let mut server = D::start_echo(config(ECHO_MAX_FRAME));
    let addr = server.addr();
    let start = Instant::now();
    let mut pool = Rng::new(1).bytes(64 * 1024);
    // No payload may ask the handler to sleep.
    for b in pool.iter_mut().filter(|b| **b == 0xff) {
        *b = 0xfe;
    }
    let pool = Arc::new(pool);
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let pool = Arc::clone(&pool);
            thread::spawn(move || {
                let mut rng = Rng::new(100 + t as u64);
                let mut clients: Vec<FrameClient> = (0..CLIENTS / THREADS)
                    .map(|_| FrameClient::connect(addr, ECHO_MAX_FRAME).expect("connect"))
                    .collect();
                let mut sent = vec![(0usize, 0usize); clients.len()];
                for round in 0..FRAMES {
                    for (c, slot) in clients.iter_mut().zip(&mut sent) {
                        let len = rng.upto(ECHO_MAX_FRAME - 4);
                        let at = rng.upto(pool.len() - len);
                        *slot = (at, len);
                        c.send(&pool[at..at + len]).expect("send");
                    }
                    for (i, (c, &(at, len))) in clients.iter_mut().zip(&sent).enumerate() {
                        let reply = c
                            .recv()
                            .unwrap_or_else(|e| panic!("client {t}/{i} round {round}: {e}"))
                            .unwrap_or_else(|| panic!("client {t}/{i} round {round}: closed"));
                        assert!(
                            reply == &pool[at..at + len],
                            "client {t}/{i} round {round}: echo differs ({} bytes sent, {} back)",
                            len,
                            reply.len()
                        );
                    }
                }
                let served = clients.len();
                drop(clients);
                served
            })
        })
        .collect();
    let served: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
    assert_eq!(served, CLIENTS);
    let events = wait_until(Duration::from_secs(10), || {
        server.events().closed(CloseReason::PeerClosed) == CLIENTS
    });
    assert!(
        events,
        "{}: closes seen {:?}",
        D::NAME,
        server.events().closes().len()
    );
    let elapsed = start.elapsed();
    let (_, stats) = server.shutdown(Duration::from_secs(2));
    assert_eq!(stats.accepted, CLIENTS as u64);
    assert_eq!(stats.frames_in, (CLIENTS * FRAMES) as u64);
    assert_eq!(stats.frames_out, (CLIENTS * FRAMES) as u64);
    assert_eq!(stats.bytes_in, stats.bytes_out);
    assert_eq!(stats.rejected_total(), 0);
    assert!(
        elapsed < Duration::from_secs(60),
        "{}: echo took {elapsed:?}",
        D::NAME
    );
}

/// Connects and proves the connection is served with one roundtrip.
fn served_client(addr: SocketAddr) -> FrameClient {
    let mut c = FrameClient::connect(addr, 1024).expect("connect");
    c.roundtrip(b"hello").expect("admitted client echoes");
    c
}

/// Checks that a connection is refused promptly: closed without a reply.
fn assert_refused(addr: SocketAddr) -> Duration {
    let mut c = FrameClient::connect(addr, 1024).expect("the kernel still accepts");
    // The frame may or may not reach the server before it closes.
    let _ = c.send(b"let me in");
    c.expect_closed(Duration::from_secs(2))
        .expect("refused connection is closed")
}

/// One connection over `max_connections` is closed at once and counted;
/// the admitted ones keep working; a freed slot admits again.
pub fn max_connections_refused<D: TestDriver>() {
    let mut cfg = config(1024);
    cfg.max_connections = 3;
    let mut server = D::start_echo(cfg);
    let addr = server.addr();
    let mut admitted: Vec<_> = (0..3).map(|_| served_client(addr)).collect();
    let took = assert_refused(addr);
    assert!(
        took < Duration::from_secs(1),
        "{}: refusal took {took:?}",
        D::NAME
    );
    assert!(wait_until(Duration::from_secs(2), || server
        .events()
        .rejects()
        == [RejectReason::MaxConnections]));
    assert_eq!(server.stats().rejected(RejectReason::MaxConnections), 1);
    for c in &mut admitted {
        c.roundtrip(b"still here")
            .expect("admitted clients keep working");
    }
    drop(admitted.pop());
    assert!(wait_until(Duration::from_secs(2), || server.stats().open() == 2));
    served_client(addr)
        .roundtrip(b"after a slot freed")
        .unwrap();
    let (_, stats) = server.shutdown(Duration::from_secs(2));
    assert_eq!(stats.rejected_total(), 1);
}

/// One connection over `max_connections_per_ip` is closed at once and
/// counted as `MaxPerIp`; the others keep working.
pub fn max_connections_per_ip_refused<D: TestDriver>() {
    let mut cfg = config(1024);
    cfg.max_connections_per_ip = Some(2);
    let mut server = D::start_echo(cfg);
    let addr = server.addr();
    let mut admitted: Vec<_> = (0..2).map(|_| served_client(addr)).collect();
    let took = assert_refused(addr);
    assert!(
        took < Duration::from_secs(1),
        "{}: refusal took {took:?}",
        D::NAME
    );
    assert!(wait_until(Duration::from_secs(2), || server
        .events()
        .rejects()
        == [RejectReason::MaxPerIp]));
    for c in &mut admitted {
        c.roundtrip(b"still here").unwrap();
    }
    let (_, stats) = server.shutdown(Duration::from_secs(2));
    assert_eq!(stats.rejected(RejectReason::MaxPerIp), 1);
    assert_eq!(stats.accepted, 2);
}

/// An oversized frame closes its connection with `FrameTooLarge`; a client
/// pipelining frames at the same time keeps every byte.
pub fn oversize_closes_only_that_connection<D: TestDriver>() {
    const MAX: usize = 1024;
    let mut server = D::start_echo(config(MAX));
    let addr = server.addr();
    let steady = thread::spawn(move || {
        let mut c = FrameClient::connect(addr, MAX).unwrap();
        let mut rng = Rng::new(7);
        for _ in 0..20 {
            let frames: Vec<Vec<u8>> = (0..20)
                .map(|_| {
                    let len = rng.upto(MAX - 4);
                    rng.bytes(len)
                })
                .collect();
            for f in &frames {
                c.send(f).unwrap();
            }
            for f in &frames {
                assert_eq!(c.recv().unwrap().expect("open"), &f[..]);
            }
        }
    });
    let mut bad = served_client(addr);
    // A header announcing a frame over the maximum.
    bad.send_raw(&(2 * MAX as u32).to_be_bytes()).unwrap();
    bad.send_raw(&[0; 100]).unwrap();
    bad.expect_closed(Duration::from_secs(2))
        .expect("oversize closes");
    steady.join().expect("the other client keeps every byte");
    assert!(wait_until(Duration::from_secs(2), || {
        server.events().closed(CloseReason::FrameTooLarge) == 1
            && server.events().closed(CloseReason::PeerClosed) == 1
    }));
    let (_, stats) = server.shutdown(Duration::from_secs(2));
    assert_eq!(stats.closed(CloseReason::FrameTooLarge), 1);
}

/// A client that says nothing is closed by the idle timeout.
pub fn idle_timeout_closes_silent_client<D: TestDriver>() {
    let mut cfg = config(1024);
    cfg.limits = Limits::default().idle_timeout(Some(Duration::from_millis(300)));
    let server = D::start_echo(cfg);
    let mut c = served_client(server.addr());
    let took = c
        .expect_closed(Duration::from_secs(3))
        .expect("idle client closed");
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_millis(1500),
        "{}: closed after {took:?}",
        D::NAME
    );
    assert!(wait_until(Duration::from_secs(2), || server
        .events()
        .closes()
        == [CloseReason::IdleTimeout]));
}

/// A client trickling one byte every 100 ms is closed by the read timeout
/// (300 ms) although it is never idle.
pub fn slow_loris_closed_by_read_timeout<D: TestDriver>() {
    let mut cfg = config(1024);
    cfg.limits = Limits::default()
        .idle_timeout(Some(Duration::from_secs(5)))
        .read_timeout(Some(Duration::from_millis(300)));
    let server = D::start_echo(cfg);
    let mut c = served_client(server.addr());
    let mut writer = c.stream().try_clone().unwrap();
    let trickle = thread::spawn(move || {
        let mut frame = 100u32.to_be_bytes().to_vec();
        frame.resize(104, b'x');
        let start = Instant::now();
        for b in frame {
            if writer.write_all(&[b]).is_err() || start.elapsed() > Duration::from_secs(5) {
                break;
            }
            thread::sleep(Duration::from_millis(100));
        }
        start.elapsed()
    });
    let took = c
        .expect_closed(Duration::from_secs(5))
        .expect("slow client closed");
    assert!(
        took < Duration::from_millis(1500),
        "{}: closed after {took:?}",
        D::NAME
    );
    let _ = c.stream().shutdown(Shutdown::Both);
    assert!(trickle.join().unwrap() < Duration::from_secs(5));
    assert!(wait_until(Duration::from_secs(2), || server
        .events()
        .closes()
        == [CloseReason::ReadTimeout]));
}

/// Shutdown while a handler is busy: frames the server already has are
/// answered, then every connection closes with `Local`, `serve` returns
/// within the deadline, and nothing more is accepted.
pub fn graceful_shutdown_delivers_in_flight_replies<D: TestDriver>() {
    let mut server = D::start_echo(config(1024));
    let addr = server.addr();
    let mut busy = served_client(addr);
    let mut idle = served_client(addr);
    let mut rng = Rng::new(3);
    let frames: Vec<Vec<u8>> = (0..20)
        .map(|i| {
            let mut f = rng.bytes(100 + i);
            f[0] = 0;
            f
        })
        .collect();
    busy.send(&sleep_frame(300)).unwrap();
    for f in &frames {
        busy.send(f).unwrap();
    }
    // Let the frames reach the server (loopback: at once) and the handler
    // start sleeping; the counters move only after it returns.
    thread::sleep(Duration::from_millis(100));
    let deadline = Duration::from_secs(3);
    let (took, stats) = server.shutdown(deadline);
    assert!(
        took < deadline,
        "{}: serve returned after {took:?}",
        D::NAME
    );
    // Every in-flight reply arrived, then the end of stream.
    assert_eq!(
        busy.recv().unwrap().expect("sleep reply"),
        &sleep_frame(300)[..]
    );
    for f in &frames {
        assert_eq!(busy.recv().unwrap().expect("in-flight reply"), &f[..]);
    }
    busy.expect_closed(Duration::from_secs(1))
        .expect("busy closed");
    idle.expect_closed(Duration::from_secs(1))
        .expect("idle closed");
    assert_eq!(
        server.events().closed(CloseReason::Local),
        2,
        "{:?}",
        server.events().closes()
    );
    assert_eq!(stats.frames_out, 2 + 1 + frames.len() as u64);
    assert_eq!(stats.open(), 0);
    // Nothing listens any more.
    let refused =
        TcpStream::connect_timeout(&addr, Duration::from_millis(500)).and_then(|mut s| {
            s.set_read_timeout(Some(Duration::from_secs(1)))?;
            let mut b = [0u8; 1];
            s.read(&mut b)
        });
    assert!(
        matches!(refused, Err(_) | Ok(0)),
        "{}: still accepting",
        D::NAME
    );
}

/// Shutdown whose deadline passes while a handler is still busy: `serve`
/// returns within the deadline anyway, the peer's socket is closed, and the
/// connection is reported closed with `Local`.
pub fn shutdown_deadline_closes_busy_connections<D: TestDriver>() {
    let mut server = D::start_echo(config(1024));
    let mut busy = served_client(server.addr());
    busy.send(&sleep_frame(1500)).unwrap();
    // Let the handler start sleeping (the counters move only after it
    // returns).
    thread::sleep(Duration::from_millis(100));
    let deadline = Duration::from_millis(500);
    let (took, _) = server.shutdown(deadline);
    // Well before the handler's 1500 ms are over; the slack over the
    // deadline absorbs scheduling on a loaded 2-core machine.
    assert!(
        took <= deadline + Duration::from_millis(400),
        "{}: serve returned after {took:?}",
        D::NAME
    );
    // The peer sees its socket closed (the busy handler's reply, if it
    // comes out before, is allowed).
    let closed = (0..2).any(|_| busy.expect_closed(Duration::from_secs(2)).is_ok());
    assert!(closed, "{}: socket left open", D::NAME);
    assert!(
        wait_until(Duration::from_secs(3), || server.events().closes()
            == [CloseReason::Local]),
        "{:?}",
        server.events().closes()
    );
}

/// Two servers with `reuse_port` listen on one port and the kernel spreads
/// connections over both; without it, a second bind to the port fails.
pub fn reuse_port_shares_a_port<D: TestDriver>() {
    let mut cfg = config(1024);
    cfg.reuse_port = true;
    let any = SocketAddr::from(([127, 0, 0, 1], 0));
    let Some(first) = D::start_echo_on(any, cfg) else {
        eprintln!("{}: cannot choose its address; skipped", D::NAME);
        return;
    };
    let mut first = first.expect("first bind with reuse_port");
    let addr = first.addr();
    let mut second = D::start_echo_on(addr, cfg)
        .expect("chooses its address")
        .expect("second bind to the same port with reuse_port");
    assert_eq!(second.addr(), addr);
    let mut plain = cfg;
    plain.reuse_port = false;
    let e = D::start_echo_on(addr, plain)
        .expect("chooses its address")
        .expect_err("a bind without reuse_port to a port in use fails");
    assert_eq!(e.kind(), io::ErrorKind::AddrInUse, "{}: {e}", D::NAME);
    // Each connect lands on one of the two by a hash of its address and
    // port: 200 connects all missing one server has odds of 2^-199.
    let mut connects = 0;
    while connects < 200 && (first.stats().accepted == 0 || second.stats().accepted == 0) {
        served_client(addr);
        // Counted as accepted before its first reply.
        connects += 1;
    }
    let (a, b) = (first.stats().accepted, second.stats().accepted);
    assert!(a > 0 && b > 0, "{}: {a} and {b} accepted", D::NAME);
    assert_eq!(a + b, connects, "{}", D::NAME);
    first.shutdown(Duration::from_secs(2));
    second.shutdown(Duration::from_secs(2));
}
