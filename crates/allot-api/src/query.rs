//! Query-string extraction with problem+json rejections. Repeated keys (`?sku=A&sku=B`)
//! are kept, which `axum::extract::Query` cannot do.

use axum::extract::{FromRequestParts, RawQuery};
use axum::http::request::Parts;

use crate::error::ApiError;

/// Longest query string looked at (a named limit).
pub const QUERY_MAX_LEN: usize = 8 * 1024;

/// The query string as ordered (key, value) pairs, percent-decoded.
pub struct QueryPairs(pub Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for QueryPairs {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let RawQuery(raw) = RawQuery::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::bad_request(None, "unreadable query string"))?;
        let raw = raw.unwrap_or_default();
        if raw.len() > QUERY_MAX_LEN {
            return Err(ApiError::bad_request(None, format!("query string longer than {QUERY_MAX_LEN} bytes")));
        }
        let pairs = serde_urlencoded::from_str::<Vec<(String, String)>>(&raw)
            .map_err(|e| ApiError::bad_request(None, format!("malformed query string: {e}")))?;
        for (key, value) in &pairs {
            crate::text::check_query_value(key, value)?;
        }
        Ok(QueryPairs(pairs))
    }
}

impl QueryPairs {
    /// The only value of `key`; an error if it is repeated or if `allowed` lacks a key given.
    pub fn single(&self, key: &str) -> Result<Option<&str>, ApiError> {
        let mut values = self.0.iter().filter(|(k, _)| k == key).map(|(_, v)| v.as_str());
        let first = values.next();
        if values.next().is_some() {
            return Err(ApiError::bad_request(Some(key.to_owned()), "given more than once"));
        }
        Ok(first)
    }

    pub fn all(&self, key: &str) -> Vec<&str> {
        self.0.iter().filter(|(k, _)| k == key).map(|(_, v)| v.as_str()).collect()
    }

    /// Rejects parameters this endpoint does not know (typos should not pass silently).
    pub fn only(&self, allowed: &[&str]) -> Result<(), ApiError> {
        match self.0.iter().find(|(k, _)| !allowed.contains(&k.as_str())) {
            Some((k, _)) => Err(ApiError::bad_request(
                Some(k.clone()),
                format!("unknown query parameter; expected one of: {}", allowed.join(", ")),
            )),
            None => Ok(()),
        }
    }

    pub fn parse<T: std::str::FromStr>(&self, key: &str) -> Result<Option<T>, ApiError>
    where
        T::Err: std::fmt::Display,
    {
        self.single(key)?
            .map(|v| v.parse::<T>().map_err(|e| ApiError::bad_request(Some(key.to_owned()), e.to_string())))
            .transpose()
    }
}
