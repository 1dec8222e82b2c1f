//! Routers per resource. Handlers parse, call one app function, render.

pub mod events;
pub mod fulfillment;
pub mod inventory;
pub mod items;
pub mod nodes;
pub mod ops;
pub mod orders;
pub mod policies;
pub mod promising;
pub mod reservations;
pub mod webhooks;

/// The channel a caller's order-side reads and changes are limited to: `None` for admins,
/// the key's channel for channel keys. Node keys see no orders or reservations: they get
/// "not found" for `what` `id`, as another channel's key would.
pub(crate) fn channel_scope<'a>(
    caller: &'a allot_app::Principal,
    what: &str,
    id: &str,
) -> Result<Option<&'a allot_core::ChannelId>, crate::error::ApiError> {
    match &caller.role {
        allot_app::Role::Admin => Ok(None),
        allot_app::Role::Channel(c) => Ok(Some(c)),
        allot_app::Role::Node(_) => Err(crate::error::ApiError::not_found(what, id)),
    }
}
