//! Exact allocation of a group's lines over one fixed node set (depth first over lines and
//! their splits). Knows nothing of other sets, the top three or the explanation. Pruning only
//! uses admissible bounds: the cheapest allocation within the limit is never cut.
//!
//! Indices: `l` a line of the group, `p` a position in the search order of lines, `k` a
//! position in the set, `c` the candidate at a position.

use super::cost::{INF, floor_milli, saturating_times, settle};
use super::group::Group;

/// Exact allocation over a fixed set: depth-first over lines (regular lines first, so that
/// a node's regular package and billed weight are known when its ship-alone units are
/// costed), each line's splits across the set (cheapest node first, largest share first),
/// pruned by the relaxed cost of the lines fixed so far plus the linear relaxation of the
/// others.
#[derive(Debug, Default)]
pub(super) struct AllocationSearch {
    set_len: usize,
    set: Vec<usize>,
    /// `units[l × set_len + k]`: units of line `l` at `set[k]`.
    units: Vec<u64>,
    /// Lines in search order.
    lines: Vec<usize>,
    /// Per position and SKU slot (`k × slots + s`): stock left; per position: unit
    /// capacity left.
    stock_left: Vec<u64>,
    cap_left: Vec<u64>,
    /// Per position: units, regular units, ship-alone units and regular weight placed so far.
    units_at: Vec<u64>,
    regular_units: Vec<u64>,
    alone_units: Vec<u64>,
    regular_weight_g: Vec<u64>,
    /// Per line, the set positions that may serve it, cheapest first
    /// (`servers[l × set_len ..][..server_count[l]]`).
    servers: Vec<usize>,
    server_count: Vec<usize>,
    /// The set's entries (less one split penalty) ×1000.
    base_milli: i64,
    /// Costs above this are of no use (the top-three threshold).
    limit: i64,
    pub(super) best_cost: i64,
    pub(super) best_units: Vec<u64>,
    pub(super) steps: u64,
    max_steps: u64,
    pub(super) cut: bool,
    segments: Vec<(i64, u64)>,
    slot_units: Vec<u64>,
    /// Lines never compete (distinct SKUs, unit capacity never binding): the relaxation
    /// of the lines from search position `p` on is fixed, `rest_bound[p]`, and position `k`
    /// can serve a later line iff `serves_until[k] > p` (one past its last position).
    independent: bool,
    rest_bound: Vec<i64>,
    serves_until: Vec<usize>,
    /// Symmetry: per position, an earlier position with the same profile (or MAX), and
    /// whether their units have been equal on every line so far.
    twin: Vec<usize>,
    tied: Vec<bool>,
    /// `regular_room_g[p × set_len + k]`: most regular weight position `k` may receive from
    /// search position `p` on.
    regular_room_g: Vec<u64>,
}

impl AllocationSearch {
    /// Solves the allocation of `set` within `limit` and `max_steps`; `twin[k]`: an earlier
    /// position whose node has the same profile as `set[k]` (`usize::MAX`: none).
    pub(super) fn solve(&mut self, group: &Group<'_>, set: &[usize], twin: &[usize], limit: i64, max_steps: u64) {
        let set_len = set.len();
        self.set_len = set_len;
        self.set.clear();
        self.set.extend_from_slice(set);
        self.units.clear();
        self.units.resize(group.line_count() * set_len, 0);
        self.order_lines(group);
        self.reset_positions(group, twin);
        self.order_servers(group);
        self.regular_room(group);
        self.reach(group);
        self.base_milli = group.entry_milli(set);
        self.limit = limit;
        self.best_cost = INF;
        self.steps = 0;
        self.max_steps = max_steps;
        self.cut = false;
        self.line(group, 0, 0);
    }

    /// Regular lines first, heaviest first (the billed weight is settled early), then the
    /// ship-alone lines.
    fn order_lines(&mut self, group: &Group<'_>) {
        let n_lines = group.line_count();
        self.lines.clear();
        self.lines.extend((0..n_lines).filter(|&l| !group.lines[l].ship_alone));
        self.lines.sort_by_key(|&l| (std::cmp::Reverse(group.lines[l].weight_g.saturating_mul(group.lines[l].qty)), l));
        self.lines.extend((0..n_lines).filter(|&l| group.lines[l].ship_alone));
    }

    /// Stock and capacity left, units placed and twins: as before any allocation.
    fn reset_positions(&mut self, group: &Group<'_>, twin: &[usize]) {
        let (n_slots, set_len) = (group.slots, self.set_len);
        self.stock_left.clear();
        self.cap_left.clear();
        for &c in &self.set {
            self.stock_left.extend_from_slice(&group.stock[c * n_slots..(c + 1) * n_slots]);
            self.cap_left.push(group.candidates[c].unit_cap);
        }
        for v in [&mut self.units_at, &mut self.regular_units, &mut self.alone_units, &mut self.regular_weight_g] {
            v.clear();
            v.resize(set_len, 0);
        }
        self.slot_units.clear();
        self.slot_units.resize(n_slots, 0);
        self.twin.clear();
        self.twin.extend_from_slice(twin);
        self.tied.clear();
        self.tied.resize(set_len, true);
    }

    /// Per line, the positions that may serve it, cheapest unit first.
    fn order_servers(&mut self, group: &Group<'_>) {
        let (n_lines, set_len) = (group.line_count(), self.set_len);
        self.servers.clear();
        self.servers.resize(n_lines * set_len, 0);
        self.server_count.clear();
        for l in 0..n_lines {
            let mut n = 0;
            for (k, &c) in self.set.iter().enumerate() {
                if group.avail[c * n_lines + l] > 0 {
                    self.servers[l * set_len + n] = k;
                    n += 1;
                }
            }
            let set = &self.set;
            self.servers[l * set_len..l * set_len + n].sort_by_key(|&k| (group.unit[set[k] * n_lines + l], k));
            self.server_count.push(n);
        }
    }

    /// Most regular weight each position may still receive from search position p on.
    fn regular_room(&mut self, group: &Group<'_>) {
        let (n_lines, set_len) = (group.line_count(), self.set_len);
        self.regular_room_g.clear();
        self.regular_room_g.resize((n_lines + 1) * set_len, 0);
        for p in (0..n_lines).rev() {
            let line = &group.lines[self.lines[p]];
            for (k, &c) in self.set.iter().enumerate() {
                let weight_g = if line.ship_alone {
                    0
                } else {
                    line.weight_g.saturating_mul(group.avail[c * n_lines + self.lines[p]])
                };
                self.regular_room_g[p * set_len + k] =
                    self.regular_room_g[(p + 1) * set_len + k].saturating_add(weight_g);
            }
        }
    }

    /// Up to which search position each position serves lines, whether lines never
    /// compete, and then the relaxation of the lines from each search position on.
    fn reach(&mut self, group: &Group<'_>) {
        let n_lines = group.line_count();
        self.serves_until.clear();
        for &c in &self.set {
            let serves = |p: usize| group.avail[c * n_lines + self.lines[p]] > 0;
            self.serves_until.push((0..n_lines).rev().find(|&p| serves(p)).map_or(0, |p| p + 1));
        }
        let distinct_slots = group.slots == n_lines;
        self.independent = distinct_slots
            && self.set.iter().all(|&c| {
                let most = group.avail[c * n_lines..(c + 1) * n_lines].iter().fold(0u64, |a, v| a.saturating_add(*v));
                group.candidates[c].unit_cap >= most
            });
        self.rest_bound.clear();
        if self.independent {
            self.rest_bound.resize(n_lines + 1, 0);
            for p in (0..n_lines).rev() {
                let v = self.line_lp(group, self.lines[p]);
                let rest = self.rest_bound[p + 1];
                self.rest_bound[p] = if v >= INF || rest >= INF { INF } else { v.saturating_add(rest) };
            }
        }
    }

    /// The line at search position `p` (or the leaf past the last), `committed`: the
    /// relaxed cost ×1000 of the lines before it.
    fn line(&mut self, group: &Group<'_>, p: usize, committed: i64) {
        if p == group.line_count() {
            self.leaf(group);
            return;
        }
        let l = self.lines[p];
        self.split(group, p, l, 0, group.lines[l].qty, committed, 0);
    }

    /// The shares of line `l` (at search position `p`) from its `j`th server on, `left`
    /// units to place; `acc`: the relaxed cost ×1000 of the shares so far.
    #[allow(clippy::too_many_arguments)]
    fn split(&mut self, group: &Group<'_>, p: usize, l: usize, j: usize, left: u64, committed: i64, acc: i64) {
        if j == self.server_count[l] {
            self.line_done(group, p, l, left, (committed, acc));
            return;
        }
        let set_len = self.set_len;
        let k = self.servers[l * set_len + j];
        let c = self.set[k];
        let line = &group.lines[l];
        let stock_at = k * group.slots + line.slot;
        let avail = group.avail[c * group.line_count() + l];
        let most = left.min(self.stock_left[stock_at]).min(self.cap_left[k]).min(avail);
        let aged = group.aged(c, l, avail);
        let alone = line.ship_alone;
        let weight_g = if alone { 0 } else { line.weight_g };
        // A ship-alone unit rides on the node's entry only if it is the node's first package.
        let free_first = alone && self.regular_units[k] == 0 && self.alone_units[k] == 0;
        for u in (0..=most).rev() {
            self.units[l * set_len + k] = u;
            self.stock_left[stock_at] -= u;
            self.cap_left[k] -= u;
            self.units_at[k] += u;
            if alone {
                self.alone_units[k] += u;
            } else {
                self.regular_units[k] += u;
                self.regular_weight_g[k] += weight_g * u;
            }
            let cost = group.units_cost(c, l, u, aged, free_first);
            self.split(group, p, l, j + 1, left - u, committed, acc.saturating_add(cost));
            self.stock_left[stock_at] += u;
            self.cap_left[k] += u;
            self.units_at[k] -= u;
            if alone {
                self.alone_units[k] -= u;
            } else {
                self.regular_units[k] -= u;
                self.regular_weight_g[k] -= weight_g * u;
            }
            if self.cut {
                break;
            }
        }
        self.units[l * set_len + k] = 0;
    }

    /// Line `l` (search position `p`) has its shares, `left` units unplaced; `committed`:
    /// the relaxed cost ×1000 of the lines before it, `acc` of its shares. Goes on to the
    /// next line unless a bound rules every completion out.
    fn line_done(&mut self, group: &Group<'_>, p: usize, l: usize, left: u64, (committed, acc): (i64, i64)) {
        self.steps += 1;
        if self.steps > self.max_steps {
            self.cut = true;
            return;
        }
        let mut acc = acc;
        if left > 0 {
            if group.all_or_nothing {
                return;
            }
            acc = acc.saturating_add(saturating_times(group.lines[l].penalty_milli, left));
        }
        let committed = committed.saturating_add(acc);
        // Every node of the set must still be able to receive a unit.
        if !self.every_position_can_receive(group, p + 1) {
            return;
        }
        let rest = if self.independent { self.rest_bound[p + 1] } else { self.rest_lp(group, p + 1) };
        if rest >= INF {
            return;
        }
        let Some(untied) = self.twins_in_order(l) else { return };
        let rounding = self.weight_rounding(group, p + 1);
        let bound =
            floor_milli(self.base_milli.saturating_add(committed).saturating_add(rest).saturating_add(rounding));
        if bound > self.limit.min(self.best_cost - 1) {
            return;
        }
        self.set_tied(untied, false);
        self.line(group, p + 1, committed);
        self.set_tied(untied, true);
    }

    /// Whether every position without units yet may still receive one from search position
    /// `from` on.
    fn every_position_can_receive(&self, group: &Group<'_>, from: usize) -> bool {
        (0..self.set_len).all(|k| {
            self.units_at[k] > 0
                || if self.independent { self.serves_until[k] > from } else { self.can_serve_from(group, k, from) }
        })
    }

    /// Twins: a node's units, line by line, never exceed its earlier twin's. `None` when
    /// line `l` breaks that; else the positions (below 64) whose units fell below their
    /// twin's on this line (no longer tied).
    fn twins_in_order(&self, l: usize) -> Option<u64> {
        let set_len = self.set_len;
        let mut untied = 0u64;
        for k in 0..set_len {
            let t = self.twin[k];
            if t != usize::MAX && self.tied[k] {
                let (twin_units, units) = (self.units[l * set_len + t], self.units[l * set_len + k]);
                if twin_units < units {
                    return None;
                }
                if twin_units > units && k < 64 {
                    untied |= 1 << k;
                }
            }
        }
        Some(untied)
    }

    fn set_tied(&mut self, positions: u64, tied: bool) {
        for k in 0..self.set_len.min(64) {
            if positions & (1 << k) != 0 {
                self.tied[k] = tied;
            }
        }
    }

    /// Billed weight: whatever regular weight a node may still receive from search position
    /// `from` on, its kg are at least those of the weight it has. The cost of the rounding
    /// up no further weight can fill, in minor units.
    fn weight_rounding(&self, group: &Group<'_>, from: usize) -> i64 {
        let mut rounding = 0i64;
        for k in 0..self.set_len {
            let weight_g = self.regular_weight_g[k];
            if weight_g > 0 {
                let up = weight_g.div_ceil(1000) * 1000 - weight_g;
                let room = self.regular_room_g[from * self.set_len + k];
                if up > room {
                    let per_kg = group.candidates[self.set[k]].per_kg;
                    rounding = rounding.saturating_add(per_kg.saturating_mul((up - room) as i64));
                }
            }
        }
        rounding
    }

    /// Units of line `l` position `k` may still take.
    fn remaining(&self, group: &Group<'_>, k: usize, l: usize) -> u64 {
        let c = self.set[k];
        group.avail[c * group.line_count() + l]
            .min(self.stock_left[k * group.slots + group.lines[l].slot])
            .min(self.cap_left[k])
    }

    fn can_serve_from(&self, group: &Group<'_>, k: usize, from: usize) -> bool {
        (from..group.line_count()).any(|p| self.remaining(group, k, self.lines[p]) > 0)
    }

    /// Linear relaxation of the lines from search position `from` on, with the stock and
    /// capacity left.
    fn rest_lp(&mut self, group: &Group<'_>, from: usize) -> i64 {
        let mut total = 0i64;
        for p in from..group.line_count() {
            let v = self.line_lp(group, self.lines[p]);
            if v >= INF {
                return INF;
            }
            total = total.saturating_add(v);
        }
        total
    }

    /// Linear relaxation of line `l` with the stock and capacity left.
    fn line_lp(&mut self, group: &Group<'_>, l: usize) -> i64 {
        let set_len = self.set_len;
        let mut segments = std::mem::take(&mut self.segments);
        segments.clear();
        for j in 0..self.server_count[l] {
            let k = self.servers[l * set_len + j];
            let avail = self.remaining(group, k, l);
            let free_first = self.regular_units[k] == 0 && self.alone_units[k] == 0;
            group.push_segments(self.set[k], l, avail, free_first, &mut segments);
        }
        let line = &group.lines[l];
        let v = settle(&mut segments, line.qty, line.penalty_milli, group.all_or_nothing);
        self.segments = segments;
        v
    }

    /// A complete allocation: kept if every node of the set has units and it is the best
    /// within the limit.
    fn leaf(&mut self, group: &Group<'_>) {
        if self.units_at.contains(&0) {
            return;
        }
        let cost = group.plan_cost(&self.set, &self.units, &mut self.slot_units);
        if cost <= self.limit && cost < self.best_cost {
            self.best_cost = cost;
            self.best_units.clone_from(&self.units);
        }
    }
}
