//! `/v1/items`: the catalog.

use allot_app::Principal;
use allot_core::Sku;
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
use crate::params::PutItem;
use crate::query::QueryPairs;
use crate::text::CleanPath;
use crate::views::{ItemList, ItemView};

pub fn router(state: &ApiState) -> OpenApiRouter<ApiState> {
    let routes = OpenApiRouter::new().routes(routes!(put_item, get_item)).routes(routes!(list_items));
    guarded(
        routes,
        state,
        WriteGuard {
            writers: Writers::Admin,
            refusal: Refusal::Forbidden("change the catalog"),
            body_limit: crate::BODY_LIMIT_BYTES,
        },
    )
}

/// Create or replace an item (admin).
#[utoipa::path(put, path = "/v1/items/{sku}", tag = "catalog",
    params(("sku" = String, Path)),
    request_body = PutItem,
    responses(
        (status = 201, description = "created", body = ItemView),
        (status = 200, description = "replaced", body = ItemView),
        (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 422, body = Problem)),
    security(("api_key" = [])))]
async fn put_item(
    State(s): State<ApiState>,
    Extension(caller): Extension<Principal>,
    CleanPath(sku): CleanPath<String>,
    Body(body): Body<PutItem>,
) -> ApiResult<(StatusCode, Json<ItemView>)> {
    caller.require_admin("change the catalog")?;
    let sku = Sku::parse(&sku).map_err(|e| ApiError::invalid(vec![allot_app::FieldError::new("sku", e)]))?;
    let item = body.parse(sku).map_err(ApiError::invalid)?;
    let (stored, created) = s.app.put_item(item).await?;
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(stored.into())))
}

/// One item.
#[utoipa::path(get, path = "/v1/items/{sku}", tag = "catalog",
    params(("sku" = String, Path)),
    responses((status = 200, body = ItemView), (status = 404, body = Problem)),
    security(("api_key" = [])))]
async fn get_item(State(s): State<ApiState>, CleanPath(sku): CleanPath<String>) -> ApiResult<Json<ItemView>> {
    Ok(Json(s.app.item(&sku)?.into()))
}

/// All items, by SKU, one page at a time.
#[utoipa::path(get, path = "/v1/items", tag = "catalog",
    params(("cursor" = Option<String>, Query), ("limit" = Option<usize>, Query, description = "1–1000, default 100")),
    responses((status = 200, body = ItemList), (status = 400, body = Problem)),
    security(("api_key" = [])))]
async fn list_items(State(s): State<ApiState>, q: QueryPairs) -> ApiResult<Json<ItemList>> {
    q.only(&["cursor", "limit"])?;
    Ok(Json(s.app.items(q.single("cursor")?, q.parse("limit")?)?.into()))
}
