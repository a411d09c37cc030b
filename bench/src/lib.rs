//! Shared inputs for fastnet's decode benchmarks.
//!
//! Run the benchmarks with
//! `cargo bench -p fastnet-bench --bench decode -- --warm-up-time 1 --measurement-time 3`
//! and print the table with `cargo run -p fastnet-bench --release --bin codec_report`
//! (or do both, several times, with `bench/run_decode.sh`).
//!
//! Every decode case is [`INPUT_LEN`] bytes of complete frames (exactly,
//! except COBS, whose frames stop short of the next that would not fit); an
//! encode case is the payloads of the matching decode case. The benchmark
//! (`benches/decode.rs`) and the report (`src/bin/codec_report.rs`) both
//! build their inputs here, so they agree on the frame counts.

use fastnet_proto::codec::{CobsEncoder, Encoder as _, VarintConfig, VarintEncoder};

/// Size of every benchmark input: 1 MiB.
pub const INPUT_LEN: usize = 1 << 20;

/// Length of the big-endian length prefix of the length-field cases.
pub const LENGTH_PREFIX: usize = 4;

/// Payload sizes of the length-field cases.
pub const LENGTH_PAYLOADS: [usize; 4] = [16, 64, 512, 4096];

/// Wire length of one line in the lines case: 63 printable bytes and `\n`.
pub const LINE_LEN: usize = 64;

/// Payload sizes of the COBS cases (decode and encode).
pub const COBS_PAYLOADS: [usize; 3] = [16, 256, 4096];

/// Payload sizes of the varint-prefix cases: a 1-byte and a 2-byte prefix.
pub const VARINT_PAYLOADS: [usize; 2] = [16, 512];

/// The framing of a case.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `u32` big-endian length prefix counting the payload only, followed by
    /// the payload (tokio-util `LengthDelimitedCodec`'s default).
    Length {
        /// Payload bytes of every frame but possibly the last.
        payload: usize,
    },
    /// Lines of printable ASCII ending with `\n`.
    Lines {
        /// Wire length of each line, `\n` included.
        line: usize,
    },
    /// COBS frames ending with `0x00`, decoded: payloads of uniformly random
    /// bytes (so about one byte in 256 is a zero).
    CobsDecode {
        /// Payload bytes of every frame.
        payload: usize,
    },
    /// The payloads of the matching [`Kind::CobsDecode`] case, encoded.
    CobsEncode {
        /// Payload bytes of every frame.
        payload: usize,
    },
    /// An unsigned LEB128 length prefix counting the payload, followed by
    /// the payload (protobuf's length-delimited framing).
    Varint {
        /// Payload bytes of every frame but possibly the last.
        payload: usize,
    },
}

/// One benchmark case: a named input of exactly [`INPUT_LEN`] bytes.
#[derive(Clone, Debug)]
pub struct Case {
    /// Criterion group name, also the directory under `target/criterion`.
    pub group: String,
    /// The framing.
    pub kind: Kind,
    /// The encoded frames (for an encode case: the payloads, back to back).
    pub input: Vec<u8>,
    /// How many frames `input` holds.
    pub frames: usize,
}

impl Case {
    /// A length-field case: `payload`-byte frames, the last one shortened so
    /// the input is exactly [`INPUT_LEN`] bytes.
    pub fn length(payload: usize) -> Case {
        let mut input = Vec::with_capacity(INPUT_LEN);
        let mut frames = 0;
        let mut rng = Lcg(0x5eed ^ payload as u64);
        while input.len() < INPUT_LEN {
            let left = INPUT_LEN - input.len();
            assert!(left > LENGTH_PREFIX, "a frame must fit the tail");
            let len = payload.min(left - LENGTH_PREFIX);
            input.extend_from_slice(&(len as u32).to_be_bytes());
            input.extend((0..len).map(|_| rng.next_byte()));
            frames += 1;
        }
        Case {
            group: format!("decode_length_{payload}"),
            kind: Kind::Length { payload },
            input,
            frames,
        }
    }

    /// A lines case: `line`-byte lines (`line - 1` printable ASCII bytes and
    /// `\n`).
    pub fn lines(line: usize) -> Case {
        assert_eq!(INPUT_LEN % line, 0, "lines must tile the input");
        let mut input = Vec::with_capacity(INPUT_LEN);
        let mut rng = Lcg(0x11e5 ^ line as u64);
        for _ in 0..INPUT_LEN / line {
            // Printable ASCII, 0x20..=0x7e: no CR, no LF, valid UTF-8.
            input.extend((0..line - 1).map(|_| 0x20 + rng.next_byte() % 95));
            input.push(b'\n');
        }
        Case {
            group: format!("decode_lines_{line}"),
            kind: Kind::Lines { line },
            frames: INPUT_LEN / line,
            input,
        }
    }

    /// A COBS decode case: frames of `payload` random bytes, as many as fit
    /// [`INPUT_LEN`] bytes of wire.
    pub fn cobs_decode(payload: usize) -> Case {
        let enc = CobsEncoder::new(usize::MAX).expect("COBS encoder");
        let mut input = Vec::with_capacity(INPUT_LEN);
        let mut frames = 0;
        for p in cobs_payloads(payload) {
            enc.encode_vec(&p, &mut input).expect("COBS encode");
            frames += 1;
        }
        Case {
            group: format!("decode_cobs_{payload}"),
            kind: Kind::CobsDecode { payload },
            input,
            frames,
        }
    }

    /// A COBS encode case: the payloads of [`Case::cobs_decode`], back to
    /// back.
    pub fn cobs_encode(payload: usize) -> Case {
        let payloads = cobs_payloads(payload);
        Case {
            group: format!("encode_cobs_{payload}"),
            kind: Kind::CobsEncode { payload },
            frames: payloads.len(),
            input: payloads.concat(),
        }
    }

    /// A varint-prefix case: `payload`-byte frames, the last one shortened
    /// so the input is exactly [`INPUT_LEN`] bytes.
    pub fn varint(payload: usize) -> Case {
        let cfg = VarintConfig::new().max_frame(usize::MAX);
        let enc = VarintEncoder::new(cfg).expect("varint encoder");
        let mut input = Vec::with_capacity(INPUT_LEN);
        let mut frames = 0;
        let mut rng = Lcg(0x7a11 ^ payload as u64);
        while input.len() < INPUT_LEN {
            let left = INPUT_LEN - input.len();
            // The longest payload whose frame fits what is left.
            let mut len = payload.min(left - 1);
            while enc.encoded_len(&vec![0; len]).expect("varint length") > left {
                len -= 1;
            }
            let p: Vec<u8> = (0..len).map(|_| rng.next_byte()).collect();
            enc.encode_vec(&p, &mut input).expect("varint encode");
            frames += 1;
        }
        Case {
            group: format!("decode_varint_{payload}"),
            kind: Kind::Varint { payload },
            input,
            frames,
        }
    }

    /// A short label for tables: `length field, 16 B payload`, `lines, 64 B`.
    pub fn label(&self) -> String {
        match self.kind {
            Kind::Length { payload } => format!("length field, {payload} B payload"),
            Kind::Lines { line } => format!("lines, {line} B"),
            Kind::CobsDecode { payload } => format!("COBS decode, {payload} B payload"),
            Kind::CobsEncode { payload } => format!("COBS encode, {payload} B payload"),
            Kind::Varint { payload } => format!("varint prefix, {payload} B payload"),
        }
    }
}

/// The payloads of a COBS case: uniformly random bytes, `payload` each, as
/// many as fit [`INPUT_LEN`] bytes once encoded.
fn cobs_payloads(payload: usize) -> Vec<Vec<u8>> {
    let enc = CobsEncoder::new(usize::MAX).expect("COBS encoder");
    let mut rng = Lcg(0xc0b5 ^ payload as u64);
    let mut out = Vec::new();
    let mut wire = 0;
    loop {
        let p: Vec<u8> = (0..payload).map(|_| rng.next_byte()).collect();
        let n = enc.encoded_len(&p).expect("COBS length");
        if wire + n > INPUT_LEN {
            return out;
        }
        wire += n;
        out.push(p);
    }
}

/// Every case, in table order.
pub fn cases() -> Vec<Case> {
    let mut all: Vec<Case> = LENGTH_PAYLOADS.iter().map(|&p| Case::length(p)).collect();
    all.push(Case::lines(LINE_LEN));
    for p in COBS_PAYLOADS {
        all.push(Case::cobs_decode(p));
        all.push(Case::cobs_encode(p));
    }
    all.extend(VARINT_PAYLOADS.iter().map(|&p| Case::varint(p)));
    all
}

/// A tiny deterministic byte generator, so inputs are the same on every run.
struct Lcg(u64);

impl Lcg {
    fn next_byte(&mut self) -> u8 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 56) as u8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_are_one_mib_of_whole_frames() {
        for case in cases() {
            match case.kind {
                // The next frame would not have fit.
                Kind::CobsDecode { payload } => {
                    assert!(case.input.len() <= INPUT_LEN, "{}", case.group);
                    assert!(
                        case.input.len() + payload + 20 > INPUT_LEN,
                        "{}",
                        case.group
                    );
                }
                // The same payloads without their framing.
                Kind::CobsEncode { .. } => {
                    assert!(case.input.len() > INPUT_LEN * 8 / 10, "{}", case.group)
                }
                _ => assert_eq!(case.input.len(), INPUT_LEN, "{}", case.group),
            }
            // Walk the frames by hand.
            let mut pos = 0;
            let mut frames = 0;
            while pos < case.input.len() {
                pos += match case.kind {
                    Kind::Length { .. } => {
                        let mut len = [0; 4];
                        len.copy_from_slice(&case.input[pos..pos + 4]);
                        4 + u32::from_be_bytes(len) as usize
                    }
                    Kind::Lines { .. } => {
                        memchr::memchr(b'\n', &case.input[pos..]).expect("a line end") + 1
                    }
                    Kind::CobsDecode { .. } => {
                        memchr::memchr(0, &case.input[pos..]).expect("a frame end") + 1
                    }
                    Kind::CobsEncode { payload } => payload,
                    Kind::Varint { .. } => {
                        let (mut value, mut shift, mut at) = (0usize, 0, pos);
                        loop {
                            let b = case.input[at];
                            value |= usize::from(b & 0x7f) << shift;
                            shift += 7;
                            at += 1;
                            if b & 0x80 == 0 {
                                break;
                            }
                        }
                        at - pos + value
                    }
                };
                frames += 1;
            }
            assert_eq!(pos, case.input.len(), "{}", case.group);
            assert_eq!(frames, case.frames, "{}", case.group);
        }
    }

    #[test]
    fn cobs_payloads_have_zeros_and_long_runs() {
        // Random bytes: some zeros, so groups are not all full; at 4096 B
        // also runs of 254 non-zero bytes and more (0xFF groups).
        let plain = Case::cobs_encode(4096).input;
        let zeros = plain.iter().filter(|&&b| b == 0).count();
        assert!(zeros > Case::cobs_encode(4096).frames);
        assert!(plain.split(|&b| b == 0).any(|run| run.len() >= 254));
    }

    #[test]
    fn lines_are_printable() {
        let case = Case::lines(LINE_LEN);
        assert!(case
            .input
            .iter()
            .all(|&b| b == b'\n' || (0x20..=0x7e).contains(&b)));
    }
}
