//! The statuses of an order and of its lines, derived from the lines' unit counters, and
//! the two transition tables that say which status changes each order event can cause.
//!
//! What it owns: [`LineStatus`] and [`OrderStatus`] (one spelling each for the API, the
//! database `CHECK`s and the docs), their derivation ([`LineStatus::of`],
//! [`OrderStatus::of`]: hand-over first — delivered, shipped —, then the order's holds,
//! then allocation), the events that move a line's units ([`LineEvent`], [`OrderEvent`])
//! and the tables ([`LineStatus::after`], [`OrderStatus::after`]). What it must never do:
//! hold a status of its own — a status is recomputed from the counters after every change,
//! and the table is the check that the change was a legal one
//! ([`LineStatus::check_transition`]).
//!
//! ```text
//! placed:  unfilled · backordered · partially_allocated · allocated   (orders with holds: on_hold)
//! backordered ─allocate→ partially_allocated ─allocate→ allocated ─ship→ partially_shipped ─ship→ shipped ─deliver→ delivered
//!                                                        allocated ─picked_up→ delivered (collected at the counter)
//! reroute: a node gives units back; another node takes them, or they wait (backordered), or they are cancelled
//! cancel:  units not handed over yet → cancelled; a line or order with nothing open is cancelled
//! ```
//!
//! Key invariant: each table holds exactly the moves the derivation can produce for some
//! counters that keep the line invariants — tested exhaustively on small orders and by
//! random walks on large ones.

use std::borrow::Borrow;

use crate::network::wire_enum;
use crate::qty::Qty;

wire_enum!(
    /// Where a line's units are. Mirrored by the `CHECK` on `order_lines.status`.
    LineStatus {
        Allocated => "allocated",
        PartiallyAllocated => "partially_allocated",
        Backordered => "backordered",
        Unfilled => "unfilled",
        PartiallyShipped => "partially_shipped",
        Shipped => "shipped",
        Delivered => "delivered",
        Cancelled => "cancelled",
    }
);

wire_enum!(
    /// Where an order's units are, or that it is held. Mirrored by the `CHECK` on
    /// `orders.status`.
    OrderStatus {
        Allocated => "allocated",
        PartiallyAllocated => "partially_allocated",
        Backordered => "backordered",
        Unfilled => "unfilled",
        OnHold => "on_hold",
        PartiallyShipped => "partially_shipped",
        Shipped => "shipped",
        Delivered => "delivered",
        Cancelled => "cancelled",
    }
);

wire_enum!(
    /// What happens to a line's units after the order is placed.
    LineEvent {
        /// Backordered units find stock (supply arrived; the backorder is filled).
        Allocate => "allocate",
        /// A node gives allocated units back before handing them over (rejected, short
        /// picked, not accepted in time, withdrawn, reassigned): another node takes them,
        /// or they wait (backordered), or they are cancelled (unsourceable).
        Reroute => "reroute",
        /// Allocated units are handed to a carrier.
        Ship => "ship",
        /// Allocated units are handed to the customer at the counter: shipped and
        /// delivered at once.
        PickedUp => "picked_up",
        /// Shipped units arrive.
        Deliver => "deliver",
        /// Units not handed over yet (unfilled, backordered, allocated) are cancelled.
        Cancel => "cancel",
    }
);

wire_enum!(
    /// What happens to an order: something happens to some of its lines' units, or a hold
    /// comes or goes.
    OrderEvent {
        Allocate => "allocate",
        Reroute => "reroute",
        Ship => "ship",
        PickedUp => "picked_up",
        Deliver => "deliver",
        Cancel => "cancel",
        /// A hold (fraud, payment, address, manual) is added.
        Hold => "hold",
        /// A hold is released (others may remain).
        Release => "release",
    }
);

impl From<LineStatus> for OrderStatus {
    fn from(s: LineStatus) -> OrderStatus {
        match s {
            LineStatus::Allocated => OrderStatus::Allocated,
            LineStatus::PartiallyAllocated => OrderStatus::PartiallyAllocated,
            LineStatus::Backordered => OrderStatus::Backordered,
            LineStatus::Unfilled => OrderStatus::Unfilled,
            LineStatus::PartiallyShipped => OrderStatus::PartiallyShipped,
            LineStatus::Shipped => OrderStatus::Shipped,
            LineStatus::Delivered => OrderStatus::Delivered,
            LineStatus::Cancelled => OrderStatus::Cancelled,
        }
    }
}

impl From<LineEvent> for OrderEvent {
    fn from(e: LineEvent) -> OrderEvent {
        match e {
            LineEvent::Allocate => OrderEvent::Allocate,
            LineEvent::Reroute => OrderEvent::Reroute,
            LineEvent::Ship => OrderEvent::Ship,
            LineEvent::PickedUp => OrderEvent::PickedUp,
            LineEvent::Deliver => OrderEvent::Deliver,
            LineEvent::Cancel => OrderEvent::Cancel,
        }
    }
}

/// A line's unit counters, as the `order_lines` table keeps them (`i64` columns, so the
/// app passes its row's fields as they are). `unfilled` is not a field: it is the
/// remainder, [`LineQuantities::unfilled`].
///
/// The fields are public and not checked on construction, unlike the crate's other
/// domain values: these are stored counters that the database `CHECK`s already hold to
/// the invariants, and computing a status must not fail. [`LineQuantities::check`] states
/// the same rules for counters from anywhere else; the derivation gives an answer for any
/// counters, valid or not (the one the app's own function gave), and never overflows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct LineQuantities {
    /// Units ordered (1–10⁹).
    pub quantity: i64,
    /// Units assigned to nodes, handed over ones included.
    pub allocated: i64,
    /// Units waiting for stock.
    pub backordered: i64,
    pub cancelled: i64,
    /// Units handed to a carrier or to the customer (within `allocated`).
    pub shipped: i64,
    /// Units delivered or picked up (within `shipped`).
    pub delivered: i64,
}

/// Which rule of a line's counters is broken (the `order_lines` `CHECK`s).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LineQuantitiesError {
    #[error("quantity must be 1–{max}, got {quantity}", max = Qty::MAX.get())]
    Quantity { quantity: i64 },
    #[error("{counter} must not be negative, got {value}")]
    Negative { counter: &'static str, value: i64 },
    #[error("allocated, backordered and cancelled units ({counted}) exceed the quantity ({quantity})")]
    Overcounted { counted: i128, quantity: i64 },
    #[error("delivered ({delivered}) ≤ shipped ({shipped}) ≤ allocated ({allocated}) does not hold")]
    HandOver { allocated: i64, shipped: i64, delivered: i64 },
}

impl LineQuantities {
    /// Units not cancelled (saturating for counters that break the invariants).
    pub fn open(&self) -> i64 {
        self.quantity.saturating_sub(self.cancelled)
    }

    /// Units neither allocated, backordered nor cancelled: no node had them and the line
    /// may not wait (saturating for counters that break the invariants).
    pub fn unfilled(&self) -> i64 {
        self.open().saturating_sub(self.allocated).saturating_sub(self.backordered)
    }

    /// Checks the line invariants: quantity 1–10⁹, no negative counter,
    /// `allocated + backordered + unfilled + cancelled = quantity` with `unfilled ≥ 0`,
    /// and `delivered ≤ shipped ≤ allocated`.
    pub fn check(&self) -> Result<(), LineQuantitiesError> {
        if !(1..=Qty::MAX.get() as i64).contains(&self.quantity) {
            return Err(LineQuantitiesError::Quantity { quantity: self.quantity });
        }
        for (counter, value) in [
            ("allocated", self.allocated),
            ("backordered", self.backordered),
            ("cancelled", self.cancelled),
            ("shipped", self.shipped),
            ("delivered", self.delivered),
        ] {
            if value < 0 {
                return Err(LineQuantitiesError::Negative { counter, value });
            }
        }
        let counted = i128::from(self.allocated) + i128::from(self.backordered) + i128::from(self.cancelled);
        if counted > i128::from(self.quantity) {
            return Err(LineQuantitiesError::Overcounted { counted, quantity: self.quantity });
        }
        if !(self.delivered <= self.shipped && self.shipped <= self.allocated) {
            return Err(LineQuantitiesError::HandOver {
                allocated: self.allocated,
                shipped: self.shipped,
                delivered: self.delivered,
            });
        }
        Ok(())
    }
}

/// Whether an order has holds (fraud, payment, address, manual): all its status needs to
/// know of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldState {
    Clear,
    Held,
}

impl HoldState {
    /// `Held` when the order has at least one hold.
    pub fn of_count(holds: usize) -> HoldState {
        if holds == 0 { HoldState::Clear } else { HoldState::Held }
    }
}

/// Sums of lines' counters, wide enough that no sum of `i64`s overflows.
#[derive(Default)]
struct Totals {
    open: i128,
    allocated: i128,
    backordered: i128,
    shipped: i128,
    delivered: i128,
}

impl Totals {
    fn add(mut self, l: &LineQuantities) -> Totals {
        self.open += i128::from(l.quantity) - i128::from(l.cancelled);
        self.allocated += i128::from(l.allocated);
        self.backordered += i128::from(l.backordered);
        self.shipped += i128::from(l.shipped);
        self.delivered += i128::from(l.delivered);
        self
    }

    /// Where these units are, hand-over first, then allocation — the one precedence that
    /// lines and orders share.
    fn progress(&self) -> LineStatus {
        if self.open == 0 {
            LineStatus::Cancelled
        } else if self.delivered == self.open {
            LineStatus::Delivered
        } else if self.shipped == self.open {
            LineStatus::Shipped
        } else if self.shipped > 0 {
            LineStatus::PartiallyShipped
        } else if self.allocated == self.open {
            LineStatus::Allocated
        } else if self.allocated > 0 {
            LineStatus::PartiallyAllocated
        } else if self.backordered > 0 {
            LineStatus::Backordered
        } else {
            LineStatus::Unfilled
        }
    }
}

/// A status change that the line transition table does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a line that is {from} cannot become {to} on {event}")]
pub struct InvalidLineTransition {
    pub from: LineStatus,
    pub event: LineEvent,
    pub to: LineStatus,
}

/// A status change that the order transition table does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("an order that is {from} cannot become {to} on {event}")]
pub struct InvalidOrderTransition {
    pub from: OrderStatus,
    pub event: OrderEvent,
    pub to: OrderStatus,
}

impl LineStatus {
    /// Every status a freshly placed line can have: its units are allocated, and the rest
    /// backordered or else unfilled.
    pub const AT_PLACEMENT: &'static [LineStatus] =
        &[LineStatus::Allocated, LineStatus::PartiallyAllocated, LineStatus::Backordered, LineStatus::Unfilled];

    /// A line's status from its counters. Hand-over first: every open unit delivered,
    /// else every open unit shipped, else some shipped; then allocation: every open unit
    /// allocated, else some, else some backordered, else unfilled. A line with nothing
    /// open is cancelled.
    pub fn of(line: &LineQuantities) -> LineStatus {
        Totals::default().add(line).progress()
    }

    /// The transition table: every status a line that is `self` can be in after `event`.
    /// Empty: the event cannot happen to such a line (it has no units the event acts on).
    /// The table allows what the derivation gives for any amounts of the units the event
    /// acts on, not only the amounts today's use cases choose (a cancellation takes
    /// unfilled units first, then backordered, then allocated ones).
    pub fn after(self, event: LineEvent) -> &'static [LineStatus] {
        use LineEvent as E;
        use LineStatus as S;
        match (self, event) {
            // Unfilled units never find stock later (the line may not wait): only a
            // cancellation moves them.
            (S::Unfilled, E::Cancel) => &[S::Unfilled, S::Cancelled],
            (S::Backordered, E::Allocate) => &[S::PartiallyAllocated, S::Allocated],
            // A backordered line may hold unfilled units too (a node gave back units of a
            // line that had some): cancelling the backordered ones leaves it unfilled.
            (S::Backordered, E::Cancel) => &[S::Backordered, S::Unfilled, S::Cancelled],
            (S::PartiallyAllocated, E::Allocate) => &[S::PartiallyAllocated, S::Allocated],
            // When every allocated unit is given back and finds no other node, the line
            // is left with units without stock: backordered, or unfilled when the given
            // back units were cancelled and the rest was unfilled.
            (S::PartiallyAllocated, E::Reroute) => &[S::PartiallyAllocated, S::Backordered, S::Unfilled],
            (S::PartiallyAllocated, E::Ship | E::PickedUp) => &[S::PartiallyShipped],
            // Cancelling the units without stock leaves it allocated; cancelling
            // allocated ones leaves the others.
            (S::PartiallyAllocated, E::Cancel) => {
                &[S::Allocated, S::PartiallyAllocated, S::Backordered, S::Unfilled, S::Cancelled]
            }
            // Units another node takes keep the line allocated; a line whose allocated
            // units all come back is never unfilled (those units wait or are cancelled).
            (S::Allocated, E::Reroute) => &[S::Allocated, S::PartiallyAllocated, S::Backordered, S::Cancelled],
            (S::Allocated, E::Ship) => &[S::PartiallyShipped, S::Shipped],
            // Units picked up are delivered at once: a line collected in full skips
            // shipped.
            (S::Allocated, E::PickedUp) => &[S::PartiallyShipped, S::Delivered],
            // Cancelling some of the units leaves the rest allocated.
            (S::Allocated, E::Cancel) => &[S::Allocated, S::Cancelled],
            // Backordered units of a partly shipped line find stock: still partly shipped.
            (S::PartiallyShipped, E::Allocate) => &[S::PartiallyShipped],
            // Once the units not handed over are gone (cancelled, or given back and found
            // no node), what is left was all handed over: shipped, or delivered when all
            // of it arrived.
            (S::PartiallyShipped, E::Reroute | E::Cancel) => &[S::PartiallyShipped, S::Shipped, S::Delivered],
            (S::PartiallyShipped, E::Ship) => &[S::PartiallyShipped, S::Shipped],
            (S::PartiallyShipped, E::PickedUp) => &[S::PartiallyShipped, S::Shipped, S::Delivered],
            // Shipped units arriving change nothing while other units are not shipped.
            (S::PartiallyShipped, E::Deliver) => &[S::PartiallyShipped],
            (S::Shipped, E::Deliver) => &[S::Shipped, S::Delivered],
            // No units for the event to act on: nothing backordered to allocate, nothing
            // allocated and not handed over to give back, hand over or cancel, nothing
            // shipped to deliver. A shipped line's units come back by a return, not a
            // cancellation; delivered and cancelled lines are final.
            _ => &[],
        }
    }

    /// Checks a change the derivation produced (`to` is [`LineStatus::of`] the counters
    /// after `event`) against the table.
    pub fn check_transition(self, event: LineEvent, to: LineStatus) -> Result<(), InvalidLineTransition> {
        if self.after(event).contains(&to) { Ok(()) } else { Err(InvalidLineTransition { from: self, event, to }) }
    }

    /// No event moves the line any more: delivered, cancelled.
    pub fn is_final(self) -> bool {
        matches!(self, LineStatus::Delivered | LineStatus::Cancelled)
    }
}

impl OrderStatus {
    /// Every status a freshly placed order can have: a placed line's, or on_hold when it
    /// is placed with holds.
    pub const AT_PLACEMENT: &'static [OrderStatus] = &[
        OrderStatus::Allocated,
        OrderStatus::PartiallyAllocated,
        OrderStatus::Backordered,
        OrderStatus::Unfilled,
        OrderStatus::OnHold,
    ];

    /// An order's status from its lines' counters, summed, and its holds: the line
    /// precedence ([`LineStatus::of`]) on the sums, except that a held order is on_hold
    /// unless every open unit is already shipped (or delivered) or nothing is open.
    /// Without holds, an order of one line has that line's status.
    ///
    /// Takes anything that yields lines or references to them (`&[LineQuantities]`,
    /// `rows.iter().map(…)`).
    pub fn of<L: Borrow<LineQuantities>>(lines: impl IntoIterator<Item = L>, holds: HoldState) -> OrderStatus {
        let totals = lines.into_iter().fold(Totals::default(), |t, l| t.add(l.borrow()));
        match (totals.progress(), holds) {
            (s @ (LineStatus::Cancelled | LineStatus::Delivered | LineStatus::Shipped), _) => s.into(),
            (_, HoldState::Held) => OrderStatus::OnHold,
            (s, HoldState::Clear) => s.into(),
        }
    }

    /// The transition table: every status an order that is `self` can be in after
    /// `event` (to one or more of its lines, or to its holds). Empty: the event cannot
    /// happen to such an order. Without holds it is the line table, for the same reason:
    /// an order's sums behave as one line's counters. Like the line table, it allows what
    /// the derivation gives for any amounts of the units the event acts on.
    pub fn after(self, event: OrderEvent) -> &'static [OrderStatus] {
        use OrderEvent as E;
        use OrderStatus as S;
        match (self, event) {
            // ---- Holds.
            (S::Allocated | S::PartiallyAllocated | S::Backordered | S::Unfilled | S::PartiallyShipped, E::Hold) => {
                &[S::OnHold]
            }
            // A second hold; or a hold released while another remains.
            (S::OnHold, E::Hold) => &[S::OnHold],
            (S::OnHold, E::Release) => &[
                S::OnHold,
                S::Allocated,
                S::PartiallyAllocated,
                S::Backordered,
                S::Unfilled,
                // Units shipped before the hold, or by nodes that had already accepted the
                // work (a hold only holds back work not accepted yet), show once it goes.
                S::PartiallyShipped,
            ],
            // Holds do not show once every open unit is handed over or nothing is open:
            // adding or releasing one leaves the status as it is. (Whether a cancelled
            // order may take a new hold is the use case's rule, not the status's.)
            (S::Shipped, E::Hold | E::Release) => &[S::Shipped],
            (S::Delivered, E::Hold | E::Release) => &[S::Delivered],
            (S::Cancelled, E::Hold | E::Release) => &[S::Cancelled],
            // ---- Units of a held order move: the hold hides the change until every open
            // unit is handed over or nothing is open. Work the nodes had picked before
            // the hold still ships, and backorders still fill.
            (S::OnHold, E::Allocate | E::Deliver) => &[S::OnHold],
            (S::OnHold, E::Ship) => &[S::OnHold, S::Shipped],
            (S::OnHold, E::PickedUp) => &[S::OnHold, S::Shipped, S::Delivered],
            (S::OnHold, E::Reroute | E::Cancel) => &[S::OnHold, S::Shipped, S::Delivered, S::Cancelled],
            // ---- Units of an order without holds move: the line table (see there for
            // the odd edges and why they exist).
            (S::Unfilled, E::Cancel) => &[S::Unfilled, S::Cancelled],
            (S::Backordered, E::Allocate) => &[S::PartiallyAllocated, S::Allocated],
            (S::Backordered, E::Cancel) => &[S::Backordered, S::Unfilled, S::Cancelled],
            (S::PartiallyAllocated, E::Allocate) => &[S::PartiallyAllocated, S::Allocated],
            (S::PartiallyAllocated, E::Reroute) => &[S::PartiallyAllocated, S::Backordered, S::Unfilled],
            (S::PartiallyAllocated, E::Ship | E::PickedUp) => &[S::PartiallyShipped],
            (S::PartiallyAllocated, E::Cancel) => {
                &[S::Allocated, S::PartiallyAllocated, S::Backordered, S::Unfilled, S::Cancelled]
            }
            (S::Allocated, E::Reroute) => &[S::Allocated, S::PartiallyAllocated, S::Backordered, S::Cancelled],
            (S::Allocated, E::Ship) => &[S::PartiallyShipped, S::Shipped],
            (S::Allocated, E::PickedUp) => &[S::PartiallyShipped, S::Delivered],
            (S::Allocated, E::Cancel) => &[S::Allocated, S::Cancelled],
            (S::PartiallyShipped, E::Allocate) => &[S::PartiallyShipped],
            (S::PartiallyShipped, E::Reroute | E::Cancel) => &[S::PartiallyShipped, S::Shipped, S::Delivered],
            (S::PartiallyShipped, E::Ship) => &[S::PartiallyShipped, S::Shipped],
            (S::PartiallyShipped, E::PickedUp) => &[S::PartiallyShipped, S::Shipped, S::Delivered],
            (S::PartiallyShipped, E::Deliver) => &[S::PartiallyShipped],
            (S::Shipped, E::Deliver) => &[S::Shipped, S::Delivered],
            // No units for the event to act on, or (release) no hold to release: an order
            // that shows where its units are has none.
            _ => &[],
        }
    }

    /// Checks a change the derivation produced (`to` is [`OrderStatus::of`] the lines and
    /// holds after `event`) against the table.
    pub fn check_transition(self, event: OrderEvent, to: OrderStatus) -> Result<(), InvalidOrderTransition> {
        if self.after(event).contains(&to) { Ok(()) } else { Err(InvalidOrderTransition { from: self, event, to }) }
    }

    /// No event moves the order to another status any more: delivered, cancelled (holds
    /// may still come and go without showing).
    pub fn is_final(self) -> bool {
        matches!(self, OrderStatus::Delivered | OrderStatus::Cancelled)
    }
}

#[cfg(test)]
mod tests;
