//! Memory per idle connection: open many connections to a fresh server,
//! each does one verified round trip and then stays idle; the growth of the
//! server's resident memory divided by the number of connections.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::procfs;
use crate::servers::{Binaries, Running, Server};

/// Payload of the one round trip each idle connection makes.
pub const PAYLOAD: usize = 512;
/// Threads opening connections.
const OPENERS: usize = 4;

/// What one idle measurement found.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Idle {
    /// The server.
    pub server: Server,
    /// Repetition number, from 0.
    pub rep: usize,
    /// Connections asked for.
    pub conns: usize,
    /// Connections that made their round trip correctly and stayed open.
    pub open: usize,
    /// Server resident memory before the connections, KiB.
    pub rss_before_kib: u64,
    /// Server resident memory with every connection idle, KiB.
    pub rss_after_kib: u64,
    /// Whether the server exited cleanly (status 0) on SIGTERM.
    pub clean_exit: bool,
    /// What went wrong, if anything.
    pub error: Option<String>,
}

impl Idle {
    /// Resident bytes per idle connection.
    pub fn bytes_per_conn(&self) -> f64 {
        self.rss_after_kib.saturating_sub(self.rss_before_kib) as f64 * 1024.0
            / self.open.max(1) as f64
    }

    /// Whether every connection made its round trip and the server behaved.
    pub fn ok(&self) -> bool {
        self.error.is_none()
            && self.open == self.conns
            && (self.clean_exit || !self.server.exits_cleanly())
    }
}

/// Starts `server`, opens `conns` idle connections, reads its memory,
/// closes them and stops it. `settle` is how long to wait before each
/// memory reading.
pub fn measure(
    server: Server,
    conns: usize,
    rep: usize,
    bins: &Binaries,
    settle: Duration,
) -> Idle {
    let mut idle = Idle {
        server,
        rep,
        conns,
        open: 0,
        rss_before_kib: 0,
        rss_after_kib: 0,
        clean_exit: false,
        error: None,
    };
    let mut running = match Running::start(server, bins) {
        Ok(r) => r,
        Err(e) => {
            idle.error = Some(e.to_string());
            return idle;
        }
    };
    std::thread::sleep(settle);
    let pid = running.pid();
    let result = (|| -> io::Result<Vec<TcpStream>> {
        idle.rss_before_kib = procfs::status_kib(pid, "VmRSS")?;
        let streams = open(running.addr, conns, server.framed());
        std::thread::sleep(settle);
        idle.rss_after_kib = procfs::status_kib(pid, "VmRSS")?;
        Ok(streams)
    })();
    match result {
        Ok(streams) => {
            idle.open = streams.len();
            if idle.open < conns {
                idle.error = Some(format!(
                    "only {} of {conns} connections made their round trip",
                    idle.open
                ));
            }
            drop(streams);
        }
        Err(e) => idle.error = Some(e.to_string()),
    }
    if let Some(status) = running.exited() {
        idle.error.get_or_insert(format!(
            "the server died ({status}); stderr: {}",
            running.stderr_tail().join(" | ")
        ));
    }
    idle.clean_exit = running.stop();
    idle
}

/// Opens `conns` connections to `addr`, each doing one verified round
/// trip of a [`PAYLOAD`]-byte request (length-prefixed when `framed`);
/// returns those that succeeded, still open.
pub fn open(addr: SocketAddr, conns: usize, framed: bool) -> Vec<TcpStream> {
    let threads = OPENERS.min(conns.max(1));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let mine = (t..conns).step_by(threads).count();
            std::thread::spawn(move || {
                (0..mine)
                    .filter_map(|i| round_trip(addr, framed, (t * 7919 + i) as u32).ok())
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    handles
        .into_iter()
        .flat_map(|h| h.join().unwrap_or_default())
        .collect()
}

/// Connects, sends one request, checks the echo; the open stream.
fn round_trip(addr: SocketAddr, framed: bool, seed: u32) -> io::Result<TcpStream> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(10))?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut request = Vec::with_capacity(PAYLOAD + 4);
    if framed {
        request.extend_from_slice(&(PAYLOAD as u32).to_be_bytes());
    }
    let mut x = seed.wrapping_mul(2_654_435_761) | 1;
    request.extend((0..PAYLOAD).map(|_| {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        x as u8
    }));
    stream.write_all(&request)?;
    let mut reply = vec![0u8; request.len()];
    stream.read_exact(&mut reply)?;
    if reply != request {
        return Err(io::Error::other("echo differs from request"));
    }
    Ok(stream)
}
