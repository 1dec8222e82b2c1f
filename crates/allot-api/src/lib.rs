//! The HTTP face of Allot: routes, request and response shapes, authentication, the one
//! error mapping to problem+json, request metrics and the generated OpenAPI document.
//!
//! What it must never do: business logic or SQL. A handler parses its input into core
//! types (`params`), calls one `allot_app` function and renders a view (`views`).
//!
//! Every `/v1` route sits behind the key check (a router layer, so no handler can forget
//! it); every write route behind its router's write guard (`routes::guard`: which kinds of
//! key may write there, checked before the body is read); handlers check the resource.

mod error;
pub mod idempotency;
mod json;
pub mod params;
mod query;
mod routes;
mod text;
mod views;
mod wire;

use std::future::Future;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use allot_app::App;
use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderName, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::timeout::TimeoutLayer;
use tracing::Instrument;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;

pub use error::{ApiError, Problem};

/// Body limit of ordinary requests (8 MiB).
pub const BODY_LIMIT_BYTES: usize = 8 * 1024 * 1024;
/// Body limit of bulk feed requests (deltas, snapshots): 64 MiB, room for 200,000 deltas.
pub const BULK_BODY_LIMIT_BYTES: usize = 64 * 1024 * 1024;
/// A request still running after this long is answered 503 and dropped.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// What every handler can reach.
#[derive(Clone)]
pub struct ApiState {
    pub app: App,
    metrics: PrometheusHandle,
    /// Slots for requests with large bodies (`routes::guard`).
    large_bodies: routes::guard::LargeBodies,
}

impl ApiState {
    pub fn new(app: App) -> ApiState {
        ApiState { app, metrics: metrics_handle().clone(), large_bodies: routes::guard::large_bodies() }
    }
}

/// The process-wide Prometheus recorder (installed once, on first use).
fn metrics_handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets(&[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0])
            .unwrap_or_else(|_| PrometheusBuilder::new());
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        // Fails only if another recorder is installed already; then ours renders nothing
        // but the server still runs.
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("a metrics recorder was already installed; /metrics will be empty");
        }
        handle
    })
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Allot",
        description = "Distributed order management. The network (nodes, calendars, carriers) and catalog; inventory \
positions, feeds, availability and inbound supply; checkout reservations; promises (delivery dates and pickup \
times for a cart); order capture, sourced by versioned routing policies with an explained decision, and \
sourcing quotes; the node workflow on fulfillment orders (accept, reject, pick, pack, ship, pickup), carrier \
scans, re-sourcing and backorders; holds, cancellations and customer contacts; the event stream, webhooks and \
promise accuracy. Every `/v1` call needs `Authorization: Bearer <key>`; errors are RFC 9457 problem documents.",
        license(name = "Apache-2.0")
    ),
    components(schemas(error::Problem, error::ProblemField)),
    modifiers(&ApiKeyScheme)
)]
struct ApiDoc;

struct ApiKeyScheme;

impl Modify for ApiKeyScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("api_key", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
    }
}

/// The whole router and its OpenAPI document.
pub fn router(state: ApiState) -> (Router, utoipa::openapi::OpenApi) {
    let v1 = OpenApiRouter::new()
        .merge(routes::nodes::router(&state))
        .merge(routes::items::router(&state))
        .merge(routes::policies::router(&state))
        .merge(routes::orders::router(&state))
        .merge(routes::reservations::router(&state))
        .merge(routes::events::router())
        .merge(routes::fulfillment::router(&state))
        .merge(routes::webhooks::router(&state))
        .merge(routes::promising::router(&state))
        .merge(routes::supply::router(&state))
        .merge(routes::inventory::router(&state).layer(DefaultBodyLimit::max(BODY_LIMIT_BYTES)))
        .merge(routes::inventory::bulk_router(&state).layer(DefaultBodyLimit::max(BULK_BODY_LIMIT_BYTES)))
        .layer(middleware::from_fn_with_state(state.clone(), require_key));
    let (router, openapi) =
        OpenApiRouter::with_openapi(ApiDoc::openapi()).merge(v1).merge(routes::ops::router()).split_for_parts();
    let document = openapi.clone();
    let request_id = HeaderName::from_static("x-request-id");
    let router = router
        .route(
            "/openapi.json",
            axum::routing::get(move || {
                let document = document.clone();
                async move { axum::Json(document) }
            }),
        )
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "not-found", "Not found", "no such route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "Method not allowed",
                "this route does not answer that method; see /openapi.json",
            )
        })
        .layer(middleware::from_fn(track_request))
        .layer(DefaultBodyLimit::max(BODY_LIMIT_BYTES))
        .layer(TimeoutLayer::with_status_code(StatusCode::SERVICE_UNAVAILABLE, REQUEST_TIMEOUT))
        .layer(CatchPanicLayer::custom(|_| ApiError::internal().into_response()))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        .layer(SetSensitiveRequestHeadersLayer::new([header::AUTHORIZATION]))
        .with_state(state);
    (router, openapi)
}

/// Authenticates `Authorization: Bearer <key>` and puts the caller's [`allot_app::Principal`]
/// into the request for handlers to check roles.
async fn require_key(State(state): State<ApiState>, mut req: Request, next: Next) -> Response {
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let Some(token) = token else {
        return ApiError::from(allot_app::AppError::Unauthenticated).into_response();
    };
    match state.app.authenticate(token).await {
        Ok(principal) => {
            tracing::Span::current().record("principal", tracing::field::display(Caller(&principal)));
            // Events written while serving this request name its caller as their actor.
            let actor = match &principal.role {
                allot_app::Role::Admin => "operator".to_owned(),
                role => role.to_text(),
            };
            req.extensions_mut().insert(principal);
            allot_app::acting_as(actor, next.run(req)).await
        }
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// How a request's caller is logged: its role and key id (never the key).
struct Caller<'a>(&'a allot_app::Principal);

impl std::fmt::Display for Caller<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.0.role.to_text(), self.0.key_id)
    }
}

/// Counts, times and logs every request, inside a span that carries the request id (also
/// answered as `x-request-id`), the route template and the caller. Logs method, route,
/// status, latency and the caller's role and key id only: no query strings, bodies,
/// headers or keys (no personal data, no secrets).
async fn track_request(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().clone();
    let route =
        req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned()).unwrap_or_else(|| "unmatched".to_owned());
    let request_id = req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let span = tracing::info_span!(
        "request",
        id = %request_id,
        method = %method,
        route = %route,
        principal = tracing::field::Empty,
    );
    let response = next.run(req).instrument(span.clone()).await;
    let elapsed = start.elapsed();
    let status = response.status().as_u16();
    let labels = [("method", method.to_string()), ("route", route), ("status", status.to_string())];
    metrics::counter!("allot_http_requests_total", &labels).increment(1);
    metrics::histogram!("allot_http_request_duration_seconds", &labels).record(elapsed.as_secs_f64());
    span.in_scope(|| tracing::info!(status, latency_us = elapsed.as_micros() as u64, "answered"));
    response
}

/// Serves until `shutdown` resolves, then lets in-flight requests finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: ApiState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (router, _) = router(state);
    axum::serve(listener, router).with_graceful_shutdown(shutdown).await
}
