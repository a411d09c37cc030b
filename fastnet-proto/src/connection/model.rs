//! A reference model of [`Connection`] for an echo server over lines, and a
//! checker that runs both side by side. Shared by the model-based property
//! test and the `connection` fuzz target; compiled only for tests and
//! fuzzing.
//!
//! The model is deliberately simple (`Vec` buffers, lines split by hand) so
//! that it is obviously right; [`check`] panics at the first operation after
//! which the connection and the model disagree.

// The crate is `no_std` outside of tests; fuzzing builds need std here.
#[cfg(not(test))]
extern crate std;

use core::time::Duration;
use std::vec::Vec;

use super::{Buffers, CloseReason, Connection, Limits, State};
use crate::codec::{DelimiterDecoder, DelimiterEncoder};

/// One step of the peer, the socket or the clock.
#[derive(Clone, Debug)]
pub enum Op {
    /// The peer sends these bytes (they wait in the "socket" until accepted).
    /// Use only `a`, `b` and `\n`: the model knows no CR.
    Send(Vec<u8>),
    /// The socket accepts up to this many bytes of our replies.
    Write(usize),
    /// Time passes, in milliseconds.
    Advance(u64),
    /// The peer half-closes.
    Eof,
}

/// Idle timeout, in milliseconds.
pub const IDLE: u64 = 100;
/// Read timeout, in milliseconds.
pub const READ: u64 = 70;
/// Tx high-water mark (half the 64-byte tx buffer).
pub const HIGH: usize = 32;
/// Tx low-water mark.
pub const LOW: usize = 16;
/// Maximum frame, and the rx buffer's size.
pub const MAX: usize = 32;

/// The reference: the state an echo server over lines should be in.
#[derive(Debug, Default)]
pub struct Model {
    rx: Vec<u8>,
    tx: Vec<u8>,
    eof: bool,
    paused: bool,
    closing: Option<CloseReason>,
    closed: Option<CloseReason>,
    last_activity: u64,
    last_read: u64,
    partial_since: Option<u64>,
}

impl Model {
    fn open(&self) -> bool {
        self.closing.is_none() && self.closed.is_none()
    }

    fn wants_read(&self) -> bool {
        self.open() && !self.eof && !self.paused
    }

    fn begin_close(&mut self, reason: CloseReason) {
        if self.open() {
            if self.tx.is_empty() {
                self.closed = Some(reason);
            } else {
                self.closing = Some(reason);
            }
        }
    }

    fn read(&mut self, bytes: &[u8], now: u64) -> usize {
        if !self.wants_read() || bytes.is_empty() {
            return 0;
        }
        let n = bytes.len().min(MAX - self.rx.len());
        if n == 0 {
            return 0;
        }
        if self.rx.is_empty() {
            self.partial_since = None;
        }
        self.rx.extend_from_slice(&bytes[..n]);
        self.last_activity = now;
        self.last_read = now;
        n
    }

    fn process(&mut self) {
        let mut done = false;
        while self.open() && !self.paused {
            let limit = self.rx.len().min(MAX);
            match self.rx[..limit].iter().position(|&b| b == b'\n') {
                Some(i) => {
                    let line: Vec<u8> = self.rx.drain(..=i).collect();
                    self.tx.extend_from_slice(&line);
                    done = true;
                    if self.tx.len() >= HIGH {
                        self.paused = true;
                        self.partial_since = None;
                    }
                }
                None if self.rx.len() >= MAX => {
                    self.rx.clear();
                    self.begin_close(CloseReason::FrameTooLarge);
                }
                None => {
                    if self.rx.is_empty() {
                        self.partial_since = None;
                    } else if done || self.partial_since.is_none() {
                        self.partial_since = Some(self.last_read);
                    }
                    if self.eof {
                        self.begin_close(CloseReason::PeerClosed);
                    }
                    break;
                }
            }
        }
    }

    fn written(&mut self, n: usize, now: u64) {
        if n == 0 || self.closed.is_some() {
            return;
        }
        self.tx.drain(..n);
        self.last_activity = now;
        if self.paused && self.tx.len() <= LOW {
            self.paused = false;
        }
        if self.tx.is_empty() {
            if let Some(r) = self.closing.take() {
                self.closed = Some(r);
            }
        }
    }

    fn deadline(&self) -> Option<u64> {
        if self.closed.is_some() {
            return None;
        }
        let idle = self.last_activity + IDLE;
        // The read timer runs only while open: a draining connection
        // reads nothing more (the model sets no drain timeout).
        match (self.partial_since, self.closing) {
            (Some(p), None) => Some(idle.min(p + READ)),
            _ => Some(idle),
        }
    }

    fn timeout(&mut self, now: u64) {
        if self.closed.is_some() {
            return;
        }
        if now >= self.last_activity + IDLE {
            self.closed = Some(self.closing.take().unwrap_or(CloseReason::IdleTimeout));
            return;
        }
        if let (Some(p), None) = (self.partial_since, self.closing) {
            if now >= p + READ {
                self.partial_since = None;
                self.begin_close(CloseReason::ReadTimeout);
            }
        }
    }

    fn state(&self) -> State {
        match (self.closed, self.closing) {
            (Some(r), _) => State::Closed(r),
            (None, Some(r)) => State::Draining(r),
            (None, None) => State::Open,
        }
    }
}

/// Runs `ops` against a lines echo server (rx 32, tx 64, idle and read
/// timeouts) and against the [`Model`]; panics at the first difference in
/// state, interest in input, buffered bytes, deadline or bytes written.
pub fn check(ops: &[Op]) {
    let limits = Limits {
        idle_timeout: Some(Duration::from_millis(IDLE)),
        read_timeout: Some(Duration::from_millis(READ)),
        ..Limits::default()
    };
    let dec = DelimiterDecoder::lines(MAX).unwrap();
    let enc = DelimiterEncoder::lines(MAX).unwrap();
    let bufs = Buffers {
        rx: [0u8; MAX],
        tx: [0u8; 64],
    };
    let mut c = Connection::new(dec, enc, bufs, limits, Duration::ZERO).unwrap();
    let mut m = Model::default();
    let mut socket: Vec<u8> = Vec::new();
    let mut wire_out: Vec<u8> = Vec::new();
    let mut model_out: Vec<u8> = Vec::new();
    let mut now = 0u64;
    for (step, op) in ops.iter().enumerate() {
        match op {
            Op::Send(bytes) => {
                socket.extend_from_slice(bytes);
                let t = Duration::from_millis(now);
                let got = c.handle_bytes(&socket, t);
                let want = m.read(&socket, now);
                assert_eq!(got, want, "bytes accepted, step {step}: {op:?}");
                socket.drain(..got);
            }
            Op::Write(cap) => {
                let (a, b) = c.poll_transmit();
                let pending: Vec<u8> = a.iter().chain(b).copied().collect();
                let n = (*cap).min(pending.len());
                let model_n = if m.closed.is_some() {
                    0
                } else {
                    (*cap).min(m.tx.len())
                };
                assert_eq!(n, model_n, "bytes written, step {step}: {op:?}");
                wire_out.extend_from_slice(&pending[..n]);
                model_out.extend_from_slice(&m.tx[..model_n]);
                c.handle_written(n, Duration::from_millis(now));
                m.written(model_n, now);
            }
            Op::Advance(dt) => {
                now = now.saturating_add(*dt);
                c.handle_timeout(Duration::from_millis(now));
                m.timeout(now);
            }
            Op::Eof => {
                if c.state() == State::Open {
                    c.handle_eof(Duration::from_millis(now));
                    m.eof = true;
                    m.last_activity = now;
                }
            }
        }
        c.poll_frames(|f, out| out.send(f).unwrap());
        m.process();
        assert_eq!(c.state(), m.state(), "state, step {step}: {op:?}");
        assert_eq!(c.wants_read(), m.wants_read(), "wants_read, step {step}");
        assert_eq!(c.tx_len(), m.tx.len(), "tx_len, step {step}");
        assert_eq!(c.rx_len(), m.rx.len(), "rx_len, step {step}");
        let deadline = m.deadline().map(Duration::from_millis);
        assert_eq!(c.poll_timeout(), deadline, "deadline, step {step}");
        assert_eq!(wire_out, model_out, "bytes out, step {step}");
    }
}
