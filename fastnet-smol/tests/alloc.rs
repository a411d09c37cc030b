//! Zero allocations per frame in steady state: a counting global allocator
//! watches the whole process while clients exchange frames with an echo
//! server (the client threads themselves do not allocate in the window),
//! and then only the thread of a fastnet `Client` while it pipelines
//! frames through `feed`, `flush` and `recv`.
//!
//! async-io's reactor allocates one small `Vec` of wakers per reactor turn
//! (async-io 2.6 `reactor.rs`, `ReactorLock::react`), which is outside this
//! crate; so the test compares two runs with the same number of round trips
//! (reactor turns) and 16x more frames in the second: the count must not
//! grow with frames, and must stay within one per round trip.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::future::{ready, Future};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use common::*;
use fastnet_smol::{CodecSpec, ConnInfo, Ctx, Handler, Server};

struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards every call unchanged to `System`, only counting.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if counted() {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if counted() {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Whether this allocation counts: all threads for the server test, only
/// the client's thread for the client test (the two tests take `SERIAL`,
/// so their windows never overlap).
fn counted() -> bool {
    if !COUNTING.load(Ordering::Relaxed) {
        return false;
    }
    // A const-initialised, drop-free thread-local never allocates itself.
    let client = CLIENT_THREAD
        .try_with(std::cell::Cell::get)
        .unwrap_or(false);
    client || !CLIENT_TEST.load(Ordering::Relaxed)
}

/// Set while the client test counts.
static CLIENT_TEST: AtomicBool = AtomicBool::new(false);

/// Held by each test: they share the counter.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[global_allocator]
static GLOBAL: Counting = Counting;

struct Echo;

impl Handler for Echo {
    type State = ();
    fn on_connect(&self, _: &ConnInfo) -> Option<()> {
        Some(())
    }
    fn on_frame(&self, ctx: &mut Ctx<'_, ()>, frame: &[u8]) -> impl Future<Output = ()> + Send {
        let _ = ctx.send(frame);
        ready(())
    }
}

/// Echo answering every frame at once (`on_frame_now`), the path that
/// inlines the reply's encoding.
struct EchoAtOnce;

impl Handler for EchoAtOnce {
    type State = ();
    fn on_connect(&self, _: &ConnInfo) -> Option<()> {
        Some(())
    }
    fn on_frame_now(&self, ctx: &mut Ctx<'_, ()>, frame: &[u8]) -> bool {
        let _ = ctx.send(frame);
        true
    }
    async fn on_frame(&self, _: &mut Ctx<'_, ()>, _: &[u8]) {
        unreachable!("every frame is answered at once");
    }
}

/// Allocations while each client does `rounds` round trips of `out`.
fn count(clients: &mut [TcpStream], rounds: usize, out: &[u8]) -> u64 {
    let mut back = vec![0u8; out.len()];
    ALLOCS.store(0, Ordering::SeqCst);
    COUNTING.store(true, Ordering::SeqCst);
    for _ in 0..rounds {
        for s in clients.iter_mut() {
            s.write_all(out).unwrap();
            s.read_exact(&mut back).unwrap();
        }
    }
    COUNTING.store(false, Ordering::SeqCst);
    assert_eq!(back, out);
    ALLOCS.load(Ordering::SeqCst)
}

fn lines(n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..n {
        out.extend_from_slice(&[b'a' + (i % 26) as u8; 99]);
        out.push(b'\n');
    }
    out
}

#[test]
fn no_allocation_per_frame_in_steady_state() {
    steady_state(Echo);
}

#[test]
fn no_allocation_per_frame_answered_at_once() {
    steady_state(EchoAtOnce);
}

fn steady_state(handler: impl Handler) {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let srv = start(Server::builder(CodecSpec::lines(1024)), handler);
    let mut clients: Vec<TcpStream> = (0..4)
        .map(|_| {
            let s = TcpStream::connect(srv.addr).unwrap();
            s.set_read_timeout(Some(WAIT)).unwrap();
            s.set_nodelay(true).unwrap();
            s
        })
        .collect();
    let (one, sixteen) = (lines(1), lines(16));
    // Warm up: pools, queues, registrations reach their steady size.
    count(&mut clients, 200, &sixteen);
    const ROUNDS: usize = 500;
    let trips = (ROUNDS * clients.len()) as u64;
    let a = count(&mut clients, ROUNDS, &one);
    let b = count(&mut clients, ROUNDS, &sixteen);
    drop(clients);
    eprintln!("allocations over {trips} round trips: 1 frame each {a}, 16 frames each {b}");
    let stats = srv.stop(Duration::from_secs(1));
    assert!(stats.frames_in >= trips * 17);
    // 16x the frames, not more allocations (a few percent of noise from
    // how reactor turns happen to batch).
    assert!(
        b <= a + trips / 20,
        "1 frame/trip: {a}, 16 frames/trip: {b}, trips {trips}"
    );
    assert!(
        a <= trips + trips / 10,
        "{a} allocations for {trips} round trips"
    );
}

thread_local! {
    /// Set on the client's thread while its allocations are counted.
    static CLIENT_THREAD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Allocations on this thread while `client` does `rounds` round trips of
/// `frames` pipelined frames (the thread also turns async-io's reactor
/// inside `block_on`, hence the same per-turn allowance as above).
fn client_count(client: &mut fastnet_smol::Client, rounds: usize, frames: usize) -> u64 {
    let payload = [b'x'; 99];
    smol::block_on(async {
        ALLOCS.store(0, Ordering::SeqCst);
        CLIENT_THREAD.with(|f| f.set(true));
        CLIENT_TEST.store(true, Ordering::SeqCst);
        COUNTING.store(true, Ordering::SeqCst);
        for _ in 0..rounds {
            for _ in 0..frames {
                client.feed(&payload).unwrap();
            }
            client.flush().await.unwrap();
            for _ in 0..frames {
                assert_eq!(client.recv().await.unwrap(), Some(&payload[..]));
            }
        }
        COUNTING.store(false, Ordering::SeqCst);
        CLIENT_TEST.store(false, Ordering::SeqCst);
        CLIENT_THREAD.with(|f| f.set(false));
        ALLOCS.load(Ordering::SeqCst)
    })
}

#[test]
fn client_send_and_recv_allocate_nothing_per_frame() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let srv = start(Server::builder(CodecSpec::lines(1024)), Echo);
    let mut client = smol::block_on(fastnet_smol::Client::connect(
        srv.addr,
        CodecSpec::lines(1024),
        WAIT,
    ))
    .unwrap();
    client_count(&mut client, 100, 16); // warm up
    const ROUNDS: usize = 500;
    let trips = ROUNDS as u64;
    let a = client_count(&mut client, ROUNDS, 1);
    let b = client_count(&mut client, ROUNDS, 16);
    drop(client);
    srv.stop(Duration::from_secs(1));
    eprintln!("client allocations over {trips} round trips: 1 frame each {a}, 16 frames each {b}");
    // At most the reactor's one per wait (a round trip), however many
    // frames the trip carries: 16 frames cost no more than one.
    for (frames, n) in [(1, a), (16, b)] {
        assert!(
            n <= trips + trips / 10,
            "{n} allocations for {trips} round trips of {frames} frames"
        );
    }
}
