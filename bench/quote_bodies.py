"""The 200 quote bodies of bench/quote.sh (3-line orders, SKUs by popularity, customers
near demo cities), written as a wrk script (bodies.lua) or, with --jsonl, one body per line
(for bench/quote_instructions.sh)."""
import json, random, sys

random.seed(7)
cities = [(40.71, -74.01), (34.05, -118.24), (41.85, -87.65), (29.76, -95.36), (33.45, -112.07),
          (39.95, -75.16), (29.42, -98.49), (32.72, -117.16), (32.78, -96.80), (37.34, -121.89)]
weights = [1 / (r ** 1.1) for r in range(1, 501)]
bodies = []
for i in range(200):
    lat, lon = random.choice(cities)
    skus = set()
    while len(skus) < 3:
        skus.add(random.choices(range(1, 501), weights)[0])
    lines = [{"line_id": str(k + 1), "sku": "SKU-%05d" % s, "quantity": random.randint(1, 2),
              "unit_price_minor": 2500} for k, s in enumerate(sorted(skus))]
    bodies.append(json.dumps({"channel": "web", "customer": {"tier": "standard"},
                              "ship_to": {"lat": lat + random.uniform(-0.1, 0.1), "lon": lon + random.uniform(-0.1, 0.1)},
                              "lines": lines}))
out = sys.argv[1]
with open(out, "w") as f:
    if "--jsonl" in sys.argv:
        f.write("\n".join(bodies) + "\n")
    else:
        f.write("bodies = {\n" + ",\n".join("[==[" + b + "]==]" for b in bodies) + "\n}\n")
        f.write('i = 0\nwrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n')
        f.write('request = function()\n  i = (i % #bodies) + 1\n  return wrk.format(nil, nil, nil, bodies[i])\nend\n')
