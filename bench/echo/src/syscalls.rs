//! System calls per request: a server traced with `strace -c -f` while it
//! serves a fixed load. Tracing slows the server down a lot, so only the
//! counts mean something, not the times.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::load::{LoadSettings, Shape};
use crate::servers::{Binaries, Running, Server};

/// Calls of one system call in a traced run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Call {
    /// System call name.
    pub name: String,
    /// How many calls.
    pub calls: u64,
    /// How many of them failed (for `read`, mostly `EAGAIN`).
    pub errors: u64,
}

/// What one traced run counted.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Syscalls {
    /// The server.
    pub server: Server,
    /// The load.
    pub shape: Shape,
    /// Requests answered during the traced load.
    pub requests: u64,
    /// Every system call the server made, busiest first (the total excluded).
    pub calls: Vec<Call>,
    /// What went wrong, if anything.
    pub error: Option<String>,
}

impl Syscalls {
    /// All system calls per request.
    pub fn per_request(&self) -> f64 {
        self.calls.iter().map(|c| c.calls).sum::<u64>() as f64 / self.requests.max(1) as f64
    }

    /// Calls of `name` per request.
    pub fn of(&self, name: &str) -> f64 {
        self.calls
            .iter()
            .filter(|c| c.name == name)
            .map(|c| c.calls)
            .sum::<u64>() as f64
            / self.requests.max(1) as f64
    }

    /// Failed calls of `name` per request.
    pub fn errors_of(&self, name: &str) -> f64 {
        self.calls
            .iter()
            .filter(|c| c.name == name)
            .map(|c| c.errors)
            .sum::<u64>() as f64
            / self.requests.max(1) as f64
    }
}

/// Whether `strace` can be run.
pub fn available() -> bool {
    Command::new("strace")
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Starts `server`, attaches `strace -c -f`, loads it with `shape`, and
/// counts its system calls.
pub fn measure(server: Server, shape: Shape, bins: &Binaries, settings: &LoadSettings) -> Syscalls {
    let mut out = Syscalls {
        server,
        shape,
        requests: 0,
        calls: Vec::new(),
        error: None,
    };
    if let Err(e) = trace(&mut out, bins, settings) {
        out.error = Some(e);
    }
    out
}

fn trace(out: &mut Syscalls, bins: &Binaries, settings: &LoadSettings) -> Result<(), String> {
    let running = Running::start(out.server, bins).map_err(|e| e.to_string())?;
    std::thread::sleep(settings.settle);
    let summary = std::env::temp_dir().join(format!(
        "bench-echo-strace-{}-{}.txt",
        std::process::id(),
        out.server.name()
    ));
    let mut strace = Command::new("strace")
        .args(["-c", "-f", "-o"])
        .arg(&summary)
        .args(["-p", &running.pid().to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start strace: {e}"))?;
    // strace reports each attached thread on stderr; give it a moment.
    std::thread::sleep(Duration::from_millis(500));
    let load = crate::load::bench_json(&running, out.shape, bins, settings);
    // SAFETY: kill(2) on our own child's pid; SIGINT makes strace detach
    // and write its summary.
    unsafe {
        libc::kill(strace.id() as libc::pid_t, libc::SIGINT);
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while strace.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = strace.kill();
    let _ = strace.wait();
    let mut err = String::new();
    if let Some(mut s) = strace.stderr.take() {
        let _ = s.read_to_string(&mut err);
    }
    running.stop();
    let json = load?;
    out.requests = json.requests;
    let text = std::fs::read_to_string(&summary)
        .map_err(|e| format!("no strace summary ({e}): {}", err.trim()))?;
    let _ = std::fs::remove_file(&summary);
    out.calls = parse_summary(&text);
    if out.calls.is_empty() {
        return Err(format!("empty strace summary: {}", err.trim()));
    }
    Ok(())
}

/// The rows of an `strace -c` summary table, busiest first.
///
/// ```
/// use fastnet_bench_echo::syscalls::parse_summary;
/// let text = "\
/// % time     seconds  usecs/call     calls    errors syscall
/// ------ ----------- ----------- --------- --------- ----------------
///  60.00    0.600000           6    100000     50000 read
///  40.00    0.400000           4    100000           write
/// ------ ----------- ----------- --------- --------- ----------------
/// 100.00    1.000000           5    200000     50000 total
/// ";
/// let calls = parse_summary(text);
/// assert_eq!(calls.len(), 2);
/// assert_eq!((calls[0].name.as_str(), calls[0].calls, calls[0].errors), ("read", 100000, 50000));
/// assert_eq!((calls[1].name.as_str(), calls[1].errors), ("write", 0));
/// ```
pub fn parse_summary(text: &str) -> Vec<Call> {
    let mut calls: Vec<Call> = text
        .lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 5 || f[0].parse::<f64>().is_err() {
                return None;
            }
            let name = *f.last()?;
            if name == "total" {
                return None;
            }
            let calls = f[3].parse().ok()?;
            let errors = if f.len() >= 6 { f[4].parse().ok()? } else { 0 };
            Some(Call {
                name: name.to_string(),
                calls,
                errors,
            })
        })
        .collect();
    calls.sort_by_key(|c| std::cmp::Reverse(c.calls));
    calls
}
