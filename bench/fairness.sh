#!/usr/bin/env bash
# Fairness under a flood: the p99 latency of ping-pong clients alone, and
# again beside one connection that pipelines as fast as it can, per server.
#
# Usage, from anywhere:  bench/fairness.sh [REPS] [SERVERS]
#   REPS     repetitions, interleaved over the servers (default 5)
#   SERVERS  comma-separated, from fastnet-smol, fastnet-std, tokio-framed
#            (default: all three)
# Environment: CONNS (ping-pong connections, default 50), PIPELINE (the
# flood's requests in flight, default 64), SECS (measured seconds, default 3).
#
# Needs the release binaries:
#   cargo build --release -p fastnet-cli -p fastnet-bench-echo --bins
# Everything runs on loopback and stops by itself; prints one line per run
# and a table of medians.
set -euo pipefail
cd "$(dirname "$0")/.."

reps=${1:-5}
servers=${2:-fastnet-smol,fastnet-std,tokio-framed}
conns=${CONNS:-50}
pipeline=${PIPELINE:-64}
secs=${SECS:-3}
bin=${CARGO_TARGET_DIR:-target}/release
for b in fastnet peer-tokio-framed; do
  [ -x "$bin/$b" ] || {
    echo "missing $bin/$b: cargo build --release -p fastnet-cli -p fastnet-bench-echo --bins" >&2
    exit 2
  }
done

out=$(mktemp -d)
server_pid=""
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
  rm -rf "$out"
}
trap cleanup EXIT

# Starts a server; sets server_pid and addr.
start() {
  # A fresh file: the shell truncates it only once the server has started,
  # and the last server's address must not be read in between.
  rm -f "$out/server"
  case $1 in
    fastnet-smol) "$bin/fastnet" serve --driver smol --addr 127.0.0.1:0 --codec len=u32be -q >"$out/server" 2>&1 & ;;
    fastnet-std) "$bin/fastnet" serve --driver std --addr 127.0.0.1:0 --codec len=u32be -q >"$out/server" 2>&1 & ;;
    tokio-framed) "$bin/peer-tokio-framed" 0 >"$out/server" 2>&1 & ;;
    *) echo "unknown server $1" >&2; exit 2 ;;
  esac
  server_pid=$!
  for _ in $(seq 100); do
    addr=$(sed -n 's/^listening on //p' "$out/server" 2>/dev/null)
    [ -n "$addr" ] && return
    sleep 0.05
  done
  echo "$1 did not start: $(cat "$out/server")" >&2
  exit 1
}

stop() {
  kill "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
  server_pid=""
}

field() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2], {}, d))" "$@"; }

load() { # $1: output file; the rest: extra arguments
  local f=$1
  shift
  "$bin/fastnet" bench --addr "$addr" --codec len=u32be --size 512 --json "$@" >"$f"
}

echo "server rep p99_alone_us p99_flooded_us ratio flood_rps" >"$out/results"
IFS=, read -r -a list <<<"$servers"
for rep in $(seq "$reps"); do
  for s in "${list[@]}"; do
    start "$s"
    load "$out/alone" --conns "$conns" --duration "${secs}s"
    load "$out/flood" --conns 1 --pipeline "$pipeline" --duration "$((secs + 2))s" &
    flood_pid=$!
    sleep 1
    load "$out/flooded" --conns "$conns" --duration "${secs}s"
    wait "$flood_pid"
    stop
    a=$(field "$out/alone" 'latency_us["p99"]')
    f=$(field "$out/flooded" 'latency_us["p99"]')
    r=$(python3 -c "print(f'{$f / max($a, 1):.2f}')")
    rps=$(field "$out/flood" 'round(rps)')
    echo "$s $rep $a $f $r $rps" | tee -a "$out/results"
  done
done

python3 - "$out/results" "$conns" "$pipeline" "$secs" <<'EOF'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1]).read().splitlines()[1:]]
conns, pipeline, secs = sys.argv[2:5]
print(f"\n{conns} ping-pong connections x 512 B alone, then beside 1 connection pipelining {pipeline}; {secs} s each; medians over repetitions\n")
print("| server | p99 alone (µs) | p99 beside the flood (µs) | ratio (median of pairs) | pairs | flood requests/s |")
print("|---|---:|---:|---:|---|---:|")
for s in dict.fromkeys(r[0] for r in rows):
    mine = [r for r in rows if r[0] == s]
    med = lambda i: statistics.median(float(r[i]) for r in mine)
    ratios = sorted(float(r[4]) for r in mine)
    print(f"| {s} | {med(2):,.0f} | {med(3):,.0f} | {statistics.median(ratios):.2f}x | {ratios[0]:.2f}-{ratios[-1]:.2f}x | {med(5):,.0f} |")
EOF
