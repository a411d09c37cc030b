//! Zero allocations per frame in steady state: a counting global allocator
//! counts the allocations made on the server's threads (marked by a
//! thread-local flag that the accept thread and each worker set), and
//! separately those of the client's `send` and `recv`, while a client echoes
//! 10 000 frames through the running server.
//!
//! A negative control makes the handler allocate and checks that the
//! counter sees it, so the test can fail.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::Duration;

use fastnet_proto::codec::{CodecSpec, Endian, LengthFieldConfig};
use fastnet_std::{Client, ConnInfo, Ctx, Handler, Server};

thread_local! {
    /// Set on the server's threads: their allocations are counted.
    static SERVER_THREAD: Cell<bool> = const { Cell::new(false) };
    /// Set on the client's thread while its steady state is measured.
    static CLIENT_THREAD: Cell<bool> = const { Cell::new(false) };
}

static CLIENT_ALLOCS: AtomicU64 = AtomicU64::new(0);

static SERVER_ALLOCS: AtomicU64 = AtomicU64::new(0);
/// Negative control: the handler allocates for every frame.
static HANDLER_ALLOCATES: AtomicBool = AtomicBool::new(false);

fn count() {
    // A const-initialised, drop-free thread-local never allocates itself.
    if SERVER_THREAD.try_with(Cell::get).unwrap_or(false) {
        SERVER_ALLOCS.fetch_add(1, Ordering::Relaxed);
    }
    if CLIENT_THREAD.try_with(Cell::get).unwrap_or(false) {
        CLIENT_ALLOCS.fetch_add(1, Ordering::Relaxed);
    }
}

struct Counting;

// SAFETY: every method forwards its arguments unchanged to `System`, which
// upholds the `GlobalAlloc` contract; counting touches no allocated memory.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: the caller's guarantees are passed on unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

struct Echo;

impl Handler for Echo {
    type State = ();

    fn on_connect(&self, _info: &ConnInfo) -> Option<()> {
        SERVER_THREAD.with(|f| f.set(true));
        Some(())
    }

    fn on_frame(&self, ctx: &mut Ctx<'_, ()>, frame: &[u8]) {
        if HANDLER_ALLOCATES.load(Ordering::Relaxed) {
            std::hint::black_box(frame.to_vec());
        }
        ctx.send(frame).expect("reply fits");
    }
}

/// Echoes `count` frames in batches of 8 (so some wake-ups carry several
/// frames), sizes cycling through 0..=1000, every byte checked.
fn echo(client: &mut Client, payload: &[u8], count: usize) {
    let mut sent = 0;
    while sent < count {
        let batch = 8.min(count - sent);
        for i in 0..batch {
            let len = (sent + i) * 37 % 1001;
            client.send(&payload[..len]).unwrap();
        }
        for i in 0..batch {
            let len = (sent + i) * 37 % 1001;
            assert_eq!(client.recv().unwrap().expect("open"), &payload[..len]);
        }
        sent += batch;
    }
}

#[test]
fn server_allocates_nothing_per_frame() {
    let codec = CodecSpec::LengthField(LengthFieldConfig::new(4, Endian::Big).max_frame(1024));
    let server = Server::builder(codec).bind().unwrap();
    let addr = server.local_addr();
    let shutdown = server.shutdown_handle();
    let serving = thread::spawn(move || {
        SERVER_THREAD.with(|f| f.set(true));
        server.serve(Echo)
    });

    let payload: Vec<u8> = (0..1024u32).map(|i| (i * 7) as u8).collect();
    let mut client = Client::connect(addr, codec, Duration::from_secs(2)).unwrap();
    // Warm up: the first frames may size lazily grown structures.
    echo(&mut client, &payload, 1000);

    let before = SERVER_ALLOCS.load(Ordering::SeqCst);
    CLIENT_THREAD.with(|f| f.set(true));
    echo(&mut client, &payload, 10_000);
    CLIENT_THREAD.with(|f| f.set(false));
    let steady = SERVER_ALLOCS.load(Ordering::SeqCst) - before;
    let client_allocs = CLIENT_ALLOCS.load(Ordering::SeqCst);

    // Negative control: a handler that allocates per frame is caught.
    HANDLER_ALLOCATES.store(true, Ordering::SeqCst);
    let before = SERVER_ALLOCS.load(Ordering::SeqCst);
    echo(&mut client, &payload, 100);
    let control = SERVER_ALLOCS.load(Ordering::SeqCst) - before;
    HANDLER_ALLOCATES.store(false, Ordering::SeqCst);

    drop(client);
    shutdown.shutdown(Duration::from_secs(2));
    let stats = serving.join().unwrap().unwrap();
    assert_eq!(stats.frames_in, 11_100);
    assert_eq!(
        steady, 0,
        "server threads allocated {steady} times while echoing 10 000 frames"
    );
    assert_eq!(
        client_allocs, 0,
        "the client allocated {client_allocs} times while echoing 10 000 frames"
    );
    assert!(control >= 99, "the counter missed allocations: {control}");
}
