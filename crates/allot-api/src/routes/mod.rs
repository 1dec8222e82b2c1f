//! Routers per resource. Handlers parse, call one app function, render.

pub mod events;
pub mod inventory;
pub mod items;
pub mod nodes;
pub mod ops;
pub mod orders;
pub mod policies;
pub mod reservations;
