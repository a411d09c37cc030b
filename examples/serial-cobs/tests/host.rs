// Run: cargo test -p fastnet-serial-example --test host
//
//! The device on a simulated UART, against a host that sends requests in
//! small random chunks (with noise) and checks every reply byte for byte.
//! Time is a simulated tick counter that starts just before it wraps.

use embedded_io::{ErrorKind, ErrorType, Read, ReadReady, Write, WriteReady};
use fastrand::Rng;
use std::collections::VecDeque;

use fastnet_serial_example::{
    crc8, Counters, Device, TickClock, ECHO, ERROR, ERR_CRC, ERR_FRAMING, ERR_SHORT, ERR_TIMEOUT,
    ERR_TOO_LARGE, ERR_UNKNOWN, MAX_FRAME, MAX_PAYLOAD, PING, REPLY, STATUS, SUM,
};

/// One tick is 1 ms.
const HZ: u32 = 1000;
/// The read timeout in ticks.
const TIMEOUT_TICKS: u32 = 20;
/// Ticks a host waits for a reply before it gives up (a failure here).
const PATIENCE: usize = 200;

/// The device's end of a simulated UART pair: a 16-byte receive FIFO, a
/// transmitter that takes a few bytes per write, and an overrun the test
/// can inject.
struct Uart {
    to_device: VecDeque<u8>,
    from_device: Vec<u8>,
    fifo: usize,
    tx_per_call: usize,
    /// The next read fails: bytes were lost in the receiver.
    overrun: bool,
}

impl ErrorType for Uart {
    type Error = ErrorKind;
}

impl ReadReady for Uart {
    fn read_ready(&mut self) -> Result<bool, ErrorKind> {
        Ok(self.overrun || !self.to_device.is_empty())
    }
}

impl Read for Uart {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, ErrorKind> {
        if std::mem::take(&mut self.overrun) {
            return Err(ErrorKind::Other);
        }
        // Only called when ready, so never 0 (which would be end of stream).
        let n = buf.len().min(self.fifo).min(self.to_device.len());
        for (slot, byte) in buf.iter_mut().zip(self.to_device.drain(..n)) {
            *slot = byte;
        }
        Ok(n)
    }
}

impl WriteReady for Uart {
    fn write_ready(&mut self) -> Result<bool, ErrorKind> {
        Ok(true)
    }
}

impl Write for Uart {
    fn write(&mut self, bytes: &[u8]) -> Result<usize, ErrorKind> {
        let n = bytes.len().min(self.tx_per_call);
        self.from_device.extend_from_slice(&bytes[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> Result<(), ErrorKind> {
        Ok(())
    }
}

/// COBS written out longhand, independent of the codec under test.
fn cobs(payload: &[u8]) -> Vec<u8> {
    let mut out = vec![0];
    let mut code_at = 0;
    for &b in payload {
        if b == 0 {
            out[code_at] = (out.len() - code_at) as u8;
            code_at = out.len();
            out.push(0);
        } else {
            out.push(b);
            if out.len() - code_at == 0xFF {
                out[code_at] = 0xFF;
                code_at = out.len();
                out.push(0);
            }
        }
    }
    out[code_at] = (out.len() - code_at) as u8;
    out.push(0);
    out
}

fn with_crc(mut body: Vec<u8>) -> Vec<u8> {
    body.push(crc8(&body));
    body
}

fn request(seq: u8, cmd: u8, data: &[u8]) -> Vec<u8> {
    let mut body = vec![seq, cmd];
    body.extend_from_slice(data);
    with_crc(body)
}

fn error(seq: u8, code: u8) -> Vec<u8> {
    with_crc(vec![seq, ERROR, code])
}

/// The host, the wire and the device, stepped one tick at a time.
struct Bench {
    device: Device,
    uart: Uart,
    clock: TickClock,
    counter: u32,
    rng: Rng,
    /// What the host expects the device's counters to be.
    counters: Counters,
}

impl Bench {
    fn new(seed: u64) -> Bench {
        // Start close to the wrap of the 32-bit tick counter.
        let counter = u32::MAX - 500;
        let mut clock = TickClock::new(HZ);
        let device = Device::new(clock.now(counter)).unwrap();
        Bench {
            device,
            uart: Uart {
                to_device: VecDeque::new(),
                from_device: Vec::new(),
                fifo: 16,
                tx_per_call: 5,
                overrun: false,
            },
            clock,
            counter,
            rng: Rng::with_seed(seed),
            counters: Counters::default(),
        }
    }

    /// One tick passes and the main loop runs.
    fn tick(&mut self) {
        self.counter = self.counter.wrapping_add(1);
        let now = self.clock.now(self.counter);
        self.device.poll(&mut self.uart, now);
    }

    /// Sends `wire` in random chunks of 1 to 9 bytes, a tick after each
    /// (the device sees a frame piece by piece).
    fn send(&mut self, wire: &[u8]) {
        let mut rest = wire;
        while !rest.is_empty() {
            let n = (1 + self.rng.usize(..9)).min(rest.len());
            self.uart.to_device.extend(&rest[..n]);
            rest = &rest[n..];
            self.tick();
        }
    }

    /// Waits for exactly these reply payloads and checks the bytes on the
    /// wire, then that nothing else follows.
    fn expect(&mut self, replies: &[Vec<u8>]) {
        let want: Vec<u8> = replies.iter().flat_map(|p| cobs(p)).collect();
        for _ in 0..PATIENCE {
            if self.uart.from_device.len() >= want.len() {
                break;
            }
            self.tick();
        }
        for _ in 0..3 {
            self.tick();
        }
        assert_eq!(
            self.uart.from_device, want,
            "device sent {:02x?}, wanted {:02x?}",
            self.uart.from_device, want
        );
        self.uart.from_device.clear();
    }

    /// A request and its reply, stop-and-wait.
    fn exchange(&mut self, req: &[u8], reply: Vec<u8>) {
        self.send(&cobs(req));
        self.expect(&[reply]);
    }

    /// A random valid request and the reply the device owes.
    fn random_request(&mut self, seq: u8) -> (Vec<u8>, Vec<u8>) {
        let rng = &mut self.rng;
        let data_len = match rng.usize(..4) {
            0 => 0,
            1 => MAX_PAYLOAD - 3,
            _ => rng.usize(..MAX_PAYLOAD - 2),
        };
        // Zeros are common in binary payloads: make sure COBS sees them.
        let mut data = random_bytes(rng, data_len);
        for b in data.iter_mut() {
            if rng.usize(..5) == 0 {
                *b = 0;
            }
        }
        let c = &mut self.counters;
        match rng.usize(..5) {
            0 => {
                c.served += 1;
                (request(seq, PING, &[]), request(seq, PING | REPLY, &[]))
            }
            1 => {
                c.served += 1;
                (request(seq, ECHO, &data), request(seq, ECHO | REPLY, &data))
            }
            2 => {
                c.served += 1;
                let sum: u32 = data.iter().map(|&b| u32::from(b)).sum();
                (
                    request(seq, SUM, &data),
                    request(seq, SUM | REPLY, &sum.to_le_bytes()),
                )
            }
            3 => {
                let status: Vec<u8> = c.as_array().iter().flat_map(|v| v.to_le_bytes()).collect();
                c.served += 1;
                (
                    request(seq, STATUS, &[]),
                    request(seq, STATUS | REPLY, &status),
                )
            }
            _ => {
                c.unknown += 1;
                let cmd = 0x10 + rng.usize(..0x60) as u8;
                (request(seq, cmd, &data), error(seq, ERR_UNKNOWN))
            }
        }
    }
}

#[test]
fn requests_in_random_chunks_with_noise_get_exact_replies() {
    let mut bench = Bench::new(1);
    let mut seq = 0u8;
    for _ in 0..600 {
        // Sequence numbers 1..=255: 0 marks the device's own reports.
        seq = seq % 255 + 1;
        match bench.rng.usize(..10) {
            // A bit flipped in the payload: COBS still valid, CRC not.
            0 => {
                let len = 1 + bench.rng.usize(..40);
                let mut bad = request(seq, ECHO, &random_bytes(&mut bench.rng, len));
                let at = bench.rng.usize(..bad.len());
                bad[at] ^= 1 << bench.rng.usize(..8);
                bench.counters.bad_crc += 1;
                bench.exchange(&bad, error(bad[0], ERR_CRC));
            }
            // A code byte that runs past the frame: malformed COBS.
            1 => {
                let mut wire = cobs(&request(seq, PING, &[]));
                wire[0] = 0xFE;
                bench.counters.framing += 1;
                bench.send(&wire);
                bench.expect(&[error(0, ERR_FRAMING)]);
            }
            // Line noise: stray sync bytes between frames are ignored.
            2 => bench.send(&[0, 0]),
            _ => {}
        }
        // After noise, the host resends; the device serves it.
        let (req, reply) = bench.random_request(seq);
        bench.exchange(&req, reply);
    }
    assert_eq!(*bench.device.counters(), bench.counters);
    assert!(bench.counters.bad_crc > 0 && bench.counters.framing > 0);
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let mut bench = Bench::new(2);
    let mut wire = Vec::new();
    let mut replies = Vec::new();
    for seq in 1..=40 {
        let (req, reply) = bench.random_request(seq);
        wire.extend(cobs(&req));
        replies.push(reply);
    }
    bench.send(&wire);
    bench.expect(&replies);
    assert_eq!(*bench.device.counters(), bench.counters);
}

#[test]
fn a_stalled_partial_frame_times_out_and_the_next_is_served() {
    let mut bench = Bench::new(3);
    let wire = cobs(&request(9, ECHO, b"unfinished business"));
    bench.uart.to_device.extend(&wire[..10]);
    // The first tick reads the bytes; the timeout is due TIMEOUT_TICKS
    // later, not a tick sooner.
    for _ in 0..TIMEOUT_TICKS {
        bench.tick();
    }
    assert!(bench.uart.from_device.is_empty());
    bench.tick();
    assert!(!bench.uart.from_device.is_empty(), "no report when due");
    bench.expect(&[error(0, ERR_TIMEOUT)]);
    bench.counters.timeouts += 1;
    // The half frame was dropped: the next request is served as usual.
    let (req, reply) = bench.random_request(10);
    bench.exchange(&req, reply);
    assert_eq!(*bench.device.counters(), bench.counters);
}

#[test]
fn a_trickle_of_bytes_does_not_hold_off_the_read_timeout() {
    let mut bench = Bench::new(4);
    let wire = cobs(&request(1, ECHO, &[7; 40]));
    // One byte every 5 ticks: the frame would take 210 ticks.
    let mut reported_at = None;
    for (i, &b) in wire.iter().enumerate() {
        bench.uart.to_device.push_back(b);
        for _ in 0..5 {
            bench.tick();
        }
        if !bench.uart.from_device.is_empty() {
            reported_at = Some(i);
            break;
        }
    }
    let at = reported_at.expect("the read timeout never fired");
    assert!(at <= (TIMEOUT_TICKS / 5) as usize, "fired after {at} bytes");
    bench.expect(&[error(0, ERR_TIMEOUT)]);
}

#[test]
fn an_oversized_frame_is_skipped_and_reported() {
    let mut bench = Bench::new(5);
    let big: Vec<u8> = (1..=200u8).collect();
    let mut wire = big;
    wire.push(0);
    assert!(wire.len() > MAX_FRAME);
    // All at once: a frame being skipped is timed like any other, and 200
    // bytes in small chunks a tick apart would outlast the read timeout.
    bench.uart.to_device.extend(&wire);
    bench.tick();
    bench.expect(&[error(0, ERR_TOO_LARGE)]);
    bench.counters.oversize += 1;
    let (req, reply) = bench.random_request(1);
    bench.exchange(&req, reply);
    assert_eq!(*bench.device.counters(), bench.counters);
}

#[test]
fn a_uart_overrun_drops_the_partial_frame_and_the_next_is_served() {
    let mut bench = Bench::new(7);
    let wire = cobs(&request(3, ECHO, b"lost in the receiver"));
    bench.send(&wire[..8]);
    // Bytes are lost: the rest of the frame can no longer be trusted.
    bench.uart.overrun = true;
    bench.tick();
    bench.send(&wire[8..]);
    // The tail alone is not a valid request: at most an error reply for
    // it, never an echo of the lost frame.
    for _ in 0..5 {
        bench.tick();
    }
    assert!(
        !bench.uart.from_device.windows(4).any(|w| w == b"lost"),
        "the partial frame survived the overrun"
    );
    bench.uart.from_device.clear();
    bench.counters = *bench.device.counters();
    let (req, reply) = bench.random_request(4);
    bench.exchange(&req, reply);
    assert_eq!(*bench.device.counters(), bench.counters);
}

#[test]
fn short_payloads_are_refused() {
    let mut bench = Bench::new(6);
    bench.exchange(&[0x42], error(0x42, ERR_SHORT));
    bench.exchange(&[0x42, PING], error(0x42, ERR_SHORT));
    bench.exchange(&[], error(0, ERR_SHORT));
    bench.counters.short += 3;
    assert_eq!(*bench.device.counters(), bench.counters);
}

#[test]
fn the_tick_clock_runs_on_across_the_counter_wrap() {
    let mut clock = TickClock::new(1000);
    assert_eq!(clock.now(0).as_millis(), 0);
    assert_eq!(clock.now(1500).as_millis(), 1500);
    let before = clock.now(u32::MAX);
    let after = clock.now(4);
    assert_eq!((after - before).as_millis(), 5);
    let mut clock = TickClock::new(32_768);
    assert_eq!(clock.now(16_384).as_micros(), 500_000);
}

fn random_bytes(rng: &mut Rng, n: usize) -> Vec<u8> {
    std::iter::repeat_with(|| rng.u8(..)).take(n).collect()
}
