//! Inbound supply and preorders: stock expected at a node by a date (a purchase order or
//! a transfer), which backordered units may be promised against before it arrives.
//!
//! - Supply is not stock. It never enters ATP, so nothing can be allocated from it; what
//!   it gives is an expected date ("ATP over time"): `GET /v1/inventory/supply` lists the
//!   open supply of a SKU with the units not yet promised.
//! - Commitments: the backordered units of each SKU are matched to its expected supply,
//!   earliest ETA first, the oldest promise first (earliest promised date, unpromised
//!   after promised, then order age). They are recomputed for the SKU whenever its supply
//!   or its backorders change (supply added, received or cancelled; an order placed with
//!   backordered units; backorders filled or cancelled), so they always describe the
//!   current backlog. A change is an `order.supply_committed` event naming the order's
//!   expected units (an empty list when they were released).
//! - Receiving puts the received units on hand at the node (as an inventory delta, in the
//!   transaction that closes the supply) and fills backorders at once: the orders the
//!   supply was committed to first, then the SKU's other backorders by promise. A feed
//!   that also reports the receipt as a delta would count it twice; a feed of absolute
//!   positions or snapshots does not (it overwrites). A supply may arrive in several
//!   receipts (each a row, its reference taken once); the units still expected keep their
//!   promises until they arrive, the supply is closed, or it is cancelled.
//! - Limits: commitments match units by SKU and date only — a line that could not use the
//!   supply's node (a node its order excluded after a failure) still gets a date from it,
//!   and on receipt the fill then gives the units to the next orders. Recomputing a SKU
//!   reads its whole backlog (one indexed query, linear work under the SKU's supply row
//!   locks); a new unpromised preorder is appended without it.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use allot_core::inventory::OnHandDelta;
use allot_core::{NodeId, Sku};
use allot_store::{CommitmentRow, SupplyFilter, SupplyRow};

use crate::events::{commitment_event, supply_event};
use crate::workers::FollowUp;
use crate::{App, AppError, FieldError, ListPage, Result};

/// Latest ETA accepted: two years ahead.
pub const SUPPLY_ETA_MAX_MS: i64 = 2 * 366 * 24 * 3_600_000;
/// Most units one supply record may carry.
pub const SUPPLY_QUANTITY_MAX: i64 = 1_000_000_000;

/// New expected supply.
#[derive(Debug, Clone)]
pub struct SupplyInput {
    pub node_id: NodeId,
    pub sku: Sku,
    pub quantity: i64,
    pub eta_ms: i64,
}

/// One receipt of expected supply.
#[derive(Debug, Clone, Default)]
pub struct SupplyReceipt {
    /// Units received; `None`: all still expected.
    pub quantity: Option<i64>,
    /// The receiver's own reference (an ASN or goods-received note number): a receipt
    /// with a reference already taken for this supply is a retry and adds nothing.
    pub reference: Option<String>,
}

/// A supply's commitments, oldest first (they are released when units arrive).
async fn released_commitments(tx: &mut allot_store::Tx, supply: &SupplyRow) -> Result<Vec<CommitmentRow>> {
    let mut released = tx.commitments_of(std::slice::from_ref(&supply.supply_id)).await?;
    released.sort_by(|a, b| (a.committed_at_ms, &a.order_id).cmp(&(b.committed_at_ms, &b.order_id)));
    Ok(released)
}

/// The orders of some commitments, each once, in their order.
fn orders_of(commitments: &[CommitmentRow]) -> Vec<String> {
    let mut seen = BTreeSet::new();
    commitments.iter().filter(|c| seen.insert(c.order_id.clone())).map(|c| c.order_id.clone()).collect()
}

/// A supply record with the backordered units promised against it.
#[derive(Debug, Clone)]
pub struct SupplyEntry {
    pub supply: SupplyRow,
    pub commitments: Vec<CommitmentRow>,
}

impl App {
    /// Records supply expected at a node and promises backordered units against it.
    pub async fn add_supply(&self, input: SupplyInput) -> Result<SupplyEntry> {
        let now = self.now_ms();
        let mut errors = Vec::new();
        {
            let read = self.inner.read.read();
            if read.node(input.node_id.as_str()).is_none() {
                errors.push(FieldError::new("node_id", format!("unknown node {}", input.node_id)));
            }
            if read.item(input.sku.as_str()).is_none() {
                errors.push(FieldError::new("sku", format!("unknown SKU {}", input.sku)));
            }
        }
        if !(1..=SUPPLY_QUANTITY_MAX).contains(&input.quantity) {
            errors.push(FieldError::new("quantity", format!("must be 1–{SUPPLY_QUANTITY_MAX}")));
        }
        if input.eta_ms < now {
            errors.push(FieldError::new("eta", "must not be in the past (receive stock that has arrived)"));
        } else if input.eta_ms > now + SUPPLY_ETA_MAX_MS {
            errors.push(FieldError::new("eta", "at most two years ahead"));
        }
        if !errors.is_empty() {
            return Err(AppError::Invalid(errors));
        }
        let row = SupplyRow {
            supply_id: self.new_id("sup", now),
            node_id: input.node_id.to_string(),
            sku: input.sku.to_string(),
            quantity: input.quantity,
            committed: 0,
            eta_ms: input.eta_ms,
            status: "expected".to_owned(),
            received: 0,
            created_at_ms: now,
            updated_at_ms: now,
        };
        let mut tx = self.inner.store.begin().await?;
        tx.insert_supply(&row).await?;
        tx.insert_events(&[supply_event("supply.expected", &row, now)]).await?;
        tx.commit().await?;
        self.recommit_supply(std::slice::from_ref(&row.sku)).await?;
        self.supply_row_entry(&row.supply_id).await
    }

    pub async fn supply_entry(&self, supply_id: &allot_core::SupplyId) -> Result<SupplyEntry> {
        self.supply_row_entry(supply_id.as_str()).await
    }

    /// [`App::supply_entry`] by a row's id.
    pub(crate) async fn supply_row_entry(&self, supply_id: &str) -> Result<SupplyEntry> {
        let supply = self
            .inner
            .store
            .supply(supply_id)
            .await?
            .ok_or_else(|| AppError::NotFound { what: "supply", id: supply_id.to_owned() })?;
        let commitments = self.inner.store.supply_commitments(supply_id).await?;
        Ok(SupplyEntry { supply, commitments })
    }

    /// One page of supply, in creation order.
    pub async fn list_supply(&self, mut filter: SupplyFilter) -> Result<ListPage<SupplyRow>> {
        let limit = usize::try_from(filter.limit).unwrap_or(0);
        filter.limit += 1;
        let mut entries = self.inner.store.list_supply(&filter).await?;
        let next_cursor = if entries.len() > limit {
            entries.truncate(limit);
            entries.last().map(|s| s.supply_id.clone())
        } else {
            None
        };
        Ok(ListPage { entries, next_cursor })
    }

    /// Receives expected supply, in one receipt or several: `quantity` (default: all still
    /// expected) units go on hand at the node in the transaction that records the receipt,
    /// then backorders are filled (see the module docs). Receipts add up; once they reach
    /// the expected quantity the supply closes as received (a partly received supply stays
    /// expected for the rest, until [`App::close_supply`] says no more will come). A
    /// receipt naming a `reference` already taken is a retry: it answers the supply as it
    /// is and changes nothing; so does any receipt of a received supply. Cancelled supply
    /// cannot be received (409).
    pub async fn receive_supply(
        &self,
        supply_id: &allot_core::SupplyId,
        receipt: SupplyReceipt,
    ) -> Result<SupplyEntry> {
        let supply_id = supply_id.as_str();
        if receipt.quantity.is_some_and(|q| !(1..=SUPPLY_QUANTITY_MAX).contains(&q)) {
            return Err(AppError::invalid("quantity", format!("must be 1–{SUPPLY_QUANTITY_MAX}")));
        }
        let now = self.now_ms();
        let (mut tx, supply) = match self.lock_to_close(supply_id, "received").await? {
            Ok(open) => open,
            Err(repeat) => return Ok(repeat),
        };
        let units = receipt.quantity.unwrap_or((supply.quantity - supply.received).max(1));
        let Some(received) = tx.add_supply_receipt(supply_id, receipt.reference.as_deref(), units, now).await? else {
            tx.rollback().await?;
            return self.supply_row_entry(supply_id).await;
        };
        // Its commitments end (the units arrived, or some did): their orders are filled
        // first, and all of them hear what they wait for next.
        let released = released_commitments(&mut tx, &supply).await?;
        let committed_orders = orders_of(&released);
        // The units go on hand the way a feed's delta would, in this transaction.
        let delta = OnHandDelta {
            node_id: parse_node(&supply.node_id)?,
            sku: parse_sku(&supply.sku)?,
            on_hand_delta: units,
            seq: None,
        };
        let changed = match crate::inventory::apply_deltas_in(&mut tx, &[delta], now).await? {
            Ok(changed) => changed,
            Err(refused) => {
                tx.rollback().await?;
                let detail = refused.first().map(|(_, e)| e.to_string()).unwrap_or_default();
                return Err(AppError::invalid("quantity", detail));
            }
        };
        let written = self.write_positions_in(&mut tx, &changed, now).await?;
        let status = if received >= supply.quantity {
            tx.close_supply(supply_id, "received", received, now).await?;
            "received"
        } else {
            tx.release_supply_commitments(supply_id, now).await?;
            "expected"
        };
        let after = SupplyRow { status: status.to_owned(), received, committed: 0, updated_at_ms: now, ..supply };
        let event = crate::events::supply_receipt_event(&after, units, receipt.reference.as_deref(), now);
        tx.insert_events(&[event]).await?;
        tx.commit().await?;
        self.refresh_positions(written);
        // The orders this supply was promised to come first, then everyone else by
        // promise; the answer shows them filled.
        self.follow_up_now(FollowUp {
            orders_first: committed_orders,
            backorders: BTreeSet::from([after.sku.clone()]),
            recommit: vec![(after.sku.clone(), released)],
            ..FollowUp::default()
        })
        .await?;
        self.supply_row_entry(supply_id).await
    }

    /// Closes a partly received supply as received: the rest will not come. Its
    /// commitments end and the SKU's backorders are matched to the remaining supply.
    /// Repeating it answers the received supply; a supply nothing was received of is
    /// cancelled instead (409), a cancelled one cannot be closed (409).
    pub async fn close_supply(&self, supply_id: &allot_core::SupplyId) -> Result<SupplyEntry> {
        let supply_id = supply_id.as_str();
        let now = self.now_ms();
        let (mut tx, supply) = match self.lock_to_close(supply_id, "received").await? {
            Ok(open) => open,
            Err(repeat) => return Ok(repeat),
        };
        if supply.received == 0 {
            tx.rollback().await?;
            return Err(AppError::Conflict(vec![FieldError::new(
                "status",
                "nothing of this supply was received: cancel it instead",
            )]));
        }
        let released = released_commitments(&mut tx, &supply).await?;
        tx.close_supply(supply_id, "received", supply.received, now).await?;
        let closed = SupplyRow { status: "received".to_owned(), committed: 0, updated_at_ms: now, ..supply };
        tx.insert_events(&[supply_event("supply.closed", &closed, now)]).await?;
        tx.commit().await?;
        self.follow_up_now(FollowUp { recommit: vec![(closed.sku.clone(), released)], ..FollowUp::default() }).await?;
        self.supply_row_entry(supply_id).await
    }

    /// Cancels expected supply: its commitments end and the SKU's backorders are matched
    /// to the remaining supply. Repeating it answers the cancelled supply; received supply
    /// cannot be cancelled (409).
    pub async fn cancel_supply(&self, supply_id: &allot_core::SupplyId) -> Result<SupplyEntry> {
        let supply_id = supply_id.as_str();
        let now = self.now_ms();
        let (mut tx, supply) = match self.lock_to_close(supply_id, "cancelled").await? {
            Ok(open) => open,
            Err(repeat) => return Ok(repeat),
        };
        let released = tx.commitments_of(std::slice::from_ref(&supply.supply_id)).await?;
        tx.close_supply(supply_id, "cancelled", 0, now).await?;
        let closed = SupplyRow { status: "cancelled".to_owned(), committed: 0, updated_at_ms: now, ..supply };
        tx.insert_events(&[supply_event("supply.cancelled", &closed, now)]).await?;
        tx.commit().await?;
        // Orders that lost their expected units hear about it from the recomputation.
        self.follow_up_now(FollowUp { recommit: vec![(closed.sku.clone(), released)], ..FollowUp::default() }).await?;
        self.supply_row_entry(supply_id).await
    }

    /// Begins closing a supply as `closing` (`received` or `cancelled`): the transaction
    /// holding its row lock while it is expected; `Err(entry)` (nothing changed) when it
    /// already is in that state — a repeat, answered with the supply as it is; 409 when it
    /// was closed the other way; 404 when there is none.
    async fn lock_to_close(
        &self,
        supply_id: &str,
        closing: &str,
    ) -> Result<std::result::Result<(allot_store::Tx, SupplyRow), SupplyEntry>> {
        let mut tx = self.inner.store.begin().await?;
        let Some(supply) = tx.lock_supply(supply_id).await? else {
            tx.rollback().await?;
            return Err(AppError::NotFound { what: "supply", id: supply_id.to_owned() });
        };
        if supply.status == "expected" {
            return Ok(Ok((tx, supply)));
        }
        tx.rollback().await?;
        if supply.status == closing {
            return Ok(Err(self.supply_row_entry(supply_id).await?));
        }
        let message = format!("{} supply cannot be {closing}", supply.status);
        Err(AppError::Conflict(vec![FieldError::new("status", message)]))
    }

    /// Recomputes the commitments of `skus` that have supply expected (see the module
    /// docs); one transaction per SKU. Cheap when there is no open supply (one probe).
    pub(crate) async fn recommit_supply(&self, skus: &[String]) -> Result<()> {
        if skus.is_empty() || !self.inner.store.has_open_supply(skus).await? {
            return Ok(());
        }
        for sku in skus {
            self.recommit_sku(sku, &[]).await?;
        }
        Ok(())
    }

    /// Promises a new order's backordered units against the supply still free, earliest
    /// first, without recomputing the SKU's backlog: a new unpromised line comes last in
    /// promise order, so this is what a recomputation would give it (and the next one
    /// confirms). A promised line may come before others: its SKU is recomputed. Answers
    /// whether there was open supply to promise from (then the order may have changed).
    pub(crate) async fn commit_new_backorders(&self, order: &allot_store::StoredOrder) -> Result<bool> {
        let waiting: Vec<&allot_store::OrderLineRow> = order.lines.iter().filter(|l| l.backordered > 0).collect();
        let skus: Vec<String> = waiting.iter().map(|l| l.sku.clone()).collect();
        if waiting.is_empty() || !self.inner.store.has_open_supply(&skus).await? {
            return Ok(false);
        }
        for line in waiting {
            if line.promised_date.is_some() {
                self.recommit_sku(&line.sku, &[]).await?;
                continue;
            }
            let now = self.now_ms();
            let mut tx = self.inner.store.begin().await?;
            let supplies = tx.open_supply_for_update(&line.sku).await?;
            let mut need = line.backordered;
            let mut rows = Vec::new();
            for s in &supplies {
                let take = need.min(s.quantity - s.received - s.committed);
                if take <= 0 {
                    continue;
                }
                rows.push(CommitmentRow {
                    supply_id: s.supply_id.clone(),
                    order_id: order.order_id.clone(),
                    line_id: line.line_id.clone(),
                    quantity: take,
                    committed_at_ms: now,
                });
                need -= take;
                if need == 0 {
                    break;
                }
            }
            if rows.is_empty() {
                tx.rollback().await?;
                continue;
            }
            let ids: Vec<String> = rows.iter().map(|r| r.supply_id.clone()).collect();
            tx.add_commitments(&ids, &rows).await?;
            let event = commitment_event(&order.order_id, Some(&order.channel), &line.sku, &rows, &supplies, now);
            tx.insert_events(&[event]).await?;
            tx.commit().await?;
        }
        Ok(true)
    }

    /// Recomputes one SKU's commitments. `released` are commitments of a supply just
    /// closed: they count as "before", so their orders hear what they wait for now.
    pub(crate) async fn recommit_sku(&self, sku: &str, released: &[CommitmentRow]) -> Result<()> {
        let now = self.now_ms();
        let mut tx = self.inner.store.begin().await?;
        let supplies = tx.open_supply_for_update(sku).await?;
        let ids: Vec<String> = supplies.iter().map(|s| s.supply_id.clone()).collect();
        let mut before = if ids.is_empty() { Vec::new() } else { tx.commitments_of(&ids).await? };
        before.extend_from_slice(released);
        if ids.is_empty() && before.is_empty() {
            tx.rollback().await?;
            return Ok(());
        }
        let lines = tx.backordered_lines(sku).await?;
        let since: HashMap<(&str, &str, &str), i64> = before
            .iter()
            .map(|c| ((c.supply_id.as_str(), c.order_id.as_str(), c.line_id.as_str()), c.committed_at_ms))
            .collect();
        // Earliest supply to the oldest promise.
        let mut after = Vec::new();
        let mut li = 0;
        let mut need = lines.first().map_or(0, |l| l.backordered);
        for s in &supplies {
            let mut left = s.quantity - s.received;
            while left > 0 && li < lines.len() {
                let take = left.min(need);
                let l = &lines[li];
                let key = (s.supply_id.as_str(), l.order_id.as_str(), l.line_id.as_str());
                after.push(CommitmentRow {
                    supply_id: s.supply_id.clone(),
                    order_id: l.order_id.clone(),
                    line_id: l.line_id.clone(),
                    quantity: take,
                    committed_at_ms: since.get(&key).copied().unwrap_or(now),
                });
                left -= take;
                need -= take;
                if need == 0 {
                    li += 1;
                    need = lines.get(li).map_or(0, |l| l.backordered);
                }
            }
        }
        let key = |c: &CommitmentRow| (c.order_id.clone(), c.line_id.clone(), c.supply_id.clone(), c.quantity);
        let old: BTreeSet<_> = before.iter().map(key).collect();
        let new: BTreeSet<_> = after.iter().map(key).collect();
        if old == new {
            tx.rollback().await?;
            return Ok(());
        }
        if !ids.is_empty() {
            tx.replace_commitments(&ids, &after).await?;
        }
        // One event per order whose expected units changed, naming all of them.
        let changed: BTreeSet<&str> = old.symmetric_difference(&new).map(|k| k.0.as_str()).collect();
        let mut by_order: BTreeMap<&str, Vec<CommitmentRow>> = BTreeMap::new();
        for c in &after {
            if changed.contains(c.order_id.as_str()) {
                by_order.entry(c.order_id.as_str()).or_default().push(c.clone());
            }
        }
        let channel_of: HashMap<&str, &str> = lines.iter().map(|l| (l.order_id.as_str(), l.channel.as_str())).collect();
        let mut events = Vec::with_capacity(changed.len());
        for order_id in changed {
            let channel = match channel_of.get(order_id) {
                Some(c) => Some((*c).to_owned()),
                None => self.inner.store.order(order_id).await?.map(|o| o.channel),
            };
            let rows = by_order.get(order_id).map(Vec::as_slice).unwrap_or_default();
            events.push(commitment_event(order_id, channel.as_deref(), sku, rows, &supplies, now));
        }
        tx.insert_events(&events).await?;
        tx.commit().await?;
        Ok(())
    }
}

fn parse_node(id: &str) -> Result<NodeId> {
    NodeId::parse(id).map_err(|e| {
        AppError::Store(allot_store::StoreError::Corrupt { table: "inbound_supply", detail: e.to_string() })
    })
}

fn parse_sku(sku: &str) -> Result<Sku> {
    Sku::parse(sku).map_err(|e| {
        AppError::Store(allot_store::StoreError::Corrupt { table: "inbound_supply", detail: e.to_string() })
    })
}
