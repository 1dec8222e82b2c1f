//! Money: integer minor units plus an ISO 4217 currency. No floats anywhere on this path.
//!
//! What it owns: [`Currency`] and the [`Money`] value that crosses module boundaries.
//! What it must never do: combine amounts of different currencies, or round silently.
//! Key invariant: arithmetic is checked — a mixed-currency sum or an overflow is an
//! error naming what was combined, never a wrong amount.

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

/// An amount of money: integer minor units (cents, yen, fils) of one currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Money {
    /// Minor units; negative for credits and refunds.
    pub amount_minor: i64,
    pub currency: Currency,
}

/// Why two amounts could not be combined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("cannot combine an amount in {left} with one in {right}")]
    MixedCurrencies { left: Currency, right: Currency },
    #[error("the {currency} amount is out of range")]
    Overflow { currency: Currency },
}

impl Money {
    pub fn new(amount_minor: i64, currency: Currency) -> Money {
        Money { amount_minor, currency }
    }

    pub fn zero(currency: Currency) -> Money {
        Money { amount_minor: 0, currency }
    }

    /// `self + other`, refused when the currencies differ or the sum leaves `i64`.
    pub fn checked_add(self, other: Money) -> Result<Money, MoneyError> {
        self.combine(other, i64::checked_add)
    }

    /// `self − other`, refused when the currencies differ or the difference leaves `i64`.
    pub fn checked_sub(self, other: Money) -> Result<Money, MoneyError> {
        self.combine(other, i64::checked_sub)
    }

    fn combine(self, other: Money, op: fn(i64, i64) -> Option<i64>) -> Result<Money, MoneyError> {
        if self.currency != other.currency {
            return Err(MoneyError::MixedCurrencies { left: self.currency, right: other.currency });
        }
        let amount_minor =
            op(self.amount_minor, other.amount_minor).ok_or(MoneyError::Overflow { currency: self.currency })?;
        Ok(Money { amount_minor, currency: self.currency })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usd(amount_minor: i64) -> Money {
        Money::new(amount_minor, Currency::parse("USD").unwrap())
    }

    #[test]
    fn currencies_parse_by_iso_code_with_their_exponent() {
        let usd = Currency::parse("USD").unwrap();
        assert_eq!((usd.code(), usd.minor_unit_exponent()), ("USD", 2));
        assert_eq!(Currency::parse("JPY").unwrap().minor_unit_exponent(), 0);
        assert!(Currency::parse("usd").is_err());
        assert!(Currency::parse("XYZ").is_err());
    }

    #[test]
    fn amounts_of_one_currency_add_and_subtract_exactly() {
        assert_eq!(usd(1_999).checked_add(usd(1)), Ok(usd(2_000)));
        assert_eq!(usd(500).checked_sub(usd(1_250)), Ok(usd(-750)));
        assert_eq!(Money::zero(usd(0).currency).checked_add(usd(7)), Ok(usd(7)));
    }

    #[test]
    fn mixing_currencies_is_refused_and_the_error_names_both() {
        let eur = Money::new(100, Currency::parse("EUR").unwrap());
        let err = usd(100).checked_add(eur).unwrap_err();
        assert_eq!(err, MoneyError::MixedCurrencies { left: usd(0).currency, right: eur.currency });
        assert_eq!(err.to_string(), "cannot combine an amount in USD with one in EUR");
        assert_eq!(eur.checked_sub(usd(1)).unwrap_err().to_string(), "cannot combine an amount in EUR with one in USD");
    }

    #[test]
    fn overflow_is_an_error_not_a_wrapped_amount() {
        let currency = usd(0).currency;
        assert_eq!(usd(i64::MAX).checked_add(usd(1)), Err(MoneyError::Overflow { currency }));
        assert_eq!(usd(i64::MIN).checked_sub(usd(1)), Err(MoneyError::Overflow { currency }));
    }
}
