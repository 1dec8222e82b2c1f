//! `allot scenario generate` and `allot import`: generated networks as files in the API's
//! own request shapes, so what the generator writes is exactly what the server accepts.
//!
//! Layout of a scenario directory:
//! - `nodes.json`: `{ "<node_id>": <PUT /v1/nodes body>, … }`
//! - `items.json`: `{ "<sku>": <PUT /v1/items body>, … }`
//! - `inventory.json`: `{ "<node_id>": <POST /v1/inventory/snapshots body>, … }`
//! - `orders.jsonl`: one `POST /v1/orders` body per line, in arrival order.
//! - `carriers.json`: `{ "<carrier_id>": <PUT /v1/carriers body>, … }` and
//!   `calendars.json`: `{ "<node_id>": <PUT /v1/nodes/{id}/calendar body>, … }`: the demo
//!   promise data ([`allot_app::demo_promise_data`]) for the generated nodes, so the
//!   network answers promises. Optional on import.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use allot_api::params::{OrderParam, PostSnapshot, PutItem, PutNode};
use allot_app::App;
use allot_app::promise_doc::{CarrierDoc, NodeCalendarDoc};
use allot_core::scenario::{OrderStreamSpec, Scenario, ScenarioSpec, generate, generate_orders};
use allot_core::{NodeId, Sku};
use anyhow::Context;
use serde_json::{Value, json};

/// The network `scenario generate --nodes --skus --seed` writes: one DC per 25 nodes
/// (1–60), the rest stores.
pub fn spec(nodes: usize, skus: usize, seed: u64) -> anyhow::Result<ScenarioSpec> {
    anyhow::ensure!((1..=3000).contains(&nodes), "--nodes must be 1–3000 (the embedded place list bounds it)");
    anyhow::ensure!((1..=1_000_000).contains(&skus), "--skus must be 1–1000000");
    let dcs = (nodes / 25).clamp(1, 60).min(nodes);
    Ok(ScenarioSpec { dc_cities: Vec::new(), dcs, stores: nodes - dcs, skus, seed })
}

/// Writes a generated scenario to `out`.
pub fn write(nodes: usize, skus: usize, orders: usize, seed: u64, out: &Path) -> anyhow::Result<()> {
    let spec = spec(nodes, skus, seed)?;
    anyhow::ensure!(orders <= 10_000_000, "--orders must be at most 10000000");
    let dcs = spec.dcs;
    let scenario = generate(&spec);
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    write_json(&out.join("nodes.json"), &nodes_json(&scenario))?;
    write_json(&out.join("items.json"), &items_json(&scenario))?;
    write_json(&out.join("inventory.json"), &inventory_json(&scenario))?;
    let promise_data = allot_app::demo_promise_data(&scenario.nodes);
    write_json(&out.join("carriers.json"), &serde_json::to_value(BTreeMap::from_iter(promise_data.carriers))?)?;
    write_json(&out.join("calendars.json"), &serde_json::to_value(BTreeMap::from_iter(promise_data.calendars))?)?;
    let stream = OrderStreamSpec { count: orders, seed: seed ^ 0x5eed, lines_min: 1, lines_max: 5, pickup_share: 0.1 };
    let mut f = std::io::BufWriter::new(
        std::fs::File::create(out.join("orders.jsonl")).with_context(|| format!("creating {}", out.display()))?,
    );
    for (i, o) in generate_orders(&scenario, &stream).iter().enumerate() {
        writeln!(f, "{}", order_body(o, &format!("G-{seed}-{i:07}"), i))?;
    }
    f.flush()?;
    eprintln!(
        "wrote {} nodes ({dcs} DCs), {} items, {} positions and {orders} orders to {}",
        scenario.nodes.len(),
        scenario.items.len(),
        scenario.positions.len(),
        out.display()
    );
    Ok(())
}

/// A generated order as a `POST /v1/orders` body (channel `web`).
pub fn order_body(o: &allot_core::sourcing::OrderToSource, external_id: &str, i: usize) -> Value {
    let lines: Vec<Value> = o
        .lines
        .iter()
        .map(|l| {
            let mut v = json!({"line_id": l.line_id, "sku": l.sku.as_str(), "quantity": l.quantity.get(),
                "unit_price_minor": l.unit_price_minor, "method": l.method.as_str(), "allow_backorder": l.allow_backorder});
            if let Some(p) = &l.pickup_node {
                v["pickup_node_id"] = json!(p.as_str());
            }
            v
        })
        .collect();
    let ship_to = o.ship_to.map(|p| json!({"lat": p.lat(), "lon": p.lon(), "country": o.country, "region": o.region}));
    json!({"channel": "web", "external_id": external_id,
        "customer": {"id": format!("C-{}", i % 9973), "tier": o.customer_tier}, "ship_to": ship_to,
        "currency": "USD", "lines": lines})
}

fn write_json(path: &Path, v: &Value) -> anyhow::Result<()> {
    std::fs::write(path, serde_json::to_vec_pretty(v)?).with_context(|| format!("writing {}", path.display()))
}

fn nodes_json(s: &Scenario) -> Value {
    let map: serde_json::Map<String, Value> = s
        .nodes
        .iter()
        .map(|n| {
            (
                n.id.to_string(),
                json!({"type": n.node_type.as_str(), "name": n.name,
                    "location": {"lat": n.location.lat(), "lon": n.location.lon()},
                    "time_zone": n.time_zone.as_str(),
                    "capabilities": n.capabilities.iter().map(|c| c.as_str()).collect::<Vec<_>>(),
                    "status": n.status.as_str(),
                    "capacity": {"orders_per_day": n.capacity.orders_per_day, "units_per_day": n.capacity.units_per_day},
                    "costs": {"per_order_minor": n.costs.per_order_minor, "per_unit_minor": n.costs.per_unit_minor},
                    "currency": n.costs.currency.code()}),
            )
        })
        .collect();
    Value::Object(map)
}

fn items_json(s: &Scenario) -> Value {
    let map: serde_json::Map<String, Value> = s
        .items
        .iter()
        .map(|i| {
            (
                i.sku.to_string(),
                json!({"name": i.name, "weight_g": i.weight_g, "dims_mm": i.dims_mm, "hazmat": i.hazmat,
                    "ship_alone": i.ship_alone, "methods": i.methods.iter().map(|m| m.as_str()).collect::<Vec<_>>(),
                    "substitutes": i.substitutes.iter().map(|s| s.as_str()).collect::<Vec<_>>()}),
            )
        })
        .collect();
    Value::Object(map)
}

fn inventory_json(s: &Scenario) -> Value {
    let mut by_node: BTreeMap<&str, Vec<Value>> = BTreeMap::new();
    for p in &s.positions {
        let c = &p.counts;
        by_node.entry(p.node_id.as_str()).or_default().push(json!({"sku": p.sku.as_str(), "on_hand": c.on_hand.get(),
            "damaged": c.damaged.get(), "quarantined": c.quarantined.get(), "safety_stock": c.safety_stock.get()}));
    }
    Value::Object(by_node.into_iter().map(|(n, positions)| (n.to_owned(), json!({"positions": positions}))).collect())
}

fn read<T: serde::de::DeserializeOwned>(path: &Path) -> anyhow::Result<T> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let de = &mut serde_json::Deserializer::from_slice(&bytes);
    serde_path_to_error::deserialize(de)
        .map_err(|e| anyhow::anyhow!("{}: at {}: {}", path.display(), e.path(), e.inner()))
}

fn field_errors(what: &str, id: &str, errors: Vec<allot_app::FieldError>) -> anyhow::Error {
    let list: Vec<String> = errors.iter().map(|e| format!("{}: {}", e.field, e.message)).collect();
    anyhow::anyhow!("{what} {id}: {}", list.join("; "))
}

/// Loads a scenario directory (network, catalog, inventory, and carriers and calendars
/// when present) through the ordinary use cases. Items first (substitutes must exist),
/// then nodes, then one snapshot per node, then carriers before the calendars naming them.
/// Orders are not imported yet (order placement arrives with the orders issue).
pub async fn import(app: &App, dir: &Path) -> anyhow::Result<()> {
    let items: BTreeMap<String, PutItem> = read(&dir.join("items.json"))?;
    let nodes: BTreeMap<String, PutNode> = read(&dir.join("nodes.json"))?;
    let inventory: BTreeMap<String, PostSnapshot> = read(&dir.join("inventory.json"))?;
    let mut parsed_items = Vec::with_capacity(items.len());
    for (sku, body) in items {
        let id = Sku::parse(&sku).map_err(|e| anyhow::anyhow!("items.json: SKU {sku:?}: {e}"))?;
        parsed_items.push(body.parse(id).map_err(|e| field_errors("item", &sku, e))?);
    }
    let (plain, with_subs): (Vec<_>, Vec<_>) = parsed_items.into_iter().partition(|i| i.substitutes.is_empty());
    for item in plain.into_iter().chain(with_subs) {
        let sku = item.sku.to_string();
        app.put_item(item).await.map_err(|e| anyhow::anyhow!("item {sku}: {e}"))?;
    }
    let node_count = nodes.len();
    for (id, body) in nodes {
        let node_id = NodeId::parse(&id).map_err(|e| anyhow::anyhow!("nodes.json: node {id:?}: {e}"))?;
        let node = body.parse(node_id).map_err(|e| field_errors("node", &id, e))?;
        app.put_node(node).await.map_err(|e| anyhow::anyhow!("node {id}: {e}"))?;
    }
    let mut positions = 0;
    for (id, body) in inventory {
        let node_id = NodeId::parse(&id).map_err(|e| anyhow::anyhow!("inventory.json: node {id:?}: {e}"))?;
        let snapshot = body.parse().map_err(|e| field_errors("inventory of", &id, e))?;
        positions +=
            app.apply_snapshot(node_id, snapshot).await.map_err(|e| anyhow::anyhow!("inventory of {id}: {e:?}"))?;
    }
    let app_error = |what: &str, id: &str, e: allot_app::AppError| match e {
        allot_app::AppError::Invalid(errors) => field_errors(what, id, errors),
        other => anyhow::anyhow!("{what} {id}: {other}"),
    };
    let mut carriers = 0;
    if dir.join("carriers.json").exists() {
        let docs: BTreeMap<String, CarrierDoc> = read(&dir.join("carriers.json"))?;
        for (id, doc) in docs {
            app.put_carrier(&id, doc).await.map_err(|e| app_error("carrier", &id, e))?;
            carriers += 1;
        }
    }
    let mut calendars = 0;
    if dir.join("calendars.json").exists() {
        let docs: BTreeMap<String, NodeCalendarDoc> = read(&dir.join("calendars.json"))?;
        for (id, doc) in docs {
            app.put_node_calendar(&id, doc).await.map_err(|e| app_error("calendar of", &id, e))?;
            calendars += 1;
        }
    }
    if let Ok(orders) = std::fs::read_to_string(dir.join("orders.jsonl")) {
        // Validate the shape now so a broken file is found early; placement comes later.
        for (i, line) in orders.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            serde_json::from_str::<OrderParam>(line)
                .map_err(|e| anyhow::anyhow!("orders.jsonl line {}: {e}", i + 1))?;
        }
    }
    eprintln!(
        "imported {node_count} nodes, {positions} inventory positions, {carriers} carrier(s) and {calendars} node \
         calendars from {}",
        dir.display()
    );
    Ok(())
}
