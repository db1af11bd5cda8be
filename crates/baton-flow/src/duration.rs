//! The one duration grammar of Baton: ISO 8601 (`PT4H`, what the DSL speaks), the short forms
//! people write in catalogues, trigger files and `with:` arguments (`250ms`, `30s`, `2m`, `4h`,
//! `1d`) and the DSL's object form (`{hours: 4}`). Every file format and function argument that
//! takes a duration reads it here, so `PT30S` and `30s` mean the same thing everywhere.

use serde_json::Value;

use crate::model::InlineDuration;

/// Largest duration accepted, in milliseconds (about 31,700 years): past it arithmetic on times
/// would overflow.
pub const DURATION_MS_MAX: f64 = 1e15;

/// Parses an ISO 8601 duration (`PnYnMnWnDTnHnMnS`, fractions allowed) into milliseconds.
/// Years and months have no fixed length; they are taken as 365 and 30 days, which is what a
/// timer needs (a wait of `P1M` is "about a month").
pub fn parse_iso8601_duration_ms(s: &str) -> Result<u64, String> {
    let rest = s
        .strip_prefix('P')
        .ok_or_else(|| format!("`{s}` is not an ISO 8601 duration: it must start with `P`"))?;
    if rest.is_empty() {
        return Err(format!("`{s}` is an empty ISO 8601 duration"));
    }
    let (date, time) = match rest.split_once('T') {
        Some((d, t)) => {
            if t.is_empty() {
                return Err(format!("`{s}`: `T` must be followed by a time component"));
            }
            (d, Some(t))
        }
        None => (rest, None),
    };
    let mut total = 0f64;
    let mut take = |part: &str, units: &[(char, f64)]| -> Result<(), String> {
        let mut num = String::new();
        let mut last_unit = 0usize;
        for ch in part.chars() {
            if ch.is_ascii_digit() || ch == '.' {
                num.push(ch);
                continue;
            }
            let idx = units
                .iter()
                .position(|(u, _)| *u == ch)
                .ok_or_else(|| format!("`{s}`: unexpected `{ch}` in ISO 8601 duration"))?;
            if idx < last_unit || num.is_empty() {
                return Err(format!("`{s}`: misplaced `{ch}` in ISO 8601 duration"));
            }
            last_unit = idx + 1;
            let n: f64 = num
                .parse()
                .map_err(|_| format!("`{s}`: `{num}` is not a number"))?;
            total += n * units[idx].1;
            num.clear();
        }
        if !num.is_empty() {
            return Err(format!("`{s}`: number `{num}` has no unit"));
        }
        Ok(())
    };
    const DAY: f64 = 86_400_000.0;
    take(
        date,
        &[
            ('Y', 365.0 * DAY),
            ('M', 30.0 * DAY),
            ('W', 7.0 * DAY),
            ('D', DAY),
        ],
    )?;
    if let Some(t) = time {
        take(t, &[('H', 3_600_000.0), ('M', 60_000.0), ('S', 1000.0)])?;
    }
    if !total.is_finite() || !(0.0..=DURATION_MS_MAX).contains(&total) {
        return Err(format!("`{s}`: duration out of range"));
    }
    Ok(total.round() as u64)
}

/// Parses the short form: a number (fractions allowed) and a unit, `ms`, `s`, `m`, `h` or `d`
/// (`250ms`, `1.5s`, `2m`, `24h`).
pub fn parse_short_duration_ms(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let n: f64 = number.parse().map_err(|_| {
        format!("`{text}` is not a duration (write e.g. `250ms`, `5s`, `2m`, `1h` or `PT1H`)")
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
    if !ms.is_finite() || !(0.0..=DURATION_MS_MAX).contains(&ms) {
        return Err(format!("`{text}` is out of range"));
    }
    Ok(ms.round() as u64)
}

/// Parses a duration written as text: ISO 8601 when it starts with `P`, else the short form.
pub fn parse_duration_text_ms(text: &str) -> Result<u64, String> {
    if text.trim_start().starts_with('P') {
        parse_iso8601_duration_ms(text.trim())
    } else {
        parse_short_duration_ms(text)
    }
}

/// Parses a duration value of a `with:` argument or a file: text in either form, or the
/// object form (`{hours: 4, minutes: 30}`).
pub fn duration_ms(v: &Value) -> Result<u64, String> {
    match v {
        Value::String(s) => parse_duration_text_ms(s),
        Value::Object(_) => serde_json::from_value::<InlineDuration>(v.clone())
            .map(|d| d.total_ms())
            .map_err(|e| format!("not a duration object: {e}")),
        _ => Err("must be a duration like `PT4H`, `30m` or `{hours: 4}`".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn iso_durations() {
        assert_eq!(parse_iso8601_duration_ms("PT1S").unwrap(), 1000);
        assert_eq!(parse_iso8601_duration_ms("PT0.25S").unwrap(), 250);
        assert_eq!(parse_iso8601_duration_ms("P1DT1H").unwrap(), 90_000_000);
        assert_eq!(parse_iso8601_duration_ms("PT1M30S").unwrap(), 90_000);
        assert!(parse_iso8601_duration_ms("P").is_err());
        assert!(parse_iso8601_duration_ms("1S").is_err());
        assert!(parse_iso8601_duration_ms("PT").is_err());
        assert!(parse_iso8601_duration_ms("PTS").is_err());
        assert!(parse_iso8601_duration_ms("PT1S1M").is_err());
    }

    #[test]
    fn short_forms() {
        assert_eq!(parse_short_duration_ms("250ms"), Ok(250));
        assert_eq!(parse_short_duration_ms("1.5s"), Ok(1500));
        assert_eq!(parse_short_duration_ms("2m"), Ok(120_000));
        assert_eq!(parse_short_duration_ms("24h"), Ok(86_400_000));
        assert!(parse_short_duration_ms("5").is_err());
        assert!(parse_short_duration_ms("5 parsecs").is_err());
        assert!(parse_short_duration_ms("fast").is_err());
        assert!(parse_short_duration_ms("1e30d").is_err());
    }

    #[test]
    fn every_form_means_the_same() {
        for v in [
            json!("PT90M"),
            json!("90m"),
            json!("1.5h"),
            json!({"hours": 1, "minutes": 30}),
        ] {
            assert_eq!(duration_ms(&v), Ok(5_400_000), "{v}");
        }
        assert!(duration_ms(&json!(5)).is_err());
        assert!(duration_ms(&json!({"fortnights": 1})).is_err());
    }
}
