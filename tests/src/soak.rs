//! The soak test: thousands of connections for a minute, well-behaved and
//! misbehaving clients joining and leaving, every echoed byte verified.
//!
//! Ignored by default; run it in release, for each driver:
//!
//! ```text
//! cargo test --release -p fastnet-tests --test std -- --ignored soak --nocapture
//! cargo test --release -p fastnet-tests --test smol -- --ignored soak --nocapture
//! ```
//!
//! `FASTNET_SOAK_SECS` (default 60) and `FASTNET_SOAK_CONNS` (default 2000)
//! set the duration and the number of connections kept open.
//!
//! The clients are non-blocking sockets multiplexed with mio over two
//! threads. Most are well-behaved: each keeps one to four random-size
//! frames (windows into a shared random block, mostly small, some up to
//! the maximum) in flight, checks every reply against what it sent, and
//! leaves after a random number of frames, to be replaced by a new one. About
//! one in twenty-five misbehaves, and each kind must end the way the server's
//! limits say:
//!
//! | kind | what it does | expected close |
//! |---|---|---|
//! | oversize | one good frame, then a header announcing 4× the maximum | `FrameTooLarge` |
//! | slow-loris | one good frame, then a frame one byte every 500 ms | `ReadTimeout` (2 s) |
//! | reset | one good frame, then half a frame and a reset (SO_LINGER 0) | `Reset` or `PeerClosed` |
//! | mute | pushes frames and never reads, until the server stops taking them (or 16 MB) | `IdleTimeout` (5 s), or `ReadTimeout` |
//!
//! A mute client can also end by the read timeout: once its receive buffer
//! is full, TCP flow control can stall its own sending too, in the middle
//! of a frame whose start the server has already read (having answered
//! everything before it); to the server that is a frame not finished in
//! time.
//!
//! At the end: no mismatch and no well-behaved client ever cut off; the
//! server's close counts per reason equal what the clients did, accepted =
//! closed once all are gone, the handler saw the same; RSS sampled every
//! half second did not grow after the warm-up (the first third of the run,
//! at least 10 s) by more than 20 % or 16 MiB, whichever is more; a new
//! client is served.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use fastnet_proto::codec::{AnyDecoder, CodecSpec, Decoded, Decoder};
use fastnet_proto::connection::{CloseReason, Limits};
use fastnet_proto::server::{ServerConfig, StatsSnapshot, CLOSE_REASONS};
use mio::net::TcpStream;
use mio::{Events as MioEvents, Interest, Poll, Token};
use socket2::SockRef;

use crate::{codec, rss_bytes, wait_until, FrameClient, Rng, TestDriver};

/// Largest frame on the wire.
const MAX_FRAME: usize = 8 * 1024;
const IDLE_TIMEOUT: Duration = Duration::from_secs(5);
const READ_TIMEOUT: Duration = Duration::from_secs(2);
const LORIS_INTERVAL: Duration = Duration::from_millis(500);
/// Most a mute client pushes; it stops earlier once the server stops
/// taking its bytes for [`MUTE_BLOCKED`].
const MUTE_PUSH: usize = 16 << 20;
const MUTE_BLOCKED: Duration = Duration::from_secs(1);
/// Mute clients open at once, per client thread (each can pin megabytes of
/// kernel socket buffers).
const MUTE_MAX: usize = 4;
const CLIENT_THREADS: usize = 2;

/// Duration and size of a soak run, from `FASTNET_SOAK_SECS` and
/// `FASTNET_SOAK_CONNS`.
#[derive(Clone, Copy, Debug)]
pub struct SoakParams {
    /// How long new clients keep joining.
    pub duration: Duration,
    /// Connections kept open.
    pub conns: usize,
}

impl SoakParams {
    /// From the environment, 60 s and 2000 connections by default.
    pub fn from_env() -> Self {
        let var = |name: &str, default: u64| {
            std::env::var(name)
                .ok()
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(default)
        };
        SoakParams {
            duration: Duration::from_secs(var("FASTNET_SOAK_SECS", 60)),
            conns: var("FASTNET_SOAK_CONNS", 2000) as usize,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Good,
    Oversize,
    Loris,
    Reset,
    Mute,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Well-behaved traffic (for misbehavers: the first good frame).
    Normal,
    /// Misbehaving.
    Offence,
}

/// What the clients of one thread did and saw.
#[derive(Debug, Default)]
struct Tally {
    connects: u64,
    good_done: u64,
    good_frames: u64,
    good_bytes: u64,
    oversize: u64,
    loris: u64,
    resets: u64,
    mutes: u64,
    failures: u64,
    first_failures: Vec<String>,
}

impl Tally {
    fn fail(&mut self, what: String) {
        self.failures += 1;
        if self.first_failures.len() < 20 {
            self.first_failures.push(what);
        }
    }

    fn add(&mut self, o: Tally) {
        self.connects += o.connects;
        self.good_done += o.good_done;
        self.good_frames += o.good_frames;
        self.good_bytes += o.good_bytes;
        self.oversize += o.oversize;
        self.loris += o.loris;
        self.resets += o.resets;
        self.mutes += o.mutes;
        self.failures += o.failures;
        for f in o.first_failures {
            if self.first_failures.len() < 20 {
                self.first_failures.push(f);
            }
        }
    }
}

/// How a client ended.
enum End {
    Good,
    Oversize,
    Loris,
    Reset,
    Mute,
    Failed(String),
}

struct Client {
    id: u64,
    kind: Kind,
    phase: Phase,
    stream: TcpStream,
    rng: Rng,
    out: Vec<u8>,
    out_at: usize,
    rx: Vec<u8>,
    rx_start: usize,
    rx_end: usize,
    decoder: AnyDecoder,
    /// Frames sent and not yet echoed: windows `(at, len)` of the pool.
    pending: VecDeque<(usize, usize)>,
    to_send: u64,
    depth: usize,
    frames: u64,
    bytes: u64,
    /// Slow-loris: the bytes still to trickle, and when the next is due.
    trickle: Vec<u8>,
    next_tick: Instant,
    /// Mute: bytes pushed so far, when the last ones went out, and whether
    /// it has started reading to see the server's close.
    pushed: usize,
    last_push: Instant,
    draining: bool,
    /// Fail if not ended by then (reset by progress for good clients).
    deadline: Instant,
    hup: bool,
}

/// What every client shares: the random block payloads are cut from.
struct Shared {
    pool: Vec<u8>,
    spec: CodecSpec,
    max_payload: usize,
}

impl Client {
    fn new(id: u64, kind: Kind, stream: TcpStream, seed: u64, sh: &Shared) -> Client {
        let mut rng = Rng::new(seed);
        let (to_send, depth) = match kind {
            Kind::Good => (20 + rng.upto(400) as u64, 1 + rng.upto(3)),
            Kind::Mute => (0, 1),
            _ => (1, 1),
        };
        let now = Instant::now();
        Client {
            id,
            kind,
            phase: if kind == Kind::Mute {
                Phase::Offence
            } else {
                Phase::Normal
            },
            stream,
            rng,
            out: Vec::with_capacity(4 * MAX_FRAME),
            out_at: 0,
            rx: vec![0; 2 * MAX_FRAME],
            rx_start: 0,
            rx_end: 0,
            decoder: sh.spec.decoder().expect("codec"),
            pending: VecDeque::new(),
            to_send,
            depth,
            frames: 0,
            bytes: 0,
            trickle: Vec::new(),
            next_tick: now,
            pushed: 0,
            last_push: now,
            draining: false,
            deadline: now + Duration::from_secs(20),
            hup: false,
        }
    }

    fn payload_len(&mut self, max: usize) -> usize {
        match self.rng.upto(99) {
            0..=69 => self.rng.upto(64),
            70..=94 => 65 + self.rng.upto(1024 - 65),
            _ => 1025 + self.rng.upto(max - 1025),
        }
    }

    fn queue_frame(&mut self, sh: &Shared) {
        let len = self.payload_len(sh.max_payload);
        let at = self.rng.upto(sh.pool.len() - len);
        self.out.extend_from_slice(&(len as u32).to_be_bytes());
        self.out.extend_from_slice(&sh.pool[at..at + len]);
        self.pending.push_back((at, len));
        self.to_send -= 1;
    }

    /// Writes what is queued until the socket would block.
    fn flush(&mut self) -> io::Result<()> {
        while self.out_at < self.out.len() {
            match self.stream.write(&self.out[self.out_at..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.out_at += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.out.clear();
        self.out_at = 0;
        Ok(())
    }

    /// Reads and checks replies until the socket would block. `Ok(true)`
    /// when the server closed the connection.
    fn read(&mut self, sh: &Shared) -> Result<bool, String> {
        loop {
            // Frames already buffered first.
            loop {
                match self
                    .decoder
                    .decode(&mut self.rx[self.rx_start..self.rx_end])
                {
                    Ok(Decoded::Frame(f)) => {
                        let payload = &self.rx[self.rx_start + f.start..self.rx_start + f.end];
                        let Some((at, len)) = self.pending.pop_front() else {
                            return Err(format!("an unexpected frame of {} bytes", payload.len()));
                        };
                        if payload != &sh.pool[at..at + len] {
                            return Err(format!(
                                "echo mismatch at frame {}: sent {len} bytes, got {} different",
                                self.frames,
                                payload.len()
                            ));
                        }
                        self.frames += 1;
                        self.bytes += len as u64;
                        self.rx_start += f.consumed;
                        self.deadline = Instant::now() + Duration::from_secs(20);
                    }
                    Ok(Decoded::Skip(n)) => self.rx_start += n,
                    Ok(Decoded::NeedMore { .. }) => break,
                    Err(e) => return Err(format!("undecodable reply: {e}")),
                }
            }
            if self.rx_start == self.rx_end {
                self.rx_start = 0;
                self.rx_end = 0;
            } else if self.rx_end == self.rx.len() {
                self.rx.copy_within(self.rx_start..self.rx_end, 0);
                self.rx_end -= self.rx_start;
                self.rx_start = 0;
            }
            match self.stream.read(&mut self.rx[self.rx_end..]) {
                Ok(0) => return Ok(true),
                Ok(n) => self.rx_end += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Ok(true),
            }
        }
    }

    /// Moves the client on after an event or a tick. `Some` when it ended.
    fn drive(&mut self, sh: &Shared, stopping: bool, now: Instant) -> Option<End> {
        if self.kind == Kind::Mute {
            if !self.draining && self.mute_done_waiting(now) {
                self.draining = true;
            }
            return self.drive_mute(sh, now);
        }
        let closed = match self.read(sh) {
            Ok(closed) => closed,
            Err(e) => return Some(End::Failed(format!("{:?} #{}: {e}", self.kind, self.id))),
        };
        if closed {
            return Some(match (self.kind, self.phase) {
                (Kind::Oversize, Phase::Offence) => End::Oversize,
                (Kind::Loris, Phase::Offence) => End::Loris,
                _ => End::Failed(format!(
                    "{:?} #{} cut off by the server ({:?}, {} replies outstanding, {} frames echoed)",
                    self.kind,
                    self.id,
                    self.phase,
                    self.pending.len(),
                    self.frames
                )),
            });
        }
        if stopping && self.kind == Kind::Good {
            self.to_send = 0;
        }
        while self.phase == Phase::Normal && self.pending.len() < self.depth && self.to_send > 0 {
            self.queue_frame(sh);
        }
        if self.phase == Phase::Normal && self.pending.is_empty() && self.to_send == 0 {
            match self.kind {
                // Every reply is in: a clean close (FIN, nothing unread).
                Kind::Good => return Some(End::Good),
                Kind::Oversize => {
                    self.phase = Phase::Offence;
                    self.out
                        .extend_from_slice(&(4 * MAX_FRAME as u32).to_be_bytes());
                    self.out.extend_from_slice(&[1; 16]);
                }
                Kind::Loris => {
                    self.phase = Phase::Offence;
                    self.trickle = 100u32.to_be_bytes().to_vec();
                    self.trickle.resize(104, b'l');
                    self.trickle.reverse();
                    self.next_tick = now;
                }
                Kind::Reset => {
                    self.phase = Phase::Offence;
                    self.out.extend_from_slice(&1000u32.to_be_bytes());
                    self.out.extend_from_slice(&[2; 300]);
                }
                Kind::Mute => unreachable!(),
            }
        }
        if self.kind == Kind::Loris && self.phase == Phase::Offence && now >= self.next_tick {
            if let Some(b) = self.trickle.pop() {
                self.out.push(b);
            }
            self.next_tick = now + LORIS_INTERVAL;
        }
        if let Err(e) = self.flush() {
            if self.phase == Phase::Offence && self.kind != Kind::Reset {
                // The server closed it while we were still writing.
                return Some(match self.kind {
                    Kind::Oversize => End::Oversize,
                    _ => End::Loris,
                });
            }
            return Some(End::Failed(format!(
                "{:?} #{}: write: {e}",
                self.kind, self.id
            )));
        }
        if self.kind == Kind::Reset && self.phase == Phase::Offence && self.out.is_empty() {
            let _ = SockRef::from(&self.stream).set_linger(Some(Duration::ZERO));
            return Some(End::Reset);
        }
        None
    }

    /// A mute client pushes frames without ever reading, until the server
    /// stops taking them (backpressure) or it pushed [`MUTE_PUSH`]; then it
    /// sits. The server must close it by the idle timeout. A reset shows at
    /// once; a FIN cannot reach a receiver whose window is full of unread
    /// replies, so once the idle timeout is well past the client reads, and
    /// the end of stream must follow.
    fn drive_mute(&mut self, sh: &Shared, now: Instant) -> Option<End> {
        if self.hup {
            return Some(End::Mute);
        }
        if self.draining {
            let mut buf = [0u8; 64 * 1024];
            loop {
                match self.stream.read(&mut buf) {
                    Ok(0) => return Some(End::Mute),
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return None,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => return Some(End::Mute),
                }
            }
        }
        loop {
            let before = self.out_at;
            let had = self.out.len();
            if self.flush().is_err() {
                // Closed by the server while pushing.
                return Some(End::Mute);
            }
            if self.out.is_empty() && had > 0 || self.out_at > before {
                self.last_push = now;
            }
            if !self.out.is_empty() || self.pushed >= MUTE_PUSH {
                return None;
            }
            let len = sh.max_payload;
            let at = self.rng.upto(sh.pool.len() - len);
            self.out.extend_from_slice(&(len as u32).to_be_bytes());
            self.out.extend_from_slice(&sh.pool[at..at + len]);
            self.pushed += 4 + len;
        }
    }

    /// Whether a mute client has sat still long enough that the server must
    /// have closed it.
    fn mute_done_waiting(&self, now: Instant) -> bool {
        let sitting = self.pushed >= MUTE_PUSH || now.duration_since(self.last_push) > MUTE_BLOCKED;
        sitting && now.duration_since(self.last_push) > IDLE_TIMEOUT + Duration::from_secs(2)
    }

    /// Whether the client overran its deadline (checked once a second).
    fn expired(&self, now: Instant) -> bool {
        let limit = match self.kind {
            Kind::Mute => self.last_push + IDLE_TIMEOUT + Duration::from_secs(10),
            _ => self.deadline,
        };
        now > limit
    }

    /// Why the client is stuck, looking at its socket one last time.
    fn stuck(&mut self) -> End {
        let mut unread = 0usize;
        let mut buf = [0u8; 16 * 1024];
        let socket = loop {
            match self.stream.read(&mut buf) {
                Ok(0) => break "closed (end of stream)".to_string(),
                Ok(n) => unread += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break "open".to_string(),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break format!("closed ({e})"),
            }
        };
        End::Failed(format!(
            "{:?} #{} stuck in {:?} ({} replies outstanding, {} frames echoed, {} bytes pushed, {} unsent, hang-up seen {}, draining {}); its socket: {socket}, {unread} bytes unread",
            self.kind,
            self.id,
            self.phase,
            self.pending.len(),
            self.frames,
            self.pushed,
            self.out.len() - self.out_at,
            self.hup,
            self.draining,
        ))
    }

    /// A slow-loris client whose next byte is due.
    fn wants_tick(&self, now: Instant) -> bool {
        match self.kind {
            Kind::Loris => self.phase == Phase::Offence && now >= self.next_tick,
            Kind::Mute => !self.draining && self.mute_done_waiting(now),
            _ => false,
        }
    }
}

fn client_thread(
    addr: SocketAddr,
    target: usize,
    seed: u64,
    sh: Arc<Shared>,
    stop: Arc<AtomicBool>,
    frames: Arc<AtomicU64>,
) -> Tally {
    let mut poll = Poll::new().expect("poll");
    let mut events = MioEvents::with_capacity(1024);
    let mut slots: Vec<Option<Client>> = Vec::new();
    let mut free: Vec<usize> = Vec::new();
    let mut live = 0usize;
    let mut mutes = 0usize;
    let mut rng = Rng::new(seed);
    let mut tally = Tally::default();
    let mut next_id = seed << 32;
    let mut last_tick = Instant::now();
    let mut last_deadlines = Instant::now();
    let hard_end = || Instant::now() + IDLE_TIMEOUT + READ_TIMEOUT + Duration::from_secs(20);
    let mut give_up: Option<Instant> = None;
    loop {
        let stopping = stop.load(Ordering::Relaxed);
        if stopping && give_up.is_none() {
            give_up = Some(hard_end());
        }
        // Keep the population up, a bounded number of connects per turn.
        if !stopping {
            for _ in 0..64 {
                if live >= target {
                    break;
                }
                let kind = match rng.upto(99) {
                    0 => Kind::Oversize,
                    1 => Kind::Loris,
                    2 => Kind::Reset,
                    3 if mutes < MUTE_MAX => Kind::Mute,
                    _ => Kind::Good,
                };
                let stream = match TcpStream::connect(addr) {
                    Ok(s) => s,
                    Err(e) => {
                        tally.fail(format!("connect: {e}"));
                        break;
                    }
                };
                let _ = stream.set_nodelay(true);
                let slot = free.pop().unwrap_or_else(|| {
                    slots.push(None);
                    slots.len() - 1
                });
                let mut c = Client::new(next_id, kind, stream, rng.next_u64(), &sh);
                next_id += 1;
                poll.registry()
                    .register(
                        &mut c.stream,
                        Token(slot),
                        Interest::READABLE | Interest::WRITABLE,
                    )
                    .expect("register");
                slots[slot] = Some(c);
                live += 1;
                tally.connects += 1;
                if kind == Kind::Mute {
                    mutes += 1;
                }
            }
        }
        if stopping && live == 0 {
            break;
        }
        if give_up.is_some_and(|t| Instant::now() > t) {
            for c in slots.iter().flatten() {
                tally.fail(format!(
                    "{:?} #{} still open at the end ({:?}, {} replies outstanding)",
                    c.kind,
                    c.id,
                    c.phase,
                    c.pending.len()
                ));
            }
            break;
        }
        if let Err(e) = poll.poll(&mut events, Some(Duration::from_millis(20))) {
            if e.kind() != io::ErrorKind::Interrupted {
                panic!("poll: {e}");
            }
        }
        let now = Instant::now();
        let mut touched: Vec<(usize, bool)> = Vec::new();
        for ev in events.iter() {
            let slot = ev.token().0;
            if let Some(c) = slots.get_mut(slot).and_then(Option::as_mut) {
                if ev.is_error() || ev.is_read_closed() || ev.is_write_closed() {
                    c.hup = true;
                }
                touched.push((slot, false));
            }
        }
        // Slow-loris ticks every 50 ms, deadlines every second.
        if now.duration_since(last_tick) >= Duration::from_millis(50) {
            let deadlines = now.duration_since(last_deadlines) >= Duration::from_secs(1);
            if deadlines {
                last_deadlines = now;
            }
            last_tick = now;
            for (i, c) in slots.iter().enumerate() {
                if let Some(c) = c {
                    if c.wants_tick(now) {
                        touched.push((i, false));
                    } else if deadlines && c.expired(now) {
                        touched.push((i, true));
                    }
                }
            }
        }
        for (slot, expired) in touched {
            let Some(c) = slots[slot].as_mut() else {
                continue;
            };
            let end = if expired {
                Some(c.stuck())
            } else {
                c.drive(&sh, stopping, now)
            };
            let Some(end) = end else {
                continue;
            };
            let mut c = slots[slot].take().expect("live client");
            let _ = poll.registry().deregister(&mut c.stream);
            live -= 1;
            free.push(slot);
            if c.kind == Kind::Mute {
                mutes -= 1;
            }
            match end {
                End::Good => {
                    tally.good_done += 1;
                    tally.good_frames += c.frames;
                    tally.good_bytes += c.bytes;
                    frames.fetch_add(c.frames, Ordering::Relaxed);
                }
                End::Oversize => tally.oversize += 1,
                End::Loris => tally.loris += 1,
                End::Reset => tally.resets += 1,
                End::Mute => tally.mutes += 1,
                End::Failed(why) => tally.fail(why),
            }
            // Dropping the stream closes it: FIN, or RST for a reset client
            // (SO_LINGER 0) and for one with unread replies (mute).
        }
    }
    tally
}

/// Runs the soak against `D` with `params`; panics on any failure. Prints
/// its figures.
pub fn soak_with<D: TestDriver>(params: SoakParams) {
    let spec = codec(MAX_FRAME);
    let mut cfg = ServerConfig::new(spec);
    cfg.max_connections = params.conns + 1000;
    cfg.tx_buffer = 2 * MAX_FRAME;
    cfg.limits = Limits::default()
        .idle_timeout(Some(IDLE_TIMEOUT))
        .read_timeout(Some(READ_TIMEOUT));
    let mut server = D::start_echo(cfg);
    let addr = server.addr();
    let mut pool = Rng::new(0x50a4).bytes(1 << 20);
    // No payload may ask the echo handler to sleep.
    for b in pool.iter_mut().filter(|b| **b == 0xff) {
        *b = 0xfe;
    }
    let shared = Arc::new(Shared {
        pool,
        spec,
        max_payload: MAX_FRAME - 4,
    });
    let stop = Arc::new(AtomicBool::new(false));
    let frames = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    eprintln!(
        "soak {}: {} connections for {:?} ({} client threads)",
        D::NAME,
        params.conns,
        params.duration,
        CLIENT_THREADS
    );
    let threads: Vec<_> = (0..CLIENT_THREADS)
        .map(|t| {
            let (sh, stop, frames) = (shared.clone(), stop.clone(), frames.clone());
            let target =
                params.conns / CLIENT_THREADS + usize::from(t < params.conns % CLIENT_THREADS);
            thread::spawn(move || client_thread(addr, target, 1 + t as u64, sh, stop, frames))
        })
        .collect();
    // RSS every half second; the warm-up (worker threads, buffer pools,
    // allocator arenas filling up) is the first third, at least 10 s.
    let warmup = (params.duration / 3).max(Duration::from_secs(10));
    let mut rss_warm: Option<u64> = None;
    let mut rss_peak_after = 0u64;
    let mut rss_samples = Vec::new();
    let mut last_report = start;
    while start.elapsed() < params.duration {
        thread::sleep(Duration::from_millis(500));
        let rss = rss_bytes().unwrap_or(0);
        rss_samples.push(rss);
        if start.elapsed() >= warmup {
            match rss_warm {
                None => rss_warm = Some(rss),
                Some(_) => rss_peak_after = rss_peak_after.max(rss),
            }
        }
        if last_report.elapsed() >= Duration::from_secs(5) {
            last_report = Instant::now();
            let s = server.stats();
            eprintln!(
                "  {:>4}s open={} accepted={} frames verified={} rss={} MiB",
                start.elapsed().as_secs(),
                s.open(),
                s.accepted,
                frames.load(Ordering::Relaxed),
                rss >> 20
            );
        }
    }
    stop.store(true, Ordering::SeqCst);
    let mut tally = Tally::default();
    for t in threads {
        tally.add(t.join().expect("client thread panicked"));
    }
    let ran = start.elapsed();
    // Every client is gone: the server must say so.
    let settled = wait_until(Duration::from_secs(10), || {
        let s = server.stats();
        s.open() == 0 && s.accepted == s.closed_total()
    });
    // A new client is still served.
    let mut c = FrameClient::connect(addr, MAX_FRAME).expect("connect after the soak");
    for len in [0, 1, 100, MAX_FRAME - 4] {
        c.roundtrip(&vec![b's'; len])
            .expect("served after the soak");
    }
    drop(c);
    assert!(wait_until(Duration::from_secs(5), || server.stats().open() == 0));
    let (_, stats) = server.shutdown(Duration::from_secs(5));
    let events = server.events().closes();
    report::<D>(&tally, &stats, ran, rss_warm, rss_peak_after, &rss_samples);

    // Verdicts.
    assert_eq!(tally.failures, 0, "failures: {:#?}", tally.first_failures);
    assert!(settled, "server still counts open connections: {stats}");
    assert!(tally.good_done > 0 && tally.good_frames > 0);
    let control = 1;
    assert_eq!(stats.rejected_total(), 0, "{stats}");
    assert_eq!(stats.accepted, tally.connects + control, "{stats}");
    assert_eq!(stats.accepted, stats.closed_total(), "{stats}");
    assert_eq!(
        stats.closed(CloseReason::FrameTooLarge),
        tally.oversize,
        "{stats}"
    );
    // A mute client is closed by the idle timeout, or by the read timeout
    // when TCP flow control stalled it in the middle of a frame (see the
    // module docs); a slow-loris only by the read timeout.
    assert_eq!(
        stats.closed(CloseReason::ReadTimeout) + stats.closed(CloseReason::IdleTimeout),
        tally.loris + tally.mutes,
        "{stats}"
    );
    assert!(
        stats.closed(CloseReason::ReadTimeout) >= tally.loris,
        "{stats}"
    );
    assert_eq!(
        stats.closed(CloseReason::PeerClosed) + stats.closed(CloseReason::Reset),
        tally.good_done + tally.resets + control,
        "{stats}"
    );
    assert!(stats.closed(CloseReason::Reset) <= tally.resets, "{stats}");
    for r in [CloseReason::ByteLimit, CloseReason::Local] {
        assert_eq!(stats.closed(r), 0, "{stats}");
    }
    assert_eq!(
        stats.closed(CloseReason::Protocol(fastnet_proto::Error::VarintOverflow)),
        0,
        "{stats}"
    );
    assert_eq!(stats.frames_in, stats.frames_out, "{stats}");
    assert!(stats.frames_out >= tally.good_frames, "{stats}");
    // The handler saw what the counters say.
    assert_eq!(events.len() as u64, stats.accepted);
    for r in CLOSE_REASONS {
        let seen = events.iter().filter(|e| e.name() == r.name()).count() as u64;
        assert_eq!(seen, stats.closed(r), "{}: handler vs counters", r.name());
    }
    if let Some(warm) = rss_warm.filter(|w| *w > 0) {
        let bound = warm + (warm / 5).max(16 << 20);
        assert!(
            rss_peak_after <= bound,
            "RSS grew after the warm-up: {} MiB at the end of it, peak {} MiB after",
            warm >> 20,
            rss_peak_after >> 20
        );
    }
}

fn report<D: TestDriver>(
    tally: &Tally,
    stats: &StatsSnapshot,
    ran: Duration,
    rss_warm: Option<u64>,
    rss_peak_after: u64,
    samples: &[u64],
) {
    let secs = ran.as_secs_f64();
    eprintln!("soak {} done in {:.1}s", D::NAME, secs);
    eprintln!(
        "  clients: {} connections; well-behaved finished {} ({} frames, {} MiB verified, {:.0} frames/s); oversize {}, slow-loris {}, resets {}, mute {}; failures {}",
        tally.connects,
        tally.good_done,
        tally.good_frames,
        tally.good_bytes >> 20,
        tally.good_frames as f64 / secs,
        tally.oversize,
        tally.loris,
        tally.resets,
        tally.mutes,
        tally.failures
    );
    eprintln!("  server: {stats}");
    let min = samples
        .iter()
        .copied()
        .filter(|s| *s > 0)
        .min()
        .unwrap_or(0);
    let max = samples.iter().copied().max().unwrap_or(0);
    eprintln!(
        "  rss: min {} MiB, max {} MiB, at end of warm-up {} MiB, peak after warm-up {} MiB",
        min >> 20,
        max >> 20,
        rss_warm.unwrap_or(0) >> 20,
        rss_peak_after >> 20
    );
}

/// The soak with [`SoakParams::from_env`].
pub fn soak<D: TestDriver>() {
    soak_with::<D>(SoakParams::from_env());
}
