//! Generated networks: nodes in real US cities, a catalog with skewed popularity, and
//! stock skewed by popularity and node type. Deterministic for a seed.
//!
//! The demo network (`allot demo`) is [`ScenarioSpec::demo`]: 4 DCs and 56 stores, 500
//! SKUs. Popularity follows a Zipf law (rank r gets weight 1/r^1.1); DCs carry most of the
//! catalog in depth, stores carry the popular part thinly; a few SKUs are out of stock
//! everywhere and a few are held only by a handful of stores.

use crate::catalog::{FulfillmentMethod, Item};
use crate::geo::GeoPoint;
use crate::ids::{NodeId, Sku};
use crate::inventory::{Position, PositionCounts};
use crate::money::Currency;
use crate::network::{Capability, Node, NodeCapacity, NodeCosts, NodeStatus, NodeType, TimeZoneName};
use crate::places::{Place, us_places};
use crate::qty::Qty;
use crate::rng::SplitMix64;

/// What to generate.
#[derive(Debug, Clone, PartialEq)]
pub struct ScenarioSpec {
    /// Cities (GeoNames names, `Name/ST`) that host a DC. Fewer than `dcs` → the rest are
    /// taken from large cities spread across time zones.
    pub dc_cities: Vec<(&'static str, &'static str)>,
    pub dcs: usize,
    pub stores: usize,
    pub skus: usize,
    pub seed: u64,
}

impl ScenarioSpec {
    /// The demo network.
    pub fn demo() -> ScenarioSpec {
        ScenarioSpec {
            dc_cities: vec![("Allentown", "PA"), ("Memphis", "TN"), ("Salt Lake City", "UT"), ("Ontario", "CA")],
            dcs: 4,
            stores: 56,
            skus: 500,
            seed: 20261125,
        }
    }
}

/// A generated network, catalog and stock.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub nodes: Vec<Node>,
    pub items: Vec<Item>,
    pub positions: Vec<Position>,
}

const ADJECTIVES: &[&str] = &[
    "Classic",
    "Trail",
    "Urban",
    "Everyday",
    "Pro",
    "Lightweight",
    "Heritage",
    "Performance",
    "Cozy",
    "Compact",
    "Organic",
    "Premium",
    "Outdoor",
    "Studio",
    "Travel",
    "Smart",
];
const PRODUCTS: &[(&str, u64, u64)] = &[
    // (noun, min weight g, max weight g)
    ("T-Shirt", 150, 300),
    ("Hoodie", 400, 900),
    ("Running Shoe", 500, 1200),
    ("Backpack", 600, 2000),
    ("Water Bottle", 200, 600),
    ("Desk Lamp", 800, 2500),
    ("Blender", 2500, 5000),
    ("Cookware Set", 6000, 14000),
    ("Yoga Mat", 900, 2000),
    ("Headphones", 200, 500),
    ("Coffee Maker", 2000, 4500),
    ("Tent", 2500, 7000),
    ("Bookshelf", 16000, 32000),
    ("Office Chair", 12000, 22000),
    ("Sunglasses", 50, 150),
    ("Throw Blanket", 800, 1800),
];
const HAZMAT_PRODUCTS: &[(&str, u64, u64)] =
    &[("Lithium Battery Pack", 300, 900), ("Camping Fuel Canister", 400, 800), ("Aerosol Sunscreen", 200, 400)];

fn slug(name: &str) -> String {
    name.chars()
        .filter_map(|c| match c {
            c if c.is_ascii_alphanumeric() => Some(c.to_ascii_uppercase()),
            ' ' | '-' | '.' => Some('-'),
            _ => None,
        })
        .collect()
}

fn node_from_place(id: String, node_type: NodeType, place: &Place, rng: &mut SplitMix64) -> Option<Node> {
    let (capabilities, capacity, costs) = match node_type {
        NodeType::Dc => (
            vec![Capability::Ship, Capability::Returns],
            NodeCapacity { orders_per_day: Some(20_000), units_per_day: Some(60_000) },
            (150, 25),
        ),
        _ => {
            let mut caps = vec![Capability::Ship, Capability::Pickup, Capability::ShipToStore, Capability::Returns];
            if rng.chance(0.7) {
                caps.push(Capability::Curbside);
            }
            if place.population > 500_000 || rng.chance(0.25) {
                caps.push(Capability::SameDay);
            }
            let orders = rng.range(150, 600) as u32;
            (caps, NodeCapacity { orders_per_day: Some(orders), units_per_day: Some(orders * 3) }, (400, 50))
        }
    };
    Some(Node {
        id: NodeId::parse(&id).ok()?,
        node_type,
        name: match node_type {
            NodeType::Dc => format!("{} Distribution Center", place.name),
            _ => format!("{}, {} Store", place.name, place.state),
        },
        location: place.location,
        time_zone: TimeZoneName::parse(&place.time_zone).ok()?,
        capabilities: crate::network::canonical_capabilities(capabilities),
        status: NodeStatus::Active,
        capacity,
        costs: NodeCosts { per_order_minor: costs.0, per_unit_minor: costs.1, currency: Currency::parse("USD").ok()? },
    })
}

/// Generates a scenario. Deterministic: the same spec gives the same scenario.
pub fn generate(spec: &ScenarioSpec) -> Scenario {
    let mut rng = SplitMix64::new(spec.seed);
    let places = us_places();
    let find = |name: &str, state: &str| places.iter().find(|p| p.name == name && p.state == state);

    let mut nodes = Vec::new();
    let mut used: Vec<u64> = Vec::new();
    for (name, state) in spec.dc_cities.iter().take(spec.dcs) {
        if let Some(place) = find(name, state)
            && let Some(node) = node_from_place(format!("DC-{}", slug(name)), NodeType::Dc, place, &mut rng)
        {
            used.push(place.geonames_id);
            nodes.push(node);
        }
    }
    // Remaining DCs: large cities, one per time zone in turn.
    let zones = ["America/New_York", "America/Chicago", "America/Denver", "America/Los_Angeles"];
    let mut zone = 0;
    while nodes.len() < spec.dcs {
        let tz = zones[zone % zones.len()];
        zone += 1;
        if let Some(place) = places.iter().find(|p| p.time_zone == tz && !used.contains(&p.geonames_id))
            && let Some(node) = node_from_place(format!("DC-{}", slug(&place.name)), NodeType::Dc, place, &mut rng)
        {
            used.push(place.geonames_id);
            nodes.push(node);
        }
        if zone > spec.dcs * 8 + 8 {
            break;
        }
    }
    // Stores: the most populous places not hosting a DC.
    for place in places.iter().filter(|p| !used.contains(&p.geonames_id)).take(spec.stores) {
        let id = format!("ST-{}-{}", place.state, slug(&place.name));
        if let Some(node) = node_from_place(id, NodeType::Store, place, &mut rng)
            && !nodes.iter().any(|n| n.id == node.id)
        {
            nodes.push(node);
        }
    }

    // Catalog.
    let mut items = Vec::with_capacity(spec.skus);
    for i in 0..spec.skus {
        let hazmat = rng.chance(0.02);
        let (noun, lo, hi) = if hazmat { *rng.pick(HAZMAT_PRODUCTS) } else { *rng.pick(PRODUCTS) };
        let weight_g = rng.range(lo, hi) as u32;
        let ship_alone = weight_g >= 15_000;
        let methods = if ship_alone {
            vec![FulfillmentMethod::Ship, FulfillmentMethod::ShipToStore]
        } else {
            FulfillmentMethod::ALL.to_vec()
        };
        let dims = [rng.range(50, 600) as u32, rng.range(50, 400) as u32, rng.range(20, 300) as u32];
        let Ok(sku) = Sku::parse(&format!("SKU-{:05}", i + 1)) else {
            continue;
        };
        items.push(Item {
            sku,
            name: format!("{} {}", rng.pick(ADJECTIVES), noun),
            weight_g,
            dims_mm: Some(dims),
            hazmat,
            ship_alone,
            methods,
            substitutes: Vec::new(),
        });
    }
    // Substitutes: about one item in eight names up to two earlier items of the same noun.
    for i in 0..items.len() {
        if !rng.chance(0.125) {
            continue;
        }
        let noun = items[i].name.split_once(' ').map(|(_, n)| n.to_owned()).unwrap_or_default();
        let subs: Vec<Sku> =
            items[..i].iter().rev().filter(|o| o.name.ends_with(&noun)).take(2).map(|o| o.sku.clone()).collect();
        items[i].substitutes = subs;
    }

    // Stock. Rank = catalog order (SKU-00001 is the most popular).
    let mut positions = Vec::new();
    let stores: Vec<&Node> = nodes.iter().filter(|n| n.node_type == NodeType::Store).collect();
    for (rank, item) in items.iter().enumerate() {
        let popularity = 1.0 / ((rank + 1) as f64).powf(1.1); // 1.0 for the top SKU
        let roll = rng.unit();
        let out_everywhere = roll < 0.03;
        let only_few_stores = (0.03..0.08).contains(&roll);
        if out_everywhere {
            continue;
        }
        if !only_few_stores {
            for dc in nodes.iter().filter(|n| n.node_type == NodeType::Dc) {
                if rng.chance(0.9) {
                    let depth = 30.0 + 20_000.0 * popularity;
                    let on_hand = (depth * (0.5 + rng.unit())).round() as u64;
                    positions.push(position(dc, item, on_hand, 0, &mut rng));
                }
            }
        }
        let (store_share, max_units) = if only_few_stores {
            (4.0 / stores.len().max(1) as f64, 3)
        } else {
            ((0.15 + 0.85 * popularity.sqrt()).min(0.95), (4.0 + 40.0 * popularity) as u64)
        };
        for store in &stores {
            if rng.chance(store_share) {
                let on_hand = rng.range(0, max_units);
                let safety = u64::from(!only_few_stores && rng.chance(0.3));
                positions.push(position(store, item, on_hand, safety, &mut rng));
            }
        }
    }
    Scenario { nodes, items, positions }
}

fn position(node: &Node, item: &Item, on_hand: u64, safety: u64, rng: &mut SplitMix64) -> Position {
    let on_hand = Qty::new(on_hand).unwrap_or(Qty::MAX);
    let damaged = if rng.chance(0.02) { Qty::new(1).unwrap_or_default().min(on_hand) } else { Qty::ZERO };
    Position {
        node_id: node.id.clone(),
        sku: item.sku.clone(),
        counts: PositionCounts {
            on_hand,
            damaged,
            safety_stock: Qty::new(safety).unwrap_or_default(),
            ..Default::default()
        },
        seq: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_network_is_realistic_and_deterministic() {
        let a = generate(&ScenarioSpec::demo());
        let b = generate(&ScenarioSpec::demo());
        assert_eq!(a.positions, b.positions);
        assert_eq!(a.items, b.items);
        let dcs: Vec<_> = a.nodes.iter().filter(|n| n.node_type == NodeType::Dc).collect();
        let stores = a.nodes.iter().filter(|n| n.node_type == NodeType::Store).count();
        assert_eq!(dcs.len(), 4);
        assert!(stores >= 50, "{stores}");
        assert_eq!(a.items.len(), 500);
        let zones: std::collections::BTreeSet<_> = a.nodes.iter().map(|n| n.time_zone.as_str()).collect();
        assert!(zones.len() >= 4, "{zones:?}");
        // Popularity skew: the top SKU is stocked more deeply than the median one.
        let units = |sku: &str| -> u64 {
            a.positions.iter().filter(|p| p.sku.as_str() == sku).map(|p| p.counts.on_hand.get()).sum()
        };
        assert!(units("SKU-00001") > 10 * units("SKU-00250").max(1));
        // Some SKUs are nowhere, some only in a few stores.
        let held_by = |sku: &Sku| a.positions.iter().filter(|p| &p.sku == sku).count();
        assert!(a.items.iter().any(|i| held_by(&i.sku) == 0));
        assert!(a.items.iter().any(|i| (1..=6).contains(&held_by(&i.sku))));
        // Every position refers to a generated node and item.
        for p in &a.positions {
            assert!(a.nodes.iter().any(|n| n.id == p.node_id));
            assert!(a.items.iter().any(|i| i.sku == p.sku));
        }
    }
}

/// What order stream to generate.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderStreamSpec {
    pub count: usize,
    pub seed: u64,
    /// Lines per order, inclusive range.
    pub lines_min: usize,
    pub lines_max: usize,
    /// Share of lines picked up at the customer's nearest pickup store (within 50 km).
    pub pickup_share: f64,
}

/// Generates orders against a scenario: customers placed by population (with up to ~10 km
/// of jitter), SKUs drawn by popularity (Zipf, as the stock), 1–3 units per line.
/// Deterministic for a seed.
pub fn generate_orders(scenario: &Scenario, spec: &OrderStreamSpec) -> Vec<crate::sourcing::OrderToSource> {
    use crate::sourcing::{LineToSource, OrderToSource};
    let mut rng = SplitMix64::new(spec.seed);
    let places = us_places();
    let mut cum_pop = Vec::with_capacity(places.len());
    let mut total = 0u64;
    for p in &places {
        total += p.population;
        cum_pop.push(total);
    }
    let mut cum_sku = Vec::with_capacity(scenario.items.len());
    let mut acc = 0.0;
    for rank in 0..scenario.items.len() {
        acc += 1.0 / ((rank + 1) as f64).powf(1.1);
        cum_sku.push(acc);
    }
    let pickup_stores: Vec<&Node> =
        scenario.nodes.iter().filter(|n| n.has(Capability::Pickup) && n.is_active()).collect();
    let mut orders = Vec::with_capacity(spec.count);
    for _ in 0..spec.count {
        let at = rng.range(0, total.saturating_sub(1));
        let place = &places[cum_pop.partition_point(|&c| c <= at).min(places.len() - 1)];
        let lat = (place.location.lat() + (rng.unit() - 0.5) * 0.18).clamp(-90.0, 90.0);
        let lon = (place.location.lon() + (rng.unit() - 0.5) * 0.18).clamp(-180.0, 180.0);
        let ship_to = GeoPoint::new(lat, lon).unwrap_or(place.location);
        let nearest_pickup = pickup_stores
            .iter()
            .map(|n| (n.location.distance_km(ship_to), *n))
            .filter(|(d, _)| *d <= 50.0)
            .min_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.1.id.cmp(&b.1.id)))
            .map(|(_, n)| n.id.clone());
        let n_lines = rng.range(spec.lines_min as u64, spec.lines_max as u64) as usize;
        let mut lines: Vec<LineToSource> = Vec::with_capacity(n_lines);
        let mut guard = 0;
        while lines.len() < n_lines && guard < 100 && !scenario.items.is_empty() {
            guard += 1;
            let x = rng.unit() * acc;
            let item = &scenario.items[cum_sku.partition_point(|&c| c < x).min(scenario.items.len() - 1)];
            if lines.iter().any(|l| l.sku == item.sku) {
                continue;
            }
            let pickup =
                nearest_pickup.is_some() && rng.chance(spec.pickup_share) && item.allows(FulfillmentMethod::Pickup);
            lines.push(LineToSource {
                line_id: (lines.len() + 1).to_string(),
                sku: item.sku.clone(),
                quantity: Qty::new(rng.range(1, 3)).unwrap_or(Qty::ZERO),
                method: if pickup { FulfillmentMethod::Pickup } else { FulfillmentMethod::Ship },
                pickup_node: if pickup { nearest_pickup.clone() } else { None },
                service_level: None,
                allow_backorder: rng.chance(0.3),
                unit_price_minor: rng.range(500, 20_000) as i64,
            });
        }
        orders.push(OrderToSource {
            channel: None,
            customer_tier: Some(if rng.chance(0.1) { "premium" } else { "standard" }.to_owned()),
            ship_to: Some(ship_to),
            country: Some("US".to_owned()),
            region: Some(place.state.clone()),
            billing_country: None,
            currency: None,
            lines,
            promise: None,
        });
    }
    orders
}
