//! The soak test: thousands of connections for a minute, well-behaved and
//! misbehaving clients joining and leaving, server pushes flowing to some of
//! them, TLS clients on a second server, every byte verified.
//!
//! Ignored by default; run it in release, for each driver, one soak at a
//! time (fastnet-smol has one per executor layout, and RSS is the
//! process's):
//!
//! ```text
//! cargo test --release -p fastnet-tests --all-features --test std -- --ignored soak --nocapture
//! cargo test --release -p fastnet-tests --all-features --test smol -- --ignored soak --test-threads=1 --nocapture
//! ```
//!
//! `FASTNET_SOAK_SECS` (default 60) and `FASTNET_SOAK_CONNS` (default 2000)
//! set the duration and the number of connections kept open. Without
//! feature `tls` (or with a driver whose [`TestDriver::start_echo`] has no
//! TLS counterpart) the TLS side is left out and the report says so. The
//! `soak_smoke` cases run the same mix for a few seconds with 50
//! connections and every timer scaled down ([`SoakParams::smoke`]).
//!
//! The clients are non-blocking sockets multiplexed with mio over two
//! threads. Most are well-behaved: each keeps one to four random-size
//! frames (windows into a shared random block, mostly small, some up to
//! the maximum) in flight, checks every reply against what it sent, and
//! leaves after a random number of frames, to be replaced by a new one. About
//! one in twenty-five misbehaves, and each kind must end the way the server's
//! limits say (times at the default idle timeout of 5 s; the others scale
//! with it):
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
//! About one in twelve asks to be pushed to: its first frame makes the echo
//! handler record a handle to its connection, and a pusher thread sends
//! through every recorded handle once every 20 ms while the soak runs. A
//! push carries the connection's id, a sequence number and a window of the
//! shared block both sides derive from them, so the client checks each one
//! whole, in order and with no gap (a refused push is sent again under the
//! same number), interleaved with its echoes. It leaves by half-closing
//! and reading to the end of stream, so every push the server took either
//! reaches it or is counted undelivered. One in a hundred (two per thread
//! at once) stalls first: it reads nothing until its receive queue has not
//! grown for half the idle timeout, while the pusher sends it frames of
//! the largest size, 64 per period until one is refused (enough to fill
//! the server's socket buffers, megabytes on loopback), six after; its
//! pushes must come back `Full` at once, never block the pusher (every
//! send under 500 ms), and it then reads everything and leaves like the
//! others (`PeerClosed`: it stalls for less than the idle timeout).
//!
//! With TLS, a second server serves the same echo over TLS to blocking
//! clients on their own threads (one per 20 connections, 3 to 64), with a
//! write-stall timeout of three fifths of the idle timeout and a handshake
//! timeout of two fifths (at least 2 s). Each thread runs one client after
//! another: mostly echo clients (rustls over a std socket, 20 to 220
//! frames pipelined one to four deep, each reply verified, then
//! close_notify and the end of stream). A fifth of them are push clients:
//! their first frame asks for a handle, a pusher of the TLS server's own
//! pushes to them as above, and they check every push among the replies
//! and, after their close_notify, up to the end of stream, so the same
//! accounting holds over TLS. One in fifty of each:
//!
//! | TLS kind | what it does | expected close |
//! |---|---|---|
//! | handshake stall | half a ClientHello, then nothing | `Tls(HandshakeTimeout)` |
//! | mute | a handshake, then frames without ever reading | `WriteStall`, `IdleTimeout` or `ReadTimeout` |
//!
//! The first clients of every thread (mio and TLS) go through every kind
//! once, so even a short run has them all.
//!
//! At the end: no mismatch and no well-behaved client ever cut off; the
//! servers' close counts per reason equal what the clients did, accepted =
//! closed once all are gone, the handlers saw the same; the pushes the
//! servers took equal those delivered plus those counted undelivered, some
//! were refused if a client stalled, no send took 500 ms, and frames out =
//! frames in + pushes taken − pushes dropped; RSS sampled every half
//! second did not grow after the warm-up by more than 20 % or 16 MiB,
//! whichever is more; a new client is served by each server.
//!
//! The warm-up is the first third of the run, at least 10 s; with TLS,
//! the first half. The TLS side starts late (each thread's first clients
//! are a stalled handshake and a mute one, so echo traffic begins after
//! some 12 s), and the process's RSS, its 64 client threads' included,
//! then keeps rising while the allocator settles: at 2000 connections
//! with fastnet-smol it rose 94 → 118 MiB between 20 s and 60 s, then
//! 117 → 137 MiB over the next two minutes, slower and slower (the rise of
//! a leak would keep pace with the connections, some 230 TLS ones a
//! second throughout).

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
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

mod pusher;
#[cfg(feature = "tls")]
mod tls;

use pusher::{PushTally, PUSH_TAG};

/// Largest frame on the wire.
const MAX_FRAME: usize = 8 * 1024;
/// Most a mute client pushes; it stops earlier once the server stops
/// taking its bytes for [`Timers::mute_blocked`].
const MUTE_PUSH: usize = 16 << 20;
/// Mute clients open at once, per client thread (each can pin megabytes of
/// kernel socket buffers).
const MUTE_MAX: usize = 4;
/// Stalling push clients open at once, per client thread (the same).
const STALL_MAX: usize = 2;
const CLIENT_THREADS: usize = 2;
/// Where a client's pending list holds its handle frame instead of a
/// window of the pool.
const HANDLE_AT: usize = usize::MAX;

/// Duration and size of a soak run, from `FASTNET_SOAK_SECS` and
/// `FASTNET_SOAK_CONNS`.
#[derive(Clone, Copy, Debug)]
pub struct SoakParams {
    /// How long new clients keep joining.
    pub duration: Duration,
    /// Connections kept open.
    pub conns: usize,
    /// The servers' idle timeout; every other timeout and client timer
    /// scales with it.
    pub idle_timeout: Duration,
}

impl SoakParams {
    /// From the environment, 60 s and 2000 connections by default, with
    /// an idle timeout of 5 s.
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
            idle_timeout: Duration::from_secs(5),
        }
    }

    /// A short run with every client kind: 3 s, 50 connections, an idle
    /// timeout of 1.5 s; done in well under ten seconds.
    pub fn smoke() -> Self {
        SoakParams {
            duration: Duration::from_secs(3),
            conns: 50,
            idle_timeout: Duration::from_millis(1500),
        }
    }
}

/// The servers' timeouts and the clients' timing, scaled from the idle
/// timeout (at 5 s: read 2 s, slow-loris byte every 500 ms).
#[derive(Clone, Copy, Debug)]
struct Timers {
    idle: Duration,
    read: Duration,
    /// A slow-loris client's interval between bytes.
    loris: Duration,
    /// A mute client sits once the server took none of its bytes this long.
    mute_blocked: Duration,
    /// How long past the idle timeout a mute client waits before it reads
    /// to see the server's close.
    settle: Duration,
    /// A stalling push client reads again once its receive queue has not
    /// grown this long: under the idle timeout, so the server never closes
    /// it for that.
    push_stall: Duration,
    /// The TLS server's handshake and write-stall timeouts.
    #[cfg_attr(not(feature = "tls"), allow(dead_code))]
    handshake: Duration,
    #[cfg_attr(not(feature = "tls"), allow(dead_code))]
    write_stall: Duration,
}

impl Timers {
    fn new(idle: Duration) -> Timers {
        Timers {
            idle,
            read: idle * 2 / 5,
            loris: idle / 10,
            mute_blocked: idle / 5,
            settle: idle * 2 / 5,
            push_stall: idle / 2,
            // A handshake on a loaded machine in a debug build must not
            // time out.
            handshake: (idle * 2 / 5).max(Duration::from_secs(2)),
            write_stall: idle * 3 / 5,
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
    /// Asks for pushes and reads them with its echoes.
    Push,
    /// Asks for pushes, stalls, then reads them.
    PushStall,
}

/// The first clients of every thread: each kind once.
const FIRST_KINDS: [Kind; 6] = [
    Kind::Push,
    Kind::PushStall,
    Kind::Oversize,
    Kind::Loris,
    Kind::Reset,
    Kind::Mute,
];

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
    /// Push clients done, of which stalling ones, and the pushes they
    /// received.
    push_done: u64,
    push_stalls: u64,
    pushes: u64,
    failures: Failures,
}

/// Failures counted, the first few kept to show.
#[derive(Debug, Default)]
struct Failures {
    count: u64,
    first: Vec<String>,
}

impl Failures {
    const KEPT: usize = 20;

    fn fail(&mut self, what: String) {
        self.count += 1;
        if self.first.len() < Self::KEPT {
            self.first.push(what);
        }
    }

    fn add(&mut self, o: Failures) {
        self.count += o.count;
        let room = Self::KEPT.saturating_sub(self.first.len());
        self.first.extend(o.first.into_iter().take(room));
    }
}

impl Tally {
    fn fail(&mut self, what: String) {
        self.failures.fail(what);
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
        self.push_done += o.push_done;
        self.push_stalls += o.push_stalls;
        self.pushes += o.pushes;
        self.failures.add(o.failures);
    }
}

/// How a client ended.
enum End {
    Good,
    Oversize,
    Loris,
    Reset,
    Mute,
    /// A push client read to the end of stream after its half-close.
    Pushed,
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
    /// Frames sent and not yet echoed: windows `(at, len)` of the pool, or
    /// `(HANDLE_AT, len)` for the handle frame.
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
    /// Push clients: the frame that asked for a handle, the next push
    /// expected, pushes received, whether it half-closed.
    handle_frame: Vec<u8>,
    push_next: u64,
    half_closed: bool,
    /// A stalling push client: still stalling, the bytes in its receive
    /// queue at the last look and when they last grew, and a buffer to
    /// look with.
    stalling: bool,
    rx_queued: usize,
    last_growth: Instant,
    peek: Vec<u8>,
    /// Fail if not ended by then (reset by progress for good clients).
    deadline: Instant,
    hup: bool,
}

/// What every client shares: the random block payloads are cut from.
struct Shared {
    pool: Vec<u8>,
    spec: CodecSpec,
    max_payload: usize,
    timers: Timers,
}

/// A payload length: mostly small, some up to `max`.
fn payload_len(rng: &mut Rng, max: usize) -> usize {
    match rng.upto(99) {
        0..=69 => rng.upto(64),
        70..=94 => 65 + rng.upto(1024 - 65),
        _ => 1025 + rng.upto(max - 1025),
    }
}

impl Client {
    fn new(id: u64, kind: Kind, stream: TcpStream, seed: u64, sh: &Shared) -> Client {
        let mut rng = Rng::new(seed);
        let (to_send, depth) = match kind {
            Kind::Good | Kind::Push | Kind::PushStall => {
                (20 + rng.upto(400) as u64, 1 + rng.upto(3))
            }
            Kind::Mute => (0, 1),
            _ => (1, 1),
        };
        let now = Instant::now();
        let mut c = Client {
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
            handle_frame: Vec::new(),
            push_next: 0,
            half_closed: false,
            stalling: kind == Kind::PushStall,
            rx_queued: 0,
            last_growth: now,
            peek: Vec::new(),
            deadline: now + Duration::from_secs(20),
            hup: false,
        };
        if matches!(kind, Kind::Push | Kind::PushStall) {
            c.handle_frame = pusher::handle_frame(id, kind == Kind::PushStall);
            c.out
                .extend_from_slice(&(c.handle_frame.len() as u32).to_be_bytes());
            c.out.extend_from_slice(&c.handle_frame);
            c.pending.push_back((HANDLE_AT, c.handle_frame.len()));
        }
        if kind == Kind::PushStall {
            c.peek = vec![0; 256 * 1024];
        }
        c
    }

    fn queue_frame(&mut self, sh: &Shared) {
        let len = payload_len(&mut self.rng, sh.max_payload);
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

    /// Checks one frame from the server: a push, or the echo of the oldest
    /// frame pending.
    fn check_frame(&mut self, payload: &[u8], sh: &Shared) -> Result<(), String> {
        if payload.starts_with(PUSH_TAG) {
            if self.handle_frame.is_empty() {
                return Err("a push to a client that asked for none".into());
            }
            let stall = self.kind == Kind::PushStall;
            pusher::check(payload, self.id, self.push_next, stall, sh)?;
            self.push_next += 1;
            return Ok(());
        }
        let Some((at, len)) = self.pending.pop_front() else {
            return Err(format!("an unexpected frame of {} bytes", payload.len()));
        };
        let sent = if at == HANDLE_AT {
            &self.handle_frame[..]
        } else {
            &sh.pool[at..at + len]
        };
        if payload != sent {
            return Err(format!(
                "echo mismatch at frame {}: sent {len} bytes, got {} different",
                self.frames,
                payload.len()
            ));
        }
        self.frames += 1;
        self.bytes += len as u64;
        self.deadline = Instant::now() + Duration::from_secs(20);
        Ok(())
    }

    /// Reads and checks replies until the socket would block. `Ok(true)`
    /// when the server closed the connection.
    fn read(&mut self, sh: &Shared) -> Result<bool, String> {
        let mut rx = std::mem::take(&mut self.rx);
        let r = self.read_into(&mut rx, sh);
        self.rx = rx;
        r
    }

    fn read_into(&mut self, rx: &mut [u8], sh: &Shared) -> Result<bool, String> {
        loop {
            // Frames already buffered first.
            loop {
                match self.decoder.decode(&mut rx[self.rx_start..self.rx_end]) {
                    Ok(Decoded::Frame(f)) => {
                        let payload = &rx[self.rx_start + f.start..self.rx_start + f.end];
                        self.check_frame(payload, sh)?;
                        self.rx_start += f.consumed;
                    }
                    Ok(Decoded::Skip(n)) => self.rx_start += n,
                    Ok(Decoded::NeedMore { .. }) => break,
                    Err(e) => return Err(format!("undecodable reply: {e}")),
                }
            }
            if self.rx_start == self.rx_end {
                self.rx_start = 0;
                self.rx_end = 0;
            } else if self.rx_end == rx.len() {
                rx.copy_within(self.rx_start..self.rx_end, 0);
                self.rx_end -= self.rx_start;
                self.rx_start = 0;
            }
            match self.stream.read(&mut rx[self.rx_end..]) {
                Ok(0) => return Ok(true),
                Ok(n) => self.rx_end += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Ok(true),
            }
        }
    }

    /// A stalling push client, before it reads anything: whether its
    /// receive queue has stopped growing for long enough. While the queue
    /// grows the server is writing, so its idle timer cannot run out before
    /// the client reads again.
    fn stall_over(&mut self, sh: &Shared, now: Instant) -> bool {
        let queued = match self.stream.peek(&mut self.peek) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
            // Closed: the reads that follow will say how.
            Err(_) => return true,
        };
        if queued != self.rx_queued {
            self.rx_queued = queued;
            self.last_growth = now;
        }
        queued > 0 && now.duration_since(self.last_growth) >= sh.timers.push_stall
    }

    /// Moves the client on after an event or a tick. `Some` when it ended.
    fn drive(&mut self, sh: &Shared, stopping: bool, now: Instant) -> Option<End> {
        if self.kind == Kind::Mute {
            if !self.draining && self.mute_done_waiting(sh, now) {
                self.draining = true;
            }
            return self.drive_mute(sh, now);
        }
        if self.stalling {
            if !self.stall_over(sh, now) {
                // Only the handle frame goes out while stalling.
                return match self.flush() {
                    Ok(()) => None,
                    Err(e) => Some(End::Failed(format!(
                        "{:?} #{}: write: {e}",
                        self.kind, self.id
                    ))),
                };
            }
            self.stalling = false;
        }
        let closed = match self.read(sh) {
            Ok(closed) => closed,
            Err(e) => return Some(End::Failed(format!("{:?} #{}: {e}", self.kind, self.id))),
        };
        if closed {
            return Some(match (self.kind, self.phase) {
                (Kind::Oversize, Phase::Offence) => End::Oversize,
                (Kind::Loris, Phase::Offence) => End::Loris,
                (Kind::Push | Kind::PushStall, _) if self.half_closed => End::Pushed,
                _ => End::Failed(format!(
                    "{:?} #{} cut off by the server ({:?}, {} replies outstanding, {} frames echoed, {} pushes)",
                    self.kind,
                    self.id,
                    self.phase,
                    self.pending.len(),
                    self.frames,
                    self.push_next
                )),
            });
        }
        if stopping && matches!(self.kind, Kind::Good | Kind::Push | Kind::PushStall) {
            self.to_send = 0;
        }
        while self.phase == Phase::Normal && self.pending.len() < self.depth && self.to_send > 0 {
            self.queue_frame(sh);
        }
        if self.phase == Phase::Normal && self.pending.is_empty() && self.to_send == 0 {
            match self.kind {
                // Every reply is in: a clean close (FIN, nothing unread).
                Kind::Good => return Some(End::Good),
                // Every reply is in; pushes keep coming until the server
                // has seen the end of stream and drained what it queued.
                Kind::Push | Kind::PushStall if !self.half_closed => {
                    if let Err(e) = self.stream.shutdown(Shutdown::Write) {
                        return Some(End::Failed(format!(
                            "{:?} #{}: half-close: {e}",
                            self.kind, self.id
                        )));
                    }
                    self.half_closed = true;
                    self.deadline = now + Duration::from_secs(20);
                }
                Kind::Push | Kind::PushStall => {}
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
            self.next_tick = now + sh.timers.loris;
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
    fn mute_done_waiting(&self, sh: &Shared, now: Instant) -> bool {
        let t = sh.timers;
        let sitting =
            self.pushed >= MUTE_PUSH || now.duration_since(self.last_push) > t.mute_blocked;
        sitting && now.duration_since(self.last_push) > t.idle + t.settle
    }

    /// Whether the client overran its deadline (checked once a second).
    fn expired(&self, sh: &Shared, now: Instant) -> bool {
        let limit = match self.kind {
            Kind::Mute => self.last_push + sh.timers.idle + Duration::from_secs(10),
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
            "{:?} #{} stuck in {:?} ({} replies outstanding, {} frames echoed, {} bytes pushed, {} pushes received, {} unsent, hang-up seen {}, draining {}, stalling {}, half-closed {}); its socket: {socket}, {unread} bytes unread",
            self.kind,
            self.id,
            self.phase,
            self.pending.len(),
            self.frames,
            self.pushed,
            self.push_next,
            self.out.len() - self.out_at,
            self.hup,
            self.draining,
            self.stalling,
            self.half_closed,
        ))
    }

    /// A slow-loris client whose next byte is due, a mute one done
    /// waiting, a stalling one looking at its receive queue.
    fn wants_tick(&self, sh: &Shared, now: Instant) -> bool {
        match self.kind {
            Kind::Loris => self.phase == Phase::Offence && now >= self.next_tick,
            Kind::Mute => !self.draining && self.mute_done_waiting(sh, now),
            Kind::PushStall => self.stalling,
            _ => false,
        }
    }
}

/// Connects with a receive buffer of 4 KiB, set before the handshake so
/// the window stays small: a client that stops reading is soon full.
/// Blocking connect (on loopback, at once), then non-blocking.
fn connect_small_window(addr: SocketAddr) -> io::Result<TcpStream> {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    socket.set_recv_buffer_size(4096)?;
    socket.connect(&addr.into())?;
    socket.set_nonblocking(true)?;
    Ok(TcpStream::from_std(socket.into()))
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
    let mut stalls = 0usize;
    let mut rng = Rng::new(seed);
    let mut tally = Tally::default();
    let mut next_id = seed << 32;
    let mut last_tick = Instant::now();
    let mut last_deadlines = Instant::now();
    let hard_end = || Instant::now() + sh.timers.idle + sh.timers.read + Duration::from_secs(20);
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
                let kind = match FIRST_KINDS.get(tally.connects as usize) {
                    Some(&kind) => kind,
                    None => match rng.upto(99) {
                        0 => Kind::Oversize,
                        1 => Kind::Loris,
                        2 => Kind::Reset,
                        3 if mutes < MUTE_MAX => Kind::Mute,
                        4 if stalls < STALL_MAX => Kind::PushStall,
                        5..=12 => Kind::Push,
                        _ => Kind::Good,
                    },
                };
                let connected = if kind == Kind::PushStall {
                    connect_small_window(addr)
                } else {
                    TcpStream::connect(addr)
                };
                let stream = match connected {
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
                match kind {
                    Kind::Mute => mutes += 1,
                    Kind::PushStall => stalls += 1,
                    _ => {}
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
                    if c.wants_tick(&sh, now) {
                        touched.push((i, false));
                    } else if deadlines && c.expired(&sh, now) {
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
            match c.kind {
                Kind::Mute => mutes -= 1,
                Kind::PushStall => stalls -= 1,
                _ => {}
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
                End::Pushed => {
                    tally.push_done += 1;
                    tally.push_stalls += u64::from(c.kind == Kind::PushStall);
                    tally.pushes += c.push_next;
                    tally.good_frames += c.frames;
                    tally.good_bytes += c.bytes;
                    frames.fetch_add(c.frames, Ordering::Relaxed);
                }
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
    let timers = Timers::new(params.idle_timeout);
    let spec = codec(MAX_FRAME);
    let mut cfg = ServerConfig::new(spec);
    cfg.max_connections = params.conns + 1000;
    cfg.tx_buffer = 2 * MAX_FRAME;
    cfg.limits = Limits::default()
        .idle_timeout(Some(timers.idle))
        .read_timeout(Some(timers.read));
    let mut server = D::start_echo(cfg);
    let addr = server.addr();
    let mut pool = Rng::new(0x50a4).bytes(1 << 20);
    // No payload may ask the echo handler to sleep, or for a handle, or
    // pass for a push.
    for b in pool.iter_mut().filter(|b| **b == 0xff) {
        *b = 0xfe;
    }
    let shared = Arc::new(Shared {
        pool,
        spec,
        max_payload: MAX_FRAME - 4,
        timers,
    });
    let stop = Arc::new(AtomicBool::new(false));
    let frames = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    #[cfg(feature = "tls")]
    let mut tls = tls::start::<D>(&params, shared.clone(), stop.clone());
    #[cfg(not(feature = "tls"))]
    let mut tls: Option<NoTls> = None;
    eprintln!(
        "soak {}: {} connections for {:?} ({} client threads, idle timeout {:?}); TLS: {}",
        D::NAME,
        params.conns,
        params.duration,
        CLIENT_THREADS,
        timers.idle,
        match &tls {
            Some(t) => t.describe(),
            None if cfg!(feature = "tls") => "not offered by the driver".to_string(),
            None => "feature `tls` off".to_string(),
        }
    );
    let push_stop = Arc::new(AtomicBool::new(false));
    let pushing = {
        let (events, sh, stop) = (server.shared_events(), shared.clone(), push_stop.clone());
        thread::spawn(move || pusher::pusher(events, sh, stop))
    };
    let threads: Vec<_> = (0..CLIENT_THREADS)
        .map(|t| {
            let (sh, stop, frames) = (shared.clone(), stop.clone(), frames.clone());
            let target =
                params.conns / CLIENT_THREADS + usize::from(t < params.conns % CLIENT_THREADS);
            thread::spawn(move || client_thread(addr, target, 1 + t as u64, sh, stop, frames))
        })
        .collect();
    // RSS every half second; the warm-up (worker threads, buffer pools,
    // allocator arenas filling up) is the first third, at least 10 s, or
    // with TLS the first half (see the module docs).
    let warmup_share = if tls.is_some() { 2 } else { 3 };
    let warmup = (params.duration / warmup_share).max(Duration::from_secs(10));
    let mut rss_warm: Option<u64> = None;
    let mut rss_peak_after = 0u64;
    let mut rss_samples = Vec::new();
    let mut last_report = start;
    while start.elapsed() < params.duration {
        thread::sleep(Duration::from_millis(500).min(params.duration));
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
                "  {:>4}s open={} accepted={} frames verified={} pushes dropped={} rss={} MiB{}",
                start.elapsed().as_secs(),
                s.open(),
                s.accepted,
                frames.load(Ordering::Relaxed),
                s.pushes_dropped,
                rss >> 20,
                tls.as_ref().map(|t| t.progress()).unwrap_or_default()
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
    // Every connection is closed: each handle must now refuse with
    // `Closed`, having counted what it dropped.
    push_stop.store(true, Ordering::SeqCst);
    let pushes = pushing.join().expect("pusher panicked");
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
    let tls = tls.take().map(|t| t.finish());
    report::<D>(
        &tally,
        &pushes,
        &stats,
        ran,
        rss_warm,
        rss_peak_after,
        &rss_samples,
    );
    if let Some(t) = &tls {
        t.report();
    }

    // Verdicts.
    assert_eq!(
        tally.failures.count, 0,
        "failures: {:#?}",
        tally.failures.first
    );
    assert!(pushes.failures.is_empty(), "pusher: {:#?}", pushes.failures);
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
        tally.good_done + tally.push_done + tally.resets + control,
        "{stats}"
    );
    assert!(stats.closed(CloseReason::Reset) <= tally.resets, "{stats}");
    for r in [
        CloseReason::ByteLimit,
        CloseReason::Local,
        CloseReason::WriteStall,
    ] {
        assert_eq!(stats.closed(r), 0, "{stats}");
    }
    assert_eq!(
        stats.closed(CloseReason::Protocol(fastnet_proto::Error::VarintOverflow)),
        0,
        "{stats}"
    );
    pushes.assert_accounted(&stats, tally.push_done, tally.pushes, tally.good_frames, "");
    if tally.push_stalls > 0 {
        assert!(
            pushes.refused > 0,
            "{} clients stalled and no push was refused",
            tally.push_stalls
        );
    }
    // The handler saw what the counters say.
    assert_eq!(events.len() as u64, stats.accepted);
    for r in CLOSE_REASONS {
        let seen = events.iter().filter(|e| e.name() == r.name()).count() as u64;
        assert_eq!(seen, stats.closed(r), "{}: handler vs counters", r.name());
    }
    if let Some(t) = &tls {
        t.verdicts();
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

/// Stands in for the TLS side without feature `tls`.
#[cfg(not(feature = "tls"))]
enum NoTls {}

#[cfg(not(feature = "tls"))]
impl NoTls {
    fn describe(&self) -> String {
        match *self {}
    }
    fn progress(&self) -> String {
        match *self {}
    }
    fn finish(self) -> NoTls {
        self
    }
    fn report(&self) {
        match *self {}
    }
    fn verdicts(&self) {
        match *self {}
    }
}

fn report<D: TestDriver>(
    tally: &Tally,
    pushes: &PushTally,
    stats: &StatsSnapshot,
    ran: Duration,
    rss_warm: Option<u64>,
    rss_peak_after: u64,
    samples: &[u64],
) {
    let secs = ran.as_secs_f64();
    eprintln!("soak {} done in {:.1}s", D::NAME, secs);
    eprintln!(
        "  clients: {} connections; well-behaved finished {} ({} frames, {} MiB verified, {:.0} frames/s); oversize {}, slow-loris {}, resets {}, mute {}; push clients {} (of which stalled {}); failures {}",
        tally.connects,
        tally.good_done,
        tally.good_frames,
        tally.good_bytes >> 20,
        tally.good_frames as f64 / secs,
        tally.oversize,
        tally.loris,
        tally.resets,
        tally.mutes,
        tally.push_done,
        tally.push_stalls,
        tally.failures.count
    );
    eprintln!(
        "  pushes: {} handles; sent {} ({:.0}/s), delivered and verified {}, refused (Full) {}, undelivered (dropped at close) {}; {} sends, slowest {:?}",
        pushes.handles,
        pushes.sent,
        pushes.sent as f64 / secs,
        tally.pushes,
        pushes.refused,
        pushes.undelivered,
        pushes.sends,
        pushes.slowest
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
