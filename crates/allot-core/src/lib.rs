//! Allot's pure domain: identifiers, quantities, money, the fulfillment network, the
//! catalog, inventory positions and the arithmetic of availability (ATP), the statuses of
//! orders and fulfillment orders, service levels, sourcing and promising.
//!
//! This crate must never do I/O, read a clock, spawn tasks or draw unseeded random
//! numbers: the server, the simulator and the benchmarks call the very same functions and
//! must get the very same answers. Time, when it matters, is a parameter.
//!
//! Key invariant: every value of a domain type is valid. Constructors parse and check
//! (`NodeId::parse`, `Qty::new`, `GeoPoint::new`, …); once a value exists, nothing
//! downstream re-validates it.

pub mod catalog;
pub mod fulfillment;
pub mod geo;
pub mod hash;
pub mod hold;
pub mod ids;
pub mod inventory;
pub mod money;
pub mod network;
pub mod order;
pub mod places;
pub mod promise;
pub mod qty;
pub mod rng;
pub mod scenario;
pub mod service;
pub mod sourcing;
pub mod text;

pub use catalog::{FulfillmentMethod, Item};
pub use fulfillment::{FoEvent, FoKind, FoStatus, InvalidTransition, Transition};
pub use geo::GeoPoint;
pub use hold::HoldKind;
pub use ids::{
    ChannelId, FulfillmentOrderId, GeneratedIdError, IdError, LineId, NodeId, OrderId, ReservationId, ReturnId, Sku,
    SupplyId,
};
pub use inventory::{Position, PositionCounts};
pub use money::{Currency, Money, MoneyError};
pub use network::{Capability, Node, NodeCapacity, NodeCosts, NodeStatus, NodeType, TimeZoneName};
pub use order::{
    HoldState, InvalidLineTransition, InvalidOrderTransition, LineEvent, LineQuantities, LineQuantitiesError,
    LineStatus, OrderEvent, OrderStatus,
};
pub use qty::{Qty, QtyError};
pub use service::ServiceLevel;
