//! Routers per resource. Handlers parse, call one app function, render.

pub mod events;
pub mod fulfillment;
pub mod guard;
pub mod inventory;
pub mod items;
pub mod nodes;
pub mod ops;
pub mod orders;
pub mod policies;
pub mod promising;
pub mod reservations;
pub mod supply;
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

/// Only admin keys may `action`; others get 403.
pub(crate) fn admin_only(caller: &allot_app::Principal, action: &'static str) -> Result<(), crate::error::ApiError> {
    match caller.role {
        allot_app::Role::Admin => Ok(()),
        _ => Err(allot_app::AppError::Forbidden { action }.into()),
    }
}

/// An RFC 3339 timestamp in field `field`, as milliseconds.
pub(crate) fn timestamp_ms(field: &str, value: &str) -> Result<i64, crate::error::ApiError> {
    value.parse::<jiff::Timestamp>().map(|t| t.as_millisecond()).map_err(|_| {
        crate::error::ApiError::invalid(vec![allot_app::FieldError::new(
            field,
            "an RFC 3339 timestamp, e.g. 2026-11-25T10:00:00Z",
        )])
    })
}

/// The generated ids in paths: text that is not an id Allot makes names nothing there
/// (404, as an unknown id would), so use cases take typed ids only.
macro_rules! generated_id {
    ($fn_name:ident, $ty:ty, $what:literal) => {
        pub(crate) fn $fn_name(raw: &str) -> Result<$ty, crate::error::ApiError> {
            <$ty>::parse(raw).map_err(|_| crate::error::ApiError::not_found($what, raw))
        }
    };
}

generated_id!(order_id, allot_core::OrderId, "order");
generated_id!(fo_id, allot_core::FulfillmentOrderId, "fulfillment order");
generated_id!(reservation_id, allot_core::ReservationId, "reservation");
generated_id!(supply_id, allot_core::SupplyId, "supply");
