//! What the candidates not yet in a node set can add to it (aggregates over suffixes of the
//! search order and the cover table of entry costs), and the dominance that drops candidates
//! no top-three plan can use. Everything here only lowers bounds or drops provably useless nodes.

use super::cost::INF;
use super::group::{CandidateIds, Group};

/// What a group of candidates (all of them, or a suffix of the search order) can add to
/// a node set, per line: for superset bounds.
#[derive(Debug, Default)]
pub(super) struct AddableNodes {
    lines: usize,
    /// Per position: cheapest entry cost among the candidates from that position on.
    pub(super) min_entry: Vec<i64>,
    /// Per position and line: cheapest entry among those that can serve the line (INF).
    pub(super) cover: Vec<i64>,
    /// Per position and line: cheapest relaxed unit cost ×1000 for the line (INF).
    pub(super) min_unit: Vec<i64>,
    /// Per position and line: the same without the first-unit package discount of
    /// ship-alone lines (each added node gives at most one unit that discount).
    pub(super) min_full: Vec<i64>,
    /// Per position and line: most units one candidate can give the line.
    pub(super) max_avail: Vec<u64>,
}

impl AddableNodes {
    /// Aggregates of every suffix of `order` (position `order.len()` is empty).
    pub(super) fn suffixes(group: &Group<'_>, order: &[usize]) -> AddableNodes {
        let n_lines = group.line_count();
        let n = order.len();
        let mut addable = AddableNodes {
            lines: n_lines,
            min_entry: vec![INF; n + 1],
            cover: vec![INF; (n + 1) * n_lines],
            min_unit: vec![INF; (n + 1) * n_lines],
            min_full: vec![INF; (n + 1) * n_lines],
            max_avail: vec![0; (n + 1) * n_lines],
        };
        for p in (0..n).rev() {
            let c = order[p];
            addable.min_entry[p] = addable.min_entry[p + 1].min(group.candidates[c].entry);
            for l in 0..n_lines {
                let (here, next) = (p * n_lines + l, (p + 1) * n_lines + l);
                let avail = group.avail[c * n_lines + l];
                addable.cover[here] = addable.cover[next];
                addable.min_unit[here] = addable.min_unit[next];
                addable.min_full[here] = addable.min_full[next];
                addable.max_avail[here] = addable.max_avail[next].max(avail);
                if avail > 0 {
                    addable.cover[here] = addable.cover[here].min(group.candidates[c].entry);
                    addable.min_unit[here] = addable.min_unit[here].min(group.first_unit(c, l));
                    addable.min_full[here] = addable.min_full[here].min(group.full_unit(c, l));
                }
            }
        }
        addable
    }

    /// The aggregate of no candidate (one position), to which the candidates of a group
    /// are added as they are built (`Group::add_candidate`).
    pub(super) fn empty(n_lines: usize) -> AddableNodes {
        AddableNodes {
            lines: n_lines,
            min_entry: vec![INF],
            cover: vec![INF; n_lines],
            min_unit: vec![INF; n_lines],
            min_full: vec![INF; n_lines],
            max_avail: vec![0; n_lines],
        }
    }

    /// Adds to position 0 a candidate's offer for line `l`: `units` units (> 0), its entry,
    /// and its cheapest relaxed unit with and without the first-unit package discount
    /// (`Group::first_unit`, `Group::full_unit`).
    #[inline]
    pub(super) fn add_line(&mut self, l: usize, units: u64, entry: i64, (first, full): (i64, i64)) {
        self.max_avail[l] = self.max_avail[l].max(units);
        self.cover[l] = self.cover[l].min(entry);
        self.min_unit[l] = self.min_unit[l].min(first);
        self.min_full[l] = self.min_full[l].min(full);
    }

    pub(super) fn at(&self, p: usize) -> AddableView<'_> {
        let r = p * self.lines..(p + 1) * self.lines;
        AddableView {
            min_entry: self.min_entry[p],
            cover: &self.cover[r.clone()],
            min_unit: &self.min_unit[r.clone()],
            min_full: &self.min_full[r.clone()],
            max_avail: &self.max_avail[r],
        }
    }
}

/// The aggregate of the candidates from one position on (see `AddableNodes`).
#[derive(Clone, Copy)]
pub(super) struct AddableView<'a> {
    pub(super) min_entry: i64,
    pub(super) cover: &'a [i64],
    pub(super) min_unit: &'a [i64],
    pub(super) min_full: &'a [i64],
    pub(super) max_avail: &'a [u64],
}

/// Drops from `pool` the candidates no top-three plan can use: a candidate `b` with
/// `max_nodes + 2` dominators among all candidates. `a` dominates `b` when every
/// allocation `b` can take `a` can take too (eligible for every line `b` serves, at least
/// as much stock per SKU and unit capacity, up to what the lines ask) and costs no more
/// for it (fixed, per-unit, base and per-kg costs no higher, no farther when emissions are
/// charged, no fewer aging units), ties going to the lower node id. Moving `b`'s units to
/// an unused dominator gives a plan at most as costly on a set that ranks before, and a
/// set with `b` leaves at least three dominators unused: three sets rank before it.
///
/// Candidates are grouped by their cost terms; `b`'s dominators are searched in the groups
/// that cost no more, strongest first (a dominator offers at least as many units).
///
/// For a kept candidate with r ≥ 3 dominators found, `companions` gets them: a top-three
/// set with it leaves at most two of them out (each one left out gives a set that ranks
/// before), so it holds at least r − 2 of them.
pub(super) fn drop_dominated(
    group: &Group<'_>,
    ids: &CandidateIds<'_>,
    pool: &mut Vec<usize>,
    companions: &mut Vec<(usize, Vec<usize>)>,
) {
    let need = group.max_nodes + 2;
    if pool.is_empty() || group.candidates.len() <= need {
        return;
    }
    let dominance = Dominance::new(group);
    let mut checks = 0usize;
    let mut dominators: Vec<usize> = Vec::with_capacity(need);
    pool.retain(|&b| {
        if dominance.dominators(b, ids, (need, &mut checks), &mut dominators) {
            return false;
        }
        if dominators.len() >= 3 {
            companions.push((b, dominators.clone()));
        }
        true
    });
}

/// A candidate's cost terms, compared term by term: fixed, per-unit, base and per-kg costs,
/// and km rounded up when emissions are charged (else 0).
type CostKey = [i64; 5];

/// The candidates of a group as dominance compares them: in buckets by cost group (equal
/// cost terms) and by the lines they serve, strongest first.
struct Dominance<'g, 'r> {
    group: &'g Group<'r>,
    /// Per candidate: its cost key and strength (units offered over all lines).
    keys: Vec<CostKey>,
    strengths: Vec<u64>,
    /// Per candidate: its stock per SKU slot (up to what the lines ask) packed a byte each
    /// (and the aging units from byte 4), when every value fits below 128; else empty.
    signatures: Vec<u64>,
    /// Costs compared pair by pair: too many cost groups (all in group 0).
    pairwise: bool,
    /// Per candidate: its cost group.
    cost_group_of: Vec<usize>,
    /// Line masks per cost group in the buckets (`1 << lines bucketed`).
    masks: usize,
    /// Bucket `cost group × masks + line mask` holds `members[start[b]..start[b + 1]]`.
    start: Vec<usize>,
    members: Vec<BucketMember>,
    /// Per cost group: its non-empty line masks, most lines first.
    used_masks: Vec<Vec<usize>>,
    /// Per cost group: the groups that cost no more, and whether strictly less on every plan.
    cheaper: Vec<Vec<(usize, bool)>>,
}

/// Every byte's high bit: the packed comparison's borrow detector.
const HIGH: u64 = 0x8080_8080_8080_8080;

impl<'g, 'r> Dominance<'g, 'r> {
    fn new(group: &'g Group<'r>) -> Dominance<'g, 'r> {
        let (n_lines, n_slots) = (group.line_count(), group.slots);
        let n = group.candidates.len();
        let emissions_on = group.cost.co2_g_per_kg_km > 0 && group.cost.emissions_minor_per_kg_co2 > 0;
        let keys: Vec<CostKey> = group
            .candidates
            .iter()
            .map(|x| [x.fixed, x.per_unit, x.base, x.per_kg, if emissions_on { x.km_ceil } else { 0 }])
            .collect();
        let strengths: Vec<u64> = group
            .avail
            .chunks_exact(n_lines.max(1))
            .take(n)
            .map(|a| a.iter().fold(0u64, |a, v| a.saturating_add(*v)))
            .collect();
        let slot_qty = &group.slot_qty;
        let packed = n_slots <= 8 && slot_qty.iter().all(|&q| q < 128) && (group.bonus_milli == 0 || n_slots <= 4);
        let signatures = if packed { (0..n).map(|c| signature(group, c)).collect() } else { Vec::new() };
        let (cost_groups, cost_group_of, pairwise) = cost_groups(&keys);
        let mask_bits = if n_lines <= DOMINANCE_MASK_LINES { n_lines } else { 0 };
        let mut dominance = Dominance {
            group,
            keys,
            strengths,
            signatures,
            pairwise,
            cost_group_of,
            masks: 1usize << mask_bits,
            start: Vec::new(),
            members: Vec::new(),
            used_masks: Vec::new(),
            cheaper: cheaper_groups(&cost_groups, pairwise),
        };
        dominance.fill_buckets(cost_groups.len());
        dominance
    }

    /// What `covers` reads of candidate `c` (kept with it in the buckets: no candidate is
    /// looked up while scanning them).
    fn member(&self, c: usize) -> BucketMember {
        let candidate = &self.group.candidates[c];
        BucketMember {
            strength: self.strengths[c],
            c,
            cap: candidate.unit_cap.min(self.group.qty_total),
            mask: candidate.mask,
            sig: if self.signatures.is_empty() { 0 } else { self.signatures[c] },
        }
    }

    fn bucket_of(&self, c: usize) -> usize {
        self.cost_group_of[c] * self.masks + (self.group.candidates[c].mask as usize & (self.masks - 1))
    }

    /// Buckets by cost group and by the lines served (a dominator serves every line `b`
    /// does), members strongest first, then by index.
    fn fill_buckets(&mut self, n_cost_groups: usize) {
        let n = self.group.candidates.len();
        let masks = self.masks;
        let mut start = vec![0usize; n_cost_groups * masks + 1];
        for c in 0..n {
            start[self.bucket_of(c) + 1] += 1;
        }
        for i in 1..start.len() {
            start[i] += start[i - 1];
        }
        let mut fill = start.clone();
        let mut members = vec![BucketMember::default(); n];
        for c in 0..n {
            let b = self.bucket_of(c);
            members[fill[b]] = self.member(c);
            fill[b] += 1;
        }
        for bucket in start.windows(2) {
            members[bucket[0]..bucket[1]].sort_by_key(|m| std::cmp::Reverse(m.strength));
        }
        let mut used_masks: Vec<Vec<usize>> = vec![Vec::new(); n_cost_groups];
        for (j, list) in used_masks.iter_mut().enumerate() {
            list.extend((0..masks).filter(|&m| start[j * masks + m + 1] > start[j * masks + m]));
            list.sort_by_key(|m| std::cmp::Reverse(m.count_ones()));
        }
        (self.start, self.members, self.used_masks) = (start, members, used_masks);
    }

    /// Whether `a` offers whatever `b` does (costs aside). Fast path: the packed stock
    /// signatures compared bytewise at once.
    fn covers(&self, a: &BucketMember, b: &BucketMember) -> bool {
        let group = self.group;
        let n_lines = group.line_count();
        if a.cap < b.cap {
            return false;
        }
        if n_lines <= 64 {
            if b.mask & !a.mask != 0 {
                return false;
            }
        } else if (0..n_lines).any(|l| group.avail[b.c * n_lines + l] > 0 && group.avail[a.c * n_lines + l] == 0) {
            return false;
        }
        if !self.signatures.is_empty() {
            // Every byte of a ≥ the same byte of b (all bytes below 128).
            return ((a.sig | HIGH) - b.sig) & HIGH == HIGH;
        }
        let (a, b, n_slots) = (a.c, b.c, group.slots);
        for (s, &q) in group.slot_qty.iter().enumerate() {
            if group.stock[a * n_slots + s].min(q) < group.stock[b * n_slots + s].min(q) {
                return false;
            }
            if group.bonus_milli > 0 && group.aging[a * n_slots + s].min(q) < group.aging[b * n_slots + s].min(q) {
                return false;
            }
        }
        true
    }

    /// Whether `a` costs no more than `b` for any allocation (`None`: not), and strictly less.
    fn cheaper_pair(&self, a: usize, b: usize) -> Option<bool> {
        let (ka, kb) = (self.keys[a], self.keys[b]);
        ka.iter().zip(kb.iter()).all(|(x, y)| x <= y).then(|| ka[0] < kb[0] || ka[1] < kb[1] || ka[2] < kb[2])
    }

    /// Collects into `found` the dominators of `b`, strongest first, within the checks left
    /// (`checks` counts them against `DOMINANCE_CHECKS`). True as soon as `need` are found:
    /// `b` is then dropped (and `found` is of no use).
    fn dominators(
        &self,
        b: usize,
        ids: &CandidateIds<'_>,
        (need, checks): (usize, &mut usize),
        found: &mut Vec<usize>,
    ) -> bool {
        found.clear();
        let b_member = self.member(b);
        let b_mask = self.group.candidates[b].mask as usize & (self.masks - 1);
        for &(j, strict) in &self.cheaper[self.cost_group_of[b]] {
            for &m in &self.used_masks[j] {
                if m & b_mask != b_mask {
                    continue;
                }
                let bucket = j * self.masks + m;
                for a_member in &self.members[self.start[bucket]..self.start[bucket + 1]] {
                    let a = a_member.c;
                    if a_member.strength < b_member.strength {
                        break;
                    }
                    if a == b {
                        continue;
                    }
                    *checks += 1;
                    if *checks > DOMINANCE_CHECKS {
                        return false;
                    }
                    let strict = if self.pairwise {
                        match self.cheaper_pair(a, b) {
                            Some(strict) => strict,
                            None => continue,
                        }
                    } else {
                        strict
                    };
                    if self.covers(a_member, &b_member) && (strict || ids.cmp(a, b).is_lt()) {
                        if found.len() + 1 >= need {
                            return true;
                        }
                        found.push(a);
                    }
                }
            }
        }
        false
    }
}

/// Candidate `c`'s stock per SKU slot (up to what the lines ask) a byte each, and its aging
/// units from byte 4 (with an aging bonus).
fn signature(group: &Group<'_>, c: usize) -> u64 {
    let n_slots = group.slots;
    let mut v = 0u64;
    for (s, &q) in group.slot_qty.iter().enumerate() {
        v |= group.stock[c * n_slots + s].min(q) << (8 * s);
        if group.bonus_milli > 0 {
            v |= group.aging[c * n_slots + s].min(q) << (8 * (s + 4));
        }
    }
    v
}

/// Groups of equal cost keys (few: node types × zones, typically), numbered in order of
/// first appearance and found through a small hash table (entry: group number + 1, 0
/// empty; at most `DOMINANCE_GROUPS` in `GROUP_SLOTS`): the groups' keys, each candidate's
/// group, and whether there were too many (then one group, costs compared pair by pair).
fn cost_groups(keys: &[CostKey]) -> (Vec<CostKey>, Vec<usize>, bool) {
    let mut groups: Vec<CostKey> = Vec::new();
    let mut group_of = vec![0usize; keys.len()];
    let mut slots = [0u8; GROUP_SLOTS];
    // (Element by element: `==` on the arrays calls memcmp.)
    let same = |a: &CostKey, b: &CostKey| a[0] == b[0] && a[1] == b[1] && a[2] == b[2] && a[3] == b[3] && a[4] == b[4];
    for (c, slot) in group_of.iter_mut().enumerate() {
        let key = keys[c];
        let h = key.iter().fold(0u64, |h, &x| (h.rotate_left(5) ^ x as u64).wrapping_mul(0x517c_c1b7_2722_0a95));
        let mut i = (h >> 56) as usize % GROUP_SLOTS;
        let at = loop {
            match slots[i] {
                0 => {
                    if groups.len() == DOMINANCE_GROUPS {
                        break None;
                    }
                    groups.push(key);
                    slots[i] = groups.len() as u8;
                    break Some(groups.len() - 1);
                }
                e if same(&groups[e as usize - 1], &key) => break Some(e as usize - 1),
                _ => i = (i + 1) % GROUP_SLOTS,
            }
        };
        let Some(at) = at else { break };
        *slot = at;
    }
    let pairwise = groups.len() == DOMINANCE_GROUPS;
    if pairwise {
        groups.truncate(1);
        group_of.fill(0);
    }
    (groups, group_of, pairwise)
}

/// Per cost group, the groups that cost no more (every group when costs are compared pair
/// by pair), and whether strictly less on every plan.
fn cheaper_groups(groups: &[CostKey], pairwise: bool) -> Vec<Vec<(usize, bool)>> {
    let mut cheaper: Vec<Vec<(usize, bool)>> = vec![Vec::new(); groups.len()];
    for (h, kh) in groups.iter().enumerate() {
        for (j, kj) in groups.iter().enumerate() {
            if pairwise || kj.iter().zip(kh.iter()).all(|(a, b)| a <= b) {
                let strict = kj[0] < kh[0] || kj[1] < kh[1] || kj[2] < kh[2];
                cheaper[h].push((j, strict));
            }
        }
    }
    cheaper
}

/// A candidate as dominance compares it: its strength, index, unit capacity (up to what
/// the lines ask), lines served and packed stock signature.
#[derive(Debug, Clone, Copy, Default)]
struct BucketMember {
    strength: u64,
    c: usize,
    cap: u64,
    mask: u64,
    sig: u64,
}

/// Lines up to which dominance candidates are bucketed by the lines they serve.
const DOMINANCE_MASK_LINES: usize = 8;
/// Most cost groups compared group by group (beyond, costs are compared pair by pair) …
const DOMINANCE_GROUPS: usize = 64;
/// … and most dominance checks per decision.
const DOMINANCE_CHECKS: usize = 200_000;
/// Slots of the table that finds a cost group (more than twice `DOMINANCE_GROUPS`).
const GROUP_SLOTS: usize = 256;

/// Lower bounds on the entry costs of the nodes added to a set, by the lines they cover:
/// `entries[(r − 1) × 2^L + X]` is the cheapest Σ entry of 1..=r candidates (any, repeats
/// allowed) that can together serve every line of `X`. Built when 3^L × r is small.
pub(super) struct CoverTable {
    lines: usize,
    rows: usize,
    entries: Vec<i64>,
}

/// Largest 3^L × (max_nodes − 1) for which the cover table is built.
const COVER_TABLE_WORK: usize = 30_000;
/// Superset bounds enumerate the subsets of at most this many lines; beyond, a weaker
/// one-dimensional bound is used.
pub(super) const ENUM_LINES: usize = 8;

impl CoverTable {
    pub(super) fn build(group: &Group<'_>) -> Option<CoverTable> {
        let n_lines = group.line_count();
        let rows = group.max_nodes.saturating_sub(1);
        if rows == 0 || n_lines > 16 || 3usize.pow(n_lines as u32).saturating_mul(rows) > COVER_TABLE_WORK {
            return None;
        }
        let size = 1usize << n_lines;
        // One node: cheapest entry over candidates covering a superset of X.
        let mut one = vec![INF; size];
        for c in &group.candidates {
            let m = c.mask as usize & (size - 1);
            one[m] = one[m].min(c.entry);
        }
        for bit in 0..n_lines {
            for x in 0..size {
                if x & (1 << bit) == 0 {
                    one[x] = one[x].min(one[x | (1 << bit)]);
                }
            }
        }
        let mut entries = Vec::with_capacity(rows * size);
        entries.extend_from_slice(&one);
        let mut exact = one.clone(); // exactly r nodes (repeats allowed)
        for _ in 1..rows {
            let mut next = vec![INF; size];
            for (x, nx) in next.iter_mut().enumerate() {
                // Split X between the new node (Y) and the r others (X \ Y).
                let mut y = x;
                loop {
                    let v = one[y].saturating_add(exact[x & !y]);
                    if v < *nx {
                        *nx = v;
                    }
                    if y == 0 {
                        break;
                    }
                    y = (y - 1) & x;
                }
                *nx = (*nx).min(INF);
            }
            let prev = entries.len() - size;
            for x in 0..size {
                let v = entries[prev + x].min(next[x]);
                entries.push(v);
            }
            exact = next;
        }
        Some(CoverTable { lines: n_lines, rows, entries })
    }

    pub(super) fn get(&self, r: usize, x: u64) -> i64 {
        let r = r.min(self.rows);
        self.entries[(r - 1) * (1 << self.lines) + x as usize]
    }
}
