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
#   requests=N rps=R cpu_s=C cpu_us_per_req=U user_us=.. sys_us=.. ctxsw_per_req=..
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
ticks() { awk '{print $14, $15}' "/proc/$spid/stat"; }
# Context switches of all the server's threads.
switches() { cat /proc/"$spid"/task/*/status | awk '/ctxt_switches/ {n += $2} END {print n}'; }

if (( trace )); then
  out=$(mktemp)
  strace -c -f -p "$spid" -o "$out" &
  tpid=$!
  sleep 1
fi
read -r u0 s0 < <(ticks)
c0=$(switches)
json=$("$FASTNET" bench --addr "127.0.0.1:$PORT" --conns "$CONNS" --size 512 --duration "$DUR" --json)
read -r u1 s1 < <(ticks)
c1=$(switches)
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
  python3 - "$requests" "$rps" "$hz" "$((u1 - u0))" "$((s1 - s0))" "$((c1 - c0))" <<'PY'
import sys
r, rps, hz, u, s, cs = (int(float(x)) for x in sys.argv[1:])
us = lambda t: t / hz * 1e6 / r
print(f"requests={r} rps={rps} cpu_s={(u + s) / hz:.2f} cpu_us_per_req={us(u + s):.2f} "
      f"user_us={us(u):.2f} sys_us={us(s):.2f} ctxsw_per_req={cs / r:.3f}")
PY
fi
