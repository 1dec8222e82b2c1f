//! Loading a generated scenario (the demo network) through the ordinary use cases, and
//! the demo promise data (a carrier and node calendars) that lets such a network answer
//! `POST /v1/promises`. Everything goes through the same validation as the API; nothing
//! here reads a clock or randomness, so the data is the same on every run.

use std::collections::BTreeMap;

use allot_core::inventory::SnapshotEntry;
use allot_core::network::{Node, NodeType};
use allot_core::scenario::Scenario;

use crate::promise_doc::{BandDoc, CarrierDoc, NodeCalendarDoc, RateDoc, ServiceDoc};
use crate::{App, Result, SnapshotInput};

/// What loading a scenario did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadSummary {
    pub nodes: usize,
    pub items: usize,
    pub positions: usize,
    pub carriers: usize,
    pub calendars: usize,
    /// False when the database already held a network and nothing was written.
    pub loaded: bool,
}

impl App {
    /// Loads a scenario and its demo promise data ([`demo_promise_data`]) if the database
    /// holds no node yet (so running the demo twice changes nothing the second time). Items
    /// go first so that substitutes resolve; each node's stock is one snapshot.
    pub async fn load_scenario_if_empty(&self, scenario: &Scenario) -> Result<LoadSummary> {
        let existing = self.nodes(None, Some(1))?;
        if !existing.entries.is_empty() {
            return Ok(LoadSummary { nodes: 0, items: 0, positions: 0, carriers: 0, calendars: 0, loaded: false });
        }
        for item in scenario.items.iter().filter(|i| i.substitutes.is_empty()) {
            self.put_item(item.clone()).await?;
        }
        for item in scenario.items.iter().filter(|i| !i.substitutes.is_empty()) {
            self.put_item(item.clone()).await?;
        }
        for node in &scenario.nodes {
            self.put_node(node.clone()).await?;
        }
        let mut by_node: BTreeMap<_, Vec<SnapshotEntry>> = BTreeMap::new();
        for p in &scenario.positions {
            by_node.entry(p.node_id.clone()).or_default().push(SnapshotEntry {
                sku: p.sku.clone(),
                on_hand: p.counts.on_hand,
                damaged: p.counts.damaged,
                quarantined: p.counts.quarantined,
                safety_stock: Some(p.counts.safety_stock),
            });
        }
        let mut positions = 0;
        for (node_id, entries) in by_node {
            positions += self.apply_snapshot(node_id, SnapshotInput { entries, seq: None }).await?;
        }
        let (carriers, calendars) = self.load_promise_data(&demo_promise_data(&scenario.nodes)).await?;
        Ok(LoadSummary {
            nodes: scenario.nodes.len(),
            items: scenario.items.len(),
            positions,
            carriers,
            calendars,
            loaded: true,
        })
    }

    /// Puts carriers, then node calendars (which name the carriers' services), through
    /// [`App::put_carrier`] and [`App::put_node_calendar`]; answers how many of each.
    pub async fn load_promise_data(&self, data: &PromiseData) -> Result<(usize, usize)> {
        for (id, doc) in &data.carriers {
            self.put_carrier(id, doc.clone()).await?;
        }
        for (node_id, doc) in &data.calendars {
            self.put_node_calendar(node_id, doc.clone()).await?;
        }
        Ok((data.carriers.len(), data.calendars.len()))
    }
}

/// The carrier of the demo promise data (`allot demo`, generated scenarios).
pub const DEMO_CARRIER_ID: &str = "parcel";

/// Delivery holidays of the demo carrier and closing days of the demo nodes (US, 2026–2027).
const DEMO_HOLIDAYS: [&str; 8] =
    ["2026-11-26", "2026-12-25", "2027-01-01", "2027-05-31", "2027-07-05", "2027-09-06", "2027-11-25", "2027-12-24"];

/// Carriers and node calendars that let a network answer promises: one parcel carrier
/// (standard, express, next-day; distance-banded transit; afternoon cut-offs; Monday–Friday
/// delivery) and a calendar for every node by its type. The same for the same nodes.
#[derive(Debug, Clone)]
pub struct PromiseData {
    pub carriers: Vec<(String, CarrierDoc)>,
    /// (node id, calendar), in the nodes' order.
    pub calendars: Vec<(String, NodeCalendarDoc)>,
}

fn service(code: &str, level: &str, cutoff: &str, transit: &[(f64, u8)], rates: &[(f64, i64, i64)]) -> ServiceDoc {
    ServiceDoc {
        code: code.to_owned(),
        service_level: level.to_owned(),
        transit_days: transit.iter().map(|&(max_km, days)| BandDoc { max_km, days }).collect(),
        pickup_cutoff_local: cutoff.to_owned(),
        delivery_weekdays: ["mon", "tue", "wed", "thu", "fri"].iter().map(|d| (*d).to_owned()).collect(),
        holidays: DEMO_HOLIDAYS.iter().map(|d| (*d).to_owned()).collect(),
        max_package_weight_g: Some(68_000),
        rates: rates
            .iter()
            .map(|&(max_km, base_minor, per_kg_minor)| RateDoc { max_km, base_minor, per_kg_minor })
            .collect(),
    }
}

fn hours(days: &[(&str, &str, &str)]) -> BTreeMap<String, [String; 2]> {
    days.iter().map(|(d, open, close)| ((*d).to_owned(), [(*open).to_owned(), (*close).to_owned()])).collect()
}

/// The demo promise data for `nodes`: DCs (and other warehouses) work long hours including
/// Saturday and hand to every service; stores keep retail hours, ship standard and express
/// and prepare pickups.
pub fn demo_promise_data(nodes: &[Node]) -> PromiseData {
    let parcel = CarrierDoc {
        name: "Demo Parcel".to_owned(),
        services: vec![
            service(
                "ground",
                "standard",
                "17:00",
                &[(300.0, 1), (800.0, 2), (1600.0, 3), (2800.0, 4), (6000.0, 5)],
                &[(300.0, 650, 60), (1600.0, 850, 90), (6000.0, 1100, 120)],
            ),
            service("express", "express", "16:00", &[(800.0, 1), (6000.0, 2)], &[(6000.0, 1800, 180)]),
            service("next_day", "next_day", "15:00", &[(6000.0, 1)], &[(6000.0, 3200, 250)]),
        ],
    };
    let all = |codes: &[&str]| codes.iter().map(|c| format!("{DEMO_CARRIER_ID}:{c}")).collect::<Vec<_>>();
    let holidays: Vec<String> = DEMO_HOLIDAYS.iter().map(|d| (*d).to_owned()).collect();
    let calendars = nodes
        .iter()
        .map(|n| {
            let doc = match n.node_type {
                NodeType::Store | NodeType::DarkStore | NodeType::Locker => NodeCalendarDoc {
                    hours: hours(&[
                        ("mon", "09:00", "21:00"),
                        ("tue", "09:00", "21:00"),
                        ("wed", "09:00", "21:00"),
                        ("thu", "09:00", "21:00"),
                        ("fri", "09:00", "21:00"),
                        ("sat", "09:00", "21:00"),
                        ("sun", "10:00", "18:00"),
                    ]),
                    holidays: holidays[..2].to_vec(),
                    processing_minutes: 120,
                    pickup_ready_minutes: 60,
                    carrier_services: all(&["ground", "express"]),
                    same_day_slots: None,
                },
                NodeType::Dc | NodeType::Dropship | NodeType::ThirdPartyLogistics | NodeType::ReturnCenter => {
                    NodeCalendarDoc {
                        hours: hours(&[
                            ("mon", "06:00", "22:00"),
                            ("tue", "06:00", "22:00"),
                            ("wed", "06:00", "22:00"),
                            ("thu", "06:00", "22:00"),
                            ("fri", "06:00", "22:00"),
                            ("sat", "08:00", "16:00"),
                        ]),
                        holidays: holidays.clone(),
                        processing_minutes: 90,
                        pickup_ready_minutes: 0,
                        carrier_services: all(&["ground", "express", "next_day"]),
                        same_day_slots: None,
                    }
                }
            };
            (n.id.to_string(), doc)
        })
        .collect();
    PromiseData { carriers: vec![(DEMO_CARRIER_ID.to_owned(), parcel)], calendars }
}
