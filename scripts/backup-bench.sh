#!/usr/bin/env bash
# Backup and restore of many sessions with the real binary: sessions per
# second and peak resident memory of `tessera backup` and `tessera restore`.
#
# Fills an embedded store with BENCH_SESSIONS real sessions (default
# 1,000,000; the fill example seals them as the service does), backs it up,
# restores the file into a fresh embedded store and, when PostgreSQL answers
# on 127.0.0.1:5432 (database test), into a schema of its own there.
# Peak RSS comes from GNU time (`/usr/bin/time -v`).
#
# Usage: scripts/backup-bench.sh   (BENCH_SESSIONS, CARGO_TARGET_DIR)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
count="${BENCH_SESSIONS:-1000000}"
work="$(mktemp -d)"
schema="tessera_backup_bench_$$"
cleanup() {
  psql -q -h 127.0.0.1 -U postgres -d test -c "DROP SCHEMA IF EXISTS $schema CASCADE" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
[ -x /usr/bin/time ] || { echo "GNU time is needed: apt-get install -y time" >&2; exit 1; }

(cd "$root" && cargo build --release -q -p tessera-server && cargo build --release -q -p tessera-sqlite --example fill)
bin="$target/release/tessera"
eval "$("$bin" keygen | sed 's/^/export /')"
unset TESSERA_STORE TESSERA_POSTGRES_SCHEMA

"$target/release/examples/fill" "$work/source" "$count"

measure() { # label, then the command
  local label="$1"; shift
  /usr/bin/time -v "$@" >"$work/out.json" 2>"$work/time.txt"
  local secs rss
  secs="$(grep -o '"seconds":[0-9.]*' "$work/out.json" | cut -d: -f2)"
  rss="$(grep 'Maximum resident set size' "$work/time.txt" | awk '{print $NF}')"
  printf '%-28s %10s sessions  %8.1f s  %10.0f sessions/s  peak RSS %6.1f MiB\n' \
    "$label" "$count" "$secs" "$(echo "$count / $secs" | bc -l)" "$(echo "$rss / 1024" | bc -l)"
}

echo "== $count sessions"
TESSERA_DATA_DIR="$work/source" measure "backup (embedded)" "$bin" backup --json -o "$work/b.tbk"
ls -l "$work/b.tbk" | awk '{printf "backup file: %.1f MiB\n", $5 / 1048576}'
TESSERA_DATA_DIR="$work/target" measure "restore (into embedded)" "$bin" restore --json "$work/b.tbk"
if pg_isready -q -h 127.0.0.1 -p 5432; then
  TESSERA_STORE=postgres://postgres@127.0.0.1:5432/test TESSERA_POSTGRES_SCHEMA="$schema" \
    measure "restore (into PostgreSQL)" "$bin" restore --json "$work/b.tbk"
  TESSERA_STORE=postgres://postgres@127.0.0.1:5432/test TESSERA_POSTGRES_SCHEMA="$schema" \
    measure "backup (PostgreSQL)" "$bin" backup --json -o "$work/pg.tbk"
fi
