//! The node workflow: one action on a fulfillment order per transaction — accept,
//! reject, pick, pack, ship, ready for pickup, picked up, deliver, withdraw — with the
//! stock it moves, its events, and re-sourcing of what a node gave back.

use super::*;

pub(super) fn text_field(errors: &mut Vec<FieldError>, field: &str, value: &str) {
    if value.trim().is_empty() || value.chars().count() > FULFILLMENT_TEXT_MAX {
        errors.push(FieldError::new(field, format!("must be 1–{FULFILLMENT_TEXT_MAX} characters")));
    }
}

/// Checks what can be checked without the fulfillment order.
pub(super) fn validate(action: &FoAction) -> Result<()> {
    let mut e = Vec::new();
    match action {
        FoAction::Reject { reason } => text_field(&mut e, "reason", reason),
        FoAction::Ship { packages } => {
            if packages.is_empty() || packages.len() > PACKAGES_MAX {
                e.push(FieldError::new("packages", format!("1–{PACKAGES_MAX} packages")));
            }
            let mut seen = BTreeSet::new();
            for (i, p) in packages.iter().enumerate() {
                text_field(&mut e, &format!("packages[{i}].carrier"), &p.carrier);
                text_field(&mut e, &format!("packages[{i}].tracking_number"), &p.tracking_number);
                if !seen.insert(p.tracking_number.as_str()) {
                    e.push(FieldError::new(format!("packages[{i}].tracking_number"), "repeated"));
                }
                if p.lines.is_none() && packages.len() > 1 {
                    e.push(FieldError::new(format!("packages[{i}].lines"), "required when there are several packages"));
                }
                for (j, (_, q)) in p.lines.iter().flatten().enumerate() {
                    if *q == 0 {
                        e.push(FieldError::new(format!("packages[{i}].lines[{j}].quantity"), "must be at least 1"));
                    }
                }
            }
        }
        _ => {}
    }
    if e.is_empty() { Ok(()) } else { Err(AppError::Invalid(e)) }
}

impl App {
    /// Applies a node's (or an operator's) action to a fulfillment order (see the module
    /// docs). `node` limits the caller to its own node's fulfillment orders.
    pub async fn act_on_fulfillment_order(
        &self,
        fo_id: &allot_core::FulfillmentOrderId,
        action: FoAction,
        node: Option<&NodeId>,
    ) -> Result<FulfillmentOrderEntry> {
        self.act_on(fo_id.as_str(), action, node).await
    }

    /// [`App::act_on_fulfillment_order`] by a row's id.
    pub(crate) async fn act_on(
        &self,
        fo_id: &str,
        action: FoAction,
        node: Option<&NodeId>,
    ) -> Result<FulfillmentOrderEntry> {
        validate(&action)?;
        // Like a carrier's scan: a delivery in the future would look early and spoil the
        // promise accuracy it feeds.
        if let FoAction::Deliver { delivered_at_ms: Some(at) } = action
            && at > self.now_ms() + super::scans::SCAN_AHEAD_MAX_MS
        {
            return Err(AppError::invalid("delivered_at", "is more than 5 minutes ahead of the server's clock"));
        }
        // Positions are locked in key order before any stock moves (below), but a
        // re-sourcing may still meet another transaction's locks: a PostgreSQL deadlock
        // or serialization failure rolled everything back, so the action runs again.
        for attempt in 1..=ACTION_ATTEMPTS {
            match self.act_once(fo_id, &action, node).await {
                Err(AppError::Store(e)) if e.is_retryable_conflict() && attempt < ACTION_ATTEMPTS => continue,
                other => return other,
            }
        }
        Err(AppError::invalid("fulfillment_order", "could not be changed; retry"))
    }

    pub(super) async fn act_once(
        &self,
        fo_id: &str,
        action: &FoAction,
        node: Option<&NodeId>,
    ) -> Result<FulfillmentOrderEntry> {
        let not_found = || AppError::NotFound { what: "fulfillment order", id: fo_id.to_owned() };
        let action = action.clone();
        let now = self.now_ms();
        let mut tx = self.inner.store.begin().await?;
        let Some((order_id, node_id)) = tx.fulfillment_order_owner(fo_id).await? else {
            tx.rollback().await?;
            return Err(not_found());
        };
        if node.is_some_and(|n| n.as_str() != node_id) {
            tx.rollback().await?;
            return Err(not_found());
        }
        let mut order = self.lock_for_change(&mut tx, &order_id, None).await?;
        // Every position this fulfillment order may release or consume, locked in key
        // order first (PostgreSQL), so two actions never lock the same positions in
        // opposite orders.
        let mut keys: Vec<(NodeId, Sku)> = order
            .allocations
            .iter()
            .filter(|a| a.fulfillment_order_id == fo_id && a.quantity > 0)
            .filter_map(|a| parse_position(a).ok())
            .collect();
        keys.sort();
        keys.dedup();
        if !keys.is_empty() {
            tx.lock_positions(&keys, now).await?;
        }
        let backordered_before: Vec<i64> = order.lines.iter().map(|l| l.backordered).collect();
        let mut fx = Effects::default();
        match self.apply(&mut tx, &mut order, fo_id, &action, now, &mut fx).await {
            Ok(true) => {}
            Ok(false) => {
                tx.rollback().await?;
                return entry_of(&order, fo_id).ok_or_else(not_found);
            }
            Err(e) => {
                tx.rollback().await?;
                return Err(e);
            }
        }
        if let Err(e) = self.finish(&mut tx, &mut order, fo_id, &action, now, &mut fx).await {
            tx.rollback().await?;
            return Err(e);
        }
        self.notify(&mut tx, || self.positions_note(&fx.written)).await?;
        tx.commit().await?;
        self.refresh_positions(fx.written);
        // Backorders this action made (re-sourcing that found no stock) may be promised
        // against supply.
        let moved: Vec<String> = order
            .lines
            .iter()
            .zip(&backordered_before)
            .filter(|(l, b)| l.backordered != **b)
            .map(|(l, _)| l.sku.clone())
            .collect();
        if !moved.is_empty() {
            self.backorders_changed(moved).await;
        }
        let order = self.order_by_id(&order_id).await?;
        entry_of(&order, fo_id).ok_or_else(not_found)
    }

    /// Re-sources what the action gave back, rewrites lines and order status, writes events.
    pub(super) async fn finish(
        &self,
        tx: &mut Tx,
        order: &mut StoredOrder,
        fo_id: &str,
        action: &FoAction,
        now: i64,
        fx: &mut Effects,
    ) -> Result<()> {
        let before = order.status.clone();
        let mut cancelled = Vec::new();
        if !fx.reroute.is_empty() {
            let reason = match action {
                FoAction::Reject { reason } => format!("rejected: {reason}"),
                other => other.failure_reason().unwrap_or_else(|| "node_failed".to_owned()),
            };
            let units = std::mem::take(&mut fx.reroute);
            let summary = self.reroute_in(tx, order, &units, Some(fo_id), &reason, now, fx).await?;
            let left_over = |k: &str| summary[k].as_array().is_some_and(|a| !a.is_empty());
            if matches!(action, FoAction::Reassign { .. }) && (left_over("backordered") || left_over("cancelled")) {
                // The caller rolls the whole transaction back: the work stays where it is.
                return Err(AppError::Conflict(vec![FieldError::new(
                    "fulfillment_order",
                    "no other node can take all of its units; it stays",
                )]));
            }
            if let Some(c) = summary["cancelled"].as_array() {
                cancelled.clone_from(c);
            }
            fx.events.push(crate::events::order_event("order.rerouted", order, now, summary));
        }
        self.write_progress(tx, order, &before, now, fx).await?;
        // Units no node could take were cancelled: announced as a cancellation by hand
        // would be (the whole order, or each line).
        if order.status == "cancelled" && before != "cancelled" {
            let reason = cancelled.first().map(|c| c["reason"].clone()).unwrap_or_default();
            fx.events.push(crate::events::order_event("order.cancelled", order, now, json!({"reason": reason})));
        } else {
            for c in cancelled {
                fx.events.push(crate::events::order_event("order.line_cancelled", order, now, c));
            }
        }
        tx.insert_events(&fx.events).await?;
        Ok(())
    }

    /// Recomputes line and order statuses and writes them; `order.delivered` when the
    /// order just became delivered.
    pub(super) async fn write_progress(
        &self,
        tx: &mut Tx,
        order: &mut StoredOrder,
        before: &str,
        now: i64,
        fx: &mut Effects,
    ) -> Result<()> {
        for l in order.lines.iter_mut() {
            l.status = line_status(l).to_owned();
            tx.update_line(&order.order_id, l).await?;
        }
        let status = order_status(&order.lines, &order.holds);
        order.status = status.to_owned();
        tx.update_order(&order.order_id, status, &order.holds).await?;
        if status == "delivered" && before != "delivered" {
            fx.events.push(crate::events::order_event("order.delivered", order, now, json!({})));
        }
        Ok(())
    }

    /// The state change of one action inside the order's transaction. `Ok(false)`: a
    /// repeat of the action that produced the current state (nothing to write).
    ///
    /// Longer than 100 lines on purpose: one exhaustive `match` over every node action —
    /// the workflow's transition table written as code, each arm the stock moves of one
    /// action — read and checked in one place, like the status tables in core.
    pub(super) async fn apply(
        &self,
        tx: &mut Tx,
        order: &mut StoredOrder,
        fo_id: &str,
        action: &FoAction,
        now: i64,
        fx: &mut Effects,
    ) -> Result<bool> {
        let fi = order
            .fulfillment_orders
            .iter()
            .position(|f| f.fulfillment_order_id == fo_id)
            .ok_or_else(|| AppError::NotFound { what: "fulfillment order", id: fo_id.to_owned() })?;
        let (from, kind) = (fo_status(&order.fulfillment_orders[fi])?, fo_kind(&order.fulfillment_orders[fi])?);
        if let FoAction::Withdraw { .. } = action {
            // Re-checked under the order lock: a node resumed meanwhile keeps its work, and
            // pickup work waits for its store (the customer chose that store; moving it
            // needs their consent, so a pause holds it rather than cancelling it).
            let fo = &order.fulfillment_orders[fi];
            let node_active = self.node(&fo.node_id).is_ok_and(|n| n.node.is_active());
            if node_active || kind == allot_core::FoKind::Pickup {
                return Ok(false);
            }
        }
        // A pick that found nothing rejected the work: its retry answers that state.
        if matches!(action, FoAction::Pick { .. })
            && from == FoStatus::Rejected
            && order.fulfillment_orders[fi].reason.as_deref() == Some("short_pick")
        {
            return Ok(false);
        }
        if let FoAction::Reassign { released_before_ms, .. } = action {
            let due = order.fulfillment_orders[fi].released_at_ms.is_some_and(|r| r < *released_before_ms);
            if from != FoStatus::Released || !due {
                return Ok(false);
            }
        }
        if let FoAction::ReleaseTimeout { released_before_ms } = action {
            let due = order.fulfillment_orders[fi].released_at_ms.is_some_and(|r| r < *released_before_ms);
            if from != FoStatus::Released || !due {
                return Ok(false);
            }
        }
        let to = match allot_core::fulfillment::next(from, action.event(), kind) {
            Ok(Transition::To(to)) => to,
            Ok(Transition::Repeat) => return Ok(false),
            // The system's sweeps act on what they listed a moment ago; work that has moved
            // on since (accepted, picked) is simply no longer theirs to move.
            Err(_) if matches!(action, FoAction::Withdraw { .. } | FoAction::Reassign { .. }) => return Ok(false),
            Err(e) => return Err(AppError::Conflict(vec![FieldError::new("status", e.to_string())])),
        };
        // A hold placed after the node accepted stops the work before the units leave.
        if allot_core::hold::blocks(action.event()) && !order.holds.is_empty() {
            let event = action.event().as_str();
            let holds = order.holds.join(", ");
            return Err(AppError::Conflict(vec![FieldError::new(
                "hold",
                format!("the order is on hold ({holds}): {event} waits until the hold is released"),
            )]));
        }
        let mut to = to;
        let mut reason: Option<String> = None;
        let mut extra = json!({});
        let allocs: Vec<usize> = (0..order.allocations.len())
            .filter(|&i| order.allocations[i].fulfillment_order_id == fo_id && order.allocations[i].quantity > 0)
            .collect();
        let line_index = |order: &StoredOrder, line_id: &str| order.lines.iter().position(|l| l.line_id == line_id);
        match action {
            FoAction::Accept | FoAction::Pack | FoAction::ReadyForPickup => {}
            FoAction::Reject { .. }
            | FoAction::ReleaseTimeout { .. }
            | FoAction::Withdraw { .. }
            | FoAction::Reassign { .. } => {
                // A node's reason says whether its units can be sold again (the policy's
                // `reject_reasons`); the system's own moves always give them back.
                let stock = match action {
                    FoAction::Reject { reason } => self.reject_stock(reason),
                    _ => allot_core::sourcing::RejectStock::Release,
                };
                let how = match stock {
                    allot_core::sourcing::RejectStock::Release => StockMove::Release,
                    allot_core::sourcing::RejectStock::WriteOff => StockMove::Consume,
                    allot_core::sourcing::RejectStock::Quarantine => StockMove::Quarantine,
                };
                extra = json!({"stock": stock.as_str()});
                for &ai in &allocs {
                    let a = &order.allocations[ai];
                    let (node, sku) = parse_position(a)?;
                    let q = a.quantity;
                    self.move_or_mismatch(tx, how, &node, &sku, q, &order.order_id, now, fx).await?;
                    if let Some(li) = line_index(order, &a.line_id) {
                        order.lines[li].allocated -= q;
                    }
                    *fx.reroute.entry(a.line_id.clone()).or_default() += q;
                }
                reason = action.failure_reason();
            }
            FoAction::Pick { lines } => {
                // Each entry names one row: its line, and its SKU when the line has several
                // here (some units come as a substitute).
                let rows_of = |order: &StoredOrder, p: &PickedLine| -> Vec<usize> {
                    allocs
                        .iter()
                        .copied()
                        .filter(|&ai| order.allocations[ai].line_id == p.line_id)
                        .filter(|&ai| p.sku.as_ref().is_none_or(|s| &order.allocations[ai].sku == s))
                        .collect()
                };
                let mut errors = Vec::new();
                let mut picked_of: BTreeMap<usize, i64> = BTreeMap::new();
                for (i, p) in lines.iter().enumerate() {
                    let rows = rows_of(order, p);
                    match rows.as_slice() {
                        [] => errors.push(FieldError::new(
                            format!("lines[{i}].line_id"),
                            format!("line {} is not in this fulfillment order", p.line_id),
                        )),
                        [ai] => {
                            let here = order.allocations[*ai].quantity;
                            if p.picked_quantity > here as u64 {
                                errors.push(FieldError::new(
                                    format!("lines[{i}].picked_quantity"),
                                    format!("must be 0–{here} (the units of the line here)"),
                                ));
                            } else if picked_of.insert(*ai, p.picked_quantity as i64).is_some() {
                                errors.push(FieldError::new(format!("lines[{i}].line_id"), "repeated"));
                            }
                        }
                        _ => errors.push(FieldError::new(
                            format!("lines[{i}].sku"),
                            format!("line {} has several SKUs here (a substitute): name the SKU", p.line_id),
                        )),
                    }
                }
                if !errors.is_empty() {
                    return Err(AppError::Invalid(errors));
                }
                let mut short_lines = Vec::new();
                for &ai in &allocs {
                    let a = &order.allocations[ai];
                    let picked = picked_of.get(&ai).copied().unwrap_or(a.quantity);
                    let missing = a.quantity - picked;
                    if missing > 0 {
                        let (node, sku) = parse_position(a)?;
                        self.move_or_mismatch(tx, StockMove::Consume, &node, &sku, missing, &order.order_id, now, fx)
                            .await?;
                        if let Some(li) = line_index(order, &a.line_id) {
                            order.lines[li].allocated -= missing;
                        }
                        *fx.reroute.entry(a.line_id.clone()).or_default() += missing;
                        short_lines.push(json!({"line_id": a.line_id, "sku": a.sku, "short": missing}));
                    }
                    let a = &mut order.allocations[ai];
                    a.quantity = picked;
                    a.picked = Some(picked);
                    a.short += missing;
                    tx.update_allocation(a).await?;
                }
                // Nothing found at all: the node has nothing to pack; it failed this work.
                if allocs.iter().all(|&ai| order.allocations[ai].quantity == 0) {
                    to = FoStatus::Rejected;
                    reason = action.failure_reason();
                }
                extra = json!({"short_lines": short_lines});
            }
            FoAction::Ship { packages } => {
                let shipments = self.plan_shipments(tx, order, fo_id, &allocs, packages, now).await?;
                self.hand_over(tx, order, &allocs, Handover::Carrier, now, fx).await?;
                for sh in shipments {
                    // Two ships racing with one tracking number: the second is a conflict.
                    match tx.insert_shipment(&sh).await {
                        Err(e) if e.is_unique_violation() => {
                            return Err(AppError::Conflict(vec![FieldError::new(
                                "packages",
                                format!("tracking number {} is already used by another shipment", sh.tracking_number),
                            )]));
                        }
                        other => other?,
                    }
                    fx.events.push(shipment_event(&sh, &order.channel, "shipped", now));
                    order.shipments.push(sh);
                }
            }
            FoAction::PickedUp => self.hand_over(tx, order, &allocs, Handover::Customer, now, fx).await?,
            FoAction::Deliver { delivered_at_ms } => {
                let at = delivered_at_ms.unwrap_or(now);
                self.mark_delivered(tx, order, fo_id, at, now, fx).await?;
            }
        }
        let fo = &mut order.fulfillment_orders[fi];
        fo.status = to.as_str().to_owned();
        if reason.is_some() {
            fo.reason = reason;
        }
        fo.updated_at_ms = now;
        tx.update_fulfillment_order(fo).await?;
        fx.events.insert(0, fo_event(fo, &order.channel, now, extra));
        Ok(true)
    }

    /// The units of a fulfillment order's rows (`allocs`) leave the node: off its on hand
    /// and allocated, counted as shipped (and delivered, handed to the customer).
    pub(super) async fn hand_over(
        &self,
        tx: &mut Tx,
        order: &mut StoredOrder,
        allocs: &[usize],
        how: Handover,
        now: i64,
        fx: &mut Effects,
    ) -> Result<()> {
        for &ai in allocs {
            let a = &order.allocations[ai];
            let (node, sku) = parse_position(a)?;
            let q = a.quantity;
            self.move_or_mismatch(tx, StockMove::Consume, &node, &sku, q, &order.order_id, now, fx).await?;
            if let Some(l) = order.lines.iter_mut().find(|l| l.line_id == a.line_id) {
                l.shipped += q;
                if how == Handover::Customer {
                    l.delivered += q;
                }
            }
            let a = &mut order.allocations[ai];
            a.shipped = q;
            tx.update_allocation(a).await?;
        }
        Ok(())
    }

    /// Lines of a fulfillment order handed to the customer at its shipments' delivery.
    pub(super) async fn mark_delivered(
        &self,
        tx: &mut Tx,
        order: &mut StoredOrder,
        fo_id: &str,
        at_ms: i64,
        now: i64,
        fx: &mut Effects,
    ) -> Result<()> {
        for a in order.allocations.iter().filter(|a| a.fulfillment_order_id == fo_id && a.shipped > 0) {
            if let Some(l) = order.lines.iter_mut().find(|l| l.line_id == a.line_id) {
                l.delivered += a.shipped;
            }
        }
        let mut delivered = Vec::new();
        for sh in order.shipments.iter_mut().filter(|s| s.fulfillment_order_id == fo_id && s.status != "delivered") {
            sh.status = "delivered".to_owned();
            sh.delivered_at_ms = Some(at_ms);
            sh.updated_at_ms = now;
            tx.update_shipment(sh).await?;
            fx.events.push(shipment_event(sh, &order.channel, "delivered", now));
            delivered.push(sh.clone());
        }
        for sh in &delivered {
            if let Some(o) = self.delivery_observation(order, sh, at_ms) {
                tx.insert_delivery_observation(&o).await?;
            }
        }
        Ok(())
    }

    /// The shipments of a ship action: every unit of the fulfillment order in exactly one
    /// package; tracking numbers not used before.
    pub(super) async fn plan_shipments(
        &self,
        tx: &mut Tx,
        order: &StoredOrder,
        fo_id: &str,
        allocs: &[usize],
        packages: &[Package],
        now: i64,
    ) -> Result<Vec<ShipmentRow>> {
        let mut errors = Vec::new();
        let mut counted: BTreeMap<&str, i64> = BTreeMap::new();
        let mut out = Vec::with_capacity(packages.len());
        for (i, p) in packages.iter().enumerate() {
            if tx.shipment_owner(&p.tracking_number).await?.is_some() {
                return Err(AppError::Conflict(vec![FieldError::new(
                    format!("packages[{i}].tracking_number"),
                    format!("tracking number {} is already used by another shipment", p.tracking_number),
                )]));
            }
            let lines: Vec<(String, i64)> = match &p.lines {
                None => {
                    let mut per_line: BTreeMap<String, i64> = BTreeMap::new();
                    for &ai in allocs {
                        *per_line.entry(order.allocations[ai].line_id.clone()).or_default() +=
                            order.allocations[ai].quantity;
                    }
                    per_line.into_iter().collect()
                }
                // Capped: no line has more than 10⁹ units, and sums must not wrap.
                Some(ls) => {
                    ls.iter().map(|(l, q)| (l.clone(), i64::try_from(*q).unwrap_or(i64::MAX).min(1 << 40))).collect()
                }
            };
            for (j, (line_id, q)) in lines.iter().enumerate() {
                match allocs.iter().find(|&&ai| &order.allocations[ai].line_id == line_id) {
                    Some(&ai) => *counted.entry(order.allocations[ai].line_id.as_str()).or_default() += q,
                    None => errors.push(FieldError::new(
                        format!("packages[{i}].lines[{j}].line_id"),
                        format!("line {line_id} is not in this fulfillment order"),
                    )),
                }
            }
            let fo = order.fulfillment_orders.iter().find(|f| f.fulfillment_order_id == fo_id);
            out.push(ShipmentRow {
                shipment_id: self.new_id("shp", now),
                fulfillment_order_id: fo_id.to_owned(),
                order_id: order.order_id.clone(),
                node_id: fo.map(|f| f.node_id.clone()).unwrap_or_default(),
                carrier: p.carrier.clone(),
                tracking_number: p.tracking_number.clone(),
                status: "shipped".to_owned(),
                lines: serde_json::Value::from(
                    lines.iter().map(|(l, q)| json!({"line_id": l, "quantity": q})).collect::<Vec<_>>(),
                )
                .to_string(),
                detail: None,
                shipped_at_ms: now,
                delivered_at_ms: None,
                updated_at_ms: now,
            });
        }
        let mut here: BTreeMap<&str, i64> = BTreeMap::new();
        for &ai in allocs {
            *here.entry(order.allocations[ai].line_id.as_str()).or_default() += order.allocations[ai].quantity;
        }
        for (line_id, units) in &here {
            let got = counted.get(line_id).copied().unwrap_or(0);
            if got != *units {
                errors.push(FieldError::new(
                    "packages",
                    format!("line {line_id} has {units} units here; the packages carry {got}"),
                ));
            }
        }
        if !errors.is_empty() {
            return Err(AppError::Invalid(errors));
        }
        Ok(out)
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) async fn move_or_mismatch(
        &self,
        tx: &mut Tx,
        how: StockMove,
        node: &NodeId,
        sku: &Sku,
        quantity: i64,
        order_id: &str,
        now: i64,
        fx: &mut Effects,
    ) -> Result<()> {
        match tx.move_stock(how, node, sku, quantity as u64, now).await? {
            Some(p) => {
                fx.written.push(p);
                Ok(())
            }
            None => Err(AppError::stock_mismatch(node, sku, "allocated", &format!("order {order_id}"))),
        }
    }
}
