//! Seeding: a few good multi-node plans before the exhaustive search, so that its threshold
//! starts low. Only offers plans to the top three; it never decides what the search skips.
//! Whatever it finds is an exact plan, so the result is the same with or without it.

use super::Search;
use crate::sourcing::engine::cost::INF;

/// Seeding: greedy extensions from this many best single candidates …
pub(in crate::sourcing::engine) const SEED_STARTS: usize = 3;
/// … trying the shortlisted candidates: this many per line (the cheapest to serve it) …
pub(in crate::sourcing::engine) const SEED_PER_LINE: usize = 3;
/// … and solving this many best extensions at every step. Candidates are picked among the
/// best `SEED_POOL` by each score, one per profile.
pub(in crate::sourcing::engine) const SEED_BRANCHES: usize = 2;
pub(in crate::sourcing::engine) const SEED_POOL: usize = 12;

/// Keeps in `top` the `SEED_POOL` least `(score, candidate)`, ascending.
pub(in crate::sourcing::engine) fn push_best(top: &mut Vec<(i64, usize)>, v: i64, c: usize) {
    if top.len() == SEED_POOL && (v, c) >= top[SEED_POOL - 1] {
        return;
    }
    let at = top.partition_point(|&x| x < (v, c));
    top.insert(at, (v, c));
    top.truncate(SEED_POOL);
}

impl Search<'_, '_> {
    /// Seeds the top three with multi-node plans before the exhaustive search, so that
    /// its threshold starts low: from each of the best single candidates, greedily adds
    /// the shortlisted candidate with the best set bound (solving the two best sets of
    /// every step).
    pub(in crate::sourcing::engine) fn seed(&mut self, starts: &[usize], shortlist: &[usize]) {
        let k = self.g.max_nodes;
        let mut set: Vec<usize> = Vec::with_capacity(k);
        for &s in starts {
            set.clear();
            set.push(s);
            while set.len() < k && !self.stopped {
                let mut best = [(INF, usize::MAX); SEED_BRANCHES];
                for &c in shortlist {
                    if set.contains(&c) {
                        continue;
                    }
                    set.push(c);
                    let b = self.set_bound(&set);
                    set.pop();
                    if let Some(at) = best.iter().position(|&(bb, bc)| (b, c) < (bb, bc)) {
                        best[at..].rotate_right(1);
                        best[at] = (b, c);
                    }
                }
                let mut next = None;
                for &(b, c) in &best {
                    if b > self.threshold() || self.stopped {
                        break;
                    }
                    set.push(c);
                    let cost = self.allocate(&set, b).unwrap_or(INF);
                    set.pop();
                    if next.is_none_or(|(nc, _)| cost < nc) {
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
