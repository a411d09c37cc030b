//! State machine tests: one per close reason, backpressure, and a
//! model-based property test with a virtual clock.

use std::vec::Vec;

use proptest::prelude::*;

use super::*;
use crate::codec::{DelimiterDecoder, DelimiterEncoder, Frame, Oversize};
use crate::DecodeError;

type Lines = Connection<DelimiterDecoder, DelimiterEncoder, [u8; 32], [u8; 64]>;

const MS: Duration = Duration::from_millis(1);

fn lines(limits: Limits) -> Lines {
    let dec = DelimiterDecoder::lines(32).unwrap();
    let enc = DelimiterEncoder::lines(32).unwrap();
    Connection::new(
        dec,
        enc,
        Buffers {
            rx: [0; 32],
            tx: [0; 64],
        },
        limits,
        Duration::ZERO,
    )
    .unwrap()
}

/// Echoes every frame.
fn echo<D: Decoder, E: Encoder, R, T>(conn: &mut Connection<D, E, R, T>) -> usize
where
    R: AsRef<[u8]> + AsMut<[u8]>,
    T: AsRef<[u8]> + AsMut<[u8]>,
{
    conn.poll_frames(|f, out| out.send(f).unwrap())
}

/// Writes everything queued (a peer that reads promptly).
fn flush<D: Decoder, E: Encoder, R, T>(conn: &mut Connection<D, E, R, T>, now: Duration) -> Vec<u8>
where
    R: AsRef<[u8]> + AsMut<[u8]>,
    T: AsRef<[u8]> + AsMut<[u8]>,
{
    let (a, b) = conn.poll_transmit();
    let out: Vec<u8> = a.iter().chain(b).copied().collect();
    conn.handle_written(out.len(), now);
    out
}

#[test]
fn bytes_arriving_with_eof_are_processed_then_closed() {
    // Peer mistake: bytes that arrive together with EOF are dropped.
    let mut c = lines(Limits::default());
    assert_eq!(c.handle_bytes(b"a\nb\nunfinished", MS), 14);
    c.handle_eof(MS);
    assert!(!c.wants_read());
    assert_eq!(echo(&mut c), 2);
    assert_eq!(c.state(), State::Draining(CloseReason::PeerClosed));
    assert_eq!(flush(&mut c, MS), b"a\nb\n");
    assert_eq!(c.state(), State::Closed(CloseReason::PeerClosed));
    assert_eq!(c.poll_timeout(), None);
}

#[test]
fn eof_with_nothing_queued_closes_at_once() {
    let mut c = lines(Limits::default());
    c.handle_eof(MS);
    echo(&mut c);
    assert_eq!(c.state(), State::Closed(CloseReason::PeerClosed));
}

#[test]
fn idle_timeout_fires_exactly_when_due() {
    let mut c = lines(Limits {
        idle_timeout: Some(100 * MS),
        ..Limits::default()
    });
    assert_eq!(c.poll_timeout(), Some(100 * MS));
    c.handle_bytes(b"x\n", 30 * MS);
    echo(&mut c);
    flush(&mut c, 40 * MS);
    assert_eq!(c.poll_timeout(), Some(140 * MS));
    c.handle_timeout(139 * MS);
    assert_eq!(c.state(), State::Open);
    c.handle_timeout(140 * MS);
    assert_eq!(c.state(), State::Closed(CloseReason::IdleTimeout));
}

#[test]
fn read_timeout_is_not_reset_by_a_trickle() {
    // Peer mistake: a "read timeout" that is really an idle timeout.
    let limits = Limits {
        idle_timeout: Some(50 * MS),
        read_timeout: Some(100 * MS),
        ..Limits::default()
    };
    let mut c = lines(limits);
    c.handle_bytes(b"ok\n", MS);
    echo(&mut c);
    assert_eq!(
        c.poll_timeout(),
        Some(51 * MS),
        "no partial frame: only the idle timer"
    );
    // One byte every 30 ms keeps the idle timer alive...
    for t in [10, 40, 70, 100] {
        c.handle_bytes(b"z", t * MS);
        echo(&mut c);
        c.handle_timeout(t * MS);
        assert_eq!(c.state(), State::Open);
    }
    // ...but the frame started at 10 ms must finish by 110 ms.
    assert_eq!(c.poll_timeout(), Some(110 * MS));
    c.handle_timeout(110 * MS);
    // The reply to "ok" is still queued, so it is flushed first.
    assert_eq!(c.state(), State::Draining(CloseReason::ReadTimeout));
    assert_eq!(flush(&mut c, 110 * MS), b"ok\n");
    assert_eq!(c.state(), State::Closed(CloseReason::ReadTimeout));
}

#[test]
fn completing_the_frame_disarms_the_read_timer() {
    let mut c = lines(Limits {
        read_timeout: Some(100 * MS),
        ..Limits::default()
    });
    c.handle_bytes(b"par", MS);
    echo(&mut c);
    assert_eq!(c.poll_timeout(), Some(101 * MS));
    c.handle_bytes(b"t\nne", 50 * MS);
    echo(&mut c);
    // The next frame began at 50 ms.
    assert_eq!(c.poll_timeout(), Some(150 * MS));
    c.handle_bytes(b"xt\n", 60 * MS);
    echo(&mut c);
    assert_eq!(c.poll_timeout(), None);
}

#[test]
fn oversize_frame_closes_after_earlier_replies_are_flushed() {
    let mut c = lines(Limits::default());
    c.handle_bytes(b"hi\n", MS);
    c.handle_bytes(&[b'x'; 29], MS);
    assert_eq!(echo(&mut c), 1);
    assert_eq!(c.state(), State::Open, "29 bytes could still end within 32");
    c.handle_bytes(b"xxx", MS);
    assert_eq!(echo(&mut c), 0);
    assert_eq!(c.state(), State::Draining(CloseReason::FrameTooLarge));
    assert!(!c.wants_read());
    assert_eq!(flush(&mut c, MS), b"hi\n");
    assert_eq!(c.state(), State::Closed(CloseReason::FrameTooLarge));
}

#[test]
fn oversize_frame_is_skipped_under_skip_policy() {
    let dec = DelimiterDecoder::lines(8).unwrap().oversize(Oversize::Skip);
    let enc = DelimiterEncoder::lines(8).unwrap();
    let mut c = Connection::new(
        dec,
        enc,
        Buffers {
            rx: [0; 8],
            tx: [0; 64],
        },
        Limits::default(),
        MS,
    )
    .unwrap();
    let mut got = Vec::new();
    for chunk in [&b"a\n0123456"[..], b"789abcdef", b"\nb\n"] {
        c.handle_bytes(chunk, MS);
        echo(&mut c);
        got.extend(flush(&mut c, MS));
    }
    assert_eq!(got, b"a\nb\n");
    assert_eq!(c.stats().frames_skipped, 1);
    assert_eq!(c.state(), State::Open);
}

#[test]
fn byte_limit_processes_frames_within_the_limit_then_closes() {
    let mut c = lines(Limits {
        max_bytes_in: Some(6),
        ..Limits::default()
    });
    assert_eq!(
        c.read_buf().unwrap().len(),
        7,
        "at most the allowance plus one byte"
    );
    c.handle_bytes(b"ab\ncd\nef\n", MS);
    assert_eq!(c.stats().bytes_in, 6);
    assert!(!c.wants_read());
    assert_eq!(echo(&mut c), 2);
    assert_eq!(flush(&mut c, MS), b"ab\ncd\n");
    assert_eq!(c.state(), State::Closed(CloseReason::ByteLimit));
}

/// Fails on the byte b'!' (a stand-in for any malformed input).
#[derive(Debug)]
struct Picky;

impl Decoder for Picky {
    fn decode(&mut self, src: &mut [u8]) -> Result<Decoded, DecodeError> {
        match src.first() {
            None => Ok(Decoded::NeedMore { frame_len: None }),
            Some(b'!') => Err(DecodeError::fatal(Error::VarintOverflow)),
            Some(_) => Ok(Decoded::Frame(Frame {
                consumed: 1,
                start: 0,
                end: 1,
            })),
        }
    }
    fn reset(&mut self) {}
    fn max_frame(&self) -> usize {
        1
    }
}

#[test]
fn protocol_error_closes_with_the_decoder_error() {
    let enc = crate::codec::RawEncoder::new(8).unwrap();
    let mut c = Connection::new(
        Picky,
        enc,
        Buffers {
            rx: [0; 8],
            tx: [0; 8],
        },
        Limits::default(),
        MS,
    )
    .unwrap();
    c.handle_bytes(b"ab!cd", MS);
    assert_eq!(echo(&mut c), 2, "frames before the bad byte are delivered");
    assert_eq!(
        c.state(),
        State::Draining(CloseReason::Protocol(Error::VarintOverflow))
    );
    assert_eq!(flush(&mut c, MS), b"ab");
    assert_eq!(
        c.state(),
        State::Closed(CloseReason::Protocol(Error::VarintOverflow))
    );
    assert_eq!(
        std::format!("{}", CloseReason::Protocol(Error::VarintOverflow)),
        "protocol error: varint length prefix overflows 64 bits"
    );
}

#[test]
fn local_close_from_the_handler_flushes_first() {
    let mut c = lines(Limits::default());
    c.handle_bytes(b"bye\nignored\n", MS);
    let n = c.poll_frames(|f, out| {
        out.send(f).unwrap();
        out.close();
    });
    assert_eq!(n, 1, "no frame is handed out after close");
    assert_eq!(c.state(), State::Draining(CloseReason::Local));
    assert_eq!(c.send(b"late"), Err(Error::ConnectionClosed));
    assert_eq!(flush(&mut c, MS), b"bye\n");
    assert_eq!(c.state(), State::Closed(CloseReason::Local));
}

#[test]
fn close_abort_and_reset() {
    let mut c = lines(Limits::default());
    c.close();
    assert_eq!(c.state(), State::Closed(CloseReason::Local));

    let mut c = lines(Limits::default());
    c.send(b"queued").unwrap();
    c.close();
    assert_eq!(c.state(), State::Draining(CloseReason::Local));
    c.abort();
    assert_eq!(c.state(), State::Closed(CloseReason::Local));
    assert_eq!(c.poll_transmit(), (&b""[..], &b""[..]));

    let mut c = lines(Limits::default());
    c.handle_reset();
    assert_eq!(c.state(), State::Closed(CloseReason::Reset));
    c.reset(MS);
    assert_eq!(c.state(), State::Open);
    assert!(c.wants_read());
}

#[test]
fn backpressure_stops_reading_at_high_water_and_resumes_at_low_water() {
    // tx 64: high water 32, low water 16. Each reply is 8 bytes.
    let mut c = lines(Limits::default());
    let mut offered = 0;
    for _ in 0..10 {
        if c.handle_bytes(b"1234567\n", MS) == 8 {
            offered += 1;
        }
        echo(&mut c);
    }
    assert_eq!(c.tx_len(), 32);
    assert!(c.is_backpressured());
    assert!(!c.wants_read());
    assert!(c.read_buf().is_none());
    assert_eq!(
        offered, 4,
        "input stops once replies reach the high-water mark"
    );
    // The peer drains 8 bytes: 24 > low water, still paused.
    c.handle_written(8, MS);
    assert!(!c.wants_read());
    c.handle_written(8, MS);
    assert!(c.wants_read(), "resumes at the low-water mark");
    assert_eq!(c.handle_bytes(b"1234567\n", MS), 8);
    assert_eq!(echo(&mut c), 1);
}

#[test]
fn frames_wait_in_rx_while_paused() {
    let mut c = lines(Limits {
        tx_high_water: Some(8),
        tx_low_water: Some(0),
        ..Limits::default()
    });
    c.handle_bytes(b"1234567\nabc\n", MS);
    assert_eq!(echo(&mut c), 1);
    assert_eq!(c.rx_len(), 4);
    assert_eq!(echo(&mut c), 0, "paused");
    assert_eq!(flush(&mut c, MS), b"1234567\n");
    assert_eq!(echo(&mut c), 1);
    assert_eq!(flush(&mut c, MS), b"abc\n");
}

#[test]
fn reply_too_big_for_the_queue_is_an_error_the_handler_sees() {
    let dec = DelimiterDecoder::lines(32).unwrap();
    let enc = DelimiterEncoder::lines(32).unwrap();
    let mut c = Connection::new(
        dec,
        enc,
        Buffers {
            rx: [0; 32],
            tx: [0; 4],
        },
        Limits::default(),
        MS,
    )
    .unwrap();
    c.handle_bytes(b"toolong\n", MS);
    let mut err = None;
    c.poll_frames(|f, out| err = out.send(f).err());
    assert_eq!(
        err,
        Some(Error::BufferTooSmall {
            needed: 8,
            capacity: 4
        })
    );
    assert_eq!(c.tx_len(), 0, "nothing half-queued");
}

#[test]
fn bad_configurations_are_refused() {
    let dec = DelimiterDecoder::lines(32).unwrap();
    let enc = DelimiterEncoder::lines(32).unwrap();
    let small_rx = Connection::new(
        dec,
        enc,
        Buffers {
            rx: [0; 16],
            tx: [0; 64],
        },
        Limits::default(),
        MS,
    );
    assert!(matches!(small_rx, Err(Error::InvalidConfig { .. })));
    let bad_marks = Limits {
        tx_high_water: Some(10),
        tx_low_water: Some(20),
        ..Limits::default()
    };
    let c = Connection::new(
        dec,
        enc,
        Buffers {
            rx: [0; 32],
            tx: [0; 64],
        },
        bad_marks,
        MS,
    );
    assert!(matches!(c, Err(Error::InvalidConfig { .. })));
}

#[test]
fn ring_wraps_and_transmit_is_two_slices() {
    let mut c = lines(Limits {
        tx_high_water: Some(64),
        tx_low_water: Some(32),
        ..Limits::default()
    });
    c.handle_bytes(b"0123456789012345678901234567890\n", MS); // 32-byte reply
    echo(&mut c);
    c.handle_bytes(b"abcdefg\n", MS); // 8 more
    echo(&mut c);
    c.handle_written(30, MS);
    c.handle_bytes(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ01234\n", MS); // 32 more: wraps
    echo(&mut c);
    let (a, b) = c.poll_transmit();
    assert_eq!(a.len(), 34);
    assert_eq!(b.len(), 8);
    let all: Vec<u8> = a.iter().chain(b).copied().collect();
    assert_eq!(all, b"0\nabcdefg\nABCDEFGHIJKLMNOPQRSTUVWXYZ01234\n");
}

#[test]
fn park_and_unpark_swap_storage_only_when_idle() {
    type Boxed = Connection<
        DelimiterDecoder,
        DelimiterEncoder,
        std::boxed::Box<[u8]>,
        std::boxed::Box<[u8]>,
    >;
    let dec = DelimiterDecoder::lines(32).unwrap();
    let enc = DelimiterEncoder::lines(32).unwrap();
    let real = || Buffers {
        rx: std::vec![0u8; 32].into_boxed_slice(),
        tx: std::vec![0u8; 64].into_boxed_slice(),
    };
    let empty = || Buffers {
        rx: std::boxed::Box::default(),
        tx: std::boxed::Box::default(),
    };
    let mut c: Boxed = Connection::new(dec, enc, real(), Limits::default(), MS).unwrap();
    c.handle_bytes(b"part", MS);
    assert!(
        c.park(empty()).is_err(),
        "a partial frame holds the storage"
    );
    c.handle_bytes(b"ial\n", MS);
    echo(&mut c);
    assert!(c.park(empty()).is_err(), "a queued reply holds the storage");
    assert_eq!(flush(&mut c, MS), b"partial\n");
    let pooled = c.park(empty()).unwrap();
    assert_eq!(pooled.rx.len(), 32);
    assert!(c.is_parked());
    assert!(c.wants_read(), "still open and interested");
    assert!(c.read_buf().is_none(), "but has nowhere to read into");
    assert!(c.send(b"x").is_err());
    assert!(
        c.unpark(empty()).is_err(),
        "placeholder storage is too small"
    );
    c.unpark(pooled).unwrap();
    c.handle_bytes(b"again\n", MS);
    echo(&mut c);
    assert_eq!(flush(&mut c, MS), b"again\n");
}

#[test]
fn wants_poll_tracks_unprocessed_input() {
    let mut c = lines(Limits::default());
    assert!(!c.wants_poll());
    c.handle_bytes(b"a", MS);
    assert!(c.wants_poll());
    c.handle_eof(MS);
    echo(&mut c);
    assert!(!c.wants_poll());
}

// ---- model-based property test ----

use super::model::{self, Op};

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => proptest::collection::vec(prop_oneof![Just(b'a'), Just(b'b'), Just(b'\n')], 0..24)
            .prop_map(Op::Send),
        3 => (0usize..48).prop_map(Op::Write),
        2 => (0u64..60).prop_map(Op::Advance),
        1 => Just(Op::Eof),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(if cfg!(miri) { 8 } else { 512 }))]

    #[test]
    fn connection_matches_the_reference_model(ops in proptest::collection::vec(op(), 0..80)) {
        model::check(&ops);
    }
}

#[test]
fn poll_frame_lends_one_frame_at_a_time() {
    let mut c = lines(Limits::default());
    c.handle_bytes(b"a\nbb\nccc", MS);
    let mut seen = Vec::new();
    while let Some(mut f) = c.poll_frame() {
        let payload = f.payload().to_vec();
        // Replies queued through the guard, as an async handler would
        // between awaits.
        f.send(&payload).unwrap();
        f.send(b"+").unwrap();
        seen.push(payload);
    }
    assert_eq!(seen, [b"a".to_vec(), b"bb".to_vec()]);
    assert_eq!(c.rx_len(), 3, "the partial frame stays");
    assert_eq!(c.stats().frames_in, 2);
    assert_eq!(flush(&mut c, MS), b"a\n+\nbb\n+\n");
}

#[test]
fn take_stats_hands_out_the_counters_since_the_last_take() {
    let mut c = lines(Limits::default());
    c.handle_bytes(b"a\nbb\n", MS);
    while let Some(mut f) = c.poll_frame() {
        let payload = f.payload().to_vec();
        f.send(&payload).unwrap();
    }
    let first = c.take_stats();
    assert_eq!(
        (first.bytes_in, first.frames_in, first.frames_out),
        (5, 2, 2)
    );
    assert_eq!(*c.stats(), ConnStats::default(), "taken: zero");
    c.handle_bytes(b"ccc\n", MS);
    assert!(c.poll_frame().is_some());
    let second = c.take_stats();
    assert_eq!(
        (second.bytes_in, second.frames_in, second.frames_out),
        (4, 1, 0)
    );
}

#[test]
fn a_frame_is_consumed_only_when_its_guard_drops() {
    let mut c = lines(Limits::default());
    c.handle_bytes(b"x\ny\n", MS);
    let f = c.poll_frame().unwrap();
    assert_eq!(f.payload(), b"x");
    drop(f);
    let mut f = c.poll_frame().unwrap();
    assert_eq!(f.payload(), b"y");
    f.close();
    drop(f);
    assert_eq!(c.state(), State::Closed(CloseReason::Local));
    assert!(c.poll_frame().is_none());
}

#[test]
fn wants_poll_is_false_until_new_bytes_after_need_more() {
    let mut c = lines(Limits::default());
    c.handle_bytes(b"part", MS);
    assert!(c.wants_poll());
    assert_eq!(echo(&mut c), 0);
    assert!(!c.wants_poll(), "the decoder already said it needs more");
    c.handle_bytes(b"ial\n", MS);
    assert!(c.wants_poll());
    assert_eq!(echo(&mut c), 1);
    c.handle_eof(MS);
    assert!(c.wants_poll(), "an EOF to act on");
}

#[test]
fn malformed_frames_close_unless_skip_malformed() {
    use crate::codec::{CobsDecoder, CobsEncoder};
    let wire = b"\x02a\x00\x05bad\x00\x02b\x00";
    for (skip, want_out, want_state) in [
        (
            false,
            &b"\x02a\x00"[..],
            State::Closed(CloseReason::Protocol(Error::InvalidCobs {
                pos: 0,
                code: 5,
            })),
        ),
        (true, &b"\x02a\x00\x02b\x00"[..], State::Open),
    ] {
        let limits = Limits {
            skip_malformed: skip,
            ..Limits::default()
        };
        let bufs = Buffers {
            rx: [0u8; 32],
            tx: [0u8; 64],
        };
        let mut c = Connection::new(
            CobsDecoder::new(32).unwrap(),
            CobsEncoder::new(32).unwrap(),
            bufs,
            limits,
            MS,
        )
        .unwrap();
        c.handle_bytes(wire, MS);
        echo(&mut c);
        assert_eq!(flush(&mut c, MS), want_out, "skip_malformed = {skip}");
        assert_eq!(c.state(), want_state);
        assert_eq!(c.stats().frames_skipped, u64::from(skip));
        assert_eq!(c.last_skipped().is_some(), skip);
    }
}

#[test]
fn tls_failure_reasons_read_well() {
    use super::TlsFailure;
    let mut c = lines(Limits::default());
    c.send(b"dropped").unwrap();
    c.handle_failure(CloseReason::Tls(TlsFailure::AlertSent(42)));
    assert_eq!(
        c.state(),
        State::Closed(CloseReason::Tls(TlsFailure::AlertSent(42)))
    );
    assert_eq!(c.poll_transmit(), (&b""[..], &b""[..]));
    assert_eq!(
        std::format!("{}", c.close_reason().unwrap()),
        "TLS: alert 42 sent"
    );
    assert!(CloseReason::Tls(TlsFailure::HandshakeTimeout).is_violation());
    assert!(!CloseReason::Tls(TlsFailure::AlertReceived(0)).is_violation());
    assert_eq!(CloseReason::Tls(TlsFailure::HandshakeEof).name(), "tls");
}

fn any_encoder(which: u8) -> crate::codec::AnyEncoder {
    use crate::codec::{CodecSpec, Endian, LengthFieldConfig, VarintConfig};
    let spec = match which % 6 {
        0 => CodecSpec::Raw { max_frame: 48 },
        1 => CodecSpec::lines(48),
        2 => CodecSpec::Fixed { len: 5 },
        3 => CodecSpec::LengthField(LengthFieldConfig {
            max_frame: 48,
            ..LengthFieldConfig::new(2, Endian::Little)
        }),
        4 => CodecSpec::Varint(VarintConfig {
            max_frame: 48,
            ..VarintConfig::default()
        }),
        _ => CodecSpec::Cobs {
            max_frame: 48,
            oversize: Oversize::Close,
        },
    };
    spec.encoder().unwrap()
}

proptest! {
    /// Queuing a reply writes exactly the encoder's frame after what the
    /// ring held (wrapped anywhere), or refuses it with the encoder's own
    /// error or `BufferTooSmall` and leaves the ring as it was.
    #[test]
    fn enqueue_writes_the_whole_frame_or_nothing(
        which in 0u8..6,
        head in 0usize..40,
        held in proptest::collection::vec(any::<u8>(), 0..40),
        payload in proptest::collection::vec(prop_oneof![Just(0u8), Just(b'\n'), any::<u8>()], 0..60),
    ) {
        let enc = any_encoder(which);
        let mut tx = crate::Ring::new([0u8; 40]);
        // Move the ring's start to `head`, then fill it with `held`.
        let skip = head.min(40);
        let _ = tx.push(&[0xEE; 40][..skip]);
        tx.consume(skip);
        let held = &held[..held.len().min(40)];
        tx.push(held).unwrap();
        let free = tx.free();
        let expected = enc.encoded_len(&payload);
        let result = enqueue(&enc, &mut tx, &payload);
        let (a, b) = tx.as_slices();
        let now: Vec<u8> = a.iter().chain(b).copied().collect();
        match expected {
            Err(e) => {
                prop_assert_eq!(result, Err(e));
                prop_assert_eq!(&now[..], held);
            }
            Ok(len) if len > free => {
                prop_assert_eq!(result, Err(Error::BufferTooSmall { needed: len, capacity: free }));
                prop_assert_eq!(&now[..], held);
            }
            Ok(len) => {
                prop_assert_eq!(result, Ok(len));
                let mut frame = [0u8; 128];
                let n = enc.encode(&payload, &mut frame).unwrap();
                prop_assert_eq!(&now[..held.len()], held);
                prop_assert_eq!(&now[held.len()..], &frame[..n]);
            }
        }
    }
}

#[cfg(feature = "alloc")]
#[test]
fn pushes_leave_whole_through_the_reply_ring_and_count_as_frames_out() {
    let mut c = lines(Limits::default());
    let enc = DelimiterEncoder::lines(32).unwrap();
    let mut q = PushQueue::new(1024, 64);
    for p in [&b"first"[..], b"second", b"third"] {
        q.push(&enc, p).unwrap();
    }
    c.handle_bytes(b"ping\n", MS);
    echo(&mut c);
    assert_eq!(c.handle_pushes(&mut q, MS), 3);
    assert!(q.is_empty());
    assert_eq!(c.stats().frames_out, 4);
    assert_eq!(flush(&mut c, 5 * MS), b"ping\nfirst\nsecond\nthird\n");
    assert_eq!(c.stats().bytes_out, 24);
    // The write kept the connection active: its idle clock moved.
    assert_eq!(c.last_activity.get(), 5 * MS);
}

#[cfg(feature = "alloc")]
#[test]
fn pushes_wait_below_the_high_water_mark_and_never_split() {
    // tx 64 bytes, high water 32: one 30-byte push fits, the next waits.
    let mut c = lines(Limits::default());
    let enc = DelimiterEncoder::lines(32).unwrap();
    let mut q = PushQueue::new(1024, 64);
    let long = [b'x'; 29];
    q.push(&enc, &long).unwrap();
    q.push(&enc, &long).unwrap();
    q.push(&enc, b"short").unwrap();
    assert_eq!(
        c.handle_pushes(&mut q, MS),
        2,
        "stops at the high-water mark"
    );
    assert!(c.is_backpressured());
    assert_eq!(q.frames(), 1);
    let out = flush(&mut c, MS);
    assert_eq!(out.len(), 60);
    assert!(!c.is_backpressured());
    assert_eq!(c.handle_pushes(&mut q, MS), 1);
    assert_eq!(flush(&mut c, MS), b"short\n");
}

#[cfg(feature = "alloc")]
#[test]
fn a_graceful_close_delivers_queued_pushes_and_a_closed_one_counts_them_dropped() {
    let mut c = lines(Limits::default());
    let enc = DelimiterEncoder::lines(32).unwrap();
    let mut q = PushQueue::new(1024, 64);
    q.push(&enc, b"a").unwrap();
    c.handle_bytes(b"x\n", MS);
    c.poll_frames(|_, out| {
        out.send(b"reply").unwrap();
        out.close();
    });
    assert_eq!(c.state(), State::Draining(CloseReason::Local));
    assert_eq!(c.handle_pushes(&mut q, MS), 1, "draining still delivers");
    assert_eq!(flush(&mut c, MS), b"reply\na\n");
    assert!(c.is_closed());
    q.push(&enc, b"late").unwrap();
    assert_eq!(c.handle_pushes(&mut q, MS), 0);
    assert_eq!(c.stats().pushes_dropped, 1);
    assert_eq!(q.dropped(), 1);
    assert_eq!(q.push(&enc, b"later"), Err(SendError::Closed));
}

#[cfg(feature = "alloc")]
#[test]
fn parked_connections_take_no_pushes_until_unparked() {
    let mut c = Connection::new(
        DelimiterDecoder::lines(32).unwrap(),
        DelimiterEncoder::lines(32).unwrap(),
        Buffers {
            rx: std::vec![0u8; 32],
            tx: std::vec![0u8; 64],
        },
        Limits::default(),
        Duration::ZERO,
    )
    .unwrap();
    let mut q = PushQueue::new(1024, 64);
    q.push(&DelimiterEncoder::lines(32).unwrap(), b"a").unwrap();
    let bufs = c
        .park(Buffers {
            rx: Vec::new(),
            tx: Vec::new(),
        })
        .unwrap();
    assert_eq!(c.handle_pushes(&mut q, MS), 0);
    assert_eq!(q.frames(), 1);
    c.unpark(bufs).unwrap();
    assert_eq!(c.handle_pushes(&mut q, MS), 1);
}

#[test]
fn a_close_that_cannot_drain_ends_at_the_drain_timeout() {
    let mut c = lines(Limits {
        drain_timeout: Some(100 * MS),
        ..Limits::default()
    });
    c.handle_bytes(b"x\n", 10 * MS);
    echo(&mut c);
    c.handle_timeout(20 * MS);
    c.close();
    assert_eq!(c.state(), State::Draining(CloseReason::Local));
    // The peer never reads: the drain deadline runs from the close.
    assert_eq!(c.poll_timeout(), Some(120 * MS));
    c.handle_timeout(119 * MS);
    assert_eq!(c.state(), State::Draining(CloseReason::Local));
    c.handle_timeout(120 * MS);
    assert_eq!(c.state(), State::Closed(CloseReason::Local));
    assert_eq!(c.poll_transmit(), (&[][..], &[][..]));
    // Without the limit a closing connection waits for its peer.
    let mut c = lines(Limits::default());
    c.handle_bytes(b"x\n", MS);
    echo(&mut c);
    c.close();
    assert_eq!(c.poll_timeout(), None);
}

#[cfg(feature = "alloc")]
#[test]
fn a_drain_waits_for_pushes_that_did_not_fit_yet() {
    let mut c = lines(Limits::default());
    let enc = DelimiterEncoder::lines(32).unwrap();
    let mut q = PushQueue::new(1024, 64);
    for _ in 0..3 {
        q.push(&enc, &[b'x'; 29]).unwrap();
    }
    assert_eq!(c.handle_pushes(&mut q, MS), 2);
    q.seal();
    c.close();
    assert_eq!(c.state(), State::Draining(CloseReason::Local));
    assert_eq!(flush(&mut c, MS).len(), 60);
    assert_eq!(
        c.state(),
        State::Draining(CloseReason::Local),
        "a push still waits"
    );
    assert_eq!(c.handle_pushes(&mut q, MS), 1);
    assert_eq!(flush(&mut c, MS).len(), 30);
    assert_eq!(c.state(), State::Closed(CloseReason::Local));
    assert_eq!(q.dropped(), 0);
}
