#!/usr/bin/env bash
# POST /v1/promises over HTTP with the Rust load generator (`allot load promises`): carts of
# LINES lines (default 3) from the scenario's customers and SKU popularity, every method
# asked (ship per service level — each one a sourcing decision dated by node calendars and
# carrier transit — and pickup at nearby stores). Nothing is written, so the answers stay
# the same over a run. Loopback only; each run is bounded by COUNT and SECONDS and starts a
# fresh server.
# Usage: bench/promises.sh [RUNS=3] [SECONDS=10] [CONCURRENCY=32] [RATE=]   (RATE: open loop)
# Network: the demo network (`allot demo`, 60 nodes) by default; NODES=500 SKUS=2000 uses a
# generated network (`allot scenario generate` + `allot import`, carriers and calendars
# included) instead, on SQLite.
source "$(dirname "$0")/common.sh"
RUNS="${1:-3}"; SECS="${2:-10}"; CONCURRENCY="${3:-32}"; RATE="${4:-}"
LINES="${LINES:-3}"; NODES="${NODES:-}"; SKUS="${SKUS:-2000}"; NETWORK_SEED="${NETWORK_SEED:-1}"
network_args=()
if [ -n "$NODES" ]; then
  prepare_generated
  network_args=(--nodes "$NODES" --skus "$SKUS" --network-seed "$NETWORK_SEED")
fi
for i in $(seq 1 "$RUNS"); do
  if [ -n "$NODES" ]; then start_generated_server; else start_server; fi
  "$BIN" load promises --url "$URL" --count 200000 --seconds "$SECS" --concurrency "$CONCURRENCY" \
    --lines "$LINES" "${network_args[@]}" ${RATE:+--rate "$RATE"} | sed "s/^/run $i: /"
  stop_server
done
