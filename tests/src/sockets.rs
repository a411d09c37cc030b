//! What a server does with its sockets: accepting when the process runs
//! out of file descriptors, fitting `max_connections` to the descriptor
//! limit, and TCP keepalive on accepted sockets.
//!
//! The descriptor cases change the process's `RLIMIT_NOFILE`, which the
//! other tests of the binary share, so they run the server in a child
//! process: the test binary itself, started again on one hidden (ignored)
//! test, [`child`], with [`CHILD_ENV`] saying what to do. A driver's file
//! instantiates it once per driver and layout:
//!
//! ```ignore
//! #[test]
//! #[ignore = "a child process of the descriptor tests"]
//! fn descriptor_child() {
//!     fastnet_tests::sockets::child::<Std>();
//! }
//!
//! #[test]
//! fn accept_recovers_when_descriptors_free() {
//!     fastnet_tests::sockets::accept_recovers_when_descriptors_free::<Std>("descriptor_child");
//! }
//! ```
//!
//! The child speaks in lines that start with `child: ` on its standard
//! output, answers `stats` on its standard input, and exits when its
//! standard input closes.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::Duration;

use fastnet_proto::server::ServerConfig;

use crate::{config, served_client, wait_until, FrameClient, TestDriver};

/// The variable that makes [`child`] run, and says which case.
pub const CHILD_ENV: &str = "FASTNET_TESTS_CHILD";

/// Descriptors the accept case leaves the child beyond those it has open
/// once its server runs.
const HEADROOM: u64 = 16;

/// The hidden test a driver's file instantiates for the child process;
/// does nothing unless [`CHILD_ENV`] is set (as when someone runs the
/// ignored tests).
pub fn child<D: TestDriver>() {
    match std::env::var(CHILD_ENV).as_deref() {
        Ok("accept") => accept_child::<D>(),
        Ok("fit") => fit_child::<D>(),
        _ => {}
    }
}

/// Serves the echo server with few descriptors to spare.
#[cfg(unix)]
fn accept_child<D: TestDriver>() {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let server = D::start_echo(config(1024));
    // Once a connection is served every thread and reactor of the server
    // has its descriptors; then only connections take more.
    drop(served_client(server.addr()));
    let open = open_descriptors().expect("count open descriptors");
    let limit = getrlimit(Resource::Nofile);
    let low = Rlimit {
        current: Some(open + HEADROOM),
        maximum: limit.maximum,
    };
    setrlimit(Resource::Nofile, low).expect("lower RLIMIT_NOFILE");
    say(&format!("addr={}", server.addr()));
    for line in std::io::stdin().lock().lines().map_while(Result::ok) {
        if line.trim() != "stats" {
            break;
        }
        let stats = server.stats();
        let cpu = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
        let cpu_us = cpu.tv_sec as u64 * 1_000_000 + cpu.tv_nsec as u64 / 1000;
        say(&format!(
            "accept_errors={} accepted={} cpu_us={cpu_us}",
            stats.accept_errors, stats.accepted
        ));
    }
    // Standard input closed: the parent is done.
    std::process::exit(0);
}

#[cfg(not(unix))]
fn accept_child<D: TestDriver>() {}

/// Binds servers under a low hard limit and reports the values in force.
#[cfg(unix)]
fn fit_child<D: TestDriver>() {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let low = Rlimit {
        current: Some(200),
        maximum: Some(300),
    };
    setrlimit(Resource::Nofile, low).expect("lower RLIMIT_NOFILE");
    for max in [100, 150, 10_000] {
        let mut cfg = config(64);
        cfg.max_connections = max;
        let in_force = D::config_in_force(cfg).max_connections;
        let soft = getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX);
        say(&format!(
            "asked={max} max_connections={in_force} soft={soft}"
        ));
    }
    std::process::exit(0);
}

#[cfg(not(unix))]
fn fit_child<D: TestDriver>() {}

/// A line to the parent.
fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "child: {line}");
    let _ = out.flush();
}

/// Descriptors open in this process, where the system lists them.
fn open_descriptors() -> Option<u64> {
    let dir = ["/proc/self/fd", "/dev/fd"]
        .into_iter()
        .find_map(|d| std::fs::read_dir(d).ok())?;
    Some(dir.count() as u64)
}

/// The child process, killed if the test ends early.
struct ChildProc {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
}

impl ChildProc {
    /// Starts this test binary on `test` (an ignored test that calls
    /// [`child`]) with [`CHILD_ENV`] set to `case`.
    fn start(test: &str, case: &str) -> ChildProc {
        let exe = std::env::current_exe().expect("the test binary");
        let mut child = Command::new(exe)
            .args([
                test,
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, case)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the child");
        let stdout = child.stdout.take().expect("piped");
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                // The harness may have begun the line (`test … `).
                if let Some((_, said)) = line.split_once("child: ") {
                    if tx.send(said.to_owned()).is_err() {
                        break;
                    }
                }
            }
        });
        let stdin = child.stdin.take();
        ChildProc {
            child,
            stdin,
            lines,
        }
    }

    /// The child's next line, within five seconds.
    fn line(&self) -> String {
        self.lines
            .recv_timeout(Duration::from_secs(5))
            .expect("the child answers within 5 s")
    }

    /// The child's counters: (accept errors, accepted, CPU time).
    fn stats(&mut self) -> (u64, u64, Duration) {
        let stdin = self.stdin.as_mut().expect("open");
        writeln!(stdin, "stats").expect("ask the child");
        let line = self.line();
        let field = |name: &str| -> u64 {
            line.split_whitespace()
                .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("no {name} in {line:?}"))
        };
        let cpu = Duration::from_micros(field("cpu_us"));
        (field("accept_errors"), field("accepted"), cpu)
    }

    /// Closes the child's input and waits (up to five seconds) for it to
    /// exit successfully.
    fn finish(mut self) {
        drop(self.stdin.take());
        let exited = wait_until(Duration::from_secs(5), || {
            matches!(self.child.try_wait(), Ok(Some(_)))
        });
        assert!(exited, "the child did not exit");
        let status = self.child.wait().expect("child status");
        assert!(status.success(), "child: {status}");
    }
}

impl Drop for ChildProc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A server out of file descriptors stops accepting without spinning,
/// counts the failures, and serves again by itself once connections
/// close: the connection that waited in the kernel's queue meanwhile is
/// served too. The server runs in a child process (the test binary on the
/// hidden test `child_test`) whose soft `RLIMIT_NOFILE` leaves it a few
/// descriptors.
pub fn accept_recovers_when_descriptors_free<D: TestDriver>(child_test: &str) {
    if !cfg!(unix) {
        eprintln!("{}: skipped, RLIMIT_NOFILE is unix", D::NAME);
        return;
    }
    let mut child = ChildProc::start(child_test, "accept");
    let line = child.line();
    let addr: SocketAddr = line
        .strip_prefix("addr=")
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("{}: child said {line:?}", D::NAME));
    // Connect until a connection is not served: the kernel completes it,
    // the server cannot accept it.
    let mut served = Vec::new();
    let mut stalled = loop {
        assert!(served.len() < 100, "{}: never ran out", D::NAME);
        let mut c = FrameClient::connect(addr, 1024).expect("the kernel accepts");
        c.stream()
            .set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        match c.roundtrip(b"waiting") {
            Ok(()) => served.push(c),
            Err(_) => break c,
        }
    };
    assert!(served.len() >= 4, "{}: {} served", D::NAME, served.len());
    let (errors, accepted, cpu) = child.stats();
    assert!(errors > 0, "{}: no accept error counted", D::NAME);
    assert_eq!(accepted, served.len() as u64 + 1, "{}", D::NAME);
    // Stalled for a second: a few attempts (the pause doubles up to a
    // quarter second), and next to no CPU time; a loop that spins makes
    // thousands and burns the whole second.
    thread::sleep(Duration::from_secs(1));
    let (later, _, cpu_later) = child.stats();
    assert!(
        later - errors <= 12,
        "{}: {} accept errors in a second",
        D::NAME,
        later - errors
    );
    assert!(
        cpu_later - cpu < Duration::from_millis(250),
        "{}: the stalled server used {:?} of CPU in a second",
        D::NAME,
        cpu_later - cpu
    );
    // Free a few descriptors: the waiting connection is served, then new
    // ones.
    served.truncate(served.len() - 4);
    stalled
        .stream()
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let reply = stalled.recv().expect("the waiting connection is served");
    assert_eq!(reply, Some(&b"waiting"[..]), "{}", D::NAME);
    served_client(addr)
        .roundtrip(b"after")
        .expect("a new connection is served");
    for c in &mut served {
        c.roundtrip(b"still").expect("old connections keep working");
    }
    drop((served, stalled));
    child.finish();
}

/// `max_connections` fits the descriptor limit at bind: with a soft limit
/// of 200 and a hard one of 300 (in a child process), at one descriptor a
/// connection 100 connections fit as they are, 150 raise the soft limit as
/// far as they need (64 descriptors are kept for everything else), and
/// 10 000 raise it to the hard limit and are capped to what fits there;
/// the same rule at `per_connection` descriptors a connection.
pub fn max_connections_fits_the_descriptor_limit<D: TestDriver>(
    child_test: &str,
    per_connection: u64,
) {
    if !cfg!(unix) {
        eprintln!("{}: skipped, RLIMIT_NOFILE is unix", D::NAME);
        return;
    }
    let child = ChildProc::start(child_test, "fit");
    let reserve = 64;
    // Each bind sees the soft limit the one before raised.
    let mut soft = 200;
    for asked in [100u64, 150, 10_000] {
        let need = asked * per_connection + reserve;
        let max = if need <= soft {
            asked
        } else {
            soft = need.min(300).max(soft);
            asked.min((soft - reserve) / per_connection)
        };
        assert_eq!(
            child.line(),
            format!("asked={asked} max_connections={max} soft={soft}"),
            "{}",
            D::NAME
        );
    }
    child.finish();
}

/// Accepted sockets have TCP keepalive as configured: on with the idle
/// time given (the kernel's keepalive timer runs, due within it), off
/// with `None`. Seen from the kernel's table of TCP sockets
/// (`/proc/net/tcp`, Linux; skipped elsewhere).
pub fn keepalive_on_accepted_sockets<D: TestDriver>() {
    if !std::path::Path::new("/proc/net/tcp").exists() {
        eprintln!("{}: skipped, no /proc/net/tcp", D::NAME);
        return;
    }
    let mut cfg: ServerConfig = config(1024);
    cfg.keepalive = Some(Duration::from_secs(37));
    let server = D::start_echo(cfg);
    let client = served_client(server.addr());
    let peer = client.stream().local_addr().unwrap();
    let mut seen = None;
    let on = wait_until(Duration::from_secs(2), || {
        seen = tcp_timer(server.addr(), peer);
        matches!(seen, Some((2, _)))
    });
    assert!(on, "{}: no keepalive timer: {seen:?}", D::NAME);
    let (_, due) = seen.unwrap();
    assert!(
        due <= Duration::from_secs(37) && due > Duration::from_secs(30),
        "{}: keepalive due in {due:?}",
        D::NAME
    );
    cfg.keepalive = None;
    let server = D::start_echo(cfg);
    let client = served_client(server.addr());
    let peer = client.stream().local_addr().unwrap();
    let off = wait_until(Duration::from_secs(2), || {
        seen = tcp_timer(server.addr(), peer);
        matches!(seen, Some((0, _)))
    });
    assert!(off, "{}: a timer runs without keepalive: {seen:?}", D::NAME);
}

/// The timer of the IPv4 TCP socket at `local` connected to `remote`, from
/// `/proc/net/tcp`: its kind (0 none, 1 retransmit, 2 keepalive, 4 zero
/// window probe) and when it is due.
fn tcp_timer(local: SocketAddr, remote: SocketAddr) -> Option<(u8, Duration)> {
    let hex = |a: SocketAddr| match a {
        SocketAddr::V4(a) => Some(format!(
            "{:08X}:{:04X}",
            u32::from_ne_bytes(a.ip().octets()),
            a.port()
        )),
        SocketAddr::V6(_) => None,
    };
    let (local, remote) = (hex(local)?, hex(remote)?);
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    table.lines().skip(1).find_map(|row| {
        let cols: Vec<&str> = row.split_whitespace().collect();
        if cols.get(1) != Some(&local.as_str()) || cols.get(2) != Some(&remote.as_str()) {
            return None;
        }
        let (kind, due) = cols.get(5)?.split_once(':')?;
        let kind = u8::from_str_radix(kind, 16).ok()?;
        // In clock ticks of 1/100 s (USER_HZ).
        let ticks = u64::from_str_radix(due, 16).ok()?;
        Some((kind, Duration::from_millis(ticks * 10)))
    })
}
