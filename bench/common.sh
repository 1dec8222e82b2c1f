# Shared by the benchmark scripts: build the release binary, start a demo server on a
# fresh data directory on loopback, stop it on exit.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/allot-target}"
BIN="$CARGO_TARGET_DIR/release/allot"
PORT="${PORT:-18181}"
URL="http://127.0.0.1:$PORT"
export ALLOT_ADMIN_KEY="bench-admin-key-0123456789"
export ALLOT_LOG=warn
DATA="$(mktemp -d /tmp/allot-bench.XXXXXX)"

start_server() {
  (cd "$ROOT" && cargo build --release --quiet -p allot)
  rm -rf "$DATA/db"
  # ALLOT_BENCH_PG_URL=postgres://… runs on PostgreSQL instead, in a fresh schema per start.
  local db_args=(--data-dir "$DATA/db")
  if [ -n "${ALLOT_BENCH_PG_URL:-}" ]; then
    local schema="bench_$(date +%s%N)"
    psql -q "$ALLOT_BENCH_PG_URL" -c "CREATE SCHEMA $schema" >/dev/null
    BENCH_SCHEMAS="${BENCH_SCHEMAS:-} $schema"
    db_args=(--database-url "${ALLOT_BENCH_PG_URL}?options[search_path]=$schema")
  fi
  "$BIN" demo --listen "127.0.0.1:$PORT" "${db_args[@]}" "$@" >"$DATA/server.log" 2>&1 &
  SERVER_PID=$!
  trap 'kill $SERVER_PID 2>/dev/null || true; wait $SERVER_PID 2>/dev/null || true; rm -rf "$DATA"; drop_schemas' EXIT
  for _ in $(seq 1 100); do
    curl -sf "$URL/healthz" >/dev/null && return 0
    sleep 0.2
  done
  echo "server did not start:"; cat "$DATA/server.log"; exit 1
}

# Generated network: NODES nodes and SKUS SKUs (seed NETWORK_SEED) written by `allot scenario
# generate` (with its carriers and node calendars) and imported once into a template SQLite
# database; start_generated_server then serves a fresh copy of it (SQLite only).
prepare_generated() {
  (cd "$ROOT" && cargo build --release --quiet -p allot)
  "$BIN" scenario generate --nodes "$NODES" --skus "$SKUS" --orders 0 --seed "$NETWORK_SEED" \
    --out "$DATA/scenario" 2>&1 | sed 's/^/prepare: /'
  "$BIN" import "$DATA/scenario" --data-dir "$DATA/template" 2>&1 | sed 's/^/prepare: /'
}

start_generated_server() {
  rm -rf "$DATA/db"
  cp -r "$DATA/template" "$DATA/db"
  "$BIN" serve --listen "127.0.0.1:$PORT" --data-dir "$DATA/db" >"$DATA/server.log" 2>&1 &
  SERVER_PID=$!
  trap 'kill $SERVER_PID 2>/dev/null || true; wait $SERVER_PID 2>/dev/null || true; rm -rf "$DATA"' EXIT
  for _ in $(seq 1 100); do
    curl -sf "$URL/healthz" >/dev/null && return 0
    sleep 0.2
  done
  echo "server did not start:"; cat "$DATA/server.log"; exit 1
}

# Stops the server started by start_server (its data is removed by the next start).
stop_server() {
  kill "$SERVER_PID" 2>/dev/null || true
  wait "$SERVER_PID" 2>/dev/null || true
}

# Drops the PostgreSQL schemas the runs created.
drop_schemas() {
  for schema in ${BENCH_SCHEMAS:-}; do
    psql -q "$ALLOT_BENCH_PG_URL" -c "DROP SCHEMA IF EXISTS $schema CASCADE" >/dev/null 2>&1 || true
  done
}
