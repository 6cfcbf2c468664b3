#!/usr/bin/env bash
# Holds many idle keep-alive connections against a release `tessera serve
# --dev` and reports what the service does with them: how many stay open,
# whether a new client is still served, and the service's resident memory
# before, with the connections, and after they close.
#
# Each connection sends one GET /healthz and then stays idle. The clients run
# in several processes so that none of them needs more descriptors than its
# own limit allows.
#
# Usage: scripts/idle-connections.sh
# Environment: IDLE_CONNECTIONS (default 19988), IDLE_CLIENTS (processes,
#              default 4), IDLE_PORT (default 18090), TESSERA_MAX_CONNECTIONS
#              (passed on; unset derives the cap from the descriptor limit),
#              CARGO_TARGET_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."

total="${IDLE_CONNECTIONS:-19988}"
clients="${IDLE_CLIENTS:-4}"
port="${IDLE_PORT:-18090}"
target="${CARGO_TARGET_DIR:-target}"

cargo build --release -p tessera-server --quiet
bin="$target/release/tessera"
work="$(mktemp -d)"
trap 'kill "$server_pid" 2>/dev/null || true; rm -rf "$work"' EXIT

TESSERA_LISTEN="127.0.0.1:${port}" RUST_LOG=info "$bin" serve --dev >"$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:${port}/healthz" >/dev/null 2>&1 && break
  sleep 0.1
done
rss() { awk '/VmRSS/ {print $2}' "/proc/$server_pid/status"; }
metric() { curl -fsS "http://127.0.0.1:${port}/metrics" | awk -v m="$1" '$1 == m {print $2}'; }

for _ in $(seq 1 50); do curl -fsS "http://127.0.0.1:${port}/healthz" >/dev/null; done
before="$(rss)"

cat >"$work/hold.py" <<'PY'
import asyncio, sys
port, n, hold = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
async def one():
    try:
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        await w.drain()
        await r.readuntil(b"\r\n\r\n")
        return w
    except Exception:
        return None
async def main():
    writers = []
    for i in range(0, n, 500):
        writers += await asyncio.gather(*[one() for _ in range(min(500, n - i))])
    print(sum(1 for w in writers if w is not None), flush=True)
    await asyncio.sleep(hold)
    for w in writers:
        if w is not None:
            w.close()
asyncio.run(main())
PY

per=$(( (total + clients - 1) / clients ))
for i in $(seq 1 "$clients"); do
  python3 "$work/hold.py" "$port" "$per" 30 >"$work/client.$i" &
done
# Wait until every client has opened its connections (each prints a count).
for _ in $(seq 1 120); do
  ready=$(cat "$work"/client.* 2>/dev/null | wc -l)
  [ "$ready" -ge "$clients" ] && break
  sleep 0.5
done
opened=$(cat "$work"/client.* | awk '{s += $1} END {print s}')
open_now="$(metric tessera_http_connections_open)"
peak="$(rss)"
start=$(date +%s.%N)
if curl -fsS --max-time 5 "http://127.0.0.1:${port}/healthz" >/dev/null; then
  fresh="served in $(echo "$(date +%s.%N) - $start" | bc) s"
else
  fresh="NOT served within 5 s"
fi
wait $(jobs -p | grep -v "^$server_pid$") 2>/dev/null || true
sleep 15
after="$(rss)"
echo "connections opened by the clients: $opened (asked for $total)"
echo "open at the service while held:    $open_now"
echo "shed to make room at the cap:      $(metric 'tessera_http_connections_closed_total{reason="shed"}')"
echo "a new client while they were held: $fresh"
echo "service RSS: before ${before} KiB, with the connections ${peak} KiB, 15 s after they closed ${after} KiB"
grep -m1 "connections: at most" "$work/server.log" || true
