//! Drives a [`Connection`] over any codec with arbitrary bytes, limits,
//! pushes, parking, wake budgets and clock jumps up to [`Duration::MAX`],
//! checking after every step the invariants that hold whatever the input.
//! Shared by a property test and the `connection` fuzz target; compiled
//! only for tests and fuzzing (with `alloc`, for the push queue).
//!
//! Where [`model`](super::model) checks one configuration exactly against
//! a reference, this checks every configuration loosely: no panic, buffers
//! within bounds, due timers fired, a skipped frame still timed, stalled
//! writes timed, the wake budget kept.

#[cfg(not(test))]
extern crate std;

use core::time::Duration;
use std::vec::Vec;

use super::{Buffers, Connection, Limits, PushQueue, State};
use crate::codec::{
    AnyDecoder, AnyEncoder, CodecSpec, Decoder, Delimiters, Endian, LengthFieldConfig, Oversize,
    VarintConfig,
};

/// The input, read front to back; zeros once it runs out.
struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    fn u8(&mut self) -> u8 {
        let (&b, rest) = self.0.split_first().unwrap_or((&0, &[]));
        self.0 = rest;
        b
    }

    fn bytes(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.0.split_at(n.min(self.0.len()));
        self.0 = rest;
        head
    }

    /// A timeout: 0 none, 1 zero (invalid), 255 `Duration::MAX`, 254 half
    /// of the largest number of seconds, else that many milliseconds.
    fn timeout(&mut self) -> Option<Duration> {
        match self.u8() {
            0 => None,
            1 => Some(Duration::ZERO),
            255 => Some(Duration::MAX),
            254 => Some(Duration::from_secs(u64::MAX / 2)),
            n => Some(Duration::from_millis(n.into())),
        }
    }

    /// `None` for 0, else one less.
    fn option(n: u8) -> Option<u8> {
        n.checked_sub(1)
    }
}

/// A codec: one of the six, with a small maximum frame and either
/// oversize policy.
fn codec(input: &mut Input<'_>) -> CodecSpec {
    let which = input.u8();
    let max = 1 + usize::from(input.u8() % 48);
    let oversize = if which & 0x80 != 0 {
        Oversize::Skip
    } else {
        Oversize::Close
    };
    match which % 6 {
        0 => CodecSpec::Raw { max_frame: max },
        1 => {
            let delimiters = if which & 0x40 != 0 {
                Delimiters::new(&[&b"\r\n"[..], b"|"]).unwrap_or(Delimiters::lines())
            } else {
                Delimiters::lines()
            };
            CodecSpec::Delimiter {
                delimiters,
                keep: which & 0x20 != 0,
                max_frame: max,
                oversize,
            }
        }
        2 => CodecSpec::Fixed { len: max },
        3 => CodecSpec::LengthField(LengthFieldConfig {
            max_frame: max,
            oversize,
            adjust: if which & 0x40 != 0 { -2 } else { 0 },
            ..LengthFieldConfig::new(if which & 0x20 != 0 { 1 } else { 2 }, Endian::Big)
        }),
        4 => CodecSpec::Varint(VarintConfig {
            max_frame: max,
            oversize,
            ..VarintConfig::default()
        }),
        _ => CodecSpec::Cobs {
            max_frame: max,
            oversize,
        },
    }
}

fn limits(input: &mut Input<'_>) -> Limits {
    let flags = input.u8();
    let high = input.u8();
    let low = input.u8();
    let bytes = input.u8();
    let budget = input.u8();
    Limits {
        idle_timeout: input.timeout(),
        read_timeout: input.timeout(),
        write_stall_timeout: input.timeout(),
        drain_timeout: input.timeout(),
        max_bytes_in: match bytes {
            0 => None,
            255 => Some(u64::MAX),
            n => Some(u64::from(n) * 4),
        },
        tx_high_water: Input::option(high).map(usize::from),
        tx_low_water: Input::option(low).map(usize::from),
        skip_malformed: flags & 1 != 0,
        wake_budget: core::num::NonZeroU32::new(budget.into()),
    }
}

type Conn = Connection<AnyDecoder, AnyEncoder, Vec<u8>, Vec<u8>>;

/// Runs the input: a codec, limits, buffer sizes, then operations until it
/// ends. Panics at the first broken invariant.
pub fn run(data: &[u8]) {
    let mut input = Input(data);
    let spec = codec(&mut input);
    let limits = limits(&mut input);
    let (Ok(dec), Ok(enc)) = (spec.decoder(), spec.encoder()) else {
        return;
    };
    let rx_len = dec.max_frame() + usize::from(input.u8() % 16);
    let tx_len = 1 + usize::from(input.u8());
    let bufs = |rx, tx| Buffers {
        rx: std::vec![0u8; rx],
        tx: std::vec![0u8; tx],
    };
    let valid = limits.validate().is_ok();
    let mut now = Duration::from_millis(input.u8().into());
    let mut c = match Connection::new(dec, enc, bufs(rx_len, tx_len), limits, now) {
        Ok(c) => c,
        Err(_) => {
            // Refused for the limits or the watermarks, never otherwise.
            let high = limits.tx_high_water.unwrap_or(tx_len / 2);
            let low = limits.tx_low_water.unwrap_or(high / 2);
            assert!(!valid || high > tx_len || low > high || high == 0);
            return;
        }
    };
    assert!(valid, "new accepted invalid limits {limits:?}");
    let mut queue = PushQueue::new(256, tx_len);
    // Work since the last `begin_wake`: reads with bytes and frames.
    let mut work = 0u32;
    let mut held = Vec::new();
    while !input.0.is_empty() {
        match input.u8() % 14 {
            0 | 1 => {
                let n = usize::from(input.u8());
                let bytes = input.bytes(n);
                if let Some(buf) = c.read_buf() {
                    let k = buf.len().min(bytes.len());
                    buf[..k].copy_from_slice(&bytes[..k]);
                    c.handle_read(k, now);
                    if k > 0 {
                        work += 1;
                    }
                }
            }
            2 | 3 => {
                let reply = input.u8();
                work += frames(&mut c, reply) as u32;
            }
            4 => {
                let n = usize::from(input.u8());
                let (a, b) = c.poll_transmit();
                assert!(c.is_closed() || a.len() + b.len() == c.tx_len());
                let n = n.min(a.len() + b.len());
                c.handle_written(n, now);
            }
            5 => now = now.saturating_add(Duration::from_millis(input.u8().into())),
            6 => {
                // A jump: seconds from two bytes, or to the end of time.
                let secs = u16::from_le_bytes([input.u8(), input.u8()]);
                now = match secs {
                    u16::MAX => Duration::MAX,
                    s => now.saturating_add(Duration::from_secs(u64::from(s) << 20)),
                };
            }
            7 => {
                c.handle_timeout(now);
                if let Some(at) = c.poll_timeout() {
                    assert!(at > now, "a timer due at {at:?} survived {now:?}");
                }
            }
            8 => c.handle_eof(now),
            9 => {
                let n = usize::from(input.u8() % 64);
                let payload = input.bytes(n);
                let _ = queue.push(c.encoder(), payload);
                if c.is_parked() && !queue.is_empty() {
                    let _ = c.unpark(bufs(rx_len, tx_len));
                }
                c.handle_pushes(&mut queue, now);
                if c.state() != State::Open {
                    queue.seal();
                }
            }
            10 => {
                if c.is_parked() {
                    assert_eq!(c.tx_free(), 0);
                    assert!(c.read_buf().is_none());
                    let small = input.u8() & 1 != 0;
                    let r = c.unpark(bufs(if small { 0 } else { rx_len }, tx_len));
                    assert_eq!(r.is_ok(), !small || rx_len == 0);
                } else {
                    let quiet = c.is_quiescent();
                    let r = c.park(bufs(0, 0));
                    assert_eq!(r.is_ok(), quiet);
                    if let Ok(storage) = r {
                        held.push(storage);
                    }
                }
            }
            11 => {
                c.begin_wake();
                work = 0;
            }
            12 => match input.u8() % 8 {
                0 => c.close(),
                1 => c.abort(),
                2 => c.handle_reset(),
                3 => {
                    if !c.is_parked() {
                        c.reset(now);
                        queue = PushQueue::new(256, tx_len);
                        work = 0;
                    }
                }
                _ => {
                    let _ = c.send(input.bytes(4));
                }
            },
            _ => {
                // One frame held while more input is handled.
                let close = input.u8() & 1 != 0;
                if let Some(mut f) = c.poll_frame() {
                    let _ = f.send(b"!");
                    if close {
                        f.close();
                    }
                    work += 1;
                }
            }
        }
        check(&c, &limits, work);
    }
    c.handle_timeout(Duration::MAX);
    let _ = c.poll_timeout();
}

/// Hands out every frame, replying with the frame itself when `reply` is
/// odd, closing after the first when it is 2.
fn frames(c: &mut Conn, reply: u8) -> usize {
    let n = c.poll_frames(|frame, out| {
        if reply & 1 != 0 {
            let _ = out.send(frame);
        }
        if reply == 2 {
            out.close();
        }
    });
    // What the decoder is doing after a pass: a skip under way is timed.
    if c.state() == State::Open
        && !c.is_backpressured()
        && !c.should_yield()
        && !c.is_parked()
        && c.decoder().is_skipping()
    {
        let clock = c.clock.get();
        if let Some(t) = c.limits().read_timeout {
            if clock.saturating_add(t) < Duration::MAX && c.stats().bytes_in > 0 {
                assert!(c.poll_timeout().is_some(), "a skip with no deadline");
            }
        }
    }
    n
}

fn check(c: &Conn, limits: &Limits, work: u32) {
    assert!(c.rx_len() <= c.rx.capacity());
    assert!(c.tx_len() <= c.sink.tx.capacity());
    if let Some(max) = limits.max_bytes_in {
        assert!(c.stats().bytes_in <= max);
    }
    if let Some(budget) = limits.wake_budget {
        assert!(
            work <= budget.get(),
            "{work} units of work past a budget of {budget}"
        );
    }
    if c.is_closed() {
        assert_eq!(c.poll_timeout(), None);
        assert!(!c.wants_read() && !c.wants_write() && !c.wants_poll());
        assert_eq!(c.poll_transmit(), (&[][..], &[][..]));
        return;
    }
    // Queued bytes are always timed when a stall timeout is in force (one
    // of 584 years or more is never) and the deadline is within time (the
    // connection's clock: past about 584 years it is the end of time, from
    // which no deadline comes).
    if let Some(t) = c.limits().write_stall_timeout {
        if c.wants_write() && c.clock.get().checked_add(t).is_some() {
            assert!(
                c.poll_timeout().is_some(),
                "queued bytes with no stall deadline"
            );
        }
    }
    if c.is_parked() {
        assert!(c.is_quiescent());
    }
}
