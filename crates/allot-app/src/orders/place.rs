//! Placing an order: plan with the engine, then write the order and take its stock in
//! one write command, planning again when a concurrent order got there first (see the
//! module docs of `orders`).

use super::*;

/// One placement attempt's plan: the engine's decision, the substitutes planned for what
/// it leaves short, and the decision as stored with the order.
pub(super) struct Plan {
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
pub(super) struct SubstitutePlan {
    line: usize,
    sku: Sku,
    packages: Vec<(NodeId, u64)>,
}

/// How an order converts a reservation: units pinned to the reservation's nodes, and what
/// is left to source.
pub(super) struct Conversion {
    reservation_id: String,
    /// (line index, node, SKU) → units taken over from the reservation.
    pinned: BTreeMap<(usize, NodeId, Sku), u64>,
    /// The order minus the pinned units (lines with nothing left are dropped).
    residual: OrderToSource,
}

/// How one placement attempt ended.
pub(super) enum Attempt {
    /// The (channel, external_id) was placed meanwhile.
    Exists,
    /// Planned stock was taken by others first: re-read these positions and plan again.
    Retry(Vec<(NodeId, Sku)>),
    /// Written; `failed` units (last attempt only) were left unallocated.
    Placed { order: Box<StoredOrder>, written: Vec<StoredPosition>, failed: Vec<(NodeId, Sku)> },
}

/// Whether a reservation can still be converted, as a conflict naming why not.
pub(super) fn check_convertible(r: &allot_store::StoredReservation, now: i64) -> Result<()> {
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

impl App {
    /// Places an order (see the module docs). The sourcing decision is stored with it
    /// ([`crate::decision_doc`]).
    pub async fn place_order(&self, mut input: PlaceOrder) -> Result<Placed> {
        if let Some(p) = &input.promise {
            for l in input.order.lines.iter_mut().filter(|l| l.method.ships_to_customer()) {
                l.service_level.get_or_insert_with(|| p.service_level.clone());
            }
            // The engine weighs each node's delivery date against the promise
            // (`must_meet_promise`, `late_penalty_minor_per_day`).
            input.order.promise =
                Some(self.promise_terms(&input.order, &p.service_level, p.delivery_date, input.policy(), false).await?);
        }
        if input.external_id().is_empty() {
            return Err(AppError::invalid("external_id", "required"));
        }
        self.check_limits(&input.order, input.policy())?;
        self.check_currency(&input.order)?;
        self.note_holds(&mut input).await?;
        let pickup_ready_at_ms = match &input.pickup_promise {
            Some(store) => Some(self.pickup_ready_at(store, &input.order)?),
            None => None,
        };
        // Idempotency: the same (channel, external_id) answers the stored order — found by
        // the unique key inside the write (module docs); a conversion looks first, as its
        // reservation is gone once converted.
        if input.reservation_id().is_some()
            && let Some(existing) = self.existing_order(&input).await?
        {
            return Ok(existing);
        }
        let conversion = match input.reservation_id() {
            Some(id) => Some(self.plan_conversion(id, &input).await?),
            None => None,
        };
        let input = Arc::new(input);
        let conversion = conversion.map(Arc::new);
        for attempt in 1..=PLACE_ATTEMPTS {
            let last = attempt == PLACE_ATTEMPTS;
            let to_source = conversion.as_ref().map_or(&input.order, |c| &c.residual);
            let mut quote = self.plan(to_source, input.policy())?;
            // Units the plan cannot place may sit in reservations past their expiry that the
            // sweep has not reached: expire them and plan again (module docs).
            let short = !quote.decision.plan.backordered.is_empty() || !quote.decision.plan.unfilled.is_empty();
            if attempt == 1 && short && self.may_hold_reservations(to_source) && self.sweep_if_due().await? > 0 {
                quote = self.plan(to_source, input.policy())?;
            }
            let subs = self.plan_substitutes(&input, to_source, &quote)?;
            let decision = crate::decision_doc::stored_decision(&quote);
            let implied_promise = match input.promise {
                Some(_) => None,
                None => self.implied_promise(to_source, &quote, input.policy()).await?,
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
    pub(super) async fn place_at_once(&self, input: &PlaceOrder, plan: Plan) -> Result<Attempt> {
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
    pub(super) async fn place_in(
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
    pub(super) fn may_hold_reservations(&self, order: &OrderToSource) -> bool {
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
    pub(super) async fn take_stock(
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
    pub(super) fn plan_substitutes(
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
                let q = self.plan(&OrderToSource { lines: vec![as_sub], ..to_source.clone() }, input.policy())?;
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
    pub(super) async fn plan_conversion(&self, id: &str, input: &PlaceOrder) -> Result<Conversion> {
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
    pub(super) async fn take_reservation(
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

    pub(super) async fn existing_order(&self, input: &PlaceOrder) -> Result<Option<Placed>> {
        let found = self.inner.store.order_ref(input.channel.as_str(), input.external_id()).await?;
        let Some((order_id, hash)) = found else { return Ok(None) };
        if hash != input.request_hash {
            return Err(AppError::Conflict(vec![FieldError::new(
                "external_id",
                format!(
                    "order {} of channel {} exists ({order_id}) with a different body",
                    input.external_id(),
                    input.channel
                ),
            )]));
        }
        Ok(Some(Placed { order: self.order_by_id(&order_id).await?, created: false }))
    }

    /// Who placed the request's holds (the caller) and the holds the policy's hold rules
    /// add for this order, with their reasons.
    async fn note_holds(&self, input: &mut PlaceOrder) -> Result<()> {
        let actor = crate::events::current_actor();
        // A customer's first order (by e-mail; none given counts as a first), looked up
        // only when a hold rule asks.
        let first_order = match self.holds_need_history(input.policy())? {
            false => false,
            true => match input.captured.customer.as_ref().and_then(|c| c.email.as_deref()) {
                Some(email) => !self.inner.store.customer_has_orders(email).await?,
                None => true,
            },
        };
        let mut notes: Vec<HoldNote> = input
            .holds
            .iter()
            .filter_map(|h| allot_core::HoldKind::parse(h))
            .map(|hold| HoldNote { hold, reason: None, placed_by: actor.clone() })
            .collect();
        for note in self.policy_holds(&input.order, input.policy(), first_order)? {
            if !notes.iter().any(|n| n.hold == note.hold) {
                input.holds.push(note.hold.as_str().to_owned());
                notes.push(note);
            }
        }
        input.holds.sort();
        input.hold_notes = notes;
        Ok(())
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
    pub(super) fn compose(
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
                if line.method.ships_to_customer() && line.service_level.is_some() && row.promised_date.is_none() {
                    row.promised_date = Some(date.to_string());
                }
            }
            stamp_due_dates(&mut order.fulfillment_orders, &order.allocations, &order.lines);
        }
        if let (Some(store), Some(ready)) = (&input.pickup_promise, pickup_ready_at_ms) {
            for (row, line) in order.lines.iter_mut().zip(&input.order.lines) {
                if line.method.at_counter() && line.pickup_node.as_ref() == Some(store) {
                    row.promised_ready_at_ms = Some(ready);
                }
            }
        }
        order.sort_parts();
        let mut events = crate::events::placed_events(&order, &input.hold_notes, now);
        events.extend(crate::events::substitution_event(&order, now));
        (order, events)
    }

    pub(super) fn build_order(
        &self,
        input: &PlaceOrder,
        quote: &Quote,
        taken: &BTreeMap<(usize, NodeId, Sku), u64>,
        decision: String,
        now: i64,
    ) -> StoredOrder {
        let order_id = self.new_id("ord", now);
        let on_hold = !input.holds.is_empty();
        let kind_of = |li: usize| FoKind::of(input.order.lines[li].method);
        let mut fo_ids: BTreeMap<(NodeId, FoKind), String> = BTreeMap::new();
        for (li, node, _) in taken.keys() {
            fo_ids.entry((node.clone(), kind_of(*li))).or_insert_with(|| self.new_id("fo", now));
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
                        .filter(|_| l.method.ships_to_customer())
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
            external_id: input.external_id().to_owned(),
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

    /// When a pickup promise at `store` is ready if the order is placed now (the store's
    /// calendar: pickup preparation counted in open minutes). The order must have pickup
    /// or curbside lines at that store.
    pub(super) fn pickup_ready_at(&self, store: &NodeId, order: &OrderToSource) -> Result<i64> {
        let bad = |m: String| AppError::invalid("promise_option_id", m);
        if !order.lines.iter().any(|l| l.pickup_node.as_ref() == Some(store) && l.method.at_counter()) {
            return Err(bad(format!("no pickup or curbside line at {store}: send the lines as pickup lines there")));
        }
        let cal = self.node_calendar(store.as_str()).map_err(|_| bad(format!("{store} has no calendar")))?;
        let now = jiff::Timestamp::from_millisecond(self.now_ms()).map_err(|e| AppError::invalid("now", e))?;
        let ready = allot_core::promise::ready_at(&cal.calendar, now)
            .ok_or_else(|| bad(format!("{store} is not open for pickup in the coming weeks")))?;
        Ok(ready.as_millisecond())
    }
}

/// Units the plan (and its substitutes) takes from each position.
pub(super) fn planned_wants(quote: &Quote, subs: &[SubstitutePlan]) -> BTreeMap<(NodeId, Sku), u64> {
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
pub(super) fn apportion(
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
