//! End-to-end TLS tests of the `fastnet` binary: `serve --tls-cert` with a
//! rustls client (and mutual TLS), `bench --tls` in-process and against a
//! TLS `serve`, usage errors. Certificates are made at test time.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use fastnet_proto::codec::CodecSpec;
use fastnet_std::tls::TlsClientConfig;
use fastnet_std::Client;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};

mod common;

use common::{Serve, BIN};

const T: Duration = Duration::from_secs(5);

/// PEM files in a directory of their own, removed on drop: a CA, a server
/// certificate (localhost, 127.0.0.1) and a client certificate it issued.
struct Certs {
    dir: PathBuf,
}

impl Certs {
    fn new() -> Certs {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "fastnet-cli-tls-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        let write = |name: &str, text: String| std::fs::write(dir.join(name), text).unwrap();
        write("ca.pem", ca.pem());
        for (who, names) in [
            (
                "server",
                vec!["localhost".to_string(), "127.0.0.1".to_string()],
            ),
            ("client", vec!["client.test".to_string()]),
        ] {
            let key = KeyPair::generate().unwrap();
            let cert = CertificateParams::new(names)
                .unwrap()
                .signed_by(&key, &ca)
                .unwrap();
            write(&format!("{who}.pem"), cert.pem());
            write(&format!("{who}.key"), key.serialize_pem());
        }
        Certs { dir }
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    fn read(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.dir.join(name)).unwrap()
    }
}

impl Drop for Certs {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Both drivers serve TLS.
const DRIVERS: [&str; 2] = ["smol", "std"];

fn tls_serve(certs: &Certs, driver: &str, extra: &[&str]) -> Serve {
    let (cert, key) = (certs.path("server.pem"), certs.path("server.key"));
    let mut args = vec!["--driver", driver, "--codec", "lines"];
    args.extend(["--tls-cert", &cert, "--tls-key", &key]);
    args.extend(extra);
    Serve::start(&args)
}

fn client_config(certs: &Certs) -> TlsClientConfig {
    TlsClientConfig::new("localhost")
        .unwrap()
        .ca_pem(&certs.read("ca.pem"))
        .unwrap()
}

#[test]
fn serve_tls_echoes_to_a_rustls_client_and_closes_plaintext_peers() {
    let certs = Certs::new();
    for driver in DRIVERS {
        serve_tls_echoes(&certs, driver);
    }
}

fn serve_tls_echoes(certs: &Certs, driver: &str) {
    let serve = tls_serve(certs, driver, &[]);
    let tls = client_config(certs).build().unwrap();
    let mut c = Client::connect_tls(&serve.addr[..], CodecSpec::lines(1024), T, &tls).unwrap();
    c.set_read_timeout(Some(T)).unwrap();
    for line in [&b"hello over TLS"[..], b"second", &[b'x'; 900]] {
        c.send(line).unwrap();
        assert_eq!(c.recv().unwrap(), Some(line));
    }
    assert_eq!(
        format!("{:?}", c.tls().unwrap().protocol_version()),
        "TLSv1_3"
    );

    // A plaintext peer is closed; the TLS client goes on.
    let mut plain = TcpStream::connect(&serve.addr).unwrap();
    plain.set_read_timeout(Some(T)).unwrap();
    plain.write_all(b"hello in the clear\n").unwrap();
    let mut buf = [0u8; 256];
    while let Ok(n) = plain.read(&mut buf) {
        if n == 0 {
            break;
        }
    }
    c.send(b"still here").unwrap();
    assert_eq!(c.recv().unwrap(), Some(&b"still here"[..]));
    drop(c);

    let (code, out, err) = serve.terminate();
    assert_eq!(code, 0, "{driver}: {err}");
    assert!(out.contains("accepted=2"), "{driver}: {out}");
    assert!(
        err.contains("TLS"),
        "{driver}: the plaintext peer is logged: {err}"
    );
}

#[test]
fn serve_tls_client_ca_requires_a_client_certificate() {
    let certs = Certs::new();
    for driver in DRIVERS {
        serve_tls_client_ca(&certs, driver);
    }
}

fn serve_tls_client_ca(certs: &Certs, driver: &str) {
    let ca = certs.path("ca.pem");
    let serve = tls_serve(certs, driver, &["--tls-client-ca", &ca]);

    let anonymous = client_config(certs).build().unwrap();
    let refused = Client::connect_tls(&serve.addr[..], CodecSpec::lines(1024), T, &anonymous)
        .and_then(|mut c| {
            c.set_read_timeout(Some(T))?;
            c.send(b"let me in")?;
            c.recv().map(|r| r.map(<[u8]>::to_vec))
        });
    assert!(
        matches!(refused, Err(_) | Ok(None)),
        "{driver}: {refused:?}"
    );

    let with_cert = client_config(certs)
        .client_cert_pem_files(certs.path("client.pem"), certs.path("client.key"))
        .unwrap()
        .build()
        .unwrap();
    let mut c =
        Client::connect_tls(&serve.addr[..], CodecSpec::lines(1024), T, &with_cert).unwrap();
    c.set_read_timeout(Some(T)).unwrap();
    c.send(b"served").unwrap();
    assert_eq!(c.recv().unwrap(), Some(&b"served"[..]));
}

fn bench(args: &[&str]) -> serde_json::Value {
    let out = Command::new(BIN)
        .arg("bench")
        .args(args)
        .args(["--duration", "300ms", "--json"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(v["mismatches"], 0, "{v}");
    assert_eq!(v["io_errors"], 0, "{v}");
    assert_eq!(v["connect_errors"], 0, "{v}");
    assert_eq!(v["tls"], true, "{v}");
    assert!(v["requests"].as_u64().unwrap() > 0, "{v}");
    v
}

#[test]
fn bench_tls_in_process_verifies_every_echo() {
    // Without --driver the in-process server is smol's, as without --tls.
    for (driver, codec) in [
        (None, "len=u32be"),
        (Some("smol"), "lines"),
        (Some("smol"), "raw"),
        (Some("std"), "len=u32be"),
    ] {
        let mut args = vec![
            "--tls",
            "--codec",
            codec,
            "--conns",
            "16",
            "--pipeline",
            "4",
            "--size",
            "700",
        ];
        if let Some(driver) = driver {
            args.extend(["--driver", driver]);
        }
        let v = bench(&args);
        assert_eq!(v["conns"], 16);
    }
}

#[test]
fn bench_tls_against_serve_with_a_ca_or_insecure() {
    let certs = Certs::new();
    let serve = tls_serve(&certs, "smol", &[]);
    let ca = certs.path("ca.pem");
    let common = ["--addr", &serve.addr, "--codec", "lines", "--conns", "8"];
    let mut args = common.to_vec();
    args.extend(["--tls", "--tls-ca", &ca]);
    bench(&args);
    let mut args = common.to_vec();
    args.extend(["--tls", "--tls-insecure"]);
    bench(&args);

    // Trusting nothing that signed the server's certificate fails to connect.
    let other = Certs::new();
    let wrong_ca = other.path("ca.pem");
    let out = Command::new(BIN)
        .args([
            "bench",
            "--duration",
            "100ms",
            "--json",
            "--tls",
            "--tls-ca",
        ])
        .arg(&wrong_ca)
        .args(common)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["connect_errors"], 8, "{v}");
    assert_eq!(v["requests"], 0);
}

#[test]
fn tls_usage_errors_exit_2() {
    let certs = Certs::new();
    let (cert, key) = (certs.path("server.pem"), certs.path("server.key"));
    let missing = Path::new(&certs.path("missing.pem")).display().to_string();
    for (args, message) in [
        (vec!["serve", "--tls-cert", &cert], "--tls-key"),
        (
            vec![
                "serve",
                "--driver",
                "std",
                "--tls-cert",
                &missing,
                "--tls-key",
                &key,
            ],
            "missing.pem",
        ),
        (
            vec![
                "serve",
                "--driver",
                "smol",
                "--tls-cert",
                &cert,
                "--tls-key",
                &cert,
            ],
            "key",
        ),
        (vec!["bench", "--tls-insecure"], "--tls"),
    ] {
        let out = Command::new(BIN).args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(message), "{args:?}: {err}");
    }
}

#[test]
fn serve_max_handshakes_refuses_beyond_the_cap() {
    let certs = Certs::new();
    for driver in DRIVERS {
        let serve = tls_serve(&certs, driver, &["--max-handshakes", "1"]);
        let tls = client_config(&certs).build().unwrap();
        // A peer that never speaks holds the only place.
        let holder = TcpStream::connect(&serve.addr).unwrap();
        let refused = Client::connect_tls(&serve.addr[..], CodecSpec::lines(1024), T, &tls);
        assert!(refused.is_err(), "{driver}: a second handshake was let in");
        // Its close gives the place back; a client then gets through.
        drop(holder);
        let deadline = std::time::Instant::now() + T;
        let mut c = loop {
            match Client::connect_tls(&serve.addr[..], CodecSpec::lines(1024), T, &tls) {
                Ok(c) => break c,
                Err(_) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => panic!("{driver}: the place was not given back: {e}"),
            }
        };
        c.set_read_timeout(Some(T)).unwrap();
        c.send(b"in").unwrap();
        assert_eq!(c.recv().unwrap(), Some(&b"in"[..]));
        drop(c);
        let (code, out, err) = serve.terminate();
        assert_eq!(code, 0, "{driver}: {err}");
        assert!(
            err.contains("rejected: TLS handshakes in progress at max_handshakes"),
            "{driver}: the refusal is logged: {err}"
        );
        // Every refusal was for the cap (a retry may have come before
        // the place was back).
        let count = |key: &str| -> u64 {
            let at = out
                .find(key)
                .unwrap_or_else(|| panic!("{driver}: no {key} in {out}"));
            out[at + key.len()..]
                .split(' ')
                .next()
                .and_then(|n| n.trim().parse().ok())
                .unwrap_or_else(|| panic!("{driver}: {key} in {out}"))
        };
        assert!(count(" rejected=") >= 1, "{driver}: {out}");
        assert_eq!(
            count(" rejected="),
            count(" handshakes="),
            "{driver}: {out}"
        );
    }
}
