//! The search problem of one destination group: its ship-type lines and its kept candidates
//! as flat per-candidate × per-line arrays, with the exact and relaxed costs read off them.
//! Built once per group and never changed by the search; relaxed costs never exceed exact ones.

use crate::ids::NodeId;
use crate::sourcing::policy::{Constraints, CostModel};

use super::cost::{INF, billed_kg, clamp_milli, emissions, emissions_per_kg_milli, floor_milli, saturating_times};
use super::decision::NodeState;
use super::dominance::AddableNodes;
use super::search::plain_line_bound;

/// A ship-type line in a group.
#[derive(Debug, Clone)]
pub(super) struct GroupLine {
    pub(super) order_index: usize,
    pub(super) slot: usize, // index of its SKU among the group's distinct SKUs
    pub(super) qty: u64,
    pub(super) weight_g: u64,
    /// Billed kg of one unit (the package of a ship-alone unit).
    pub(super) unit_kg: i64,
    pub(super) ship_alone: bool,
    pub(super) penalty: i64, // per unallocated unit
    pub(super) penalty_milli: i64,
}

/// A kept candidate node of a group that can give units to at least one line.
#[derive(Debug, Clone)]
pub(super) struct GroupCandidate {
    pub(super) node: usize,
    /// per_order handling + capacity pressure + late penalty: paid once if the node is used.
    pub(super) fixed: i64,
    pub(super) base: i64,
    pub(super) per_kg: i64,
    pub(super) km_ceil: i64,
    pub(super) per_unit: i64,
    /// The late penalty within `fixed` (promised orders).
    pub(super) late: i64,
    /// Remaining units the node may take today (respect_capacity), else u64::MAX.
    pub(super) unit_cap: u64,
    /// What every plan using the node pays at least, besides units: fixed + base + split
    /// penalty (a used node sends one package at least; plan bounds take the first
    /// package's split penalty back once), less one minor unit for the rounding down of
    /// the emissions of its regular package.
    pub(super) entry: i64,
    /// Extra cost ×1000 of a ship-alone unit whose package the entry does not pay for:
    /// the base rate and split penalty of its own package.
    pub(super) alone_extra: i64,
    /// Lines the node can give units to (bit `l`, for lines below 64).
    pub(super) mask: u64,
    /// Kinds of lines it can serve: 1 regular, 2 ship-alone.
    pub(super) kinds: u8,
}

pub(super) struct Group<'r> {
    pub(super) lines: Vec<GroupLine>,
    pub(super) slots: usize,
    pub(super) cost: &'r CostModel,
    pub(super) split_penalty: i64,
    pub(super) max_nodes: usize,
    /// `allow_partial = false`: only complete allocations (or the empty plan) count.
    pub(super) all_or_nothing: bool,
    /// Aging bonus ×1000 (0: none).
    pub(super) bonus_milli: i64,
    /// Whether some line is ship-alone.
    pub(super) has_alone: bool,
    pub(super) candidates: Vec<GroupCandidate>,
    /// Per candidate and line (`c × lines + l`): units the line may take there alone
    /// (eligibility, usable stock, unit capacity and the line's quantity); 0: none.
    pub(super) avail: Vec<u64>,
    /// Per candidate and line: linear lower bound of one unit's cost ×1000, before the
    /// aging bonus and the ship-alone package extras (shipping weight un-rounded; a
    /// ship-alone unit's base rate is in `GroupCandidate::entry` or `GroupCandidate::alone_extra`).
    pub(super) unit: Vec<i64>,
    /// Per candidate and SKU slot (`c × slots + s`): usable stock and its aging units.
    pub(super) stock: Vec<u64>,
    pub(super) aging: Vec<u64>,
    /// Per SKU slot: units the group's lines ask for (saturating), and their sum.
    pub(super) slot_qty: Vec<u64>,
    pub(super) qty_total: u64,
}

/// The per-candidate arrays of a group, kept from one decision to the next for their
/// capacity (empty between uses).
#[derive(Debug, Default)]
pub(super) struct CandidateArrays {
    candidates: Vec<GroupCandidate>,
    avail: Vec<u64>,
    unit: Vec<i64>,
    stock: Vec<u64>,
    aging: Vec<u64>,
}

/// The cost terms of a node that becomes a candidate, as eligibility found them.
#[derive(Debug, Clone, Copy)]
pub(super) struct CandidateCosts {
    /// per_order handling + capacity pressure + late penalty.
    pub(super) fixed: i64,
    /// The shipping band's base rate and rate per kg.
    pub(super) base: i64,
    pub(super) per_kg: i64,
    /// km to the destination, rounded up (0 unless emissions are charged).
    pub(super) km_ceil: i64,
    pub(super) per_unit: i64,
    /// The late penalty within `fixed`.
    pub(super) late: i64,
}

/// What is derived from each candidate as it is added, in the same pass over its lines:
/// its part of the aggregate of all candidates, and (groups without aging bonus) its
/// single-node bound (`Search::single_bound`).
pub(super) struct CandidateBounds {
    pub(super) all: AddableNodes,
    pub(super) single_bound: Vec<i64>,
}

impl CandidateBounds {
    /// Nothing added yet; `single_bound` is a buffer (emptied).
    pub(super) fn new(n_lines: usize, single_bound: Vec<i64>) -> CandidateBounds {
        debug_assert!(single_bound.is_empty());
        CandidateBounds { all: AddableNodes::empty(n_lines), single_bound }
    }
}

impl<'r> Group<'r> {
    /// A group of `lines` (over `slots` distinct SKUs) without candidates yet; its arrays
    /// are `arrays`' (emptied).
    pub(super) fn new(
        lines: Vec<GroupLine>,
        slots: usize,
        cost: &'r CostModel,
        constraints: &Constraints,
        arrays: CandidateArrays,
    ) -> Group<'r> {
        let CandidateArrays { mut candidates, mut avail, mut unit, mut stock, mut aging } = arrays;
        candidates.clear();
        avail.clear();
        unit.clear();
        stock.clear();
        aging.clear();
        let mut slot_qty = vec![0u64; slots];
        for line in &lines {
            slot_qty[line.slot] = slot_qty[line.slot].saturating_add(line.qty);
        }
        Group {
            qty_total: slot_qty.iter().fold(0u64, |a, q| a.saturating_add(*q)),
            slot_qty,
            has_alone: lines.iter().any(|l| l.ship_alone),
            lines,
            slots,
            cost,
            split_penalty: cost.split_penalty_minor,
            max_nodes: constraints.max_nodes as usize,
            all_or_nothing: !constraints.allow_partial,
            bonus_milli: cost.aging_bonus_minor.saturating_mul(1000),
            candidates,
            avail,
            unit,
            stock,
            aging,
        }
    }

    /// Hands the arrays back (for the next decision).
    pub(super) fn into_arrays(self) -> CandidateArrays {
        let Group { candidates, avail, unit, stock, aging, .. } = self;
        CandidateArrays { candidates, avail, unit, stock, aging }
    }

    /// Adds node `node` as a candidate: `costs`, `unit_cap` units at most, per line whether
    /// it may serve it (`eligible`), and per SKU slot its usable and aging units (`stock`).
    /// Per line, in one pass: its units and unit cost, and the candidate's part of `bounds`.
    // (Inlined into eligibility's pass over the holders: see `node_level_reasons`.)
    #[inline(always)]
    pub(super) fn add_candidate(
        &mut self,
        node: usize,
        costs: CandidateCosts,
        unit_cap: u64,
        (eligible, (usable, aged)): (&[bool], (&[u64], &[u64])),
        bounds: &mut CandidateBounds,
    ) {
        let CandidateCosts { fixed, base, per_kg, km_ceil, per_unit, late } = costs;
        let (split_penalty, bonus_milli) = (self.split_penalty, self.bonus_milli);
        let emissions_milli = emissions_per_kg_milli(self.cost, km_ceil);
        let rounding = i64::from(emissions_milli > 0);
        let entry = fixed.saturating_add(base).saturating_add(split_penalty) - rounding;
        let alone_extra = base.saturating_add(split_penalty).saturating_mul(1000);
        let all = &mut bounds.all;
        let mut mask = 0u64;
        let mut kinds = 0u8;
        // `plain_single_bound`, line by line.
        let mut bound = entry.saturating_sub(split_penalty).saturating_mul(1000);
        let mut bound_inf = false;
        for (l, line) in self.lines.iter().enumerate() {
            let units = if eligible[l] { usable[line.slot].min(unit_cap).min(line.qty) } else { 0 };
            let unit = clamp_milli(unit_cost_milli(self.cost, line, (per_unit, per_kg, km_ceil), emissions_milli));
            self.avail.push(units);
            self.unit.push(unit);
            let extra = if line.ship_alone { alone_extra } else { 0 };
            if units > 0 {
                if l < 64 {
                    mask |= 1 << l;
                }
                kinds |= if line.ship_alone { 2 } else { 1 };
                // `Group::first_unit`.
                let aging = if bonus_milli == 0 { 0 } else { aged[line.slot].min(units) };
                let first = if aging > 0 { unit.saturating_sub(bonus_milli) } else { unit };
                all.add_line(l, units, entry, (first, first.saturating_add(extra)));
            }
            if bonus_milli == 0 && !bound_inf {
                let v = plain_line_bound(line, self.all_or_nothing, (unit, unit.saturating_add(extra)), units);
                if v >= INF {
                    bound_inf = true;
                } else {
                    bound = bound.saturating_add(v);
                }
            }
        }
        all.min_entry[0] = all.min_entry[0].min(entry);
        self.stock.extend_from_slice(usable);
        self.aging.extend_from_slice(aged);
        let candidate = GroupCandidate {
            node,
            fixed,
            base,
            per_kg,
            km_ceil,
            per_unit,
            late,
            unit_cap,
            entry,
            alone_extra,
            mask,
            kinds,
        };
        self.candidates.push(candidate);
        if bonus_milli == 0 {
            bounds.single_bound.push(if bound_inf { INF } else { floor_milli(bound) });
        }
    }
}

/// Linear lower bound ×1000 of one unit's cost of `line` at a node with unit costs
/// `(per unit, per kg, km rounded up)` (`emissions_milli`: its emissions per kg ×1000),
/// before the aging bonus and the package base of ship-alone units.
#[inline(always)]
fn unit_cost_milli(
    cost: &CostModel,
    line: &GroupLine,
    (per_unit, per_kg, km_ceil): (i64, i64, i64),
    emissions_milli: i128,
) -> i128 {
    if line.ship_alone {
        let kg = line.unit_kg;
        let package = i128::from(per_kg) * i128::from(kg) + i128::from(emissions(cost, kg, km_ceil));
        (i128::from(per_unit) + package) * 1000
    } else {
        // Shipping weight un-rounded (per_kg × grams / 1000 ≤ per_kg × billed kg);
        // emissions likewise (their rounding down is in `entry`).
        let weight = i128::from(line.weight_g);
        let emissions = if emissions_milli > 0 { emissions_milli * weight / 1000 } else { 0 };
        i128::from(per_unit) * 1000 + i128::from(per_kg) * weight + emissions
    }
}

impl Group<'_> {
    pub(super) fn line_count(&self) -> usize {
        self.lines.len()
    }

    /// The cost of the plan that allocates nothing: every unit at its line's penalty.
    pub(super) fn empty_plan_cost(&self) -> i64 {
        self.lines.iter().map(|l| l.penalty * l.qty as i64).sum()
    }

    /// Aging units the relaxation credits to line `l` at candidate `c` among `avail` units.
    pub(super) fn aged(&self, c: usize, l: usize, avail: u64) -> u64 {
        if self.bonus_milli == 0 { 0 } else { self.aging[c * self.slots + self.lines[l].slot].min(avail) }
    }

    /// Relaxed cost ×1000 of `units` units of line `l` at candidate `c` (`aged` aging units):
    /// linear unit costs, the aging bonus on at most `aged` units, and for ship-alone lines
    /// a package base and split penalty on every unit, except the first when `free_first`
    /// (the node's entry may pay for that package: when it has no regular package and no
    /// other ship-alone unit). Never above the exact cost those units add.
    pub(super) fn units_cost(&self, c: usize, l: usize, units: u64, aged: u64, free_first: bool) -> i64 {
        if units == 0 {
            return 0;
        }
        let mut cost = saturating_times(self.unit[c * self.line_count() + l], units)
            .saturating_sub(saturating_times(self.bonus_milli, units.min(aged)));
        if self.lines[l].ship_alone {
            cost = cost.saturating_add(saturating_times(
                self.candidates[c].alone_extra,
                if free_first { units - 1 } else { units },
            ));
        }
        cost
    }

    /// The relaxed unit costs of up to `avail` units of line `l` at `c`, as ascending
    /// segments `(cost per unit ×1000, units)` (their prefix sums are `units_cost`).
    pub(super) fn push_segments(&self, c: usize, l: usize, avail: u64, free_first: bool, out: &mut Vec<(i64, u64)>) {
        if avail == 0 {
            return;
        }
        let unit = self.unit[c * self.line_count() + l];
        let aged = self.aged(c, l, avail);
        let bonus = self.bonus_milli;
        let extra = if self.lines[l].ship_alone { self.candidates[c].alone_extra } else { 0 };
        if extra == 0 || !free_first {
            let unit_paying = unit.saturating_add(extra);
            if aged > 0 {
                out.push((unit_paying.saturating_sub(bonus), aged));
            }
            if avail > aged {
                out.push((unit_paying, avail - aged));
            }
        } else {
            out.push((if aged > 0 { unit.saturating_sub(bonus) } else { unit }, 1));
            let mid = aged.saturating_sub(1);
            if mid > 0 {
                out.push((unit.saturating_add(extra).saturating_sub(bonus), mid));
            }
            let rest = avail - 1 - mid;
            if rest > 0 {
                out.push((unit.saturating_add(extra), rest));
            }
        }
    }

    /// Cheapest relaxed unit of line `l` at `c` (×1000) that pays its own package.
    pub(super) fn full_unit(&self, c: usize, l: usize) -> i64 {
        let extra = if self.lines[l].ship_alone { self.candidates[c].alone_extra } else { 0 };
        self.first_unit(c, l).saturating_add(extra)
    }

    /// Cheapest relaxed unit of line `l` at `c` (×1000).
    pub(super) fn first_unit(&self, c: usize, l: usize) -> i64 {
        let avail = self.avail[c * self.line_count() + l];
        let unit = self.unit[c * self.line_count() + l];
        if self.aged(c, l, avail) > 0 { unit.saturating_sub(self.bonus_milli) } else { unit }
    }

    /// Exact cost of candidate `c` shipping `units_of(l)` units of each line, and its packages.
    fn node_cost(&self, c: usize, units_of: impl Fn(usize) -> u64, slot_units: &mut [u64]) -> (i64, i64) {
        let candidate = &self.candidates[c];
        let mut units = 0u64;
        let mut regular_weight_g = 0u64;
        let mut has_regular = false;
        let mut total = 0i64;
        let mut packages = 0i64;
        if self.bonus_milli > 0 {
            slot_units.fill(0);
        }
        for (l, line) in self.lines.iter().enumerate() {
            let line_units = units_of(l);
            if line_units == 0 {
                continue;
            }
            units += line_units;
            if self.bonus_milli > 0 {
                slot_units[line.slot] += line_units;
            }
            if line.ship_alone {
                let kg = line.unit_kg;
                total += (candidate.base + candidate.per_kg * kg + emissions(self.cost, kg, candidate.km_ceil))
                    * line_units as i64;
                packages += line_units as i64;
            } else {
                has_regular = true;
                regular_weight_g += line.weight_g * line_units;
            }
        }
        if units == 0 {
            return (0, 0);
        }
        total += candidate.fixed + candidate.per_unit * units as i64;
        if has_regular {
            let kg = billed_kg(regular_weight_g);
            total += candidate.base + candidate.per_kg * kg + emissions(self.cost, kg, candidate.km_ceil);
            packages += 1;
        }
        if self.bonus_milli > 0 {
            let aging = &self.aging[c * self.slots..(c + 1) * self.slots];
            let aged: u64 = slot_units.iter().zip(aging).map(|(units, aging)| (*units).min(*aging)).sum();
            total -= aged as i64 * self.cost.aging_bonus_minor;
        }
        (total, packages)
    }

    /// Exact cost of an allocation over `set`; `units[l × set.len() + k]` units of line `l`
    /// at `set[k]`.
    pub(super) fn plan_cost(&self, set: &[usize], units: &[u64], slot_units: &mut [u64]) -> i64 {
        let set_len = set.len();
        let mut total = 0i64;
        let mut packages = 0i64;
        for (k, &c) in set.iter().enumerate() {
            let (cost, node_packages) = self.node_cost(c, |l| units[l * set_len + k], slot_units);
            total += cost;
            packages += node_packages;
        }
        total += self.split_penalty * (packages - 1).max(0);
        for (l, line) in self.lines.iter().enumerate() {
            let placed: u64 = units[l * set_len..(l + 1) * set_len].iter().sum();
            total += line.penalty * (line.qty - placed) as i64;
        }
        total
    }

    /// Σ entry − split penalty of a set, ×1000.
    pub(super) fn entry_milli(&self, set: &[usize]) -> i64 {
        let entries = set.iter().fold(0i64, |a, &c| a.saturating_add(self.candidates[c].entry));
        entries.saturating_sub(self.split_penalty).saturating_mul(1000)
    }
}

/// Node ids of the candidates, compared quickly: by their first 8 bytes (computed when
/// first needed), then in full.
pub(super) struct CandidateIds<'a> {
    nodes: &'a [NodeState<'a>],
    candidates: &'a [GroupCandidate],
    keys: Vec<std::cell::Cell<u64>>,
}

/// No key: id bytes are ASCII, so no id's key has this value.
const NO_KEY: u64 = u64::MAX;

impl<'a> CandidateIds<'a> {
    pub(super) fn new(nodes: &'a [NodeState<'a>], candidates: &'a [GroupCandidate]) -> CandidateIds<'a> {
        let keys = vec![std::cell::Cell::new(NO_KEY); candidates.len()];
        CandidateIds { nodes, candidates, keys }
    }

    fn id(&self, c: usize) -> &'a NodeId {
        &self.nodes[self.candidates[c].node].node.id
    }

    fn key(&self, c: usize) -> u64 {
        let k = self.keys[c].get();
        if k != NO_KEY {
            return k;
        }
        let mut bytes = [0u8; 8];
        let b = self.id(c).as_str().as_bytes();
        let n = b.len().min(8);
        bytes[..n].copy_from_slice(&b[..n]);
        let k = u64::from_be_bytes(bytes);
        self.keys[c].set(k);
        k
    }

    pub(super) fn cmp(&self, a: usize, b: usize) -> std::cmp::Ordering {
        self.key(a).cmp(&self.key(b)).then_with(|| self.id(a).cmp(self.id(b)))
    }
}
