//! Promise data use cases (issue 5): carriers and node calendars, validated
//! ([`crate::promise_doc`]), stored as versioned documents, held parsed in the read
//! model for the promise calculator.
//!
//! Limitation: other servers on the same PostgreSQL database see a changed carrier or
//! calendar after their restart (change notes do not carry documents yet).

use std::sync::Arc;

use allot_core::promise::NodeCalendar;
use allot_store::{DocumentKind, Store, StoredDocument};

use crate::promise_doc::{CarrierDoc, CarrierService, NodeCalendarDoc, carrier_services, node_calendar};
use crate::read_model::ReadModel;
use crate::{App, AppError, FieldError, Result};

/// A carrier as stored, with its services ready for the calculator.
#[derive(Debug, Clone)]
pub struct LoadedCarrier {
    pub stored: StoredDocument,
    pub services: Vec<CarrierService>,
}

/// A node calendar as stored, parsed.
#[derive(Debug, Clone)]
pub struct LoadedCalendar {
    pub stored: StoredDocument,
    pub calendar: NodeCalendar,
    pub carrier_services: Vec<String>,
}

fn corrupt(what: &'static str, id: &str, e: impl std::fmt::Debug) -> AppError {
    AppError::Store(allot_store::StoreError::Corrupt { table: what, detail: format!("{id}: {e:?}") })
}

pub(crate) async fn load_into(store: &Store, model: &mut ReadModel) -> Result<()> {
    for d in store.documents(DocumentKind::Carrier).await? {
        let doc: CarrierDoc = serde_json::from_str(&d.document).map_err(|e| corrupt("carriers", &d.id, e))?;
        let services = carrier_services(&d.id, &doc).map_err(|e| corrupt("carriers", &d.id, e))?;
        model.carriers.insert(d.id.clone(), Arc::new(LoadedCarrier { stored: d, services }));
    }
    for d in store.documents(DocumentKind::NodeCalendar).await? {
        let Some(node) = model.nodes.get(d.id.as_str()) else { continue };
        let doc: NodeCalendarDoc =
            serde_json::from_str(&d.document).map_err(|e| corrupt("node_calendars", &d.id, e))?;
        let (calendar, carrier_services) =
            node_calendar(node.node.time_zone.as_str(), &doc).map_err(|e| corrupt("node_calendars", &d.id, e))?;
        model.calendars.insert(d.id.clone(), Arc::new(LoadedCalendar { stored: d, calendar, carrier_services }));
    }
    Ok(())
}

fn id_ok(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

impl App {
    /// Creates or replaces a carrier; answers it with `true` when created.
    pub async fn put_carrier(&self, id: &str, doc: CarrierDoc) -> Result<(Arc<LoadedCarrier>, bool)> {
        if !id_ok(id) {
            return Err(AppError::invalid("carrier_id", "1–64 characters of A–Z, a–z, 0–9, - _"));
        }
        let services = carrier_services(id, &doc).map_err(AppError::Invalid)?;
        let text = serde_json::to_string(&doc).map_err(|e| AppError::invalid("carrier", e))?;
        let now = self.now_ms();
        let mut tx = self.inner.store.begin().await?;
        let version = tx.put_document(DocumentKind::Carrier, id, &text, now).await?;
        tx.commit().await?;
        let stored = StoredDocument { id: id.to_owned(), document: text, version, updated_at_ms: now };
        let loaded = Arc::new(LoadedCarrier { stored, services });
        self.inner.read.update(|m| {
            m.carriers.insert(id.to_owned(), loaded.clone());
        });
        Ok((loaded, version == 1))
    }

    pub fn carrier(&self, id: &str) -> Result<Arc<LoadedCarrier>> {
        self.inner
            .read
            .read()
            .carriers
            .get(id)
            .cloned()
            .ok_or_else(|| AppError::NotFound { what: "carrier", id: id.to_owned() })
    }

    /// Sets a node's calendar (hours in the node's time zone). Every carrier service it
    /// names must exist.
    pub async fn put_node_calendar(&self, node_id: &str, doc: NodeCalendarDoc) -> Result<(Arc<LoadedCalendar>, bool)> {
        let tz = self.node(node_id)?.node.time_zone.as_str().to_owned();
        let (calendar, services) = node_calendar(&tz, &doc).map_err(AppError::Invalid)?;
        {
            let read = self.inner.read.read();
            let known = |key: &str| read.carriers.values().any(|c| c.services.iter().any(|s| s.key == key));
            let unknown: Vec<FieldError> = services
                .iter()
                .enumerate()
                .filter(|(_, s)| !known(s))
                .map(|(i, s)| FieldError::new(format!("carrier_services[{i}]"), format!("unknown carrier service {s}")))
                .collect();
            if !unknown.is_empty() {
                return Err(AppError::Invalid(unknown));
            }
        }
        let text = serde_json::to_string(&doc).map_err(|e| AppError::invalid("calendar", e))?;
        let now = self.now_ms();
        let mut tx = self.inner.store.begin().await?;
        let version = tx.put_document(DocumentKind::NodeCalendar, node_id, &text, now).await?;
        tx.commit().await?;
        let stored = StoredDocument { id: node_id.to_owned(), document: text, version, updated_at_ms: now };
        let loaded = Arc::new(LoadedCalendar { stored, calendar, carrier_services: services });
        self.inner.read.update(|m| {
            m.calendars.insert(node_id.to_owned(), loaded.clone());
        });
        Ok((loaded, version == 1))
    }

    pub fn node_calendar(&self, node_id: &str) -> Result<Arc<LoadedCalendar>> {
        self.node(node_id)?;
        self.inner
            .read
            .read()
            .calendars
            .get(node_id)
            .cloned()
            .ok_or_else(|| AppError::NotFound { what: "node calendar", id: node_id.to_owned() })
    }
}
