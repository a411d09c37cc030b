#!/usr/bin/env bash
# Server CPU time and system calls per request under a fixed load.
#
# Usage (from the workspace root, after
#   cargo build --release -p fastnet-cli -p fastnet-smol --example bench_server):
#   fastnet-smol/bench/cpu_per_request.sh [--strace] SERVER_BINARY [SERVER_ARGS...]
# e.g.
#   fastnet-smol/bench/cpu_per_request.sh target/release/examples/bench_server --layout shared
#
# Starts the server as its own process on 127.0.0.1:$PORT (default 7300),
# loads it with `fastnet bench --conns $CONNS --size 512 --duration $DUR`
# (defaults 1000 and 10s), and reads utime+stime of the server process from
# /proc/PID/stat before and after. Prints one line:
#   requests=N rps=R cpu_s=C cpu_us_per_req=U
# With --strace, the server is traced with `strace -c -f -p PID` during the
# load instead (which slows it down a lot, so CPU figures are meaningless
# then) and the line gives system calls per request, with the busiest calls.
set -euo pipefail
PORT=${PORT:-7300}
CONNS=${CONNS:-1000}
DUR=${DUR:-10s}
FASTNET=${FASTNET:-target/release/fastnet}
trace=0
if [[ ${1:-} == --strace ]]; then trace=1; shift; fi
server=$1; shift

"$server" "127.0.0.1:$PORT" "$@" >/dev/null 2>&1 &
spid=$!
trap 'kill $spid 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then break; fi
  sleep 0.05
done
sleep 0.3
hz=$(getconf CLK_TCK)
ticks() { awk '{print $14 + $15}' "/proc/$spid/stat"; }

if (( trace )); then
  out=$(mktemp)
  strace -c -f -p "$spid" -o "$out" &
  tpid=$!
  sleep 1
fi
t0=$(ticks)
json=$("$FASTNET" bench --addr "127.0.0.1:$PORT" --conns "$CONNS" --size 512 --duration "$DUR" --json)
t1=$(ticks)
requests=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["requests"])' "$json")
rps=$(python3 -c 'import json,sys; print(round(json.loads(sys.argv[1])["rps"]))' "$json")
if (( trace )); then
  kill -INT "$tpid"
  wait "$tpid" || true
  python3 - "$out" "$requests" "$rps" <<'PY'
import sys
path, reqs, rps = sys.argv[1], int(sys.argv[2]), sys.argv[3]
rows = []
total = 0
for line in open(path):
    p = line.split()
    if len(p) >= 5 and p[0][0].isdigit() and p[-1] != "total":
        calls = int(p[3])
        rows.append((calls, p[-1]))
    elif p and p[-1] == "total":
        total = int(p[2]) if len(p) >= 3 else 0
rows.sort(reverse=True)
total = sum(c for c, _ in rows)
top = " ".join(f"{n}={c / reqs:.2f}" for c, n in rows[:6])
print(f"requests={reqs} rps={rps} syscalls_per_req={total / reqs:.2f} {top}")
PY
  rm -f "$out"
else
  python3 -c 'import sys; r,rps,d,hz=int(sys.argv[1]),sys.argv[2],int(sys.argv[3]),int(sys.argv[4]); c=d/hz; print(f"requests={r} rps={rps} cpu_s={c:.2f} cpu_us_per_req={c*1e6/r:.2f}")' "$requests" "$rps" "$((t1 - t0))" "$hz"
fi
