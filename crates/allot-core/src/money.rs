//! Money: integer minor units plus an ISO 4217 currency. No floats anywhere on this path.

use std::fmt;
use std::str::FromStr;

/// An ISO 4217 currency, parsed from its three-letter code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Currency(iso_currency::Currency);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code:?} is not an ISO 4217 currency code")]
pub struct UnknownCurrency {
    pub code: String,
}

impl Currency {
    pub fn parse(code: &str) -> Result<Currency, UnknownCurrency> {
        iso_currency::Currency::from_str(code).map(Currency).map_err(|_| UnknownCurrency { code: code.to_owned() })
    }

    pub fn code(self) -> &'static str {
        self.0.code()
    }

    /// Digits after the decimal point of the minor unit (USD 2, JPY 0, KWD 3).
    pub fn minor_unit_exponent(self) -> u16 {
        self.0.exponent().unwrap_or(0)
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn currencies_parse_by_iso_code_with_their_exponent() {
        let usd = Currency::parse("USD").unwrap();
        assert_eq!((usd.code(), usd.minor_unit_exponent()), ("USD", 2));
        assert_eq!(Currency::parse("JPY").unwrap().minor_unit_exponent(), 0);
        assert!(Currency::parse("usd").is_err());
        assert!(Currency::parse("XYZ").is_err());
    }
}
