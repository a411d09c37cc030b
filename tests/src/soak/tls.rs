//! The soak's TLS side: a second server, serving the echo over TLS, and
//! blocking clients on their own threads (rustls over std sockets), each
//! thread running one client after another until the soak stops, with a
//! pusher of its own sending through the handles its push clients ask for.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use fastnet_proto::connection::{CloseReason, Limits, TlsFailure};
use fastnet_proto::server::{ServerConfig, StatsSnapshot, CLOSE_REASONS};
use fastnet_tls::rustls::ClientConnection;
use fastnet_tls::test_pki::Pki;
use fastnet_tls::TlsConnector;

use super::pusher::{self, PushTally, PUSH_TAG};
use super::{payload_len, Failures, Shared, SoakParams, Timers, MAX_FRAME, MUTE_PUSH};
use crate::{wait_until, Rng, RunningServer, TestDriver};

/// Socket timeouts of the echo clients: a reply later than this fails.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TlsKind {
    /// Echo round trips, every reply verified, then close_notify.
    Echo,
    /// The same after a handle frame, with pushes interleaved; after
    /// close_notify, pushes are read to the end of stream.
    Push,
    /// Half a ClientHello, then nothing.
    HandshakeStall,
    /// A handshake, then frames, never reading.
    Mute,
}

const KINDS: [TlsKind; 4] = [
    TlsKind::Push,
    TlsKind::Echo,
    TlsKind::HandshakeStall,
    TlsKind::Mute,
];

/// What the TLS clients of one thread did and saw.
#[derive(Debug, Default)]
struct TlsTally {
    connects: u64,
    echo_done: u64,
    frames: u64,
    bytes: u64,
    /// Push clients done, and the pushes they received and verified.
    push_done: u64,
    pushes: u64,
    handshake_stalls: u64,
    mutes: u64,
    failures: Failures,
}

impl TlsTally {
    fn fail(&mut self, what: String) {
        self.failures.fail(what);
    }

    fn add(&mut self, o: TlsTally) {
        self.connects += o.connects;
        self.echo_done += o.echo_done;
        self.frames += o.frames;
        self.bytes += o.bytes;
        self.push_done += o.push_done;
        self.pushes += o.pushes;
        self.handshake_stalls += o.handshake_stalls;
        self.mutes += o.mutes;
        self.failures.add(o.failures);
    }
}

/// The TLS server and its client threads, while the soak runs.
pub(super) struct TlsSide {
    server: RunningServer,
    threads: Vec<JoinHandle<TlsTally>>,
    /// The TLS server's pusher, and what stops it.
    pusher: JoinHandle<PushTally>,
    push_stop: Arc<AtomicBool>,
    connector: TlsConnector,
    sh: Arc<Shared>,
}

/// Starts the TLS server (`None` if the driver has none) and its client
/// threads, one per 20 connections of the soak, 3 to 64.
pub(super) fn start<D: TestDriver>(
    params: &SoakParams,
    sh: Arc<Shared>,
    stop: Arc<AtomicBool>,
) -> Option<TlsSide> {
    let t = sh.timers;
    let threads = (params.conns / 20).clamp(3, 64);
    let mut cfg = ServerConfig::new(sh.spec);
    cfg.max_connections = threads + 100;
    cfg.tx_buffer = 2 * MAX_FRAME;
    cfg.limits = Limits::default()
        .idle_timeout(Some(t.idle))
        .read_timeout(Some(t.read))
        .write_stall_timeout(Some(t.write_stall));
    let pki = Pki::new();
    let server = D::start_tls_echo(cfg, pki.server().handshake_timeout(t.handshake))?;
    let (addr, connector, hello) = (server.addr(), pki.connector(), Arc::new(pki.client_hello()));
    let threads = (0..threads)
        .map(|i| {
            let (connector, hello, sh, stop) =
                (connector.clone(), hello.clone(), sh.clone(), stop.clone());
            thread::spawn(move || client_thread(addr, i, &connector, &hello, &sh, &stop))
        })
        .collect();
    let push_stop = Arc::new(AtomicBool::new(false));
    let pusher = {
        let (events, sh, stop) = (server.shared_events(), sh.clone(), push_stop.clone());
        thread::spawn(move || pusher::pusher(events, sh, stop))
    };
    Some(TlsSide {
        server,
        threads,
        pusher,
        push_stop,
        connector,
        sh,
    })
}

impl TlsSide {
    /// One line for the soak's opening.
    pub(super) fn describe(&self) -> String {
        format!(
            "{} blocking clients, handshake timeout {:?}, write-stall timeout {:?}",
            self.threads.len(),
            self.sh.timers.handshake,
            self.sh.timers.write_stall
        )
    }

    /// A suffix for the soak's progress lines.
    pub(super) fn progress(&self) -> String {
        let s = self.server.stats();
        format!(" | tls open={} accepted={}", s.open(), s.accepted)
    }

    /// Once the soak stopped: waits for the clients, checks that a new one
    /// is served, shuts the server down.
    pub(super) fn finish(mut self) -> TlsOutcome {
        let mut tally = TlsTally::default();
        for t in self.threads.drain(..) {
            tally.add(t.join().expect("TLS client thread panicked"));
        }
        let settled = wait_until(Duration::from_secs(10), || {
            let s = self.server.stats();
            s.open() == 0 && s.accepted == s.closed_total()
        });
        // Every connection is closed: each handle must now refuse with
        // `Closed`, having counted what it dropped.
        self.push_stop.store(true, Ordering::SeqCst);
        let pushes = self.pusher.join().expect("TLS pusher panicked");
        let mut rng = Rng::new(0xc0de);
        let never = AtomicBool::new(false);
        let control = echo(
            self.server.addr(),
            &self.connector,
            &self.sh,
            &mut rng,
            5,
            &never,
            None,
        )
        .map(|_| ());
        wait_until(Duration::from_secs(5), || self.server.stats().open() == 0);
        let (_, stats) = self.server.shutdown(Duration::from_secs(5));
        TlsOutcome {
            tally,
            pushes,
            settled,
            control,
            stats,
            closes: self.server.events().closes(),
        }
    }
}

/// What the TLS side did, once over.
pub(super) struct TlsOutcome {
    tally: TlsTally,
    pushes: PushTally,
    settled: bool,
    control: Result<(), String>,
    stats: StatsSnapshot,
    closes: Vec<CloseReason>,
}

impl TlsOutcome {
    pub(super) fn report(&self) {
        let t = &self.tally;
        let p = &self.pushes;
        eprintln!(
            "  tls clients: {} connections; echo finished {}, push clients {} ({} frames, {} MiB verified); handshake stalls {}, mute {}; failures {}",
            t.connects,
            t.echo_done,
            t.push_done,
            t.frames,
            t.bytes >> 20,
            t.handshake_stalls,
            t.mutes,
            t.failures.count
        );
        eprintln!(
            "  tls pushes: {} handles; sent {}, delivered and verified {}, refused (Full) {}, undelivered (dropped at close) {}; {} sends, slowest {:?}",
            p.handles, p.sent, t.pushes, p.refused, p.undelivered, p.sends, p.slowest
        );
        eprintln!("  tls server: {}", self.stats);
    }

    pub(super) fn verdicts(&self) {
        let (t, stats) = (&self.tally, &self.stats);
        let p = &self.pushes;
        assert_eq!(t.failures.count, 0, "TLS failures: {:#?}", t.failures.first);
        assert!(p.failures.is_empty(), "TLS pusher: {:#?}", p.failures);
        assert!(
            self.settled,
            "TLS server still counts open connections: {stats}"
        );
        if let Err(e) = &self.control {
            panic!("TLS server: a new client after the soak: {e}");
        }
        assert!(
            t.echo_done > 0 && t.frames > 0,
            "no TLS echo client finished"
        );
        let control = 1;
        assert_eq!(stats.rejected_total(), 0, "TLS: {stats}");
        assert_eq!(stats.accepted, t.connects + control, "TLS: {stats}");
        assert_eq!(stats.accepted, stats.closed_total(), "TLS: {stats}");
        // Every echo and push client ended with close_notify and read the
        // server's.
        assert_eq!(
            stats.closed(CloseReason::PeerClosed),
            t.echo_done + t.push_done + control,
            "TLS: {stats}"
        );
        let handshake_timeouts = self
            .closes
            .iter()
            .filter(|r| **r == CloseReason::Tls(TlsFailure::HandshakeTimeout))
            .count() as u64;
        assert_eq!(
            handshake_timeouts, t.handshake_stalls,
            "TLS: {:?}",
            self.closes
        );
        assert_eq!(
            stats.closed(CloseReason::Tls(TlsFailure::HandshakeTimeout)),
            t.handshake_stalls,
            "TLS: every TLS failure a stalled handshake: {stats}"
        );
        // A mute client stalls the server's writes, or idles, or leaves a
        // frame half sent when flow control stops it (as in the plain mix).
        assert_eq!(
            stats.closed(CloseReason::WriteStall)
                + stats.closed(CloseReason::IdleTimeout)
                + stats.closed(CloseReason::ReadTimeout),
            t.mutes,
            "TLS: {stats}"
        );
        for r in [
            CloseReason::Reset,
            CloseReason::FrameTooLarge,
            CloseReason::ByteLimit,
            CloseReason::Local,
        ] {
            assert_eq!(stats.closed(r), 0, "TLS: {stats}");
        }
        // Every push the TLS server took reached its client or was counted
        // dropped, as over plain TCP.
        p.assert_accounted(stats, t.push_done, t.pushes, t.frames, "TLS: ");
        assert_eq!(self.closes.len() as u64, stats.accepted);
        for r in CLOSE_REASONS {
            let seen = self.closes.iter().filter(|e| e.name() == r.name()).count() as u64;
            assert_eq!(
                seen,
                stats.closed(r),
                "TLS {}: handler vs counters",
                r.name()
            );
        }
    }
}

/// Runs TLS clients one after another until `stop`: first one of each
/// kind (starting at a different one per thread), then mostly echo
/// clients, a fifth of them push clients.
fn client_thread(
    addr: SocketAddr,
    index: usize,
    connector: &TlsConnector,
    hello: &[u8],
    sh: &Shared,
    stop: &AtomicBool,
) -> TlsTally {
    let mut rng = Rng::new(0x7150 + index as u64);
    let mut tally = TlsTally::default();
    let mut n = 0usize;
    while !stop.load(Ordering::Relaxed) {
        let kind = if n < KINDS.len() {
            KINDS[(index + n) % KINDS.len()]
        } else {
            match rng.upto(99) {
                0..=1 => TlsKind::HandshakeStall,
                2..=3 => TlsKind::Mute,
                4..=23 => TlsKind::Push,
                _ => TlsKind::Echo,
            }
        };
        n += 1;
        tally.connects += 1;
        let ended = match kind {
            TlsKind::Echo | TlsKind::Push => {
                let frames = 20 + rng.upto(200) as u64;
                // Unlike the plain clients' ids (thread number << 32).
                let push_id =
                    (kind == TlsKind::Push).then(|| (0x7150 + index as u64) << 32 | n as u64);
                echo(addr, connector, sh, &mut rng, frames, stop, push_id).map(|e| {
                    match kind {
                        TlsKind::Push => tally.push_done += 1,
                        _ => tally.echo_done += 1,
                    }
                    tally.frames += e.frames;
                    tally.bytes += e.bytes;
                    tally.pushes += e.pushes;
                })
            }
            TlsKind::HandshakeStall => {
                handshake_stall(addr, hello, sh.timers).map(|()| tally.handshake_stalls += 1)
            }
            TlsKind::Mute => mute(addr, connector, sh).map(|()| tally.mutes += 1),
        };
        if let Err(e) = ended {
            tally.fail(format!("TLS {kind:?} client {index}/{n}: {e}"));
        }
    }
    tally
}

fn io_err(what: &str) -> impl Fn(io::Error) -> String + '_ {
    move |e| format!("{what}: {e}")
}

/// A TLS session on a connected socket, handshake done.
fn connect(
    addr: SocketAddr,
    connector: &TlsConnector,
) -> Result<(ClientConnection, TcpStream), String> {
    let mut sock =
        TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(io_err("connect"))?;
    sock.set_nodelay(true).map_err(io_err("nodelay"))?;
    sock.set_read_timeout(Some(IO_TIMEOUT))
        .map_err(io_err("timeout"))?;
    sock.set_write_timeout(Some(IO_TIMEOUT))
        .map_err(io_err("timeout"))?;
    let mut conn = connector.session().map_err(io_err("session"))?;
    while conn.is_handshaking() {
        conn.complete_io(&mut sock).map_err(io_err("handshake"))?;
    }
    Ok((conn, sock))
}

/// What an echo client verified.
#[derive(Clone, Copy, Debug, Default)]
struct Echoed {
    frames: u64,
    bytes: u64,
    pushes: u64,
}

/// Reads one frame's payload into `buf`; `None` at the end of stream
/// between frames.
fn read_frame<R: Read + ?Sized>(s: &mut R, buf: &mut [u8]) -> io::Result<Option<usize>> {
    let mut header = [0u8; 4];
    let mut got = 0;
    while got < header.len() {
        match s.read(&mut header[got..]) {
            Ok(0) if got == 0 => return Ok(None),
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let len = u32::from_be_bytes(header) as usize;
    let Some(payload) = buf.get_mut(..len) else {
        return Err(io::Error::other(format!("a frame of {len} bytes")));
    };
    s.read_exact(payload)?;
    Ok(Some(len))
}

/// `frames` echo round trips, one to four frames in flight, each reply
/// checked; then close_notify, and the server's close_notify and end of
/// stream. Stops early (cleanly) once `stop` is set.
///
/// With `push_id`, the first frame asks for pushes (see
/// [`pusher::handle_frame`]); every push, interleaved with the replies and
/// after close_notify until the end of stream, must be the next one for
/// `push_id`, whole, and close_notify waits for the first.
fn echo(
    addr: SocketAddr,
    connector: &TlsConnector,
    sh: &Shared,
    rng: &mut Rng,
    frames: u64,
    stop: &AtomicBool,
    push_id: Option<u64>,
) -> Result<Echoed, String> {
    let (conn, sock) = connect(addr, connector)?;
    let mut s = fastnet_tls::rustls::StreamOwned::new(conn, sock);
    let mut seen = Echoed::default();
    let mut buf = vec![0u8; MAX_FRAME];
    // Reads frames until one that is not a push; checks the pushes.
    let mut next_reply = |s: &mut dyn Read, seen: &mut Echoed, what: &dyn Fn() -> String| loop {
        let Some(len) = read_frame(s, &mut buf).map_err(|e| format!("{}: {e}", what()))? else {
            return Err(format!("{}: the server closed the connection", what()));
        };
        let payload = &buf[..len];
        match push_id {
            Some(id) if payload.starts_with(PUSH_TAG) => {
                pusher::check(payload, id, seen.pushes, false, sh)?;
                seen.pushes += 1;
            }
            _ => return Ok(payload.to_vec()),
        }
    };
    if let Some(id) = push_id {
        let handle = pusher::handle_frame(id, false);
        let mut out = (handle.len() as u32).to_be_bytes().to_vec();
        out.extend_from_slice(&handle);
        s.write_all(&out).map_err(io_err("write"))?;
        s.flush().map_err(io_err("flush"))?;
        let reply = next_reply(&mut s, &mut seen, &|| "the handle frame's echo".into())?;
        if reply != handle {
            return Err(format!(
                "the handle frame came back as {} other bytes",
                reply.len()
            ));
        }
    }
    let mut pending = VecDeque::new();
    let mut out = Vec::new();
    while seen.frames < frames && !stop.load(Ordering::Relaxed) {
        let burst = (1 + rng.upto(3) as u64).min(frames - seen.frames);
        out.clear();
        for _ in 0..burst {
            let len = payload_len(rng, sh.max_payload);
            let at = rng.upto(sh.pool.len() - len);
            out.extend_from_slice(&(len as u32).to_be_bytes());
            out.extend_from_slice(&sh.pool[at..at + len]);
            pending.push_back((at, len));
        }
        s.write_all(&out).map_err(io_err("write"))?;
        s.flush().map_err(io_err("flush"))?;
        while let Some((at, len)) = pending.pop_front() {
            let done = seen.frames;
            let reply = next_reply(&mut s, &mut seen, &|| format!("reply to frame {done}"))?;
            if reply.len() != len {
                return Err(format!(
                    "frame {done}: sent {len} bytes, {} came back",
                    reply.len()
                ));
            }
            if reply[..] != sh.pool[at..at + len] {
                return Err(format!("frame {done}: echo mismatch ({len} bytes)"));
            }
            seen.frames += 1;
            seen.bytes += len as u64;
        }
    }
    if let Some(id) = push_id {
        // At least one push before leaving: a short client can finish its
        // echoes within the pusher's period.
        while seen.pushes == 0 {
            match read_frame(&mut s, &mut buf) {
                Ok(Some(len)) if buf[..len].starts_with(PUSH_TAG) => {
                    pusher::check(&buf[..len], id, 0, false, sh)?;
                    seen.pushes += 1;
                }
                Ok(Some(len)) => {
                    return Err(format!("a frame of {len} bytes after the last reply"))
                }
                Ok(None) => return Err("closed before the first push".into()),
                Err(e) => return Err(format!("waiting for the first push: {e}")),
            }
        }
    }
    s.conn.send_close_notify();
    s.flush().map_err(io_err("close_notify"))?;
    // Pushes the server took before it saw close_notify still arrive;
    // then its close_notify and the end of stream.
    loop {
        match read_frame(&mut s, &mut buf) {
            Ok(None) => return Ok(seen),
            Ok(Some(len)) => match push_id {
                Some(id) if buf[..len].starts_with(PUSH_TAG) => {
                    pusher::check(&buf[..len], id, seen.pushes, false, sh)?;
                    seen.pushes += 1;
                }
                _ => return Err(format!("a frame of {len} bytes after the last reply")),
            },
            Err(e) => return Err(format!("waiting for the server's close: {e}")),
        }
    }
}

/// Half a ClientHello, then silence: the server must close the
/// connection by its handshake timeout, sending nothing.
fn handshake_stall(addr: SocketAddr, hello: &[u8], t: Timers) -> Result<(), String> {
    let mut sock =
        TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(io_err("connect"))?;
    sock.write_all(&hello[..hello.len() / 2])
        .map_err(io_err("write"))?;
    let limit = t.handshake + Duration::from_secs(5);
    sock.set_read_timeout(Some(limit))
        .map_err(io_err("timeout"))?;
    let began = Instant::now();
    let mut buf = [0u8; 1024];
    let closed = match sock.read(&mut buf) {
        Ok(0) => Ok(()),
        Ok(n) => Err(format!(
            "the server answered half a ClientHello with {n} bytes"
        )),
        Err(e) if crate::timed_out(&e) => Err(format!("not closed within {limit:?}")),
        // A reset is a close too.
        Err(_) => Ok(()),
    };
    let took = began.elapsed();
    closed?;
    // The server's clock started at accept, a little before ours.
    if took < t.handshake / 2 {
        return Err(format!(
            "closed after {took:?}, before the handshake timeout {:?}",
            t.handshake
        ));
    }
    Ok(())
}

/// A handshake, then frames of the largest size without ever reading,
/// until the socket has taken nothing for the mute wait (or 16 MB went
/// out); then, once the server must have closed it, reads the raw socket
/// to the end of stream.
fn mute(addr: SocketAddr, connector: &TlsConnector, sh: &Shared) -> Result<(), String> {
    let t = sh.timers;
    let (mut conn, mut sock) = connect(addr, connector)?;
    sock.set_write_timeout(Some(t.mute_blocked))
        .map_err(io_err("timeout"))?;
    let mut frame = (sh.max_payload as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(&sh.pool[..sh.max_payload]);
    let (mut pushed, mut at) = (0usize, 0usize);
    'pushing: while pushed < MUTE_PUSH {
        let n = conn
            .writer()
            .write(&frame[at..])
            .map_err(io_err("plaintext"))?;
        at = (at + n) % frame.len();
        pushed += n;
        while conn.wants_write() {
            match conn.write_tls(&mut sock) {
                Ok(_) => {}
                Err(e) if crate::timed_out(&e) => {
                    break 'pushing;
                }
                // Closed by the server while pushing.
                Err(_) => return Ok(()),
            }
        }
    }
    // The server read nothing from us for the mute wait, so it has been
    // idle at least since then.
    thread::sleep(t.idle + t.settle);
    sock.set_read_timeout(Some(IO_TIMEOUT))
        .map_err(io_err("timeout"))?;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match sock.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(e) if crate::timed_out(&e) => {
                return Err(format!(
                    "not closed {:?} after it went mute",
                    t.idle + t.settle + IO_TIMEOUT
                ));
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // A reset: the server closed it with our bytes unread.
            Err(_) => return Ok(()),
        }
    }
}
