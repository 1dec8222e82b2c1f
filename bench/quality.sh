#!/usr/bin/env bash
# Routing quality against the exact joint optimum (issue 3). Exports generated waves of
# 100 orders with the engine's one-by-one and batch totals
# (crates/allot-core/examples/joint_instances.rs), then solves every order alone and every
# wave jointly as a MIP with HiGHS (bench/joint_optimum.py), in a virtualenv made on first use.
# Usage: bench/quality.sh [WAVES=10] [TIME_LIMIT_S=300]   (WAVES per network and stock regime)
# ONLY=60 or ONLY=500 makes and solves one network's waves (the 500-node joint MIPs take
# minutes each). BENCHMARKS.md's table: ONLY=60 bash bench/quality.sh 10 300, then
# ONLY=500 bash bench/quality.sh 3 300.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/allot-target}"
WAVES="${1:-10}"; LIMIT="${2:-300}"
VENV="${ALLOT_QUALITY_VENV:-/var/tmp/allot-quality-venv}"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -c "import highspy, numpy" 2>/dev/null || "$VENV/bin/pip" install -q "highspy==1.16.0" "numpy==2.4.6"
OUT="$(mktemp -d /tmp/allot-quality.XXXXXX)"
trap 'rm -rf "$OUT"' EXIT
(cd "$ROOT" && cargo run --release -q -p allot-core --example joint_instances -- "$OUT" "$WAVES" ${ONLY:+"$ONLY"}) >/dev/null
"$VENV/bin/python" "$ROOT/bench/joint_optimum.py" "$OUT" --time-limit "$LIMIT"
