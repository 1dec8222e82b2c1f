//! Order capture: idempotent intake, sourcing through the engine, and allocation that
//! never oversells.
//!
//! Placement is one write command (`Store::write`: its own transaction on PostgreSQL, a
//! savepoint in a group-committed transaction on SQLite): the plan is made from the read
//! model (fast, possibly a little behind other servers), then the stock of every planned
//! position is taken by one conditional `UPDATE` that succeeds per position only while
//! the database's ATP covers it. If a position fails, the command rolls back, the
//! positions involved are re-read into the read model and the order is sourced again (at
//! most [`PLACE_ATTEMPTS`] times; on the last attempt units whose allocation fails are
//! simply not allocated). The order, its lines, fulfillment orders, allocations and
//! events are written in the same command as the stock they take.
//!
//! The path is kept short because every order of the server passes through it:
//! - **No reads before the write.** A repeated (channel, external_id) is found by the
//!   orders table's unique key inside the write (the attempt rolls back and the stored
//!   order is answered, or a 409 if the body differs); only an order converting a
//!   reservation looks first, because a converted reservation cannot be converted again.
//!   Reservations past their expiry are expired only when they could be in the way: when
//!   the plan leaves units unplaced (then due reservations are expired and the order
//!   planned again) and, inside the write, when a planned position comes up short (then
//!   they are expired and the position tried again). So a due reservation never blocks
//!   stock, and the background sweep expires the rest.
//! - **Stock is taken last** (except on the last attempt): the order and its events are
//!   written first as planned, then the planned positions are taken in one statement and,
//!   if one of them comes up short, the attempt rolls back. On PostgreSQL a hot position's
//!   row lock is then held only from that statement to the commit, not while the order is
//!   written; on the last attempt stock is taken first and the order records what it got.
//! - **One round trip for the order's rows, events and stock**
//!   ([`allot_store::Tx::insert_order_taking`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use allot_core::sourcing::{LineToSource, OrderToSource};
use allot_core::{ChannelId, FoEvent, FoKind, FoStatus, NodeId, Sku, Transition};
use allot_store::{AllocationRow, FulfillmentOrderRow, OrderLineRow, Step, StockMove, StoredOrder, StoredPosition};

use serde_json::json;

use crate::rows::{
    REASON_MAX_CHARS, fo_kind, fo_status, line_status, new_allocation, new_fulfillment_order, new_id, order_status,
    stamp_due_dates,
};
use crate::workers::ErrorChain;
use crate::{App, AppError, FieldError, Quote, Result};

/// Attempts to place an order when concurrent orders take the planned stock first.
pub const PLACE_ATTEMPTS: usize = 3;

/// An order as captured, ready to place.
#[derive(Debug, Clone)]
pub struct PlaceOrder {
    pub channel: ChannelId,
    pub external_id: String,
    /// SHA-256 (hex) of the canonical request, for idempotency.
    pub request_hash: String,
    /// The request as captured (JSON), stored with the order.
    pub document: String,
    pub holds: Vec<String>,
    pub policy: Option<String>,
    /// A checkout reservation converted into this order's allocation.
    pub reservation_id: Option<String>,
    /// Line ids whose units may come as the item's substitutes (in the item's order) when
    /// the ordered SKU cannot be sourced.
    pub substitutable: std::collections::BTreeSet<String>,
    /// A ship promise option the order is placed on (`promise_option_id`): its ship lines
    /// take the service level (unless they name one) and keep the date as their promise,
    /// watched by the jeopardy sweep.
    pub promise: Option<ShipPromise>,
    /// A pickup promise option (`pickup:<store>`): the order's pickup and curbside lines at
    /// that store keep the time it is ready (worked out from the store's calendar when the
    /// order is placed) as their promise.
    pub pickup_promise: Option<NodeId>,
    pub order: OrderToSource,
}

/// A ship option of `POST /v1/promises` an order commits to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShipPromise {
    pub service_level: String,
    pub delivery_date: jiff::civil::Date,
}

/// Lines the customer collects at a store (what a pickup promise covers).
fn is_counter(method: allot_core::FulfillmentMethod) -> bool {
    matches!(method, allot_core::FulfillmentMethod::Pickup | allot_core::FulfillmentMethod::Curbside)
}

/// One placement attempt's plan: the engine's decision, the substitutes planned for what
/// it leaves short, and the decision as stored with the order.
struct Plan {
    quote: Quote,
    subs: Vec<SubstitutePlan>,
    decision: String,
    /// When promised pickup lines are ready (a pickup promise).
    pickup_ready_at_ms: Option<i64>,
    /// The date an order placed with a service level but no promise option is promised.
    implied_promise: Option<jiff::civil::Date>,
}

/// Units of a line planned as a substitute SKU: (node, units) per package.
#[derive(Debug, Clone)]
struct SubstitutePlan {
    line: usize,
    sku: Sku,
    packages: Vec<(NodeId, u64)>,
}

/// How an order converts a reservation: units pinned to the reservation's nodes, and what
/// is left to source.
struct Conversion {
    reservation_id: String,
    /// (line index, node, SKU) → units taken over from the reservation.
    pinned: BTreeMap<(usize, NodeId, Sku), u64>,
    /// The order minus the pinned units (lines with nothing left are dropped).
    residual: OrderToSource,
}

/// How one placement attempt ended.
enum Attempt {
    /// The (channel, external_id) was placed meanwhile.
    Exists,
    /// Planned stock was taken by others first: re-read these positions and plan again.
    Retry(Vec<(NodeId, Sku)>),
    /// Written; `failed` units (last attempt only) were left unallocated.
    Placed { order: Box<StoredOrder>, written: Vec<StoredPosition>, failed: Vec<(NodeId, Sku)> },
}

/// Whether a reservation can still be converted, as a conflict naming why not.
fn check_convertible(r: &allot_store::StoredReservation, now: i64) -> Result<()> {
    let why = match r.status.as_str() {
        "active" if r.expires_at_ms > now => return Ok(()),
        "active" | "expired" => "expired".to_owned(),
        "converted" => format!("already converted into order {}", r.order_id.as_deref().unwrap_or("")),
        other => other.to_owned(),
    };
    Err(AppError::Conflict(vec![FieldError::new(
        "reservation_id",
        format!("reservation {} is {why}", r.reservation_id),
    )]))
}

/// The result of placing: the stored order, and whether this call created it.
#[derive(Debug, Clone)]
pub struct Placed {
    pub order: StoredOrder,
    pub created: bool,
}

impl App {
    /// Places an order (see the module docs). The sourcing decision is stored as the
    /// installed renderer makes it ([`App::set_decision_renderer`]).
    pub async fn place_order(&self, mut input: PlaceOrder) -> Result<Placed> {
        if let Some(p) = &input.promise {
            let to_customer =
                |m| matches!(m, allot_core::FulfillmentMethod::Ship | allot_core::FulfillmentMethod::SameDay);
            for l in input.order.lines.iter_mut().filter(|l| to_customer(l.method)) {
                l.service_level.get_or_insert_with(|| p.service_level.clone());
            }
            // The engine weighs each node's delivery date against the promise
            // (`must_meet_promise`, `late_penalty_minor_per_day`).
            input.order.promise = Some(
                self.promise_terms(&input.order, &p.service_level, p.delivery_date, input.policy.as_deref(), false)
                    .await?,
            );
        }
        if input.external_id.is_empty() {
            return Err(AppError::invalid("external_id", "required"));
        }
        let pickup_ready_at_ms = match &input.pickup_promise {
            Some(store) => Some(self.pickup_ready_at(store, &input.order)?),
            None => None,
        };
        // Idempotency: the same (channel, external_id) answers the stored order — found by
        // the unique key inside the write (module docs); a conversion looks first, as its
        // reservation is gone once converted.
        if input.reservation_id.is_some()
            && let Some(existing) = self.existing_order(&input).await?
        {
            return Ok(existing);
        }
        let conversion = match &input.reservation_id {
            Some(id) => Some(self.plan_conversion(id, &input).await?),
            None => None,
        };
        let input = Arc::new(input);
        let conversion = conversion.map(Arc::new);
        for attempt in 1..=PLACE_ATTEMPTS {
            let last = attempt == PLACE_ATTEMPTS;
            let to_source = conversion.as_ref().map_or(&input.order, |c| &c.residual);
            let mut quote = self.quote(to_source, input.policy.as_deref())?;
            // Units the plan cannot place may sit in reservations past their expiry that the
            // sweep has not reached: expire them and plan again (module docs).
            let short = !quote.decision.plan.backordered.is_empty() || !quote.decision.plan.unfilled.is_empty();
            if attempt == 1 && short && self.may_hold_reservations(to_source) && self.sweep_if_due().await? > 0 {
                quote = self.quote(to_source, input.policy.as_deref())?;
            }
            let subs = self.plan_substitutes(&input, to_source, &quote)?;
            let decision = self.render_decision(&quote);
            let implied_promise = match input.promise {
                Some(_) => None,
                None => self.implied_promise(to_source, &quote, input.policy.as_deref()).await?,
            };
            let plan = Plan { quote, subs, decision, pickup_ready_at_ms, implied_promise };
            // First attempt, no reservation to convert, on a store that can (PostgreSQL): one
            // autocommit statement (module docs); a shortfall plans again through the write
            // command.
            let one_statement = self.inner.store.first_placement() == allot_store::FirstPlacement::OneStatement;
            let outcome = if attempt == 1 && conversion.is_none() && one_statement {
                self.place_at_once(&input, plan).await
            } else {
                let (app, inp, conv) = (self.clone(), input.clone(), conversion.clone());
                // The command may run on the SQLite writer's thread: carry the actor along.
                let actor = crate::events::current_actor();
                self.inner
                    .store
                    .write(move |tx| {
                        Box::pin(crate::events::acting_as(actor, async move {
                            app.place_in(tx, &inp, conv.as_deref(), plan, last).await
                        }))
                    })
                    .await
            };
            // A deadlock or serialization failure between concurrent transactions on
            // PostgreSQL (e.g. two orders expiring different reservations before taking
            // each other's positions) rolled everything back: plan and try again.
            let outcome = match outcome {
                Err(AppError::Store(e)) if e.is_retryable_conflict() && !last => continue,
                other => other?,
            };
            match outcome {
                Attempt::Exists => {
                    if let Some(existing) = self.existing_order(&input).await? {
                        return Ok(existing);
                    }
                }
                Attempt::Retry(failed) => self.reload_positions(&failed).await?,
                Attempt::Placed { order, written, failed } => {
                    self.refresh_positions(written);
                    if !failed.is_empty() {
                        self.reload_positions(&failed).await?;
                    }
                    // A preorder: its backordered units may be promised against supply.
                    if order.lines.iter().any(|l| l.backordered > 0) {
                        let promised = match self.commit_new_backorders(&order).await {
                            Ok(promised) => promised,
                            Err(e) => {
                                tracing::warn!(order = %order.order_id, error = %ErrorChain(&e), "promising supply failed");
                                true
                            }
                        };
                        // The answer shows what the preorder's units are expected from.
                        if promised {
                            let order = self.order_by_id(&order.order_id).await?;
                            return Ok(Placed { order, created: true });
                        }
                    }
                    return Ok(Placed { order: *order, created: true });
                }
            }
        }
        Err(AppError::invalid("lines", "the order could not be placed; retry"))
    }

    /// One placement attempt as one autocommit statement on PostgreSQL
    /// ([`allot_store::Store::place_order_at_once`]): every planned position must cover its
    /// units or nothing is written, and the attempt answers `Retry` with all of them.
    async fn place_at_once(&self, input: &PlaceOrder, plan: Plan) -> Result<Attempt> {
        let Plan { quote, subs, decision, pickup_ready_at_ms, implied_promise } = plan;
        let now = self.now_ms();
        let wants = planned_wants(&quote, &subs);
        let ok = wants.keys().cloned().collect();
        let (mut taken, mut failed) = (BTreeMap::new(), Vec::new());
        apportion(input, &quote, &subs, &ok, &mut taken, &mut failed);
        let (order, events) =
            self.compose(input, &quote, &taken, decision, pickup_ready_at_ms, implied_promise.as_ref(), now);
        let note = || self.position_keys_note(wants.keys().map(|(n, s)| (n, s))).payload();
        match self.inner.store.place_order_at_once(&order, &events, &wants, now, note).await {
            Ok(allot_store::AtOnce::Placed(written)) => Ok(Attempt::Placed { order: Box::new(order), written, failed }),
            Ok(allot_store::AtOnce::Short) => Ok(Attempt::Retry(wants.into_keys().collect())),
            Err(e) if e.is_unique_violation() => Ok(Attempt::Exists),
            Err(e) => Err(e.into()),
        }
    }

    /// One placement attempt inside a write transaction (see the module docs).
    async fn place_in(
        &self,
        tx: &mut allot_store::Tx,
        input: &PlaceOrder,
        conversion: Option<&Conversion>,
        plan: Plan,
        last: bool,
    ) -> Result<Step<Attempt>> {
        let Plan { quote, subs, decision, pickup_ready_at_ms, implied_promise } = plan;
        let (quote, subs) = (&quote, subs.as_slice());
        let now = self.now_ms();
        let mut written: Vec<StoredPosition> = Vec::new();
        // (line index, node, SKU taken) → units
        let mut taken: BTreeMap<(usize, NodeId, Sku), u64> = BTreeMap::new();
        if let Some(c) = conversion {
            self.take_reservation(tx, c, now, &mut taken, &mut written).await?;
        }
        // The planned stock: one statement for every position of the plan. A position that
        // does not cover the plan's units there takes nothing (all its lines fail).
        let wants = planned_wants(quote, subs);
        // Stock last (module docs): the order is written as if every position covers its
        // units, and the attempt rolls back below if one does not.
        let take_last = !last;
        let ok: std::collections::BTreeSet<(NodeId, Sku)> = if take_last {
            wants.keys().cloned().collect()
        } else {
            self.take_stock(tx, &wants, now, &mut written, None).await?
        };
        let mut failed: Vec<(NodeId, Sku)> = Vec::new();
        apportion(input, quote, subs, &ok, &mut taken, &mut failed);
        let (order, events) =
            self.compose(input, quote, &taken, decision, pickup_ready_at_ms, implied_promise.as_ref(), now);
        // The same (channel, external_id) placed before: its unique key refuses this one.
        if take_last {
            // Only the positions are news to other servers (delivered at commit), so the
            // note goes first, out of the time the positions' row locks are held.
            let keys = written.iter().map(|p| (&p.position.node_id, &p.position.sku));
            self.notify_reusing_plans(tx, || self.position_keys_note(keys.chain(wants.keys().map(|(n, s)| (n, s)))))
                .await?;
            let took = match tx.insert_order_taking(&order, &events, &wants, now).await {
                Err(e) if e.is_unique_violation() => return Ok(Step::Rollback(Attempt::Exists)),
                other => other?,
            };
            let ok = self.take_stock(tx, &wants, now, &mut written, Some(took)).await?;
            if ok.len() < wants.len() {
                let short = wants.keys().filter(|k| !ok.contains(*k)).cloned().collect();
                return Ok(Step::Rollback(Attempt::Retry(short)));
            }
        } else {
            match tx.insert_order(&order, &events).await {
                Err(e) if e.is_unique_violation() => return Ok(Step::Rollback(Attempt::Exists)),
                other => other?,
            }
        }
        if let Some(c) = conversion {
            tx.close_reservation(&c.reservation_id, "converted", Some(&order.order_id), now).await?;
        }
        if !take_last {
            self.notify(tx, || self.positions_note(&written)).await?;
        }
        Ok(Step::Commit(Attempt::Placed { order: Box::new(order), written, failed }))
    }

    /// Whether a reservation may hold stock the order's SKUs could use: the read model
    /// shows reserved units at some node (it hears other servers' reservations within a
    /// second; the write re-checks a short position anyway, see [`App::take_stock`]).
    fn may_hold_reservations(&self, order: &OrderToSource) -> bool {
        let read = self.inner.read.read();
        order.lines.iter().any(|l| {
            read.positions
                .get(&l.sku)
                .is_some_and(|by_node| by_node.values().any(|p| p.position.counts.reserved.get() > 0))
        })
    }

    /// Takes the planned stock (`Tx::allocate_many`, or what `first` already took with the
    /// order's rows: `Tx::insert_order_taking`). When a position comes up short and
    /// reservations are past their expiry, they are expired first (a due reservation
    /// never blocks stock) and the short positions tried once more. Appends every position
    /// written to `written` (the read model keeps each one's newest version) and answers
    /// the keys taken.
    async fn take_stock(
        &self,
        tx: &mut allot_store::Tx,
        wants: &BTreeMap<(NodeId, Sku), u64>,
        now: i64,
        written: &mut Vec<StoredPosition>,
        first: Option<Vec<StoredPosition>>,
    ) -> Result<std::collections::BTreeSet<(NodeId, Sku)>> {
        let keys = |ps: &[StoredPosition]| -> std::collections::BTreeSet<(NodeId, Sku)> {
            ps.iter().map(|p| (p.position.node_id.clone(), p.position.sku.clone())).collect()
        };
        let took = match first {
            Some(took) => took,
            None => tx.allocate_many(wants, now).await?,
        };
        let mut ok = keys(&took);
        if ok.len() < wants.len() && self.expire_due_in(tx, now, written).await? > 0 {
            let short: BTreeMap<(NodeId, Sku), u64> =
                wants.iter().filter(|(k, _)| !ok.contains(*k)).map(|(k, q)| (k.clone(), *q)).collect();
            let again = tx.allocate_many(&short, now).await?;
            ok.extend(keys(&again));
            written.extend(again);
        }
        written.extend(took);
        Ok(ok)
    }

    /// For lines that allow substitution and that the plan leaves short, sources the
    /// shortfall as the item's substitutes, in the item's order, each from what the
    /// previous ones left.
    fn plan_substitutes(
        &self,
        input: &PlaceOrder,
        to_source: &OrderToSource,
        quote: &Quote,
    ) -> Result<Vec<SubstitutePlan>> {
        let mut out = Vec::new();
        if input.substitutable.is_empty() {
            return Ok(out);
        }
        // A substitute SKU that another line orders, or that an earlier line already plans
        // to substitute, is not used: each plan is made against the same stock picture, so
        // two plans on one SKU could take its stock twice (and then both fail).
        let mut claimed: std::collections::BTreeSet<Sku> = input.order.lines.iter().map(|l| l.sku.clone()).collect();
        for (li, line) in input.order.lines.iter().enumerate() {
            if !input.substitutable.contains(&line.line_id) {
                continue;
            }
            let Some(wanted) = to_source.lines.iter().find(|l| l.line_id == line.line_id) else { continue };
            let planned: u64 = quote
                .decision
                .plan
                .packages
                .iter()
                .flat_map(|p| p.lines.iter())
                .filter(|l| l.line_id == line.line_id)
                .map(|l| l.quantity.get())
                .sum();
            let mut short = wanted.quantity.get().saturating_sub(planned);
            let substitutes = {
                let read = self.inner.read.read();
                read.item(line.sku.as_str()).map(|i| i.item.substitutes.clone()).unwrap_or_default()
            };
            for sub in substitutes {
                let Ok(quantity) = allot_core::Qty::new(short) else { break };
                if short == 0 {
                    break;
                }
                if !claimed.insert(sub.clone()) {
                    continue;
                }
                let as_sub = LineToSource { sku: sub.clone(), quantity, ..wanted.clone() };
                let q =
                    self.quote(&OrderToSource { lines: vec![as_sub], ..to_source.clone() }, input.policy.as_deref())?;
                let packages: Vec<(NodeId, u64)> = q
                    .decision
                    .plan
                    .packages
                    .iter()
                    .flat_map(|p| p.lines.iter().map(|l| (p.node_id.clone(), l.quantity.get())))
                    .collect();
                let got: u64 = packages.iter().map(|(_, q)| q).sum();
                if got > 0 {
                    short -= got.min(short);
                    out.push(SubstitutePlan { line: li, sku: sub, packages });
                }
            }
        }
        Ok(out)
    }

    /// Matches a reservation's units to the order's lines (same SKU; a pickup line only
    /// at its pickup node), in line order and node id order.
    async fn plan_conversion(&self, id: &str, input: &PlaceOrder) -> Result<Conversion> {
        let found = self.inner.store.reservation(id).await?;
        let Some(r) = found.filter(|r| r.owner.is_empty() || r.owner == input.channel.as_str()) else {
            return Err(AppError::invalid("reservation_id", format!("unknown reservation {id}")));
        };
        check_convertible(&r, self.now_ms())?;
        let mut left: Vec<(NodeId, Sku, u64)> = r
            .lines
            .iter()
            .filter_map(|l| Some((NodeId::parse(&l.node_id).ok()?, Sku::parse(&l.sku).ok()?, l.quantity as u64)))
            .collect();
        let mut pinned = BTreeMap::new();
        let mut residual = OrderToSource { lines: Vec::new(), ..input.order.clone() };
        for (li, line) in input.order.lines.iter().enumerate() {
            let mut want = line.quantity.get();
            for (node, sku, q) in left.iter_mut() {
                if want == 0 {
                    break;
                }
                if *sku != line.sku || *q == 0 || line.pickup_node.as_ref().is_some_and(|p| p != node) {
                    continue;
                }
                let take = want.min(*q);
                *q -= take;
                want -= take;
                *pinned.entry((li, node.clone(), sku.clone())).or_default() += take;
            }
            if want > 0 {
                let quantity = allot_core::Qty::new(want).map_err(|e| AppError::invalid("lines", e))?;
                residual.lines.push(allot_core::sourcing::LineToSource { quantity, ..line.clone() });
            }
        }
        Ok(Conversion { reservation_id: r.reservation_id, pinned, residual })
    }

    /// In the order's transaction: re-checks the reservation, turns its pinned units into
    /// allocations and gives the rest back to ATP.
    async fn take_reservation(
        &self,
        tx: &mut allot_store::Tx,
        c: &Conversion,
        now: i64,
        taken: &mut BTreeMap<(usize, NodeId, Sku), u64>,
        written: &mut Vec<StoredPosition>,
    ) -> Result<()> {
        let Some(r) = tx.lock_reservation(&c.reservation_id).await? else {
            return Err(AppError::invalid("reservation_id", format!("unknown reservation {}", c.reservation_id)));
        };
        check_convertible(&r, now)?;
        let holder = format!("reservation {}", r.reservation_id);
        let corrupt = |node: &NodeId, sku: &Sku| AppError::stock_mismatch(node, sku, "reserved", &holder);
        let mut used: BTreeMap<(NodeId, Sku), u64> = BTreeMap::new();
        for ((li, node, sku), q) in &c.pinned {
            match tx.move_stock(StockMove::Convert, node, sku, *q, now).await? {
                Some(p) => written.push(p),
                None => return Err(corrupt(node, sku)),
            }
            *taken.entry((*li, node.clone(), sku.clone())).or_default() += q;
            *used.entry((node.clone(), sku.clone())).or_default() += q;
        }
        for l in &r.lines {
            let (Ok(node), Ok(sku)) = (NodeId::parse(&l.node_id), Sku::parse(&l.sku)) else { continue };
            let rest = (l.quantity as u64).saturating_sub(used.get(&(node.clone(), sku.clone())).copied().unwrap_or(0));
            if rest > 0 {
                match tx.move_stock(StockMove::Unreserve, &node, &sku, rest, now).await? {
                    Some(p) => written.push(p),
                    None => return Err(corrupt(&node, &sku)),
                }
            }
        }
        Ok(())
    }

    async fn existing_order(&self, input: &PlaceOrder) -> Result<Option<Placed>> {
        let found = self.inner.store.order_ref(input.channel.as_str(), &input.external_id).await?;
        let Some((order_id, hash)) = found else { return Ok(None) };
        if hash != input.request_hash {
            return Err(AppError::Conflict(vec![FieldError::new(
                "external_id",
                format!(
                    "order {} of channel {} exists ({order_id}) with a different body",
                    input.external_id, input.channel
                ),
            )]));
        }
        Ok(Some(Placed { order: self.order_by_id(&order_id).await?, created: false }))
    }

    /// Re-reads positions into the read model (after another transaction took their stock).
    pub(crate) async fn reload_positions(&self, keys: &[(NodeId, Sku)]) -> Result<()> {
        let mut fresh = Vec::with_capacity(keys.len());
        for (n, s) in keys {
            if let Some(p) = self.inner.store.position(n, s).await? {
                fresh.push(p);
            }
        }
        self.refresh_positions(fresh);
        Ok(())
    }

    /// The order as `taken` allocates it (promised dates stamped, parts in order) and the
    /// events that announce it.
    #[allow(clippy::too_many_arguments)]
    fn compose(
        &self,
        input: &PlaceOrder,
        quote: &Quote,
        taken: &BTreeMap<(usize, NodeId, Sku), u64>,
        decision: String,
        pickup_ready_at_ms: Option<i64>,
        implied_promise: Option<&jiff::civil::Date>,
        now: i64,
    ) -> (StoredOrder, Vec<allot_store::NewEvent>) {
        let mut order = self.build_order(input, quote, taken, decision, now);
        // Ordered with a service level: that level's date is the promise of its shipped lines.
        if let Some(date) = implied_promise {
            for (row, line) in order.lines.iter_mut().zip(&input.order.lines) {
                let shipped =
                    matches!(line.method, allot_core::FulfillmentMethod::Ship | allot_core::FulfillmentMethod::SameDay);
                if shipped && line.service_level.is_some() && row.promised_date.is_none() {
                    row.promised_date = Some(date.to_string());
                }
            }
            stamp_due_dates(&mut order.fulfillment_orders, &order.allocations, &order.lines);
        }
        if let (Some(store), Some(ready)) = (&input.pickup_promise, pickup_ready_at_ms) {
            for (row, line) in order.lines.iter_mut().zip(&input.order.lines) {
                if is_counter(line.method) && line.pickup_node.as_ref() == Some(store) {
                    row.promised_ready_at_ms = Some(ready);
                }
            }
        }
        order.sort_parts();
        let mut events = crate::events::placed_events(&order, now);
        events.extend(crate::events::substitution_event(&order, now));
        (order, events)
    }

    fn build_order(
        &self,
        input: &PlaceOrder,
        quote: &Quote,
        taken: &BTreeMap<(usize, NodeId, Sku), u64>,
        decision: String,
        now: i64,
    ) -> StoredOrder {
        let order_id = new_id("ord");
        let on_hold = !input.holds.is_empty();
        let kind_of = |li: usize| FoKind::of(input.order.lines[li].method);
        let mut fo_ids: BTreeMap<(NodeId, FoKind), String> = BTreeMap::new();
        for (li, node, _) in taken.keys() {
            fo_ids.entry((node.clone(), kind_of(*li))).or_insert_with(|| new_id("fo"));
        }
        let allocations: Vec<AllocationRow> = taken
            .iter()
            .map(|((li, node, sku), q)| {
                let line = &input.order.lines[*li];
                let mut a = new_allocation(line, node, *q as i64, &fo_ids[&(node.clone(), kind_of(*li))]);
                a.sku = sku.to_string();
                a
            })
            .collect();
        // Units not allocated are backordered when the line allows it and the engine did
        // not rule backorders out (it lists such lines as unfilled).
        let allow_backorder = |li: usize| {
            let line = &input.order.lines[li];
            line.allow_backorder && !quote.decision.plan.unfilled.iter().any(|u| u.line_id == line.line_id)
        };
        let lines: Vec<OrderLineRow> = input
            .order
            .lines
            .iter()
            .enumerate()
            .map(|(li, l)| {
                let q = l.quantity.get() as i64;
                let allocated: i64 = taken.iter().filter(|((i, _, _), _)| *i == li).map(|(_, u)| *u as i64).sum();
                let rest = q - allocated;
                let (backordered, unfilled) = if allow_backorder(li) { (rest, 0) } else { (0, rest) };
                let mut row = OrderLineRow {
                    line_id: l.line_id.clone(),
                    sku: l.sku.to_string(),
                    quantity: q,
                    allocated,
                    backordered,
                    unfilled,
                    cancelled: 0,
                    shipped: 0,
                    delivered: 0,
                    status: String::new(),
                    promised_date: input
                        .promise
                        .as_ref()
                        .filter(|_| {
                            matches!(
                                l.method,
                                allot_core::FulfillmentMethod::Ship | allot_core::FulfillmentMethod::SameDay
                            )
                        })
                        .map(|p| p.delivery_date.to_string()),
                    promised_ready_at_ms: None,
                    jeopardy: None,
                    upgraded_service_level: None,
                };
                row.status = line_status(&row).to_owned();
                row
            })
            .collect();
        let status = order_status(&lines, &input.holds);
        let mut fulfillment_orders: Vec<FulfillmentOrderRow> = fo_ids
            .iter()
            .map(|((node, kind), id)| new_fulfillment_order(id, &order_id, node, *kind, 1, on_hold, now))
            .collect();
        stamp_due_dates(&mut fulfillment_orders, &allocations, &lines);
        StoredOrder {
            order_id,
            channel: input.channel.to_string(),
            external_id: input.external_id.clone(),
            request_hash: input.request_hash.clone(),
            status: status.to_owned(),
            holds: input.holds.clone(),
            document: input.document.clone(),
            decision,
            policy_name: quote.policy.name.clone(),
            policy_version: quote.policy.version,
            policy_hash: quote.policy.hash.clone(),
            created_at_ms: now,
            lines,
            fulfillment_orders,
            allocations,
            shipments: Vec::new(),
            attempts: Vec::new(),
            expectations: Vec::new(),
        }
    }

    pub async fn order_by_id(&self, order_id: &str) -> Result<StoredOrder> {
        self.inner
            .store
            .order(order_id)
            .await?
            .ok_or_else(|| AppError::NotFound { what: "order", id: order_id.to_owned() })
    }

    /// When a pickup promise at `store` is ready if the order is placed now (the store's
    /// calendar: pickup preparation counted in open minutes). The order must have pickup
    /// or curbside lines at that store.
    fn pickup_ready_at(&self, store: &NodeId, order: &OrderToSource) -> Result<i64> {
        let bad = |m: String| AppError::invalid("promise_option_id", m);
        if !order.lines.iter().any(|l| l.pickup_node.as_ref() == Some(store) && is_counter(l.method)) {
            return Err(bad(format!("no pickup or curbside line at {store}: send the lines as pickup lines there")));
        }
        let cal = self.node_calendar(store.as_str()).map_err(|_| bad(format!("{store} has no calendar")))?;
        let now = jiff::Timestamp::from_millisecond(self.now_ms()).map_err(|e| AppError::invalid("now", e))?;
        let ready = allot_core::promise::ready_at(&cal.calendar, now)
            .ok_or_else(|| bad(format!("{store} is not open for pickup in the coming weeks")))?;
        Ok(ready.as_millisecond())
    }

    /// One page of at most `filter.limit` orders, newest first, with the cursor of the next
    /// page. A channel key sees only its own channel's orders: asking for another channel
    /// finds nothing (as a lookup would answer "not found").
    pub async fn list_orders(
        &self,
        mut filter: allot_store::OrderFilter,
        channel: Option<&ChannelId>,
    ) -> Result<crate::ListPage<allot_store::OrderSummary>> {
        if let Some(c) = channel {
            if filter.channel.as_deref().is_some_and(|f| f != c.as_str()) {
                return Ok(crate::ListPage { entries: Vec::new(), next_cursor: None });
            }
            filter.channel = Some(c.to_string());
        }
        let limit = usize::try_from(filter.limit).unwrap_or(0);
        filter.limit += 1; // one more tells whether another page follows
        let mut entries = self.inner.store.list_orders(&filter).await?;
        let next_cursor = if entries.len() > limit {
            entries.truncate(limit);
            entries.last().map(|o| o.order_id.clone())
        } else {
            None
        };
        Ok(crate::ListPage { entries, next_cursor })
    }

    /// An order as seen by a caller: a channel key sees only its own channel's orders
    /// (anything else is "not found", not "forbidden").
    pub async fn order_for(&self, order_id: &str, channel: Option<&ChannelId>) -> Result<StoredOrder> {
        let order = self.order_by_id(order_id).await?;
        match channel {
            Some(c) if c.as_str() != order.channel => {
                Err(AppError::NotFound { what: "order", id: order_id.to_owned() })
            }
            _ => Ok(order),
        }
    }
}

impl App {
    /// Locks an order for a change and loads it (visible to `channel` only if given).
    pub(crate) async fn lock_for_change(
        &self,
        tx: &mut allot_store::Tx,
        order_id: &str,
        channel: Option<&ChannelId>,
    ) -> Result<StoredOrder> {
        if !tx.lock_order(order_id).await? {
            return Err(AppError::NotFound { what: "order", id: order_id.to_owned() });
        }
        let Some(order) = tx.order(order_id).await? else {
            return Err(AppError::NotFound { what: "order", id: order_id.to_owned() });
        };
        if channel.is_some_and(|c| c.as_str() != order.channel) {
            return Err(AppError::NotFound { what: "order", id: order_id.to_owned() });
        }
        Ok(order)
    }

    /// Cancels units of one line (all its open units when `quantity` is `None`): unfilled
    /// and backordered units first, then allocated ones, whose stock returns to ATP at
    /// once. Cancelling an already cancelled line answers the order as it is.
    pub async fn cancel_line(
        &self,
        order_id: &str,
        line_id: &str,
        quantity: Option<u64>,
        reason: &str,
        channel: Option<&ChannelId>,
    ) -> Result<StoredOrder> {
        self.cancel(order_id, Some((line_id, quantity)), reason, channel).await
    }

    /// Cancels every open unit of an order.
    pub async fn cancel_order(&self, order_id: &str, reason: &str, channel: Option<&ChannelId>) -> Result<StoredOrder> {
        self.cancel(order_id, None, reason, channel).await
    }

    async fn cancel(
        &self,
        order_id: &str,
        target: Option<(&str, Option<u64>)>,
        reason: &str,
        channel: Option<&ChannelId>,
    ) -> Result<StoredOrder> {
        if reason.trim().is_empty() || reason.chars().count() > REASON_MAX_CHARS {
            return Err(AppError::invalid("reason", format!("must be 1–{REASON_MAX_CHARS} characters")));
        }
        let now = self.now_ms();
        let mut tx = self.inner.store.begin().await?;
        let mut order = self.lock_for_change(&mut tx, order_id, channel).await?;
        // Units a cancellation can still reach: not yet allocated, or allocated in a
        // fulfillment order that has not handed them over.
        let holding: std::collections::BTreeSet<String> = order
            .fulfillment_orders
            .iter()
            .filter(|f| FoStatus::parse(&f.status).is_some_and(FoStatus::holds_stock))
            .map(|f| f.fulfillment_order_id.clone())
            .collect();
        let cancellable = |order: &StoredOrder, i: usize| {
            let l = &order.lines[i];
            let allocated: i64 = order
                .allocations
                .iter()
                .filter(|a| a.line_id == l.line_id && holding.contains(&a.fulfillment_order_id))
                .map(|a| a.quantity)
                .sum();
            l.unfilled + l.backordered + allocated
        };
        let handed_over = || {
            AppError::Conflict(vec![FieldError::new(
                "quantity",
                "the units are already shipped or picked up; a return (not a cancellation) takes them back",
            )])
        };
        let picks: Vec<(usize, i64)> = match target {
            None => {
                let picks: Vec<(usize, i64)> = (0..order.lines.len()).map(|i| (i, cancellable(&order, i))).collect();
                let open: i64 = order.lines.iter().map(|l| l.quantity - l.cancelled).sum();
                if open > 0 && picks.iter().all(|(_, q)| *q == 0) {
                    tx.rollback().await?;
                    return Err(handed_over());
                }
                picks
            }
            Some((line_id, q)) => {
                let Some(i) = order.lines.iter().position(|l| l.line_id == line_id) else {
                    tx.rollback().await?;
                    return Err(AppError::NotFound { what: "order line", id: format!("{order_id}/{line_id}") });
                };
                let open = order.lines[i].quantity - order.lines[i].cancelled;
                let can = cancellable(&order, i);
                let want = q.map_or(can, |q| i64::try_from(q).unwrap_or(i64::MAX));
                if q == Some(0) || want > open {
                    tx.rollback().await?;
                    return Err(AppError::invalid("quantity", format!("must be 1–{open} (the line's open units)")));
                }
                if want > can || (q.is_none() && can == 0 && open > 0) {
                    tx.rollback().await?;
                    return Err(handed_over());
                }
                vec![(i, want)]
            }
        };
        // The positions a cancellation may release, locked in key order (PostgreSQL) so it
        // never locks them in the opposite order of a concurrent fulfillment action.
        let mut keys: Vec<(NodeId, Sku)> = order
            .allocations
            .iter()
            .filter(|a| a.quantity > 0 && holding.contains(&a.fulfillment_order_id))
            .filter_map(|a| Some((NodeId::parse(&a.node_id).ok()?, Sku::parse(&a.sku).ok()?)))
            .collect();
        keys.sort();
        keys.dedup();
        if !keys.is_empty() {
            tx.lock_positions(&keys, now).await?;
        }
        let was_open = order.status != "cancelled";
        let mut cancelled_now: Vec<(String, i64)> = Vec::new();
        let mut written = Vec::new();
        for (i, mut left) in picks {
            if left == 0 {
                continue;
            }
            let total = left;
            cancelled_now.push((order.lines[i].line_id.clone(), total));
            let line = &mut order.lines[i];
            for bucket in [&mut line.unfilled, &mut line.backordered] {
                let take = left.min(*bucket);
                *bucket -= take;
                left -= take;
            }
            // Allocated units not yet handed over: release stock node by node (node id order).
            let mut allocs: Vec<&mut AllocationRow> = order
                .allocations
                .iter_mut()
                .filter(|a| a.line_id == line.line_id && a.quantity > 0 && holding.contains(&a.fulfillment_order_id))
                .collect();
            allocs.sort_by(|a, b| a.node_id.cmp(&b.node_id));
            for a in allocs {
                if left == 0 {
                    break;
                }
                let take = left.min(a.quantity);
                let (node, sku) = (NodeId::parse(&a.node_id), Sku::parse(&a.sku));
                let (Ok(node), Ok(sku)) = (node, sku) else { continue };
                match tx.move_stock(StockMove::Release, &node, &sku, take as u64, now).await? {
                    Some(p) => written.push(p),
                    None => {
                        return Err(AppError::stock_mismatch(&node, &sku, "allocated", &format!("order {order_id}")));
                    }
                }
                a.quantity -= take;
                if let Some(p) = a.picked.as_mut() {
                    *p = (*p).min(a.quantity);
                }
                line.allocated -= take;
                left -= take;
                tx.update_allocation(a).await?;
            }
            line.cancelled += total;
            line.status = line_status(line).to_owned();
            tx.update_line(order_id, line).await?;
            tx.insert_cancellation(order_id, &line.line_id, total, reason, now).await?;
        }
        let mut events = Vec::new();
        for fo in order.fulfillment_orders.iter_mut().filter(|f| holding.contains(&f.fulfillment_order_id)) {
            let left: i64 = order
                .allocations
                .iter()
                .filter(|a| a.fulfillment_order_id == fo.fulfillment_order_id)
                .map(|a| a.quantity)
                .sum();
            if left == 0 {
                fo.status = FoStatus::Cancelled.as_str().to_owned();
                fo.reason = Some(reason.to_owned());
                fo.updated_at_ms = now;
                tx.update_fulfillment_order(fo).await?;
                events.push(crate::events::fo_event(fo, &order.channel, now, json!({"reason": reason})));
            }
        }
        let status = order_status(&order.lines, &order.holds);
        tx.update_order(order_id, status, &order.holds).await?;
        order.status = status.to_owned();
        if status == "cancelled" && was_open {
            events.push(crate::events::order_event("order.cancelled", &order, now, json!({"reason": reason})));
        } else {
            for (line_id, q) in &cancelled_now {
                events.push(crate::events::order_event(
                    "order.line_cancelled",
                    &order,
                    now,
                    json!({"line_id": line_id, "quantity": q, "reason": reason}),
                ));
            }
        }
        tx.insert_events(&events).await?;
        self.notify(&mut tx, || self.positions_note(&written)).await?;
        tx.commit().await?;
        self.refresh_positions(written);
        if cancelled_now.iter().any(|(_, q)| *q > 0) {
            self.backorders_changed(order.lines.iter().map(|l| l.sku.clone()).collect()).await;
        }
        self.order_by_id(order_id).await
    }

    /// After a change that may have moved backordered units of `skus`: recomputes their
    /// supply commitments. Errors are logged, not answered: the change itself committed,
    /// and the next change of the SKU recomputes them again.
    pub(crate) async fn backorders_changed(&self, mut skus: Vec<String>) {
        skus.sort();
        skus.dedup();
        if let Err(e) = self.recommit_supply(&skus).await {
            tracing::warn!(error = %ErrorChain(&e), "recomputing supply commitments failed");
        }
    }

    /// Adds a hold: fulfillment orders not yet worked on are held back. Adding a hold the
    /// order already has changes nothing.
    pub async fn add_hold(&self, order_id: &str, hold: &str, channel: Option<&ChannelId>) -> Result<StoredOrder> {
        let mut tx = self.inner.store.begin().await?;
        let mut order = self.lock_for_change(&mut tx, order_id, channel).await?;
        if order.status == "cancelled" {
            tx.rollback().await?;
            return Err(AppError::Conflict(vec![FieldError::new("hold", "the order is cancelled")]));
        }
        if !order.holds.iter().any(|h| h == hold) {
            order.holds.push(hold.to_owned());
            let now = self.now_ms();
            for fo in order.fulfillment_orders.iter_mut() {
                if let Ok(Transition::To(to)) =
                    allot_core::fulfillment::next(fo_status(fo)?, FoEvent::Hold, fo_kind(fo)?)
                {
                    fo.status = to.as_str().to_owned();
                    fo.released_at_ms = None;
                    fo.updated_at_ms = now;
                    tx.update_fulfillment_order(fo).await?;
                }
            }
            let status = order_status(&order.lines, &order.holds);
            tx.update_order(order_id, status, &order.holds).await?;
            order.status = status.to_owned();
            let event = crate::events::order_event("order.on_hold", &order, self.now_ms(), json!({"hold": hold}));
            tx.insert_events(&[event]).await?;
        }
        tx.commit().await?;
        self.order_by_id(order_id).await
    }

    /// Releases a hold; when the last one goes, fulfillment orders are released to their
    /// nodes. Releasing a hold the order does not have is "not found".
    pub async fn release_hold(&self, order_id: &str, hold: &str, channel: Option<&ChannelId>) -> Result<StoredOrder> {
        let mut tx = self.inner.store.begin().await?;
        let mut order = self.lock_for_change(&mut tx, order_id, channel).await?;
        let Some(at) = order.holds.iter().position(|h| h == hold) else {
            tx.rollback().await?;
            return Err(AppError::NotFound { what: "hold", id: format!("{order_id}/{hold}") });
        };
        order.holds.remove(at);
        let now = self.now_ms();
        if order.holds.is_empty() {
            for fo in order.fulfillment_orders.iter_mut() {
                let next = allot_core::fulfillment::next(fo_status(fo)?, FoEvent::Release, fo_kind(fo)?);
                if let Ok(Transition::To(to)) = next {
                    fo.status = to.as_str().to_owned();
                    fo.released_at_ms = Some(now);
                    fo.updated_at_ms = now;
                    tx.update_fulfillment_order(fo).await?;
                }
            }
        }
        let status = order_status(&order.lines, &order.holds);
        tx.update_order(order_id, status, &order.holds).await?;
        if order.holds.is_empty() && status != "cancelled" {
            order.status = status.to_owned();
            let event = crate::events::order_event("order.released", &order, now, json!({"hold": hold}));
            tx.insert_events(&[event]).await?;
        }
        tx.commit().await?;
        self.order_by_id(order_id).await
    }
}

/// Units the plan (and its substitutes) takes from each position.
fn planned_wants(quote: &Quote, subs: &[SubstitutePlan]) -> BTreeMap<(NodeId, Sku), u64> {
    let mut wants: BTreeMap<(NodeId, Sku), u64> = BTreeMap::new();
    for pkg in &quote.decision.plan.packages {
        for l in &pkg.lines {
            *wants.entry((pkg.node_id.clone(), l.sku.clone())).or_default() += l.quantity.get();
        }
    }
    for sub in subs {
        for (node, q) in &sub.packages {
            *wants.entry((node.clone(), sub.sku.clone())).or_default() += q;
        }
    }
    wants
}

/// The planned units of the positions in `ok` go to `taken` per (line, node, SKU); the
/// positions not in `ok` to `failed`.
fn apportion(
    input: &PlaceOrder,
    quote: &Quote,
    subs: &[SubstitutePlan],
    ok: &std::collections::BTreeSet<(NodeId, Sku)>,
    taken: &mut BTreeMap<(usize, NodeId, Sku), u64>,
    failed: &mut Vec<(NodeId, Sku)>,
) {
    for pkg in &quote.decision.plan.packages {
        for l in &pkg.lines {
            let Some(li) = input.order.lines.iter().position(|x| x.line_id == l.line_id) else { continue };
            let key = (pkg.node_id.clone(), l.sku.clone());
            if ok.contains(&key) {
                *taken.entry((li, pkg.node_id.clone(), l.sku.clone())).or_default() += l.quantity.get();
            } else if !failed.contains(&key) {
                failed.push(key);
            }
        }
    }
    for sub in subs {
        for (node, q) in &sub.packages {
            let key = (node.clone(), sub.sku.clone());
            if ok.contains(&key) {
                *taken.entry((sub.line, node.clone(), sub.sku.clone())).or_default() += q;
            } else if !failed.contains(&key) {
                failed.push(key);
            }
        }
    }
}
