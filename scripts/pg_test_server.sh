#!/usr/bin/env bash
# Start a throwaway PostgreSQL on 127.0.0.1 for trying the shared ledger by hand, and print its URL.
#   scripts/pg_test_server.sh start [port]   -> prints PLAYGROUND_DB_URL=postgresql+psycopg://…
#   scripts/pg_test_server.sh stop
# Data lives in ${PG_TEST_DIR:-/tmp/playground-pg}; trust auth on loopback only: never for real data.
set -euo pipefail
dir="${PG_TEST_DIR:-/tmp/playground-pg}"
bindir="$(pg_config --bindir 2>/dev/null || true)"
if [[ -z "$bindir" || ! -x "$bindir/initdb" ]]; then
  bindir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1 || true)"
fi
[[ -x "$bindir/initdb" ]] || { echo "PostgreSQL binaries not found (apt-get install -y postgresql)" >&2; exit 1; }
as_pg=()
if [[ "$(id -u)" == 0 ]]; then as_pg=(runuser -u postgres --); fi

case "${1:-start}" in
  start)
    port="${2:-55432}"
    mkdir -p "$dir"
    [[ "$(id -u)" == 0 ]] && chown postgres "$dir" && chmod 700 "$dir"
    if [[ ! -f "$dir/data/PG_VERSION" ]]; then
      "${as_pg[@]}" "$bindir/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --no-instructions >/dev/null
    fi
    "${as_pg[@]}" "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w \
      -o "-c listen_addresses=127.0.0.1 -p $port -k $dir" start >/dev/null
    "${as_pg[@]}" "$bindir/psql" -h 127.0.0.1 -p "$port" -U postgres -tAc \
      "SELECT 1 FROM pg_database WHERE datname='playground'" | grep -q 1 ||
      "${as_pg[@]}" "$bindir/createdb" -h 127.0.0.1 -p "$port" -U postgres playground
    echo "PLAYGROUND_DB_URL=postgresql+psycopg://postgres@127.0.0.1:$port/playground"
    ;;
  stop)
    "${as_pg[@]}" "$bindir/pg_ctl" -D "$dir/data" -m fast -w stop
    ;;
  *)
    echo "usage: $0 start [port] | stop" >&2; exit 2
    ;;
esac
