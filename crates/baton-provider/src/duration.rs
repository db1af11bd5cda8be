//! Durations in catalogue files: Baton's one duration grammar (`250ms`, `5s`, `2m`, `1h`,
//! `PT1H`), or a bare number of milliseconds.

use serde::{Deserialize, Deserializer};

/// A duration in milliseconds, written for people in the catalogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Dur(pub u64);

impl Dur {
    pub fn ms(self) -> u64 {
        self.0
    }
}

/// Parses a duration in Baton's one grammar (`250ms`, `5s`, `1.5s`, `2m`, `1h`, `1d`, or ISO
/// 8601 such as `PT5S`): see [`baton_flow::duration`].
pub fn parse_duration(text: &str) -> Result<Dur, String> {
    baton_flow::parse_duration_text_ms(text).map(Dur)
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Ms(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Ms(ms) => Ok(Dur(ms)),
            Raw::Text(t) => parse_duration(&t).map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(parse_duration("250ms"), Ok(Dur(250)));
        assert_eq!(parse_duration("1.5s"), Ok(Dur(1500)));
        assert_eq!(parse_duration("2m"), Ok(Dur(120_000)));
        assert_eq!(parse_duration("24h"), Ok(Dur(86_400_000)));
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("fast").is_err());
        assert_eq!(parse_duration("PT2M"), Ok(Dur(120_000)), "ISO 8601 too");
    }
}
