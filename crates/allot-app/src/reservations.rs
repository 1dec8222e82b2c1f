//! Checkout reservations: stock held out of ATP for a cart while the customer pays.
//!
//! A reservation is all or nothing: every line is reserved, or nothing is and the answer
//! says which lines are short. Lines that name a node reserve there; the others are placed
//! by the sourcing engine (the active policy, shipping to `ship_to`) or, without an
//! address, at the nodes with the most ATP (ties by node id) — a cart without an address
//! cannot be routed, and the largest holdings are the least likely to be needed by a
//! store's walk-in customers.
//!
//! Expiry is exact whatever the background sweep does: every transaction that takes
//! stock (reserving, placing an order) first expires the due reservations in the same
//! transaction, and planning first sweeps if any are due. So an expired reservation never
//! makes a request fail or route elsewhere, even if the sweep is late or not running.

use std::collections::BTreeMap;
use std::time::Duration;

use allot_core::sourcing::{LineToSource, OrderToSource};
use allot_core::{ChannelId, FulfillmentMethod, GeoPoint, NodeId, Qty, Sku};
use allot_store::{ReservationLineRow, StockMove, StoredPosition, StoredReservation, Tx};

use crate::{App, AppError, FieldError, Result};

/// Longest reservation, in seconds.
pub const RESERVATION_TTL_MAX_S: u32 = 3600;
/// Most lines in one reservation.
pub const RESERVATION_LINES_MAX: usize = 500;
/// Attempts to reserve when concurrent requests take the planned stock first.
const RESERVE_ATTEMPTS: usize = 3;
/// How often the background sweep expires reservations.
pub const SWEEP_INTERVAL: Duration = Duration::from_millis(500);
/// Reservations expired per sweep transaction.
const SWEEP_BATCH: i64 = 200;

#[derive(Debug, Clone)]
pub struct ReserveLine {
    pub sku: Sku,
    pub quantity: Qty,
    pub node: Option<NodeId>,
}

/// A reservation request. `owner` is the caller's channel (`None` for an admin key).
#[derive(Debug, Clone)]
pub struct ReserveInput {
    pub owner: Option<ChannelId>,
    pub lines: Vec<ReserveLine>,
    pub ship_to: Option<GeoPoint>,
    pub ttl_s: u32,
}

fn owner_str(owner: Option<&ChannelId>) -> String {
    owner.map(|c| c.to_string()).unwrap_or_default()
}

impl App {
    /// Reserves every line or nothing (see the module docs).
    pub async fn reserve(&self, input: ReserveInput) -> Result<StoredReservation> {
        self.validate_reservation(&input)?;
        self.sweep_if_due().await?;
        for attempt in 1..=RESERVE_ATTEMPTS {
            let last = attempt == RESERVE_ATTEMPTS;
            match self.reserve_once(&input, last).await {
                Ok(Some(r)) => return Ok(r),
                Ok(None) => {}
                // PostgreSQL deadlock or serialization failure: rolled back; try again.
                Err(AppError::Store(e)) if e.is_retryable_conflict() && !last => {}
                Err(e) => return Err(e),
            }
        }
        Err(self.shortage(&input))
    }

    /// One attempt; `None` when planned stock was taken first (positions re-read).
    async fn reserve_once(&self, input: &ReserveInput, last: bool) -> Result<Option<StoredReservation>> {
        let plan = self.plan_reservation(input)?;
        let now = self.now_ms();
        let mut tx = self.inner.store.begin().await?;
        let mut written = Vec::new();
        self.expire_due_in(&mut tx, now, &mut written).await?;
        let mut failed = Vec::new();
        // Node × SKU order: concurrent reservations lock positions in the same order.
        for ((node, sku), q) in &plan {
            match tx.move_stock(StockMove::Reserve, node, sku, *q, now).await? {
                Some(p) => written.push(p),
                None => failed.push((node.clone(), sku.clone())),
            }
        }
        if !failed.is_empty() {
            tx.rollback().await?;
            self.reload_positions(&failed).await?;
            if last {
                return Err(self.shortage(input));
            }
            return Ok(None);
        }
        let reservation = StoredReservation {
            reservation_id: self.new_id("res", now),
            owner: owner_str(input.owner.as_ref()),
            status: "active".to_owned(),
            expires_at_ms: now + i64::from(input.ttl_s) * 1000,
            created_at_ms: now,
            closed_at_ms: None,
            order_id: None,
            lines: plan
                .iter()
                .map(|((node, sku), q)| ReservationLineRow {
                    node_id: node.to_string(),
                    sku: sku.to_string(),
                    quantity: *q as i64,
                })
                .collect(),
        };
        tx.insert_reservation(&reservation).await?;
        self.notify(&mut tx, || self.positions_note(&written)).await?;
        tx.commit().await?;
        self.refresh_positions(written);
        Ok(Some(reservation))
    }

    fn validate_reservation(&self, input: &ReserveInput) -> Result<()> {
        let mut errors = Vec::new();
        if input.lines.is_empty() || input.lines.len() > RESERVATION_LINES_MAX {
            errors.push(FieldError::new("lines", format!("1–{RESERVATION_LINES_MAX} lines")));
        }
        if input.ttl_s == 0 || input.ttl_s > RESERVATION_TTL_MAX_S {
            errors.push(FieldError::new("ttl_s", format!("must be 1–{RESERVATION_TTL_MAX_S} seconds")));
        }
        let read = self.inner.read.read();
        for (i, l) in input.lines.iter().enumerate() {
            if read.item(l.sku.as_str()).is_none() {
                errors.push(FieldError::new(format!("lines[{i}].sku"), format!("unknown SKU {}", l.sku)));
            }
            if let Some(node) = &l.node {
                match read.node(node.as_str()) {
                    None => errors.push(FieldError::new(format!("lines[{i}].node_id"), format!("unknown node {node}"))),
                    Some(n) if !n.node.is_active() => errors.push(FieldError::new(
                        format!("lines[{i}].node_id"),
                        format!("node {node} is {}", n.node.status.as_str()),
                    )),
                    Some(_) => {}
                }
            }
        }
        if errors.is_empty() { Ok(()) } else { Err(AppError::Invalid(errors)) }
    }

    /// Node × SKU → units to reserve, from the read model.
    fn plan_reservation(&self, input: &ReserveInput) -> Result<BTreeMap<(NodeId, Sku), u64>> {
        let mut plan: BTreeMap<(NodeId, Sku), u64> = BTreeMap::new();
        let mut free: Vec<(usize, &ReserveLine)> = Vec::new();
        for (i, l) in input.lines.iter().enumerate() {
            match &l.node {
                Some(node) => *plan.entry((node.clone(), l.sku.clone())).or_default() += l.quantity.get(),
                None => free.push((i, l)),
            }
        }
        if free.is_empty() {
            return Ok(plan);
        }
        if let Some(ship_to) = input.ship_to {
            let order = OrderToSource {
                ship_to: Some(ship_to),
                lines: free
                    .iter()
                    .map(|(i, l)| LineToSource {
                        line_id: i.to_string(),
                        sku: l.sku.clone(),
                        quantity: l.quantity,
                        method: FulfillmentMethod::Ship,
                        pickup_node: None,
                        service_level: None,
                        allow_backorder: false,
                        unit_price_minor: 0,
                    })
                    .collect(),
                ..OrderToSource::default()
            };
            let quote = self.plan(&order, None)?;
            if !quote.decision.plan.unfilled.is_empty() || !quote.decision.plan.backordered.is_empty() {
                return Err(self.shortage(input));
            }
            for pkg in &quote.decision.plan.packages {
                for l in &pkg.lines {
                    *plan.entry((pkg.node_id.clone(), l.sku.clone())).or_default() += l.quantity.get();
                }
            }
            return Ok(plan);
        }
        // No address: the largest holdings first.
        let read = self.inner.read.read();
        let mut taken: BTreeMap<(NodeId, Sku), u64> = BTreeMap::new();
        for (_, l) in free {
            let mut holdings: Vec<(u64, &NodeId)> = read
                .active_positions(&l.sku)
                .map(|(node, p)| {
                    let key = (node.id.clone(), l.sku.clone());
                    let already = plan.get(&key).copied().unwrap_or(0) + taken.get(&key).copied().unwrap_or(0);
                    (p.position.counts.atp().get().saturating_sub(already), &node.id)
                })
                .filter(|(atp, _)| *atp > 0)
                .collect();
            holdings.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(b.1)));
            let mut left = l.quantity.get();
            for (atp, node) in holdings {
                if left == 0 {
                    break;
                }
                let q = left.min(atp);
                *taken.entry((node.clone(), l.sku.clone())).or_default() += q;
                left -= q;
            }
            if left > 0 {
                drop(read);
                return Err(self.shortage(input));
            }
        }
        for (k, q) in taken {
            *plan.entry(k).or_default() += q;
        }
        Ok(plan)
    }

    /// The 409 answer when a reservation cannot be met: each short line with what is
    /// available for it now (at its node, or across active nodes).
    fn shortage(&self, input: &ReserveInput) -> AppError {
        let read = self.inner.read.read();
        let mut errors = Vec::new();
        for (i, l) in input.lines.iter().enumerate() {
            let available: u64 = match &l.node {
                Some(node) => read.position(node.as_str(), l.sku.as_str()).map_or(0, |p| p.position.counts.atp().get()),
                None => read.active_positions(&l.sku).map(|(_, p)| p.position.counts.atp().get()).sum(),
            };
            if available < l.quantity.get() {
                errors.push(FieldError::new(
                    format!("lines[{i}].quantity"),
                    format!("only {available} of {} available to reserve", l.sku),
                ));
            }
        }
        if errors.is_empty() {
            errors.push(FieldError::new(
                "lines",
                "the stock could not be reserved within the routing policy (distance, node types)",
            ));
        }
        AppError::Conflict(errors)
    }

    /// A reservation as seen by a caller: a channel key sees only its own.
    pub async fn reservation_for(
        &self,
        id: &allot_core::ReservationId,
        channel: Option<&ChannelId>,
    ) -> Result<StoredReservation> {
        self.reservation_row(id.as_str(), channel).await
    }

    /// [`App::reservation_for`] by a row's id.
    pub(crate) async fn reservation_row(&self, id: &str, channel: Option<&ChannelId>) -> Result<StoredReservation> {
        let r = self
            .inner
            .store
            .reservation(id)
            .await?
            .ok_or_else(|| AppError::NotFound { what: "reservation", id: id.to_owned() })?;
        if channel.is_some_and(|c| c.as_str() != r.owner) {
            return Err(AppError::NotFound { what: "reservation", id: id.to_owned() });
        }
        Ok(r)
    }

    /// Releases a reservation's stock to ATP. Releasing one that is already released or
    /// expired answers it as it is; one converted into an order is a conflict.
    pub async fn release_reservation(
        &self,
        id: &allot_core::ReservationId,
        channel: Option<&ChannelId>,
    ) -> Result<StoredReservation> {
        let id = id.as_str();
        let now = self.now_ms();
        let mut tx = self.inner.store.begin().await?;
        let Some(r) = tx.lock_reservation(id).await? else {
            tx.rollback().await?;
            return Err(AppError::NotFound { what: "reservation", id: id.to_owned() });
        };
        if channel.is_some_and(|c| c.as_str() != r.owner) {
            tx.rollback().await?;
            return Err(AppError::NotFound { what: "reservation", id: id.to_owned() });
        }
        match r.status.as_str() {
            "active" => {}
            "converted" => {
                tx.rollback().await?;
                return Err(AppError::Conflict(vec![FieldError::new(
                    "reservation_id",
                    format!("converted into order {}", r.order_id.unwrap_or_default()),
                )]));
            }
            _ => {
                tx.rollback().await?;
                return Ok(r);
            }
        }
        // Past its expiry but not yet swept: it is expired, not released.
        let status = if r.expires_at_ms <= now { "expired" } else { "released" };
        let written = self.close_in(&mut tx, &r, status, now).await?;
        self.notify(&mut tx, || self.positions_note(&written)).await?;
        tx.commit().await?;
        self.refresh_positions(written);
        self.reservation_row(id, channel).await
    }

    /// Gives an active, locked reservation's stock back and closes it.
    async fn close_in(
        &self,
        tx: &mut Tx,
        r: &StoredReservation,
        status: &str,
        now: i64,
    ) -> Result<Vec<StoredPosition>> {
        let mut written = Vec::new();
        for l in &r.lines {
            let (Ok(node), Ok(sku)) = (NodeId::parse(&l.node_id), Sku::parse(&l.sku)) else { continue };
            match tx.move_stock(StockMove::Unreserve, &node, &sku, l.quantity as u64, now).await? {
                Some(p) => written.push(p),
                None => {
                    let holder = format!("reservation {}", r.reservation_id);
                    return Err(AppError::stock_mismatch(&node, &sku, "reserved", &holder));
                }
            }
        }
        tx.close_reservation(&r.reservation_id, status, None, now).await?;
        Ok(written)
    }

    /// Expires every due reservation inside `tx` (see the module docs).
    pub(crate) async fn expire_due_in(
        &self,
        tx: &mut Tx,
        now: i64,
        written: &mut Vec<StoredPosition>,
    ) -> Result<usize> {
        let mut n = 0;
        loop {
            let due = tx.due_reservations(now, SWEEP_BATCH).await?;
            let count = due.len();
            for id in due {
                if let Some(r) = tx.lock_reservation(&id).await?
                    && r.status == "active"
                {
                    written.extend(self.close_in(tx, &r, "expired", now).await?);
                    n += 1;
                }
            }
            if (count as i64) < SWEEP_BATCH {
                return Ok(n);
            }
        }
    }

    /// Expires due reservations now, in batches; answers how many.
    pub async fn expire_reservations(&self) -> Result<usize> {
        let now = self.now_ms();
        let mut tx = self.inner.store.begin().await?;
        let mut written = Vec::new();
        let n = self.expire_due_in(&mut tx, now, &mut written).await?;
        if n == 0 {
            tx.rollback().await?;
            return Ok(0);
        }
        self.notify(&mut tx, || self.positions_note(&written)).await?;
        tx.commit().await?;
        self.refresh_positions(written);
        Ok(n)
    }

    /// Expires due reservations before planning, so that the plan sees their stock.
    pub(crate) async fn sweep_if_due(&self) -> Result<usize> {
        if self.inner.store.has_due_reservations(self.now_ms()).await? {
            return self.expire_reservations().await;
        }
        Ok(0)
    }
}
