//! Seeding: a few good multi-node plans before the exhaustive search, so that its threshold
//! starts low. Never prunes anything itself: it only offers plans to the top three. Every
//! plan it offers is solved exactly, so the top three are the same with or without it.

use super::Search;
use crate::sourcing::engine::cost::{INF, saturating_times};

/// Seeding: greedy extensions from this many best single candidates …
const SEED_STARTS: usize = 3;
/// … trying the shortlisted candidates: this many per line (the cheapest to serve it) …
const SEED_PER_LINE: usize = 3;
/// … and solving this many best extensions at every step. Candidates are picked among the
/// best `SEED_POOL` by each score, one per profile.
const SEED_BRANCHES: usize = 2;
const SEED_POOL: usize = 12;

/// Keeps in `top` the `SEED_POOL` least `(score, candidate)`, ascending.
fn push_best(top: &mut Vec<(i64, usize)>, v: i64, c: usize) {
    if top.len() == SEED_POOL && (v, c) >= top[SEED_POOL - 1] {
        return;
    }
    let at = top.partition_point(|&x| x < (v, c));
    top.insert(at, (v, c));
    top.truncate(SEED_POOL);
}

impl Search<'_, '_> {
    /// Seeds from the best single candidates (by `single_bound`), extended by a shortlist:
    /// those, and the cheapest few to serve each line, one per profile.
    pub(super) fn seed_from_best(&mut self, single_bound: &[i64]) {
        let tops = self.seed_scores(single_bound);
        let by_single = self.distinct(&tops[0], SEED_STARTS);
        let mut shortlist: Vec<usize> = by_single.clone();
        for top in &tops[1..] {
            shortlist.extend(self.distinct(top, SEED_PER_LINE));
        }
        shortlist.sort_unstable();
        shortlist.dedup();
        self.seed(&by_single, &shortlist);
    }

    /// The best `SEED_POOL` candidates by each score, in one pass over the candidates:
    /// `tops[0]` by single bound, `tops[1 + l]` the cheapest to serve line l (entry plus
    /// the relaxed cost of its units).
    fn seed_scores(&self, single_bound: &[i64]) -> Vec<Vec<(i64, usize)>> {
        let group = self.group;
        let n_lines = group.line_count();
        let mut tops: Vec<Vec<(i64, usize)>> = vec![Vec::with_capacity(SEED_POOL + 1); n_lines + 1];
        // Small terms (the usual case): the scores in plain arithmetic, nothing can saturate.
        const SMALL: i64 = 1 << 36;
        let small = |x: i64| (0..SMALL).contains(&x);
        let small_lines =
            small(group.bonus_milli) && group.lines.iter().all(|l| small(l.penalty_milli) && l.qty < 1 << 20);
        for (c, &bound) in single_bound.iter().enumerate() {
            // (`push_best` declines (v, c) ≥ its last: with c the highest index yet, when v
            // ≥ its score.)
            if bound < INF && (tops[0].len() < SEED_POOL || bound < tops[0][SEED_POOL - 1].0) {
                push_best(&mut tops[0], bound, c);
            }
            let entry = group.entry_milli(&[c]);
            let alone_extra = group.candidates[c].alone_extra;
            let plain = small_lines && small(alone_extra) && entry.unsigned_abs() < 1 << 40;
            for (l, line) in group.lines.iter().enumerate() {
                let avail = group.avail[c * n_lines + l];
                let units = avail.min(line.qty);
                let unit = group.unit[c * n_lines + l];
                let aged = units.min(group.aged(c, l, avail));
                let alone = if line.ship_alone { units.saturating_sub(1) } else { 0 };
                // `group.units_cost(c, l, units, aged, true)` without its branch on units = 0
                // (the score only counts when avail > 0, so units ≥ 1).
                let score = if plain && small(unit) {
                    let cost = unit * units as i64 - group.bonus_milli * aged as i64 + alone_extra * alone as i64;
                    entry + cost + line.penalty_milli * (line.qty - units) as i64
                } else {
                    let cost = saturating_times(unit, units).saturating_sub(saturating_times(group.bonus_milli, aged));
                    let cost = cost.saturating_add(saturating_times(alone_extra, alone));
                    entry.saturating_add(cost).saturating_add(saturating_times(line.penalty_milli, line.qty - units))
                };
                let top = &mut tops[1 + l];
                if (avail > 0) & (top.len() < SEED_POOL || score < top[SEED_POOL - 1].0) {
                    push_best(top, score, c);
                }
            }
        }
        tops
    }

    /// The best `want` of a list, skipping candidates of a profile already taken (twins
    /// would make the same plans).
    fn distinct(&mut self, top: &[(i64, usize)], want: usize) -> Vec<usize> {
        let mut taken: Vec<usize> = Vec::with_capacity(want);
        let mut profiles: Vec<u32> = Vec::with_capacity(want);
        for &(_, c) in top {
            let p = self.profile(c);
            if !profiles.contains(&p) {
                profiles.push(p);
                taken.push(c);
                if taken.len() == want {
                    break;
                }
            }
        }
        taken
    }

    /// Seeds the top three with multi-node plans before the exhaustive search, so that
    /// its threshold starts low: from each of the best single candidates, greedily adds
    /// the shortlisted candidate with the best set bound (solving the two best sets of
    /// every step).
    fn seed(&mut self, starts: &[usize], shortlist: &[usize]) {
        let max_nodes = self.group.max_nodes;
        let mut set: Vec<usize> = Vec::with_capacity(max_nodes);
        for &s in starts {
            set.clear();
            set.push(s);
            while set.len() < max_nodes && !self.stopped {
                let mut best = [(INF, usize::MAX); SEED_BRANCHES];
                for &c in shortlist {
                    if set.contains(&c) {
                        continue;
                    }
                    set.push(c);
                    let bound = self.set_bound(&set);
                    set.pop();
                    if let Some(at) = best.iter().position(|&best| (bound, c) < best) {
                        best[at..].rotate_right(1);
                        best[at] = (bound, c);
                    }
                }
                let mut next = None;
                for &(bound, c) in &best {
                    if bound > self.threshold() || self.stopped {
                        break;
                    }
                    set.push(c);
                    let cost = self.allocate(&set, bound).unwrap_or(INF);
                    set.pop();
                    if next.is_none_or(|(next_cost, _)| cost < next_cost) {
                        next = Some((cost, c));
                    }
                }
                match next {
                    Some((_, c)) => set.push(c),
                    None => break,
                }
            }
        }
    }
}
