//! Inventory use cases: absolute positions, bulk deltas, full snapshots, availability.
//!
//! Every write is one transaction: lock the affected positions, compute the new counts
//! with the pure core, write them, commit, then refresh the read model. Bad input is
//! found before anything is written, and a refused request changes nothing.

use std::collections::HashMap;

use allot_core::inventory::{self, AbsolutePosition, OnHandDelta, Position, SnapshotEntry, UpdateError};
use allot_core::{ChannelId, FulfillmentMethod, GeoPoint, NodeId, Qty, Sku};
use allot_store::StoredPosition;

use crate::events::inventory_changed;
use crate::workers::FollowUp;
use crate::{App, AppError, FieldError, Result};

/// Most deltas accepted in one request (a named limit).
pub const DELTAS_MAX: usize = 200_000;
/// Most positions in one snapshot.
pub const SNAPSHOT_POSITIONS_MAX: usize = 200_000;
/// Most SKUs in one availability question.
pub const AVAILABILITY_SKUS_MAX: usize = 100;

/// One delta as received; node and SKU are looked up here.
#[derive(Debug, Clone)]
pub struct DeltaInput {
    pub node_id: NodeId,
    pub sku: Sku,
    pub on_hand_delta: i64,
    pub seq: Option<u64>,
    pub reason: Option<String>,
}

#[derive(Debug, Clone)]
pub struct SnapshotInput {
    pub entries: Vec<SnapshotEntry>,
    pub seq: Option<u64>,
}

/// What to ask availability for.
#[derive(Debug, Clone)]
pub struct AvailabilityQuery {
    pub skus: Vec<Sku>,
    pub near: Option<GeoPoint>,
    pub radius_km: Option<f64>,
    pub method: Option<FulfillmentMethod>,
    /// Availability as this channel may be sold it: the policy's rule for the channel
    /// applies (excluded nodes and node types left out, stores' protected units kept back
    /// from ship-type methods), as sourcing will. `None` with no `policy` either: raw ATP.
    pub channel: Option<ChannelId>,
    /// The policy whose rules apply (default: the active one).
    pub policy: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NodeAvailability {
    pub node_id: NodeId,
    pub atp: Qty,
    pub distance_km: Option<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SkuAvailability {
    pub sku: Sku,
    /// Sum of the listed nodes' ATP.
    pub atp: u64,
    pub nodes: Vec<NodeAvailability>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Availability {
    pub items: Vec<SkuAvailability>,
}

fn update_error_field(index: usize, e: &UpdateError) -> FieldError {
    let field = match e {
        UpdateError::StaleSeq { .. } => format!("deltas[{index}].seq"),
        UpdateError::NegativeOnHand { .. } | UpdateError::TooLarge(_) => {
            format!("deltas[{index}].on_hand_delta")
        }
    };
    FieldError::new(field, e)
}

impl App {
    fn require_node_and_item(&self, node_id: &NodeId, sku: &Sku) -> Result<()> {
        let read = self.inner.read.read();
        if read.node(node_id.as_str()).is_none() {
            return Err(AppError::NotFound { what: "node", id: node_id.to_string() });
        }
        if read.item(sku.as_str()).is_none() {
            return Err(AppError::NotFound { what: "item", id: sku.to_string() });
        }
        Ok(())
    }

    /// The position of a SKU at a node; zero when the node has never held it.
    pub fn position(&self, node_id: &NodeId, sku: &Sku) -> Result<Position> {
        self.require_node_and_item(node_id, sku)?;
        Ok(self
            .inner
            .read
            .read()
            .position(node_id.as_str(), sku.as_str())
            .map(|p| p.position.clone())
            .unwrap_or_else(|| Position::empty(node_id.clone(), sku.clone())))
    }

    /// Replaces the feed-owned counts of one position. Stale `seq`: `AppError::Stale`.
    pub async fn put_position(&self, node_id: NodeId, sku: Sku, update: AbsolutePosition) -> Result<Position> {
        self.require_node_and_item(&node_id, &sku)?;
        let now = self.now_ms();
        let mut tx = self.inner.store.begin().await?;
        let key = [(node_id.clone(), sku.clone())];
        let current = tx
            .lock_positions(&key, now)
            .await?
            .pop()
            .map(|p| p.position)
            .unwrap_or_else(|| Position::empty(node_id, sku));
        let next = inventory::apply_absolute(&current, &update)
            .map_err(|e| AppError::Stale(vec![FieldError::new("seq", e)]))?;
        let written = self.write_positions_in(&mut tx, std::slice::from_ref(&next), now).await?;
        tx.commit().await?;
        self.refresh_and_fill_backorders(written);
        Ok(next)
    }

    /// Applies on-hand deltas, all or nothing. Every offending delta is reported: unknown
    /// node or SKU, on hand going below zero, stale seq. Returns the number of positions
    /// changed.
    pub async fn apply_deltas(&self, deltas: Vec<DeltaInput>) -> Result<usize> {
        if deltas.is_empty() {
            return Err(AppError::invalid("deltas", "must not be empty"));
        }
        if deltas.len() > DELTAS_MAX {
            return Err(AppError::invalid("deltas", format!("at most {DELTAS_MAX} deltas per request")));
        }
        let mut errors = Vec::new();
        let mut known = Vec::with_capacity(deltas.len());
        {
            let read = self.inner.read.read();
            for (index, d) in deltas.iter().enumerate() {
                let node_ok = read.node(d.node_id.as_str()).is_some();
                let item_ok = read.item(d.sku.as_str()).is_some();
                if !node_ok {
                    errors.push(FieldError::new(
                        format!("deltas[{index}].node_id"),
                        format!("unknown node {}", d.node_id),
                    ));
                }
                if !item_ok {
                    errors.push(FieldError::new(format!("deltas[{index}].sku"), format!("unknown SKU {}", d.sku)));
                }
                if node_ok && item_ok {
                    known.push(index);
                }
            }
        }
        let core_deltas: Vec<OnHandDelta> = known
            .iter()
            .map(|&i| {
                let d = &deltas[i];
                OnHandDelta {
                    node_id: d.node_id.clone(),
                    sku: d.sku.clone(),
                    on_hand_delta: d.on_hand_delta,
                    seq: d.seq,
                }
            })
            .collect();
        let now = self.now_ms();
        let mut tx = self.inner.store.begin().await?;
        let changed = match apply_deltas_in(&mut tx, &core_deltas, now).await? {
            Ok(changed) if errors.is_empty() => changed,
            outcome => {
                if let Err(core_errors) = outcome {
                    errors.extend(core_errors.iter().map(|(i, e)| update_error_field(known[*i], e)));
                }
                tx.rollback().await?;
                errors.sort_by_key(|e| field_index(&e.field));
                let all_stale = errors.iter().all(|e| e.field.ends_with(".seq"));
                return Err(if all_stale { AppError::Stale(errors) } else { AppError::Invalid(errors) });
            }
        };
        let written = self.write_positions_in(&mut tx, &changed, now).await?;
        tx.commit().await?;
        let count = written.len();
        self.refresh_and_fill_backorders(written);
        Ok(count)
    }

    /// Writes positions changed inside `tx` with their `inventory.changed` event and change
    /// note; the caller commits and then refreshes the read model with the answer.
    pub(crate) async fn write_positions_in(
        &self,
        tx: &mut allot_store::Tx,
        changed: &[Position],
        now: i64,
    ) -> Result<Vec<StoredPosition>> {
        let written = tx.write_positions(changed, now).await?;
        tx.insert_events(&[inventory_changed(&written, now)]).await?;
        self.notify(tx, || self.positions_note(&written)).await?;
        Ok(written)
    }

    /// Replaces a node's whole inventory with a snapshot (SKUs absent go to zero).
    /// Returns the number of positions written.
    pub async fn apply_snapshot(&self, node_id: NodeId, snapshot: SnapshotInput) -> Result<usize> {
        if snapshot.entries.len() > SNAPSHOT_POSITIONS_MAX {
            return Err(AppError::invalid("positions", format!("at most {SNAPSHOT_POSITIONS_MAX} positions")));
        }
        let skus: Vec<Sku> = snapshot.entries.iter().map(|e| e.sku.clone()).collect();
        {
            let read = self.inner.read.read();
            if read.node(node_id.as_str()).is_none() {
                return Err(AppError::NotFound { what: "node", id: node_id.to_string() });
            }
            let unknown: Vec<FieldError> = skus
                .iter()
                .enumerate()
                .filter(|(_, s)| read.item(s.as_str()).is_none())
                .map(|(i, s)| FieldError::new(format!("positions[{i}].sku"), format!("unknown SKU {s}")))
                .collect();
            if !unknown.is_empty() {
                return Err(AppError::Invalid(unknown));
            }
        }
        let now = self.now_ms();
        let mut tx = self.inner.store.begin().await?;
        let stored: Vec<Position> =
            tx.lock_node_positions(&node_id, &skus, now).await?.into_iter().map(|p| p.position).collect();
        let next = match inventory::apply_snapshot(&node_id, &stored, &snapshot.entries, snapshot.seq) {
            Ok(next) => next,
            Err(e @ inventory::SnapshotError::StaleSeq { .. }) => {
                tx.rollback().await?;
                return Err(AppError::Stale(vec![FieldError::new("seq", e)]));
            }
            Err(e @ inventory::SnapshotError::DuplicateSku { second, .. }) => {
                tx.rollback().await?;
                return Err(AppError::invalid(format!("positions[{second}].sku"), e));
            }
        };
        let written = tx.write_positions(&next, now).await?;
        tx.insert_events(&[inventory_changed(&written, now)]).await?;
        let note = crate::change_note::ChangeNote { node_positions: vec![node_id.to_string()], ..self.change() };
        self.notify(&mut tx, || note).await?;
        tx.commit().await?;
        let count = written.len();
        self.refresh_and_fill_backorders(written);
        Ok(count)
    }

    pub(crate) fn positions_note(&self, written: &[StoredPosition]) -> crate::change_note::ChangeNote {
        self.position_keys_note(written.iter().map(|p| (&p.position.node_id, &p.position.sku)))
    }

    /// [`App::positions_note`] from the positions' keys.
    pub(crate) fn position_keys_note<'k>(
        &self,
        keys: impl Iterator<Item = (&'k NodeId, &'k Sku)>,
    ) -> crate::change_note::ChangeNote {
        let positions = keys.map(|(n, s)| (n.to_string(), s.to_string())).collect();
        crate::change_note::ChangeNote { positions, ..self.change() }
    }

    /// Refreshes the read model with an inventory write, then sources backordered orders
    /// of SKUs that now have stock to promise, in the background.
    fn refresh_and_fill_backorders(&self, written: Vec<StoredPosition>) {
        let backorders =
            written.iter().filter(|p| p.position.counts.atp().get() > 0).map(|p| p.position.sku.to_string()).collect();
        self.refresh_positions(written);
        self.follow_up_later(FollowUp { backorders, ..FollowUp::default() });
    }

    pub(crate) fn refresh_positions(&self, written: Vec<StoredPosition>) {
        self.inner.read.update(|m| {
            for p in written {
                m.apply_position(p);
            }
        });
    }

    /// Network and per-node ATP for each SKU, from the read model. Only active nodes count;
    /// with `method`, only nodes with the matching capability; with a point, distances
    /// are given, nodes are sorted nearest first and `radius_km` (if any) bounds them.
    /// Nodes with zero ATP are left out of `nodes`.
    pub fn availability(&self, query: &AvailabilityQuery) -> Result<Availability> {
        if query.skus.is_empty() {
            return Err(AppError::invalid("sku", "give at least one sku"));
        }
        if query.skus.len() > AVAILABILITY_SKUS_MAX {
            return Err(AppError::invalid("sku", format!("at most {AVAILABILITY_SKUS_MAX} SKUs per request")));
        }
        if query.radius_km.is_some() && query.near.is_none() {
            return Err(AppError::invalid("radius_km", "needs lat and lon"));
        }
        let read = self.inner.read.read();
        let unknown: Vec<FieldError> = query
            .skus
            .iter()
            .filter(|s| read.item(s.as_str()).is_none())
            .map(|s| FieldError::new("sku", format!("unknown SKU {s}")))
            .collect();
        if !unknown.is_empty() {
            return Err(AppError::Invalid(unknown));
        }
        let capability = query.method.map(FulfillmentMethod::required_capability);
        let method = query.method.unwrap_or(FulfillmentMethod::Ship);
        let selling = match (&query.channel, &query.policy) {
            (None, None) => None,
            (channel, policy) => Some(self.selling_filters(channel.as_ref(), policy.as_deref(), method)?),
        };
        let items = query
            .skus
            .iter()
            .map(|sku| {
                let mut nodes: Vec<NodeAvailability> = read
                    .active_positions(sku)
                    .filter_map(|(node, p)| {
                        if capability.is_some_and(|c| !node.has(c)) {
                            return None;
                        }
                        let mut atp = p.position.counts.atp();
                        if let Some(filters) = &selling {
                            if !filters.admits(node) {
                                return None;
                            }
                            // Protection holds stock back from ship-type lines only.
                            if !method.at_counter() {
                                let kept = Qty::new(filters.protected_units(node.node_type)).unwrap_or(Qty::MAX);
                                atp = atp.checked_sub(kept).unwrap_or(Qty::ZERO);
                            }
                        }
                        if atp == Qty::ZERO {
                            return None;
                        }
                        let distance_km = query.near.map(|at| at.distance_km(node.location));
                        if let (Some(d), Some(r)) = (distance_km, query.radius_km)
                            && d > r
                        {
                            return None;
                        }
                        Some(NodeAvailability { node_id: node.id.clone(), atp, distance_km })
                    })
                    .collect();
                nodes.sort_by(|a, b| {
                    a.distance_km
                        .unwrap_or(0.0)
                        .total_cmp(&b.distance_km.unwrap_or(0.0))
                        .then_with(|| a.node_id.cmp(&b.node_id))
                });
                SkuAvailability { sku: sku.clone(), atp: nodes.iter().map(|n| n.atp.get()).sum(), nodes }
            })
            .collect();
        Ok(Availability { items })
    }
}

/// Sort key for `deltas[12].field` style paths: the index, so errors list in input order.
fn field_index(field: &str) -> usize {
    field
        .split_once('[')
        .and_then(|(_, rest)| rest.split_once(']'))
        .and_then(|(n, _)| n.parse().ok())
        .unwrap_or(usize::MAX)
}

/// One `inventory.changed` event per feed write (coalesced: a 100,000-delta batch is one
/// event): the positions written with their on hand and ATP after the write.
/// Locks the positions of `deltas` in `tx` and applies them, all or nothing: the positions
/// changed, or the core's refusals by delta index (nothing changed).
pub(crate) async fn apply_deltas_in(
    tx: &mut allot_store::Tx,
    deltas: &[OnHandDelta],
    now: i64,
) -> Result<std::result::Result<Vec<Position>, Vec<(usize, UpdateError)>>> {
    let keys: Vec<(NodeId, Sku)> = deltas.iter().map(|d| (d.node_id.clone(), d.sku.clone())).collect();
    let mut state: HashMap<(NodeId, Sku), Position> = tx
        .lock_positions(&keys, now)
        .await?
        .into_iter()
        .map(|p| ((p.position.node_id.clone(), p.position.sku.clone()), p.position))
        .collect();
    Ok(inventory::apply_deltas(&mut state, deltas)
        .map(|touched| touched.iter().filter_map(|k| state.remove(k)).collect()))
}
