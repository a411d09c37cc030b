//! The device protocol: commands, replies, the CRC. Pure functions of a
//! request payload and the counters; no IO.

use crate::device::Counters;

/// Request: answer [`PING`]` | `[`REPLY`] (PONG).
pub const PING: u8 = 0x01;
/// Request: send the data back.
pub const ECHO: u8 = 0x02;
/// Request: the sum of the data bytes, `u32` little endian.
pub const SUM: u8 = 0x03;
/// Request: the device's [`Counters`].
pub const STATUS: u8 = 0x04;
/// Set in the command byte of a reply.
pub const REPLY: u8 = 0x80;
/// The command byte of an error reply; its one data byte is an `ERR_*` code.
pub const ERROR: u8 = 0xFF;

/// The payload's CRC did not match.
pub const ERR_CRC: u8 = 1;
/// The command is not known.
pub const ERR_UNKNOWN: u8 = 2;
/// The payload is shorter than `seq`, `cmd` and `crc8`.
pub const ERR_SHORT: u8 = 3;
/// Malformed COBS (unsolicited, seq 0).
pub const ERR_FRAMING: u8 = 4;
/// A frame was left unfinished too long and dropped (unsolicited, seq 0).
pub const ERR_TIMEOUT: u8 = 5;
/// A frame longer than the maximum was skipped (unsolicited, seq 0).
pub const ERR_TOO_LARGE: u8 = 6;

/// The largest payload that fits a [`MAX_FRAME`](crate::MAX_FRAME) frame:
/// COBS adds one code byte (for payloads under 254 bytes) and the `0x00`.
pub const MAX_PAYLOAD: usize = crate::device::MAX_FRAME - 2;

/// CRC-8 with polynomial `0x07`, initial value 0 (CRC-8/SMBUS): catches
/// every single-bit error and every burst of up to 8 bits.
pub const fn crc8(bytes: &[u8]) -> u8 {
    let mut crc = 0u8;
    let mut i = 0;
    while i < bytes.len() {
        crc ^= bytes[i];
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 0x80 != 0 {
                (crc << 1) ^ 0x07
            } else {
                crc << 1
            };
            bit += 1;
        }
        i += 1;
    }
    crc
}

/// A reply payload being built on the stack.
#[derive(Debug)]
pub(crate) struct Reply {
    buf: [u8; MAX_PAYLOAD],
    len: usize,
}

impl Reply {
    /// A reply to `seq` with command byte `cmd`.
    fn new(seq: u8, cmd: u8) -> Self {
        let mut reply = Reply {
            buf: [0; MAX_PAYLOAD],
            len: 0,
        };
        reply.push(&[seq, cmd]);
        reply
    }

    /// An error reply.
    pub(crate) fn error(seq: u8, code: u8) -> Self {
        let mut reply = Reply::new(seq, ERROR);
        reply.push(&[code]);
        reply
    }

    /// Appends data. The callers never exceed the room: the longest reply
    /// is an echo, as long as its request. Excess would be cut, not panic.
    fn push(&mut self, bytes: &[u8]) {
        let n = bytes.len().min(MAX_PAYLOAD - 1 - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&bytes[..n]);
        self.len += n;
    }

    /// The finished payload, CRC appended.
    pub(crate) fn finish(&mut self) -> &[u8] {
        self.buf[self.len] = crc8(&self.buf[..self.len]);
        &self.buf[..=self.len]
    }
}

/// Serves one request payload: updates the counters, returns the reply.
pub(crate) fn serve(request: &[u8], counters: &mut Counters) -> Reply {
    let [seq, cmd, .., crc] = *request else {
        counters.short += 1;
        return Reply::error(request.first().copied().unwrap_or(0), ERR_SHORT);
    };
    let body = &request[..request.len() - 1];
    if crc8(body) != crc {
        counters.bad_crc += 1;
        return Reply::error(seq, ERR_CRC);
    }
    let data = &body[2..];
    let mut reply = Reply::new(seq, cmd | REPLY);
    match cmd {
        PING => {}
        ECHO => reply.push(data),
        SUM => {
            let sum = data.iter().fold(0u32, |s, &b| s.wrapping_add(u32::from(b)));
            reply.push(&sum.to_le_bytes());
        }
        STATUS => {
            // The counters as they are before this request counts.
            for value in counters.as_array() {
                reply.push(&value.to_le_bytes());
            }
        }
        _ => {
            counters.unknown += 1;
            return Reply::error(seq, ERR_UNKNOWN);
        }
    }
    counters.served += 1;
    reply
}
