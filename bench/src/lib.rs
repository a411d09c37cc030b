//! Shared inputs for fastnet's decode benchmarks.
//!
//! Run the benchmarks with
//! `cargo bench -p fastnet-bench --bench decode -- --warm-up-time 1 --measurement-time 3`
//! and print the table with `cargo run -p fastnet-bench --release --bin codec_report`
//! (or do both, several times, with `bench/run_decode.sh`).
//!
//! Every case is exactly [`INPUT_LEN`] bytes of complete frames. The
//! benchmark (`benches/decode.rs`) and the report (`src/bin/codec_report.rs`)
//! both build their inputs here, so they agree on the frame counts.

/// Size of every benchmark input: 1 MiB.
pub const INPUT_LEN: usize = 1 << 20;

/// Length of the big-endian length prefix of the length-field cases.
pub const LENGTH_PREFIX: usize = 4;

/// Payload sizes of the length-field cases.
pub const LENGTH_PAYLOADS: [usize; 4] = [16, 64, 512, 4096];

/// Wire length of one line in the lines case: 63 printable bytes and `\n`.
pub const LINE_LEN: usize = 64;

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
}

/// One benchmark case: a named input of exactly [`INPUT_LEN`] bytes.
#[derive(Clone, Debug)]
pub struct Case {
    /// Criterion group name, also the directory under `target/criterion`.
    pub group: String,
    /// The framing.
    pub kind: Kind,
    /// The encoded frames.
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

    /// A short label for tables: `length 16 B` or `lines 64 B`.
    pub fn label(&self) -> String {
        match self.kind {
            Kind::Length { payload } => format!("length field, {payload} B payload"),
            Kind::Lines { line } => format!("lines, {line} B"),
        }
    }
}

/// Every case, in table order.
pub fn cases() -> Vec<Case> {
    let mut all: Vec<Case> = LENGTH_PAYLOADS.iter().map(|&p| Case::length(p)).collect();
    all.push(Case::lines(LINE_LEN));
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
            assert_eq!(case.input.len(), INPUT_LEN, "{}", case.group);
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
                };
                frames += 1;
            }
            assert_eq!(pos, INPUT_LEN);
            assert_eq!(frames, case.frames, "{}", case.group);
        }
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
