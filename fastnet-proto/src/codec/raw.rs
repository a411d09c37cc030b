//! Raw: no framing, bytes pass through as they arrive.

use super::{check_max_frame, Decoded, Decoder, Encoder, Envelope, Frame};
use crate::{DecodeError, Error};

/// Hands out whatever bytes are buffered as one frame, at most `max_frame`
/// bytes at a time. It never fails; frame boundaries are wherever reads
/// happened to end, so only the concatenation of frames is meaningful.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawDecoder {
    max_frame: usize,
}

impl RawDecoder {
    /// A raw decoder whose frames are at most `max_frame` bytes.
    pub const fn new(max_frame: usize) -> Result<Self, Error> {
        match check_max_frame(max_frame) {
            Ok(()) => Ok(RawDecoder { max_frame }),
            Err(e) => Err(e),
        }
    }
}

impl Decoder for RawDecoder {
    fn decode(&mut self, src: &mut [u8]) -> Result<Decoded, DecodeError> {
        if src.is_empty() {
            return Ok(Decoded::NeedMore { frame_len: None });
        }
        let n = src.len().min(self.max_frame);
        Ok(Decoded::Frame(Frame {
            consumed: n,
            start: 0,
            end: n,
        }))
    }

    fn reset(&mut self) {}

    fn max_frame(&self) -> usize {
        self.max_frame
    }
}

/// Writes payloads as they are. Refuses payloads above `max_frame`, to
/// mirror the decoder's limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawEncoder {
    max_frame: usize,
}

impl RawEncoder {
    /// A raw encoder accepting payloads of at most `max_frame` bytes.
    pub const fn new(max_frame: usize) -> Result<Self, Error> {
        match check_max_frame(max_frame) {
            Ok(()) => Ok(RawEncoder { max_frame }),
            Err(e) => Err(e),
        }
    }
}

impl Encoder for RawEncoder {
    fn encoded_len(&self, payload: &[u8]) -> Result<usize, Error> {
        if payload.len() > self.max_frame {
            return Err(Error::PayloadTooLarge {
                len: payload.len(),
                max: self.max_frame,
            });
        }
        Ok(payload.len())
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
    fn passes_bytes_through_in_pieces_of_at_most_max() {
        let mut d = RawDecoder::new(3).unwrap();
        let out = decode_whole(&mut d, b"abcdefg");
        assert_eq!(
            out.frames,
            [b"abc".to_vec(), b"def".to_vec(), b"g".to_vec()]
        );
        assert!(out.errors.is_empty());
    }

    #[test]
    fn empty_input_needs_more() {
        let mut d = RawDecoder::new(3).unwrap();
        assert_eq!(d.decode(&mut []), Ok(Decoded::NeedMore { frame_len: None }));
    }

    #[test]
    fn zero_max_frame_is_rejected() {
        assert!(RawDecoder::new(0).is_err());
        assert!(RawEncoder::new(0).is_err());
    }

    #[test]
    fn encoder_refuses_oversize() {
        let e = RawEncoder::new(2).unwrap();
        assert_eq!(
            e.encode(b"abc", &mut [0; 8]),
            Err(Error::PayloadTooLarge { len: 3, max: 2 })
        );
        assert_eq!(e.encode(b"ab", &mut [0; 8]), Ok(2));
    }

    proptest! {
        #[test]
        fn concatenation_is_the_input(input in proptest::collection::vec(any::<u8>(), 0..300),
                                      chunks in proptest::collection::vec(1usize..40, 1..8),
                                      max in 1usize..50) {
            let mut d = RawDecoder::new(max).unwrap();
            let out = decode_chunked(&mut d, &input, &chunks);
            prop_assert!(out.frames.iter().all(|f| !f.is_empty() && f.len() <= max));
            prop_assert_eq!(out.frames.concat(), input);
            let _: Vec<u8> = Vec::new();
        }
    }
}
