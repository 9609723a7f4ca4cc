//! Value types the settings share: seconds in pgbouncer's unit, user lists
//! as a TOML array or pgbouncer's comma-separated string.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer};
use serde::Deserialize;

/// A duration written in seconds, integer or fractional (pgbouncer's unit).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Seconds(pub Duration);

impl<'de> Deserialize<'de> for Seconds {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Number {
            Int(i64),
            Float(f64),
        }
        let value = match Number::deserialize(deserializer)
            .map_err(|_| de::Error::custom("expected a number of seconds"))?
        {
            Number::Int(i) => i as f64,
            Number::Float(f) => f,
        };
        if !value.is_finite() || !(0.0..=1e9).contains(&value) {
            return Err(de::Error::custom(format!(
                "seconds must be between 0 and 1e9, got {value}"
            )));
        }
        Ok(Seconds(Duration::from_secs_f64(value)))
    }
}

impl fmt::Display for Seconds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.as_secs_f64())
    }
}

/// A user list: a TOML array, or pgbouncer's comma-separated string.
pub(super) fn user_list<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum List {
        Array(Vec<String>),
        Text(String),
    }
    Ok(
        match List::deserialize(deserializer)
            .map_err(|_| de::Error::custom("expected a list of user names"))?
        {
            List::Array(users) => users,
            List::Text(text) => split_user_list(&text),
        },
    )
}

/// Splits pgbouncer's `"a, b"` user list (commas and spaces separate names).
pub fn split_user_list(text: &str) -> Vec<String> {
    text.split(|c: char| c == ',' || c.is_whitespace())
        .map(str::trim)
        .filter(|user| !user.is_empty())
        .map(str::to_string)
        .collect()
}
