// Prints the codec benchmark tables (markdown) from criterion's results:
// every row, then the targets, each met or missed.
//
// Run after the benchmarks:
//   cargo bench -p fastnet-bench --bench decode -- --warm-up-time 1 --measurement-time 3
//   cargo run -p fastnet-bench --release --bin codec_report [CRITERION_DIR...]
//
// Each CRITERION_DIR is a `target/criterion` directory (default: this
// workspace's). Given several (copies kept from several runs, as
// bench/run_decode.sh does), every figure is the median over the runs of
// criterion's median time per iteration.

//! Markdown tables of codec throughput from criterion's `estimates.json`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use fastnet_bench::{cases, Case, Kind};

/// An implementation as named in criterion (bench id) and in the table.
#[derive(PartialEq)]
struct Imp {
    id: &'static str,
    name: &'static str,
}

const FASTNET: Imp = Imp {
    id: "fastnet",
    name: "fastnet-proto, in place",
};
const FASTNET_BYTES: Imp = Imp {
    id: "fastnet_bytes",
    name: "fastnet-proto, `decode_bytes` (BytesMut)",
};
const FASTNET_TOKIO: Imp = Imp {
    id: "fastnet_tokio",
    name: "fastnet-tokio `FastnetCodec` (tokio-util `Decoder`)",
};
const TOKIO_LENGTH: Imp = Imp {
    id: "tokio_length_delimited",
    name: "tokio-util LengthDelimitedCodec",
};
const SKIP_LOOP: Imp = Imp {
    id: "skip_loop",
    name: "bare u32 skip loop (ceiling)",
};
const TOKIO_LINES: Imp = Imp {
    id: "tokio_lines",
    name: "tokio-util LinesCodec",
};
const TOKIO_ANY: Imp = Imp {
    id: "tokio_any_delimiter",
    name: "tokio-util AnyDelimiterCodec",
};
const MEMCHR: Imp = Imp {
    id: "memchr",
    name: "memchr_iter (ceiling)",
};
const COBS_IN_PLACE: Imp = Imp {
    id: "cobs",
    name: "cobs `decode_in_place`",
};
const CORNCOBS_IN_PLACE: Imp = Imp {
    id: "corncobs",
    name: "corncobs `decode_in_place`",
};
const CORNCOBS_BUF: Imp = Imp {
    id: "corncobs_buf",
    name: "corncobs `decode_buf` (into a buffer)",
};
const COBS_FIND: Imp = Imp {
    id: "find_floor",
    name: "`memchr` per frame, nothing decoded (floor)",
};
const COBS_FIND_MOVE: Imp = Imp {
    id: "find_move_floor",
    name: "`memchr` per frame and the frame moved one byte back (floor with full groups)",
};
const FASTNET_ENCODE: Imp = Imp {
    id: "fastnet",
    name: "fastnet-proto `CobsEncoder::encode`",
};
const COBS_ENCODE: Imp = Imp {
    id: "cobs",
    name: "cobs `encode`",
};
const CORNCOBS_ENCODE: Imp = Imp {
    id: "corncobs",
    name: "corncobs `encode_buf`",
};
const UVI_BYTES: Imp = Imp {
    id: "unsigned_varint",
    name: "unsigned-varint `UviBytes` (tokio-util `Decoder`)",
};
const UVI_FN: Imp = Imp {
    id: "unsigned_varint_fn",
    name: "unsigned-varint `decode::usize`, hand loop",
};

/// What a case's table rows are: the rows, the other implementations each
/// row is compared with, the ceiling, if any, and any further floor the
/// targets table shows beside it.
struct Layout {
    rows: Vec<&'static Imp>,
    others: Vec<&'static Imp>,
    ceiling: Option<&'static Imp>,
    also_floor: Option<&'static Imp>,
}

fn layout(kind: Kind) -> Layout {
    match kind {
        Kind::Length { .. } => Layout {
            rows: vec![
                &FASTNET,
                &FASTNET_BYTES,
                &FASTNET_TOKIO,
                &TOKIO_LENGTH,
                &SKIP_LOOP,
            ],
            others: vec![&TOKIO_LENGTH],
            ceiling: Some(&SKIP_LOOP),
            also_floor: None,
        },
        Kind::Lines { .. } => Layout {
            rows: vec![&FASTNET, &FASTNET_BYTES, &TOKIO_LINES, &TOKIO_ANY, &MEMCHR],
            others: vec![&TOKIO_LINES, &TOKIO_ANY],
            ceiling: Some(&MEMCHR),
            also_floor: None,
        },
        Kind::CobsDecode { payload } => Layout {
            rows: vec![
                &FASTNET,
                &COBS_IN_PLACE,
                &CORNCOBS_IN_PLACE,
                &CORNCOBS_BUF,
                &COBS_FIND,
                &COBS_FIND_MOVE,
            ],
            others: vec![&COBS_IN_PLACE, &CORNCOBS_IN_PLACE, &CORNCOBS_BUF],
            ceiling: Some(&COBS_FIND),
            // A random payload of 1 KiB or more holds a full group within
            // its first few, so an in-place decoder moves nearly all of
            // it. At 256 B only about a third of the frames hold one, near
            // their end, and the move is not a floor.
            also_floor: (payload >= 1024).then_some(&COBS_FIND_MOVE),
        },
        Kind::CobsEncode { .. } => Layout {
            rows: vec![&FASTNET_ENCODE, &COBS_ENCODE, &CORNCOBS_ENCODE],
            others: vec![&COBS_ENCODE, &CORNCOBS_ENCODE],
            ceiling: None,
            also_floor: None,
        },
        Kind::Varint { .. } => Layout {
            rows: vec![&FASTNET, &FASTNET_BYTES, &UVI_BYTES, &UVI_FN],
            others: vec![&UVI_BYTES, &UVI_FN],
            ceiling: None,
            also_floor: None,
        },
    }
}

/// A short name for a column entry: the name up to its first comma or
/// parenthesis, without "tokio-util ".
fn short(imp: &Imp) -> &'static str {
    let name = imp.name.trim_start_matches("tokio-util ");
    let end = name.find([',', '(']).unwrap_or(name.len());
    name[..end].trim_end()
}

/// Median time per iteration (ns) of one benchmark in each run (`None`
/// where a run lacks it).
fn run_medians(dirs: &[PathBuf], group: &str, id: &str) -> Result<Vec<Option<f64>>, String> {
    let mut out = Vec::new();
    for dir in dirs {
        let path = dir.join(group).join(id).join("new").join("estimates.json");
        let Ok(text) = std::fs::read_to_string(&path) else {
            out.push(None);
            continue;
        };
        let json: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        let ns = json["median"]["point_estimate"]
            .as_f64()
            .ok_or_else(|| format!("{}: no median.point_estimate", path.display()))?;
        out.push(Some(ns));
    }
    Ok(out)
}

fn median(xs: &mut [f64]) -> f64 {
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    }
}

/// One row's measurement: median ns per iteration over the runs.
struct Measured {
    ns: f64,
    /// Each run's median, aligned with the criterion directories.
    per_run: Vec<Option<f64>>,
    /// (slowest - fastest) / median, over the runs.
    spread: f64,
}

impl Measured {
    fn runs(&self) -> usize {
        self.per_run.iter().flatten().count()
    }
}

fn measure(dirs: &[PathBuf], case: &Case, imp: &Imp) -> Result<Option<Measured>, String> {
    let per_run = run_medians(dirs, &case.group, imp.id)?;
    let mut runs: Vec<f64> = per_run.iter().flatten().copied().collect();
    if runs.is_empty() {
        return Ok(None);
    }
    let ns = median(&mut runs);
    let spread = (runs[runs.len() - 1] - runs[0]) / ns;
    Ok(Some(Measured {
        ns,
        per_run,
        spread,
    }))
}

/// How many times faster one implementation is than another: the ratio of
/// the medians, and the lowest and highest ratio within a single run.
struct Ratio {
    x: f64,
    within: Vec<f64>,
}

impl Ratio {
    /// `reference` time over `this` time.
    fn of(reference: &Measured, this: &Measured) -> Ratio {
        Self::best_of(&[reference], this)
    }

    /// The fastest of `references` (by median; in each run, that run's
    /// fastest) over `this`.
    fn best_of(references: &[&Measured], this: &Measured) -> Ratio {
        let best = references
            .iter()
            .map(|r| r.ns)
            .fold(f64::INFINITY, f64::min);
        let within = (0..this.per_run.len())
            .filter_map(|run| {
                let t = this.per_run[run]?;
                let r = references
                    .iter()
                    .filter_map(|r| r.per_run.get(run).copied().flatten())
                    .fold(f64::INFINITY, f64::min);
                r.is_finite().then_some(r / t)
            })
            .collect();
        Ratio {
            x: best / this.ns,
            within,
        }
    }

    fn range(&self) -> Option<(f64, f64)> {
        let lo = self.within.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = self
            .within
            .iter()
            .copied()
            .fold(f64::NEG_INFINITY, f64::max);
        (self.within.len() > 1).then_some((lo, hi))
    }
}

impl std::fmt::Display for Ratio {
    /// `1.23x (1.10-1.30)`: the headline, then the range within runs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:.2}x", self.x)?;
        if let Some((lo, hi)) = self.range() {
            write!(f, " ({lo:.2}-{hi:.2})")?;
        }
        Ok(())
    }
}

/// Frames per second at `ns` per iteration of `case`.
fn frames_per_sec(case: &Case, ns: f64) -> f64 {
    case.frames as f64 / (ns * 1e-9)
}

fn results_table(dirs: &[PathBuf]) -> Result<String, String> {
    let mut out = String::new();
    out.push_str(
        "| case | implementation | Mframes/s | GB/s | vs others (frames/s) | vs ceiling | runs, time spread |\n",
    );
    out.push_str("|---|---|---:|---:|---|---:|---|\n");
    let mut rows = 0;
    for case in cases() {
        let layout = layout(case.kind);
        let mut others = Vec::new();
        for r in &layout.others {
            others.push((*r, measure(dirs, &case, r)?));
        }
        let ceiling = match layout.ceiling {
            Some(c) => measure(dirs, &case, c)?,
            None => None,
        };
        for imp in &layout.rows {
            let Some(m) = measure(dirs, &case, imp)? else {
                continue;
            };
            let secs = m.ns * 1e-9;
            let gbps = case.input.len() as f64 / secs / 1e9;
            let present = others.iter().filter(|(_, rm)| rm.is_some()).count();
            let vs_others: Vec<String> = others
                .iter()
                .filter(|(r, _)| *r != *imp)
                .filter_map(|(r, rm)| {
                    let x = Ratio::of(rm.as_ref()?, &m);
                    Some(if present > 1 {
                        format!("{x} {}", short(r))
                    } else {
                        x.to_string()
                    })
                })
                .collect();
            let vs_others = if vs_others.is_empty() {
                "-".to_string()
            } else {
                vs_others.join(", ")
            };
            let vs_ceiling = match (layout.ceiling, ceiling.as_ref()) {
                (Some(c), Some(cm)) if c != *imp => Ratio::of(cm, &m).to_string(),
                _ => "-".to_string(),
            };
            out.push_str(&format!(
                "| {} | {} | {:.1} | {:.2} | {} | {} | {}, {:.0}% |\n",
                case.label(),
                imp.name,
                frames_per_sec(&case, m.ns) / 1e6,
                gbps,
                vs_others,
                vs_ceiling,
                m.runs(),
                m.spread * 100.0
            ));
            rows += 1;
        }
    }
    if rows == 0 {
        return Err(format!(
            "no criterion results under {}; run the benchmarks first",
            dirs.iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    Ok(out)
}

/// A target on one case: fastnet's row against a bound.
enum Goal {
    /// At least this many Mframes/s.
    Mframes(f64),
    /// At least this many times the frames/s of the fastest of these.
    TimesFastestOf(f64, &'static [&'static Imp]),
}

struct Target {
    case: Case,
    imp: &'static Imp,
    goal: Goal,
}

fn targets() -> Vec<Target> {
    let find = |group: &str| {
        cases()
            .into_iter()
            .find(|c| c.group == group)
            .expect("a target's case")
    };
    let mut out = vec![
        Target {
            case: find("decode_length_16"),
            imp: &FASTNET,
            goal: Goal::TimesFastestOf(3.0, &[&TOKIO_LENGTH]),
        },
        Target {
            case: find("decode_length_64"),
            imp: &FASTNET,
            goal: Goal::TimesFastestOf(3.0, &[&TOKIO_LENGTH]),
        },
        Target {
            case: find("decode_length_16"),
            imp: &FASTNET,
            goal: Goal::Mframes(150.0),
        },
        Target {
            case: find("decode_lines_64"),
            imp: &FASTNET,
            goal: Goal::TimesFastestOf(0.5, &[&MEMCHR]),
        },
        Target {
            case: find("decode_lines_64"),
            imp: &FASTNET,
            goal: Goal::TimesFastestOf(0.8, &[&MEMCHR]),
        },
    ];
    for p in fastnet_bench::COBS_PAYLOADS {
        out.push(Target {
            case: find(&format!("decode_cobs_{p}")),
            imp: &FASTNET,
            goal: Goal::TimesFastestOf(2.0, &[&COBS_IN_PLACE, &CORNCOBS_IN_PLACE, &CORNCOBS_BUF]),
        });
        out.push(Target {
            case: find(&format!("encode_cobs_{p}")),
            imp: &FASTNET_ENCODE,
            goal: Goal::TimesFastestOf(2.0, &[&COBS_ENCODE, &CORNCOBS_ENCODE]),
        });
    }
    for p in fastnet_bench::VARINT_PAYLOADS {
        out.push(Target {
            case: find(&format!("decode_varint_{p}")),
            imp: &FASTNET,
            goal: Goal::TimesFastestOf(2.0, &[&UVI_BYTES]),
        });
    }
    out
}

/// The targets table: each target, what was measured, met or missed.
fn targets_table(dirs: &[PathBuf]) -> Result<String, String> {
    let mut out = String::new();
    out.push_str("| target | result (median; lowest-highest single run) | met? |\n");
    out.push_str("|---|---|---|\n");
    for t in targets() {
        let Some(m) = measure(dirs, &t.case, t.imp)? else {
            continue;
        };
        let (what, result, met, below) = match t.goal {
            Goal::Mframes(bound) => {
                let per_run: Vec<f64> = m
                    .per_run
                    .iter()
                    .flatten()
                    .map(|&ns| frames_per_sec(&t.case, ns) / 1e6)
                    .collect();
                let mfps = frames_per_sec(&t.case, m.ns) / 1e6;
                let lo = per_run.iter().copied().fold(f64::INFINITY, f64::min);
                let hi = per_run.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let mut result = format!("{mfps:.1} Mframes/s ({lo:.1}-{hi:.1})");
                let layout = layout(t.case.kind);
                if let Some(c) = layout.ceiling {
                    if let Some(cm) = measure(dirs, &t.case, c)? {
                        result.push_str(&format!(
                            "; {} in the same runs: {:.1} Mframes/s, fastnet {} of it",
                            short(c),
                            frames_per_sec(&t.case, cm.ns) / 1e6,
                            invert(&Ratio::of(&cm, &m))
                        ));
                    }
                }
                (
                    format!("{} >= {bound:.0} Mframes/s", t.case.label()),
                    result,
                    mfps >= bound,
                    None,
                )
            }
            Goal::TimesFastestOf(bound, refs) => {
                let mut measured = Vec::new();
                for r in refs {
                    if let Some(rm) = measure(dirs, &t.case, r)? {
                        measured.push(rm);
                    }
                }
                if measured.is_empty() {
                    continue;
                }
                let ratio = Ratio::best_of(&measured.iter().collect::<Vec<_>>(), &m);
                let mut result = ratio.to_string();
                let mut below = None;
                // A floor in the same runs says whether the bound is
                // reachable at all: the fastest competitor times the bound
                // against what the floor does. A bound past a floor that
                // fastnet has not beaten is reported as below it.
                let best = measured.iter().map(|r| r.ns).fold(f64::INFINITY, f64::min);
                let layout = layout(t.case.kind);
                for c in layout.ceiling.into_iter().chain(layout.also_floor) {
                    if let Some(cm) = measure(dirs, &t.case, c)? {
                        let floor_x = best / cm.ns;
                        result.push_str(&format!(
                            "; {} in the same runs: {:.1} Mframes/s, {floor_x:.2}x the fastest of them",
                            short(c),
                            frames_per_sec(&t.case, cm.ns) / 1e6,
                        ));
                        if floor_x < bound && ratio.x <= floor_x {
                            // The highest such floor: the nearest the bound.
                            below = Some(below.map_or(floor_x, |b: f64| b.max(floor_x)));
                        }
                    }
                }
                let names: Vec<&str> = refs.iter().map(|r| short(r)).collect();
                let of = if names.len() > 1 {
                    format!("the fastest of {}", names.join(", "))
                } else {
                    names.join("")
                };
                (
                    format!(
                        "{}: {} >= {bound}x {of} (frames/s)",
                        t.case.label(),
                        short(t.imp)
                    ),
                    result,
                    ratio.x >= bound,
                    below,
                )
            }
        };
        let verdict = match (met, below) {
            (true, _) => "**met**".to_string(),
            (false, Some(floor)) => format!("**missed**: below the floor ({floor:.2}x)"),
            (false, None) => "**missed**".to_string(),
        };
        out.push_str(&format!("| {what} | {result} | {verdict} |\n"));
    }
    Ok(out)
}

/// `this` time over `reference` time, as a fraction: how much of the
/// reference's speed `this` reaches.
fn invert(r: &Ratio) -> String {
    let mut s = format!("{:.2}x", r.x);
    if let Some((lo, hi)) = r.range() {
        s.push_str(&format!(" ({lo:.2}-{hi:.2})"));
    }
    s
}

fn report(dirs: &[PathBuf]) -> Result<String, String> {
    let mut out = results_table(dirs)?;
    out.push_str("\nTargets:\n\n");
    out.push_str(&targets_table(dirs)?);
    Ok(out)
}

fn main() -> ExitCode {
    let mut dirs: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    if dirs.is_empty() {
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        dirs.push(workspace.join("target").join("criterion"));
    }
    match report(&dirs) {
        Ok(table) => {
            print!("{table}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("codec_report: {e}");
            ExitCode::FAILURE
        }
    }
}
