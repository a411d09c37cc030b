//! `fastnet`: a framed echo server (`serve`) and a verifying load
//! generator (`bench`).
//!
//! Run `cargo run --release -p fastnet-cli -- --help`.

use std::io::IsTerminal;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::mpsc::RecvTimeoutError;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use fastnet_cli::echo::{self, Driver, EchoConfig};
use fastnet_cli::load::{self, LoadConfig, Progress};
use fastnet_cli::tls::{self, Verify};
use fastnet_cli::{duration, spec};
use fastnet_proto::codec::{CodecSpec, Oversize};
use fastnet_proto::connection::Limits;
use fastnet_proto::server::StatsSnapshot;
use fastnet_std::tls::TlsServerConfig;

/// What `-h` says after the options; `--help` shows [`spec::HELP`] there.
const MORE_HELP: &str = "Codec specs, examples and durations: see --help.";

/// How long a graceful shutdown may take before connections are cut.
const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(5);

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
    /// Serve framed echo: every decoded frame goes back, encoded with the reply codec.
    Serve(ServeArgs),
    /// Load an echo server with framed requests and verify every reply.
    ///
    /// Exits with 0 when every connection was established, every reply was
    /// the echo of its request and at least one request completed; with 1,
    /// saying which of these failed on stderr, otherwise; with 2 on a usage
    /// error.
    Bench(BenchArgs),
}

#[derive(clap::Args, Debug)]
#[command(after_help = MORE_HELP, after_long_help = spec::HELP)]
struct ServeArgs {
    /// Driver.
    #[arg(long, value_enum, default_value = "smol")]
    driver: Driver,
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:7878")]
    addr: String,
    /// Codec spec of incoming frames (raw, lines, delim=D, fixed=N, len=W[,..], varint[,..], cobs; see below).
    #[arg(long, default_value = "len=u32be")]
    codec: String,
    /// Codec spec of replies (default: the same as --codec).
    #[arg(long)]
    reply_codec: Option<String>,
    /// Maximum frame length in bytes.
    #[arg(long, default_value_t = 65536)]
    max_frame: usize,
    /// What to do with an oversized frame.
    #[arg(long, value_enum, default_value = "close")]
    oversize: OversizeArg,
    /// Most connections at once.
    #[arg(long)]
    max_conns: Option<usize>,
    /// Most connections at once from one IP address.
    #[arg(long)]
    max_conns_per_ip: Option<usize>,
    /// Connections the kernel may queue before they are accepted (the
    /// listen backlog, capped by the kernel) [default: 1024].
    #[arg(long)]
    listen_backlog: Option<u32>,
    /// Close a connection after this long without traffic (like 30s).
    #[arg(long, value_parser = duration::parse)]
    idle_timeout: Option<Duration>,
    /// Close a connection whose frame is not complete after this long.
    #[arg(long, value_parser = duration::parse)]
    read_timeout: Option<Duration>,
    /// Worker threads (std: pool limit, default one per connection; smol: executor threads, default one per core).
    #[arg(long)]
    workers: Option<usize>,
    /// Serve TLS with this certificate chain (PEM, own certificate first).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Require client certificates issued by these CAs (PEM; mutual TLS).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_client_ca: Option<PathBuf>,
    /// How long a TLS handshake may take (like 10s).
    #[arg(long, value_parser = duration::parse, requires = "tls_cert")]
    tls_handshake_timeout: Option<Duration>,
    /// Most TLS handshakes in progress at once; a connection accepted
    /// beyond them is refused [default: 256].
    #[arg(long, requires = "tls_cert", value_parser = clap::value_parser!(u32).range(1..))]
    max_handshakes: Option<u32>,
    /// Bind with SO_REUSEPORT, so that several servers share the port and
    /// the kernel spreads connections over them (unix).
    #[arg(long)]
    reuseport: bool,
    /// Log more on stderr: -v a line per accepted and closed connection,
    /// -vv everything. By default, refusals and closes for a violation
    /// (RUST_LOG adds directives, like fastnet=debug).
    #[arg(short, long, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    verbose: u8,
    /// Log errors only.
    #[arg(short, long)]
    quiet: bool,
    /// Print the statistics every DUR (like 10s), a line each.
    #[arg(long, value_name = "DUR", value_parser = duration::parse)]
    stats_interval: Option<Duration>,
    /// Print statistics lines as JSON objects, one per line, every counter
    /// by name (the final one too).
    #[arg(long)]
    stats_json: bool,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum OversizeArg {
    /// Close the connection.
    Close,
    /// Skip the frame and go on.
    Skip,
}

#[derive(clap::Args, Debug)]
#[command(after_help = MORE_HELP, after_long_help = spec::HELP)]
struct BenchArgs {
    /// Server to load; without it, an in-process server on loopback.
    #[arg(long)]
    addr: Option<String>,
    /// Driver of the in-process server.
    #[arg(long, value_enum, default_value = "smol")]
    driver: Driver,
    /// Codec spec (raw, lines, delim=D, fixed=N, len=W[,..], varint[,..], cobs; see below).
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
    #[arg(long, default_value = "5s", value_parser = duration::parse)]
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
    /// Speak TLS; without --addr, the in-process server gets a throwaway certificate.
    #[arg(long)]
    tls: bool,
    /// Trust the CA certificates in this PEM file (default: the system's roots).
    #[arg(
        long,
        value_name = "FILE",
        requires = "tls",
        conflicts_with = "tls_insecure"
    )]
    tls_ca: Option<PathBuf>,
    /// Do not verify the server's certificate (encrypted, not authenticated).
    #[arg(long, requires = "tls")]
    tls_insecure: bool,
    /// The name the server's certificate must carry (default: the host of --addr).
    #[arg(long, value_name = "NAME", requires = "tls")]
    tls_server_name: Option<String>,
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

/// Log lines on stderr at the level `-v` / `-q` ask for, through the
/// drivers' `tracing` events; `RUST_LOG` adds directives.
fn init_logging(verbose: u8, quiet: bool) {
    use tracing_subscriber::filter::{EnvFilter, LevelFilter};
    let level = match (quiet, verbose) {
        (true, _) => LevelFilter::ERROR,
        (false, 0) => LevelFilter::INFO,
        (false, 1) => LevelFilter::DEBUG,
        (false, _) => LevelFilter::TRACE,
    };
    let filter = EnvFilter::builder()
        .with_default_directive(level.into())
        .from_env_lossy();
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .init();
}

/// One statistics line: `stats: ..` or, with `json`, a JSON object.
fn stats_line(stats: &StatsSnapshot, json: bool) -> String {
    if json {
        serde_json::to_string(stats).expect("counters serialise")
    } else {
        format!("stats: {stats}")
    }
}

fn serve(args: ServeArgs) -> ExitCode {
    let usage = |msg: String| {
        eprintln!("fastnet serve: {msg}");
        ExitCode::from(2)
    };
    if args.stats_interval.is_some_and(|d| d.is_zero()) {
        return usage("--stats-interval must be longer than 0".into());
    }
    init_logging(args.verbose, args.quiet);
    let oversize = match args.oversize {
        OversizeArg::Close => Oversize::Close,
        OversizeArg::Skip => Oversize::Skip,
    };
    let codec = match codec(&args.codec, args.max_frame) {
        Ok(c) => c.with_oversize(oversize),
        Err(m) => return usage(m),
    };
    let reply = match &args.reply_codec {
        Some(text) => match self::codec(text, args.max_frame) {
            Ok(c) => Some(c),
            Err(m) => return usage(m),
        },
        None => None,
    };
    if let Err(e) = reply.unwrap_or(codec).encoder() {
        return usage(match reply {
            Some(_) => format!(
                "--reply-codec {:?} cannot encode replies: {e}",
                args.reply_codec.unwrap_or_default()
            ),
            None => format!(
                "--codec {:?} cannot encode replies ({e}); give a --reply-codec",
                args.codec
            ),
        });
    }
    let addr = match resolve(&args.addr) {
        Ok(a) => a,
        Err(m) => return usage(m),
    };
    let tls = match serve_tls(&args) {
        Ok(tls) => tls,
        Err(m) => return usage(m),
    };
    let mut cfg = EchoConfig::new(args.driver, addr, codec).limits(
        Limits::default()
            .idle_timeout(args.idle_timeout)
            .read_timeout(args.read_timeout),
    );
    cfg.server.reply_codec = reply;
    cfg.server.reuse_port = args.reuseport;
    cfg.tls = tls;
    if let Some(n) = args.max_conns {
        cfg.server.max_connections = n;
    }
    cfg.server.max_connections_per_ip = args.max_conns_per_ip;
    if let Some(n) = args.listen_backlog {
        cfg.server.listen_backlog = n;
    }
    if let Some(n) = args.workers {
        cfg.server.workers = n;
    }
    if let Some(n) = args.max_handshakes {
        cfg.server.max_handshakes = n as usize;
    }
    if let Err(e) = load::ensure_fd_limit(cfg.server.max_connections.min(1 << 20), false) {
        eprintln!("fastnet serve: warning: {e}");
    }
    let running = match echo::start(cfg) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("fastnet serve: cannot serve on {addr}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let (addr, stats) = (running.addr, running.stats.clone());
    let (shutdown, join) = running.split();
    // Signal handlers go in before the address is announced, so a client
    // that reacts to the announcement with a signal is handled gracefully.
    let mut signals = match signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
    ]) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("fastnet serve: cannot install signal handlers: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("listening on {addr}");
    let _ = std::io::Write::flush(&mut std::io::stdout());
    let signal_handle = signals.handle();
    let watcher = std::thread::spawn(move || {
        if signals.forever().next().is_some() {
            shutdown(SHUTDOWN_DEADLINE);
        }
    });
    // Stats lines until the server is done (the sender dropped).
    let (stop_ticker, stopped) = std::sync::mpsc::channel::<()>();
    let json = args.stats_json;
    let ticker = args.stats_interval.map(|every| {
        std::thread::spawn(move || {
            while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(every) {
                println!("{}", stats_line(&stats.snapshot(), json));
            }
        })
    });
    let result = join.join();
    signal_handle.close();
    let _ = watcher.join();
    drop(stop_ticker);
    if let Some(ticker) = ticker {
        let _ = ticker.join();
    }
    match result {
        Ok(Ok(stats)) => {
            println!("{}", stats_line(&stats, json));
            ExitCode::SUCCESS
        }
        Ok(Err(e)) => {
            eprintln!("fastnet serve: {e}");
            ExitCode::FAILURE
        }
        Err(_) => {
            eprintln!("fastnet serve: the server thread panicked");
            ExitCode::FAILURE
        }
    }
}

/// The TLS settings of `serve`, if asked for.
fn serve_tls(args: &ServeArgs) -> Result<Option<TlsServerConfig>, String> {
    let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) else {
        return Ok(None);
    };
    let mut tls = TlsServerConfig::from_pem_files(cert, key).map_err(|e| e.to_string())?;
    if let Some(ca) = &args.tls_client_ca {
        tls = tls.client_ca_pem_file(ca).map_err(|e| e.to_string())?;
    }
    // Bad pairs (a key that is not the certificate's) are usage errors too.
    let mut tls = TlsServerConfig::from_rustls(tls.build().map_err(|e| e.to_string())?);
    if let Some(t) = args.tls_handshake_timeout {
        tls = tls.handshake_timeout(t);
    }
    Ok(Some(tls))
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
    if let Err(e) = codec.encoder() {
        return usage(format!(
            "--codec {:?} cannot encode requests: {e}",
            args.codec
        ));
    }
    if let Err(e) = load::ensure_fd_limit(args.conns, args.addr.is_none()) {
        return usage(e.to_string());
    }
    let driver = args.driver;
    // The in-process server's throwaway certificate, which the client
    // then trusts.
    let throwaway = if args.tls && args.addr.is_none() {
        match tls::throwaway() {
            Ok(t) => Some(t),
            Err(e) => {
                eprintln!("fastnet bench: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        None
    };
    let connector = if args.tls {
        let name = match (&args.tls_server_name, &args.addr) {
            (Some(name), _) => name.as_str(),
            (None, Some(addr)) => tls::server_name_of(addr),
            (None, None) => tls::THROWAWAY_NAME,
        };
        let verify = match (&throwaway, &args.tls_ca, args.tls_insecure) {
            (_, _, true) => Verify::Insecure,
            (_, Some(ca), _) => Verify::CaFile(ca),
            (Some((_, cert)), None, _) => Verify::CaPem(cert.as_bytes()),
            (None, None, _) => Verify::System,
        };
        match tls::connector(name, verify) {
            Ok(c) => Some(c),
            Err(e) => return usage(e.to_string()),
        }
    } else {
        None
    };
    // Without --addr, serve in this process on a free loopback port.
    let local = match &args.addr {
        Some(_) => None,
        None => {
            let mut cfg = EchoConfig::new(driver, SocketAddr::from(([127, 0, 0, 1], 0)), codec);
            cfg.server.max_connections = args.conns.max(1);
            cfg.tls = match throwaway
                .as_ref()
                .map(|(server, _)| server.build().map(TlsServerConfig::from_rustls))
            {
                None => None,
                Some(Ok(tls)) => Some(tls),
                Some(Err(e)) => {
                    eprintln!("fastnet bench: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match echo::start(cfg) {
                Ok(r) => Some(r),
                Err(e) => {
                    eprintln!("fastnet bench: cannot start the in-process server: {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
    };
    let addr = match (&args.addr, &local) {
        (Some(text), _) => match resolve(text) {
            Ok(a) => a,
            Err(m) => return usage(m),
        },
        (None, Some(server)) => server.addr,
        (None, None) => unreachable!("a local server is started when --addr is absent"),
    };
    let cfg = LoadConfig {
        addr,
        codec,
        conns: args.conns,
        size: args.size,
        duration: args.duration,
        pipeline: args.pipeline,
        threads: args.threads,
        tls: connector,
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
    if let Some(server) = local {
        server.shutdown(SHUTDOWN_DEADLINE);
        if let Err(e) = server.join() {
            eprintln!("fastnet bench: in-process server: {e}");
        }
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
    let failures = report.failures();
    for why in &failures {
        eprintln!("fastnet bench: failed: {why}");
    }
    if !failures.is_empty() {
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
        Command::Serve(args) => serve(args),
        Command::Bench(args) => bench(args),
    }
}
