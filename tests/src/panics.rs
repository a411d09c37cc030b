//! A panicking handler costs its own connection: the thread that ran it,
//! the accept loop and every other connection keep serving, and shutdown
//! returns within its deadline.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use fastnet_proto::connection::CloseReason;

use crate::{config, served_client, wait_until, Events, FrameClient, TestDriver};

/// Frames that start with this tag make the echo handler panic.
pub const PANIC_TAG: &[u8; 4] = b"\xffPNC";

/// Call in the echo handler's `on_frame`: panics on a [`PANIC_TAG`] frame.
pub fn panic_if_tagged(frame: &[u8]) {
    if frame.starts_with(PANIC_TAG) {
        panic!("the test handler was asked to panic");
    }
}

/// How many of the next `on_connect` / `on_close` calls panic.
#[derive(Debug, Default)]
pub(crate) struct Panics {
    connects: AtomicUsize,
    closes: AtomicUsize,
}

/// Takes one from `n` if it is above zero; whether it did.
fn take(n: &AtomicUsize) -> bool {
    n.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| v.checked_sub(1))
        .is_ok()
}

impl Events {
    /// Call first in `on_connect`: panics if asked to.
    pub fn before_connect(&self) {
        if take(&self.panics.connects) {
            panic!("the test handler was asked to panic in on_connect");
        }
    }

    /// The next `n` calls of `on_connect` panic.
    pub fn panic_connects(&self, n: usize) {
        self.panics.connects.store(n, Ordering::SeqCst);
    }

    /// The next `n` calls of `on_close` panic (after recording the close).
    pub fn panic_closes(&self, n: usize) {
        self.panics.closes.store(n, Ordering::SeqCst);
    }

    pub(crate) fn after_close(&self) {
        if take(&self.panics.closes) {
            panic!("the test handler was asked to panic in on_close");
        }
    }
}

/// Handlers that panic in `on_connect`, `on_frame` and `on_close`, many
/// times over (so every thread of a multi-threaded driver runs some): each
/// costs its own connection only, closed with `CloseReason::Panic` where
/// the connection had started (counted in stats); connections open
/// throughout keep every byte, new ones are served, and shutdown returns
/// within its deadline.
pub fn panicking_handler_costs_only_its_connection<D: TestDriver>() {
    let mut server = D::start_echo(config(1024));
    let addr = server.addr();
    let mut steady: Vec<FrameClient> = (0..4).map(|_| served_client(addr)).collect();

    // on_frame: the connection closes, with its own reason.
    for _ in 0..6 {
        let mut c = served_client(addr);
        c.send(PANIC_TAG).unwrap();
        c.expect_closed(Duration::from_secs(5))
            .expect("a panic in on_frame closes its connection");
    }
    // on_connect: the connection is closed before any frame.
    server.events().panic_connects(4);
    for _ in 0..4 {
        let mut c = FrameClient::connect(addr, 1024).expect("the kernel accepts");
        let _ = c.send(b"hello");
        c.expect_closed(Duration::from_secs(5))
            .expect("a panic in on_connect closes its connection");
    }
    // on_close: the close is already counted; nothing else changes.
    server.events().panic_closes(4);
    for _ in 0..4 {
        drop(served_client(addr));
    }
    assert!(
        wait_until(Duration::from_secs(5), || {
            server.stats().closed(CloseReason::Panic) == 10
                && server.events().closed(CloseReason::PeerClosed) == 4
        }),
        "{}: panics counted: {:?}, closes seen: {:?}",
        D::NAME,
        server.stats(),
        server.events().closes()
    );
    assert_eq!(server.events().closed(CloseReason::Panic), 6, "{}", D::NAME);

    for c in &mut steady {
        c.roundtrip(b"still here")
            .expect("connections open throughout keep serving");
    }
    for i in 0..8u8 {
        served_client(addr)
            .roundtrip(&[i; 100])
            .expect("new connections are served on every thread");
    }
    drop(steady);
    let (took, stats) = server.shutdown(Duration::from_secs(1));
    assert!(
        took < Duration::from_secs(5),
        "{}: shutdown(1 s) took {took:?}",
        D::NAME
    );
    assert_eq!(stats.closed(CloseReason::Panic), 10, "{}", D::NAME);
}
