//! # fastnet-proto
//!
//! The sans-IO core of fastnet: framing decoders and encoders, fixed-capacity
//! buffers over caller-owned storage, and a connection state machine.
//! It never touches a socket or a clock, never allocates, and builds for
//! bare-metal targets (`#![no_std]`).
//!
//! ```
//! use fastnet_proto::codec::{Decoded, Decoder, DelimiterDecoder, DelimiterEncoder, Encoder};
//!
//! // Frame two lines, then decode them back.
//! let enc = DelimiterEncoder::lines(1024).unwrap();
//! let mut wire = heapless::Vec::<u8, 64>::new();
//! enc.encode_heapless(b"hello", &mut wire).unwrap();
//! enc.encode_heapless(b"world", &mut wire).unwrap();
//!
//! let mut dec = DelimiterDecoder::lines(1024).unwrap();
//! let mut buf: &mut [u8] = &mut wire;
//! let mut lines = heapless::Vec::<heapless::String<8>, 2>::new();
//! while let Ok(Decoded::Frame(frame)) = dec.decode(buf) {
//!     let line = core::str::from_utf8(frame.payload(buf)).unwrap();
//!     lines.push(line.try_into().unwrap()).unwrap();
//!     buf = &mut buf[frame.consumed..];
//! }
//! assert_eq!(lines, ["hello", "world"]);
//! ```
//!
//! ## Layers
//!
//! - [`codec`]: one decoder and one encoder per framing (delimiter/lines,
//!   fixed length, length field, varint length, COBS, raw) and a run-time
//!   choice among them.
//! - [`Buffer`]: a linear buffer over `[u8; N]` / `&mut [u8]` with
//!   commit/consume/compact and no hidden growth; [`Ring`]: a ring buffer
//!   for queued replies, written out as one or two slices.
//! - [`connection`]: [`Connection`], the state machine that binds a decoder,
//!   an encoder, both buffers and [`Limits`](connection::Limits), with idle
//!   and read timeouts, backpressure and an orderly close.
//! - [`reader`]: [`FrameReader`], the receive side alone (decoder and rx
//!   buffer, one frame at a time), which both drivers' clients frame with.
//! - [`server`]: what both drivers share: `ServerConfig`, admission
//!   control (`Admission`, with `alloc`), live `ServerStats`.
//! - [`io`] (features `embedded-io`, `embedded-io-async`): a
//!   [`Connection`] driven over embedded-io transports.
//! - [`Error`] / [`DecodeError`]: one small error enum for the crate.
//!
//! ## Features
//!
//! - `alloc`: `Vec`-backed conveniences ([`codec::Encoder::encode_vec`]).
//! - `bytes`: decode from `BytesMut`, encode into `BufMut`.
//! - `embedded-io`: [`io::Blocking`] drives a [`Connection`] over
//!   `embedded_io::{Read, Write}`; `embedded-io-async`: [`io::Async`] over
//!   `embedded_io_async::{Read, Write}`, for async executors such as
//!   embassy's. Both are `no_std` and allocate nothing.
//!
//! ## Over embedded-io
//!
//! With feature `embedded-io`, a UART or an embedded TCP socket drives a
//! connection in a few lines. [`io::Blocking::run`] reads, hands out frames,
//! writes the replies and returns once the connection closes, telling an
//! orderly close from the peer's violation and from the transport's error:
//!
//! ```no_run
//! # #[cfg(feature = "embedded-io")]
//! # fn serve<U: embedded_io::Read + embedded_io::Write>(uart: U, ticks: impl Fn() -> u64) {
//! use core::time::Duration;
//! use fastnet_proto::codec::{CobsDecoder, CobsEncoder};
//! use fastnet_proto::connection::{Buffers, Connection, Limits};
//! use fastnet_proto::io::{Blocking, IoError};
//!
//! let now = || Duration::from_millis(ticks());
//! let dec = CobsDecoder::new(256).unwrap();
//! let enc = CobsEncoder::new(256).unwrap();
//! let bufs = Buffers { rx: [0u8; 256], tx: [0u8; 512] };
//! let mut conn = Connection::new(dec, enc, bufs, Limits::default(), now()).unwrap();
//!
//! // Echo every frame until the link closes.
//! match Blocking::new(uart).run(&mut conn, now, |frame, out| {
//!     let _ = out.send(frame);
//! }) {
//!     Ok(reason) => { /* orderly: peer closed, closed locally, idle */ }
//!     Err(IoError::Protocol(violation)) => { /* names the limit or the bad byte */ }
//!     Err(IoError::Transport(uart_error)) => { /* the UART failed */ }
//!     Err(_) => {}
//! }
//! # }
//! ```
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "alloc")]
extern crate alloc;

/// Chainable `const` setters inside a configuration's `impl`, one per
/// named field, each documented as setting it (the configurations are
/// `#[non_exhaustive]`, so outside this crate they are built this way).
macro_rules! setters {
    ($($field:ident: $ty:ty),* $(,)?) => {$(
        #[doc = concat!("Sets [`", stringify!($field), "`](field@Self::", stringify!($field), ").")]
        pub const fn $field(mut self, $field: $ty) -> Self {
            self.$field = $field;
            self
        }
    )*};
}
pub(crate) use setters;

mod buffer;
pub mod codec;
pub mod connection;
mod error;
#[cfg(feature = "embedded-io")]
pub mod io;
pub mod reader;
mod ring;
pub mod server;

pub use buffer::Buffer;
pub use connection::Connection;
pub use error::{DecodeError, Error};
pub use reader::FrameReader;
pub use ring::Ring;

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;

/// This crate's own README (its page on crates.io), run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct CrateReadmeDoctests;
