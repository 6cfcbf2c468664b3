#!/usr/bin/env bash
# Load test of the Tessera HTTP service with wrk, on loopback only.
#
# Builds the release binary, starts `tessera serve` with fresh secrets, an
# API key, a role policy and members, creates sessions, then measures
# requests per second and p99 latency at 64 connections, in one run, for:
#
#   trivial   GET  /healthz                  the ceiling: the same server doing nothing
#   validate  GET  /v1/sessions/current      bearer access token, round-robin over sessions
#   refresh   POST /v1/sessions/refresh      each connection follows its own token chain,
#                                            so every request is a real rotation (no reuse,
#                                            no grace-window replay)
#   create    POST /v1/sessions              round-robin over members
#
# Rate limits: create is limited per user and in all, refresh per session, by default,
# which would turn most of this load into 429s. The script raises both limits
# far above what the machine can do, so the limiter still runs on every request (its
# cost is measured) but never refuses; it says so in its output.
#
# Validation cache: on by default (TESSERA_VALIDATION_CACHE, 8192 tokens and
# records). The 256 validate sessions fit in it, so validate measures repeats
# of a token, the common case of an application calling with the same token;
# the store is still read on every request. TESSERA_VALIDATION_CACHE=0 in the
# environment measures the full path (HMAC and decryption on every request).
#
# Request logs are on (RUST_LOG=info, one line per request) and go to a file
# in the work directory, as they would in production.
#
# The endpoints run in interleaved rounds (trivial, validate, refresh, create,
# then again), so a neighbour that slows the machine for a while hits them
# alike; the summary shows every round, and the best and median of each. Sessions made by
# the create runs belong to their own users and are revoked after each round,
# so the store does not grow from round to round.
#
# Usage: scripts/load.sh            (needs wrk: apt-get install -y wrk)
# Environment: LOAD_DURATION (seconds per run, default 5), LOAD_ROUNDS (default 3),
#              LOAD_CONNECTIONS (default 64), LOAD_THREADS (wrk threads, default 2),
#              LOAD_PORT (default 18080), LOAD_RUST_LOG (default info), CARGO_TARGET_DIR,
#              TESSERA_VALIDATION_CACHE and TESSERA_STORE (passed to the service; unset is
#              the embedded store, in the work directory; `memory` is the ceiling).
set -euo pipefail

duration="${LOAD_DURATION:-5}"
rounds="${LOAD_ROUNDS:-3}"
connections="${LOAD_CONNECTIONS:-64}"
threads="${LOAD_THREADS:-2}"
port="${LOAD_PORT:-18080}"
base="http://127.0.0.1:${port}"
org="0b7e2a43-5f55-4b4e-9a3c-2f1f0d2c9e11"
members=64
sessions=256

command -v wrk >/dev/null || { echo "wrk is not installed: apt-get install -y wrk" >&2; exit 1; }
command -v curl >/dev/null || { echo "curl is not installed" >&2; exit 1; }

root="$(cd "$(dirname "$0")/.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
work="$(mktemp -d)"
server_pid=""
cleanup() {
  if [[ -n "$server_pid" ]]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

echo "== building (release)"
(cd "$root" && cargo build --release -q -p tessera-server)
bin="$target/release/tessera"

eval "$("$bin" keygen | sed 's/^/export /')"
cat >"$work/policy.toml" <<'POLICY'
[roles.member]
permissions = ["read:*", "write:profile"]

[roles.admin]
inherits = ["member"]
permissions = ["*:*"]
POLICY

# The default store is the embedded one: keep its file in the work directory.
if [[ -z "${TESSERA_STORE:-}" || "${TESSERA_STORE}" == "embedded" ]]; then
  export TESSERA_DATA_DIR="${TESSERA_DATA_DIR:-$work/data}"
fi
echo "== starting the service on $base (store: ${TESSERA_STORE:-embedded})"
TESSERA_LISTEN="127.0.0.1:${port}" \
TESSERA_POLICY="$work/policy.toml" \
TESSERA_CREATE_LIMIT_PER_MINUTE=1000000 \
TESSERA_CREATE_LIMIT_TOTAL_PER_MINUTE=10000000 \
TESSERA_REFRESH_LIMIT_PER_MINUTE=1000000 \
RUST_LOG="${LOAD_RUST_LOG:-info}" \
  "$bin" serve >"$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 100); do
  curl -fsS "$base/healthz" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -fsS "$base/healthz" >/dev/null || { echo "the service did not start:" >&2; cat "$work/server.log" >&2; exit 1; }

hdr=(-H "x-api-key: ${TESSERA_API_KEY}" -H "content-type: application/json")

user_id() { printf '00000000-0000-4000-8000-%012d' "$1"; }

echo "== setting up $members members for validate and refresh, $members more for create"
: >"$work/users"; : >"$work/create-users"
for i in $(seq 1 $(( 2 * members ))); do
  user="$(user_id "$i")"
  if (( i <= members )); then echo "$user" >>"$work/users"; else echo "$user" >>"$work/create-users"; fi
  curl -fsS -X PUT "${hdr[@]}" -d '{"role":"member"}' "$base/v1/orgs/$org/members/$user" >/dev/null
done

# make_sessions NAME: $sessions sessions over the validate users, their
# tokens in NAME.access and NAME.refresh.
make_sessions() {
  : >"$work/$1.access"; : >"$work/$1.refresh"
  local i user out
  for i in $(seq 1 "$sessions"); do
    user="$(user_id $(( (i - 1) % members + 1 )))"
    out="$(curl -fsS -X POST "${hdr[@]}" -d "{\"user_id\":\"$user\",\"org_id\":\"$org\"}" "$base/v1/sessions")"
    sed -E 's/.*"access_token":"([^"]+)".*/\1/' <<<"$out" >>"$work/$1.access"
    sed -E 's/.*"refresh_token":"([^"]+)".*/\1/' <<<"$out" >>"$work/$1.refresh"
  done
}
echo "== creating $sessions sessions"
make_sessions validate

# A Lua helper shared by the scripts: each wrk thread gets an id, reads a
# file and takes its share.
cat >"$work/common.lua" <<LUA
local counter = 0
function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
end
function read_lines(path)
  local t = {}
  for line in io.lines(path) do t[#t + 1] = line end
  return t
end
threads = ${threads}
apikey = "${TESSERA_API_KEY}"
LUA

# Requests are built once in init, so wrk spends no more per request on
# validate than on the static /healthz request it is compared with.
cat >"$work/validate.lua" <<LUA
dofile("$work/common.lua")
local reqs, n = {}, 0
function init(args)
  local tokens = read_lines("$work/validate.access")
  for i = id + 1, #tokens, threads do
    reqs[#reqs + 1] = wrk.format("GET", "/v1/sessions/current",
      { ["authorization"] = "Bearer " .. tokens[i], ["x-api-key"] = apikey })
  end
end
function request()
  n = n % #reqs + 1
  return reqs[n]
end
LUA

cat >"$work/create.lua" <<LUA
dofile("$work/common.lua")
local reqs, n = {}, 0
function init(args)
  for _, u in ipairs(read_lines("$work/create-users")) do
    reqs[#reqs + 1] = wrk.format("POST", "/v1/sessions",
      { ["content-type"] = "application/json", ["x-api-key"] = apikey },
      '{"user_id":"' .. u .. '","org_id":"${org}"}')
  end
  n = id
end
function request()
  n = n % #reqs + 1
  return reqs[n]
end
LUA

# Refresh: a queue of current refresh tokens per thread. A request takes one,
# its response puts the rotated one back, so no token is ever presented twice.
# Each round starts from fresh sessions: a run cut off by its timer leaves
# some chains broken.
cat >"$work/refresh.lua" <<LUA
dofile("$work/common.lua")
local queue, head, tail
function init(args)
  local all = read_lines("$work/refresh.refresh")
  queue, head, tail = {}, 1, 0
  for i = id + 1, #all, threads do tail = tail + 1; queue[tail] = all[i] end
end
function request()
  local t = queue[head]
  queue[head] = nil
  head = head + 1
  return wrk.format("POST", "/v1/sessions/refresh",
    { ["content-type"] = "application/json", ["x-api-key"] = apikey },
    '{"refresh_token":"' .. (t or "exhausted") .. '"}')
end
function response(status, headers, body)
  local t = body:match('"refresh_token":"([^"]+)"')
  if t then tail = tail + 1; queue[tail] = t end
end
LUA

: >"$work/results"
run() { # round, name, wrk args...
  local round="$1" name="$2"; shift 2
  wrk -t"$threads" -c"$connections" -d"${duration}s" --latency "$@" >"$work/$name.txt"
  local rps p99 non2xx
  rps="$(awk '/^Requests\/sec:/ {print $2}' "$work/$name.txt")"
  p99="$(awk '$1 == "99%" {print $2}' "$work/$name.txt")"
  non2xx="$(awk '/Non-2xx/ {print $5}' "$work/$name.txt")"
  printf '  round %s  %-9s %10s req/s   p99 %9s   non-2xx %s\n' "$round" "$name" "$rps" "$p99" "${non2xx:-0}"
  echo "$name $rps $p99 ${non2xx:-0}" >>"$work/results"
}

echo "== warming up"
wrk -t"$threads" -c"$connections" -d2s "$base/healthz" >/dev/null
echo "== ${rounds} rounds, ${connections} connections, ${threads} wrk threads, ${duration}s per run"
echo "   create and refresh limits raised to 1,000,000/min: the limiter runs on every request but never refuses"
echo "   validation cache: ${TESSERA_VALIDATION_CACHE:-8192 (default)} entries"
for round in $(seq 1 "$rounds"); do
  run "$round" trivial "$base/healthz"
  run "$round" validate -s "$work/validate.lua" "$base"
  make_sessions refresh
  run "$round" refresh -s "$work/refresh.lua" "$base"
  run "$round" create -s "$work/create.lua" "$base"
  while read -r user; do
    curl -fsS -X DELETE "${hdr[@]}" "$base/v1/users/$user/sessions" >/dev/null
  done <"$work/create-users"
done

best() { grep "^$1 " "$work/results" | sort -k2 -g -r | head -1; }
median() { grep "^$1 " "$work/results" | sort -k2 -g | awk '{a[NR]=$0} END {print a[int((NR+1)/2)]}'; }
echo "== best and median round of each (req/s, p99 of that round, non-2xx)"
for name in trivial validate refresh create; do
  best "$name" | awk '{printf "  best    %-9s %10s req/s   p99 %9s   non-2xx %s\n", $1, $2, $3, $4}'
  median "$name" | awk '{printf "  median  %-9s %10s req/s   p99 %9s   non-2xx %s\n", $1, $2, $3, $4}'
done
pct() { awk -v v="$1" -v t="$2" 'BEGIN { printf "%.0f", 100 * v / t }'; }
echo "== validate/trivial: best $(pct "$(best validate | awk '{print $2}')" "$(best trivial | awk '{print $2}')")%," \
  "median $(pct "$(median validate | awk '{print $2}')" "$(median trivial | awk '{print $2}')")%" \
  "(target: >= 75%, and validate >= 40,000 req/s)"
lines="$(grep -c 'tessera::http' "$work/server.log" || true)"
echo "== the service wrote ${lines} request log lines"
