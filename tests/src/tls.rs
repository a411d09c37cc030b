//! TLS on every driver (feature `tls`), through
//! [`TestDriver::start_tls_echo`].

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use fastnet_proto::connection::{CloseReason, Limits};
use fastnet_tls::test_pki::{closed_within, Pki};

use crate::{config, wait_until, TestDriver};

/// A client that sends close_notify in the same write as its handshake
/// Finished (a connection opened and closed at once; a server may read
/// both in one handshake step) is closed at once, not by the idle
/// timeout: the end that came with the handshake is input like any other.
pub fn close_notify_with_the_last_flight_closes_at_once<D: TestDriver>() {
    const IDLE: Duration = Duration::from_secs(30);
    let mut cfg = config(1024);
    cfg.limits = Limits::default().idle_timeout(Some(IDLE));
    let pki = Pki::new();
    let Some(server) = D::start_tls_echo(cfg, pki.server()) else {
        return;
    };
    for round in 0..5 {
        let mut sock = TcpStream::connect(server.addr()).expect("connect");
        sock.set_read_timeout(Some(IDLE)).unwrap();
        let mut tls = pki.connector().session().expect("session");
        // The handshake up to the client's Finished, which stays queued.
        while tls.is_handshaking() {
            while tls.is_handshaking() && tls.wants_write() {
                tls.write_tls(&mut sock).expect("write");
            }
            if tls.is_handshaking() {
                tls.read_tls(&mut sock).expect("read");
                tls.process_new_packets().expect("server flight");
            }
        }
        tls.send_close_notify();
        let mut last = Vec::new();
        while tls.wants_write() {
            tls.write_tls(&mut last).expect("encode");
        }
        sock.write_all(&last).expect("Finished and close_notify");
        let took = closed_within(&sock, Duration::from_secs(10));
        assert!(
            took < Duration::from_secs(5),
            "{}: round {round}: closed after {took:?} (idle timeout {IDLE:?})",
            D::NAME
        );
    }
    assert!(
        wait_until(Duration::from_secs(5), || server.events().closes().len()
            == 5),
        "{}: closes {:?}",
        D::NAME,
        server.events().closes()
    );
    assert!(
        server
            .events()
            .closes()
            .iter()
            .all(|r| *r == CloseReason::PeerClosed),
        "{}: {:?}",
        D::NAME,
        server.events().closes()
    );
}
