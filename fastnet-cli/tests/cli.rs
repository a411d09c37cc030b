//! End-to-end tests of the `fastnet` binary: `serve` driven by raw TCP
//! clients for each codec, usage errors, signals, and `bench` verifying.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_fastnet");

/// A `fastnet serve` child and the address it printed.
struct Serve {
    child: Child,
    addr: String,
}

impl Serve {
    fn start(args: &[&str]) -> Serve {
        let mut child = Command::new(BIN)
            .args(["serve", "--addr", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn fastnet serve");
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .strip_prefix("listening on ")
            .expect("listening line")
            .trim()
            .to_string();
        Serve { child, addr }
    }

    fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(&self.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s
    }

    /// SIGTERM, then the exit status and everything printed after the
    /// listening line.
    fn terminate(mut self) -> (i32, String, String) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        self.child.wait_with_output_after_read()
    }
}

trait WaitOutput {
    fn wait_with_output_after_read(&mut self) -> (i32, String, String);
}

impl WaitOutput for Child {
    fn wait_with_output_after_read(&mut self) -> (i32, String, String) {
        let mut out = String::new();
        let mut err = String::new();
        self.stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        self.stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        let code = self.wait().unwrap().code().unwrap_or(-1);
        (code, out, err)
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

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
}
