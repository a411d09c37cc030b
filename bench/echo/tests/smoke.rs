//! Run: cargo test -p fastnet-bench-echo
//!
//! The harness end to end at toy size: every server (both fastnet drivers
//! and every peer) is started, loaded with a few connections for a moment,
//! plain and pipelined, and measured with a few idle connections; every
//! echo must be correct and every server must exit cleanly on SIGTERM.
//! Not a performance test: no figure is compared.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const HARNESS: &str = env!("CARGO_BIN_EXE_bench-echo");
/// The harness stops itself well before this; it is only a backstop.
const DEADLINE: Duration = Duration::from_secs(240);

/// The `fastnet` binary of the same profile, built if it is missing.
fn fastnet() -> PathBuf {
    let dir = Path::new(HARNESS).parent().expect("binary directory");
    let path = dir.join("fastnet");
    if !path.is_file() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "-p", "fastnet-cli", "--bin", "fastnet"]);
        if dir.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("run cargo build");
        assert!(status.success(), "cargo build -p fastnet-cli failed");
    }
    assert!(path.is_file(), "no fastnet binary at {}", path.display());
    path
}

#[test]
fn every_server_echoes_correctly() {
    let fastnet = fastnet();
    let json = std::env::temp_dir().join(format!("bench-echo-smoke-{}.json", std::process::id()));
    let mut child = Command::new(HARNESS)
        .arg("--fastnet")
        .arg(&fastnet)
        .args(["--reps", "1", "--duration", "300ms", "--settle", "50ms"])
        .args(["--config", "8x512", "--config", "4x512p4"])
        .args(["--idle-conns", "16", "--no-syscalls", "--no-write"])
        .arg("--json-out")
        .arg(&json)
        .stdout(Stdio::null())
        .spawn()
        .expect("start bench-echo");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for bench-echo") {
            break status;
        }
        if started.elapsed() > DEADLINE {
            let _ = child.kill();
            panic!("bench-echo did not finish within {DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let text = std::fs::read_to_string(&json).expect("results JSON");
    let _ = std::fs::remove_file(&json);
    let results: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    assert!(
        status.success(),
        "bench-echo failed ({status}): {}",
        results["failures"]
    );

    let servers = [
        "fastnet-smol",
        "fastnet-std",
        "tokio-framed",
        "tokio-raw",
        "mio",
        "std",
    ];
    let runs = results["runs"].as_array().expect("runs");
    for server in servers {
        for shape in ["8x512", "4x512p4"] {
            let run = runs
                .iter()
                .find(|r| r["server"] == server && r["shape"] == shape)
                .unwrap_or_else(|| panic!("no run of {server} {shape}"));
            assert!(run["requests"].as_u64().unwrap() > 0, "{run}");
            assert_eq!(run["mismatches"], 0, "{run}");
            assert_eq!(run["io_errors"], 0, "{run}");
            assert_eq!(run["connect_errors"], 0, "{run}");
            assert_eq!(run["clean_exit"], true, "{run}");
            assert!(run["cpu_us"].as_u64().is_some(), "{run}");
            assert!(run["peak_rss_kib"].as_u64().unwrap() > 0, "{run}");
        }
        let idle = results["idle"]
            .as_array()
            .expect("idle")
            .iter()
            .find(|i| i["server"] == server)
            .unwrap_or_else(|| panic!("no idle measurement of {server}"));
        assert_eq!(idle["open"], 16, "{idle}");
        assert_eq!(idle["ok"], true, "{idle}");
    }
    assert!(results["failures"].as_array().unwrap().is_empty());
}
