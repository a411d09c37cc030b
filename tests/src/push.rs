//! Server push through connection handles, on every driver: a push never
//! blocks its sender, leaves like a reply (counted, keeping the idle timer
//! honest), and one that is never delivered is counted.
//!
//! A driver's echo handler takes part by calling [`wants_handle`] for every
//! frame and, when it says so, recording a handle to the connection with
//! [`Events::record_handle`](crate::Events::record_handle).

use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use fastnet_proto::connection::{CloseReason, SendError};

use crate::{config, wait_until, FrameClient, TestDriver};

/// What the suite does with a driver's connection handle.
pub trait PushHandle: Send + Sync {
    /// Queues `payload` for the peer (the driver's `ConnHandle::send`).
    fn send(&self, payload: &[u8]) -> Result<(), SendError>;
    /// Asks the connection to close gracefully.
    fn close(&self);
    /// Pushes queued but never sent because the connection closed.
    fn undelivered(&self) -> u64;
}

/// Frames that start with this tag make the echo handler record a handle
/// to their connection before echoing them.
pub const HANDLE_TAG: &[u8; 4] = b"\xffHDL";

/// Whether the echo handler must record a handle for this frame's
/// connection.
pub fn wants_handle(frame: &[u8]) -> bool {
    frame.starts_with(HANDLE_TAG)
}

/// A client whose connection's handle the server recorded; returns it and
/// the handle.
fn client_with_handle<D: TestDriver>(
    server: &crate::RunningServer,
    max_frame: usize,
) -> (FrameClient, Arc<dyn PushHandle>) {
    let mut c = FrameClient::connect(server.addr(), max_frame).expect("connect");
    let before = server.events().handles().len();
    c.roundtrip(HANDLE_TAG).expect("handle frame echoed");
    assert!(
        wait_until(Duration::from_secs(2), || server.events().handles().len()
            > before),
        "{}: the handler recorded no handle",
        D::NAME
    );
    let handle = server.events().handles()[before].clone();
    (c, handle)
}

/// A broadcast to several peers, one of which never reads, runs to the end
/// without blocking: the stalled peer's pushes come back `Full` at once,
/// every reading peer gets each push that was accepted for it, whole and
/// in order. Closing the stalled peer ends it by the drain timeout, and
/// what was queued for it is counted as undelivered, in the handle and in
/// the server's statistics.
pub fn push_to_a_stalled_peer_is_full_at_once<D: TestDriver>() {
    const READERS: usize = 4;
    const ROUNDS: usize = 3000;
    const FRAME: usize = 2048;
    const END: u32 = u32::MAX;
    let mut cfg = config(4096);
    cfg.limits.drain_timeout = Some(Duration::from_millis(300));
    // Large enough that the peer's kernel, which can still take some
    // bytes while its window is closed, cannot empty it in 300 ms.
    cfg.push_queue = 1 << 20;
    let server = D::start_echo(cfg);
    // A small receive buffer, set before connecting, so the peer's
    // window closes soon and stays closed: what is queued then stays.
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(&server.addr().into()).unwrap();
    let mut stalled = FrameClient::from_stream(socket.into(), crate::codec(4096)).unwrap();
    stalled.roundtrip(HANDLE_TAG).expect("handle frame echoed");
    assert!(wait_until(Duration::from_secs(2), || server
        .events()
        .handles()
        .len()
        == 1));
    let stalled_handle = server.events().handles()[0].clone();
    let mut readers = Vec::new();
    for _ in 0..READERS {
        readers.push(client_with_handle::<D>(&server, 4096));
    }
    // Readers read on their own threads until the end marker.
    let reading: Vec<_> = readers
        .iter()
        .map(|(c, _)| {
            let stream = c.stream().try_clone().unwrap();
            let mut c = FrameClient::from_stream(stream, crate::codec(4096)).unwrap();
            thread::spawn(move || {
                let mut got = Vec::new();
                while let Ok(Some(f)) = c.recv() {
                    let n = u32::from_be_bytes([f[0], f[1], f[2], f[3]]);
                    if n == END {
                        break;
                    }
                    got.push(n);
                }
                got
            })
        })
        .collect();
    let mut accepted = [0usize; READERS];
    let started = Instant::now();
    let mut slowest = Duration::ZERO;
    let mut full = 0;
    let mut frame = vec![7u8; FRAME];
    for round in 0..ROUNDS {
        frame[..4].copy_from_slice(&(round as u32).to_be_bytes());
        let t = Instant::now();
        match stalled_handle.send(&frame) {
            Ok(()) => {}
            Err(SendError::Full { queued, limit }) => {
                assert!(queued <= limit);
                full += 1;
            }
            Err(e) => panic!("{}: push to the stalled peer: {e}", D::NAME),
        }
        slowest = slowest.max(t.elapsed());
        for (i, (_, h)) in readers.iter().enumerate() {
            // A reader that falls behind may see Full too: not retried.
            match h.send(&frame) {
                Ok(()) => accepted[i] += 1,
                Err(SendError::Full { .. }) => {}
                Err(e) => panic!("{}: push to a reader: {e}", D::NAME),
            }
        }
    }
    let took = started.elapsed();
    assert!(
        full > 0,
        "{}: {ROUNDS} pushes of {FRAME} bytes to a peer that never reads were all accepted",
        D::NAME
    );
    assert!(
        slowest < Duration::from_millis(500),
        "{}: one push to the stalled peer took {slowest:?}",
        D::NAME
    );
    // Every reader gets each push accepted for it, whole and in order.
    for (((_, h), reading), accepted) in readers.iter().zip(reading).zip(accepted) {
        let end = Instant::now() + Duration::from_secs(10);
        while let Err(SendError::Full { .. }) = h.send(&END.to_be_bytes()) {
            assert!(
                Instant::now() < end,
                "{}: a reader stopped reading",
                D::NAME
            );
            thread::sleep(Duration::from_millis(1));
        }
        let got = reading.join().expect("reader");
        assert!(
            got.windows(2).all(|w| w[0] < w[1]),
            "{}: out of order",
            D::NAME
        );
        assert_eq!(
            got.len(),
            accepted,
            "{}: every accepted push arrives, none lost",
            D::NAME
        );
    }
    // Fill the stalled peer's queue (again): what the kernel still takes
    // from it during the drain timeout is far less than the queue holds.
    let end = Instant::now() + Duration::from_secs(10);
    while stalled_handle.send(&frame).is_ok() {
        assert!(
            Instant::now() < end,
            "{}: the stalled peer's queue never filled",
            D::NAME
        );
    }
    // A close it does not drain ends by the drain timeout, and what its
    // queue held is counted.
    let closing = Instant::now();
    stalled_handle.close();
    assert!(
        wait_until(Duration::from_secs(5), || server
            .events()
            .closed(CloseReason::Local)
            == 1),
        "{}: the stalled peer was not closed",
        D::NAME
    );
    let took_close = closing.elapsed();
    assert!(
        took_close < Duration::from_secs(3),
        "{}: closing the stalled peer took {took_close:?} (drain timeout 300 ms)",
        D::NAME
    );
    let undelivered = stalled_handle.undelivered();
    assert!(undelivered > 0, "{}: nothing counted undelivered", D::NAME);
    assert_eq!(server.stats().pushes_dropped, undelivered, "{}", D::NAME);
    assert_eq!(stalled_handle.send(b"late"), Err(SendError::Closed));
    drop(stalled);
    eprintln!(
        "{}: {ROUNDS} pushes of {FRAME} B to {} peers in {took:?} (slowest to the stalled one {slowest:?}, {full} Full; accepted per reader {accepted:?}); stalled peer closed {took_close:?} after close(), {undelivered} undelivered",
        D::NAME,
        READERS + 1
    );
}

/// Pushes alone keep a connection active: with a 300 ms idle timeout, a
/// client that only reads stays open while a push arrives every 100 ms,
/// each push counts in `frames_out`, and the idle timeout closes the
/// connection once the pushes stop.
pub fn pushes_keep_the_idle_timer_and_count<D: TestDriver>() {
    let mut cfg = config(1024);
    cfg.limits.idle_timeout = Some(Duration::from_millis(300));
    let server = D::start_echo(cfg);
    let (mut c, handle) = client_with_handle::<D>(&server, 1024);
    let frames_out = server.stats().frames_out;
    for i in 0..10u8 {
        thread::sleep(Duration::from_millis(100));
        handle.send(&[b'p', i]).expect("push accepted");
        assert_eq!(
            c.recv().expect("push arrives"),
            Some(&[b'p', i][..]),
            "{}: push {i} (the connection must not idle out while pushes flow)",
            D::NAME
        );
    }
    assert!(
        server.events().closes().is_empty(),
        "{}: closed while pushes flowed: {:?}",
        D::NAME,
        server.events().closes()
    );
    assert!(
        wait_until(Duration::from_secs(2), || server.stats().frames_out
            >= frames_out + 10),
        "{}: pushes not counted in frames_out",
        D::NAME
    );
    c.expect_closed(Duration::from_secs(3))
        .expect("closed once idle");
    assert!(wait_until(Duration::from_secs(2), || server
        .events()
        .closes()
        == [CloseReason::IdleTimeout]));
    assert_eq!(handle.send(b"late"), Err(SendError::Closed));
}

/// A connection left quiet long enough to give its buffers back (both
/// drivers park a quiet connection's buffers; fastnet-std after a short
/// delay) is served as before: a push wakes it, a request is echoed, and a
/// frame that was half sent when it went quiet completes.
pub fn a_quiet_connection_wakes_for_pushes_and_requests<D: TestDriver>() {
    // Past fastnet-std's park delay (200 ms), with a margin.
    const QUIET: Duration = Duration::from_millis(400);
    let server = D::start_echo(config(1024));
    let (mut c, handle) = client_with_handle::<D>(&server, 1024);
    thread::sleep(QUIET);
    handle.send(b"after a rest").expect("push accepted");
    assert_eq!(
        c.recv().expect("push arrives"),
        Some(&b"after a rest"[..]),
        "{}: push to a resting connection",
        D::NAME
    );
    // A connection without a handle (nobody can push to it) too.
    let mut plain = FrameClient::connect(server.addr(), 1024).expect("connect");
    plain.roundtrip(b"first").expect("echo");
    thread::sleep(QUIET);
    for c in [&mut c, &mut plain] {
        c.roundtrip(b"request after a rest")
            .unwrap_or_else(|e| panic!("{}: request after a rest: {e}", D::NAME));
        // Half a frame (length prefix and two bytes), a rest, then the rest.
        c.send_raw(&[0, 0, 0, 5, b'h', b'a']).expect("write");
    }
    thread::sleep(QUIET);
    for c in [&mut c, &mut plain] {
        c.send_raw(b"lf").expect("write");
    }
    thread::sleep(QUIET);
    for c in [&mut c, &mut plain] {
        c.send_raw(b"!").expect("write");
        assert_eq!(
            c.recv().expect("reply"),
            Some(&b"half!"[..]),
            "{}: a frame split around rests",
            D::NAME
        );
    }
    assert!(
        server.events().closes().is_empty(),
        "{}: closed: {:?}",
        D::NAME,
        server.events().closes()
    );
}
