//! The derivation is pinned to the app's functions it replaces (copied below as the
//! oracle), and the tables to what the derivation does under a model of each event.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

use super::*;
use crate::rng::SplitMix64;

// ---------------------------------------------------------------------------------------
// The oracle: `line_status` and `order_status` of allot-app (in `orders.rs`, on main since
// issue 16 part 1 in `rows.rs`) as they were when the derivation moved here, verbatim, on
// a row with the same fields.

#[derive(Debug, Clone, Default)]
struct OrderLineRow {
    quantity: i64,
    allocated: i64,
    backordered: i64,
    #[allow(dead_code)]
    unfilled: i64,
    cancelled: i64,
    shipped: i64,
    delivered: i64,
}

/// A line's status from its quantities: hand-over first (shipped, delivered), then
/// allocation.
fn line_status(l: &OrderLineRow) -> &'static str {
    let open = l.quantity - l.cancelled;
    if open == 0 {
        "cancelled"
    } else if l.delivered == open {
        "delivered"
    } else if l.shipped == open {
        "shipped"
    } else if l.shipped > 0 {
        "partially_shipped"
    } else if l.allocated == open {
        "allocated"
    } else if l.allocated > 0 {
        "partially_allocated"
    } else if l.backordered > 0 {
        "backordered"
    } else {
        "unfilled"
    }
}

/// An order's status from its lines and holds.
fn order_status(lines: &[OrderLineRow], holds: &[String]) -> &'static str {
    let open: i64 = lines.iter().map(|l| l.quantity - l.cancelled).sum();
    let allocated: i64 = lines.iter().map(|l| l.allocated).sum();
    let backordered: i64 = lines.iter().map(|l| l.backordered).sum();
    let shipped: i64 = lines.iter().map(|l| l.shipped).sum();
    let delivered: i64 = lines.iter().map(|l| l.delivered).sum();
    if open == 0 {
        "cancelled"
    } else if delivered == open {
        "delivered"
    } else if shipped == open {
        "shipped"
    } else if !holds.is_empty() {
        "on_hold"
    } else if shipped > 0 {
        "partially_shipped"
    } else if allocated == open {
        "allocated"
    } else if allocated > 0 {
        "partially_allocated"
    } else if backordered > 0 {
        "backordered"
    } else {
        "unfilled"
    }
}

fn row(l: &LineQuantities) -> OrderLineRow {
    OrderLineRow {
        quantity: l.quantity,
        allocated: l.allocated,
        backordered: l.backordered,
        unfilled: l.unfilled(),
        cancelled: l.cancelled,
        shipped: l.shipped,
        delivered: l.delivered,
    }
}

fn holds(count: usize) -> Vec<String> {
    (0..count).map(|i| format!("hold-{i}")).collect()
}

// ---------------------------------------------------------------------------------------
// Hand-written cases.

/// (quantity, allocated, backordered, cancelled, shipped, delivered)
fn line(counters: (i64, i64, i64, i64, i64, i64)) -> LineQuantities {
    let (quantity, allocated, backordered, cancelled, shipped, delivered) = counters;
    LineQuantities { quantity, allocated, backordered, cancelled, shipped, delivered }
}

const ALLOCATED: (i64, i64, i64, i64, i64, i64) = (5, 5, 0, 0, 0, 0);
const BACKORDERED: (i64, i64, i64, i64, i64, i64) = (5, 0, 5, 0, 0, 0);
const UNFILLED: (i64, i64, i64, i64, i64, i64) = (5, 0, 0, 0, 0, 0);
const CANCELLED: (i64, i64, i64, i64, i64, i64) = (5, 0, 0, 5, 0, 0);
const SHIPPED: (i64, i64, i64, i64, i64, i64) = (5, 5, 0, 0, 5, 2);
const DELIVERED: (i64, i64, i64, i64, i64, i64) = (5, 5, 0, 0, 5, 5);

#[test]
fn line_statuses_follow_hand_over_first_then_allocation() {
    use LineStatus as S;
    for (counters, expected) in [
        (ALLOCATED, S::Allocated),
        ((5, 3, 2, 0, 0, 0), S::PartiallyAllocated),
        // The rest unfilled instead of backordered: still partly allocated.
        ((5, 3, 0, 0, 0, 0), S::PartiallyAllocated),
        (BACKORDERED, S::Backordered),
        // Some backordered, the rest unfilled.
        ((5, 0, 2, 0, 0, 0), S::Backordered),
        (UNFILLED, S::Unfilled),
        (CANCELLED, S::Cancelled),
        // Cancelled units do not count: the rest is all allocated.
        ((5, 4, 0, 1, 0, 0), S::Allocated),
        ((5, 5, 0, 0, 2, 0), S::PartiallyShipped),
        // Delivered units within a partial shipment do not make it delivered.
        ((5, 5, 0, 0, 2, 2), S::PartiallyShipped),
        // Shipped and backordered units together: shipping wins.
        ((5, 2, 3, 0, 2, 0), S::PartiallyShipped),
        ((5, 5, 0, 0, 5, 0), S::Shipped),
        (SHIPPED, S::Shipped),
        (DELIVERED, S::Delivered),
        // Every open unit delivered; the rest was cancelled.
        ((5, 3, 0, 2, 3, 3), S::Delivered),
        ((5, 3, 0, 2, 3, 0), S::Shipped),
    ] {
        let l = line(counters);
        assert_eq!(l.check(), Ok(()), "{counters:?}");
        assert_eq!(LineStatus::of(&l), expected, "{counters:?}");
        assert_eq!(LineStatus::of(&l).as_str(), line_status(&row(&l)), "{counters:?}");
    }
}

#[test]
fn order_statuses_sum_the_lines_and_show_holds_until_everything_is_handed_over() {
    use OrderStatus as S;
    for (lines, hold_count, expected) in [
        (vec![ALLOCATED, BACKORDERED], 0, S::PartiallyAllocated),
        (vec![BACKORDERED, UNFILLED], 0, S::Backordered),
        (vec![UNFILLED, CANCELLED], 0, S::Unfilled),
        (vec![ALLOCATED, CANCELLED], 0, S::Allocated),
        (vec![DELIVERED, CANCELLED], 0, S::Delivered),
        (vec![SHIPPED, DELIVERED], 0, S::Shipped),
        (vec![SHIPPED, ALLOCATED], 0, S::PartiallyShipped),
        (vec![DELIVERED, BACKORDERED], 0, S::PartiallyShipped),
        (vec![CANCELLED, CANCELLED], 0, S::Cancelled),
        // No lines: nothing open.
        (vec![], 0, S::Cancelled),
        // A hold hides where the units are...
        (vec![ALLOCATED], 1, S::OnHold),
        (vec![BACKORDERED, UNFILLED], 2, S::OnHold),
        (vec![SHIPPED, ALLOCATED], 1, S::OnHold),
        // ... until every open unit is handed over, or nothing is open.
        (vec![SHIPPED, DELIVERED], 1, S::Shipped),
        (vec![DELIVERED, CANCELLED], 1, S::Delivered),
        (vec![CANCELLED], 3, S::Cancelled),
    ] {
        let quantities: Vec<LineQuantities> = lines.iter().copied().map(line).collect();
        let status = OrderStatus::of(&quantities, HoldState::of_count(hold_count));
        assert_eq!(status, expected, "{lines:?} with {hold_count} holds");
        let rows: Vec<OrderLineRow> = quantities.iter().map(row).collect();
        assert_eq!(status.as_str(), order_status(&rows, &holds(hold_count)), "{lines:?} with {hold_count} holds");
    }
}

#[test]
fn statuses_have_the_spellings_of_the_database_checks() {
    assert_eq!(
        LineStatus::expected(),
        "allocated, partially_allocated, backordered, unfilled, partially_shipped, shipped, delivered, cancelled"
    );
    assert_eq!(
        OrderStatus::expected(),
        "allocated, partially_allocated, backordered, unfilled, on_hold, partially_shipped, shipped, delivered, cancelled"
    );
    for s in LineStatus::ALL {
        assert_eq!(LineStatus::parse(s.as_str()), Some(*s));
        assert_eq!(OrderStatus::from(*s).as_str(), s.as_str());
    }
    for s in OrderStatus::ALL {
        assert_eq!(OrderStatus::parse(s.as_str()), Some(*s));
    }
    assert_eq!(LineStatus::parse("on_hold"), None);
    for e in LineEvent::ALL {
        assert_eq!(OrderEvent::from(*e).as_str(), e.as_str());
    }
}

#[test]
fn counters_that_break_the_line_invariants_are_named() {
    let ok = line((5, 3, 1, 1, 2, 1));
    assert_eq!(ok.check(), Ok(()));
    assert_eq!(ok.unfilled(), 0);
    assert_eq!(line((5, 1, 1, 1, 0, 0)).unfilled(), 2);
    for (counters, expected) in [
        ((0, 0, 0, 0, 0, 0), LineQuantitiesError::Quantity { quantity: 0 }),
        ((1_000_000_001, 0, 0, 0, 0, 0), LineQuantitiesError::Quantity { quantity: 1_000_000_001 }),
        ((5, -1, 0, 0, 0, 0), LineQuantitiesError::Negative { counter: "allocated", value: -1 }),
        ((5, 0, 0, 0, 0, -2), LineQuantitiesError::Negative { counter: "delivered", value: -2 }),
        ((5, 3, 2, 1, 0, 0), LineQuantitiesError::Overcounted { counted: 6, quantity: 5 }),
        ((5, 3, 0, 0, 4, 0), LineQuantitiesError::HandOver { allocated: 3, shipped: 4, delivered: 0 }),
        ((5, 3, 0, 0, 2, 3), LineQuantitiesError::HandOver { allocated: 3, shipped: 2, delivered: 3 }),
    ] {
        assert_eq!(line(counters).check(), Err(expected), "{counters:?}");
    }
    assert_eq!(
        line((5, 3, 0, 0, 2, 3)).check().unwrap_err().to_string(),
        "delivered (3) ≤ shipped (2) ≤ allocated (3) does not hold"
    );
}

#[test]
fn a_move_the_table_does_not_hold_is_refused_naming_it() {
    assert_eq!(LineStatus::Allocated.check_transition(LineEvent::Ship, LineStatus::Shipped), Ok(()));
    let e = LineStatus::Shipped.check_transition(LineEvent::Cancel, LineStatus::Cancelled).unwrap_err();
    assert_eq!(e.to_string(), "a line that is shipped cannot become cancelled on cancel");
    let e = OrderStatus::OnHold.check_transition(OrderEvent::Allocate, OrderStatus::Allocated).unwrap_err();
    assert_eq!(e.to_string(), "an order that is on_hold cannot become allocated on allocate");
    assert_eq!(OrderStatus::OnHold.check_transition(OrderEvent::Release, OrderStatus::Allocated), Ok(()));
}

// ---------------------------------------------------------------------------------------
// A model of the events: how each changes a line's counters.

/// How many of the units an event acts on it moves: `units` in all; of a reroute's,
/// `first` find another node and `second` wait (the rest are cancelled); of a
/// cancellation's, `first` are unfilled and `second` backordered ones (the rest are
/// allocated, not handed over).
#[derive(Debug, Clone, Copy)]
struct Amounts {
    units: i64,
    first: i64,
    second: i64,
}

/// The counters after `event` moves `m` of a line's units; `None` when the line does not
/// have those units.
fn apply(l: &LineQuantities, event: LineEvent, m: Amounts) -> Option<LineQuantities> {
    let Amounts { units, first, second } = m;
    let unshipped = l.allocated - l.shipped;
    if units < 1 || first < 0 || second < 0 {
        return None;
    }
    let mut n = *l;
    match event {
        LineEvent::Allocate if units <= l.backordered => {
            n.backordered -= units;
            n.allocated += units;
        }
        LineEvent::Reroute if units <= unshipped && first + second <= units => {
            n.allocated += first - units;
            n.backordered += second;
            n.cancelled += units - first - second;
        }
        LineEvent::Ship if units <= unshipped => n.shipped += units,
        LineEvent::PickedUp if units <= unshipped => {
            n.shipped += units;
            n.delivered += units;
        }
        LineEvent::Deliver if units <= l.shipped - l.delivered => n.delivered += units,
        LineEvent::Cancel
            if first <= l.unfilled()
                && second <= l.backordered
                && (0..=unshipped).contains(&(units - first - second)) =>
        {
            n.backordered -= second;
            n.allocated -= units - first - second;
            n.cancelled += units;
        }
        _ => return None,
    }
    assert_eq!(n.check(), Ok(()), "{event} {m:?} on {l:?}");
    Some(n)
}

/// Every way `event` can change a line.
fn outcomes(l: &LineQuantities, event: LineEvent) -> Vec<LineQuantities> {
    let mut seen = HashSet::new();
    for units in 1..=l.quantity {
        for first in 0..=units {
            for second in 0..=units {
                if let Some(n) = apply(l, event, Amounts { units, first, second }) {
                    seen.insert(n);
                }
            }
        }
    }
    seen.into_iter().collect()
}

/// Every line of at most `max_quantity` units that keeps the invariants.
fn all_lines(max_quantity: i64) -> Vec<LineQuantities> {
    let mut lines = Vec::new();
    for quantity in 1..=max_quantity {
        for cancelled in 0..=quantity {
            for allocated in 0..=quantity - cancelled {
                for backordered in 0..=quantity - cancelled - allocated {
                    for shipped in 0..=allocated {
                        for delivered in 0..=shipped {
                            lines.push(LineQuantities {
                                quantity,
                                allocated,
                                backordered,
                                cancelled,
                                shipped,
                                delivered,
                            });
                        }
                    }
                }
            }
        }
    }
    lines
}

/// Every way `event` can change an order: one or more lines change, each in one of its
/// ways.
fn order_outcomes(lines: &[LineQuantities], event: LineEvent) -> Vec<Vec<LineQuantities>> {
    let mut orders: Vec<(Vec<LineQuantities>, bool)> = vec![(Vec::new(), false)];
    for l in lines {
        let ways = outcomes(l, event);
        orders = orders
            .into_iter()
            .flat_map(|(prefix, changed)| {
                let keep = {
                    let mut p = prefix.clone();
                    p.push(*l);
                    (p, changed)
                };
                std::iter::once(keep).chain(ways.iter().map(move |n| {
                    let mut p = prefix.clone();
                    p.push(*n);
                    (p, true)
                }))
            })
            .collect();
    }
    orders.into_iter().filter(|(_, changed)| *changed).map(|(o, _)| o).collect()
}

fn as_set<T: Ord + Copy>(slice: &[T]) -> BTreeSet<T> {
    slice.iter().copied().collect()
}

#[test]
fn the_line_table_holds_exactly_the_moves_the_derivation_makes() {
    let mut seen: BTreeMap<(LineStatus, LineEvent), BTreeSet<LineStatus>> = BTreeMap::new();
    for l in all_lines(3) {
        for event in LineEvent::ALL.iter().copied() {
            for n in outcomes(&l, event) {
                seen.entry((LineStatus::of(&l), event)).or_default().insert(LineStatus::of(&n));
            }
        }
    }
    for from in LineStatus::ALL.iter().copied() {
        for event in LineEvent::ALL.iter().copied() {
            let table = from.after(event);
            assert_eq!(as_set(table).len(), table.len(), "{from} on {event} repeats a status");
            assert_eq!(as_set(table), seen.remove(&(from, event)).unwrap_or_default(), "{from} on {event}");
        }
    }
}

#[test]
fn the_order_table_holds_exactly_the_moves_the_derivation_makes() {
    let lines = all_lines(2);
    let mut orders: Vec<Vec<LineQuantities>> = lines.iter().map(|l| vec![*l]).collect();
    for a in &lines {
        for b in &lines {
            orders.push(vec![*a, *b]);
        }
    }
    let mut seen: BTreeMap<(OrderStatus, OrderEvent), BTreeSet<OrderStatus>> = BTreeMap::new();
    let mut saw = |from, event, to| {
        seen.entry((from, event)).or_default().insert(to);
    };
    for order in &orders {
        for hold_count in 0..=2 {
            let from = OrderStatus::of(order, HoldState::of_count(hold_count));
            saw(from, OrderEvent::Hold, OrderStatus::of(order, HoldState::of_count(hold_count + 1)));
            if hold_count > 0 {
                saw(from, OrderEvent::Release, OrderStatus::of(order, HoldState::of_count(hold_count - 1)));
            }
            for event in LineEvent::ALL.iter().copied() {
                for after in order_outcomes(order, event) {
                    saw(from, event.into(), OrderStatus::of(&after, HoldState::of_count(hold_count)));
                }
            }
        }
    }
    for from in OrderStatus::ALL.iter().copied() {
        for event in OrderEvent::ALL.iter().copied() {
            let table = from.after(event);
            assert_eq!(as_set(table).len(), table.len(), "{from} on {event} repeats a status");
            assert_eq!(as_set(table), seen.remove(&(from, event)).unwrap_or_default(), "{from} on {event}");
        }
    }
}

#[test]
fn without_holds_the_order_table_is_the_line_table() {
    for from in LineStatus::ALL.iter().copied() {
        for event in LineEvent::ALL.iter().copied() {
            let lines: BTreeSet<OrderStatus> = from.after(event).iter().map(|s| OrderStatus::from(*s)).collect();
            assert_eq!(as_set(OrderStatus::from(from).after(event.into())), lines, "{from} on {event}");
        }
    }
}

#[test]
fn placement_gives_exactly_the_placement_statuses() {
    // Placed: nothing cancelled or handed over; what is not allocated is backordered, or
    // else unfilled (never both).
    let placed: Vec<LineQuantities> = all_lines(3)
        .into_iter()
        .filter(|l| l.cancelled == 0 && l.shipped == 0 && (l.backordered == 0 || l.unfilled() == 0))
        .collect();
    let lines: BTreeSet<LineStatus> = placed.iter().map(LineStatus::of).collect();
    assert_eq!(lines, as_set(LineStatus::AT_PLACEMENT));
    let mut orders = BTreeSet::new();
    for a in &placed {
        for b in &placed {
            for hold_count in 0..=1 {
                orders.insert(OrderStatus::of([a, b], HoldState::of_count(hold_count)));
            }
        }
    }
    assert_eq!(orders, as_set(OrderStatus::AT_PLACEMENT));
}

/// Statuses reachable in a table from `start`.
fn reachable<S: Ord + Copy + 'static, E: Copy>(
    start: &[S],
    events: &[E],
    after: impl Fn(S, E) -> &'static [S],
) -> BTreeSet<S> {
    let mut seen = as_set(start);
    let mut todo: Vec<S> = start.to_vec();
    while let Some(s) = todo.pop() {
        for e in events {
            for to in after(s, *e) {
                if seen.insert(*to) {
                    todo.push(*to);
                }
            }
        }
    }
    seen
}

#[test]
fn every_status_is_reachable_from_placement() {
    assert_eq!(reachable(LineStatus::AT_PLACEMENT, LineEvent::ALL, LineStatus::after), as_set(LineStatus::ALL));
    assert_eq!(reachable(OrderStatus::AT_PLACEMENT, OrderEvent::ALL, OrderStatus::after), as_set(OrderStatus::ALL));
}

#[test]
fn final_statuses_are_exactly_the_ones_no_event_leaves() {
    for s in LineStatus::ALL.iter().copied() {
        let stays = LineEvent::ALL.iter().all(|e| s.after(*e).iter().all(|to| *to == s));
        assert_eq!(s.is_final(), stays, "{s}");
    }
    for s in OrderStatus::ALL.iter().copied() {
        let stays = OrderEvent::ALL.iter().all(|e| s.after(*e).iter().all(|to| *to == s));
        assert_eq!(s.is_final(), stays, "{s}");
    }
}

// ---------------------------------------------------------------------------------------
// Properties on random counters and random walks.

/// A number in 0..=max, at either end a quarter of the time each (equalities decide
/// statuses, and uniform picks among a billion would never hit them).
fn pick(r: u64, max: i64) -> i64 {
    match r % 4 {
        0 => 0,
        1 => max,
        _ => ((r >> 2) % (max as u64 + 1)) as i64,
    }
}

fn quantity() -> impl Strategy<Value = i64> {
    prop_oneof![1..=4i64, 1..=1_000_000_000i64]
}

/// Counters that keep the line invariants.
fn valid_line() -> impl Strategy<Value = LineQuantities> {
    (quantity(), any::<[u64; 5]>()).prop_map(|(quantity, r)| {
        let cancelled = pick(r[0], quantity);
        let allocated = pick(r[1], quantity - cancelled);
        let backordered = pick(r[2], quantity - cancelled - allocated);
        let shipped = pick(r[3], allocated);
        let delivered = pick(r[4], shipped);
        LineQuantities { quantity, allocated, backordered, cancelled, shipped, delivered }
    })
}

/// Any counters at all, valid or not (small ones, to meet equalities, or wide ones).
fn any_line() -> impl Strategy<Value = LineQuantities> {
    let counter = || prop_oneof![-3..=3i64, -(1i64 << 40)..(1i64 << 40)];
    (counter(), counter(), counter(), counter(), counter(), counter()).prop_map(
        |(quantity, allocated, backordered, cancelled, shipped, delivered)| LineQuantities {
            quantity,
            allocated,
            backordered,
            cancelled,
            shipped,
            delivered,
        },
    )
}

/// A line as placement leaves it.
fn placed_line() -> impl Strategy<Value = LineQuantities> {
    (quantity(), any::<u64>(), any::<bool>()).prop_map(|(quantity, r, may_wait)| {
        let allocated = pick(r, quantity);
        let rest = quantity - allocated;
        LineQuantities { quantity, allocated, backordered: if may_wait { rest } else { 0 }, ..Default::default() }
    })
}

/// The counters after `event` hits one line, the amounts drawn from `rng`; `None` when
/// the line has no units for the event.
fn random_move(l: &LineQuantities, event: LineEvent, rng: &mut SplitMix64) -> Option<LineQuantities> {
    let mut draw = |max: i64| rng.range(0, max.max(0) as u64) as i64;
    let unshipped = l.allocated - l.shipped;
    let m = match event {
        LineEvent::Cancel => {
            let (first, second, from_allocated) = (draw(l.unfilled()), draw(l.backordered), draw(unshipped));
            Amounts { units: first + second + from_allocated, first, second }
        }
        _ => {
            let cap = match event {
                LineEvent::Allocate => l.backordered,
                LineEvent::Deliver => l.shipped - l.delivered,
                _ => unshipped,
            };
            let units = 1 + draw(cap - 1);
            let first = draw(units);
            Amounts { units, first, second: draw(units - first) }
        }
    };
    apply(l, event, m)
}

fn check_line_properties(l: &LineQuantities) -> Result<(), TestCaseError> {
    let status = LineStatus::of(l);
    let open = l.open();
    prop_assert_eq!(status == LineStatus::Cancelled, open == 0, "{:?}", l);
    prop_assert_eq!(status == LineStatus::Delivered, open > 0 && l.delivered == open, "{:?}", l);
    prop_assert_eq!(
        matches!(status, LineStatus::Shipped | LineStatus::Delivered),
        open > 0 && l.shipped == open,
        "{:?}",
        l
    );
    prop_assert_eq!(status == LineStatus::Unfilled, open > 0 && l.unfilled() == open, "{:?}", l);
    Ok(())
}

fn check_order_properties(lines: &[LineQuantities], hold_count: usize) -> Result<(), TestCaseError> {
    let held = HoldState::of_count(hold_count);
    let status = OrderStatus::of(lines, held);
    let statuses: Vec<LineStatus> = lines.iter().map(LineStatus::of).collect();
    let all = |f: fn(LineStatus) -> bool| statuses.iter().all(|s| f(*s));
    let ctx = || format!("{lines:?} with {hold_count} holds: {status}");
    // Cancelled iff nothing is open.
    prop_assert_eq!(status == OrderStatus::Cancelled, all(|s| s == LineStatus::Cancelled), "{}", ctx());
    // Delivered iff every open unit is delivered.
    let delivered = all(|s| matches!(s, LineStatus::Delivered | LineStatus::Cancelled));
    prop_assert_eq!(status == OrderStatus::Delivered, delivered && status != OrderStatus::Cancelled, "{}", ctx());
    // Shipped (or further) iff every open unit is handed over, held or not.
    let handed_over = all(|s| matches!(s, LineStatus::Shipped | LineStatus::Delivered | LineStatus::Cancelled));
    prop_assert_eq!(
        matches!(status, OrderStatus::Shipped | OrderStatus::Delivered | OrderStatus::Cancelled),
        handed_over,
        "{}",
        ctx()
    );
    // On hold exactly when held and something open is not handed over yet.
    prop_assert_eq!(status == OrderStatus::OnHold, held == HoldState::Held && !handed_over, "{}", ctx());
    // Allocated iff every open line is allocated.
    if status == OrderStatus::Allocated {
        prop_assert!(all(|s| matches!(s, LineStatus::Allocated | LineStatus::Cancelled)), "{}", ctx());
    }
    // Without holds, an order of one line has its line's status, and adding a cancelled
    // line changes nothing.
    if let [l] = lines {
        prop_assert_eq!(OrderStatus::of(lines, HoldState::Clear), OrderStatus::from(LineStatus::of(l)), "{}", ctx());
        let cancelled = LineQuantities { quantity: 3, cancelled: 3, ..Default::default() };
        prop_assert_eq!(OrderStatus::of([*l, cancelled], held), status, "{}", ctx());
    }
    Ok(())
}

/// One step of a walk: an event, and the seed that picks its lines and amounts.
fn steps() -> impl Strategy<Value = Vec<(OrderEvent, u64)>> {
    prop::collection::vec((prop::sample::select(OrderEvent::ALL), any::<u64>()), 0..40)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn line_statuses_are_those_of_the_app_function_for_valid_counters(l in valid_line()) {
        prop_assert_eq!(LineStatus::of(&l).as_str(), line_status(&row(&l)));
    }

    #[test]
    fn line_statuses_are_those_of_the_app_function_for_any_counters(l in any_line()) {
        prop_assert_eq!(LineStatus::of(&l).as_str(), line_status(&row(&l)));
    }

    #[test]
    fn order_statuses_are_those_of_the_app_function(
        lines in prop_oneof![prop::collection::vec(valid_line(), 0..6), prop::collection::vec(any_line(), 0..6)],
        hold_count in 0..3usize,
    ) {
        let rows: Vec<OrderLineRow> = lines.iter().map(row).collect();
        let status = OrderStatus::of(&lines, HoldState::of_count(hold_count));
        prop_assert_eq!(status.as_str(), order_status(&rows, &holds(hold_count)));
        // The same answer from an iterator of owned lines.
        prop_assert_eq!(OrderStatus::of(lines.iter().copied(), HoldState::of_count(hold_count)), status);
    }

    #[test]
    fn derived_statuses_say_where_the_units_are(
        lines in prop::collection::vec(valid_line(), 0..6),
        hold_count in 0..3usize,
    ) {
        for l in &lines {
            prop_assert_eq!(l.check(), Ok(()));
            check_line_properties(l)?;
        }
        check_order_properties(&lines, hold_count)?;
    }

    /// Orders placed at random, then a random walk of events: every status change of every
    /// line and of the order is in its table, and the properties hold at every step.
    #[test]
    fn every_change_an_event_makes_is_in_the_tables(
        placed in prop::collection::vec(placed_line(), 1..5),
        placed_holds in 0..2usize,
        walk in steps(),
    ) {
        let mut lines = placed;
        let mut hold_count = placed_holds;
        for l in &lines {
            prop_assert!(LineStatus::AT_PLACEMENT.contains(&LineStatus::of(l)));
        }
        prop_assert!(OrderStatus::AT_PLACEMENT.contains(&OrderStatus::of(&lines, HoldState::of_count(hold_count))));
        for (event, seed) in walk {
            let mut rng = SplitMix64::new(seed);
            let before = OrderStatus::of(&lines, HoldState::of_count(hold_count));
            let line_event = match event {
                OrderEvent::Hold => { hold_count += 1; None }
                OrderEvent::Release if hold_count > 0 => { hold_count -= 1; None }
                OrderEvent::Release => continue,
                OrderEvent::Allocate => Some(LineEvent::Allocate),
                OrderEvent::Reroute => Some(LineEvent::Reroute),
                OrderEvent::Ship => Some(LineEvent::Ship),
                OrderEvent::PickedUp => Some(LineEvent::PickedUp),
                OrderEvent::Deliver => Some(LineEvent::Deliver),
                OrderEvent::Cancel => Some(LineEvent::Cancel),
            };
            if let Some(line_event) = line_event {
                // Each line takes part half of the time; the event happened if one changed.
                let mut changed = false;
                for l in lines.iter_mut() {
                    if !rng.chance(0.5) {
                        continue;
                    }
                    if let Some(n) = random_move(l, line_event, &mut rng) {
                        LineStatus::of(l).check_transition(line_event, LineStatus::of(&n)).map_err(|e| {
                            TestCaseError::fail(format!("{e}: {l:?} → {n:?}"))
                        })?;
                        *l = n;
                        changed = true;
                    }
                }
                if !changed {
                    continue;
                }
            }
            let after = OrderStatus::of(&lines, HoldState::of_count(hold_count));
            before.check_transition(event, after).map_err(|e| TestCaseError::fail(format!("{e}: {lines:?}")))?;
            for l in &lines {
                check_line_properties(l)?;
            }
            check_order_properties(&lines, hold_count)?;
        }
    }
}
