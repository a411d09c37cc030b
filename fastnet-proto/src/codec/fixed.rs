//! Fixed-length framing.

use super::{Decoded, Decoder, Encoder, Envelope, Frame};
use crate::{DecodeError, Error};

/// Frames of exactly `len` bytes each.
///
/// The maximum frame length *is* `len`: a fixed-length stream has no
/// oversize frames. A frame is delivered as soon as `len` bytes are
/// buffered, not one byte later.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FixedDecoder {
    len: usize,
}

impl FixedDecoder {
    /// A decoder for frames of `len` bytes (`len` ≥ 1: a zero-length frame
    /// would consume nothing and never end).
    pub const fn new(len: usize) -> Result<Self, Error> {
        if len == 0 {
            return Err(Error::InvalidConfig {
                reason: "fixed frame length must be at least 1",
            });
        }
        Ok(FixedDecoder { len })
    }

    /// The frame length.
    pub const fn frame_len(&self) -> usize {
        self.len
    }
}

impl Decoder for FixedDecoder {
    fn decode(&mut self, src: &mut [u8]) -> Result<Decoded, DecodeError> {
        if src.len() >= self.len {
            Ok(Decoded::Frame(Frame {
                consumed: self.len,
                start: 0,
                end: self.len,
            }))
        } else {
            Ok(Decoded::NeedMore {
                frame_len: Some(self.len),
            })
        }
    }

    fn reset(&mut self) {}

    fn max_frame(&self) -> usize {
        self.len
    }
}

/// Writes payloads of exactly `len` bytes; any other length is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FixedEncoder {
    len: usize,
}

impl FixedEncoder {
    /// An encoder for frames of `len` bytes (`len` ≥ 1).
    pub const fn new(len: usize) -> Result<Self, Error> {
        match FixedDecoder::new(len) {
            Ok(_) => Ok(FixedEncoder { len }),
            Err(e) => Err(e),
        }
    }
}

impl Encoder for FixedEncoder {
    fn encoded_len(&self, payload: &[u8]) -> Result<usize, Error> {
        if payload.len() > self.len {
            Err(Error::PayloadTooLarge {
                len: payload.len(),
                max: self.len,
            })
        } else if payload.len() < self.len {
            Err(Error::NotEncodable {
                reason: "payload shorter than the fixed frame length",
            })
        } else {
            Ok(self.len)
        }
    }

    fn envelope(&self, payload: &[u8]) -> Result<Option<Envelope>, Error> {
        self.encoded_len(payload).map(|_| Some(Envelope::EMPTY))
    }

    fn encode_with<F: FnMut(&[u8])>(&self, payload: &[u8], mut put: F) -> Result<usize, Error> {
        let n = self.encoded_len(payload)?;
        put(payload);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use std::vec::Vec;

    use super::*;
    use crate::codec::testutil::*;
    use proptest::prelude::*;

    #[test]
    fn frame_is_delivered_at_exactly_len_bytes() {
        // Peer mistake: a decoder that waits for len + 1 bytes.
        let mut d = FixedDecoder::new(4).unwrap();
        assert_eq!(
            d.decode(&mut [1, 2, 3]),
            Ok(Decoded::NeedMore { frame_len: Some(4) })
        );
        assert_eq!(
            d.decode(&mut [1, 2, 3, 4]),
            Ok(Decoded::Frame(Frame {
                consumed: 4,
                start: 0,
                end: 4
            }))
        );
    }

    #[test]
    fn splits_a_stream() {
        let mut d = FixedDecoder::new(2).unwrap();
        let out = decode_whole(&mut d, b"abcdefg");
        assert_eq!(out.frames, [b"ab".to_vec(), b"cd".to_vec(), b"ef".to_vec()]);
    }

    #[test]
    fn zero_length_is_rejected() {
        // Peer mistake: a zero-length frame that loops forever.
        assert_eq!(
            FixedDecoder::new(0),
            Err(Error::InvalidConfig {
                reason: "fixed frame length must be at least 1"
            })
        );
        assert!(FixedEncoder::new(0).is_err());
    }

    #[test]
    fn encoder_accepts_only_exact_length() {
        let e = FixedEncoder::new(3).unwrap();
        let mut buf = [0u8; 8];
        assert_eq!(e.encode(b"abc", &mut buf), Ok(3));
        assert_eq!(&buf[..3], b"abc");
        assert_eq!(
            e.encode(b"abcd", &mut buf),
            Err(Error::PayloadTooLarge { len: 4, max: 3 })
        );
        assert!(matches!(
            e.encode(b"ab", &mut buf),
            Err(Error::NotEncodable { .. })
        ));
        assert_eq!(
            e.encode(b"abc", &mut [0; 2]),
            Err(Error::BufferTooSmall {
                needed: 3,
                capacity: 2
            })
        );
    }

    proptest! {
        #[test]
        fn roundtrip_in_any_chunking(len in 1usize..20, count in 0usize..20,
                                     seed in any::<u8>(),
                                     chunks in proptest::collection::vec(1usize..50, 1..8)) {
            let payloads: Vec<Vec<u8>> = (0..count)
                .map(|i| (0..len).map(|j| seed.wrapping_add((i * 31 + j) as u8)).collect())
                .collect();
            let e = FixedEncoder::new(len).unwrap();
            let wire = encode_all(&e, &payloads);
            let mut d = FixedDecoder::new(len).unwrap();
            let out = decode_chunked(&mut d, &wire, &chunks);
            prop_assert_eq!(out.frames, payloads);
        }

        #[test]
        fn whole_equals_bytewise(input in proptest::collection::vec(any::<u8>(), 0..200), len in 1usize..10) {
            let whole = decode_whole(&mut FixedDecoder::new(len).unwrap(), &input);
            let bytewise = decode_bytewise(&mut FixedDecoder::new(len).unwrap(), &input);
            prop_assert_eq!(whole, bytewise);
        }
    }
}
