// Prints the decode benchmark table (markdown) from criterion's results.
//
// Run after the benchmarks:
//   cargo bench -p fastnet-bench --bench decode -- --warm-up-time 1 --measurement-time 3
//   cargo run -p fastnet-bench --release --bin codec_report [CRITERION_DIR...]
//
// Each CRITERION_DIR is a `target/criterion` directory (default: this
// workspace's). Given several (copies kept from several runs, as
// bench/run_decode.sh does), every figure is the median over the runs of
// criterion's median time per iteration.

//! Markdown table of decode throughput from criterion's `estimates.json`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use fastnet_bench::{cases, Case, Kind};

/// An implementation as named in criterion (bench id) and in the table.
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

/// `reference` time over `this` time: how many times faster `this` is. The
/// headline is the ratio of the medians; with several runs, the range of
/// the ratios within each run follows in parentheses.
fn ratio(reference: &Measured, this: &Measured) -> String {
    let x = reference.ns / this.ns;
    let mut within: Vec<f64> = reference
        .per_run
        .iter()
        .zip(&this.per_run)
        .filter_map(|(r, t)| Some(r.as_ref()? / t.as_ref()?))
        .collect();
    within.sort_by(f64::total_cmp);
    match (within.first(), within.last()) {
        (Some(lo), Some(hi)) if within.len() > 1 => format!("{x:.2}x ({lo:.2}-{hi:.2})"),
        _ => format!("{x:.2}x"),
    }
}

fn report(dirs: &[PathBuf]) -> Result<String, String> {
    let mut out = String::new();
    out.push_str(
        "| case | implementation | Mframes/s | GB/s | vs tokio-util (frames/s) | vs memchr (GB/s) | runs, time spread |\n",
    );
    out.push_str("|---|---|---:|---:|---|---:|---|\n");
    let mut rows = 0;
    for case in cases() {
        let (imps, tokio_refs, memchr_ref): (Vec<&Imp>, Vec<&Imp>, Option<&Imp>) = match case.kind {
            Kind::Length { .. } => (
                vec![&FASTNET, &FASTNET_BYTES, &FASTNET_TOKIO, &TOKIO_LENGTH],
                vec![&TOKIO_LENGTH],
                None,
            ),
            Kind::Lines { .. } => (
                vec![&FASTNET, &FASTNET_BYTES, &TOKIO_LINES, &TOKIO_ANY, &MEMCHR],
                vec![&TOKIO_LINES, &TOKIO_ANY],
                Some(&MEMCHR),
            ),
        };
        let mut refs = Vec::new();
        for r in &tokio_refs {
            refs.push((*r, measure(dirs, &case, r)?));
        }
        let memchr = match memchr_ref {
            Some(m) => measure(dirs, &case, m)?,
            None => None,
        };
        for imp in imps {
            let Some(m) = measure(dirs, &case, imp)? else {
                continue;
            };
            let secs = m.ns * 1e-9;
            let fps = case.frames as f64 / secs;
            let gbps = case.input.len() as f64 / secs / 1e9;
            let vs_tokio: Vec<String> = refs
                .iter()
                .filter(|(r, _)| r.id != imp.id)
                .filter_map(|(r, rm)| {
                    let x = ratio(rm.as_ref()?, &m);
                    let short = r.name.trim_start_matches("tokio-util ");
                    Some(if refs.len() > 1 {
                        format!("{x} {short}")
                    } else {
                        x
                    })
                })
                .collect();
            let vs_tokio = if vs_tokio.is_empty() {
                "-".to_string()
            } else {
                vs_tokio.join(", ")
            };
            let vs_memchr = match (memchr_ref, memchr.as_ref()) {
                (Some(r), Some(rm)) if r.id != imp.id => ratio(rm, &m),
                _ => "-".to_string(),
            };
            out.push_str(&format!(
                "| {} | {} | {:.1} | {:.2} | {} | {} | {}, {:.0}% |\n",
                case.label(),
                imp.name,
                fps / 1e6,
                gbps,
                vs_tokio,
                vs_memchr,
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
