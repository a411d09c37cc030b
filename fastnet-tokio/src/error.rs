//! The adapter's error: fastnet's decode and encode errors, a stream that
//! ended inside a frame, and the IO errors tokio-util hands to a codec.

use std::fmt;
use std::io;

use fastnet_proto::{DecodeError, Error};

/// Why a [`FastnetCodec`](crate::FastnetCodec) or the `Framed` around it
/// failed.
///
/// tokio-util requires `From<io::Error>` so that socket errors and codec
/// errors travel through one type; [`CodecError::Io`] holds the former.
/// The `Display` text names the limit, the offending value or the number of
/// bytes involved.
///
/// ```
/// use fastnet_proto::{DecodeError, Error};
/// use fastnet_tokio::CodecError;
///
/// let e = CodecError::Decode(DecodeError::fatal(Error::FrameTooLarge { len: 70_000, max: 65_536 }));
/// assert_eq!(
///     e.to_string(),
///     "decode error: frame of 70000 bytes exceeds the maximum frame length of 65536 bytes (stream cannot continue)"
/// );
/// assert_eq!(std::io::Error::from(e).kind(), std::io::ErrorKind::InvalidData);
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum CodecError {
    /// The decoder rejected the bytes at the front of the stream. If the
    /// error's `can_continue` is false the stream is lost, and the codec
    /// keeps returning this error until [`reset`](crate::FastnetCodec::reset).
    Decode(DecodeError),
    /// The encoder refused the item (too large for the frame limit, a
    /// length the field cannot hold, a payload holding the delimiter);
    /// nothing was written.
    Encode(Error),
    /// The stream ended with bytes of an incomplete frame still buffered.
    Eof {
        /// Bytes buffered when the stream ended.
        pending: usize,
        /// The incomplete frame's length on the wire, when its header had
        /// been read.
        frame_len: Option<usize>,
    },
    /// The socket (or whatever `Framed` wraps) failed.
    Io(io::Error),
}

impl CodecError {
    /// The decode error, if this is one.
    pub fn as_decode(&self) -> Option<&DecodeError> {
        match self {
            CodecError::Decode(e) => Some(e),
            _ => None,
        }
    }

    /// The fastnet error inside, for a decode or an encode error.
    pub fn fastnet_error(&self) -> Option<Error> {
        match self {
            CodecError::Decode(e) => Some(e.error),
            CodecError::Encode(e) => Some(*e),
            CodecError::Eof { .. } | CodecError::Io(_) => None,
        }
    }
}

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CodecError::Decode(e) => write!(f, "decode error: {e}"),
            CodecError::Encode(e) => write!(f, "encode error: {e}"),
            CodecError::Eof {
                pending,
                frame_len: Some(len),
            } => write!(
                f,
                "stream ended inside a frame: {pending} of its {len} bytes received"
            ),
            CodecError::Eof {
                pending,
                frame_len: None,
            } => write!(
                f,
                "stream ended inside a frame: {pending} bytes pending without a frame boundary"
            ),
            CodecError::Io(e) => write!(f, "io error: {e}"),
        }
    }
}

impl std::error::Error for CodecError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CodecError::Decode(e) => Some(e),
            CodecError::Encode(e) => Some(e),
            CodecError::Eof { .. } => None,
            CodecError::Io(e) => Some(e),
        }
    }
}

impl From<io::Error> for CodecError {
    fn from(e: io::Error) -> Self {
        CodecError::Io(e)
    }
}

impl From<DecodeError> for CodecError {
    fn from(e: DecodeError) -> Self {
        CodecError::Decode(e)
    }
}

/// For callers that speak `io::Error` only: bad bytes and refused items
/// become [`InvalidData`](io::ErrorKind::InvalidData), a truncated frame
/// [`UnexpectedEof`](io::ErrorKind::UnexpectedEof), and an IO error is
/// returned as it was.
impl From<CodecError> for io::Error {
    fn from(e: CodecError) -> Self {
        match e {
            CodecError::Io(e) => e,
            CodecError::Eof { .. } => io::Error::new(io::ErrorKind::UnexpectedEof, e),
            CodecError::Decode(_) | CodecError::Encode(_) => {
                io::Error::new(io::ErrorKind::InvalidData, e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_the_numbers() {
        let eof = CodecError::Eof {
            pending: 3,
            frame_len: Some(9),
        };
        assert_eq!(
            eof.to_string(),
            "stream ended inside a frame: 3 of its 9 bytes received"
        );
        let eof = CodecError::Eof {
            pending: 5,
            frame_len: None,
        };
        assert_eq!(
            eof.to_string(),
            "stream ended inside a frame: 5 bytes pending without a frame boundary"
        );
        let enc = CodecError::Encode(Error::PayloadTooLarge { len: 20, max: 16 });
        assert_eq!(
            enc.to_string(),
            "encode error: encoded frame of 20 bytes exceeds the maximum frame length of 16 bytes"
        );
        let skipped = CodecError::Decode(DecodeError::recoverable(
            Error::FrameTooLarge { len: 9, max: 8 },
            4,
        ));
        assert!(skipped
            .to_string()
            .ends_with("(skipped 4 bytes, stream continues)"));
    }

    #[test]
    fn io_errors_round_trip() {
        let e = CodecError::from(io::Error::new(io::ErrorKind::ConnectionReset, "reset"));
        assert!(e.fastnet_error().is_none());
        let back = io::Error::from(e);
        assert_eq!(back.kind(), io::ErrorKind::ConnectionReset);
        assert_eq!(back.to_string(), "reset");
    }

    #[test]
    fn kinds_and_sources() {
        let eof = io::Error::from(CodecError::Eof {
            pending: 1,
            frame_len: None,
        });
        assert_eq!(eof.kind(), io::ErrorKind::UnexpectedEof);
        let dec = CodecError::from(DecodeError::fatal(Error::VarintOverflow));
        assert_eq!(dec.fastnet_error(), Some(Error::VarintOverflow));
        assert!(dec.as_decode().is_some());
        let source = std::error::Error::source(&dec).map(|s| s.to_string());
        assert_eq!(
            source.as_deref(),
            Some("varint length prefix overflows 64 bits (stream cannot continue)")
        );
    }
}
