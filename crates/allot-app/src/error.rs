//! The app's error type: every way a use case can refuse, with enough context for the
//! API to render a precise problem document.

use allot_store::StoreError;

/// One offending input field, named by its JSON path (`deltas[3].sku`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl ToString) -> FieldError {
        FieldError { field: field.into(), message: message.to_string() }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// Input that parses but breaks a rule; every offending field is listed.
    #[error("invalid input ({} problems)", .0.len())]
    Invalid(Vec<FieldError>),
    #[error("{what} {id} not found")]
    NotFound { what: &'static str, id: String },
    /// A sequenced update older than what is stored.
    #[error("stale update")]
    Stale(Vec<FieldError>),
    /// The request conflicts with stored state (e.g. an external id reused with another body).
    #[error("conflict")]
    Conflict(Vec<FieldError>),
    #[error("authentication required")]
    Unauthenticated,
    #[error("this key may not {action}")]
    Forbidden { action: &'static str },
    #[error("storage failure")]
    Store(#[from] StoreError),
}

impl AppError {
    /// A position holds less `counter` stock (reserved, allocated) than `holder` (an order
    /// or reservation) says it took: the database disagrees with itself.
    pub(crate) fn stock_mismatch(
        node: &impl std::fmt::Display,
        sku: &impl std::fmt::Display,
        counter: &str,
        holder: &str,
    ) -> AppError {
        AppError::Store(StoreError::Corrupt {
            table: "positions",
            detail: format!("{node}/{sku} holds less {counter} stock than {holder}"),
        })
    }

    pub fn invalid(field: impl Into<String>, message: impl ToString) -> AppError {
        AppError::Invalid(vec![FieldError::new(field, message)])
    }
}
