//! Promise data use cases (issue 5): carriers and node calendars, validated
//! ([`crate::promise_doc`]), stored as versioned documents, held parsed in the read
//! model for the promise calculator.
//!
//! Other servers on the same PostgreSQL database re-read carriers and calendars when a
//! change note says they changed (`promise_data`).

use std::collections::HashMap;
use std::sync::Arc;

use allot_core::sourcing::{OBSERVED_MIN_DELIVERIES, OrderToSource, PromiseTerms, TransitSource};
use allot_store::{DocumentKind, StoredDocument};

use crate::promise_data::{LoadedCalendar, LoadedCarrier};
use crate::promise_doc::{CarrierDoc, NodeCalendarDoc, carrier_services, node_calendar};
use crate::read_model::ReadModel;
use crate::{App, AppError, FieldError, Result};

fn id_ok(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

impl App {
    /// Creates or replaces a carrier; answers it with `true` when created.
    pub async fn put_carrier(&self, id: &str, doc: CarrierDoc) -> Result<(Arc<LoadedCarrier>, bool)> {
        if !id_ok(id) {
            return Err(AppError::invalid("carrier_id", "1–64 characters of A–Z, a–z, 0–9, - _"));
        }
        crate::policy_doc::check_document_text(&serde_json::to_value(&doc).unwrap_or_default())
            .map_err(AppError::Invalid)?;
        let services = carrier_services(id, &doc).map_err(AppError::Invalid)?;
        let text = serde_json::to_string(&doc).map_err(|e| AppError::invalid("carrier", e))?;
        let now = self.now_ms();
        let mut tx = self.inner.store.begin().await?;
        let version = tx.put_document(DocumentKind::Carrier, id, &text, now).await?;
        self.notify(&mut tx, || crate::change_note::ChangeNote { promise_data: true, ..self.change() }).await?;
        tx.commit().await?;
        let stored = StoredDocument { id: id.to_owned(), document: text, version, updated_at_ms: now };
        let loaded = Arc::new(LoadedCarrier { stored, services });
        self.inner.read.update(|m| {
            m.carriers.insert(id.to_owned(), loaded.clone());
        });
        Ok((loaded, version == 1))
    }

    pub fn carrier(&self, id: &str) -> Result<Arc<LoadedCarrier>> {
        self.inner
            .read
            .read()
            .carriers
            .get(id)
            .cloned()
            .ok_or_else(|| AppError::NotFound { what: "carrier", id: id.to_owned() })
    }

    /// Sets a node's calendar (hours in the node's time zone). Every carrier service it
    /// names must exist.
    pub async fn put_node_calendar(&self, node_id: &str, doc: NodeCalendarDoc) -> Result<(Arc<LoadedCalendar>, bool)> {
        let tz = self.node(node_id)?.node.time_zone.as_str().to_owned();
        crate::policy_doc::check_document_text(&serde_json::to_value(&doc).unwrap_or_default())
            .map_err(AppError::Invalid)?;
        let (calendar, services) = node_calendar(&tz, &doc).map_err(AppError::Invalid)?;
        {
            let read = self.inner.read.read();
            let known = |key: &str| read.carriers.values().any(|c| c.services.iter().any(|s| s.key == key));
            let unknown: Vec<FieldError> = services
                .iter()
                .enumerate()
                .filter(|(_, s)| !known(s))
                .map(|(i, s)| FieldError::new(format!("carrier_services[{i}]"), format!("unknown carrier service {s}")))
                .collect();
            if !unknown.is_empty() {
                return Err(AppError::Invalid(unknown));
            }
        }
        let text = serde_json::to_string(&doc).map_err(|e| AppError::invalid("calendar", e))?;
        let now = self.now_ms();
        let mut tx = self.inner.store.begin().await?;
        let version = tx.put_document(DocumentKind::NodeCalendar, node_id, &text, now).await?;
        self.notify(&mut tx, || crate::change_note::ChangeNote { promise_data: true, ..self.change() }).await?;
        tx.commit().await?;
        let stored = StoredDocument { id: node_id.to_owned(), document: text, version, updated_at_ms: now };
        let same_day_slots = doc.same_day_slots;
        let loaded = Arc::new(LoadedCalendar { stored, calendar, carrier_services: services, same_day_slots });
        self.inner.read.update(|m| {
            m.calendars.insert(node_id.to_owned(), loaded.clone());
        });
        Ok((loaded, version == 1))
    }

    pub fn node_calendar(&self, node_id: &str) -> Result<Arc<LoadedCalendar>> {
        self.node(node_id)?;
        self.inner
            .read
            .read()
            .calendars
            .get(node_id)
            .cloned()
            .ok_or_else(|| AppError::NotFound { what: "node calendar", id: node_id.to_owned() })
    }
}

/// Most pickup stores offered, nearest first.
pub const PICKUP_OPTIONS_MAX: usize = 5;
/// Furthest pickup store offered, in km.
pub const PICKUP_RADIUS_KM: f64 = 80.0;

/// A cart to promise.
#[derive(Debug, Clone)]
pub struct PromiseQuery {
    /// The cart as the engine sees it (ship lines; method and service level are set per
    /// option).
    pub order: allot_core::sourcing::OrderToSource,
    pub policy: Option<String>,
    /// Methods asked for: `ship`, `pickup` (none = both).
    pub methods: Vec<String>,
}

/// One package of an option: where it leaves from, when, with which service.
#[derive(Debug, Clone)]
pub struct PromisePackage {
    /// What the carrier service charges for it (its `rates` by distance and billed kg);
    /// `None` when the service has no rate for it.
    pub carrier_rate_minor: Option<i64>,
    pub node_id: String,
    pub lines: Vec<(String, u64)>,
    pub carrier_service: Option<String>,
    pub ship_date: Option<jiff::civil::Date>,
    pub distance_km: f64,
}

/// A fulfilment option the engine would really make.
#[derive(Debug, Clone)]
pub struct PromiseOption {
    pub option_id: String,
    pub method: String,
    pub service_level: Option<String>,
    /// Every package's delivery date; the option's is the latest.
    pub delivery_date: Option<jiff::civil::Date>,
    pub ready_at: Option<jiff::Timestamp>,
    /// Seconds left to order for this date (0: no countdown promised).
    pub order_within_s: i64,
    pub cost_minor: i64,
    /// Σ of the packages' carrier rates (`None` unless every package has one).
    pub carrier_rate_minor: Option<i64>,
    /// Pickup: the store's name.
    pub store_name: Option<String>,
    pub packages: Vec<PromisePackage>,
}

#[derive(Debug, Clone)]
pub struct PromiseAnswer {
    pub options: Vec<PromiseOption>,
    /// (method, service level, reason) of what cannot be offered.
    pub unavailable: Vec<(String, Option<String>, String)>,
}

/// A lane: (origin node, destination region, carrier service).
pub type Lane = (String, String, String);

/// Learned transit per lane: deliveries observed and their 90th percentile (carrier days).
pub type LaneStats = Arc<HashMap<Lane, (u32, u32)>>;

/// Deliveries older than this do not teach transit times (90 days).
pub const LANE_WINDOW_MS: i64 = 90 * 24 * 3_600_000;

/// How long a read of the learned lane transit times serves promises.
pub const LANE_STATS_TTL: std::time::Duration = std::time::Duration::from_secs(60);

/// Promised against delivered, per lane (`GET /v1/promise-accuracy`).
#[derive(Debug, Clone, PartialEq)]
pub struct LaneAccuracy {
    pub carrier_service: String,
    pub node_id: String,
    pub region: String,
    pub deliveries: u64,
    pub transit_days_p50: u32,
    pub transit_days_p90: u32,
    /// Deliveries that had a promised date, and how they met it.
    pub promised: u64,
    pub on_time: u64,
    pub late: u64,
    /// Mean days late over the late ones.
    pub average_days_late: Option<f64>,
}

impl LaneAccuracy {
    /// On-time deliveries ÷ deliveries with a promise; `None` when none had one.
    pub fn on_time_rate(&self) -> Option<f64> {
        rate(self.on_time, self.promised)
    }
}

/// Delivery against promise over a window: every lane, and their totals.
#[derive(Debug, Clone)]
pub struct PromiseAccuracy {
    pub from_ms: i64,
    pub to_ms: i64,
    pub lanes: Vec<LaneAccuracy>,
    pub deliveries: u64,
    pub promised: u64,
    pub on_time: u64,
    pub late: u64,
}

impl PromiseAccuracy {
    fn of(from_ms: i64, to_ms: i64, lanes: Vec<LaneAccuracy>) -> PromiseAccuracy {
        PromiseAccuracy {
            from_ms,
            to_ms,
            deliveries: lanes.iter().map(|l| l.deliveries).sum(),
            promised: lanes.iter().map(|l| l.promised).sum(),
            on_time: lanes.iter().map(|l| l.on_time).sum(),
            late: lanes.iter().map(|l| l.late).sum(),
            lanes,
        }
    }

    /// On-time deliveries ÷ deliveries with a promise, over every lane.
    pub fn on_time_rate(&self) -> Option<f64> {
        rate(self.on_time, self.promised)
    }
}

/// `part ÷ whole`, `None` when `whole` is 0 (no basis, not a rate of 0).
fn rate(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

/// The nearest-rank `q`-quantile of a histogram of (value, count), values ascending.
fn histogram_quantile(hist: &[(i64, i64)], q: f64) -> Option<i64> {
    let total: i64 = hist.iter().map(|(_, c)| c).sum();
    if total == 0 {
        return None;
    }
    let rank = ((q * total as f64).ceil() as i64).clamp(1, total);
    let mut seen = 0;
    for (v, c) in hist {
        seen += c;
        if seen >= rank {
            return Some(*v);
        }
    }
    hist.last().map(|(v, _)| *v)
}

/// How long a read of the nodes' open work serves promises.
pub const BACKLOG_TTL: std::time::Duration = std::time::Duration::from_secs(1);

impl App {
    /// Open work per node (fulfillment orders not yet shipped or made ready), read at most
    /// once per [`BACKLOG_TTL`]: daily capacity in ship dates works it off.
    pub(crate) async fn node_backlog(&self) -> Result<Arc<HashMap<String, u32>>> {
        if let Some((at, map)) = self.inner.backlog.lock().unwrap_or_else(|p| p.into_inner()).as_ref()
            && at.elapsed() < BACKLOG_TTL
        {
            return Ok(map.clone());
        }
        self.refresh_node_backlog().await
    }

    /// Reads the nodes' open work now (tests call it after placing orders).
    pub async fn refresh_node_backlog(&self) -> Result<Arc<HashMap<String, u32>>> {
        let rows = self.inner.store.open_work_by_node().await?;
        let map: Arc<HashMap<String, u32>> =
            Arc::new(rows.into_iter().map(|(n, c)| (n, u32::try_from(c).unwrap_or(u32::MAX))).collect());
        *self.inner.backlog.lock().unwrap_or_else(|p| p.into_inner()) = Some((std::time::Instant::now(), map.clone()));
        Ok(map)
    }

    /// Learned transit per lane, read at most once per [`LANE_STATS_TTL`].
    pub(crate) async fn lane_stats(&self) -> Result<LaneStats> {
        let stale = match self.inner.lane_stats.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            Some((at, stats)) if at.elapsed() < LANE_STATS_TTL => return Ok(stats.clone()),
            Some((_, stats)) => Some(stats.clone()),
            None => None,
        };
        // One request refreshes; the others keep using what there is meanwhile.
        if let Some(stats) = stale
            && self.inner.lane_stats_refreshing.swap(true, std::sync::atomic::Ordering::AcqRel)
        {
            return Ok(stats);
        }
        let fresh = self.refresh_lane_stats().await;
        self.inner.lane_stats_refreshing.store(false, std::sync::atomic::Ordering::Release);
        fresh
    }

    /// Reads the learned lane transit times now: deliveries of the last
    /// [`LANE_WINDOW_MS`] on lanes with a known region.
    pub async fn refresh_lane_stats(&self) -> Result<LaneStats> {
        let now = self.now_ms();
        let rows = self.inner.store.transit_histogram(now - LANE_WINDOW_MS, i64::MAX).await?;
        let mut by_lane: HashMap<Lane, Vec<(i64, i64)>> = HashMap::new();
        for r in rows.into_iter().filter(|r| !r.region.is_empty()) {
            by_lane.entry((r.node_id, r.region, r.carrier_service)).or_default().push((r.value, r.deliveries));
        }
        let stats: LaneStats = Arc::new(
            by_lane
                .into_iter()
                .map(|(lane, hist)| {
                    let n: i64 = hist.iter().map(|(_, c)| c).sum();
                    let p90 = histogram_quantile(&hist, 0.9).unwrap_or(0);
                    (lane, (u32::try_from(n).unwrap_or(u32::MAX), u32::try_from(p90.max(0)).unwrap_or(u32::MAX)))
                })
                .collect(),
        );
        *self.inner.lane_stats.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((std::time::Instant::now(), stats.clone()));
        Ok(stats)
    }

    /// Promised against delivered per lane and carrier service, over deliveries in
    /// `[from_ms, to_ms)`: deliveries, transit p50/p90 (carrier days), and of the
    /// promised ones how many were on time or late and by how much.
    pub async fn promise_accuracy(&self, from_ms: i64, to_ms: i64) -> Result<PromiseAccuracy> {
        if from_ms >= to_ms {
            return Err(AppError::invalid("from", "must be before to"));
        }
        let transit = self.inner.store.transit_histogram(from_ms, to_ms).await?;
        let lateness = self.inner.store.lateness_histogram(from_ms, to_ms).await?;
        // (carrier service, node, region) → (transit histogram, lateness histogram)
        type Histograms = (Vec<(i64, i64)>, Vec<(i64, i64)>);
        let mut lanes: std::collections::BTreeMap<Lane, Histograms> = Default::default();
        for r in transit {
            lanes.entry((r.carrier_service, r.node_id, r.region)).or_default().0.push((r.value, r.deliveries));
        }
        for r in lateness {
            lanes.entry((r.carrier_service, r.node_id, r.region)).or_default().1.push((r.value, r.deliveries));
        }
        let lanes = lanes
            .into_iter()
            .map(|((carrier_service, node_id, region), (transit, late))| {
                let count = |h: &[(i64, i64)], keep: &dyn Fn(i64) -> bool| -> u64 {
                    h.iter().filter(|(v, _)| keep(*v)).map(|(_, c)| *c as u64).sum()
                };
                let late_n = count(&late, &|v| v > 0);
                let late_days: i64 = late.iter().filter(|(v, _)| *v > 0).map(|(v, c)| v * c).sum();
                let quantile = |q| histogram_quantile(&transit, q).map_or(0, |v| u32::try_from(v.max(0)).unwrap_or(0));
                LaneAccuracy {
                    deliveries: count(&transit, &|_| true),
                    transit_days_p50: quantile(0.5),
                    transit_days_p90: quantile(0.9),
                    promised: count(&late, &|_| true),
                    on_time: count(&late, &|v| v <= 0),
                    late: late_n,
                    average_days_late: (late_n > 0).then(|| late_days as f64 / late_n as f64),
                    carrier_service,
                    node_id,
                    region,
                }
            })
            .collect();
        Ok(PromiseAccuracy::of(from_ms, to_ms, lanes))
    }

    /// The transit source of the policy a request names, else the active one's.
    fn transit_source(&self, policy: Option<&str>) -> TransitSource {
        let read = self.inner.read.read();
        let chosen = match policy {
            Some(name) => read.policies.get(name),
            None => read.active_policy.as_ref(),
        };
        chosen.map(|p| p.policy.transit).unwrap_or_default()
    }

    /// The learned lane stats when the policy asks for them.
    async fn learned_for(&self, policy: Option<&str>) -> Result<Option<LaneStats>> {
        Ok(match self.transit_source(policy) {
            TransitSource::ObservedP90 => Some(self.lane_stats().await?),
            TransitSource::Table => None,
        })
    }

    /// Fulfilment options for a cart: per service level a carrier offers, the engine's
    /// plan with each package's ship date (node calendar, service cut-off) and delivery
    /// date (transit business days); pickup at nearby stores holding the whole cart, with
    /// the time it is ready. Options that cannot be met are listed with a reason.
    pub async fn promise(&self, q: &PromiseQuery) -> Result<PromiseAnswer> {
        let backlog = self.node_backlog().await?;
        let learned = self.learned_for(q.policy.as_deref()).await?;
        let region = q.order.region.clone().unwrap_or_default();
        let lanes = learned.as_ref().filter(|_| !region.is_empty()).map(|l| Learned { stats: l, region: &region });
        let now = self.now_ms();
        let now_ts = jiff::Timestamp::from_millisecond(now).map_err(|e| AppError::invalid("now", e))?;
        let wants = |m: &str| q.methods.is_empty() || q.methods.iter().any(|x| x == m);
        let mut options = Vec::new();
        let mut unavailable = Vec::new();
        let ship_to = q.order.ship_to;
        if wants("ship") {
            let levels: std::collections::BTreeSet<String> = {
                let read = self.inner.read.read();
                read.carriers.values().flat_map(|c| c.services.iter().map(|s| s.service_level.clone())).collect()
            };
            if levels.is_empty() {
                unavailable.push(("ship".to_owned(), None, "no carrier is configured".to_owned()));
            }
            let level_blind = self.rules_ignore_service_level(q.policy.as_deref());
            let mut quote = None;
            for level in levels.iter().filter(|l| l.as_str() != "same_day") {
                // (same_day is offered below, from its own nodes and slots)
                let mut order = q.order.clone();
                for l in order.lines.iter_mut() {
                    l.service_level = Some(level.clone());
                    l.method = allot_core::FulfillmentMethod::Ship;
                }
                // The engine sees the service level only through rule conditions: when no
                // rule names one, every level gets the same plan, so it is sourced once.
                if !level_blind || quote.is_none() {
                    quote = Some(self.plan(&order, q.policy.as_deref())?);
                }
                let Some(quote) = quote.as_ref() else { continue }; // set just above
                let plan = &quote.decision.plan;
                if !plan.backordered.is_empty() || !plan.unfilled.is_empty() || plan.packages.is_empty() {
                    unavailable.push((
                        "ship".to_owned(),
                        Some(level.clone()),
                        "not enough stock to ship the whole cart".to_owned(),
                    ));
                    continue;
                }
                match self.ship_option(level, plan, ship_to, now_ts, &backlog, lanes) {
                    Ok(opt) => options.push(opt),
                    Err(reason) => unavailable.push(("ship".to_owned(), Some(level.clone()), reason)),
                }
            }
        }
        if wants("ship") && self.has_service_level("same_day") {
            match self.same_day_option(q, now_ts).await? {
                Ok(opt) => options.push(opt),
                Err(reason) => unavailable.push(("ship".to_owned(), Some("same_day".to_owned()), reason)),
            }
        }
        if wants("pickup") {
            let found = self.pickup_options(q, now_ts);
            if found.is_empty() {
                unavailable.push((
                    "pickup".to_owned(),
                    None,
                    format!("no store within {PICKUP_RADIUS_KM} km has the whole cart and a calendar"),
                ));
            }
            options.extend(found);
        }
        Ok(PromiseAnswer { options, unavailable })
    }

    /// Whether no rule of the policy a quote would use (`policy`, else the active one, else
    /// the built-in) has a `service_level` condition.
    fn rules_ignore_service_level(&self, policy: Option<&str>) -> bool {
        let read = self.inner.read.read();
        let chosen = match policy {
            Some(name) => read.policies.get(name),
            None => read.active_policy.as_ref(),
        };
        chosen.is_none_or(|p| p.policy.rules.iter().all(|r| r.when.service_level.is_none()))
    }

    fn ship_option(
        &self,
        level: &str,
        plan: &allot_core::sourcing::Plan,
        ship_to: Option<allot_core::GeoPoint>,
        now: jiff::Timestamp,
        backlog: &HashMap<String, u32>,
        lanes: Option<Learned<'_>>,
    ) -> std::result::Result<PromiseOption, String> {
        let read = self.inner.read.read();
        let mut packages = Vec::new();
        let mut latest: Option<jiff::civil::Date> = None;
        let mut order_by: Option<jiff::Timestamp> = None;
        for p in &plan.packages {
            let node = read.node(p.node_id.as_str()).ok_or_else(|| format!("node {} is unknown", p.node_id))?;
            if !read.calendars.contains_key(p.node_id.as_str()) {
                return Err(format!("node {} has no calendar", p.node_id));
            }
            let km = ship_to.map_or(0.0, |t| node.node.location.distance_km(t));
            let Some(Delivery { date: delivery, order_by: by, ship_date, service: key }) =
                earliest_delivery(&read, p.node_id.as_str(), level, km, now, backlog, lanes, Some(p.weight_g))
            else {
                return Err(format!(
                    "node {} has no {level} service that takes this package to the address",
                    p.node_id
                ));
            };
            latest = Some(latest.map_or(delivery, |d| d.max(delivery)));
            order_by = Some(order_by.map_or(by, |o| o.min(by)));
            let rate = carrier_rate(&read, &key, km, p.weight_g);
            packages.push(PromisePackage {
                carrier_rate_minor: rate,
                node_id: p.node_id.to_string(),
                lines: p.lines.iter().map(|l| (l.line_id.clone(), l.quantity.get())).collect(),
                carrier_service: Some(key),
                ship_date: Some(ship_date),
                distance_km: km,
            });
        }
        let within = order_by.map_or(0, |o| o.duration_since(now).as_secs().max(0));
        let carrier_rate_minor = packages.iter().map(|p| p.carrier_rate_minor).sum::<Option<i64>>();
        Ok(PromiseOption {
            carrier_rate_minor,
            store_name: None,
            option_id: format!("ship:{level}:{}", latest.map(|d| d.to_string()).unwrap_or_default()),
            method: "ship".to_owned(),
            service_level: Some(level.to_owned()),
            delivery_date: latest,
            ready_at: None,
            order_within_s: within,
            cost_minor: plan.total_cost_minor,
            packages,
        })
    }

    /// How late each node of the network would deliver `order`'s shipped lines with
    /// `level` against `promised` (the engine's [`PromiseTerms`]): a node without a
    /// calendar or a service of that level reaching the address has no date (`None`).
    /// Only nodes holding one of the order's SKUs are worked out (the others have no
    /// stock for it anyway).
    ///
    /// `cached_only`: use what the caches hold without reading the database (callers
    /// inside a write transaction must not wait for another pool connection).
    pub(crate) async fn promise_terms(
        &self,
        order: &OrderToSource,
        level: &str,
        promised: jiff::civil::Date,
        policy: Option<&str>,
        cached_only: bool,
    ) -> Result<PromiseTerms> {
        let (backlog, learned) = if cached_only {
            let backlog = self.inner.backlog.lock().unwrap_or_else(|p| p.into_inner()).as_ref().map(|(_, b)| b.clone());
            let learned = match self.transit_source(policy) {
                TransitSource::ObservedP90 => {
                    self.inner.lane_stats.lock().unwrap_or_else(|p| p.into_inner()).as_ref().map(|(_, l)| l.clone())
                }
                TransitSource::Table => None,
            };
            (backlog.unwrap_or_default(), learned)
        } else {
            (self.node_backlog().await?, self.learned_for(policy).await?)
        };
        let region = order.region.clone().unwrap_or_default();
        let lanes = learned.as_ref().filter(|_| !region.is_empty()).map(|l| Learned { stats: l, region: &region });
        let now = jiff::Timestamp::from_millisecond(self.now_ms()).map_err(|e| AppError::invalid("now", e))?;
        let read = self.inner.read.read();
        let Some(ship_to) = order.ship_to else { return Ok(PromiseTerms::default()) };
        let holds = |id: &str| order.lines.iter().any(|l| read.position(id, l.sku.as_str()).is_some());
        let days_late = read
            .node_slots
            .iter()
            .map(|node| {
                let id = node.id.as_str();
                if !holds(id) {
                    return None;
                }
                let km = node.location.distance_km(ship_to);
                let Some(d) = earliest_delivery(&read, id, level, km, now, &backlog, lanes, None) else {
                    // A node that could deliver but has no room within the calendar's
                    // horizon is as late as can be, not "no date" (which costs nothing).
                    let unbounded = earliest_delivery(&read, id, level, km, now, &HashMap::new(), lanes, None);
                    return unbounded.map(|_| u16::MAX);
                };
                let late = promised.until(d.date).ok()?.get_days().max(0);
                Some(u16::try_from(late).unwrap_or(u16::MAX))
            })
            .collect();
        Ok(PromiseTerms { days_late })
    }

    /// The date an order placed with a service level (and no promise option) is
    /// promised: the delivery date of its plan's parcels with that level, as a promise
    /// option would give it. `None` when its shipped lines name no level or several, or
    /// no date can be made.
    pub(crate) async fn implied_promise(
        &self,
        order: &OrderToSource,
        quote: &crate::Quote,
        policy: Option<&str>,
    ) -> Result<Option<jiff::civil::Date>> {
        use allot_core::FulfillmentMethod::{SameDay, Ship};
        use allot_core::sourcing::PackageKind;
        let levels: std::collections::BTreeSet<&str> = order
            .lines
            .iter()
            .filter(|l| matches!(l.method, Ship | SameDay))
            .filter_map(|l| l.service_level.as_deref())
            .collect();
        let [level] = levels.into_iter().collect::<Vec<_>>()[..] else { return Ok(None) };
        let mut plan = quote.decision.plan.clone();
        plan.packages.retain(|p| p.kind != PackageKind::Pickup);
        if plan.packages.is_empty() {
            return Ok(None);
        }
        let backlog = self.node_backlog().await?;
        let learned = self.learned_for(policy).await?;
        let region = order.region.clone().unwrap_or_default();
        let lanes = learned.as_ref().filter(|_| !region.is_empty()).map(|l| Learned { stats: l, region: &region });
        let now = jiff::Timestamp::from_millisecond(self.now_ms()).map_err(|e| AppError::invalid("now", e))?;
        Ok(self.ship_option(level, &plan, order.ship_to, now, &backlog, lanes).ok().and_then(|o| o.delivery_date))
    }

    fn has_service_level(&self, level: &str) -> bool {
        self.inner.read.read().carriers.values().any(|c| c.services.iter().any(|s| s.service_level == level))
    }

    /// Same-day delivery: the engine's plan for the cart as same-day lines (only nodes with
    /// the capability), every package leaving today before its service's cut-off, within
    /// the service's distance (a 0-day transit band), from a node with a same-day slot left
    /// today (`same_day_slots` in its calendar, less the same-day work it took on today).
    /// Slots are checked when promising: two checkouts racing for the last slot can both
    /// be offered it.
    async fn same_day_option(
        &self,
        q: &PromiseQuery,
        now: jiff::Timestamp,
    ) -> Result<std::result::Result<PromiseOption, String>> {
        let mut order = q.order.clone();
        for l in order.lines.iter_mut() {
            l.service_level = Some("same_day".to_owned());
            l.method = allot_core::FulfillmentMethod::SameDay;
        }
        let quote = self.plan(&order, q.policy.as_deref())?;
        let plan = &quote.decision.plan;
        if !plan.backordered.is_empty() || !plan.unfilled.is_empty() || plan.packages.is_empty() {
            return Ok(Err("no same-day node has the whole cart".to_owned()));
        }
        // Slots first (a database read per node), then the calendar checks.
        for p in &plan.packages {
            let (slots, today, start) = {
                let read = self.inner.read.read();
                let Some(cal) = read.calendars.get(p.node_id.as_str()) else {
                    return Ok(Err(format!("node {} has no calendar", p.node_id)));
                };
                let zone = &cal.calendar.time_zone;
                let today = zone.to_datetime(now).date();
                let start = zone.to_timestamp(today.to_datetime(jiff::civil::Time::midnight())).ok();
                (cal.same_day_slots, today, start.map_or(0, |t| t.as_millisecond()))
            };
            let Some(slots) = slots.filter(|s| *s > 0) else {
                return Ok(Err(format!("node {} offers no same-day slots", p.node_id)));
            };
            let used = self.inner.store.same_day_work(p.node_id.as_str(), &today.to_string(), start).await?;
            if used >= i64::from(slots) {
                return Ok(Err(format!("node {} has no same-day slot left today", p.node_id)));
            }
        }
        let backlog = HashMap::new();
        let option = match self.ship_option("same_day", plan, q.order.ship_to, now, &backlog, None) {
            Ok(option) => option,
            Err(reason) => return Ok(Err(reason)),
        };
        let today = |p: &PromisePackage| {
            let read = self.inner.read.read();
            read.calendars.get(p.node_id.as_str()).map(|c| c.calendar.time_zone.to_datetime(now).date())
        };
        Ok(match option.delivery_date {
            Some(d) if option.packages.iter().all(|p| p.ship_date == Some(d) && today(p) == Some(d)) => Ok(option),
            _ => Err("past today's same-day cut-off, or beyond the same-day distance".to_owned()),
        })
    }

    fn pickup_options(&self, q: &PromiseQuery, now: jiff::Timestamp) -> Vec<PromiseOption> {
        let Some(at) = q.order.ship_to else { return Vec::new() };
        let read = self.inner.read.read();
        let mut stores: Vec<(f64, &allot_store::StoredNode)> = read
            .nodes
            .values()
            .filter(|n| n.node.is_active() && n.node.has(allot_core::Capability::Pickup))
            .map(|n| (n.node.location.distance_km(at), n))
            .filter(|(km, _)| *km <= PICKUP_RADIUS_KM)
            .filter(|(_, n)| {
                q.order.lines.iter().all(|l| {
                    read.position(n.node.id.as_str(), l.sku.as_str())
                        .is_some_and(|p| p.position.counts.atp().get() >= l.quantity.get())
                })
            })
            .collect();
        stores.sort_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.1.node.id.cmp(&b.1.node.id)));
        stores
            .into_iter()
            .filter_map(|(km, n)| {
                let cal = read.calendars.get(n.node.id.as_str())?;
                let ready = allot_core::promise::ready_at(&cal.calendar, now)?;
                Some(PromiseOption {
                    option_id: format!("pickup:{}", n.node.id),
                    method: "pickup".to_owned(),
                    service_level: None,
                    delivery_date: None,
                    ready_at: Some(ready),
                    order_within_s: allot_core::promise::pickup_order_within_s(&cal.calendar, now).unwrap_or(0),
                    cost_minor: n.node.costs.per_order_minor,
                    carrier_rate_minor: None,
                    store_name: Some(n.node.name.clone()),
                    packages: vec![PromisePackage {
                        carrier_rate_minor: None,
                        node_id: n.node.id.to_string(),
                        lines: q.order.lines.iter().map(|l| (l.line_id.clone(), l.quantity.get())).collect(),
                        carrier_service: None,
                        ship_date: None,
                        distance_km: km,
                    }],
                })
            })
            .take(PICKUP_OPTIONS_MAX)
            .collect()
    }
}

/// A node's earliest delivery with one service level.
struct Delivery {
    date: jiff::civil::Date,
    /// The latest order time that keeps this date.
    order_by: jiff::Timestamp,
    ship_date: jiff::civil::Date,
    /// `carrier:service` used.
    service: String,
}

/// The node's services of `level` (per its calendar), the one delivering first, from
/// `now` to an address `km` away; `None` without a calendar or such a service. The ship
/// date respects the node's daily capacity (`orders_per_day`) given its open work.
#[allow(clippy::too_many_arguments)] // the node, the parcel and the figures read once per request
fn earliest_delivery(
    read: &ReadModel,
    node_id: &str,
    level: &str,
    km: f64,
    now: jiff::Timestamp,
    backlog: &HashMap<String, u32>,
    lanes: Option<Learned<'_>>,
    weight_g: Option<u64>,
) -> Option<Delivery> {
    let cal = read.calendars.get(node_id)?;
    let per_day = read.node(node_id)?.node.capacity.orders_per_day;
    let waiting = backlog.get(node_id).copied().unwrap_or(0);
    let mut best: Option<Delivery> = None;
    for key in &cal.carrier_services {
        let Some(svc) =
            read.carriers.values().flat_map(|c| c.services.iter()).find(|s| &s.key == key && s.service_level == level)
        else {
            continue;
        };
        // A package heavier than the service takes goes with another service or not at all.
        if weight_g.zip(svc.max_package_weight_g).is_some_and(|(w, max)| w > u64::from(max)) {
            continue;
        }
        let cutoff = svc.calendar.pickup_cutoff_local;
        let room = allot_core::promise::capacity_from_backlog(&cal.calendar, now, cutoff, waiting, per_day);
        let q = allot_core::promise::ShipQuery { now, node: &cal.calendar, cutoff, has_capacity: &room };
        let Some(slot) = allot_core::promise::ship_slot(&q) else { continue };
        // A lane with enough deliveries promises what it has shown (its p90), when the
        // policy says so; otherwise the table.
        let observed = lanes.and_then(|l| {
            let lane = (node_id.to_owned(), l.region.to_owned(), svc.key.clone());
            let (n, p90) = *l.stats.get(&lane)?;
            (n >= OBSERVED_MIN_DELIVERIES).then(|| u8::try_from(p90).unwrap_or(u8::MAX))
        });
        let date = match observed {
            Some(days) => allot_core::promise::delivery_after(&svc.calendar, slot.ship_date, days),
            None => allot_core::promise::delivery_date(&svc.calendar, slot.ship_date, km),
        };
        let Some(date) = date else { continue };
        if best.as_ref().is_none_or(|b| date < b.date) {
            best =
                Some(Delivery { date, order_by: slot.order_by, ship_date: slot.ship_date, service: svc.key.clone() });
        }
    }
    best
}

/// Learned lane transit times and the customer's region (policy `transit: observed_p90`).
#[derive(Clone, Copy)]
struct Learned<'a> {
    stats: &'a LaneStats,
    region: &'a str,
}

/// What carrier service `key` charges for a package of `weight_g` over `km`: the first
/// rate band covering the distance, base plus per started kg; `None` without one.
fn carrier_rate(read: &ReadModel, key: &str, km: f64, weight_g: u64) -> Option<i64> {
    let svc = read.carriers.values().flat_map(|c| c.services.iter()).find(|s| s.key == key)?;
    let (_, base, per_kg) = svc.rates.iter().find(|(max_km, _, _)| km <= *max_km)?;
    let kg = i64::try_from(weight_g.div_ceil(1000)).ok()?;
    Some(base.saturating_add(per_kg.saturating_mul(kg)))
}
