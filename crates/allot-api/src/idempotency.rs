//! `Idempotency-Key` on any POST: the first request with a key runs; its answer is stored
//! and replayed (with `Idempotent-Replayed: true`) to every retry with the same key from
//! the same API key for 24 hours. The same key with a different request (method, path,
//! query or body) is a 409 problem; a retry while the first request still runs is a 409
//! that says so. Server errors (5xx) are not stored, so a retry runs again.
//!
//! The record is written in its own transactions around the request, not inside the
//! request's own transaction: a crash between the request's commit and the answer being
//! stored leaves a claim without an answer, which a retry takes over after
//! [`allot_app::IDEMPOTENCY_STALE_CLAIM_MS`] and runs again. Orders are still safe then:
//! (channel, external_id) makes the rerun answer the order already placed.

use allot_app::Principal;
use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::{ApiState, BULK_BODY_LIMIT_BYTES};

pub const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";
/// Longest key accepted.
pub const IDEMPOTENCY_KEY_MAX_LEN: usize = 255;
/// Largest answer stored for replay; a larger answer is not stored (the claim is dropped).
const ANSWER_MAX_BYTES: usize = 16 * 1024 * 1024;

fn conflict(detail: impl Into<String>) -> Response {
    ApiError::from(allot_app::AppError::Conflict(vec![allot_app::FieldError::new("Idempotency-Key", detail.into())]))
        .into_response()
}

pub async fn layer(State(state): State<ApiState>, req: Request, next: Next) -> Response {
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
    let Some(caller) = req.extensions().get::<Principal>().map(|p| p.key_id.clone()) else {
        return next.run(req).await;
    };
    let (parts, body) = req.into_parts();
    let bytes = match to_bytes(body, BULK_BODY_LIMIT_BYTES).await {
        Ok(b) => b,
        Err(_) => {
            return ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload-too-large",
                "Payload too large",
                "the request body exceeds this endpoint's size limit",
            )
            .into_response();
        }
    };
    // The request's identity: JSON is compared as data (key order and spacing do not matter).
    let canonical = match serde_json::from_slice::<serde_json::Value>(&bytes) {
        Ok(v) => v.to_string().into_bytes(),
        Err(_) => bytes.to_vec(),
    };
    let path = parts.uri.path_and_query().map_or_else(|| parts.uri.path().to_owned(), |p| p.as_str().to_owned());
    let hash =
        allot_app::content_hash(&[parts.method.as_str().as_bytes(), b" ", path.as_bytes(), b"\n", &canonical].concat());
    let store = state.app.store();
    let now = state.app.now_ms();
    let claim = match store.claim_idempotency_key(&caller, &key, parts.method.as_str(), &path, &hash, now).await {
        Ok(c) => c,
        Err(e) => return ApiError::from(allot_app::AppError::Store(e)).into_response(),
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
            let response = next.run(Request::from_parts(parts, Body::from(bytes))).await;
            let (rparts, rbody) = response.into_parts();
            let rbytes = match to_bytes(rbody, ANSWER_MAX_BYTES).await {
                Ok(b) => b,
                Err(_) => {
                    let _ = store.abandon_idempotency_key(&caller, &key).await;
                    return ApiError::internal().into_response();
                }
            };
            let stored = if rparts.status.is_server_error() {
                store.abandon_idempotency_key(&caller, &key).await
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
                store.complete_idempotency_key(&caller, &key, &answer).await
            };
            if let Err(e) = stored {
                tracing::warn!(error = %e, "storing an idempotency answer failed");
            }
            Response::from_parts(rparts, Body::from(rbytes))
        }
    }
}
