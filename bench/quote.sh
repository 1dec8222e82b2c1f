#!/usr/bin/env bash
# POST /v1/sourcing/quote over HTTP against the demo network (SQLite backend): 3-line
# orders cycling through 200 distinct bodies (SKUs by popularity, customers near demo
# cities). Needs wrk (apt-get install wrk). Loopback only; each run is bounded by DURATION.
# Usage: bench/quote.sh [RUNS=3] [DURATION=10s] [CONNECTIONS=32]
source "$(dirname "$0")/common.sh"
RUNS="${1:-3}"; DURATION="${2:-10s}"; CONNECTIONS="${3:-32}"
start_server
python3 "$ROOT/bench/quote_bodies.py" "$DATA/bodies.lua"
for i in $(seq 1 "$RUNS"); do
  wrk -t1 -c"$CONNECTIONS" -d"$DURATION" --latency -s "$DATA/bodies.lua" \
    -H "Authorization: Bearer $ALLOT_ADMIN_KEY" \
    "$URL/v1/sourcing/quote" | grep -E "Requests/sec|50%|99%|Non-2xx" | sed "s/^/run $i: /"
done
