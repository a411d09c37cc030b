//! # fastnet-tokio
//!
//! fastnet's framings as tokio-util codecs: wrap any
//! [`fastnet_proto`] decoder and encoder (delimiter and lines, fixed length,
//! length field with Netty's parameters, varint length, COBS, raw, or an
//! [`AnyDecoder`](fastnet_proto::codec::AnyDecoder) chosen at run time) in a
//! [`FastnetCodec`] and hand it to `Framed`, `FramedRead` or `FramedWrite`.
//!
//! ```
//! use bytes::Bytes;
//! use fastnet_proto::codec::{Endian, LengthFieldConfig};
//! use fastnet_tokio::FastnetCodec;
//! use futures_util::{SinkExt, StreamExt};
//! use tokio_util::codec::{FramedRead, FramedWrite};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // A 4-byte big-endian length before each payload, frames up to 1 KiB.
//! let cfg = LengthFieldConfig::new(4, Endian::Big).max_frame(1024);
//!
//! let mut wire = Vec::new();
//! let mut sink = FramedWrite::new(&mut wire, FastnetCodec::length_field(cfg)?);
//! sink.send(Bytes::from_static(b"hello")).await?;
//! sink.send(Bytes::from_static(b"world")).await?;
//! assert_eq!(&wire[..9], b"\x00\x00\x00\x05hello");
//!
//! let mut frames = FramedRead::new(&wire[..], FastnetCodec::length_field(cfg)?);
//! assert_eq!(&frames.next().await.unwrap()?[..], b"hello");
//! assert_eq!(&frames.next().await.unwrap()?[..], b"world");
//! assert!(frames.next().await.is_none());
//! # Ok(())
//! # }
//! ```
//!
//! A frame comes out as a `BytesMut` split off the read buffer, without a
//! copy; the decoder's maximum frame length is enforced as soon as a
//! header announces a longer frame. Errors are a [`CodecError`], which
//! tokio-util's IO errors convert into and which converts into an
//! `io::Error`. A server echoing frames over TCP is
//! `examples/echo.rs` (`cargo run -p fastnet-tokio --example echo -- --self-test`).
#![forbid(unsafe_code)]

mod codec;
mod error;

pub use codec::FastnetCodec;
pub use error::CodecError;

/// The README's examples, compiled as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
