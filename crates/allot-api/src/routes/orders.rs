//! `/v1/orders`: order capture and lookup.

use allot_app::{Principal, Role};
use axum::Extension;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::guard::{Refusal, WriteGuard, Writers, guarded};
use crate::ApiState;
use crate::error::{ApiError, ApiResult, Problem};
use crate::json::{Body, RawBody, parse_json};
use crate::params::{CancelParam, ContactParam, HoldParam, OrderParam, SHORT_TEXT_MAX, hold_kind};
use crate::query::QueryPairs;
use crate::text::CleanPath;
use crate::views::{ContactView, OrderList, OrderView};

pub fn router(state: &ApiState) -> OpenApiRouter<ApiState> {
    let capture = OpenApiRouter::new().routes(routes!(place_order, list_orders));
    let order = OpenApiRouter::new()
        .routes(routes!(get_order))
        .routes(routes!(cancel_order))
        .routes(routes!(cancel_line))
        .routes(routes!(add_hold))
        .routes(routes!(release_hold))
        .routes(routes!(record_contact));
    guarded(
        capture,
        state,
        WriteGuard {
            writers: Writers::AdminOrChannel,
            refusal: Refusal::Forbidden("place orders"),
            body_limit: crate::BODY_LIMIT_BYTES,
        },
    )
    .merge(guarded(
        order,
        state,
        WriteGuard {
            writers: Writers::AdminOrChannel,
            refusal: Refusal::NotFound { what: "order", param: "order_id" },
            body_limit: crate::BODY_LIMIT_BYTES,
        },
    ))
}

fn order_scope<'a>(caller: &'a Principal, order_id: &str) -> Result<Option<&'a allot_core::ChannelId>, ApiError> {
    super::channel_scope(caller, "order", order_id)
}

fn cancel_body(body: &RawBody) -> Result<CancelParam, ApiError> {
    if body.bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Ok(CancelParam::default());
    }
    parse_json(&body.bytes)
}

/// Cancel every open unit of an order; allocated stock returns to ATP at once.
#[utoipa::path(post, path = "/v1/orders/{order_id}/cancel", tag = "orders",
    params(("order_id" = String, Path)), request_body(content = CancelParam, description = "optional"),
    responses((status = 200, body = OrderView), (status = 404, body = Problem), (status = 422, body = Problem)),
    security(("api_key" = [])))]
async fn cancel_order(
    State(s): State<ApiState>,
    Extension(caller): Extension<Principal>,
    CleanPath(order_id): CleanPath<String>,
    body: RawBody,
) -> ApiResult<Json<OrderView>> {
    let scope = order_scope(&caller, &order_id)?;
    let p = cancel_body(&body)?;
    if p.quantity.is_some() {
        return Err(ApiError::invalid(vec![allot_app::FieldError::new("quantity", "only for line cancellation")]));
    }
    let reason = p.reason.map_or_else(|| "customer_request".to_owned(), Into::into);
    Ok(Json(s.app.cancel_order(&super::order_id(&order_id)?, &reason, scope).await?.into()))
}

/// Cancel units of one line (default: all its open units).
#[utoipa::path(post, path = "/v1/orders/{order_id}/lines/{line_id}/cancel", tag = "orders",
    params(("order_id" = String, Path), ("line_id" = String, Path)),
    request_body(content = CancelParam, description = "optional"),
    responses((status = 200, body = OrderView), (status = 404, body = Problem), (status = 422, body = Problem)),
    security(("api_key" = [])))]
async fn cancel_line(
    State(s): State<ApiState>,
    Extension(caller): Extension<Principal>,
    CleanPath((order_id, line_id)): CleanPath<(String, String)>,
    body: RawBody,
) -> ApiResult<Json<OrderView>> {
    let scope = order_scope(&caller, &order_id)?;
    let p = cancel_body(&body)?;
    let reason = p.reason.map_or_else(|| "customer_request".to_owned(), Into::into);
    Ok(Json(s.app.cancel_line(&super::order_id(&order_id)?, &line_id, p.quantity, &reason, scope).await?.into()))
}

/// Put a hold on an order: work not yet accepted is held back from its node, and work a
/// node accepted may be picked but not packed, shipped or handed over until the hold is
/// released (409 naming the hold). Refused (409) once every unit has left its node.
#[utoipa::path(post, path = "/v1/orders/{order_id}/holds", tag = "orders",
    params(("order_id" = String, Path)), request_body = HoldParam,
    responses((status = 200, body = OrderView), (status = 404, body = Problem), (status = 409, body = Problem),
        (status = 422, body = Problem)),
    security(("api_key" = [])))]
async fn add_hold(
    State(s): State<ApiState>,
    Extension(caller): Extension<Principal>,
    CleanPath(order_id): CleanPath<String>,
    Body(p): Body<HoldParam>,
) -> ApiResult<Json<OrderView>> {
    let scope = order_scope(&caller, &order_id)?;
    let hold = hold_kind("hold", &p.hold).map_err(|e| ApiError::invalid(vec![e]))?;
    let order = s.app.add_hold(&super::order_id(&order_id)?, hold, p.reason.map(String::from), scope).await?;
    with_holds(&s, order).await
}

/// The order's view with its active holds' details.
async fn with_holds(s: &ApiState, order: allot_app::StoredOrder) -> ApiResult<Json<OrderView>> {
    let holds = s.app.order_holds(&order).await?;
    let mut view = OrderView::from(order);
    view.hold_details = Some(holds.into_iter().map(Into::into).collect());
    Ok(Json(view))
}

/// Release a hold (any of them: `order.hold_released`); the last release sends held work
/// to its nodes (`order.released`). A channel key may not release a fraud hold an
/// operator or a policy placed (403).
#[utoipa::path(post, path = "/v1/orders/{order_id}/holds/{hold}/release", tag = "orders",
    params(("order_id" = String, Path), ("hold" = String, Path, description = "fraud, fraud_review, payment, address, manual")),
    responses((status = 200, body = OrderView), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 422, body = Problem)),
    security(("api_key" = [])))]
async fn release_hold(
    State(s): State<ApiState>,
    Extension(caller): Extension<Principal>,
    CleanPath((order_id, hold)): CleanPath<(String, String)>,
) -> ApiResult<Json<OrderView>> {
    let scope = order_scope(&caller, &order_id)?;
    let hold = hold_kind("hold", &hold).map_err(|e| ApiError::invalid(vec![e]))?;
    let order = s.app.release_hold(&super::order_id(&order_id)?, hold, scope).await?;
    with_holds(&s, order).await
}

/// Place an order: sourced by the active (or named) policy and allocated in the same
/// transaction as the order is written. The same (channel, external_id) with the same
/// body answers 200 with the stored order; with a different body, 409.
#[utoipa::path(post, path = "/v1/orders", tag = "orders",
    request_body = OrderParam,
    responses((status = 201, body = OrderView), (status = 200, description = "already placed", body = OrderView),
              (status = 400, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)),
    security(("api_key" = [])))]
async fn place_order(
    State(s): State<ApiState>,
    Extension(caller): Extension<Principal>,
    body: RawBody,
) -> ApiResult<(StatusCode, Json<OrderView>)> {
    if !body.media_type.is_empty() && body.media_type != "application/json" {
        return Err(ApiError::unsupported_media_type("send the body as `Content-Type: application/json`"));
    }
    let key_channel = match &caller.role {
        Role::Admin => None,
        Role::Channel(c) => Some(c.clone()),
        Role::Node(_) => return Err(allot_app::AppError::Forbidden { action: "place orders" }.into()),
    };
    let param: OrderParam = parse_json(&body.bytes)?;
    if let Some(policy) = &param.policy {
        s.app.may_choose_policy(&caller.role, policy)?;
    }
    let input = param.into_place_order(key_channel.as_ref()).map_err(ApiError::invalid)?;
    let placed = s.app.place_order(input).await?;
    let status = if placed.created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(placed.order.into())))
}

/// An order. A channel key sees only its own channel's orders (others are 404).
#[utoipa::path(get, path = "/v1/orders/{order_id}", tag = "orders",
    params(("order_id" = String, Path)),
    responses((status = 200, body = OrderView), (status = 404, body = Problem)),
    security(("api_key" = [])))]
async fn get_order(
    State(s): State<ApiState>,
    Extension(caller): Extension<Principal>,
    CleanPath(order_id): CleanPath<String>,
) -> ApiResult<Json<OrderView>> {
    let channel = order_scope(&caller, &order_id)?;
    let order_id = super::order_id(&order_id)?;
    let order = s.app.order_for(&order_id, channel).await?;
    let timeline = s.app.order_timeline(&order_id).await?;
    let contacts = s.app.order_contacts(&order_id).await?;
    let holds = s.app.order_holds(&order).await?;
    let mut view = OrderView::from(order);
    view.hold_details = Some(holds.into_iter().map(Into::into).collect());
    view.timeline = Some(timeline.into_iter().map(Into::into).collect());
    view.contacts = Some(contacts.into_iter().map(Into::into).collect());
    Ok(Json(view))
}

/// Record a customer-service contact about an order (phone, chat or email, with a
/// reason); it appears in the order's `contacts` and `timeline`.
#[utoipa::path(post, path = "/v1/orders/{order_id}/contacts", tag = "orders",
    params(("order_id" = String, Path)), request_body = ContactParam,
    responses((status = 201, body = ContactView), (status = 404, body = Problem), (status = 422, body = Problem)),
    security(("api_key" = [])))]
async fn record_contact(
    State(s): State<ApiState>,
    Extension(caller): Extension<Principal>,
    CleanPath(order_id): CleanPath<String>,
    Body(p): Body<ContactParam>,
) -> ApiResult<(StatusCode, Json<ContactView>)> {
    let channel = order_scope(&caller, &order_id)?;
    let c = s.app.record_contact(&super::order_id(&order_id)?, &p.channel, &p.reason, channel).await?;
    Ok((StatusCode::CREATED, Json(c.into())))
}

/// Default and largest page of `GET /v1/orders`.
pub const ORDER_PAGE_DEFAULT: i64 = 50;
pub const ORDER_PAGE_MAX: i64 = 500;

fn timestamp_ms(q: &QueryPairs, key: &str) -> Result<Option<i64>, ApiError> {
    q.single(key)?.map(|v| super::timestamp_ms(key, v)).transpose()
}

/// Orders, newest first, filtered; `next_cursor` pages on. A channel key lists only its
/// own channel's orders.
#[utoipa::path(get, path = "/v1/orders", tag = "orders",
    params(("channel" = Option<String>, Query), ("status" = Option<String>, Query),
           ("sku" = Option<String>, Query, description = "orders with a line of this SKU"),
           ("node_id" = Option<String>, Query, description = "orders with a fulfillment order at this node"),
           ("external_id" = Option<String>, Query, description = "the channel's order number"),
           ("email" = Option<String>, Query, description = "the customer's e-mail (any case)"),
           ("phone" = Option<String>, Query, description = "the customer's phone, as the channel sent it"),
           ("tracking_number" = Option<String>, Query, description = "orders with this shipment"),
           ("jeopardy" = Option<String>, Query, description = "at_risk or late: orders with such a line"),
           ("created_after" = Option<String>, Query, description = "RFC 3339, exclusive"),
           ("created_before" = Option<String>, Query, description = "RFC 3339, exclusive"),
           ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
           ("limit" = Option<i64>, Query, description = "1–500, default 50")),
    responses((status = 200, body = OrderList), (status = 400, body = Problem), (status = 422, body = Problem)),
    security(("api_key" = [])))]
async fn list_orders(
    State(s): State<ApiState>,
    Extension(caller): Extension<Principal>,
    q: QueryPairs,
) -> ApiResult<Json<OrderList>> {
    q.only(&[
        "channel",
        "status",
        "sku",
        "node_id",
        "external_id",
        "email",
        "phone",
        "tracking_number",
        "jeopardy",
        "created_after",
        "created_before",
        "cursor",
        "limit",
    ])?;
    let scope = match &caller.role {
        Role::Admin => None,
        Role::Channel(c) => Some(c),
        Role::Node(_) => return Err(allot_app::AppError::Forbidden { action: "list orders" }.into()),
    };
    let mut errors = Vec::new();
    let status = q.single("status")?.map(str::to_owned);
    if let Some(st) = &status
        && allot_core::OrderStatus::parse(st).is_none()
    {
        errors.push(allot_app::FieldError::new("status", format!("one of {}", allot_core::OrderStatus::expected())));
    }
    let limit = q.parse::<i64>("limit")?.unwrap_or(ORDER_PAGE_DEFAULT);
    if !(1..=ORDER_PAGE_MAX).contains(&limit) {
        errors.push(allot_app::FieldError::new("limit", format!("must be 1–{ORDER_PAGE_MAX}")));
    }
    let cursor = q.single("cursor")?.map(str::to_owned);
    if cursor.as_ref().is_some_and(|c| c.is_empty() || c.len() > SHORT_TEXT_MAX) {
        errors.push(allot_app::FieldError::new("cursor", "not a cursor from this endpoint"));
    }
    let jeopardy = q.single("jeopardy")?.map(str::to_owned);
    if jeopardy.as_deref().is_some_and(|j| !matches!(j, "at_risk" | "late")) {
        errors.push(allot_app::FieldError::new("jeopardy", "at_risk or late"));
    }
    let created_after_ms = timestamp_ms(&q, "created_after")?;
    let created_before_ms = timestamp_ms(&q, "created_before")?;
    if !errors.is_empty() {
        return Err(ApiError::invalid(errors));
    }
    let filter = allot_app::OrderFilter {
        channel: q.single("channel")?.map(str::to_owned),
        status,
        sku: q.single("sku")?.map(str::to_owned),
        node_id: q.single("node_id")?.map(str::to_owned),
        external_id: q.single("external_id")?.map(str::to_owned),
        email: q.single("email")?.map(str::to_owned),
        phone: q.single("phone")?.map(str::to_owned),
        tracking_number: q.single("tracking_number")?.map(str::to_owned),
        jeopardy,
        created_after_ms,
        created_before_ms,
        before_order_id: cursor,
        limit,
    };
    let page = s.app.list_orders(filter, scope).await?;
    Ok(Json(OrderList { orders: page.entries.into_iter().map(Into::into).collect(), next_cursor: page.next_cursor }))
}
