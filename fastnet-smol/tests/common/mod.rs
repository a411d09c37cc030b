//! Helpers shared by the integration tests: a server on its own threads,
//! blocking line clients with bounded waits.
#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread::JoinHandle;
use std::time::Duration;

use fastnet_smol::{Handler, ServerBuilder, ShutdownHandle, StatsSnapshot};

/// Upper bound for any single wait in a test.
pub const WAIT: Duration = Duration::from_secs(5);

pub struct Running {
    pub addr: SocketAddr,
    pub shutdown: ShutdownHandle,
    pub thread: JoinHandle<std::io::Result<StatsSnapshot>>,
}

impl Running {
    /// Shuts down with `deadline` and returns the final statistics.
    pub fn stop(self, deadline: Duration) -> StatsSnapshot {
        self.shutdown.shutdown(deadline);
        self.thread.join().unwrap().unwrap()
    }
}

/// Binds `builder` and runs `handler` on two executor threads.
pub fn start<H: Handler>(builder: ServerBuilder, handler: H) -> Running {
    let server = builder.workers(2).bind().unwrap();
    let addr = server.local_addr();
    let shutdown = server.shutdown_handle();
    let thread = std::thread::spawn(move || server.run(handler));
    Running {
        addr,
        shutdown,
        thread,
    }
}

/// A blocking line client with bounded waits.
pub struct LineClient {
    pub reader: BufReader<TcpStream>,
    pub writer: TcpStream,
}

impl LineClient {
    pub fn connect(addr: SocketAddr) -> Self {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(WAIT)).unwrap();
        s.set_nodelay(true).unwrap();
        LineClient {
            reader: BufReader::new(s.try_clone().unwrap()),
            writer: s,
        }
    }

    pub fn send(&mut self, line: &str) {
        self.writer.write_all(line.as_bytes()).unwrap();
        self.writer.write_all(b"\n").unwrap();
    }

    pub fn line(&mut self) -> String {
        let mut s = String::new();
        let n = self.reader.read_line(&mut s).unwrap();
        assert!(n > 0, "unexpected EOF");
        s.trim_end_matches('\n').to_string()
    }

    /// Reads until EOF (or reset); fails on timeout.
    pub fn expect_closed(&mut self) {
        let mut rest = Vec::new();
        match self.reader.read_to_end(&mut rest) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            Err(e) => panic!("expected close, got {e}"),
        }
    }
}

/// Waits until `cond` holds, polling; fails after [`WAIT`].
pub fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !cond() {
        assert!(start.elapsed() < WAIT, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// A small deterministic generator (xorshift64*).
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}
