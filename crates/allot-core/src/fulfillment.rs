//! The fulfillment order's life: one status enum and one transition table.
//!
//! A fulfillment order (FO) is an order's work at one node for one kind of hand-over:
//! `Ship` (the node ships a parcel, or ships to a store) or `Pickup` (the customer
//! collects at the node, in store or at the curb). What it must never do: decide stock;
//! the app moves stock in the same transaction as the transition this table allows.
//!
//! ```text
//! created ─release→ released ─accept→ accepted ─pick→ picking ─pack→ packed ─ship→ shipped ─deliver→ delivered
//!    ▲                 │  └─hold→ created            │                 │
//!    └──────hold───────┘                              └───────ready_for_pickup (pickup FOs)─→ picked_up
//! reject: released | accepted | picking → rejected      cancel: any not yet shipped/picked up → cancelled
//! withdraw (node paused or closed): created | released | accepted → rejected
//! ```
//!
//! Key invariant: [`next`] is the only place that says which moves are legal. Repeating
//! the move that produced the current status is not a new transition: callers answer the
//! current state (idempotent retries) — [`Transition::Repeat`].

use std::fmt;

/// Where a fulfillment order is. Mirrored by the `CHECK` on `fulfillment_orders.status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FoStatus {
    /// Made, but held back from the node (the order is on hold).
    Created,
    /// Sent to the node; waiting for it to accept.
    Released,
    Accepted,
    /// Picked (quantities recorded per line; short picks already re-sourced).
    Picking,
    Packed,
    Shipped,
    Delivered,
    /// Pickup FOs: packed and waiting at the counter.
    ReadyForPickup,
    PickedUp,
    /// The node refused it (or did not accept in time); its units were re-sourced.
    Rejected,
    Cancelled,
}

impl FoStatus {
    pub const ALL: [FoStatus; 11] = [
        FoStatus::Created,
        FoStatus::Released,
        FoStatus::Accepted,
        FoStatus::Picking,
        FoStatus::Packed,
        FoStatus::Shipped,
        FoStatus::Delivered,
        FoStatus::ReadyForPickup,
        FoStatus::PickedUp,
        FoStatus::Rejected,
        FoStatus::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FoStatus::Created => "created",
            FoStatus::Released => "released",
            FoStatus::Accepted => "accepted",
            FoStatus::Picking => "picking",
            FoStatus::Packed => "packed",
            FoStatus::Shipped => "shipped",
            FoStatus::Delivered => "delivered",
            FoStatus::ReadyForPickup => "ready_for_pickup",
            FoStatus::PickedUp => "picked_up",
            FoStatus::Rejected => "rejected",
            FoStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(text: &str) -> Option<FoStatus> {
        FoStatus::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// Its units still hold allocated stock at the node (not yet handed over, not
    /// released by a rejection or cancellation).
    pub fn holds_stock(self) -> bool {
        matches!(
            self,
            FoStatus::Created
                | FoStatus::Released
                | FoStatus::Accepted
                | FoStatus::Picking
                | FoStatus::Packed
                | FoStatus::ReadyForPickup
        )
    }

    /// Its units have left the node (shipped or handed to the customer).
    pub fn handed_over(self) -> bool {
        matches!(self, FoStatus::Shipped | FoStatus::Delivered | FoStatus::PickedUp)
    }

    /// No further transition is possible.
    pub fn is_final(self) -> bool {
        matches!(self, FoStatus::Delivered | FoStatus::PickedUp | FoStatus::Rejected | FoStatus::Cancelled)
    }
}

impl fmt::Display for FoStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a fulfillment order reaches the customer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FoKind {
    /// Parcel to the customer's address, same-day delivery, or ship to a store.
    Ship,
    /// The customer collects at this node (in store or at the curb).
    Pickup,
}

impl FoKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FoKind::Ship => "ship",
            FoKind::Pickup => "pickup",
        }
    }

    pub fn parse(text: &str) -> Option<FoKind> {
        match text {
            "ship" => Some(FoKind::Ship),
            "pickup" => Some(FoKind::Pickup),
            _ => None,
        }
    }

    /// The kind of FO that serves a line of this method.
    pub fn of(method: crate::FulfillmentMethod) -> FoKind {
        use crate::FulfillmentMethod as M;
        match method {
            M::Pickup | M::Curbside => FoKind::Pickup,
            M::Ship | M::SameDay | M::ShipToStore => FoKind::Ship,
        }
    }
}

/// What happens to a fulfillment order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FoEvent {
    /// The order's last hold went (or it never had one).
    Release,
    /// A hold was added to the order.
    Hold,
    Accept,
    Reject,
    Pick,
    Pack,
    Ship,
    ReadyForPickup,
    PickedUp,
    Deliver,
    Cancel,
    /// The system takes work back before the node has picked it: the node was paused or
    /// closed. Recorded as `rejected`, with the reason.
    Withdraw,
}

impl FoEvent {
    pub fn as_str(self) -> &'static str {
        match self {
            FoEvent::Release => "release",
            FoEvent::Hold => "hold",
            FoEvent::Accept => "accept",
            FoEvent::Reject => "reject",
            FoEvent::Pick => "pick",
            FoEvent::Pack => "pack",
            FoEvent::Ship => "ship",
            FoEvent::ReadyForPickup => "ready_for_pickup",
            FoEvent::PickedUp => "picked_up",
            FoEvent::Deliver => "deliver",
            FoEvent::Cancel => "cancel",
            FoEvent::Withdraw => "withdraw",
        }
    }
}

/// The answer of the transition table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// Move to this status.
    To(FoStatus),
    /// The event already happened (the FO is in the status it leads to): a retry, answer
    /// the current state and change nothing.
    Repeat,
}

/// An event that the fulfillment order's status does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a {kind} fulfillment order that is {from} cannot {event}", kind = kind.as_str(), event = event.as_str())]
pub struct InvalidTransition {
    pub from: FoStatus,
    pub event: FoEvent,
    pub kind: FoKind,
}

/// The transition table (see the module docs).
pub fn next(from: FoStatus, event: FoEvent, kind: FoKind) -> Result<Transition, InvalidTransition> {
    use FoEvent as E;
    use FoKind as K;
    use FoStatus as S;
    let to = match (event, from, kind) {
        (E::Release, S::Created, _) => S::Released,
        (E::Hold, S::Released, _) => S::Created,
        (E::Accept, S::Released, _) => S::Accepted,
        // A node may give work back until it has packed it; after that the units are in a
        // parcel (or at the counter) and only a cancellation can stop them.
        (E::Reject, S::Released | S::Accepted | S::Picking, _) => S::Rejected,
        // Picked work is in the node's hands (and maybe in a tote): a disruption moves
        // only what has not been picked yet.
        (E::Withdraw, S::Created | S::Released | S::Accepted, _) => S::Rejected,
        (E::Pick, S::Accepted, _) => S::Picking,
        (E::Pack, S::Picking, K::Ship) => S::Packed,
        (E::Ship, S::Packed, K::Ship) => S::Shipped,
        (E::Deliver, S::Shipped, K::Ship) => S::Delivered,
        // Pickup work goes to the counter once picked (packing a bag is part of it), or
        // after an explicit pack.
        (E::Pack, S::Picking, K::Pickup) => S::Packed,
        (E::ReadyForPickup, S::Picking | S::Packed, K::Pickup) => S::ReadyForPickup,
        (E::PickedUp, S::ReadyForPickup, K::Pickup) => S::PickedUp,
        (E::Cancel, S::Created | S::Released | S::Accepted | S::Picking | S::Packed | S::ReadyForPickup, _) => {
            S::Cancelled
        }
        _ => {
            return if repeats(from, event, kind) {
                Ok(Transition::Repeat)
            } else {
                Err(InvalidTransition { from, event, kind })
            };
        }
    };
    Ok(Transition::To(to))
}

/// A status's place on its kind's path (`None` off the path: created, rejected,
/// cancelled, or the other kind's statuses).
fn progress(s: FoStatus, kind: FoKind) -> Option<u8> {
    use FoStatus as S;
    match (s, kind) {
        (S::Released, _) => Some(1),
        (S::Accepted, _) => Some(2),
        (S::Picking, _) => Some(3),
        (S::Packed, _) => Some(4),
        (S::Shipped, FoKind::Ship) | (S::ReadyForPickup, FoKind::Pickup) => Some(5),
        (S::Delivered, FoKind::Ship) | (S::PickedUp, FoKind::Pickup) => Some(6),
        _ => None,
    }
}

/// Whether `event` already happened to a fulfillment order in `from` (a retried
/// request): `from` is the status it leads to, or one further along the same path (an
/// accept retried after the pick answers the picked state).
fn repeats(from: FoStatus, event: FoEvent, kind: FoKind) -> bool {
    use FoEvent as E;
    use FoStatus as S;
    let target = match event {
        E::Accept => Some(S::Accepted),
        E::Pick => Some(S::Picking),
        E::Pack => Some(S::Packed),
        E::Ship if kind == FoKind::Ship => Some(S::Shipped),
        E::Deliver if kind == FoKind::Ship => Some(S::Delivered),
        E::ReadyForPickup if kind == FoKind::Pickup => Some(S::ReadyForPickup),
        E::PickedUp if kind == FoKind::Pickup => Some(S::PickedUp),
        _ => None,
    };
    if let (Some(t), Some(at)) = (target.and_then(|t| progress(t, kind)), progress(from, kind)) {
        return t <= at;
    }
    matches!(
        (event, from),
        (E::Release, S::Released)
            | (E::Hold, S::Created)
            | (E::Reject, S::Rejected)
            | (E::Cancel, S::Cancelled)
            | (E::Withdraw, S::Rejected)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const EVENTS: [FoEvent; 12] = [
        FoEvent::Withdraw,
        FoEvent::Release,
        FoEvent::Hold,
        FoEvent::Accept,
        FoEvent::Reject,
        FoEvent::Pick,
        FoEvent::Pack,
        FoEvent::Ship,
        FoEvent::ReadyForPickup,
        FoEvent::PickedUp,
        FoEvent::Deliver,
        FoEvent::Cancel,
    ];

    fn walk(kind: FoKind, events: &[FoEvent]) -> Result<FoStatus, InvalidTransition> {
        let mut s = FoStatus::Created;
        for e in events {
            if let Transition::To(t) = next(s, *e, kind)? {
                s = t;
            }
        }
        Ok(s)
    }

    #[test]
    fn ship_and_pickup_happy_paths_end_delivered_and_picked_up() {
        use FoEvent::*;
        assert_eq!(walk(FoKind::Ship, &[Release, Accept, Pick, Pack, Ship, Deliver]), Ok(FoStatus::Delivered));
        assert_eq!(walk(FoKind::Pickup, &[Release, Accept, Pick, ReadyForPickup, PickedUp]), Ok(FoStatus::PickedUp));
        assert_eq!(walk(FoKind::Pickup, &[Release, Accept, Pick, Pack, ReadyForPickup]), Ok(FoStatus::ReadyForPickup));
    }

    #[test]
    fn methods_of_the_other_kind_are_refused() {
        let e = next(FoStatus::Picking, FoEvent::ReadyForPickup, FoKind::Ship).unwrap_err();
        assert_eq!(e.to_string(), "a ship fulfillment order that is picking cannot ready_for_pickup");
        assert!(next(FoStatus::Packed, FoEvent::Ship, FoKind::Pickup).is_err());
    }

    #[test]
    fn nothing_leaves_a_final_status_and_retries_are_repeats() {
        for from in FoStatus::ALL.into_iter().filter(|s| s.is_final()) {
            for e in EVENTS {
                for kind in [FoKind::Ship, FoKind::Pickup] {
                    assert!(!matches!(next(from, e, kind), Ok(Transition::To(_))), "{from} {e:?}");
                }
            }
        }
        assert_eq!(next(FoStatus::Rejected, FoEvent::Reject, FoKind::Ship), Ok(Transition::Repeat));
        assert_eq!(next(FoStatus::Accepted, FoEvent::Accept, FoKind::Ship), Ok(Transition::Repeat));
        // A retry that arrives after the work moved on answers the state it is in.
        assert_eq!(next(FoStatus::Shipped, FoEvent::Accept, FoKind::Ship), Ok(Transition::Repeat));
        assert_eq!(next(FoStatus::Delivered, FoEvent::Ship, FoKind::Ship), Ok(Transition::Repeat));
        // Skipping ahead, or the other kind's moves, are still refused.
        assert!(next(FoStatus::Accepted, FoEvent::Ship, FoKind::Ship).is_err());
        assert!(next(FoStatus::PickedUp, FoEvent::Ship, FoKind::Pickup).is_err());
        assert!(next(FoStatus::Rejected, FoEvent::Accept, FoKind::Ship).is_err());
        assert!(next(FoStatus::Cancelled, FoEvent::Pick, FoKind::Ship).is_err());
    }

    #[test]
    fn stock_is_held_exactly_until_handover_or_release() {
        // Every status either holds stock, has handed it over, or gave it back: never two.
        for s in FoStatus::ALL {
            let gave_back = matches!(s, FoStatus::Rejected | FoStatus::Cancelled);
            assert_eq!(u8::from(s.holds_stock()) + u8::from(s.handed_over()) + u8::from(gave_back), 1, "{s}");
            assert_eq!(FoStatus::parse(s.as_str()), Some(s));
        }
        // Cancellation is possible exactly while stock is held.
        for s in FoStatus::ALL {
            let can_cancel = matches!(next(s, FoEvent::Cancel, FoKind::Ship), Ok(Transition::To(_)));
            assert_eq!(can_cancel, s.holds_stock(), "{s}");
        }
    }

    #[test]
    fn a_node_can_reject_until_it_packs() {
        for s in FoStatus::ALL {
            let ok = matches!(next(s, FoEvent::Reject, FoKind::Ship), Ok(Transition::To(FoStatus::Rejected)));
            assert_eq!(ok, matches!(s, FoStatus::Released | FoStatus::Accepted | FoStatus::Picking), "{s}");
        }
    }
}
