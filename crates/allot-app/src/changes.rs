//! Keeping the read model fresh across servers that share one PostgreSQL database.
//!
//! Every write use case queues a [`ChangeNote`] in its transaction (delivered by
//! PostgreSQL after the commit). Each server listens; on a note from another server it
//! re-reads the rows named and applies them to its read model (row versions keep the
//! newest). A lost connection triggers a full reload. Within one server nothing changes:
//! its own writes update its read model right after commit, before it answers.

use allot_core::{NodeId, Sku};
use allot_store::{Store, Tx};

use crate::change_note::ChangeNote;
use crate::read_model::SharedReadModel;
use crate::{App, Result};

impl App {
    pub(crate) fn change(&self) -> ChangeNote {
        ChangeNote { src: self.inner.instance.clone(), ..Default::default() }
    }

    /// Queues the note in the transaction for other servers (PostgreSQL; the store makes it
    /// a no-op on SQLite, where `note` is never built).
    pub(crate) async fn notify(&self, tx: &mut Tx, note: impl FnOnce() -> ChangeNote) -> Result<()> {
        Ok(tx.notify_change(|| note().payload()).await?)
    }

    /// [`App::notify`], and PostgreSQL reuses generic plans for the rest of the transaction
    /// (`Tx::notify_change_reusing_plans`: for transactions of key lookups only).
    pub(crate) async fn notify_reusing_plans(&self, tx: &mut Tx, note: impl FnOnce() -> ChangeNote) -> Result<()> {
        Ok(tx.notify_change_reusing_plans(|| note().payload()).await?)
    }

    pub(crate) async fn refresh_all(&self) -> Result<()> {
        let fresh = SharedReadModel::load(&self.inner.store).await?;
        let loaded = fresh.into_inner();
        self.inner.read.update(|m| {
            for n in loaded.nodes.into_values() {
                m.apply_node(n);
            }
            for i in loaded.items.into_values() {
                m.apply_item(i);
            }
            for p in loaded.positions.into_values().flat_map(|by_node| by_node.into_values()) {
                m.apply_position(p);
            }
            m.policies = loaded.policies;
            m.active_policy = loaded.active_policy;
            m.carriers = loaded.carriers;
            m.calendars = loaded.calendars;
        });
        Ok(())
    }

    pub(crate) async fn apply_note(&self, note: &ChangeNote) -> Result<()> {
        let store: &Store = &self.inner.store;
        if note.nodes.iter().any(|n| n == "*") || note.items.iter().any(|i| i == "*") {
            return self.refresh_all().await;
        }
        if !note.nodes.is_empty() {
            let nodes = store.nodes().await?;
            self.inner.read.update(|m| nodes.into_iter().for_each(|n| m.apply_node(n)));
        }
        for sku in &note.items {
            if let Ok(sku) = Sku::parse(sku)
                && let Some(item) = store.item(&sku).await?
            {
                self.inner.read.update(|m| m.apply_item(item));
            }
        }
        let mut positions = Vec::new();
        if note.all_positions {
            positions = store.positions().await?;
        } else {
            for node in &note.node_positions {
                if let Ok(node) = NodeId::parse(node) {
                    positions.extend(store.node_positions(&node).await?);
                }
            }
            for (node, sku) in &note.positions {
                if let (Ok(node), Ok(sku)) = (NodeId::parse(node), Sku::parse(sku))
                    && let Some(p) = store.position(&node, &sku).await?
                {
                    positions.push(p);
                }
            }
        }
        if !positions.is_empty() {
            self.inner.read.update(|m| positions.into_iter().for_each(|p| m.apply_position(p)));
        }
        if note.policies {
            let fresh = crate::policies::load(store).await?;
            self.inner.read.update(|m| {
                m.policies = fresh.latest;
                m.active_policy = fresh.active;
            });
        }
        if note.promise_data {
            // Calendars are read in their node's time zone.
            let nodes = self.inner.read.read().nodes.clone();
            let fresh = crate::promise_data::load(store, &nodes).await?;
            // Merged by version: a document this server wrote after the read stays.
            self.inner.read.update(|m| {
                for (id, c) in fresh.carriers {
                    if m.carriers.get(&id).is_none_or(|old| old.stored.version < c.stored.version) {
                        m.carriers.insert(id, c);
                    }
                }
                for (id, c) in fresh.calendars {
                    if m.calendars.get(&id).is_none_or(|old| old.stored.version < c.stored.version) {
                        m.calendars.insert(id, c);
                    }
                }
            });
        }
        Ok(())
    }
}
