use std::vec::Vec;

use proptest::prelude::*;

use super::*;
use crate::codec::{AnyDecoder, CodecSpec, Endian, LengthFieldConfig, Oversize, VarintConfig};

/// A reader whose storage holds exactly one maximum frame.
fn tight(spec: CodecSpec) -> FrameReader<AnyDecoder, Vec<u8>> {
    let dec = spec.decoder().unwrap();
    let len = dec.max_frame();
    FrameReader::new(dec, vec![0; len]).unwrap()
}

/// A reader with room for a few frames.
fn reader(spec: CodecSpec) -> FrameReader<AnyDecoder, [u8; 64]> {
    FrameReader::new(spec.decoder().unwrap(), [0; 64]).unwrap()
}

/// Frames and the final answer (`None`: still waiting for bytes).
type Outcome = (Vec<Vec<u8>>, Option<Result<(), ReadError>>);

/// Feeds `input` in chunks of the given sizes (cycled; each at most what
/// fits), polling until the reader asks for more before every chunk; then
/// EOF if `eof`.
fn run(spec: CodecSpec, input: &[u8], chunks: &[usize], eof: bool) -> Outcome {
    let mut r = tight(spec);
    let mut frames = Vec::new();
    let mut fed = 0;
    let mut i = 0;
    let mut polls = 0;
    let mut ended = false;
    loop {
        polls += 1;
        if ended {
            r.handle_eof();
        }
        assert!(
            polls < 10 * input.len() + 100,
            "the reader makes no progress"
        );
        match r.poll_frame() {
            Ok(Next::Frame(f)) => frames.push(f.to_vec()),
            Ok(Next::End) => return (frames, Some(Ok(()))),
            Err(e) => {
                assert_eq!(r.poll_frame(), Err(e), "errors are final");
                return (frames, Some(Err(e)));
            }
            Ok(Next::NeedMore) if fed < input.len() => {
                let step = chunks[i % chunks.len()].max(1);
                i += 1;
                let end = fed.saturating_add(step).min(input.len());
                let n = r.handle_bytes(&input[fed..end]);
                assert!(n > 0, "NeedMore with a full buffer");
                fed += n;
            }
            Ok(Next::NeedMore) if eof && !ended => ended = true,
            Ok(Next::NeedMore) => return (frames, None),
        }
    }
}

fn whole(spec: CodecSpec, input: &[u8], eof: bool) -> Outcome {
    run(spec, input, &[usize::MAX], eof)
}

fn specs() -> impl Strategy<Value = CodecSpec> {
    let oversize = prop_oneof![Just(Oversize::Close), Just(Oversize::Skip)];
    (0usize..4, 2usize..12, oversize).prop_map(|(kind, max, oversize)| {
        let spec = match kind {
            0 => CodecSpec::lines(max),
            1 => CodecSpec::Cobs {
                max_frame: max,
                oversize,
            },
            2 => CodecSpec::LengthField(LengthFieldConfig {
                max_frame: max + 1,
                ..LengthFieldConfig::new(1, Endian::Big)
            }),
            _ => CodecSpec::Varint(VarintConfig {
                max_frame: max,
                ..VarintConfig::new()
            }),
        };
        spec.with_oversize(oversize)
    })
}

proptest! {
    #[test]
    fn any_split_gives_the_same_frames_and_the_same_end(
        spec in specs(),
        input in proptest::collection::vec(
            prop_oneof![Just(0u8), Just(1), Just(2), Just(3), Just(b'\n'), Just(b'a')], 0..80),
        chunks in proptest::collection::vec(1usize..10, 1..6),
        eof in any::<bool>(),
    ) {
        prop_assert_eq!(run(spec, &input, &chunks, eof), whole(spec, &input, eof));
    }
}

#[test]
fn eof_inside_a_frame_names_the_unfinished_bytes() {
    let mut r = reader(CodecSpec::lines(16));
    r.handle_bytes(b"done\npart");
    r.handle_eof();
    assert_eq!(r.poll_frame(), Ok(Next::Frame(b"done")));
    let err = r.poll_frame().unwrap_err();
    assert_eq!(err, ReadError::Truncated { unfinished: 4 });
    assert_eq!(
        err.to_string(),
        "the stream ended inside a frame, with 4 bytes of it unfinished"
    );
    assert!(r.read_buf().is_empty());
}

#[test]
fn eof_between_frames_ends_cleanly_and_stays_ended() {
    let mut r = reader(CodecSpec::lines(16));
    r.handle_bytes(b"a\n");
    r.handle_eof();
    assert_eq!(r.poll_frame(), Ok(Next::Frame(b"a")));
    assert_eq!(r.poll_frame(), Ok(Next::End));
    assert_eq!(r.poll_frame(), Ok(Next::End));
    assert!(!r.is_idle());
}

#[test]
fn oversized_frames_are_skipped_under_the_skip_policy() {
    let mut r = reader(CodecSpec::lines(4).with_oversize(Oversize::Skip));
    for chunk in [&b"ok\ntoo long"[..], b" by far\nyes\n"] {
        r.handle_bytes(chunk);
    }
    assert_eq!(r.poll_frame(), Ok(Next::Frame(b"ok")));
    assert_eq!(r.poll_frame(), Ok(Next::Frame(b"yes")));
    assert_eq!(r.poll_frame(), Ok(Next::NeedMore));
    assert_eq!(r.frames_skipped(), 1);
    assert!(matches!(
        r.last_skipped(),
        Some(Error::FrameTooLarge { max: 4, .. })
    ));
    assert!(r.is_idle());
}

#[test]
fn oversized_frames_end_the_stream_under_the_close_policy() {
    let mut r = reader(CodecSpec::lines(4));
    r.handle_bytes(b"ok\ntoo long\n");
    assert_eq!(r.poll_frame(), Ok(Next::Frame(b"ok")));
    let err = r.poll_frame().unwrap_err();
    assert!(matches!(
        err,
        ReadError::Decode(Error::FrameTooLarge { max: 4, .. })
    ));
    assert!(
        err.to_string().contains("maximum frame length of 4 bytes"),
        "{err}"
    );
    assert_eq!(r.buffered(), 0);
}

#[test]
fn malformed_frames_are_fatal_unless_skipped() {
    // COBS: code 0x05 runs past the end of a 3-byte frame; the end is known.
    let bad = [5u8, 1, 0, 2, b'x', 0];
    let mut strict = reader(CodecSpec::Cobs {
        max_frame: 8,
        oversize: Oversize::Close,
    });
    strict.handle_bytes(&bad);
    assert!(matches!(
        strict.poll_frame(),
        Err(ReadError::Decode(Error::InvalidCobs { .. }))
    ));

    let mut lenient = reader(CodecSpec::Cobs {
        max_frame: 8,
        oversize: Oversize::Close,
    })
    .skip_malformed(true);
    lenient.handle_bytes(&bad);
    assert_eq!(lenient.poll_frame(), Ok(Next::Frame(b"x")));
    assert_eq!(lenient.frames_skipped(), 1);
}

#[test]
fn the_returned_frame_stays_until_the_next_poll() {
    let mut r = reader(CodecSpec::lines(8));
    r.handle_bytes(b"a\nb");
    assert_eq!(r.poll_frame(), Ok(Next::Frame(b"a")));
    assert_eq!(r.frame(), Some(&b"a"[..]));
    assert!(!r.is_idle(), "a partial frame follows");
    assert_eq!(r.poll_frame(), Ok(Next::NeedMore));
    assert_eq!(r.frame(), None);
    assert_eq!(r.buffered(), 1);
    // All free space is offered: the partial frame was moved to the front.
    assert_eq!(r.read_buf().len(), 63);
    r.reset();
    assert_eq!((r.buffered(), r.is_idle()), (0, true));
}

#[test]
fn storage_must_hold_a_maximum_frame() {
    let dec = CodecSpec::lines(8).decoder().unwrap();
    assert!(matches!(
        FrameReader::new(dec, [0u8; 7]),
        Err(Error::InvalidConfig { .. })
    ));
}
