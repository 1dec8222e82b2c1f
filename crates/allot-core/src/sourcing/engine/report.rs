//! Reporting: the packages of the chosen plan with itemised costs, and the explanation.
//! Reads plans the search found; never searches or changes a plan. Package costs add up to
//! the plan's total.

use crate::qty::Qty;

pub(super) fn qty(v: u64) -> Qty {
    // Quantities in plans never exceed a line's quantity, itself a Qty.
    Qty::new(v).unwrap_or(Qty::MAX)
}
