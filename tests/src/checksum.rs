//! A codec of the user's own, the kind none of the built-in codecs can
//! express: frames of `[u16 big-endian payload length][payload][u8 XOR of
//! the payload bytes]`. A frame whose trailer does not match its payload
//! is a decode error ([`Error::InvalidFrame`]) that closes the connection.
//!
//! The suite serves it through every driver (`TestDriver::start_echo_with`),
//! and the drivers' `checksum` examples use it as it is here.
//!
//! ```
//! use fastnet_proto::codec::{Decoded, Decoder, Encoder};
//! use fastnet_tests::checksum::{ChecksumDecoder, ChecksumEncoder};
//!
//! let mut wire = [0u8; 16];
//! let n = ChecksumEncoder::new(64).encode(b"hi", &mut wire).unwrap();
//! assert_eq!(&wire[..n], b"\x00\x02hi\x01");
//!
//! let mut decoder = ChecksumDecoder::new(64);
//! let Ok(Decoded::Frame(frame)) = decoder.decode(&mut wire[..n]) else { panic!() };
//! assert_eq!(frame.payload(&wire), b"hi");
//!
//! wire[n - 1] ^= 0xff;
//! assert!(decoder.decode(&mut wire[..n]).is_err());
//! ```

use fastnet_proto::codec::{Decoded, Decoder, Encoder, Envelope, Frame};
use fastnet_proto::{DecodeError, Error};

/// Bytes before the payload: its length.
pub const HEADER: usize = 2;
/// Bytes after the payload: its checksum.
pub const TRAILER: usize = 1;

/// The XOR of every byte of `payload` (0 for none).
pub fn checksum(payload: &[u8]) -> u8 {
    payload.iter().fold(0, |acc, b| acc ^ b)
}

/// The largest payload the 2-byte length can announce.
fn clamp(max_payload: usize) -> usize {
    max_payload.min(usize::from(u16::MAX))
}

/// Reads checksummed frames. It keeps no state between calls: the header
/// is two bytes, re-read when more bytes arrive, and the checksum is
/// computed once, when the whole frame is there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChecksumDecoder {
    max_payload: usize,
}

impl ChecksumDecoder {
    /// A decoder of payloads up to `max_payload` bytes (at most 65 535,
    /// what the length field holds).
    pub fn new(max_payload: usize) -> Self {
        ChecksumDecoder {
            max_payload: clamp(max_payload),
        }
    }
}

impl Decoder for ChecksumDecoder {
    fn decode(&mut self, src: &mut [u8]) -> Result<Decoded, DecodeError> {
        let Some(&[hi, lo]) = src.first_chunk::<HEADER>() else {
            return Ok(Decoded::NeedMore { frame_len: None });
        };
        let len = usize::from(u16::from_be_bytes([hi, lo]));
        let frame_len = HEADER + len + TRAILER;
        if len > self.max_payload {
            return Err(DecodeError::fatal(Error::FrameTooLarge {
                len: frame_len as u64,
                max: self.max_frame(),
            }));
        }
        let (Some(payload), Some(&found)) = (src.get(HEADER..HEADER + len), src.get(HEADER + len))
        else {
            return Ok(Decoded::NeedMore {
                frame_len: Some(frame_len),
            });
        };
        if checksum(payload) != found {
            return Err(DecodeError::fatal(Error::InvalidFrame {
                reason: "checksum does not match the payload",
                pos: HEADER + len,
                byte: found,
            }));
        }
        Ok(Decoded::Frame(Frame {
            consumed: frame_len,
            start: HEADER,
            end: HEADER + len,
        }))
    }

    fn reset(&mut self) {}

    fn max_frame(&self) -> usize {
        HEADER + self.max_payload + TRAILER
    }
}

/// Writes checksummed frames, the mirror of [`ChecksumDecoder`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChecksumEncoder {
    max_payload: usize,
}

impl ChecksumEncoder {
    /// An encoder of payloads up to `max_payload` bytes (at most 65 535).
    pub fn new(max_payload: usize) -> Self {
        ChecksumEncoder {
            max_payload: clamp(max_payload),
        }
    }
}

impl Encoder for ChecksumEncoder {
    fn encoded_len(&self, payload: &[u8]) -> Result<usize, Error> {
        let len = HEADER + payload.len() + TRAILER;
        if payload.len() > self.max_payload {
            return Err(Error::PayloadTooLarge {
                len,
                max: HEADER + self.max_payload + TRAILER,
            });
        }
        Ok(len)
    }

    /// `None`: an [`Envelope`] is made only by the built-in codecs, so
    /// frames go out through [`encode_with`](Self::encode_with).
    fn envelope(&self, payload: &[u8]) -> Result<Option<Envelope>, Error> {
        self.encoded_len(payload).map(|_| None)
    }

    fn encode_with<F: FnMut(&[u8])>(&self, payload: &[u8], mut put: F) -> Result<usize, Error> {
        let len = self.encoded_len(payload)?;
        // Fits: `encoded_len` checked the payload against the u16 maximum.
        let header = u16::try_from(payload.len()).unwrap_or(u16::MAX);
        put(&header.to_be_bytes());
        put(payload);
        put(&[checksum(payload)]);
        Ok(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_in_any_split_and_bad_ones_name_the_byte() {
        let enc = ChecksumEncoder::new(300);
        let mut wire = Vec::new();
        for len in [0, 1, 255, 300] {
            let payload: Vec<u8> = (0..len).map(|i| i as u8).collect();
            enc.encode_vec(&payload, &mut wire).unwrap();
        }
        for split in [1, 2, 3, 7, wire.len()] {
            let mut dec = ChecksumDecoder::new(300);
            let (mut buf, mut at, mut lens) = (Vec::new(), 0, Vec::new());
            for chunk in wire.chunks(split) {
                buf.extend_from_slice(chunk);
                while let Ok(Decoded::Frame(f)) = dec.decode(&mut buf[at..]) {
                    lens.push(f.len());
                    at += f.consumed;
                }
            }
            assert_eq!(lens, [0, 1, 255, 300], "split {split}");
        }
        assert!(enc.encoded_len(&[0; 301]).is_err());
        let mut bad = *b"\x00\x02hi\x00";
        let e = ChecksumDecoder::new(8).decode(&mut bad).unwrap_err();
        assert_eq!(
            e.error.to_string(),
            "invalid frame: checksum does not match the payload (byte 0x00 at offset 4)"
        );
        let mut big = *b"\x00\x09";
        let e = ChecksumDecoder::new(8).decode(&mut big).unwrap_err();
        assert!(matches!(e.error, Error::FrameTooLarge { len: 12, max: 11 }));
    }
}
