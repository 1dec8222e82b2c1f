//! A network held in memory: for the simulator, the benchmarks and tests (the server
//! implements [`SourcingNetwork`] over its own read model instead).

use std::collections::HashMap;

use crate::catalog::Item;
use std::sync::Arc;

use crate::ids::Sku;
use crate::inventory::Position;
use crate::network::Node;
use crate::scenario::Scenario;
use crate::sourcing::engine::{Holding, NodeState, SourcingNetwork};
use crate::sourcing::table::NodeTable;

#[derive(Debug, Clone, Default)]
pub struct MemoryNetwork {
    /// Fixed at construction: the node table describes them.
    nodes: Vec<Node>,
    pub orders_today: Vec<u32>,
    pub units_today: Vec<u32>,
    pub items: HashMap<Sku, Item>,
    pub holdings: HashMap<Sku, Vec<Holding>>,
    table: Arc<NodeTable>,
}

impl MemoryNetwork {
    pub fn new(nodes: Vec<Node>, items: Vec<Item>, positions: &[Position]) -> MemoryNetwork {
        let index: HashMap<_, _> = nodes.iter().enumerate().map(|(i, n)| (n.id.clone(), i)).collect();
        let mut holdings: HashMap<Sku, Vec<Holding>> = HashMap::new();
        for p in positions {
            if let Some(&node) = index.get(&p.node_id) {
                let atp = p.counts.atp();
                if atp.get() > 0 {
                    holdings.entry(p.sku.clone()).or_default().push(Holding { node, atp, aging: crate::Qty::ZERO });
                }
            }
        }
        let n = nodes.len();
        let table = Arc::new(NodeTable::new(&nodes));
        MemoryNetwork {
            table,
            nodes,
            orders_today: vec![0; n],
            units_today: vec![0; n],
            items: items.into_iter().map(|i| (i.sku.clone(), i)).collect(),
            holdings,
        }
    }

    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    pub fn from_scenario(s: &Scenario) -> MemoryNetwork {
        MemoryNetwork::new(s.nodes.clone(), s.items.clone(), &s.positions)
    }
}

impl SourcingNetwork for MemoryNetwork {
    fn node_count(&self) -> usize {
        self.nodes.len()
    }

    fn node(&self, index: usize) -> NodeState<'_> {
        NodeState {
            node: &self.nodes[index],
            orders_today: self.orders_today[index],
            units_today: self.units_today[index],
        }
    }

    fn node_states<'a>(&'a self, out: &mut Vec<NodeState<'a>>) {
        if self.orders_today.len() != self.nodes.len() || self.units_today.len() != self.nodes.len() {
            // (Then `node` fails where its lists fall short, as it would.)
            out.extend((0..self.nodes.len()).map(|i| self.node(i)));
            return;
        }
        let today = self.orders_today.iter().zip(&self.units_today);
        out.extend(self.nodes.iter().zip(today).map(|(node, (&orders_today, &units_today))| NodeState {
            node,
            orders_today,
            units_today,
        }));
    }

    fn item(&self, sku: &Sku) -> Option<&Item> {
        self.items.get(sku)
    }

    fn holdings(&self, sku: &Sku, out: &mut Vec<Holding>) {
        if let Some(h) = self.holdings.get(sku) {
            out.extend_from_slice(h);
        }
    }

    fn node_table(&self) -> Option<&Arc<NodeTable>> {
        Some(&self.table)
    }
}
