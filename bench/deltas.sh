#!/usr/bin/env bash
# POST /v1/inventory/deltas with 100,000 deltas in one request (demo network, SQLite),
# end to end over HTTP: JSON parsing, validation, lock, compute, write, fsync'd commit.
# Usage: bench/deltas.sh [RUNS=5] [-- extra serve flags, e.g. --database-url postgres://…]
source "$(dirname "$0")/common.sh"
RUNS="${1:-5}"; shift || true
[ "${1:-}" = "--" ] && shift
start_server "$@"
python3 - "$DATA/deltas" <<'PY'
import json, sys
# 60 demo nodes x 500 SKUs = 30,000 positions; 100,000 deltas cycle through them.
nodes = []
import urllib.request
req = urllib.request.Request("http://127.0.0.1:%s/v1/nodes?limit=1000" % __import__("os").environ.get("PORT", "18181"),
                             headers={"Authorization": "Bearer bench-admin-key-0123456789"})
nodes = [n["node_id"] for n in json.load(urllib.request.urlopen(req))["nodes"]]
skus = ["SKU-%05d" % i for i in range(1, 501)]
for run in range(1, 11):
    deltas = []
    i = 0
    while len(deltas) < 100_000:
        n = nodes[i % len(nodes)]; s = skus[(i // len(nodes)) % len(skus)]
        deltas.append({"node_id": n, "sku": s, "on_hand_delta": 1, "reason": "receipt"})
        i += 1
    with open(f"{sys.argv[1]}.{run}.json", "w") as f:
        json.dump({"deltas": deltas}, f)
PY
ls -la "$DATA"/deltas.1.json | awk '{print "request body:", $5, "bytes"}'
for i in $(seq 1 "$RUNS"); do
  curl -s -o "$DATA/resp.json" -w "run $i: status %{http_code} in %{time_total}s\n" \
    -H "Authorization: Bearer $ALLOT_ADMIN_KEY" -H 'Content-Type: application/json' \
    --data-binary @"$DATA/deltas.$i.json" "$URL/v1/inventory/deltas"
  cat "$DATA/resp.json"; echo
done
