//! Re-sourcing: units a node gave back (rejection, short pick, release timeout, a paused
//! or closed node) are sourced again in the same transaction, excluding every node that
//! failed the order; the sweeps that find such work.

use super::*;

impl App {
    /// Treats released work not accepted within the active policy's
    /// `accept_within_minutes` as rejected (at most [`TIMEOUT_BATCH`] per call). Answers
    /// how many fulfillment orders timed out. Run by the background sweep; tests call it
    /// with a fixed clock.
    pub async fn sweep_release_timeouts(&self) -> Result<usize> {
        let minutes = {
            let read = self.inner.read.read();
            read.active_policy.as_ref().and_then(|p| p.policy.accept_within_minutes)
        };
        let Some(minutes) = minutes else { return Ok(0) };
        let released_before_ms = self.now_ms() - i64::from(minutes) * 60_000;
        let due = self.inner.store.unaccepted_fulfillment_orders(released_before_ms, TIMEOUT_BATCH).await?;
        let mut timed_out = 0;
        for id in due {
            match self.act_on(&id, FoAction::ReleaseTimeout { released_before_ms }, None).await {
                Ok(entry) if entry.fulfillment_order.reason.as_deref() == Some("release_timeout") => timed_out += 1,
                Ok(_) => {}
                // One fulfillment order that cannot be moved must not stop the others.
                Err(e) => tracing::warn!(fulfillment_order = %id, error = %ErrorChain(&e), "release timeout failed"),
            }
        }
        Ok(timed_out)
    }

    /// Moves work not yet picked away from paused and closed nodes, at most
    /// [`DISRUPTION_BATCH`] fulfillment orders per call (a node outage with thousands of
    /// open orders becomes a steady stream of bounded batches, not one storm). Each move is
    /// its own transaction, re-sourced like a rejection (reason `node_paused` or
    /// `node_closed`). Answers how many moved. Run by the background sweep and right after
    /// a node is paused or closed.
    pub async fn sweep_disrupted_nodes(&self) -> Result<usize> {
        let due = self.inner.store.disrupted_fulfillment_orders(DISRUPTION_BATCH).await?;
        let mut moved = 0;
        for (id, node_status) in due {
            let reason = format!("node_{node_status}");
            match self.act_on(&id, FoAction::Withdraw { reason: reason.clone() }, None).await {
                Ok(entry) if entry.fulfillment_order.reason.as_deref() == Some(reason.as_str()) => moved += 1,
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(fulfillment_order = %id, error = %ErrorChain(&e), "moving work off a disrupted node failed")
                }
            }
        }
        Ok(moved)
    }

    /// Sources `units` (line id → units) of `order` again, excluding every node that has
    /// failed this order, inside the caller's transaction (see the module docs): plan and
    /// take stock in rounds, write the new fulfillment orders, backorder or cancel what is
    /// left, record the attempt. Answers the summary carried by `order.rerouted`.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn reroute_in(
        &self,
        tx: &mut Tx,
        order: &mut StoredOrder,
        units: &BTreeMap<String, i64>,
        failed_fo: Option<&str>,
        reason: &str,
        now: i64,
        fx: &mut Effects,
    ) -> Result<serde_json::Value> {
        let document = CapturedOrder::of(order)?;
        let mut captured = document.to_source(order)?;
        // Work moved after a failure keeps the order's promise, like the first plan.
        if let Some((level, date)) = document.ship_promise() {
            // Inside this transaction: cached figures only; the active policy, as the
            // quote below uses.
            captured.promise = Some(self.promise_terms(&captured, &level, date, None, true).await?);
        }
        let failed_node = order
            .fulfillment_orders
            .iter()
            .find(|f| Some(f.fulfillment_order_id.as_str()) == failed_fo)
            .map(|f| f.node_id.clone());
        let excluded = excluded_nodes(order, failed_node.as_deref());
        let wanted = units.iter().filter(|(_, q)| **q > 0).map(|(l, q)| (l.clone(), *q)).collect();
        let rounds = self.take_in_rounds(tx, &captured, &excluded, wanted, now, fx).await?;
        let attempt = next_attempt(order);
        let (fos, allocations) = self.write_rerouted_work(tx, order, &captured, &rounds.taken, attempt, now).await?;
        let (backordered, cancelled) =
            settle_leftovers(tx, order, &captured, &rounds, failed_fo.is_some(), reason, now).await?;
        let summary = json!({
            "attempt": attempt,
            "reason": reason,
            "from_node_id": failed_node,
            "from_fulfillment_order_id": failed_fo,
            "excluded_nodes": excluded,
            "policy": rounds.stamp.map(|s| json!({"name": s.name, "version": s.version, "hash": s.hash})),
            "requested": units.iter().map(|(l, q)| json!({"line_id": l, "quantity": q})).collect::<Vec<_>>(),
            "fulfillment_orders": fos.iter().map(|f| json!({
                "id": f.fulfillment_order_id, "node_id": f.node_id, "kind": f.kind,
                "lines": allocations.iter().filter(|a| a.fulfillment_order_id == f.fulfillment_order_id)
                    .map(|a| json!({"line_id": a.line_id, "sku": a.sku, "quantity": a.quantity})).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "backordered": backordered,
            "cancelled": cancelled,
        });
        // The attempt keeps the engine's full decision (plan and explanation) of each
        // planning round, as a quote answers it; events carry the summary only.
        let mut stored = summary.clone();
        stored["sourcing"] = serde_json::Value::Array(
            rounds.decisions.iter().map(|d| serde_json::from_str(d).unwrap_or(serde_json::Value::Null)).collect(),
        );
        let row = SourcingAttemptRow {
            attempt,
            reason: reason.to_owned(),
            failed_node_id: failed_node,
            fulfillment_order_id: failed_fo.map(str::to_owned),
            decision: stored.to_string(),
            at_ms: now,
        };
        tx.insert_sourcing_attempt(&order.order_id, &row).await?;
        order.attempts.push(row);
        for f in &fos {
            fx.events.push(fo_event(f, &order.channel, now, json!({"reason": "rerouted"})));
        }
        order.fulfillment_orders.extend(fos);
        order.allocations.extend(allocations);
        Ok(summary)
    }

    /// Plans what is `left` (line id → units) with the engine and takes the stock, in up to
    /// [`REROUTE_ROUNDS`] rounds: a round whose positions another transaction took first
    /// re-reads them and plans the rest again.
    async fn take_in_rounds(
        &self,
        tx: &mut Tx,
        captured: &OrderToSource,
        excluded: &BTreeSet<String>,
        mut left: BTreeMap<String, i64>,
        now: i64,
        fx: &mut Effects,
    ) -> Result<Rounds> {
        let excluded_ids: Vec<NodeId> = excluded.iter().filter_map(|n| NodeId::parse(n).ok()).collect();
        let mut rounds = Rounds::default();
        for _round in 0..REROUTE_ROUNDS {
            let lines: Vec<LineToSource> = captured
                .lines
                .iter()
                .filter_map(|l| {
                    let q = u64::try_from(*left.get(&l.line_id)?).ok()?;
                    Some(LineToSource { quantity: Qty::new(q).ok()?, ..l.clone() })
                })
                .collect();
            if lines.is_empty() {
                break;
            }
            let quote = self.quote_excluding(&OrderToSource { lines, ..captured.clone() }, None, &excluded_ids)?;
            rounds.no_backorder = quote.decision.plan.unfilled.iter().map(|u| u.line_id.clone()).collect();
            rounds.stamp = Some(quote.policy.clone());
            rounds.decisions.push(crate::decision_doc::stored_decision(&quote));
            let mut wants: BTreeMap<(NodeId, Sku), u64> = BTreeMap::new();
            for pkg in &quote.decision.plan.packages {
                for l in &pkg.lines {
                    *wants.entry((pkg.node_id.clone(), l.sku.clone())).or_default() += l.quantity.get();
                }
            }
            if wants.is_empty() {
                break;
            }
            let took = tx.allocate_many(&wants, now).await?;
            let ok: BTreeSet<(NodeId, Sku)> =
                took.iter().map(|p| (p.position.node_id.clone(), p.position.sku.clone())).collect();
            fx.written.extend(took);
            let mut failed = Vec::new();
            for pkg in &quote.decision.plan.packages {
                for l in &pkg.lines {
                    let key = (pkg.node_id.clone(), l.sku.clone());
                    if !ok.contains(&key) {
                        failed.push(key);
                        continue;
                    }
                    let Some(li) = captured.lines.iter().position(|x| x.line_id == l.line_id) else { continue };
                    *rounds.taken.entry((li, pkg.node_id.clone())).or_default() += l.quantity.get();
                    if let Some(q) = left.get_mut(&l.line_id) {
                        *q -= l.quantity.get() as i64;
                    }
                }
            }
            left.retain(|_, q| *q > 0);
            if failed.is_empty() {
                break;
            }
            self.reload_positions(&failed).await?;
        }
        rounds.left = left;
        Ok(rounds)
    }

    /// The new fulfillment orders (one per node × kind, the order's next attempt) and
    /// their allocations for the units taken, written and counted on the order's lines.
    async fn write_rerouted_work(
        &self,
        tx: &mut Tx,
        order: &mut StoredOrder,
        captured: &OrderToSource,
        taken: &BTreeMap<(usize, NodeId), u64>,
        attempt: i64,
        now: i64,
    ) -> Result<(Vec<FulfillmentOrderRow>, Vec<AllocationRow>)> {
        let on_hold = !order.holds.is_empty();
        let mut fo_ids: BTreeMap<(NodeId, FoKind), String> = BTreeMap::new();
        for (li, node) in taken.keys() {
            fo_ids
                .entry((node.clone(), FoKind::of(captured.lines[*li].method)))
                .or_insert_with(|| self.new_id("fo", now));
        }
        let mut fos: Vec<FulfillmentOrderRow> = fo_ids
            .iter()
            .map(|((node, kind), id)| new_fulfillment_order(id, &order.order_id, node, *kind, attempt, on_hold, now))
            .collect();
        let allocations: Vec<AllocationRow> = taken
            .iter()
            .map(|((li, node), q)| {
                let line = &captured.lines[*li];
                new_allocation(line, node, *q as i64, &fo_ids[&(node.clone(), FoKind::of(line.method))])
            })
            .collect();
        crate::rows::stamp_due_dates(&mut fos, &allocations, &order.lines);
        tx.insert_fulfillment_orders(&order.order_id, &fos, &allocations).await?;
        for a in &allocations {
            if let Some(l) = order.lines.iter_mut().find(|l| l.line_id == a.line_id) {
                l.allocated += a.quantity;
            }
        }
        Ok((fos, allocations))
    }
}

/// What the planning rounds of a re-sourcing did.
#[derive(Default)]
struct Rounds {
    /// (line index in the captured order, node) → units taken.
    taken: BTreeMap<(usize, NodeId), u64>,
    /// Line id → units no round could place.
    left: BTreeMap<String, i64>,
    /// Lines the engine would not backorder (it listed them as unfilled).
    no_backorder: BTreeSet<String>,
    stamp: Option<crate::PolicyStamp>,
    /// Each round's stored decision.
    decisions: Vec<String>,
}

/// Every node that has failed this order: rejected fulfillment orders, earlier attempts'
/// failed nodes, and the one failing now.
fn excluded_nodes(order: &StoredOrder, failing: Option<&str>) -> BTreeSet<String> {
    let mut excluded: BTreeSet<String> = order
        .fulfillment_orders
        .iter()
        .filter(|f| f.status == FoStatus::Rejected.as_str())
        .map(|f| f.node_id.clone())
        .collect();
    excluded.extend(order.attempts.iter().filter_map(|a| a.failed_node_id.clone()));
    excluded.extend(failing.map(str::to_owned));
    excluded
}

/// The order's next sourcing attempt number.
fn next_attempt(order: &StoredOrder) -> i64 {
    order
        .fulfillment_orders
        .iter()
        .map(|f| f.attempt)
        .max()
        .unwrap_or(1)
        .max(order.attempts.iter().map(|a| a.attempt).max().unwrap_or(1))
        + 1
}

/// What no node could take: backordered where the line and the policy allow it (and
/// always for backorders being filled, `after_failure` false: they simply stay), else
/// cancelled with the reason. Answers the summary's `backordered` and `cancelled` lists.
async fn settle_leftovers(
    tx: &mut Tx,
    order: &mut StoredOrder,
    captured: &OrderToSource,
    rounds: &Rounds,
    after_failure: bool,
    reason: &str,
    now: i64,
) -> Result<(Vec<serde_json::Value>, Vec<serde_json::Value>)> {
    let mut backordered = Vec::new();
    let mut cancelled = Vec::new();
    let cancel_reason = format!("unsourceable after {reason}");
    for (line_id, q) in &rounds.left {
        let Some(l) = order.lines.iter_mut().find(|l| &l.line_id == line_id) else { continue };
        let allow = captured.lines.iter().any(|c| &c.line_id == line_id && c.allow_backorder);
        if !after_failure || (allow && !rounds.no_backorder.contains(line_id)) {
            l.backordered += q;
            backordered.push(json!({"line_id": line_id, "quantity": q}));
        } else {
            l.cancelled += q;
            tx.insert_cancellation(&order.order_id, line_id, *q, &cancel_reason, now).await?;
            cancelled.push(json!({"line_id": line_id, "quantity": q, "reason": cancel_reason}));
        }
    }
    Ok((backordered, cancelled))
}
