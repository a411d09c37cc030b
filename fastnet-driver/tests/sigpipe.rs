//! Writing to a peer that has gone is an error, not a signal: a program
//! that embeds fastnet need not ignore `SIGPIPE` (Rust binaries do, by
//! default; programs hosted by C or other runtimes often do not).
//!
//! A test binary of its own, since it changes a process-wide signal action.

#![cfg(unix)]

use std::io::ErrorKind;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use fastnet_driver::socket::write_slices;

#[test]
fn writing_to_a_gone_peer_is_an_error_not_sigpipe() {
    // SAFETY: `signal` with `SIG_DFL` only changes the process's action for
    // SIGPIPE; nothing else in this test binary relies on it being ignored.
    // Restoring the default makes a write without MSG_NOSIGNAL kill the
    // process, so this test fails loudly if one is made.
    let previous = unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    assert_ne!(previous, libc::SIG_ERR, "could not set SIGPIPE's action");

    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (server, _) = listener.accept().unwrap();
    // The peer closes; its kernel answers further data with a reset.
    server.shutdown(Shutdown::Both).unwrap();
    drop(server);

    let payload = [0x5A; 1024];
    let deadline = Instant::now() + Duration::from_secs(10);
    let error = loop {
        assert!(Instant::now() < deadline, "writes kept succeeding");
        // Both forms: one slice (send) and two (sendmsg).
        let one = write_slices(&client, &payload, &[]);
        let two = write_slices(&client, &payload[..512], &payload[512..]);
        match (one, two) {
            (Err(e), _) | (_, Err(e)) => break e,
            _ => std::thread::sleep(Duration::from_millis(1)),
        }
    };
    assert!(
        matches!(
            error.kind(),
            ErrorKind::BrokenPipe | ErrorKind::ConnectionReset
        ),
        "unexpected error {error:?}"
    );
    // Once broken, every further write fails the same way, still without a signal.
    for _ in 0..3 {
        assert!(write_slices(&client, &payload, &[]).is_err());
        assert!(write_slices(&client, &payload[..1], &payload[1..]).is_err());
    }
}
