//! Cost arithmetic: the exact integer costs shared by the search and the reported packages,
//! and the bound arithmetic (×1000, saturating) the search prunes with. Pure functions of
//! numbers; never rounds a bound up: every bound stays at or below the cost it stands for.

use crate::sourcing::policy::{CostModel, RuleBody};

use super::decision::{LineToSource, NodeState};

// ---------------------------------------------------------------------------------------
// Cost arithmetic (integer, shared by the search and by plan reporting)

/// What each unit of `line` left unplaced costs under `body`: the backorder penalty when
/// the line and the rule allow backorders, else the unfilled penalty.
pub(super) fn unplaced_penalty(body: &RuleBody, line: &LineToSource) -> i64 {
    if line.allow_backorder && body.constraints.allow_backorder {
        body.cost.backorder_penalty_minor
    } else {
        body.cost.unfilled_penalty_minor
    }
}

pub(super) fn billed_kg(weight_g: u64) -> i64 {
    weight_g.div_ceil(1000) as i64
}

/// The shipping zone for a distance, if any.
pub(super) fn zone(cost: &CostModel, km: f64) -> Option<(i64, i64)> {
    cost.shipping_zones.iter().find(|z| km <= z.max_km).map(|z| (z.base_minor, z.per_kg_minor))
}

/// Emissions cost of a package: `co2_g = kg × ceil(km) × co2_g_per_kg_km`, charged at
/// `emissions_minor_per_kg_co2` per kg CO2, rounded down.
pub(super) fn emissions(cost: &CostModel, kg: i64, km_ceil: i64) -> i64 {
    if cost.co2_g_per_kg_km == 0 || cost.emissions_minor_per_kg_co2 == 0 || kg == 0 || km_ceil == 0 {
        return 0;
    }
    let co2_g = i128::from(kg) * i128::from(km_ceil) * i128::from(cost.co2_g_per_kg_km);
    (co2_g * i128::from(cost.emissions_minor_per_kg_co2) / 1000) as i64
}

/// `capacity_penalty × (orders_today ÷ orders_per_day)²`, rounded down.
pub(super) fn capacity_pressure(cost: &CostModel, state: &NodeState<'_>) -> i64 {
    match state.node.capacity.orders_per_day {
        Some(cap) if cap > 0 && cost.capacity_penalty_minor != 0 && state.orders_today > 0 => {
            let o = i128::from(state.orders_today);
            let c = i128::from(cap);
            (i128::from(cost.capacity_penalty_minor) * o * o / (c * c)) as i64
        }
        _ => 0,
    }
}

/// Emissions per kg (×1000): `ceil(km) × co2_g_per_kg_km × emissions_minor_per_kg_co2`.
pub(super) fn emissions_per_kg_milli(cost: &CostModel, km_ceil: i64) -> i128 {
    i128::from(km_ceil) * i128::from(cost.co2_g_per_kg_km) * i128::from(cost.emissions_minor_per_kg_co2)
}

// ---------------------------------------------------------------------------------------
// Bound arithmetic: lower bounds are kept ×1000 ("milli") so that shipping weight can stay
// un-rounded; they saturate instead of overflowing, which keeps them lower bounds.

/// A lower bound at or above this means "no feasible plan in this subtree".
pub(super) const INF: i64 = i64::MAX / 4;

/// Largest linear unit cost kept (×1000); larger ones are clamped down (still a bound).
const UNIT_MILLI_MAX: i128 = 1 << 52;

/// `a × u`, saturating (a bound stays a bound).
pub(super) fn saturating_times(a: i64, u: u64) -> i64 {
    a.saturating_mul(i64::try_from(u).unwrap_or(i64::MAX))
}

pub(super) fn clamp_milli(v: i128) -> i64 {
    v.min(UNIT_MILLI_MAX) as i64
}

/// Minor units of a milli amount, rounded down (INF stays INF).
pub(super) fn floor_milli(v: i64) -> i64 {
    if v >= INF { INF } else { v.div_euclid(1000) }
}

/// The linear relaxation of one line over a few options `(unit cost ×1000, units)`: the
/// cheapest units up to the line's quantity (only those cheaper than its penalty, unless
/// every unit must be placed), the rest at the penalty. INF when all-or-nothing cannot
/// place every unit.
pub(super) fn settle(opts: &mut [(i64, u64)], qty: u64, penalty_milli: i64, must_fill: bool) -> i64 {
    match opts.len() {
        0 | 1 => {}
        2 => {
            if opts[0].0 > opts[1].0 {
                opts.swap(0, 1);
            }
        }
        _ => opts.sort_unstable_by_key(|o| o.0),
    }
    let mut left = qty;
    let mut total = 0i64;
    for &(unit, n) in opts.iter() {
        if left == 0 || (!must_fill && unit >= penalty_milli) {
            break;
        }
        let take = left.min(n);
        total = total.saturating_add(saturating_times(unit, take));
        left -= take;
    }
    if left > 0 {
        if must_fill {
            return INF;
        }
        total = total.saturating_add(saturating_times(penalty_milli, left));
    }
    total
}
