//! The JSON body extractor: like `axum::Json`, but every rejection is a problem document
//! naming the offending field (via `serde_path_to_error`), and size limits answer 413.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode, header};
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// A JSON request body of type `T`.
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let raw = RawBody::from_request(req, state).await?;
        let m = raw.media_type.as_str();
        if !(m == "application/json" || (m.starts_with("application/") && m.ends_with("+json"))) {
            return Err(ApiError::unsupported_media_type("send the body as `Content-Type: application/json`"));
        }
        Ok(Body(parse_json(&raw.bytes)?))
    }
}

/// A raw request body with its media type (for documents accepted in several formats).
pub struct RawBody {
    pub media_type: String,
    pub bytes: Bytes,
}

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let media_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|v| v.trim().to_ascii_lowercase())
            .unwrap_or_default();
        let bytes = Bytes::from_request(req, state).await.map_err(|e| match e {
            BytesRejection::FailedToBufferBody(inner) if inner.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload-too-large",
                    "Payload too large",
                    "the request body exceeds this endpoint's size limit",
                )
            }
            other => ApiError::bad_request(None, other.body_text()),
        })?;
        Ok(RawBody { media_type, bytes })
    }
}

/// Parses JSON, naming the offending field's path in the problem. Anything after the
/// first JSON value but whitespace is refused (`{"a":1}{"a":2}` is not read as the first).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // An empty body is read as `{}`, so the answer names the first field it needs.
    let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) { b"{}" } else { bytes };
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let message = inner.to_string();
        // A string refused by its characters (crate::text) breaks a rule: 422, not 400.
        if let Some(rule) = message.strip_prefix(crate::text::REFUSED_TEXT) {
            let position = format!(" at line {} column {}", inner.line(), inner.column());
            let rule = rule.strip_suffix(position.as_str()).unwrap_or(rule);
            return ApiError::invalid(vec![allot_app::FieldError::new(path, rule)]);
        }
        // A missing field is named by its own path, not its parent's.
        let missing = message.strip_prefix("missing field `").and_then(|m| m.split('`').next());
        let field = match (path.as_str(), missing) {
            (".", Some(name)) => Some(name.to_owned()),
            (_, Some(name)) => Some(format!("{path}.{name}")),
            (".", None) => None,
            (_, None) => Some(path),
        };
        ApiError::bad_request(field, message)
    })?;
    de.end().map_err(|e| ApiError::bad_request(None, format!("{e}: the body must be one JSON value")))?;
    Ok(value)
}
