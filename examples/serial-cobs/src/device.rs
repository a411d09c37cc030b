//! The device: a [`Connection`] over a serial port, driven from the main
//! loop.

use core::time::Duration;

use embedded_io::{Read, ReadReady, Write, WriteReady};
use fastnet_proto::codec::{CobsDecoder, CobsEncoder, Oversize};
use fastnet_proto::connection::{Buffers, CloseReason, Limits};
use fastnet_proto::io::{Blocking, ReadOutcome};
use fastnet_proto::{Connection, Error};

use crate::protocol::{self, Reply, ERR_FRAMING, ERR_TIMEOUT, ERR_TOO_LARGE};

/// Longest frame on the wire, the `0x00` included.
pub const MAX_FRAME: usize = 64;
/// Receive buffer: one maximum frame.
pub const RX_LEN: usize = MAX_FRAME;
/// Transmit buffer: two maximum frames, so a reply always fits below the
/// default high-water mark (half of it).
pub const TX_LEN: usize = 2 * MAX_FRAME;
/// A frame started but not finished within this is dropped (at 115 200
/// baud a whole frame takes under 6 ms).
pub const READ_TIMEOUT: Duration = Duration::from_millis(20);

/// What the device has done since boot (a [`STATUS`](crate::STATUS) reply
/// sends them in this order).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Requests answered with a reply (not an error).
    pub served: u32,
    /// Frames with a bad CRC.
    pub bad_crc: u32,
    /// Requests with an unknown command.
    pub unknown: u32,
    /// Payloads too short to hold `seq`, `cmd` and `crc8`.
    pub short: u32,
    /// Malformed COBS frames.
    pub framing: u32,
    /// Unfinished frames dropped by the read timeout.
    pub timeouts: u32,
    /// Oversized frames skipped.
    pub oversize: u32,
}

impl Counters {
    /// The counters in wire order.
    pub fn as_array(&self) -> [u32; 7] {
        [
            self.served,
            self.bad_crc,
            self.unknown,
            self.short,
            self.framing,
            self.timeouts,
            self.oversize,
        ]
    }
}

type SerialConn = Connection<CobsDecoder, CobsEncoder, [u8; RX_LEN], [u8; TX_LEN]>;

/// The device: its connection (buffers inside, no heap) and counters.
#[derive(Debug)]
pub struct Device {
    conn: SerialConn,
    counters: Counters,
    /// The connection's `frames_skipped` already reported.
    skipped_seen: u64,
}

impl Device {
    /// A device whose link starts now. Fails only if the constants above
    /// do not fit together.
    pub fn new(now: Duration) -> Result<Self, Error> {
        let conn = Connection::new(
            // Oversized frames are skipped, not fatal: a serial link
            // resynchronises at the next 0x00.
            CobsDecoder::new(MAX_FRAME)?.oversize(Oversize::Skip),
            CobsEncoder::new(MAX_FRAME)?,
            Buffers {
                rx: [0; RX_LEN],
                tx: [0; TX_LEN],
            },
            // A quiet serial link is normal: no idle timeout.
            Limits::default().read_timeout(Some(READ_TIMEOUT)),
            now,
        )?;
        Ok(Device {
            conn,
            counters: Counters::default(),
            skipped_seen: 0,
        })
    }

    /// The counters.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// One pass of the main loop: fire a due timeout, then read, serve and
    /// write until nothing makes progress (the drain order of the
    /// [`Connection`] docs). Call it whenever the UART interrupts or the
    /// tick advances.
    ///
    /// `port` is any embedded-io serial port (a UART driver with a receive
    /// FIFO or DMA ring); its readiness is asked first, so the pass never
    /// blocks. A port error (overrun, framing, parity) loses bytes: the
    /// connection is reset and the host resends on its own timeout.
    pub fn poll<P>(&mut self, port: &mut P, now: Duration)
    where
        P: Read + ReadReady + Write + WriteReady,
    {
        let mut port = Blocking::new(port);
        if self.conn.poll_timeout().is_some_and(|at| at <= now) {
            self.conn.handle_timeout(now);
        }
        loop {
            let mut progress = false;

            // 1. Bytes from the UART. A port error or an end of stream
            //    closes the connection, recovered from in step 4.
            if let Ok(ReadOutcome::Read(_)) = port.try_read(&mut self.conn, now) {
                progress = true;
            }

            // 2. Requests, each answered at once.
            let counters = &mut self.counters;
            let served = self.conn.poll_frames(|request, out| {
                let mut reply = protocol::serve(request, counters);
                // Cannot fail: a reply is at most MAX_FRAME on the wire and
                // the queue has more than that free below the high-water
                // mark, where `poll_frames` stops.
                let _ = out.send(reply.finish());
            });
            progress |= served > 0;
            let skipped = self.conn.stats().frames_skipped;
            if skipped > self.skipped_seen {
                let new = (skipped - self.skipped_seen) as u32;
                self.skipped_seen = skipped;
                self.counters.oversize += new;
                self.report(ERR_TOO_LARGE);
            }

            // 3. Replies to the UART, as much as it takes now.
            if let Ok(n) = port.try_write(&mut self.conn, now) {
                progress |= n > 0;
            }

            // 4. A serial link is never closed: after a fatal stream error
            //    (flushed by now), start over on the same buffers.
            if self.conn.is_closed() {
                // Go on to send the report; but after a port error the
                // port may fail again at once: wait for the next pass.
                progress = self.recover(now);
            }

            if !progress {
                break;
            }
        }
    }

    /// Resets the closed connection and reports why it closed. Returns
    /// whether the pass may go on: not after a port error or an end of
    /// stream, which the port may report again at once.
    fn recover(&mut self, now: Duration) -> bool {
        let reason = self.conn.close_reason();
        let code = match reason {
            Some(CloseReason::ReadTimeout) => {
                self.counters.timeouts += 1;
                Some(ERR_TIMEOUT)
            }
            Some(CloseReason::FrameTooLarge) => {
                self.counters.oversize += 1;
                Some(ERR_TOO_LARGE)
            }
            Some(CloseReason::Protocol(_)) => {
                self.counters.framing += 1;
                Some(ERR_FRAMING)
            }
            _ => None,
        };
        self.conn.reset(now);
        self.skipped_seen = 0;
        if let Some(code) = code {
            self.report(code);
        }
        !matches!(reason, Some(CloseReason::Reset | CloseReason::PeerClosed))
    }

    /// Queues an unsolicited error report (seq 0).
    fn report(&mut self, code: u8) {
        // Dropped if the queue is full: the counters still tell the host
        // (STATUS) what happened.
        let _ = self.conn.send(Reply::error(0, code).finish());
    }
}
