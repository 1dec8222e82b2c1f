//! What every write route does before its handler reads a byte of the body: check that the
//! caller's kind of key may write here at all, wait for a slot when the body is large, and
//! run `Idempotency-Key` within the route's own body limit.
//!
//! Each router declares its writes' guard next to its routes (`write_guard(…)` as a route
//! layer), so who may write where reads off the router. Reads (GET, HEAD) pass straight
//! through: they carry no body, and their handlers decide what a caller sees. Handlers
//! still check the resource (a channel's own orders, a node's own work); the guard only
//! refuses kinds of key that can never write on the route, so their bodies are never read
//! (an attacker's 60 MiB with a node key costs nothing).

use std::sync::Arc;
use std::time::Duration;

use allot_app::{Principal, Role};
use axum::extract::{FromRequestParts, RawPathParams, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use tokio::sync::Semaphore;

use crate::ApiState;
use crate::error::ApiError;

/// A body above this size (by `Content-Length`, or any body of unknown length) is large:
/// it needs one of [`LARGE_BODIES_MAX`] slots while its request runs.
pub const LARGE_BODY_BYTES: u64 = 256 * 1024;
/// Requests with large bodies admitted at once per server; more wait for a slot. With the
/// 64 MiB bulk limit this bounds what bodies can hold in memory at any moment.
pub const LARGE_BODIES_MAX: usize = 4;
/// How long a large request waits for a slot before it is answered 503 (`Retry-After`).
pub const LARGE_BODY_WAIT: Duration = Duration::from_secs(10);

/// The slots for large bodies, shared by every route of one server.
pub type LargeBodies = Arc<Semaphore>;

pub fn large_bodies() -> LargeBodies {
    Arc::new(Semaphore::new(LARGE_BODIES_MAX))
}

/// Kinds of key that may write on a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Writers {
    Admin,
    AdminOrChannel,
    AdminOrNode,
}

impl Writers {
    fn admit(self, role: &Role) -> bool {
        matches!(
            (self, role),
            (_, Role::Admin) | (Writers::AdminOrChannel, Role::Channel(_)) | (Writers::AdminOrNode, Role::Node(_))
        )
    }
}

/// How a refused key is answered: 403 naming the action, or — where a handler hides
/// another channel's resources — 404 for the resource named by a path parameter, as the
/// handler would (a node key cannot learn that an order exists).
#[derive(Debug, Clone, Copy)]
pub enum Refusal {
    Forbidden(&'static str),
    NotFound { what: &'static str, param: &'static str },
}

#[derive(Debug, Clone, Copy)]
pub struct WriteGuard {
    pub writers: Writers,
    pub refusal: Refusal,
    /// The route's body limit (also set with `DefaultBodyLimit` for its extractors).
    pub body_limit: usize,
}

/// `router` with `guard` in front of its write routes.
pub fn guarded(
    router: utoipa_axum::router::OpenApiRouter<ApiState>,
    state: &ApiState,
    guard: WriteGuard,
) -> utoipa_axum::router::OpenApiRouter<ApiState> {
    router.route_layer(middleware::from_fn_with_state((state.clone(), guard), run))
}

async fn run(State((state, guard)): State<(ApiState, WriteGuard)>, req: Request, next: Next) -> Response {
    if matches!(*req.method(), Method::GET | Method::HEAD) {
        return next.run(req).await;
    }
    // The key layer runs first and always leaves the caller; without one nothing is let in.
    let Some(caller) = req.extensions().get::<Principal>().cloned() else {
        return ApiError::from(allot_app::AppError::Unauthenticated).into_response();
    };
    if !guard.writers.admit(&caller.role) {
        return refuse(guard.refusal, req).await;
    }
    let _slot = if is_large(&req) {
        match tokio::time::timeout(LARGE_BODY_WAIT, state.large_bodies.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Some(permit),
            _ => return busy(),
        }
    } else {
        None
    };
    crate::idempotency::run(&state, &caller, guard.body_limit, req, next).await
}

fn is_large(req: &Request) -> bool {
    let length =
        req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    length.is_none_or(|n| n > LARGE_BODY_BYTES)
}

async fn refuse(refusal: Refusal, req: Request) -> Response {
    match refusal {
        Refusal::Forbidden(action) => ApiError::from(allot_app::AppError::Forbidden { action }).into_response(),
        Refusal::NotFound { what, param } => {
            let (mut parts, _body) = req.into_parts();
            let id = RawPathParams::from_request_parts(&mut parts, &())
                .await
                .ok()
                .and_then(|p| p.iter().find(|(name, _)| *name == param).map(|(_, v)| v.to_owned()))
                .unwrap_or_default();
            ApiError::not_found(what, &id).into_response()
        }
    }
}

fn busy() -> Response {
    let mut response = ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "busy",
        "Busy",
        "too many large requests at once; retry shortly",
    )
    .into_response();
    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("2"));
    response
}
