//! Exact allocation of a group's lines over one fixed node set (depth first over lines and
//! their splits). Knows nothing of other sets, the top three or the explanation. Pruning only
//! uses admissible bounds: the cheapest allocation within the limit is never cut.

use super::cost::{INF, floor_milli, saturating_times, settle};
use super::group::Group;

// ---------------------------------------------------------------------------------------
// Allocation within a node set

/// Exact allocation over a fixed set: depth-first over lines (regular lines first, so that
/// a node's regular package and billed weight are known when its ship-alone units are
/// costed), each line's splits across the set (cheapest node first, largest share first),
/// pruned by the relaxed cost of the lines fixed so far plus the linear relaxation of the
/// others.
#[derive(Debug, Default)]
pub(super) struct AllocationSearch {
    m: usize,
    set: Vec<usize>,
    /// `x[l × m + k]`: units of line `l` at `set[k]`.
    x: Vec<u64>,
    /// Lines in search order.
    lines: Vec<usize>,
    rem_stock: Vec<u64>,
    rem_cap: Vec<u64>,
    pub(super) used: Vec<u64>,
    /// Per position: regular units, ship-alone units and regular weight placed so far.
    reg_units: Vec<u64>,
    alone_units: Vec<u64>,
    reg_weight: Vec<u64>,
    /// Per line, the set positions that may serve it, cheapest first.
    order: Vec<usize>,
    count: Vec<usize>,
    base_milli: i64,
    /// Costs above this are of no use (the top-three threshold).
    limit: i64,
    pub(super) best_cost: i64,
    pub(super) best_x: Vec<u64>,
    pub(super) steps: u64,
    max_steps: u64,
    pub(super) cut: bool,
    buf: Vec<(i64, u64)>,
    slot_units: Vec<u64>,
    /// Lines never compete (distinct SKUs, unit capacity never binding): the relaxation
    /// of the lines from search position `p` on is fixed, `rest[p]`, and position `k` can
    /// serve a later line iff `last[k] > p` (`last[k]`: one past its last position).
    independent: bool,
    rest: Vec<i64>,
    last: Vec<usize>,
    /// Symmetry: per position, an earlier position with the same profile (or MAX), and
    /// whether their units have been equal on every line so far.
    twin: Vec<usize>,
    tied: Vec<bool>,
    /// `reg_room[p × m + k]`: most regular weight position `k` may receive from search
    /// position `p` on.
    reg_room: Vec<u64>,
}

impl AllocationSearch {
    /// Solves the allocation of `set`; `twin[k]`: an earlier position whose node has the
    /// same profile as `set[k]` (`usize::MAX`: none).
    pub(super) fn solve(&mut self, g: &Group<'_>, set: &[usize], twin: &[usize], limit: i64, max_steps: u64) {
        let (nl, ns, m) = (g.line_count(), g.slots, set.len());
        self.m = m;
        self.set.clear();
        self.set.extend_from_slice(set);
        self.x.clear();
        self.x.resize(nl * m, 0);
        self.lines.clear();
        self.lines.extend((0..nl).filter(|&l| !g.lines[l].ship_alone));
        // Heaviest regular lines first: the billed weight is settled early.
        self.lines.sort_by_key(|&l| (std::cmp::Reverse(g.lines[l].weight_g.saturating_mul(g.lines[l].qty)), l));
        self.lines.extend((0..nl).filter(|&l| g.lines[l].ship_alone));
        self.rem_stock.clear();
        self.rem_cap.clear();
        for &c in set {
            self.rem_stock.extend_from_slice(&g.stock[c * ns..(c + 1) * ns]);
            self.rem_cap.push(g.candidates[c].unit_cap);
        }
        for v in [&mut self.used, &mut self.reg_units, &mut self.alone_units, &mut self.reg_weight] {
            v.clear();
            v.resize(m, 0);
        }
        self.order.clear();
        self.order.resize(nl * m, 0);
        self.count.clear();
        for l in 0..nl {
            let mut n = 0;
            for (k, &c) in set.iter().enumerate() {
                if g.avail[c * nl + l] > 0 {
                    self.order[l * m + n] = k;
                    n += 1;
                }
            }
            self.order[l * m..l * m + n].sort_by_key(|&k| (g.unit[set[k] * nl + l], k));
            self.count.push(n);
        }
        self.slot_units.clear();
        self.slot_units.resize(ns, 0);
        self.twin.clear();
        self.twin.extend_from_slice(twin);
        self.tied.clear();
        self.tied.resize(m, true);
        // Most regular weight each position may still receive from search position p on.
        self.reg_room.clear();
        self.reg_room.resize((nl + 1) * m, 0);
        for p in (0..nl).rev() {
            let l = self.lines[p];
            for (k, &c) in set.iter().enumerate() {
                let add =
                    if g.lines[l].ship_alone { 0 } else { g.lines[l].weight_g.saturating_mul(g.avail[c * nl + l]) };
                self.reg_room[p * m + k] = self.reg_room[(p + 1) * m + k].saturating_add(add);
            }
        }
        self.last.clear();
        for &c in set {
            let serves = |p: usize| g.avail[c * nl + self.lines[p]] > 0;
            self.last.push((0..nl).rev().find(|&p| serves(p)).map_or(0, |p| p + 1));
        }
        let distinct_slots = ns == nl;
        self.independent = distinct_slots
            && set.iter().all(|&c| {
                let most = g.avail[c * nl..(c + 1) * nl].iter().fold(0u64, |a, v| a.saturating_add(*v));
                g.candidates[c].unit_cap >= most
            });
        self.rest.clear();
        if self.independent {
            self.rest.resize(nl + 1, 0);
            for p in (0..nl).rev() {
                let v = self.line_lp(g, self.lines[p]);
                self.rest[p] =
                    if v >= INF || self.rest[p + 1] >= INF { INF } else { v.saturating_add(self.rest[p + 1]) };
            }
        }
        self.base_milli = g.entry_milli(set);
        self.limit = limit;
        self.best_cost = INF;
        self.steps = 0;
        self.max_steps = max_steps;
        self.cut = false;
        self.line(g, 0, 0);
    }

    fn line(&mut self, g: &Group<'_>, p: usize, committed: i64) {
        if p == g.line_count() {
            self.leaf(g);
            return;
        }
        let l = self.lines[p];
        self.split(g, p, l, 0, g.lines[l].qty, committed, 0);
    }

    #[allow(clippy::too_many_arguments)]
    fn split(&mut self, g: &Group<'_>, p: usize, l: usize, j: usize, left: u64, committed: i64, acc: i64) {
        let m = self.m;
        let nl = g.line_count();
        if j == self.count[l] {
            self.steps += 1;
            if self.steps > self.max_steps {
                self.cut = true;
                return;
            }
            let line = &g.lines[l];
            let mut acc = acc;
            if left > 0 {
                if g.all_or_nothing {
                    return;
                }
                acc = acc.saturating_add(saturating_times(line.penalty_milli, left));
            }
            let committed = committed.saturating_add(acc);
            // Every node of the set must still be able to receive a unit.
            for k in 0..m {
                if self.used[k] == 0
                    && !(if self.independent { self.last[k] > p + 1 } else { self.can_serve_from(g, k, p + 1) })
                {
                    return;
                }
            }
            let rest = if self.independent { self.rest[p + 1] } else { self.rest_lp(g, p + 1) };
            if rest >= INF {
                return;
            }
            // Twins: a node's units, line by line, never exceed its earlier twin's.
            let mut untied = 0u64;
            for k in 0..m {
                let t = self.twin[k];
                if t != usize::MAX && self.tied[k] {
                    let (a, b) = (self.x[l * m + t], self.x[l * m + k]);
                    if a < b {
                        return;
                    }
                    if a > b && k < 64 {
                        untied |= 1 << k;
                    }
                }
            }
            // Billed weight: whatever regular weight a node may still receive, its kg are
            // at least those of the weight it has.
            let mut rounding = 0i64;
            for k in 0..m {
                let w = self.reg_weight[k];
                if w > 0 {
                    let up = w.div_ceil(1000) * 1000 - w;
                    let room = self.reg_room[(p + 1) * m + k];
                    if up > room {
                        rounding = rounding
                            .saturating_add(g.candidates[self.set[k]].per_kg.saturating_mul((up - room) as i64));
                    }
                }
            }
            let bound =
                floor_milli(self.base_milli.saturating_add(committed).saturating_add(rest).saturating_add(rounding));
            if bound > self.limit.min(self.best_cost - 1) {
                return;
            }
            for k in 0..m.min(64) {
                if untied & (1 << k) != 0 {
                    self.tied[k] = false;
                }
            }
            self.line(g, p + 1, committed);
            for k in 0..m.min(64) {
                if untied & (1 << k) != 0 {
                    self.tied[k] = true;
                }
            }
            return;
        }
        let k = self.order[l * m + j];
        let c = self.set[k];
        let si = k * g.slots + g.lines[l].slot;
        let full = g.avail[c * nl + l];
        let max_u = left.min(self.rem_stock[si]).min(self.rem_cap[k]).min(full);
        let ag = g.aged(c, l, full);
        let alone = g.lines[l].ship_alone;
        let w = if alone { 0 } else { g.lines[l].weight_g };
        // A ship-alone unit rides on the node's entry only if it is the node's first package.
        let free_first = alone && self.reg_units[k] == 0 && self.alone_units[k] == 0;
        for u in (0..=max_u).rev() {
            self.x[l * m + k] = u;
            self.rem_stock[si] -= u;
            self.rem_cap[k] -= u;
            self.used[k] += u;
            if alone {
                self.alone_units[k] += u;
            } else {
                self.reg_units[k] += u;
                self.reg_weight[k] += w * u;
            }
            let cost = g.units_cost(c, l, u, ag, free_first);
            self.split(g, p, l, j + 1, left - u, committed, acc.saturating_add(cost));
            self.rem_stock[si] += u;
            self.rem_cap[k] += u;
            self.used[k] -= u;
            if alone {
                self.alone_units[k] -= u;
            } else {
                self.reg_units[k] -= u;
                self.reg_weight[k] -= w * u;
            }
            if self.cut {
                break;
            }
        }
        self.x[l * m + k] = 0;
    }

    fn remaining(&self, g: &Group<'_>, k: usize, l: usize) -> u64 {
        let c = self.set[k];
        g.avail[c * g.line_count() + l].min(self.rem_stock[k * g.slots + g.lines[l].slot]).min(self.rem_cap[k])
    }

    fn can_serve_from(&self, g: &Group<'_>, k: usize, from: usize) -> bool {
        (from..g.line_count()).any(|p| self.remaining(g, k, self.lines[p]) > 0)
    }

    /// Linear relaxation of the lines from search position `from` on, with the stock and
    /// capacity left.
    fn rest_lp(&mut self, g: &Group<'_>, from: usize) -> i64 {
        let mut total = 0i64;
        for p in from..g.line_count() {
            let v = self.line_lp(g, self.lines[p]);
            if v >= INF {
                return INF;
            }
            total = total.saturating_add(v);
        }
        total
    }

    /// Linear relaxation of line `l` with the stock and capacity left.
    fn line_lp(&mut self, g: &Group<'_>, l: usize) -> i64 {
        let m = self.m;
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        for j in 0..self.count[l] {
            let k = self.order[l * m + j];
            let a = self.remaining(g, k, l);
            let free_first = self.reg_units[k] == 0 && self.alone_units[k] == 0;
            g.push_segments(self.set[k], l, a, free_first, &mut buf);
        }
        let line = &g.lines[l];
        let v = settle(&mut buf, line.qty, line.penalty_milli, g.all_or_nothing);
        self.buf = buf;
        v
    }

    fn leaf(&mut self, g: &Group<'_>) {
        if self.used.contains(&0) {
            return;
        }
        let cost = g.plan_cost(&self.set, &self.x, &mut self.slot_units);
        if cost <= self.limit && cost < self.best_cost {
            self.best_cost = cost;
            self.best_x.clone_from(&self.x);
        }
    }
}
