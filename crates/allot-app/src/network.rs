//! Network and catalog use cases: nodes and items.

use allot_core::{Item, Node};
use allot_store::{StoredItem, StoredNode};

use crate::workers::FollowUp;
use crate::{App, AppError, Result};

/// Default and largest page size of list endpoints (a named limit).
pub const PAGE_LIMIT_DEFAULT: usize = 100;
pub const PAGE_LIMIT_MAX: usize = 1000;

/// One page of a list ordered by id, with the cursor (last id) to ask for the next.
#[derive(Debug, Clone)]
pub struct ListPage<T> {
    pub entries: Vec<T>,
    pub next_cursor: Option<String>,
}

fn page<'a, K: AsRef<str> + Ord + 'a, V: Clone + 'a>(
    map: &'a std::collections::BTreeMap<K, V>,
    cursor: Option<&str>,
    limit: usize,
    key: impl Fn(&V) -> String,
) -> ListPage<V> {
    let mut entries: Vec<V> = map
        .iter()
        .filter(|(k, _)| cursor.is_none_or(|c| k.as_ref() > c))
        .take(limit + 1)
        .map(|(_, v)| v.clone())
        .collect();
    let next_cursor = if entries.len() > limit {
        entries.truncate(limit);
        entries.last().map(&key)
    } else {
        None
    };
    ListPage { entries, next_cursor }
}

fn check_limit(limit: Option<usize>) -> Result<usize> {
    match limit.unwrap_or(PAGE_LIMIT_DEFAULT) {
        0 => Err(AppError::invalid("limit", "must be at least 1")),
        n if n > PAGE_LIMIT_MAX => Err(AppError::invalid("limit", format!("must be at most {PAGE_LIMIT_MAX}"))),
        n => Ok(n),
    }
}

impl App {
    /// Creates or replaces a node. Returns it with `true` when it was created.
    pub async fn put_node(&self, node: Node) -> Result<(StoredNode, bool)> {
        let mut tx = self.inner.store.begin().await?;
        let version = tx.put_node(&node, self.now_ms()).await?;
        let note = crate::change_note::ChangeNote { nodes: vec![node.id.to_string()], ..self.change() };
        self.notify(&mut tx, || note).await?;
        tx.commit().await?;
        let stored = StoredNode { node, version };
        self.inner.read.update(|m| m.apply_node(stored.clone()));
        // A paused or closed node's open work moves elsewhere: one batch now, the
        // background sweep does the rest.
        if !stored.node.is_active() {
            self.follow_up_later(FollowUp { disrupted_nodes: true, ..FollowUp::default() });
        }
        Ok((stored, version == 1))
    }

    pub fn node(&self, id: &str) -> Result<StoredNode> {
        self.inner.read.read().node(id).cloned().ok_or_else(|| AppError::NotFound { what: "node", id: id.to_owned() })
    }

    pub fn nodes(&self, cursor: Option<&str>, limit: Option<usize>) -> Result<ListPage<StoredNode>> {
        let limit = check_limit(limit)?;
        Ok(page(&self.inner.read.read().nodes, cursor, limit, |n| n.node.id.to_string()))
    }

    /// Creates or replaces an item. Substitutes must name existing items (or itself is
    /// refused). Returns it with `true` when it was created.
    pub async fn put_item(&self, item: Item) -> Result<(StoredItem, bool)> {
        {
            let read = self.inner.read.read();
            let errors: Vec<_> = item
                .substitutes
                .iter()
                .enumerate()
                .filter_map(|(i, s)| {
                    let field = format!("substitutes[{i}]");
                    if *s == item.sku {
                        Some(crate::FieldError::new(field, "an item cannot substitute itself"))
                    } else if read.item(s.as_str()).is_none() {
                        Some(crate::FieldError::new(field, format!("unknown SKU {s}")))
                    } else {
                        None
                    }
                })
                .collect();
            if !errors.is_empty() {
                return Err(AppError::Invalid(errors));
            }
        }
        let mut tx = self.inner.store.begin().await?;
        let version = tx.put_item(&item, self.now_ms()).await?;
        let note = crate::change_note::ChangeNote { items: vec![item.sku.to_string()], ..self.change() };
        self.notify(&mut tx, || note).await?;
        tx.commit().await?;
        let stored = StoredItem { item, version };
        self.inner.read.update(|m| m.apply_item(stored.clone()));
        Ok((stored, version == 1))
    }

    pub fn item(&self, sku: &str) -> Result<StoredItem> {
        self.inner.read.read().item(sku).cloned().ok_or_else(|| AppError::NotFound { what: "item", id: sku.to_owned() })
    }

    pub fn items(&self, cursor: Option<&str>, limit: Option<usize>) -> Result<ListPage<StoredItem>> {
        let limit = check_limit(limit)?;
        Ok(page(&self.inner.read.read().items, cursor, limit, |i| i.item.sku.to_string()))
    }
}
