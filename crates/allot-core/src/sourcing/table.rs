//! What the engine reads about every node on every decision, laid out once per network
//! version: node ids side by side (shared with the explanations, which keep the table
//! alive instead of copying ids), locations on the sphere (distance bands without
//! trigonometry) and capabilities as bits.
//!
//! A network builds a [`NodeTable`] when its nodes change and hands it out through
//! [`SourcingNetwork::node_table`](super::SourcingNetwork::node_table). Invariant: entry
//! `i` describes the node `node(i)` returns — same id, location and capabilities.

use crate::geo::SpherePoint;
use crate::ids::NodeId;
use crate::network::{Capability, Node};

#[derive(Debug, Clone, Default, PartialEq)]
pub struct NodeTable {
    /// Node ids, concatenated; node `i`'s id ends at `ends[i]`.
    ids: String,
    ends: Vec<usize>,
    points: Vec<SpherePoint>,
    /// Per node, bit `capability_bit(c)` for each capability `c` it has.
    capabilities: Vec<u32>,
}

impl NodeTable {
    pub fn new(nodes: &[Node]) -> NodeTable {
        let mut table = NodeTable::ids_only(nodes.iter().map(|n| &n.id), nodes.len());
        table.points = nodes.iter().map(|n| SpherePoint::new(n.location)).collect();
        table.capabilities =
            nodes.iter().map(|n| n.capabilities.iter().fold(0, |bits, c| bits | capability_bit(*c))).collect();
        table
    }

    /// A table of ids alone (no points, no capabilities): what the engine builds for a
    /// decision when the network keeps no table.
    pub(crate) fn ids_only<'a>(ids: impl Iterator<Item = &'a NodeId>, nodes: usize) -> NodeTable {
        let mut text = String::with_capacity(nodes * 12);
        let mut ends = Vec::with_capacity(nodes);
        for id in ids {
            text.push_str(id.as_str());
            ends.push(text.len());
        }
        NodeTable { ids: text, ends, points: Vec::new(), capabilities: Vec::new() }
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The id of node `i`, as text.
    pub(crate) fn id(&self, i: usize) -> Option<&str> {
        let end = *self.ends.get(i)?;
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        self.ids.get(start..end)
    }

    /// Sphere points by node index (empty for a table of ids alone).
    pub(crate) fn points(&self) -> &[SpherePoint] {
        &self.points
    }

    /// Capability bits by node index (empty for a table of ids alone).
    pub(crate) fn capabilities(&self) -> &[u32] {
        &self.capabilities
    }

    /// Whether the table describes `nodes` (for debug assertions and tests).
    pub(crate) fn describes(&self, i: usize, node: &Node) -> bool {
        self.id(i) == Some(node.id.as_str())
            && self.points.get(i).is_none_or(|p| p.point() == node.location)
            && self
                .capabilities
                .get(i)
                .is_none_or(|bits| *bits == node.capabilities.iter().fold(0, |b, c| b | capability_bit(*c)))
    }
}

/// The bit of a capability in [`NodeTable`] capability sets.
pub(crate) fn capability_bit(c: Capability) -> u32 {
    1 << (c as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::{ScenarioSpec, generate};

    #[test]
    fn a_table_describes_every_node_it_was_built_from() {
        let s = generate(&ScenarioSpec { dc_cities: Vec::new(), dcs: 3, stores: 20, skus: 5, seed: 3 });
        let table = NodeTable::new(&s.nodes);
        assert_eq!(table.len(), s.nodes.len());
        for (i, n) in s.nodes.iter().enumerate() {
            assert!(table.describes(i, n), "node {i}");
            for c in Capability::ALL {
                assert_eq!(table.capabilities()[i] & capability_bit(*c) != 0, n.has(*c), "node {i} {c:?}");
            }
        }
        assert_eq!(table.id(s.nodes.len()), None);
    }
}
