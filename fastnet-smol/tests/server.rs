//! Limits, oversize, timeouts, shutdown and pushes through `ConnHandle`.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use fastnet_smol::{
    CloseReason, CodecSpec, ConnHandle, ConnInfo, Ctx, Handler, Limits, RejectReason, SendError,
    Server,
};

/// Lets a test know a handler is waiting, and release it.
type Gate = (Arc<Mutex<mpsc::Sender<()>>>, smol::channel::Receiver<()>);

/// Echo that records rejects, closes and handles; `block` frames wait on
/// the gate, `slow` frames wait 200 ms before echoing.
#[derive(Clone, Default)]
struct Probe {
    rejects: Arc<Mutex<Vec<RejectReason>>>,
    closes: Arc<Mutex<Vec<CloseReason>>>,
    handles: Arc<Mutex<Vec<ConnHandle>>>,
    gate: Option<Gate>,
    frames: Arc<AtomicUsize>,
}

impl Handler for Probe {
    type State = ();
    fn on_connect(&self, _: &ConnInfo) -> Option<()> {
        Some(())
    }
    fn on_open(&self, ctx: &mut Ctx<'_, ()>) {
        self.handles.lock().unwrap().push(ctx.handle());
    }
    async fn on_frame(&self, ctx: &mut Ctx<'_, ()>, frame: &[u8]) {
        self.frames.fetch_add(1, Ordering::Relaxed);
        if frame == b"block" {
            if let Some((entered, release)) = &self.gate {
                entered.lock().unwrap().send(()).unwrap();
                let _ = release.recv().await;
            }
        } else if frame == b"slow" {
            smol::Timer::after(Duration::from_millis(200)).await;
        } else if frame == b"forever" {
            smol::Timer::after(Duration::from_secs(3600)).await;
        }
        let _ = ctx.send(frame);
    }
    fn on_close(&self, _: &ConnInfo, _: (), reason: CloseReason) {
        self.closes.lock().unwrap().push(reason);
    }
    fn on_reject(&self, _: SocketAddr, reason: RejectReason) {
        self.rejects.lock().unwrap().push(reason);
    }
}

fn closed_promptly(s: &mut TcpStream) {
    s.set_read_timeout(Some(WAIT)).unwrap();
    let mut buf = [0u8; 64];
    match s.read(&mut buf) {
        Ok(0) => {}
        Ok(n) => panic!("expected close, got {n} bytes"),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!("expected close, got {e}"),
    }
}

#[test]
fn max_connections_refused_promptly_and_counted() {
    let probe = Probe::default();
    let srv = start(
        Server::builder(CodecSpec::lines(64)).max_connections(2),
        probe.clone(),
    );
    let mut a = LineClient::connect(srv.addr);
    let mut b = LineClient::connect(srv.addr);
    a.send("a");
    assert_eq!(a.line(), "a");
    b.send("b");
    assert_eq!(b.line(), "b");
    let mut c = TcpStream::connect(srv.addr).unwrap();
    closed_promptly(&mut c);
    assert_eq!(
        *probe.rejects.lock().unwrap(),
        [RejectReason::MaxConnections]
    );
    // A slot frees up when a client leaves.
    drop(a);
    eventually("slot freed", || srv.shutdown.stats().snapshot().open() == 1);
    let mut d = LineClient::connect(srv.addr);
    d.send("d");
    assert_eq!(d.line(), "d");
    let stats = srv.stop(Duration::from_secs(1));
    assert_eq!(stats.rejected(RejectReason::MaxConnections), 1);
    assert_eq!(stats.accepted, 3);
}

#[test]
fn per_ip_limit() {
    let probe = Probe::default();
    let srv = start(
        Server::builder(CodecSpec::lines(64)).max_connections_per_ip(1),
        probe.clone(),
    );
    let mut a = LineClient::connect(srv.addr);
    a.send("a");
    assert_eq!(a.line(), "a");
    let mut b = TcpStream::connect(srv.addr).unwrap();
    closed_promptly(&mut b);
    assert_eq!(*probe.rejects.lock().unwrap(), [RejectReason::MaxPerIp]);
    let stats = srv.stop(Duration::from_secs(1));
    assert_eq!(stats.rejected(RejectReason::MaxPerIp), 1);
}

#[test]
fn oversize_closes_only_that_connection() {
    let probe = Probe::default();
    let srv = start(Server::builder(CodecSpec::lines(16)), probe.clone());
    let mut good = LineClient::connect(srv.addr);
    good.send("fine");
    assert_eq!(good.line(), "fine");
    let mut bad = TcpStream::connect(srv.addr).unwrap();
    bad.write_all(&[b'x'; 100]).unwrap();
    closed_promptly(&mut bad);
    good.send("still fine");
    assert_eq!(good.line(), "still fine");
    let stats = srv.stop(Duration::from_secs(1));
    assert_eq!(stats.closed(CloseReason::FrameTooLarge), 1);
    assert!(probe
        .closes
        .lock()
        .unwrap()
        .contains(&CloseReason::FrameTooLarge));
}

#[test]
fn idle_timeout_closes_silent_peer() {
    let probe = Probe::default();
    let limits = Limits::default().idle_timeout(Some(Duration::from_millis(100)));
    let srv = start(
        Server::builder(CodecSpec::lines(64)).limits(limits),
        probe.clone(),
    );
    let mut c = LineClient::connect(srv.addr);
    c.send("hi");
    assert_eq!(c.line(), "hi");
    let t = Instant::now();
    c.expect_closed();
    assert!(
        t.elapsed() >= Duration::from_millis(90),
        "{:?}",
        t.elapsed()
    );
    let stats = srv.stop(Duration::from_secs(1));
    assert_eq!(stats.closed(CloseReason::IdleTimeout), 1);
}

#[test]
fn read_timeout_stops_slow_loris() {
    let probe = Probe::default();
    let limits = Limits::default()
        .idle_timeout(Some(Duration::from_secs(30)))
        .read_timeout(Some(Duration::from_millis(200)));
    let srv = start(
        Server::builder(CodecSpec::lines(4096)).limits(limits),
        probe.clone(),
    );
    let mut s = TcpStream::connect(srv.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(40))).unwrap();
    let t = Instant::now();
    // One byte every 40 ms, never a newline: the trickle must not re-arm it.
    let mut closed = false;
    while t.elapsed() < WAIT {
        if s.write_all(b"x").is_err() {
            closed = true;
            break;
        }
        let mut buf = [0u8; 8];
        match s.read(&mut buf) {
            Ok(0) => {
                closed = true;
                break;
            }
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                closed = true;
                break;
            }
            _ => {}
        }
    }
    assert!(closed);
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    let stats = srv.stop(Duration::from_secs(1));
    assert_eq!(stats.closed(CloseReason::ReadTimeout), 1);
}

#[test]
fn graceful_shutdown_delivers_in_flight_replies() {
    let probe = Probe::default();
    let srv = start(Server::builder(CodecSpec::lines(64)), probe.clone());
    let mut c = LineClient::connect(srv.addr);
    let mut idle = LineClient::connect(srv.addr);
    c.send("slow");
    eventually("frame in handler", || {
        probe.frames.load(Ordering::Relaxed) == 1
    });
    let t = Instant::now();
    srv.shutdown.shutdown(Duration::from_secs(3));
    assert_eq!(c.line(), "slow", "the in-flight reply is delivered");
    c.expect_closed();
    idle.expect_closed();
    let stats = srv.thread.join().unwrap().unwrap();
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    assert_eq!(stats.closed(CloseReason::Local), 2);
    assert!(TcpStream::connect(srv.addr).is_err(), "no longer accepting");
}

#[test]
fn shutdown_deadline_closes_stuck_connections() {
    let probe = Probe::default();
    let srv = start(Server::builder(CodecSpec::lines(64)), probe.clone());
    let mut c = LineClient::connect(srv.addr);
    c.send("forever");
    eventually("frame in handler", || {
        probe.frames.load(Ordering::Relaxed) == 1
    });
    let t = Instant::now();
    let stats = srv.stop(Duration::from_millis(200));
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(190) && took < Duration::from_secs(2),
        "{took:?}"
    );
    c.expect_closed();
    assert_eq!(stats.closed(CloseReason::Local), 1);
    assert_eq!(*probe.closes.lock().unwrap(), [CloseReason::Local]);
}

#[test]
fn conn_handle_push_full_and_closed() {
    let (entered_tx, entered) = mpsc::channel();
    let (release, release_rx) = smol::channel::unbounded();
    let probe = Probe {
        gate: Some((Arc::new(Mutex::new(entered_tx)), release_rx)),
        ..Probe::default()
    };
    let srv = start(
        Server::builder(CodecSpec::lines(64)).push_queue(4 * 7), // 4 x "pN\n" + header
        probe.clone(),
    );
    let mut c = LineClient::connect(srv.addr);
    eventually("connected", || probe.handles.lock().unwrap().len() == 1);
    let h = probe.handles.lock().unwrap()[0].clone();
    // Pushed from another thread while the connection is idle.
    std::thread::spawn({
        let h = h.clone();
        move || h.send(b"pushed").unwrap()
    })
    .join()
    .unwrap();
    assert_eq!(c.line(), "pushed");
    // While the handler is busy, pushes queue up to the bound.
    c.send("block");
    entered.recv_timeout(WAIT).unwrap();
    for i in 0..4 {
        h.send(format!("p{i}").as_bytes()).unwrap();
    }
    assert_eq!(
        h.send(b"p4"),
        Err(SendError::Full {
            queued: 28,
            limit: 28
        })
    );
    assert!(matches!(h.send(b"bad\nline"), Err(SendError::Encode(_))));
    release.try_send(()).unwrap();
    assert_eq!(c.line(), "block");
    for i in 0..4 {
        assert_eq!(c.line(), format!("p{i}"));
    }
    h.close();
    c.expect_closed();
    eventually("closed", || h.is_closed());
    assert_eq!(h.send(b"late"), Err(SendError::Closed));
    let stats = srv.stop(Duration::from_secs(1));
    assert_eq!(stats.closed(CloseReason::Local), 1);
}

/// Reads until EOF or reset; what arrived before.
fn read_until_closed(s: &mut TcpStream) -> Vec<u8> {
    s.set_read_timeout(Some(WAIT)).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return got,
            Err(e) => panic!("expected close, got {e} after {got:?}"),
        }
    }
}

#[test]
fn byte_limit_answers_frames_within_it_then_closes() {
    let probe = Probe::default();
    let limits = Limits::default().max_bytes_in(Some(12));
    let srv = start(
        Server::builder(CodecSpec::lines(64)).limits(limits),
        probe.clone(),
    );
    let mut s = TcpStream::connect(srv.addr).unwrap();
    // 16 bytes in one write: three frames within the 12-byte limit, one past.
    s.write_all(b"aaa\nbbb\nccc\nddd\n").unwrap();
    assert_eq!(read_until_closed(&mut s), b"aaa\nbbb\nccc\n");
    let stats = srv.stop(Duration::from_secs(1));
    assert_eq!(stats.closed(CloseReason::ByteLimit), 1);
    assert_eq!(stats.frames_in, 3);
    assert_eq!(*probe.closes.lock().unwrap(), [CloseReason::ByteLimit]);
}

#[test]
fn frames_with_eof_answered_even_when_handler_awaits() {
    let probe = Probe::default();
    let srv = start(Server::builder(CodecSpec::lines(64)), probe.clone());
    let mut s = TcpStream::connect(srv.addr).unwrap();
    // The middle frame's handler waits 200 ms; the EOF is already there.
    s.write_all(b"a\nslow\nb\n").unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    assert_eq!(read_until_closed(&mut s), b"a\nslow\nb\n");
    let stats = srv.stop(Duration::from_secs(1));
    assert_eq!(stats.closed(CloseReason::PeerClosed), 1);
}

#[test]
fn malformed_frames_skipped_with_skip_malformed_else_closed() {
    let cobs = CodecSpec::cobs(64);
    // "hi", a frame whose code byte runs past its end, "yo".
    let wire = [3, b'h', b'i', 0, 5, b'A', 0, 3, b'y', b'o', 0];
    for skip in [true, false] {
        let probe = Probe::default();
        let limits = Limits::default().skip_malformed(skip);
        let srv = start(Server::builder(cobs).limits(limits), probe.clone());
        let mut s = TcpStream::connect(srv.addr).unwrap();
        s.write_all(&wire).unwrap();
        if skip {
            let mut got = [0u8; 8];
            s.set_read_timeout(Some(WAIT)).unwrap();
            s.read_exact(&mut got).unwrap();
            assert_eq!(got, [3, b'h', b'i', 0, 3, b'y', b'o', 0]);
            drop(s);
            let stats = srv.stop(Duration::from_secs(1));
            assert_eq!(stats.frames_in, 2);
            assert_eq!(stats.closed(CloseReason::PeerClosed), 1);
        } else {
            // The frame before the bad one is still answered.
            assert_eq!(read_until_closed(&mut s), [3, b'h', b'i', 0]);
            let stats = srv.stop(Duration::from_secs(1));
            assert_eq!(stats.frames_in, 1);
            let closes = probe.closes.lock().unwrap().clone();
            assert!(
                matches!(closes[..], [CloseReason::Protocol(_)]),
                "{closes:?}"
            );
        }
    }
}

/// Answers frames at once but `slow` ones (declined, then awaited in
/// `on_frame`) and closes at once on `bye`; counts each path's calls.
#[derive(Clone, Default)]
struct AtOnce {
    now: Arc<AtomicUsize>,
    later: Arc<AtomicUsize>,
}

impl Handler for AtOnce {
    type State = u32;
    fn on_connect(&self, _: &ConnInfo) -> Option<u32> {
        Some(0)
    }
    fn on_frame_now(&self, ctx: &mut Ctx<'_, u32>, frame: &[u8]) -> bool {
        self.now.fetch_add(1, Ordering::SeqCst);
        if frame == b"slow" {
            return false;
        }
        // The state is the connection's: frames of both paths count here.
        *ctx.state_mut() += 1;
        let _ = ctx.send(format!("{}:{}", ctx.state(), String::from_utf8_lossy(frame)).as_bytes());
        if frame == b"bye" {
            ctx.close();
        }
        true
    }
    async fn on_frame(&self, ctx: &mut Ctx<'_, u32>, frame: &[u8]) {
        self.later.fetch_add(1, Ordering::SeqCst);
        smol::Timer::after(Duration::from_millis(50)).await;
        *ctx.state_mut() += 1;
        let _ = ctx
            .send(format!("{}:later {}", ctx.state(), String::from_utf8_lossy(frame)).as_bytes());
    }
}

#[test]
fn frames_answered_at_once_and_awaited_interleave_in_order() {
    let handler = AtOnce::default();
    let srv = start(Server::builder(CodecSpec::lines(64)), handler.clone());
    let mut s = TcpStream::connect(srv.addr).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    // One write: the declined frames wait 50 ms each, and the frames after
    // them are not answered before them; `bye` closes after its reply and
    // the frame behind it is never handed out.
    s.write_all(b"a\nslow\nb\nc\nslow\nbye\nlost\n").unwrap();
    assert_eq!(
        String::from_utf8_lossy(&read_until_closed(&mut s)),
        "1:a\n2:later slow\n3:b\n4:c\n5:later slow\n6:bye\n"
    );
    let stats = srv.stop(Duration::from_secs(1));
    assert_eq!(stats.closed(CloseReason::Local), 1);
    assert_eq!(stats.frames_in, 6);
    assert_eq!(
        handler.now.load(Ordering::SeqCst),
        6,
        "every frame is offered at once first"
    );
    assert_eq!(
        handler.later.load(Ordering::SeqCst),
        2,
        "only the declined ones are awaited"
    );
}
