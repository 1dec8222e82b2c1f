//! `/v1/policies` (versioned routing policies) and `/v1/sourcing/quote`.

use allot_app::Principal;
use allot_app::Role;
use allot_app::policy_doc::DocFormat;
use axum::Extension;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::guard::{Refusal, WriteGuard, Writers, guarded};
use crate::ApiState;
use crate::error::{ApiError, ApiResult, Problem};
use crate::json::{Body, RawBody};
use crate::params::OrderParam;
use crate::query::QueryPairs;
use crate::text::CleanPath;
use crate::views::{PolicyList, PolicyView, QuoteView};

pub fn router(state: &ApiState) -> OpenApiRouter<ApiState> {
    let policies = OpenApiRouter::new()
        .routes(routes!(put_policy, get_policy))
        .routes(routes!(list_policies))
        .routes(routes!(activate_policy));
    let quotes = OpenApiRouter::new().routes(routes!(quote));
    guarded(
        policies,
        state,
        WriteGuard {
            writers: Writers::Admin,
            refusal: Refusal::Forbidden("change policies"),
            body_limit: crate::BODY_LIMIT_BYTES,
        },
    )
    .merge(guarded(
        quotes,
        state,
        WriteGuard {
            writers: Writers::AdminOrChannel,
            refusal: Refusal::Forbidden("request sourcing quotes"),
            body_limit: crate::BODY_LIMIT_BYTES,
        },
    ))
}

/// Store a policy document as a new version (admin). JSON (`application/json`) or TOML
/// (`application/toml`). Identical content answers 200 with the existing version.
#[utoipa::path(put, path = "/v1/policies/{name}", tag = "sourcing",
    params(("name" = String, Path)),
    request_body(content = Object, description = "policy document", content_type = "application/json"),
    responses((status = 201, body = PolicyView), (status = 200, body = PolicyView),
              (status = 400, body = Problem), (status = 415, body = Problem), (status = 422, body = Problem)),
    security(("api_key" = [])))]
async fn put_policy(
    State(s): State<ApiState>,
    Extension(caller): Extension<Principal>,
    CleanPath(name): CleanPath<String>,
    body: RawBody,
) -> ApiResult<(StatusCode, Json<PolicyView>)> {
    caller.require_admin("change policies")?;
    let format = match body.media_type.as_str() {
        "application/json" => DocFormat::Json,
        "application/toml" | "text/toml" => DocFormat::Toml,
        _ => {
            return Err(ApiError::unsupported_media_type("send the policy as application/json or application/toml"));
        }
    };
    let text = std::str::from_utf8(&body.bytes).map_err(|_| ApiError::bad_request(None, "the body is not UTF-8"))?;
    let (info, created) = s.app.put_policy(&name, text, format).await?;
    Ok((if created { StatusCode::CREATED } else { StatusCode::OK }, Json(info.into())))
}

/// A policy version (default: the latest).
#[utoipa::path(get, path = "/v1/policies/{name}", tag = "sourcing",
    params(("name" = String, Path), ("version" = Option<i64>, Query)),
    responses((status = 200, body = PolicyView), (status = 404, body = Problem)),
    security(("api_key" = [])))]
async fn get_policy(
    State(s): State<ApiState>,
    CleanPath(name): CleanPath<String>,
    q: QueryPairs,
) -> ApiResult<Json<PolicyView>> {
    q.only(&["version"])?;
    Ok(Json(s.app.policy(&name, q.parse("version")?).await?.into()))
}

/// The latest version of every policy, and which is active.
#[utoipa::path(get, path = "/v1/policies", tag = "sourcing",
    responses((status = 200, body = PolicyList)), security(("api_key" = [])))]
async fn list_policies(State(s): State<ApiState>) -> Json<PolicyList> {
    let active = s.app.active_policy_stamp();
    let policies = s
        .app
        .policies()
        .into_iter()
        .map(|p| {
            let active_version = (p.stored.name == active.name).then_some(active.version);
            PolicyView { active_version, ..p.into() }
        })
        .collect();
    Json(PolicyList { active: active.into(), policies })
}

/// Make a policy version (default: the latest) the one orders and quotes use (admin).
#[utoipa::path(post, path = "/v1/policies/{name}/activate", tag = "sourcing",
    params(("name" = String, Path), ("version" = Option<i64>, Query)),
    responses((status = 200, body = PolicyView), (status = 404, body = Problem)),
    security(("api_key" = [])))]
async fn activate_policy(
    State(s): State<ApiState>,
    Extension(caller): Extension<Principal>,
    CleanPath(name): CleanPath<String>,
    q: QueryPairs,
) -> ApiResult<Json<PolicyView>> {
    caller.require_admin("activate policies")?;
    q.only(&["version"])?;
    if name == allot_app::BUILTIN_POLICY {
        // The way back to the built-in default: no stored policy active.
        return Ok(Json(s.app.activate_builtin_policy().await?.into()));
    }
    Ok(Json(s.app.activate_policy(&name, q.parse("version")?).await?.into()))
}

/// Source an order without reserving anything: the plan, its cost terms, the explanation
/// and the policy stamp. Admin and channel keys.
#[utoipa::path(post, path = "/v1/sourcing/quote", tag = "sourcing",
    request_body = OrderParam,
    responses((status = 200, body = QuoteView), (status = 400, body = Problem), (status = 422, body = Problem)),
    security(("api_key" = [])))]
async fn quote(
    State(s): State<ApiState>,
    Extension(caller): Extension<Principal>,
    Body(body): Body<OrderParam>,
) -> ApiResult<Json<QuoteView>> {
    let key_channel = match &caller.role {
        Role::Admin => None,
        Role::Channel(c) => Some(c),
        Role::Node(_) => return Err(allot_app::AppError::Forbidden { action: "request sourcing quotes" }.into()),
    };
    if let Some(policy) = &body.policy {
        s.app.may_choose_policy(&caller.role, policy)?;
    }
    let order = body.parse(key_channel).map_err(ApiError::invalid)?;
    Ok(Json(s.app.quote(&order, body.policy.as_deref())?.into()))
}
