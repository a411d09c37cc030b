//! Run: cargo test -p fastnet-bench-echo
//!
//! The harness end to end at toy size: every server (both fastnet drivers
//! and every peer) is started, loaded with a few connections for a moment,
//! plain and pipelined, and measured with a few idle connections; the TLS
//! pair (fastnet-smol with TLS and the tokio-rustls peer) is loaded over
//! TLS, with its setup load. Every echo must be correct and every server
//! must exit cleanly on SIGTERM. The tokio-rustls peer also echoes frames
//! from empty to larger than a TLS record to a rustls client, and the
//! framed floor (peer-mio --max-frame) echoes frames cut anywhere. All on
//! loopback; not a performance test: no figure is compared.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fastnet_bench_echo::servers::{parse_listening, Binaries, Pin, Running, Server};
use fastnet_bench_echo::tls::TlsFiles;
use fastnet_tls::rustls::StreamOwned;
use fastnet_tls::TlsClientConfig;

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

/// The binaries next to the harness, with `tls` files and a `pin`.
fn binaries(tls: Option<Arc<TlsFiles>>, pin: Option<Pin>) -> Binaries {
    let harness = Path::new(HARNESS);
    Binaries {
        fastnet: harness.with_file_name("fastnet"),
        peer_dir: harness.parent().expect("binary directory").to_path_buf(),
        tls,
        pin,
    }
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
        .args(["--tls", "--tls-config", "8x512p4"])
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

    assert_eq!(results["tls_shape"], "8x512p4");
    let setups = results["tls_setup_runs"].as_array().expect("setup loads");
    for server in ["fastnet-smol-tls", "tokio-rustls"] {
        let run = runs
            .iter()
            .find(|r| r["server"] == server && r["shape"] == "8x512p4")
            .unwrap_or_else(|| panic!("no TLS run of {server}"));
        let setup = setups
            .iter()
            .find(|r| r["server"] == server)
            .unwrap_or_else(|| panic!("no setup load of {server}"));
        for r in [run, setup] {
            assert!(r["requests"].as_u64().unwrap() > 0, "{r}");
            assert_eq!(r["ok"], true, "{r}");
        }
        // The setup load is one round trip per request in flight.
        assert_eq!(setup["requests"], 8 * 4, "{setup}");
    }
    assert!(results["failures"].as_array().unwrap().is_empty());
}

/// Reads one `len=u32be` frame's payload.
fn read_frame(stream: &mut impl Read) -> Vec<u8> {
    let mut header = [0u8; 4];
    stream.read_exact(&mut header).expect("frame header");
    let mut payload = vec![0u8; u32::from_be_bytes(header) as usize];
    stream.read_exact(&mut payload).expect("frame payload");
    payload
}

#[test]
fn tokio_rustls_peer_echoes_frames_over_tls() {
    let files = Arc::new(TlsFiles::create().expect("certificate files"));
    let bins = binaries(Some(files.clone()), None);
    let running = Running::start(Server::TokioRustls, &bins).expect("start peer-tokio-rustls");
    let ca = std::fs::read(&files.ca).expect("CA file");
    let connector = TlsClientConfig::new("localhost")
        .and_then(|c| c.ca_pem(&ca))
        .and_then(|c| c.build())
        .expect("client configuration");
    let tcp = TcpStream::connect(running.addr).expect("connect");
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    tcp.set_write_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut tls = StreamOwned::new(connector.session().expect("session"), tcp);

    // Empty, small, the benchmark's size, just over one TLS record
    // (16 KiB), and near the peer's largest frame; all written before any
    // is read, so frames share records and records split frames.
    let sizes = [0, 1, 512, 16 * 1024 + 1, 60_000];
    let payloads: Vec<Vec<u8>> = sizes
        .iter()
        .enumerate()
        .map(|(i, &n)| (0..n).map(|b| (b * 31 + i * 7) as u8).collect())
        .collect();
    let mut wire = Vec::new();
    for p in &payloads {
        wire.extend_from_slice(&(p.len() as u32).to_be_bytes());
        wire.extend_from_slice(p);
    }
    tls.write_all(&wire).expect("write frames");
    tls.flush().expect("flush");
    for p in &payloads {
        assert!(
            read_frame(&mut tls) == *p,
            "echo of {} bytes differs",
            p.len()
        );
    }
    // One frame at a time too, on the same connection.
    for p in &payloads {
        tls.write_all(&(p.len() as u32).to_be_bytes()).unwrap();
        tls.write_all(p).unwrap();
        tls.flush().unwrap();
        assert!(
            read_frame(&mut tls) == *p,
            "echo of {} bytes differs",
            p.len()
        );
    }
    // What the TLS table says both servers negotiate.
    assert_eq!(
        tls.conn.protocol_version(),
        Some(fastnet_tls::rustls::ProtocolVersion::TLSv1_3)
    );
    drop(tls);
    assert!(
        running.stop(),
        "peer-tokio-rustls did not exit cleanly on SIGTERM"
    );
}

/// The CPUs the kernel lets `pid` run on (`Cpus_allowed_list`).
fn cpus_allowed(pid: u32) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("process status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .expect("Cpus_allowed_list")
        .trim()
        .to_string()
}

/// With `--pin`, a server runs on the server's CPUs, under its own process
/// id (the harness reads that process's CPU time), and still echoes.
#[test]
fn pinned_servers_run_on_their_cpu() {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let Some(pin) = Pin::split(cpus) else {
        eprintln!("SKIPPED pinned_servers_run_on_their_cpu: {cpus} CPU, --pin needs two");
        return;
    };
    if Command::new("taskset").arg("-V").output().is_err() {
        eprintln!("SKIPPED pinned_servers_run_on_their_cpu: no `taskset` (util-linux) to pin with");
        return;
    }
    assert_eq!(Pin::split(1), None);
    assert_eq!(
        Pin::split(2).map(|p| (p.server, p.load)),
        Some(("0".into(), "1".into()))
    );
    assert_eq!(Pin::split(4).map(|p| p.load), Some("1-3".into()));
    let bins = binaries(None, Some(pin));
    bins.check(&[Server::Mio, Server::FastnetSmol])
        .expect("a pinned run finds its binaries");
    let running = Running::start(Server::Mio, &bins).expect("start a pinned peer-mio");
    assert_eq!(cpus_allowed(running.pid()), "0");
    let comm = std::fs::read_to_string(format!("/proc/{}/comm", running.pid())).unwrap();
    assert_eq!(
        comm.trim(),
        "peer-mio",
        "the process is the server, not taskset"
    );
    let mut stream = TcpStream::connect(running.addr).expect("connect");
    stream.write_all(b"pinned").unwrap();
    let mut back = [0u8; 6];
    stream.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"pinned");
    let load = bins
        .load_command()
        .arg("--version")
        .output()
        .expect("pinned fastnet");
    assert!(load.status.success(), "{load:?}");
}

/// Echoes messages of up to about 12 KB (more than one of the io_uring
/// peer's buffers), sent in pieces, on 8 connections at once, 3 rounds.
fn echo_concurrently(addr: std::net::SocketAddr) {
    for round in 0..3 {
        let threads: Vec<_> = (0..8)
            .map(|i| {
                std::thread::spawn(move || {
                    let mut s = TcpStream::connect(addr).expect("connect");
                    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                    let msg = format!("round {round} conn {i} ").repeat(1 + i * 100);
                    for piece in msg.as_bytes().chunks(1000) {
                        s.write_all(piece).unwrap();
                    }
                    let mut back = vec![0u8; msg.len()];
                    s.read_exact(&mut back).unwrap();
                    assert!(
                        back == msg.as_bytes(),
                        "round {round} conn {i}: echo differs"
                    );
                })
            })
            .collect();
        for t in threads {
            t.join().expect("client thread");
        }
    }
}

/// The io_uring peer (run on request, not in the default set) echoes, also
/// with two provided buffers per ring (receives then wait for buffers to
/// come back), and a `Running` that is dropped instead of stopped takes its
/// process with it.
#[test]
fn io_uring_peer_echoes_and_a_dropped_server_exits() {
    let bins = binaries(None, None);
    let running = match Running::start(Server::Uring, &bins) {
        Ok(r) => r,
        Err(e) if !cfg!(target_os = "linux") || e.to_string().contains("io_uring") => {
            eprintln!("SKIPPED io_uring_peer_echoes_and_a_dropped_server_exits: {e}");
            return;
        }
        Err(e) => panic!("start peer-uring: {e}"),
    };
    echo_concurrently(running.addr);
    let pid = running.pid();
    drop(running);
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "a dropped server's process {pid} is gone"
    );

    // Killed however the test ends.
    struct Child(std::process::Child);
    impl Drop for Child {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut starved = Child(
        Command::new(bins.peer("peer-uring"))
            .args(["0", "--buffers", "2"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("start peer-uring --buffers 2"),
    );
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(starved.0.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let addr =
        parse_listening(&line).unwrap_or_else(|| panic!("no `listening on ADDR` line: {line:?}"));
    echo_concurrently(addr);
}

/// The framed floors (`peer-mio --max-frame` and `peer-std --max-frame`,
/// run on request) echo `len=u32be` frames, also empty ones and ones cut
/// across writes, and close a connection whose frame is over its 64 KiB.
#[test]
fn mio_framed_peer_echoes_frames() {
    framed_peer_echoes_frames(Server::MioFramed);
}

#[test]
fn std_framed_peer_echoes_frames() {
    framed_peer_echoes_frames(Server::StdFramed);
}

fn framed_peer_echoes_frames(server: Server) {
    let bins = binaries(None, None);
    let running =
        Running::start(server, &bins).unwrap_or_else(|e| panic!("start {}: {e}", server.name()));
    let mut s = TcpStream::connect(running.addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let payloads: Vec<Vec<u8>> = vec![
        b"one".to_vec(),
        Vec::new(),
        vec![7u8; 60_000],
        b"last".to_vec(),
    ];
    s.set_nodelay(true).unwrap();
    let mut wire = Vec::new();
    let mut ends = Vec::new();
    for p in &payloads {
        wire.extend_from_slice(&(p.len() as u32).to_be_bytes());
        wire.extend_from_slice(p);
        ends.push(wire.len());
    }
    // Cut everywhere, headers included. Before the next piece goes, the
    // replies to the frames this one completed come back: the server has
    // then read the piece, so the next one reaches it in a later read and
    // the frame it cuts waits for it.
    let mut replied = 0;
    let mut sent = 0;
    for piece in wire.chunks(3001) {
        s.write_all(piece).unwrap();
        sent += piece.len();
        while replied < payloads.len() && ends[replied] <= sent {
            assert_eq!(read_frame(&mut s), payloads[replied]);
            replied += 1;
        }
    }
    assert_eq!(replied, payloads.len());
    let mut over = TcpStream::connect(running.addr).expect("connect");
    over.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    over.write_all(&(64 * 1024 + 1u32).to_be_bytes()).unwrap();
    let mut byte = [0u8; 1];
    assert!(
        matches!(over.read(&mut byte), Ok(0) | Err(_)),
        "a frame over 64 KiB closes the connection"
    );
    assert!(running.stop(), "{} exits cleanly on SIGTERM", server.name());
}
