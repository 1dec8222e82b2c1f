//! `/v1/carriers/{id}` and `/v1/nodes/{id}/calendar`: what promising reads (issue 5).
//! Admin keys write; any key reads.

use allot_app::promise_doc::{CarrierDoc, NodeCalendarDoc};
use allot_app::{Principal, Role};
use axum::Extension;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::guard::{Refusal, WriteGuard, Writers, guarded};
use crate::ApiState;
use crate::error::{ApiResult, Problem};
use crate::json::Body;
use crate::params::PromiseParam;
use crate::query::QueryPairs;
use crate::text::CleanPath;
use crate::views::{PromiseAccuracyView, PromiseDocumentView, PromiseView};

pub fn router(state: &ApiState) -> OpenApiRouter<ApiState> {
    let carriers = OpenApiRouter::new().routes(routes!(put_carrier, get_carrier));
    let calendars = OpenApiRouter::new().routes(routes!(put_calendar, get_calendar));
    let promises = OpenApiRouter::new().routes(routes!(promise)).routes(routes!(promise_accuracy));
    guarded(
        carriers,
        state,
        WriteGuard {
            writers: Writers::Admin,
            refusal: Refusal::Forbidden("manage carriers"),
            body_limit: crate::BODY_LIMIT_BYTES,
        },
    )
    .merge(guarded(
        calendars,
        state,
        WriteGuard {
            writers: Writers::Admin,
            refusal: Refusal::Forbidden("manage node calendars"),
            body_limit: crate::BODY_LIMIT_BYTES,
        },
    ))
    .merge(guarded(
        promises,
        state,
        WriteGuard {
            writers: Writers::AdminOrChannel,
            refusal: Refusal::Forbidden("ask for promises"),
            body_limit: crate::BODY_LIMIT_BYTES,
        },
    ))
}

/// Default window of the accuracy report: the last 30 days.
const ACCURACY_WINDOW_MS: i64 = 30 * 24 * 3_600_000;

/// Promised against delivered (admin): per carrier service and lane (origin node →
/// destination region), deliveries in the window, transit p50/p90 in carrier days, and of
/// the promised ones how many arrived on time or late (and by how many days on average).
#[utoipa::path(get, path = "/v1/promise-accuracy", tag = "promising",
    params(("from" = Option<String>, Query, description = "RFC 3339; default 30 days before `to`"),
           ("to" = Option<String>, Query, description = "RFC 3339, exclusive; default now")),
    responses((status = 200, body = PromiseAccuracyView), (status = 403, body = Problem), (status = 422, body = Problem)),
    security(("api_key" = [])))]
async fn promise_accuracy(
    State(s): State<ApiState>,
    Extension(caller): Extension<Principal>,
    q: QueryPairs,
) -> ApiResult<Json<PromiseAccuracyView>> {
    super::admin_only(&caller, "read promise accuracy")?;
    q.only(&["from", "to"])?;
    let to = match q.single("to")? {
        Some(t) => super::timestamp_ms("to", t)?,
        None => s.app.now_ms(),
    };
    let from = match q.single("from")? {
        Some(f) => super::timestamp_ms("from", f)?,
        None => to - ACCURACY_WINDOW_MS,
    };
    Ok(Json(s.app.promise_accuracy(from, to).await?.into()))
}

/// Fulfilment options for a cart before checkout: per carrier service level the plan the
/// engine would make, with ship and delivery dates from node calendars and carrier
/// calendars, and pickup at nearby stores with the time it is ready. What cannot be
/// offered is listed with the reason. Nothing is reserved.
#[utoipa::path(post, path = "/v1/promises", tag = "promising",
    request_body = PromiseParam,
    responses((status = 200, body = PromiseView), (status = 400, body = Problem), (status = 422, body = Problem)),
    security(("api_key" = [])))]
async fn promise(
    State(s): State<ApiState>,
    Extension(caller): Extension<Principal>,
    Body(p): Body<PromiseParam>,
) -> ApiResult<Json<PromiseView>> {
    if let Role::Node(_) = caller.role {
        return Err(allot_app::AppError::Forbidden { action: "ask for promises" }.into());
    }
    if let Some(policy) = &p.policy {
        s.app.may_choose_policy(&caller.role, policy)?;
    }
    let q = p.parse().map_err(crate::error::ApiError::invalid)?;
    Ok(Json(s.app.promise(&q).await?.into()))
}

/// Create (201) or replace (200) a carrier and its services (transit bands, pickup
/// cut-off, delivery weekdays, holidays, rates). Every bad field is named.
#[utoipa::path(put, path = "/v1/carriers/{carrier_id}", tag = "promising",
    params(("carrier_id" = String, Path)), request_body(content = Object, description = "a carrier document"),
    responses((status = 201, body = PromiseDocumentView), (status = 200, body = PromiseDocumentView),
              (status = 400, body = Problem), (status = 422, body = Problem)),
    security(("api_key" = [])))]
async fn put_carrier(
    State(s): State<ApiState>,
    Extension(caller): Extension<Principal>,
    CleanPath(id): CleanPath<String>,
    Body(doc): Body<CarrierDoc>,
) -> ApiResult<(StatusCode, Json<PromiseDocumentView>)> {
    super::admin_only(&caller, "manage carriers")?;
    let (c, created) = s.app.put_carrier(&id, doc).await?;
    Ok((if created { StatusCode::CREATED } else { StatusCode::OK }, Json((&c.stored).into())))
}

#[utoipa::path(get, path = "/v1/carriers/{carrier_id}", tag = "promising",
    params(("carrier_id" = String, Path)),
    responses((status = 200, body = PromiseDocumentView), (status = 404, body = Problem)),
    security(("api_key" = [])))]
async fn get_carrier(
    State(s): State<ApiState>,
    CleanPath(id): CleanPath<String>,
) -> ApiResult<Json<PromiseDocumentView>> {
    Ok(Json((&s.app.carrier(&id)?.stored).into()))
}

/// Set a node's calendar: opening hours per weekday in the node's time zone, holidays,
/// processing and pickup preparation minutes, the carrier services it hands to.
#[utoipa::path(put, path = "/v1/nodes/{node_id}/calendar", tag = "promising",
    params(("node_id" = String, Path)), request_body(content = Object, description = "a node calendar"),
    responses((status = 201, body = PromiseDocumentView), (status = 200, body = PromiseDocumentView),
              (status = 404, body = Problem), (status = 422, body = Problem)),
    security(("api_key" = [])))]
async fn put_calendar(
    State(s): State<ApiState>,
    Extension(caller): Extension<Principal>,
    CleanPath(id): CleanPath<String>,
    Body(doc): Body<NodeCalendarDoc>,
) -> ApiResult<(StatusCode, Json<PromiseDocumentView>)> {
    super::admin_only(&caller, "manage node calendars")?;
    let (c, created) = s.app.put_node_calendar(&id, doc).await?;
    Ok((if created { StatusCode::CREATED } else { StatusCode::OK }, Json((&c.stored).into())))
}

#[utoipa::path(get, path = "/v1/nodes/{node_id}/calendar", tag = "promising",
    params(("node_id" = String, Path)),
    responses((status = 200, body = PromiseDocumentView), (status = 404, body = Problem)),
    security(("api_key" = [])))]
async fn get_calendar(
    State(s): State<ApiState>,
    CleanPath(id): CleanPath<String>,
) -> ApiResult<Json<PromiseDocumentView>> {
    Ok(Json((&s.app.node_calendar(&id)?.stored).into()))
}
