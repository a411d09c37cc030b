//! Behaviour of the std driver beyond the cross-driver suite: the worker
//! pool, server push, closing, refusing, configuration errors.

mod common;

use std::io::ErrorKind;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::{codec, start, wait_until};
use fastnet_std::{Client, CloseReason, RejectReason, SendError, Server};

const T: Duration = Duration::from_secs(2);

fn client(addr: std::net::SocketAddr) -> Client {
    let c = Client::connect(addr, codec(64 * 1024), T).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c
}

fn roundtrip(c: &mut Client, payload: &[u8]) {
    c.send(payload).unwrap();
    assert_eq!(c.recv().unwrap().expect("reply"), payload);
}

#[test]
fn workers_busy_refused_promptly_then_reused() {
    let server = start(Server::builder(codec(1024)).workers(2), false);
    let mut a = client(server.addr);
    let mut b = client(server.addr);
    roundtrip(&mut a, b"a");
    roundtrip(&mut b, b"b");
    assert_eq!(server.workers.live(), 2);

    let start_refused = Instant::now();
    let mut c = client(server.addr);
    let _ = c.send(b"c");
    assert!(matches!(c.recv(), Ok(None) | Err(_)), "refused, not queued");
    assert!(start_refused.elapsed() < Duration::from_secs(1));
    assert!(wait_until(T, || *server.seen.rejects.lock().unwrap()
        == [RejectReason::WorkersBusy]));
    roundtrip(&mut a, b"a still served");

    drop(b);
    assert!(wait_until(T, || server.workers.idle() == 1));
    let mut d = client(server.addr);
    roundtrip(&mut d, b"d reuses b's worker");
    assert_eq!(server.workers.live(), 2, "no third thread");
    let stats = server.stop();
    assert_eq!(stats.rejected(RejectReason::WorkersBusy), 1);
    assert_eq!(stats.accepted, 3);
}

#[test]
fn idle_workers_expire() {
    let server = start(
        Server::builder(codec(1024)).worker_idle_expiry(Duration::from_millis(100)),
        false,
    );
    let mut a = client(server.addr);
    roundtrip(&mut a, b"x");
    drop(a);
    assert!(wait_until(T, || server.workers.idle() == 1));
    assert!(
        wait_until(T, || server.workers.live() == 0),
        "idle worker expired"
    );
    let mut b = client(server.addr);
    roundtrip(&mut b, b"a new worker");
}

#[test]
fn push_reaches_idle_peer_while_worker_reads() {
    let server = start(Server::builder(codec(1024)), false);
    let mut c = client(server.addr);
    roundtrip(&mut c, b"x");
    c.send(b"handle").unwrap();
    assert_eq!(c.recv().unwrap(), Some(&b"ok"[..]));
    let handle = server.seen.handles.lock().unwrap().pop().unwrap();
    // The worker is now blocked in read; the push must not wait for it.
    let sent = Instant::now();
    handle.send(b"pushed").unwrap();
    assert_eq!(c.recv().unwrap(), Some(&b"pushed"[..]));
    assert!(sent.elapsed() < Duration::from_millis(500));
    // Pushes from many threads arrive whole.
    let threads: Vec<_> = (0..4u8)
        .map(|t| {
            let h = handle.clone();
            thread::spawn(move || {
                for i in 0..50u8 {
                    // Full is back-pressure: retry later.
                    while let Err(e) = h.send(&[t, i, t, i]) {
                        assert!(matches!(e, SendError::Full { .. }), "{e}");
                        thread::yield_now();
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let mut next = [0u8; 4];
    for _ in 0..200 {
        let f = c.recv().unwrap().unwrap();
        assert_eq!(f.len(), 4);
        assert_eq!((f[0], f[1]), (f[2], f[3]));
        assert_eq!(f[1], next[f[0] as usize], "per-thread order kept");
        next[f[0] as usize] += 1;
    }
    // Replies and pushes do not interleave.
    roundtrip(&mut c, b"after pushes");
    assert_eq!(
        handle.send(&[0; 2000]),
        Err(SendError::Encode(fastnet_proto::Error::PayloadTooLarge {
            len: 2004,
            max: 1024
        }))
    );
    handle.close();
    assert_eq!(c.recv().unwrap(), None);
    assert!(wait_until(T, || handle.is_closed()));
    assert_eq!(handle.send(b"late"), Err(SendError::Closed));
    assert!(wait_until(T, || *server.seen.closes.lock().unwrap()
        == [CloseReason::Local]));
}

#[test]
fn push_queue_full_is_reported_and_nothing_is_lost() {
    const FRAME: usize = 32 * 1024;
    let server = start(
        Server::builder(codec(64 * 1024)).push_queue(3 * FRAME),
        false,
    );
    let mut c = client(server.addr);
    c.send(b"handle").unwrap();
    assert_eq!(c.recv().unwrap(), Some(&b"ok"[..]));
    let handle = server.seen.handles.lock().unwrap().pop().unwrap();
    // The client does not read: the socket buffers fill, then the push
    // queue (bounded in bytes), and a push reports Full; none blocks.
    let full = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicUsize::new(0));
    let pushers: Vec<_> = (0..3)
        .map(|_| {
            let (h, full, ok) = (handle.clone(), Arc::clone(&full), Arc::clone(&ok));
            thread::spawn(move || {
                let end = Instant::now() + Duration::from_secs(10);
                while !full.load(Ordering::SeqCst) && Instant::now() < end {
                    match h.send(&[7; FRAME]) {
                        Ok(()) => {
                            ok.fetch_add(1, Ordering::SeqCst);
                        }
                        Err(SendError::Full { .. }) => full.store(true, Ordering::SeqCst),
                        Err(e) => panic!("{e}"),
                    }
                }
            })
        })
        .collect();
    assert!(
        wait_until(Duration::from_secs(10), || full.load(Ordering::SeqCst)),
        "a push to a peer that does not read reports Full"
    );
    // Now read: every accepted push arrives, whole. A pusher's frame can
    // arrive before its `send` returns and counts it, so read with a short
    // timeout and stop only once every pusher is done and the counts agree.
    c.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let end = Instant::now() + Duration::from_secs(10);
    let mut got = 0;
    loop {
        let done = pushers.iter().all(|p| p.is_finished());
        if done && got == ok.load(Ordering::SeqCst) {
            break;
        }
        assert!(
            Instant::now() < end,
            "got {got} of {} pushes",
            ok.load(Ordering::SeqCst)
        );
        match c.recv() {
            Ok(Some(f)) => {
                assert!(f.len() == FRAME && f.iter().all(|&b| b == 7));
                got += 1;
            }
            Ok(None) => panic!("closed after {got} pushes"),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => panic!("after {got} pushes: {e}"),
        }
    }
    for p in pushers {
        p.join().unwrap();
    }
    assert_eq!(got, ok.load(Ordering::SeqCst));
}

#[test]
fn handler_closes_and_refuses() {
    let server = start(Server::builder(codec(1024)), false);
    let mut c = client(server.addr);
    c.send(b"one").unwrap();
    c.send(b"bye").unwrap();
    c.send(b"ignored").unwrap();
    assert_eq!(c.recv().unwrap(), Some(&b"one"[..]));
    assert_eq!(c.recv().unwrap(), None);
    assert!(wait_until(T, || *server.seen.closes.lock().unwrap()
        == [CloseReason::Local]));

    let refusing = start(Server::builder(codec(1024)), true);
    let mut c = client(refusing.addr);
    let _ = c.send(b"hi");
    assert!(matches!(c.recv(), Ok(None) | Err(_)));
    assert!(wait_until(T, || *refusing.seen.rejects.lock().unwrap()
        == [RejectReason::Refused]));
    let stats = refusing.stop();
    assert_eq!(
        (stats.accepted, stats.rejected(RejectReason::Refused)),
        (0, 1)
    );
}

#[test]
fn peer_eof_after_frames_still_answers() {
    let server = start(Server::builder(codec(1024)), false);
    let mut c = client(server.addr);
    c.send(b"last words").unwrap();
    c.stream().shutdown(std::net::Shutdown::Write).unwrap();
    assert_eq!(c.recv().unwrap(), Some(&b"last words"[..]));
    assert_eq!(c.recv().unwrap(), None);
    assert!(wait_until(T, || *server.seen.closes.lock().unwrap()
        == [CloseReason::PeerClosed]));
}

#[test]
fn bad_configuration_is_an_error_naming_it() {
    let mut cfg =
        fastnet_proto::codec::LengthFieldConfig::new(2, fastnet_proto::codec::Endian::Big);
    cfg.offset = 1;
    let err = Server::builder(fastnet_proto::codec::CodecSpec::LengthField(cfg))
        .bind()
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    assert!(err.to_string().contains("reply codec"), "{err}");
    let err = Server::builder(codec(1024))
        .max_connections(0)
        .bind()
        .unwrap_err();
    assert!(err.to_string().contains("max_connections"), "{err}");
}

#[test]
fn shutdown_before_serve_returns_at_once() {
    let server = Server::builder(codec(1024)).bind().unwrap();
    server.shutdown_handle().shutdown(Duration::from_secs(1));
    let start = Instant::now();
    let seen = Arc::new(common::Seen::default());
    let stats = server
        .serve(common::TestHandler {
            seen,
            refuse: false,
        })
        .unwrap();
    assert!(start.elapsed() < Duration::from_millis(100));
    assert_eq!(stats.accepted, 0);
}

/// Floods the server with frames without reading the echoes, until the
/// server stops reading (its writes are blocked) and our writes stall.
fn flood_without_reading(addr: std::net::SocketAddr) -> std::net::TcpStream {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_write_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut frame = 60_000u32.to_be_bytes().to_vec();
    frame.resize(60_004, 1);
    let end = Instant::now() + Duration::from_secs(10);
    while Instant::now() < end {
        if s.write_all(&frame).is_err() {
            return s;
        }
    }
    panic!("the server kept reading without anyone draining its replies");
}

#[test]
fn peer_that_never_reads_is_closed_by_the_idle_timeout() {
    let server = start(
        Server::builder(codec(64 * 1024))
            .limits(fastnet_std::Limits::default().idle_timeout(Some(Duration::from_millis(300)))),
        false,
    );
    let _stalled = flood_without_reading(server.addr);
    assert!(
        wait_until(Duration::from_secs(3), || *server
            .seen
            .closes
            .lock()
            .unwrap()
            == [CloseReason::IdleTimeout]),
        "{:?}",
        server.seen.closes.lock().unwrap()
    );
}

#[test]
fn shutdown_deadline_breaks_a_blocked_write() {
    let server = start(Server::builder(codec(64 * 1024)), false);
    let _stalled = flood_without_reading(server.addr);
    let start = Instant::now();
    server.shutdown.shutdown(Duration::from_millis(300));
    let closes = std::sync::Arc::clone(&server.seen);
    let stats = server.stop();
    assert!(
        start.elapsed() < Duration::from_millis(400),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(stats.open(), 0);
    assert_eq!(*closes.closes.lock().unwrap(), [CloseReason::Local]);
}
