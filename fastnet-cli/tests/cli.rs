//! End-to-end tests of the `fastnet` binary: `serve` driven by raw TCP
//! clients for each codec, usage errors, signals, and `bench` verifying.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::Command;
use std::time::Duration;

mod common;

use common::{Serve, BIN};

fn roundtrip(serve: &Serve, request: &[u8], expect: &[u8]) {
    let mut s = serve.connect();
    s.write_all(request).unwrap();
    let mut got = vec![0u8; expect.len()];
    s.read_exact(&mut got).unwrap();
    assert_eq!(got, expect, "{}", String::from_utf8_lossy(&got));
}

#[test]
fn serve_echoes_every_codec_on_both_drivers() {
    let cases: &[(&str, &[u8], &[u8])] = &[
        ("raw", b"anything at all", b"anything at all"),
        ("lines", b"one\r\ntwo\n", b"one\ntwo\n"),
        (r"delim=;|\r\n", b"a;b\r\n", b"a;b;"),
        (r"delim=;,keep", b"a;b;", b"a;b;"),
        ("fixed=3", b"abcdef", b"abcdef"),
        ("len=u8", b"\x02hi\x00", b"\x02hi\x00"),
        ("len=u16le", b"\x03\x00abc", b"\x03\x00abc"),
        ("len=u24be", b"\x00\x00\x01z", b"\x00\x00\x01z"),
        ("len=u32be", b"\x00\x00\x00\x02ok", b"\x00\x00\x00\x02ok"),
        (
            "len=u64le",
            b"\x01\x00\x00\x00\x00\x00\x00\x00!",
            b"\x01\x00\x00\x00\x00\x00\x00\x00!",
        ),
        ("len=u16be,adjust=-2", b"\x00\x04hi", b"\x00\x04hi"),
        ("varint", b"\x03abc\x00", b"\x03abc\x00"),
        (
            "cobs",
            b"\x03\x11\x22\x02\x33\x00",
            b"\x03\x11\x22\x02\x33\x00",
        ),
    ];
    for driver in ["smol", "std"] {
        for (codec, request, expect) in cases {
            let serve = Serve::start(&["--driver", driver, "--codec", codec]);
            roundtrip(&serve, request, expect);
            let (code, out, _) = serve.terminate();
            assert_eq!(code, 0, "{driver} {codec}");
            assert!(out.starts_with("stats: accepted=1"), "{out}");
        }
    }
}

#[test]
fn reply_codec_translates() {
    let serve = Serve::start(&["--codec", "len=u16be,offset=1", "--reply-codec", "lines"]);
    roundtrip(&serve, b"\xff\x00\x02hi", b"hi\n");
}

#[test]
fn a_frame_the_reply_codec_refuses_closes_only_that_connection_and_is_logged() {
    // A line cannot hold a newline: the echo of "a\nb" is refused.
    for driver in ["smol", "std"] {
        let serve = Serve::start(&[
            "--driver",
            driver,
            "--codec",
            "len=u16be",
            "--reply-codec",
            "lines",
        ]);
        let mut bad = serve.connect();
        bad.write_all(b"\x00\x03a\nb").unwrap();
        let mut buf = [0u8; 1];
        assert_eq!(
            bad.read(&mut buf).unwrap(),
            0,
            "{driver}: closed by the server"
        );
        roundtrip(&serve, b"\x00\x02ok", b"ok\n");
        let (code, _, err) = serve.terminate();
        assert_eq!(code, 0, "{driver}");
        assert!(
            err.contains("127.0.0.1:") && err.contains("cannot echo a 3-byte frame"),
            "{driver}: {err}"
        );
    }
}

#[test]
fn oversize_closes_only_that_connection_and_is_logged() {
    let serve = Serve::start(&["--codec", "lines", "--max-frame", "8"]);
    let mut bad = serve.connect();
    bad.write_all(b"0123456789\n").unwrap();
    let mut buf = [0u8; 1];
    assert_eq!(bad.read(&mut buf).unwrap(), 0, "closed by the server");
    roundtrip(&serve, b"fine\n", b"fine\n");
    let (code, out, err) = serve.terminate();
    assert_eq!(code, 0);
    assert!(out.contains("frame-too-large=1"), "{out}");
    assert!(
        err.contains("127.0.0.1:") && err.contains("closed: frame too large"),
        "{err}"
    );
}

/// `--listen-backlog` reaches the listening socket: with the server
/// stopped (SIGSTOP), the kernel completes that many connects and a few
/// more, then makes the next one wait.
#[cfg(target_os = "linux")]
/// Whether every thread of process `pid` is stopped (state `T` in
/// `/proc/PID/task/*/stat`).
fn all_stopped(pid: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    tasks.flatten().all(|t| {
        std::fs::read_to_string(t.path().join("stat"))
            .ok()
            .and_then(|stat| {
                // The state follows the command name, which is in parentheses.
                let after = &stat[stat.rfind(')')? + 1..];
                after
                    .split_whitespace()
                    .next()
                    .map(|st| st == "T" || st == "t")
            })
            .unwrap_or(false)
    })
}

#[test]
fn listen_backlog_is_the_sockets() {
    let signal = |serve: &Serve, sig: &str| {
        let status = Command::new("kill")
            .args([sig, &serve.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill {sig}");
    };
    for driver in ["smol", "std"] {
        let serve = Serve::start(&["--driver", driver, "--listen-backlog", "16"]);
        let addr: std::net::SocketAddr = serve.addr.parse().unwrap();
        signal(&serve, "-STOP");
        // `kill` returns once the signal is sent; a thread of the server may
        // still accept a few connects until every thread has stopped.
        assert!(
            fastnet_tests::wait_until(Duration::from_secs(5), || all_stopped(serve.pid())),
            "{driver}: the server did not stop"
        );
        fastnet_tests::assert_backlog_is(addr, 16, driver);
        signal(&serve, "-CONT");
        let (code, _, _) = serve.terminate();
        assert_eq!(code, 0, "{driver}");
    }
}

#[test]
fn usage_errors_exit_2_with_their_message() {
    for (args, message) in [
        (&["serve", "--codec", "len=u33"][..], "bad part \"u33\""),
        (
            &["serve", "--codec", "len=u16be,offset=1"][..],
            "give a --reply-codec",
        ),
        (&["bench", "--codec", "delim=\\q"][..], "an escape among"),
        (&["serve", "--idle-timeout", "5 parsecs"][..], "duration"),
    ] {
        let out = Command::new(BIN).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(message), "{args:?}: {err}");
    }
}

#[test]
fn bench_json_against_the_in_process_server() {
    for driver in ["smol", "std"] {
        let out = Command::new(BIN)
            .args([
                "bench",
                "--driver",
                driver,
                "--conns",
                "20",
                "--duration",
                "300ms",
                "--pipeline",
                "4",
                "--json",
            ])
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
        for key in [
            "conns",
            "size",
            "duration_s",
            "requests",
            "rps",
            "mbps",
            "connect_errors",
            "io_errors",
            "mismatches",
        ] {
            assert!(v.get(key).is_some(), "missing {key}: {v}");
        }
        for key in ["p50", "p90", "p99", "p999", "max"] {
            assert!(v["latency_us"].get(key).is_some(), "missing latency {key}");
        }
        assert_eq!(v["mismatches"], 0);
        assert_eq!(v["io_errors"], 0);
        assert_eq!(v["conns"], 20);
        assert!(v["requests"].as_u64().unwrap() > 0);
    }
}

#[test]
fn bench_exits_1_when_the_server_corrupts_a_byte() {
    // A u32be echo server that flips one payload byte of the 5th frame.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut n = 0;
        loop {
            let mut header = [0u8; 4];
            if s.read_exact(&mut header).is_err() {
                return;
            }
            let mut body = vec![0u8; u32::from_be_bytes(header) as usize];
            if s.read_exact(&mut body).is_err() {
                return;
            }
            n += 1;
            if n == 5 {
                body[0] ^= 1;
            }
            if s.write_all(&header)
                .and_then(|_| s.write_all(&body))
                .is_err()
            {
                return;
            }
        }
    });
    let out = Command::new(BIN)
        .args([
            "bench",
            "--addr",
            &addr.to_string(),
            "--conns",
            "1",
            "--duration",
            "500ms",
            "--json",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["mismatches"], 1);
    assert_eq!(v["requests"], 4);
    // The mismatch ends the connection; it is not an I/O error too.
    assert_eq!(v["io_errors"], 0);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("failed: replies that were not the echo of their request: 1"),
        "{err}"
    );
}

#[test]
fn bench_says_when_it_cannot_connect() {
    // A port nobody listens on: bind, take the port, drop the listener.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = Command::new(BIN)
        .args([
            "bench",
            "--addr",
            &format!("127.0.0.1:{port}"),
            "--conns",
            "3",
            "--duration",
            "100ms",
            "--json",
        ])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["connect_errors"], 3);
    assert_eq!(v["requests"], 0);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("failed: connections that could not be established: 3 of 3"),
        "{err}"
    );
    assert!(err.contains("failed: no request completed"), "{err}");
}

#[test]
fn bench_exits_0_against_a_good_server() {
    for driver in ["smol", "std"] {
        let serve = Serve::start(&["--driver", driver, "--codec", "lines"]);
        let out = Command::new(BIN)
            .args(["bench", "--addr", &serve.addr, "--codec", "lines"])
            .args(["--conns", "4", "--size", "64", "--duration", "200ms"])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{driver}: {err}");
        assert!(!err.contains("failed"), "{driver}: {err}");
        let table = String::from_utf8_lossy(&out.stdout);
        assert!(table.contains("mismatches"), "{table}");
        let (code, _, _) = serve.terminate();
        assert_eq!(code, 0, "{driver}");
    }
}

#[test]
fn help_shows_the_codec_grammar_with_examples() {
    for command in ["serve", "bench"] {
        let out = Command::new(BIN)
            .args([command, "--help"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0));
        let help = String::from_utf8_lossy(&out.stdout);
        for want in [
            "len=W[,offset=N][,adjust=N][,strip=N]",
            "Examples:",
            "--codec 'len=u16le,adjust=-2'",
            "500ms, 5s",
        ] {
            assert!(
                help.contains(want),
                "{command} --help lacks {want:?}:\n{help}"
            );
        }
        let short = Command::new(BIN).args([command, "-h"]).output().unwrap();
        assert!(String::from_utf8_lossy(&short.stdout).contains("see --help"));
    }
}

#[test]
fn durations_in_every_documented_form_are_accepted() {
    // Options are parsed before anything starts, and a bad codec is caught
    // after them: an error about the codec, not the duration, shows the
    // duration was accepted, without starting a server.
    for text in ["500ms", "5s", "1.5s", "1m", "1h30m"] {
        let out = Command::new(BIN)
            .args(["serve", "--idle-timeout", text, "--codec", "nope"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{text}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("invalid codec spec"), "{text}: {err}");
    }
}
