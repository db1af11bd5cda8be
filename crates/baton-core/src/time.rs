//! Time formatting and reading (the one place times are parsed), and deterministic ids. The core
//! never reads a clock: times come from journal entries, ids from hashes of the instance and the
//! effect key.

use crate::journal::InstanceId;

/// The latest time Baton accepts from outside: 9999-12-31T23:59:59.999Z. Documents are listed
/// by time in the store as signed 64-bit numbers, and jiff's calendar ends there; a time past it
/// would sort before every other or not format at all.
pub const TIME_MAX_MS: u64 = 253_402_300_799_999;

/// Formats milliseconds since the Unix epoch as `YYYY-MM-DDTHH:MM:SS.mmmZ`. A time past
/// [`TIME_MAX_MS`] (which nothing valid carries) is written as `+<ms>ms` rather than a wrong
/// date.
pub fn iso8601_utc(ms: u64) -> String {
    // Civil UTC time is the epoch plus a duration; jiff's civil calendar reaches
    // 9999-12-31T23:59:59.999 (its `Timestamp` stops a day earlier, to leave room for offsets).
    let epoch = jiff::civil::date(1970, 1, 1).at(0, 0, 0, 0);
    let Some(dt) = i64::try_from(ms)
        .ok()
        .and_then(|m| epoch.checked_add(jiff::SignedDuration::from_millis(m)).ok())
    else {
        return format!("+{ms}ms");
    };
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        dt.year(),
        dt.month(),
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second(),
        ms % 1000
    )
}

/// Reads a timestamp from data: RFC 3339 with any offset (`2026-11-23T00:00:00-05:00`) or an
/// HTTP date (`Mon, 23 Nov 2026 05:00:00 GMT`). `None` for anything else, or before 1970.
pub fn parse_time_ms(s: &str) -> Option<u64> {
    let s = s.trim();
    let ts = match s.parse::<jiff::Timestamp>() {
        Ok(ts) => ts,
        Err(_) => jiff::fmt::rfc2822::parse(s).ok()?.timestamp(),
    };
    u64::try_from(ts.as_millisecond()).ok()
}

/// Reads a time a person gave (a report's period, a `--since`): RFC 3339 or milliseconds since
/// the epoch, at most [`TIME_MAX_MS`].
pub fn parse_time_arg(s: &str) -> Option<u64> {
    let s = s.trim();
    if let Ok(ms) = s.parse::<u64>() {
        return (ms <= TIME_MAX_MS).then_some(ms);
    }
    let ts: jiff::Timestamp = s.parse().ok()?;
    u64::try_from(ts.as_millisecond()).ok()
}

/// A UUID derived from the instance and a key: the same on every replay.
pub fn deterministic_uuid(instance: &InstanceId, key: &str) -> String {
    let mut name = Vec::with_capacity(instance.0.len() + key.len() + 1);
    name.extend_from_slice(instance.0.as_bytes());
    name.push(b'\n');
    name.extend_from_slice(key.as_bytes());
    uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, &name).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_epoch_and_leap_days() {
        assert_eq!(iso8601_utc(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso8601_utc(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(iso8601_utc(1_641_024_000_000), "2022-01-01T08:00:00.000Z");
        assert_eq!(iso8601_utc(TIME_MAX_MS), "9999-12-31T23:59:59.999Z");
        assert_eq!(iso8601_utc(u64::MAX), format!("+{}ms", u64::MAX));
    }

    #[test]
    fn times_from_data_and_from_people() {
        assert_eq!(parse_time_ms("1970-01-01T00:00:01Z"), Some(1000));
        assert_eq!(parse_time_ms("1970-01-01T01:00:01+01:00"), Some(1000));
        assert_eq!(parse_time_ms("Thu, 01 Jan 1970 00:00:02 GMT"), Some(2000));
        assert_eq!(
            parse_time_ms("1500"),
            None,
            "data carries dates, not numbers"
        );
        assert_eq!(parse_time_arg("1500"), Some(1500));
        assert_eq!(parse_time_arg("1970-01-01T00:00:01Z"), Some(1000));
        assert_eq!(parse_time_arg("1970-01-01T00:00:01-00:00"), Some(1000));
        assert_eq!(parse_time_arg("yesterday"), None);
        assert_eq!(parse_time_arg("1969-12-31T00:00:00Z"), None);
        assert_eq!(parse_time_arg("18446744073709551615"), None);
    }
}
