use core::cell::Cell;
use core::fmt;
use core::time::Duration;
use std::vec::Vec;

use embedded_io::{ErrorType, ReadReady, WriteReady};
use proptest::prelude::*;

use super::{Blocking, IoError, ReadOutcome, Violation};
use crate::codec::{CobsDecoder, CobsEncoder, DelimiterDecoder, DelimiterEncoder};
use crate::connection::{Buffers, CloseReason, Limits, State};
use crate::{Connection, Error};

type Lines = Connection<DelimiterDecoder, DelimiterEncoder, [u8; 64], [u8; 64]>;

fn lines(max_frame: usize, limits: Limits) -> Lines {
    let dec = DelimiterDecoder::lines(max_frame).unwrap();
    let enc = DelimiterEncoder::lines(max_frame).unwrap();
    let bufs = Buffers {
        rx: [0; 64],
        tx: [0; 64],
    };
    Connection::new(dec, enc, bufs, limits, Duration::ZERO).unwrap()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Broken;

impl fmt::Display for Broken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("wire cut")
    }
}

impl core::error::Error for Broken {}

impl embedded_io::Error for Broken {
    fn kind(&self) -> embedded_io::ErrorKind {
        embedded_io::ErrorKind::BrokenPipe
    }
}

/// An in-memory transport: reads `input` in chunks of the sizes in
/// `reads` (in turn, repeated), takes at most the sizes in `writes` per
/// write, and can fail or stall where a test says.
#[derive(Debug)]
struct Mock<'a> {
    input: &'a [u8],
    reads: &'a [usize],
    writes: &'a [usize],
    turn_r: usize,
    turn_w: usize,
    out: Vec<u8>,
    flushes: usize,
    /// Fail the read after this many have succeeded.
    fail_read_at: Option<usize>,
    /// Fail every write.
    fail_write: bool,
    /// What `read_ready` / `write_ready` say.
    ready: bool,
    /// Advanced by every read: the time a blocking read waited.
    clock: Option<(&'a Cell<Duration>, Duration)>,
}

impl<'a> Mock<'a> {
    fn new(input: &'a [u8], reads: &'a [usize], writes: &'a [usize]) -> Self {
        Mock {
            input,
            reads,
            writes,
            turn_r: 0,
            turn_w: 0,
            out: Vec::new(),
            flushes: 0,
            fail_read_at: None,
            fail_write: false,
            ready: true,
            clock: None,
        }
    }

    fn read_now(&mut self, buf: &mut [u8]) -> Result<usize, Broken> {
        if self.fail_read_at == Some(self.turn_r) {
            return Err(Broken);
        }
        if let Some((clock, step)) = self.clock {
            clock.set(clock.get() + step);
        }
        let chunk = self.reads[self.turn_r % self.reads.len()];
        self.turn_r += 1;
        let n = chunk.min(buf.len()).min(self.input.len());
        buf[..n].copy_from_slice(&self.input[..n]);
        self.input = &self.input[n..];
        Ok(n)
    }

    fn write_now(&mut self, buf: &[u8]) -> Result<usize, Broken> {
        if self.fail_write {
            return Err(Broken);
        }
        let most = self.writes[self.turn_w % self.writes.len()];
        self.turn_w += 1;
        let n = most.min(buf.len());
        self.out.extend_from_slice(&buf[..n]);
        Ok(n)
    }
}

impl ErrorType for Mock<'_> {
    type Error = Broken;
}

impl embedded_io::Read for Mock<'_> {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Broken> {
        self.read_now(buf)
    }
}

impl embedded_io::Write for Mock<'_> {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Broken> {
        self.write_now(buf)
    }

    fn flush(&mut self) -> Result<(), Broken> {
        self.flushes += 1;
        Ok(())
    }
}

impl ReadReady for Mock<'_> {
    fn read_ready(&mut self) -> Result<bool, Broken> {
        Ok(self.ready)
    }
}

impl WriteReady for Mock<'_> {
    fn write_ready(&mut self) -> Result<bool, Broken> {
        Ok(self.ready)
    }
}

/// Each step waits once (returns `Pending`) before it completes, as a
/// transport waiting on an interrupt would.
#[cfg(feature = "embedded-io-async")]
impl embedded_io_async::Read for Mock<'_> {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, Broken> {
        futures_lite::future::yield_now().await;
        self.read_now(buf)
    }
}

#[cfg(feature = "embedded-io-async")]
impl embedded_io_async::Write for Mock<'_> {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, Broken> {
        futures_lite::future::yield_now().await;
        self.write_now(buf)
    }

    async fn flush(&mut self) -> Result<(), Broken> {
        self.flushes += 1;
        Ok(())
    }
}

/// How an echo run ended, the frames it saw, the bytes it wrote.
type Echoed = (Result<CloseReason, IoError<Broken>>, Vec<Vec<u8>>, Vec<u8>);

/// Echoes every frame.
fn echo_blocking(input: &[u8], reads: &[usize], writes: &[usize]) -> Echoed {
    let mut conn = lines(32, Limits::default());
    let mut io = Blocking::new(Mock::new(input, reads, writes));
    let mut frames = Vec::new();
    let end = io.run(
        &mut conn,
        || Duration::ZERO,
        |frame, out| {
            frames.push(frame.to_vec());
            out.send(frame).unwrap();
        },
    );
    (end, frames, io.into_inner().out)
}

#[test]
fn run_echoes_every_frame_then_reports_the_peer_closing() {
    let (end, frames, out) = echo_blocking(b"a\nbb\r\nccc\n", &[1], &[1]);
    assert_eq!(end, Ok(CloseReason::PeerClosed));
    assert_eq!(frames, [&b"a"[..], b"bb", b"ccc"]);
    assert_eq!(out, b"a\nbb\nccc\n");
}

#[test]
fn a_read_of_zero_bytes_is_the_peer_closing() {
    let mut conn = lines(32, Limits::default());
    let mut io = Blocking::new(&b"half"[..]);
    assert_eq!(io.read(&mut conn, Duration::ZERO), Ok(ReadOutcome::Read(4)));
    assert_eq!(
        io.read(&mut conn, Duration::ZERO),
        Ok(ReadOutcome::PeerClosed)
    );
    assert_eq!(conn.poll_frames(|_, _| {}), 0);
    assert_eq!(conn.state(), State::Closed(CloseReason::PeerClosed));
}

#[test]
fn flush_writes_both_slices_of_the_ring_and_flushes_the_transport_once() {
    let mut conn = lines(32, Limits::default());
    let mut io = Blocking::new(Mock::new(b"", &[1], &[3]));
    // Wrap the ring: queue 31 bytes, take 30 of them out by hand, queue 38.
    conn.send(b"0123456789abcdefghijklmnopqrst").unwrap();
    conn.handle_written(30, Duration::ZERO);
    conn.send(b"0123456789abcdefghijklmnopqrst").unwrap();
    conn.send(b"uvwxyz").unwrap();
    assert!(!conn.poll_transmit().1.is_empty());
    assert_eq!(io.flush(&mut conn, Duration::ZERO), Ok(39));
    assert_eq!(io.flush(&mut conn, Duration::ZERO), Ok(0));
    let mock = io.into_inner();
    assert_eq!(mock.flushes, 1);
    assert_eq!(mock.out, b"\n0123456789abcdefghijklmnopqrst\nuvwxyz\n");
}

#[test]
fn a_transport_error_closes_the_connection_as_reset() {
    let mut conn = lines(32, Limits::default());
    let mut mock = Mock::new(b"ab", &[1], &[1]);
    mock.fail_read_at = Some(1);
    let mut io = Blocking::new(mock);
    let end = io.run(&mut conn, || Duration::ZERO, |_, _| {});
    assert_eq!(end, Err(IoError::Transport(Broken)));
    assert_eq!(conn.state(), State::Closed(CloseReason::Reset));

    let mut conn = lines(32, Limits::default());
    conn.send(b"reply").unwrap();
    let mut mock = Mock::new(b"", &[1], &[1]);
    mock.fail_write = true;
    let mut io = Blocking::new(mock);
    assert_eq!(
        io.flush(&mut conn, Duration::ZERO),
        Err(IoError::Transport(Broken))
    );
    assert_eq!(conn.state(), State::Closed(CloseReason::Reset));
}

#[test]
fn a_full_slice_is_a_transport_error() {
    let mut conn = lines(32, Limits::default());
    conn.send(b"too long").unwrap();
    let mut wire = [0u8; 4];
    let mut io = Blocking::new(&mut wire[..]);
    assert_eq!(
        io.flush(&mut conn, Duration::ZERO),
        Err(IoError::Transport(embedded_io::SliceWriteError::Full))
    );
    assert_eq!(&wire, b"too ");
}

#[test]
fn a_write_of_zero_bytes_is_an_error_not_a_spin() {
    let mut conn = lines(32, Limits::default());
    conn.send(b"x").unwrap();
    let mut io = Blocking::new(Mock::new(b"", &[1], &[0]));
    assert_eq!(io.flush(&mut conn, Duration::ZERO), Err(IoError::WriteZero));
    assert_eq!(conn.state(), State::Closed(CloseReason::Reset));
}

#[test]
fn violations_flush_earlier_replies_and_name_the_limit_or_byte() {
    // A line over the maximum frame.
    let (end, frames, out) = echo_blocking(b"ok\n0123456789012345678901234567890123\n", &[7], &[5]);
    let v = Violation::FrameTooLarge { max: 32 };
    assert_eq!(end, Err(IoError::Protocol(v)));
    assert_eq!((frames.len(), &out[..]), (1, &b"ok\n"[..]));
    assert_eq!(
        IoError::<Broken>::Protocol(v).to_string(),
        "protocol violation: frame exceeds the maximum frame length of 32 bytes"
    );

    // More bytes than the connection takes.
    let limits = Limits {
        max_bytes_in: Some(5),
        ..Limits::default()
    };
    let mut conn = lines(32, limits);
    let mut io = Blocking::new(Mock::new(b"ab\ncdefgh\n", &[2], &[9]));
    let end = io.run(&mut conn, || Duration::ZERO, |f, out| out.send(f).unwrap());
    assert_eq!(end, Err(IoError::Protocol(Violation::ByteLimit { max: 5 })));
    assert_eq!(io.get_ref().out, b"ab\n");
    assert_eq!(
        Violation::ByteLimit { max: 5 }.to_string(),
        "peer sent more than the limit of 5 bytes"
    );

    // Malformed COBS: a code byte that runs past the frame's end.
    let dec = CobsDecoder::new(32).unwrap();
    let enc = CobsEncoder::new(32).unwrap();
    let bufs = Buffers {
        rx: [0u8; 32],
        tx: [0u8; 32],
    };
    let mut conn = Connection::new(dec, enc, bufs, Limits::default(), Duration::ZERO).unwrap();
    let mut io = Blocking::new(Mock::new(&[0x05, 1, 2, 0x00], &[4], &[4]));
    let end = io.run(&mut conn, || Duration::ZERO, |_, _| {});
    let Err(IoError::Protocol(v @ Violation::Malformed(Error::InvalidCobs { .. }))) = end else {
        panic!("{end:?}");
    };
    assert!(v.to_string().contains("code byte 0x05 at offset 0"), "{v}");
}

#[test]
fn the_read_timeout_fires_between_reads_of_a_trickle() {
    let limits = Limits {
        read_timeout: Some(Duration::from_millis(25)),
        ..Limits::default()
    };
    let mut conn = lines(32, limits);
    let clock = Cell::new(Duration::ZERO);
    let mut mock = Mock::new(b"never ending line", &[1], &[1]);
    // Every read waits 10 ms for its byte.
    mock.clock = Some((&clock, Duration::from_millis(10)));
    let mut io = Blocking::new(mock);
    let end = io.run(&mut conn, || clock.get(), |_, _| {});
    let v = Violation::ReadTimeout {
        timeout: Duration::from_millis(25),
    };
    assert_eq!(end, Err(IoError::Protocol(v)));
    assert_eq!(
        v.to_string(),
        "frame not completed within the read timeout of 25 ms"
    );
    assert!(io.get_ref().input.len() >= 13, "read on after the timeout");
}

#[test]
fn a_backpressured_connection_reads_nothing_until_flushed() {
    let mut conn = lines(32, Limits::default());
    for _ in 0..4 {
        conn.send(b"0123456789").unwrap();
    }
    assert!(conn.is_backpressured());
    let mut io = Blocking::new(Mock::new(b"x\n", &[8], &[64]));
    assert_eq!(
        io.read(&mut conn, Duration::ZERO),
        Ok(ReadOutcome::NotWanted)
    );
    assert_eq!(io.flush(&mut conn, Duration::ZERO), Ok(44));
    assert_eq!(io.read(&mut conn, Duration::ZERO), Ok(ReadOutcome::Read(2)));
}

#[test]
fn try_read_and_try_write_never_block() {
    let mut conn = lines(32, Limits::default());
    let mut mock = Mock::new(b"hi\n", &[8], &[2]);
    mock.ready = false;
    let mut io = Blocking::new(mock);
    assert_eq!(
        io.try_read(&mut conn, Duration::ZERO),
        Ok(ReadOutcome::WouldBlock)
    );
    conn.send(b"hello").unwrap();
    assert_eq!(io.try_write(&mut conn, Duration::ZERO), Ok(0));

    io.get_mut().ready = true;
    assert_eq!(
        io.try_read(&mut conn, Duration::ZERO),
        Ok(ReadOutcome::Read(3))
    );
    // Ready for each write in turn, 2 bytes each: all of "hello\n".
    assert_eq!(io.try_write(&mut conn, Duration::ZERO), Ok(6));
    assert_eq!(io.get_ref().flushes, 0);
}

#[test]
fn run_on_a_parked_connection_reports_a_stall() {
    let mut conn = lines(32, Limits::default());
    let storage = conn
        .park(Buffers {
            rx: [0; 64],
            tx: [0; 64],
        })
        .unwrap();
    let mut io = Blocking::new(Mock::new(b"x\n", &[1], &[1]));
    assert_eq!(
        io.run(&mut conn, || Duration::ZERO, |_, _| {}),
        Err(IoError::Stalled)
    );
    // Nothing was lost: unparked, it runs.
    conn.unpark(storage).unwrap();
    assert_eq!(
        io.run(&mut conn, || Duration::ZERO, |_, _| {}),
        Ok(CloseReason::PeerClosed)
    );
}

#[test]
fn io_errors_keep_the_transport_kind() {
    use embedded_io::{Error as _, ErrorKind};
    assert_eq!(IoError::Transport(Broken).kind(), ErrorKind::BrokenPipe);
    assert_eq!(IoError::<Broken>::WriteZero.kind(), ErrorKind::WriteZero);
    let v = Violation::FrameTooLarge { max: 1 };
    assert_eq!(
        IoError::<Broken>::Protocol(v).kind(),
        ErrorKind::InvalidData
    );
    assert_eq!(
        IoError::Transport(Broken).to_string(),
        "transport error: wire cut"
    );
}

#[cfg(feature = "embedded-io-async")]
fn echo_async(input: &[u8], reads: &[usize], writes: &[usize]) -> Echoed {
    let mut conn = lines(32, Limits::default());
    let mut io = super::Async::new(Mock::new(input, reads, writes));
    let mut frames = Vec::new();
    let end = futures_lite::future::block_on(io.run(
        &mut conn,
        || Duration::ZERO,
        |frame, out| {
            frames.push(frame.to_vec());
            out.send(frame).unwrap();
        },
    ));
    (end, frames, io.into_inner().out)
}

#[cfg(feature = "embedded-io-async")]
#[test]
fn async_run_waits_on_the_transport_and_echoes() {
    let (end, frames, out) = echo_async(b"a\nbb\nccc\n", &[2], &[3]);
    assert_eq!(end, Ok(CloseReason::PeerClosed));
    assert_eq!(frames, [&b"a"[..], b"bb", b"ccc"]);
    assert_eq!(out, b"a\nbb\nccc\n");
}

#[cfg(feature = "embedded-io-async")]
#[test]
fn async_steps_report_eof_and_transport_errors() {
    use super::Async;
    use futures_lite::future::block_on;

    let mut conn = lines(32, Limits::default());
    let mut io = Async::new(Mock::new(b"x\n", &[8], &[8]));
    let now = Duration::ZERO;
    assert_eq!(block_on(io.read(&mut conn, now)), Ok(ReadOutcome::Read(2)));
    conn.poll_frames(|f, out| out.send(f).unwrap());
    assert_eq!(block_on(io.flush(&mut conn, now)), Ok(2));
    assert_eq!(
        block_on(io.read(&mut conn, now)),
        Ok(ReadOutcome::PeerClosed)
    );

    let mut conn = lines(32, Limits::default());
    let mut mock = Mock::new(b"x\n", &[8], &[8]);
    mock.fail_read_at = Some(0);
    let mut io = Async::new(mock);
    assert_eq!(
        block_on(io.read(&mut conn, now)),
        Err(IoError::Transport(Broken))
    );
    assert_eq!(conn.state(), State::Closed(CloseReason::Reset));
}

/// Payloads of lines: no `\r` or `\n`, at most 20 bytes (the frame limit
/// is 32).
fn payloads() -> impl Strategy<Value = Vec<Vec<u8>>> {
    proptest::collection::vec(proptest::collection::vec(b'a'..=b'z', 0..=20), 0..12)
}

fn sizes() -> impl Strategy<Value = Vec<usize>> {
    proptest::collection::vec(1usize..=24, 1..6)
}

proptest! {
    /// Whatever sizes the reads and writes come in, the same frames are
    /// handed out and the same bytes written.
    #[test]
    fn frames_and_replies_do_not_depend_on_read_and_write_sizes(
        payloads in payloads(),
        reads in sizes(),
        writes in sizes(),
    ) {
        let mut wire = Vec::new();
        for p in &payloads {
            wire.extend_from_slice(p);
            wire.push(b'\n');
        }
        let (end, frames, out) = echo_blocking(&wire, &reads, &writes);
        prop_assert_eq!(end, Ok(CloseReason::PeerClosed));
        prop_assert_eq!(&frames, &payloads);
        prop_assert_eq!(&out, &wire);

        #[cfg(feature = "embedded-io-async")]
        {
            let (end, frames, out) = echo_async(&wire, &reads, &writes);
            prop_assert_eq!(end, Ok(CloseReason::PeerClosed));
            prop_assert_eq!(&frames, &payloads);
            prop_assert_eq!(&out, &wire);
        }
    }
}
