//! Text from requests, checked where it enters: path segments ([`CleanPath`]), query
//! values (`query::QueryPairs`) and body strings ([`Reference`], [`Prose`], refused while
//! the body is parsed). The rules are the core's (`allot_core::text`): ids and references
//! hold no control, format or invisible characters and are not blank; prose holds
//! printable Unicode and line breaks, never NUL. A refusal is a 422 naming the field, so
//! no such text ever reaches a handler or a database (PostgreSQL cannot store NUL, and
//! SQLite must not hold what PostgreSQL refuses).

use std::fmt;

use allot_core::text::{TextError, check_prose, check_reference, check_visible};
use axum::extract::{FromRequestParts, Path, RawPathParams};
use axum::http::request::Parts;
use serde::de::{DeserializeOwned, Deserializer, Error as _};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::ApiError;

/// Starts the message of a body string refused by [`Reference`] or [`Prose`], so that
/// `json::parse_json` answers 422 (a rule broken) rather than 400 (malformed JSON).
pub(crate) const REFUSED_TEXT: &str = "refused text: ";

/// An id, key, code or reference in a request body: no control, format or invisible
/// characters, not blank (lengths are checked by each field's parser).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, ToSchema)]
#[schema(value_type = String)]
pub struct Reference(String);

/// Text for people in a request body (names, reasons, notes): printable Unicode, tabs and
/// line breaks, never NUL or other control characters.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, ToSchema)]
#[schema(value_type = String)]
pub struct Prose(String);

macro_rules! checked_text {
    ($name:ident, $check:expr) => {
        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl From<$name> for String {
            fn from(t: $name) -> String {
                t.0
            }
        }

        impl std::ops::Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let raw = String::deserialize(d)?;
                let check: fn(&str) -> Result<(), TextError> = $check;
                match check(&raw) {
                    Ok(()) => Ok($name(raw)),
                    Err(e) => Err(D::Error::custom(format!("{REFUSED_TEXT}{e}"))),
                }
            }
        }
    };
}

checked_text!(Reference, |raw| check_reference(raw, usize::MAX));
checked_text!(Prose, |raw| check_prose(raw, usize::MAX));

/// `axum::extract::Path`, after checking every segment as a reference: a segment holding
/// a control or invisible character, or only whitespace, is a 422 naming the parameter.
pub struct CleanPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for CleanPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let raw = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::bad_request(None, e.body_text()))?;
        let errors: Vec<allot_app::FieldError> = raw
            .iter()
            .filter_map(|(name, value)| {
                check_reference(value, usize::MAX).err().map(|e| allot_app::FieldError::new(name, e.to_string()))
            })
            .collect();
        if !errors.is_empty() {
            return Err(ApiError::invalid(errors));
        }
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(v)| CleanPath(v))
            .map_err(|e| ApiError::bad_request(None, e.body_text()))
    }
}

/// A query value's characters: no control or invisible characters (values may be empty;
/// each parameter's parser decides what else it accepts).
pub(crate) fn check_query_value(key: &str, value: &str) -> Result<(), ApiError> {
    check_visible(key)
        .and_then(|()| check_visible(value))
        .map_err(|e| ApiError::invalid(vec![allot_app::FieldError::new(key, e.to_string())]))
}
