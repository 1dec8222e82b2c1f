#!/usr/bin/env bash
# POST /v1/orders over HTTP against the demo network with the Rust load generator
# (`allot load orders`): 3-line orders (sourcing + allocation + order rows, durable commit),
# unique external ids, carts from the demo scenario's customers and SKU popularity.
# Loopback only; each run is bounded by COUNT and SECONDS. Each run starts a fresh server
# (fresh stock), so runs are comparable.
# Usage: bench/orders.sh [RUNS=3] [SECONDS=10] [CONCURRENCY=32] [RATE=]   (RATE: open loop)
# ALLOT_SQLITE_GROUP_COMMIT=off compares against one transaction per order.
# WARMUP=S first sends S seconds of other carts (same rate), not measured: the first second
# after a start pays for opening connections and preparing statements, which dominates a
# p99 over 10 s at a modest rate.
source "$(dirname "$0")/common.sh"
RUNS="${1:-3}"; SECS="${2:-10}"; CONCURRENCY="${3:-32}"; RATE="${4:-}"; WARMUP="${WARMUP:-0}"
for i in $(seq 1 "$RUNS"); do
  start_server
  if [ "$WARMUP" != 0 ]; then
    "$BIN" load orders --url "$URL" --count 200000 --seconds "$WARMUP" --concurrency "$CONCURRENCY" \
      --seed 1000 ${RATE:+--rate "$RATE"} >/dev/null
  fi
  "$BIN" load orders --url "$URL" --count 200000 --seconds "$SECS" --concurrency "$CONCURRENCY" \
    ${RATE:+--rate "$RATE"} | sed "s/^/run $i: /"
  stop_server
done
