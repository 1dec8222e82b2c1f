#!/usr/bin/env bash
# POST /v1/orders over HTTP against the demo network: 3-line orders (sourcing + allocation
# + order rows, durable commit), unique external ids, cycling through 200 carts. Needs wrk.
# Loopback only; each run is bounded by DURATION. Runs share one server, so stock
# depletes as they go and later orders backorder more lines (still sourced and written).
# Usage: bench/orders.sh [RUNS=3] [DURATION=10s] [CONNECTIONS=32]
source "$(dirname "$0")/common.sh"
RUNS="${1:-3}"; DURATION="${2:-10s}"; CONNECTIONS="${3:-32}"
start_server
python3 - "$DATA/orders.lua" <<'PY'
import json, random, sys
random.seed(11)
cities = [(40.71, -74.01), (34.05, -118.24), (41.85, -87.65), (29.76, -95.36), (33.45, -112.07),
          (39.95, -75.16), (29.42, -98.49), (32.72, -117.16), (32.78, -96.80), (37.34, -121.89)]
weights = [1 / (r ** 1.1) for r in range(1, 501)]
carts = []
for i in range(200):
    lat, lon = random.choice(cities)
    skus = set()
    while len(skus) < 3:
        skus.add(random.choices(range(1, 501), weights)[0])
    lines = [{"line_id": str(k + 1), "sku": "SKU-%05d" % s, "quantity": 1, "unit_price_minor": 2500,
              "allow_backorder": True} for k, s in enumerate(sorted(skus))]
    body = {"channel": "web", "external_id": "@@ID@@", "customer": {"tier": "standard"},
            "ship_to": {"lat": lat + random.uniform(-0.1, 0.1), "lon": lon + random.uniform(-0.1, 0.1)},
            "lines": lines}
    carts.append(json.dumps(body))
with open(sys.argv[1], "w") as f:
    f.write("carts = {\n" + ",\n".join("[==[" + b + "]==]" for b in carts) + "\n}\n")
    f.write('i = 0\nrun = os.time()\nwrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n')
    f.write('request = function()\n  i = i + 1\n  local body = string.gsub(carts[(i % #carts) + 1], "@@ID@@", "B-" .. run .. "-" .. i)\n')
    f.write('  return wrk.format(nil, nil, nil, body)\nend\n')
PY
for i in $(seq 1 "$RUNS"); do
  wrk -t1 -c"$CONNECTIONS" -d"$DURATION" --latency -s "$DATA/orders.lua" \
    -H "Authorization: Bearer $ALLOT_ADMIN_KEY" \
    "$URL/v1/orders" | grep -E "Requests/sec|50%|99%|Non-2xx" | sed "s/^/run $i: /"
done
