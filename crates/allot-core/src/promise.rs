//! The promise calculator (issue 5, first part): when a node can hand a package to a
//! carrier service, when that package is delivered, and when a pickup is ready — from node
//! calendars in the node's IANA time zone and carrier service calendars.
//!
//! What it owns: the calendar arithmetic (opening hours, holidays, cut-offs, transit
//! business days, DST). What it must never do: read a clock or know about orders — `now`
//! is an argument, daily capacity is a question asked of the caller ([`ShipQuery::has_capacity`]).
//!
//! Key invariants: every instant is a UTC [`Timestamp`]; node-local dates and times exist
//! only through the node's time zone, resolved with jiff's "compatible" rule (a local time
//! skipped by a spring-forward gap moves forward by the gap; a repeated one in a
//! fall-back fold takes the earlier instant). Processing and pickup preparation count
//! *open* minutes only: a store closed overnight does not pick overnight.

use std::collections::BTreeSet;

use jiff::civil::{Date, Time, Weekday};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp, ToSpan};

/// Days looked ahead for a working period before giving up (a node closed for longer
/// cannot promise).
pub const HORIZON_DAYS: i32 = 60;

/// Weekday index, Monday = 0.
fn day_index(w: Weekday) -> usize {
    usize::from(w.to_monday_zero_offset().unsigned_abs())
}

/// One day's opening hours, local to the node; `close` after `open` on the same day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpeningHours {
    pub open: Time,
    pub close: Time,
}

/// A node's working calendar.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeCalendar {
    pub time_zone: TimeZone,
    /// Monday first; `None` = closed that weekday.
    pub hours: [Option<OpeningHours>; 7],
    /// Local dates the node does not work.
    pub holidays: BTreeSet<Date>,
    /// Open minutes to pick and pack an order.
    pub processing_minutes: u32,
    /// Open minutes before a pickup order is ready at the counter.
    pub pickup_ready_minutes: u32,
}

/// A carrier service's calendar and transit table.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceCalendar {
    /// (distance up to, transit business days); ascending; beyond the last band the
    /// service does not go.
    pub transit_days: Vec<(f64, u8)>,
    /// Latest local time at the node for a package to leave that day.
    pub pickup_cutoff_local: Time,
    /// Monday first: days the carrier delivers.
    pub delivery_weekdays: [bool; 7],
    /// Dates the carrier does not deliver (in the customer's calendar).
    pub holidays: BTreeSet<Date>,
}

/// When a package leaves a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShipSlot {
    /// The node-local date it leaves.
    pub ship_date: Date,
    /// The latest moment an order can arrive and still leave on `ship_date` (processing
    /// must fit between it and the cut-off): `order_within_s` counts down to this. When
    /// processing spans working days it is `now` (no countdown is promised).
    pub order_by: Timestamp,
}

/// What [`ship_slot`] needs besides the calendars.
pub struct ShipQuery<'a> {
    pub now: Timestamp,
    pub node: &'a NodeCalendar,
    pub cutoff: Time,
    /// Whether the node can still take an order on this local date (daily capacity).
    pub has_capacity: &'a dyn Fn(Date) -> bool,
}

/// The local opening period of `date` as instants, if the node works that day.
fn period(cal: &NodeCalendar, date: Date) -> Option<(Timestamp, Timestamp)> {
    if cal.holidays.contains(&date) {
        return None;
    }
    let h = cal.hours[day_index(date.weekday())]?;
    let open = cal.time_zone.to_timestamp(date.to_datetime(h.open)).ok()?;
    let close = cal.time_zone.to_timestamp(date.to_datetime(h.close)).ok()?;
    (close > open).then_some((open, close))
}

/// Daily capacity as a queue: a node with `backlog` orders not yet shipped and capacity
/// for `per_day` a day works them off oldest first, `per_day` each working day that can
/// still ship — today only while `now` is before its `cutoff` and closing time; a new
/// order takes the first working day with room. The answer is
/// [`ShipQuery::has_capacity`] for that node: whether `date` is at or after that day. No
/// capacity set: every day has room.
pub fn capacity_from_backlog(
    cal: &NodeCalendar,
    now: Timestamp,
    cutoff: Time,
    backlog: u32,
    per_day: Option<u32>,
) -> impl Fn(Date) -> bool + '_ {
    let full_days = match per_day {
        Some(c) if c > 0 => backlog / c,
        Some(_) => u32::MAX,
        None => 0,
    };
    let today = cal.time_zone.to_datetime(now).date();
    // Today works off open orders only if packages can still leave today.
    let today_ships =
        period(cal, today).is_some_and(|(_, close)| local_at(cal, today, cutoff).is_some_and(|c| now < c.min(close)));
    move |date: Date| {
        if full_days == 0 {
            return true;
        }
        // Working days from today up to (not including) `date`; bounded by the search.
        let mut worked = 0u32;
        let mut d = today;
        while d < date && worked < full_days {
            if period(cal, d).is_some() && (d != today || today_ships) {
                worked += 1;
            }
            let Ok(next) = d.tomorrow() else { return false };
            d = next;
        }
        worked >= full_days
    }
}

fn local_at(cal: &NodeCalendar, date: Date, t: Time) -> Option<Timestamp> {
    cal.time_zone.to_timestamp(date.to_datetime(t)).ok()
}

fn minutes(m: u32) -> SignedDuration {
    SignedDuration::from_mins(i64::from(m))
}

/// The first node-local date a package can leave by the service's cut-off: processing
/// (open minutes, possibly over several working periods) must end by the cut-off of a
/// working day with capacity left. `None` if nothing within [`HORIZON_DAYS`].
pub fn ship_slot(q: &ShipQuery<'_>) -> Option<ShipSlot> {
    let cal = q.node;
    let today = cal.time_zone.to_datetime(q.now).date();
    let mut remaining = minutes(cal.processing_minutes);
    let mut ready_at: Option<Timestamp> = None;
    for offset in 0..HORIZON_DAYS {
        let date = today.checked_add(offset.days()).ok()?;
        let Some((open, close)) = period(cal, date) else { continue };
        let cutoff_at = local_at(cal, date, q.cutoff)?;
        if let Some(ready) = ready_at {
            // Processed on an earlier day: leaves at this working day's cut-off. How much
            // later an order could come and still make it is not worked out: the countdown
            // is conservatively zero (never a promise the node cannot keep).
            if ready <= cutoff_at && (q.has_capacity)(date) {
                return Some(ShipSlot { ship_date: date, order_by: q.now });
            }
            continue;
        }
        let start = open.max(q.now);
        if start >= close {
            continue;
        }
        let available = close.duration_since(start);
        if remaining <= available {
            let finish = start.checked_add(remaining).ok()?;
            if finish <= cutoff_at && (q.has_capacity)(date) {
                // The latest arrival that still fits: processing back from the cut-off,
                // within today's opening (never before now). Processing begun on an
                // earlier working day promises no countdown.
                let spanned = remaining != minutes(cal.processing_minutes);
                let latest = cutoff_at.min(close).checked_sub(minutes(cal.processing_minutes)).ok()?;
                let order_by = if spanned { q.now } else { latest.max(q.now) };
                return Some(ShipSlot { ship_date: date, order_by });
            }
            ready_at = Some(finish);
        } else {
            remaining = remaining.checked_sub(available)?;
        }
    }
    None
}

/// Transit business days for a distance, if the service goes that far.
pub fn transit_days(service: &ServiceCalendar, distance_km: f64) -> Option<u8> {
    service.transit_days.iter().find(|(max_km, _)| distance_km <= *max_km).map(|(_, d)| *d)
}

/// The delivery date: `ship_date` plus the transit business days, counting only days the
/// carrier delivers (its weekdays, not its holidays). Zero transit days: the ship date.
pub fn delivery_date(service: &ServiceCalendar, ship_date: Date, distance_km: f64) -> Option<Date> {
    delivery_after(service, ship_date, transit_days(service, distance_km)?)
}

/// The date `days` carrier delivery days after `ship_date` (a learned transit time
/// instead of the table's).
pub fn delivery_after(service: &ServiceCalendar, ship_date: Date, days: u8) -> Option<Date> {
    let mut left = days;
    let mut d = ship_date;
    let mut guard = 0;
    while left > 0 {
        d = d.tomorrow().ok()?;
        guard += 1;
        if guard > HORIZON_DAYS * 2 {
            return None;
        }
        if service.delivery_weekdays[day_index(d.weekday())] && !service.holidays.contains(&d) {
            left -= 1;
        }
    }
    Some(d)
}

/// Carrier delivery days from `shipped` to `delivered` (the days after the ship date the
/// carrier delivers, up to and including the delivery date): the transit time a delivery
/// actually took, in the table's unit. Delivered on the ship date (or before): 0.
pub fn observed_transit_days(service: &ServiceCalendar, shipped: Date, delivered: Date) -> u32 {
    let mut days = 0;
    let mut d = shipped;
    while d < delivered {
        let Ok(next) = d.tomorrow() else { break };
        d = next;
        if service.delivery_weekdays[day_index(d.weekday())] && !service.holidays.contains(&d) {
            days += 1;
        }
    }
    days
}

/// The `q`-quantile (0–1, nearest rank) of observed transit days; `None` when empty.
pub fn transit_quantile(observed: &mut [u32], q: f64) -> Option<u32> {
    if observed.is_empty() {
        return None;
    }
    observed.sort_unstable();
    let rank = ((q.clamp(0.0, 1.0) * observed.len() as f64).ceil() as usize).clamp(1, observed.len());
    Some(observed[rank - 1])
}

/// When a pickup order is ready: the first moment the store is open after
/// `pickup_ready_minutes` of open time from `now`. Preparation that ends exactly at
/// closing is ready when the store next opens.
pub fn ready_at(cal: &NodeCalendar, now: Timestamp) -> Option<Timestamp> {
    let today = cal.time_zone.to_datetime(now).date();
    let mut remaining = minutes(cal.pickup_ready_minutes);
    let mut done = false;
    for offset in 0..HORIZON_DAYS {
        let date = today.checked_add(offset.days()).ok()?;
        let Some((open, close)) = period(cal, date) else { continue };
        if done {
            return Some(open);
        }
        let start = open.max(now);
        if start >= close {
            continue;
        }
        let available = close.duration_since(start);
        if remaining < available {
            return start.checked_add(remaining).ok();
        }
        remaining = remaining.checked_sub(available)?;
        done = remaining.is_zero();
    }
    None
}

/// Longest a pickup's "order within" looks ahead.
const ORDER_WITHIN_HORIZON_S: i64 = 8 * 24 * 3600;

/// How long an order may wait and still be ready on the same local day as one placed
/// `now`: the seconds until [`ready_at`] moves to a later date (what a pickup option's
/// "order within" counts down). `None` when the store has no ready time at all.
pub fn pickup_order_within_s(cal: &NodeCalendar, now: Timestamp) -> Option<i64> {
    let day_of = |t: Timestamp| ready_at(cal, t).map(|r| cal.time_zone.to_datetime(r).date());
    let first = day_of(now)?;
    let later = |s: i64| now.checked_add(s.seconds()).ok().and_then(day_of).is_none_or(|d| d > first);
    // `ready_at` only moves forward with the order time: the first later second is found
    // by bisection.
    let (mut ok, mut moved) = (0_i64, ORDER_WITHIN_HORIZON_S);
    if !later(moved) {
        return Some(moved);
    }
    while moved - ok > 1 {
        let mid = ok + (moved - ok) / 2;
        if later(mid) { moved = mid } else { ok = mid }
    }
    Some(moved)
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::{date, time};

    const NY: &str = "America/New_York";

    fn weekdays(days: &[usize]) -> [bool; 7] {
        let mut w = [false; 7];
        for d in days {
            w[*d] = true;
        }
        w
    }

    /// Open 09:00–21:00 every day; 60 minutes to process, 120 to ready a pickup.
    fn store(tz: &str) -> NodeCalendar {
        let h = Some(OpeningHours { open: time(9, 0, 0, 0), close: time(21, 0, 0, 0) });
        NodeCalendar {
            time_zone: TimeZone::get(tz).unwrap(),
            hours: [h; 7],
            holidays: BTreeSet::new(),
            processing_minutes: 60,
            pickup_ready_minutes: 120,
        }
    }

    fn ground() -> ServiceCalendar {
        ServiceCalendar {
            transit_days: vec![(150.0, 1), (1500.0, 3), (5000.0, 5)],
            pickup_cutoff_local: time(15, 0, 0, 0),
            delivery_weekdays: weekdays(&[0, 1, 2, 3, 4]),
            holidays: BTreeSet::new(),
        }
    }

    fn at(tz: &str, d: Date, t: Time) -> Timestamp {
        TimeZone::get(tz).unwrap().to_timestamp(d.to_datetime(t)).unwrap()
    }

    fn slot(cal: &NodeCalendar, now: Timestamp) -> Option<ShipSlot> {
        ship_slot(&ShipQuery { now, node: cal, cutoff: time(15, 0, 0, 0), has_capacity: &|_| true })
    }

    #[test]
    fn a_full_backlog_moves_the_ship_date_to_the_first_working_day_with_room() {
        // Open every day but Thanksgiving (Thursday 26th); two orders a day; Wednesday 10:00.
        let mut cal = store(NY);
        cal.holidays.insert(date(2026, 11, 26));
        let now = at(NY, date(2026, 11, 25), time(10, 0, 0, 0));
        let ship = |backlog: u32| {
            let room = capacity_from_backlog(&cal, now, time(15, 0, 0, 0), backlog, Some(2));
            ship_slot(&ShipQuery { now, node: &cal, cutoff: time(15, 0, 0, 0), has_capacity: &room }).unwrap().ship_date
        };
        assert_eq!(ship(0), date(2026, 11, 25));
        assert_eq!(ship(1), date(2026, 11, 25), "one order in line: room for one more today");
        assert_eq!(ship(2), date(2026, 11, 27), "today is full and the holiday does not count");
        assert_eq!(ship(5), date(2026, 11, 28), "five in line at two a day: the third working day");
        // After today's cut-off today works nothing off: two in line leave on Friday, so
        // a new order goes Saturday.
        let late = at(NY, date(2026, 11, 25), time(16, 0, 0, 0));
        let room = capacity_from_backlog(&cal, late, time(15, 0, 0, 0), 2, Some(2));
        let q = ShipQuery { now: late, node: &cal, cutoff: time(15, 0, 0, 0), has_capacity: &room };
        assert_eq!(ship_slot(&q).unwrap().ship_date, date(2026, 11, 28));
        let none = capacity_from_backlog(&cal, now, time(15, 0, 0, 0), 0, Some(0));
        assert!(!none(date(2027, 1, 1)), "no capacity at all: never");
        let unlimited = capacity_from_backlog(&cal, now, time(15, 0, 0, 0), 1_000, None);
        assert!(unlimited(date(2026, 11, 25)));
    }

    #[test]
    fn observed_transit_counts_carrier_days_and_round_trips_with_delivery_after() {
        let mut svc = ground();
        svc.holidays.insert(date(2026, 11, 26));
        // Shipped Wednesday, delivered Monday: Thursday is a holiday, the weekend is not
        // a delivery time (mon–fri service): Friday and Monday, 2 days.
        assert_eq!(observed_transit_days(&svc, date(2026, 11, 25), date(2026, 11, 30)), 2);
        assert_eq!(delivery_after(&svc, date(2026, 11, 25), 2), Some(date(2026, 11, 30)));
        assert_eq!(observed_transit_days(&svc, date(2026, 11, 25), date(2026, 11, 25)), 0);
        let mut seen = vec![3, 1, 2, 2, 9, 2, 2, 3, 2, 2];
        assert_eq!(transit_quantile(&mut seen, 0.9), Some(3), "nearest rank: the 9th of 10");
        assert_eq!(transit_quantile(&mut seen, 0.5), Some(2));
        assert_eq!(transit_quantile(&mut [], 0.9), None);
    }

    #[test]
    fn before_the_cutoff_ships_today_and_counts_down_to_the_last_moment() {
        let cal = store(NY);
        let now = at(NY, date(2026, 11, 25), time(10, 0, 0, 0));
        let s = slot(&cal, now).unwrap();
        assert_eq!(s.ship_date, date(2026, 11, 25));
        // Processing (60 min) must end by 15:00: order by 14:00 local.
        assert_eq!(s.order_by, at(NY, date(2026, 11, 25), time(14, 0, 0, 0)));
        // After 14:00 the same node ships tomorrow.
        let late = slot(&cal, at(NY, date(2026, 11, 25), time(14, 30, 0, 0))).unwrap();
        assert_eq!(late.ship_date, date(2026, 11, 26));
    }

    #[test]
    fn the_cutoff_on_the_day_clocks_spring_forward_is_local_time() {
        // 2026-03-08: New York skips 02:00–03:00 (UTC−5 → UTC−4).
        let cal = store(NY);
        let now = at(NY, date(2026, 3, 8), time(13, 30, 0, 0));
        assert_eq!(now.to_string(), "2026-03-08T17:30:00Z", "13:30 EDT");
        let s = slot(&cal, now).unwrap();
        assert_eq!(s.ship_date, date(2026, 3, 8));
        assert_eq!(s.order_by.to_string(), "2026-03-08T18:00:00Z", "14:00 EDT, not 14:00 EST");
        assert_eq!(s.order_by.duration_since(now), SignedDuration::from_mins(30));
    }

    #[test]
    fn a_cutoff_inside_the_fall_back_fold_takes_the_earlier_instant() {
        // 2026-11-01: New York repeats 01:00–02:00. A night DC with a 01:30 cut-off.
        let mut cal = store(NY);
        cal.hours = [Some(OpeningHours { open: time(0, 0, 0, 0), close: time(23, 0, 0, 0) }); 7];
        let q = |now| ship_slot(&ShipQuery { now, node: &cal, cutoff: time(1, 30, 0, 0), has_capacity: &|_| true });
        let now = "2026-11-01T04:00:00Z".parse::<Timestamp>().unwrap(); // 00:00 EDT
        let s = q(now).unwrap();
        assert_eq!(s.ship_date, date(2026, 11, 1));
        // 01:30 EDT (the first 01:30) is 05:30Z; processing 60 min → order by 04:30Z.
        assert_eq!(s.order_by.to_string(), "2026-11-01T04:30:00Z");
        // At 01:10 EST (the second pass, 06:10Z) the earlier 01:30 has passed: tomorrow.
        let after = q("2026-11-01T06:10:00Z".parse().unwrap()).unwrap();
        assert_eq!(after.ship_date, date(2026, 11, 2));
    }

    #[test]
    fn an_order_at_23_59_local_ships_the_next_working_day() {
        let cal = store("America/Los_Angeles");
        let now = at("America/Los_Angeles", date(2026, 11, 25), time(23, 59, 0, 0));
        assert_eq!(now.to_string(), "2026-11-26T07:59:00Z", "already tomorrow in UTC");
        let s = slot(&cal, now).unwrap();
        assert_eq!(s.ship_date, date(2026, 11, 26), "the node-local next day, not UTC's");
        assert_eq!(s.order_by, at("America/Los_Angeles", date(2026, 11, 26), time(14, 0, 0, 0)));
    }

    #[test]
    fn holidays_closed_days_and_full_capacity_are_skipped() {
        let mut cal = store(NY);
        cal.holidays.insert(date(2026, 11, 26)); // Thanksgiving
        cal.hours[4] = None; // closed Fridays (2026-11-27)
        let now = at(NY, date(2026, 11, 25), time(16, 0, 0, 0));
        assert_eq!(slot(&cal, now).unwrap().ship_date, date(2026, 11, 28));
        let full = |d: Date| d != date(2026, 11, 28);
        let s = ship_slot(&ShipQuery { now, node: &cal, cutoff: time(15, 0, 0, 0), has_capacity: &full }).unwrap();
        assert_eq!(s.ship_date, date(2026, 11, 29));
        let mut never = store(NY);
        never.hours = [None; 7];
        assert_eq!(slot(&never, now), None);
    }

    #[test]
    fn processing_longer_than_a_day_counts_open_minutes_only() {
        let mut cal = store(NY);
        cal.processing_minutes = 16 * 60; // 12 h open today from 09:00, 4 h tomorrow
        let now = at(NY, date(2026, 11, 24), time(9, 0, 0, 0));
        let s = slot(&cal, now).unwrap();
        // Ready 13:00 tomorrow, before tomorrow's 15:00 cut-off; no countdown is promised.
        assert_eq!((s.ship_date, s.order_by), (date(2026, 11, 25), now));
    }

    #[test]
    fn delivery_counts_carrier_business_days_across_new_year() {
        let mut g = ground();
        g.holidays.insert(date(2027, 1, 1));
        // Thursday 2026-12-31 + 1 business day: Friday is New Year, then the weekend.
        assert_eq!(delivery_date(&g, date(2026, 12, 31), 100.0), Some(date(2027, 1, 4)));
        // 3 days from Wednesday 2026-11-25 over 600 km: Thu, Fri, Mon.
        assert_eq!(delivery_date(&g, date(2026, 11, 25), 600.0), Some(date(2026, 11, 30)));
        assert_eq!(delivery_date(&g, date(2026, 11, 25), 6000.0), None, "beyond the last band");
        let same_day = ServiceCalendar { transit_days: vec![(40.0, 0)], ..ground() };
        assert_eq!(delivery_date(&same_day, date(2026, 11, 28), 10.0), Some(date(2026, 11, 28)));
    }

    #[test]
    fn a_pickup_order_within_counts_down_to_the_last_moment_for_that_day() {
        let cal = store(NY);
        let d = date(2026, 11, 25);
        // Open 09:00–21:00, 120 minutes to ready: ordered before 19:00, ready today.
        assert_eq!(pickup_order_within_s(&cal, at(NY, d, time(10, 0, 0, 0))), Some(9 * 3600));
        assert_eq!(pickup_order_within_s(&cal, at(NY, d, time(18, 59, 0, 0))), Some(60));
        // From 19:00 on it is ready tomorrow, for orders until tomorrow 19:00.
        assert_eq!(pickup_order_within_s(&cal, at(NY, d, time(19, 0, 0, 0))), Some(24 * 3600));
    }

    #[test]
    fn a_pickup_is_ready_after_open_minutes_and_never_while_closed() {
        let cal = store(NY);
        let d = date(2026, 11, 25);
        assert_eq!(ready_at(&cal, at(NY, d, time(10, 0, 0, 0))), Some(at(NY, d, time(12, 0, 0, 0))));
        // At 20:00 one open hour is left today: ready one hour after tomorrow's opening.
        assert_eq!(ready_at(&cal, at(NY, d, time(20, 0, 0, 0))), Some(at(NY, date(2026, 11, 26), time(10, 0, 0, 0))));
        // Ending exactly at closing: ready when the store opens again.
        assert_eq!(ready_at(&cal, at(NY, d, time(19, 0, 0, 0))), Some(at(NY, date(2026, 11, 26), time(9, 0, 0, 0))));
        // After closing: tomorrow 11:00.
        assert_eq!(ready_at(&cal, at(NY, d, time(22, 30, 0, 0))), Some(at(NY, date(2026, 11, 26), time(11, 0, 0, 0))));
    }

    proptest::proptest! {
        /// The countdown is honest: an order placed at `order_by` still leaves on the
        /// promised date, and nothing ships before the node-local today.
        #[test]
        fn an_order_at_the_promised_last_moment_still_ships_that_day(
            secs in 1_767_225_600i64..1_798_761_600, // 2026
            processing in 0u32..1500,
            la in proptest::bool::ANY,
            closed_day in 0usize..8,
        ) {
            let tz = if la { "America/Los_Angeles" } else { NY };
            let mut cal = store(tz);
            cal.processing_minutes = processing;
            if closed_day < 7 {
                cal.hours[closed_day] = None;
            }
            let now = Timestamp::from_second(secs).unwrap();
            let s = slot(&cal, now).unwrap();
            proptest::prop_assert!(s.order_by >= now);
            proptest::prop_assert!(s.ship_date >= cal.time_zone.to_datetime(now).date());
            let again = slot(&cal, s.order_by).unwrap();
            proptest::prop_assert_eq!(again.ship_date, s.ship_date);
        }
    }
}
