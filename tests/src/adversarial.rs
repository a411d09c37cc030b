//! Adversarial cases: one kind of misbehaving peer at a time, while
//! well-behaved clients keep talking to the same server.
//!
//! Every case checks three things:
//!
//! - (a) each offending connection is closed, with the [`CloseReason`] its
//!   offence calls for, as the handler's [`Events`](crate::Events) saw it;
//! - (b) [`Steady`] clients, echoing random frames on their own threads
//!   before, during and after the offence, get every byte back, in order;
//! - (c) the server accepts and serves a new client afterwards.
//!
//! Limits are small (frames of about 1 KiB, timeouts of a few hundred
//! milliseconds), so each case takes a second or two.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use fastnet_proto::codec::{
    CodecSpec, Decoded, Decoder, Encoder, Endian, LengthFieldConfig, Oversize, VarintConfig,
};
use fastnet_proto::connection::{CloseReason, Limits};
use fastnet_proto::server::{RejectReason, ServerConfig};
use fastnet_proto::Error;
use socket2::{Domain, Protocol, SockRef, Socket, Type};

use crate::{rss_bytes, wait_until, FrameClient, Rng, RunningServer, TestDriver};

// ---------------------------------------------------------------------------
// Helpers: well-behaved clients, offenders, checks.

/// Well-behaved clients, each on its own thread, echoing batches of random
/// frames (mostly small, some up to the maximum) and checking every byte,
/// until [`finish`](Self::finish).
#[derive(Debug)]
pub struct Steady {
    stop: Arc<AtomicBool>,
    rounds: Arc<AtomicU64>,
    threads: Vec<JoinHandle<Result<u64, String>>>,
}

impl Steady {
    /// Starts `clients` clients of `addr` speaking `spec`, and returns once
    /// each of them has had one batch echoed (or the first client's error).
    pub fn start(
        addr: SocketAddr,
        spec: CodecSpec,
        clients: usize,
        seed: u64,
    ) -> Result<Steady, String> {
        Self::start_from(addr, spec, clients, seed, None)
    }

    /// Like [`start`](Self::start), with the clients' sockets bound to
    /// `local` (an address of this machine) first.
    pub fn start_from(
        addr: SocketAddr,
        spec: CodecSpec,
        clients: usize,
        seed: u64,
        local: Option<IpAddr>,
    ) -> Result<Steady, String> {
        let stop = Arc::new(AtomicBool::new(false));
        let rounds = Arc::new(AtomicU64::new(0));
        let ready = Arc::new(AtomicUsize::new(0));
        let max = max_payload(spec);
        let threads: Vec<_> = (0..clients)
            .map(|i| {
                let (stop, rounds, ready) = (stop.clone(), rounds.clone(), ready.clone());
                thread::spawn(move || {
                    let stream = connect_from(local, addr)
                        .map_err(|e| format!("steady client {i}: connect: {e}"))?;
                    let client = FrameClient::from_stream(stream, spec)
                        .map_err(|e| format!("steady client {i}: {e}"))?;
                    let mut rng = Rng::new(seed.wrapping_mul(1000) + i as u64);
                    steady_client(client, spec, max, &mut rng, &stop, &rounds, &ready)
                        .map_err(|e| format!("steady client {i}: {e}"))
                })
            })
            .collect();
        let started = wait_until(Duration::from_secs(10), || {
            ready.load(Ordering::SeqCst) == clients || threads.iter().any(|t| t.is_finished())
        });
        let steady = Steady {
            stop,
            rounds,
            threads,
        };
        if !started || steady.threads.iter().any(|t| t.is_finished()) {
            steady.finish()?;
            return Err("steady clients did not start within 10 s".into());
        }
        Ok(steady)
    }

    /// Checks that the clients are still being served (a few more batches
    /// echoed from now), stops them, and returns how many frames they had
    /// echoed and verified, or the first client's error.
    pub fn finish(self) -> Result<u64, String> {
        let clients = self.threads.len() as u64;
        let mark = self.rounds.load(Ordering::SeqCst);
        let moving = wait_until(Duration::from_secs(10), || {
            self.rounds.load(Ordering::SeqCst) >= mark + 2 * clients
                || self.threads.iter().any(|t| t.is_finished())
        });
        self.stop.store(true, Ordering::SeqCst);
        let mut frames = 0;
        for t in self.threads {
            match t.join() {
                Ok(Ok(n)) => frames += n,
                Ok(Err(e)) => return Err(e),
                Err(_) => return Err("a steady client panicked".into()),
            }
        }
        if !moving {
            return Err("steady clients stalled".into());
        }
        Ok(frames)
    }
}

/// Unwraps a [`Steady`] result; on error panics with it and with what the
/// server's handler saw.
fn steady_ok<D: TestDriver, T>(server: &RunningServer, r: Result<T, String>) -> T {
    r.unwrap_or_else(|e| {
        panic!(
            "{}: {e}; the server's handler saw closes {:?}, rejects {:?}",
            D::NAME,
            tally(&server.events().closes()),
            server.events().rejects()
        )
    })
}

fn steady_client(
    mut client: FrameClient,
    spec: CodecSpec,
    max: usize,
    rng: &mut Rng,
    stop: &AtomicBool,
    rounds: &AtomicU64,
    ready: &AtomicUsize,
) -> io::Result<u64> {
    let mut frames = 0u64;
    for round in 0u64.. {
        let batch: Vec<Vec<u8>> = (0..=rng.upto(7))
            .map(|_| {
                let len = if rng.upto(7) == 0 {
                    rng.upto(max)
                } else {
                    rng.upto(max.min(64))
                };
                payload(spec, rng, len)
            })
            .collect();
        for f in &batch {
            client.send(f)?;
        }
        for (k, f) in batch.iter().enumerate() {
            match client.recv() {
                Ok(Some(reply)) if reply == &f[..] => {}
                Ok(Some(reply)) => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "round {round} frame {k}: sent {} bytes, {} different bytes came back",
                            f.len(),
                            reply.len()
                        ),
                    ))
                }
                Ok(None) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("round {round} frame {k}: the server closed the connection"),
                    ))
                }
                Err(e) => {
                    return Err(io::Error::new(
                        e.kind(),
                        format!("round {round} frame {k}: {e}"),
                    ))
                }
            }
        }
        frames += batch.len() as u64;
        if round == 0 {
            ready.fetch_add(1, Ordering::SeqCst);
        }
        rounds.fetch_add(1, Ordering::SeqCst);
        if stop.load(Ordering::SeqCst) {
            break;
        }
        // Leave the (two) cores to the server and the offender.
        thread::sleep(Duration::from_millis(1));
    }
    Ok(frames)
}

/// A payload of `len` bytes that `spec` can frame: letters for delimiter
/// codecs, any bytes otherwise; never one that makes the echo handler sleep.
pub fn payload(spec: CodecSpec, rng: &mut Rng, len: usize) -> Vec<u8> {
    let mut p = rng.bytes(len);
    if matches!(spec, CodecSpec::Delimiter { .. }) {
        for b in &mut p {
            *b = b'a' + *b % 26;
        }
    }
    if let Some(first) = p.first_mut() {
        if *first == 0xff {
            *first = 0xfe;
        }
    }
    p
}

/// The longest payload `spec` frames within its maximum (worst case: no
/// zero bytes for COBS).
pub fn max_payload(spec: CodecSpec) -> usize {
    let enc = spec.encoder().expect("the codec encodes");
    let probe = vec![b'a'; spec.max_frame()];
    (0..=probe.len())
        .rev()
        .find(|&n| enc.encoded_len(&probe[..n]).is_ok())
        .expect("some payload fits")
}

/// `payload` framed by `spec`.
pub fn encode(spec: CodecSpec, payload: &[u8]) -> Vec<u8> {
    let mut wire = Vec::new();
    spec.encoder()
        .expect("the codec encodes")
        .encode_vec(payload, &mut wire)
        .expect("payload fits");
    wire
}

/// The first error a fresh decoder for `spec` reports for `bytes`.
pub fn first_error(spec: CodecSpec, bytes: &[u8]) -> Option<Error> {
    let mut dec = spec.decoder().expect("codec");
    let mut buf = bytes.to_vec();
    let mut at = 0;
    loop {
        match dec.decode(&mut buf[at..]) {
            Ok(Decoded::Frame(f)) => at += f.consumed,
            Ok(Decoded::Skip(n)) => at += n,
            Ok(Decoded::NeedMore { .. }) => return None,
            Err(e) => return Some(e.error),
        }
    }
}

/// A TCP connection to `addr`, from the local address `local` if given.
pub fn connect_from(local: Option<IpAddr>, addr: SocketAddr) -> io::Result<TcpStream> {
    let Some(local) = local else {
        return TcpStream::connect_timeout(&addr, Duration::from_secs(2));
    };
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.bind(&SocketAddr::new(local, 0).into())?;
    socket.connect_timeout(&addr.into(), Duration::from_secs(2))?;
    Ok(socket.into())
}

/// A raw socket for an offender.
fn raw_connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).expect("connect");
    s.set_nodelay(true).unwrap();
    s
}

/// Sends one good frame on a raw socket and reads its echo: the
/// connection is being served.
fn ping(s: &mut TcpStream, spec: CodecSpec) {
    let wire = encode(spec, b"ping");
    s.write_all(&wire).expect("ping");
    let mut back = vec![0; wire.len()];
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.read_exact(&mut back).expect("ping echoed");
    assert_eq!(back, wire, "ping echoed");
}

/// Reads until the server closes `s` (end of stream or reset); returns how
/// long that took and the bytes that came before. An error if it stays
/// open for `limit`.
pub fn wait_closed(s: &mut TcpStream, limit: Duration) -> Result<(Duration, Vec<u8>), String> {
    let start = Instant::now();
    let mut got = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let left = limit.saturating_sub(start.elapsed());
        if left.is_zero() {
            return Err(format!(
                "still open after {limit:?} ({} bytes came)",
                got.len()
            ));
        }
        s.set_read_timeout(Some(left)).map_err(|e| e.to_string())?;
        match s.read(&mut buf) {
            Ok(0) => return Ok((start.elapsed(), got)),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted
                ) =>
            {
                return Ok((start.elapsed(), got))
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if crate::timed_out(&e) => {}
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// Whether `s` is still open and silent for `quiet`.
fn stays_open(s: &mut TcpStream, quiet: Duration) -> bool {
    s.set_read_timeout(Some(quiet)).unwrap();
    let mut b = [0u8; 1];
    matches!(s.read(&mut b), Err(e) if crate::timed_out(&e))
}

/// Closes `s` with a reset (SO_LINGER 0), not a FIN.
pub fn reset(s: TcpStream) {
    SockRef::from(&s)
        .set_linger(Some(Duration::ZERO))
        .expect("SO_LINGER");
    drop(s);
}

fn tally(reasons: &[CloseReason]) -> HashMap<CloseReason, usize> {
    let mut m = HashMap::new();
    for r in reasons {
        *m.entry(*r).or_insert(0) += 1;
    }
    m
}

/// Waits until the handler saw `n` closes for `reason`.
fn expect_closed_for<D: TestDriver>(server: &RunningServer, reason: CloseReason, n: usize) {
    let ok = wait_until(Duration::from_secs(5), || {
        server.events().closed(reason) >= n
    });
    assert!(
        ok && server.events().closed(reason) == n,
        "{}: expected {n} closes for {reason:?}, saw {:?}",
        D::NAME,
        tally(&server.events().closes())
    );
}

/// Waits until the handler saw exactly these closes (reason, count), in any
/// order.
fn expect_closes<D: TestDriver>(server: &RunningServer, expected: &[(CloseReason, usize)]) {
    let mut want = HashMap::new();
    for &(r, n) in expected {
        if n > 0 {
            *want.entry(r).or_insert(0) += n;
        }
    }
    let ok = wait_until(Duration::from_secs(5), || {
        tally(&server.events().closes()) == want
    });
    assert!(
        ok,
        "{}: close reasons {:?}, expected {want:?}",
        D::NAME,
        tally(&server.events().closes())
    );
}

/// (c): a new client connects and has a few frames echoed. Counts as one
/// `PeerClosed` when it goes.
fn serves_new_client<D: TestDriver>(addr: SocketAddr, spec: CodecSpec) {
    let mut c = FrameClient::connect_with(addr, spec).expect("connect after the offence");
    roundtrips::<D>(&mut c, spec);
}

/// A few random frames echoed on `c`.
fn roundtrips<D: TestDriver>(c: &mut FrameClient, spec: CodecSpec) {
    let mut rng = Rng::new(99);
    let max = max_payload(spec);
    for i in 0..5 {
        let len = rng.upto(max);
        let p = payload(spec, &mut rng, len);
        c.roundtrip(&p)
            .unwrap_or_else(|e| panic!("{}: new client, frame {i}: {e}", D::NAME));
    }
}

/// A new client is served at once: the drivers free a connection's slot
/// before they report its close, so once the statistics show the offenders
/// closed, their slots are free.
fn serves_new_client_when_free<D: TestDriver>(addr: SocketAddr, spec: CodecSpec) {
    let mut c = FrameClient::connect_with(addr, spec).expect("connect after the offence");
    if let Err(e) = c.roundtrip(b"a new client") {
        panic!(
            "{}: a new client was refused after every slot was closed: {e}",
            D::NAME
        );
    }
    roundtrips::<D>(&mut c, spec);
}

fn config(spec: CodecSpec) -> ServerConfig {
    let mut c = ServerConfig::new(spec);
    c.max_connections = 300;
    c
}

const MAX: usize = 1024;
const STEADY: usize = 3;

fn length_spec(width: u8, adjust: i64) -> CodecSpec {
    CodecSpec::LengthField(
        LengthFieldConfig::new(width, Endian::Big)
            .adjust(adjust)
            .max_frame(MAX),
    )
}

/// Runs `offend` against a fresh server for `cfg` while [`Steady`]
/// clients echo. `offend` returns the closes its connections must have
/// caused (orderly ones as `PeerClosed`); they are waited for, then (b) and
/// (c) are checked, and finally that the handler saw exactly those closes
/// plus one `PeerClosed` per well-behaved client.
fn run_case<D: TestDriver>(
    cfg: ServerConfig,
    seed: u64,
    offend: impl FnOnce(&RunningServer) -> Vec<(CloseReason, usize)>,
) -> RunningServer {
    let spec = cfg.codec;
    let server = D::start_echo(cfg);
    let steady = steady_ok::<D, _>(&server, Steady::start(server.addr(), spec, STEADY, seed));
    let mut closes: HashMap<CloseReason, usize> = HashMap::new();
    for (reason, n) in offend(&server) {
        *closes.entry(reason).or_insert(0) += n;
    }
    for (&reason, &n) in &closes {
        expect_closed_for::<D>(&server, reason, n);
    }
    let frames = steady_ok::<D, _>(&server, steady.finish());
    assert!(frames > 0);
    serves_new_client::<D>(server.addr(), spec);
    let mut all: Vec<_> = closes.into_iter().collect();
    all.push((CloseReason::PeerClosed, STEADY + 1));
    expect_closes::<D>(&server, &all);
    server
}

// ---------------------------------------------------------------------------
// The cases.

/// Length headers announcing frames over the maximum (one byte over, 1 GiB,
/// `u32::MAX`) close the connection with `FrameTooLarge` as soon as the
/// header is in, without waiting for a body.
pub fn oversize_length_header<D: TestDriver>() {
    let spec = length_spec(4, 0);
    let heads = [(MAX - 4 + 1) as u32, 1 << 30, u32::MAX];
    let mut server = run_case::<D>(config(spec), 1, |server| {
        for len in heads {
            let mut s = raw_connect(server.addr());
            ping(&mut s, spec);
            s.write_all(&len.to_be_bytes()).unwrap();
            let (took, _) = wait_closed(&mut s, Duration::from_secs(5))
                .unwrap_or_else(|e| panic!("{}: header {len}: {e}", D::NAME));
            assert!(
                took < Duration::from_secs(2),
                "{}: header {len}: closed after {took:?}",
                D::NAME
            );
        }
        vec![(CloseReason::FrameTooLarge, heads.len())]
    });
    let (_, stats) = server.shutdown(Duration::from_secs(2));
    assert_eq!(stats.closed(CloseReason::FrameTooLarge), heads.len() as u64);
}

/// Lines: a line that reaches the maximum without a line feed closes with
/// `FrameTooLarge` once `max_frame` bytes are in, whether it comes in one
/// 64 KiB write or exactly `max_frame` bytes; a line one byte shorter is
/// waited for and echoed when its line feed comes.
pub fn oversize_line_without_delimiter<D: TestDriver>() {
    let spec = CodecSpec::lines(MAX);
    let mut server = run_case::<D>(config(spec), 2, |server| {
        let addr = server.addr();
        // 64 KiB of letters, no line feed, in one write; the server may
        // close before it has taken it all.
        let mut a = raw_connect(addr);
        ping(&mut a, spec);
        let _ = a.write_all(&vec![b'x'; 64 * 1024]);
        wait_closed(&mut a, Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("{}: 64 KiB line: {e}", D::NAME));
        // Exactly max_frame bytes without a line feed: too long already
        // (the line feed would make it max_frame + 1).
        let mut b = raw_connect(addr);
        ping(&mut b, spec);
        b.write_all(&vec![b'y'; MAX]).unwrap();
        wait_closed(&mut b, Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("{}: line of max_frame bytes: {e}", D::NAME));
        // One byte less is a frame that can still end within the limit.
        let mut c = raw_connect(addr);
        c.write_all(&vec![b'z'; MAX - 1]).unwrap();
        assert!(
            stays_open(&mut c, Duration::from_millis(200)),
            "{}: a line of max_frame - 1 bytes without its line feed was closed",
            D::NAME
        );
        c.write_all(b"\n").unwrap();
        let mut back = vec![0; MAX];
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        c.read_exact(&mut back).expect("longest line echoed");
        assert!(back[..MAX - 1].iter().all(|&b| b == b'z') && back[MAX - 1] == b'\n');
        vec![
            (CloseReason::FrameTooLarge, 2),
            (CloseReason::PeerClosed, 1),
        ]
    });
    let (_, stats) = server.shutdown(Duration::from_secs(2));
    assert_eq!(stats.closed(CloseReason::FrameTooLarge), 2);
}

/// `len=u64be`: a field of `u64::MAX` overflows the frame length once the
/// header is added (`Protocol(LengthOverflow)`); `u64::MAX - 8` fits
/// exactly and is merely too large (`FrameTooLarge`).
pub fn length_overflow<D: TestDriver>() {
    let spec = length_spec(8, 0);
    let overflow = Error::LengthOverflow {
        field: u64::MAX,
        adjust: 0,
    };
    assert_eq!(
        first_error(spec, &u64::MAX.to_be_bytes()),
        Some(overflow),
        "the decoder's own verdict"
    );
    let mut server = run_case::<D>(config(spec), 3, |server| {
        for field in [u64::MAX, u64::MAX - 8] {
            let mut s = raw_connect(server.addr());
            ping(&mut s, spec);
            s.write_all(&field.to_be_bytes()).unwrap();
            s.write_all(&[7; 32]).unwrap();
            wait_closed(&mut s, Duration::from_secs(5))
                .unwrap_or_else(|e| panic!("{}: field {field}: {e}", D::NAME));
        }
        vec![
            (CloseReason::Protocol(overflow), 1),
            (CloseReason::FrameTooLarge, 1),
        ]
    });
    let (_, stats) = server.shutdown(Duration::from_secs(2));
    assert_eq!(stats.closed(CloseReason::Protocol(overflow)), 1);
}

/// `len=u32be,adjust=-4` (the field counts the whole frame): a field below
/// the header's 4 bytes makes the adjusted length shorter than the header
/// (`Protocol(LengthTooShort)`, never an endless run of empty frames); a
/// field of exactly 4 is an empty frame and is echoed.
pub fn length_below_header<D: TestDriver>() {
    let spec = length_spec(4, -4);
    let too_short = |field| Error::LengthTooShort {
        field,
        adjust: -4,
        header: 4,
    };
    assert_eq!(first_error(spec, &2u32.to_be_bytes()), Some(too_short(2)));
    let mut server = run_case::<D>(config(spec), 4, |server| {
        for field in [2u32, 0] {
            let mut s = raw_connect(server.addr());
            ping(&mut s, spec);
            s.write_all(&field.to_be_bytes()).unwrap();
            s.write_all(&[7; 32]).unwrap();
            wait_closed(&mut s, Duration::from_secs(5))
                .unwrap_or_else(|e| panic!("{}: field {field}: {e}", D::NAME));
        }
        // The shortest valid frame: just the header.
        let mut s = raw_connect(server.addr());
        s.write_all(&4u32.to_be_bytes()).unwrap();
        let mut back = [0u8; 4];
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.read_exact(&mut back).expect("empty frame echoed");
        assert_eq!(back, 4u32.to_be_bytes());
        vec![
            (CloseReason::Protocol(too_short(2)), 1),
            (CloseReason::Protocol(too_short(0)), 1),
            (CloseReason::PeerClosed, 1),
        ]
    });
    let (_, stats) = server.shutdown(Duration::from_secs(2));
    assert_eq!(stats.closed(CloseReason::Protocol(too_short(0))), 2);
}

/// Varint prefixes: 11 bytes with the continuation bit (`VarintTooLong`),
/// a ten-byte prefix above `u64::MAX` (`VarintOverflow`), a valid but
/// huge length (`FrameTooLarge`); and with MQTT's 4-byte cap, 5 bytes
/// (`VarintTooLong { max_bytes: 4 }`).
pub fn invalid_varint<D: TestDriver>() {
    let mut too_big = [0x80u8; 6];
    too_big[5] = 0x01; // 2^35
    let mut overflow = [0xffu8; 10];
    overflow[9] = 0x02;
    /// Prefix bytes an offender sends, and the close they must cause.
    type Offence = (Vec<u8>, CloseReason);
    let cases: [(VarintConfig, Vec<Offence>); 2] = [
        (
            VarintConfig::new(),
            vec![
                (
                    vec![0xff; 11],
                    CloseReason::Protocol(Error::VarintTooLong { max_bytes: 10 }),
                ),
                (
                    overflow.to_vec(),
                    CloseReason::Protocol(Error::VarintOverflow),
                ),
                (too_big.to_vec(), CloseReason::FrameTooLarge),
            ],
        ),
        (
            VarintConfig::mqtt(),
            vec![(
                vec![0xff; 5],
                CloseReason::Protocol(Error::VarintTooLong { max_bytes: 4 }),
            )],
        ),
    ];
    for (i, (cfg, offenders)) in cases.into_iter().enumerate() {
        let spec = CodecSpec::Varint(cfg.max_frame(MAX));
        let mut closes: Vec<(CloseReason, usize)> = Vec::new();
        for (bytes, reason) in &offenders {
            let expected = match reason {
                CloseReason::Protocol(e) => *e,
                _ => Error::FrameTooLarge {
                    len: (1u64 << 35) + 6,
                    max: MAX,
                },
            };
            assert_eq!(first_error(spec, bytes), Some(expected), "{bytes:02x?}");
            closes.push((*reason, 1));
        }
        let mut server = run_case::<D>(config(spec), 5 + i as u64, |server| {
            for (bytes, _) in &offenders {
                let mut s = raw_connect(server.addr());
                ping(&mut s, spec);
                s.write_all(bytes).unwrap();
                wait_closed(&mut s, Duration::from_secs(5))
                    .unwrap_or_else(|e| panic!("{}: prefix {bytes:02x?}: {e}", D::NAME));
            }
            closes
        });
        server.shutdown(Duration::from_secs(2));
    }
}

/// COBS: a frame whose code byte runs past its end closes with
/// `Protocol(InvalidCobs)`, after the good frame sent before it in the same
/// write was echoed; a frame without a `0x00` closes with `FrameTooLarge`.
/// With `skip_malformed` the same bad frame is stepped over instead and the
/// frames around it are echoed.
pub fn invalid_cobs<D: TestDriver>() {
    let spec = CodecSpec::cobs(MAX);
    let bad = [0x05u8, 0x11, 0x22, 0x00];
    let invalid = Error::InvalidCobs { pos: 0, code: 5 };
    assert_eq!(first_error(spec, &bad), Some(invalid));
    let good = encode(spec, b"a\0b");
    let mut server = run_case::<D>(config(spec), 7, |server| {
        let mut s = raw_connect(server.addr());
        let mut wire = good.clone();
        wire.extend_from_slice(&bad);
        wire.extend_from_slice(&good);
        s.write_all(&wire).unwrap();
        let (_, got) = wait_closed(&mut s, Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("{}: invalid COBS: {e}", D::NAME));
        assert_eq!(got, good, "{}: only the frame before the bad one", D::NAME);
        let mut s = raw_connect(server.addr());
        ping(&mut s, spec);
        let _ = s.write_all(&vec![0x42; 4 * MAX]);
        wait_closed(&mut s, Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("{}: COBS without 0x00: {e}", D::NAME));
        vec![
            (CloseReason::Protocol(invalid), 1),
            (CloseReason::FrameTooLarge, 1),
        ]
    });
    server.shutdown(Duration::from_secs(2));

    // A tolerant server skips the bad frame and keeps the connection.
    let mut cfg = config(spec);
    cfg.limits.skip_malformed = true;
    let server = D::start_echo(cfg);
    let mut s = raw_connect(server.addr());
    let mut wire = good.clone();
    wire.extend_from_slice(&bad);
    wire.extend_from_slice(&good);
    s.write_all(&wire).unwrap();
    let mut back = vec![0; 2 * good.len()];
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.read_exact(&mut back)
        .unwrap_or_else(|e| panic!("{}: skip_malformed: {e}", D::NAME));
    assert_eq!(back, [&good[..], &good[..]].concat());
    ping(&mut s, spec);
    assert!(server.events().closes().is_empty());
}

/// Slow-loris: clients trickling one byte every 50 ms (never idle, frame
/// never finished), and one that stops halfway through a header, are closed
/// by the read timeout (400 ms), well before the idle timeout (3 s) or the
/// end of their trickle.
pub fn slow_loris_trickle<D: TestDriver>() {
    const LORISES: usize = 3;
    let spec = length_spec(4, 0);
    let mut cfg = config(spec);
    cfg.limits = Limits::default()
        .idle_timeout(Some(Duration::from_secs(3)))
        .read_timeout(Some(Duration::from_millis(400)));
    let mut server = run_case::<D>(cfg, 8, |server| {
        let addr = server.addr();
        let lorises: Vec<_> = (0..LORISES)
            .map(|i| {
                thread::spawn(move || {
                    let mut s = raw_connect(addr);
                    ping(&mut s, spec);
                    let mut writer = s.try_clone().unwrap();
                    let trickle = thread::spawn(move || {
                        let mut frame = 200u32.to_be_bytes().to_vec();
                        frame.resize(204, b'x');
                        for b in frame {
                            if writer.write_all(&[b]).is_err() {
                                break;
                            }
                            thread::sleep(Duration::from_millis(50));
                        }
                    });
                    let closed = wait_closed(&mut s, Duration::from_secs(5));
                    let _ = s.shutdown(Shutdown::Both);
                    trickle.join().unwrap();
                    let (took, _) =
                        closed.unwrap_or_else(|e| panic!("{}: loris {i}: {e}", D::NAME));
                    took
                })
            })
            .collect();
        // Half a header, then nothing.
        let mut s = raw_connect(addr);
        ping(&mut s, spec);
        s.write_all(&[0, 0]).unwrap();
        let (took, _) = wait_closed(&mut s, Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("{}: half a header: {e}", D::NAME));
        let mut times = vec![took];
        times.extend(lorises.into_iter().map(|t| t.join().unwrap()));
        for took in times {
            assert!(
                took >= Duration::from_millis(350) && took < Duration::from_millis(2500),
                "{}: slow client closed after {took:?} (read timeout 400 ms, idle 3 s)",
                D::NAME
            );
        }
        vec![(CloseReason::ReadTimeout, LORISES + 1)]
    });
    let (_, stats) = server.shutdown(Duration::from_secs(2));
    assert_eq!(stats.closed(CloseReason::ReadTimeout), LORISES as u64 + 1);
    assert_eq!(stats.closed(CloseReason::IdleTimeout), 0);
}

/// A client that pushes frames and never reads: once its replies back up,
/// the server stops reading it (backpressure), so it cannot push the 50 MB
/// it tries to; its connection ends by the idle timeout; the server never
/// holds more of its bytes than its rx and tx buffers (bytes in minus bytes
/// out), and the process's RSS does not grow by anything like 50 MB.
pub fn never_reading_client<D: TestDriver>() {
    const FRAME: usize = 16 * 1024;
    const PUSH: usize = 50 << 20;
    let spec = CodecSpec::LengthField(LengthFieldConfig::new(4, Endian::Big).max_frame(FRAME));
    let mut cfg = config(spec);
    cfg.rx_buffer = FRAME;
    cfg.tx_buffer = 2 * FRAME;
    cfg.limits = Limits::default().idle_timeout(Some(Duration::from_millis(600)));
    let held = (cfg.rx_buffer_len() + cfg.tx_buffer_len()) as u64;
    let rss_before = rss_bytes();
    let rss_peak = Arc::new(AtomicU64::new(0));
    let pushed = Arc::new(AtomicUsize::new(0));
    let mut server = run_case::<D>(cfg, 9, |server| {
        let addr = server.addr();
        let pushed2 = pushed.clone();
        let pusher = thread::spawn(move || {
            let mut s = raw_connect(addr);
            s.set_write_timeout(Some(Duration::from_millis(200)))
                .unwrap();
            let frame = encode(spec, &vec![b'n'; FRAME - 4]);
            let start = Instant::now();
            let mut total = 0;
            let mut progress = start;
            // Until the server closes it, or it got everything out (it
            // must not), or a bound on the test's time.
            while total < PUSH && start.elapsed() < Duration::from_secs(10) {
                match s.write(&frame) {
                    Ok(n) => {
                        total += n;
                        progress = Instant::now();
                        pushed2.store(total, Ordering::SeqCst);
                    }
                    Err(e)
                        if matches!(
                            e.kind(),
                            io::ErrorKind::WouldBlock
                                | io::ErrorKind::TimedOut
                                | io::ErrorKind::Interrupted
                        ) => {}
                    Err(_) => break,
                }
            }
            (total, start.elapsed(), progress.elapsed())
        });
        while !pusher.is_finished() {
            if let Some(rss) = rss_bytes() {
                rss_peak.fetch_max(rss, Ordering::SeqCst);
            }
            thread::sleep(Duration::from_millis(10));
        }
        let (total, took, stalled) = pusher.join().unwrap();
        assert!(
            total < PUSH,
            "{}: a client that never reads pushed all {total} bytes in {took:?}",
            D::NAME
        );
        eprintln!(
            "{}: never-reading client: closed {stalled:?} after its last write went through",
            D::NAME
        );
        vec![(CloseReason::IdleTimeout, 1)]
    });
    let (_, stats) = server.shutdown(Duration::from_secs(2));
    let kept = stats.bytes_in.saturating_sub(stats.bytes_out);
    assert!(
        kept <= held,
        "{}: read {} bytes, wrote {}: {kept} bytes more than its buffers ({held}) were taken in",
        D::NAME,
        stats.bytes_in,
        stats.bytes_out
    );
    let pushed = pushed.load(Ordering::SeqCst);
    if let Some(before) = rss_before {
        let growth = rss_peak.load(Ordering::SeqCst).saturating_sub(before);
        eprintln!(
            "{}: never-reading client pushed {} KiB before it was stopped; the server read {} KiB from all clients; RSS grew {} KiB at most",
            D::NAME,
            pushed >> 10,
            stats.bytes_in >> 10,
            growth >> 10
        );
        // Other tests of this binary run at the same time, so only a growth
        // on the scale of what was pushed is meaningful.
        assert!(
            growth < (PUSH as u64) / 2,
            "{}: RSS grew by {growth} bytes while a client pushed {pushed}",
            D::NAME
        );
    }
}

/// A flood of connections past `max_connections`: every extra one is closed
/// at once and counted as `MaxConnections`, the admitted ones (well-behaved
/// clients among them) keep working, and a freed slot admits again.
pub fn connection_flood<D: TestDriver>() {
    const LIMIT: usize = 12;
    const FLOOD: usize = 200;
    const FLOOD_THREADS: usize = 4;
    let spec = length_spec(4, 0);
    let mut cfg = config(spec);
    cfg.max_connections = LIMIT;
    let server = D::start_echo(cfg);
    let addr = server.addr();
    let steady = steady_ok::<D, _>(&server, Steady::start(addr, spec, STEADY, 10));
    let mut holders: Vec<FrameClient> = (STEADY..LIMIT)
        .map(|_| {
            let mut c = FrameClient::connect_with(addr, spec).unwrap();
            c.roundtrip(b"holding a slot").unwrap();
            c
        })
        .collect();
    let flooders: Vec<_> = (0..FLOOD_THREADS)
        .map(|t| {
            thread::spawn(move || {
                for i in 0..FLOOD / FLOOD_THREADS {
                    let mut s = raw_connect(addr);
                    let _ = s.write_all(&encode(spec, b"let me in"));
                    let (_, got) = wait_closed(&mut s, Duration::from_secs(5))
                        .unwrap_or_else(|e| panic!("{}: flood {t}/{i}: {e}", D::NAME));
                    assert!(
                        got.is_empty(),
                        "{}: a refused connection was served",
                        D::NAME
                    );
                }
            })
        })
        .collect();
    for f in flooders {
        f.join().unwrap();
    }
    let rejected = wait_until(Duration::from_secs(5), || {
        server.events().rejects().len() == FLOOD
    });
    assert!(
        rejected
            && server
                .events()
                .rejects()
                .iter()
                .all(|r| *r == RejectReason::MaxConnections),
        "{}: rejects {:?}",
        D::NAME,
        server.events().rejects().len()
    );
    assert_eq!(
        server.stats().rejected(RejectReason::MaxConnections),
        FLOOD as u64
    );
    for c in &mut holders {
        c.roundtrip(b"still here").unwrap();
    }
    steady_ok::<D, _>(&server, steady.finish());
    drop(holders);
    assert!(wait_until(Duration::from_secs(5), || server.stats().open() == 0));
    serves_new_client_when_free::<D>(addr, spec);
    expect_closes::<D>(&server, &[(CloseReason::PeerClosed, LIMIT + 1)]);
    assert_eq!(server.stats().accepted, LIMIT as u64 + 1);
    assert_eq!(
        server.stats().rejected(RejectReason::MaxConnections),
        FLOOD as u64
    );
}

/// How many connections per address in the per-IP case.
const PER_IP: usize = 3;

/// Fills `PER_IP` slots from `local` (one a steady client), checks that a
/// flood of `flood` more from it is refused as `MaxPerIp`, and returns the
/// holders.
fn fill_from<D: TestDriver>(
    server: &RunningServer,
    spec: CodecSpec,
    local: IpAddr,
    flood: usize,
    seed: u64,
) -> (Steady, Vec<FrameClient>) {
    let addr = server.addr();
    let steady = steady_ok::<D, _>(server, Steady::start_from(addr, spec, 1, seed, Some(local)));
    let holders = (1..PER_IP)
        .map(|_| {
            let stream = connect_from(Some(local), addr).unwrap();
            let mut c = FrameClient::from_stream(stream, spec).unwrap();
            c.roundtrip(b"holding").unwrap();
            c
        })
        .collect();
    let before = server.events().rejects().len();
    for i in 0..flood {
        let mut s = connect_from(Some(local), addr).unwrap();
        let _ = s.write_all(&encode(spec, b"let me in"));
        let (_, got) = wait_closed(&mut s, Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("{}: {local} flood {i}: {e}", D::NAME));
        assert!(got.is_empty(), "{}: {local}: refused but served", D::NAME);
    }
    let ok = wait_until(Duration::from_secs(5), || {
        server.events().rejects().len() == before + flood
    });
    let rejects = server.events().rejects();
    assert!(
        ok && rejects[before..]
            .iter()
            .all(|r| *r == RejectReason::MaxPerIp),
        "{}: {local}: rejects {rejects:?}",
        D::NAME
    );
    (steady, holders)
}

/// Per-IP limits count by network: with one connection allowed per /24,
/// a client from 127.0.0.2 is refused while one from 127.0.0.1 is served
/// (same /24); with the default /32 both are served. (IPv6's default /64
/// is unit-tested in fastnet-proto: loopback offers one IPv6 address.)
pub fn per_ip_limit_counts_by_prefix<D: TestDriver>() {
    let spec = length_spec(4, 0);
    let second = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
    if let Err(e) = Socket::new(Domain::IPV4, Type::STREAM, None)
        .and_then(|s| s.bind(&SocketAddr::new(second, 0).into()))
    {
        eprintln!(
            "{}: per-IP prefix skipped: cannot bind {second} ({e})",
            D::NAME
        );
        return;
    }
    for (v4, refused) in [(24u8, true), (32, false)] {
        let mut cfg = config(spec);
        cfg.max_connections_per_ip = Some(1);
        cfg.per_ip_prefix.v4 = v4;
        let server = D::start_echo(cfg);
        let addr = server.addr();
        let stream = connect_from(Some(IpAddr::V4(Ipv4Addr::LOCALHOST)), addr).unwrap();
        let mut first = FrameClient::from_stream(stream, spec).unwrap();
        first.roundtrip(b"first of the /24").unwrap();
        let stream = connect_from(Some(second), addr).unwrap();
        let mut other = FrameClient::from_stream(stream, spec).unwrap();
        if refused {
            let _ = other.send(b"let me in");
            other
                .expect_closed(Duration::from_secs(2))
                .expect("refused: same /24");
            assert!(
                wait_until(Duration::from_secs(2), || server.events().rejects()
                    == [RejectReason::MaxPerIp]),
                "{}: /{v4}: {:?}",
                D::NAME,
                server.events().rejects()
            );
        } else {
            other.roundtrip(b"own /32").unwrap();
            assert!(server.events().rejects().is_empty(), "{}: /{v4}", D::NAME);
        }
        first.roundtrip(b"still served").unwrap();
    }
}

/// Per-IP flood: with 3 connections allowed per address, 127.0.0.1's
/// flood is refused (`MaxPerIp`) while 127.0.0.2 and 127.0.0.3 (distinct
/// addresses on Linux's loopback) are admitted up to their own limit; then
/// the same over IPv6 on `::1`, where the driver can listen there.
pub fn per_ip_flood<D: TestDriver>() {
    const FLOOD: usize = 40;
    let spec = length_spec(4, 0);
    let mut cfg = config(spec);
    cfg.max_connections_per_ip = Some(PER_IP);
    let server = D::start_echo(cfg);
    let addr = server.addr();
    let one = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let (s1, mut h1) = fill_from::<D>(&server, spec, one, FLOOD, 11);
    let mut others = Vec::new();
    for last in [2, 3] {
        let local = IpAddr::V4(Ipv4Addr::new(127, 0, 0, last));
        let bindable = Socket::new(Domain::IPV4, Type::STREAM, None)
            .and_then(|s| s.bind(&SocketAddr::new(local, 0).into()));
        if let Err(e) = bindable {
            eprintln!(
                "{}: per-IP from {local} skipped: cannot bind it ({e})",
                D::NAME
            );
            continue;
        }
        others.push(fill_from::<D>(
            &server,
            spec,
            local,
            2,
            12 + u64::from(last),
        ));
    }
    for c in &mut h1 {
        c.roundtrip(b"127.0.0.1 still served").unwrap();
    }
    steady_ok::<D, _>(&server, s1.finish());
    drop(h1);
    let mut admitted_v4 = PER_IP;
    for (s, h) in others {
        steady_ok::<D, _>(&server, s.finish());
        drop(h);
        admitted_v4 += PER_IP;
    }
    // 127.0.0.1's slots are free again.
    assert!(wait_until(Duration::from_secs(5), || server.stats().open() == 0));
    serves_new_client_when_free::<D>(addr, spec);
    expect_closes::<D>(&server, &[(CloseReason::PeerClosed, admitted_v4 + 1)]);
    drop(server);

    // IPv6: the limit must hold for IPv6 peers too.
    let v6 = IpAddr::V6(Ipv6Addr::LOCALHOST);
    let mut cfg = config(spec);
    cfg.max_connections_per_ip = Some(PER_IP);
    let server = match D::start_echo_on(SocketAddr::new(v6, 0), cfg) {
        None => {
            eprintln!(
                "{}: per-IP over IPv6 skipped: the adapter cannot choose its address",
                D::NAME
            );
            return;
        }
        Some(Err(e)) => {
            eprintln!(
                "{}: per-IP over IPv6 skipped: cannot listen on [::1] ({e})",
                D::NAME
            );
            return;
        }
        Some(Ok(server)) => server,
    };
    let (s6, mut h6) = fill_from::<D>(&server, spec, v6, 10, 20);
    for c in &mut h6 {
        c.roundtrip(b"::1 still served").unwrap();
    }
    steady_ok::<D, _>(&server, s6.finish());
    drop(h6);
    assert!(wait_until(Duration::from_secs(5), || server.stats().open() == 0));
    serves_new_client_when_free::<D>(server.addr(), spec);
    expect_closes::<D>(&server, &[(CloseReason::PeerClosed, PER_IP + 1)]);
    assert_eq!(server.stats().rejected(RejectReason::MaxPerIp), 10);
    eprintln!(
        "{}: per-IP limit held on [::1] too ({PER_IP} admitted, 10 refused)",
        D::NAME
    );
}

/// Abrupt resets (SO_LINGER 0, then close) in the middle of a frame, some
/// with replies still unread: each such connection closes with `Reset` or
/// `PeerClosed`, and nothing else is disturbed.
pub fn reset_mid_frame<D: TestDriver>() {
    const RESETS: usize = 10;
    let spec = length_spec(4, 0);
    let mut server = run_case::<D>(config(spec), 13, |server| {
        for i in 0..RESETS {
            let mut s = raw_connect(server.addr());
            ping(&mut s, spec);
            if i % 2 == 1 {
                // Replies the peer will never read.
                for _ in 0..20 {
                    s.write_all(&encode(spec, &[9; 500])).unwrap();
                }
            }
            let mut partial = encode(spec, &[5; 800]);
            partial.truncate(300);
            s.write_all(&partial).unwrap();
            reset(s);
        }
        let ok = wait_until(Duration::from_secs(5), || {
            let ev = server.events();
            ev.closed(CloseReason::Reset) + ev.closed(CloseReason::PeerClosed) == RESETS
        });
        assert!(ok, "{}: closes {:?}", D::NAME, server.events().closes());
        eprintln!(
            "{}: {RESETS} resets mid-frame reported as {:?}",
            D::NAME,
            tally(&server.events().closes())
        );
        let ev = server.events();
        vec![
            (CloseReason::Reset, ev.closed(CloseReason::Reset)),
            (CloseReason::PeerClosed, ev.closed(CloseReason::PeerClosed)),
        ]
    });
    let (_, stats) = server.shutdown(Duration::from_secs(2));
    assert_eq!(
        stats.closed(CloseReason::Reset) + stats.closed(CloseReason::PeerClosed),
        (RESETS + STEADY + 1) as u64
    );
    assert_eq!(stats.accepted, (RESETS + STEADY + 1) as u64);
}

/// Half-close: a client writes 300 frames (more than the reply buffer
/// holds) and shuts its sending side; every reply still comes back, in
/// order, then the end of stream, and the server reports `PeerClosed`. Also
/// with frames and FIN in one go, before the server has read anything.
pub fn half_close_after_sending<D: TestDriver>() {
    const FRAMES: usize = 300;
    let spec = length_spec(4, 0);
    let mut cfg = config(spec);
    cfg.tx_buffer = 2 * MAX;
    let mut server = run_case::<D>(cfg, 14, |server| {
        for (variant, seed) in [("paced", 1u64), ("all at once", 2)] {
            let mut rng = Rng::new(seed);
            let frames: Vec<Vec<u8>> = (0..FRAMES)
                .map(|_| {
                    let len = rng.upto(MAX - 4);
                    payload(spec, &mut rng, len)
                })
                .collect();
            let mut c = FrameClient::connect_with(server.addr(), spec).unwrap();
            let mut writer = c.stream().try_clone().unwrap();
            let wire: Vec<u8> = frames.iter().flat_map(|f| encode(spec, f)).collect();
            let paced = variant == "paced";
            let sender = thread::spawn(move || {
                if paced {
                    for chunk in wire.chunks(777) {
                        writer.write_all(chunk)?;
                    }
                } else {
                    writer.write_all(&wire)?;
                }
                writer.shutdown(Shutdown::Write)
            });
            for (i, f) in frames.iter().enumerate() {
                let reply = c
                    .recv()
                    .unwrap_or_else(|e| panic!("{}: {variant}: reply {i}: {e}", D::NAME))
                    .unwrap_or_else(|| panic!("{}: {variant}: closed at reply {i}", D::NAME));
                assert!(reply == &f[..], "{}: {variant}: reply {i} differs", D::NAME);
            }
            sender.join().unwrap().expect("send and shut down");
            let end = c.recv();
            assert!(
                matches!(end, Ok(None)),
                "{}: {variant}: expected the end of stream, got {end:?}",
                D::NAME
            );
        }
        vec![(CloseReason::PeerClosed, 2)]
    });
    let (_, stats) = server.shutdown(Duration::from_secs(2));
    assert_eq!(
        stats.closed(CloseReason::PeerClosed),
        (STEADY + 1 + 2) as u64
    );
}

/// A burst of 10 000 tiny frames (0 to 7 bytes of payload) in one write:
/// all echoed, in order.
pub fn tiny_frame_burst<D: TestDriver>() {
    const FRAMES: usize = 10_000;
    let spec = length_spec(4, 0);
    let mut server = run_case::<D>(config(spec), 15, |server| {
        let mut rng = Rng::new(16);
        let frames: Vec<Vec<u8>> = (0..FRAMES)
            .map(|_| {
                let len = rng.upto(7);
                payload(spec, &mut rng, len)
            })
            .collect();
        let wire: Vec<u8> = frames.iter().flat_map(|f| encode(spec, f)).collect();
        let mut c = FrameClient::connect_with(server.addr(), spec).unwrap();
        let mut writer = c.stream().try_clone().unwrap();
        let start = Instant::now();
        let sender = thread::spawn(move || writer.write_all(&wire));
        for (i, f) in frames.iter().enumerate() {
            let reply = c
                .recv()
                .unwrap_or_else(|e| panic!("{}: reply {i}: {e}", D::NAME))
                .unwrap_or_else(|| panic!("{}: closed at reply {i}", D::NAME));
            assert!(reply == &f[..], "{}: reply {i} differs", D::NAME);
        }
        sender.join().unwrap().unwrap();
        eprintln!(
            "{}: {FRAMES} tiny frames echoed in {:?}",
            D::NAME,
            start.elapsed()
        );
        vec![(CloseReason::PeerClosed, 1)]
    });
    let (_, stats) = server.shutdown(Duration::from_secs(2));
    assert!(stats.frames_in >= FRAMES as u64);
    assert_eq!(stats.frames_in, stats.frames_out);
}

/// Oversize under `Oversize::Skip`: the oversized frames (a length header
/// over the maximum, then its body in pieces; a line without its line feed
/// for longer than the maximum) are dropped as they arrive, the connection
/// stays open, and the frames after them are echoed.
pub fn oversize_skip_keeps_connection<D: TestDriver>() {
    for spec in [
        length_spec(4, 0).with_oversize(Oversize::Skip),
        CodecSpec::lines(MAX).with_oversize(Oversize::Skip),
    ] {
        let mut server = run_case::<D>(config(spec), 16, |server| {
            let mut s = raw_connect(server.addr());
            ping(&mut s, spec);
            let oversized = match spec {
                CodecSpec::LengthField(_) => {
                    let mut f = (3 * MAX as u32).to_be_bytes().to_vec();
                    f.resize(4 + 3 * MAX, b'o');
                    f
                }
                _ => {
                    let mut f = vec![b'o'; 3 * MAX];
                    f.push(b'\n');
                    f
                }
            };
            for piece in oversized.chunks(700) {
                s.write_all(piece).unwrap();
                thread::sleep(Duration::from_millis(2));
            }
            let after = encode(spec, b"after the skipped frame");
            s.write_all(&after).unwrap();
            let mut back = vec![0; after.len()];
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            s.read_exact(&mut back).unwrap_or_else(|e| {
                panic!("{}: {spec:?}: frame after a skipped one: {e}", D::NAME)
            });
            assert_eq!(back, after, "{}: {spec:?}", D::NAME);
            ping(&mut s, spec);
            vec![(CloseReason::PeerClosed, 1)]
        });
        let (_, stats) = server.shutdown(Duration::from_secs(2));
        assert_eq!(stats.closed(CloseReason::FrameTooLarge), 0);
    }
}

/// Frames of the maximum size when it exceeds the default 8 KiB buffers:
/// `ServerConfig` promises an rx buffer of at least one maximum frame and a
/// reply buffer of at least two, so every such frame is echoed.
pub fn max_size_frames_default_buffers<D: TestDriver>() {
    const BIG: usize = 20 * 1024;
    let spec = CodecSpec::LengthField(LengthFieldConfig::new(4, Endian::Big).max_frame(BIG));
    let cfg = config(spec);
    assert_eq!(cfg.tx_buffer_len(), 2 * BIG);
    let mut server = run_case::<D>(cfg, 17, |server| {
        let mut c = FrameClient::connect_with(server.addr(), spec).unwrap();
        let mut rng = Rng::new(18);
        for len in [BIG - 4, 8 * 1024, BIG - 4, 12 * 1024, BIG - 5] {
            let p = payload(spec, &mut rng, len);
            c.roundtrip(&p)
                .unwrap_or_else(|e| panic!("{}: echo of {len} bytes: {e}", D::NAME));
        }
        vec![(CloseReason::PeerClosed, 1)]
    });
    server.shutdown(Duration::from_secs(2));
}

/// Shutdown with offenders connected and no timeouts configured: a client
/// that never reads (the server's writes to it are blocked), a slow-loris
/// halfway through a frame, and a silent one. `serve` returns within its
/// deadline anyway and every connection is closed (`Local`).
pub fn shutdown_with_offenders_connected<D: TestDriver>() {
    const FRAME: usize = 16 * 1024;
    let spec = CodecSpec::LengthField(LengthFieldConfig::new(4, Endian::Big).max_frame(FRAME));
    let mut cfg = config(spec);
    cfg.tx_buffer = 2 * FRAME;
    let mut server = D::start_echo(cfg);
    let addr = server.addr();
    // The mute client: push until the server stops taking bytes.
    let mut mute = raw_connect(addr);
    mute.set_write_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let frame = encode(spec, &vec![b'm'; FRAME - 4]);
    let start = Instant::now();
    let mut pushed = 0;
    while start.elapsed() < Duration::from_secs(10) {
        match mute.write(&frame) {
            Ok(n) => pushed += n,
            Err(_) => break,
        }
    }
    assert!(pushed > 0);
    let mut loris = raw_connect(addr);
    ping(&mut loris, spec);
    loris.write_all(&[0, 0, 1, 0, b'l']).unwrap();
    let mut silent = raw_connect(addr);
    ping(&mut silent, spec);
    assert!(wait_until(Duration::from_secs(5), || server
        .stats()
        .accepted
        == 3));
    let deadline = Duration::from_millis(800);
    let (took, stats) = server.shutdown(deadline);
    assert!(
        took < deadline + Duration::from_millis(500),
        "{}: serve returned after {took:?} (deadline {deadline:?})",
        D::NAME
    );
    for (name, s) in [("loris", &mut loris), ("silent", &mut silent)] {
        wait_closed(s, Duration::from_secs(2))
            .unwrap_or_else(|e| panic!("{}: {name} after shutdown: {e}", D::NAME));
    }
    // The mute client's socket is closed too (it may hold replies first).
    let mut buf = vec![0u8; 1 << 20];
    mute.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let closed = loop {
        match mute.read(&mut buf) {
            Ok(0) => break true,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                break matches!(
                    e.kind(),
                    io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted
                )
            }
        }
    };
    assert!(
        closed,
        "{}: the mute client's socket was left open",
        D::NAME
    );
    assert_eq!(stats.open(), 0, "{}: {stats}", D::NAME);
    expect_closes::<D>(&server, &[(CloseReason::Local, 3)]);
}

/// A reader that takes one byte now and then: it keeps its connection
/// moving, so no idle timer would ever fire, but the replies queued for it
/// do not leave within the write-stall timeout, and it is closed with
/// `WriteStall` while the others keep every byte.
pub fn one_byte_reader_closed_by_write_stall<D: TestDriver>() {
    const FRAME: usize = 16 * 1024;
    let spec = CodecSpec::LengthField(LengthFieldConfig::new(4, Endian::Big).max_frame(FRAME));
    let mut cfg = config(spec);
    cfg.rx_buffer = FRAME;
    cfg.tx_buffer = 2 * FRAME;
    cfg.limits.idle_timeout = None;
    cfg.limits.write_stall_timeout = Some(Duration::from_millis(600));
    let mut server = run_case::<D>(cfg, 11, |server| {
        let mut s = raw_connect(server.addr());
        s.set_write_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        let frame = encode(spec, &vec![b's'; FRAME - 4]);
        let start = Instant::now();
        // Requests as fast as they are taken, until both directions' kernel
        // buffers are full and the server stops reading (its replies wait).
        while start.elapsed() < Duration::from_secs(5) {
            match s.write(&frame) {
                Ok(_) => {}
                Err(e) if crate::timed_out(&e) => break,
                Err(e) => panic!("{}: write failed before the reader slowed: {e}", D::NAME),
            }
        }
        // Then one reply byte a period.
        let filled = start.elapsed();
        let slow = Instant::now();
        let mut byte = [0u8; 1];
        let closed = loop {
            assert!(
                slow.elapsed() < Duration::from_secs(10),
                "{}: a one-byte reader still served after {:?} (filled in {filled:?}; {})",
                D::NAME,
                slow.elapsed(),
                server.stats()
            );
            // What the kernel holds for it comes before the server's close,
            // so the server's record says when it was closed.
            if server.events().closed(CloseReason::WriteStall) == 1 {
                break slow.elapsed();
            }
            match s.read(&mut byte) {
                Ok(0) => break slow.elapsed(),
                Ok(_) => thread::sleep(Duration::from_millis(50)),
                Err(e) if crate::timed_out(&e) => {}
                Err(_) => break slow.elapsed(),
            }
        };
        eprintln!("{}: one-byte reader closed after {closed:?}", D::NAME);
        vec![(CloseReason::WriteStall, 1)]
    });
    let (_, stats) = server.shutdown(Duration::from_secs(2));
    assert_eq!(stats.closed(CloseReason::WriteStall), 1);
}

/// A peer that announces a frame over the maximum under `Oversize::Skip`
/// and trickles it: the frame is skipped as it arrives, but the read timer
/// runs while it is, so the peer is closed with `ReadTimeout` instead of
/// being skipped forever.
pub fn trickle_under_skip_closed_by_read_timeout<D: TestDriver>() {
    let spec = length_spec(4, 0).with_oversize(Oversize::Skip);
    let mut cfg = config(spec);
    cfg.limits.read_timeout = Some(Duration::from_millis(400));
    let mut server = run_case::<D>(cfg, 12, |server| {
        let mut s = raw_connect(server.addr());
        ping(&mut s, spec);
        let mut writer = s.try_clone().unwrap();
        let trickle = thread::spawn(move || {
            // A header announcing 1 MiB, then a byte every 50 ms.
            let _ = writer.write_all(&(1u32 << 20).to_be_bytes());
            for _ in 0..100 {
                if writer.write_all(b"t").is_err() {
                    break;
                }
                thread::sleep(Duration::from_millis(50));
            }
        });
        let closed = wait_closed(&mut s, Duration::from_secs(4));
        let _ = s.shutdown(Shutdown::Both);
        trickle.join().unwrap();
        let (took, _) = closed
            .unwrap_or_else(|e| panic!("{}: an oversized frame trickled under Skip: {e}", D::NAME));
        assert!(
            took >= Duration::from_millis(350) && took < Duration::from_millis(2500),
            "{}: closed after {took:?} (read timeout 400 ms)",
            D::NAME
        );
        vec![(CloseReason::ReadTimeout, 1)]
    });
    let (_, stats) = server.shutdown(Duration::from_secs(2));
    assert_eq!(stats.closed(CloseReason::ReadTimeout), 1);
}

/// A peer that vanishes in the middle of a frame without closing (a
/// half-open connection: power lost, cable pulled) under the server's
/// default settings: the default read timeout closes it (30 s; the test
/// keeps the defaults but that one, scaled down, and checks the rest).
pub fn half_open_peer_closed_under_defaults<D: TestDriver>() {
    let spec = length_spec(4, 0);
    let defaults = config(spec);
    assert_eq!(
        defaults.limits.read_timeout,
        Some(Duration::from_secs(30)),
        "the default read timeout"
    );
    assert!(defaults.keepalive.is_some(), "keepalive is on by default");
    let mut cfg = defaults;
    cfg.limits.read_timeout = Some(Duration::from_millis(300));
    let mut server = run_case::<D>(cfg, 13, |server| {
        let mut s = raw_connect(server.addr());
        ping(&mut s, spec);
        // Half a frame, then silence: no FIN, no RST.
        s.write_all(&[0, 0, 0, 20, 1, 2, 3]).unwrap();
        let (took, _) = wait_closed(&mut s, Duration::from_secs(4))
            .unwrap_or_else(|e| panic!("{}: half-open peer: {e}", D::NAME));
        assert!(
            took < Duration::from_secs(3),
            "{}: closed after {took:?}",
            D::NAME
        );
        vec![(CloseReason::ReadTimeout, 1)]
    });
    let (_, stats) = server.shutdown(Duration::from_secs(2));
    assert_eq!(stats.closed(CloseReason::ReadTimeout), 1);
}
