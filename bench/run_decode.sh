#!/usr/bin/env bash
# Runs the codec benchmarks several times and prints the tables of medians.
#
# Usage, from anywhere:  bench/run_decode.sh [RUNS]    (RUNS defaults to 3)
#
# Each run is the plain criterion command below (its output goes to
# target/decode-runs/runN.log); its results are copied to target/decode-runs/runN,
# and codec_report prints the table of the medians over the runs.
set -euo pipefail
cd "$(dirname "$0")/.."

runs=${1:-3}
target=${CARGO_TARGET_DIR:-target}
out="$target/decode-runs"
rm -rf "$out"
mkdir -p "$out"
for i in $(seq 1 "$runs"); do
  echo "== run $i of $runs" >&2
  cargo bench -p fastnet-bench --bench decode -- --warm-up-time 1 --measurement-time 3 \
    >"$out/run$i.log"
  mkdir -p "$out/run$i"
  cp -r "$target"/criterion/decode_* "$target"/criterion/encode_* "$out/run$i/"
done
cargo run -q -p fastnet-bench --release --bin codec_report -- "$out"/run*
