//! Durations in catalogue files: `250ms`, `5s`, `2m`, `1h`, or a bare number of milliseconds.

use serde::{Deserialize, Deserializer};

/// A duration in milliseconds, written for people in the catalogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Dur(pub u64);

impl Dur {
    pub fn ms(self) -> u64 {
        self.0
    }
}

/// Parses `250ms`, `5s`, `1.5s`, `2m`, `1h`, `1d`.
pub fn parse_duration(text: &str) -> Result<Dur, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let n: f64 = number.parse().map_err(|_| {
        format!("`{text}` is not a duration (write e.g. `250ms`, `5s`, `2m`, `1h`)")
    })?;
    let factor = match unit.trim() {
        "ms" => 1.0,
        "s" => 1_000.0,
        "m" => 60_000.0,
        "h" => 3_600_000.0,
        "d" => 86_400_000.0,
        "" => {
            return Err(format!(
                "`{text}` has no unit (write e.g. `{text}ms` or `{text}s`)"
            ));
        }
        other => return Err(format!("unknown duration unit `{other}` in `{text}`")),
    };
    let ms = n * factor;
    if !ms.is_finite() || !(0.0..=1e15).contains(&ms) {
        return Err(format!("`{text}` is out of range"));
    }
    Ok(Dur(ms.round() as u64))
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
    }
}
