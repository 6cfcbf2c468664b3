#!/usr/bin/env bash
# Backup and restore of many sessions with the real binary: sessions per
# second and peak resident memory of `tessera backup` and `tessera restore`.
#
# Fills an embedded store with BENCH_SESSIONS real sessions (default
# 1,000,000; the fill example seals them as the service does), backs it up,
# restores the file into a fresh embedded store and, when PostgreSQL answers
# on 127.0.0.1:5432 (database test), into a schema of its own there, then
# backs that up; the same with Redis on 127.0.0.1:6379 (under a prefix of
# its own, deleted at the end) when it answers. Each restore is run twice:
# the second run writes nothing (every session is kept) and shows what an
# idempotent re-run costs. Peak RSS comes from GNU time (`/usr/bin/time -v`).
#
# Usage: scripts/backup-bench.sh   (BENCH_SESSIONS, BENCH_REDIS=0 to skip
# Redis, CARGO_TARGET_DIR)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
count="${BENCH_SESSIONS:-1000000}"
work="$(mktemp -d)"
schema="tessera_backup_bench_$$"
prefix="tessera-backup-bench-$$:"
cleanup() {
  psql -q -h 127.0.0.1 -U postgres -d test -c "DROP SCHEMA IF EXISTS $schema CASCADE" >/dev/null 2>&1 || true
  if command -v redis-cli >/dev/null; then
    redis-cli --scan --pattern "$prefix*" 2>/dev/null | xargs -r -n 1000 redis-cli del >/dev/null 2>&1 || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
[ -x /usr/bin/time ] || { echo "GNU time is needed: apt-get install -y time" >&2; exit 1; }

(cd "$root" && cargo build --release -q -p tessera-server && cargo build --release -q -p tessera-sqlite --example fill)
bin="$target/release/tessera"
eval "$("$bin" keygen | sed 's/^/export /')"
unset TESSERA_STORE TESSERA_POSTGRES_SCHEMA TESSERA_REDIS_PREFIX

"$target/release/examples/fill" "$work/source" "$count"

measure() { # label, then the command
  local label="$1"; shift
  /usr/bin/time -v "$@" >"$work/out.json" 2>"$work/time.txt"
  local secs rss
  # Wall-clock time of the whole command (a restore's check of the file
  # included), from GNU time's h:mm:ss or m:ss.
  secs="$(awk -F': ' '/Elapsed \(wall clock\)/ {n = split($2, t, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + t[i]; print s}' "$work/time.txt")"
  rss="$(grep 'Maximum resident set size' "$work/time.txt" | awk '{print $NF}')"
  printf '%-28s %10s sessions  %8.1f s  %10.0f sessions/s  peak RSS %6.1f MiB\n' \
    "$label" "$count" "$secs" "$(echo "$count / $secs" | bc -l)" "$(echo "$rss / 1024" | bc -l)"
  if grep -q sessions_written "$work/out.json"; then
    printf '  %s\n' "$(grep -o '"sessions_[a-z]*":[0-9]*' "$work/out.json" | tr '\n' ' ')"
  fi
}

echo "== $count sessions"
TESSERA_DATA_DIR="$work/source" measure "backup (embedded)" "$bin" backup --json -o "$work/b.tbk"
ls -l "$work/b.tbk" | awk '{printf "backup file: %.1f MiB\n", $5 / 1048576}'
TESSERA_DATA_DIR="$work/target" measure "restore (into embedded)" "$bin" restore --json "$work/b.tbk"
TESSERA_DATA_DIR="$work/target" measure "restore again (embedded)" "$bin" restore --json "$work/b.tbk"
if pg_isready -q -h 127.0.0.1 -p 5432; then
  export TESSERA_STORE=postgres://postgres@127.0.0.1:5432/test TESSERA_POSTGRES_SCHEMA="$schema"
  measure "restore (into PostgreSQL)" "$bin" restore --json "$work/b.tbk"
  measure "restore again (PostgreSQL)" "$bin" restore --json "$work/b.tbk"
  measure "backup (PostgreSQL)" "$bin" backup --json -o "$work/pg.tbk"
  unset TESSERA_STORE TESSERA_POSTGRES_SCHEMA
fi
if [ "${BENCH_REDIS:-1}" != 0 ] && redis-cli ping >/dev/null 2>&1; then
  export TESSERA_STORE=redis://127.0.0.1:6379 TESSERA_REDIS_PREFIX="$prefix"
  measure "restore (into Redis)" "$bin" restore --json "$work/b.tbk"
  measure "restore again (Redis)" "$bin" restore --json "$work/b.tbk"
  measure "backup (Redis)" "$bin" backup --json -o "$work/redis.tbk"
  unset TESSERA_STORE TESSERA_REDIS_PREFIX
fi
