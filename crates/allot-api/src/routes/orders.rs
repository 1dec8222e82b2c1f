//! `/v1/orders`: order capture and lookup.

use allot_app::{PlaceOrder, Principal, Role};
use axum::Extension;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::ApiState;
use crate::error::{ApiError, ApiResult, Problem};
use crate::json::{RawBody, parse_json};
use crate::params::{OrderParam, SHORT_TEXT_MAX};
use crate::views::{OrderView, QuoteView};

pub fn router() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new().routes(routes!(place_order)).routes(routes!(get_order))
}

/// The request's identity for idempotency: the JSON re-serialised with sorted keys and
/// hashed (so formatting and key order do not matter).
fn canonical_hash(value: &serde_json::Value) -> String {
    allot_app::content_hash(value.to_string().as_bytes())
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
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "Unsupported media type",
            "send the body as `Content-Type: application/json`",
        ));
    }
    let key_channel = match &caller.role {
        Role::Admin => None,
        Role::Channel(c) => Some(c.clone()),
        Role::Node(_) => return Err(allot_app::AppError::Forbidden { action: "place orders" }.into()),
    };
    let raw: serde_json::Value = parse_json(&body.bytes)?;
    let param: OrderParam = parse_json(&body.bytes)?;
    let mut errors = Vec::new();
    let order = match param.parse(key_channel.as_ref()) {
        Ok(o) => Some(o),
        Err(e) => {
            errors.extend(e);
            None
        }
    };
    let external_id = param.external_id.clone().unwrap_or_default();
    if external_id.is_empty() || external_id.chars().count() > SHORT_TEXT_MAX {
        errors.push(allot_app::FieldError::new("external_id", format!("required, 1–{SHORT_TEXT_MAX} characters")));
    }
    let channel = order.as_ref().and_then(|o| o.channel.clone());
    if param.channel.is_none() && key_channel.is_none() {
        errors.push(allot_app::FieldError::new("channel", "required with an admin key"));
    }
    let (Some(order), Some(channel), true) = (order, channel, errors.is_empty()) else {
        return Err(ApiError::invalid(errors));
    };
    let holds = param
        .holds
        .iter()
        .map(|h| serde_json::to_value(h).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default())
        .collect();
    let input = PlaceOrder {
        channel,
        external_id,
        request_hash: canonical_hash(&raw),
        document: raw.to_string(),
        holds,
        policy: param.policy.clone(),
        order,
    };
    let render = |q: &allot_app::Quote| serde_json::to_string(&QuoteView::from(q.clone())).unwrap_or_default();
    let placed = s.app.place_order(input, &render).await?;
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
    Path(order_id): Path<String>,
) -> ApiResult<Json<OrderView>> {
    let channel = match &caller.role {
        Role::Channel(c) => Some(c),
        Role::Admin => None,
        Role::Node(_) => return Err(ApiError::not_found("order", &order_id)),
    };
    Ok(Json(s.app.order_for(&order_id, channel).await?.into()))
}
