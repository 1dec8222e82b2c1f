//! Holds: what stops an order's work until someone releases it.
//!
//! An order with at least one hold is `on_hold` ([`crate::HoldState`]); its fulfillment
//! orders not yet accepted are held back, and accepted ones may be picked but not packed,
//! shipped or handed over ([`HoldKind::blocks`]). Holds come from the channel at capture,
//! from an operator or channel later, or from the policy's hold rules at capture
//! (`fraud_review` for a risky order, say).
//!
//! Key invariant: a fraud hold is lifted only by whoever may judge fraud — an admin, or the
//! channel that placed it itself ([`HoldKind::channel_may_release`]).

/// The kinds of hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum HoldKind {
    /// Suspected fraud.
    Fraud,
    /// Waiting for a fraud team's review (what a policy's hold rules usually place).
    FraudReview,
    /// Payment not yet authorised or captured.
    Payment,
    /// The address needs checking.
    Address,
    /// Anything else an operator wants to stop.
    Manual,
}

impl HoldKind {
    pub const ALL: [HoldKind; 5] =
        [HoldKind::Fraud, HoldKind::FraudReview, HoldKind::Payment, HoldKind::Address, HoldKind::Manual];

    pub fn as_str(self) -> &'static str {
        match self {
            HoldKind::Fraud => "fraud",
            HoldKind::FraudReview => "fraud_review",
            HoldKind::Payment => "payment",
            HoldKind::Address => "address",
            HoldKind::Manual => "manual",
        }
    }

    pub fn parse(text: &str) -> Option<HoldKind> {
        HoldKind::ALL.into_iter().find(|h| h.as_str() == text)
    }

    /// Every kind's name, comma-separated (for error messages and API docs).
    pub fn expected() -> String {
        HoldKind::ALL.map(HoldKind::as_str).join(", ")
    }

    /// Whether a channel may release a hold of this kind: always, except fraud holds it
    /// did not place itself (an admin, or a policy rule, placed them: an admin lifts them).
    pub fn channel_may_release(self, placed_by_that_channel: bool) -> bool {
        match self {
            HoldKind::Fraud | HoldKind::FraudReview => placed_by_that_channel,
            HoldKind::Payment | HoldKind::Address | HoldKind::Manual => true,
        }
    }
}

/// The node actions a hold stops once a node has accepted the work: everything that
/// hands units over or commits them to leave (packing, shipping, making ready for
/// pickup, handing over at the counter). Picking may go on: the units stay in the building.
pub fn blocks(action: crate::fulfillment::FoEvent) -> bool {
    use crate::fulfillment::FoEvent as E;
    matches!(action, E::Pack | E::Ship | E::ReadyForPickup | E::PickedUp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_read_back_and_fraud_is_released_by_whoever_may_judge_it() {
        for k in HoldKind::ALL {
            assert_eq!(HoldKind::parse(k.as_str()), Some(k));
        }
        assert_eq!(HoldKind::parse("vibes"), None);
        assert!(!HoldKind::Fraud.channel_may_release(false));
        assert!(!HoldKind::FraudReview.channel_may_release(false));
        assert!(HoldKind::Fraud.channel_may_release(true));
        assert!(HoldKind::Payment.channel_may_release(false));
    }
}
