//! `/v1/webhooks`: endpoints that receive the event stream, signed (Standard Webhooks),
//! at least once, in order per order. Admin keys only.

use allot_app::{Principal, WebhookInput};
use axum::Extension;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::guard::{Refusal, WriteGuard, Writers, guarded};
use crate::ApiState;
use crate::error::{ApiError, ApiResult, Problem};
use crate::json::Body;
use crate::params::WebhookParam;
use crate::query::QueryPairs;
use crate::text::CleanPath;
use crate::views::{DeliveryList, RedriveView, WebhookList, WebhookView};

pub const DELIVERY_PAGE_DEFAULT: i64 = 100;
pub const DELIVERY_PAGE_MAX: i64 = 1000;

pub fn router(state: &ApiState) -> OpenApiRouter<ApiState> {
    let routes = OpenApiRouter::new()
        .routes(routes!(put_webhook, get_webhook, delete_webhook))
        .routes(routes!(list_webhooks))
        .routes(routes!(list_deliveries))
        .routes(routes!(redrive));
    guarded(
        routes,
        state,
        WriteGuard {
            writers: Writers::Admin,
            refusal: Refusal::Forbidden("manage webhooks"),
            body_limit: crate::BODY_LIMIT_BYTES,
        },
    )
}

/// Create (201) or replace (200) an endpoint. A new endpoint receives events from now on.
#[utoipa::path(put, path = "/v1/webhooks/{webhook_id}", tag = "webhooks",
    params(("webhook_id" = String, Path)), request_body = WebhookParam,
    responses((status = 201, body = WebhookView), (status = 200, body = WebhookView), (status = 422, body = Problem)),
    security(("api_key" = [])))]
async fn put_webhook(
    State(s): State<ApiState>,
    Extension(caller): Extension<Principal>,
    CleanPath(id): CleanPath<String>,
    Body(p): Body<WebhookParam>,
) -> ApiResult<(StatusCode, Json<WebhookView>)> {
    super::admin_only(&caller, "manage webhooks")?;
    let input = WebhookInput { url: p.url.into(), event_types: p.event_types, secret: p.secret };
    let (info, created) = s.app.put_webhook(&id, input).await?;
    Ok((if created { StatusCode::CREATED } else { StatusCode::OK }, Json(info.into())))
}

/// An endpoint with its delivery counts (never its secret).
#[utoipa::path(get, path = "/v1/webhooks/{webhook_id}", tag = "webhooks",
    params(("webhook_id" = String, Path)),
    responses((status = 200, body = WebhookView), (status = 404, body = Problem)),
    security(("api_key" = [])))]
async fn get_webhook(
    State(s): State<ApiState>,
    Extension(caller): Extension<Principal>,
    CleanPath(id): CleanPath<String>,
) -> ApiResult<Json<WebhookView>> {
    super::admin_only(&caller, "manage webhooks")?;
    Ok(Json(s.app.webhook(&id).await?.into()))
}

/// Every endpoint with its delivery counts, by id (never a secret).
#[utoipa::path(get, path = "/v1/webhooks", tag = "webhooks",
    responses((status = 200, body = WebhookList)),
    security(("api_key" = [])))]
async fn list_webhooks(
    State(s): State<ApiState>,
    Extension(caller): Extension<Principal>,
) -> ApiResult<Json<WebhookList>> {
    super::admin_only(&caller, "manage webhooks")?;
    Ok(Json(WebhookList { webhooks: s.app.webhooks().await?.into_iter().map(Into::into).collect() }))
}

/// Delete an endpoint and its queue of deliveries: nothing more is sent to it.
#[utoipa::path(delete, path = "/v1/webhooks/{webhook_id}", tag = "webhooks",
    params(("webhook_id" = String, Path)),
    responses((status = 204, description = "deleted"), (status = 404, body = Problem)),
    security(("api_key" = [])))]
async fn delete_webhook(
    State(s): State<ApiState>,
    Extension(caller): Extension<Principal>,
    CleanPath(id): CleanPath<String>,
) -> ApiResult<StatusCode> {
    super::admin_only(&caller, "manage webhooks")?;
    s.app.delete_webhook(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// An endpoint's deliveries, oldest first; `?status=dead` lists the dead letters.
#[utoipa::path(get, path = "/v1/webhooks/{webhook_id}/deliveries", tag = "webhooks",
    params(("webhook_id" = String, Path), ("status" = Option<String>, Query, description = "pending, delivered, dead"),
           ("after" = Option<String>, Query, description = "`next_cursor` of the previous page"),
           ("limit" = Option<i64>, Query, description = "1–1000, default 100")),
    responses((status = 200, body = DeliveryList), (status = 404, body = Problem), (status = 422, body = Problem)),
    security(("api_key" = [])))]
async fn list_deliveries(
    State(s): State<ApiState>,
    Extension(caller): Extension<Principal>,
    CleanPath(id): CleanPath<String>,
    q: QueryPairs,
) -> ApiResult<Json<DeliveryList>> {
    super::admin_only(&caller, "manage webhooks")?;
    q.only(&["status", "after", "limit"])?;
    let mut errors = Vec::new();
    let status = q.single("status")?;
    if status.is_some_and(|st| !["pending", "delivered", "dead"].contains(&st)) {
        errors.push(allot_app::FieldError::new("status", "one of pending, delivered, dead"));
    }
    let after = q.parse::<i64>("after")?.unwrap_or(0);
    let limit = q.parse::<i64>("limit")?.unwrap_or(DELIVERY_PAGE_DEFAULT);
    if !(1..=DELIVERY_PAGE_MAX).contains(&limit) {
        errors.push(allot_app::FieldError::new("limit", format!("must be 1–{DELIVERY_PAGE_MAX}")));
    }
    if !errors.is_empty() {
        return Err(ApiError::invalid(errors));
    }
    let mut rows = s.app.webhook_deliveries(&id, status, after, limit + 1).await?;
    let next_cursor = if rows.len() as i64 > limit {
        rows.truncate(limit as usize);
        rows.last().map(|d| d.seq.to_string())
    } else {
        None
    };
    Ok(Json(DeliveryList { deliveries: rows.into_iter().map(Into::into).collect(), next_cursor }))
}

/// Put an endpoint's dead deliveries back in the queue with fresh attempts.
#[utoipa::path(post, path = "/v1/webhooks/{webhook_id}/redrive", tag = "webhooks",
    params(("webhook_id" = String, Path)),
    responses((status = 200, body = RedriveView), (status = 404, body = Problem)),
    security(("api_key" = [])))]
async fn redrive(
    State(s): State<ApiState>,
    Extension(caller): Extension<Principal>,
    CleanPath(id): CleanPath<String>,
) -> ApiResult<Json<RedriveView>> {
    super::admin_only(&caller, "manage webhooks")?;
    Ok(Json(RedriveView { redriven: s.app.redrive_webhook(&id).await? }))
}
