//! TLS on the std driver: echo with every codec family, pushes sharing the
//! session with replies, mutual TLS, hostile and stalled handshakes, the
//! client pool. Certificates are made at test time; loopback only.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use fastnet_proto::codec::CodecSpec;
use fastnet_proto::connection::TlsFailure;
use fastnet_proto::server::RejectReason;
use fastnet_std::tls::{TlsClientConfig, TlsConnector, TlsError, TlsServerConfig, TlsStats};
use fastnet_std::{
    Client, CloseReason, ConnHandle, ConnInfo, Ctx, Handler, Pool, PoolConfig, Server,
    ShutdownHandle, StatsSnapshot,
};
use fastnet_tls::test_pki::{
    closed_within, codecs, handshake_flood_is_capped, len_codec, payload, wait_until, Pki,
};
use rcgen::KeyPair;

const T: Duration = Duration::from_secs(5);

/// What an `info` frame found: is_tls, protocol version, ALPN, how many
/// client certificates.
type Negotiated = (bool, String, Option<Vec<u8>>, usize);

/// What the handler saw.
#[derive(Default, Debug)]
struct Seen {
    closes: Mutex<Vec<CloseReason>>,
    tls_errors: Mutex<Vec<TlsError>>,
    handles: Mutex<Vec<ConnHandle>>,
    info: Mutex<Vec<Negotiated>>,
}

/// Echoes; `handle` publishes a handle; `info` records what TLS negotiated.
struct Echo {
    seen: Arc<Seen>,
}

impl Handler for Echo {
    type State = ();

    fn on_connect(&self, info: &ConnInfo) -> Option<()> {
        assert!(info.is_tls());
        Some(())
    }

    fn on_frame(&self, ctx: &mut Ctx<'_, ()>, frame: &[u8]) {
        match frame {
            b"handle" => {
                self.seen.handles.lock().unwrap().push(ctx.handle());
                ctx.send(b"ok").unwrap();
            }
            b"info" => {
                let tls = ctx.tls().expect("negotiated");
                self.seen.info.lock().unwrap().push((
                    ctx.info().is_tls(),
                    format!("{:?}", tls.protocol_version()),
                    tls.alpn().map(<[u8]>::to_vec),
                    tls.peer_certificates().len(),
                ));
                ctx.send(b"ok").unwrap();
            }
            _ => ctx.send(frame).unwrap(),
        }
    }

    fn on_close(&self, _info: &ConnInfo, _state: (), reason: CloseReason) {
        self.seen.closes.lock().unwrap().push(reason);
    }

    fn on_tls_error(&self, _info: &ConnInfo, error: &TlsError) {
        self.seen.tls_errors.lock().unwrap().push(error.clone());
    }
}

struct Running {
    addr: SocketAddr,
    seen: Arc<Seen>,
    tls: Arc<TlsStats>,
    shutdown: ShutdownHandle,
    join: Option<thread::JoinHandle<std::io::Result<StatsSnapshot>>>,
}

impl Running {
    fn start(codec: CodecSpec, tls: TlsServerConfig) -> Running {
        Running::serve(Server::builder(codec).tls(tls).bind().unwrap())
    }

    fn serve(server: Server) -> Running {
        assert!(server.is_tls());
        let seen = Arc::new(Seen::default());
        let (addr, shutdown, tls) = (
            server.local_addr(),
            server.shutdown_handle(),
            server.tls_stats(),
        );
        let handler = Echo {
            seen: Arc::clone(&seen),
        };
        let join = thread::spawn(move || server.serve(handler));
        Running {
            addr,
            seen,
            tls,
            shutdown,
            join: Some(join),
        }
    }

    fn stop(mut self) -> StatsSnapshot {
        self.shutdown.shutdown(Duration::from_secs(2));
        self.join.take().unwrap().join().unwrap().unwrap()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(join) = self.join.take() {
            self.shutdown.shutdown(Duration::from_secs(1));
            let _ = join.join();
        }
    }
}

fn connect(addr: SocketAddr, codec: CodecSpec, tls: &TlsConnector) -> Client {
    let c = Client::connect_tls(addr, codec, T, tls).unwrap();
    c.set_read_timeout(Some(T)).unwrap();
    c
}

fn roundtrip(c: &mut Client, payload: &[u8]) {
    c.send(payload).unwrap();
    assert_eq!(c.recv().unwrap().expect("reply"), payload);
}

/// Sends `payload` and checks that exactly it comes back (for the raw
/// codec, in as many pieces as it takes).
fn echo(c: &mut Client, raw: bool, payload: &[u8]) {
    c.send(payload).unwrap();
    if !raw {
        assert_eq!(c.recv().unwrap().expect("reply"), payload);
        return;
    }
    let mut got = Vec::new();
    while got.len() < payload.len() {
        got.extend_from_slice(c.recv().unwrap().expect("reply"));
    }
    assert_eq!(got, payload);
}

#[test]
fn echo_every_codec_family_many_clients() {
    let pki = Pki::new();
    let tls = pki.connector();
    for (name, codec) in codecs() {
        let server = Running::start(codec, pki.server());
        let clients: Vec<_> = (0..8u64)
            .map(|i| {
                let tls = tls.clone();
                let addr = server.addr;
                thread::spawn(move || {
                    let mut rng = fastrand::Rng::with_seed(i);
                    let mut c = connect(addr, codec, &tls);
                    assert!(c.is_tls());
                    for _ in 0..40 {
                        let p = payload(&mut rng, name);
                        echo(&mut c, name == "raw", &p);
                    }
                })
            })
            .collect();
        for c in clients {
            c.join()
                .unwrap_or_else(|_| panic!("{name}: a client failed"));
        }
        assert_eq!(server.tls.handshakes(), 8, "{name}");
        assert_eq!(server.tls.handshake_failures(), 0, "{name}");
        let stats = server.stop();
        assert_eq!(stats.accepted, 8, "{name}");
        assert_eq!(stats.closed(CloseReason::Reset), 0, "{name}");
    }
}

#[test]
fn pipelined_requests_cross_records_and_batch() {
    let pki = Pki::new();
    let server = Running::start(len_codec(), pki.server());
    let mut c = connect(server.addr, len_codec(), &pki.connector());
    let mut rng = fastrand::Rng::with_seed(7);
    let sent: Vec<Vec<u8>> = (0..300)
        .map(|_| (0..rng.usize(1..3000)).map(|_| rng.u8(..)).collect())
        .collect();
    for p in &sent {
        c.send(p).unwrap();
    }
    for p in &sent {
        assert_eq!(c.recv().unwrap().expect("reply"), &p[..]);
    }
}

#[test]
fn pushes_share_the_session_with_replies() {
    let pki = Pki::new();
    let server = Running::start(len_codec(), pki.server());
    let mut c = connect(server.addr, len_codec(), &pki.connector());
    roundtrip(&mut c, b"x");
    c.send(b"handle").unwrap();
    assert_eq!(c.recv().unwrap(), Some(&b"ok"[..]));
    let handle = server.seen.handles.lock().unwrap().pop().unwrap();
    assert!(handle.info().is_tls());

    const N: usize = 400;
    let pusher = thread::spawn(move || {
        let mut pushed = 0;
        while pushed < N {
            let frame = format!("push {pushed}");
            match handle.send(frame.as_bytes()) {
                Ok(()) => pushed += 1,
                Err(fastnet_std::SendError::Full { .. }) => thread::yield_now(),
                Err(e) => panic!("push: {e}"),
            }
        }
    });
    // Requests and pushes interleave on the wire; each stream keeps its
    // order, and every record decrypts (one out-of-order record would fail
    // the session).
    let (mut echoes, mut pushes) = (0, 0);
    let mut next_request = 0;
    let mut in_flight = 0;
    while echoes < N || pushes < N {
        while next_request < N && in_flight < 8 {
            c.send(format!("echo {next_request}").as_bytes()).unwrap();
            next_request += 1;
            in_flight += 1;
        }
        let frame = c.recv().unwrap().expect("frame").to_vec();
        if frame.starts_with(b"push ") {
            assert_eq!(frame, format!("push {pushes}").as_bytes());
            pushes += 1;
        } else {
            assert_eq!(frame, format!("echo {echoes}").as_bytes());
            echoes += 1;
            in_flight -= 1;
        }
    }
    pusher.join().unwrap();
    roundtrip(&mut c, b"still in step");
}

#[test]
fn negotiated_version_and_alpn_reach_the_handler() {
    let pki = Pki::new();
    let server = Running::start(len_codec(), pki.server().alpn(["fastnet/1", "other"]));
    let tls = pki.client().alpn(["fastnet/1"]).build().unwrap();
    let mut c = connect(server.addr, len_codec(), &tls);
    let info = c.tls().expect("client side info").clone();
    assert_eq!(info.alpn(), Some(&b"fastnet/1"[..]));
    assert_eq!(info.peer_certificates().len(), 1, "the server's chain");
    c.send(b"info").unwrap();
    assert_eq!(c.recv().unwrap(), Some(&b"ok"[..]));
    let seen = server.seen.info.lock().unwrap().clone();
    assert_eq!(
        seen,
        [(true, "TLSv1_3".to_string(), Some(b"fastnet/1".to_vec()), 0)]
    );
}

#[test]
fn mutual_tls_refuses_a_client_without_certificate_and_serves_one_with() {
    let pki = Pki::new();
    let server = Running::start(
        len_codec(),
        pki.server().client_ca_pem(pki.ca.as_bytes()).unwrap(),
    );

    // TLS 1.3: the client finishes its side first; the refusal arrives as
    // an alert on the first read, and nothing is echoed.
    let anonymous = pki.connector();
    let refused = Client::connect_tls(server.addr, len_codec(), T, &anonymous).and_then(|mut c| {
        c.set_read_timeout(Some(T))?;
        c.send(b"let me in")?;
        c.recv().map(|r| r.map(<[u8]>::to_vec))
    });
    assert!(
        matches!(refused, Err(_) | Ok(None)),
        "refused, got {refused:?}"
    );
    assert!(wait_until(T, || server.tls.handshake_failures() == 1));
    assert!(matches!(
        server.seen.tls_errors.lock().unwrap()[..],
        [TlsError::Rustls(_)]
    ));

    let with_cert = pki
        .client()
        .client_cert_pem(pki.client_cert.as_bytes(), pki.client_key.as_bytes())
        .unwrap()
        .build()
        .unwrap();
    let mut c = connect(server.addr, len_codec(), &with_cert);
    roundtrip(&mut c, b"served");
    c.send(b"info").unwrap();
    assert_eq!(c.recv().unwrap(), Some(&b"ok"[..]));
    assert_eq!(
        server.seen.info.lock().unwrap()[0].3,
        1,
        "the client's certificate"
    );
    assert_eq!(server.tls.handshakes(), 1);
}

#[test]
fn bad_handshakes_close_only_the_offender() {
    let pki = Pki::new();
    let timeout = Duration::from_millis(400);
    let server = Running::start(len_codec(), pki.server().handshake_timeout(timeout));
    let mut good = connect(server.addr, len_codec(), &pki.connector());
    roundtrip(&mut good, b"before");

    // The handler hears of a close after the peer sees its socket closed,
    // so each offender's reports are awaited before the next one connects:
    // the order below is then the offenders' own.
    let reported = |n: usize| {
        let done = wait_until(T, || {
            server.seen.closes.lock().unwrap().len() == n
                && server.seen.tls_errors.lock().unwrap().len() == n
        });
        assert!(done, "{n} closes and TLS errors reported");
    };

    // Plaintext to the TLS port: not a TLS record.
    let plain = TcpStream::connect(server.addr).unwrap();
    (&plain).write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    closed_within(&plain, T);
    roundtrip(&mut good, b"after plaintext");
    reported(1);

    // Half a ClientHello, then the client leaves.
    let hello = pki.client_hello();
    let truncated = TcpStream::connect(server.addr).unwrap();
    (&truncated).write_all(&hello[..hello.len() / 2]).unwrap();
    truncated.shutdown(std::net::Shutdown::Write).unwrap();
    closed_within(&truncated, T);
    roundtrip(&mut good, b"after a truncated handshake");
    reported(2);

    // A client that connects, sends half a ClientHello and stalls.
    let stalled = TcpStream::connect(server.addr).unwrap();
    (&stalled).write_all(&hello[..hello.len() / 2]).unwrap();
    let took = closed_within(&stalled, T);
    assert!(
        took >= timeout - Duration::from_millis(50),
        "closed by the timeout, after {took:?}"
    );
    roundtrip(&mut good, b"after a stalled handshake");
    reported(3);

    // A client that sends nothing at all.
    let silent = TcpStream::connect(server.addr).unwrap();
    closed_within(&silent, T);
    roundtrip(&mut good, b"after a silent client");
    reported(4);

    assert!(wait_until(T, || server.tls.handshake_failures() == 4));
    assert_eq!(server.tls.handshake_timeouts(), 2);
    assert_eq!(server.tls.handshakes(), 1);
    {
        let errors = server.seen.tls_errors.lock().unwrap();
        assert!(matches!(errors[0], TlsError::Rustls(_)), "{errors:?}");
        assert_eq!(errors[1], TlsError::HandshakeEof);
        assert!(
            errors[2].is_timeout() && errors[3].is_timeout(),
            "{errors:?}"
        );
    }
    assert!(wait_until(T, || server.seen.closes.lock().unwrap().len() == 4));
    roundtrip(&mut good, b"the last word");
    drop(good);
    {
        // Plaintext: an alert sent; EOF and timeouts: named as such. The
        // good client's own close may already follow them (it was dropped).
        let closes = server.seen.closes.lock().unwrap();
        assert!(
            matches!(closes[0], CloseReason::Tls(TlsFailure::AlertSent(_))),
            "{closes:?}"
        );
        assert_eq!(closes[1], CloseReason::Tls(TlsFailure::HandshakeEof));
        assert_eq!(
            closes[2..4],
            [CloseReason::Tls(TlsFailure::HandshakeTimeout); 2]
        );
    }
    let stats = server.stop();
    assert_eq!(stats.closed(CloseReason::Tls(TlsFailure::HandshakeEof)), 4);
    assert_eq!(stats.closed(CloseReason::Reset), 0);
    assert_eq!(stats.accepted, 5);
}

#[test]
fn garbage_inside_an_established_session_closes_only_it() {
    let pki = Pki::new();
    let server = Running::start(len_codec(), pki.server());
    let mut good = connect(server.addr, len_codec(), &pki.connector());

    // A real handshake, then bytes that are not a valid record.
    let mut session = pki.connector().session().unwrap();
    let mut sock = TcpStream::connect(server.addr).unwrap();
    sock.set_read_timeout(Some(T)).unwrap();
    while session.is_handshaking() {
        session.complete_io(&mut sock).unwrap();
    }
    assert!(wait_until(T, || server.tls.handshakes() == 2));
    sock.write_all(&[0x17, 0x03, 0x03, 0x00, 0x20]).unwrap();
    sock.write_all(&[0xAB; 0x20]).unwrap();
    closed_within(&sock, T);

    assert!(wait_until(T, || server.tls.session_errors() == 1));
    assert!(matches!(
        server.seen.tls_errors.lock().unwrap()[..],
        [TlsError::Rustls(_)]
    ));
    roundtrip(&mut good, b"unaffected");
    assert!(wait_until(T, || matches!(
        server.seen.closes.lock().unwrap()[..],
        [CloseReason::Tls(TlsFailure::AlertSent(_))]
    )));
}

#[test]
fn pool_reuses_tls_connections_and_resumes_sessions() {
    let pki = Pki::new();
    let server = Running::start(len_codec(), pki.server());
    let pool = Pool::with_tls(
        server.addr,
        len_codec(),
        PoolConfig::default().max_size(3),
        pki.connector(),
    )
    .unwrap();
    let workers: Vec<_> = (0..6)
        .map(|i| {
            let pool = pool.clone();
            thread::spawn(move || {
                for n in 0..50 {
                    let mut c = pool.get().unwrap();
                    assert!(c.is_tls());
                    let msg = format!("{i}/{n}");
                    c.send(msg.as_bytes()).unwrap();
                    assert_eq!(c.recv().unwrap(), Some(msg.as_bytes()));
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    let stats = pool.stats();
    assert!(stats.connects <= 3, "{stats:?}");
    assert_eq!(server.tls.handshakes(), stats.connects);

    // A replacement for a discarded connection resumes the TLS session.
    pool.get().unwrap().discard();
    let mut fresh = Vec::new();
    while pool.stats().connects == stats.connects {
        fresh.push(pool.get().unwrap());
    }
    let newest = fresh.last().unwrap();
    assert!(newest.tls().unwrap().is_resumed());
}

#[test]
fn config_errors_are_reported_at_bind_and_connect() {
    let pki = Pki::new();
    let wrong_key = KeyPair::generate().unwrap().serialize_pem();
    let config =
        TlsServerConfig::from_pem(pki.server_cert.as_bytes(), wrong_key.as_bytes()).unwrap();
    let err = Server::builder(len_codec()).tls(config).bind().unwrap_err();
    assert!(err.to_string().contains("tls"), "{err}");
    assert!(TlsServerConfig::from_pem(b"not pem", b"not pem").is_err());
    assert!(TlsClientConfig::new("not a name!").is_err());

    // A client that trusts another CA refuses the server.
    let server = Running::start(len_codec(), pki.server());
    let other = Pki::new();
    let err = Client::connect_tls(server.addr, len_codec(), T, &other.connector()).unwrap_err();
    assert!(err.to_string().contains("TLS handshake"), "{err}");
    // And a client that expects another name.
    let named = TlsClientConfig::new("example.com")
        .unwrap()
        .ca_pem(pki.ca.as_bytes())
        .unwrap()
        .build()
        .unwrap();
    assert!(Client::connect_tls(server.addr, len_codec(), T, &named).is_err());
    assert!(wait_until(T, || server.tls.handshake_failures() == 2));
}

#[test]
fn shutdown_ends_tls_connections_with_close_notify() {
    let pki = Pki::new();
    let server = Running::start(len_codec(), pki.server());
    let mut c = connect(server.addr, len_codec(), &pki.connector());
    roundtrip(&mut c, b"before shutdown");

    // A bare rustls stream tells a close_notify (Ok(0)) from a cut-off
    // stream (UnexpectedEof).
    let session = pki.connector().session().unwrap();
    let sock = TcpStream::connect(server.addr).unwrap();
    sock.set_read_timeout(Some(T)).unwrap();
    let mut bare = fastnet_std::tls::rustls::StreamOwned::new(session, sock);
    bare.write_all(b"\0\0\0\x02hi").unwrap();
    let mut reply = [0u8; 6];
    bare.read_exact(&mut reply).unwrap();
    assert_eq!(&reply, b"\0\0\0\x02hi");

    let stats = server.stop();
    assert_eq!(bare.read(&mut reply).unwrap(), 0, "a close_notify");
    assert_eq!(c.recv().unwrap(), None);
    assert_eq!(stats.closed(CloseReason::Local), 2);
}

#[test]
fn a_handshake_flood_is_capped() {
    let pki = Pki::new();
    let timeout = Duration::from_millis(400);
    let server = Server::builder(len_codec())
        .tls(pki.server().handshake_timeout(timeout))
        .max_handshakes(4)
        .bind()
        .unwrap();
    let stats = server.stats();
    let server = Running::serve(server);
    let addr = server.addr;
    let refused = || stats.snapshot().rejected(RejectReason::Handshakes);
    handshake_flood_is_capped(addr, 4, timeout, refused, || {
        let mut c = connect(addr, len_codec(), &pki.connector());
        roundtrip(&mut c, b"served once the flood is gone");
    });
    assert_eq!(server.tls.handshake_timeouts(), 4);
    drop(server);
}

#[test]
fn a_handshake_timeout_of_duration_max_means_never() {
    let pki = Pki::new();
    let server = Running::start(len_codec(), pki.server().handshake_timeout(Duration::MAX));
    let mut c = connect(server.addr, len_codec(), &pki.connector());
    roundtrip(&mut c, b"never times out");
    drop(server);
}
