//! `/v1/inventory/supply`: stock expected at a node by a date, which backordered units
//! (preorders) are promised against until it is received.

use allot_app::{FieldError, Principal, SupplyFilter, SupplyInput};
use allot_core::{NodeId, Sku};
use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::guard::{Refusal, WriteGuard, Writers, guarded};
use super::{admin_only, timestamp_ms};
use crate::ApiState;
use crate::error::{ApiError, ApiResult, Problem};
use crate::json::{Body, RawBody, parse_json};
use crate::params::SHORT_TEXT_MAX;
use crate::query::QueryPairs;
use crate::text::CleanPath;
use crate::views::{SupplyList, SupplyView};

pub fn router(state: &ApiState) -> OpenApiRouter<ApiState> {
    let record = OpenApiRouter::new().routes(routes!(post_supply, list_supply)).routes(routes!(get_supply));
    let receive = OpenApiRouter::new().routes(routes!(receive_supply)).routes(routes!(close_supply));
    let cancel = OpenApiRouter::new().routes(routes!(cancel_supply));
    guarded(
        record,
        state,
        WriteGuard {
            writers: Writers::Admin,
            refusal: Refusal::Forbidden("record inbound supply"),
            body_limit: crate::BODY_LIMIT_BYTES,
        },
    )
    .merge(guarded(
        receive,
        state,
        WriteGuard {
            writers: Writers::Admin,
            refusal: Refusal::Forbidden("receive inbound supply"),
            body_limit: crate::BODY_LIMIT_BYTES,
        },
    ))
    .merge(guarded(
        cancel,
        state,
        WriteGuard {
            writers: Writers::Admin,
            refusal: Refusal::Forbidden("cancel inbound supply"),
            body_limit: crate::BODY_LIMIT_BYTES,
        },
    ))
}

/// Body of `POST /v1/inventory/supply`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PostSupply {
    pub node_id: String,
    pub sku: String,
    pub quantity: i64,
    /// When the stock is expected at the node (RFC 3339; not in the past, at most two
    /// years ahead).
    pub eta: String,
}

/// Body of `POST /v1/inventory/supply/{id}/receive` (optional).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReceiveSupply {
    /// Units received; default: all still expected.
    #[serde(default)]
    pub quantity: Option<i64>,
    /// Your reference for this receipt (an ASN or goods-received note number): a receipt
    /// with a reference already taken for this supply is a retry and adds nothing.
    #[serde(default)]
    pub reference: Option<crate::text::Reference>,
}

const SUPPLY_STATUSES: [&str; 3] = ["expected", "received", "cancelled"];
const SUPPLY_PAGE_DEFAULT: i64 = 50;
const SUPPLY_PAGE_MAX: i64 = 500;

/// Record stock expected at a node (admin). Backordered units of the SKU are promised
/// against it at once, the oldest promise first; it never enters ATP before it is
/// received.
#[utoipa::path(post, path = "/v1/inventory/supply", tag = "inventory",
    request_body = PostSupply,
    responses((status = 201, body = SupplyView), (status = 422, body = Problem)),
    security(("api_key" = [])))]
async fn post_supply(
    State(s): State<ApiState>,
    Extension(caller): Extension<Principal>,
    Body(p): Body<PostSupply>,
) -> ApiResult<(StatusCode, Json<SupplyView>)> {
    admin_only(&caller, "record inbound supply")?;
    let mut errors = Vec::new();
    let node = NodeId::parse(&p.node_id).map_err(|e| errors.push(FieldError::new("node_id", e.to_string()))).ok();
    let sku = Sku::parse(&p.sku).map_err(|e| errors.push(FieldError::new("sku", e.to_string()))).ok();
    let eta = match timestamp_ms("eta", &p.eta) {
        Ok(ms) => Some(ms),
        Err(_) => {
            errors.push(FieldError::new("eta", "an RFC 3339 timestamp, e.g. 2026-12-20T10:00:00Z"));
            None
        }
    };
    let (Some(node_id), Some(sku), Some(eta_ms), true) = (node, sku, eta, errors.is_empty()) else {
        return Err(ApiError::invalid(errors));
    };
    let entry = s.app.add_supply(SupplyInput { node_id, sku, quantity: p.quantity, eta_ms }).await?;
    Ok((StatusCode::CREATED, Json(entry.into())))
}

/// Inbound supply, oldest record first; `status=expected&sku=…` is the SKU's ATP over
/// time (each record's `available`: units not yet promised).
#[utoipa::path(get, path = "/v1/inventory/supply", tag = "inventory",
    params(("sku" = Option<String>, Query), ("node_id" = Option<String>, Query),
           ("status" = Option<String>, Query, description = "expected, received, cancelled"),
           ("cursor" = Option<String>, Query), ("limit" = Option<i64>, Query, description = "1–500, default 50")),
    responses((status = 200, body = SupplyList), (status = 422, body = Problem)),
    security(("api_key" = [])))]
async fn list_supply(State(s): State<ApiState>, q: QueryPairs) -> ApiResult<Json<SupplyList>> {
    q.only(&["sku", "node_id", "status", "cursor", "limit"])?;
    let mut errors = Vec::new();
    let status = q.single("status")?.map(str::to_owned);
    if status.as_ref().is_some_and(|st| !SUPPLY_STATUSES.contains(&st.as_str())) {
        errors.push(FieldError::new("status", format!("one of {}", SUPPLY_STATUSES.join(", "))));
    }
    let limit = q.parse::<i64>("limit")?.unwrap_or(SUPPLY_PAGE_DEFAULT);
    if !(1..=SUPPLY_PAGE_MAX).contains(&limit) {
        errors.push(FieldError::new("limit", format!("must be 1–{SUPPLY_PAGE_MAX}")));
    }
    let cursor = q.single("cursor")?.map(str::to_owned);
    if cursor.as_ref().is_some_and(|c| c.is_empty() || c.len() > SHORT_TEXT_MAX) {
        errors.push(FieldError::new("cursor", "not a cursor from this endpoint"));
    }
    if !errors.is_empty() {
        return Err(ApiError::invalid(errors));
    }
    let filter = SupplyFilter {
        sku: q.single("sku")?.map(str::to_owned),
        node_id: q.single("node_id")?.map(str::to_owned),
        status,
        after_id: cursor,
        limit,
    };
    let page = s.app.list_supply(filter).await?;
    Ok(Json(SupplyList { supply: page.entries.into_iter().map(Into::into).collect(), next_cursor: page.next_cursor }))
}

/// One supply record; with an admin key also the backordered units promised against it
/// (they name orders of every channel).
#[utoipa::path(get, path = "/v1/inventory/supply/{supply_id}", tag = "inventory",
    params(("supply_id" = String, Path)),
    responses((status = 200, body = SupplyView), (status = 404, body = Problem)),
    security(("api_key" = [])))]
async fn get_supply(
    State(s): State<ApiState>,
    Extension(caller): Extension<Principal>,
    CleanPath(supply_id): CleanPath<String>,
) -> ApiResult<Json<SupplyView>> {
    let mut view: SupplyView = s.app.supply_entry(&super::supply_id(&supply_id)?).await?.into();
    if admin_only(&caller, "see supply commitments").is_err() {
        view.commitments = None;
    }
    Ok(Json(view))
}

/// Receive expected supply (admin): the units go on hand at the node and backorders are
/// filled — the orders it was promised to first. A repeat answers the received supply.
#[utoipa::path(post, path = "/v1/inventory/supply/{supply_id}/receive", tag = "inventory",
    params(("supply_id" = String, Path)), request_body(content = ReceiveSupply, description = "optional"),
    responses((status = 200, body = SupplyView), (status = 404, body = Problem), (status = 409, body = Problem),
              (status = 422, body = Problem)),
    security(("api_key" = [])))]
async fn receive_supply(
    State(s): State<ApiState>,
    Extension(caller): Extension<Principal>,
    CleanPath(supply_id): CleanPath<String>,
    body: RawBody,
) -> ApiResult<Json<SupplyView>> {
    admin_only(&caller, "receive inbound supply")?;
    let p: ReceiveSupply = if body.bytes.iter().all(u8::is_ascii_whitespace) {
        ReceiveSupply::default()
    } else {
        parse_json(&body.bytes)?
    };
    if p.reference.as_ref().is_some_and(|r| r.chars().count() > crate::params::SHORT_TEXT_MAX) {
        let message = format!("at most {} characters", crate::params::SHORT_TEXT_MAX);
        return Err(ApiError::invalid(vec![allot_app::FieldError::new("reference", message)]));
    }
    let receipt = allot_app::SupplyReceipt { quantity: p.quantity, reference: p.reference.map(Into::into) };
    Ok(Json(s.app.receive_supply(&super::supply_id(&supply_id)?, receipt).await?.into()))
}

/// Close a partly received supply as received: the rest will not come; the units it
/// promised are promised again against other supply, or wait.
#[utoipa::path(post, path = "/v1/inventory/supply/{supply_id}/close", tag = "inventory",
    params(("supply_id" = String, Path)),
    responses((status = 200, body = SupplyView), (status = 404, body = Problem), (status = 409, body = Problem)),
    security(("api_key" = [])))]
async fn close_supply(
    State(s): State<ApiState>,
    Extension(caller): Extension<Principal>,
    CleanPath(supply_id): CleanPath<String>,
) -> ApiResult<Json<SupplyView>> {
    admin_only(&caller, "receive inbound supply")?;
    Ok(Json(s.app.close_supply(&super::supply_id(&supply_id)?).await?.into()))
}

/// Cancel expected supply (admin): the units promised against it go back to waiting
/// (matched to other supply of the SKU if there is any). A repeat answers the cancelled
/// supply.
#[utoipa::path(post, path = "/v1/inventory/supply/{supply_id}/cancel", tag = "inventory",
    params(("supply_id" = String, Path)),
    responses((status = 200, body = SupplyView), (status = 404, body = Problem), (status = 409, body = Problem)),
    security(("api_key" = [])))]
async fn cancel_supply(
    State(s): State<ApiState>,
    Extension(caller): Extension<Principal>,
    CleanPath(supply_id): CleanPath<String>,
) -> ApiResult<Json<SupplyView>> {
    admin_only(&caller, "cancel inbound supply")?;
    Ok(Json(s.app.cancel_supply(&super::supply_id(&supply_id)?).await?.into()))
}
