#!/usr/bin/env bash
# Makes (or starts again) a local PostgreSQL cluster for dkeygen under a folder, and prints the
# store URL to give `dkeygen server --store` (or DKEYGEN_STORE_URL).
#
#   scripts/local-postgres.sh [FOLDER] [PORT]      default: ./dkeygen-postgres, port 5433
#   scripts/local-postgres.sh stop [FOLDER]
#
# The cluster listens on 127.0.0.1 only, with password (scram-sha-256) authentication; the role
# `dkeygen` owns the database `dkeygen`, its password kept in FOLDER/dkeygen.password (0600).
# Needs PostgreSQL's initdb and pg_ctl (Debian: apt-get install postgresql). As root, the cluster
# runs as the `postgres` user.
set -euo pipefail

bin_dir() {
  if command -v initdb >/dev/null 2>&1; then dirname "$(command -v initdb)"; return; fi
  local found
  found=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [ -n "$found" ] || { echo "initdb not found: install PostgreSQL (Debian: apt-get install postgresql)" >&2; exit 1; }
  echo "$found"
}
BIN=$(bin_dir)
PSQL="$BIN/psql"
[ -x "$PSQL" ] || PSQL=$(command -v psql)
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

if [ "${1:-}" = "stop" ]; then
  dir=$(realpath "${2:-./dkeygen-postgres}")
  as_pg "$BIN/pg_ctl" -D "$dir/data" stop -m fast
  exit 0
fi

dir=$(realpath -m "${1:-./dkeygen-postgres}")
port=${2:-5433}
mkdir -p "$dir"
chmod 700 "$dir"
[ "$(id -u)" -eq 0 ] && chown postgres: "$dir"
password_file="$dir/dkeygen.password"

if [ ! -d "$dir/data" ]; then
  as_pg "$BIN/initdb" -D "$dir/data" -U postgres --auth-local=peer --auth-host=scram-sha-256 \
    --encoding=UTF8 --locale=C >/dev/null
  password=$(head -c 24 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')
  (umask 077 && printf '%s\n' "$password" >"$password_file")
  created=1
fi
if ! as_pg "$BIN/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
  as_pg "$BIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w \
    -o "-p $port -k $dir -c listen_addresses=127.0.0.1" start >/dev/null
fi
if [ "${created:-0}" = 1 ]; then
  as_pg "$PSQL" -h "$dir" -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1 -q \
    -c "CREATE ROLE dkeygen LOGIN PASSWORD '$password'" -c "CREATE DATABASE dkeygen OWNER dkeygen"
fi
echo "postgres://dkeygen:$(cat "$password_file")@127.0.0.1:$port/dkeygen"
