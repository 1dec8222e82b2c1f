//! `Idempotency-Key` on any POST, as HTTP: the first request with a key runs; its answer
//! is stored and replayed (with `Idempotent-Replayed: true`) to every retry with the same
//! key from the same API key for 24 hours. The same key with a different request (method,
//! path, query or body bytes) is a 409 problem; a retry while the first request still runs
//! is a 409 that says so. Server errors (5xx) are not stored, so a retry runs again.
//!
//! It runs inside the route's write guard (`routes::guard`), so the caller's kind of key
//! was already admitted and the body is read at most up to the route's own limit, once:
//! the fingerprint is computed chunk by chunk as it arrives and the same chunks are handed
//! to the handler. The claim and the stored answer are the app's (`allot_app::idempotency`).

use allot_app::{ErrorChain, Principal, RequestFingerprint};
use axum::body::{Body, Bytes, to_bytes};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;

use crate::ApiState;
use crate::error::ApiError;

pub const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";
/// Longest key accepted.
pub const IDEMPOTENCY_KEY_MAX_LEN: usize = 255;
/// Largest answer stored for replay; a larger answer is not stored (the claim is dropped).
const ANSWER_MAX_BYTES: usize = 16 * 1024 * 1024;

fn conflict(detail: impl Into<String>) -> Response {
    ApiError::from(allot_app::AppError::Conflict(vec![allot_app::FieldError::new("Idempotency-Key", detail.into())]))
        .into_response()
}

fn too_large() -> Response {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload-too-large",
        "Payload too large",
        "the request body exceeds this endpoint's size limit",
    )
    .into_response()
}

/// Runs `req` under its `Idempotency-Key`, if it is a POST with one; otherwise as it is.
pub(crate) async fn run(
    state: &ApiState,
    caller: &Principal,
    body_limit: usize,
    req: axum::extract::Request,
    next: Next,
) -> Response {
    if req.method() != Method::POST {
        return next.run(req).await;
    }
    let Some(raw_key) = req.headers().get(IDEMPOTENCY_KEY_HEADER) else {
        return next.run(req).await;
    };
    let key = match raw_key.to_str() {
        Ok(k) if !k.is_empty() && k.len() <= IDEMPOTENCY_KEY_MAX_LEN && k.bytes().all(|b| b.is_ascii_graphic()) => {
            k.to_owned()
        }
        _ => {
            return ApiError::bad_request(
                Some("Idempotency-Key".to_owned()),
                format!("must be 1–{IDEMPOTENCY_KEY_MAX_LEN} visible ASCII characters"),
            )
            .into_response();
        }
    };
    let (parts, body) = req.into_parts();
    let path = parts.uri.path_and_query().map_or_else(|| parts.uri.path().to_owned(), |p| p.as_str().to_owned());
    let mut fingerprint = RequestFingerprint::new(parts.method.as_str(), &path);
    let Ok(bytes) = read_limited(body, body_limit, &mut fingerprint).await else {
        return too_large();
    };
    let fingerprint = fingerprint.finish();
    let app = &state.app;
    let caller_id = caller.key_id.as_str();
    let claim = match app.claim_idempotency_key(caller_id, &key, parts.method.as_str(), &path, &fingerprint).await {
        Ok(c) => c,
        Err(e) => return ApiError::from(e).into_response(),
    };
    match claim {
        allot_app::Claim::Replay(answer) => {
            let mut response = Response::new(Body::from(answer.body));
            *response.status_mut() = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::OK);
            if let Ok(v) = HeaderValue::from_str(&answer.content_type) {
                response.headers_mut().insert(header::CONTENT_TYPE, v);
            }
            response.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
            response
        }
        allot_app::Claim::Mismatch { method, path } => conflict(format!(
            "this key was used in the last 24 hours for a different request ({method} {path} or another body)"
        )),
        allot_app::Claim::InFlight => conflict("a request with this key is still being processed; retry later"),
        allot_app::Claim::Run => {
            let response = next.run(axum::extract::Request::from_parts(parts, Body::from(bytes))).await;
            remember(state, caller_id, &key, response).await
        }
    }
}

/// Reads a body up to `limit` bytes, feeding each chunk to the fingerprint as it arrives
/// into one buffer (the handler gets that buffer: no second copy). `Err` once the body
/// passes the limit or fails.
async fn read_limited(body: Body, limit: usize, fingerprint: &mut RequestFingerprint) -> Result<Bytes, ()> {
    let mut body = http_body_util::Limited::new(body, limit);
    let mut buf = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| ())?;
        if let Ok(data) = frame.into_data() {
            fingerprint.update(&data);
            buf.extend_from_slice(&data);
        }
    }
    Ok(Bytes::from(buf))
}

/// Stores a claimed request's answer for its retries (not a server error's: a retry of
/// those runs again) and hands the answer back.
async fn remember(state: &ApiState, caller_id: &str, key: &str, response: Response) -> Response {
    let app = &state.app;
    let (rparts, rbody) = response.into_parts();
    let Ok(rbytes) = to_bytes(rbody, ANSWER_MAX_BYTES).await else {
        if let Err(e) = app.abandon_idempotency_key(caller_id, key).await {
            tracing::warn!(error = %ErrorChain(&e), "dropping an idempotency claim failed");
        }
        return ApiError::internal().into_response();
    };
    let stored = if rparts.status.is_server_error() {
        app.abandon_idempotency_key(caller_id, key).await
    } else {
        let answer = allot_app::StoredAnswer {
            status: rparts.status.as_u16(),
            content_type: rparts
                .headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned(),
            body: String::from_utf8_lossy(&rbytes).into_owned(),
        };
        app.complete_idempotency_key(caller_id, key, &answer).await
    };
    if let Err(e) = stored {
        tracing::warn!(error = %ErrorChain(&e), "storing an idempotency answer failed");
    }
    Response::from_parts(rparts, Body::from(rbytes))
}
