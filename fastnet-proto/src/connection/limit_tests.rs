//! Tests of the protective limits: the read timeout while an oversized
//! frame is skipped, the write-stall timeout, the wake budget, and
//! durations up to `Duration::MAX`.

use core::num::NonZeroU32;
use std::vec::Vec;

use super::*;
use crate::codec::{
    DelimiterDecoder, DelimiterEncoder, Endian, LengthFieldConfig, LengthFieldDecoder,
    LengthFieldEncoder, Oversize,
};

const MS: Duration = Duration::from_millis(1);

type Lines = Connection<DelimiterDecoder, DelimiterEncoder, [u8; 32], [u8; 64]>;

fn lines(limits: Limits) -> Lines {
    let dec = DelimiterDecoder::lines(32).unwrap();
    let enc = DelimiterEncoder::lines(32).unwrap();
    let bufs = Buffers {
        rx: [0; 32],
        tx: [0; 64],
    };
    Connection::new(dec, enc, bufs, limits, Duration::ZERO).unwrap()
}

type Prefixed = Connection<LengthFieldDecoder, LengthFieldEncoder, [u8; 16], [u8; 64]>;

/// A u32 big-endian length prefix counting the payload, 16-byte frames at
/// most, oversized frames skipped.
fn prefixed(limits: Limits) -> Prefixed {
    let cfg = LengthFieldConfig {
        max_frame: 16,
        oversize: Oversize::Skip,
        ..LengthFieldConfig::new(4, Endian::Big)
    };
    let dec = LengthFieldDecoder::new(cfg).unwrap();
    let enc = LengthFieldEncoder::new(cfg).unwrap();
    let bufs = Buffers {
        rx: [0; 16],
        tx: [0; 64],
    };
    Connection::new(dec, enc, bufs, limits, Duration::ZERO).unwrap()
}

fn echo<D: Decoder, E: Encoder, R, T>(conn: &mut Connection<D, E, R, T>) -> usize
where
    R: AsRef<[u8]> + AsMut<[u8]>,
    T: AsRef<[u8]> + AsMut<[u8]>,
{
    conn.poll_frames(|f, out| out.send(f).unwrap())
}

fn write<D: Decoder, E: Encoder, R, T>(
    conn: &mut Connection<D, E, R, T>,
    max: usize,
    now: Duration,
) -> Vec<u8>
where
    R: AsRef<[u8]> + AsMut<[u8]>,
    T: AsRef<[u8]> + AsMut<[u8]>,
{
    let (a, b) = conn.poll_transmit();
    let out: Vec<u8> = a.iter().chain(b).take(max).copied().collect();
    conn.handle_written(out.len(), now);
    out
}

// ---- the read timeout while skipping ----

#[test]
fn a_trickled_oversize_frame_under_skip_still_hits_the_read_timeout() {
    // Peer mistake: announce 1 MB, then send a byte now and then; each
    // byte is dropped as it comes, so nothing stays buffered.
    let mut c = prefixed(Limits {
        read_timeout: Some(100 * MS),
        ..Limits::default()
    });
    c.handle_bytes(&1_000_000u32.to_be_bytes(), MS);
    echo(&mut c);
    assert_eq!(c.stats().frames_skipped, 1);
    assert_eq!(c.rx_len(), 0);
    assert_eq!(
        c.poll_timeout(),
        Some(101 * MS),
        "the skip is a frame underway"
    );
    for t in (11..=91).step_by(10) {
        c.handle_bytes(b"z", t * MS);
        echo(&mut c);
        c.handle_timeout(t * MS);
        assert_eq!(c.state(), State::Open);
        assert_eq!(
            c.poll_timeout(),
            Some(101 * MS),
            "a trickle does not reset it"
        );
    }
    c.handle_timeout(101 * MS);
    assert_eq!(c.state(), State::Closed(CloseReason::ReadTimeout));
}

#[test]
fn a_trickled_oversize_line_under_skip_still_hits_the_read_timeout() {
    let dec = DelimiterDecoder::lines(8).unwrap().oversize(Oversize::Skip);
    let enc = DelimiterEncoder::lines(8).unwrap();
    let bufs = Buffers {
        rx: [0; 8],
        tx: [0; 64],
    };
    let limits = Limits {
        read_timeout: Some(100 * MS),
        ..Limits::default()
    };
    let mut c = Connection::new(dec, enc, bufs, limits, Duration::ZERO).unwrap();
    c.handle_bytes(b"0123456789", MS);
    echo(&mut c);
    for t in (10..=100).step_by(10) {
        c.handle_bytes(b"x", t * MS);
        echo(&mut c);
        c.handle_timeout(t * MS);
    }
    c.handle_timeout(101 * MS);
    assert_eq!(c.state(), State::Closed(CloseReason::ReadTimeout));
}

#[test]
fn the_read_timer_stops_when_the_skipped_frame_ends_and_restarts_with_the_next() {
    let mut c = prefixed(Limits {
        read_timeout: Some(100 * MS),
        ..Limits::default()
    });
    // A 20-byte payload (oversized), whole, then silence: nothing underway.
    let mut big = 20u32.to_be_bytes().to_vec();
    big.extend_from_slice(&[7; 20]);
    c.handle_bytes(&big[..16], MS);
    echo(&mut c);
    assert_eq!(c.poll_timeout(), Some(101 * MS));
    c.handle_bytes(&big[16..], 50 * MS);
    echo(&mut c);
    assert_eq!(c.poll_timeout(), None, "the skipped frame is over");
    // The rest of an oversized frame and the start of the next in one read:
    // the next frame's timer starts with that read.
    c.handle_bytes(&big[..16], 200 * MS);
    echo(&mut c);
    let mut tail = big[16..].to_vec();
    tail.extend_from_slice(&[0, 0, 0, 3, b'a']);
    c.handle_bytes(&tail, 250 * MS);
    echo(&mut c);
    assert_eq!(c.poll_timeout(), Some(350 * MS));
    c.handle_bytes(b"bc", 260 * MS);
    assert_eq!(echo(&mut c), 1);
    assert_eq!(c.poll_timeout(), None);
    assert_eq!(c.state(), State::Open);
}

// ---- the write-stall timeout ----

fn stalling(limits: Limits) -> Lines {
    lines(Limits {
        write_stall_timeout: Some(100 * MS),
        ..limits
    })
}

#[test]
fn a_reader_that_takes_nothing_is_closed_for_write_stall() {
    let mut c = stalling(Limits::default());
    assert_eq!(c.poll_timeout(), None, "nothing queued: no stall timer");
    c.handle_bytes(b"hello\n", 10 * MS);
    echo(&mut c);
    assert_eq!(c.poll_timeout(), Some(110 * MS));
    c.handle_timeout(109 * MS);
    assert_eq!(c.state(), State::Open);
    c.handle_timeout(110 * MS);
    assert_eq!(c.state(), State::Closed(CloseReason::WriteStall));
    assert!(CloseReason::WriteStall.is_violation());
    assert_eq!(CloseReason::WriteStall.name(), "write-stall");
}

#[test]
fn a_reader_taking_one_byte_per_period_is_closed_for_write_stall() {
    // Peer mistake: read one byte every 30 ms. Each byte resets the idle
    // timer (50 ms), so only the stall rule can end this.
    let mut c = stalling(Limits {
        idle_timeout: Some(50 * MS),
        ..Limits::default()
    });
    c.handle_bytes(b"0123456789\n", Duration::ZERO);
    echo(&mut c);
    let mut t = 0;
    while c.state() == State::Open {
        t += 30;
        c.handle_timeout(t * MS);
        if c.state() == State::Open {
            assert_eq!(write(&mut c, 1, t * MS).len(), 1);
        }
    }
    assert_eq!(c.state(), State::Closed(CloseReason::WriteStall));
    assert_eq!(t, 120, "closed at the first call past 100 ms");
    assert_eq!(c.stats().bytes_out, 3);
}

#[test]
fn a_reader_that_keeps_up_is_not_closed_however_busy_the_queue() {
    // The queue never empties (two replies always wait), but every byte
    // queued when the timer starts leaves within 100 ms.
    let mut c = stalling(Limits::default());
    c.handle_bytes(b"abcdefgh\nabcdefgh\n", Duration::ZERO);
    echo(&mut c);
    for step in 1..100u32 {
        let now = step * 30 * MS;
        c.handle_bytes(b"abcdefgh\n", now);
        assert_eq!(echo(&mut c), 1);
        assert_eq!(write(&mut c, 9, now).len(), 9);
        c.handle_timeout(now);
        assert_eq!(c.state(), State::Open, "step {step}");
        assert_eq!(c.tx_len(), 18);
    }
}

#[test]
fn a_drained_queue_disarms_the_stall_timer() {
    let mut c = stalling(Limits::default());
    c.handle_bytes(b"abc\n", MS);
    echo(&mut c);
    assert_eq!(write(&mut c, 2, 50 * MS), b"ab");
    assert_eq!(c.poll_timeout(), Some(101 * MS), "part of what is owed");
    assert_eq!(write(&mut c, 10, 60 * MS), b"c\n");
    assert_eq!(c.poll_timeout(), None);
    // A reply queued later starts a timer of its own.
    c.handle_bytes(b"d\n", 500 * MS);
    echo(&mut c);
    assert_eq!(c.poll_timeout(), Some(600 * MS));
}

#[test]
fn the_stall_timer_restarts_over_what_is_queued_when_the_owed_bytes_leave() {
    let mut c = stalling(Limits::default());
    c.handle_bytes(b"aaaa\n", Duration::ZERO);
    echo(&mut c);
    c.handle_bytes(b"bbbbbbb\n", 50 * MS);
    echo(&mut c);
    // 5 owed (the first reply); 8 more queued after the timer started.
    assert_eq!(write(&mut c, 5, 90 * MS), b"aaaa\n");
    assert_eq!(c.poll_timeout(), Some(190 * MS));
    assert_eq!(write(&mut c, 7, 180 * MS), b"bbbbbbb");
    c.handle_timeout(190 * MS);
    assert_eq!(c.state(), State::Closed(CloseReason::WriteStall));
}

#[test]
fn pushes_arm_the_stall_timer_too() {
    let mut c = stalling(Limits::default());
    c.send(b"pushed").unwrap();
    assert_eq!(c.poll_timeout(), Some(100 * MS));
    #[cfg(feature = "alloc")]
    {
        let mut c = stalling(Limits::default());
        let mut q = PushQueue::new(1024, 64);
        q.push(c.encoder(), b"pushed").unwrap();
        c.handle_pushes(&mut q, 40 * MS);
        assert_eq!(c.poll_timeout(), Some(140 * MS));
    }
}

#[test]
fn a_stalled_close_keeps_its_reason_and_its_drain_timeout() {
    let mut c = stalling(Limits {
        drain_timeout: Some(30 * MS),
        ..Limits::default()
    });
    c.handle_bytes(b"x\n", Duration::ZERO);
    echo(&mut c);
    c.handle_timeout(10 * MS);
    c.close();
    assert_eq!(
        c.poll_timeout(),
        Some(40 * MS),
        "the drain deadline is earlier"
    );
    c.handle_timeout(40 * MS);
    assert_eq!(c.state(), State::Closed(CloseReason::Local));
    // With a longer drain timeout the stall ends the drain first, and the
    // close keeps the reason it had.
    let mut c = stalling(Limits {
        drain_timeout: Some(1000 * MS),
        ..Limits::default()
    });
    c.handle_bytes(b"x\n", Duration::ZERO);
    echo(&mut c);
    c.close();
    assert_eq!(c.poll_timeout(), Some(100 * MS));
    c.handle_timeout(100 * MS);
    assert_eq!(c.state(), State::Closed(CloseReason::Local));
}

#[test]
fn when_idle_and_stall_are_both_due_the_earlier_wins() {
    let mut c = stalling(Limits {
        idle_timeout: Some(50 * MS),
        ..Limits::default()
    });
    c.handle_bytes(b"x\n", Duration::ZERO);
    echo(&mut c);
    c.handle_timeout(1000 * MS);
    assert_eq!(c.state(), State::Closed(CloseReason::IdleTimeout));
}

// ---- the wake budget ----

#[test]
fn a_spent_budget_holds_frames_and_reads_until_the_next_wake() {
    let mut c = lines(Limits {
        wake_budget: NonZeroU32::new(4),
        tx_high_water: Some(64),
        tx_low_water: Some(0),
        ..Limits::default()
    });
    assert!(!c.should_yield());
    // The read costs one, then three frames of ten.
    assert_eq!(c.handle_bytes(b"0\n1\n2\n3\n4\n5\n6\n7\n8\n9\n", MS), 20);
    assert_eq!(echo(&mut c), 3);
    assert!(c.should_yield());
    assert!(!c.wants_poll());
    assert!(c.read_buf().is_none());
    assert!(c.wants_read(), "the connection still wants input");
    let mut out = write(&mut c, 64, MS);
    let mut wakes = 1;
    while c.rx_len() > 0 {
        c.begin_wake();
        wakes += 1;
        assert!(!c.should_yield());
        assert!(echo(&mut c) <= 4);
        out.extend(write(&mut c, 64, MS));
    }
    assert_eq!(out, b"0\n1\n2\n3\n4\n5\n6\n7\n8\n9\n");
    assert_eq!(wakes, 3);
    c.begin_wake();
    assert!(c.read_buf().is_some());
}

#[test]
fn reads_of_a_skipped_frame_spend_the_budget() {
    // Skipping produces no frame; the reads still count.
    let mut c = prefixed(Limits {
        wake_budget: NonZeroU32::new(3),
        ..Limits::default()
    });
    let mut reads = 0;
    c.handle_bytes(&u32::MAX.to_be_bytes(), MS);
    echo(&mut c);
    while let Some(buf) = c.read_buf() {
        let n = buf.len();
        c.handle_read(n, MS);
        echo(&mut c);
        reads += 1;
    }
    assert!(c.should_yield());
    assert!(reads <= 2);
}

#[test]
fn without_a_budget_nothing_asks_to_yield() {
    let mut c = lines(Limits::default());
    for _ in 0..100 {
        c.handle_bytes(b"a\n", MS);
        echo(&mut c);
        write(&mut c, 64, MS);
        assert!(!c.should_yield());
    }
    assert_eq!(c.stats().frames_in, 100);
}

// ---- durations ----

const EVERY_DURATION_MAX: Limits = Limits {
    idle_timeout: Some(Duration::MAX),
    read_timeout: Some(Duration::MAX),
    write_stall_timeout: Some(Duration::MAX),
    drain_timeout: Some(Duration::MAX),
    max_bytes_in: Some(u64::MAX),
    tx_high_water: None,
    tx_low_water: None,
    skip_malformed: true,
    wake_budget: NonZeroU32::new(u32::MAX),
};

/// Drives a connection through every timer at `times`: partial frames,
/// queued replies, a close, timeouts; nothing may panic and a timer that
/// cannot be reached never fires.
fn run_through(limits: Limits, times: &[Duration]) -> State {
    let mut c = lines(limits);
    for &now in times {
        c.handle_bytes(b"ab\ncd", now);
        echo(&mut c);
        let _ = c.poll_timeout();
        c.handle_timeout(now);
        write(&mut c, 1, now);
        c.handle_timeout(now);
        let _ = c.poll_timeout();
    }
    c.close();
    for &now in times {
        c.handle_timeout(now);
        let _ = c.poll_timeout();
    }
    c.handle_timeout(Duration::MAX);
    c.state()
}

#[test]
fn duration_max_in_every_setting_never_panics_and_never_fires() {
    assert_eq!(EVERY_DURATION_MAX.validate(), Ok(()));
    let times = [
        Duration::ZERO,
        MS,
        Duration::from_secs(u64::MAX / 2),
        Duration::MAX - MS,
        Duration::MAX,
    ];
    // Each setting alone, then all at once, then with the clock starting
    // at the end of time.
    let alone = [
        Limits {
            idle_timeout: Some(Duration::MAX),
            ..Limits::default()
        },
        Limits {
            read_timeout: Some(Duration::MAX),
            ..Limits::default()
        },
        Limits {
            write_stall_timeout: Some(Duration::MAX),
            ..Limits::default()
        },
        Limits {
            drain_timeout: Some(Duration::MAX),
            ..Limits::default()
        },
        EVERY_DURATION_MAX,
    ];
    for limits in alone {
        run_through(limits, &times);
    }
    let mut c = lines(EVERY_DURATION_MAX);
    c.handle_bytes(b"x\ny", MS);
    echo(&mut c);
    // From 1 ms, every deadline lies past the end of time: none is armed.
    assert_eq!(c.poll_timeout(), None);
    c.handle_timeout(Duration::MAX);
    assert_eq!(c.state(), State::Open);
    let bufs = Buffers {
        rx: [0u8; 32],
        tx: [0u8; 64],
    };
    let dec = DelimiterDecoder::lines(32).unwrap();
    let enc = DelimiterEncoder::lines(32).unwrap();
    let mut c = Connection::new(dec, enc, bufs, EVERY_DURATION_MAX, Duration::MAX).unwrap();
    c.handle_bytes(b"x\ny", Duration::MAX);
    echo(&mut c);
    c.handle_timeout(Duration::MAX);
    assert_eq!(c.poll_timeout(), None);
    c.reset(Duration::MAX);
    assert_eq!(c.state(), State::Open);
}

#[test]
fn short_timeouts_near_the_end_of_time_do_not_panic() {
    let limits = Limits {
        idle_timeout: Some(10 * MS),
        read_timeout: Some(10 * MS),
        write_stall_timeout: Some(10 * MS),
        drain_timeout: Some(10 * MS),
        ..Limits::default()
    };
    let end = [Duration::MAX - 5 * MS, Duration::MAX - MS, Duration::MAX];
    run_through(limits, &end);
    let early = [Duration::ZERO, 5 * MS, Duration::MAX];
    assert!(matches!(run_through(limits, &early), State::Closed(_)));
}

#[test]
fn validate_names_the_setting_that_cannot_work() {
    let cases: [(Limits, &str); 7] = [
        (
            Limits {
                idle_timeout: Some(Duration::ZERO),
                ..Limits::default()
            },
            "idle_timeout",
        ),
        (
            Limits {
                read_timeout: Some(Duration::ZERO),
                ..Limits::default()
            },
            "read_timeout",
        ),
        (
            Limits {
                write_stall_timeout: Some(Duration::ZERO),
                ..Limits::default()
            },
            "write_stall_timeout",
        ),
        (
            Limits {
                drain_timeout: Some(Duration::ZERO),
                ..Limits::default()
            },
            "drain_timeout",
        ),
        (
            Limits {
                max_bytes_in: Some(0),
                ..Limits::default()
            },
            "max_bytes_in",
        ),
        (
            Limits {
                tx_high_water: Some(0),
                ..Limits::default()
            },
            "tx_high_water",
        ),
        (
            Limits {
                tx_high_water: Some(8),
                tx_low_water: Some(9),
                ..Limits::default()
            },
            "tx_low_water",
        ),
    ];
    for (limits, field) in cases {
        let Err(Error::InvalidConfig { reason }) = limits.validate() else {
            panic!("{field}: accepted");
        };
        assert!(
            reason.starts_with(&std::format!("limits.{field} ")),
            "{reason}"
        );
        let dec = DelimiterDecoder::lines(32).unwrap();
        let enc = DelimiterEncoder::lines(32).unwrap();
        let bufs = Buffers {
            rx: [0u8; 32],
            tx: [0u8; 64],
        };
        assert!(Connection::new(dec, enc, bufs, limits, MS).is_err());
    }
    assert_eq!(Limits::default().validate(), Ok(()));
    assert_eq!(
        crate::server::ServerConfig::new(crate::codec::CodecSpec::lines(64))
            .limits
            .validate(),
        Ok(())
    );
}

#[cfg(feature = "alloc")]
proptest::proptest! {
    /// Whatever the codec, limits, bytes, pushes, parking, wakes and clock
    /// jumps, the connection keeps its invariants (see `stress`).
    #[test]
    fn any_connection_keeps_its_invariants(
        data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..800),
    ) {
        super::stress::run(&data);
    }
}

/// The committed `connection` fuzz seeds written for `stress`, replayed.
#[cfg(feature = "alloc")]
#[test]
fn stress_seeds_keep_the_invariants() {
    let seeds: [&[u8]; 7] = [
        include_bytes!("../../../fuzz/seeds/connection/stress_skip_trickle"),
        include_bytes!("../../../fuzz/seeds/connection/stress_slow_reader"),
        include_bytes!("../../../fuzz/seeds/connection/stress_budget"),
        include_bytes!("../../../fuzz/seeds/connection/stress_push_park"),
        include_bytes!("../../../fuzz/seeds/connection/stress_time_jumps"),
        // The clock jumps to `Duration::MAX` with a frame half in: deadlines
        // counted from the end of time never come (a saturated clock once
        // made them due at once, and due again after firing).
        include_bytes!("../../../fuzz/seeds/connection/stress_end_of_time"),
        // Bytes queued at a clock past the representable range (about 584
        // years): the end of time, untimed, and the checks know it.
        include_bytes!("../../../fuzz/seeds/connection/stress_past_clock_range"),
    ];
    for seed in seeds {
        super::stress::run(seed);
    }
}

#[test]
fn limits_setters_set_their_field() {
    // Built in a `const`, so the setters stay usable there. The literal
    // names every field, so a new limit without a setter fails here.
    const SET: Limits = Limits::none()
        .idle_timeout(Some(Duration::from_secs(1)))
        .read_timeout(Some(Duration::from_secs(2)))
        .write_stall_timeout(Some(Duration::from_secs(3)))
        .max_bytes_in(Some(4))
        .tx_high_water(Some(5))
        .tx_low_water(Some(6))
        .drain_timeout(Some(Duration::from_secs(7)))
        .skip_malformed(true)
        .wake_budget(NonZeroU32::new(8));
    let want = Limits {
        idle_timeout: Some(Duration::from_secs(1)),
        read_timeout: Some(Duration::from_secs(2)),
        write_stall_timeout: Some(Duration::from_secs(3)),
        max_bytes_in: Some(4),
        tx_high_water: Some(5),
        tx_low_water: Some(6),
        drain_timeout: Some(Duration::from_secs(7)),
        skip_malformed: true,
        wake_budget: NonZeroU32::new(8),
    };
    assert_eq!(SET, want);
    assert_eq!(Limits::none(), Limits::default());
}
