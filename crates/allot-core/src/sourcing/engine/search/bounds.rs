//! Lower bounds on the plans over a node set, exactly or plus nodes still to come: single
//! candidates, multi-node plans through one candidate, sets and supersets. Reads the group and
//! the aggregates, changes nothing but scratch. Every bound is admissible (never above a plan).

use super::Search;
use crate::sourcing::engine::cost::{INF, floor_milli, saturating_times, settle};
use crate::sourcing::engine::dominance::{AddableNodes, AddableView, ENUM_LINES};
use crate::sourcing::engine::group::{Group, GroupLine};

/// The least quick bound of any candidate (the one with the cheapest entry).
pub(super) fn quick_floor(group: &Group<'_>, terms: &CandidateBoundTerms, min_entry: i64) -> i64 {
    floor_milli(min_entry.saturating_sub(group.split_penalty).saturating_mul(1000).saturating_add(terms.cheap))
}

/// `Search::single_bound` of a candidate of a group without aging bonus, from its unit
/// costs, units available, entry and ship-alone package extra by line: the first unit,
/// then the others (a ship-alone line's pay their packages), each taken if cheaper than
/// the penalty (or if all must be placed). A line with no units there costs its penalty
/// on every unit (INF when all must be placed).
fn plain_single_bound(
    lines: &[GroupLine],
    (fill, split_penalty): (bool, i64),
    units: &[i64],
    avail: &[u64],
    entry: i64,
    alone_extra: i64,
) -> i64 {
    // `group.entry_milli(&[c])`.
    let mut total = entry.saturating_sub(split_penalty).saturating_mul(1000);
    for ((line, &first), &a) in lines.iter().zip(units).zip(avail) {
        let rest = if line.ship_alone { first.saturating_add(alone_extra) } else { first };
        let v = plain_line_bound(line, fill, (first, rest), a);
        if v >= INF {
            return INF;
        }
        total = total.saturating_add(v);
    }
    floor_milli(total)
}

/// One line's term of `plain_single_bound`: `a` units available, the first at `first`
/// (×1000), the others at `rest`.
pub(in crate::sourcing::engine) fn plain_line_bound(
    line: &GroupLine,
    fill: bool,
    (first, rest): (i64, i64),
    a: u64,
) -> i64 {
    let (q, pen) = (line.qty, line.penalty_milli);
    let take_first = u64::from(fill || first < pen).min(a).min(q);
    let take_rest = if fill || rest < pen { (a.min(q)).saturating_sub(take_first) } else { 0 };
    let left = q - take_first - take_rest;
    if fill && left > 0 {
        return INF;
    }
    // Small terms (the usual case): nothing can saturate, the sum stays below INF.
    const SMALL: u64 = 1 << 36;
    if (first as u64) < SMALL && (rest as u64) < SMALL && (pen as u64) < SMALL && q < 1 << 20 {
        return first * take_first as i64 + rest * take_rest as i64 + pen * left as i64;
    }
    saturating_times(first, take_first)
        .saturating_add(saturating_times(rest, take_rest))
        .saturating_add(saturating_times(pen, left))
}

/// What the entries of the nodes a superset bound adds pay for (see `Search::bound`).
#[derive(Clone, Copy)]
enum AddedEntries {
    /// Their regular package.
    Regular,
    /// Ship-alone units, first units of any lines (a relaxation for several nodes).
    FreeAll,
    /// One added node: the first unit of ship-alone line `j`.
    FreeOne(usize),
}

impl AddedEntries {
    /// The added-node state of line `l` in `Search::line_values`.
    fn state(self, l: usize) -> usize {
        match self {
            AddedEntries::Regular => 0,
            AddedEntries::FreeAll => 1,
            AddedEntries::FreeOne(j) if j == l => 1,
            AddedEntries::FreeOne(_) => 2,
        }
    }
}

/// The added nodes' option for a line: `units` at their cheapest unit `first`, except that
/// beyond one per added node (`room`) they pay at least `full` (ship-alone packages).
fn push_added(out: &mut Vec<(i64, u64)>, first: i64, full: i64, units: u64, room: u64) {
    let cheap = units.min(room);
    out.push((first, cheap));
    if units > cheap {
        out.push((full, units - cheap));
    }
}

/// Constants of one group for the bounds of single candidates.
pub(super) struct CandidateBoundTerms {
    /// Per line: the relaxation for a candidate that cannot serve it, alone and with the
    /// option of the added nodes.
    none_alone: Vec<i64>,
    none_with: Vec<i64>,
    /// Per line: the added nodes' option (cheapest unit ×1000 of any candidate, units).
    added_option: Vec<(i64, u64)>,
    /// Per line subset (groups of at most `ENUM_LINES` lines): lower bound ×1000 on the
    /// entries of 1..=max_nodes − 1 added nodes serving those lines.
    entry_floors: Option<Vec<i64>>,
    /// Σ of the cheapest conceivable cost of every line, plus one added node's entry
    /// (×1000): a candidate's entry plus this bounds every multi-node plan with it.
    pub(super) cheap: i64,
}

/// Largest set, and most package-choice combinations, whose bound accounts packages
/// exactly (see `Search::bound`).
pub(super) const REFINED_NODES: usize = 4;
const REFINED_CHOICES: usize = 256;

/// Per line, the plain relaxation over one node set alone: known yet, its value and its
/// segments after `settle`.
#[derive(Default)]
pub(super) struct PlainLines {
    set: Vec<usize>,
    known: Vec<bool>,
    alone: Vec<i64>,
    segments: Vec<Vec<(i64, u64)>>,
}

impl Search<'_, '_> {
    /// The relaxation of line `l` (which `c` can serve) over candidate `c` alone, and with
    /// one more option `extra` (INF unit: none); groups without ship-alone lines.
    fn line_pair(&mut self, c: usize, l: usize, extra: (i64, u64)) -> (i64, i64) {
        let group = self.group;
        let line = &group.lines[l];
        let a = group.avail[c * group.line_count() + l];
        let (q, pen, fill) = (line.qty, line.penalty_milli, group.all_or_nothing);
        if group.aged(c, l, a) == 0 {
            let u = group.unit[c * group.line_count() + l];
            let alone = settle(&mut [(u, a)], q, pen, fill);
            let with = if extra.0 < INF { settle(&mut [(u, a), extra], q, pen, fill) } else { alone };
            (alone, with)
        } else {
            self.buf.clear();
            group.push_segments(c, l, a, true, &mut self.buf);
            let alone = settle(&mut self.buf, q, pen, fill);
            let with = if extra.0 < INF {
                self.buf.push(extra);
                settle(&mut self.buf, q, pen, fill)
            } else {
                alone
            };
            (alone, with)
        }
    }

    /// `set_bound(&[c])`, faster; with ship-alone lines the plain relaxation (package
    /// choices are accounted for when the candidate is solved).
    pub(super) fn single_bound(&mut self, c: usize, terms: &CandidateBoundTerms) -> i64 {
        let group = self.group;
        let n_lines = group.line_count();
        if group.bonus_milli == 0 {
            let row = c * n_lines..(c + 1) * n_lines;
            let candidate = &group.candidates[c];
            return plain_single_bound(
                &group.lines,
                (group.all_or_nothing, group.split_penalty),
                &group.unit[row.clone()],
                &group.avail[row],
                candidate.entry,
                candidate.alone_extra,
            );
        }
        if group.has_alone {
            return self.bound(&[c], None, -INF);
        }
        let mut total = group.entry_milli(&[c]);
        for l in 0..n_lines {
            let a = group.avail[c * n_lines + l];
            let v = if a == 0 { terms.none_alone[l] } else { self.line_pair(c, l, (INF, 0)).0 };
            if v >= INF {
                return INF;
            }
            total = total.saturating_add(v);
        }
        floor_milli(total)
    }

    /// Lower bound on plans of two or more nodes that use `c`: `ext_bound(&[c], all, k − 1)`,
    /// faster, with the entries of the added nodes tabled per line subset.
    pub(super) fn multi_bound(&mut self, c: usize, terms: &CandidateBoundTerms, all: &AddableNodes) -> i64 {
        let group = self.group;
        let n_lines = group.line_count();
        let (Some(entry_floors), false) = (&terms.entry_floors, group.has_alone) else {
            return self.ext_bound(&[c], all.at(0), group.max_nodes - 1);
        };
        let mut sum = group.entry_milli(&[c]);
        let mut mandatory = 0usize;
        let mut d = 0usize;
        let mut deltas = [0i64; ENUM_LINES];
        let mut bits = [0usize; ENUM_LINES];
        for l in 0..n_lines {
            let (alone, with) = if group.avail[c * n_lines + l] == 0 {
                (terms.none_alone[l], terms.none_with[l])
            } else {
                self.line_pair(c, l, terms.added_option[l])
            };
            if with >= INF {
                return INF;
            }
            if alone >= INF {
                sum = sum.saturating_add(with);
                mandatory |= 1 << l;
            } else {
                sum = sum.saturating_add(alone);
                if with < alone {
                    deltas[d] = with - alone;
                    bits[d] = 1 << l;
                    d += 1;
                }
            }
        }
        let mut sums = [0i64; 1 << ENUM_LINES];
        let mut masks = [0usize; 1 << ENUM_LINES];
        masks[0] = mandatory;
        let mut best = entry_floors[mandatory];
        for t in 1..(1usize << d) {
            let low = t.trailing_zeros() as usize;
            let prev = t & (t - 1);
            sums[t] = sums[prev].saturating_add(deltas[low]);
            masks[t] = masks[prev] | bits[low];
            best = best.min(entry_floors[masks[t]].saturating_add(sums[t]));
        }
        if best >= INF {
            return INF;
        }
        floor_milli(sum.saturating_add(best))
    }

    pub(super) fn candidate_bound_terms(&self, all: &AddableNodes) -> CandidateBoundTerms {
        let group = self.group;
        let n_lines = group.line_count();
        let room = group.max_nodes.saturating_sub(1).max(1);
        let others = saturating_times(self.neg_entry, room as u64 - 1);
        let floor_entry = all.min_entry.first().copied().unwrap_or(INF).saturating_add(others);
        let mut terms = CandidateBoundTerms {
            none_alone: Vec::with_capacity(n_lines),
            none_with: Vec::with_capacity(n_lines),
            added_option: Vec::with_capacity(n_lines),
            entry_floors: None,
            cheap: 0,
        };
        let mut cheap = floor_entry.saturating_mul(1000);
        for (l, line) in group.lines.iter().enumerate() {
            let (q, pen, fill) = (line.qty, line.penalty_milli, group.all_or_nothing);
            let alone = settle(&mut [], q, pen, fill);
            let unit = all.min_unit.get(l).copied().unwrap_or(INF);
            let units = q.min(all.max_avail.get(l).copied().unwrap_or(0).saturating_mul(room as u64));
            let with = if unit < INF { settle(&mut [(unit, units)], q, pen, fill) } else { alone };
            let full = all.min_full.get(l).copied().unwrap_or(INF);
            let any = if unit < INF {
                // `push_added(…, unit, full, q, max_nodes)` without a vector.
                let cheap = q.min(group.max_nodes as u64);
                let mut opts = [(unit, cheap), (full, q - cheap)];
                settle(&mut opts[..if q > cheap { 2 } else { 1 }], q, pen, fill)
            } else {
                alone
            };
            terms.none_alone.push(alone);
            terms.none_with.push(with);
            terms.added_option.push((unit, units));
            cheap = if any >= INF || cheap >= INF { INF } else { cheap.saturating_add(any) };
        }
        terms.cheap = cheap;
        terms
    }

    /// Adds `CandidateBoundTerms::entry_floors` (after the cover table is built: it reads it).
    pub(super) fn add_entry_floors(&self, all: &AddableNodes, terms: &mut CandidateBoundTerms) {
        let n_lines = self.group.line_count();
        let room = self.group.max_nodes.saturating_sub(1).max(1);
        let others = saturating_times(self.neg_entry, room as u64 - 1);
        let floor_entry = all.min_entry.first().copied().unwrap_or(INF).saturating_add(others);
        if n_lines <= ENUM_LINES && floor_entry < INF {
            let size = 1usize << n_lines;
            let mut cover_max = vec![i64::MIN; size];
            let mut entry_floors = vec![INF; size];
            for x in 0..size {
                if x > 0 {
                    let low = x.trailing_zeros() as usize;
                    cover_max[x] = cover_max[x & (x - 1)].max(all.cover[low]);
                }
                let mut entry = if x == 0 { floor_entry } else { floor_entry.max(cover_max[x].saturating_add(others)) };
                if let Some(table) = &self.cover {
                    entry = entry.max(table.get(room, x as u64));
                }
                entry_floors[x] = if entry >= INF { INF } else { entry.saturating_mul(1000) };
            }
            terms.entry_floors = Some(entry_floors);
        }
    }

    /// Lower bound on plans over exactly `set` (see `bound`).
    pub(super) fn set_bound(&mut self, set: &[usize]) -> i64 {
        let cutoff = self.threshold();
        self.bound(set, None, cutoff)
    }

    /// Lower bound on plans over `set` plus 1..=`room` more nodes described by `addable`.
    pub(super) fn ext_bound(&mut self, set: &[usize], addable: AddableView<'_>, room: usize) -> i64 {
        if room == 0 || addable.min_entry >= INF {
            return INF;
        }
        let cutoff = self.threshold();
        self.bound(set, Some((addable, room)), cutoff)
    }

    /// Lower bound on plans over `set`, exactly or plus 1..=room nodes described by an
    /// aggregate.
    ///
    /// *The set*: Σ entry − split penalty, plus per line the linear relaxation over the
    /// set's nodes. Package accounting is exact: a node's entry pays for one package,
    /// either its regular package (the node may then serve regular lines, and each of its
    /// ship-alone units pays its own package) or the first unit of one ship-alone line (it
    /// then serves no regular line). The bound is the least over these choices (sets of
    /// at most `REFINED_NODES` nodes and `REFINED_CHOICES` combinations; beyond, all
    /// choices at once, which is weaker).
    ///
    /// *Added nodes*: per line one more option, their cheapest unit, for at most `room` ×
    /// their largest stock. The lines T they serve cost their entries: at least the
    /// cheapest entry among them, the cheapest entry of a node able to serve each line of
    /// T, and (cover table) the cheapest Σ entry of `room` nodes able to serve all of T.
    /// The least over T.
    ///
    /// Callers compare the bound with `cutoff`: the plain relaxation (every choice at
    /// once, never above) is tried first, and once a choice is found at or below `cutoff`
    /// the plain value is returned.
    fn bound(&mut self, set: &[usize], ext: Option<(AddableView<'_>, usize)>, cutoff: i64) -> i64 {
        let group = self.group;
        let (set_len, n_lines) = (set.len(), group.line_count());
        let mut counts = [1usize; REFINED_NODES];
        let mut refined = group.has_alone && set_len <= REFINED_NODES && n_lines <= 64;
        if refined {
            let mut combos = 1usize;
            for (k, &c) in set.iter().enumerate() {
                let candidate = &group.candidates[c];
                let choices = &mut self.choices[k];
                choices.clear();
                if candidate.kinds & 1 != 0 || candidate.alone_extra == 0 {
                    choices.push(0);
                }
                if candidate.alone_extra != 0 {
                    choices.extend(
                        (0..n_lines)
                            .filter(|&l| group.lines[l].ship_alone && group.avail[c * n_lines + l] > 0)
                            .map(|l| l + 1),
                    );
                }
                if choices.is_empty() {
                    choices.push(0);
                }
                counts[k] = choices.len();
                combos = combos.saturating_mul(choices.len());
            }
            refined = combos <= REFINED_CHOICES;
        }
        let size = if refined { 1usize << set_len } else { 0 };
        self.memo.clear();
        self.memo.resize(3 * n_lines * (size + 1), (i64::MIN, 0));
        self.memo_masks = size;
        self.memo_plain = 3 * n_lines * size;
        // What the added nodes' entries pay for: their regular package, or else ship-alone
        // units (one added node: the first unit of one line, tried for each).
        let variants = |search: &mut Self, refined: bool, choice: &[usize; REFINED_NODES]| -> i64 {
            let mut v = search.bound_combination(set, ext, (refined, AddedEntries::Regular), choice);
            if let Some((addable, room)) = ext
                && group.has_alone
            {
                if room == 1 {
                    let mut any = false;
                    for j in (0..n_lines).filter(|&j| group.lines[j].ship_alone && addable.min_unit[j] < INF) {
                        any = true;
                        v = v.min(search.bound_combination(set, ext, (refined, AddedEntries::FreeOne(j)), choice));
                    }
                    if !any {
                        v = v.min(search.bound_combination(set, ext, (refined, AddedEntries::FreeAll), choice));
                    }
                } else {
                    v = v.min(search.bound_combination(set, ext, (refined, AddedEntries::FreeAll), choice));
                }
            }
            v
        };
        let plain = variants(self, false, &[0; REFINED_NODES]);
        if !refined || plain > cutoff {
            return plain;
        }
        let mut pick = [0usize; REFINED_NODES];
        let mut best = INF;
        loop {
            // This combination: per node, 0 = it sends a regular package, j + 1 = its
            // first unit of ship-alone line j rides its entry.
            let mut choice = [0usize; REFINED_NODES];
            for k in 0..set_len {
                choice[k] = self.choices[k][pick[k]];
            }
            let v = variants(self, true, &choice);
            if v <= cutoff {
                return plain;
            }
            best = best.min(v);
            // Next combination.
            let mut k = 0;
            while k < set_len {
                pick[k] += 1;
                if pick[k] < counts[k] {
                    break;
                }
                pick[k] = 0;
                k += 1;
            }
            if k == set_len {
                break;
            }
        }
        best.max(plain)
    }

    /// The relaxation of line `l` over `set` (alone, and with the added nodes' option),
    /// for the nodes of `mask` (regular lines: those sending a regular package; ship-alone
    /// lines: those whose first unit rides their entry); `mask` is ignored (every node,
    /// every first unit) unless `refined`. Memoized per call of `bound`.
    fn line_values(
        &mut self,
        set: &[usize],
        ext: Option<(AddableView<'_>, usize)>,
        l: usize,
        (refined, mask, state): (bool, usize, usize),
    ) -> (i64, i64) {
        let group = self.group;
        let n_lines = group.line_count();
        let slot = state + if refined { 3 * (l * self.memo_masks + mask) } else { self.memo_plain + 3 * l };
        if self.memo[slot].0 != i64::MIN {
            return self.memo[slot];
        }
        let line = &group.lines[l];
        let alone = if refined {
            self.buf.clear();
            for (k, &c) in set.iter().enumerate() {
                let a = group.avail[c * n_lines + l];
                if a == 0 {
                    continue;
                }
                let inside = mask & (1 << k) != 0;
                if line.ship_alone {
                    group.push_segments(c, l, a, inside, &mut self.buf);
                } else if inside {
                    group.push_segments(c, l, a, true, &mut self.buf);
                }
            }
            settle(&mut self.buf, line.qty, line.penalty_milli, group.all_or_nothing)
        } else {
            self.plain_line(set, l)
        };
        let with = match ext {
            // State 0: the added nodes send a regular package (they may serve regular lines;
            // one of their entries is spent); 1: they do not, and this line's first units
            // may ride their entries; 2: they do not, and this line's units pay packages
            // except beyond the first added node.
            Some((addable, room)) if addable.min_unit[l] < INF && (line.ship_alone || state == 0) => {
                let units = line.qty.min(addable.max_avail[l].saturating_mul(room as u64));
                let free = if state == 1 { room as u64 } else { room as u64 - 1 };
                push_added(&mut self.buf, addable.min_unit[l], addable.min_full[l], units, free);
                settle(&mut self.buf, line.qty, line.penalty_milli, group.all_or_nothing)
            }
            _ => alone,
        };
        self.memo[slot] = (alone, with);
        (alone, with)
    }

    /// The plain relaxation of line `l` over `set` alone (every node, every first unit),
    /// leaving its segments in `buf` as `settle` ordered them. Kept for the last set asked
    /// about: the superset bounds of one prefix over successive suffixes share it.
    fn plain_line(&mut self, set: &[usize], l: usize) -> i64 {
        let group = self.group;
        let n_lines = group.line_count();
        let plain = &mut self.plain;
        if plain.set.as_slice() != set || plain.known.len() != n_lines {
            plain.set.clear();
            plain.set.extend_from_slice(set);
            plain.known.clear();
            plain.known.resize(n_lines, false);
            plain.alone.resize(n_lines, 0);
            plain.segments.resize_with(n_lines, Vec::new);
        }
        self.buf.clear();
        if plain.known[l] {
            self.buf.extend_from_slice(&plain.segments[l]);
            return plain.alone[l];
        }
        for &c in set {
            let a = group.avail[c * n_lines + l];
            if a > 0 {
                group.push_segments(c, l, a, true, &mut self.buf);
            }
        }
        let line = &group.lines[l];
        let alone = settle(&mut self.buf, line.qty, line.penalty_milli, group.all_or_nothing);
        plain.known[l] = true;
        plain.alone[l] = alone;
        plain.segments[l].clear();
        plain.segments[l].extend_from_slice(&self.buf);
        alone
    }

    /// One combination of `bound`: the set's package choices and what the added nodes'
    /// entries pay for.
    fn bound_combination(
        &mut self,
        set: &[usize],
        ext: Option<(AddableView<'_>, usize)>,
        (refined, added): (bool, AddedEntries),
        choice: &[usize; REFINED_NODES],
    ) -> i64 {
        let group = self.group;
        let set_len = set.len().min(REFINED_NODES);
        // The nodes of a line's mask: regular lines, those sending a regular package;
        // ship-alone line l, those whose first unit of it rides their entry.
        let mask_of = |line: &GroupLine, l: usize| -> usize {
            if !refined {
                return 0;
            }
            let want = if line.ship_alone { l + 1 } else { 0 };
            (0..set_len).filter(|&k| choice[k] == want).fold(0, |acc, k| acc | 1 << k)
        };
        let mut sum = group.entry_milli(set);
        let Some((addable, room)) = ext else {
            for (l, line) in group.lines.iter().enumerate() {
                let (alone, _) = self.line_values(set, None, l, (refined, mask_of(line, l), 0));
                if alone >= INF {
                    return INF;
                }
                sum = sum.saturating_add(alone);
            }
            return floor_milli(sum);
        };
        let mut mandatory = 0u64;
        let mut mandatory_cover = i64::MIN;
        let mut delta = std::mem::take(&mut self.delta);
        delta.clear();
        for (l, line) in group.lines.iter().enumerate() {
            let state = added.state(l);
            let (alone, with) = self.line_values(set, ext, l, (refined, mask_of(line, l), state));
            if with >= INF {
                self.delta = delta;
                return INF;
            }
            if alone >= INF {
                sum = sum.saturating_add(with);
                if l < 64 {
                    mandatory |= 1 << l;
                }
                mandatory_cover = mandatory_cover.max(addable.cover[l]);
            } else {
                sum = sum.saturating_add(alone);
                if with < alone {
                    delta.push((with - alone, addable.cover[l], l));
                }
            }
        }
        let best = self.added_entries(addable, room, (mandatory, mandatory_cover), &mut delta);
        self.delta = delta;
        if best >= INF {
            return INF;
        }
        floor_milli(sum.saturating_add(best))
    }

    /// What the added nodes cost beyond their units, ×1000: the least over the sets T of
    /// lines they serve (every `mandatory` line, whose largest cover entry is
    /// `mandatory_cover`, and any of those in `delta`: (saving ×1000, cover entry, line))
    /// of the entries T costs less T's savings.
    fn added_entries(
        &mut self,
        addable: AddableView<'_>,
        room: usize,
        (mandatory, mandatory_cover): (u64, i64),
        delta: &mut [(i64, i64, usize)],
    ) -> i64 {
        let others = saturating_times(self.neg_entry, room as u64 - 1);
        let floor_entry = addable.min_entry.saturating_add(others);
        let entries = |cover_max: i64| -> i64 {
            if cover_max == i64::MIN { floor_entry } else { floor_entry.max(cover_max.saturating_add(others)) }
        };
        let mut best;
        match &self.cover {
            Some(table) if delta.len() <= ENUM_LINES => {
                // Every subset T of the lines with a saving, built from T minus its lowest.
                let n = 1usize << delta.len();
                let subsets = &mut self.subsets;
                subsets.clear();
                subsets.push((mandatory, mandatory_cover, 0));
                best = entries(mandatory_cover).max(table.get(room, mandatory)).saturating_mul(1000);
                for t in 1..n {
                    let (lines_before, cover_before, saving_before) = subsets[t & (t - 1)];
                    let (saving_line, cover_line, l) = delta[t.trailing_zeros() as usize];
                    let mask = lines_before | 1 << l;
                    let (cover, saving) = (cover_before.max(cover_line), saving_before.saturating_add(saving_line));
                    subsets.push((mask, cover, saving));
                    let entry = entries(cover).max(table.get(room, mask));
                    best = best.min(entry.saturating_mul(1000).saturating_add(saving));
                }
            }
            table => {
                // Lines taken in order of their cover entry: the best T with a given
                // largest cover entry takes every line whose cover is at most it.
                delta.sort_unstable_by_key(|d| (d.1, d.2));
                let mut entry = entries(mandatory_cover);
                if let Some(table) = table {
                    entry = entry.max(table.get(room, mandatory));
                }
                best = entry.saturating_mul(1000);
                let mut saving = 0i64;
                let mut cover_max = mandatory_cover;
                for &(saving_line, cover_line, _) in delta.iter() {
                    saving = saving.saturating_add(saving_line);
                    cover_max = cover_max.max(cover_line);
                    best = best.min(entries(cover_max).saturating_mul(1000).saturating_add(saving));
                }
            }
        }
        best
    }
}
