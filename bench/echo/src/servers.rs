//! The servers under test and how to run one as a child process.

use std::collections::VecDeque;
use std::io::{self, BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::tls::TlsFiles;

/// How long a server may take to print its listening line.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a server may take to exit after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// Lines of a server's stderr kept for error reports.
const STDERR_TAIL: usize = 20;

/// One of the echo servers compared; in JSON, its [`name`](Server::name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "&'static str", try_from = "String")]
pub enum Server {
    /// `fastnet serve --driver smol --codec len=u32be`.
    FastnetSmol,
    /// `fastnet serve --driver std --codec len=u32be`.
    FastnetStd,
    /// `peer-tokio-framed`: tokio + tokio-util `Framed<LengthDelimitedCodec>`.
    TokioFramed,
    /// `peer-tokio-raw`: tokio raw echo.
    TokioRaw,
    /// `peer-mio`: mio raw echo, one event loop per core.
    Mio,
    /// `peer-std`: std thread-per-connection raw echo.
    Std,
    /// fastnet-smol's `bench_server` example with one `smol::Executor`
    /// shared by every thread (`--layout shared`); not in [`Server::ALL`],
    /// run only on request.
    FastnetSmolShared,
    /// `fastnet serve --driver smol --codec len=u32be` with TLS; in
    /// [`Server::TLS`].
    FastnetSmolTls,
    /// `peer-tokio-rustls`: tokio + tokio-rustls +
    /// `Framed<LengthDelimitedCodec>`; in [`Server::TLS`].
    TokioRustls,
    /// `peer-uring`: io_uring raw echo, one ring per core (Linux); not in
    /// [`Server::ALL`], run only on request.
    Uring,
    /// `peer-tokio-fastnet`: [`Server::TokioFramed`] with fastnet-tokio's
    /// `FastnetCodec` over fastnet's length field codec; not in
    /// [`Server::ALL`], run only on request.
    TokioFastnet,
    /// `fastnet serve --driver smol --codec raw`: fastnet-smol echoing raw
    /// bytes, the same work as [`Server::Mio`], so the driver's cost is
    /// measured apart from framing; not in [`Server::ALL`], run only on
    /// request.
    FastnetSmolRaw,
    /// `fastnet serve --driver std --codec raw`: fastnet-std echoing raw
    /// bytes, the same work as [`Server::Std`], so the driver's cost is
    /// measured apart from framing; not in [`Server::ALL`], run only on
    /// request.
    FastnetStdRaw,
    /// `peer-mio --max-frame 65536`: [`Server::Mio`] plus the least work
    /// any framed echo does, the floor of framing on mio raw; not in
    /// [`Server::ALL`], run only on request.
    MioFramed,
    /// `peer-std --max-frame 65536`: [`Server::Std`] plus the least work
    /// any framed echo does, the floor of framing on a thread per
    /// connection; not in [`Server::ALL`], run only on request.
    StdFramed,
}

impl Server {
    /// Every server, in the order runs interleave them and tables list them.
    pub const ALL: [Server; 6] = [
        Server::FastnetSmol,
        Server::FastnetStd,
        Server::TokioFramed,
        Server::TokioRaw,
        Server::Mio,
        Server::Std,
    ];

    /// The servers that speak TLS, compared in a table of their own.
    pub const TLS: [Server; 2] = [Server::FastnetSmolTls, Server::TokioRustls];

    /// Short name, used on the command line (`--servers`) and in JSON.
    pub fn name(self) -> &'static str {
        match self {
            Server::FastnetSmol => "fastnet-smol",
            Server::FastnetStd => "fastnet-std",
            Server::TokioFramed => "tokio-framed",
            Server::TokioRaw => "tokio-raw",
            Server::Mio => "mio",
            Server::Std => "std",
            Server::FastnetSmolShared => "fastnet-smol-shared",
            Server::FastnetSmolTls => "fastnet-smol-tls",
            Server::TokioRustls => "tokio-rustls",
            Server::Uring => "uring",
            Server::TokioFastnet => "tokio-fastnet",
            Server::FastnetSmolRaw => "fastnet-smol-raw",
            Server::FastnetStdRaw => "fastnet-std-raw",
            Server::MioFramed => "mio-framed",
            Server::StdFramed => "std-framed",
        }
    }

    /// The server with this [`name`](Self::name).
    pub fn from_name(name: &str) -> Option<Server> {
        Server::ALL
            .into_iter()
            .chain([
                Server::FastnetSmolShared,
                Server::Uring,
                Server::TokioFastnet,
                Server::FastnetSmolRaw,
                Server::FastnetStdRaw,
                Server::MioFramed,
                Server::StdFramed,
            ])
            .chain(Server::TLS)
            .find(|s| s.name() == name)
    }

    /// Human label for tables and the chart.
    pub fn label(self) -> &'static str {
        match self {
            Server::FastnetSmol => "fastnet-smol",
            Server::FastnetStd => "fastnet-std",
            Server::TokioFramed => "tokio-util Framed",
            Server::TokioRaw => "tokio raw",
            Server::Mio => "mio raw (ceiling)",
            Server::Std => "std thread/conn raw",
            Server::FastnetSmolShared => "fastnet-smol, shared executor",
            Server::FastnetSmolTls => "fastnet-smol TLS",
            Server::TokioRustls => "tokio-rustls Framed",
            Server::Uring => "io_uring raw",
            Server::TokioFastnet => "tokio Framed, fastnet codec",
            Server::FastnetSmolRaw => "fastnet-smol raw",
            Server::FastnetStdRaw => "fastnet-std raw",
            Server::MioFramed => "mio framed (floor)",
            Server::StdFramed => "std framed (floor)",
        }
    }

    /// Whether the server frames (4-byte big-endian length) or echoes raw bytes.
    pub fn framed(self) -> bool {
        matches!(
            self,
            Server::FastnetSmol
                | Server::FastnetStd
                | Server::TokioFramed
                | Server::FastnetSmolShared
                | Server::FastnetSmolTls
                | Server::TokioRustls
                | Server::TokioFastnet
                | Server::MioFramed
                | Server::StdFramed
        )
    }

    /// Whether the server speaks TLS (the load then does too).
    pub fn tls(self) -> bool {
        Server::TLS.contains(&self)
    }

    /// `fastnet bench --codec` value that speaks to this server.
    pub fn codec(self) -> &'static str {
        if self.framed() {
            "len=u32be"
        } else {
            "raw"
        }
    }

    /// Whether this server runs fastnet's code (its own servers, or its
    /// codec under tokio): the servers whose ratios to the peers the
    /// tables show.
    pub fn is_fastnet(self) -> bool {
        matches!(
            self,
            Server::FastnetSmol
                | Server::FastnetStd
                | Server::FastnetSmolShared
                | Server::FastnetSmolTls
                | Server::TokioFastnet
                | Server::FastnetSmolRaw
                | Server::FastnetStdRaw
        )
    }

    /// Whether the server exits with status 0 on SIGTERM (fastnet-smol's
    /// `bench_server` example serves until killed).
    pub fn exits_cleanly(self) -> bool {
        self != Server::FastnetSmolShared
    }

    /// How this server is started, for the report.
    pub fn describe(self) -> &'static str {
        match self {
            Server::FastnetSmol => "`fastnet serve --driver smol --codec len=u32be --max-conns 20000` (the default layout: one thread per core, each with its own edge-triggered epoll reactor and executor)",
            Server::FastnetStd => "`fastnet serve --driver std --codec len=u32be --max-conns 20000` (a pooled thread per connection)",
            Server::TokioFramed => "`peer-tokio-framed`: tokio multi-thread runtime, `Framed<TcpStream, LengthDelimitedCodec>` (u32 BE), `stream.forward(sink)`",
            Server::TokioRaw => "`peer-tokio-raw`: tokio multi-thread runtime, a task per connection, `read` / `write_all` with an 8 KiB buffer",
            Server::Mio => "`peer-mio`: mio, edge-triggered, one event loop per core with its own `SO_REUSEPORT` listener, one shared read buffer per loop",
            Server::Std => "`peer-std`: std, a thread per connection, blocking `read` / `write_all` with an 8 KiB buffer",
            Server::FastnetSmolShared => "`examples/bench_server --layout shared` of fastnet-smol (`len=u32be`): one `smol::Executor` run by every thread, sockets on async-io",
            Server::FastnetSmolTls => "`fastnet serve --driver smol --codec len=u32be --max-conns 20000 --max-handshakes 20000 --tls-cert server.pem --tls-key server.key` (the load opens all its connections at once, more than the default 256 handshakes in progress; the default layout; fastnet-smol's `tls` feature: rustls as a byte transform in the driver, between the socket and the connection state machine)",
            Server::Uring => "`peer-uring`: io_uring, one ring per core with its own `SO_REUSEPORT` listener and a multishot accept (`SINGLE_ISSUER`, `DEFER_TASKRUN`); each connection has one multishot receive into the ring's pool of provided buffers (4096 × 8 KiB) and one send in flight, and each `io_uring_enter` submits every queued operation and reaps every completion",
            Server::TokioFastnet => "`peer-tokio-fastnet`: `peer-tokio-framed` with fastnet-tokio's `FastnetCodec` over fastnet's length field codec (u32 BE) in place of `LengthDelimitedCodec`",
            Server::FastnetSmolRaw => "`fastnet serve --driver smol --codec raw --max-conns 20000` (the default layout; each read's bytes are one frame, echoed as they came: the work of mio raw, without framing)",
            Server::FastnetStdRaw => "`fastnet serve --driver std --codec raw --max-conns 20000` (a pooled thread per connection; each read's bytes are one frame, echoed as they came: the work of std thread/conn raw, without framing)",
            Server::MioFramed => "`peer-mio --max-frame 65536`: mio raw (the same event loops and shared read buffer) plus the least a framed echo does on top of it: each read's complete `len=u32be` frames found and encoded, header and payload copied, into one reply buffer per loop, and a frame cut by the read's end kept in the connection's own buffer until the rest comes; no handler, no limit but the frame's length, no statistics (the floor of any framed echo)",
            Server::StdFramed => "`peer-std --max-frame 65536`: std thread/conn raw (the same thread per connection and 8 KiB read buffer) plus the least a framed echo does on top of it: each read's complete `len=u32be` frames found and encoded, header and payload copied, into the thread's reply buffer, and a frame cut by the read's end kept until the rest comes; no handler, no limit but the frame's length, no statistics (the floor of any framed echo with a thread per connection)",
            Server::TokioRustls => "`peer-tokio-rustls 0 server.pem server.key`: tokio multi-thread runtime, a `tokio_rustls::TlsAcceptor` handshake in each connection's task, then `Framed<TlsStream<TcpStream>, LengthDelimitedCodec>` (u32 BE), `stream.forward(sink)`",
        }
    }

    /// The command that starts this server on a free loopback port; a TLS
    /// server gets the certificate and key of `bins.tls` (without them it
    /// fails to start, and [`Binaries::check`] says why first).
    pub fn command(self, bins: &Binaries) -> Command {
        let mut cmd;
        let (cert, key) = match &bins.tls {
            Some(files) => (files.cert.as_os_str(), files.key.as_os_str()),
            None => ("".as_ref(), "".as_ref()),
        };
        match self {
            Server::FastnetSmol
            | Server::FastnetStd
            | Server::FastnetSmolRaw
            | Server::FastnetStdRaw => {
                cmd = bins.server_command(&bins.fastnet);
                let driver = if matches!(self, Server::FastnetStd | Server::FastnetStdRaw) {
                    "std"
                } else {
                    "smol"
                };
                cmd.args(["serve", "--driver", driver, "--addr", "127.0.0.1:0"])
                    .args(["--codec", self.codec(), "--max-conns", "20000"]);
            }
            Server::TokioFramed
            | Server::TokioRaw
            | Server::Mio
            | Server::Std
            | Server::Uring
            | Server::TokioFastnet
            | Server::MioFramed
            | Server::StdFramed => {
                let peer = match self {
                    Server::TokioFramed => "peer-tokio-framed",
                    Server::TokioFastnet => "peer-tokio-fastnet",
                    Server::TokioRaw => "peer-tokio-raw",
                    Server::Mio | Server::MioFramed => "peer-mio",
                    Server::Std | Server::StdFramed => "peer-std",
                    _ => "peer-uring",
                };
                cmd = bins.server_command(&bins.peer(peer));
                cmd.arg("0");
                if matches!(self, Server::MioFramed | Server::StdFramed) {
                    // The framed peers' largest frame, as `fastnet serve`'s default.
                    cmd.arg("--max-frame")
                        .arg(crate::peer::MAX_FRAME.to_string());
                }
            }
            Server::FastnetSmolShared => {
                cmd = bins.server_command(&bins.bench_server());
                cmd.args(["127.0.0.1:0", "--layout", "shared"]);
            }
            Server::FastnetSmolTls => {
                cmd = bins.server_command(&bins.fastnet);
                cmd.args(["serve", "--driver", "smol", "--addr", "127.0.0.1:0"])
                    .args(["--codec", "len=u32be", "--max-conns", "20000"])
                    .args(["--max-handshakes", "20000"])
                    .arg("--tls-cert")
                    .arg(cert)
                    .arg("--tls-key")
                    .arg(key);
            }
            Server::TokioRustls => {
                cmd = bins.server_command(&bins.peer("peer-tokio-rustls"));
                cmd.arg("0").arg(cert).arg(key);
            }
        }
        cmd
    }
}

/// Where the binaries are.
#[derive(Debug, Clone)]
pub struct Binaries {
    /// The `fastnet` binary (serve and bench).
    pub fastnet: PathBuf,
    /// The directory holding the `peer-*` binaries.
    pub peer_dir: PathBuf,
    /// The certificate and key of the TLS servers, and the CA their load
    /// trusts; needed only to run [`Server::TLS`].
    pub tls: Option<Arc<TlsFiles>>,
    /// CPUs of the servers and of the load generator, if pinned.
    pub pin: Option<Pin>,
}

/// Which CPUs the servers and the load generator run on (`taskset -c`
/// lists, like `0` or `1-3`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pin {
    /// CPUs of every server.
    pub server: String,
    /// CPUs of `fastnet bench`.
    pub load: String,
}

impl Pin {
    /// The server on CPU 0, the load generator on all the others; `None`
    /// with fewer than two CPUs.
    pub fn split(cpus: usize) -> Option<Pin> {
        match cpus {
            0 | 1 => None,
            2 => Some(Pin {
                server: "0".into(),
                load: "1".into(),
            }),
            n => Some(Pin {
                server: "0".into(),
                load: format!("1-{}", n - 1),
            }),
        }
    }
}

impl Binaries {
    /// A command running `program`, on `cpus` if given (through
    /// `taskset`, which execs it: the process id stays the program's).
    fn command_on(program: &Path, cpus: Option<&str>) -> Command {
        match cpus {
            Some(cpus) => {
                let mut cmd = Command::new("taskset");
                cmd.arg("-c").arg(cpus).arg(program);
                cmd
            }
            None => Command::new(program),
        }
    }

    /// A command running server binary `program` (pinned if asked).
    pub fn server_command(&self, program: &Path) -> Command {
        Self::command_on(program, self.pin.as_ref().map(|p| p.server.as_str()))
    }

    /// A command running the load generator (pinned if asked).
    pub fn load_command(&self) -> Command {
        Self::command_on(&self.fastnet, self.pin.as_ref().map(|p| p.load.as_str()))
    }

    /// Path of peer binary `name`.
    pub fn peer(&self, name: &str) -> PathBuf {
        self.peer_dir.join(name)
    }

    /// fastnet-smol's `bench_server` example, built next to `fastnet` by
    /// [`BUILD_COMMAND`](crate::BUILD_COMMAND).
    pub fn bench_server(&self) -> PathBuf {
        self.fastnet
            .parent()
            .unwrap_or(Path::new("."))
            .join("examples")
            .join("bench_server")
    }

    /// Checks every binary exists; says how to build them when not.
    pub fn check(&self, servers: &[Server]) -> Result<(), String> {
        let mut missing = Vec::new();
        let mut need = vec![self.fastnet.clone()];
        // The binaries themselves, not `taskset` when pinned.
        let unpinned = Binaries {
            pin: None,
            ..self.clone()
        };
        need.extend(
            servers
                .iter()
                .map(|s| PathBuf::from(s.command(&unpinned).get_program())),
        );
        for path in need {
            if !Path::new(&path).is_file() {
                missing.push(path.display().to_string());
            }
        }
        if self.tls.is_none() && servers.iter().any(|s| s.tls()) {
            return Err("the TLS servers need a certificate (Binaries::tls)".into());
        }
        if missing.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "missing {}; build them first: {}",
                missing.join(", "),
                crate::BUILD_COMMAND
            ))
        }
    }
}

/// A running server child.
#[derive(Debug)]
pub struct Running {
    child: Child,
    /// Which server.
    pub server: Server,
    /// The address it printed.
    pub addr: SocketAddr,
    stderr: Arc<Mutex<VecDeque<String>>>,
}

impl Running {
    /// Starts `server` and waits for its `listening on ADDR` line.
    pub fn start(server: Server, bins: &Binaries) -> io::Result<Running> {
        let mut child = server
            .command(bins)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                io::Error::new(e.kind(), format!("cannot start {}: {e}", server.name()))
            })?;
        let stderr = Arc::new(Mutex::new(VecDeque::new()));
        let stderr_reader = child.stderr.take().map(|err| {
            let tail = stderr.clone();
            std::thread::spawn(move || keep_tail(err, &tail))
        });
        let (tx, rx) = mpsc::channel();
        if let Some(out) = child.stdout.take() {
            std::thread::spawn(move || {
                let mut announced = false;
                for line in BufReader::new(out).lines() {
                    let Ok(line) = line else { break };
                    if !announced {
                        if let Some(addr) = parse_listening(&line) {
                            announced = true;
                            let _ = tx.send(addr);
                        }
                    }
                }
            });
        }
        let addr = match rx.recv_timeout(START_TIMEOUT) {
            Ok(addr) => addr,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                // The server is gone, so its stderr ends: read all of it
                // (a server that failed at start says why there).
                if let Some(reader) = stderr_reader {
                    let _ = reader.join();
                }
                let tail: Vec<String> = stderr
                    .lock()
                    .map(|t| t.iter().cloned().collect())
                    .unwrap_or_default();
                return Err(io::Error::other(format!(
                    "{} printed no `listening on ADDR` line within {START_TIMEOUT:?}; stderr: {}",
                    server.name(),
                    tail.join(" | ")
                )));
            }
        };
        Ok(Running {
            child,
            server,
            addr,
            stderr,
        })
    }

    /// Process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process has exited already (a crash).
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// The last lines the server wrote to stderr.
    pub fn stderr_tail(&self) -> Vec<String> {
        self.stderr
            .lock()
            .map(|t| t.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Sends SIGTERM and waits for the exit (killing it after a while);
    /// `true` when it exited by itself with status 0.
    pub fn stop(mut self) -> bool {
        if let Ok(Some(status)) = self.child.try_wait() {
            return status.success();
        }
        // SAFETY: kill(2) with our own child's pid; no memory involved.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            match self.child.try_wait() {
                Ok(Some(status)) => return status.success(),
                Ok(None) => std::thread::sleep(Duration::from_millis(10)),
                Err(_) => break,
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        false
    }
}

/// A server that was not [`stop`](Running::stop)ped (a failed assertion, an
/// early return) is killed, so no run leaves a process behind.
impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The address in a `... listening on ADDR ...` line.
///
/// ```
/// use fastnet_bench_echo::servers::parse_listening;
/// assert_eq!(
///     parse_listening("listening on 127.0.0.1:7000").unwrap().port(),
///     7000
/// );
/// assert!(parse_listening("pid 1 listening on 127.0.0.1:1 (Shared)").is_some());
/// assert!(parse_listening("hello").is_none());
/// ```
pub fn parse_listening(line: &str) -> Option<SocketAddr> {
    let rest = &line[line.find("listening on ")? + "listening on ".len()..];
    rest.split_whitespace().next()?.parse().ok()
}

fn keep_tail(stream: impl Read, tail: &Mutex<VecDeque<String>>) {
    for line in BufReader::new(stream).lines() {
        let Ok(line) = line else { break };
        if let Ok(mut t) = tail.lock() {
            if t.len() == STDERR_TAIL {
                t.pop_front();
            }
            t.push_back(line);
        }
    }
}

impl From<Server> for &'static str {
    fn from(server: Server) -> &'static str {
        server.name()
    }
}

impl TryFrom<String> for Server {
    type Error = String;
    fn try_from(name: String) -> Result<Server, String> {
        Server::from_name(&name).ok_or_else(|| format!("no server is named {name:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every server, each once: the default ones, then those run on
    /// request, listed here apart from `from_name`'s own list.
    fn every() -> Vec<Server> {
        let mut all = Server::ALL.to_vec();
        all.extend([
            Server::FastnetSmolShared,
            Server::FastnetSmolTls,
            Server::TokioRustls,
            Server::Uring,
            Server::TokioFastnet,
            Server::FastnetSmolRaw,
            Server::FastnetStdRaw,
            Server::MioFramed,
            Server::StdFramed,
        ]);
        all
    }

    #[test]
    fn every_name_round_trips() {
        let every = every();
        for &s in &every {
            assert_eq!(Server::from_name(s.name()), Some(s), "{}", s.name());
            let json = serde_json::to_value(s).unwrap();
            assert_eq!(json, serde_json::json!(s.name()));
            assert_eq!(serde_json::from_value::<Server>(json).unwrap(), s);
        }
        let mut names: Vec<&str> = every.iter().map(|s| s.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), every.len(), "names are distinct");
        assert_eq!(Server::from_name("mio-framed"), Some(Server::MioFramed));
        assert!(serde_json::from_value::<Server>(serde_json::json!("mio framed")).is_err());
    }

    #[test]
    fn the_framed_floors_are_run_on_request() {
        let bins = Binaries {
            fastnet: PathBuf::from("/bin/fastnet"),
            peer_dir: PathBuf::from("/peers"),
            tls: None,
            pin: None,
        };
        for (s, name, label, peer) in [
            (
                Server::MioFramed,
                "mio-framed",
                "mio framed (floor)",
                "peer-mio",
            ),
            (
                Server::StdFramed,
                "std-framed",
                "std framed (floor)",
                "peer-std",
            ),
        ] {
            assert_eq!((s.name(), s.label()), (name, label));
            assert!(!Server::ALL.contains(&s) && !s.tls());
            assert!(s.framed() && !s.is_fastnet() && s.exits_cleanly());
            assert_eq!(s.codec(), "len=u32be");
            let describe = format!("`{peer} --max-frame 65536`: ");
            assert!(s.describe().starts_with(&describe), "{name}");
            let cmd = s.command(&bins);
            assert_eq!(cmd.get_program(), format!("/peers/{peer}").as_str());
            let args: Vec<_> = cmd.get_args().collect();
            assert_eq!(args, ["0", "--max-frame", "65536"]);
        }
    }
}
