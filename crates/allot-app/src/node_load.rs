//! Daily capacity in sourcing: how many fulfillment orders, and how many units, each node
//! was assigned on its current local day. The engine reads them as
//! `NodeState::orders_today` / `units_today`: a node whose `orders_per_day` is used up is
//! dropped (`capacity_full`), its `units_per_day` bounds what it may take, and a policy's
//! `capacity_penalty_minor` charges `(orders today ÷ orders_per_day)²`.
//!
//! Counted from the database, so that servers sharing one see each other's orders: at start
//! a scan of the day's fulfillment orders, then every [`NODE_LOAD_REFRESH`] those made since
//! — a short range of the time-ordered (UUIDv7) primary key, from the previous refresh's
//! start less [`NODE_LOAD_OVERLAP`], so that transactions committing late are still counted
//! (ids already counted are skipped). A fulfillment order counts at its node on the day it
//! is made (in the node's time zone), whatever its status later: rejected or cancelled work
//! was still assigned that day. Its units are those allocated when a server first reads it
//! (a cancellation within the second can make that fewer on one server than on another).
//! Limits: a placement committing more than the overlap after making its ids, or a server
//! whose clock is behind by more than that, is not counted; a clock stepping back delays
//! counting until it catches up. Capacity is a soft, per-day limit; these errs are small.
//!
//! Decision: capacity is as fresh as the last refresh, not transactional. Orders placed
//! within one refresh see the same counts, so a node can take up to about a second's
//! orders beyond its `orders_per_day`; serialising every placement on a per-node counter
//! row would make the busiest node a lock every order waits for. Stock — the limit that
//! must never be exceeded — is taken in the placing transaction.

use std::collections::HashMap;
use std::time::Duration;

use allot_store::AssignedWork;
use jiff::civil::Date;
use jiff::tz::TimeZone;

use crate::{App, Result};

/// How often the counts are brought up to date (the background task).
pub const NODE_LOAD_REFRESH: Duration = Duration::from_secs(1);
/// How far back each refresh re-reads fulfillment orders by id: a placement commits well
/// within it after making its ids (placements take milliseconds; a refresh runs every
/// second). Longer re-reads more rows every second at full load.
pub const NODE_LOAD_OVERLAP: Duration = Duration::from_secs(3);

/// One node's assignments on one local day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct DayCount {
    date: Date,
    orders: u32,
    units: u32,
}

/// What has been counted so far.
#[derive(Default)]
pub(crate) struct NodeLoad {
    /// Per node id, its latest day seen and that day's counts.
    days: HashMap<String, DayCount>,
    /// Ids counted, with the millisecond their id was made at: re-read ids are skipped.
    seen: HashMap<String, i64>,
    /// Where the next refresh reads ids from (ms of the app clock, as ids carry): the last refresh's start
    /// less [`NODE_LOAD_OVERLAP`], never moving back; `None` until the day's scan is done.
    next_from_ms: Option<i64>,
}

/// The Unix millisecond a UUIDv7 id (`prefix_` + 32 hex digits) was made at.
fn id_ms(id: &str) -> Option<i64> {
    let hex = id.split_once('_')?.1.get(..12)?;
    i64::from_str_radix(hex, 16).ok()
}

impl NodeLoad {
    /// Counts the rows not counted yet; `zone` gives a node's time zone.
    fn count(&mut self, rows: Vec<AssignedWork>, zone: impl Fn(&str) -> Option<TimeZone>) {
        for row in rows {
            // A node this server does not know yet (another server's note is on its way):
            // left uncounted and unseen, so the next refresh counts it.
            let Some(tz) = zone(&row.node_id) else { continue };
            if self.seen.contains_key(&row.fulfillment_order_id) {
                continue;
            }
            let made = id_ms(&row.fulfillment_order_id).unwrap_or(row.created_at_ms);
            self.seen.insert(row.fulfillment_order_id, made);
            let Ok(at) = jiff::Timestamp::from_millisecond(row.created_at_ms) else { continue };
            let date = tz.to_datetime(at).date();
            let units = u32::try_from(row.units.max(0)).unwrap_or(u32::MAX);
            let day = self.days.entry(row.node_id).or_insert(DayCount { date, orders: 0, units: 0 });
            if day.date < date {
                *day = DayCount { date, orders: 0, units: 0 };
            }
            if day.date == date {
                day.orders = day.orders.saturating_add(1);
                day.units = day.units.saturating_add(units);
            }
        }
    }

    /// Forgets ids that can no longer be re-read (made before `from_ms`, with a second's
    /// margin).
    fn forget_before(&mut self, from_ms: i64) {
        self.seen.retain(|_, made| *made >= from_ms - 1_000);
    }

    /// A node's counts today (`date`): zero when its last counted day is an earlier one.
    fn today(&self, node: &str, date: Date) -> (u32, u32) {
        self.days.get(node).filter(|d| d.date == date).map_or((0, 0), |d| (d.orders, d.units))
    }
}

impl App {
    /// Brings the per-node counts of today's assignments up to date and hands them to the
    /// read model (the background task calls it every [`NODE_LOAD_REFRESH`]; tests call it
    /// after placing orders).
    pub async fn refresh_node_load(&self) -> Result<()> {
        let mut load = self.inner.node_load.lock().await;
        let now = self.inner.clock.now();
        let zones: HashMap<String, TimeZone> = {
            let read = self.inner.read.read();
            read.node_slots
                .iter()
                .map(|n| (n.id.to_string(), TimeZone::get(n.time_zone.as_str()).unwrap_or(TimeZone::UTC)))
                .collect()
        };
        let overlap = i64::try_from(NODE_LOAD_OVERLAP.as_millis()).unwrap_or(0);
        let start_ms = now.as_millisecond();
        let rows = match load.next_from_ms {
            // From the previous refresh's start, less the overlap: however long the last
            // query or the pause since took, no id range is skipped.
            Some(from) => self.inner.store.assigned_work(&format!("fo_{:012x}", from.max(0)), i64::MIN).await?,
            None => {
                // The earliest start of today among the nodes' time zones, and the ids made
                // in that span (ids carry the app clock's time), an hour more for servers
                // whose clocks differ.
                let start = zones
                    .values()
                    .filter_map(|tz| {
                        tz.to_timestamp(tz.to_datetime(now).date().to_datetime(jiff::civil::Time::midnight())).ok()
                    })
                    .map(|t| t.as_millisecond())
                    .min()
                    .unwrap_or(now.as_millisecond());
                let span = now.as_millisecond().saturating_sub(start);
                let from_id = (start_ms - span - 3_600_000).max(0);
                self.inner.store.assigned_work(&format!("fo_{from_id:012x}"), start).await?
            }
        };
        load.count(rows, |node| zones.get(node).cloned());
        let next_from = load.next_from_ms.map_or(start_ms - overlap, |old| old.max(start_ms - overlap));
        load.next_from_ms = Some(next_from);
        load.forget_before(next_from);
        self.inner.read.update(|m| {
            m.node_load = m
                .node_slots
                .iter()
                .map(|n| {
                    let tz = zones.get(n.id.as_str()).cloned().unwrap_or(TimeZone::UTC);
                    load.today(n.id.as_str(), tz.to_datetime(now).date())
                })
                .collect();
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn work(id_ms: i64, n: u32, node: &str, created: &str, units: i64) -> AssignedWork {
        AssignedWork {
            fulfillment_order_id: format!("fo_{id_ms:012x}{n:020x}"),
            node_id: node.to_owned(),
            created_at_ms: created.parse::<jiff::Timestamp>().unwrap().as_millisecond(),
            units,
        }
    }

    #[test]
    fn work_counts_once_on_its_nodes_local_day() {
        let ny = TimeZone::get("America/New_York").unwrap();
        let zone = |n: &str| (n != "GONE").then(|| ny.clone());
        let mut load = NodeLoad::default();
        // 03:30 UTC on the 3rd is still the 2nd in New York.
        let rows = vec![
            work(1_000, 1, "A", "2026-12-03T03:30:00Z", 2),
            work(1_000, 2, "A", "2026-12-03T15:00:00Z", 3),
            work(1_000, 3, "A", "2026-12-03T16:00:00Z", 1),
            work(1_000, 4, "B", "2026-12-03T16:00:00Z", 5),
            work(1_000, 5, "GONE", "2026-12-03T16:00:00Z", 5),
        ];
        load.count(rows.clone(), zone);
        // Read again (the overlap): nothing counts twice.
        load.count(rows, zone);
        let day = |d: &str| d.parse::<Date>().unwrap();
        assert_eq!(load.today("A", day("2026-12-03")), (2, 4));
        assert_eq!(load.today("B", day("2026-12-03")), (1, 5));
        assert_eq!(load.today("GONE", day("2026-12-03")), (0, 0));
        // The next day starts from zero; a late row of the day before changes nothing.
        load.count(vec![work(2_000, 6, "A", "2026-12-04T15:00:00Z", 1)], zone);
        load.count(vec![work(2_000, 7, "A", "2026-12-03T23:00:00Z", 9)], zone);
        assert_eq!(load.today("A", day("2026-12-04")), (1, 1));
        assert_eq!(load.today("A", day("2026-12-03")), (0, 0));
        // Ids that can no longer be re-read are forgotten; recent ones are kept.
        load.forget_before(2_500);
        assert_eq!(load.seen.len(), 2);
        assert_eq!(id_ms(&format!("fo_{:012x}{:020x}", 1_234_567, 9)), Some(1_234_567));
    }
}
