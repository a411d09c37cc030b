//! The results file (`bench/echo-results.json`): every figure of a run,
//! written by `bench-echo` and read back by `bench-echo --render`.
//!
//! Each measurement is written with the figures derived from it (a run's
//! CPU per request, whether it was good, ...) for whoever reads the file;
//! reading takes the measured fields and derives those figures again.
//! Fields added over time are optional, so older files still render.

use serde::{Deserialize, Serialize};

use crate::idle::Idle;
use crate::load::{Run, Shape};
use crate::machine::Machine;
use crate::report::{Results, Target};
use crate::servers::{Pin, Server};
use crate::syscalls::Syscalls;

/// The file's top-level object.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ResultsFile {
    date: String,
    command: String,
    reps: usize,
    duration: String,
    servers: Vec<Server>,
    shapes: Vec<Shape>,
    load_threads: usize,
    /// Absent from runs made before `--pin` existed.
    #[serde(default)]
    pin: Option<Pin>,
    idle_conns: usize,
    machine: Machine,
    load_average: (Option<f64>, Option<f64>),
    minutes: f64,
    chart: Option<String>,
    runs: Vec<Derived<Run, RunFigures>>,
    idle: Vec<Derived<Idle, IdleFigures>>,
    syscalls: Vec<Derived<Syscalls, SyscallsFigures>>,
    /// Written for readers; derived again from the runs when read.
    #[serde(default)]
    targets: Vec<Target>,
    /// Absent from results of runs before TLS was measured.
    #[serde(default)]
    tls_servers: Vec<Server>,
    #[serde(default)]
    tls_shape: Option<Shape>,
    #[serde(default)]
    tls_setup_runs: Vec<Derived<Run, RunFigures>>,
    /// Written for readers; derived again from the runs when read.
    #[serde(default)]
    failures: Vec<String>,
}

/// A measurement and the figures derived from it, side by side in one
/// JSON object.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Derived<T, F> {
    #[serde(flatten)]
    item: T,
    #[serde(flatten)]
    figures: F,
}

/// What a [`Run`] is written with.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
struct RunFigures {
    cpu_us_per_request: f64,
    ok: bool,
}

/// What an [`Idle`] measurement is written with.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
struct IdleFigures {
    bytes_per_conn: f64,
    ok: bool,
}

/// What a [`Syscalls`] count is written with.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
struct SyscallsFigures {
    per_request: f64,
}

fn run(r: &Run) -> Derived<Run, RunFigures> {
    Derived {
        item: r.clone(),
        figures: RunFigures {
            cpu_us_per_request: r.cpu_us_per_request(),
            ok: r.ok(),
        },
    }
}

impl Results {
    /// Everything as JSON, for a closer look or to render the report again
    /// ([`from_json`](Self::from_json)).
    pub fn to_json(&self) -> serde_json::Value {
        let file = ResultsFile {
            date: self.date.clone(),
            command: self.command.clone(),
            reps: self.reps,
            duration: self.duration.clone(),
            servers: self.servers.clone(),
            shapes: self.shapes.clone(),
            load_threads: self.load_threads,
            pin: self.pin.clone(),
            idle_conns: self.idle_conns,
            machine: self.machine.clone(),
            load_average: self.load_average,
            minutes: self.minutes,
            chart: self.chart.clone(),
            runs: self.runs.iter().map(run).collect(),
            idle: self
                .idles
                .iter()
                .map(|i| Derived {
                    item: i.clone(),
                    figures: IdleFigures {
                        bytes_per_conn: i.bytes_per_conn(),
                        ok: i.ok(),
                    },
                })
                .collect(),
            syscalls: self
                .syscalls
                .iter()
                .map(|s| Derived {
                    item: s.clone(),
                    figures: SyscallsFigures {
                        per_request: s.per_request(),
                    },
                })
                .collect(),
            targets: self.targets(),
            tls_servers: self.tls_servers.clone(),
            tls_shape: self.tls_shape,
            tls_setup_runs: self.tls_setup.iter().map(run).collect(),
            failures: self.failures(),
        };
        // Plain data with string keys: serializing it cannot fail.
        serde_json::to_value(file).expect("results serialize to JSON")
    }

    /// Results back from [`to_json`](Self::to_json) (or from the file it
    /// was written to); the error says which field is missing or wrong.
    pub fn from_json(v: &serde_json::Value) -> Result<Results, serde_json::Error> {
        let file = ResultsFile::deserialize(v)?;
        let items =
            |list: Vec<Derived<Run, RunFigures>>| list.into_iter().map(|d| d.item).collect();
        Ok(Results {
            servers: file.servers,
            shapes: file.shapes,
            runs: items(file.runs),
            idles: file.idle.into_iter().map(|d| d.item).collect(),
            syscalls: file.syscalls.into_iter().map(|d| d.item).collect(),
            reps: file.reps,
            duration: file.duration,
            load_threads: file.load_threads,
            pin: file.pin,
            idle_conns: file.idle_conns,
            machine: file.machine,
            date: file.date,
            load_average: file.load_average,
            minutes: file.minutes,
            command: file.command,
            chart: file.chart,
            tls_servers: file.tls_servers,
            tls_shape: file.tls_shape,
            tls_setup: items(file.tls_setup_runs),
        })
    }
}
