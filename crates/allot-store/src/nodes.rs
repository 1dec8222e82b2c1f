//! Nodes and items: the network and the catalog. Small tables, written rarely, read
//! whole at start-up into the app's in-memory read model.

use allot_core::{Item, Node, NodeId, Sku};

use crate::rows::{ITEM_COLUMNS, ItemRow, NODE_COLUMNS, NodeRow, StoredItem, StoredNode, join};
use crate::{Result, Store, Tx, on_read, on_tx};

impl Tx {
    /// Creates or replaces a node; returns the new row version.
    pub async fn put_node(&mut self, node: &Node, now_ms: i64) -> Result<i64> {
        let capabilities = join(&node.capabilities, |c| c.as_str());
        let version = on_tx!(self, |conn| {
            sqlx::query_scalar::<_, i64>(
                "INSERT INTO nodes (node_id, node_type, name, lat, lon, time_zone, capabilities, status, \
                   orders_per_day, units_per_day, per_order_minor, per_unit_minor, currency, version, updated_at_ms) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, 1, $14) \
                 ON CONFLICT (node_id) DO UPDATE SET node_type = excluded.node_type, name = excluded.name, \
                   lat = excluded.lat, lon = excluded.lon, time_zone = excluded.time_zone, \
                   capabilities = excluded.capabilities, status = excluded.status, \
                   orders_per_day = excluded.orders_per_day, units_per_day = excluded.units_per_day, \
                   per_order_minor = excluded.per_order_minor, per_unit_minor = excluded.per_unit_minor, \
                   currency = excluded.currency, version = nodes.version + 1, updated_at_ms = excluded.updated_at_ms \
                 RETURNING version",
            )
            .bind(node.id.as_str())
            .bind(node.node_type.as_str())
            .bind(&node.name)
            .bind(node.location.lat())
            .bind(node.location.lon())
            .bind(node.time_zone.as_str())
            .bind(&capabilities)
            .bind(node.status.as_str())
            .bind(node.capacity.orders_per_day.map(i64::from))
            .bind(node.capacity.units_per_day.map(i64::from))
            .bind(node.costs.per_order_minor)
            .bind(node.costs.per_unit_minor)
            .bind(node.costs.currency.code())
            .bind(now_ms)
            .fetch_one(conn)
            .await?
        });
        Ok(version)
    }

    /// Creates or replaces an item; returns the new row version.
    pub async fn put_item(&mut self, item: &Item, now_ms: i64) -> Result<i64> {
        let methods = join(&item.methods, |m| m.as_str());
        let substitutes = join(&item.substitutes, |s| s.as_str());
        let [l, w, h] = item.dims_mm.map(|d| d.map(|v| Some(i64::from(v)))).unwrap_or([None; 3]);
        let version = on_tx!(self, |conn| {
            sqlx::query_scalar::<_, i64>(
                "INSERT INTO items (sku, name, weight_g, length_mm, width_mm, height_mm, hazmat, ship_alone, \
                   methods, substitutes, version, updated_at_ms) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 1, $11) \
                 ON CONFLICT (sku) DO UPDATE SET name = excluded.name, weight_g = excluded.weight_g, \
                   length_mm = excluded.length_mm, width_mm = excluded.width_mm, height_mm = excluded.height_mm, \
                   hazmat = excluded.hazmat, ship_alone = excluded.ship_alone, methods = excluded.methods, \
                   substitutes = excluded.substitutes, version = items.version + 1, updated_at_ms = excluded.updated_at_ms \
                 RETURNING version",
            )
            .bind(item.sku.as_str())
            .bind(&item.name)
            .bind(i64::from(item.weight_g))
            .bind(l)
            .bind(w)
            .bind(h)
            .bind(item.hazmat)
            .bind(item.ship_alone)
            .bind(&methods)
            .bind(&substitutes)
            .bind(now_ms)
            .fetch_one(conn)
            .await?
        });
        Ok(version)
    }

    pub async fn node(&mut self, id: &NodeId) -> Result<Option<StoredNode>> {
        let row = on_tx!(self, |conn| {
            sqlx::query_as::<_, NodeRow>(sqlx::AssertSqlSafe(format!(
                "SELECT {NODE_COLUMNS} FROM nodes WHERE node_id = $1"
            )))
            .bind(id.as_str())
            .fetch_optional(conn)
            .await?
        });
        row.map(StoredNode::try_from).transpose()
    }
}

impl Store {
    /// Every node, ordered by id.
    pub async fn nodes(&self) -> Result<Vec<StoredNode>> {
        let rows = on_read!(self, |pool| {
            sqlx::query_as::<_, NodeRow>(sqlx::AssertSqlSafe(format!(
                "SELECT {NODE_COLUMNS} FROM nodes ORDER BY node_id"
            )))
            .fetch_all(pool)
            .await?
        });
        rows.into_iter().map(StoredNode::try_from).collect()
    }

    /// Every item, ordered by SKU.
    pub async fn items(&self) -> Result<Vec<StoredItem>> {
        let rows = on_read!(self, |pool| {
            sqlx::query_as::<_, ItemRow>(sqlx::AssertSqlSafe(format!("SELECT {ITEM_COLUMNS} FROM items ORDER BY sku")))
                .fetch_all(pool)
                .await?
        });
        rows.into_iter().map(StoredItem::try_from).collect()
    }

    pub async fn item(&self, sku: &Sku) -> Result<Option<StoredItem>> {
        let row = on_read!(self, |pool| {
            sqlx::query_as::<_, ItemRow>(sqlx::AssertSqlSafe(format!(
                "SELECT {ITEM_COLUMNS} FROM items WHERE sku = $1"
            )))
            .bind(sku.as_str())
            .fetch_optional(pool)
            .await?
        });
        row.map(StoredItem::try_from).transpose()
    }
}
