//! Which nodes may serve which lines of a destination group, and why the others may not:
//! the order's stock rows, node-level then per-line drop reasons, each node's distance and
//! shipping band. Never searches; a drop reason is the first failing one, in the documented order.
//!
//! Kept nodes that can give some line a unit become the group's candidates
//! ([`Group::add_candidate`]); every node, kept or not, gets its entry in the explanation's
//! [`Candidates`].

use std::sync::Arc;

use crate::catalog::FulfillmentMethod;
use crate::geo::{ChordLimit, GeoPoint, SpherePoint};
use crate::ids::Sku;
use crate::network::{Capability, Node};
use crate::sourcing::policy::{CostModel, Filters};
use crate::sourcing::table::capability_bit;

use super::cost::{billed_kg, capacity_pressure, unplaced_penalty, zone};
use super::decision::{
    Candidates, Distance, DropReason, Holding, NodeState, OrderToSource, PromiseTerms, SourcingNetwork,
};
use super::group::{CandidateBounds, CandidateCosts, Group, GroupLine};
use super::{GroupCtx, Scratch, emptied};

pub(super) fn is_ship_type(method: FulfillmentMethod) -> bool {
    matches!(method, FulfillmentMethod::Ship | FulfillmentMethod::SameDay | FulfillmentMethod::ShipToStore)
}

/// Stock of the order's distinct SKUs at the nodes holding any: one row per such node,
/// (atp, aging) per SKU in `skus` order.
pub(super) struct OrderStock<'a> {
    skus: Vec<&'a Sku>,
    /// Per node index: its row, or `NO_ROW` (row 0, all zeros).
    row_of: Vec<u32>,
    rows: Vec<(u64, u64)>,
}

const NO_ROW: u32 = 0;

impl<'a> OrderStock<'a> {
    /// Reads the holdings of the order's SKUs from the network, a row per node holding any
    /// (the last holding of a node and SKU counts). The rows live in `row_of` and `rows`
    /// (emptied), `holdings` is scratch.
    pub(super) fn read(
        order: &'a OrderToSource,
        net: &dyn SourcingNetwork,
        node_count: usize,
        (row_of, rows): (Vec<u32>, Vec<(u64, u64)>),
        holdings: &mut Vec<Holding>,
    ) -> OrderStock<'a> {
        let mut stock = OrderStock { skus: Vec::new(), row_of, rows };
        for line in &order.lines {
            if !stock.skus.contains(&&line.sku) {
                stock.skus.push(&line.sku);
            }
        }
        let sku_count = stock.skus.len();
        stock.row_of.resize(node_count, NO_ROW);
        // (Holdings of every SKU first, rows numbered; then the rows, zeroed at once, filled.)
        let mut ends = Vec::with_capacity(sku_count);
        let mut n_rows = 1u32;
        for sku in &stock.skus {
            let start = holdings.len();
            net.holdings(sku, holdings);
            for holding in &holdings[start..] {
                if let Some(row) = stock.row_of.get_mut(holding.node)
                    && *row == NO_ROW
                {
                    *row = n_rows;
                    n_rows += 1;
                }
            }
            ends.push(holdings.len());
        }
        stock.rows.resize(n_rows as usize * sku_count, (0, 0));
        let mut start = 0;
        for (j, &end) in ends.iter().enumerate() {
            for holding in &holdings[start..end] {
                if let Some(&row) = stock.row_of.get(holding.node) {
                    let atp = holding.atp.get();
                    stock.rows[row as usize * sku_count + j] = (atp, holding.aging.get().min(atp));
                }
            }
            start = end;
        }
        stock
    }

    /// Hands the rows' buffers back (for the next decision).
    pub(super) fn into_buffers(self) -> (Vec<u32>, Vec<(u64, u64)>) {
        (self.row_of, self.rows)
    }

    /// The stock of node `node` (zeros when it holds none of the SKUs).
    fn row(&self, node: usize) -> &[(u64, u64)] {
        let sku_count = self.skus.len();
        match self.row_of.get(node) {
            Some(&r) => self.rows.get(r as usize * sku_count..(r as usize + 1) * sku_count).unwrap_or(&[]),
            None => &[],
        }
    }

    fn index(&self, sku: &Sku) -> Option<usize> {
        self.skus.iter().position(|s| *s == sku)
    }

    /// (atp, aging) of `sku` at node `node`.
    pub(super) fn at(&self, sku: &Sku, node: usize) -> (u64, u64) {
        self.index(sku).and_then(|k| self.row(node).get(k).copied()).unwrap_or((0, 0))
    }
}

/// A node's distance to a group's destination, computed exactly only when needed.
struct NodeDistance {
    dest: Option<GeoPoint>,
    at: GeoPoint,
    /// Squared chord to the destination, when the network keeps sphere points.
    chord2: Option<f64>,
    km: Option<f64>,
}

impl NodeDistance {
    /// Great-circle km (infinite without a destination).
    #[inline(always)]
    fn km(&mut self) -> f64 {
        match self.dest {
            None => f64::INFINITY,
            Some(d) => *self.km.get_or_insert_with(|| d.distance_km(self.at)),
        }
    }

    /// `self.km() <= limit_km`, through the chord when it can tell.
    #[inline(always)]
    fn within(&mut self, limit: ChordLimit, limit_km: f64) -> bool {
        match self.chord2.and_then(|c| limit.decide(c)) {
            Some(within) => within,
            None => self.km() <= limit_km,
        }
    }

    /// The distance the explanation reports (the same km, computed when read if not yet:
    /// then the node has a sphere point in the table).
    #[inline(always)]
    fn reported(&self) -> (Distance, f64) {
        match (self.dest, self.km) {
            (None, _) => (Distance::None, 0.0),
            (Some(_), Some(km)) => (Distance::Km, km),
            (Some(_), None) => (Distance::FromTable, 0.0),
        }
    }
}

/// What eligibility reads of a group, the same for every node: the rule's filters, the
/// node-independent part of each line's eligibility, and the limits distances are compared
/// with.
struct GroupRules<'a> {
    filters: &'a Filters,
    /// The order's currency: a node costing in another one is not compared (costs in two
    /// currencies cannot be added).
    currency: Option<crate::Currency>,
    must_meet_promise: bool,
    cost: &'a CostModel,
    dest: Option<GeoPoint>,
    /// The promise, when it binds this group (lines shipped to the customer's address).
    promise: Option<&'a PromiseTerms>,
    /// The order's SKU index of each slot (`usize::MAX`: none).
    slot_sku: Vec<usize>,
    /// Per line: the item allows the line's method; the item is hazmat; the capability
    /// the method requires, and its bit.
    line_item_ok: Vec<bool>,
    line_hazmat: Vec<bool>,
    line_capability: Vec<Capability>,
    line_capability_bit: Vec<u32>,
    /// The table's sphere points and the destination's (when the table has points).
    points: Option<(&'a [SpherePoint], SpherePoint)>,
    /// The table's capability bits by node (empty without).
    capability_bits: &'a [u32],
    /// The radius filter, in km and as a chord.
    radius: Option<(f64, ChordLimit)>,
    /// The shipping zones' limits as chords (only with sphere points), and whether they
    /// ascend.
    zone_limits: Vec<ChordLimit>,
    zones_ascending: bool,
    emissions_charged: bool,
}

impl<'a> GroupRules<'a> {
    fn new(ctx: &GroupCtx<'a, '_>, dest: Option<GeoPoint>, lines: &[GroupLine], skus: &[&Sku]) -> GroupRules<'a> {
        let (order, items, body) = (ctx.order, ctx.items, ctx.body);
        let filters = &body.filters;
        let cost = &body.cost;
        let method = |line: &GroupLine| order.lines[line.order_index].method;
        let line_capability: Vec<Capability> = lines.iter().map(|line| method(line).required_capability()).collect();
        let points =
            (!ctx.table.points().is_empty()).then(|| dest.map(|d| (ctx.table.points(), SpherePoint::new(d)))).flatten();
        let zone_limits: Vec<ChordLimit> = match points {
            Some(_) => cost.shipping_zones.iter().map(|z| ChordLimit::new(z.max_km)).collect(),
            None => Vec::new(),
        };
        GroupRules {
            filters,
            currency: order.currency,
            must_meet_promise: body.constraints.must_meet_promise,
            cost,
            dest,
            promise: order.promise.as_ref().filter(|_| dest.is_some() && dest == order.ship_to),
            slot_sku: skus.iter().map(|s| ctx.stock.index(s).unwrap_or(usize::MAX)).collect(),
            line_item_ok: lines
                .iter()
                .map(|line| items[line.order_index].is_some_and(|it| it.allows(method(line))))
                .collect(),
            line_hazmat: lines.iter().map(|line| items[line.order_index].is_some_and(|it| it.hazmat)).collect(),
            line_capability_bit: line_capability.iter().map(|c| capability_bit(*c)).collect(),
            line_capability,
            points,
            capability_bits: ctx.table.capabilities(),
            // (`km > max` is `!(km <= max)` for every km, infinite too, unless max is NaN.)
            radius: filters.max_distance_km.filter(|max| !max.is_nan()).map(|max| (max, ChordLimit::new(max))),
            zones_ascending: zone_limits.windows(2).all(|w| w[0].not_beyond(w[1])),
            zone_limits,
            emissions_charged: cost.co2_g_per_kg_km != 0 && cost.emissions_minor_per_kg_co2 != 0,
        }
    }

    /// The first node-level reason to drop node `index` (`holds_any`: it holds some unit of
    /// the group's SKUs).
    #[inline(always)]
    fn node_reason(&self, index: usize, state: &NodeState<'_>, holds_any: bool) -> Option<DropReason> {
        let (filters, node) = (self.filters, state.node);
        if filters.exclude_nodes.contains(&node.id) {
            Some(DropReason::Excluded)
        } else if self.currency.is_some_and(|c| node.costs.currency != c) {
            Some(DropReason::OtherCurrency)
        } else if filters.node_types.as_ref().is_some_and(|t| !t.contains(&node.node_type)) {
            Some(DropReason::NodeTypeNotAllowed)
        } else if !node.is_active() {
            Some(DropReason::Inactive)
        } else if filters.respect_capacity && node.capacity.orders_per_day.is_some_and(|c| state.orders_today >= c) {
            Some(DropReason::CapacityFull)
        } else if self.promise.is_some_and(|p| self.must_meet_promise && p.days_late(index) != Some(0)) {
            Some(DropReason::MissesPromise)
        } else if !holds_any {
            Some(DropReason::NoStock)
        } else {
            None
        }
    }

    /// Node `index`'s distance to the destination (the chord through the table's sphere
    /// point, when it has one for the node's location).
    #[inline(always)]
    fn distance(&self, index: usize, node: &Node) -> NodeDistance {
        let chord2 = self.points.and_then(|(points, dest)| {
            points.get(index).filter(|p| p.point() == node.location).map(|p| dest.chord2(*p))
        });
        NodeDistance { dest: self.dest, at: node.location, chord2, km: None }
    }

    /// The shipping band `(base, per kg)` of a node at `distance`, or why it has none.
    #[inline(always)]
    fn band(&self, distance: &mut NodeDistance) -> Result<(i64, i64), DropReason> {
        if let Some((max, limit)) = self.radius
            && !distance.within(limit, max)
        {
            return Err(DropReason::BeyondRadius);
        }
        let zones = &self.cost.shipping_zones;
        // With ascending zone limits the zones surely beyond the chord are the first ones:
        // the band is the next zone if the chord is surely within it (no zone at all if
        // every zone is surely beyond), found without branching zone by zone.
        let quick_band = match distance.chord2 {
            Some(chord2) if self.zones_ascending => {
                let beyond = self.zone_limits.iter().map(|z| usize::from(z.surely_beyond(chord2))).sum::<usize>();
                match self.zone_limits.get(beyond) {
                    None => Some(None),
                    Some(z) if z.decide(chord2) == Some(true) => {
                        let z = &zones[beyond];
                        Some(Some((z.base_minor, z.per_kg_minor)))
                    }
                    Some(_) => None,
                }
            }
            _ => None,
        };
        let band = if let Some(band) = quick_band {
            band
        } else if distance.chord2.is_some() {
            zones
                .iter()
                .zip(&self.zone_limits)
                .find(|(z, limit)| distance.within(**limit, z.max_km))
                .map(|(z, _)| (z.base_minor, z.per_kg_minor))
        } else {
            zone(self.cost, distance.km())
        };
        band.ok_or(DropReason::BeyondShippingZones)
    }
}

/// The lines of a destination group (`line_indices`: their indices in the order) and the
/// group's distinct SKUs, in order of first appearance (a line's `slot`).
fn group_lines<'o>(ctx: &GroupCtx<'o, '_>, line_indices: &[usize]) -> (Vec<GroupLine>, Vec<&'o Sku>) {
    let mut skus: Vec<&Sku> = Vec::new();
    let lines = line_indices
        .iter()
        .map(|&i| {
            let line = &ctx.order.lines[i];
            let slot = match skus.iter().position(|s| *s == &line.sku) {
                Some(p) => p,
                None => {
                    skus.push(&line.sku);
                    skus.len() - 1
                }
            };
            let item = ctx.items[i];
            let weight_g = u64::from(item.map_or(0, |it| it.weight_g));
            let penalty = unplaced_penalty(ctx.body, line);
            GroupLine {
                order_index: i,
                slot,
                qty: line.quantity.get(),
                weight_g,
                unit_kg: billed_kg(weight_g),
                ship_alone: item.is_some_and(|it| it.ship_alone),
                penalty,
                penalty_milli: penalty.saturating_mul(1000),
            }
        })
        .collect();
    (lines, skus)
}

/// What eligibility hands the search: the group with its candidates and what was derived
/// from them as they were added, and the explanation's entry for every node.
pub(super) struct EligibleGroup<'r> {
    pub(super) group: Group<'r>,
    pub(super) bounds: CandidateBounds,
    pub(super) candidates: Candidates,
}

/// Examines every node for the destination group of `line_indices` bound for `dest`:
/// node-level reasons for all nodes, then distance, band and lines for those holding
/// something. Kept nodes that can give some line a unit become the group's candidates.
pub(super) fn eligible_group<'r>(
    ctx: &GroupCtx<'r, '_>,
    dest: Option<GeoPoint>,
    line_indices: &[usize],
    scratch: &mut Scratch,
) -> EligibleGroup<'r> {
    let (lines, skus) = group_lines(ctx, line_indices);
    let rules = GroupRules::new(ctx, dest, &lines, &skus);
    let mut candidates = Candidates::new(Arc::clone(ctx.table), dest);
    let mut holders = emptied(&mut scratch.holders);
    node_level_reasons(ctx, &rules, &mut candidates, &mut holders);
    let arrays = std::mem::take(&mut scratch.group_arrays);
    let mut group = Group::new(lines, skus.len(), &ctx.body.cost, &ctx.body.constraints, arrays);
    let mut bounds = CandidateBounds::new(group.line_count(), emptied(&mut scratch.single_bound));
    let mut exam = HolderExam::new(&skus, group.line_count());
    for &index in &holders {
        exam.examine(ctx, &rules, index, &mut candidates, (&mut group, &mut bounds));
    }
    scratch.holders = holders;
    EligibleGroup { group, bounds, candidates }
}

/// Node-level reasons for every node, in one pass without a branch per node: each node's
/// entry in `candidates` (a node without a reason holds something and is examined next: its
/// entry is a placeholder until then), and in `holders` the nodes without a reason.
// (Inlined, as are `HolderExam::examine` and the functions it calls: the passes over every
// node and every holder then keep their state in registers, as when they were one function;
// called out of line they cost 3% more instructions per decision (callgrind) and 5% more time
// on decisions that solve at most two node sets.)
#[inline(always)]
fn node_level_reasons(
    ctx: &GroupCtx<'_, '_>,
    rules: &GroupRules<'_>,
    candidates: &mut Candidates,
    holders: &mut Vec<usize>,
) {
    holders.resize(ctx.nodes.len(), 0);
    let mut n_holders = 0;
    for (index, state) in ctx.nodes.iter().enumerate() {
        let row = ctx.stock.row(index);
        // (Without a branch per SKU: a node holding none has a row of zeros.)
        let holds_any = rules.slot_sku.iter().fold(false, |any, &k| any | row.get(k).is_some_and(|s| s.0 > 0));
        let reason = rules.node_reason(index, state, holds_any);
        candidates.push(reason, (Distance::None, 0.0), 0);
        holders[n_holders] = index;
        n_holders += usize::from(reason.is_none());
    }
    holders.truncate(n_holders);
}

/// The examination of the nodes that hold something, one after the other; per node: the
/// usable and aging units per SKU slot, and per line whether the node may serve it.
struct HolderExam<'s, 'o> {
    skus: &'s [&'o Sku],
    usable: Vec<u64>,
    aged: Vec<u64>,
    eligible: Vec<bool>,
}

/// What the lines say of a node: whether it may serve any, the units it could contribute
/// over all lines, and whether some line it may serve asks for a unit.
struct LinesServed {
    any: bool,
    usable_units: u64,
    any_units: bool,
}

impl<'s, 'o> HolderExam<'s, 'o> {
    fn new(skus: &'s [&'o Sku], n_lines: usize) -> HolderExam<'s, 'o> {
        HolderExam { skus, usable: vec![0; skus.len()], aged: vec![0; skus.len()], eligible: vec![false; n_lines] }
    }

    /// Node `index`: its distance, band and lines; its entry in `candidates` and, if it can
    /// give some line a unit, its candidate in the group.
    #[inline(always)]
    fn examine(
        &mut self,
        ctx: &GroupCtx<'_, '_>,
        rules: &GroupRules<'_>,
        index: usize,
        candidates: &mut Candidates,
        (group, bounds): (&mut Group<'_>, &mut CandidateBounds),
    ) {
        let state = &ctx.nodes[index];
        let node = state.node;
        let mut distance = rules.distance(index, node);
        let (base, per_kg) = match rules.band(&mut distance) {
            Ok(band) => band,
            Err(reason) => {
                candidates.set(index, Some(reason), distance.reported(), 0);
                return;
            }
        };
        let row = ctx.stock.row(index);
        let stock_at = |slot: usize| row.get(rules.slot_sku[slot]).copied().unwrap_or((0, 0));
        self.read_usable(ctx, rules, index, node, stock_at);
        let hazmat_ok = rules.filters.hazmat_node_types.contains(&node.node_type);
        let capability_bits = rules.capability_bits.get(index);
        debug_assert!(ctx.table.describes(index, node), "the node table describes node {index}");
        let capable = |l: usize| match capability_bits {
            Some(bits) => bits & rules.line_capability_bit[l] != 0,
            None => node.has(rules.line_capability[l]),
        };
        let served = self.lines_served(rules, &group.lines, capable, hazmat_ok);
        if !served.any {
            // Every line failed: the first line's reason is the first.
            let reason = group.lines.first().map(|first| {
                if !capable(0) {
                    DropReason::NoCapability
                } else if !rules.line_item_ok[0] {
                    DropReason::MethodNotAllowedForItem
                } else if rules.line_hazmat[0] && !hazmat_ok {
                    DropReason::Hazmat
                } else if stock_at(first.slot).0 > 0 {
                    DropReason::ProtectedStock
                } else {
                    DropReason::NoStock
                }
            });
            candidates.set(index, reason, distance.reported(), 0);
            return;
        }
        candidates.set(index, None, distance.reported(), served.usable_units);
        let unit_cap = match (rules.filters.respect_capacity, node.capacity.units_per_day) {
            (true, Some(c)) => u64::from(c.saturating_sub(state.units_today)),
            _ => u64::MAX,
        };
        // Only nodes that can give some line a unit take part in the search.
        if !(served.any_units && unit_cap > 0) {
            return;
        }
        // Only emissions depend on the distance beyond its zone.
        let km_ceil = if rules.emissions_charged { distance.km().ceil() as i64 } else { 0 };
        let late = rules
            .promise
            .and_then(|p| p.days_late(index))
            .map_or(0, |d| rules.cost.late_penalty_minor_per_day.saturating_mul(i64::from(d)));
        let costs = CandidateCosts {
            fixed: node.costs.per_order_minor + capacity_pressure(rules.cost, state) + late,
            base,
            per_kg,
            km_ceil,
            per_unit: node.costs.per_unit_minor,
            late,
        };
        let stock = (self.usable.as_slice(), self.aged.as_slice());
        group.add_candidate(index, costs, unit_cap, (&self.eligible, stock), bounds);
    }

    /// Usable units per SKU slot at node `index` (ATP less what pinned pickup lines took
    /// and store protection) and their aging units.
    #[inline(always)]
    fn read_usable(
        &mut self,
        ctx: &GroupCtx<'_, '_>,
        rules: &GroupRules<'_>,
        index: usize,
        node: &Node,
        stock_at: impl Fn(usize) -> (u64, u64),
    ) {
        let protection = rules.filters.protected_units(node.node_type);
        for (s, sku) in self.skus.iter().enumerate() {
            let (atp, aging) = stock_at(s);
            let pinned =
                if ctx.pinned_used.is_empty() { 0 } else { ctx.pinned_used.get(&(index, *sku)).copied().unwrap_or(0) };
            self.usable[s] = atp.saturating_sub(pinned).saturating_sub(protection);
            self.aged[s] = aging.min(self.usable[s]);
        }
    }

    /// Per line, whether the node may serve it (into `eligible`), without branches on each
    /// line's outcome.
    #[inline(always)]
    fn lines_served(
        &mut self,
        rules: &GroupRules<'_>,
        lines: &[GroupLine],
        capable: impl Fn(usize) -> bool,
        hazmat_ok: bool,
    ) -> LinesServed {
        let mut served = LinesServed { any: false, usable_units: 0, any_units: false };
        for (l, line) in lines.iter().enumerate() {
            let units = self.usable[line.slot];
            let ok = capable(l) & rules.line_item_ok[l] & (!rules.line_hazmat[l] | hazmat_ok) & (units > 0);
            self.eligible[l] = ok;
            served.any |= ok;
            served.usable_units += if ok { units.min(line.qty) } else { 0 };
            served.any_units |= ok & (line.qty > 0);
        }
        served
    }
}
