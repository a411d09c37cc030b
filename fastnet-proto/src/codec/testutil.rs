//! Test support shared by the codec tests and the fuzz targets: a tiny
//! driver that feeds a decoder in chunks, the way a real driver does, and
//! asserts the decode contract on every answer. Compiled only for tests and
//! fuzzing.

// The crate is `no_std` outside of tests; fuzzing builds need std here.
#[cfg(not(test))]
extern crate std;

use std::vec::Vec;

use super::{Decoded, Decoder};
use crate::Error;

/// What a stream decoded to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Payloads in order.
    pub frames: Vec<Vec<u8>>,
    /// Errors in order (the last one is fatal if `fatal`).
    pub errors: Vec<Error>,
    /// Whether decoding stopped at a fatal error.
    pub fatal: bool,
}

/// Feeds `input` to `dec` in chunks of the given sizes (cycled; 0 counts as
/// 1), decoding everything possible after each chunk.
pub fn decode_chunked<D: Decoder>(dec: &mut D, input: &[u8], chunks: &[usize]) -> Outcome {
    let mut out = Outcome {
        frames: Vec::new(),
        errors: Vec::new(),
        fatal: false,
    };
    let mut buf: Vec<u8> = Vec::new();
    let mut fed = 0;
    let mut i = 0;
    let mut steps = 0usize;
    while fed < input.len() {
        let step = chunks
            .get(i % chunks.len().max(1))
            .copied()
            .unwrap_or(input.len())
            .max(1);
        i += 1;
        let end = (fed + step).min(input.len());
        buf.extend_from_slice(&input[fed..end]);
        fed = end;
        loop {
            steps += 1;
            assert!(
                steps < 10 * input.len() + 100,
                "decoder does not make progress"
            );
            match dec.decode(&mut buf) {
                Ok(Decoded::NeedMore { frame_len }) => {
                    if let Some(n) = frame_len {
                        assert!(
                            n > buf.len(),
                            "NeedMore with frame_len {n} <= buffered {}",
                            buf.len()
                        );
                    }
                    break;
                }
                Ok(Decoded::Frame(f)) => {
                    assert!(f.consumed >= 1, "a frame must consume bytes");
                    assert!(f.consumed <= buf.len());
                    assert!(f.start <= f.end && f.end <= f.consumed);
                    assert!(
                        f.consumed <= dec.max_frame(),
                        "frame of {} bytes over max_frame {}",
                        f.consumed,
                        dec.max_frame()
                    );
                    out.frames.push(buf[f.start..f.end].to_vec());
                    buf.drain(..f.consumed);
                }
                Ok(Decoded::Skip(n)) => {
                    assert!(n >= 1 && n <= buf.len(), "skip {n} of {}", buf.len());
                    buf.drain(..n);
                }
                Err(e) => {
                    assert!(e.consumed <= buf.len());
                    out.errors.push(e.error);
                    if !e.can_continue {
                        out.fatal = true;
                        return out;
                    }
                    buf.drain(..e.consumed);
                }
            }
        }
    }
    out
}

/// Decodes `input` fed whole.
pub fn decode_whole<D: Decoder>(dec: &mut D, input: &[u8]) -> Outcome {
    decode_chunked(dec, input, &[input.len().max(1)])
}

/// Decodes `input` fed one byte at a time.
pub fn decode_bytewise<D: Decoder>(dec: &mut D, input: &[u8]) -> Outcome {
    decode_chunked(dec, input, &[1])
}

/// Frames a list of payloads with an encoder, concatenated.
pub fn encode_all<E: super::Encoder>(enc: &E, payloads: &[Vec<u8>]) -> Vec<u8> {
    let mut wire = Vec::new();
    for p in payloads {
        let n = enc
            .encode_with(p, |piece| wire.extend_from_slice(piece))
            .expect("encodable payload");
        assert_eq!(n, enc.encoded_len(p).unwrap());
    }
    wire
}

/// Asserts that `input` decodes to exactly one frame, `expected`, that
/// takes all of `input`: fed whole, byte by byte, and in every two-piece
/// split. `mk` makes a fresh decoder for each feeding.
pub fn assert_decodes_to<D: Decoder>(mk: impl Fn() -> D, input: &[u8], expected: &[u8]) {
    let mut splits = std::vec![std::vec![input.len()], std::vec![1]];
    splits.extend((1..input.len()).map(|i| std::vec![i, input.len()]));
    for chunks in splits {
        let out = decode_chunked(&mut mk(), input, &chunks);
        assert_eq!(out.frames, [expected.to_vec()], "chunks {chunks:?}");
        assert!(out.errors.is_empty(), "chunks {chunks:?}");
    }
    let mut buf = input.to_vec();
    match mk().decode(&mut buf) {
        Ok(Decoded::Frame(f)) => assert_eq!(f.consumed, input.len()),
        other => panic!("{other:?}"),
    }
}
