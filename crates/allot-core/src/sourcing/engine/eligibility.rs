//! Which nodes may serve which lines of an order: the order's stock rows and each node's
//! distance to a group's destination. Reads the network, never costs or searches anything.
//! A node's drop reason is the first failing one, in the documented order.

use crate::catalog::FulfillmentMethod;
use crate::geo::{ChordLimit, GeoPoint};
use crate::ids::Sku;

use super::decision::Distance;

pub(super) fn is_ship_type(m: FulfillmentMethod) -> bool {
    matches!(m, FulfillmentMethod::Ship | FulfillmentMethod::SameDay | FulfillmentMethod::ShipToStore)
}

/// Stock of the order's distinct SKUs at the nodes holding any: one row per such node,
/// (atp, aging) per SKU in `skus` order.
pub(super) struct OrderStock<'a> {
    pub(super) skus: Vec<&'a Sku>,
    /// Per node index: its row, or `NO_ROW` (row 0, all zeros).
    pub(super) row_of: Vec<u32>,
    pub(super) rows: Vec<(u64, u64)>,
}

pub(super) const NO_ROW: u32 = 0;

impl OrderStock<'_> {
    /// The stock of node `node` (zeros when it holds none of the SKUs).
    pub(super) fn row(&self, node: usize) -> &[(u64, u64)] {
        let k = self.skus.len();
        match self.row_of.get(node) {
            Some(&r) => self.rows.get(r as usize * k..(r as usize + 1) * k).unwrap_or(&[]),
            None => &[],
        }
    }

    pub(super) fn index(&self, sku: &Sku) -> Option<usize> {
        self.skus.iter().position(|s| *s == sku)
    }

    pub(super) fn at(&self, sku: &Sku, node: usize) -> (u64, u64) {
        self.index(sku).and_then(|k| self.row(node).get(k).copied()).unwrap_or((0, 0))
    }
}

/// A node's distance to a group's destination, computed exactly only when needed.
pub(super) struct NodeDistance {
    pub(super) dest: Option<GeoPoint>,
    pub(super) at: GeoPoint,
    /// Squared chord to the destination, when the network keeps sphere points.
    pub(super) chord2: Option<f64>,
    pub(super) km: Option<f64>,
}

impl NodeDistance {
    /// Great-circle km (infinite without a destination).
    pub(super) fn km(&mut self) -> f64 {
        match self.dest {
            None => f64::INFINITY,
            Some(d) => *self.km.get_or_insert_with(|| d.distance_km(self.at)),
        }
    }

    /// `self.km() <= limit_km`, through the chord when it can tell.
    pub(super) fn within(&mut self, limit: ChordLimit, limit_km: f64) -> bool {
        match self.chord2.and_then(|c| limit.decide(c)) {
            Some(within) => within,
            None => self.km() <= limit_km,
        }
    }

    /// The distance the explanation reports (the same km, computed when read if not yet:
    /// then the node has a sphere point in the table).
    pub(super) fn reported(&self) -> (Distance, f64) {
        match (self.dest, self.km) {
            (None, _) => (Distance::None, 0.0),
            (Some(_), Some(km)) => (Distance::Km, km),
            (Some(_), None) => (Distance::FromTable, 0.0),
        }
    }
}
