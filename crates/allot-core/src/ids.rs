//! Identifiers chosen by the retailer (node ids, SKUs, channel ids), as newtypes so that a
//! `Sku` can never be passed where a `NodeId` is expected.
//!
//! All share one syntax: 1–64 characters from `A-Z a-z 0-9 . _ - :`. That keeps them safe
//! in URL paths, log lines, CSV files and event subjects without escaping.

use std::fmt;

/// Longest identifier accepted, in bytes (all allowed characters are ASCII).
pub const ID_MAX_LEN: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("must not be empty")]
    Empty,
    #[error("must be at most {max} characters, got {len}", max = ID_MAX_LEN)]
    TooLong { len: usize },
    #[error("may only contain letters, digits, '.', '_', '-' and ':' (found {found:?})")]
    BadChar { found: char },
}

fn check_id(raw: &str) -> Result<(), IdError> {
    if raw.is_empty() {
        return Err(IdError::Empty);
    }
    if let Some(found) = raw.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':'))) {
        return Err(IdError::BadChar { found });
    }
    if raw.len() > ID_MAX_LEN {
        return Err(IdError::TooLong { len: raw.len() });
    }
    Ok(())
}

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// Parses and validates an identifier.
            pub fn parse(raw: &str) -> Result<Self, IdError> {
                check_id(raw)?;
                Ok(Self(raw.to_owned()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// A copy of an identifier already parsed (its text kept elsewhere, e.g. in a
            /// compact explanation), without checking it again.
            #[allow(dead_code)]
            pub(crate) fn from_parsed(raw: &str) -> Self {
                debug_assert!(check_id(raw).is_ok(), "{raw:?} was not a parsed id");
                Self(raw.to_owned())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }
    };
}

string_id!(
    /// A fulfillment node (DC, store, drop-ship vendor, …), named by the retailer.
    NodeId
);
string_id!(
    /// A sellable item's stock-keeping unit.
    Sku
);
string_id!(
    /// A sales channel (web, app, a marketplace, a store's POS, …).
    ChannelId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_accept_the_documented_alphabet() {
        for ok in ["DC-1", "store.042", "SKU_9:red", &"a".repeat(ID_MAX_LEN)] {
            assert_eq!(NodeId::parse(ok).map(|id| id.to_string()), Ok(ok.to_owned()));
        }
    }

    #[test]
    fn ids_reject_empty_long_and_unsafe_input() {
        assert_eq!(Sku::parse(""), Err(IdError::Empty));
        assert_eq!(Sku::parse(&"a".repeat(ID_MAX_LEN + 1)), Err(IdError::TooLong { len: ID_MAX_LEN + 1 }));
        assert_eq!(Sku::parse("a/b"), Err(IdError::BadChar { found: '/' }));
        assert_eq!(Sku::parse("a b"), Err(IdError::BadChar { found: ' ' }));
        assert_eq!(Sku::parse("é"), Err(IdError::BadChar { found: 'é' }));
    }
}
