#!/usr/bin/env bash
# Instructions the server executes per POST /v1/sourcing/quote, counted by callgrind: a
# deterministic measure, unlike throughput on a shared machine (use it to compare two
# builds). The demo server (SQLite) runs under valgrind; 200 quotes warm it up, then the
# counters are zeroed and N quotes (one connection, one at a time) are counted.
# Needs valgrind (apt-get install valgrind). Usage: bench/quote_instructions.sh [N=1000] [BIN]
source "$(dirname "$0")/common.sh"
N="${1:-1000}"
if [ -n "${2:-}" ]; then BIN="$2"; else (cd "$ROOT" && cargo build --release --quiet -p allot); fi
python3 "$ROOT/bench/quote_bodies.py" "$DATA/bodies.jsonl" --jsonl
valgrind --tool=callgrind --callgrind-out-file="$DATA/callgrind.out" --dump-instr=no \
  "$BIN" demo --listen "127.0.0.1:$PORT" --data-dir "$DATA/db" >"$DATA/server.log" 2>&1 &
SERVER_PID=$!
trap 'kill $SERVER_PID 2>/dev/null || true; wait $SERVER_PID 2>/dev/null || true; rm -rf "$DATA"' EXIT
for _ in $(seq 1 600); do curl -sf "$URL/healthz" >/dev/null && break; sleep 0.5; done
curl -sf "$URL/healthz" >/dev/null || { echo "server did not start:"; cat "$DATA/server.log"; exit 1; }
drive() {
  python3 - "$URL" "$1" "$DATA/bodies.jsonl" "$ALLOT_ADMIN_KEY" <<'PY'
import http.client, sys, urllib.parse
url, n, path, key = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
bodies = open(path).read().splitlines()
u = urllib.parse.urlparse(url)
c = http.client.HTTPConnection(u.hostname, u.port, timeout=300)
for i in range(n):
    c.request("POST", "/v1/sourcing/quote", body=bodies[i % len(bodies)],
              headers={"Content-Type": "application/json", "Authorization": "Bearer " + key})
    r = c.getresponse(); r.read()
    assert r.status == 200, r.status
PY
}
drive 200
callgrind_control -z "$SERVER_PID" >/dev/null
drive "$N"
callgrind_control -d "$SERVER_PID" >/dev/null
# The dump of the counted quotes: callgrind.out.1 (the main file is written at exit).
for _ in $(seq 1 60); do [ -s "$DATA/callgrind.out.1" ] && break; sleep 1; done
total=$(callgrind_annotate "$DATA/callgrind.out.1" | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1; exit}')
echo "instructions per quote: $((total / N)) ($N quotes, $BIN)"
