//! Chunking invariance through `FramedRead`: a stream read in any split,
//! with reads that are not ready in between, gives the same frames and the
//! same first error as the stream read whole.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::BytesMut;
use fastnet_proto::codec::{
    AnyDecoder, AnyEncoder, CodecSpec, Endian, LengthFieldConfig, Oversize, VarintConfig,
};
use fastnet_proto::Error;
use fastnet_tokio::{CodecError, FastnetCodec};
use futures_util::StreamExt;
use proptest::prelude::*;
use tokio::io::{AsyncRead, ReadBuf};
use tokio_util::codec::{Encoder, FramedRead};

/// Hands out `data` in reads of the given sizes (cycled), answering every
/// other poll with `Pending` (and an immediate wake) so the decoder is also
/// asked again with nothing new.
struct Chunked {
    data: Vec<u8>,
    pos: usize,
    sizes: Vec<usize>,
    reads: usize,
    stall: bool,
}

impl Chunked {
    fn new(data: Vec<u8>, sizes: Vec<usize>) -> Self {
        Chunked {
            data,
            pos: 0,
            sizes,
            reads: 0,
            stall: false,
        }
    }
}

impl AsyncRead for Chunked {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.stall = !this.stall;
        if this.stall {
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        let size = this.sizes[this.reads % this.sizes.len()];
        this.reads += 1;
        let n = size.min(buf.remaining()).min(this.data.len() - this.pos);
        buf.put_slice(&this.data[this.pos..this.pos + n]);
        this.pos += n;
        Poll::Ready(Ok(()))
    }
}

/// What `FramedRead` yields, in a form to compare.
#[derive(Debug, PartialEq)]
enum Item {
    Frame(Vec<u8>),
    /// A decode error and whether the stream could continue; how many bytes
    /// it dropped depends on how many were buffered, so that is left out.
    Decode(Error, bool),
    /// Any other error, as its text.
    Other(String),
}

/// Every item `FramedRead` yields until its stream ends (after an error it
/// yields `None`).
fn read_all<R: AsyncRead + Unpin>(reader: R, spec: &CodecSpec) -> Vec<Item> {
    read_with(reader, FastnetCodec::from_spec(spec).expect("spec"))
}

fn read_with<R: AsyncRead + Unpin>(
    reader: R,
    codec: FastnetCodec<AnyDecoder, AnyEncoder>,
) -> Vec<Item> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        FramedRead::new(reader, codec)
            .map(|item| match item {
                Ok(frame) => Item::Frame(frame.to_vec()),
                Err(CodecError::Decode(e)) => Item::Decode(e.error, e.can_continue),
                Err(e) => Item::Other(e.to_string()),
            })
            .collect()
            .await
    })
}

fn specs() -> Vec<CodecSpec> {
    vec![
        CodecSpec::LengthField(LengthFieldConfig::new(2, Endian::Big).max_frame(64)),
        CodecSpec::LengthField(
            LengthFieldConfig::new(1, Endian::Little)
                .max_frame(64)
                .oversize(Oversize::Skip),
        ),
        CodecSpec::lines(48),
        CodecSpec::Varint(VarintConfig::new().max_frame(64)),
        CodecSpec::cobs(64),
    ]
}

fn spec_strategy() -> impl Strategy<Value = CodecSpec> {
    (0..specs().len()).prop_map(|i| specs()[i])
}

fn sizes() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(1usize..24, 1..8)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Payloads the encoder accepts come back, in order, however the
    /// stream is split, and the stream ends cleanly.
    #[test]
    fn encoded_payloads_come_back(
        spec in spec_strategy(),
        payloads in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..60), 0..12),
        sizes in sizes(),
    ) {
        let mut codec = FastnetCodec::from_spec(&spec).unwrap();
        let mut wire = BytesMut::new();
        let mut sent = Vec::new();
        for p in payloads {
            // Some payloads do not fit a codec (too long, holding a line
            // end); those are refused and not sent.
            if codec.encode(&p[..], &mut wire).is_ok() {
                sent.push(Item::Frame(p));
            }
        }
        let got = read_all(Chunked::new(wire.to_vec(), sizes), &spec);
        prop_assert_eq!(got, sent);
    }

    /// Arbitrary bytes: the same frames and the same first error (or the
    /// same end-of-stream error) in any split as whole.
    #[test]
    fn any_bytes_split_or_whole(
        spec in spec_strategy(),
        bytes in prop::collection::vec(any::<u8>(), 0..300),
        sizes in sizes(),
    ) {
        let whole = read_all(&bytes[..], &spec);
        let split = read_all(Chunked::new(bytes, sizes), &spec);
        prop_assert_eq!(split, whole);
    }

    /// Skipping recoverable errors: the same frames past every skipped
    /// oversized frame, in any split.
    #[test]
    fn skipped_frames_split_or_whole(
        spec in spec_strategy(),
        bytes in prop::collection::vec(any::<u8>(), 0..300),
        sizes in sizes(),
    ) {
        let spec = spec.with_oversize(Oversize::Skip);
        let codec = || FastnetCodec::from_spec(&spec).unwrap().skip_recoverable(true);
        let whole = read_with(&bytes[..], codec());
        let split = read_with(Chunked::new(bytes, sizes), codec());
        prop_assert_eq!(split, whole);
    }
}

#[test]
fn truncated_stream_names_the_missing_bytes() {
    let spec = specs()[0];
    // One whole frame, then 4 bytes of a 12-byte frame.
    let got = read_all(
        Chunked::new(b"\x00\x01a\x00\x0axy".to_vec(), vec![2]),
        &spec,
    );
    assert_eq!(
        got,
        vec![
            Item::Frame(b"a".to_vec()),
            Item::Other("stream ended inside a frame: 4 of its 12 bytes received".to_string())
        ]
    );
}
