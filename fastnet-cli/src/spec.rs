//! The codec spec grammar shared by `serve` and `bench`.
//!
//! ```text
//! raw | lines | cobs
//! fixed=N
//! delim=D[|D...][,keep]        escapes: \n \r \t \0 \\ \| \, \xHH
//! len=W[,offset=N][,adjust=N][,strip=N]
//!     W: u8 u16be u16le u24be u24le u32be u32le u64be u64le
//! varint[,offset=N][,adjust=N][,strip=N]
//! ```

use std::fmt;

use fastnet_proto::codec::{
    CodecSpec, Delimiters, Endian, LengthFieldConfig, VarintConfig, DEFAULT_MAX_FRAME,
    MAX_DELIMITERS, MAX_DELIMITER_LEN,
};

/// A spec that does not parse: which part is wrong and what was expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecError {
    /// The whole spec as given.
    pub spec: String,
    /// The offending part.
    pub part: String,
    /// What was expected instead.
    pub expected: String,
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid codec spec {:?}: bad part {:?}: expected {}",
            self.spec, self.part, self.expected
        )
    }
}

impl std::error::Error for SpecError {}

/// The grammar with examples, shown after the options by `fastnet serve
/// --help` and `fastnet bench --help`; every spec in its examples parses
/// (a test checks).
pub const HELP: &str = r"Codec specs (--codec, --reply-codec):
  raw                                   no framing: whatever bytes arrive are one frame
  lines                                 lines ending in \n or \r\n, sent with \n
  cobs                                  COBS-encoded frames, each ended by a 0 byte
  fixed=N                               frames of exactly N bytes
  delim=D[|D..][,keep]                  frames ended by any delimiter D (sent with the first);
                                        keep leaves it in the frame; escapes: \n \r \t \0 \\ \| \, \xHH
  len=W[,offset=N][,adjust=N][,strip=N] a length field of W: u8 u16be u16le u24be u24le
                                        u32be u32le u64be u64le, after offset bytes; adjust is
                                        added to its value to give the bytes that follow it;
                                        strip bytes are cut from the frame's start (default:
                                        the offset and the field, leaving the payload)
  varint[,offset=N][,adjust=N][,strip=N] the same with a LEB128 varint length

Examples:
  --codec lines                         text lines
  --codec 'delim=\r\n'                  CRLF-terminated frames
  --codec 'delim=;|\n'                  frames ended by ; or a newline, sent with ;
  --codec 'delim=\x00,keep'             NUL-terminated frames, the NUL kept
  --codec fixed=64                      64-byte records
  --codec len=u32be                     a 4-byte big-endian payload length (the default)
  --codec 'len=u16le,adjust=-2'         a 2-byte length that counts itself
  --codec 'varint,offset=1,strip=0'     MQTT-style: a type byte, a varint length, the whole
                                        packet kept (decode only: serve needs a --reply-codec)

Durations (--duration, --idle-timeout, --read-timeout, --tls-handshake-timeout):
  a number and a unit, like 500ms, 5s, 1.5s, 1m or 1h30m";

const WIDTHS: &str = "u8 u16be u16le u24be u24le u32be u32le u64be u64le";
const FORMS: &str =
    "raw, lines, cobs, fixed=N, delim=D[,keep], len=W[,offset=N][,adjust=N][,strip=N] \
     or varint[,offset=N][,adjust=N][,strip=N]";

/// Parses a codec spec; the maximum frame length is the library default
/// (set it afterwards with [`CodecSpec::with_max_frame`]).
pub fn parse(spec: &str) -> Result<CodecSpec, SpecError> {
    let err = |part: &str, expected: String| SpecError {
        spec: spec.to_string(),
        part: part.to_string(),
        expected,
    };
    let parts = split_unescaped(spec, ',');
    let (head, options) = parts
        .split_first()
        .ok_or_else(|| err(spec, FORMS.to_string()))?;
    let (name, value) = match head.split_once('=') {
        Some((n, v)) => (n, Some(v)),
        None => (head.as_str(), None),
    };
    let max = DEFAULT_MAX_FRAME;
    let no_options = |what: &str| -> Result<(), SpecError> {
        match options.first() {
            Some(opt) => Err(err(opt, format!("no options after {what}"))),
            None => Ok(()),
        }
    };
    let no_value = |what: &str| -> Result<(), SpecError> {
        match value {
            Some(_) => Err(err(head, format!("{what} without a value"))),
            None => Ok(()),
        }
    };
    match name {
        "raw" => {
            no_value("raw")?;
            no_options("raw")?;
            Ok(CodecSpec::raw(max))
        }
        "lines" => {
            no_value("lines")?;
            no_options("lines")?;
            Ok(CodecSpec::lines(max))
        }
        "cobs" => {
            no_value("cobs")?;
            no_options("cobs")?;
            Ok(CodecSpec::cobs(max))
        }
        "fixed" => {
            no_options("fixed=N")?;
            let v = value
                .ok_or_else(|| err(head, "fixed=N with N a frame length of at least 1".into()))?;
            match v.parse::<usize>() {
                Ok(len) if len > 0 => Ok(CodecSpec::fixed(len)),
                _ => Err(err(v, "a frame length of at least 1".into())),
            }
        }
        "delim" => {
            let v = value.ok_or_else(|| {
                err(
                    head,
                    "delim=D with D one or more delimiters separated by |".into(),
                )
            })?;
            let mut keep = false;
            for opt in options {
                match opt.as_str() {
                    "keep" => keep = true,
                    other => return Err(err(other, "the option keep".into())),
                }
            }
            let mut delims: Vec<Vec<u8>> = Vec::new();
            for d in split_unescaped(v, '|') {
                let bytes = unescape(&d).map_err(|bad| {
                    err(
                        &bad,
                        "an escape among \\n \\r \\t \\0 \\\\ \\| \\, \\xHH".into(),
                    )
                })?;
                if bytes.is_empty() || bytes.len() > MAX_DELIMITER_LEN {
                    return Err(err(
                        &d,
                        format!("a delimiter of 1 to {MAX_DELIMITER_LEN} bytes"),
                    ));
                }
                delims.push(bytes);
            }
            if delims.len() > MAX_DELIMITERS {
                return Err(err(v, format!("at most {MAX_DELIMITERS} delimiters")));
            }
            let refs: Vec<&[u8]> = delims.iter().map(Vec::as_slice).collect();
            let delimiters = Delimiters::new(&refs).map_err(|e| err(v, e.to_string()))?;
            Ok(CodecSpec::delimiter(delimiters, max).with_keep(keep))
        }
        "len" => {
            let w = value.ok_or_else(|| err(head, format!("len=W with W one of {WIDTHS}")))?;
            let (width, endian) =
                parse_width(w).ok_or_else(|| err(w, format!("one of {WIDTHS}")))?;
            let mut cfg = LengthFieldConfig::new(width, endian);
            cfg.max_frame = max;
            let (offset, adjust, strip) = parse_len_options(options, &err)?;
            cfg.offset = offset;
            cfg.adjust = adjust;
            cfg.strip = strip;
            Ok(CodecSpec::LengthField(cfg))
        }
        "varint" => {
            no_value("varint")?;
            let mut cfg = VarintConfig::new();
            cfg.max_frame = max;
            let (offset, adjust, strip) = parse_len_options(options, &err)?;
            cfg.offset = offset;
            cfg.adjust = adjust;
            cfg.strip = strip;
            Ok(CodecSpec::Varint(cfg))
        }
        _ => Err(err(head, FORMS.to_string())),
    }
}

fn parse_width(w: &str) -> Option<(u8, Endian)> {
    Some(match w {
        "u8" => (1, Endian::Big),
        "u16be" => (2, Endian::Big),
        "u16le" => (2, Endian::Little),
        "u24be" => (3, Endian::Big),
        "u24le" => (3, Endian::Little),
        "u32be" => (4, Endian::Big),
        "u32le" => (4, Endian::Little),
        "u64be" => (8, Endian::Big),
        "u64le" => (8, Endian::Little),
        _ => return None,
    })
}

type LenOptions = (usize, i64, Option<usize>);

fn parse_len_options(
    options: &[String],
    err: &dyn Fn(&str, String) -> SpecError,
) -> Result<LenOptions, SpecError> {
    let (mut offset, mut adjust, mut strip) = (0usize, 0i64, None);
    for opt in options {
        let (key, value) = opt.split_once('=').unwrap_or((opt, ""));
        match key {
            "offset" => {
                offset = value
                    .parse()
                    .map_err(|_| err(opt, "offset=N with N a byte count".into()))?
            }
            "adjust" => {
                adjust = value
                    .parse()
                    .map_err(|_| err(opt, "adjust=N with N a signed 64-bit integer".into()))?
            }
            "strip" => {
                strip = Some(
                    value
                        .parse()
                        .map_err(|_| err(opt, "strip=N with N a byte count".into()))?,
                )
            }
            _ => {
                return Err(err(
                    opt,
                    "one of the options offset=N, adjust=N, strip=N".into(),
                ))
            }
        }
    }
    Ok((offset, adjust, strip))
}

/// Splits on `sep` where it is not escaped with a backslash; escapes are
/// kept for [`unescape`].
fn split_unescaped(s: &str, sep: char) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        let cur = parts.last_mut().expect("parts is never empty");
        if c == '\\' {
            cur.push(c);
            if let Some(next) = chars.next() {
                cur.push(next);
            }
        } else if c == sep {
            parts.push(String::new());
        } else {
            cur.push(c);
        }
    }
    parts
}

/// Turns the escapes of a delimiter into bytes; on a bad escape, returns it.
fn unescape(s: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            let mut buf = [0; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            continue;
        }
        match chars.next() {
            Some('n') => out.push(b'\n'),
            Some('r') => out.push(b'\r'),
            Some('t') => out.push(b'\t'),
            Some('0') => out.push(0),
            Some('\\') => out.push(b'\\'),
            Some('|') => out.push(b'|'),
            Some(',') => out.push(b','),
            Some('x') => {
                let hex: String = chars.by_ref().take(2).collect();
                match u8::from_str_radix(&hex, 16) {
                    Ok(b) if hex.len() == 2 => out.push(b),
                    _ => return Err(format!("\\x{hex}")),
                }
            }
            Some(other) => return Err(format!("\\{other}")),
            None => return Err("\\".to_string()),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use fastnet_proto::codec::{Decoded, Decoder, Encoder};

    fn decode_one(spec: &CodecSpec, wire: &[u8]) -> Vec<u8> {
        let mut buf = wire.to_vec();
        let mut dec = spec.decoder().unwrap();
        match dec.decode(&mut buf) {
            Ok(Decoded::Frame(f)) => buf[f.range()].to_vec(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn simple_forms() {
        assert_eq!(parse("raw").unwrap(), CodecSpec::raw(DEFAULT_MAX_FRAME));
        assert_eq!(parse("lines").unwrap(), CodecSpec::lines(DEFAULT_MAX_FRAME));
        assert!(matches!(parse("cobs").unwrap(), CodecSpec::Cobs { .. }));
        assert_eq!(parse("fixed=16").unwrap(), CodecSpec::fixed(16));
    }

    #[test]
    fn every_width() {
        for (w, width, endian) in [
            ("u8", 1, Endian::Big),
            ("u16be", 2, Endian::Big),
            ("u16le", 2, Endian::Little),
            ("u24be", 3, Endian::Big),
            ("u24le", 3, Endian::Little),
            ("u32be", 4, Endian::Big),
            ("u32le", 4, Endian::Little),
            ("u64be", 8, Endian::Big),
            ("u64le", 8, Endian::Little),
        ] {
            let CodecSpec::LengthField(cfg) = parse(&format!("len={w}")).unwrap() else {
                panic!()
            };
            assert_eq!(
                (cfg.width, cfg.endian, cfg.offset, cfg.adjust, cfg.strip),
                (width, endian, 0, 0, None)
            );
        }
    }

    #[test]
    fn length_options() {
        let CodecSpec::LengthField(cfg) = parse("len=u16le,offset=2,adjust=-4,strip=0").unwrap()
        else {
            panic!()
        };
        assert_eq!((cfg.offset, cfg.adjust, cfg.strip), (2, -4, Some(0)));
        let CodecSpec::Varint(cfg) = parse("varint,adjust=3,strip=1").unwrap() else {
            panic!()
        };
        assert_eq!((cfg.offset, cfg.adjust, cfg.strip), (0, 3, Some(1)));
        // strip=0 keeps the header in the decoded frame.
        let spec = parse("len=u8,strip=0").unwrap();
        assert_eq!(decode_one(&spec, b"\x02hi"), b"\x02hi");
    }

    #[test]
    fn delimiters_and_escapes() {
        let spec = parse(r"delim=\r\n|\x00|\||\,|\\|\t|END,keep").unwrap();
        let CodecSpec::Delimiter {
            delimiters, keep, ..
        } = spec
        else {
            panic!()
        };
        assert!(keep);
        assert_eq!(delimiters.len(), 7);
        assert_eq!(delimiters.primary(), b"\r\n");
        assert_eq!(decode_one(&spec, b"a|b"), b"a|");
        assert_eq!(decode_one(&spec, b"a,b"), b"a,");
        assert_eq!(decode_one(&spec, b"a\\b"), b"a\\");
        assert_eq!(decode_one(&spec, b"a\tb"), b"a\t");
        assert_eq!(decode_one(&spec, b"a\0b"), b"a\0");
        assert_eq!(decode_one(&spec, b"aENDb"), b"aEND");
        let stripped = parse(r"delim=;").unwrap();
        assert_eq!(decode_one(&stripped, b"ab;"), b"ab");
        let enc = stripped.encoder().unwrap();
        assert_eq!(enc.encoded_len(b"ab"), Ok(3));
    }

    #[test]
    fn error_messages_quote_the_bad_part() {
        let cases = [
            ("", "\"\"", "raw, lines, cobs"),
            ("json", "\"json\"", "raw, lines"),
            ("len=u33", "\"u33\"", "one of u8 u16be"),
            ("len", "\"len\"", "len=W with W one of"),
            (
                "len=u32be,offset=x",
                "\"offset=x\"",
                "offset=N with N a byte count",
            ),
            ("len=u32be,adjust=1.5", "\"adjust=1.5\"", "signed 64-bit"),
            ("len=u32be,strip=-1", "\"strip=-1\"", "strip=N"),
            ("len=u32be,foo=1", "\"foo=1\"", "one of the options"),
            ("varint=3", "\"varint=3\"", "varint without a value"),
            ("fixed=0", "\"0\"", "at least 1"),
            ("fixed", "\"fixed\"", "fixed=N"),
            ("raw,keep", "\"keep\"", "no options after raw"),
            ("lines=1", "\"lines=1\"", "lines without a value"),
            ("delim=", "\"\"", "a delimiter of 1 to 16 bytes"),
            ("delim=a||b", "\"\"", "a delimiter of 1 to 16 bytes"),
            (r"delim=\q", "\"\\\\q\"", "an escape among"),
            (r"delim=\xZZ", "\"\\\\xZZ\"", "an escape among"),
            ("delim=a,strip", "\"strip\"", "the option keep"),
            (
                "delim=a|b|c|d|e|f|g|h|i",
                "\"a|b|c|d|e|f|g|h|i\"",
                "at most 8 delimiters",
            ),
            (
                "delim=0123456789abcdefX",
                "\"0123456789abcdefX\"",
                "1 to 16 bytes",
            ),
        ];
        for (spec, part, expected) in cases {
            let e = parse(spec).unwrap_err();
            let msg = e.to_string();
            assert!(msg.contains(&format!("bad part {part}")), "{spec}: {msg}");
            assert!(msg.contains(expected), "{spec}: {msg}");
            assert!(
                msg.starts_with(&format!("invalid codec spec {spec:?}")),
                "{msg}"
            );
        }
    }

    #[test]
    fn every_example_of_the_help_parses() {
        let examples: Vec<&str> = HELP
            .lines()
            .filter_map(|l| l.trim_start().strip_prefix("--codec "))
            .map(|l| l.split("  ").next().unwrap().trim().trim_matches('\''))
            .collect();
        assert_eq!(examples.len(), 8, "{examples:?}");
        for spec in examples {
            parse(spec).unwrap_or_else(|e| panic!("{spec}: {e}"));
        }
    }

    #[test]
    fn unencodable_specs_are_detected() {
        assert!(parse("len=u16be,offset=1").unwrap().encoder().is_err());
        assert!(parse("len=u16be,strip=0").unwrap().encoder().is_err());
        assert!(parse("len=u16be,strip=2").unwrap().encoder().is_ok());
        assert!(parse("varint,strip=0").unwrap().encoder().is_err());
    }
}
