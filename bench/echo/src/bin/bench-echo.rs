//! Run (from the workspace root; builds the binaries, then runs the full
//! benchmark, about 12 minutes on 2 cores, and rewrites its section of
//! BENCHMARKS.md and bench/echo-results.svg):
//!
//!     cargo build --release -p fastnet-cli -p fastnet-bench-echo -p fastnet-smol --bins --example bench_server && target/release/bench-echo
//!
//! `target/release/bench-echo --quick` checks the harness in about a
//! minute and writes nothing unless given `--write`; `--help` lists the
//! knobs.
//!
//! The echo benchmark harness: every server (`fastnet serve` on both
//! drivers and the peers of this crate) runs in turn as a child process and
//! is loaded by `fastnet bench --json`; the harness reads the server's CPU
//! time and memory from /proc and writes the report. With TLS (`--tls`, on
//! by default except with `--quick`) it also compares `fastnet serve
//! --driver smol` with TLS against `peer-tokio-rustls` on a throwaway
//! certificate.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use clap::Parser;
use fastnet_bench_echo::load::{self, parse_duration, LoadSettings, Run, Shape};
use fastnet_bench_echo::machine::{self, Machine};
use fastnet_bench_echo::report::{self, thousands, Results};
use fastnet_bench_echo::servers::{Binaries, Pin, Server};
use fastnet_bench_echo::tls::TlsFiles;
use fastnet_bench_echo::{idle, peer, svg, syscalls};

#[derive(Parser, Debug)]
#[command(
    name = "bench-echo",
    about = "Echo benchmark: fastnet's servers side by side with tokio, tokio-util Framed, mio and std"
)]
struct Args {
    /// Check the harness quickly: 1 repetition of 1 s, 2,000 idle
    /// connections, no tracing; writes nothing unless --write.
    #[arg(long)]
    quick: bool,
    /// Repetitions of each (server, load) [default: 5, quick: 1].
    #[arg(long)]
    reps: Option<usize>,
    /// Measured period of each run, like 5s or 500ms [default: 3s, quick: 1s].
    #[arg(long)]
    duration: Option<String>,
    /// A load as `CONNSxSIZE[pPIPELINE][tLOADTHREADS]`, repeatable
    /// [default: 1000x512 2000x512 50x512 1000x512p16t2].
    #[arg(long = "config", value_name = "SHAPE")]
    configs: Vec<Shape>,
    /// Servers to run, comma-separated, from fastnet-smol, fastnet-std,
    /// tokio-framed, tokio-raw, mio, std, fastnet-smol-shared, uring (the
    /// io_uring peer), tokio-fastnet (Framed with fastnet's codec),
    /// fastnet-smol-raw (fastnet-smol echoing raw bytes, as mio does),
    /// fastnet-std-raw (fastnet-std echoing raw bytes, as std does),
    /// mio-framed (mio plus the least a framed echo does: the floor),
    /// std-framed (std plus the same: the floor of a thread per
    /// connection) and the TLS ones fastnet-smol-tls, tokio-rustls
    /// [default: all but uring, tokio-fastnet, the raw fastnet ones and
    /// the framed floors; fastnet-smol-shared only if fastnet-smol's
    /// bench_server example is built, the TLS ones as --tls says].
    #[arg(long, value_delimiter = ',')]
    servers: Vec<String>,
    /// Run the TLS comparison (fastnet-smol-tls and tokio-rustls under
    /// --tls-config) [default: on, quick: off; with --servers, on only for
    /// the TLS servers it names, or both with --tls].
    #[arg(long, overrides_with = "no_tls")]
    tls: bool,
    /// Do not run the TLS comparison.
    #[arg(long)]
    no_tls: bool,
    /// The load of the TLS comparison, as `CONNSxSIZE[pPIPELINE][tLOADTHREADS]`.
    #[arg(long, value_name = "SHAPE", default_value = "1000x512")]
    tls_config: Shape,
    /// Connections of the idle-memory measurement [default: 10000, quick: 2000]; 0 skips it.
    #[arg(long)]
    idle_conns: Option<usize>,
    /// `fastnet bench --threads`.
    #[arg(long, default_value_t = 1)]
    load_threads: usize,
    /// Run every server on CPU 0 and the load generator on the other CPUs
    /// (`taskset -c`), so the two never take each other's core and CPU
    /// per request moves less between repetitions [default: off].
    #[arg(long)]
    pin: bool,
    /// Pause after a server announces itself before measuring, like 300ms.
    #[arg(long, default_value = "300ms")]
    settle: String,
    /// Count system calls per request with `strace -c -f` [default: on
    /// when strace is installed, off with --quick].
    #[arg(long, overrides_with = "no_syscalls")]
    syscalls: bool,
    /// Do not count system calls.
    #[arg(long)]
    no_syscalls: bool,
    /// Measured period of each traced run.
    #[arg(long, default_value = "2s")]
    syscall_duration: String,
    /// The `fastnet` binary [default: `fastnet` next to this binary].
    #[arg(long)]
    fastnet: Option<PathBuf>,
    /// Directory of the `peer-*` binaries [default: this binary's directory].
    #[arg(long)]
    peer_dir: Option<PathBuf>,
    /// Markdown file whose echo-bench section is rewritten.
    #[arg(long, default_value = "BENCHMARKS.md")]
    markdown: PathBuf,
    /// Where the chart goes.
    #[arg(long, default_value = "bench/echo-results.svg")]
    svg: PathBuf,
    /// Write the Markdown section and the chart [default: yes, quick: no].
    #[arg(long, overrides_with = "no_write")]
    write: bool,
    /// Do not write the Markdown section and the chart.
    #[arg(long)]
    no_write: bool,
    /// Where every run's figures go as JSON (`--render` reads it back)
    /// [default: next to the chart, as bench/echo-results.json, when writing;
    /// else echo-bench-results.json next to this binary].
    #[arg(long)]
    json_out: Option<PathBuf>,
    /// Measure nothing: render the report (Markdown section and chart) from
    /// the JSON an earlier run wrote; with `--json-out`, also that JSON
    /// again, its targets judged by this version of the report.
    #[arg(long, value_name = "JSON")]
    render: Option<PathBuf>,
}

/// The link to `svg` as seen from the directory of `markdown`.
fn relative_link(markdown: &Path, svg: &Path) -> String {
    let dir = markdown
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let abs = |p: &Path| {
        std::path::absolute(p)
            .map(|p| p.components().collect::<PathBuf>())
            .unwrap_or_else(|_| p.to_path_buf())
    };
    match abs(svg).strip_prefix(abs(dir)) {
        Ok(rel) => rel.display().to_string(),
        Err(_) => abs(svg).display().to_string(),
    }
}

/// The command that reproduces this run.
fn command_line() -> String {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // SAFETY: getpriority only reads this process's nice value.
    let nice = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
    let mut cmd = format!("{} && ", fastnet_bench_echo::BUILD_COMMAND);
    if nice != 0 {
        cmd.push_str(&format!("nice -n {nice} "));
    }
    cmd.push_str("target/release/bench-echo");
    for a in args {
        cmd.push(' ');
        if a.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_=.,/:".contains(c))
        {
            cmd.push_str(&a);
        } else {
            cmd.push_str(&format!("'{a}'"));
        }
    }
    cmd
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("bench-echo: {e}");
            ExitCode::from(2)
        }
    }
}

/// Writes every run's figures, and the targets judged from them, to `out`.
fn write_json(results: &Results, out: &Path) -> Result<(), String> {
    if let Some(dir) = out.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let json = serde_json::to_string_pretty(&results.to_json()).map_err(|e| e.to_string())?;
    std::fs::write(out, json).map_err(|e| format!("cannot write {}: {e}", out.display()))?;
    eprintln!("bench-echo: every run's figures in {}", out.display());
    Ok(())
}

/// Runs everything; `Ok(false)` when some server answered wrongly.
fn run(args: Args) -> Result<bool, String> {
    if let Some(path) = &args.render {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let json: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut results = Results::from_json(&json)
            .map_err(|e| format!("{} is not a bench-echo results file: {e}", path.display()))?;
        results.chart = Some(relative_link(&args.markdown, &args.svg));
        if let Some(out) = &args.json_out {
            write_json(&results, out)?;
        }
        return publish(&results, &args, !args.no_write);
    }
    let started = Instant::now();
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let exe_dir = exe.parent().unwrap_or(Path::new(".")).to_path_buf();
    let mut bins = Binaries {
        fastnet: args
            .fastnet
            .clone()
            .unwrap_or_else(|| exe_dir.join("fastnet")),
        peer_dir: args.peer_dir.clone().unwrap_or_else(|| exe_dir.clone()),
        tls: None,
        pin: None,
    };
    if args.pin {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        bins.pin = Some(Pin::split(cpus).ok_or("--pin needs at least two CPUs")?);
        let taskset = Command::new("taskset")
            .arg("-V")
            .output()
            .map_err(|e| format!("--pin runs `taskset` (util-linux), which failed: {e}"))?;
        if !taskset.status.success() {
            return Err("--pin runs `taskset` (util-linux), which failed".into());
        }
    }
    let named: Vec<Server> = args
        .servers
        .iter()
        .map(|n| Server::from_name(n).ok_or_else(|| format!("unknown server {n:?}")))
        .collect::<Result<_, _>>()?;
    let named_tls: Vec<Server> = named.iter().copied().filter(|s| s.tls()).collect();
    if args.no_tls && !named_tls.is_empty() {
        return Err("--no-tls, yet --servers names TLS servers".into());
    }
    let tls_servers: Vec<Server> = if !named_tls.is_empty() {
        named_tls
    } else if args.tls || (!args.no_tls && !args.quick && named.is_empty()) {
        Server::TLS.to_vec()
    } else {
        Vec::new()
    };
    let servers: Vec<Server> = if named.is_empty() {
        let mut all = Server::ALL.to_vec();
        if bins.bench_server().is_file() {
            all.push(Server::FastnetSmolShared);
        } else {
            eprintln!(
                "bench-echo: {} not built, so fastnet-smol-shared is left out ({})",
                bins.bench_server().display(),
                fastnet_bench_echo::BUILD_COMMAND
            );
        }
        all
    } else {
        named.into_iter().filter(|s| !s.tls()).collect()
    };
    let tls_shape = (!tls_servers.is_empty()).then_some(args.tls_config);
    // Removed with the last handle, when this function returns.
    if !tls_servers.is_empty() {
        let files =
            TlsFiles::create().map_err(|e| format!("cannot write the TLS certificate: {e}"))?;
        bins.tls = Some(std::sync::Arc::new(files));
    }
    bins.check(&servers)?;
    bins.check(&tls_servers)?;
    let shapes: Vec<Shape> = if args.configs.is_empty() {
        Shape::STANDARD.to_vec()
    } else {
        args.configs.clone()
    };
    let reps = args.reps.unwrap_or(if args.quick { 1 } else { 5 }).max(1);
    let duration_text = args
        .duration
        .clone()
        .unwrap_or_else(|| if args.quick { "1s" } else { "3s" }.into());
    let settings = LoadSettings {
        duration: parse_duration(&duration_text)?,
        threads: args.load_threads.max(1),
        settle: parse_duration(&args.settle)?,
    };
    let idle_conns = args
        .idle_conns
        .unwrap_or(if args.quick { 2000 } else { 10_000 });
    let trace = if args.no_syscalls {
        false
    } else {
        (args.syscalls || !args.quick) && syscalls::available()
    };
    let write = if args.no_write {
        false
    } else {
        args.write || !args.quick
    };
    let json_out = args.json_out.clone().unwrap_or_else(|| {
        if write {
            args.svg.with_extension("json")
        } else {
            exe_dir.join("echo-bench-results.json")
        }
    });

    // Many connections in this process (idle measurement) and in the
    // servers, which inherit the limit.
    let nofile =
        peer::raise_fd_limit().map_err(|e| format!("cannot raise the open-file limit: {e}"))?;
    let most_conns = shapes
        .iter()
        .chain(&tls_shape)
        .map(|s| s.conns)
        .max()
        .unwrap_or(0);
    let need = (idle_conns.max(most_conns) + 256) as u64;
    if nofile < need {
        return Err(format!(
            "the open-file limit is {nofile}, below the {need} needed; raise it (ulimit -n) or use fewer connections"
        ));
    }

    let machine = Machine::describe();
    let date = machine::utc_now();
    let load_start = machine::load_average();
    let total = (servers.len() * shapes.len() + 2 * tls_servers.len()) * reps;
    eprintln!(
        "bench-echo: {} servers × {} loads × {reps} repetitions of {duration_text}, idle memory at {} connections{}{}; {} cores, load average {}",
        servers.len(),
        shapes.len(),
        thousands(idle_conns as u64),
        if trace { ", system calls traced" } else { "" },
        tls_shape
            .map(|s| format!(
                ", TLS: {} servers at {s} (and a setup load each)",
                tls_servers.len()
            ))
            .unwrap_or_default(),
        machine.cores,
        load_start.map_or("?".into(), |l| format!("{l:.1}")),
    );

    let mut runs = Vec::new();
    let mut tls_setup = Vec::new();
    let mut n = 0;
    for rep in 0..reps {
        for &shape in &shapes {
            for &server in &servers {
                n += 1;
                let r = load::measure(server, shape, rep, &bins, &settings);
                log_run(&format!("[{n}/{total}]"), &r, false);
                runs.push(r);
            }
        }
        // The TLS pair in the same repetition, so it sees the same machine.
        for &server in &tls_servers {
            let shape = args.tls_config;
            n += 1;
            let r = load::measure(server, shape, rep, &bins, &settings);
            log_run(&format!("[{n}/{total}]"), &r, false);
            runs.push(r);
            n += 1;
            let s = load::measure_setup(server, shape, rep, &bins, &settings);
            log_run(&format!("[{n}/{total}]"), &s, true);
            tls_setup.push(s);
        }
    }

    // Memory per idle connection hardly varies between runs: measured once.
    let mut idles = Vec::new();
    if idle_conns > 0 {
        for &server in &servers {
            let i = idle::measure(server, idle_conns, 0, &bins, Duration::from_secs(1));
            eprintln!(
                "[idle] {:<23}: {} of {} connections, RSS {} -> {} KiB: {:.2} KiB per connection{}",
                server.name(),
                i.open,
                i.conns,
                i.rss_before_kib,
                i.rss_after_kib,
                i.bytes_per_conn() / 1024.0,
                if i.ok() {
                    String::new()
                } else {
                    format!(
                        "  FAILED: {}",
                        i.error.clone().unwrap_or_else(|| "unclean exit".into())
                    )
                }
            );
            idles.push(i);
        }
    }

    let mut traced = Vec::new();
    if trace {
        let trace_settings = LoadSettings {
            duration: parse_duration(&args.syscall_duration)?,
            ..settings.clone()
        };
        let trace_shapes: Vec<Shape> = shapes
            .iter()
            .copied()
            .filter(|s| s.conns == 1000 && (s.pipeline == 1 || s.pipeline == 16))
            .collect();
        let trace_shapes = if trace_shapes.is_empty() {
            shapes.iter().copied().take(1).collect()
        } else {
            trace_shapes
        };
        for &shape in &trace_shapes {
            for &server in &servers {
                let s = syscalls::measure(server, shape, &bins, &trace_settings);
                eprintln!(
                    "[strace] {:<23} {:<12}: {:.2} system calls per request over {} requests{}",
                    server.name(),
                    shape.to_string(),
                    s.per_request(),
                    thousands(s.requests),
                    s.error
                        .as_ref()
                        .map(|e| format!("  FAILED: {e}"))
                        .unwrap_or_default()
                );
                traced.push(s);
            }
        }
    }

    let results = Results {
        servers,
        shapes,
        runs,
        idles,
        syscalls: traced,
        reps,
        duration: duration_text,
        load_threads: settings.threads,
        pin: bins.pin.clone(),
        idle_conns,
        machine,
        date,
        load_average: (load_start, machine::load_average()),
        minutes: started.elapsed().as_secs_f64() / 60.0,
        command: command_line(),
        chart: Some(relative_link(&args.markdown, &args.svg)),
        tls_servers,
        tls_shape,
        tls_setup,
    };

    write_json(&results, &json_out)?;
    let ok = publish(&results, &args, write)?;
    eprintln!(
        "bench-echo: done in {:.1} minutes",
        started.elapsed().as_secs_f64() / 60.0
    );
    Ok(ok)
}

/// Prints one run's figures (a setup load's: CPU per connection), and what
/// went wrong if it failed.
fn log_run(prefix: &str, r: &Run, setup: bool) {
    let figures = if setup {
        format!(
            "setup load: {:.2} µs CPU per connection",
            r.cpu_us as f64 / r.shape.conns.max(1) as f64
        )
    } else {
        format!(
            "{:>9} req/s  {:>6.2} µs CPU/req  p99 {:>7} µs",
            thousands(r.rps.round() as u64),
            r.cpu_us_per_request(),
            thousands(r.p99_us),
        )
    };
    eprintln!(
        "{prefix} {:<23} {:<12} rep {}: {figures}  peak {:>6.1} MiB{}",
        r.server.name(),
        r.shape.to_string(),
        r.rep,
        r.peak_rss_kib as f64 / 1024.0,
        if r.ok() {
            String::new()
        } else {
            format!(
                "  FAILED: mismatches {}, I/O errors {}, connect errors {}, clean exit {}{}",
                r.mismatches,
                r.io_errors,
                r.connect_errors,
                r.clean_exit,
                r.error
                    .as_ref()
                    .map(|e| format!(", {e}"))
                    .unwrap_or_default()
            )
        }
    );
}

/// Prints the targets and failures, and writes the Markdown section and
/// the chart (or prints the section when not `write`); `Ok(false)` when a
/// run failed.
fn publish(results: &Results, args: &Args, write: bool) -> Result<bool, String> {
    println!("\nTargets (issue 18):\n");
    println!("{}", results.targets_table());
    let failures = results.failures();
    for f in &failures {
        eprintln!("FAILED: {f}");
    }
    if !write {
        println!("{}", results.markdown());
        return Ok(failures.is_empty());
    }
    if let Some(dir) = args.svg.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    }
    std::fs::write(&args.svg, svg::chart(results))
        .map_err(|e| format!("cannot write {}: {e}", args.svg.display()))?;
    // Read as late as possible: others may edit the rest of the file.
    let doc = match std::fs::read_to_string(&args.markdown) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => "# Benchmarks\n".into(),
        Err(e) => return Err(format!("cannot read {}: {e}", args.markdown.display())),
    };
    let updated = report::splice(&doc, &results.markdown());
    std::fs::write(&args.markdown, updated)
        .map_err(|e| format!("cannot write {}: {e}", args.markdown.display()))?;
    eprintln!(
        "bench-echo: wrote {} and {}",
        args.markdown.display(),
        args.svg.display()
    );
    Ok(failures.is_empty())
}
