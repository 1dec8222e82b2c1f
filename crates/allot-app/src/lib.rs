//! Allot's use cases: one function per thing a caller can do (put a node, apply inventory
//! deltas, ask for availability, authenticate a key, …).
//!
//! What it owns: transactions (each use case is one), the clock, id and key generation,
//! and the in-memory read model that serves hot reads. What it must never do: speak HTTP
//! or SQL. Handlers call exactly one function here; this crate calls the store and the
//! pure core.
//!
//! Key invariant: the read model is updated after, and only after, the database commit
//! of the change, and only with row versions newer than those it holds. A caller that
//! got an answer to a write therefore reads its own write, and a slower request can never
//! overwrite a newer state with an older one.

mod auth;
mod captured;
mod change_note;
mod changes;
mod clock;
mod decision_doc;
mod demo;
mod egress;
mod error;
mod events;
mod fulfillment;
mod idempotency;
mod inventory;
mod nats;
mod network;
mod node_load;
mod order_facts;
mod orders;
mod policies;
pub mod policy_doc;
mod promise_data;
pub mod promise_doc;
mod promising;
mod read_model;
mod reservations;
mod rows;
mod supply;
mod webhooks;
mod workers;

use std::sync::Arc;

use allot_store::Store;

pub use allot_store::{
    AllocationRow, Claim, ContactRow, DeliveryCounts, DeliveryRow, EventCursor, EventFilter, FulfillmentOrderEntry,
    FulfillmentOrderFilter, FulfillmentOrderRow, IDEMPOTENCY_STALE_CLAIM_MS, IDEMPOTENCY_TTL_MS, OrderFilter,
    OrderLineRow, OrderSummary, ReservationLineRow, ShipmentRow, SourcingAttemptRow, StoredAnswer, StoredEvent,
    StoredReservation, StoredWebhook,
};
pub use allot_store::{CommitmentRow, LineExpectation, SupplyFilter, SupplyRow};
pub use allot_store::{DbConfig, StoredItem, StoredNode};
pub use allot_store::{StoredDocument, StoredOrder};
pub use auth::{NewKey, Principal, Role};
pub use captured::{
    CapturedBillTo, CapturedCustomer, CapturedLine, CapturedOrder, CapturedShipTo, LineTerms, OrderTerms,
};
pub use clock::{Clock, FixedClock, SystemClock};
pub use decision_doc::{DecisionJson, attempt_json, decision_json, package_kind};
pub use demo::{DEMO_CARRIER_ID, LoadSummary, PromiseData, demo_promise_data};
pub use egress::EgressRules;
pub use error::{AppError, FieldError};
pub use events::{CONTACT_CHANNELS, EVENT_VERSION, acting_as, event_types, ms_to_rfc3339};
pub use fulfillment::{
    DISRUPTION_BATCH, FULFILLMENT_TEXT_MAX, FoAction, JEOPARDY_BATCH, PACKAGES_MAX, Package, PickedLine,
    REROUTE_ROUNDS, Scan, ScanKind, TIMEOUT_BATCH, parse_queue_cursor, queue_cursor,
};
pub use idempotency::RequestFingerprint;
pub use inventory::{Availability, AvailabilityQuery, DeltaInput, NodeAvailability, SkuAvailability, SnapshotInput};
pub use nats::{NATS_RELAY, NatsOptions, NatsPass, connect as connect_nats};
pub use network::{ListPage, PAGE_LIMIT_DEFAULT, PAGE_LIMIT_MAX};
pub use order_facts::{LineFacts, OrderRows, is_live, shipment_carries};
pub use orders::{ActiveHold, HoldNote, PLACE_ATTEMPTS, PlaceOrder, Placed, ShipPromise};
pub use policies::{BUILTIN_POLICY, LoadedPolicy, PolicyInfo, PolicyStamp, Quote};
pub use promise_data::{LoadedCalendar, LoadedCarrier};
pub use promising::{
    BACKLOG_TTL, LANE_STATS_TTL, LaneAccuracy, LaneStats, PICKUP_OPTIONS_MAX, PICKUP_RADIUS_KM, PromiseAccuracy,
    PromiseAnswer, PromiseOption, PromisePackage, PromiseQuery,
};
pub use read_model::ReadModel;
pub use reservations::{RESERVATION_LINES_MAX, RESERVATION_TTL_MAX_S, ReserveInput, ReserveLine, SWEEP_INTERVAL};
pub use supply::{SUPPLY_ETA_MAX_MS, SUPPLY_QUANTITY_MAX, SupplyEntry, SupplyInput, SupplyReceipt};
pub use webhooks::{
    WEBHOOK_TYPES_MAX, WEBHOOK_URL_MAX, WebhookInfo, WebhookInput, WebhookOptions, install_tls_provider,
    sign as sign_webhook,
};
pub use workers::ErrorChain;

pub type Result<T, E = AppError> = std::result::Result<T, E>;

/// The application: a store, a clock and the read model, shared by every request.
#[derive(Clone)]
pub struct App {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    clock: Arc<dyn Clock>,
    read: read_model::SharedReadModel,
    keys: auth::KeyCache,
    /// This process's id in change notes (so it skips its own).
    instance: String,
    /// How the webhook relay behaves (set by the server's flags; tests shorten times).
    webhooks: std::sync::RwLock<WebhookOptions>,
    /// Background work runs (sweeps, relays, backorder fills after stock increases). Off
    /// in tests that drive every step themselves.
    background: bool,
    /// Orders the ids this app makes within a millisecond (`App::new_id`).
    ids: rows::IdContext,
    /// The background side of follow-ups (`workers`).
    workers: workers::Workers,
    /// Open work per node for daily capacity in promises, and when it was read.
    backlog: std::sync::Mutex<Option<(std::time::Instant, NodeBacklog)>>,
    /// Learned transit per lane, and when it was read.
    lane_stats: std::sync::Mutex<Option<(std::time::Instant, promising::LaneStats)>>,
    lane_stats_refreshing: std::sync::atomic::AtomicBool,
    /// Today's assignments per node (daily capacity in sourcing).
    node_load: tokio::sync::Mutex<node_load::NodeLoad>,
}

/// What runs besides the requests of an opened app.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Work {
    /// A serving process: the workers (sweeps, relays, node load, follow-ups) and, on
    /// PostgreSQL, the change listener.
    Background,
    /// Tests that drive every step themselves: only the change listener (replicas still
    /// hear each other); nothing commits between a step and its checks.
    Foreground,
    /// One-shot commands (`keys create`, `import`): nothing at all in the background.
    None,
}

/// Open fulfillment orders per node id.
type NodeBacklog = Arc<std::collections::HashMap<String, u32>>;

impl App {
    /// Opens the database (running migrations), loads the read model and starts the
    /// background work of a serving process.
    pub async fn open(db: &DbConfig, clock: Arc<dyn Clock>) -> Result<App> {
        App::open_with(db, clock, Work::Background).await
    }

    /// As [`App::open`], with the background work `work` says (see [`Work`]).
    pub async fn open_with(db: &DbConfig, clock: Arc<dyn Clock>, work: Work) -> Result<App> {
        let store = Store::open(db).await?;
        let read = read_model::SharedReadModel::load(&store).await?;
        let instance = uuid::Uuid::now_v7().simple().to_string();
        let app = App {
            inner: Arc::new(Inner {
                store,
                clock,
                read,
                keys: auth::KeyCache::default(),
                instance,
                webhooks: std::sync::RwLock::new(WebhookOptions::default()),
                background: work == Work::Background,
                ids: Default::default(),
                workers: Default::default(),
                backlog: Default::default(),
                lane_stats: Default::default(),
                lane_stats_refreshing: Default::default(),
                node_load: Default::default(),
            }),
        };
        if work != Work::None {
            app.start_change_listener().await?;
        }
        if work == Work::Background {
            app.start_workers();
        }
        Ok(app)
    }

    /// Readiness: the database answers.
    pub async fn ready(&self) -> Result<()> {
        Ok(self.inner.store.ping().await?)
    }

    /// Closes the database connections (after the server has drained).
    pub async fn close(&self) {
        self.inner.store.close().await;
    }

    /// A new id `<prefix>_<UUIDv7>` made at `now_ms` (the app clock's time): ids of one
    /// app sort in the order they were made, and carry the time they were made at.
    pub(crate) fn new_id(&self, prefix: &str, now_ms: i64) -> String {
        rows::new_id_in(&self.inner.ids, prefix, now_ms)
    }

    /// The app clock, in Unix milliseconds.
    pub fn now_ms(&self) -> i64 {
        self.inner.clock.now().as_millisecond()
    }

    /// The app behind a background task's weak handle, while it lives and its store is
    /// open (each task ends when this answers `None`).
    pub(crate) fn from_weak(weak: &std::sync::Weak<Inner>) -> Option<App> {
        let app = App { inner: weak.upgrade()? };
        (!app.inner.store.is_closed()).then_some(app)
    }
}

/// Hex SHA-256 of some bytes (request identities for idempotency).
pub fn content_hash(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}
