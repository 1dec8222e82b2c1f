//! The search over the node sets of one group: the top three plans, the budget, single-node
//! plans, seeding and the depth first search over sets (`alloc` solves a set, `bounds` bounds
//! sets). Never decides eligibility or builds reports. Invariant: it only skips what an
//! admissible bound rules out, ties go to the lowest node ids: the top three are exact.

mod bounds;
mod seed;

use std::collections::HashMap;

use super::alloc::AllocationSearch;
use super::cost::{INF, floor_milli};
use super::decision::{NodeState, SearchOptions};
use super::dominance::{AddableNodes, CoverTable, drop_dominated};
use super::group::{CandidateIds, Group};

pub(super) use bounds::plain_line_bound;
use bounds::{CandidateBoundTerms, PlainLines, REFINED_NODES, quick_floor};

/// Buffers the search of a group keeps from one decision to the next for their capacity.
#[derive(Debug, Default)]
pub(super) struct SearchScratch {
    by_bound: Vec<(i64, usize)>,
    allocation: AllocationSearch,
}

/// What the search of a group found: the best three plans over distinct node sets
/// (cheapest first; at least the empty plan), node sets solved, whether the budget ran
/// out, and then the lowest bound left open.
pub(super) struct SearchOutcome {
    pub(super) top: Vec<SetPlan>,
    pub(super) sets: u32,
    pub(super) exhausted: bool,
    pub(super) open_bound: i64,
}

/// Searches the node sets of `group`: single-node plans cheapest bound first, a few seed
/// plans, then multi-node sets depth first (see the module docs of `sourcing`).
/// `all` aggregates every candidate; `single_bound` holds their single-node bounds when
/// the group has no aging bonus (they are added here otherwise).
pub(super) fn search_group(
    group: &Group<'_>,
    nodes: &[NodeState<'_>],
    opts: &SearchOptions,
    (all, single_bound): (AddableNodes, &mut Vec<i64>),
    scratch: &mut SearchScratch,
) -> SearchOutcome {
    let n_candidates = group.candidates.len();
    // (The aggregate's least entry is the least over the candidates.)
    let min_entry = if group.candidates.is_empty() { 0 } else { all.min_entry[0] };
    let allocation = std::mem::take(&mut scratch.allocation);
    let mut search = Search::new(group, nodes, *opts, min_entry.min(0), allocation);
    // The empty plan (nothing allocated) is always possible.
    search.offer(SetPlan { cost: group.empty_plan_cost(), set: Vec::new(), units: Vec::new() });

    // Bounds of every candidate: alone, and in any set of two or more nodes.
    let multi = group.max_nodes > 1 && n_candidates > 1;
    let all = if multi { all } else { AddableNodes::default() };
    let mut terms = search.candidate_bound_terms(&all);
    if group.bonus_milli > 0 {
        single_bound.extend((0..n_candidates).map(|c| search.single_bound(c, &terms)));
    }
    debug_assert_eq!(single_bound.len(), n_candidates);
    search.single_node_plans(single_bound, &mut scratch.by_bound);
    let multi = multi && quick_floor(group, &terms, min_entry) <= search.threshold();
    if multi {
        search.cover = CoverTable::build(group);
        search.add_entry_floors(&all, &mut terms);
        // Seeding: good multi-node plans early, from the best single candidates and the
        // best holders of each line.
        if !search.stopped {
            search.seed_from_best(single_bound);
        }
        search.multi_node_sets(&terms, &all);
    }
    scratch.allocation = std::mem::take(&mut search.allocation);
    let top = std::mem::take(&mut search.top);
    SearchOutcome { top, sets: search.sets, exhausted: search.exhausted, open_bound: search.open_bound }
}

/// A plan over one node set: its exact cost and every line's units at each node.
#[derive(Debug, Clone)]
pub(super) struct SetPlan {
    pub(super) cost: i64,
    /// Candidate indices, in node id order.
    pub(super) set: Vec<usize>,
    /// `units[l × set.len() + k]`.
    pub(super) units: Vec<u64>,
}

/// Node sets bounded (without solving their allocation) per unit of `max_sets`.
const BOUNDS_PER_SET: u64 = 16;

/// The state of one group's search: the top three, the budget spent, and the scratch of
/// bounds and allocations.
struct Search<'g, 'r> {
    group: &'g Group<'r>,
    /// Node id of each candidate.
    ids: CandidateIds<'g>,
    opts: SearchOptions,
    /// Budget spent: node sets solved, allocation steps, sets bounded.
    sets: u32,
    leaves: u64,
    bounds: u64,
    exhausted: bool,
    /// Budget spent: nothing more is searched.
    stopped: bool,
    /// The best three plans with distinct sets, cheapest first (ties: lowest node ids).
    top: Vec<SetPlan>,
    /// Lowest bound among subtrees skipped for lack of budget.
    open_bound: i64,
    cover: Option<CoverTable>,
    /// min(0, cheapest entry): what each further node could at most take off a bound.
    neg_entry: i64,
    allocation: AllocationSearch,
    buf: Vec<(i64, u64)>,
    /// Lines a superset bound may hand to the added nodes: (δ ×1000, cover entry, line).
    delta: Vec<(i64, i64, usize)>,
    /// Scratch for `bound`: each node's package choices, and memoized line values.
    choices: [Vec<usize>; REFINED_NODES],
    memo: Vec<(i64, i64)>,
    /// Layout of `memo`: per line `memo_masks` node masks × 3 added-node states (refined
    /// values), then from `memo_plain` 3 per line (plain values).
    memo_masks: usize,
    memo_plain: usize,
    /// Scratch for superset bounds: (lines, largest cover entry, saving) per subset.
    subsets: Vec<(u64, i64, i64)>,
    /// The plain relaxation of each line over the last set bounded (see `plain_line`).
    plain: PlainLines,
    /// Scratch for `allocate`: positions in profile order, profiles, twins.
    canon: Vec<(u32, usize)>,
    key: Vec<u32>,
    twin: Vec<usize>,
    /// Profile id per candidate (`u32::MAX`: not yet known), and the ids by profile.
    profiles: Vec<u32>,
    profile_ids: FxMap<Vec<i64>, u32>,
    /// Solved sets by their sorted profile ids: the limit used, and the best allocation
    /// (cost, units by position in profile order) if one was within it.
    solved: FxMap<Vec<u32>, SolvedSet>,
    /// Per candidate, its entry in `companion_sets` (`u32::MAX`: none): dominators of which
    /// a top-three set with the candidate holds all but two (see `drop_dominated`).
    companions: Vec<u32>,
    companion_sets: Vec<(usize, Vec<usize>)>,
}

/// The search's maps are keyed by short vectors of small integers built by the search
/// itself: FxHash is enough and much cheaper than SipHash.
type FxMap<K, V> = HashMap<K, V, crate::hash::FxBuildHasher>;

/// A solved set's limit and best allocation within it.
type SolvedSet = (i64, Option<(i64, Vec<u64>)>);

impl<'g, 'r> Search<'g, 'r> {
    fn new(
        group: &'g Group<'r>,
        nodes: &'g [NodeState<'g>],
        opts: SearchOptions,
        neg_entry: i64,
        allocation: AllocationSearch,
    ) -> Search<'g, 'r> {
        Search {
            group,
            ids: CandidateIds::new(nodes, &group.candidates),
            opts,
            sets: 0,
            leaves: 0,
            bounds: 0,
            exhausted: false,
            stopped: false,
            top: Vec::new(),
            open_bound: INF,
            cover: None,
            neg_entry,
            allocation,
            buf: Vec::new(),
            delta: Vec::new(),
            choices: Default::default(),
            memo: Vec::new(),
            memo_masks: 0,
            memo_plain: 0,
            subsets: Vec::new(),
            plain: PlainLines::default(),
            canon: Vec::new(),
            key: Vec::new(),
            twin: Vec::new(),
            profiles: Vec::new(),
            profile_ids: FxMap::default(),
            solved: FxMap::default(),
            companions: Vec::new(),
            companion_sets: Vec::new(),
        }
    }
}

impl Search<'_, '_> {
    fn cmp_sets(&self, a: &[usize], b: &[usize]) -> std::cmp::Ordering {
        for (&x, &y) in a.iter().zip(b) {
            let o = self.ids.cmp(x, y);
            if o.is_ne() {
                return o;
            }
        }
        a.len().cmp(&b.len())
    }

    /// Costs above this cannot enter the top three (bounds equal to it might).
    fn threshold(&self) -> i64 {
        if self.top.len() < 3 { INF - 1 } else { self.top[2].cost }
    }

    /// Highest cost with which a plan over `set` (node id order) enters the top three.
    fn limit_for(&self, set: &[usize]) -> i64 {
        match self.top.get(2) {
            None => INF - 1,
            Some(t) if self.cmp_sets(set, &t.set).is_lt() => t.cost,
            Some(t) => t.cost - 1,
        }
    }

    fn offer(&mut self, found: SetPlan) {
        if let Some(t) = self.top.iter_mut().find(|t| t.set == found.set) {
            if found.cost < t.cost {
                *t = found;
            }
        } else {
            self.top.push(found);
        }
        let mut top = std::mem::take(&mut self.top);
        top.sort_by(|a, b| a.cost.cmp(&b.cost).then_with(|| self.cmp_sets(&a.set, &b.set)));
        top.truncate(3);
        self.top = top;
    }

    fn budget_left(&self) -> bool {
        self.sets < self.opts.max_sets && self.leaves < u64::from(self.opts.max_leaves)
    }

    /// Solves the allocation of `set` (any order) whose bound is `bound`, if the budget
    /// allows; else records the bound as open and stops the search.
    fn allocate(&mut self, set: &[usize], bound: i64) -> Option<i64> {
        let mut sorted = set.to_vec();
        sorted.sort_by(|&a, &b| self.ids.cmp(a, b));
        let limit = self.limit_for(&sorted);
        if bound > limit {
            return None;
        }
        // Sets of the same node profiles have the same allocations and costs.
        let mut canon = std::mem::take(&mut self.canon);
        canon.clear();
        for (k, &c) in sorted.iter().enumerate() {
            canon.push((self.profile(c), k));
        }
        canon.sort_unstable();
        let mut key = std::mem::take(&mut self.key);
        key.clear();
        key.extend(canon.iter().map(|&(p, _)| p));
        let outcome = self.allocate_canon(sorted, bound, limit, &canon, &key);
        self.canon = canon;
        self.key = key;
        outcome
    }

    /// `allocate` for `sorted` (node id order) within `limit`, its positions in profile
    /// order `canon` and its profiles `key`.
    fn allocate_canon(
        &mut self,
        sorted: Vec<usize>,
        bound: i64,
        limit: i64,
        canon: &[(u32, usize)],
        key: &[u32],
    ) -> Option<i64> {
        let n_lines = self.group.line_count();
        let set_len = sorted.len();
        if let Some((seen_limit, result)) = self.solved.get(key) {
            match result {
                Some((cost, units)) => {
                    let cost = *cost;
                    if cost > limit {
                        return None;
                    }
                    // Cached units are by canonical position; map them to this set's.
                    let mut mine = vec![0u64; n_lines * set_len];
                    for (j, &(_, k)) in canon.iter().enumerate() {
                        for l in 0..n_lines {
                            mine[l * set_len + k] = units[l * set_len + j];
                        }
                    }
                    self.offer(SetPlan { cost, set: sorted, units: mine });
                    return Some(cost);
                }
                None if limit <= *seen_limit => return None,
                None => {}
            }
        }
        if !self.budget_left() {
            self.stop(bound);
            return None;
        }
        self.sets += 1;
        let max_steps = u64::from(self.opts.max_leaves) - self.leaves;
        let mut twin = std::mem::take(&mut self.twin);
        twin.clear();
        for k in 0..set_len {
            let profile = self.profile(sorted[k]);
            twin.push((0..k).rev().find(|&j| self.profile(sorted[j]) == profile).unwrap_or(usize::MAX));
        }
        self.allocation.solve(self.group, &sorted, &twin, limit, max_steps);
        self.twin = twin;
        self.leaves += self.allocation.steps.min(max_steps);
        if self.allocation.cut {
            self.stop(bound);
        }
        let found =
            (self.allocation.best_cost < INF).then(|| (self.allocation.best_cost, self.allocation.best_units.clone()));
        if !self.allocation.cut {
            let cached = found.as_ref().map(|(cost, best_units)| {
                let mut units = vec![0u64; n_lines * set_len];
                for (j, &(_, k)) in canon.iter().enumerate() {
                    for l in 0..n_lines {
                        units[l * set_len + j] = best_units[l * set_len + k];
                    }
                }
                (*cost, units)
            });
            self.solved.insert(key.to_vec(), (limit, cached));
        }
        let (cost, units) = found?;
        self.offer(SetPlan { cost, set: sorted, units });
        Some(cost)
    }

    /// The profile of a candidate: equal profiles mean equal costs and feasibility for
    /// every allocation (cost terms, eligibility, stock and capacity up to what the lines
    /// ask, aging).
    fn profile(&mut self, c: usize) -> u32 {
        if self.profiles.is_empty() {
            self.profiles = vec![u32::MAX; self.group.candidates.len()];
        }
        if self.profiles[c] != u32::MAX {
            return self.profiles[c];
        }
        let group = self.group;
        let (n_lines, n_slots) = (group.line_count(), group.slots);
        let candidate = &group.candidates[c];
        let (slot_qty, total) = (&group.slot_qty, group.qty_total);
        let emissions_on = group.cost.co2_g_per_kg_km > 0 && group.cost.emissions_minor_per_kg_co2 > 0;
        let km = if emissions_on { candidate.km_ceil } else { 0 };
        let mut key: Vec<i64> = vec![
            candidate.fixed,
            candidate.per_unit,
            candidate.base,
            candidate.per_kg,
            km,
            candidate.unit_cap.min(total) as i64,
        ];
        key.extend(group.avail[c * n_lines..(c + 1) * n_lines].iter().map(|&a| a as i64));
        key.extend((0..n_slots).map(|s| group.stock[c * n_slots + s].min(slot_qty[s]) as i64));
        if group.bonus_milli > 0 {
            key.extend((0..n_slots).map(|s| group.aging[c * n_slots + s].min(slot_qty[s]) as i64));
        }
        let next = self.profile_ids.len() as u32;
        let id = *self.profile_ids.entry(key).or_insert(next);
        self.profiles[c] = id;
        id
    }

    fn stop(&mut self, bound: i64) {
        self.exhausted = true;
        self.stopped = true;
        self.open_bound = self.open_bound.min(bound);
    }

    /// Counts one bound evaluation against the budget.
    fn count_bound(&mut self) -> bool {
        self.bounds += 1;
        self.bounds <= u64::from(self.opts.max_sets) * BOUNDS_PER_SET
    }

    /// Phase 1: single-node plans, cheapest bound first (`by_bound`: a buffer). The bound
    /// is admissible, so once one exceeds the threshold all later ones do.
    fn single_node_plans(&mut self, single_bound: &[i64], by_bound: &mut Vec<(i64, usize)>) {
        // (The least few first; then, the threshold known, the rest within it sorted: the
        // threshold only falls, so a bound beyond it now is never reached.)
        least_first(single_bound, by_bound);
        let mut next = 0;
        while next < by_bound.len() {
            if next == LEAST_FIRST {
                let threshold = self.threshold();
                let mut kept = next;
                for i in next..by_bound.len() {
                    if by_bound[i].0 <= threshold {
                        by_bound.swap(kept, i);
                        kept += 1;
                    }
                }
                by_bound.truncate(kept);
                by_bound[next..].sort_unstable();
                if next == kept {
                    break;
                }
            }
            let (bound, c) = by_bound[next];
            next += 1;
            if bound > self.threshold() {
                break;
            }
            let bound = if self.group.has_alone { bound.max(self.set_bound(&[c])) } else { bound };
            let _ = self.allocate(&[c], bound);
            if self.stopped {
                break;
            }
        }
    }

    /// Phase 2: multi-node sets. Candidates whose quick bound (their entry plus the
    /// cheapest conceivable rest, `CandidateBoundTerms::cheap`) cannot enter the top three
    /// are out, then those with enough dominators; the others are bounded in any set of two
    /// or more nodes, and the ones within the threshold form the pool, searched in order of
    /// that bound.
    fn multi_node_sets(&mut self, terms: &CandidateBoundTerms, all: &AddableNodes) {
        let group = self.group;
        let n_candidates = group.candidates.len();
        if self.stopped {
            let quick = |c: usize| floor_milli(group.entry_milli(&[c]).saturating_add(terms.cheap));
            let lowest = (0..n_candidates).map(quick).min().unwrap_or(INF);
            self.open_bound = self.open_bound.min(lowest);
            return;
        }
        let threshold = self.threshold();
        // quick(c) ≤ threshold, without a division per candidate.
        let within = threshold.saturating_mul(1000).saturating_add(999).saturating_sub(terms.cheap);
        let split_milli = group.split_penalty.saturating_mul(1000);
        let mut pool: Vec<usize> = (0..n_candidates)
            .filter(|&c| group.candidates[c].entry.saturating_mul(1000).saturating_sub(split_milli) <= within)
            .collect();
        let mut companions = Vec::new();
        drop_dominated(group, &self.ids, &mut pool, &mut companions);
        self.companions = vec![u32::MAX; n_candidates];
        for (i, (b, _)) in companions.iter().enumerate() {
            self.companions[*b] = i as u32;
        }
        self.companion_sets = companions;
        let mut multi_bound = vec![INF; n_candidates];
        pool.retain(|&c| {
            multi_bound[c] = self.multi_bound(c, terms, all);
            multi_bound[c] <= threshold
        });
        pool.sort_unstable_by_key(|&c| (multi_bound[c], c));
        let addable = AddableNodes::suffixes(group, &pool);
        let mut prefix = Vec::with_capacity(group.max_nodes);
        for pos in 0..pool.len() {
            self.sets_from(&pool, &addable, &multi_bound, &mut prefix, pos..pos + 1);
            if self.stopped {
                // Every set not searched has its first pool node at `pos` or later.
                let lowest = pool[pos..].iter().map(|&c| multi_bound[c]).min().unwrap_or(INF);
                self.open_bound = self.open_bound.min(lowest);
                break;
            }
        }
    }

    /// Whether `set` holds the companions its candidates need (see `drop_dominated`), and
    /// whether it still can with `room` more nodes.
    fn companions_held(&self, set: &[usize], room: usize) -> (bool, bool) {
        if self.companion_sets.is_empty() {
            return (true, true);
        }
        let mut complete = true;
        for &b in set {
            let i = self.companions[b];
            if i == u32::MAX {
                continue;
            }
            let doms = &self.companion_sets[i as usize].1;
            let need = doms.len() - 2;
            let have = set.iter().filter(|x| doms.contains(x)).count();
            if have < need {
                complete = false;
                if have + room < need {
                    return (false, false);
                }
            }
        }
        (complete, true)
    }

    /// Depth-first over multi-node sets of the pool, in pool order (ascending multi-node
    /// bound, so a candidate beyond the threshold ends the loop).
    fn sets_from(
        &mut self,
        pool: &[usize],
        addable: &AddableNodes,
        multi_bound: &[i64],
        prefix: &mut Vec<usize>,
        positions: std::ops::Range<usize>,
    ) {
        let max_nodes = self.group.max_nodes;
        let mut end = positions.end;
        if !prefix.is_empty() {
            // Suffix cut: every set extending the prefix with nodes from position p on is
            // bounded by its superset bound over that suffix, which grows with p; the
            // first p beyond the threshold ends the loop.
            let room = max_nodes.saturating_sub(prefix.len());
            let (mut lo, mut hi) = (positions.start, end);
            if lo < hi {
                // Most prefixes end here: nothing after them is worth it.
                if !self.count_bound() {
                    self.stop(multi_bound[prefix[0]]);
                    return;
                }
                if self.ext_bound(prefix, addable.at(lo), room) > self.threshold() {
                    hi = lo;
                } else {
                    lo += 1;
                }
            }
            while lo < hi {
                let mid = lo + (hi - lo) / 2;
                if !self.count_bound() {
                    self.stop(multi_bound[prefix[0]]);
                    return;
                }
                if self.ext_bound(prefix, addable.at(mid), room) > self.threshold() {
                    hi = mid;
                } else {
                    lo = mid + 1;
                }
            }
            end = lo;
        }
        for pos in positions.start..end {
            if self.stopped {
                return;
            }
            let c = pool[pos];
            if multi_bound[c] > self.threshold() {
                break;
            }
            prefix.push(c);
            let room = max_nodes.saturating_sub(prefix.len());
            let (complete, possible) = self.companions_held(prefix, room);
            if !possible {
                prefix.pop();
                continue;
            }
            if prefix.len() >= 2 && complete {
                if !self.count_bound() {
                    self.stop(multi_bound[prefix[0]]);
                    prefix.pop();
                    return;
                }
                let bound = self.set_bound(prefix);
                if bound <= self.threshold() {
                    let set = prefix.clone();
                    let _ = self.allocate(&set, bound);
                }
            }
            if room > 0 && pos + 1 < pool.len() && !self.stopped {
                self.sets_from(pool, addable, multi_bound, prefix, pos + 1..pool.len());
            }
            prefix.pop();
        }
    }
}

/// Single-node plans: this many least bounds are taken first, before the others are
/// filtered by the threshold and sorted.
const LEAST_FIRST: usize = 3;

/// Lists in `by_bound` the finite single bounds `(bound, candidate)`, the `LEAST_FIRST`
/// least first (ascending), found as they are listed, the others after them in any order.
fn least_first(single_bound: &[i64], by_bound: &mut Vec<(i64, usize)>) {
    by_bound.clear();
    let mut least = [(i64::MAX, usize::MAX); LEAST_FIRST];
    let mut at = [0usize; LEAST_FIRST];
    for (c, &bound) in single_bound.iter().enumerate() {
        if bound >= INF {
            continue;
        }
        let (i, e) = (by_bound.len(), (bound, c));
        by_bound.push(e);
        if e < least[LEAST_FIRST - 1] {
            let mut j = LEAST_FIRST - 1;
            while j > 0 && e < least[j - 1] {
                least[j] = least[j - 1];
                at[j] = at[j - 1];
                j -= 1;
            }
            least[j] = e;
            at[j] = i;
        }
    }
    for j in 0..by_bound.len().min(LEAST_FIRST) {
        let p = at[j];
        by_bound.swap(j, p);
        // (What was at j is now at p.)
        for later in &mut at[j + 1..] {
            if *later == j {
                *later = p;
            }
        }
    }
}
