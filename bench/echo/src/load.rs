//! One measured run: a server under `fastnet bench --json`, with the
//! server's CPU time and peak memory read from `/proc`.

use std::fmt;
use std::io::Read;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::procfs;
use crate::servers::{Binaries, Running, Server};

/// The shape of a load: connections, payload size, requests in flight; in
/// JSON, its text (`1000x512p16t2`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct Shape {
    /// Concurrent connections.
    pub conns: usize,
    /// Payload bytes per request.
    pub size: usize,
    /// Requests in flight per connection.
    pub pipeline: usize,
    /// `fastnet bench --threads` for this load, if not the run's default.
    pub threads: Option<usize>,
}

impl Shape {
    /// The four loads of the benchmark: 1000 and 2000 connections, 50
    /// connections, and 1000 connections with 16 requests pipelined, all
    /// with 512-byte payloads. The pipelined load runs two load threads:
    /// one `fastnet bench` thread is slower than every server at 16
    /// requests in flight (mio raw, the ceiling, measured 1.09x
    /// tokio-util Framed's requests/s with one), so only a load that
    /// saturates the machine shows what a server's CPU per request buys.
    pub const STANDARD: [Shape; 4] = [
        Shape {
            conns: 1000,
            size: 512,
            pipeline: 1,
            threads: None,
        },
        Shape {
            conns: 2000,
            size: 512,
            pipeline: 1,
            threads: None,
        },
        Shape {
            conns: 50,
            size: 512,
            pipeline: 1,
            threads: None,
        },
        Shape {
            conns: 1000,
            size: 512,
            pipeline: 16,
            threads: Some(2),
        },
    ];

    /// Parses `CONNSxSIZE[pK][tN]`: K requests in flight per connection,
    /// N load threads.
    ///
    /// ```
    /// use fastnet_bench_echo::load::Shape;
    /// let s: Shape = "1000x512p16".parse().unwrap();
    /// assert_eq!((s.conns, s.size, s.pipeline, s.threads), (1000, 512, 16, None));
    /// assert_eq!(s.to_string(), "1000x512p16");
    /// assert_eq!("50x512".parse::<Shape>().unwrap().pipeline, 1);
    /// let t: Shape = "1000x512p16t2".parse().unwrap();
    /// assert_eq!((t.pipeline, t.threads), (16, Some(2)));
    /// assert_eq!(t.to_string(), "1000x512p16t2");
    /// assert_eq!("10x64t3".parse::<Shape>().unwrap().threads, Some(3));
    /// assert!("10x64t0".parse::<Shape>().is_err());
    /// ```
    pub fn parse(text: &str) -> Result<Shape, String> {
        let bad = || format!("{text:?} is not CONNSxSIZE[pK][tN] (like 1000x512 or 1000x512p16t2)");
        let (conns, rest) = text.split_once('x').ok_or_else(bad)?;
        let (rest, threads) = match rest.split_once('t') {
            Some((r, t)) => (r, Some(t)),
            None => (rest, None),
        };
        let (size, pipeline) = rest.split_once('p').unwrap_or((rest, "1"));
        let n = |s: &str| s.parse::<usize>().ok().filter(|&n| n > 0).ok_or_else(bad);
        Ok(Shape {
            conns: n(conns)?,
            size: n(size)?,
            pipeline: n(pipeline)?,
            threads: threads.map(n).transpose()?,
        })
    }

    /// Column heading in the tables.
    pub fn label(&self) -> String {
        let mut s = format!("{} conns × {} B", self.conns, self.size);
        if self.pipeline > 1 {
            s += &format!(", pipeline {}", self.pipeline);
        }
        if let Some(t) = self.threads {
            s += &format!(", {t} load threads");
        }
        s
    }
}

impl std::str::FromStr for Shape {
    type Err = String;
    fn from_str(s: &str) -> Result<Shape, String> {
        Shape::parse(s)
    }
}

impl From<Shape> for String {
    fn from(shape: Shape) -> String {
        shape.to_string()
    }
}

impl TryFrom<String> for Shape {
    type Error = String;
    fn try_from(text: String) -> Result<Shape, String> {
        Shape::parse(&text)
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}x{}", self.conns, self.size)?;
        if self.pipeline > 1 {
            write!(f, "p{}", self.pipeline)?;
        }
        if let Some(t) = self.threads {
            write!(f, "t{t}")?;
        }
        Ok(())
    }
}

/// What one run measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Run {
    /// The server.
    pub server: Server,
    /// The load.
    pub shape: Shape,
    /// Repetition number, from 0.
    pub rep: usize,
    /// Requests answered and verified.
    pub requests: u64,
    /// Requests per second over the measured period.
    pub rps: f64,
    /// Latency percentiles in microseconds.
    pub p50_us: u64,
    /// 99th percentile latency in microseconds.
    pub p99_us: u64,
    /// Server CPU time (user + system) over the load, in microseconds,
    /// connecting and closing the load's connections included.
    pub cpu_us: u64,
    /// The user-space part of `cpu_us` (0 in results from before it was
    /// measured).
    #[serde(default)]
    pub cpu_user_us: u64,
    /// Server peak resident memory (VmHWM) in KiB.
    pub peak_rss_kib: u64,
    /// Echoes that differed from the request.
    pub mismatches: u64,
    /// Connections that failed mid-run.
    pub io_errors: u64,
    /// Connections that could not be made.
    pub connect_errors: u64,
    /// Whether the server exited cleanly (status 0) on SIGTERM.
    pub clean_exit: bool,
    /// What went wrong, if the run could not be measured.
    pub error: Option<String>,
}

impl Run {
    /// Server CPU microseconds per request.
    pub fn cpu_us_per_request(&self) -> f64 {
        self.cpu_us as f64 / (self.requests.max(1)) as f64
    }

    /// Server CPU microseconds per request spent in user space.
    pub fn user_us_per_request(&self) -> f64 {
        self.cpu_user_us as f64 / (self.requests.max(1)) as f64
    }

    /// Whether every request was answered correctly and the server
    /// behaved.
    pub fn ok(&self) -> bool {
        self.error.is_none()
            && self.requests > 0
            && self.mismatches == 0
            && self.io_errors == 0
            && self.connect_errors == 0
            && (self.clean_exit || !self.server.exits_cleanly())
    }
}

/// The measured period of a setup load (see [`measure_setup`]): none, so
/// each connection sends its first `pipeline` requests, waits for their
/// echoes and closes.
pub const SETUP_DURATION: Duration = Duration::ZERO;

/// Parses a duration option (`--duration`, `--settle`,
/// `--syscall-duration`) like `500ms`, `5s`, `1.5s` or `1m`: the grammar of
/// `fastnet`'s own options, read by the `humantime` crate.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text)
        .map_err(|e| format!("{text:?} is not a duration like 500ms, 5s or 1m ({e})"))
}

/// Load-generator settings shared by all runs.
#[derive(Debug, Clone)]
pub struct LoadSettings {
    /// Measured period of each run.
    pub duration: Duration,
    /// `fastnet bench --threads`.
    pub threads: usize,
    /// Pause between the listening line and the load.
    pub settle: Duration,
}

/// Starts `server`, loads it with `shape`, measures, stops it.
pub fn measure(
    server: Server,
    shape: Shape,
    rep: usize,
    bins: &Binaries,
    settings: &LoadSettings,
) -> Run {
    let mut run = Run {
        server,
        shape,
        rep,
        requests: 0,
        rps: 0.0,
        p50_us: 0,
        p99_us: 0,
        cpu_us: 0,
        cpu_user_us: 0,
        peak_rss_kib: 0,
        mismatches: 0,
        io_errors: 0,
        connect_errors: 0,
        clean_exit: false,
        error: None,
    };
    let mut running = match Running::start(server, bins) {
        Ok(r) => r,
        Err(e) => {
            run.error = Some(e.to_string());
            return run;
        }
    };
    std::thread::sleep(settings.settle);
    let pid = running.pid();
    let result = (|| -> Result<(), String> {
        let cpu_before = procfs::cpu_time_us(pid).map_err(|e| e.to_string())?;
        let json = bench_json(&running, shape, bins, settings)?;
        let cpu_after = procfs::cpu_time_us(pid).map_err(|e| e.to_string())?;
        run.peak_rss_kib = procfs::status_kib(pid, "VmHWM").map_err(|e| e.to_string())?;
        let cpu = cpu_after.since(cpu_before);
        run.cpu_us = cpu.total_us();
        run.cpu_user_us = cpu.user_us;
        run.requests = json.requests;
        run.rps = json.rps;
        run.p50_us = json.latency_us.p50;
        run.p99_us = json.latency_us.p99;
        run.mismatches = json.mismatches;
        run.io_errors = json.io_errors;
        run.connect_errors = json.connect_errors;
        Ok(())
    })();
    if let Err(e) = result {
        run.error = Some(e);
    }
    if let Some(status) = running.exited() {
        run.error.get_or_insert(format!(
            "the server died during the run ({status}); stderr: {}",
            running.stderr_tail().join(" | ")
        ));
    }
    run.clean_exit = running.stop();
    run
}

/// [`measure`] with a load that only sets its connections up and closes
/// them again ([`SETUP_DURATION`]: connect, TLS handshake for a TLS
/// server, one round trip of `pipeline` requests, close): the server's CPU
/// for the connections themselves, which the full runs include.
pub fn measure_setup(
    server: Server,
    shape: Shape,
    rep: usize,
    bins: &Binaries,
    settings: &LoadSettings,
) -> Run {
    let settings = LoadSettings {
        duration: SETUP_DURATION,
        ..settings.clone()
    };
    measure(server, shape, rep, bins, &settings)
}

/// What the harness reads of `fastnet bench --json` (which prints more).
#[derive(Debug, Clone, Deserialize)]
pub struct BenchJson {
    /// Requests answered and verified.
    pub requests: u64,
    /// Requests per second.
    pub rps: f64,
    /// Latency percentiles, microseconds.
    pub latency_us: BenchLatency,
    /// Echoes that differed from the request.
    pub mismatches: u64,
    /// Connections that failed mid-run.
    pub io_errors: u64,
    /// Connections that could not be made.
    pub connect_errors: u64,
}

/// The latency percentiles the harness reads of `fastnet bench --json`.
#[derive(Debug, Clone, Deserialize)]
pub struct BenchLatency {
    /// Median, microseconds.
    pub p50: u64,
    /// 99th percentile, microseconds.
    pub p99: u64,
}

/// Runs `fastnet bench --json` against a running server (with `--tls
/// --tls-ca` for a TLS server); its JSON report.
pub fn bench_json(
    running: &Running,
    shape: Shape,
    bins: &Binaries,
    settings: &LoadSettings,
) -> Result<BenchJson, String> {
    let mut cmd = bins.load_command();
    cmd.arg("bench");
    if running.server.tls() {
        let files = bins
            .tls
            .as_ref()
            .ok_or("a TLS server without a certificate to trust")?;
        // Verified against the run's CA (the certificate names 127.0.0.1),
        // as a real client would; verifying costs the load, not the server.
        cmd.arg("--tls").arg("--tls-ca").arg(&files.ca);
    }
    let mut child = cmd
        .args(["--addr", &running.addr.to_string()])
        .args(["--codec", running.server.codec()])
        .args(["--conns", &shape.conns.to_string()])
        .args(["--size", &shape.size.to_string()])
        .args(["--pipeline", &shape.pipeline.to_string()])
        .args([
            "--threads",
            &shape.threads.unwrap_or(settings.threads).to_string(),
        ])
        .args([
            "--duration",
            &format!("{}ms", settings.duration.as_millis()),
        ])
        .arg("--json")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start fastnet bench: {e}"))?;
    // Connecting (up to 10 s), the load, draining (up to 2 s), and slack.
    let deadline = Instant::now() + settings.duration + Duration::from_secs(30);
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err("fastnet bench did not finish in time".into());
            }
            Err(e) => return Err(e.to_string()),
        }
    };
    let mut out = String::new();
    let mut err = String::new();
    if let Some(mut s) = child.stdout.take() {
        let _ = s.read_to_string(&mut out);
    }
    if let Some(mut s) = child.stderr.take() {
        let _ = s.read_to_string(&mut err);
    }
    let line = out
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .ok_or_else(|| format!("fastnet bench printed no JSON ({status}): {}", err.trim()))?;
    serde_json::from_str(line).map_err(|e| format!("fastnet bench JSON: {e}: {line}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_as_documented() {
        assert_eq!(parse_duration("300ms"), Ok(Duration::from_millis(300)));
        assert_eq!(parse_duration("0ms"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("3s"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        for bad in ["", "3", "3 parsecs", "-1s"] {
            let e = parse_duration(bad).unwrap_err();
            assert!(e.contains("is not a duration"), "{bad}: {e}");
        }
    }
}
