//! Certificates for tests, not for production (feature `test-pki`).
//!
//! A throwaway certificate authority made with `rcgen` at test time, the
//! server and client certificates it issued, the configurations built from
//! them, one codec of each family, and small helpers the drivers' TLS suites share. Every key is new
//! on each [`Pki::new`] and lives only in memory. Functions here panic on
//! failure, as test fixtures do.

use std::io::{self, Read};
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use fastnet_proto::codec::{CodecSpec, Endian, LengthFieldConfig, VarintConfig};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};

use crate::{TlsClientConfig, TlsConnector, TlsServerConfig};

/// A CA, a server certificate for `localhost` and 127.0.0.1, and a client
/// certificate, all as PEM.
#[derive(Debug, Clone)]
pub struct Pki {
    /// The CA's certificate.
    pub ca: String,
    /// The server's certificate (names `localhost` and `127.0.0.1`).
    pub server_cert: String,
    /// The server's private key.
    pub server_key: String,
    /// The client's certificate (name `client.test`).
    pub client_cert: String,
    /// The client's private key.
    pub client_key: String,
}

impl Pki {
    /// A new CA and the two certificates it issues.
    pub fn new() -> Pki {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "fastnet test CA");
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        let leaf = |names: Vec<String>| {
            let key = KeyPair::generate().unwrap();
            let cert = CertificateParams::new(names)
                .unwrap()
                .signed_by(&key, &ca)
                .unwrap();
            (cert.pem(), key.serialize_pem())
        };
        let (server_cert, server_key) = leaf(vec!["localhost".into(), "127.0.0.1".into()]);
        let (client_cert, client_key) = leaf(vec!["client.test".into()]);
        Pki {
            ca: ca.pem(),
            server_cert,
            server_key,
            client_cert,
            client_key,
        }
    }

    /// A server configuration with the server certificate.
    pub fn server(&self) -> TlsServerConfig {
        TlsServerConfig::from_pem(self.server_cert.as_bytes(), self.server_key.as_bytes()).unwrap()
    }

    /// A client configuration for `localhost` that trusts the CA.
    pub fn client(&self) -> TlsClientConfig {
        TlsClientConfig::new("localhost")
            .unwrap()
            .ca_pem(self.ca.as_bytes())
            .unwrap()
    }

    /// [`Pki::client`], built.
    pub fn connector(&self) -> TlsConnector {
        self.client().build().unwrap()
    }

    /// The first flight of a real client: a ClientHello.
    pub fn client_hello(&self) -> Vec<u8> {
        let mut session = self.connector().session().unwrap();
        let mut hello = Vec::new();
        while session.wants_write() {
            session.write_tls(&mut hello).unwrap();
        }
        assert!(hello.len() > 100);
        hello
    }
}

impl Default for Pki {
    fn default() -> Pki {
        Pki::new()
    }
}

/// Polls `cond` every 5 ms until it holds (true) or `limit` passes (false).
pub fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        thread::sleep(Duration::from_millis(5));
    }
}

/// Reads until the server closes; fails if it does not within `limit`.
pub fn closed_within(mut s: &TcpStream, limit: Duration) -> Duration {
    let start = Instant::now();
    s.set_read_timeout(Some(limit)).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return start.elapsed(),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return start.elapsed(),
            Err(e) => panic!("not closed within {limit:?}: {e}"),
        }
    }
}

/// Checks a server's cap on TLS handshakes in progress: the server at
/// `addr` allows `max` at once, each within `timeout`. `max` peers that
/// connect and say nothing hold every place, so one more is refused at
/// once (closed well before its own handshake could time out) and
/// `refused()` (the server's count of refusals for that reason) says so;
/// once the silent peers time out, `good()` (a client's handshake and one
/// round trip) succeeds.
pub fn handshake_flood_is_capped(
    addr: SocketAddr,
    max: usize,
    timeout: Duration,
    refused: impl Fn() -> u64,
    good: impl FnOnce(),
) {
    let silent: Vec<TcpStream> = (0..max)
        .map(|_| TcpStream::connect(addr).unwrap())
        .collect();
    // Accepted in the order they connected: the places are all taken.
    let extra = TcpStream::connect(addr).unwrap();
    let took = closed_within(&extra, timeout);
    assert!(
        took < timeout / 2,
        "one handshake over the cap is refused at once, not after {took:?}"
    );
    assert!(
        wait_until(timeout, || refused() == 1),
        "refused {}",
        refused()
    );
    for s in &silent {
        closed_within(s, 4 * timeout);
    }
    good();
    assert_eq!(refused(), 1);
}

/// The largest frame of the codecs below.
pub const MAX_FRAME: usize = 64 * 1024;

/// A 4-byte big-endian length prefix, frames up to [`MAX_FRAME`].
pub fn len_codec() -> CodecSpec {
    CodecSpec::LengthField(LengthFieldConfig::new(4, Endian::Big).max_frame(MAX_FRAME))
}

/// One codec of each family, by name; [`payload`] makes what each can carry.
pub fn codecs() -> Vec<(&'static str, CodecSpec)> {
    vec![
        ("lines", CodecSpec::lines(MAX_FRAME)),
        ("len", len_codec()),
        (
            "varint",
            CodecSpec::Varint(VarintConfig::new()).with_max_frame(MAX_FRAME),
        ),
        ("cobs", CodecSpec::cobs(MAX_FRAME)),
        ("fixed", CodecSpec::fixed(100)),
        ("raw", CodecSpec::raw(MAX_FRAME)),
    ]
}

/// A random payload the codec named `name` (of [`codecs`]) can carry.
pub fn payload(rng: &mut fastrand::Rng, name: &str) -> Vec<u8> {
    match name {
        "fixed" => (0..100).map(|_| rng.u8(..)).collect(),
        // Printable, so no delimiter; up to a little more than one record.
        "lines" => (0..rng.usize(1..20_000))
            .map(|_| rng.u8(b' '..=b'~'))
            .collect(),
        // Any byte, zeros included (COBS stuffs them); larger than a
        // record sometimes.
        _ => (0..rng.usize(1..40_000)).map(|_| rng.u8(..)).collect(),
    }
}
