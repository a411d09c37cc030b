//! Run-time choice of codec: one enum of configurations, one decoder and
//! one encoder type that dispatch with a `match` (no boxing, no vtable).

use super::{
    CobsDecoder, CobsEncoder, Decoded, Decoder, DelimiterDecoder, DelimiterEncoder, DelimiterState,
    Delimiters, Encoder, Envelope, FixedDecoder, FixedEncoder, LengthFieldConfig,
    LengthFieldDecoder, LengthFieldEncoder, Oversize, PrefixState, RawDecoder, RawEncoder,
    SplitDecoder, VarintConfig, VarintDecoder, VarintEncoder,
};
use crate::{DecodeError, Error};

/// Which framing to use and how, as plain data: what a configuration file
/// or a command line selects, and what a server clones for each connection.
///
/// ```
/// use fastnet_proto::codec::{CodecSpec, Decoded, Decoder, Encoder, Endian, LengthFieldConfig};
///
/// let spec = CodecSpec::LengthField(LengthFieldConfig::new(2, Endian::Big));
/// let enc = spec.encoder().unwrap();
/// let mut wire = [0u8; 16];
/// let n = enc.encode(b"hi", &mut wire).unwrap();
/// assert_eq!(&wire[..n], b"\x00\x02hi");
///
/// let mut dec = spec.decoder().unwrap();
/// let Ok(Decoded::Frame(frame)) = dec.decode(&mut wire[..n]) else { panic!() };
/// assert_eq!(frame.payload(&wire), b"hi");
/// ```
///
/// Codecs and their options may be added in a minor release: outside this
/// crate a spec is made with the constructors ([`raw`](Self::raw),
/// [`lines`](Self::lines), [`delimiter`](Self::delimiter),
/// [`fixed`](Self::fixed), [`cobs`](Self::cobs), or the tuple variants
/// around [`LengthFieldConfig`] and [`VarintConfig`]) and the `with_`
/// setters, and a `match` on one needs a wildcard arm.
///
/// ```
/// use fastnet_proto::codec::{CodecSpec, Delimiters, Oversize};
///
/// let nul = CodecSpec::delimiter(Delimiters::new(&[b"\0"]).unwrap(), 4096)
///     .with_keep(true)
///     .with_oversize(Oversize::Skip);
/// assert_eq!(nul.max_frame(), 4096);
/// assert!(matches!(nul, CodecSpec::Delimiter { keep: true, .. }));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CodecSpec {
    /// No framing: bytes as they come, at most `max_frame` at a time.
    #[non_exhaustive]
    Raw {
        /// Largest chunk handed out at once.
        max_frame: usize,
    },
    /// Frames ended by a delimiter.
    #[non_exhaustive]
    Delimiter {
        /// The delimiters; the first is the one encoders write.
        delimiters: Delimiters,
        /// Keep the delimiter in the payload.
        keep: bool,
        /// Maximum frame length, delimiter included.
        max_frame: usize,
        /// Oversize policy.
        oversize: Oversize,
    },
    /// Frames of exactly `len` bytes.
    #[non_exhaustive]
    Fixed {
        /// Frame length.
        len: usize,
    },
    /// Frames with a length field.
    LengthField(LengthFieldConfig),
    /// Frames with a varint length prefix.
    Varint(VarintConfig),
    /// COBS frames ended by `0x00`.
    #[non_exhaustive]
    Cobs {
        /// Maximum frame length, the `0x00` included.
        max_frame: usize,
        /// Oversize policy.
        oversize: Oversize,
    },
}

impl CodecSpec {
    /// No framing: each read's bytes, at most `max_frame` at a time.
    pub const fn raw(max_frame: usize) -> Self {
        CodecSpec::Raw { max_frame }
    }

    /// Frames ended by one of `delimiters` (the first is the one encoders
    /// write), stripped from the payload, of at most `max_frame` bytes with
    /// the delimiter; an oversized frame closes the connection.
    pub const fn delimiter(delimiters: Delimiters, max_frame: usize) -> Self {
        CodecSpec::Delimiter {
            delimiters,
            keep: false,
            max_frame,
            oversize: Oversize::Close,
        }
    }

    /// Frames of exactly `len` bytes.
    pub const fn fixed(len: usize) -> Self {
        CodecSpec::Fixed { len }
    }

    /// COBS frames ended by `0x00`, of at most `max_frame` bytes with it;
    /// an oversized frame closes the connection.
    pub const fn cobs(max_frame: usize) -> Self {
        CodecSpec::Cobs {
            max_frame,
            oversize: Oversize::Close,
        }
    }

    /// The same spec keeping the delimiter in each payload (delimiter
    /// codecs only; the others ignore it).
    #[must_use]
    pub fn with_keep(mut self, keep_delimiter: bool) -> Self {
        if let CodecSpec::Delimiter { keep, .. } = &mut self {
            *keep = keep_delimiter;
        }
        self
    }

    /// Lines (LF, a CR before it stripped) of at most `max_frame` bytes.
    pub fn lines(max_frame: usize) -> Self {
        CodecSpec::Delimiter {
            delimiters: Delimiters::lines(),
            keep: false,
            max_frame,
            oversize: Oversize::Close,
        }
    }

    /// The maximum frame length on the wire.
    pub fn max_frame(&self) -> usize {
        match *self {
            CodecSpec::Raw { max_frame }
            | CodecSpec::Delimiter { max_frame, .. }
            | CodecSpec::Cobs { max_frame, .. } => max_frame,
            CodecSpec::Fixed { len } => len,
            CodecSpec::LengthField(cfg) => cfg.max_frame,
            CodecSpec::Varint(cfg) => cfg.max_frame,
        }
    }

    /// The same spec with another maximum frame length (ignored by fixed
    /// length, whose maximum is its length).
    #[must_use]
    pub fn with_max_frame(mut self, max: usize) -> Self {
        match &mut self {
            CodecSpec::Raw { max_frame }
            | CodecSpec::Delimiter { max_frame, .. }
            | CodecSpec::Cobs { max_frame, .. } => *max_frame = max,
            CodecSpec::Fixed { .. } => {}
            CodecSpec::LengthField(cfg) => cfg.max_frame = max,
            CodecSpec::Varint(cfg) => cfg.max_frame = max,
        }
        self
    }

    /// The same spec with another oversize policy (codecs that cannot see
    /// oversize frames ignore it).
    #[must_use]
    pub fn with_oversize(mut self, policy: Oversize) -> Self {
        match &mut self {
            CodecSpec::Delimiter { oversize, .. } | CodecSpec::Cobs { oversize, .. } => {
                *oversize = policy
            }
            CodecSpec::LengthField(cfg) => cfg.oversize = policy,
            CodecSpec::Varint(cfg) => cfg.oversize = policy,
            CodecSpec::Raw { .. } | CodecSpec::Fixed { .. } => {}
        }
        self
    }

    /// A fresh decoder (each connection needs its own: decoders hold
    /// per-stream state).
    pub fn decoder(&self) -> Result<AnyDecoder, Error> {
        Ok(match *self {
            CodecSpec::Raw { max_frame } => AnyDecoder::Raw(RawDecoder::new(max_frame)?),
            CodecSpec::Delimiter {
                delimiters,
                keep,
                max_frame,
                oversize,
            } => AnyDecoder::Delimiter(
                DelimiterDecoder::new(delimiters, max_frame)?
                    .keep_delimiter(keep)
                    .oversize(oversize),
            ),
            CodecSpec::Fixed { len } => AnyDecoder::Fixed(FixedDecoder::new(len)?),
            CodecSpec::LengthField(cfg) => AnyDecoder::LengthField(LengthFieldDecoder::new(cfg)?),
            CodecSpec::Varint(cfg) => AnyDecoder::Varint(VarintDecoder::new(cfg)?),
            CodecSpec::Cobs {
                max_frame,
                oversize,
            } => AnyDecoder::Cobs(CobsDecoder::new(max_frame)?.oversize(oversize)),
        })
    }

    /// The matching encoder, or why this spec cannot encode (for example a
    /// length field with bytes before it).
    pub fn encoder(&self) -> Result<AnyEncoder, Error> {
        Ok(match *self {
            CodecSpec::Raw { max_frame } => AnyEncoder::Raw(RawEncoder::new(max_frame)?),
            CodecSpec::Delimiter {
                delimiters,
                keep,
                max_frame,
                ..
            } => AnyEncoder::Delimiter(
                DelimiterEncoder::new(delimiters, max_frame)?.keep_delimiter(keep),
            ),
            CodecSpec::Fixed { len } => AnyEncoder::Fixed(FixedEncoder::new(len)?),
            CodecSpec::LengthField(cfg) => AnyEncoder::LengthField(LengthFieldEncoder::new(cfg)?),
            CodecSpec::Varint(cfg) => AnyEncoder::Varint(VarintEncoder::new(cfg)?),
            CodecSpec::Cobs { max_frame, .. } => AnyEncoder::Cobs(CobsEncoder::new(max_frame)?),
        })
    }
}

/// Any of the crate's decoders, chosen at run time.
#[derive(Clone, Debug)]
#[allow(missing_docs)] // The variants are named after the decoders they hold.
pub enum AnyDecoder {
    Raw(RawDecoder),
    Delimiter(DelimiterDecoder),
    Fixed(FixedDecoder),
    LengthField(LengthFieldDecoder),
    Varint(VarintDecoder),
    Cobs(CobsDecoder),
}

/// Any of the crate's encoders, chosen at run time.
#[derive(Clone, Debug)]
#[allow(missing_docs)] // The variants are named after the encoders they hold.
pub enum AnyEncoder {
    Raw(RawEncoder),
    Delimiter(DelimiterEncoder),
    Fixed(FixedEncoder),
    LengthField(LengthFieldEncoder),
    Varint(VarintEncoder),
    Cobs(CobsEncoder),
}

macro_rules! dispatch {
    ($any:ident, $self:expr, $inner:ident => $body:expr) => {
        match $self {
            $any::Raw($inner) => $body,
            $any::Delimiter($inner) => $body,
            $any::Fixed($inner) => $body,
            $any::LengthField($inner) => $body,
            $any::Varint($inner) => $body,
            $any::Cobs($inner) => $body,
        }
    };
}

impl Decoder for AnyDecoder {
    #[inline]
    fn decode(&mut self, src: &mut [u8]) -> Result<Decoded, DecodeError> {
        dispatch!(AnyDecoder, self, d => d.decode(src))
    }

    fn reset(&mut self) {
        dispatch!(AnyDecoder, self, d => d.reset())
    }

    fn max_frame(&self) -> usize {
        dispatch!(AnyDecoder, self, d => d.max_frame())
    }

    fn is_skipping(&self) -> bool {
        dispatch!(AnyDecoder, self, d => d.is_skipping())
    }
}

/// One stream's state of an [`AnyDecoder`] (see [`SplitDecoder`]): the
/// state of the decoder it holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AnyState(StateOf);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum StateOf {
    Raw(RawDecoder),
    Delimiter(DelimiterState),
    Fixed(FixedDecoder),
    LengthField(PrefixState),
    Varint(PrefixState),
    Cobs(CobsDecoder),
}

impl SplitDecoder for AnyDecoder {
    type State = AnyState;

    fn new_state(&self) -> AnyState {
        AnyState(match self {
            AnyDecoder::Raw(d) => StateOf::Raw(d.new_state()),
            AnyDecoder::Delimiter(d) => StateOf::Delimiter(d.new_state()),
            AnyDecoder::Fixed(d) => StateOf::Fixed(d.new_state()),
            AnyDecoder::LengthField(d) => StateOf::LengthField(d.new_state()),
            AnyDecoder::Varint(d) => StateOf::Varint(d.new_state()),
            AnyDecoder::Cobs(d) => StateOf::Cobs(d.new_state()),
        })
    }

    #[inline]
    fn decode_with(&self, state: &mut AnyState, src: &mut [u8]) -> Result<Decoded, DecodeError> {
        loop {
            match (self, &mut state.0) {
                (AnyDecoder::Raw(d), StateOf::Raw(s)) => return d.decode_with(s, src),
                (AnyDecoder::Delimiter(d), StateOf::Delimiter(s)) => return d.decode_with(s, src),
                (AnyDecoder::Fixed(d), StateOf::Fixed(s)) => return d.decode_with(s, src),
                (AnyDecoder::LengthField(d), StateOf::LengthField(s)) => {
                    return d.decode_with(s, src)
                }
                (AnyDecoder::Varint(d), StateOf::Varint(s)) => return d.decode_with(s, src),
                (AnyDecoder::Cobs(d), StateOf::Cobs(s)) => return d.decode_with(s, src),
                // Another decoder's state: a fresh stream's instead.
                _ => *state = self.new_state(),
            }
        }
    }

    fn is_skipping_with(&self, state: &AnyState) -> bool {
        match (self, &state.0) {
            (AnyDecoder::Delimiter(d), StateOf::Delimiter(s)) => d.is_skipping_with(s),
            (AnyDecoder::LengthField(d), StateOf::LengthField(s)) => d.is_skipping_with(s),
            (AnyDecoder::Varint(d), StateOf::Varint(s)) => d.is_skipping_with(s),
            (AnyDecoder::Cobs(d), StateOf::Cobs(s)) => d.is_skipping_with(s),
            _ => false,
        }
    }
}

impl Encoder for AnyEncoder {
    fn encoded_len(&self, payload: &[u8]) -> Result<usize, Error> {
        dispatch!(AnyEncoder, self, e => e.encoded_len(payload))
    }

    fn envelope(&self, payload: &[u8]) -> Result<Option<Envelope>, Error> {
        dispatch!(AnyEncoder, self, e => e.envelope(payload))
    }

    #[inline]
    fn encode_with<F: FnMut(&[u8])>(&self, payload: &[u8], put: F) -> Result<usize, Error> {
        dispatch!(AnyEncoder, self, e => e.encode_with(payload, put))
    }
}

#[cfg(test)]
mod tests {
    use std::vec::Vec;

    use super::*;
    use crate::codec::testutil::*;
    use crate::codec::Endian;
    use proptest::prelude::*;

    fn specs() -> Vec<CodecSpec> {
        let mut le = LengthFieldConfig::new(3, Endian::Little);
        le.adjust = 3;
        le.max_frame = 1000;
        std::vec![
            CodecSpec::Raw { max_frame: 1000 },
            CodecSpec::lines(1000),
            CodecSpec::Delimiter {
                delimiters: Delimiters::new(&[b"\0\0", b"|"]).unwrap(),
                keep: true,
                max_frame: 1000,
                oversize: Oversize::Skip,
            },
            CodecSpec::Fixed { len: 7 },
            CodecSpec::LengthField(LengthFieldConfig::new(4, Endian::Big)),
            CodecSpec::LengthField(le),
            CodecSpec::Varint(VarintConfig::new()),
            CodecSpec::Varint(VarintConfig::mqtt()),
            CodecSpec::Cobs {
                max_frame: 1000,
                oversize: Oversize::Close
            },
        ]
    }

    #[test]
    fn every_spec_builds_both_sides() {
        for spec in specs() {
            let dec = spec.decoder().unwrap();
            assert_eq!(dec.max_frame(), spec.max_frame(), "{spec:?}");
            spec.encoder().unwrap();
        }
    }

    #[test]
    fn with_max_frame_and_oversize() {
        let spec = CodecSpec::lines(10)
            .with_max_frame(20)
            .with_oversize(Oversize::Skip);
        assert_eq!(spec.max_frame(), 20);
        assert!(matches!(
            spec,
            CodecSpec::Delimiter {
                oversize: Oversize::Skip,
                ..
            }
        ));
        assert_eq!(CodecSpec::Fixed { len: 4 }.with_max_frame(9).max_frame(), 4);
    }

    #[test]
    fn unencodable_spec_says_why() {
        let mut cfg = LengthFieldConfig::new(2, Endian::Big);
        cfg.offset = 1;
        assert!(CodecSpec::LengthField(cfg).decoder().is_ok());
        assert!(matches!(
            CodecSpec::LengthField(cfg).encoder(),
            Err(Error::NotEncodable { .. })
        ));
    }

    #[test]
    fn a_state_from_another_decoder_counts_as_a_fresh_stream() {
        let lines = CodecSpec::lines(100).decoder().unwrap();
        let fixed = CodecSpec::Fixed { len: 2 }.decoder().unwrap();
        let mut state = fixed.new_state();
        assert_eq!(
            lines.decode_with(&mut state, &mut b"ab\n".to_vec()),
            Ok(Decoded::Frame(super::super::Frame {
                consumed: 3,
                start: 0,
                end: 2
            }))
        );
        assert_eq!(state, lines.new_state());
        assert!(!lines.is_skipping_with(&fixed.new_state()));
    }

    /// Clones of one shared decoder hold a pointer and their own state,
    /// nothing else: the point of sharing.
    #[cfg(feature = "alloc")]
    #[test]
    fn a_shared_decoder_is_small() {
        use super::super::SharedDecoder;
        let size = core::mem::size_of::<SharedDecoder<AnyDecoder>>();
        assert!(size <= 48, "{size} bytes");
        assert!(
            size * 4 <= core::mem::size_of::<AnyDecoder>(),
            "{size} bytes"
        );
    }

    proptest! {
        /// A shared decoder (a clone of one template per stream) decodes
        /// any bytes, valid or not, in any chunks, exactly as the decoder
        /// it shares: the same frames, the same errors, the same stop.
        #[cfg(feature = "alloc")]
        #[test]
        fn shared_decodes_as_the_decoder_itself(which in 0usize..9,
                                                wire in proptest::collection::vec(
                                                    prop_oneof![4 => any::<u8>(), 1 => Just(0u8),
                                                                1 => Just(b'\n'), 1 => Just(b'|')],
                                                    0..400),
                                                chunks in proptest::collection::vec(1usize..80, 1..6),
                                                streams in 1usize..4) {
            let spec = specs()[which];
            let template = super::super::SharedDecoder::new(spec.decoder().unwrap());
            let expected = decode_chunked(&mut spec.decoder().unwrap(), &wire, &chunks);
            for _ in 0..streams {
                let mut shared = template.clone();
                prop_assert_eq!(&decode_chunked(&mut shared, &wire, &chunks), &expected);
                // And again after a reset, on the same clone.
                shared.reset();
                prop_assert_eq!(&decode_chunked(&mut shared, &wire, &chunks), &expected);
            }
        }

        #[test]
        fn roundtrip_through_any(which in 0usize..9,
                                 payloads in proptest::collection::vec(
                                     proptest::collection::vec(any::<u8>(), 0..60), 0..12),
                                 chunks in proptest::collection::vec(1usize..80, 1..6)) {
            let spec = specs()[which];
            let enc = spec.encoder().unwrap();
            let payloads: Vec<Vec<u8>> = payloads
                .into_iter()
                .map(|mut p| {
                    if let CodecSpec::Delimiter { keep: true, .. } = spec {
                        p.retain(|&b| b != 0 && b != b'|');
                        p.push(b'|');
                    }
                    if let CodecSpec::Fixed { len } = spec { p.resize(len, 1); }
                    p
                })
                .filter(|p| enc.encoded_len(p).is_ok() && !(matches!(spec, CodecSpec::Raw { .. }) && p.is_empty()))
                .collect();
            let wire = encode_all(&enc, &payloads);
            let out = decode_chunked(&mut spec.decoder().unwrap(), &wire, &chunks);
            prop_assert!(out.errors.is_empty());
            if matches!(spec, CodecSpec::Raw { .. }) {
                prop_assert_eq!(out.frames.concat(), payloads.concat());
            } else {
                prop_assert_eq!(out.frames, payloads);
            }
        }
    }
}
