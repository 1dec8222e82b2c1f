//! Quantities of units: unsigned, bounded, with checked arithmetic only.

use std::fmt;

/// A count of units. Never negative; never above [`Qty::MAX`], so that sums of a few
/// quantities cannot overflow `u64` and every value fits a signed 64-bit database column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Qty(u64);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum QtyError {
    #[error("quantity {value} exceeds the limit of {max}", max = Qty::MAX.0)]
    TooLarge { value: u128 },
    #[error("quantity would go negative ({value})")]
    Negative { value: i128 },
}

impl Qty {
    /// Largest quantity accepted anywhere: one billion units (a named limit, not a type limit).
    pub const MAX: Qty = Qty(1_000_000_000);
    pub const ZERO: Qty = Qty(0);
    pub const ONE: Qty = Qty(1);

    pub fn new(value: u64) -> Result<Qty, QtyError> {
        if value > Self::MAX.0 {
            return Err(QtyError::TooLarge { value: u128::from(value) });
        }
        Ok(Qty(value))
    }

    pub fn get(self) -> u64 {
        self.0
    }

    pub fn checked_add(self, other: Qty) -> Result<Qty, QtyError> {
        // Both are ≤ 1e9, so the u64 sum cannot overflow.
        Qty::new(self.0 + other.0)
    }

    pub fn checked_sub(self, other: Qty) -> Option<Qty> {
        self.0.checked_sub(other.0).map(Qty)
    }

    pub fn saturating_sub(self, other: Qty) -> Qty {
        Qty(self.0.saturating_sub(other.0))
    }

    /// Applies a signed change: an error if the result is negative or above the limit.
    pub fn apply_delta(self, delta: i64) -> Result<Qty, QtyError> {
        let value = i128::from(self.0) + i128::from(delta);
        if value < 0 {
            return Err(QtyError::Negative { value });
        }
        // value is in 0..=u64::MAX + i64::MAX, which fits u128.
        let value = value as u128;
        if value > u128::from(Self::MAX.0) {
            return Err(QtyError::TooLarge { value });
        }
        Ok(Qty(value as u64))
    }
}

impl fmt::Display for Qty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantity_limit_is_one_billion() {
        assert!(Qty::new(1_000_000_000).is_ok());
        assert_eq!(Qty::new(1_000_000_001), Err(QtyError::TooLarge { value: 1_000_000_001 }));
    }

    #[test]
    fn deltas_never_go_negative_or_past_the_limit() {
        let q = Qty::new(5).unwrap();
        assert_eq!(q.apply_delta(-5), Ok(Qty::ZERO));
        assert_eq!(q.apply_delta(-6), Err(QtyError::Negative { value: -1 }));
        assert_eq!(q.apply_delta(i64::MIN), Err(QtyError::Negative { value: 5 + i128::from(i64::MIN) }));
        assert!(matches!(q.apply_delta(i64::MAX), Err(QtyError::TooLarge { .. })));
        assert_eq!(Qty::MAX.apply_delta(0), Ok(Qty::MAX));
    }
}
