//! Loading a generated scenario (the demo network) through the ordinary use cases.

use std::collections::BTreeMap;

use allot_core::inventory::SnapshotEntry;
use allot_core::scenario::Scenario;

use crate::{App, Result, SnapshotInput};

/// What loading a scenario did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadSummary {
    pub nodes: usize,
    pub items: usize,
    pub positions: usize,
    /// False when the database already held a network and nothing was written.
    pub loaded: bool,
}

impl App {
    /// Loads a scenario if the database holds no node yet (so running the demo twice
    /// changes nothing the second time). Items go first so that substitutes resolve;
    /// each node's stock is one snapshot.
    pub async fn load_scenario_if_empty(&self, scenario: &Scenario) -> Result<LoadSummary> {
        let existing = self.nodes(None, Some(1))?;
        if !existing.entries.is_empty() {
            return Ok(LoadSummary { nodes: 0, items: 0, positions: 0, loaded: false });
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
        Ok(LoadSummary { nodes: scenario.nodes.len(), items: scenario.items.len(), positions, loaded: true })
    }
}
