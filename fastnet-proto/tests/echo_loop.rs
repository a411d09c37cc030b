// Run: cargo test -p fastnet-proto --test echo_loop
//
//! The echo_loop example's server, driven by real clients over loopback:
//! many concurrent clients get every byte back in order, a client that
//! sends an over-long line is disconnected without disturbing the others,
//! and an idle client is closed by the idle timeout.

#[path = "../examples/echo_loop/server.rs"]
mod server;

use fastrand::Rng;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use server::{Config, ServeStats};

const MAX_FRAME: usize = 512;
const CLIENTS: usize = 50;
const LINES: usize = 200;
/// No read may block longer than this: a hang fails instead of stalling.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// A running server and the handle to stop it.
struct Running {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: thread::JoinHandle<io::Result<ServeStats>>,
}

impl Running {
    fn start(config: Config) -> Running {
        let listener = mio::net::TcpListener::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = thread::spawn(move || server::serve(listener, config, flag));
        Running { addr, stop, thread }
    }

    fn stop(self) -> ServeStats {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap().unwrap()
    }
}

fn connect(addr: SocketAddr) -> TcpStream {
    let sock = TcpStream::connect(addr).unwrap();
    sock.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    sock.set_write_timeout(Some(READ_TIMEOUT)).unwrap();
    sock
}

/// `LINES` lines of random length (empty ones too, up to the longest the
/// server takes) and random bytes other than LF and CR, each ended by LF.
/// (A CR before the LF would be stripped with it, so the echo would differ.)
fn script(seed: u64) -> Vec<u8> {
    let mut rng = Rng::with_seed(seed);
    let mut wire = Vec::new();
    for _ in 0..LINES {
        let len = match rng.usize(..10) {
            0 => 0,
            1 => MAX_FRAME - 1,
            _ => rng.usize(..MAX_FRAME),
        };
        wire.extend((0..len).map(|_| loop {
            let b = rng.u8(..);
            if b != b'\n' && b != b'\r' {
                break b;
            }
        }));
        wire.push(b'\n');
    }
    wire
}

/// Sends `wire` in random pieces (splitting lines, joining several) while
/// another thread reads; returns what came back before the server closed.
fn echo_client(addr: SocketAddr, wire: &[u8], seed: u64) -> Vec<u8> {
    let mut sock = connect(addr);
    let mut reader = sock.try_clone().unwrap();
    thread::scope(|s| {
        let got = s.spawn(move || {
            let mut got = Vec::with_capacity(wire.len());
            // Until EOF: the server closes after echoing everything.
            reader.read_to_end(&mut got).unwrap();
            got
        });
        let mut rng = Rng::with_seed(seed);
        let mut rest = wire;
        while !rest.is_empty() {
            let n = match rng.usize(..4) {
                0 => 1 + rng.usize(..8),
                1 => 1 + rng.usize(..MAX_FRAME),
                _ => 1 + rng.usize(..4 * MAX_FRAME),
            }
            .min(rest.len());
            sock.write_all(&rest[..n]).unwrap();
            rest = &rest[n..];
        }
        sock.shutdown(Shutdown::Write).unwrap();
        got.join().unwrap()
    })
}

#[test]
fn many_clients_get_every_byte_back_and_an_oversized_line_is_cut_off() {
    let began = Instant::now();
    let running = Running::start(Config {
        max_frame: MAX_FRAME,
        ..Config::default()
    });
    let addr = running.addr;

    let clients: Vec<_> = (0..CLIENTS as u64)
        .map(|i| {
            thread::spawn(move || {
                let wire = script(i);
                let got = echo_client(addr, &wire, i ^ 0xABCD);
                assert_eq!(got.len(), wire.len(), "client {i}: echoed length");
                assert!(got == wire, "client {i}: echoed bytes differ");
                wire.len() as u64
            })
        })
        .collect();

    // Meanwhile a client that sends a good line, then one longer than the
    // maximum: the good one is echoed, then the server hangs up.
    let mut bad = connect(addr);
    bad.write_all(b"fine\n").unwrap();
    let mut echo = [0u8; 5];
    bad.read_exact(&mut echo).unwrap();
    assert_eq!(&echo, b"fine\n");
    let long = vec![b'x'; MAX_FRAME + 100];
    // The server may close while this is still being written.
    let _ = bad.write_all(&long);
    let mut buf = [0u8; 64];
    match bad.read(&mut buf) {
        Ok(0) => {}
        Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {}
        other => panic!("expected the server to hang up, got {other:?}"),
    }

    let echoed: u64 = clients.into_iter().map(|c| c.join().unwrap()).sum();
    let stats = running.stop();
    assert_eq!(stats.accepted, CLIENTS as u64 + 1);
    assert_eq!(stats.closed.get("peer-closed"), Some(&(CLIENTS as u64)));
    assert_eq!(stats.closed.get("frame-too-large"), Some(&1));
    assert_eq!(stats.closed.values().sum::<u64>(), CLIENTS as u64 + 1);
    assert_eq!(stats.open_at_stop, 0);
    assert_eq!(stats.frames_in, (CLIENTS * LINES) as u64 + 1);
    assert_eq!(stats.frames_out, stats.frames_in);
    assert_eq!(stats.bytes_out, echoed + 5);
    // The oversized line is refused as soon as a maximum frame of it is
    // buffered without a delimiter: nothing more of it is read.
    assert_eq!(stats.bytes_in, echoed + 5 + MAX_FRAME as u64);
    assert!(began.elapsed() < Duration::from_secs(10));
}

#[test]
fn an_idle_client_is_closed_by_the_idle_timeout() {
    let running = Running::start(Config {
        max_frame: 64,
        idle_timeout: Some(Duration::from_millis(100)),
        read_timeout: None,
    });
    let mut sock = connect(running.addr);
    sock.write_all(b"hi\n").unwrap();
    let began = Instant::now();
    let mut got = Vec::new();
    // The echo, then EOF once the connection has been idle long enough.
    sock.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"hi\n");
    let waited = began.elapsed();
    assert!(
        waited >= Duration::from_millis(90),
        "closed after {waited:?}"
    );
    assert!(waited < READ_TIMEOUT);
    let stats = running.stop();
    assert_eq!(stats.closed.get("idle-timeout"), Some(&1));
}

#[test]
fn a_client_that_stops_reading_is_backpressured_then_gets_everything() {
    // Far more than the kernel buffers of both sockets plus the server's
    // tx hold: the server must stop reading while the client is not
    // draining, and resume (from remembered readiness) once it is.
    let running = Running::start(Config {
        max_frame: MAX_FRAME,
        ..Config::default()
    });
    let mut wire = Vec::new();
    for seed in 0..40 {
        wire.extend_from_slice(&script(1000 + seed));
    }
    let mut sock = connect(running.addr);
    let mut writer = sock.try_clone().unwrap();
    let got = thread::scope(|s| {
        let wire = &wire;
        s.spawn(move || {
            writer.write_all(wire).unwrap();
            writer.shutdown(Shutdown::Write).unwrap();
        });
        // Not reading for a while fills every buffer on the way.
        thread::sleep(Duration::from_millis(200));
        let mut got = Vec::with_capacity(wire.len());
        sock.read_to_end(&mut got).unwrap();
        got
    });
    assert_eq!(got.len(), wire.len());
    assert!(got == wire, "echoed bytes differ");
    let stats = running.stop();
    assert_eq!(stats.closed.get("peer-closed"), Some(&1));
    assert!(stats.backpressured > 0, "{stats:?}");
}
