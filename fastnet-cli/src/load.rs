//! The load generator behind `fastnet bench`: many connections on a few
//! threads, each thread one mio event loop, every echoed payload verified.
//!
//! A connection keeps `pipeline` requests in flight. Payloads are windows
//! into a per-connection random block (request `n` starts at byte
//! `n % 251`), so consecutive requests differ, a reordered or corrupted
//! echo is caught by one slice comparison, and no bytes are generated on
//! the hot path.
//!
//! With TLS, each connection drives a rustls client session inside the same
//! loop (`read_tls` / `process_new_packets` / `write_tls` on readiness);
//! handshakes complete before the clock starts, and echoes are verified on
//! the decrypted bytes.

use std::collections::VecDeque;
use std::io::{self, IoSlice, Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use fastnet_proto::codec::{AnyDecoder, AnyEncoder, CodecSpec, Decoded, Decoder, Encoder};
use fastnet_proto::Buffer;
use fastnet_std::tls::{rustls, TlsConnector};
use hdrhistogram::Histogram;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

/// Distinct payload windows per connection; prime, so it does not line up
/// with sizes.
const WINDOWS: usize = 251;
/// How long to wait for replies still in flight once sending stops.
const DRAIN_GRACE: Duration = Duration::from_secs(2);
/// How long all connections may take to connect.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// What to run.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// Server address.
    pub addr: SocketAddr,
    /// Framing (the server must echo with the same framing).
    pub codec: CodecSpec,
    /// Connections.
    pub conns: usize,
    /// Payload bytes per request.
    pub size: usize,
    /// How long to send requests.
    pub duration: Duration,
    /// Requests in flight per connection.
    pub pipeline: usize,
    /// Event-loop threads.
    pub threads: usize,
    /// Speak TLS to the server.
    pub tls: Option<TlsConnector>,
}

/// What happened.
#[derive(Debug, Clone)]
pub struct LoadReport {
    /// Connections asked for.
    pub conns: usize,
    /// Payload bytes per request.
    pub size: usize,
    /// Measured period in seconds.
    pub duration_s: f64,
    /// Requests answered and verified.
    pub requests: u64,
    /// Payload bytes sent.
    pub bytes_out: u64,
    /// Payload bytes received and verified.
    pub bytes_in: u64,
    /// Round-trip latency in microseconds.
    pub latency_us: Histogram<u64>,
    /// Connections that could not be established.
    pub connect_errors: u64,
    /// Connections that failed with an I/O error or an unexpected close.
    pub io_errors: u64,
    /// Echoes that differed from the request.
    pub mismatches: u64,
    /// Whether the connections spoke TLS.
    pub tls: bool,
}

impl LoadReport {
    /// Requests per second.
    pub fn rps(&self) -> f64 {
        self.requests as f64 / self.duration_s.max(1e-9)
    }

    /// Megabytes (10^6) per second of payload, each way.
    pub fn mbps(&self) -> f64 {
        self.bytes_in as f64 / 1e6 / self.duration_s.max(1e-9)
    }

    /// Whether anything went wrong that must fail the run (see
    /// [`LoadReport::failures`]).
    pub fn failed(&self) -> bool {
        !self.failures().is_empty()
    }

    /// What went wrong, one sentence each; empty when the run passed. A run
    /// fails when a connection could not be established, an echo differed
    /// from its request, a connection was lost to an I/O error or an
    /// unexpected close, or not one request was answered.
    pub fn failures(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.connect_errors > 0 {
            out.push(format!(
                "connections that could not be established: {} of {}",
                self.connect_errors, self.conns
            ));
        }
        if self.mismatches > 0 {
            out.push(format!(
                "replies that were not the echo of their request: {}",
                self.mismatches
            ));
        }
        if self.io_errors > 0 {
            out.push(format!(
                "connections lost to an I/O error or an unexpected close: {}",
                self.io_errors
            ));
        }
        if self.requests == 0 {
            out.push("no request completed".to_string());
        }
        out
    }

    /// The report as the JSON object `fastnet bench --json` prints.
    pub fn to_json(&self) -> serde_json::Value {
        let q = |p: f64| self.latency_us.value_at_quantile(p);
        serde_json::json!({
            "conns": self.conns,
            "size": self.size,
            "duration_s": self.duration_s,
            "requests": self.requests,
            "rps": self.rps(),
            "mbps": self.mbps(),
            "latency_us": {
                "p50": q(0.50), "p90": q(0.90), "p99": q(0.99), "p999": q(0.999),
                "max": self.latency_us.max(),
            },
            "connect_errors": self.connect_errors,
            "io_errors": self.io_errors,
            "mismatches": self.mismatches,
            "tls": self.tls,
        })
    }

    /// The report as a small table.
    pub fn to_table(&self) -> String {
        let q = |p: f64| self.latency_us.value_at_quantile(p);
        let rows = [
            ("connections", self.conns.to_string()),
            ("TLS", if self.tls { "yes" } else { "no" }.to_string()),
            ("payload bytes", self.size.to_string()),
            ("duration", format!("{:.2} s", self.duration_s)),
            ("requests", self.requests.to_string()),
            ("requests/s", format!("{:.0}", self.rps())),
            ("MB/s each way", format!("{:.2}", self.mbps())),
            (
                "latency p50/p90/p99/p99.9/max",
                format!(
                    "{} / {} / {} / {} / {} µs",
                    q(0.5),
                    q(0.9),
                    q(0.99),
                    q(0.999),
                    self.latency_us.max()
                ),
            ),
            ("connect errors", self.connect_errors.to_string()),
            ("I/O errors", self.io_errors.to_string()),
            ("mismatches", self.mismatches.to_string()),
        ];
        let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        rows.iter()
            .map(|(k, v)| format!("{k:<width$}  {v}\n"))
            .collect()
    }
}

/// Why a run could not start.
#[derive(Debug)]
pub enum LoadError {
    /// A setting is unusable (message says which).
    Config(String),
    /// The machine refused (open-file limit, poll creation).
    Io(io::Error),
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LoadError::Config(m) => f.write_str(m),
            LoadError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for LoadError {}

impl From<io::Error> for LoadError {
    fn from(e: io::Error) -> Self {
        LoadError::Io(e)
    }
}

/// Live counters for a progress display.
#[derive(Debug, Default)]
pub struct Progress {
    /// Requests answered so far.
    pub requests: AtomicU64,
    /// Set once every connection is up and the clock runs.
    pub started: AtomicBool,
}

/// Raises the open-file limit so `conns` sockets (plus a server's, when it
/// runs in the same process) can be open; says clearly when it cannot.
pub fn ensure_fd_limit(conns: usize, in_process_server: bool) -> Result<(), LoadError> {
    let needed = (conns as u64) * if in_process_server { 2 } else { 1 } + 64;
    let got = rlimit::increase_nofile_limit(needed).map_err(LoadError::Io)?;
    if got < needed {
        return Err(LoadError::Config(format!(
            "cannot open {conns} connections: the open-file limit is {got} and cannot be raised to {needed} \
             (raise it with `ulimit -n`)"
        )));
    }
    Ok(())
}

/// Runs the load; blocks for about `duration` plus connect and drain time.
pub fn run(cfg: &LoadConfig, progress: &Arc<Progress>) -> Result<LoadReport, LoadError> {
    let encoder = cfg
        .codec
        .encoder()
        .map_err(|e| LoadError::Config(format!("codec cannot encode requests: {e}")))?;
    cfg.codec
        .decoder()
        .map_err(|e| LoadError::Config(format!("codec: {e}")))?;
    let probe = payload_block(0, cfg.size, &cfg.codec);
    encoder.encoded_len(&probe[..cfg.size]).map_err(|e| {
        LoadError::Config(format!("--size {} does not fit the codec: {e}", cfg.size))
    })?;
    if cfg.conns == 0 || cfg.pipeline == 0 || cfg.threads == 0 {
        return Err(LoadError::Config(
            "--conns, --pipeline and --threads must be at least 1".into(),
        ));
    }
    let threads = cfg.threads.min(cfg.conns);
    let barrier = Arc::new(Barrier::new(threads + 1));
    let mut handles = Vec::new();
    for t in 0..threads {
        let ids: Vec<usize> = (t..cfg.conns).step_by(threads).collect();
        let cfg = cfg.clone();
        let barrier = barrier.clone();
        let progress = progress.clone();
        handles.push(std::thread::spawn(move || {
            worker(&cfg, &ids, &barrier, &progress)
        }));
    }
    // Every thread has connected; start the clock for all at once.
    barrier.wait();
    progress.started.store(true, Ordering::Relaxed);
    let mut report = LoadReport {
        conns: cfg.conns,
        size: cfg.size,
        duration_s: cfg.duration.as_secs_f64(),
        requests: 0,
        bytes_out: 0,
        bytes_in: 0,
        latency_us: new_histogram(),
        connect_errors: 0,
        io_errors: 0,
        mismatches: 0,
        tls: cfg.tls.is_some(),
    };
    for h in handles {
        let part = h
            .join()
            .map_err(|_| LoadError::Config("a load thread panicked".into()))??;
        report.requests += part.requests;
        report.bytes_out += part.bytes_out;
        report.bytes_in += part.bytes_in;
        report.connect_errors += part.connect_errors;
        report.io_errors += part.io_errors;
        report.mismatches += part.mismatches;
        report
            .latency_us
            .add(&part.latency_us)
            .map_err(|e| LoadError::Config(e.to_string()))?;
    }
    Ok(report)
}

fn new_histogram() -> Histogram<u64> {
    // 1 µs .. 100 s at 3 significant digits; cannot fail with these bounds.
    Histogram::new_with_bounds(1, 100_000_000, 3).expect("valid histogram bounds")
}

/// A connection's random block: payload `n` is `block[n % WINDOWS..][..size]`.
///
/// For delimited codecs the bytes are printable ASCII that occurs in no
/// delimiter, so no payload can contain one.
fn payload_block(id: usize, size: usize, codec: &CodecSpec) -> Vec<u8> {
    let mut rng = fastrand::Rng::with_seed(id as u64);
    match codec {
        CodecSpec::Delimiter { delimiters, .. } => {
            let alphabet: Vec<u8> = (b'!'..=b'~')
                .filter(|b| !delimiters.iter().any(|d| d.contains(b)))
                .collect();
            (0..size + WINDOWS)
                .map(|_| alphabet[rng.usize(..alphabet.len())])
                .collect()
        }
        _ => std::iter::repeat_with(|| rng.u8(..))
            .take(size + WINDOWS)
            .collect(),
    }
}

struct Client {
    stream: TcpStream,
    /// The TLS session, when speaking TLS.
    tls: Option<Box<rustls::ClientConnection>>,
    /// TCP connected.
    connected: bool,
    /// Connected and, with TLS, done with the handshake.
    ready: bool,
    dead: bool,
    decoder: AnyDecoder,
    rx: Buffer<Box<[u8]>>,
    tx: Vec<u8>,
    tx_at: usize,
    block: Vec<u8>,
    sent: u64,
    received: u64,
    /// Raw codec: bytes of the current reply received so far.
    raw_at: usize,
    sent_at: VecDeque<Instant>,
    writable: bool,
}

impl Client {
    fn payload(&self, n: u64, size: usize) -> &[u8] {
        let start = (n % WINDOWS as u64) as usize;
        &self.block[start..start + size]
    }
}

fn worker(
    cfg: &LoadConfig,
    ids: &[usize],
    barrier: &Barrier,
    progress: &Progress,
) -> Result<LoadReport, LoadError> {
    let mut report = LoadReport {
        conns: ids.len(),
        size: cfg.size,
        duration_s: cfg.duration.as_secs_f64(),
        requests: 0,
        bytes_out: 0,
        bytes_in: 0,
        latency_us: new_histogram(),
        connect_errors: 0,
        io_errors: 0,
        mismatches: 0,
        tls: cfg.tls.is_some(),
    };
    let result = drive(cfg, ids, barrier, progress, &mut report);
    if let Err(e) = result {
        // Let the main thread go on; the error is reported by join.
        return Err(e.into());
    }
    Ok(report)
}

fn drive(
    cfg: &LoadConfig,
    ids: &[usize],
    barrier: &Barrier,
    progress: &Progress,
    report: &mut LoadReport,
) -> io::Result<()> {
    let encoder: AnyEncoder = cfg.codec.encoder().map_err(io::Error::other)?;
    let raw = matches!(cfg.codec, CodecSpec::Raw { .. });
    let rx_len = cfg
        .codec
        .max_frame()
        .max(cfg.size * cfg.pipeline)
        .max(16 * 1024);
    let mut poll = Poll::new()?;
    let mut clients: Vec<Client> = Vec::with_capacity(ids.len());
    for &id in ids {
        let stream = match TcpStream::connect(cfg.addr) {
            Ok(s) => s,
            Err(_) => {
                report.connect_errors += 1;
                continue;
            }
        };
        let tls = match &cfg.tls {
            Some(connector) => {
                let mut session = connector.session()?;
                // Every flush hands all queued requests to the session and
                // writes what the socket takes; the pipeline bounds it.
                session.set_buffer_limit(None);
                Some(Box::new(session))
            }
            None => None,
        };
        let mut client = Client {
            stream,
            tls,
            connected: false,
            ready: false,
            dead: false,
            decoder: cfg.codec.decoder().map_err(io::Error::other)?,
            rx: Buffer::new(vec![0u8; rx_len].into_boxed_slice()),
            tx: Vec::with_capacity((cfg.size + 32) * cfg.pipeline),
            tx_at: 0,
            block: payload_block(id, cfg.size, &cfg.codec),
            sent: 0,
            received: 0,
            raw_at: 0,
            sent_at: VecDeque::with_capacity(cfg.pipeline),
            writable: false,
        };
        let token = Token(clients.len());
        poll.registry().register(
            &mut client.stream,
            token,
            Interest::READABLE | Interest::WRITABLE,
        )?;
        clients.push(client);
    }
    let mut events = Events::with_capacity(1024);

    // Connect phase (TLS handshakes included).
    let deadline = Instant::now() + CONNECT_TIMEOUT;
    let mut pending = clients.len();
    while pending > 0 && Instant::now() < deadline {
        poll.poll(&mut events, Some(Duration::from_millis(100)))?;
        for ev in events.iter() {
            let c = &mut clients[ev.token().0];
            if c.ready || c.dead {
                continue;
            }
            if !c.connected {
                if ev.is_error() || matches!(c.stream.take_error(), Ok(Some(_)) | Err(_)) {
                    c.dead = true;
                    report.connect_errors += 1;
                    pending -= 1;
                    continue;
                }
                if !(ev.is_writable() && c.stream.peer_addr().is_ok()) {
                    continue;
                }
                c.connected = true;
                c.writable = true;
                let _ = c.stream.set_nodelay(true);
            }
            match handshake(c) {
                Ok(true) => {
                    c.ready = true;
                    pending -= 1;
                }
                Ok(false) => {}
                Err(_) => {
                    c.dead = true;
                    let _ = poll.registry().deregister(&mut c.stream);
                    report.connect_errors += 1;
                    pending -= 1;
                }
            }
        }
    }
    for c in clients.iter_mut().filter(|c| !c.ready && !c.dead) {
        c.dead = true;
        let _ = poll.registry().deregister(&mut c.stream);
        report.connect_errors += 1;
    }
    barrier.wait();

    // Measure phase, then drain. Only connections with events are touched,
    // so a loop turn costs O(events), not O(connections).
    let start = Instant::now();
    let stop_sending = start + cfg.duration;
    let mut last_progress = 0u64;
    for c in clients.iter_mut().filter(|c| !c.dead) {
        step(c, cfg, &encoder, true, &mut poll, report);
    }
    loop {
        let now = Instant::now();
        let sending = now < stop_sending;
        if !sending {
            let outstanding: u64 = clients
                .iter()
                .filter(|c| !c.dead)
                .map(|c| c.sent - c.received)
                .sum();
            if outstanding == 0 || now >= stop_sending + DRAIN_GRACE {
                break;
            }
        }
        let until = if sending {
            stop_sending
        } else {
            stop_sending + DRAIN_GRACE
        };
        let timeout = until
            .saturating_duration_since(now)
            .min(Duration::from_millis(50));
        poll.poll(&mut events, Some(timeout))?;
        let sending = Instant::now() < stop_sending;
        for ev in events.iter() {
            let c = &mut clients[ev.token().0];
            if c.dead {
                continue;
            }
            if ev.is_writable() {
                c.writable = true;
            }
            if ev.is_readable() || ev.is_read_closed() {
                if let Err(e) = receive(c, cfg, raw, report) {
                    kill(c, &e, &mut poll, report);
                    continue;
                }
            }
            step(c, cfg, &encoder, sending, &mut poll, report);
        }
        if report.requests - last_progress > 256 {
            progress
                .requests
                .fetch_add(report.requests - last_progress, Ordering::Relaxed);
            last_progress = report.requests;
        }
    }
    progress
        .requests
        .fetch_add(report.requests - last_progress, Ordering::Relaxed);
    report.duration_s = cfg.duration.as_secs_f64();
    Ok(())
}

/// Tops up a connection's requests (while sending) and writes what it can.
fn step(
    c: &mut Client,
    cfg: &LoadConfig,
    encoder: &AnyEncoder,
    sending: bool,
    poll: &mut Poll,
    report: &mut LoadReport,
) {
    if sending {
        fill(c, cfg, encoder);
    }
    if let Err(e) = flush(c, report) {
        kill(c, &e, poll, report);
    }
}

/// Stops using a connection; counted as an I/O error unless `why` is a
/// [`Mismatch`], which is counted where it is found.
fn kill(c: &mut Client, why: &io::Error, poll: &mut Poll, report: &mut LoadReport) {
    if !c.dead {
        c.dead = true;
        if !why.get_ref().is_some_and(|e| e.is::<Mismatch>()) {
            report.io_errors += 1;
        }
        let _ = poll.registry().deregister(&mut c.stream);
    }
}

/// A reply that is not the echo of its request: the error that ends its
/// connection, already counted in [`LoadReport::mismatches`].
#[derive(Debug)]
struct Mismatch(String);

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Mismatch {}

/// Counts a mismatch and returns the error that ends its connection.
fn mismatch(report: &mut LoadReport, what: impl Into<String>) -> io::Error {
    report.mismatches += 1;
    io::Error::other(Mismatch(what.into()))
}

/// Queues requests until `pipeline` are in flight.
fn fill(c: &mut Client, cfg: &LoadConfig, encoder: &AnyEncoder) {
    while c.sent - c.received < cfg.pipeline as u64 {
        let start = (c.sent % WINDOWS as u64) as usize;
        let payload = &c.block[start..start + cfg.size];
        if c.tx_at == c.tx.len() {
            c.tx.clear();
            c.tx_at = 0;
        }
        if encoder.encode_vec(payload, &mut c.tx).is_err() {
            // Checked before the run started.
            c.dead = true;
            break;
        }
        c.sent += 1;
        c.sent_at.push_back(Instant::now());
    }
}

/// Moves a TLS handshake on as far as the socket allows; whether it is
/// done (always, without TLS).
fn handshake(c: &mut Client) -> io::Result<bool> {
    let Some(tls) = c.tls.as_mut() else {
        return Ok(true);
    };
    write_tls(tls, &mut c.stream, &mut c.writable)?;
    loop {
        match tls.read_tls(&mut c.stream) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(_) => {
                tls.process_new_packets()
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    write_tls(tls, &mut c.stream, &mut c.writable)?;
    Ok(!tls.is_handshaking())
}

/// Writes the session's records while the socket takes them.
fn write_tls(
    tls: &mut rustls::ClientConnection,
    stream: &mut TcpStream,
    writable: &mut bool,
) -> io::Result<usize> {
    let mut total = 0;
    while *writable && tls.wants_write() {
        match tls.write_tls(stream) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => total += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => *writable = false,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(total)
}

fn flush(c: &mut Client, report: &mut LoadReport) -> io::Result<()> {
    if let Some(tls) = c.tls.as_mut() {
        if c.tx_at < c.tx.len() {
            // Encrypted now (no buffer limit), written as the socket allows.
            tls.writer().write_all(&c.tx[c.tx_at..])?;
            report.bytes_out += (c.tx.len() - c.tx_at) as u64;
            c.tx_at = c.tx.len();
        }
        write_tls(tls, &mut c.stream, &mut c.writable)?;
        return Ok(());
    }
    while c.writable && c.tx_at < c.tx.len() {
        match c.stream.write_vectored(&[IoSlice::new(&c.tx[c.tx_at..])]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                c.tx_at += n;
                report.bytes_out += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => c.writable = false,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn receive(c: &mut Client, cfg: &LoadConfig, raw: bool, report: &mut LoadReport) -> io::Result<()> {
    if c.tls.is_some() {
        return receive_tls(c, cfg, raw, report);
    }
    loop {
        let spare = c.rx.reserve(1).map_err(io::Error::other)?;
        match c.stream.read(spare) {
            Ok(0) => {
                return if c.received == c.sent {
                    Ok(())
                } else {
                    Err(io::ErrorKind::UnexpectedEof.into())
                };
            }
            Ok(n) => {
                c.rx.commit(n);
                if raw {
                    check_raw(c, cfg, report)?;
                } else {
                    check_frames(c, cfg, report)?;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// [`receive`] over TLS: reads records until the socket is drained,
/// decrypts them, and checks the plaintext as it comes.
fn receive_tls(
    c: &mut Client,
    cfg: &LoadConfig,
    raw: bool,
    report: &mut LoadReport,
) -> io::Result<()> {
    loop {
        let Some(tls) = c.tls.as_mut() else {
            return Ok(());
        };
        let eof = match tls.read_tls(&mut c.stream) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        tls.process_new_packets()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        // Take every decrypted byte, checking as the buffer fills.
        let mut closed = eof;
        loop {
            let Some(tls) = c.tls.as_mut() else {
                return Ok(());
            };
            let spare = c.rx.reserve(1).map_err(io::Error::other)?;
            match tls.reader().read(spare) {
                Ok(0) => {
                    closed = true;
                    break;
                }
                Ok(n) => c.rx.commit(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                    closed = true;
                    break;
                }
                Err(e) => return Err(e),
            }
            if raw {
                check_raw(c, cfg, report)?;
            } else {
                check_frames(c, cfg, report)?;
            }
        }
        if closed {
            return if c.received == c.sent {
                Ok(())
            } else {
                Err(io::ErrorKind::UnexpectedEof.into())
            };
        }
    }
}

fn complete(c: &mut Client, report: &mut LoadReport) {
    c.received += 1;
    report.requests += 1;
    if let Some(at) = c.sent_at.pop_front() {
        let us = at.elapsed().as_micros().clamp(1, 100_000_000) as u64;
        let _ = report.latency_us.record(us);
    }
}

fn check_frames(c: &mut Client, cfg: &LoadConfig, report: &mut LoadReport) -> io::Result<()> {
    loop {
        match c.decoder.decode(c.rx.filled_mut()) {
            Ok(Decoded::NeedMore { .. }) => return Ok(()),
            Ok(Decoded::Skip(n)) => c.rx.consume(n),
            Ok(Decoded::Frame(f)) => {
                if c.received >= c.sent {
                    return Err(mismatch(report, "reply without a request"));
                }
                let got = f.payload(c.rx.filled());
                if got != c.payload(c.received, cfg.size) {
                    return Err(mismatch(report, "echo differs from request"));
                }
                report.bytes_in += got.len() as u64;
                c.rx.consume(f.consumed);
                complete(c, report);
            }
            Err(e) => return Err(mismatch(report, e.to_string())),
        }
    }
}

fn check_raw(c: &mut Client, cfg: &LoadConfig, report: &mut LoadReport) -> io::Result<()> {
    while !c.rx.is_empty() {
        if c.received >= c.sent {
            return Err(mismatch(report, "bytes without a request"));
        }
        let want = &c.payload(c.received, cfg.size)[c.raw_at..];
        let n = want.len().min(c.rx.len());
        if c.rx.filled()[..n] != want[..n] {
            return Err(mismatch(report, "echo differs from request"));
        }
        c.rx.consume(n);
        report.bytes_in += n as u64;
        c.raw_at += n;
        if c.raw_at == cfg.size {
            c.raw_at = 0;
            complete(c, report);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(requests: u64) -> LoadReport {
        LoadReport {
            conns: 4,
            size: 8,
            duration_s: 1.0,
            requests,
            bytes_out: 0,
            bytes_in: 0,
            latency_us: new_histogram(),
            connect_errors: 0,
            io_errors: 0,
            mismatches: 0,
            tls: false,
        }
    }

    #[test]
    fn a_clean_run_passes() {
        assert!(report(10).failures().is_empty());
        assert!(!report(10).failed());
    }

    #[test]
    fn every_failure_is_named() {
        assert_eq!(report(0).failures(), ["no request completed"]);
        let mut r = report(10);
        r.connect_errors = 1;
        r.mismatches = 2;
        r.io_errors = 3;
        assert_eq!(
            r.failures(),
            [
                "connections that could not be established: 1 of 4",
                "replies that were not the echo of their request: 2",
                "connections lost to an I/O error or an unexpected close: 3",
            ]
        );
        assert!(r.failed());
    }
}
