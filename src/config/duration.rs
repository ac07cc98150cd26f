//! Durations written as humans write them: `10s`, `500ms`, `2m`.

use serde::{Deserialize, Deserializer};
use std::time::Duration;

/// A [`Duration`] read from a string such as `"30s"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl HumanDuration {
    /// A duration of whole seconds.
    pub const fn from_secs(s: u64) -> Self {
        Self(Duration::from_secs(s))
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s)
            .map(HumanDuration)
            .map_err(|e| {
                serde::de::Error::custom(format!(
                    "invalid duration {s:?}: {e} (write e.g. \"10s\")"
                ))
            })
    }
}

/// Reads an optional RFC 3339 timestamp.
pub fn rfc3339_opt<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<std::time::SystemTime>, D::Error> {
    let s = Option::<String>::deserialize(d)?;
    s.map(|s| {
        humantime::parse_rfc3339_weak(&s).map_err(|e| {
            serde::de::Error::custom(format!(
                "invalid time {s:?}: {e} (write e.g. \"2026-11-23T03:00:00Z\")"
            ))
        })
    })
    .transpose()
}
