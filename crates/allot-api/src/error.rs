//! The API's one error type and its single mapping to HTTP status codes and RFC 9457
//! `application/problem+json` documents.
//!
//! Every error kind has a stable `type` URI (`urn:allot:problem:<kind>`); clients branch on
//! it, never on `title` or `detail`. A 500 never carries internal text: the chain is
//! logged, the client gets a generic detail.

use allot_app::{AppError, FieldError};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// A problem document (RFC 9457).
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// Stable URI naming the kind of error, e.g. `urn:allot:problem:validation-failed`.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// Offending fields, for validation errors.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<ProblemField>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProblemField {
    /// JSON path of the field (`deltas[3].sku`), or the query/path parameter name.
    pub field: String,
    pub message: String,
}

/// An error answered to the client.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    kind: &'static str,
    title: &'static str,
    detail: String,
    errors: Vec<FieldError>,
}

impl ApiError {
    pub fn new(status: StatusCode, kind: &'static str, title: &'static str, detail: impl Into<String>) -> ApiError {
        ApiError { status, kind, title, detail: detail.into(), errors: Vec::new() }
    }

    /// Malformed request (JSON syntax, wrong types, unknown fields).
    pub fn bad_request(field: Option<String>, detail: impl Into<String>) -> ApiError {
        let detail = detail.into();
        let errors = field.map(|f| vec![FieldError::new(f, &detail)]).unwrap_or_default();
        ApiError { errors, ..ApiError::new(StatusCode::BAD_REQUEST, "bad-request", "Malformed request", detail) }
    }

    /// Well-formed input that breaks a rule.
    pub fn invalid(errors: Vec<FieldError>) -> ApiError {
        let detail = summary(&errors);
        ApiError {
            errors,
            ..ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "validation-failed", "Invalid input", detail)
        }
    }

    pub fn unsupported_media_type(detail: &str) -> ApiError {
        ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported-media-type", "Unsupported media type", detail)
    }

    pub fn not_found(what: &str, id: &str) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not-found", "Not found", format!("{what} {id} not found"))
    }

    pub fn internal() -> ApiError {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal error",
            "the server failed to handle the request; it has been logged",
        )
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }
}

fn summary(errors: &[FieldError]) -> String {
    match errors {
        [] => "the request is invalid".to_owned(),
        [one] => format!("{}: {}", one.field, one.message),
        [first, rest @ ..] => format!("{}: {} (and {} more)", first.field, first.message, rest.len()),
    }
}

impl From<AppError> for ApiError {
    fn from(e: AppError) -> ApiError {
        match e {
            AppError::Invalid(errors) => ApiError::invalid(errors),
            AppError::NotFound { what, id } => ApiError::not_found(what, &id),
            AppError::Stale(errors) => ApiError {
                detail: summary(&errors),
                errors,
                ..ApiError::new(StatusCode::CONFLICT, "stale-update", "Stale update", "")
            },
            AppError::Conflict(errors) => ApiError {
                detail: summary(&errors),
                errors,
                ..ApiError::new(StatusCode::CONFLICT, "conflict", "Conflict", "")
            },
            AppError::Unauthenticated => ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "Unauthorized",
                "send a valid API key as `Authorization: Bearer <key>`",
            ),
            AppError::Forbidden { action } => ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "Forbidden",
                format!("this key's role may not {action}"),
            ),
            AppError::Store(source) => {
                tracing::error!(error = %allot_app::ErrorChain(&source), "storage failure");
                ApiError::internal()
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Problem {
            kind: format!("urn:allot:problem:{}", self.kind),
            title: self.title.to_owned(),
            status: self.status.as_u16(),
            detail: self.detail,
            errors: self.errors.into_iter().map(|e| ProblemField { field: e.field, message: e.message }).collect(),
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        response
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
