//! `/v1/inventory` and `/v1/availability`: positions, feeds and ATP.

use allot_app::{AvailabilityQuery, FieldError, Principal};
use allot_core::{ChannelId, FulfillmentMethod, GeoPoint, NodeId, Sku};
use axum::Extension;
use axum::Json;
use axum::extract::State;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::guard::{Refusal, WriteGuard, Writers, guarded};
use crate::ApiState;
use crate::error::{ApiError, ApiResult, Problem};
use crate::json::Body;
use crate::params::{PostDeltas, PostSnapshot, PutPosition};
use crate::query::QueryPairs;
use crate::text::CleanPath;
use crate::views::{AvailabilityView, DeltasApplied, PositionView, SnapshotApplied};

/// Routes with the default body limit.
pub fn router(state: &ApiState) -> OpenApiRouter<ApiState> {
    let routes = OpenApiRouter::new().routes(routes!(put_position, get_position)).routes(routes!(availability));
    guarded(
        routes,
        state,
        WriteGuard {
            writers: Writers::Admin,
            refusal: Refusal::Forbidden("change inventory"),
            body_limit: crate::BODY_LIMIT_BYTES,
        },
    )
}

/// Deltas and snapshots: bodies up to the bulk limit.
pub fn bulk_router(state: &ApiState) -> OpenApiRouter<ApiState> {
    let routes = OpenApiRouter::new().routes(routes!(post_deltas)).routes(routes!(post_snapshot));
    guarded(
        routes,
        state,
        WriteGuard {
            writers: Writers::Admin,
            refusal: Refusal::Forbidden("change inventory"),
            body_limit: crate::BULK_BODY_LIMIT_BYTES,
        },
    )
}

fn ids(node_id: &str, sku: &str) -> Result<(NodeId, Sku), ApiError> {
    let node = NodeId::parse(node_id).map_err(|_| ApiError::not_found("node", node_id))?;
    let sku = Sku::parse(sku).map_err(|_| ApiError::not_found("item", sku))?;
    Ok((node, sku))
}

/// Set the absolute counts of one position (admin). A `seq` not above the stored one: 409.
#[utoipa::path(put, path = "/v1/inventory/{node_id}/{sku}", tag = "inventory",
    params(("node_id" = String, Path), ("sku" = String, Path)),
    request_body = PutPosition,
    responses((status = 200, body = PositionView), (status = 404, body = Problem),
              (status = 409, description = "stale seq", body = Problem), (status = 422, body = Problem)),
    security(("api_key" = [])))]
async fn put_position(
    State(s): State<ApiState>,
    Extension(caller): Extension<Principal>,
    CleanPath((node_id, sku)): CleanPath<(String, String)>,
    Body(body): Body<PutPosition>,
) -> ApiResult<Json<PositionView>> {
    caller.require_admin("change inventory")?;
    let (node, sku) = ids(&node_id, &sku)?;
    let update = body.parse().map_err(ApiError::invalid)?;
    Ok(Json(s.app.put_position(node, sku, update).await?.into()))
}

/// One position with reserved, allocated and ATP.
#[utoipa::path(get, path = "/v1/inventory/{node_id}/{sku}", tag = "inventory",
    params(("node_id" = String, Path), ("sku" = String, Path)),
    responses((status = 200, body = PositionView), (status = 404, body = Problem)),
    security(("api_key" = [])))]
async fn get_position(
    State(s): State<ApiState>,
    CleanPath((node_id, sku)): CleanPath<(String, String)>,
) -> ApiResult<Json<PositionView>> {
    let (node, sku) = ids(&node_id, &sku)?;
    Ok(Json(s.app.position(&node, &sku)?.into()))
}

/// Apply on-hand deltas, all or nothing (admin). Up to 200,000 per request; every
/// offending delta is listed (422; 409 when all offenders are stale).
#[utoipa::path(post, path = "/v1/inventory/deltas", tag = "inventory",
    request_body = PostDeltas,
    responses((status = 200, body = DeltasApplied), (status = 409, body = Problem),
              (status = 413, body = Problem), (status = 422, body = Problem)),
    security(("api_key" = [])))]
async fn post_deltas(
    State(s): State<ApiState>,
    Extension(caller): Extension<Principal>,
    Body(body): Body<PostDeltas>,
) -> ApiResult<Json<DeltasApplied>> {
    caller.require_admin("change inventory")?;
    let deltas = body.parse().map_err(ApiError::invalid)?;
    let applied = deltas.len();
    let positions_changed = s.app.apply_deltas(deltas).await?;
    Ok(Json(DeltasApplied { applied, positions_changed }))
}

/// Replace a node's whole inventory (admin): SKUs absent from the snapshot go to zero.
#[utoipa::path(post, path = "/v1/inventory/snapshots/{node_id}", tag = "inventory",
    params(("node_id" = String, Path)),
    request_body = PostSnapshot,
    responses((status = 200, body = SnapshotApplied), (status = 404, body = Problem),
              (status = 409, body = Problem), (status = 422, body = Problem)),
    security(("api_key" = [])))]
async fn post_snapshot(
    State(s): State<ApiState>,
    Extension(caller): Extension<Principal>,
    CleanPath(node_id): CleanPath<String>,
    Body(body): Body<PostSnapshot>,
) -> ApiResult<Json<SnapshotApplied>> {
    caller.require_admin("change inventory")?;
    let node = NodeId::parse(&node_id).map_err(|_| ApiError::not_found("node", &node_id))?;
    let snapshot = body.parse().map_err(ApiError::invalid)?;
    let positions_written = s.app.apply_snapshot(node.clone(), snapshot).await?;
    Ok(Json(SnapshotApplied { node_id: node.to_string(), positions_written }))
}

/// Network and per-node ATP for up to 100 SKUs.
#[utoipa::path(get, path = "/v1/availability", tag = "inventory",
    params(("sku" = Vec<String>, Query, description = "repeat for several SKUs"),
           ("lat" = Option<f64>, Query), ("lon" = Option<f64>, Query),
           ("radius_km" = Option<f64>, Query, description = "needs lat and lon"),
           ("method" = Option<String>, Query, description = "ship, pickup, curbside, ship_to_store, same_day"),
           ("channel" = Option<String>, Query, description = "availability as sourcing sells it to this channel: \
            the policy's rule for it applies (excluded nodes, node types, stores' protected units); a channel key \
            always sees its own channel's"),
           ("policy" = Option<String>, Query, description = "whose rules apply (admin keys; default: the active policy)")),
    responses((status = 200, body = AvailabilityView), (status = 400, body = Problem), (status = 403, body = Problem),
              (status = 422, body = Problem)),
    security(("api_key" = [])))]
async fn availability(
    State(s): State<ApiState>,
    Extension(caller): Extension<Principal>,
    q: QueryPairs,
) -> ApiResult<Json<AvailabilityView>> {
    q.only(&["sku", "lat", "lon", "radius_km", "method", "channel", "policy"])?;
    let mut errors = Vec::new();
    let skus: Vec<Sku> = q
        .all("sku")
        .into_iter()
        .filter_map(|raw| Sku::parse(raw).map_err(|e| errors.push(FieldError::new("sku", e))).ok())
        .collect();
    let near = match (q.parse::<f64>("lat")?, q.parse::<f64>("lon")?) {
        (Some(lat), Some(lon)) => GeoPoint::new(lat, lon).map_err(|e| errors.push(FieldError::new("lat", e))).ok(),
        (None, None) => None,
        _ => {
            errors.push(FieldError::new("lat", "lat and lon go together"));
            None
        }
    };
    let radius_km = q.parse::<f64>("radius_km")?;
    if radius_km.is_some_and(|r| !(r.is_finite() && r >= 0.0)) {
        errors.push(FieldError::new("radius_km", "must be a non-negative number"));
    }
    let method = match q.single("method")? {
        Some(m) => FulfillmentMethod::parse(m).or_else(|| {
            errors.push(FieldError::new("method", format!("expected one of {}", FulfillmentMethod::expected())));
            None
        }),
        None => None,
    };
    let named = q
        .single("channel")?
        .and_then(|c| ChannelId::parse(c).map_err(|e| errors.push(FieldError::new("channel", e))).ok());
    let policy = q.single("policy")?.map(str::to_owned);
    let channel = match &caller.role {
        allot_app::Role::Channel(own) => {
            if named.as_ref().is_some_and(|n| n != own) {
                errors.push(FieldError::new("channel", "a channel key sees its own channel's availability"));
            }
            if policy.is_some() {
                return Err(allot_app::AppError::Forbidden { action: "choose a routing policy" }.into());
            }
            Some(own.clone())
        }
        _ => named,
    };
    if !errors.is_empty() {
        return Err(ApiError::invalid(errors));
    }
    let query = AvailabilityQuery { skus, near, radius_km, method, channel, policy };
    Ok(Json(s.app.availability(&query)?.into()))
}
