//! The crate's one error enum and the decode error that wraps it.

use core::fmt;

/// Everything that can go wrong in fastnet-proto.
///
/// Small, `Copy` and comparable, so tests and drivers can match on it; the
/// `Display` text names the limit or the offending value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Error {
    /// A frame as it sits on the wire (header and trailer included) is
    /// longer than the configured maximum. `len` is the frame length when the
    /// header announced it, or a lower bound (`max + 1`) when the decoder
    /// proved the frame too long without seeing its end.
    FrameTooLarge {
        /// Frame length on the wire (or a lower bound of it).
        len: u64,
        /// The configured maximum frame length.
        max: usize,
    },
    /// The length field plus the adjustment and the header does not fit the
    /// machine's integers.
    LengthOverflow {
        /// The raw value of the length field.
        field: u64,
        /// The configured length adjustment.
        adjust: i64,
    },
    /// After adjustment, the frame would be shorter than its own header
    /// (the length went negative or below the header size).
    LengthTooShort {
        /// The raw value of the length field.
        field: u64,
        /// The configured length adjustment.
        adjust: i64,
        /// Bytes up to the end of the length field (offset + width).
        header: usize,
    },
    /// More bytes would be stripped than the frame holds.
    StripTooLarge {
        /// Bytes configured to strip.
        strip: usize,
        /// Frame length on the wire.
        frame_len: usize,
    },
    /// A varint length prefix did not end within its maximum size.
    VarintTooLong {
        /// Maximum size of the prefix in bytes.
        max_bytes: u8,
    },
    /// A varint length prefix encodes a value above `u64::MAX`.
    VarintOverflow,
    /// A COBS frame is malformed: the code byte at `pos` runs past the end of
    /// the frame.
    InvalidCobs {
        /// Offset of the bad code byte within the frame.
        pos: usize,
        /// The bad code byte.
        code: u8,
    },
    /// The encoder was handed a payload longer than the maximum its decoder
    /// accepts (measured as the whole encoded frame).
    PayloadTooLarge {
        /// Encoded frame length.
        len: usize,
        /// The configured maximum frame length.
        max: usize,
    },
    /// The length to encode does not fit the length field.
    ///
    /// The value that had to be written is `payload - adjust` (it may be
    /// negative, or wider than 64 bits); the two parts are kept apart so
    /// that the error, and every state that holds one, stays 8-byte
    /// aligned.
    LengthNotRepresentable {
        /// Length of the payload to encode.
        payload: usize,
        /// The configured length adjustment.
        adjust: i64,
        /// Width of the length field in bytes (for a varint prefix, the
        /// most bytes it may take).
        width: u8,
    },
    /// A payload for a delimiter encoder contains a delimiter (or ends in a
    /// way that would make the decoder cut the frame elsewhere), so it would
    /// not decode back to itself.
    PayloadContainsDelimiter {
        /// Offset in the payload where the clash begins.
        pos: usize,
    },
    /// The destination buffer cannot hold the encoded frame.
    BufferTooSmall {
        /// Bytes needed.
        needed: usize,
        /// Bytes available.
        capacity: usize,
    },
    /// A frame (or a reply) is larger than the buffer that must hold it,
    /// although it is within the frame limit.
    FrameExceedsBuffer {
        /// Bytes the frame needs.
        needed: usize,
        /// Capacity of the buffer.
        capacity: usize,
    },
    /// The codec cannot encode what its decoder reads (for example a length
    /// field with an offset before it).
    NotEncodable {
        /// Why.
        reason: &'static str,
    },
    /// The connection is closing or closed and takes no more frames to send.
    ConnectionClosed,
    /// A configuration value is out of range.
    InvalidConfig {
        /// Which value, and what it must be.
        reason: &'static str,
    },
    /// A frame breaks a rule of its codec that no other variant names: for
    /// codecs written outside this crate (a checksum that does not match,
    /// a byte a text protocol does not allow).
    InvalidFrame {
        /// The rule broken.
        reason: &'static str,
        /// Offset of the offending byte within the frame.
        pos: usize,
        /// The offending byte.
        byte: u8,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Error::FrameTooLarge { len, max } => {
                write!(f, "frame of {len} bytes exceeds the maximum frame length of {max} bytes")
            }
            Error::LengthOverflow { field, adjust } => write!(
                f,
                "length field {field} with adjustment {adjust} overflows the frame length"
            ),
            Error::LengthTooShort { field, adjust, header } => write!(
                f,
                "length field {field} with adjustment {adjust} gives a frame shorter than its {header}-byte header"
            ),
            Error::StripTooLarge { strip, frame_len } => write!(
                f,
                "cannot strip {strip} bytes from a frame of {frame_len} bytes"
            ),
            Error::VarintTooLong { max_bytes } => {
                write!(f, "varint length prefix longer than {max_bytes} bytes")
            }
            Error::VarintOverflow => f.write_str("varint length prefix overflows 64 bits"),
            Error::InvalidCobs { pos, code } => write!(
                f,
                "invalid COBS frame: code byte 0x{code:02x} at offset {pos} runs past the end of the frame"
            ),
            Error::PayloadTooLarge { len, max } => write!(
                f,
                "encoded frame of {len} bytes exceeds the maximum frame length of {max} bytes"
            ),
            Error::LengthNotRepresentable {
                payload,
                adjust,
                width,
            } => {
                // Lossless: usize is at most 64 bits.
                let value = payload as i128 - i128::from(adjust);
                write!(
                    f,
                    "length value {value} (payload of {payload} bytes, adjustment {adjust}) \
                     does not fit a {width}-byte length field"
                )
            }
            Error::PayloadContainsDelimiter { pos } => {
                write!(f, "payload contains a delimiter at offset {pos}")
            }
            Error::BufferTooSmall { needed, capacity } => write!(
                f,
                "buffer of {capacity} bytes is too small, {needed} bytes needed"
            ),
            Error::FrameExceedsBuffer { needed, capacity } => write!(
                f,
                "frame of {needed} bytes does not fit the {capacity}-byte buffer"
            ),
            Error::NotEncodable { reason } => write!(f, "codec cannot encode: {reason}"),
            Error::ConnectionClosed => f.write_str("connection is closing or closed"),
            Error::InvalidConfig { reason } => write!(f, "invalid configuration: {reason}"),
            Error::InvalidFrame { reason, pos, byte } => write!(
                f,
                "invalid frame: {reason} (byte 0x{byte:02x} at offset {pos})"
            ),
        }
    }
}

impl core::error::Error for Error {}

/// A decoder's error, with what the caller must do with its buffer.
///
/// `consumed` bytes at the front of the buffer belong to the bad frame and
/// must be dropped. If `can_continue` is true the stream stays in sync (an
/// oversized frame under [`Oversize::Skip`](crate::codec::Oversize::Skip),
/// or a malformed frame whose end is known) and the caller may keep decoding;
/// otherwise the stream is lost and the connection should close.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DecodeError {
    /// What went wrong.
    pub error: Error,
    /// Bytes at the front of the buffer to drop now.
    pub consumed: usize,
    /// Whether decoding can resume after dropping `consumed` bytes.
    pub can_continue: bool,
}

impl DecodeError {
    /// An error after which the stream cannot be decoded any further.
    pub const fn fatal(error: Error) -> Self {
        DecodeError {
            error,
            consumed: 0,
            can_continue: false,
        }
    }

    /// An error after which decoding resumes once `consumed` bytes are dropped.
    pub const fn recoverable(error: Error, consumed: usize) -> Self {
        DecodeError {
            error,
            consumed,
            can_continue: true,
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.error, f)?;
        if self.can_continue {
            write!(f, " (skipped {} bytes, stream continues)", self.consumed)
        } else {
            f.write_str(" (stream cannot continue)")
        }
    }
}

impl core::error::Error for DecodeError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        Some(&self.error)
    }
}

impl From<DecodeError> for Error {
    fn from(e: DecodeError) -> Self {
        e.error
    }
}

#[cfg(test)]
mod tests {
    use super::Error;
    use std::string::ToString;

    #[test]
    fn a_length_that_does_not_fit_names_its_value_and_parts() {
        let e = Error::LengthNotRepresentable {
            payload: 2,
            adjust: 5,
            width: 2,
        };
        assert_eq!(
            e.to_string(),
            "length value -3 (payload of 2 bytes, adjustment 5) does not fit a 2-byte length field"
        );
        // A value beyond both i64 and u64 is still exact.
        let e = Error::LengthNotRepresentable {
            payload: usize::MAX,
            adjust: i64::MIN,
            width: 8,
        };
        assert!(e
            .to_string()
            .starts_with("length value 27670116110564327423 "));
    }

    #[test]
    fn errors_stay_small_and_8_byte_aligned() {
        // Every connection keeps two (its state's cause and the last one
        // skipped): a 16-byte alignment would pad each connection.
        assert_eq!(core::mem::align_of::<Error>(), 8);
        assert!(core::mem::size_of::<Error>() <= 32);
    }
}
