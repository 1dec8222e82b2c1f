//! Service levels: how fast a carrier service takes a package to the customer.
//!
//! What it owns: the closed set of levels — one spelling for the API, the database, carrier
//! documents and policies — and the step a jeopardy upgrade takes. What it must never do:
//! know carriers, calendars or dates; which service offers a level and when it delivers is
//! the promise calculator's business. Key invariant: [`ServiceLevel::upgrade`] only ever
//! moves a line to a strictly faster level, and never to same_day.

use crate::network::wire_enum;

wire_enum!(
    /// How fast a line is to reach the customer, slowest first (the order compares speed).
    ServiceLevel {
        Standard => "standard",
        Express => "express",
        NextDay => "next_day",
        SameDay => "same_day",
    }
);

impl ServiceLevel {
    /// The level the jeopardy action `upgrade_service` moves a late or at-risk line to:
    /// standard → express → next_day. `None` from next_day, the fastest level a sweep
    /// grants: same-day delivery needs a node with the capability and a slot left today,
    /// so it is only ever promised at checkout, not granted afterwards (and a same_day
    /// line has nothing faster to go to).
    pub fn upgrade(self) -> Option<ServiceLevel> {
        match self {
            ServiceLevel::Standard => Some(ServiceLevel::Express),
            ServiceLevel::Express => Some(ServiceLevel::NextDay),
            ServiceLevel::NextDay | ServiceLevel::SameDay => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_have_one_spelling_each() {
        for level in ServiceLevel::ALL {
            assert_eq!(ServiceLevel::parse(level.as_str()), Some(*level));
        }
        assert_eq!(ServiceLevel::expected(), "standard, express, next_day, same_day");
        assert_eq!(ServiceLevel::parse("Next_Day"), None);
        assert_eq!(ServiceLevel::parse("ground"), None);
    }

    #[test]
    fn an_upgrade_goes_one_level_faster_and_stops_at_next_day() {
        assert_eq!(ServiceLevel::Standard.upgrade(), Some(ServiceLevel::Express));
        assert_eq!(ServiceLevel::Express.upgrade(), Some(ServiceLevel::NextDay));
        assert_eq!(ServiceLevel::NextDay.upgrade(), None);
        assert_eq!(ServiceLevel::SameDay.upgrade(), None);
        for level in ServiceLevel::ALL {
            if let Some(to) = level.upgrade() {
                assert!(to > *level && to != ServiceLevel::SameDay, "{level} → {to}");
            }
        }
    }

    #[test]
    fn the_policy_upgrade_by_name_reads_levels_and_refuses_other_text() {
        use crate::sourcing::upgraded_service_level;
        assert_eq!(upgraded_service_level("standard"), Some("express"));
        assert_eq!(upgraded_service_level("express"), Some("next_day"));
        for text in ["next_day", "same_day", "", "ground", "EXPRESS"] {
            assert_eq!(upgraded_service_level(text), None, "{text:?}");
        }
    }
}
