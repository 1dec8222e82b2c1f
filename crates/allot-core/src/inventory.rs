//! Inventory positions (per node × SKU) and availability to promise (ATP).
//!
//! ATP = on hand − damaged − quarantined − reserved − allocated − safety stock, floored at
//! zero. A node that is not active contributes zero to network ATP whatever its counts.
//!
//! Feeds from WMS and store systems arrive as absolute positions, deltas and full
//! snapshots, each optionally carrying a sequence number (`seq`). Sequence numbers are per
//! position: an update whose `seq` is not greater than the position's stored `seq` is
//! stale and rejected. An update without `seq` always applies and leaves the stored `seq`
//! as it was, so a later sequenced update is still checked against the last one seen.
//!
//! On hand may fall below reserved + allocated when a feed reports shrinkage: the feed is
//! the truth about the shelf. ATP then floors at zero and the shortfall is for the
//! fulfillment exception flow to resolve. What can never happen is a negative count.

use std::collections::HashMap;

use crate::ids::{NodeId, Sku};
use crate::qty::{Qty, QtyError};

/// The counts of one position. Every field is a [`Qty`], so none can be negative.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PositionCounts {
    pub on_hand: Qty,
    pub damaged: Qty,
    pub quarantined: Qty,
    pub safety_stock: Qty,
    /// Soft holds from checkouts (reservations).
    pub reserved: Qty,
    /// Hard holds from sourced orders.
    pub allocated: Qty,
}

impl PositionCounts {
    /// Units that may still be promised at this node (before node status is considered).
    pub fn atp(&self) -> Qty {
        let held = [self.damaged, self.quarantined, self.reserved, self.allocated, self.safety_stock];
        held.iter().fold(self.on_hand, |left, h| left.saturating_sub(*h))
    }
}

/// One node × SKU position with the sequence number of the last sequenced feed update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    pub node_id: NodeId,
    pub sku: Sku,
    pub counts: PositionCounts,
    pub seq: Option<u64>,
}

impl Position {
    pub fn empty(node_id: NodeId, sku: Sku) -> Position {
        Position { node_id, sku, counts: PositionCounts::default(), seq: None }
    }
}

/// Why an inventory update was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpdateError {
    #[error("stale update: seq {given} is not greater than the stored seq {stored}")]
    StaleSeq { given: u64, stored: u64 },
    #[error("on hand would become {value}, below zero")]
    NegativeOnHand { value: i128 },
    #[error("on hand would exceed the limit: {0}")]
    TooLarge(QtyError),
}

/// Checks a sequenced update against the stored sequence number.
pub fn check_seq(stored: Option<u64>, given: Option<u64>) -> Result<(), UpdateError> {
    match (stored, given) {
        (Some(stored), Some(given)) if given <= stored => Err(UpdateError::StaleSeq { given, stored }),
        _ => Ok(()),
    }
}

/// The sequence number a position keeps after an accepted update.
pub fn next_seq(stored: Option<u64>, given: Option<u64>) -> Option<u64> {
    given.or(stored)
}

/// The feed-owned part of a position that an absolute update replaces. Reserved and
/// allocated belong to Allot and are never set by a feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbsolutePosition {
    pub on_hand: Qty,
    pub damaged: Qty,
    pub quarantined: Qty,
    pub safety_stock: Qty,
    pub seq: Option<u64>,
}

/// Applies an absolute position update to the current position.
pub fn apply_absolute(current: &Position, update: &AbsolutePosition) -> Result<Position, UpdateError> {
    check_seq(current.seq, update.seq)?;
    let counts = PositionCounts {
        on_hand: update.on_hand,
        damaged: update.damaged,
        quarantined: update.quarantined,
        safety_stock: update.safety_stock,
        ..current.counts
    };
    Ok(Position { counts, seq: next_seq(current.seq, update.seq), ..current.clone() })
}

/// A position's key: node and SKU.
pub type PositionKey = (NodeId, Sku);

/// One signed on-hand change from a feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnHandDelta {
    pub node_id: NodeId,
    pub sku: Sku,
    pub on_hand_delta: i64,
    pub seq: Option<u64>,
}

/// Applies deltas in order, all or nothing.
///
/// `current` must hold the stored position of every key the deltas touch that exists;
/// a key absent from it is a new position starting at zero. Deltas to the same position
/// apply one after the other, each checked against the state the previous one left.
/// On success the map holds the new positions and the touched keys are returned in first-
/// touch order; on failure every offending delta index is listed and the caller must
/// discard the map.
pub fn apply_deltas(
    current: &mut HashMap<PositionKey, Position>,
    deltas: &[OnHandDelta],
) -> Result<Vec<PositionKey>, Vec<(usize, UpdateError)>> {
    let mut touched = Vec::new();
    let mut errors = Vec::new();
    for (index, delta) in deltas.iter().enumerate() {
        let key = (delta.node_id.clone(), delta.sku.clone());
        let position = current.entry(key.clone()).or_insert_with(|| {
            touched.push(key.clone());
            Position::empty(delta.node_id.clone(), delta.sku.clone())
        });
        if let Err(e) = check_seq(position.seq, delta.seq) {
            errors.push((index, e));
            continue;
        }
        match position.counts.on_hand.apply_delta(delta.on_hand_delta) {
            Ok(on_hand) => {
                position.counts.on_hand = on_hand;
                position.seq = next_seq(position.seq, delta.seq);
            }
            Err(QtyError::Negative { value }) => errors.push((index, UpdateError::NegativeOnHand { value })),
            Err(e @ QtyError::TooLarge { .. }) => errors.push((index, UpdateError::TooLarge(e))),
        }
    }
    if errors.is_empty() {
        // Keys that existed before are touched too; report them after new ones, sorted,
        // so the order is deterministic.
        let created: std::collections::HashSet<&PositionKey> = touched.iter().collect();
        let mut existing: Vec<PositionKey> =
            deltas.iter().map(|d| (d.node_id.clone(), d.sku.clone())).filter(|k| !created.contains(k)).collect();
        existing.sort();
        existing.dedup();
        touched.extend(existing);
        Ok(touched)
    } else {
        Err(errors)
    }
}

/// One SKU's counts in a node's full snapshot. Omitted damaged/quarantined mean zero (a
/// snapshot is the whole truth about counts); omitted safety stock keeps the stored value
/// (safety stock is a planning setting, not a count a WMS reports).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotEntry {
    pub sku: Sku,
    pub on_hand: Qty,
    pub damaged: Qty,
    pub quarantined: Qty,
    pub safety_stock: Option<Qty>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    #[error("stale snapshot: seq {given} is not greater than seq {stored} stored for SKU {sku}")]
    StaleSeq { given: u64, stored: u64, sku: Sku },
    #[error("SKU {sku} appears more than once (entries {first} and {second})")]
    DuplicateSku { sku: Sku, first: usize, second: usize },
}

/// Computes a node's positions after a full snapshot: listed SKUs take the snapshot's
/// counts, SKUs the node holds but the snapshot omits go to zero on hand, damaged and
/// quarantined. With a `seq`, the snapshot is stale if any stored position of the node
/// has a seq at least as large, and every resulting position takes the snapshot's seq.
pub fn apply_snapshot(
    node_id: &NodeId,
    stored: &[Position],
    entries: &[SnapshotEntry],
    seq: Option<u64>,
) -> Result<Vec<Position>, SnapshotError> {
    let mut seen: HashMap<&Sku, usize> = HashMap::with_capacity(entries.len());
    for (index, entry) in entries.iter().enumerate() {
        if let Some(first) = seen.insert(&entry.sku, index) {
            return Err(SnapshotError::DuplicateSku { sku: entry.sku.clone(), first, second: index });
        }
    }
    if let Some(given) = seq
        && let Some(p) = stored.iter().filter(|p| p.seq.is_some_and(|s| s >= given)).max_by_key(|p| p.seq)
    {
        let stored_seq = p.seq.unwrap_or_default();
        return Err(SnapshotError::StaleSeq { given, stored: stored_seq, sku: p.sku.clone() });
    }
    let by_sku: HashMap<&Sku, &Position> = stored.iter().map(|p| (&p.sku, p)).collect();
    let mut out = Vec::with_capacity(entries.len() + stored.len());
    for entry in entries {
        let base = by_sku
            .get(&entry.sku)
            .map(|p| (*p).clone())
            .unwrap_or_else(|| Position::empty(node_id.clone(), entry.sku.clone()));
        let counts = PositionCounts {
            on_hand: entry.on_hand,
            damaged: entry.damaged,
            quarantined: entry.quarantined,
            safety_stock: entry.safety_stock.unwrap_or(base.counts.safety_stock),
            ..base.counts
        };
        out.push(Position { counts, seq: next_seq(base.seq, seq), ..base });
    }
    for p in stored.iter().filter(|p| !seen.contains_key(&p.sku)) {
        let counts = PositionCounts { on_hand: Qty::ZERO, damaged: Qty::ZERO, quarantined: Qty::ZERO, ..p.counts };
        out.push(Position { counts, seq: next_seq(p.seq, seq), ..p.clone() });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn q(v: u64) -> Qty {
        Qty::new(v).unwrap()
    }
    fn node() -> NodeId {
        NodeId::parse("DC-1").unwrap()
    }
    fn sku(s: &str) -> Sku {
        Sku::parse(s).unwrap()
    }

    #[test]
    fn atp_subtracts_every_hold_and_floors_at_zero() {
        let cases = [
            // on_hand, damaged, quarantined, safety, reserved, allocated => atp
            ((10, 0, 0, 0, 0, 0), 10),
            ((10, 1, 2, 3, 1, 1), 2),
            ((10, 1, 2, 3, 2, 2), 0),
            ((10, 0, 0, 20, 0, 0), 0),
            ((0, 0, 0, 0, 0, 0), 0),
            ((5, 0, 0, 0, 0, 9), 0),
            ((1_000_000_000, 0, 0, 0, 0, 0), 1_000_000_000),
        ];
        for ((on_hand, damaged, quarantined, safety_stock, reserved, allocated), atp) in cases {
            let c = PositionCounts {
                on_hand: q(on_hand),
                damaged: q(damaged),
                quarantined: q(quarantined),
                safety_stock: q(safety_stock),
                reserved: q(reserved),
                allocated: q(allocated),
            };
            assert_eq!(c.atp(), q(atp), "{c:?}");
        }
    }

    proptest! {
        #[test]
        fn atp_equals_the_floored_signed_formula(
            on_hand in 0u64..2_000, damaged in 0u64..500, quarantined in 0u64..500,
            safety in 0u64..500, reserved in 0u64..500, allocated in 0u64..500,
        ) {
            let c = PositionCounts {
                on_hand: q(on_hand), damaged: q(damaged), quarantined: q(quarantined),
                safety_stock: q(safety), reserved: q(reserved), allocated: q(allocated),
            };
            let signed = on_hand as i64 - damaged as i64 - quarantined as i64 - safety as i64
                - reserved as i64 - allocated as i64;
            prop_assert_eq!(c.atp().get() as i64, signed.max(0));
        }
    }

    #[test]
    fn sequenced_updates_must_increase() {
        assert_eq!(check_seq(None, Some(1)), Ok(()));
        assert_eq!(check_seq(Some(5), None), Ok(()));
        assert_eq!(check_seq(Some(5), Some(6)), Ok(()));
        assert_eq!(check_seq(Some(5), Some(5)), Err(UpdateError::StaleSeq { given: 5, stored: 5 }));
        assert_eq!(check_seq(Some(5), Some(4)), Err(UpdateError::StaleSeq { given: 4, stored: 5 }));
        assert_eq!(next_seq(Some(5), None), Some(5));
    }

    #[test]
    fn absolute_update_keeps_reserved_and_allocated() {
        let mut current = Position::empty(node(), sku("A"));
        current.counts.allocated = q(3);
        current.counts.reserved = q(2);
        let update =
            AbsolutePosition { on_hand: q(10), damaged: q(1), quarantined: q(0), safety_stock: q(1), seq: Some(7) };
        let next = apply_absolute(&current, &update).unwrap();
        assert_eq!((next.counts.allocated, next.counts.reserved, next.seq), (q(3), q(2), Some(7)));
        assert_eq!(next.counts.atp(), q(3));
        let stale = AbsolutePosition { seq: Some(7), ..update };
        assert_eq!(apply_absolute(&next, &stale), Err(UpdateError::StaleSeq { given: 7, stored: 7 }));
    }

    #[test]
    fn deltas_apply_in_order_and_report_every_offender() {
        let mut current = HashMap::new();
        let mut a = Position::empty(node(), sku("A"));
        a.counts.on_hand = q(5);
        a.seq = Some(10);
        current.insert((node(), sku("A")), a);
        let d = |s: &str, delta: i64, seq: Option<u64>| OnHandDelta {
            node_id: node(),
            sku: sku(s),
            on_hand_delta: delta,
            seq,
        };

        let mut ok = current.clone();
        let touched = apply_deltas(&mut ok, &[d("A", -5, Some(11)), d("A", 2, None), d("B", 4, Some(1))]).unwrap();
        assert_eq!(touched, vec![(node(), sku("B")), (node(), sku("A"))]);
        assert_eq!(ok[&(node(), sku("A"))].counts.on_hand, q(2));
        assert_eq!(ok[&(node(), sku("A"))].seq, Some(11));
        assert_eq!(ok[&(node(), sku("B"))].counts.on_hand, q(4));

        let mut bad = current.clone();
        let errors =
            apply_deltas(&mut bad, &[d("A", -6, None), d("A", 1, Some(10)), d("B", 1, None), d("B", -2, None)])
                .unwrap_err();
        assert_eq!(
            errors,
            vec![
                (0, UpdateError::NegativeOnHand { value: -1 }),
                (1, UpdateError::StaleSeq { given: 10, stored: 10 }),
                (3, UpdateError::NegativeOnHand { value: -1 }),
            ]
        );
    }

    #[test]
    fn snapshot_zeroes_omitted_skus_and_keeps_safety_stock() {
        let mut a = Position::empty(node(), sku("A"));
        a.counts =
            PositionCounts { on_hand: q(9), damaged: q(1), safety_stock: q(2), allocated: q(1), ..Default::default() };
        a.seq = Some(3);
        let mut b = Position::empty(node(), sku("B"));
        b.counts.on_hand = q(4);
        let entries = [
            SnapshotEntry { sku: sku("B"), on_hand: q(7), damaged: q(0), quarantined: q(1), safety_stock: None },
            SnapshotEntry { sku: sku("C"), on_hand: q(2), damaged: q(0), quarantined: q(0), safety_stock: Some(q(1)) },
        ];
        let out = apply_snapshot(&node(), &[a.clone(), b], &entries, Some(4)).unwrap();
        let get = |s: &str| out.iter().find(|p| p.sku.as_str() == s).unwrap().clone();
        assert_eq!(
            get("A").counts,
            PositionCounts { on_hand: q(0), safety_stock: q(2), allocated: q(1), ..Default::default() }
        );
        assert_eq!(get("B").counts.on_hand, q(7));
        assert_eq!(get("C").counts.safety_stock, q(1));
        assert!(out.iter().all(|p| p.seq == Some(4)));

        assert_eq!(
            apply_snapshot(&node(), &[a], &entries, Some(3)),
            Err(SnapshotError::StaleSeq { given: 3, stored: 3, sku: sku("A") })
        );
        let dup = [entries[0].clone(), entries[0].clone()];
        assert!(matches!(apply_snapshot(&node(), &[], &dup, None), Err(SnapshotError::DuplicateSku { .. })));
    }
}
