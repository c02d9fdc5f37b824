//! Exact prices: integer cents inside, a JSON number outside.

use std::fmt;
use std::str::FromStr;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A ticket price, held exactly as a whole number of cents.
///
/// Rules (API.md): greater than 0, at most 2 decimal places, at most 1,000,000. It reads from a
/// JSON number (`20`, `19.99`) or a numeric string (`"19.99"`) and is written as a JSON number.
///
/// ```
/// use ticketing_core::ticketing::Price;
///
/// let price: Price = "19.99".parse()?;
/// assert_eq!(price.cents(), 1999);
/// assert_eq!(serde_json::to_string(&price)?, "19.99");
/// assert_eq!(serde_json::from_str::<Price>("20")?.to_string(), "20");
/// assert!("0".parse::<Price>().is_err());
/// assert!("1.999".parse::<Price>().is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Price(u64);

/// Why a value is not a valid [`Price`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PriceError {
    /// Not a number, or not a numeric string.
    #[error("price must be a number")]
    NotANumber,
    /// Zero or negative.
    #[error("price must be greater than 0")]
    NotPositive,
    /// More than two decimal places.
    #[error("price must have at most 2 decimal places")]
    TooPrecise,
    /// Above [`Price::MAX`].
    #[error("price must be at most 1000000")]
    TooLarge,
}

impl Price {
    /// The largest price, 1,000,000.00.
    pub const MAX: Price = Price(100_000_000);

    /// The price of this many cents.
    pub fn from_cents(cents: u64) -> Result<Self, PriceError> {
        match cents {
            0 => Err(PriceError::NotPositive),
            c if c > Self::MAX.0 => Err(PriceError::TooLarge),
            c => Ok(Price(c)),
        }
    }

    /// The price in cents.
    pub const fn cents(self) -> u64 {
        self.0
    }

    /// The price as a floating-point number of units, for display or JSON only.
    pub fn as_f64(self) -> f64 {
        self.0 as f64 / 100.0
    }

    /// Reads a JSON-style number. The shortest decimal form of the float is parsed exactly, so
    /// `19.99` is 1999 cents and `0.1 + 0.2` (`0.30000000000000004`) is rejected as too precise.
    pub fn from_f64(value: f64) -> Result<Self, PriceError> {
        if !value.is_finite() {
            return Err(PriceError::NotANumber);
        }
        if value <= 0.0 {
            return Err(PriceError::NotPositive);
        }
        if value > 1e15 {
            return Err(PriceError::TooLarge);
        }
        // `Display` for f64 prints the shortest text that reads back as the same float, never
        // in exponent form.
        value.to_string().parse()
    }
}

impl FromStr for Price {
    type Err = PriceError;

    /// Parses `123`, `123.4`, `123.45`, `.5` (surrounding whitespace allowed).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        let (negative, text) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text.strip_prefix('+').unwrap_or(text)),
        };
        let (whole, fraction) = match text.split_once('.') {
            Some((w, f)) => (w, f),
            None => (text, ""),
        };
        let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if (whole.is_empty() && fraction.is_empty())
            || !all_digits(whole)
            || !all_digits(fraction)
            || (text.contains('.') && fraction.is_empty())
        {
            return Err(PriceError::NotANumber);
        }
        let whole_digits = whole.trim_start_matches('0');
        let significant_fraction = fraction.trim_end_matches('0');
        let is_zero = whole_digits.is_empty() && significant_fraction.is_empty();
        if is_zero || negative {
            return Err(PriceError::NotPositive);
        }
        if significant_fraction.len() > 2 {
            return Err(PriceError::TooPrecise);
        }
        if whole_digits.len() > 7 {
            return Err(PriceError::TooLarge);
        }
        let units: u64 = if whole_digits.is_empty() {
            0
        } else {
            whole_digits.parse().map_err(|_| PriceError::TooLarge)?
        };
        let mut cents_text = significant_fraction.to_owned();
        while cents_text.len() < 2 {
            cents_text.push('0');
        }
        let cents: u64 = cents_text.parse().map_err(|_| PriceError::NotANumber)?;
        Price::from_cents(units * 100 + cents)
    }
}

impl fmt::Display for Price {
    /// `20`, `19.9`, `19.99`: the shortest exact decimal.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (units, cents) = (self.0 / 100, self.0 % 100);
        match cents {
            0 => write!(f, "{units}"),
            c if c % 10 == 0 => write!(f, "{units}.{}", c / 10),
            c => write!(f, "{units}.{c:02}"),
        }
    }
}

impl Serialize for Price {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.0 % 100 == 0 {
            serializer.serialize_u64(self.0 / 100)
        } else {
            // The nearest double to a two-decimal value prints back as that value.
            serializer.serialize_f64(self.as_f64())
        }
    }
}

impl<'de> Deserialize<'de> for Price {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct PriceVisitor;

        impl Visitor<'_> for PriceVisitor {
            type Value = Price;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "a price: a number or numeric string greater than 0 with at most 2 decimals",
                )
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Price, E> {
                if v > Price::MAX.0 / 100 {
                    return Err(E::custom(PriceError::TooLarge));
                }
                Price::from_cents(v * 100).map_err(E::custom)
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Price, E> {
                match u64::try_from(v) {
                    Ok(v) => self.visit_u64(v),
                    Err(_) => Err(E::custom(PriceError::NotPositive)),
                }
            }

            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Price, E> {
                Price::from_f64(v).map_err(E::custom)
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Price, E> {
                v.parse().map_err(E::custom)
            }
        }

        deserializer.deserialize_any(PriceVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_the_forms_the_api_accepts() {
        assert_eq!("20".parse::<Price>().unwrap().cents(), 2000);
        assert_eq!("19.99".parse::<Price>().unwrap().cents(), 1999);
        assert_eq!("19.9".parse::<Price>().unwrap().cents(), 1990);
        assert_eq!("0.01".parse::<Price>().unwrap().cents(), 1);
        assert_eq!(".5".parse::<Price>().unwrap().cents(), 50);
        assert_eq!(" 7 ".parse::<Price>().unwrap().cents(), 700);
        assert_eq!("1.500".parse::<Price>().unwrap().cents(), 150);
        assert_eq!("1000000".parse::<Price>().unwrap(), Price::MAX);
    }

    #[test]
    fn rejects_what_the_api_rejects() {
        assert_eq!("0".parse::<Price>(), Err(PriceError::NotPositive));
        assert_eq!("0.00".parse::<Price>(), Err(PriceError::NotPositive));
        assert_eq!("-10".parse::<Price>(), Err(PriceError::NotPositive));
        assert_eq!("1.999".parse::<Price>(), Err(PriceError::TooPrecise));
        assert_eq!("1000000.01".parse::<Price>(), Err(PriceError::TooLarge));
        assert_eq!("99999999999".parse::<Price>(), Err(PriceError::TooLarge));
        for bad in ["", "abc", "1e3", "1.", "1.2.3", "--1", "0x10", "NaN", "."] {
            assert_eq!(bad.parse::<Price>(), Err(PriceError::NotANumber), "{bad:?}");
        }
    }

    #[test]
    fn json_numbers_and_strings_are_read_exactly() {
        let read = |s: &str| serde_json::from_str::<Price>(s).map(Price::cents);
        assert_eq!(read("20").unwrap(), 2000);
        assert_eq!(read("19.99").unwrap(), 1999);
        assert_eq!(read("\"19.99\"").unwrap(), 1999);
        assert_eq!(read("0.07").unwrap(), 7);
        assert!(read("0").is_err());
        assert!(read("-5").is_err());
        assert!(read("-5.5").is_err());
        assert!(read("0.30000000000000004").is_err());
        assert!(read("1.001").is_err());
        assert!(read("1000001").is_err());
        assert!(read("1e300").is_err());
        assert!(read("true").is_err());
        assert!(read("null").is_err());
    }

    #[test]
    fn json_output_is_a_number() {
        let write = |cents| serde_json::to_string(&Price::from_cents(cents).unwrap()).unwrap();
        assert_eq!(write(2000), "20");
        assert_eq!(write(1999), "19.99");
        assert_eq!(write(1990), "19.9");
        assert_eq!(write(1), "0.01");
        assert_eq!(write(100_000_000), "1000000");
        assert_eq!(write(99_999_999), "999999.99");
    }

    proptest! {
        #[test]
        fn display_then_parse_is_the_identity(cents in 1u64..=100_000_000) {
            let price = Price::from_cents(cents).unwrap();
            prop_assert_eq!(price.to_string().parse::<Price>().unwrap(), price);
        }

        #[test]
        fn json_round_trip_is_the_identity(cents in 1u64..=100_000_000) {
            let price = Price::from_cents(cents).unwrap();
            let json = serde_json::to_string(&price).unwrap();
            prop_assert_eq!(serde_json::from_str::<Price>(&json).unwrap(), price);
            let as_string = serde_json::to_string(&price.to_string()).unwrap();
            prop_assert_eq!(serde_json::from_str::<Price>(&as_string).unwrap(), price);
        }

        #[test]
        fn a_third_decimal_is_always_rejected(units in 0u64..1_000_000, cents in 0u64..100, third in 1u64..10) {
            let text = format!("{units}.{cents:02}{third}");
            prop_assert_eq!(text.parse::<Price>(), Err(PriceError::TooPrecise));
        }

        #[test]
        fn floats_with_two_decimals_read_as_their_cents(cents in 1u64..=100_000_000) {
            let value: f64 = format!("{}.{:02}", cents / 100, cents % 100).parse().unwrap();
            prop_assert_eq!(Price::from_f64(value).unwrap().cents(), cents);
        }
    }
}
