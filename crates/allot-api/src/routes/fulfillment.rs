//! `/v1/fulfillment-orders` (the node work queue and its actions) and
//! `/v1/shipments/{tracking_number}/events` (carrier scans).
//!
//! Node keys (`node:<id>`) see and act on their own node's fulfillment orders only
//! (anything else is 404); admin keys on any; channel keys on none (403).

use allot_app::{FoAction, Package, PickedLine, Principal, Role, Scan, ScanKind};
use allot_core::NodeId;
use axum::Extension;
use axum::Json;
use axum::extract::State;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::guard::{Refusal, WriteGuard, Writers, guarded};
use crate::ApiState;
use crate::error::{ApiError, ApiResult, Problem};
use crate::json::{Body, RawBody, parse_json};
use crate::params::{DeliverParam, PickParam, RejectParam, SHORT_TEXT_MAX, ScanParam, ShipParam};
use crate::query::QueryPairs;
use crate::text::CleanPath;
use crate::views::{FulfillmentOrderDetailView, FulfillmentOrderList, ShipmentView};

pub const FO_PAGE_DEFAULT: i64 = 50;
pub const FO_PAGE_MAX: i64 = 500;

pub fn router(state: &ApiState) -> OpenApiRouter<ApiState> {
    let work = OpenApiRouter::new()
        .routes(routes!(list_fulfillment_orders))
        .routes(routes!(get_fulfillment_order))
        .routes(routes!(accept))
        .routes(routes!(reject))
        .routes(routes!(pick))
        .routes(routes!(pack))
        .routes(routes!(ship))
        .routes(routes!(ready_for_pickup))
        .routes(routes!(picked_up))
        .routes(routes!(deliver));
    let scans = OpenApiRouter::new().routes(routes!(shipment_event));
    guarded(
        work,
        state,
        WriteGuard {
            writers: Writers::AdminOrNode,
            refusal: Refusal::Forbidden("act on fulfillment orders"),
            body_limit: crate::BODY_LIMIT_BYTES,
        },
    )
    .merge(guarded(
        scans,
        state,
        WriteGuard {
            writers: Writers::AdminOrNode,
            refusal: Refusal::Forbidden("report shipment scans"),
            body_limit: crate::BODY_LIMIT_BYTES,
        },
    ))
}

/// The node a caller is limited to: `None` for admins; channel keys may not touch
/// fulfillment.
fn node_scope<'a>(caller: &'a Principal, action: &'static str) -> Result<Option<&'a NodeId>, ApiError> {
    match &caller.role {
        Role::Admin => Ok(None),
        Role::Node(n) => Ok(Some(n)),
        Role::Channel(_) => Err(allot_app::AppError::Forbidden { action }.into()),
    }
}

/// An optional JSON body: empty means the default.
fn optional_body<T: serde::de::DeserializeOwned + Default>(body: &RawBody) -> Result<T, ApiError> {
    if body.bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Ok(T::default());
    }
    parse_json(&body.bytes)
}

async fn act(
    s: &ApiState,
    caller: &Principal,
    id: &str,
    action: FoAction,
) -> ApiResult<Json<FulfillmentOrderDetailView>> {
    let node = node_scope(caller, "act on fulfillment orders")?;
    let entry = s.app.act_on_fulfillment_order(&super::fo_id(id)?, action, node).await?;
    Ok(Json(entry.into()))
}

/// A node's work queue, earliest due date first (a promised date, else the day the work
/// was made; a node key sees its own node's only).
#[utoipa::path(get, path = "/v1/fulfillment-orders", tag = "fulfillment",
    params(("node_id" = Option<String>, Query), ("status" = Option<String>, Query),
           ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
           ("limit" = Option<i64>, Query, description = "1–500, default 50")),
    responses((status = 200, body = FulfillmentOrderList), (status = 422, body = Problem)),
    security(("api_key" = [])))]
async fn list_fulfillment_orders(
    State(s): State<ApiState>,
    Extension(caller): Extension<Principal>,
    q: QueryPairs,
) -> ApiResult<Json<FulfillmentOrderList>> {
    q.only(&["node_id", "status", "cursor", "limit"])?;
    let node = node_scope(&caller, "list fulfillment orders")?;
    let mut errors = Vec::new();
    let status = q.single("status")?.map(str::to_owned);
    if status.as_ref().is_some_and(|st| allot_core::FoStatus::parse(st).is_none()) {
        let all: Vec<&str> = allot_core::FoStatus::ALL.iter().map(|s| s.as_str()).collect();
        errors.push(allot_app::FieldError::new("status", format!("one of {}", all.join(", "))));
    }
    let limit = q.parse::<i64>("limit")?.unwrap_or(FO_PAGE_DEFAULT);
    if !(1..=FO_PAGE_MAX).contains(&limit) {
        errors.push(allot_app::FieldError::new("limit", format!("must be 1–{FO_PAGE_MAX}")));
    }
    let mut after = None;
    if let Some(c) = q.single("cursor")? {
        after = allot_app::parse_queue_cursor(c).filter(|_| c.len() <= SHORT_TEXT_MAX);
        if after.is_none() {
            errors.push(allot_app::FieldError::new("cursor", "not a cursor from this endpoint"));
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::invalid(errors));
    }
    let filter =
        allot_app::FulfillmentOrderFilter { node_id: q.single("node_id")?.map(str::to_owned), status, after, limit };
    let page = s.app.list_fulfillment_orders(filter, node).await?;
    Ok(Json(FulfillmentOrderList {
        fulfillment_orders: page.entries.into_iter().map(Into::into).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// One fulfillment order with its lines and shipments.
#[utoipa::path(get, path = "/v1/fulfillment-orders/{id}", tag = "fulfillment",
    params(("id" = String, Path)),
    responses((status = 200, body = FulfillmentOrderDetailView), (status = 404, body = Problem)),
    security(("api_key" = [])))]
async fn get_fulfillment_order(
    State(s): State<ApiState>,
    Extension(caller): Extension<Principal>,
    CleanPath(id): CleanPath<String>,
) -> ApiResult<Json<FulfillmentOrderDetailView>> {
    let node = node_scope(&caller, "read fulfillment orders")?;
    let (entry, terms) = s.app.fulfillment_order_work(&super::fo_id(&id)?, node).await?;
    let mut view = FulfillmentOrderDetailView::from(entry);
    if let Some(t) = terms {
        // What the node needs to send it: where, and by which service level; not the
        // customer's contact details or the prices.
        view.ship_to = t.ship_to.map(Into::into);
        for line in view.lines.iter_mut() {
            line.service_level =
                t.lines.iter().find(|l| l.line_id == line.line_id).and_then(|l| l.service_level.clone());
        }
    }
    Ok(Json(view))
}

/// The node takes the work (from `released`).
#[utoipa::path(post, path = "/v1/fulfillment-orders/{id}/accept", tag = "fulfillment",
    params(("id" = String, Path)),
    responses((status = 200, body = FulfillmentOrderDetailView), (status = 404, body = Problem),
              (status = 409, description = "not allowed in its status", body = Problem)),
    security(("api_key" = [])))]
async fn accept(
    State(s): State<ApiState>,
    Extension(caller): Extension<Principal>,
    CleanPath(id): CleanPath<String>,
) -> ApiResult<Json<FulfillmentOrderDetailView>> {
    act(&s, &caller, &id, FoAction::Accept).await
}

/// The node gives the work back (until it has packed): its stock returns to ATP and the
/// units are re-sourced at once, excluding this node (see the order's
/// `sourcing_attempts`).
#[utoipa::path(post, path = "/v1/fulfillment-orders/{id}/reject", tag = "fulfillment",
    params(("id" = String, Path)), request_body = RejectParam,
    responses((status = 200, body = FulfillmentOrderDetailView), (status = 404, body = Problem),
              (status = 409, body = Problem), (status = 422, body = Problem)),
    security(("api_key" = [])))]
async fn reject(
    State(s): State<ApiState>,
    Extension(caller): Extension<Principal>,
    CleanPath(id): CleanPath<String>,
    Body(p): Body<RejectParam>,
) -> ApiResult<Json<FulfillmentOrderDetailView>> {
    act(&s, &caller, &id, FoAction::Reject { reason: p.reason.into() }).await
}

/// Record the pick (from `accepted`). Lines not listed were picked in full; units not
/// found are written off the node's stock and re-sourced elsewhere.
#[utoipa::path(post, path = "/v1/fulfillment-orders/{id}/pick", tag = "fulfillment",
    params(("id" = String, Path)), request_body(content = PickParam, description = "optional"),
    responses((status = 200, body = FulfillmentOrderDetailView), (status = 404, body = Problem),
              (status = 409, body = Problem), (status = 422, body = Problem)),
    security(("api_key" = [])))]
async fn pick(
    State(s): State<ApiState>,
    Extension(caller): Extension<Principal>,
    CleanPath(id): CleanPath<String>,
    body: RawBody,
) -> ApiResult<Json<FulfillmentOrderDetailView>> {
    let p: PickParam = optional_body(&body)?;
    let lines = p
        .lines
        .into_iter()
        .map(|l| PickedLine {
            line_id: l.line_id.into(),
            sku: l.sku.map(Into::into),
            picked_quantity: l.picked_quantity,
        })
        .collect();
    act(&s, &caller, &id, FoAction::Pick { lines }).await
}

/// Packed (from `picking`).
#[utoipa::path(post, path = "/v1/fulfillment-orders/{id}/pack", tag = "fulfillment",
    params(("id" = String, Path)),
    responses((status = 200, body = FulfillmentOrderDetailView), (status = 404, body = Problem),
              (status = 409, body = Problem)),
    security(("api_key" = [])))]
async fn pack(
    State(s): State<ApiState>,
    Extension(caller): Extension<Principal>,
    CleanPath(id): CleanPath<String>,
) -> ApiResult<Json<FulfillmentOrderDetailView>> {
    act(&s, &caller, &id, FoAction::Pack).await
}

/// Handed to carriers (ship fulfillment orders, from `packed`): every unit in exactly one
/// package; the units leave the node's stock.
#[utoipa::path(post, path = "/v1/fulfillment-orders/{id}/ship", tag = "fulfillment",
    params(("id" = String, Path)), request_body = ShipParam,
    responses((status = 200, body = FulfillmentOrderDetailView), (status = 404, body = Problem),
              (status = 409, body = Problem), (status = 422, body = Problem)),
    security(("api_key" = [])))]
async fn ship(
    State(s): State<ApiState>,
    Extension(caller): Extension<Principal>,
    CleanPath(id): CleanPath<String>,
    Body(p): Body<ShipParam>,
) -> ApiResult<Json<FulfillmentOrderDetailView>> {
    let packages = p
        .packages
        .into_iter()
        .map(|pk| Package {
            carrier: pk.carrier.into(),
            tracking_number: pk.tracking_number.into(),
            lines: pk.lines.map(|ls| ls.into_iter().map(|l| (l.line_id.into(), l.quantity)).collect()),
        })
        .collect();
    act(&s, &caller, &id, FoAction::Ship { packages }).await
}

/// Waiting at the counter (pickup fulfillment orders, from `picking` or `packed`).
#[utoipa::path(post, path = "/v1/fulfillment-orders/{id}/ready-for-pickup", tag = "fulfillment",
    params(("id" = String, Path)),
    responses((status = 200, body = FulfillmentOrderDetailView), (status = 404, body = Problem),
              (status = 409, body = Problem)),
    security(("api_key" = [])))]
async fn ready_for_pickup(
    State(s): State<ApiState>,
    Extension(caller): Extension<Principal>,
    CleanPath(id): CleanPath<String>,
) -> ApiResult<Json<FulfillmentOrderDetailView>> {
    act(&s, &caller, &id, FoAction::ReadyForPickup).await
}

/// The customer collected (from `ready_for_pickup`): the units leave the node's stock.
#[utoipa::path(post, path = "/v1/fulfillment-orders/{id}/picked-up", tag = "fulfillment",
    params(("id" = String, Path)),
    responses((status = 200, body = FulfillmentOrderDetailView), (status = 404, body = Problem),
              (status = 409, body = Problem)),
    security(("api_key" = [])))]
async fn picked_up(
    State(s): State<ApiState>,
    Extension(caller): Extension<Principal>,
    CleanPath(id): CleanPath<String>,
) -> ApiResult<Json<FulfillmentOrderDetailView>> {
    act(&s, &caller, &id, FoAction::PickedUp).await
}

/// Delivered (from `shipped`); also done by a carrier's `delivered` scan of its last
/// open shipment.
#[utoipa::path(post, path = "/v1/fulfillment-orders/{id}/deliver", tag = "fulfillment",
    params(("id" = String, Path)), request_body(content = DeliverParam, description = "optional"),
    responses((status = 200, body = FulfillmentOrderDetailView), (status = 404, body = Problem),
              (status = 409, body = Problem), (status = 422, body = Problem)),
    security(("api_key" = [])))]
async fn deliver(
    State(s): State<ApiState>,
    Extension(caller): Extension<Principal>,
    CleanPath(id): CleanPath<String>,
    body: RawBody,
) -> ApiResult<Json<FulfillmentOrderDetailView>> {
    let p: DeliverParam = optional_body(&body)?;
    let delivered_at_ms = rfc3339(p.delivered_at.as_deref(), "delivered_at")?;
    act(&s, &caller, &id, FoAction::Deliver { delivered_at_ms }).await
}

fn rfc3339(v: Option<&str>, field: &str) -> Result<Option<i64>, ApiError> {
    v.map(|v| super::timestamp_ms(field, v)).transpose()
}

/// A carrier scan of a shipment. Repeating the current scan changes nothing; a
/// `delivered` scan of a fulfillment order's last open shipment delivers it.
#[utoipa::path(post, path = "/v1/shipments/{tracking_number}/events", tag = "fulfillment",
    params(("tracking_number" = String, Path)), request_body = ScanParam,
    responses((status = 200, body = ShipmentView), (status = 404, body = Problem), (status = 409, body = Problem),
              (status = 422, body = Problem)),
    security(("api_key" = [])))]
async fn shipment_event(
    State(s): State<ApiState>,
    Extension(caller): Extension<Principal>,
    CleanPath(tracking_number): CleanPath<String>,
    Body(p): Body<ScanParam>,
) -> ApiResult<Json<ShipmentView>> {
    let node = node_scope(&caller, "report shipment scans")?;
    let Some(kind) = ScanKind::parse(&p.kind) else {
        return Err(ApiError::invalid(vec![allot_app::FieldError::new(
            "type",
            "one of in_transit, out_for_delivery, delivered, exception, delayed",
        )]));
    };
    let at_ms = rfc3339(p.at.as_deref(), "at")?.unwrap_or_else(|| s.app.now_ms());
    let scan = Scan { kind, at_ms, detail: p.detail.map(Into::into) };
    Ok(Json(s.app.record_scan(&tracking_number, scan, node).await?.into()))
}
