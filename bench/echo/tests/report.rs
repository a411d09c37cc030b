//! Run: cargo test -p fastnet-bench-echo --test report
//!
//! The report from made-up runs: medians, ratios, the targets' verdicts,
//! the TLS table, the JSON round trip that `--render` relies on, and the
//! chart; and the committed bench/echo-results.json, read back.

use fastnet_bench_echo::idle::Idle;
use fastnet_bench_echo::load::{Run, Shape};
use fastnet_bench_echo::machine::Machine;
use fastnet_bench_echo::report::{splice, Results, BEGIN, END};
use fastnet_bench_echo::servers::Server;
use fastnet_bench_echo::svg;

fn run(server: Server, shape: Shape, rep: usize, rps: f64, cpu_us_per_req: f64) -> Run {
    let requests = (rps * 3.0) as u64;
    Run {
        server,
        shape,
        rep,
        requests,
        rps,
        p50_us: 1000,
        p99_us: if server == Server::FastnetSmol {
            900
        } else {
            1000
        },
        cpu_us: (cpu_us_per_req * requests as f64) as u64,
        cpu_user_us: 0,
        peak_rss_kib: 4096,
        mismatches: 0,
        io_errors: 0,
        connect_errors: 0,
        clean_exit: true,
        error: None,
    }
}

fn results() -> Results {
    let shapes = Shape::STANDARD.to_vec();
    let mut runs = Vec::new();
    for rep in 0..3 {
        for &shape in &shapes {
            let pipelined = shape.pipeline > 1;
            for (server, rps, cpu) in [
                (
                    Server::FastnetSmol,
                    if pipelined { 130.0 } else { 100.0 },
                    7.0,
                ),
                (Server::FastnetStd, 100.0, 12.0),
                (Server::TokioFramed, 100.0, 10.0),
                (Server::TokioRaw, 100.0, 9.0),
                (Server::Mio, 100.0, 8.0),
                (Server::Std, 100.0, 12.5),
            ] {
                // Repetition 2 is an outlier the medians must ignore.
                let k = if rep == 2 { 3.0 } else { 1.0 };
                runs.push(run(server, shape, rep, rps * 1000.0 * k, cpu * k));
            }
        }
    }
    // TLS at 1000 × 512: 30,000 requests per run; the setup load costs
    // 300 µs per connection (one request each), so the steady state is
    // (cpu × 30,000 − 300,000) / 29,000 µs per request.
    let tls_shape = Shape::STANDARD[0];
    let mut tls_setup = Vec::new();
    for rep in 0..3 {
        for (server, cpu) in [(Server::FastnetSmolTls, 12.0), (Server::TokioRustls, 15.0)] {
            let mut r = run(server, tls_shape, rep, 10_000.0, cpu);
            r.p99_us = 2000;
            runs.push(r);
            let mut s = run(server, tls_shape, rep, 1_000_000.0, 0.0);
            s.requests = 1000;
            s.cpu_us = 300_000;
            tls_setup.push(s);
        }
    }
    let idles = Server::ALL
        .iter()
        .map(|&server| Idle {
            server,
            rep: 0,
            conns: 1000,
            open: 1000,
            rss_before_kib: 1000,
            rss_after_kib: if server == Server::FastnetSmol {
                2500
            } else {
                11_000
            },
            clean_exit: true,
            error: None,
        })
        .collect();
    Results {
        servers: Server::ALL.to_vec(),
        shapes,
        runs,
        idles,
        syscalls: Vec::new(),
        reps: 3,
        duration: "3s".into(),
        load_threads: 1,
        pin: None,
        idle_conns: 1000,
        machine: Machine {
            cores: 2,
            cpu: "Test CPU".into(),
            kernel: "6.0".into(),
            memory_mib: 1024,
            rustc: None,
        },
        date: "2026-01-01 00:00 UTC".into(),
        load_average: (Some(1.0), Some(2.0)),
        minutes: 1.0,
        command: "bench-echo".into(),
        chart: Some("bench/echo-results.svg".into()),
        tls_servers: Server::TLS.to_vec(),
        tls_shape: Some(tls_shape),
        tls_setup,
    }
}

#[test]
fn targets_are_judged_on_medians() {
    let r = results();
    let targets = r.targets();
    let verdict = |prefix: &str| {
        targets
            .iter()
            .find(|t| t.goal.starts_with(prefix))
            .unwrap_or_else(|| panic!("no target {prefix:?}"))
            .met
    };
    // 7 / 8 = 0.875 ≤ 1.05; pipelined the same CPU, ≤ 1.0.
    assert_eq!(
        verdict("fastnet-smol CPU/request ≤ 1.05× mio raw, 1000"),
        Some(true)
    );
    assert_eq!(
        verdict("fastnet-smol CPU/request ≤ 1.0× mio raw, 1000 conns, pipeline 16"),
        Some(true)
    );
    // 130 / 100 = 1.3 < 1.5; the ceiling, mio raw, is named beside it.
    let pipelined = targets
        .iter()
        .find(|t| t.goal.starts_with("fastnet-smol requests/s ≥ 1.5×"))
        .expect("the pipelined target");
    assert_eq!(pipelined.met, Some(false));
    assert!(
        pipelined
            .measured
            .contains("ceiling: mio raw (ceiling) 1.00× tokio-util Framed"),
        "{}",
        pipelined.measured
    );
    // 12 / 12.5 ≤ 1.05; fastnet-std raw did not run, so no floor is named.
    assert_eq!(verdict("fastnet-std CPU/request"), Some(true));
    assert!(!targets
        .iter()
        .any(|t| t.goal.starts_with("fastnet-std CPU") && t.measured.contains("without")));
    // 1500 KiB / 1000 connections = 1,536 bytes > 1 KiB; fastnet-std's
    // 10,240 bytes are std raw's, which the bound allows.
    assert_eq!(verdict("fastnet-smol RSS per idle"), Some(false));
    assert_eq!(verdict("fastnet-std RSS per idle"), Some(true));
    // 900 / 1000 at every ping-pong load; none for the pipelined one.
    assert_eq!(verdict("fastnet-smol p99"), Some(true));
    assert_eq!(
        targets
            .iter()
            .filter(|t| t.goal.starts_with("fastnet-smol p99"))
            .count(),
        Shape::STANDARD.iter().filter(|s| s.pipeline == 1).count()
    );
    let ratio = r
        .ratio(
            Server::FastnetSmol,
            Server::TokioFramed,
            Shape::STANDARD[0],
            fastnet_bench_echo::report::Metric::CpuPerRequest,
        )
        .unwrap();
    assert!((ratio.0 - 0.7).abs() < 1e-6, "{ratio:?}");
    assert!(r.failures().is_empty());
}

/// [`results`] with mio framed (the floor) at 8.4 µs a request, 1.05× mio
/// raw's 8, and fastnet-smol raw at 8.08 µs (1.01×), at every load; and
/// fastnet-smol at `fastnet_pipelined` µs a request under the pipelined
/// load, where its target is ≤ 1.0× mio raw.
fn results_with_floor(fastnet_pipelined: f64) -> Results {
    let mut r = results();
    let k = |rep| if rep == 2 { 3.0 } else { 1.0 };
    for run in &mut r.runs {
        if run.server == Server::FastnetSmol && run.shape.pipeline > 1 {
            run.cpu_us = (fastnet_pipelined * k(run.rep) * run.requests as f64).round() as u64;
        }
    }
    for rep in 0..3 {
        for &shape in &Shape::STANDARD {
            for (server, cpu) in [(Server::MioFramed, 8.4), (Server::FastnetSmolRaw, 8.08)] {
                r.runs
                    .push(run(server, shape, rep, 100_000.0 * k(rep), cpu * k(rep)));
            }
        }
    }
    r.servers
        .extend([Server::FastnetSmolRaw, Server::MioFramed]);
    r
}

/// The target of `r` whose goal is `goal`, and its row of the targets
/// table.
fn target_and_row(r: &Results, goal: &str) -> (fastnet_bench_echo::report::Target, String) {
    let target = r
        .targets()
        .into_iter()
        .find(|t| t.goal == goal)
        .unwrap_or_else(|| panic!("no target {goal}"));
    let row = r
        .targets_table()
        .lines()
        .find(|l| l.starts_with(&format!("| {goal} |")))
        .expect("its row")
        .to_string();
    (target, row)
}

/// The pipelined CPU target of `r`, and its row of the targets table.
fn pipelined_cpu_target(r: &Results) -> (fastnet_bench_echo::report::Target, String) {
    target_and_row(
        r,
        "fastnet-smol CPU/request ≤ 1.0× mio raw, 1000 conns, pipeline 16",
    )
}

#[test]
fn a_miss_past_a_floor_that_misses_too_is_below_the_floor() {
    // 8.8 / 8 = 1.10: over the bound of 1.0, and over the floor's 1.05,
    // which fastnet has not beaten: the bound is out of reach.
    let r = results_with_floor(8.8);
    let (target, row) = pipelined_cpu_target(&r);
    assert_eq!(target.met, Some(false));
    let floor = target.below_floor.expect("below the floor");
    assert!((floor - 1.05).abs() < 1e-9, "{floor}");
    assert!(
        target.measured.starts_with("1.10× (8.80 µs vs 8.00 µs"),
        "{}",
        target.measured
    );
    // Both the server without framing and the floor are named beside it.
    assert!(
        target.measured.ends_with(
            "; without framing: fastnet-smol raw 1.01× mio raw (ceiling) in this run\
             ; floor: mio framed (floor) 1.05× mio raw (ceiling) in this run"
        ),
        "{}",
        target.measured
    );
    assert!(
        row.ends_with(" | **missed**: below the floor (1.05×) |"),
        "{row}"
    );
    // At the floor exactly, still below it.
    let (at, row) = pipelined_cpu_target(&results_with_floor(8.4));
    assert_eq!(at.met, Some(false));
    assert!(at.below_floor.is_some(), "{}", at.measured);
    assert!(
        row.ends_with(" | **missed**: below the floor (1.05×) |"),
        "{row}"
    );
    // The target at 1000 conns allows 1.05×, which the floor meets: 7 / 8
    // is met, with the floor beside it all the same.
    let plain = r
        .targets()
        .into_iter()
        .find(|t| t.goal == "fastnet-smol CPU/request ≤ 1.05× mio raw, 1000 conns")
        .expect("the 1000 conns CPU target");
    assert_eq!((plain.met, plain.below_floor), (Some(true), None));
    assert!(
        plain
            .measured
            .contains("; floor: mio framed (floor) 1.05× mio raw (ceiling) in this run"),
        "{}",
        plain.measured
    );
    // The JSON carries the floor's ratio for readers, and renders the same.
    let json = r.to_json();
    let written = json["targets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["goal"] == target.goal)
        .unwrap();
    assert!((written["below_floor"].as_f64().unwrap() - 1.05).abs() < 1e-9);
    assert!(json["targets"][0].get("below_floor").is_none());
    let back = Results::from_json(&json).unwrap();
    assert_eq!(back.targets_table(), r.targets_table());
}

#[test]
fn a_miss_under_the_floor_is_plainly_missed_and_under_the_bound_met() {
    // 8.16 / 8 = 1.02: fastnet beat the floor's 1.05, so that floor does
    // not put the bound out of reach.
    let (beaten, row) = pipelined_cpu_target(&results_with_floor(8.16));
    assert_eq!((beaten.met, beaten.below_floor), (Some(false), None));
    assert!(beaten.measured.starts_with("1.02×"), "{}", beaten.measured);
    assert!(row.ends_with(" | **missed** |"), "{row}");
    // 7.6 / 8 = 0.95 ≤ 1.0.
    let (under, row) = pipelined_cpu_target(&results_with_floor(7.6));
    assert_eq!((under.met, under.below_floor), (Some(true), None));
    assert!(row.ends_with(" | **met** |"), "{row}");
    // A floor that meets the bound itself excuses no miss: mio framed at
    // 7.6 µs (0.95×), fastnet-smol at 1.10×.
    let mut r = results_with_floor(8.8);
    for run in &mut r.runs {
        if run.server == Server::MioFramed {
            run.cpu_us = run.cpu_us * 76 / 84;
        }
    }
    let (missed, row) = pipelined_cpu_target(&r);
    assert!(
        missed.measured.contains("floor: mio framed (floor) 0.95×"),
        "{}",
        missed.measured
    );
    assert_eq!((missed.met, missed.below_floor), (Some(false), None));
    assert!(row.ends_with(" | **missed** |"), "{row}");
    // Without mio framed in the run, the miss is plain and no floor is named.
    let (alone, _) = pipelined_cpu_target(&{
        let mut r = results_with_floor(8.8);
        r.runs.retain(|run| run.server != Server::MioFramed);
        r
    });
    assert_eq!((alone.met, alone.below_floor), (Some(false), None));
    assert!(!alone.measured.contains("floor:"), "{}", alone.measured);
}

#[test]
fn a_failed_run_is_reported_and_left_out() {
    let mut r = results();
    r.runs[0].mismatches = 1;
    let failures = r.failures();
    assert_eq!(failures.len(), 1);
    assert!(failures[0].contains("mismatches 1"), "{failures:?}");
    assert_eq!(
        r.values(
            Server::FastnetSmol,
            Shape::STANDARD[0],
            fastnet_bench_echo::report::Metric::Rps
        )
        .len(),
        2
    );
    assert!(r.markdown().contains("Failed runs"));
}

#[test]
fn json_round_trip_renders_the_same_report() {
    let r = results();
    let back = Results::from_json(&r.to_json()).expect("results from their JSON");
    assert_eq!(back.markdown(), r.markdown());
    assert_eq!(svg::chart(&back), svg::chart(&r));
}

#[test]
fn markdown_and_chart_have_every_server() {
    let r = results();
    let md = r.markdown();
    assert!(md.starts_with(BEGIN) && md.trim_end().ends_with(END));
    let chart = svg::chart(&r);
    assert!(chart.starts_with("<svg") && chart.trim_end().ends_with("</svg>"));
    for s in Server::ALL {
        assert!(md.contains(s.label()), "{}", s.label());
        assert!(chart.contains(s.label()), "{}", s.label());
    }
    let doc = format!("# Benchmarks\n\n## Other\n\nkept\n\n{md}\n## After\n\nkept too\n");
    let again = splice(&doc, &md);
    assert_eq!(again, doc);
}

#[test]
fn tls_table_has_both_servers_with_and_without_setup() {
    let r = results();
    let steady = |server| fastnet_bench_echo::stats::median(&r.tls_steady_cpu_values(server));
    let expect = |cpu: f64| (cpu * 30_000.0 - 300_000.0) / 29_000.0;
    assert!((steady(Server::FastnetSmolTls).unwrap() - expect(12.0)).abs() < 1e-3);
    assert!((steady(Server::TokioRustls).unwrap() - expect(15.0)).abs() < 1e-3);
    assert_eq!(r.tls_setup_cpu_values(Server::TokioRustls), vec![300.0; 3]);
    let md = r.markdown();
    let tls = &md[md.find("### TLS").expect("a TLS subsection")..];
    for s in Server::TLS {
        assert!(tls.contains(s.label()), "{}", s.label());
    }
    assert!(
        tls.contains("| fastnet-smol TLS | 10,000 (0%) | 12.00 (0%) |"),
        "{tls}"
    );
    // 12 / 15 = 0.80; setup and p99 equal.
    assert!(
        tls.contains("| *fastnet-smol TLS ÷ tokio-rustls Framed* | 1.00× | 0.80× |"),
        "{tls}"
    );
    assert!(tls.contains("fastnet bench --tls --tls-ca ca.pem"), "{tls}");
    assert!(tls.contains("--duration 0ms"), "{tls}");
    // The plain tables do not list the TLS servers.
    let plain = &md[..md.find("### TLS").unwrap()];
    assert!(!plain.contains("tokio-rustls"));
    // Failed setup loads are reported.
    let mut failed = r.clone();
    failed.tls_setup[0].mismatches = 1;
    assert!(failed.failures()[0].contains("setup load"));
}

#[test]
fn results_from_before_tls_still_render() {
    let mut json = results().to_json();
    for key in ["tls_servers", "tls_shape", "tls_setup_runs"] {
        json.as_object_mut().unwrap().remove(key);
    }
    let back = Results::from_json(&json).expect("results without TLS");
    assert!(back.tls_servers.is_empty() && back.tls_setup.is_empty());
    assert!(!back.markdown().contains("### TLS"));
}

/// The committed results file, as `bench-echo --render` reads it.
fn committed() -> serde_json::Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../echo-results.json");
    let text = std::fs::read_to_string(path).expect("bench/echo-results.json");
    serde_json::from_str(&text).expect("valid JSON")
}

#[test]
fn the_committed_results_file_still_parses() {
    let json = committed();
    let r = Results::from_json(&json).expect("bench/echo-results.json parses");
    assert!(!r.runs.is_empty() && !r.idles.is_empty());
    assert_eq!(r.runs.len(), json["runs"].as_array().unwrap().len());
    // What it derives from the measurements is what the file says.
    assert_eq!(
        serde_json::to_value(r.failures()).unwrap(),
        json["failures"]
    );
    let back = Results::from_json(&r.to_json()).expect("written again, read again");
    assert_eq!(back.markdown(), r.markdown());
}

#[test]
fn the_committed_results_file_renders_the_committed_section() {
    // BENCHMARKS.md's section was rendered from this file; reading it with
    // serde must give every figure back, so the same section comes out.
    let r = Results::from_json(&committed()).unwrap();
    let doc = concat!(env!("CARGO_MANIFEST_DIR"), "/../../BENCHMARKS.md");
    let doc = std::fs::read_to_string(doc).expect("BENCHMARKS.md");
    let (begin, end) = (doc.find(BEGIN).unwrap(), doc.find(END).unwrap());
    assert_eq!(r.markdown().trim_end(), &doc[begin..end + END.len()]);
}

/// The pipelined requests/s target (at least 1.5× tokio-util Framed) of
/// [`results_with_floor`] with mio framed at `floor` thousand requests/s
/// in every repetition (Framed's 100 thousand; fastnet-smol's 130).
fn pipelined_rps_target(floor: f64) -> (fastnet_bench_echo::report::Target, String) {
    let mut r = results_with_floor(8.8);
    for run in &mut r.runs {
        if run.server == Server::MioFramed && run.shape.pipeline > 1 {
            let k = if run.rep == 2 { 3.0 } else { 1.0 };
            run.rps = floor * 1000.0 * k;
        }
    }
    target_and_row(
        &r,
        "fastnet-smol requests/s ≥ 1.5× tokio-util Framed, 1000 conns, pipeline 16",
    )
}

#[test]
fn a_throughput_miss_is_judged_against_the_floor_too() {
    // The least framed echo reaches 1.40×, under the bound of 1.5, and
    // fastnet-smol (1.30×) has not beaten it: below the floor. For a
    // lower bound, beating the floor means more requests/s than it.
    let (target, row) = pipelined_rps_target(140.0);
    assert_eq!(target.met, Some(false));
    assert!(
        (target.below_floor.expect("below the floor") - 1.4).abs() < 1e-9,
        "{}",
        target.measured
    );
    assert!(
        target
            .measured
            .starts_with("1.30× (130,000 req/s vs 100,000 req/s"),
        "{}",
        target.measured
    );
    // The ceiling, the server without framing and the floor, in that order.
    assert!(
        target.measured.ends_with(
            "; ceiling: mio raw (ceiling) 1.00× tokio-util Framed in this run\
             ; without framing: fastnet-smol raw 1.00× tokio-util Framed in this run\
             ; floor: mio framed (floor) 1.40× tokio-util Framed in this run"
        ),
        "{}",
        target.measured
    );
    assert!(
        row.ends_with(" | **missed**: below the floor (1.40×) |"),
        "{row}"
    );
    // A floor that reaches the bound excuses nothing; one fastnet-smol
    // beats (1.30× against 1.20×) neither.
    for floor in [160.0, 120.0] {
        let (missed, row) = pipelined_rps_target(floor);
        assert_eq!((missed.met, missed.below_floor), (Some(false), None));
        assert!(row.ends_with(" | **missed** |"), "{row}");
    }
}

#[test]
fn a_verdict_whose_pairs_fall_on_both_sides_of_the_bound_says_so() {
    // fastnet-smol pipelined at 7.6, 8.0 and 8.4 µs (the last in the
    // outlier repetition, × 3 as mio raw's there) against mio raw's 8:
    // pairs 0.95×, 1.00×, 1.05×; median 8.0 µs, 1.00×, which meets the
    // bound of 1.0; the pairs straddle it.
    let mut r = results_with_floor(8.0);
    for run in &mut r.runs {
        if run.server == Server::FastnetSmol && run.shape.pipeline > 1 {
            let cpu = [7.6, 8.0, 8.4 * 3.0][run.rep];
            run.cpu_us = (cpu * run.requests as f64).round() as u64;
        }
    }
    let (target, row) = pipelined_cpu_target(&r);
    assert!(target.on_the_bound, "{}", target.measured);
    assert!(
        row.ends_with(" | **met**; on the bound (same-repetition pairs on both sides) |"),
        "{row}"
    );
    // Every pair on one side: no such note (the other tests' rows end
    // with the verdict alone).
    let (clear, row) = pipelined_cpu_target(&results_with_floor(8.8));
    assert!(!clear.on_the_bound, "{}", clear.measured);
    assert!(!row.contains("on the bound"), "{row}");
    // The JSON carries it, and renders the same.
    let json = r.to_json();
    let back = Results::from_json(&json).unwrap();
    assert_eq!(back.targets_table(), r.targets_table());
}
