//! `/v1/nodes`: the fulfillment network.

use allot_app::Principal;
use allot_core::NodeId;
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
use crate::params::PutNode;
use crate::query::QueryPairs;
use crate::text::CleanPath;
use crate::views::{NodeList, NodeView};

pub fn router(state: &ApiState) -> OpenApiRouter<ApiState> {
    let routes = OpenApiRouter::new().routes(routes!(put_node, get_node)).routes(routes!(list_nodes));
    guarded(
        routes,
        state,
        WriteGuard {
            writers: Writers::Admin,
            refusal: Refusal::Forbidden("change the network"),
            body_limit: crate::BODY_LIMIT_BYTES,
        },
    )
}

/// Create or replace a node (admin).
#[utoipa::path(put, path = "/v1/nodes/{node_id}", tag = "network",
    params(("node_id" = String, Path, description = "1–64 of A-Z a-z 0-9 . _ - :")),
    request_body = PutNode,
    responses(
        (status = 201, description = "created", body = NodeView),
        (status = 200, description = "replaced", body = NodeView),
        (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 422, body = Problem)),
    security(("api_key" = [])))]
async fn put_node(
    State(s): State<ApiState>,
    Extension(caller): Extension<Principal>,
    CleanPath(node_id): CleanPath<String>,
    Body(body): Body<PutNode>,
) -> ApiResult<(StatusCode, Json<NodeView>)> {
    caller.require_admin("change the network")?;
    let id = NodeId::parse(&node_id).map_err(|e| ApiError::invalid(vec![allot_app::FieldError::new("node_id", e)]))?;
    let node = body.parse(id).map_err(ApiError::invalid)?;
    let (stored, created) = s.app.put_node(node).await?;
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(stored.into())))
}

/// One node.
#[utoipa::path(get, path = "/v1/nodes/{node_id}", tag = "network",
    params(("node_id" = String, Path)),
    responses((status = 200, body = NodeView), (status = 404, body = Problem)),
    security(("api_key" = [])))]
async fn get_node(State(s): State<ApiState>, CleanPath(node_id): CleanPath<String>) -> ApiResult<Json<NodeView>> {
    Ok(Json(s.app.node(&node_id)?.into()))
}

/// All nodes, by id, one page at a time.
#[utoipa::path(get, path = "/v1/nodes", tag = "network",
    params(("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
           ("limit" = Option<usize>, Query, description = "1–1000, default 100")),
    responses((status = 200, body = NodeList), (status = 400, body = Problem)),
    security(("api_key" = [])))]
async fn list_nodes(State(s): State<ApiState>, q: QueryPairs) -> ApiResult<Json<NodeList>> {
    q.only(&["cursor", "limit"])?;
    Ok(Json(s.app.nodes(q.single("cursor")?, q.parse("limit")?)?.into()))
}
