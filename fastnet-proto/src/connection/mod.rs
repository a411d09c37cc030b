//! The sans-IO connection state machine.
//!
//! A [`Connection`] binds a decoder, an encoder, an rx [`Buffer`] and a tx
//! [`Ring`] (over storage the caller owns) and [`Limits`]. It never does IO
//! and never reads a clock: the driver feeds it bytes, EOF and the time, and
//! takes from it frames, bytes to write and the next deadline.

mod push;
mod types;

use core::num::NonZeroU32;
use core::time::Duration;

#[cfg(feature = "alloc")]
pub use push::PushQueue;
pub use push::SendError;
pub use types::{CloseReason, ConnStats, Limits, State, TlsFailure};

use crate::codec::{Decoded, Decoder, Encoder, Frame};
use crate::{Buffer, Error, Ring};

/// Storage for a connection's two buffers, named so they cannot be swapped
/// by accident.
#[derive(Debug)]
pub struct Buffers<R, T> {
    /// Receive storage: at least the decoder's maximum frame.
    pub rx: R,
    /// Transmit storage: queued replies.
    pub tx: T,
}

/// One framed connection, as a state machine.
///
/// # Method families
///
/// - getters (`&self`): [`state`](Self::state),
///   [`wants_read`](Self::wants_read), [`wants_write`](Self::wants_write),
///   [`should_yield`](Self::should_yield), [`stats`](Self::stats), …
/// - inputs, `handle_*`: [`handle_read`](Self::handle_read) (after reading
///   into [`read_buf`](Self::read_buf)), [`handle_eof`](Self::handle_eof),
///   [`handle_written`](Self::handle_written),
///   [`handle_timeout`](Self::handle_timeout),
///   [`handle_reset`](Self::handle_reset)
/// - outputs, `poll_*`: [`poll_frames`](Self::poll_frames) (frames to the
///   application, replies queued in the same step),
///   [`poll_transmit`](Self::poll_transmit) (bytes to write),
///   [`poll_timeout`](Self::poll_timeout) (when to call `handle_timeout`)
/// - commands: [`send`](Self::send) (push a frame), [`close`](Self::close),
///   [`abort`](Self::abort), [`begin_wake`](Self::begin_wake) (refill the
///   work budget); frames pushed from other threads arrive through
///   a [`PushQueue`] and [`handle_pushes`](Self::handle_pushes) (feature
///   `alloc`)
///
/// # The driver loop
///
/// After every input, drain the outputs in this order until none makes
/// progress, then wait:
///
/// 1. if [`read_buf`](Self::read_buf) gives a slice, read into it, then
///    [`handle_read`](Self::handle_read)`(n, now)` (or
///    [`handle_eof`](Self::handle_eof) on end of stream);
/// 2. [`poll_frames`](Self::poll_frames): the application sees each frame and
///    queues replies;
/// 3. write [`poll_transmit`](Self::poll_transmit)'s slices (one vectored
///    write), then [`handle_written`](Self::handle_written)`(n, now)`; this
///    may lift backpressure, so go back to 2;
///    With an edge-triggered poller, remember that the socket is still
///    readable when `read_buf` returned `None` for backpressure: no new
///    readiness event will come for bytes that are already waiting;
/// 4. stop when [`is_closed`](Self::is_closed); if
///    [`should_yield`](Self::should_yield) (a
///    [`wake_budget`](field@Limits::wake_budget) is set and spent), let other
///    connections run, then [`begin_wake`](Self::begin_wake) and go back to
///    1 without waiting; otherwise wait until the
///    socket is readable (if [`wants_read`](Self::wants_read)), writable (if
///    [`wants_write`](Self::wants_write)), or [`poll_timeout`](Self::poll_timeout)
///    passes, then [`handle_timeout`](Self::handle_timeout)`(now)`, and
///    [`begin_wake`](Self::begin_wake) before going back to 1.
///
/// ```
/// use core::time::Duration;
/// use fastnet_proto::codec::{DelimiterDecoder, DelimiterEncoder};
/// use fastnet_proto::connection::{Buffers, CloseReason, Connection, Limits, State};
///
/// let dec = DelimiterDecoder::lines(64).unwrap();
/// let enc = DelimiterEncoder::lines(64).unwrap();
/// let bufs = Buffers { rx: [0u8; 64], tx: [0u8; 64] };
/// let mut conn = Connection::new(dec, enc, bufs, Limits::default(), Duration::ZERO).unwrap();
///
/// // Bytes arrive (here copied in; a driver reads into `read_buf`), then EOF.
/// let now = Duration::from_millis(1);
/// conn.handle_bytes(b"ping\nping\n", now);
/// conn.handle_eof(now);
/// conn.poll_frames(|frame, out| {
///     assert_eq!(frame, b"ping");
///     out.send(b"pong").unwrap();
/// });
/// let (a, b) = conn.poll_transmit();
/// assert_eq!((a, b), (&b"pong\npong\n"[..], &b""[..]));
/// conn.handle_written(10, now);
/// assert_eq!(conn.state(), State::Closed(CloseReason::PeerClosed));
/// ```
#[derive(Debug)]
pub struct Connection<D, E, R, T> {
    decoder: D,
    rx: Buffer<R>,
    /// The reply side: what an [`Outbox`] writes to.
    sink: Sink<E, T>,
    limits: Kept,
    /// Why the connection is closing or closed (`Local`, unused, while
    /// open); with `phase`, the [`State`], kept apart so that the phase
    /// byte sits with the other flags instead of padding a 40-byte enum.
    reason: CloseReason,
    phase: Phase,
    /// The peer sent EOF; close once the buffered frames are processed.
    eof: bool,
    /// Over the byte limit; close once the frames within it are processed.
    over_byte_limit: bool,
    /// Storage swapped out for a placeholder while idle.
    parked: bool,
    last_activity: Nanos,
    last_read: Nanos,
    /// The latest time any input brought (for deadlines set by commands,
    /// which take no time of their own).
    clock: Nanos,
    /// While open: when the first byte of the unfinished frame in rx
    /// arrived (the read timer). While draining: when the drain began
    /// (the drain timer). One field for both keeps idle connections small,
    /// and so does keeping whether it runs in `partial_running` (with the
    /// other flags) instead of an `Option` twice its size.
    partial_at: Nanos,
    /// The read (or drain) timer runs since `partial_at`.
    partial_running: bool,
    /// The decoder asked for more bytes and none came since.
    needs_input: bool,
    /// A frame was handed out since the read timer was last settled.
    completed: bool,
    /// The last decode error that was stepped over.
    last_skipped: Option<Error>,
    /// While bytes are queued: when the write-stall timer started.
    stall_at: Nanos,
    /// The write-stall timer runs since `stall_at`.
    stall_running: bool,
    /// Bytes queued when the write-stall timer started and not written
    /// since; the oldest in the queue, so never more than it holds. A u32
    /// (saturating) to keep connections small: a queue of 4 GiB waits as
    /// if it held 4 GiB.
    stall_owed: u32,
    /// Work done since the driver last called `begin_wake`.
    budget_used: u32,
}

/// The reply side of a [`Connection`], apart from the receive side so that
/// an [`Outbox`] is one pointer: it lives across an async handler's
/// `.await`s in every connection task. The reply-queue flags sit here too,
/// in room the struct's alignment leaves anyway.
#[derive(Debug)]
struct Sink<E, T> {
    encoder: E,
    tx: Ring<T>,
    stats: ConnStats,
    /// The frame being handled asked to close the connection after it.
    close: bool,
    /// Backpressure: reply queue above the high-water mark.
    paused: bool,
    /// The push queue held frames at the last `handle_pushes`: a drain
    /// is not over until they are sent too.
    pushes_waiting: bool,
}

/// Queues replies while [`Connection::poll_frames`] hands out a frame.
#[derive(Debug)]
pub struct Outbox<'a, E, T> {
    sink: &'a mut Sink<E, T>,
}

impl<E: Encoder, T: AsRef<[u8]> + AsMut<[u8]>> Outbox<'_, E, T> {
    /// Encodes `payload` into the reply queue. Fails, queuing nothing, if the
    /// encoder refuses the payload or the queue lacks room for the whole
    /// frame ([`Error::BufferTooSmall`] with the free space).
    #[inline(always)]
    pub fn send(&mut self, payload: &[u8]) -> Result<(), Error> {
        enqueue(&self.sink.encoder, &mut self.sink.tx, payload)?;
        self.sink.stats.frames_out += 1;
        Ok(())
    }

    /// Bytes free in the reply queue.
    pub fn free(&self) -> usize {
        self.sink.tx.free()
    }

    /// Closes the connection after this frame: no more frames are handed
    /// out, queued replies are flushed, the reason is [`CloseReason::Local`].
    pub fn close(&mut self) {
        self.sink.close = true;
    }
}

/// A frame lent out by [`Connection::poll_frame`]; consumed on drop.
#[derive(Debug)]
pub struct FrameRef<'a, D, E, R, T>
where
    D: Decoder,
    E: Encoder,
    R: AsRef<[u8]> + AsMut<[u8]>,
    T: AsRef<[u8]> + AsMut<[u8]>,
{
    conn: &'a mut Connection<D, E, R, T>,
    // The frame's fields one by one, not a `Frame`: moved as a whole, the
    // frame was copied in one 16-byte load from the decoder's 8-byte
    // stores just before, a store-forwarding stall on every frame.
    start: usize,
    end: usize,
    consumed: usize,
}

impl<D, E, R, T> FrameRef<'_, D, E, R, T>
where
    D: Decoder,
    E: Encoder,
    R: AsRef<[u8]> + AsMut<[u8]>,
    T: AsRef<[u8]> + AsMut<[u8]>,
{
    /// The frame's payload.
    pub fn payload(&self) -> &[u8] {
        self.conn
            .rx
            .filled()
            .get(self.start..self.end)
            .unwrap_or(&[])
    }

    /// The payload and an [`Outbox`] for replies, borrowed together.
    pub fn parts(&mut self) -> (&[u8], Outbox<'_, E, T>) {
        let conn = &mut *self.conn;
        let payload = conn.rx.filled().get(self.start..self.end).unwrap_or(&[]);
        (
            payload,
            Outbox {
                sink: &mut conn.sink,
            },
        )
    }

    /// Queues a reply; see [`Outbox::send`].
    pub fn send(&mut self, payload: &[u8]) -> Result<(), Error> {
        self.parts().1.send(payload)
    }

    /// Closes the connection after this frame; see [`Outbox::close`].
    pub fn close(&mut self) {
        self.conn.sink.close = true;
    }
}

impl<D, E, R, T> Drop for FrameRef<'_, D, E, R, T>
where
    D: Decoder,
    E: Encoder,
    R: AsRef<[u8]> + AsMut<[u8]>,
    T: AsRef<[u8]> + AsMut<[u8]>,
{
    fn drop(&mut self) {
        let close = core::mem::take(&mut self.conn.sink.close);
        self.conn.finish_frame(self.consumed, close);
    }
}

// Forced, as are `Outbox::send`, `poll_frame` and `next_frame`: once both
// drivers share one codec type, each has two callers and the compiler
// stopped inlining them, about 50 instructions a pipelined frame
// (BENCHMARKS.md, "The reply path and a codec type per framing").
#[inline(always)]
fn enqueue<E: Encoder, T: AsRef<[u8]> + AsMut<[u8]>>(
    encoder: &E,
    tx: &mut Ring<T>,
    payload: &[u8],
) -> Result<usize, Error> {
    // Validated once, inside `encode_with`, and written optimistically:
    // a frame that does not fit is not committed, which costs the copy
    // only on that (rare) error instead of a second validation on every
    // reply.
    let mut append = tx.appender();
    let len = encoder.encode_with(payload, |piece| append.put(piece))?;
    if !append.commit() {
        return Err(Error::BufferTooSmall {
            needed: len,
            capacity: tx.free(),
        });
    }
    Ok(len)
}

/// When a timer started at `since` fires; `None` when it is off or would
/// fire past the end of time (a timeout of [`Duration::MAX`] is never).
/// [`Limits`] as a connection keeps them, in about half the room (every
/// idle connection holds a copy): timeouts in nanoseconds, the byte limit
/// without its `Option`, the watermarks resolved.
#[derive(Clone, Copy, Debug)]
struct Kept {
    idle: Timeout,
    read: Timeout,
    write_stall: Timeout,
    drain: Timeout,
    /// `u64::MAX`: no limit (as many bytes never arrive).
    max_bytes_in: u64,
    high_water: usize,
    low_water: usize,
    skip_malformed: bool,
    wake_budget: Option<NonZeroU32>,
}

impl Kept {
    fn new(limits: &Limits, high_water: usize, low_water: usize) -> Self {
        Kept {
            idle: Timeout::from(limits.idle_timeout),
            read: Timeout::from(limits.read_timeout),
            write_stall: Timeout::from(limits.write_stall_timeout),
            drain: Timeout::from(limits.drain_timeout),
            max_bytes_in: limits.max_bytes_in.unwrap_or(u64::MAX),
            high_water,
            low_water,
            skip_malformed: limits.skip_malformed,
            wake_budget: limits.wake_budget,
        }
    }

    fn limits(&self) -> Limits {
        Limits::none()
            .idle_timeout(self.idle.get())
            .read_timeout(self.read.get())
            .write_stall_timeout(self.write_stall.get())
            .drain_timeout(self.drain.get())
            .max_bytes_in((self.max_bytes_in != u64::MAX).then_some(self.max_bytes_in))
            .tx_high_water(Some(self.high_water))
            .tx_low_water(Some(self.low_water))
            .skip_malformed(self.skip_malformed)
            .wake_budget(self.wake_budget)
    }
}

/// A timeout in nanoseconds; `u64::MAX` is none. A timeout that long
/// (584 years) would never fire anyway: the clock saturates there.
#[derive(Clone, Copy, Debug)]
struct Timeout(u64);

impl Timeout {
    fn get(self) -> Option<Duration> {
        (self.0 != u64::MAX).then(|| Duration::from_nanos(self.0))
    }

    /// When a timer started at `since` fires, if ever.
    fn deadline(self, since: Duration) -> Option<Duration> {
        self.get().and_then(|t| since.checked_add(t))
    }
}

impl From<Option<Duration>> for Timeout {
    fn from(t: Option<Duration>) -> Self {
        Timeout(t.map_or(u64::MAX, |t| Nanos::from(t).0))
    }
}

impl<D, E, R, T> Connection<D, E, R, T>
where
    D: Decoder,
    E: Encoder,
    R: AsRef<[u8]> + AsMut<[u8]>,
    T: AsRef<[u8]> + AsMut<[u8]>,
{
    /// A new, open connection; `now` starts the idle timer.
    ///
    /// Fails if the limits are not [valid](Limits::validate), the rx
    /// storage cannot hold a maximum-size frame or the watermarks do not
    /// fit the tx storage.
    pub fn new(
        decoder: D,
        encoder: E,
        buffers: Buffers<R, T>,
        limits: Limits,
        now: Duration,
    ) -> Result<Self, Error> {
        limits.validate()?;
        let rx = Buffer::new(buffers.rx);
        let tx = Ring::new(buffers.tx);
        if rx.capacity() < decoder.max_frame() {
            return Err(Error::InvalidConfig {
                reason: "the rx buffer must hold at least one maximum-size frame",
            });
        }
        let high_water = limits.tx_high_water.unwrap_or(tx.capacity() / 2);
        let low_water = limits.tx_low_water.unwrap_or(high_water / 2);
        if high_water > tx.capacity() || low_water > high_water || high_water == 0 {
            return Err(Error::InvalidConfig {
                reason: "tx watermarks must satisfy low <= high <= tx capacity and high > 0",
            });
        }
        // Resolved once; `limits()` then shows the marks in force.
        let limits = Kept::new(&limits, high_water, low_water);
        Ok(Connection {
            decoder,
            rx,
            sink: Sink {
                encoder,
                tx,
                stats: ConnStats::default(),
                close: false,
                paused: false,
                pushes_waiting: false,
            },
            limits,
            reason: CloseReason::Local,
            phase: Phase::Open,
            eof: false,
            over_byte_limit: false,
            parked: false,
            last_activity: Nanos::from(now),
            last_read: Nanos::from(now),
            clock: Nanos::from(now),
            partial_at: Nanos(0),
            partial_running: false,
            needs_input: false,
            completed: false,
            last_skipped: None,
            stall_at: Nanos(0),
            stall_running: false,
            stall_owed: 0,
            budget_used: 0,
        })
    }

    /// Makes the connection new again for another peer, keeping its
    /// storage and configuration (for pools).
    pub fn reset(&mut self, now: Duration) {
        self.decoder.reset();
        self.rx.clear();
        self.sink.tx.clear();
        self.set_state(State::Open);
        self.eof = false;
        self.over_byte_limit = false;
        self.sink.paused = false;
        self.sink.pushes_waiting = false;
        self.last_activity = Nanos::from(now);
        self.last_read = Nanos::from(now);
        self.clock = Nanos::from(now);
        self.partial_running = false;
        self.needs_input = false;
        self.completed = false;
        self.last_skipped = None;
        self.stall_running = false;
        self.stall_owed = 0;
        self.budget_used = 0;
        self.sink.stats = ConnStats::default();
    }

    // ---- getters ----

    /// The current state.
    pub fn state(&self) -> State {
        match self.phase {
            Phase::Open => State::Open,
            Phase::Draining => State::Draining(self.reason),
            Phase::Closed => State::Closed(self.reason),
        }
    }

    /// Whether the connection is closed (the driver should drop the socket).
    pub fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
    }

    /// Why the connection is closing or closed, if it is.
    pub fn close_reason(&self) -> Option<CloseReason> {
        (self.phase != Phase::Open).then_some(self.reason)
    }

    /// Whether the connection wants bytes from the socket: open, not at EOF,
    /// and not held back by unsent replies.
    pub fn wants_read(&self) -> bool {
        self.phase == Phase::Open && !self.eof && !self.over_byte_limit && !self.sink.paused
    }

    /// Whether a [`poll_frames`](Self::poll_frames) /
    /// [`poll_frame`](Self::poll_frame) call can make progress: there are
    /// bytes the decoder has not yet said are incomplete, or an EOF or a
    /// byte limit to act on, and replies are not holding frames back. False
    /// right after the decoder asked for more bytes, until some arrive.
    pub fn wants_poll(&self) -> bool {
        self.phase == Phase::Open
            && !self.sink.paused
            && !self.budget_spent()
            && (self.eof || self.over_byte_limit || (!self.rx.is_empty() && !self.needs_input))
    }

    /// The last decode error that was stepped over (an oversized frame
    /// under the `Skip` policy, or a malformed frame with
    /// [`Limits::skip_malformed`](field@Limits::skip_malformed)), for logging.
    pub fn last_skipped(&self) -> Option<Error> {
        self.last_skipped
    }
    /// Whether this wake's [work budget](field@Limits::wake_budget) is spent:
    /// the driver should write what is queued, let other connections run,
    /// then come back, call [`begin_wake`](Self::begin_wake) and carry on
    /// without waiting for readiness (bytes may be waiting in the socket
    /// and frames in the buffer). Always false without a budget.
    pub fn should_yield(&self) -> bool {
        !self.is_closed() && self.budget_spent()
    }

    /// Whether there are bytes to write.
    pub fn wants_write(&self) -> bool {
        !self.is_closed() && !self.sink.tx.is_empty()
    }

    /// Whether reading is paused because the peer is not draining replies.
    pub fn is_backpressured(&self) -> bool {
        self.sink.paused
    }

    /// Counters since the connection was made (or [`reset`](Self::reset)),
    /// or since the last [`take_stats`](Self::take_stats).
    pub fn stats(&self) -> &ConnStats {
        &self.sink.stats
    }

    /// The counters as [`stats`](Self::stats) shows them, zeroing them: a
    /// driver that adds each wake-up's traffic to its server's totals
    /// takes them instead of keeping a copy to subtract (48 bytes less in
    /// every connection).
    pub fn take_stats(&mut self) -> ConnStats {
        core::mem::take(&mut self.sink.stats)
    }

    /// The limits in force, with the watermarks resolved. A timeout of
    /// 2^64 nanoseconds (584 years) or more shows as `None`: it never
    /// fires.
    pub fn limits(&self) -> Limits {
        self.limits.limits()
    }

    /// Bytes received and not yet consumed as frames.
    pub fn rx_len(&self) -> usize {
        self.rx.len()
    }

    /// Reply bytes queued and not yet written.
    pub fn tx_len(&self) -> usize {
        self.sink.tx.len()
    }

    /// Bytes free in the reply queue (0 while parked).
    pub fn tx_free(&self) -> usize {
        self.sink.tx.free()
    }

    /// The decoder.
    pub fn decoder(&self) -> &D {
        &self.decoder
    }

    /// The encoder.
    pub fn encoder(&self) -> &E {
        &self.sink.encoder
    }

    // ---- inputs ----

    /// Where to read bytes from the socket into, or `None` if the
    /// connection does not want input now (see
    /// [`wants_read`](Self::wants_read)) or this wake's budget is spent
    /// (see [`should_yield`](Self::should_yield)). Never longer than the byte limit
    /// allows plus one byte, so a peer going over the limit is seen.
    pub fn read_buf(&mut self) -> Option<&mut [u8]> {
        if !self.wants_read() || self.parked || self.budget_spent() {
            return None;
        }
        // Offer all free space: moving the unfinished frame (at most one
        // frame's bytes) is cheaper than a second read syscall.
        if self.rx.spare_len() < self.rx.free() {
            self.rx.compact();
        }
        let allowance = match self.limits.max_bytes_in {
            u64::MAX => usize::MAX,
            max => usize::try_from(max.saturating_sub(self.sink.stats.bytes_in))
                .unwrap_or(usize::MAX)
                .saturating_add(1),
        };
        let spare = self.rx.spare_mut();
        let n = spare.len().min(allowance);
        if n == 0 {
            None
        } else {
            Some(&mut spare[..n])
        }
    }

    /// `n` bytes were read into the slice [`read_buf`](Self::read_buf) gave.
    /// `n == 0` is not EOF; call [`handle_eof`](Self::handle_eof) for that.
    ///
    /// # Panics
    ///
    /// If `n` is larger than the slice `read_buf` returned (a driver bug).
    pub fn handle_read(&mut self, n: usize, now: Duration) {
        if n == 0 {
            return;
        }
        if self.rx.is_empty() && !self.decoder.is_skipping() {
            // A new frame starts with these bytes.
            self.partial_running = false;
        }
        self.rx.commit(n);
        self.spend();
        self.needs_input = false;
        self.sink.stats.bytes_in += n as u64;
        self.last_activity = Nanos::from(now);
        self.last_read = Nanos::from(now);
        self.clock = Nanos::from(now);
        let max = self.limits.max_bytes_in;
        if self.sink.stats.bytes_in > max {
            let over = (self.sink.stats.bytes_in - max) as usize;
            self.rx.truncate(self.rx.len().saturating_sub(over));
            self.sink.stats.bytes_in = max;
            self.over_byte_limit = true;
        }
    }

    /// Copies `bytes` in as if read from the socket; returns how many fit
    /// (all of them unless the connection does not want input or its
    /// buffer is full). For transports that hand out bytes, like TLS.
    pub fn handle_bytes(&mut self, bytes: &[u8], now: Duration) -> usize {
        let Some(buf) = self.read_buf() else { return 0 };
        let n = buf.len().min(bytes.len());
        buf[..n].copy_from_slice(&bytes[..n]);
        self.handle_read(n, now);
        n
    }

    /// The peer sent EOF. Frames already buffered are still processed by
    /// the next [`poll_frames`](Self::poll_frames) and their replies
    /// flushed; then the connection closes with
    /// [`CloseReason::PeerClosed`].
    pub fn handle_eof(&mut self, now: Duration) {
        self.clock = Nanos::from(now);
        if self.phase == Phase::Open {
            self.eof = true;
            self.needs_input = false;
            self.last_activity = Nanos::from(now);
        }
    }

    /// `n` bytes of [`poll_transmit`](Self::poll_transmit) were written.
    pub fn handle_written(&mut self, n: usize, now: Duration) {
        let n = n.min(self.sink.tx.len());
        if n == 0 {
            return;
        }
        self.sink.tx.consume(n);
        self.sink.stats.bytes_out += n as u64;
        self.last_activity = Nanos::from(now);
        self.clock = Nanos::from(now);
        self.stall_owed = self
            .stall_owed
            .saturating_sub(u32::try_from(n).unwrap_or(u32::MAX));
        if self.stall_owed == 0 {
            // Everything owed went out in time: start over with what is
            // queued now, if anything.
            self.stall_running = false;
            self.arm_stall();
        }
        if self.sink.paused && self.sink.tx.len() <= self.low_water() {
            self.sink.paused = false;
        }
        self.settle_drain();
    }

    /// Draining and nothing left to send: closed.
    fn settle_drain(&mut self) {
        if let State::Draining(reason) = self.state() {
            if self.sink.tx.is_empty() && !self.sink.pushes_waiting {
                self.set_state(State::Closed(reason));
            }
        }
    }

    /// Time passed: fires the timeouts that are due. The idle and
    /// write-stall timeouts close at once (the peer is not reading, so
    /// there is nothing to flush to; when both are due the earlier wins);
    /// the read timeout flushes queued replies first. A connection that
    /// was already closing keeps its reason.
    pub fn handle_timeout(&mut self, now: Duration) {
        self.clock = Nanos::from(now);
        if self.is_closed() {
            return;
        }
        if let (State::Draining(reason), Some(since)) = (self.state(), self.partial_since()) {
            if self.limits.drain.deadline(since).is_some_and(|d| now >= d) {
                // The peer does not take what is queued: give up on it.
                self.set_state(State::Closed(reason));
                return;
            }
        }
        let idle = self
            .limits
            .idle
            .deadline(self.last_activity.get())
            .filter(|&d| now >= d);
        let stall = self.stall_deadline().filter(|&d| now >= d);
        let due = match (idle, stall) {
            (Some(i), Some(s)) if i < s => Some(CloseReason::IdleTimeout),
            (_, Some(_)) => Some(CloseReason::WriteStall),
            (Some(_), None) => Some(CloseReason::IdleTimeout),
            (None, None) => None,
        };
        if let Some(due) = due {
            self.set_state(State::Closed(self.close_reason().unwrap_or(due)));
            return;
        }
        if let (State::Open, Some(since)) = (self.state(), self.partial_since()) {
            if self.limits.read.deadline(since).is_some_and(|d| now >= d) {
                self.partial_running = false;
                self.begin_close(CloseReason::ReadTimeout);
            }
        }
    }

    /// The transport failed (reset, IO error): closed at once with
    /// [`CloseReason::Reset`], unless already closed.
    pub fn handle_reset(&mut self) {
        self.handle_failure(CloseReason::Reset);
    }

    /// The transport failed for `reason` (a driver-level reason such as
    /// [`CloseReason::Tls`]): closed at once, queued replies dropped, unless
    /// already closed.
    pub fn handle_failure(&mut self, reason: CloseReason) {
        if !self.is_closed() {
            self.set_state(State::Closed(reason));
        }
    }

    /// Moves frames pushed from elsewhere (a [`PushQueue`], which the
    /// driver shares with the pushing threads) into the transmit ring, in
    /// order and whole, as many as fit below the high-water mark; they are
    /// then written like replies. Also while draining: a graceful close
    /// delivers what was pushed before it (seal the queue, call this, then
    /// [`close`](Self::close)), and the connection is not closed before
    /// the queue is empty or the drain timeout passes. Once it is closed,
    /// the queue is closed and what it still holds is dropped and counted
    /// ([`ConnStats::pushes_dropped`]). Returns the frames moved.
    ///
    /// Does nothing while the connection is [parked](Self::park): unpark it
    /// first when the queue is not empty.
    #[cfg(feature = "alloc")]
    pub fn handle_pushes(&mut self, queue: &mut PushQueue, now: Duration) -> usize {
        self.clock = Nanos::from(now);
        if self.is_closed() {
            self.sink.stats.pushes_dropped += queue.close() as u64;
            return 0;
        }
        if self.parked {
            return 0;
        }
        let mut moved = 0;
        while let Some(len) = queue.front_len() {
            if self.sink.tx.len() >= self.high_water() || len > self.sink.tx.free() {
                break;
            }
            // Fits: checked just above, so no piece is refused.
            queue.pop_front_with(|piece| {
                let _ = self.sink.tx.push(piece);
            });
            moved += 1;
        }
        self.sink.stats.frames_out += moved as u64;
        if self.sink.tx.len() >= self.high_water() {
            self.sink.paused = true;
        }
        self.arm_stall();
        self.sink.pushes_waiting = !queue.is_empty();
        self.settle_drain();
        moved
    }

    // ---- outputs ----

    /// Hands every complete frame in the rx buffer to `on_frame`, with an
    /// [`Outbox`] to queue replies in the same step. Returns how many frames
    /// were handed out.
    ///
    /// Stops early when the reply queue reaches the high-water mark (call
    /// again after [`handle_written`](Self::handle_written) drains it) or
    /// the connection starts closing. Frames that were complete before a
    /// bad one are handed out before the connection closes.
    pub fn poll_frames<F>(&mut self, mut on_frame: F) -> usize
    where
        F: FnMut(&[u8], &mut Outbox<'_, E, T>),
    {
        let mut count = 0;
        while let Some(mut frame) = self.poll_frame() {
            let (payload, mut out) = frame.parts();
            on_frame(payload, &mut out);
            count += 1;
        }
        count
    }

    /// Lends out the next complete frame, or `None` when there is none to
    /// hand out now (more bytes needed, backpressure, closing). The frame is
    /// consumed when the returned [`FrameRef`] is dropped, so an async
    /// handler can hold it, and queue replies through it, across `.await`s
    /// without copying it out.
    ///
    /// The same rules as [`poll_frames`](Self::poll_frames) apply; call it
    /// until it returns `None`. Leaking a `FrameRef` (with `mem::forget`)
    /// leaves its frame in the buffer to be decoded again, which for COBS,
    /// decoded in place, yields garbage: don't.
    #[inline(always)]
    pub fn poll_frame(&mut self) -> Option<FrameRef<'_, D, E, R, T>> {
        let Frame {
            consumed,
            start,
            end,
        } = self.next_frame()?;
        self.sink.close = false;
        Some(FrameRef {
            conn: self,
            start,
            end,
            consumed,
        })
    }

    /// Decodes up to the next frame to hand out, acting on skips and errors.
    #[inline(always)]
    fn next_frame(&mut self) -> Option<Frame> {
        while self.phase == Phase::Open && !self.sink.paused && !self.budget_spent() {
            match self.decoder.decode(self.rx.filled_mut()) {
                Ok(Decoded::NeedMore { .. }) => {
                    self.needs_input = true;
                    self.settle_partial();
                    return None;
                }
                Ok(Decoded::Skip(n)) => {
                    self.rx.consume(n);
                    self.stepped_over();
                }
                Ok(Decoded::Frame(frame)) => return Some(frame),
                Err(e) => {
                    let oversize = matches!(e.error, Error::FrameTooLarge { .. });
                    if e.can_continue && (oversize || self.limits.skip_malformed) {
                        self.sink.stats.frames_skipped += 1;
                        self.last_skipped = Some(e.error);
                        self.rx.consume(e.consumed);
                        self.stepped_over();
                        continue;
                    }
                    let reason = if oversize {
                        CloseReason::FrameTooLarge
                    } else {
                        CloseReason::Protocol(e.error)
                    };
                    self.rx.clear();
                    self.begin_close(reason);
                }
            }
        }
        None
    }

    /// A lent-out frame is done with: consume it and apply what it caused.
    fn finish_frame(&mut self, consumed: usize, close: bool) {
        self.rx.consume(consumed);
        self.sink.stats.frames_in += 1;
        self.completed = true;
        self.spend();
        self.arm_stall();
        if self.sink.tx.len() >= self.high_water() {
            self.sink.paused = true;
            self.partial_running = false;
        }
        if close {
            self.begin_close(CloseReason::Local);
        }
    }

    /// The bytes to write, oldest first, as one or two slices for one
    /// vectored write. Both are empty when there is nothing to write.
    pub fn poll_transmit(&self) -> (&[u8], &[u8]) {
        if self.is_closed() {
            return (&[], &[]);
        }
        self.sink.tx.as_slices()
    }

    /// When [`handle_timeout`](Self::handle_timeout) must next be called,
    /// or `None` if no timer is armed.
    pub fn poll_timeout(&self) -> Option<Duration> {
        if self.is_closed() {
            return None;
        }
        let idle = self.limits.idle.deadline(self.last_activity.get());
        let timer = match self.state() {
            State::Open => self.limits.read,
            _ => self.limits.drain,
        };
        let partial_or_drain = self.partial_since().and_then(|s| timer.deadline(s));
        [idle, partial_or_drain, self.stall_deadline()]
            .into_iter()
            .flatten()
            .min()
    }

    // ---- commands ----

    /// Queues a frame to send outside of [`poll_frames`](Self::poll_frames)
    /// (server push). Fails if the connection is closing, the encoder
    /// refuses the payload, or the reply queue lacks room.
    pub fn send(&mut self, payload: &[u8]) -> Result<(), Error> {
        if self.phase != Phase::Open {
            return Err(Error::ConnectionClosed);
        }
        if self.parked {
            return Err(Error::BufferTooSmall {
                needed: payload.len(),
                capacity: 0,
            });
        }
        enqueue(&self.sink.encoder, &mut self.sink.tx, payload)?;
        self.sink.stats.frames_out += 1;
        if self.sink.tx.len() >= self.high_water() {
            self.sink.paused = true;
        }
        self.arm_stall();
        Ok(())
    }

    /// Closes gracefully: stop reading, flush queued replies, then
    /// [`CloseReason::Local`].
    pub fn close(&mut self) {
        self.begin_close(CloseReason::Local);
    }

    /// Closes at once, dropping queued replies ([`CloseReason::Local`]
    /// unless a reason was already set). For shutdown deadlines.
    pub fn abort(&mut self) {
        if !self.is_closed() {
            let reason = self.close_reason().unwrap_or(CloseReason::Local);
            self.set_state(State::Closed(reason));
        }
    }

    /// Starts a new wake: the [work budget](field@Limits::wake_budget) is full
    /// again. A driver that sets a budget calls this each time it comes
    /// back to the connection (after waiting or yielding).
    pub fn begin_wake(&mut self) {
        self.budget_used = 0;
    }

    /// Whether both buffers are empty: no partial frame, no queued reply.
    /// Only then can the storage be [parked](Self::park).
    pub fn is_quiescent(&self) -> bool {
        self.rx.is_empty() && self.sink.tx.is_empty()
    }

    /// Whether the connection is parked (holds placeholder storage).
    pub fn is_parked(&self) -> bool {
        self.parked
    }

    /// Swaps the storage out while the connection is idle, so a driver can
    /// return it to a pool: thousands of idle connections then hold no
    /// buffers. `placeholder` (typically zero-length) takes its place. Gives
    /// `placeholder` back as `Err` if a partial frame or queued reply still
    /// needs the storage.
    ///
    /// While parked, the connection offers no [`read_buf`](Self::read_buf)
    /// and takes no [`send`](Self::send); [`unpark`](Self::unpark) it first.
    pub fn park(&mut self, placeholder: Buffers<R, T>) -> Result<Buffers<R, T>, Buffers<R, T>> {
        if self.parked || !self.is_quiescent() {
            return Err(placeholder);
        }
        self.parked = true;
        Ok(self.swap_storage(placeholder))
    }

    /// Puts real storage back after [`park`](Self::park) and returns the
    /// placeholder. Fails, handing `buffers` back, if the rx storage cannot
    /// hold a maximum-size frame or the tx storage is below the high-water
    /// mark.
    pub fn unpark(&mut self, buffers: Buffers<R, T>) -> Result<Buffers<R, T>, Buffers<R, T>> {
        let rx_ok = buffers.rx.as_ref().len() >= self.decoder.max_frame();
        let tx_ok = buffers.tx.as_ref().len() >= self.high_water();
        if !self.parked || !rx_ok || !tx_ok {
            return Err(buffers);
        }
        self.parked = false;
        Ok(self.swap_storage(buffers))
    }

    fn swap_storage(&mut self, buffers: Buffers<R, T>) -> Buffers<R, T> {
        let rx = core::mem::replace(&mut self.rx, Buffer::new(buffers.rx));
        let tx = core::mem::replace(&mut self.sink.tx, Ring::new(buffers.tx));
        Buffers {
            rx: rx.into_inner(),
            tx: tx.into_inner(),
        }
    }

    /// Gives the storage back.
    pub fn into_buffers(self) -> Buffers<R, T> {
        Buffers {
            rx: self.rx.into_inner(),
            tx: self.sink.tx.into_inner(),
        }
    }

    // ---- internals ----

    /// Replies queued at which frames stop being handed out (resolved in
    /// `new`, so never `None`).
    fn high_water(&self) -> usize {
        self.limits.high_water
    }

    /// Replies queued at which frames are handed out again.
    fn low_water(&self) -> usize {
        self.limits.low_water
    }

    /// One unit of this wake's work budget was used.
    fn spend(&mut self) {
        self.budget_used = self.budget_used.saturating_add(1);
    }

    fn budget_spent(&self) -> bool {
        self.limits
            .wake_budget
            .is_some_and(|b| self.budget_used >= b.get())
    }

    /// The decoder stepped over bytes without a frame (padding, a skipped
    /// or malformed frame): once no skip is under way, that frame is over,
    /// as if handed out, so the read timer restarts with the next one.
    fn stepped_over(&mut self) {
        self.spend();
        if !self.decoder.is_skipping() {
            self.completed = true;
        }
    }

    /// Starts the write-stall timer if bytes are queued and it is not
    /// running.
    fn arm_stall(&mut self) {
        if !self.stall_running && !self.sink.tx.is_empty() {
            self.stall_at = self.clock;
            self.stall_running = true;
            self.stall_owed = u32::try_from(self.sink.tx.len()).unwrap_or(u32::MAX);
        }
    }

    fn set_state(&mut self, state: State) {
        (self.phase, self.reason) = match state {
            State::Open => (Phase::Open, CloseReason::Local),
            State::Draining(r) => (Phase::Draining, r),
            State::Closed(r) => (Phase::Closed, r),
        };
    }

    /// Starts the read (or drain) timer at `at`.
    fn start_partial(&mut self, at: Nanos) {
        self.partial_at = at;
        self.partial_running = true;
    }

    /// When the read (or drain) timer started, if it runs.
    fn partial_since(&self) -> Option<Duration> {
        self.partial_running.then(|| self.partial_at.get())
    }

    fn stall_deadline(&self) -> Option<Duration> {
        self.stall_running
            .then(|| self.limits.write_stall.deadline(self.stall_at.get()))
            .flatten()
    }

    fn begin_close(&mut self, reason: CloseReason) {
        if self.phase == Phase::Open {
            let next = if self.sink.tx.is_empty() && !self.sink.pushes_waiting {
                State::Closed(reason)
            } else {
                self.start_partial(self.clock);
                State::Draining(reason)
            };
            self.set_state(next);
        }
    }

    /// After the decoder asked for more bytes: arm or disarm the read
    /// timer, and close if the input has ended.
    fn settle_partial(&mut self) {
        if self.rx.is_empty() && !self.decoder.is_skipping() {
            self.partial_running = false;
        } else if self.completed || !self.partial_running {
            self.start_partial(self.last_read);
        }
        self.completed = false;
        if self.over_byte_limit {
            self.begin_close(CloseReason::ByteLimit);
        } else if self.eof {
            self.begin_close(CloseReason::PeerClosed);
        }
    }
}

#[cfg(test)]
mod limit_tests;
#[cfg(any(test, fuzzing))]
#[doc(hidden)]
pub mod model;
#[cfg(all(any(test, fuzzing), feature = "alloc"))]
#[doc(hidden)]
pub mod stress;
#[cfg(test)]
mod tests;

/// [`State`] without its reason (see `Connection::reason`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Open,
    Draining,
    Closed,
}

/// A time (since the driver's epoch) in nanoseconds: half the size of a
/// `Duration`, which matters for the three a connection keeps (idle
/// connections are many). Times past about 584 years are the end of time,
/// `Duration::MAX`, as a caller's `Duration::MAX` is: deadlines counted
/// from it never come.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Nanos(u64);

impl Nanos {
    fn get(self) -> Duration {
        match self.0 {
            u64::MAX => Duration::MAX,
            n => Duration::from_nanos(n),
        }
    }
}

impl From<Duration> for Nanos {
    fn from(d: Duration) -> Self {
        Nanos(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
    }
}
