//! [`FastnetCodec`]: a fastnet decoder and encoder behind tokio-util's
//! `Decoder` and `Encoder` traits.

use bytes::{Buf, Bytes, BytesMut};
use fastnet_proto::codec::{
    AnyDecoder, AnyEncoder, CodecSpec, Decoded, Decoder as FrameDecoder, DelimiterDecoder,
    DelimiterEncoder, Encoder as FrameEncoder, LengthFieldConfig, LengthFieldDecoder,
    LengthFieldEncoder,
};
use fastnet_proto::{DecodeError, Error};
use tokio_util::codec::{Decoder, Encoder};

use crate::CodecError;

/// A fastnet decoder and encoder as one tokio-util codec.
///
/// Decoded items are [`BytesMut`] payloads split off the front of the read
/// buffer, without a copy; items to send are [`Bytes`], [`BytesMut`] or
/// `&[u8]` payloads, framed into the write buffer. The decoder enforces its
/// own maximum frame length (the whole frame on the wire) and fails as soon
/// as a header announces more; while a frame of known length is incomplete,
/// the read buffer grows once to hold it, never beyond that maximum.
///
/// Either half may be `()` when only the other is used, as with
/// `FramedRead` or `FramedWrite`: the `Decoder` impl needs only `D` to be a
/// fastnet decoder, the `Encoder` impls only `E` to be a fastnet encoder.
///
/// ```
/// use bytes::BytesMut;
/// use fastnet_proto::codec::{Endian, LengthFieldConfig};
/// use fastnet_tokio::FastnetCodec;
/// use tokio_util::codec::{Decoder, Encoder};
///
/// let mut codec = FastnetCodec::length_field(LengthFieldConfig::new(2, Endian::Big)).unwrap();
/// let mut wire = BytesMut::new();
/// codec.encode(&b"hello"[..], &mut wire).unwrap();
/// assert_eq!(&wire[..], b"\x00\x05hello");
///
/// let frame = codec.decode(&mut wire).unwrap().unwrap();
/// assert_eq!(&frame[..], b"hello");
/// assert!(wire.is_empty());
/// ```
///
/// # Errors
///
/// A fatal decode error (the stream is out of sync) is returned again by
/// every later call until [`reset`](Self::reset), so no frame is ever cut
/// from bytes after it. A recoverable one (an oversized frame skipped under
/// [`Oversize::Skip`](fastnet_proto::codec::Oversize::Skip)) is returned
/// once and decoding resumes behind it; but `FramedRead` ends its stream
/// after any error, so a codec read through it that should go on past
/// skipped frames sets [`skip_recoverable`](Self::skip_recoverable), which
/// counts them in [`recovered`](Self::recovered) instead.
///
/// At end of stream, bytes of an incomplete frame give
/// [`CodecError::Eof`] with their count.
#[derive(Clone, Debug)]
pub struct FastnetCodec<D, E> {
    decoder: D,
    encoder: E,
    /// The fatal error that ended decoding, returned until `reset`.
    failed: Option<DecodeError>,
    /// The pending frame's length on the wire, when its header is parsed;
    /// reported if the stream ends inside it.
    frame_len: Option<usize>,
    skip_recoverable: bool,
    recovered: u64,
}

impl<D, E> FastnetCodec<D, E> {
    /// A codec that decodes with `decoder` and encodes with `encoder`.
    ///
    /// Each connection needs its own codec: a decoder holds the state of
    /// the frame it is in.
    pub fn new(decoder: D, encoder: E) -> Self {
        FastnetCodec {
            decoder,
            encoder,
            failed: None,
            frame_len: None,
            skip_recoverable: false,
            recovered: 0,
        }
    }

    /// Whether recoverable decode errors are skipped (and counted in
    /// [`recovered`](Self::recovered)) instead of returned. Off by default.
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use fastnet_proto::codec::{CodecSpec, Endian, LengthFieldConfig, Oversize};
    /// use fastnet_tokio::FastnetCodec;
    /// use tokio_util::codec::Decoder;
    ///
    /// let spec = CodecSpec::LengthField(LengthFieldConfig::new(1, Endian::Big))
    ///     .with_max_frame(4)
    ///     .with_oversize(Oversize::Skip);
    /// let mut codec = FastnetCodec::from_spec(&spec).unwrap().skip_recoverable(true);
    /// // A 9-byte frame over the 4-byte limit, then "ok".
    /// let mut buf = BytesMut::from(&b"\x08too long\x02ok"[..]);
    /// assert_eq!(&codec.decode(&mut buf).unwrap().unwrap()[..], b"ok");
    /// assert_eq!(codec.recovered(), 1);
    /// ```
    #[must_use]
    pub fn skip_recoverable(mut self, skip: bool) -> Self {
        self.skip_recoverable = skip;
        self
    }

    /// How many recoverable decode errors were skipped under
    /// [`skip_recoverable`](Self::skip_recoverable).
    pub fn recovered(&self) -> u64 {
        self.recovered
    }

    /// The decoder.
    pub fn decoder(&self) -> &D {
        &self.decoder
    }

    /// The decoder, mutably (changing it mid-frame breaks the stream).
    pub fn decoder_mut(&mut self) -> &mut D {
        &mut self.decoder
    }

    /// The encoder.
    pub fn encoder(&self) -> &E {
        &self.encoder
    }

    /// The encoder, mutably.
    pub fn encoder_mut(&mut self) -> &mut E {
        &mut self.encoder
    }

    /// The decoder and the encoder.
    pub fn into_parts(self) -> (D, E) {
        (self.decoder, self.encoder)
    }
}

impl<D: FrameDecoder, E> FastnetCodec<D, E> {
    /// Forgets any partial frame and a fatal error, for reuse on a new
    /// stream.
    pub fn reset(&mut self) {
        self.decoder.reset();
        self.failed = None;
        self.frame_len = None;
    }
}

impl FastnetCodec<LengthFieldDecoder, LengthFieldEncoder> {
    /// A length field codec, Netty's parameters in `cfg`.
    ///
    /// Fails if the decoder refuses `cfg`, or if the encoder cannot write
    /// what the decoder reads (bytes before the field, an unusual strip).
    pub fn length_field(cfg: LengthFieldConfig) -> Result<Self, Error> {
        Ok(FastnetCodec::new(
            LengthFieldDecoder::new(cfg)?,
            LengthFieldEncoder::new(cfg)?,
        ))
    }
}

impl FastnetCodec<DelimiterDecoder, DelimiterEncoder> {
    /// Lines ending in `\n` (a `\r` before it is stripped too), at most
    /// `max_frame` bytes with the line end; encodes with `\n`.
    pub fn lines(max_frame: usize) -> Result<Self, Error> {
        Ok(FastnetCodec::new(
            DelimiterDecoder::lines(max_frame)?,
            DelimiterEncoder::lines(max_frame)?,
        ))
    }
}

impl FastnetCodec<AnyDecoder, AnyEncoder> {
    /// Any of fastnet's codecs, chosen at run time.
    pub fn from_spec(spec: &CodecSpec) -> Result<Self, Error> {
        Ok(FastnetCodec::new(spec.decoder()?, spec.encoder()?))
    }
}

impl<D: FrameDecoder, E> Decoder for FastnetCodec<D, E> {
    type Item = BytesMut;
    type Error = CodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<BytesMut>, CodecError> {
        if let Some(e) = self.failed {
            return Err(CodecError::Decode(e));
        }
        loop {
            match self.decoder.decode(&mut src[..]) {
                Ok(Decoded::Frame(frame)) => {
                    self.frame_len = None;
                    // The frame's bytes leave the buffer as one split (no
                    // copy); header and trailer are then cut off its ends.
                    let mut payload = src.split_to(frame.consumed.min(src.len()));
                    payload.truncate(frame.end);
                    payload.advance(frame.start.min(payload.len()));
                    return Ok(Some(payload));
                }
                // Zero would never progress; only a foreign decoder says it.
                Ok(Decoded::Skip(n)) if n > 0 => {
                    self.frame_len = None;
                    src.advance(n.min(src.len()));
                }
                Ok(Decoded::Skip(_)) => return Ok(None),
                Ok(Decoded::NeedMore { frame_len }) => {
                    self.frame_len = frame_len;
                    if let Some(len) = frame_len {
                        // Within max_frame: the decoder checked it first.
                        src.reserve(len.saturating_sub(src.len()));
                    }
                    return Ok(None);
                }
                Err(e) => {
                    self.frame_len = None;
                    src.advance(e.consumed.min(src.len()));
                    if !e.can_continue {
                        self.failed = Some(e);
                    } else if self.skip_recoverable && e.consumed > 0 {
                        self.recovered += 1;
                        continue;
                    }
                    return Err(CodecError::Decode(e));
                }
            }
        }
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<BytesMut>, CodecError> {
        match self.decode(buf)? {
            Some(frame) => Ok(Some(frame)),
            None if buf.is_empty() => Ok(None),
            None => Err(CodecError::Eof {
                pending: buf.len(),
                frame_len: self.frame_len,
            }),
        }
    }
}

/// Frames `payload` at the end of `dst`, growing it once; on an error
/// `dst` is unchanged.
fn encode_payload<E: FrameEncoder>(
    encoder: &E,
    payload: &[u8],
    dst: &mut BytesMut,
) -> Result<(), CodecError> {
    match encoder.envelope(payload).map_err(CodecError::Encode)? {
        Some(envelope) => {
            dst.reserve(envelope.overhead() + payload.len());
            dst.extend_from_slice(envelope.header());
            dst.extend_from_slice(payload);
            dst.extend_from_slice(envelope.trailer());
        }
        // A codec that rewrites the payload (COBS) writes it piece by piece.
        None => {
            let len = encoder.encoded_len(payload).map_err(CodecError::Encode)?;
            dst.reserve(len);
            encoder
                .encode_with(payload, |piece| dst.extend_from_slice(piece))
                .map_err(CodecError::Encode)?;
        }
    }
    Ok(())
}

impl<D, E: FrameEncoder> Encoder<Bytes> for FastnetCodec<D, E> {
    type Error = CodecError;

    fn encode(&mut self, item: Bytes, dst: &mut BytesMut) -> Result<(), CodecError> {
        encode_payload(&self.encoder, &item, dst)
    }
}

impl<D, E: FrameEncoder> Encoder<BytesMut> for FastnetCodec<D, E> {
    type Error = CodecError;

    fn encode(&mut self, item: BytesMut, dst: &mut BytesMut) -> Result<(), CodecError> {
        encode_payload(&self.encoder, &item, dst)
    }
}

impl<D, E: FrameEncoder> Encoder<&[u8]> for FastnetCodec<D, E> {
    type Error = CodecError;

    fn encode(&mut self, item: &[u8], dst: &mut BytesMut) -> Result<(), CodecError> {
        encode_payload(&self.encoder, item, dst)
    }
}

#[cfg(test)]
mod tests {
    use fastnet_proto::codec::{CobsDecoder, CobsEncoder, Endian, Oversize, VarintConfig};

    use super::*;

    fn u16_codec(max_frame: usize) -> FastnetCodec<LengthFieldDecoder, LengthFieldEncoder> {
        let cfg = LengthFieldConfig::new(2, Endian::Big).max_frame(max_frame);
        FastnetCodec::length_field(cfg).unwrap()
    }

    #[test]
    fn frame_is_split_off_the_read_buffer_without_a_copy() {
        let mut codec = u16_codec(64);
        let mut buf = BytesMut::from(&b"\x00\x05hello\x00\x02hi\x00"[..]);
        let base = buf.as_ptr() as usize;
        let first = codec.decode(&mut buf).unwrap().unwrap();
        assert_eq!(&first[..], b"hello");
        // Same allocation, just past the 2-byte header.
        assert_eq!(first.as_ptr() as usize, base + 2);
        let second = codec.decode(&mut buf).unwrap().unwrap();
        assert_eq!(&second[..], b"hi");
        assert_eq!(second.as_ptr() as usize, base + 9);
        assert_eq!(codec.decode(&mut buf).unwrap(), None);
        assert_eq!(&buf[..], b"\x00");
    }

    #[test]
    fn partial_frame_waits_and_reserves_its_length() {
        let mut codec = u16_codec(4096);
        let mut buf = BytesMut::from(&b"\x03\xe8abc"[..]);
        assert_eq!(codec.decode(&mut buf).unwrap(), None);
        assert!(buf.capacity() >= 1002, "capacity {}", buf.capacity());
        assert_eq!(&buf[..], b"\x03\xe8abc", "nothing consumed while waiting");
        buf.extend_from_slice(&[b'x'; 997]);
        assert_eq!(codec.decode(&mut buf).unwrap().unwrap().len(), 1000);
        assert!(buf.is_empty());
    }

    #[test]
    fn oversize_is_fatal_and_stays_fatal() {
        let mut codec = u16_codec(16);
        let mut buf = BytesMut::from(&b"\x00\x20"[..]);
        let err = codec.decode(&mut buf).unwrap_err();
        assert_eq!(
            err.to_string(),
            "decode error: frame of 34 bytes exceeds the maximum frame length of 16 bytes (stream cannot continue)"
        );
        // Even a well-formed frame behind it is not decoded any more.
        buf.clear();
        buf.extend_from_slice(b"\x00\x01a");
        assert!(matches!(
            codec.decode(&mut buf),
            Err(CodecError::Decode(e)) if e.error == Error::FrameTooLarge { len: 34, max: 16 }
        ));
        codec.reset();
        assert_eq!(&codec.decode(&mut buf).unwrap().unwrap()[..], b"a");
    }

    #[test]
    fn recoverable_error_is_reported_once_then_decoding_resumes() {
        let cfg = LengthFieldConfig::new(1, Endian::Big)
            .max_frame(4)
            .oversize(Oversize::Skip);
        let mut codec = FastnetCodec::length_field(cfg).unwrap();
        let mut buf = BytesMut::from(&b"\x05abc"[..]);
        let err = codec.decode(&mut buf).unwrap_err();
        let e = err.as_decode().copied().unwrap();
        assert!(e.can_continue);
        assert_eq!(e.error, Error::FrameTooLarge { len: 6, max: 4 });
        assert!(buf.is_empty());
        // The rest of the oversized frame, then a good one.
        buf.extend_from_slice(b"de\x01z");
        assert_eq!(&codec.decode(&mut buf).unwrap().unwrap()[..], b"z");
        assert_eq!(codec.recovered(), 0);
    }

    #[test]
    fn skip_recoverable_counts_instead_of_failing() {
        let spec = CodecSpec::lines(8).with_oversize(Oversize::Skip);
        let mut codec = FastnetCodec::from_spec(&spec)
            .unwrap()
            .skip_recoverable(true);
        let mut buf = BytesMut::from(&b"far too long a line\nok\n"[..]);
        assert_eq!(&codec.decode(&mut buf).unwrap().unwrap()[..], b"ok");
        assert_eq!(codec.recovered(), 1);
        assert!(buf.is_empty());
    }

    #[test]
    fn eof_inside_a_frame_names_the_pending_bytes() {
        let mut codec = u16_codec(64);
        let mut buf = BytesMut::from(&b"\x00\x01a\x00\x09abc"[..]);
        assert_eq!(&codec.decode_eof(&mut buf).unwrap().unwrap()[..], b"a");
        let err = codec.decode_eof(&mut buf).unwrap_err();
        assert!(matches!(
            err,
            CodecError::Eof {
                pending: 5,
                frame_len: Some(11)
            }
        ));
        assert_eq!(
            err.to_string(),
            "stream ended inside a frame: 5 of its 11 bytes received"
        );

        let mut lines = FastnetCodec::lines(64).unwrap();
        let mut buf = BytesMut::from(&b"no newline"[..]);
        assert!(matches!(
            lines.decode_eof(&mut buf),
            Err(CodecError::Eof {
                pending: 10,
                frame_len: None
            })
        ));
        // A clean end: nothing buffered.
        assert_eq!(lines.decode_eof(&mut BytesMut::new()).unwrap(), None);
    }

    #[test]
    fn encodes_every_item_type() {
        let mut codec = u16_codec(64);
        let mut dst = BytesMut::new();
        codec.encode(&b"ab"[..], &mut dst).unwrap();
        codec.encode(Bytes::from_static(b"cd"), &mut dst).unwrap();
        codec.encode(BytesMut::from(&b"e"[..]), &mut dst).unwrap();
        assert_eq!(&dst[..], b"\x00\x02ab\x00\x02cd\x00\x01e");
    }

    #[test]
    fn refused_item_leaves_the_write_buffer_alone() {
        let mut codec = u16_codec(8);
        let mut dst = BytesMut::from(&b"kept"[..]);
        let err = codec.encode(&[0u8; 7][..], &mut dst).unwrap_err();
        assert_eq!(
            err.to_string(),
            "encode error: encoded frame of 9 bytes exceeds the maximum frame length of 8 bytes"
        );
        let mut lines = FastnetCodec::lines(64).unwrap();
        let err = lines.encode(&b"two\nlines"[..], &mut dst).unwrap_err();
        assert_eq!(
            err.fastnet_error(),
            Some(Error::PayloadContainsDelimiter { pos: 3 })
        );
        assert_eq!(&dst[..], b"kept");
    }

    #[test]
    fn cobs_round_trips_through_the_piecewise_path() {
        let mut codec =
            FastnetCodec::new(CobsDecoder::new(64).unwrap(), CobsEncoder::new(64).unwrap());
        let mut wire = BytesMut::new();
        codec.encode(&b"a\x00b"[..], &mut wire).unwrap();
        assert!(!wire[..wire.len() - 1].contains(&0));
        assert_eq!(&codec.decode(&mut wire).unwrap().unwrap()[..], b"a\x00b");
        assert!(wire.is_empty());
    }

    #[test]
    fn one_half_may_be_absent() {
        let mut read_only = FastnetCodec::new(
            fastnet_proto::codec::VarintDecoder::new(VarintConfig::new()).unwrap(),
            (),
        );
        let mut buf = BytesMut::from(&b"\x02hi"[..]);
        assert_eq!(&read_only.decode(&mut buf).unwrap().unwrap()[..], b"hi");

        let mut write_only = FastnetCodec::new(
            (),
            fastnet_proto::codec::VarintEncoder::new(VarintConfig::new()).unwrap(),
        );
        write_only.encode(&b"hi"[..], &mut buf).unwrap();
        assert_eq!(&buf[..], b"\x02hi");
    }
}
