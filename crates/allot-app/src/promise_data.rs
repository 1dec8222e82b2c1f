//! Promise data as the read model holds it: carriers with their services ready for the
//! promise calculator, and node calendars parsed in their node's time zone.
//!
//! What it owns: the loaded forms and reading them all from the store (start-up, and a
//! change note from another server). What it must never do: validate or write documents
//! (that is `promising`, through `promise_doc`).

use std::sync::Arc;

use allot_core::promise::NodeCalendar;
use allot_store::{DocumentKind, Store, StoredDocument};

use crate::promise_doc::{CarrierDoc, CarrierService, NodeCalendarDoc, carrier_services, node_calendar};
use crate::{AppError, Result};

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
    /// Same-day deliveries per local day (None: the node sends none).
    pub same_day_slots: Option<u32>,
}

fn corrupt(what: &'static str, id: &str, e: impl std::fmt::Debug) -> AppError {
    AppError::Store(allot_store::StoreError::Corrupt { table: what, detail: format!("{id}: {e:?}") })
}

/// Carriers and node calendars as the read model holds them.
#[derive(Default)]
pub(crate) struct PromiseData {
    pub carriers: std::collections::BTreeMap<String, Arc<LoadedCarrier>>,
    pub calendars: std::collections::BTreeMap<String, Arc<LoadedCalendar>>,
}

/// Reads and parses every carrier, and the calendar of every node in `nodes` (a calendar
/// is read in its node's time zone; one of an unknown node is left out).
pub(crate) async fn load(
    store: &Store,
    nodes: &std::collections::BTreeMap<allot_core::NodeId, allot_store::StoredNode>,
) -> Result<PromiseData> {
    let mut data = PromiseData::default();
    for d in store.documents(DocumentKind::Carrier).await? {
        let doc: CarrierDoc = serde_json::from_str(&d.document).map_err(|e| corrupt("carriers", &d.id, e))?;
        let services = carrier_services(&d.id, &doc).map_err(|e| corrupt("carriers", &d.id, e))?;
        data.carriers.insert(d.id.clone(), Arc::new(LoadedCarrier { stored: d, services }));
    }
    for d in store.documents(DocumentKind::NodeCalendar).await? {
        let Some(node) = nodes.get(d.id.as_str()) else { continue };
        let doc: NodeCalendarDoc =
            serde_json::from_str(&d.document).map_err(|e| corrupt("node_calendars", &d.id, e))?;
        let (calendar, carrier_services) =
            node_calendar(node.node.time_zone.as_str(), &doc).map_err(|e| corrupt("node_calendars", &d.id, e))?;
        let same_day_slots = doc.same_day_slots;
        data.calendars
            .insert(d.id.clone(), Arc::new(LoadedCalendar { stored: d, calendar, carrier_services, same_day_slots }));
    }
    Ok(data)
}
