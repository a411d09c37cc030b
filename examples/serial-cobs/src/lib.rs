// Build for a microcontroller: cargo build -p fastnet-serial-example --target thumbv7em-none-eabihf
// Run the host tests:          cargo test -p fastnet-serial-example
//
//! A device, as firmware would write it, that serves a tiny request/reply
//! protocol over a serial link (a UART) with fastnet-proto's [`Connection`]
//! and the COBS codec: no std, no alloc, buffers are arrays inside the
//! [`Device`], time is a tick counter. The UART is any driver with
//! embedded-io's `Read`, `ReadReady`, `Write` and `WriteReady`, which
//! `fastnet_proto::io::Blocking` moves bytes through without ever blocking
//! the main loop.
//!
//! # The wire
//!
//! Every frame is COBS-encoded and ends with `0x00`, at most
//! [`MAX_FRAME`] bytes on the wire. Its payload is
//!
//! ```text
//! | seq | cmd | data ... | crc8 |
//! ```
//!
//! where `crc8` ([`crc8`]) covers `seq`, `cmd` and `data`. A reply carries
//! the request's `seq` and `cmd | 0x80`:
//!
//! | request | data | reply data |
//! |---|---|---|
//! | [`PING`] | none | none (the reply is `PONG`, `0x81`) |
//! | [`ECHO`] | any bytes | the same bytes |
//! | [`SUM`] | any bytes | their sum, `u32` little endian |
//! | [`STATUS`] | none | the [`Counters`], `u32` little endian each |
//!
//! Anything else gets an [`ERROR`] reply whose one data byte says why
//! (`ERR_*`). Problems the device finds in the byte stream itself (not in
//! one readable request) are reported unsolicited with `seq` 0, which a
//! host never uses for requests.
//!
//! # Errors and recovery
//!
//! | what arrives | device |
//! |---|---|
//! | a frame with a bad CRC | [`ERR_CRC`] with the `seq` as received |
//! | an unknown command | [`ERR_UNKNOWN`] |
//! | a payload shorter than `seq`, `cmd`, `crc8` | [`ERR_SHORT`] |
//! | a frame longer than [`MAX_FRAME`] | skipped up to its `0x00`, [`ERR_TOO_LARGE`] (seq 0) |
//! | malformed COBS | [`ERR_FRAMING`] (seq 0) |
//! | a frame left unfinished for [`READ_TIMEOUT`] | dropped, [`ERR_TIMEOUT`] (seq 0) |
//!
//! [`Connection`] closes on malformed COBS and on the read timeout, like a
//! TCP connection would. A serial link cannot be closed, so the device
//! flushes the replies already queued, [`reset`](Connection::reset)s the
//! connection (same buffers, fresh state), reports, and keeps serving.
//! `reset` drops whatever was buffered, so bytes of a *later* frame that
//! were read together with a malformed one are lost: a host should send
//! one request at a time and wait for its reply (or resend on its own
//! timeout), as the host in the tests does.
//!
//! # The firmware main loop
//!
//! ```
//! use core::convert::Infallible;
//! use embedded_io::{ErrorType, Read, ReadReady, Write, WriteReady};
//! use fastnet_serial_example::{Device, TickClock};
//!
//! /// A stand-in for a UART driver: one PING request waiting, replies kept.
//! struct Uart { rx: &'static [u8], tx: [u8; 16], sent: usize }
//!
//! impl ErrorType for Uart {
//!     type Error = Infallible;
//! }
//! impl ReadReady for Uart {
//!     fn read_ready(&mut self) -> Result<bool, Infallible> {
//!         Ok(!self.rx.is_empty())
//!     }
//! }
//! impl Read for Uart {
//!     fn read(&mut self, buf: &mut [u8]) -> Result<usize, Infallible> {
//!         self.rx.read(buf)
//!     }
//! }
//! impl WriteReady for Uart {
//!     fn write_ready(&mut self) -> Result<bool, Infallible> {
//!         Ok(self.sent < self.tx.len())
//!     }
//! }
//! impl Write for Uart {
//!     fn write(&mut self, bytes: &[u8]) -> Result<usize, Infallible> {
//!         let n = bytes.len().min(self.tx.len() - self.sent);
//!         self.tx[self.sent..self.sent + n].copy_from_slice(&bytes[..n]);
//!         self.sent += n;
//!         Ok(n)
//!     }
//!     fn flush(&mut self) -> Result<(), Infallible> {
//!         Ok(())
//!     }
//! }
//!
//! // PING with seq 7: payload [7, 0x01, crc8([7, 0x01])], COBS-encoded.
//! let mut uart = Uart { rx: &[0x04, 0x07, 0x01, 0x6C, 0x00], tx: [0; 16], sent: 0 };
//! let mut clock = TickClock::new(1000);
//! let mut device = Device::new(clock.now(0)).unwrap();
//! for tick in 0..3 {
//!     // In firmware: the SysTick counter, then sleep until the next interrupt.
//!     device.poll(&mut uart, clock.now(tick));
//! }
//! // PONG with seq 7: payload [7, 0x81, crc8([7, 0x81])].
//! assert_eq!(&uart.tx[..uart.sent], [0x04, 0x07, 0x81, 0xE5, 0x00]);
//! ```
#![no_std]
#![forbid(unsafe_code)]

mod clock;
mod device;
mod protocol;

pub use clock::TickClock;
pub use device::{Counters, Device, MAX_FRAME, READ_TIMEOUT, RX_LEN, TX_LEN};
pub use protocol::{
    crc8, ECHO, ERROR, ERR_CRC, ERR_FRAMING, ERR_SHORT, ERR_TIMEOUT, ERR_TOO_LARGE, ERR_UNKNOWN,
    MAX_PAYLOAD, PING, REPLY, STATUS, SUM,
};

#[doc(no_inline)]
pub use fastnet_proto::Connection;
