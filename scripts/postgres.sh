#!/usr/bin/env bash
# Starts (or reuses) a local PostgreSQL cluster for the server's tests and benchmark, and prints
#   export DATABASE_URL=postgres://ferrosync@127.0.0.1:PORT/ferrosync
# on stdout (everything else goes to stderr), so callers can `eval "$(bash scripts/postgres.sh)"`.
#
# Idempotent: installs the Debian package only if `initdb` is missing, creates the cluster only once,
# and reuses it while it runs. The cluster listens on 127.0.0.1 only, on a free port, runs as a
# non-root user (`postgres` when it exists, else a `ferrosync-pg` system user) and keeps its data in
# target-pg/ (ignored by git). `bash scripts/postgres.sh stop` stops it. Environment: FERROSYNC_PG_DIR
# (data dir), FERROSYNC_PG_PORT (port for a new cluster), FERROSYNC_PG_DB (database, default ferrosync).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BASE="${FERROSYNC_PG_DIR:-$ROOT/target-pg}"
DATA="$BASE/data"
DB="${FERROSYNC_PG_DB:-ferrosync}"
ROLE=ferrosync
log() { printf '[postgres.sh] %s\n' "$*" >&2; }

# Binaries: on PATH, else Debian's versioned directory (newest first).
find_bin() {
  if command -v "$1" >/dev/null 2>&1 && [ "$(command -v "$1")" != "/usr/bin/$1" ]; then
    command -v "$1"
    return
  fi
  local d
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    if [ -x "$d/$1" ]; then echo "$d/$1"; return; fi
  done
  command -v "$1" 2>/dev/null || true
}
if [ -z "$(find_bin initdb)" ]; then
  log "initdb not found: installing PostgreSQL (apt-get)"
  if [ "$(id -u)" -ne 0 ]; then log "need root to install postgresql"; exit 1; fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq postgresql >&2
fi
INITDB="$(find_bin initdb)"
BIN="$(dirname "$INITDB")"
PG_CTL="$BIN/pg_ctl"
PSQL="$(find_bin psql)"
[ -x "$PG_CTL" ] || { log "pg_ctl not found next to $INITDB"; exit 1; }

# PostgreSQL refuses to run as root: run it as a system user.
if [ "$(id -u)" -eq 0 ]; then
  if id postgres >/dev/null 2>&1; then
    PGUSER_OS=postgres
  else
    PGUSER_OS=ferrosync-pg
    id "$PGUSER_OS" >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin "$PGUSER_OS"
  fi
  as_pg() { runuser -u "$PGUSER_OS" -- "$@"; }
else
  PGUSER_OS="$(id -un)"
  as_pg() { "$@"; }
fi

if [ "${1:-}" = "stop" ]; then
  if [ -s "$DATA/PG_VERSION" ] && as_pg "$PG_CTL" -D "$DATA" status >/dev/null 2>&1; then
    as_pg "$PG_CTL" -D "$DATA" -m fast -w stop >&2
  else
    log "no running cluster in $DATA"
  fi
  exit 0
fi

mkdir -p "$BASE"
if [ "$(id -u)" -eq 0 ]; then
  chown "$PGUSER_OS" "$BASE"
  # The server user must be able to reach the data directory.
  d="$BASE"
  while [ "$d" != "/" ]; do
    d="$(dirname "$d")"
    chmod o+x "$d" 2>/dev/null || true
  done
fi

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

if [ ! -s "$DATA/PG_VERSION" ]; then
  log "creating cluster in $DATA (user $PGUSER_OS)"
  rm -rf "$DATA"
  as_pg "$INITDB" -D "$DATA" -U "$ROLE" -A trust -E UTF8 --locale=C.UTF-8 >"$BASE/initdb.log" 2>&1 \
    || { cat "$BASE/initdb.log" >&2; exit 1; }
fi

if as_pg "$PG_CTL" -D "$DATA" status >/dev/null 2>&1; then
  PORT="$(cat "$BASE/port")"
  log "reusing the running cluster on port $PORT"
else
  # Candidate ports: the one asked for; else the last one used, then the range. A port that looks
  # free (nothing accepts on it) can still be held, e.g. by a cluster that is shutting down, so a
  # start that fails moves on to the next candidate (at most 5 tries).
  if [ -n "${FERROSYNC_PG_PORT:-}" ]; then
    CANDIDATES="$FERROSYNC_PG_PORT"
  else
    CANDIDATES=""
    [ -s "$BASE/port" ] && CANDIDATES="$(cat "$BASE/port")"
    CANDIDATES="$CANDIDATES $(seq 54320 54399)"
  fi
  PORT=""
  tries=0
  for p in $CANDIDATES; do
    port_free "$p" || continue
    [ "$tries" -lt 5 ] || break
    tries=$((tries + 1))
    log "starting the cluster on 127.0.0.1:$p"
    if as_pg "$PG_CTL" -D "$DATA" -l "$BASE/server.log" -w -t 60 start \
      -o "-p $p -c listen_addresses=127.0.0.1 -k /tmp -c max_connections=400 -c shared_buffers=256MB" >&2; then
      PORT="$p"
      break
    fi
    tail -n 5 "$BASE/server.log" >&2
    log "could not start on port $p; trying the next free port"
  done
  [ -n "$PORT" ] || { log "could not start the cluster (ports tried: $tries)"; exit 1; }
  echo "$PORT" >"$BASE/port"
fi

if ! "$PSQL" -h 127.0.0.1 -p "$PORT" -U "$ROLE" -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$DB'" | grep -q 1; then
  log "creating database $DB"
  "$PSQL" -h 127.0.0.1 -p "$PORT" -U "$ROLE" -d postgres -qc "CREATE DATABASE \"$DB\"" >&2
fi

echo "export DATABASE_URL=postgres://$ROLE@127.0.0.1:$PORT/$DB"
