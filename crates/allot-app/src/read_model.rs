//! The in-memory read model: nodes, items and positions, loaded at start-up and updated
//! after every committed write. Hot reads (availability, positions, node and item
//! lookups) are answered from here without touching the database.
//!
//! Every entry carries its row version; [`ReadModel`] only accepts a newer version, so
//! two concurrent writes whose commits and cache updates interleave still leave the
//! newest state.
//!
//! On PostgreSQL with several servers, each server refreshes its read model from the
//! others' change notes (`changes.rs`).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, OnceLock, RwLock, RwLockReadGuard};

use allot_core::sourcing::{Holding, NodeState, NodeTable, SourcingNetwork};
use allot_core::{Item, Node, NodeId, Sku};
use allot_store::{Store, StoredItem, StoredNode, StoredPosition};

use crate::Result;

#[derive(Default)]
pub struct ReadModel {
    pub(crate) nodes: BTreeMap<NodeId, StoredNode>,
    /// Nodes by dense index (the sourcing engine addresses nodes by index); a node keeps
    /// its index for the life of the process.
    pub(crate) node_slots: Vec<Node>,
    /// (FxHash: node ids are set by administrators, and every quote looks them up once
    /// per holding.)
    pub(crate) node_slot: HashMap<NodeId, usize, allot_core::hash::FxBuildHasher>,
    /// The engine's per-network node table (ids, sphere points, capability bits), built on
    /// first use after the nodes last changed.
    node_table: OnceLock<Arc<NodeTable>>,
    /// Parsed policies (latest version per name) and the active one.
    pub(crate) policies: HashMap<String, std::sync::Arc<crate::policies::LoadedPolicy>>,
    pub(crate) active_policy: Option<std::sync::Arc<crate::policies::LoadedPolicy>>,
    pub(crate) items: BTreeMap<Sku, StoredItem>,
    /// SKU → node → position: availability asks by SKU.
    pub(crate) positions: HashMap<Sku, HashMap<NodeId, StoredPosition>>,
    /// Promising: carriers (id → stored document and its services) and node calendars.
    pub(crate) carriers: BTreeMap<String, Arc<crate::promise_data::LoadedCarrier>>,
    pub(crate) calendars: BTreeMap<String, Arc<crate::promise_data::LoadedCalendar>>,
    /// Per node slot, the fulfillment orders and units assigned on its local day (see
    /// `node_load`); slots beyond the list have none.
    pub(crate) node_load: Vec<(u32, u32)>,
}

impl ReadModel {
    pub fn node(&self, id: &str) -> Option<&StoredNode> {
        self.nodes.get(id)
    }

    pub fn item(&self, sku: &str) -> Option<&StoredItem> {
        self.items.get(sku)
    }

    pub fn position(&self, node_id: &str, sku: &str) -> Option<&StoredPosition> {
        self.positions.get(sku).and_then(|by_node| by_node.get(node_id))
    }

    /// The positions of a SKU at active nodes, with their nodes (any order).
    pub(crate) fn active_positions<'a>(
        &'a self,
        sku: &Sku,
    ) -> impl Iterator<Item = (&'a Node, &'a StoredPosition)> + 'a {
        self.positions
            .get(sku)
            .into_iter()
            .flat_map(|by_node| by_node.values())
            .filter_map(|p| Some((&self.nodes.get(&p.position.node_id)?.node, p)))
            .filter(|(node, _)| node.is_active())
    }

    pub(crate) fn apply_node(&mut self, n: StoredNode) {
        match self.nodes.get(&n.node.id) {
            Some(old) if old.version >= n.version => {}
            _ => {
                match self.node_slot.get(&n.node.id) {
                    Some(&i) => self.node_slots[i] = n.node.clone(),
                    None => {
                        self.node_slot.insert(n.node.id.clone(), self.node_slots.len());
                        self.node_slots.push(n.node.clone());
                    }
                }
                self.nodes.insert(n.node.id.clone(), n);
                self.node_table = OnceLock::new();
            }
        }
    }

    pub(crate) fn apply_item(&mut self, i: StoredItem) {
        match self.items.get(&i.item.sku) {
            Some(old) if old.version >= i.version => {}
            _ => {
                self.items.insert(i.item.sku.clone(), i);
            }
        }
    }

    pub(crate) fn apply_position(&mut self, p: StoredPosition) {
        let by_node = self.positions.entry(p.position.sku.clone()).or_default();
        match by_node.get(&p.position.node_id) {
            Some(old) if old.version >= p.version => {}
            _ => {
                by_node.insert(p.position.node_id.clone(), p);
            }
        }
    }
}

/// The engine reads the network straight from the read model (under its read lock),
/// with each node's assignments today as of the last refresh (`node_load`).
impl SourcingNetwork for ReadModel {
    fn node_count(&self) -> usize {
        self.node_slots.len()
    }

    fn node(&self, index: usize) -> NodeState<'_> {
        let (orders_today, units_today) = self.node_load.get(index).copied().unwrap_or((0, 0));
        NodeState { node: &self.node_slots[index], orders_today, units_today }
    }

    fn item(&self, sku: &Sku) -> Option<&Item> {
        self.items.get(sku).map(|i| &i.item)
    }

    fn node_table(&self) -> Option<&Arc<NodeTable>> {
        Some(self.node_table.get_or_init(|| Arc::new(NodeTable::new(&self.node_slots))))
    }

    fn holdings(&self, sku: &Sku, out: &mut Vec<Holding>) {
        let Some(by_node) = self.positions.get(sku) else { return };
        for (node_id, p) in by_node {
            let atp = p.position.counts.atp();
            if atp.get() == 0 {
                continue;
            }
            if let Some(&node) = self.node_slot.get(node_id) {
                out.push(Holding { node, atp, aging: allot_core::Qty::ZERO });
            }
        }
    }
}

pub(crate) struct SharedReadModel(RwLock<ReadModel>);

impl SharedReadModel {
    pub(crate) async fn load(store: &Store) -> Result<SharedReadModel> {
        let mut model = ReadModel::default();
        for n in store.nodes().await? {
            model.apply_node(n);
        }
        for i in store.items().await? {
            model.apply_item(i);
        }
        for p in store.positions().await? {
            model.apply_position(p);
        }
        let policies = crate::policies::load(store).await?;
        (model.policies, model.active_policy) = (policies.latest, policies.active);
        let promise = crate::promise_data::load(store, &model.nodes).await?;
        (model.carriers, model.calendars) = (promise.carriers, promise.calendars);
        Ok(SharedReadModel(RwLock::new(model)))
    }

    pub(crate) fn into_inner(self) -> ReadModel {
        self.0.into_inner().unwrap_or_else(|poison| poison.into_inner())
    }

    pub(crate) fn read(&self) -> RwLockReadGuard<'_, ReadModel> {
        self.0.read().unwrap_or_else(|poison| poison.into_inner())
    }

    pub(crate) fn update(&self, f: impl FnOnce(&mut ReadModel)) {
        f(&mut self.0.write().unwrap_or_else(|poison| poison.into_inner()));
    }
}
