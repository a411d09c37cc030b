//! What `fastnet serve` says about itself: log lines by verbosity,
//! statistics lines (plain and JSON), and `--reuseport`.

use std::io::{Read, Write};
use std::process::Command;

mod common;

use common::{Serve, BIN};

/// Echoes one length-prefixed frame and closes; the client's address.
fn one_echo(serve: &Serve) -> String {
    let mut s = serve.connect();
    s.write_all(b"\x00\x00\x00\x02hi").unwrap();
    let mut got = [0u8; 6];
    s.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"\x00\x00\x00\x02hi");
    s.local_addr().unwrap().to_string()
}

#[test]
fn verbose_logs_each_accept_and_close_quiet_only_errors() {
    for driver in ["smol", "std"] {
        let serve = Serve::start(&["--driver", driver, "-v"]);
        let peer = one_echo(&serve);
        let (code, _, err) = serve.terminate();
        assert_eq!(code, 0, "{driver}: {err}");
        let lines: Vec<&str> = err.lines().filter(|l| l.contains(&peer)).collect();
        let [accepted, closed] = lines[..] else {
            panic!("{driver}: an accept and a close line for {peer}: {err}");
        };
        assert!(
            accepted.contains("DEBUG") && accepted.contains("accepted"),
            "{accepted}"
        );
        assert!(
            closed.contains("closed: peer closed the connection")
                && closed.contains("reason=peer-closed"),
            "{closed}"
        );

        // A violation is a warning: logged by default, not with -q.
        for (flag, logged) in [(None, true), (Some("-q"), false)] {
            let mut args = vec!["--driver", driver, "--max-frame", "8"];
            args.extend(flag);
            let serve = Serve::start(&args);
            let mut bad = serve.connect();
            bad.write_all(b"\x00\x00\x01\x00").unwrap();
            assert_eq!(bad.read(&mut [0u8; 1]).unwrap(), 0, "closed by the server");
            let peer = bad.local_addr().unwrap().to_string();
            let (code, _, err) = serve.terminate();
            assert_eq!(code, 0, "{driver}: {err}");
            let line = err.lines().find(|l| l.contains(&peer));
            assert_eq!(line.is_some(), logged, "{driver} {flag:?}: {err}");
            if let Some(line) = line {
                assert!(
                    line.contains("WARN") && line.contains("reason=frame-too-large"),
                    "{line}"
                );
            }
            // Never an accept line without -v.
            assert!(!err.contains("accepted"), "{driver} {flag:?}: {err}");
        }
    }
}

#[test]
fn stats_interval_prints_a_line_each_plain_or_json() {
    // Plain: `stats: ..` lines as the final one.
    let mut serve = Serve::start(&["--stats-interval", "20ms"]);
    let line = serve.next_line();
    assert!(line.starts_with("stats: accepted=0 open=0"), "{line}");
    drop(serve);

    // JSON: every counter by name; the echo shows up within a few lines.
    let mut serve = Serve::start(&["--stats-interval", "20ms", "--stats-json"]);
    let first: serde_json::Value = serde_json::from_str(&serve.next_line()).unwrap();
    assert_eq!(first["rejected"]["max_connections"], 0, "{first}");
    assert_eq!(first["closed"]["frame_too_large"], 0, "{first}");
    one_echo(&serve);
    let mut seen = None;
    for _ in 0..500 {
        let v: serde_json::Value = serde_json::from_str(&serve.next_line()).unwrap();
        if v["closed"]["peer_closed"] == 1 {
            seen = Some(v);
            break;
        }
    }
    let seen = seen.expect("a line with the echo's close within 500 lines");
    assert_eq!(
        (&seen["accepted"], &seen["frames_in"], &seen["frames_out"]),
        (&1.into(), &1.into(), &1.into()),
        "{seen}"
    );
    // The final line is JSON too.
    let (code, out, _) = serve.terminate();
    assert_eq!(code, 0);
    let last: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    assert_eq!(last["accepted"], 1, "{out}");

    let out = Command::new(BIN)
        .args(["serve", "--stats-interval", "0s"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn reuseport_lets_servers_share_a_port() {
    let first = Serve::start(&["--reuseport"]);
    for driver in ["smol", "std"] {
        let second = Serve::start_on(&first.addr, &["--reuseport", "--driver", driver]);
        assert_eq!(second.addr, first.addr);
        let (code, _, err) = second.terminate();
        assert_eq!(code, 0, "{driver}: {err}");
    }
    let out = Command::new(BIN)
        .args(["serve", "--addr", &first.addr])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("cannot serve on"), "{err}");
}
