#!/usr/bin/env python3
"""The exact joint optimum of sourcing waves, by a MIP (HiGHS), against the engine.

Reads the instances `cargo run --release -p allot-core --example joint_instances -- DIR`
writes (see that file for what they hold) and, per wave:

1. *Checks the model*: solves every order alone against the wave's full stock and compares
   with the engine's cost for it. The engine proves its own decisions optimal, so any
   difference is a defect in this model or in the engine; both are counted and printed.
2. *Solves the wave jointly*: every order at once against shared stock and capacity, the
   exact optimum of the cost model (within `--time-limit` seconds; when HiGHS stops
   early, its best plan and its proven lower bound are reported instead).
3. Reports the gap of the engine's one-by-one (arrival order) and batch totals to it
   (to a proven lower bound where the optimum is not proven: an upper bound on the gap).

Run: `bash bench/quality.sh` (sets up the solver in a virtualenv first).
"""

import argparse
import glob
import json
import math
import os
import sys

import highspy
import numpy as np


class Model:
    def __init__(self):
        self.lb, self.ub, self.cost, self.integer = [], [], [], []
        self.row_lo, self.row_hi, self.row_idx, self.row_val = [], [], [], []
        self.offset = 0.0

    def col(self, lb, ub, cost, integer=True):
        self.lb.append(lb)
        self.ub.append(ub)
        self.cost.append(cost)
        self.integer.append(integer)
        return len(self.lb) - 1

    def row(self, terms, lo=-highspy.kHighsInf, hi=highspy.kHighsInf):
        if not terms:
            return
        self.row_lo.append(lo)
        self.row_hi.append(hi)
        self.row_idx.append([c for c, _ in terms])
        self.row_val.append([v for _, v in terms])

    def solve(self, time_limit):
        if not self.lb:
            return self.offset, self.offset, True  # nothing to decide: every unit's penalty
        h = highspy.Highs()
        h.setOptionValue("output_flag", False)
        h.setOptionValue("time_limit", float(time_limit))
        h.setOptionValue("mip_rel_gap", 0.0)
        h.setOptionValue("mip_abs_gap", 0.5)  # costs are integers: a gap below 1 proves it
        h.setOptionValue("threads", 1)
        lp = highspy.HighsLp()
        n = len(self.lb)
        lp.num_col_ = n
        lp.num_row_ = len(self.row_lo)
        lp.col_cost_ = np.array(self.cost, dtype=np.double)
        lp.col_lower_ = np.array(self.lb, dtype=np.double)
        lp.col_upper_ = np.array(self.ub, dtype=np.double)
        lp.row_lower_ = np.array(self.row_lo, dtype=np.double)
        lp.row_upper_ = np.array(self.row_hi, dtype=np.double)
        lp.offset_ = self.offset
        lp.a_matrix_.format_ = highspy.MatrixFormat.kRowwise
        start, index, value = [0], [], []
        for idx, val in zip(self.row_idx, self.row_val):
            index.extend(idx)
            value.extend(val)
            start.append(len(index))
        lp.a_matrix_.start_ = np.array(start, dtype=np.int32)
        lp.a_matrix_.index_ = np.array(index, dtype=np.int32)
        lp.a_matrix_.value_ = np.array(value, dtype=np.double)
        lp.a_matrix_.num_col_ = n
        lp.a_matrix_.num_row_ = len(self.row_lo)
        lp.integrality_ = [highspy.HighsVarType.kInteger if i else highspy.HighsVarType.kContinuous for i in self.integer]
        h.passModel(lp)
        h.run()
        info = h.getInfo()
        status = h.getModelStatus()
        optimal = status == highspy.HighsModelStatus.kOptimal
        return info.objective_function_value, info.mip_dual_bound, optimal


def build(inst, order_indices):
    """The MIP of the given orders of one wave, against the wave's stock and capacity."""
    m = Model()
    nodes, split, max_nodes = inst["nodes"], inst["split_penalty"], inst["max_nodes"]
    atp = {}
    for n, s, q in inst["stock"]:
        atp[(n, s)] = q  # the last holding of a node and SKU counts, as in the engine
    stock_use, orders_use, units_use = {}, {}, {}
    for oi in order_indices:
        o = inst["orders"][oi]
        lines = o["lines"]
        packages = []
        for l in lines:
            m.offset += l["penalty"] * l["qty"]
        placed = {i: [] for i in range(len(lines))}
        # Pickup lines: their node or nothing; one package per node.
        pickup_pkg = {}
        for i, l in enumerate(lines):
            n = l["pickup_node"]
            if l["ship"] or n is None:
                continue
            cap = min(l["qty"], atp.get((n, l["sku"]), 0))
            if cap == 0:
                continue
            node = nodes[n]
            if n not in pickup_pkg:
                z = m.col(0, 1, node["per_order"] + split)
                pickup_pkg[n] = z
                packages.append(z)
            x = m.col(0, cap, node["per_unit"] - l["penalty"])
            m.row([(x, 1.0), (pickup_pkg[n], -float(l["qty"]))], hi=0)
            placed[i].append(x)
            stock_use.setdefault((n, l["sku"]), []).append(x)
        # Ship lines: per node, its package(s). Daily capacity (orders, units) binds ship
        # work only, as in the engine; pickups do not count against it here, where the
        # engine counts them for later orders: the MIP is the looser, so its optimum stays
        # a lower bound.
        used = []
        for opt in o["options"]:
            n = opt["node"]
            node = nodes[n]
            y = m.col(0, 1, node["per_order"])
            used.append(y)
            orders_use.setdefault(n, []).append(y)
            regular = [i for i in opt["lines"] if not lines[i]["alone"]]
            if regular:
                r = m.col(0, 1, opt["base"] + split)
                kg = m.col(0, highspy.kHighsInf, opt["per_kg"])
                packages.append(r)
                m.row([(r, 1.0), (y, -1.0)], hi=0)
                weight = [(kg, -1000.0)]
            for i in opt["lines"]:
                l = lines[i]
                cap = min(l["qty"], atp.get((n, l["sku"]), 0))
                if node["units_left"] is not None:
                    cap = min(cap, node["units_left"])
                if cap == 0:
                    continue
                c = node["per_unit"] - l["penalty"]
                if l["alone"]:
                    c += opt["base"] + opt["per_kg"] * math.ceil(l["weight_g"] / 1000) + split
                x = m.col(0, cap, c)
                if l["alone"]:
                    m.row([(x, 1.0), (y, -float(l["qty"]))], hi=0)
                    packages.append(x)
                else:
                    m.row([(x, 1.0), (r, -float(l["qty"]))], hi=0)
                    weight.append((x, float(l["weight_g"])))
                placed[i].append(x)
                stock_use.setdefault((n, l["sku"]), []).append(x)
                units_use.setdefault(n, []).append(x)
            if regular:
                m.row(weight, hi=0)
        m.row([(y, 1.0) for y in used], hi=max_nodes)
        for i, cols in placed.items():
            m.row([(x, 1.0) for x in cols], hi=lines[i]["qty"])
        # Every package beyond the first pays the split penalty: each package carries it,
        # and `first` (at most one, only if there is a package) takes it back once.
        if packages:
            first = m.col(0, 1, -split)
            m.row([(first, 1.0)] + [(p, -1.0) for p in packages], hi=0)
    for (n, s), cols in stock_use.items():
        m.row([(x, 1.0) for x in cols], hi=atp.get((n, s), 0))
    for n, cols in orders_use.items():
        left = nodes[n]["orders_left"]
        if left is not None and len(cols) > left:
            m.row([(x, 1.0) for x in cols], hi=left)
    for n, cols in units_use.items():
        left = nodes[n]["units_left"]
        if left is not None:
            m.row([(x, 1.0) for x in cols], hi=left)
    return m


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dir")
    ap.add_argument("--time-limit", type=float, default=300.0, help="seconds per joint MIP")
    args = ap.parse_args()
    files = sorted(glob.glob(os.path.join(args.dir, "*.json")))
    if not files:
        sys.exit(f"no instances in {args.dir}")
    totals = {}
    for path in files:
        inst = json.load(open(path))
        eng = inst["engine"]
        name = os.path.basename(path)[: -len(".json")]
        group = name.rsplit("-", 1)[0]
        # 1. The model against the engine, order by order.
        mismatches = 0
        for oi, (cost, proven) in enumerate(eng["single"]):
            value, _, optimal = build(inst, [oi]).solve(60)
            if not optimal or round(value) != cost:
                mismatches += 1
                print(f"  {name} order {oi}: MIP {value:.0f} ({'optimal' if optimal else 'not proven'}), "
                      f"engine {cost} ({'proven' if proven else 'not proven'})")
        single_sum = sum(c for c, _ in eng["single"])
        # 2. The wave jointly. Two more bounds close what HiGHS leaves open: the orders
        # alone (each order's cost in any joint plan is at least its optimum alone, which
        # the engine proved and step 1 confirmed) and the engine's own plans (feasible).
        one, batch = eng["one_by_one"], eng["batch"]
        if mismatches == 0 and single_sum >= min(one, batch):
            # The engine's plans cost what the orders cost alone: optimal, no MIP needed.
            value, bound, optimal = float(min(one, batch)), float(single_sum), True
            how = "no competition: the orders alone"
        else:
            value, bound, optimal = build(inst, range(len(inst["orders"]))).solve(args.time_limit)
            how = f"HiGHS {'proved' if optimal else 'stopped at'} {round(value)}"
        lower = round(value) if optimal else math.ceil(bound - 1e-6)
        if mismatches == 0:
            lower = max(lower, single_sum)
        best = min(round(value), one, batch)
        proven = lower >= best
        gap = lambda x: 100.0 * (x - lower) / lower
        print(f"{name}: joint optimum {best}{'' if proven else f' or less, at least {lower}'}"
              f" ({how}); "
              f"one by one {one} (+{gap(one):.3f}%), batch {batch} (+{gap(batch):.3f}%); "
              f"orders alone (no competition) {single_sum}; "
              f"model vs engine on single orders: {len(eng['single']) - mismatches}/{len(eng['single'])} equal",
              flush=True)
        t = totals.setdefault(group, {"lower": 0, "one": 0, "batch": 0, "waves": 0, "proven": 0, "mismatch": 0})
        t["lower"] += lower
        t["one"] += one
        t["batch"] += batch
        t["waves"] += 1
        t["proven"] += int(proven)
        t["mismatch"] += mismatches
    print()
    for group, t in totals.items():
        gap = lambda x: 100.0 * (x - t["lower"]) / t["lower"]
        print(f"{group}: {t['waves']} waves ({t['proven']} joint optima proven; the others are measured against a "
              f"lower bound): one by one +{gap(t['one']):.3f}%, batch +{gap(t['batch']):.3f}% over the joint "
              f"optimum; single-order model mismatches {t['mismatch']}")


if __name__ == "__main__":
    main()
