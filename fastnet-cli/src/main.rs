//! `fastnet`: a framed echo server (`serve`) and a verifying load
//! generator (`bench`).
//!
//! Run `cargo run --release -p fastnet-cli -- --help`.

use std::io::IsTerminal;
use std::net::{SocketAddr, ToSocketAddrs};
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use fastnet_cli::load::{self, LoadConfig, Progress};
use fastnet_cli::spec;
use fastnet_proto::codec::CodecSpec;

#[derive(Parser, Debug)]
#[command(
    name = "fastnet",
    version,
    about = "Framed TCP echo server and load generator"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Load an echo server with framed requests and verify every reply.
    Bench(BenchArgs),
}

#[derive(clap::Args, Debug)]
struct BenchArgs {
    /// Server to load.
    #[arg(long)]
    addr: String,
    /// Codec spec (raw, lines, delim=D, fixed=N, len=W[,..], varint[,..], cobs).
    #[arg(long, default_value = "len=u32be")]
    codec: String,
    /// Maximum frame length in bytes.
    #[arg(long, default_value_t = 65536)]
    max_frame: usize,
    /// Connections.
    #[arg(long, default_value_t = 100)]
    conns: usize,
    /// Payload bytes per request.
    #[arg(long, default_value_t = 512)]
    size: usize,
    /// How long to load, like 500ms, 5s, 1m.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    duration: Duration,
    /// Requests in flight per connection.
    #[arg(long, default_value_t = 1)]
    pipeline: usize,
    /// Load-generator threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

/// Parses `500ms`, `30s`, `2m`, or a bare number of seconds.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map_or((s, "s"), |i| s.split_at(i));
    let value: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 500ms, 30s or 2m"))?;
    let secs = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        _ => return Err(format!("{s:?}: unknown unit {unit:?}, expected ms, s or m")),
    };
    Duration::try_from_secs_f64(secs).map_err(|_| format!("{s:?} is out of range"))
}

fn codec(spec_text: &str, max_frame: usize) -> Result<CodecSpec, String> {
    spec::parse(spec_text)
        .map(|c| c.with_max_frame(max_frame))
        .map_err(|e| e.to_string())
}

fn resolve(addr: &str) -> Result<SocketAddr, String> {
    addr.to_socket_addrs()
        .map_err(|e| format!("cannot resolve {addr:?}: {e}"))?
        .next()
        .ok_or_else(|| format!("{addr:?} resolves to no address"))
}

fn bench(args: BenchArgs) -> ExitCode {
    let usage = |msg: String| {
        eprintln!("fastnet bench: {msg}");
        ExitCode::from(2)
    };
    let codec = match codec(&args.codec, args.max_frame) {
        Ok(c) => c,
        Err(m) => return usage(m),
    };
    let addr = match resolve(&args.addr) {
        Ok(a) => a,
        Err(m) => return usage(m),
    };
    if let Err(e) = load::ensure_fd_limit(args.conns, false) {
        return usage(e.to_string());
    }
    let cfg = LoadConfig {
        addr,
        codec,
        conns: args.conns,
        size: args.size,
        duration: args.duration,
        pipeline: args.pipeline,
        threads: args.threads,
    };
    let progress = Arc::new(Progress::default());
    let bar = std::io::stderr()
        .is_terminal()
        .then(|| spawn_progress(progress.clone(), args.duration));
    let result = load::run(&cfg, &progress);
    if let Some((bar, stop)) = bar {
        stop.store(true, Ordering::Relaxed);
        let _ = bar.join();
    }
    let report = match result {
        Ok(r) => r,
        Err(load::LoadError::Config(m)) => return usage(m),
        Err(e) => {
            eprintln!("fastnet bench: {e}");
            return ExitCode::FAILURE;
        }
    };
    if args.json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.to_table());
    }
    if report.failed() {
        eprintln!(
            "fastnet bench: {} mismatches, {} I/O errors",
            report.mismatches, report.io_errors
        );
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// A progress bar on stderr, driven by the load threads' counter.
fn spawn_progress(
    progress: Arc<Progress>,
    duration: Duration,
) -> (
    std::thread::JoinHandle<()>,
    Arc<std::sync::atomic::AtomicBool>,
) {
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = stop.clone();
    let handle = std::thread::spawn(move || {
        let bar = indicatif::ProgressBar::new(duration.as_millis() as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{bar:40} {elapsed} {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        let mut started = None;
        while !stop2.load(Ordering::Relaxed) {
            if started.is_none() && progress.started.load(Ordering::Relaxed) {
                started = Some(std::time::Instant::now());
            }
            if let Some(t) = started {
                bar.set_position(t.elapsed().as_millis() as u64);
                bar.set_message(format!(
                    "{} requests",
                    progress.requests.load(Ordering::Relaxed)
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        bar.finish_and_clear();
    });
    (handle, stop)
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Bench(args) => bench(args),
    }
}
