//! Jeopardy: promised lines watched against the customer's calendar day (`on_track`,
//! `at_risk`, `late`) and the policy's action when they slip (notify, reroute work not
//! accepted, upgrade the service level).

use super::*;

/// Orders looked at per jeopardy sweep page.
pub const JEOPARDY_BATCH: i64 = 200;

/// A promised line's jeopardy on `today` (the customer's calendar day): `late` once the
/// promised date has passed without delivery; `at_risk` from the day before the promised
/// date while units have not all left a node, or at any time while a carrier reports
/// trouble (`carrier_trouble`: a shipment of the line whose last scan is `exception` or
/// `delayed`); else `on_track`.
///
/// A pickup line promised ready at a time (`promised_ready_at_ms`) is `on_track` once its
/// units are ready at the counter, else `at_risk` in the last [`PICKUP_AT_RISK_MS`] before
/// that time and `late` after it.
pub(crate) fn jeopardy(
    line: &allot_store::OrderLineRow,
    today: jiff::civil::Date,
    carrier_trouble: bool,
    now_ms: i64,
    ready_units: i64,
) -> Option<&'static str> {
    let open = line.quantity - line.cancelled;
    if open == 0 || line.delivered >= open {
        return None;
    }
    if let Some(ready_at) = line.promised_ready_at_ms {
        return Some(if ready_units >= open {
            "on_track"
        } else if now_ms > ready_at {
            "late"
        } else if now_ms > ready_at - PICKUP_AT_RISK_MS {
            "at_risk"
        } else {
            "on_track"
        });
    }
    let promised: jiff::civil::Date = line.promised_date.as_deref()?.parse().ok()?;
    let eve = promised.yesterday().ok()?;
    Some(if today > promised {
        "late"
    } else if carrier_trouble || (today >= eve && line.shipped < open) {
        "at_risk"
    } else {
        "on_track"
    })
}

/// Lines carried by a shipment whose carrier last reported an exception or a delay.
pub(super) fn lines_in_carrier_trouble(order: &StoredOrder) -> BTreeSet<String> {
    order
        .shipments
        .iter()
        .filter(|s| matches!(s.status.as_str(), "exception" | "delayed"))
        .flat_map(shipment_line_ids)
        .collect()
}

/// The line ids a shipment carries (its stored `[{"line_id", "quantity"}]`).
pub(super) fn shipment_line_ids(sh: &ShipmentRow) -> Vec<String> {
    #[derive(Deserialize)]
    struct PackageLine {
        line_id: String,
    }
    serde_json::from_str::<Vec<PackageLine>>(&sh.lines).unwrap_or_default().into_iter().map(|l| l.line_id).collect()
}

impl App {
    /// Recomputes the jeopardy of every promised open line, on the customer's calendar
    /// day (`ship_to.time_zone`; UTC when the order has none); a line entering `at_risk`
    /// or `late` raises `order.at_risk` / `order.late` (once per change) naming the lines,
    /// and the active policy's `jeopardy_action` follows: `upgrade_service` moves the
    /// line's unshipped units up one service level (`order.service_upgraded`);
    /// `reroute_if_not_accepted` takes work its node has not accepted away and re-sources
    /// it elsewhere (reason `order_at_risk` / `order_late`). Answers how many orders
    /// changed. Pages of [`JEOPARDY_BATCH`] orders, each its own transaction. Run by the
    /// background sweep; tests call it with a fixed clock.
    pub async fn sweep_jeopardy(&self) -> Result<usize> {
        let now = self.now_ms();
        let action = {
            let read = self.inner.read.read();
            read.active_policy.as_ref().map(|p| p.policy.jeopardy_action).unwrap_or_default()
        };
        let mut changed = 0;
        let mut after = String::new();
        loop {
            let ids = self.inner.store.promised_open_orders(&after, JEOPARDY_BATCH).await?;
            let Some(last) = ids.last().cloned() else { break };
            for id in &ids {
                match self.update_jeopardy(id, now, action).await {
                    Ok(true) => changed += 1,
                    Ok(false) => {}
                    Err(e) => tracing::warn!(order = %id, error = %ErrorChain(&e), "jeopardy update failed"),
                }
            }
            if (ids.len() as i64) < JEOPARDY_BATCH {
                break;
            }
            after = last;
        }
        Ok(changed)
    }

    pub(super) async fn update_jeopardy(&self, order_id: &str, now: i64, action: JeopardyAction) -> Result<bool> {
        let mut tx = self.inner.store.begin().await?;
        let order = self.lock_for_change(&mut tx, order_id, None).await?;
        let captured = CapturedOrder::of(&order).ok();
        let zone = customer_zone(captured.as_ref().and_then(|c| c.ship_to.as_ref()));
        let instant = jiff::Timestamp::from_millisecond(now).map_err(|e| AppError::invalid("now", e))?;
        let today = zone.to_datetime(instant).date();
        let mut entered: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();
        // Lines at risk or late now, whether or not that is news.
        let mut jeopardized: BTreeMap<String, &'static str> = BTreeMap::new();
        let mut upgrades = Vec::new();
        let mut any = false;
        let troubled = lines_in_carrier_trouble(&order);
        let at_counter: BTreeSet<&str> = order
            .fulfillment_orders
            .iter()
            .filter(|f| matches!(f.status.as_str(), "ready_for_pickup" | "picked_up"))
            .map(|f| f.fulfillment_order_id.as_str())
            .collect();
        for l in &order.lines {
            let ready: i64 = order
                .allocations
                .iter()
                .filter(|a| a.line_id == l.line_id && at_counter.contains(a.fulfillment_order_id.as_str()))
                .map(|a| a.quantity)
                .sum();
            let Some(state) = jeopardy(l, today, troubled.contains(&l.line_id), now, ready) else { continue };
            if state != "on_track" {
                jeopardized.insert(l.line_id.clone(), state);
            }
            if l.jeopardy.as_deref() == Some(state) {
                continue;
            }
            tx.set_line_jeopardy(order_id, &l.line_id, state).await?;
            any = true;
            if state == "on_track" {
                continue;
            }
            entered.entry(state).or_default().push(l.line_id.clone());
            let unshipped = l.quantity - l.cancelled - l.shipped > 0;
            if action == JeopardyAction::UpgradeService && unshipped && l.promised_date.is_some() {
                let current = l.upgraded_service_level.clone().unwrap_or_else(|| match &captured {
                    Some(c) => c.service_level(&l.line_id),
                    None => "standard".to_owned(),
                });
                if let Some(to) = upgraded_service_level(&current) {
                    tx.set_line_service_upgrade(order_id, &l.line_id, to).await?;
                    upgrades.push(json!({"line_id": l.line_id, "from": current, "to": to, "jeopardy": state}));
                }
            }
        }
        if any {
            let mut events: Vec<NewEvent> = entered
                .iter()
                .map(|(state, lines)| {
                    crate::events::order_event(
                        &format!("order.{state}"),
                        &order,
                        now,
                        json!({"lines": lines, "today": today.to_string(),
                               "time_zone": zone.iana_name().unwrap_or("UTC"), "action": action.as_str()}),
                    )
                })
                .collect();
            if !upgrades.is_empty() {
                let lines: BTreeSet<&str> = upgrades.iter().filter_map(|u| u["line_id"].as_str()).collect();
                events.push(crate::events::order_event(
                    "order.service_upgraded",
                    &order,
                    now,
                    json!({"lines": upgrades}),
                ));
                // The nodes holding the work hear it on their fulfillment orders too.
                for fo in working_fos(&order, &lines) {
                    let data = json!({"lines": upgrades});
                    events.push(fo_event_named("fulfillment_order.service_upgraded", fo, &order.channel, now, data));
                }
            }
            tx.insert_events(&events).await?;
            tx.commit().await?;
        } else {
            tx.rollback().await?;
        }
        if action == JeopardyAction::RerouteIfNotAccepted && !jeopardized.is_empty() {
            // Released work not accepted within the grace period moves, each fulfillment
            // order in its own transaction through the fulfillment path (as a rejection,
            // but only when other nodes can take all of it). Checked on every sweep while
            // the line stays in jeopardy, so work released moments ago gets its turn later.
            let lines: BTreeSet<&str> = jeopardized.keys().map(String::as_str).collect();
            let released_before_ms = now - REASSIGN_GRACE_MS;
            for fo in working_fos(&order, &lines) {
                if fo.status != FoStatus::Released.as_str() || fo.released_at_ms.is_none_or(|r| r >= released_before_ms)
                {
                    continue;
                }
                let state = order
                    .allocations
                    .iter()
                    .filter(|a| a.fulfillment_order_id == fo.fulfillment_order_id)
                    .filter_map(|a| jeopardized.get(&a.line_id))
                    .max()
                    .copied()
                    .unwrap_or("at_risk");
                let reassign = FoAction::Reassign { reason: format!("order_{state}"), released_before_ms };
                match self.act_on(&fo.fulfillment_order_id, reassign, None).await {
                    Ok(_) => {}
                    Err(AppError::Conflict(_)) => {
                        tracing::debug!(fulfillment_order = %fo.fulfillment_order_id, "no other node can take it")
                    }
                    Err(e) => {
                        tracing::warn!(fulfillment_order = %fo.fulfillment_order_id, error = %ErrorChain(&e), "jeopardy reroute failed")
                    }
                }
            }
        }
        Ok(any)
    }
}

/// How long before its promised ready time a pickup line not yet ready is at risk.
pub const PICKUP_AT_RISK_MS: i64 = 60 * 60_000;

/// How long released work has to be accepted before a jeopardy reroute may move it.
pub const REASSIGN_GRACE_MS: i64 = 30 * 60_000;

/// Fulfillment orders still holding units of `lines`.
pub(super) fn working_fos<'a>(order: &'a StoredOrder, lines: &BTreeSet<&str>) -> Vec<&'a FulfillmentOrderRow> {
    let ids: BTreeSet<&str> = order
        .allocations
        .iter()
        .filter(|a| a.quantity > 0 && lines.contains(a.line_id.as_str()))
        .map(|a| a.fulfillment_order_id.as_str())
        .collect();
    order
        .fulfillment_orders
        .iter()
        .filter(|f| ids.contains(f.fulfillment_order_id.as_str()))
        .filter(|f| FoStatus::parse(&f.status).is_some_and(FoStatus::holds_stock))
        .collect()
}
