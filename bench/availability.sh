#!/usr/bin/env bash
# GET /v1/availability for one SKU over HTTP against the demo network (SQLite backend).
# Needs wrk (apt-get install wrk). Loopback only; each run is bounded by DURATION.
# Usage: bench/availability.sh [RUNS=3] [DURATION=10s] [CONNECTIONS=32]
source "$(dirname "$0")/common.sh"
RUNS="${1:-3}"; DURATION="${2:-10s}"; CONNECTIONS="${3:-32}"
start_server
for i in $(seq 1 "$RUNS"); do
  wrk -t1 -c"$CONNECTIONS" -d"$DURATION" --latency \
    -H "Authorization: Bearer $ALLOT_ADMIN_KEY" \
    "$URL/v1/availability?sku=SKU-00001" | grep -E "Requests/sec|50%|99%|Non-2xx" | sed "s/^/run $i: /"
done
