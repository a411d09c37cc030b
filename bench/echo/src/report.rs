//! Turning runs into the report: medians, ratios, the targets of the
//! benchmark issue, and the Markdown section of `BENCHMARKS.md`.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::idle::Idle;
use crate::load::{Run, Shape};
use crate::machine::Machine;
use crate::servers::Server;
use crate::stats::{median, min_max, spread};
use crate::syscalls::Syscalls;

/// Marks the start of the harness's section in `BENCHMARKS.md`.
pub const BEGIN: &str = "<!-- echo-bench:begin -->";
/// Marks the end of the harness's section in `BENCHMARKS.md`.
pub const END: &str = "<!-- echo-bench:end -->";

/// Everything one invocation of the harness measured, and its context.
#[derive(Debug, Clone)]
pub struct Results {
    /// Servers, in table order.
    pub servers: Vec<Server>,
    /// Loads, in table order.
    pub shapes: Vec<Shape>,
    /// Every measured run.
    pub runs: Vec<Run>,
    /// Every idle-memory measurement.
    pub idles: Vec<Idle>,
    /// Traced runs (may be empty).
    pub syscalls: Vec<Syscalls>,
    /// Repetitions of each (server, load).
    pub reps: usize,
    /// Measured period of each run, as given on the command line.
    pub duration: String,
    /// `fastnet bench --threads`.
    pub load_threads: usize,
    /// CPUs of the servers and of the load generator, if pinned (`--pin`).
    pub pin: Option<crate::servers::Pin>,
    /// Connections of the idle-memory measurement.
    pub idle_conns: usize,
    /// The machine.
    pub machine: Machine,
    /// When the run started (UTC).
    pub date: String,
    /// 1-minute load average at the start and at the end.
    pub load_average: (Option<f64>, Option<f64>),
    /// Wall-clock minutes the whole run took.
    pub minutes: f64,
    /// The command that reproduces this report.
    pub command: String,
    /// Where the chart is, relative to `BENCHMARKS.md`.
    pub chart: Option<String>,
    /// The TLS servers compared (their runs are in `runs`, under
    /// `tls_shape`); empty when TLS was not measured.
    pub tls_servers: Vec<Server>,
    /// The load of the TLS runs.
    pub tls_shape: Option<Shape>,
    /// The TLS servers' setup loads ([`load::measure_setup`](crate::load::measure_setup)),
    /// one per server and repetition.
    pub tls_setup: Vec<Run>,
}

/// A figure of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// Requests per second.
    Rps,
    /// Server CPU microseconds per request.
    CpuPerRequest,
    /// The user-space part of [`Metric::CpuPerRequest`].
    UserPerRequest,
    /// 99th percentile latency, microseconds.
    P99,
    /// Server peak resident memory, MiB.
    PeakRss,
}

impl Metric {
    fn of(self, run: &Run) -> f64 {
        match self {
            Metric::Rps => run.rps,
            Metric::CpuPerRequest => run.cpu_us_per_request(),
            Metric::UserPerRequest => run.user_us_per_request(),
            Metric::P99 => run.p99_us as f64,
            Metric::PeakRss => run.peak_rss_kib as f64 / 1024.0,
        }
    }

    fn format(self, v: f64) -> String {
        match self {
            Metric::Rps | Metric::P99 => thousands(v.round() as u64),
            Metric::CpuPerRequest | Metric::UserPerRequest => format!("{v:.2}"),
            Metric::PeakRss => format!("{v:.1}"),
        }
    }
}

/// One target of the benchmark issue, checked.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Target {
    /// What is required.
    pub goal: String,
    /// What was measured.
    pub measured: String,
    /// Met, missed, or not measured in this run.
    pub met: Option<bool>,
    /// For a missed target, the ratio of a floor of the same runs (the
    /// least work of the kind, like mio framed's to mio raw) that misses
    /// the bound too and that fastnet has not beaten: the bound lies below
    /// the floor. Absent from results written before floors were judged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub below_floor: Option<f64>,
    /// The same-repetition ratios fell on both sides of the bound: the
    /// verdict is the medians', and the next run may well give the other.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub on_the_bound: bool,
}

/// Why a server's ratio is named beside a target's figure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// The same server's work without framing.
    WithoutFraming,
    /// The least work of the kind (mio framed, std framed): its ratio also
    /// judges a missed target (see [`Target::below_floor`]).
    Floor,
    /// The most any server here reaches (mio raw).
    Ceiling,
    /// A server built the same way as fastnet's (mio raw, for tails).
    BuiltTheSameWay,
}

impl Role {
    fn label(self) -> &'static str {
        match self {
            Role::WithoutFraming => "without framing",
            Role::Floor => "floor",
            Role::Ceiling => "ceiling",
            Role::BuiltTheSameWay => "built the same way",
        }
    }
}

impl Results {
    /// Runs of `server` under `shape` that answered every request correctly.
    fn good_runs(&self, server: Server, shape: Shape) -> impl Iterator<Item = &Run> {
        self.runs
            .iter()
            .filter(move |r| r.server == server && r.shape == shape && r.ok())
    }

    /// The values of `metric` over the good runs of `server` under `shape`.
    pub fn values(&self, server: Server, shape: Shape, metric: Metric) -> Vec<f64> {
        self.good_runs(server, shape)
            .map(|r| metric.of(r))
            .collect()
    }

    /// Median of `metric` for `server` under `shape`.
    pub fn median(&self, server: Server, shape: Shape, metric: Metric) -> Option<f64> {
        median(&self.values(server, shape, metric))
    }

    /// Median of `metric` of `a` over the median of `b`, with the smallest
    /// and largest ratio of runs of the same repetition (run back to back).
    pub fn ratio(
        &self,
        a: Server,
        b: Server,
        shape: Shape,
        metric: Metric,
    ) -> Option<(f64, Option<(f64, f64)>)> {
        let ratio = self.median(a, shape, metric)? / self.median(b, shape, metric)?;
        let paired: Vec<f64> = self
            .good_runs(a, shape)
            .filter_map(|ra| {
                let rb = self.good_runs(b, shape).find(|rb| rb.rep == ra.rep)?;
                Some(metric.of(ra) / metric.of(rb))
            })
            .collect();
        Some((
            ratio,
            (paired.len() > 1).then(|| min_max(&paired)).flatten(),
        ))
    }

    /// Median resident bytes per idle connection of `server`.
    pub fn idle_bytes(&self, server: Server) -> Option<f64> {
        let v: Vec<f64> = self
            .idles
            .iter()
            .filter(|i| i.server == server && i.ok())
            .map(Idle::bytes_per_conn)
            .collect();
        median(&v)
    }

    /// The TLS runs of `server` that answered every request correctly.
    fn good_tls_runs(&self, server: Server) -> impl Iterator<Item = &Run> {
        let shape = self.tls_shape;
        self.runs
            .iter()
            .filter(move |r| r.server == server && Some(r.shape) == shape && r.ok())
    }

    /// The good setup load of `server` in repetition `rep`.
    fn tls_setup_of(&self, server: Server, rep: usize) -> Option<&Run> {
        self.tls_setup
            .iter()
            .find(|r| r.server == server && r.rep == rep && r.ok())
    }

    /// Server CPU microseconds per request of `server`'s TLS runs without
    /// the connections' setup: (CPU of the run − CPU of the same
    /// repetition's setup load) / (requests of the run − requests of the
    /// setup load), one value per repetition that has both.
    pub fn tls_steady_cpu_values(&self, server: Server) -> Vec<f64> {
        self.good_tls_runs(server)
            .filter_map(|r| {
                let setup = self.tls_setup_of(server, r.rep)?;
                let requests = r.requests.checked_sub(setup.requests).filter(|&n| n > 0)?;
                Some(r.cpu_us.saturating_sub(setup.cpu_us) as f64 / requests as f64)
            })
            .collect()
    }

    /// Server CPU microseconds per connection of `server`'s setup loads.
    pub fn tls_setup_cpu_values(&self, server: Server) -> Vec<f64> {
        let conns = self.tls_shape.map_or(1, |s| s.conns).max(1);
        self.tls_setup
            .iter()
            .filter(|r| r.server == server && r.ok())
            .map(|r| r.cpu_us as f64 / conns as f64)
            .collect()
    }

    /// Runs or idle measurements that failed, described.
    pub fn failures(&self) -> Vec<String> {
        let setups = self.tls_setup.iter().map(|r| (r, "setup load "));
        let mut out: Vec<String> = self
            .runs
            .iter()
            .map(|r| (r, ""))
            .chain(setups)
            .filter(|(r, _)| !r.ok())
            .map(|(r, what)| {
                format!(
                    "{} {} {what}rep {}: requests {}, mismatches {}, I/O errors {}, connect errors {}, clean exit {}{}",
                    r.server.name(),
                    r.shape,
                    r.rep,
                    r.requests,
                    r.mismatches,
                    r.io_errors,
                    r.connect_errors,
                    r.clean_exit,
                    r.error.as_ref().map(|e| format!(", {e}")).unwrap_or_default()
                )
            })
            .collect();
        out.extend(self.idles.iter().filter(|i| !i.ok()).map(|i| {
            format!(
                "{} idle rep {}: {} of {} connections, clean exit {}{}",
                i.server.name(),
                i.rep,
                i.open,
                i.conns,
                i.clean_exit,
                i.error
                    .as_ref()
                    .map(|e| format!(", {e}"))
                    .unwrap_or_default()
            )
        }));
        out
    }

    /// The targets of the performance issue (issue 18), each checked
    /// against this run. Where a target has a floor or a ceiling that this
    /// run also measured (a server doing the same work without framing,
    /// mio framed or std framed as the least any framed echo does on an
    /// event loop or a thread per connection, or mio raw as the ceiling),
    /// its ratio is given beside the figure, so a target below what is
    /// physically reachable says so; a missed bound that the floor misses
    /// too, where fastnet has not beaten the floor, is [below the
    /// floor](Target::below_floor). A verdict whose same-repetition pairs
    /// fall on both sides of the bound is [on the
    /// bound](Target::on_the_bound).
    pub fn targets(&self) -> Vec<Target> {
        use Server::{
            FastnetSmol, FastnetSmolRaw, FastnetStd, FastnetStdRaw, Mio, MioFramed, Std, StdFramed,
            TokioFramed,
        };
        let mut out = Vec::new();
        let find = |conns, pipeline| {
            self.shapes
                .iter()
                .copied()
                .find(|s| s.conns == conns && s.size == 512 && s.pipeline == pipeline)
        };
        // One target: `a ÷ b` of `metric` under `shape` against `bound`;
        // `beside` are the same ratios for other servers, each named with
        // its role, for those that ran; a [`Role::Floor`]'s also judges a
        // miss.
        let mut ratio_target = |goal: String,
                                (a, b): (Server, Server),
                                shape: Option<Shape>,
                                metric: Metric,
                                (bound, at_most): (f64, bool),
                                beside: &[(Server, Role)]| {
            // `x` within `limit`: at most it for an upper bound, at least
            // it for a lower one.
            let within = |x: f64, limit: f64| if at_most { x <= limit } else { x >= limit };
            let r = shape.and_then(|s| Some((s, self.ratio(a, b, s, metric)?)));
            out.push(match r {
                None => Target {
                    goal,
                    measured: "not measured in this run".into(),
                    met: None,
                    below_floor: None,
                    on_the_bound: false,
                },
                Some((shape, (ratio, range))) => {
                    let (ma, mb) = (
                        self.median(a, shape, metric).unwrap_or(f64::NAN),
                        self.median(b, shape, metric).unwrap_or(f64::NAN),
                    );
                    let unit = match metric {
                        Metric::Rps => " req/s",
                        Metric::CpuPerRequest | Metric::UserPerRequest => " µs",
                        Metric::P99 => " µs",
                        Metric::PeakRss => " MiB",
                    };
                    let on_the_bound =
                        range.is_some_and(|(lo, hi)| within(lo, bound) != within(hi, bound));
                    let range = range
                        .map(|(lo, hi)| format!("; same-repetition pairs {lo:.2}×–{hi:.2}×"))
                        .unwrap_or_default();
                    let beside: Vec<(Server, Role, f64)> = beside
                        .iter()
                        .filter_map(|&(c, role)| {
                            Some((c, role, self.ratio(c, b, shape, metric)?.0))
                        })
                        .collect();
                    let met = within(ratio, bound);
                    // A floor that misses the bound itself, and that fastnet
                    // has not beaten, puts the bound out of reach (the codec
                    // report's rule).
                    let below_floor = beside
                        .iter()
                        .find(|&&(_, role, f)| {
                            role == Role::Floor && !met && !within(f, bound) && within(f, ratio)
                        })
                        .map(|&(_, _, f)| f);
                    let beside: String = beside
                        .iter()
                        .map(|(c, role, r)| {
                            let role = role.label();
                            format!("; {role}: {} {r:.2}× {} in this run", c.label(), b.label())
                        })
                        .collect();
                    Target {
                        goal,
                        measured: format!(
                            "{ratio:.2}× ({}{unit} vs {}{unit}{range}){beside}",
                            metric.format(ma),
                            metric.format(mb)
                        ),
                        met: Some(met),
                        below_floor,
                        on_the_bound,
                    }
                }
            });
        };
        for &shape in self.shapes.iter().filter(|s| s.pipeline == 1) {
            ratio_target(
                format!("fastnet-smol p99 ≤ tokio-util Framed, {}", shape.label()),
                (FastnetSmol, TokioFramed),
                Some(shape),
                Metric::P99,
                (1.0, true),
                &[(Mio, Role::BuiltTheSameWay)],
            );
        }
        ratio_target(
            "fastnet-smol CPU/request ≤ 1.05× mio raw, 1000 conns".into(),
            (FastnetSmol, Mio),
            find(1000, 1),
            Metric::CpuPerRequest,
            (1.05, true),
            &[
                (FastnetSmolRaw, Role::WithoutFraming),
                (MioFramed, Role::Floor),
            ],
        );
        ratio_target(
            "fastnet-smol requests/s ≥ 1.5× tokio-util Framed, 1000 conns, pipeline 16".into(),
            (FastnetSmol, TokioFramed),
            find(1000, 16),
            Metric::Rps,
            (1.5, false),
            &[
                (Mio, Role::Ceiling),
                (FastnetSmolRaw, Role::WithoutFraming),
                (MioFramed, Role::Floor),
            ],
        );
        ratio_target(
            "fastnet-smol CPU/request ≤ 1.0× mio raw, 1000 conns, pipeline 16".into(),
            (FastnetSmol, Mio),
            find(1000, 16),
            Metric::CpuPerRequest,
            (1.0, true),
            &[
                (FastnetSmolRaw, Role::WithoutFraming),
                (MioFramed, Role::Floor),
            ],
        );
        ratio_target(
            "fastnet-std CPU/request ≤ 1.05× std thread/conn raw, 1000 conns".into(),
            (FastnetStd, Std),
            find(1000, 1),
            Metric::CpuPerRequest,
            (1.05, true),
            &[
                (FastnetStdRaw, Role::WithoutFraming),
                (StdFramed, Role::Floor),
            ],
        );
        let conns = thousands(self.idle_conns as u64);
        let mut idle_target = |goal: String, server: Server, bound: Option<f64>| {
            let measured = self.idle_bytes(server);
            out.push(match (measured, bound) {
                (Some(b), Some(bound)) => Target {
                    goal,
                    measured: format!(
                        "{} bytes (tokio-util Framed {})",
                        thousands(b as u64),
                        self.idle_bytes(TokioFramed)
                            .map(|t| format!("{} bytes", thousands(t as u64)))
                            .unwrap_or_else(|| "not measured".into())
                    ),
                    met: Some(b <= bound),
                    below_floor: None,
                    on_the_bound: false,
                },
                _ => Target {
                    goal,
                    measured: "not measured in this run".into(),
                    met: None,
                    below_floor: None,
                    on_the_bound: false,
                },
            });
        };
        idle_target(
            format!("fastnet-smol RSS per idle connection ≤ 1 KiB at {conns} conns"),
            FastnetSmol,
            Some(1024.0),
        );
        idle_target(
            format!(
                "fastnet-std RSS per idle connection ≤ std thread/conn raw's at {conns} conns{}",
                self.idle_bytes(Std)
                    .map(|b| format!(" ({} bytes)", thousands(b as u64)))
                    .unwrap_or_default()
            ),
            FastnetStd,
            self.idle_bytes(Std),
        );
        out
    }

    /// A table of `metric`: one row per server, one column per load, then
    /// the fastnet servers' ratios to tokio-util Framed and mio.
    fn metric_table(&self, metric: Metric, with_spread: bool) -> String {
        let mut t = String::from("| server |");
        for s in &self.shapes {
            let _ = write!(t, " {} |", s.label());
        }
        t.push_str("\n|---|");
        for _ in &self.shapes {
            t.push_str("---:|");
        }
        t.push('\n');
        for &server in &self.servers {
            let _ = write!(t, "| {} |", server.label());
            for &shape in &self.shapes {
                let values = self.values(server, shape, metric);
                match median(&values) {
                    Some(m) => {
                        let _ = write!(t, " {}", metric.format(m));
                        if with_spread && values.len() > 1 {
                            if let Some(sp) = spread(&values) {
                                let _ = write!(t, " ({:.0}%)", sp * 100.0);
                            }
                        }
                        t.push_str(" |");
                    }
                    None => t.push_str(" – |"),
                }
            }
            t.push('\n');
        }
        for a in self.servers.iter().copied().filter(|s| s.is_fastnet()) {
            for b in [Server::TokioFramed, Server::Mio] {
                if !self.servers.contains(&b) {
                    continue;
                }
                let _ = write!(t, "| *{} ÷ {}* |", a.label(), b.label());
                for &shape in &self.shapes {
                    match self.ratio(a, b, shape, metric) {
                        Some((r, _)) => {
                            let _ = write!(t, " {r:.2}× |");
                        }
                        None => t.push_str(" – |"),
                    }
                }
                t.push('\n');
            }
        }
        t
    }

    fn idle_table(&self) -> String {
        let mut t = String::from(
            "| server | RSS per idle connection | ÷ tokio-util Framed | ÷ mio raw |\n|---|---:|---:|---:|\n",
        );
        let framed = self.idle_bytes(Server::TokioFramed);
        let mio = self.idle_bytes(Server::Mio);
        for &server in &self.servers {
            let b = self.idle_bytes(server);
            let cell = |x: Option<f64>| match (b, x) {
                (Some(b), Some(x)) if x > 0.0 => format!("{:.2}×", b / x),
                _ => "–".into(),
            };
            let _ = writeln!(
                t,
                "| {} | {} | {} | {} |",
                server.label(),
                b.map_or("–".into(), |b| format!("{:.2} KiB", b / 1024.0)),
                if server.is_fastnet() {
                    cell(framed)
                } else {
                    String::new()
                },
                if server.is_fastnet() {
                    cell(mio)
                } else {
                    String::new()
                },
            );
        }
        t
    }

    fn syscall_table(&self) -> String {
        const COLUMNS: [&str; 8] = [
            "read",
            "recvfrom",
            "write",
            "writev",
            "sendto",
            "epoll_wait",
            "epoll_ctl",
            "futex",
        ];
        // Counted under epoll_wait.
        const WAITS: [&str; 3] = ["epoll_wait", "epoll_pwait", "epoll_pwait2"];
        let mut t = String::from("| server | load | all calls/request |");
        for c in COLUMNS {
            let heading = if c == "epoll_wait" {
                "epoll_(p)wait"
            } else {
                c
            };
            let _ = write!(t, " {heading} |");
        }
        t.push_str(" `EAGAIN` reads/request | busiest others |\n|---|---|---:|");
        for _ in COLUMNS {
            t.push_str("---:|");
        }
        t.push_str("---:|---|\n");
        for s in &self.syscalls {
            if s.error.is_some() {
                let _ = writeln!(
                    t,
                    "| {} | {} | failed: {} |",
                    s.server.label(),
                    s.shape.label(),
                    s.error.as_deref().unwrap_or_default()
                );
                continue;
            }
            let _ = write!(
                t,
                "| {} | {} | {:.2} |",
                s.server.label(),
                s.shape.label(),
                s.per_request()
            );
            for c in COLUMNS {
                let v = if c == "epoll_wait" {
                    WAITS.iter().map(|w| s.of(w)).sum()
                } else {
                    s.of(c)
                };
                if v == 0.0 {
                    t.push_str(" – |");
                } else {
                    let _ = write!(t, " {v:.2} |");
                }
            }
            let eagain = s.errors_of("read") + s.errors_of("recvfrom");
            let others: Vec<String> = s
                .calls
                .iter()
                .filter(|c| {
                    !COLUMNS.contains(&c.name.as_str()) && !WAITS.contains(&c.name.as_str())
                })
                .take(3)
                .map(|c| {
                    format!(
                        "{} {:.2}",
                        c.name,
                        c.calls as f64 / s.requests.max(1) as f64
                    )
                })
                .collect();
            let _ = writeln!(t, " {eagain:.2} | {} |", others.join(", "));
        }
        t
    }

    /// The TLS subsection: each TLS server's requests/s, CPU per request
    /// with and without connection setup, setup CPU per connection and p99,
    /// the ratio of fastnet-smol TLS to tokio-rustls Framed, and the
    /// commands; empty when TLS was not measured.
    fn tls_section(&self) -> String {
        let Some(shape) = self.tls_shape.filter(|_| !self.tls_servers.is_empty()) else {
            return String::new();
        };
        let mut md = String::from("\n### TLS\n\n");
        let _ = writeln!(
            md,
            "fastnet-smol with TLS against tokio + tokio-rustls + tokio-util Framed, {}, {}({} \
             repetition(s) of {}, each on a freshly started server). Both servers run rustls \
             0.23 on its `ring` provider with its default settings (TLS 1.3 is negotiated), no \
             client certificates, and the same throwaway ECDSA P-256 certificate for 127.0.0.1, \
             made by rcgen when the run starts (`fastnet_tls::test_pki`) and written with its CA \
             as `ca.pem`, `server.pem` and `server.key` into a temporary directory. `fastnet \
             bench` verifies the certificate against that CA and every echoed byte.\n",
            shape.label(),
            if self.servers.is_empty() {
                ""
            } else {
                "interleaved with the runs above "
            },
            self.reps,
            self.duration
        );
        md.push_str(
            "Server CPU per request is measured as in the tables above, so it includes accepting \
             the connections, **their TLS handshakes** and closing them, which weighs far more \
             than with plain TCP. `fastnet bench` completes every handshake before its clock \
             starts (requests/s and p99 leave setup out), but that moment is not visible from \
             outside, so the harness measures the setup on its own: in each repetition each TLS \
             server also gets a setup load, the same connections with a measured period of 0 \
             (connect, handshake, one round trip per connection, close). \
             **setup CPU per connection** is that load's server CPU / connections; **CPU per \
             request without setup** is (CPU of the run − CPU of the same repetition's setup \
             load) / (requests of the run − requests of the setup load). CPU times are read in \
             the clock ticks of `/proc/PID/stat` (10 ms at the usual 100 per second).\n\n",
        );
        md.push_str("| server | what runs |\n|---|---|\n");
        for &s in &self.tls_servers {
            let _ = writeln!(md, "| {} | {} |", s.label(), s.describe());
        }
        md.push_str(
            "\n| server | requests/s | CPU/request (µs) | CPU/request without setup (µs) | \
             setup CPU per connection (µs) | p99 (µs) |\n|---|---:|---:|---:|---:|---:|\n",
        );
        let cell = |values: &[f64], format: fn(f64) -> String| match median(values) {
            Some(m) if values.len() > 1 => match spread(values) {
                Some(sp) => format!("{} ({:.0}%)", format(m), sp * 100.0),
                None => format(m),
            },
            Some(m) => format(m),
            None => "–".into(),
        };
        let count = |v: f64| thousands(v.round() as u64);
        let micros = |v: f64| format!("{v:.2}");
        let columns = |server: Server| -> [Vec<f64>; 5] {
            [
                self.values(server, shape, Metric::Rps),
                self.values(server, shape, Metric::CpuPerRequest),
                self.tls_steady_cpu_values(server),
                self.tls_setup_cpu_values(server),
                self.values(server, shape, Metric::P99),
            ]
        };
        let formats: [fn(f64) -> String; 5] = [count, micros, micros, micros, count];
        for &server in &self.tls_servers {
            let _ = write!(md, "| {} |", server.label());
            for (values, format) in columns(server).iter().zip(formats) {
                let _ = write!(md, " {} |", cell(values, format));
            }
            md.push('\n');
        }
        let (a, b) = (Server::FastnetSmolTls, Server::TokioRustls);
        if self.tls_servers.contains(&a) && self.tls_servers.contains(&b) {
            let _ = write!(md, "| *{} ÷ {}* |", a.label(), b.label());
            for (va, vb) in columns(a).iter().zip(columns(b).iter()) {
                match (median(va), median(vb)) {
                    (Some(x), Some(y)) if y != 0.0 => {
                        let _ = write!(md, " {:.2}× |", x / y);
                    }
                    _ => md.push_str(" – |"),
                }
            }
            md.push('\n');
        }
        let load = format!(
            "fastnet bench --tls --tls-ca ca.pem --addr 127.0.0.1:PORT --codec len=u32be \
             --conns {} --size {} --pipeline {} --threads {}",
            shape.conns,
            shape.size,
            shape.pipeline,
            shape.threads.unwrap_or(self.load_threads)
        );
        let _ = writeln!(
            md,
            "\nThe loads (the servers' commands are in the table above; `PORT` is the one the \
             server printed):\n\n```sh\n{load} --duration {} --json\n\
             # setup load\n{load} --duration {}ms --json\n```",
            self.duration,
            crate::load::SETUP_DURATION.as_millis()
        );
        md
    }

    /// The targets as a Markdown table.
    pub fn targets_table(&self) -> String {
        let mut t = String::from("| target | measured (medians) | met? |\n|---|---|---|\n");
        for target in self.targets() {
            let mut verdict = match (target.met, target.below_floor) {
                (Some(true), _) => "**met**".to_string(),
                (Some(false), Some(floor)) => format!("**missed**: below the floor ({floor:.2}×)"),
                (Some(false), None) => "**missed**".to_string(),
                (None, _) => "–".to_string(),
            };
            if target.on_the_bound {
                verdict.push_str("; on the bound (same-repetition pairs on both sides)");
            }
            let _ = writeln!(t, "| {} | {} | {verdict} |", target.goal, target.measured);
        }
        t
    }

    /// The plain servers' tables: what runs, targets, every metric, idle
    /// memory; empty when only TLS servers ran.
    fn plain_tables(&self) -> String {
        let mut md = String::new();
        if self.servers.is_empty() {
            return md;
        }
        md.push_str("| server | what runs |\n|---|---|\n");
        for &s in &self.servers {
            let _ = writeln!(md, "| {} | {} |", s.label(), s.describe());
        }
        md.push_str("\n### Targets (issue 18)\n\n");
        md.push_str(&self.targets_table());
        md.push_str("\n### Requests/s\n\n");
        md.push_str(&self.metric_table(Metric::Rps, true));
        md.push_str("\n### Server CPU time per request (µs)\n\n");
        md.push_str(&self.metric_table(Metric::CpuPerRequest, true));
        md.push_str(
            "\n### … of which in user space (µs)\n\n\
             The rest is the kernel working on the server's behalf (system calls, TCP).\n\n",
        );
        md.push_str(&self.metric_table(Metric::UserPerRequest, false));
        md.push_str("\n### p99 latency (µs)\n\n");
        md.push_str(&self.metric_table(Metric::P99, true));
        md.push_str("\n### Peak RSS under load (MiB)\n\n");
        md.push_str(&self.metric_table(Metric::PeakRss, false));
        let _ = writeln!(
            md,
            "\n### RSS per idle connection ({} connections)\n",
            thousands(self.idle_conns as u64)
        );
        md.push_str(&self.idle_table());
        md
    }

    /// The whole Markdown section, markers included.
    pub fn markdown(&self) -> String {
        let mut md = String::new();
        let _ = writeln!(md, "{BEGIN}");
        md.push_str("## Echo servers side by side\n\n");
        md.push_str(
            "Written by `bench-echo` ([`bench/echo/`](bench/echo)); do not edit between the \
             `echo-bench` markers, rerun the command below instead.\n\n",
        );
        if let Some(chart) = &self.chart {
            let _ = writeln!(md, "![requests/s per server and load]({chart})\n");
        }
        let _ = writeln!(
            md,
            "Every server runs as its own process and is loaded by `fastnet bench` \
             (one mio thread per load thread: `--threads {}`, but for a load that names its own \
             count, like the pipelined one), which verifies every echoed byte: framed servers \
             with `--codec len=u32be` (4-byte big-endian length, then the payload), raw servers \
             with `--codec raw` (fixed-size request, the same bytes back). Each (server, load) ran \
             {} time(s) for {} each; servers interleaved (all servers for one load, then the next \
             load, then the next repetition) and each run on a freshly started server. Figures are \
             medians over the repetitions; `(n%)` is the spread, (largest − smallest) / median.\n",
            self.load_threads, self.reps, self.duration
        );
        if let Some(pin) = &self.pin {
            let _ = writeln!(
                md,
                "Pinned (`--pin`): every server ran on CPU {} and the load generator on CPU {} \
                 (`taskset -c`), so neither took the other's core.\n",
                pin.server, pin.load
            );
        }
        md.push_str(
            "- **requests/s** and **p99 latency**: from `fastnet bench --json`.\n\
             - **server CPU per request**: user + system time of the server process \
             (`/proc/PID/stat`, all threads) from just before `fastnet bench` starts to just after \
             it exits, divided by the requests answered; it includes accepting and closing the \
             load's connections.\n\
             - **peak RSS**: the server's `VmHWM` at the end of the run.\n",
        );
        let _ = writeln!(
            md,
            "- **RSS per idle connection**: a fresh server, {} connections that each make one \
             verified 512-byte round trip and then stay open and silent; (`VmRSS` with them open \
             − `VmRSS` before) / connections.\n",
            thousands(self.idle_conns as u64)
        );
        if self.servers.contains(&Server::FastnetSmolShared) {
            md.push_str(
                "The targets are judged on `fastnet serve`, the server users run; the row \
                 \"fastnet-smol, shared executor\" is fastnet-smol's `bench_server` example \
                 with the other executor layout, for comparison.\n\n",
            );
        }
        md.push_str(&self.plain_tables());
        if !self.syscalls.is_empty() {
            md.push_str(
                "\n### System calls per request\n\n\
                 Each server once more, traced with `strace -c -f -p PID` during a load; tracing \
                 slows servers several-fold (so more requests arrive per wake-up than untraced), \
                 which makes these counts a lower bound of the untraced ones. Only counts are \
                 shown, not times.\n\n",
            );
            md.push_str(&self.syscall_table());
        }
        md.push_str(&self.tls_section());
        let failures = self.failures();
        if !failures.is_empty() {
            md.push_str("\n### Failed runs (left out of the medians)\n\n");
            for f in failures {
                let _ = writeln!(md, "- {f}");
            }
        }
        md.push_str("\n### Machine and command\n\n");
        let m = &self.machine;
        let _ = writeln!(
            md,
            "- {} cores, {}, {} MiB memory; Linux {}{}",
            m.cores,
            m.cpu,
            m.memory_mib,
            m.kernel,
            m.rustc
                .as_ref()
                .map(|r| format!("; {r}"))
                .unwrap_or_default()
        );
        let la = |x: Option<f64>| x.map_or("?".into(), |v| format!("{v:.1}"));
        let _ = writeln!(
            md,
            "- {}; the whole run took {:.1} minutes; 1-minute load average {} at the start, {} at \
             the end (the load generator, the server and anything else on the machine share its \
             cores, so absolute figures move with the machine's load: compare within a table)",
            self.date,
            self.minutes,
            la(self.load_average.0),
            la(self.load_average.1)
        );
        let _ = writeln!(md, "\n```sh\n{}\n```", self.command);
        let _ = writeln!(md, "{END}");
        md
    }
}

/// Replaces the section between [`BEGIN`] and [`END`] in `doc` by
/// `section` (which carries the markers), or appends it when `doc` has
/// no such section; everything else is kept as it is.
///
/// ```
/// use fastnet_bench_echo::report::{splice, BEGIN, END};
/// let new = format!("{BEGIN}\nnew\n{END}\n");
/// let doc = format!("# B\n\n## Other\n\nx\n\n{BEGIN}\nold\n{END}\n\n## After\n");
/// assert_eq!(splice(&doc, &new), format!("# B\n\n## Other\n\nx\n\n{BEGIN}\nnew\n{END}\n\n## After\n"));
/// assert_eq!(splice("# B\n", &new), format!("# B\n\n{BEGIN}\nnew\n{END}\n"));
/// ```
pub fn splice(doc: &str, section: &str) -> String {
    let section = section.trim_end_matches('\n');
    if let (Some(b), Some(e)) = (doc.find(BEGIN), doc.find(END)) {
        if b < e {
            let tail = &doc[e + END.len()..];
            return format!("{}{section}{tail}", &doc[..b]);
        }
    }
    let mut out = doc.trim_end_matches('\n').to_string();
    if !out.is_empty() {
        out.push_str("\n\n");
    }
    out.push_str(section);
    out.push('\n');
    out
}

/// `1234567` as `1,234,567`.
///
/// ```
/// assert_eq!(fastnet_bench_echo::report::thousands(1234567), "1,234,567");
/// assert_eq!(fastnet_bench_echo::report::thousands(12), "12");
/// ```
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
