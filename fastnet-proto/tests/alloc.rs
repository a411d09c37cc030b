// Run: cargo test -p fastnet-proto --test alloc (also with --all-features)
//
//! Zero allocations per frame, proven: a counting global allocator watches
//! a `Connection` echo 100 000 frames (bytes fed in uneven pieces,
//! `poll_frames` replying through the outbox, `poll_transmit` /
//! `handle_written` draining in uneven pieces) for each codec, and the
//! count must be 0 (delimiter/lines, COBS, length field, varint, fixed,
//! raw), and pushes moved through a `PushQueue`. Buffers and input are allocated before the measured
//! region; only allocations made on the measuring thread while it measures
//! are counted, so the test harness's other threads do not interfere.

use fastrand::Rng;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::hint::black_box;
use std::time::Duration;

use fastnet_proto::codec::{
    CobsDecoder, CobsEncoder, Decoder, DelimiterDecoder, DelimiterEncoder, Encoder, Endian,
    FixedDecoder, FixedEncoder, LengthFieldConfig, LengthFieldDecoder, LengthFieldEncoder,
    RawDecoder, RawEncoder, VarintConfig, VarintDecoder, VarintEncoder,
};
use fastnet_proto::connection::{Buffers, CloseReason, Limits, State};
use fastnet_proto::Connection;

const FRAMES: usize = 100_000;

/// Counts heap operations on the current thread while `MEASURING` is set.
struct Counting;

thread_local! {
    // `const` initialisers: reading these never allocates and registers no
    // destructor, so the allocator can use them.
    static MEASURING: Cell<bool> = const { Cell::new(false) };
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
    static FREES: Cell<u64> = const { Cell::new(0) };
}

fn note(counter: &'static std::thread::LocalKey<Cell<u64>>) {
    // `try_with`: the allocator also runs while thread-locals are torn down.
    if MEASURING.try_with(Cell::get).unwrap_or(false) {
        let _ = counter.try_with(|c| c.set(c.get() + 1));
    }
}

// SAFETY: every method forwards its arguments unchanged to `System`, which
// upholds `GlobalAlloc`'s contract; the only addition is a thread-local
// counter bump that neither allocates nor unwinds.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(&ALLOCS);
        System.alloc(layout)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(&ALLOCS);
        System.alloc_zeroed(layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(&ALLOCS);
        System.realloc(ptr, layout, new_size)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        note(&FREES);
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Heap operations seen in a measured region.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Heap {
    allocs: u64,
    frees: u64,
}

/// Runs `f` on this thread, counting its heap operations.
fn measure<R>(f: impl FnOnce() -> R) -> (R, Heap) {
    ALLOCS.with(|c| c.set(0));
    FREES.with(|c| c.set(0));
    MEASURING.with(|m| m.set(true));
    let r = f();
    MEASURING.with(|m| m.set(false));
    let heap = Heap {
        allocs: ALLOCS.with(Cell::get),
        frees: FREES.with(Cell::get),
    };
    (r, heap)
}

/// Read and write sizes, cycled: single bytes, odd sizes, whole buffers.
const PIECES: [usize; 8] = [1, 7, 64, 3, 333, 4096, 2, 1500];

/// What one echo run did.
#[derive(Debug)]
struct Run {
    frames_in: u64,
    echoed: usize,
    state: State,
}

/// Feeds `wire` to a connection that echoes every frame, until it closes
/// after EOF. Every transmitted byte is checked against `wire` in place (an
/// echo with the same codec reproduces the input exactly). Allocation-free
/// itself: everything it needs is passed in.
fn echo_run<D, E>(conn: &mut Connection<D, E, Vec<u8>, Vec<u8>>, wire: &[u8]) -> Run
where
    D: Decoder,
    E: Encoder,
{
    let mut now = Duration::ZERO;
    let mut fed = 0;
    let mut echoed = 0;
    let mut piece = 0;
    while !conn.is_closed() {
        now += Duration::from_micros(1);
        piece = (piece + 1) % PIECES.len();

        // 1. Read, or EOF once the input is all in.
        if fed == wire.len() {
            conn.handle_eof(now);
        } else if let Some(buf) = conn.read_buf() {
            let n = buf.len().min(PIECES[piece]).min(wire.len() - fed);
            buf[..n].copy_from_slice(&wire[fed..fed + n]);
            conn.handle_read(n, now);
            fed += n;
        }

        // 2. Echo every frame through the outbox.
        conn.poll_frames(|frame, out| {
            if out.send(frame).is_err() {
                panic!("reply refused");
            }
        });

        // 3. Write some of the queue (a socket that takes what it can).
        let (a, b) = conn.poll_transmit();
        let budget = PIECES[(piece + 3) % PIECES.len()];
        let n_a = a.len().min(budget);
        let n_b = b.len().min(budget - n_a);
        assert!(a[..n_a] == wire[echoed..echoed + n_a], "echo differs");
        echoed += n_a;
        assert!(b[..n_b] == wire[echoed..echoed + n_b], "echo differs");
        echoed += n_b;
        conn.handle_written(n_a + n_b, now);
    }
    Run {
        frames_in: conn.stats().frames_in,
        echoed,
        state: conn.state(),
    }
}

/// Builds a connection over heap buffers (allocated here, before the
/// measured region), encodes `payloads` into a wire image, then measures
/// the echo run.
fn check_zero_alloc<D, E>(dec: D, enc: E, rx: usize, tx: usize, payloads: &[Vec<u8>]) -> Run
where
    D: Decoder,
    E: Encoder,
{
    let mut wire = Vec::new();
    for p in payloads {
        enc.encode_with(p, |piece| wire.extend_from_slice(piece))
            .unwrap();
    }
    let bufs = Buffers {
        rx: vec![0u8; rx],
        tx: vec![0u8; tx],
    };
    let mut conn = Connection::new(dec, enc, bufs, Limits::default(), Duration::ZERO).unwrap();

    let (run, heap) = measure(|| echo_run(&mut conn, &wire));

    assert_eq!(
        heap,
        Heap {
            allocs: 0,
            frees: 0
        },
        "the echo run touched the heap"
    );
    assert_eq!(run.echoed, wire.len());
    assert_eq!(run.state, State::Closed(CloseReason::PeerClosed));
    run
}

/// `count` payloads of 0 to `max_len - 1` bytes drawn by `byte`.
fn payloads(
    seed: u64,
    count: usize,
    max_len: usize,
    mut byte: impl FnMut(&mut Rng) -> u8,
) -> Vec<Vec<u8>> {
    let mut rng = Rng::with_seed(seed);
    (0..count)
        .map(|_| {
            let len = rng.usize(..max_len);
            (0..len).map(|_| byte(&mut rng)).collect()
        })
        .collect()
}

#[test]
fn the_counter_sees_allocations_on_this_thread_only() {
    let (_, heap) = measure(|| drop(black_box(vec![1u8; 100])));
    assert!(heap.allocs >= 1 && heap.frees >= 1, "{heap:?}");

    // Outside the measured region nothing is counted.
    drop(black_box(vec![2u8; 100]));
    let (_, heap) = measure(|| black_box(3));
    assert_eq!(heap.allocs, 0);

    // Another thread allocating meanwhile is not counted here.
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    let busy = std::thread::spawn(move || {
        while stop_rx.try_recv().is_err() {
            drop(black_box(vec![4u8; 64]));
        }
    });
    let (_, heap) = measure(|| {
        let mut x = 0u64;
        for i in 0..100_000u64 {
            x = black_box(x.wrapping_add(i));
        }
        x
    });
    stop_tx.send(()).unwrap();
    busy.join().unwrap();
    assert_eq!(heap.allocs, 0);
}

#[test]
fn lines_echo_allocates_nothing() {
    // Any byte but LF and CR (a CR before the LF is stripped with it, so
    // the echo would differ from the input).
    let payloads = payloads(1, FRAMES, 120, |rng| loop {
        let b = rng.u8(..);
        if b != b'\n' && b != b'\r' {
            break b;
        }
    });
    let run = check_zero_alloc(
        DelimiterDecoder::lines(128).unwrap(),
        DelimiterEncoder::lines(128).unwrap(),
        128,
        256,
        &payloads,
    );
    assert_eq!(run.frames_in, FRAMES as u64);
}

#[test]
fn cobs_echo_allocates_nothing() {
    // Zeros are frequent, so the in-place unstuffing has work to do.
    let payloads = payloads(2, FRAMES, 120, |rng| {
        if rng.usize(..12) == 0 {
            0
        } else {
            rng.u8(..)
        }
    });
    let run = check_zero_alloc(
        CobsDecoder::new(128).unwrap(),
        CobsEncoder::new(128).unwrap(),
        128,
        256,
        &payloads,
    );
    assert_eq!(run.frames_in, FRAMES as u64);
}

#[test]
fn length_field_echo_allocates_nothing() {
    let cfg = LengthFieldConfig::new(2, Endian::Big).max_frame(128);
    let payloads = payloads(4, FRAMES, 127, |rng| rng.u8(..));
    let run = check_zero_alloc(
        LengthFieldDecoder::new(cfg).unwrap(),
        LengthFieldEncoder::new(cfg).unwrap(),
        128,
        256,
        &payloads,
    );
    assert_eq!(run.frames_in, FRAMES as u64);
}

#[test]
fn varint_echo_allocates_nothing() {
    // Payloads past 127 bytes need a two-byte prefix.
    let cfg = VarintConfig::new().max_frame(300);
    let payloads = payloads(5, FRAMES, 298, |rng| rng.u8(..));
    let run = check_zero_alloc(
        VarintDecoder::new(cfg).unwrap(),
        VarintEncoder::new(cfg).unwrap(),
        300,
        600,
        &payloads,
    );
    assert_eq!(run.frames_in, FRAMES as u64);
}

#[test]
fn fixed_echo_allocates_nothing() {
    let payloads: Vec<Vec<u8>> = (0..FRAMES).map(|i| vec![i as u8; 16]).collect();
    let run = check_zero_alloc(
        FixedDecoder::new(16).unwrap(),
        FixedEncoder::new(16).unwrap(),
        64,
        128,
        &payloads,
    );
    assert_eq!(run.frames_in, FRAMES as u64);
}

#[test]
fn raw_echo_allocates_nothing() {
    // Raw frames are whatever each read brought, cut to at most 8 bytes:
    // about 1.6 MB of input makes well over `FRAMES` of them.
    let payloads = payloads(3, 4 * FRAMES, 9, |rng| rng.u8(..));
    let run = check_zero_alloc(
        RawDecoder::new(8).unwrap(),
        RawEncoder::new(8).unwrap(),
        64,
        128,
        &payloads,
    );
    assert!(run.frames_in >= FRAMES as u64, "{run:?}");
}

/// Pushes in steady state: once the push queue has grown to its working
/// size, pushing 100 000 frames from "another thread" (here, in turn with
/// the driver's side) and moving them into the connection with
/// `handle_pushes`, then draining the ring, allocates nothing.
#[cfg(feature = "alloc")]
#[test]
fn pushes_allocate_nothing_in_steady_state() {
    use fastnet_proto::connection::PushQueue;
    let enc = LengthFieldEncoder::new(LengthFieldConfig::new(2, Endian::Big)).unwrap();
    let dec = LengthFieldDecoder::new(LengthFieldConfig::new(2, Endian::Big)).unwrap();
    let mut conn = Connection::new(
        dec,
        enc,
        Buffers {
            rx: vec![0u8; 65_537],
            tx: vec![0u8; 8192],
        },
        Limits::default(),
        Duration::ZERO,
    )
    .unwrap();
    let mut queue = PushQueue::new(16 * 1024, 8192);
    let payload = [7u8; 100];
    let cycle = |conn: &mut Connection<_, _, _, _>, queue: &mut PushQueue| {
        let mut pushed = 0;
        while queue.push(&enc, &payload).is_ok() {
            pushed += 1;
        }
        let mut moved = 0;
        while moved < pushed {
            moved += conn.handle_pushes(queue, Duration::ZERO);
            let n = {
                let (a, b) = conn.poll_transmit();
                a.len() + b.len()
            };
            conn.handle_written(n, Duration::ZERO);
        }
        pushed
    };
    // Warm up: the queue grows to its limit once.
    let warm = cycle(&mut conn, &mut queue);
    let (pushed, heap) = measure(|| {
        let mut total = 0;
        while total < FRAMES {
            total += cycle(&mut conn, &mut queue);
        }
        total
    });
    assert!(pushed >= FRAMES);
    assert_eq!(
        conn.stats().frames_out as usize,
        warm + pushed,
        "every push sent"
    );
    assert_eq!((heap.allocs, heap.frees), (0, 0), "{heap:?}");
}
