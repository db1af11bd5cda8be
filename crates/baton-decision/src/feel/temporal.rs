//! FEEL temporal values: dates, times, date-times and the two duration kinds,
//! with parsing from their ISO 8601 string forms and the calendar arithmetic
//! FEEL needs.
//!
//! Calendar maths is done here on plain integers (proleptic Gregorian days
//! since 1970-01-01) because FEEL's rules (local vs. zoned values, year ranges
//! beyond ±9999, month-end clamping for years-and-months durations) do not
//! map one-to-one onto any time library. Only IANA zone offsets are delegated
//! to `jiff`, whose bundled tz database keeps results reproducible.

use std::fmt;
use std::sync::Arc;

/// Nanoseconds per second.
pub const NANOS: i128 = 1_000_000_000;

/// A calendar date (proleptic Gregorian).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date {
    pub year: i32,
    pub month: u8,
    pub day: u8,
}

/// Where a time of day is anchored.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Zone {
    /// A local time with no offset.
    Local,
    /// A fixed UTC offset in seconds (`Z`, `+02:00`).
    Offset(i32),
    /// An IANA zone name (`@Europe/Paris`).
    Named(Arc<str>),
}

/// A time of day, optionally anchored to a zone.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Time {
    /// Seconds since midnight, 0..86400.
    pub secs: u32,
    pub nanos: u32,
    pub zone: Zone,
}

/// A date and a time of day.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DateTime {
    pub date: Date,
    pub time: Time,
}

/// Days since 1970-01-01 for a civil date (H. Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Civil date for days since 1970-01-01.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

pub fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

pub fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if is_leap(y) => 29,
        _ => 28,
    }
}

/// FEEL restricts years to ±999,999,999.
const YEAR_MAX: i64 = 999_999_999;

impl Date {
    pub fn new(y: i64, m: i64, d: i64) -> Option<Date> {
        if !(-YEAR_MAX..=YEAR_MAX).contains(&y) || !(1..=12).contains(&m) || d < 1 {
            return None;
        }
        if d as u32 > days_in_month(y, m as u32) {
            return None;
        }
        Some(Date {
            year: y as i32,
            month: m as u8,
            day: d as u8,
        })
    }
    pub fn days(&self) -> i64 {
        days_from_civil(self.year as i64, self.month as u32, self.day as u32)
    }
    pub fn from_days(days: i64) -> Option<Date> {
        let (y, m, d) = civil_from_days(days);
        Date::new(y, m as i64, d as i64)
    }
    /// ISO weekday, 1 = Monday.
    pub fn weekday(&self) -> u32 {
        (self.days() + 3).rem_euclid(7) as u32 + 1
    }
    /// Adds months, clamping the day to the end of the target month.
    pub fn add_months(&self, months: i64) -> Option<Date> {
        let total = self.year as i64 * 12 + (self.month as i64 - 1) + months;
        let y = total.div_euclid(12);
        let m = total.rem_euclid(12) + 1;
        let d = (self.day as u32).min(days_in_month(y, m as u32));
        Date::new(y, m, d as i64)
    }
    pub fn parse(s: &str) -> Option<Date> {
        let (neg, body) = match s.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, s),
        };
        let mut parts = body.split('-');
        let y = parts.next()?;
        let m = parts.next()?;
        let d = parts.next()?;
        if parts.next().is_some() || y.len() < 4 || m.len() != 2 || d.len() != 2 {
            return None;
        }
        if y.len() > 4 && y.starts_with('0') {
            return None;
        }
        let y: i64 = digits(y)?;
        Date::new(if neg { -y } else { y }, digits(m)?, digits(d)?)
    }
}

fn digits(s: &str) -> Option<i64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) || s.len() > 10 {
        return None;
    }
    s.parse().ok()
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.year < 0 {
            write!(f, "-{:04}-{:02}-{:02}", -self.year, self.month, self.day)
        } else {
            write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
        }
    }
}

/// Offset in seconds of an IANA zone at a local civil time.
pub fn named_zone_offset(name: &str, date: Date, secs: u32) -> Option<i32> {
    let tz = jiff::tz::TimeZone::get(name).ok()?;
    if !(-9999..=9999).contains(&date.year) {
        return None;
    }
    let dt = jiff::civil::DateTime::new(
        date.year as i16,
        date.month as i8,
        date.day as i8,
        (secs / 3600) as i8,
        ((secs / 60) % 60) as i8,
        (secs % 60) as i8,
        0,
    )
    .ok()?;
    let ts = tz.to_ambiguous_timestamp(dt).compatible().ok()?;
    Some(tz.to_offset(ts).seconds())
}

pub fn zone_exists(name: &str) -> bool {
    jiff::tz::TimeZone::get(name).is_ok()
}

impl Time {
    /// Parses `hh:mm:ss(.f+)?(Z|±hh:mm(:ss)?|@zone)?`.
    pub fn parse(s: &str) -> Option<Time> {
        let b = s.as_bytes();
        // The fixed `hh:mm:ss` prefix must be ASCII before it is sliced.
        if b.len() < 8 || !b[..8].is_ascii() || b[2] != b':' || b[5] != b':' {
            return None;
        }
        let h = digits(&s[0..2])?;
        let m = digits(&s[3..5])?;
        let sec = digits(&s[6..8])?;
        let mut rest = &s[8..];
        let mut nanos = 0u32;
        if let Some(frac) = rest.strip_prefix('.') {
            let n = frac.bytes().take_while(|c| c.is_ascii_digit()).count();
            if n == 0 {
                return None;
            }
            let mut digs = frac[..n].to_string();
            digs.truncate(9);
            while digs.len() < 9 {
                digs.push('0');
            }
            nanos = digs.parse().ok()?;
            rest = &frac[n..];
        }
        if h > 24 || m > 59 || sec > 59 || (h == 24 && (m > 0 || sec > 0 || nanos > 0)) {
            return None;
        }
        let secs = ((h % 24) * 3600 + m * 60 + sec) as u32;
        let zone = parse_zone(rest)?;
        Some(Time { secs, nanos, zone })
    }
    pub fn hour(&self) -> u32 {
        self.secs / 3600
    }
    pub fn minute(&self) -> u32 {
        (self.secs / 60) % 60
    }
    pub fn second(&self) -> u32 {
        self.secs % 60
    }
    /// The UTC offset this time carries, if it can be known without a date
    /// (named zones use today's rules at 1970-01-01, as FEEL leaves it open).
    pub fn offset(&self) -> Option<i32> {
        match &self.zone {
            Zone::Local => None,
            Zone::Offset(o) => Some(*o),
            Zone::Named(n) => named_zone_offset(
                n,
                Date {
                    year: 1970,
                    month: 1,
                    day: 1,
                },
                self.secs,
            ),
        }
    }
    /// Seconds-of-day nanos normalised to UTC when zoned.
    pub fn utc_nanos(&self) -> i128 {
        let base = self.secs as i128 * NANOS + self.nanos as i128;
        match self.offset() {
            Some(o) => (base - o as i128 * NANOS).rem_euclid(86_400 * NANOS),
            None => base,
        }
    }
}

fn parse_zone(rest: &str) -> Option<Zone> {
    if rest.is_empty() {
        return Some(Zone::Local);
    }
    if rest == "Z" || rest == "z" {
        return Some(Zone::Offset(0));
    }
    if let Some(name) = rest.strip_prefix('@') {
        if !zone_exists(name) {
            return None;
        }
        return Some(Zone::Named(Arc::from(name)));
    }
    let sign = match rest.as_bytes()[0] {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let body = &rest[1..];
    let parts: Vec<&str> = body.split(':').collect();
    if parts.len() < 2 || parts.len() > 3 || parts[0].len() != 2 || parts[1].len() != 2 {
        return None;
    }
    let h = digits(parts[0])?;
    let m = digits(parts[1])?;
    let s = if parts.len() == 3 {
        digits(parts[2])?
    } else {
        0
    };
    if h > 14 || m > 59 {
        return None;
    }
    Some(Zone::Offset(sign * (h * 3600 + m * 60 + s) as i32))
}

fn fmt_frac(f: &mut fmt::Formatter<'_>, nanos: u32) -> fmt::Result {
    if nanos == 0 {
        return Ok(());
    }
    let s = format!("{nanos:09}");
    write!(f, ".{}", s.trim_end_matches('0'))
}

fn fmt_zone(f: &mut fmt::Formatter<'_>, zone: &Zone) -> fmt::Result {
    match zone {
        Zone::Local => Ok(()),
        Zone::Offset(0) => write!(f, "Z"),
        Zone::Offset(o) => {
            let sign = if *o < 0 { '-' } else { '+' };
            let a = o.abs();
            write!(f, "{sign}{:02}:{:02}", a / 3600, (a / 60) % 60)?;
            if a % 60 != 0 {
                write!(f, ":{:02}", a % 60)?;
            }
            Ok(())
        }
        Zone::Named(n) => write!(f, "@{n}"),
    }
}

impl fmt::Display for Time {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:02}:{:02}:{:02}",
            self.hour(),
            self.minute(),
            self.second()
        )?;
        fmt_frac(f, self.nanos)?;
        fmt_zone(f, &self.zone)
    }
}

impl DateTime {
    pub fn parse(s: &str) -> Option<DateTime> {
        match s.find('T') {
            Some(i) => {
                let date = Date::parse(&s[..i])?;
                let time = Time::parse(&s[i + 1..])?;
                // 24:00:00 means the start of the next day.
                if s[i + 1..].starts_with("24") {
                    let date = Date::from_days(date.days() + 1)?;
                    return Some(DateTime { date, time });
                }
                Some(DateTime { date, time })
            }
            None => None,
        }
    }
    pub fn offset(&self) -> Option<i32> {
        match &self.time.zone {
            Zone::Local => None,
            Zone::Offset(o) => Some(*o),
            Zone::Named(n) => named_zone_offset(n, self.date, self.time.secs),
        }
    }
    /// Nanoseconds since the epoch of the local wall-clock reading.
    pub fn local_nanos(&self) -> i128 {
        (self.date.days() as i128 * 86_400 + self.time.secs as i128) * NANOS
            + self.time.nanos as i128
    }
    /// Nanoseconds since the epoch in UTC (local values are read as UTC).
    pub fn utc_nanos(&self) -> i128 {
        self.local_nanos() - self.offset().unwrap_or(0) as i128 * NANOS
    }
    pub fn is_zoned(&self) -> bool {
        self.time.zone != Zone::Local
    }
    /// Rebuilds a date-time from local wall-clock nanos, keeping `zone`.
    pub fn from_local_nanos(n: i128, zone: Zone) -> Option<DateTime> {
        let secs = n.div_euclid(NANOS);
        let nanos = n.rem_euclid(NANOS) as u32;
        let days = secs.div_euclid(86_400);
        let sod = secs.rem_euclid(86_400) as u32;
        let date = Date::from_days(i64::try_from(days).ok()?)?;
        Some(DateTime {
            date,
            time: Time {
                secs: sod,
                nanos,
                zone,
            },
        })
    }
}

impl fmt::Display for DateTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}T{}", self.date, self.time)
    }
}

/// Parses an ISO 8601 duration. Returns months for `P..Y..M` forms and
/// nanoseconds for day-time forms; FEEL keeps the two kinds apart.
pub enum ParsedDuration {
    YearsMonths(i64),
    DaysTime(i128),
}

pub fn parse_duration(s: &str) -> Option<ParsedDuration> {
    let (neg, body) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s),
    };
    let body = body.strip_prefix('P')?;
    if body.is_empty() {
        return None;
    }
    let (date_part, time_part) = match body.find('T') {
        Some(i) => (&body[..i], Some(&body[i + 1..])),
        None => (body, None),
    };
    let mut years = 0i128;
    let mut months = 0i128;
    let mut days = 0i128;
    let mut nanos = 0i128;
    let mut any = false;
    let mut num = String::new();
    let mut order = 0;
    for c in date_part.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let v: i128 = if num.is_empty() || num.len() > 18 {
            return None;
        } else {
            num.parse().ok()?
        };
        num.clear();
        let (slot, rank) = match c {
            'Y' => (&mut years, 1),
            'M' => (&mut months, 2),
            'D' => (&mut days, 3),
            _ => return None,
        };
        if rank <= order {
            return None;
        }
        order = rank;
        *slot = v;
        any = true;
    }
    if !num.is_empty() {
        return None;
    }
    if let Some(tp) = time_part {
        if tp.is_empty() {
            return None;
        }
        let mut order = 0;
        for c in tp.chars() {
            if c.is_ascii_digit() || c == '.' {
                num.push(c);
                continue;
            }
            if num.is_empty() {
                return None;
            }
            let (rank, unit) = match c {
                'H' => (1, 3600 * NANOS),
                'M' => (2, 60 * NANOS),
                'S' => (3, NANOS),
                _ => return None,
            };
            if rank <= order {
                return None;
            }
            order = rank;
            nanos += scaled(&num, unit, c == 'S')?;
            num.clear();
            any = true;
        }
        if !num.is_empty() {
            return None;
        }
    }
    if !any {
        return None;
    }
    let sign = if neg { -1 } else { 1 };
    if time_part.is_none() && days == 0 && (years != 0 || months != 0 || !date_part.contains('D')) {
        return Some(ParsedDuration::YearsMonths(
            i64::try_from(sign * (years * 12 + months)).ok()?,
        ));
    }
    if years != 0 || months != 0 {
        // Mixed forms such as P1Y2DT3H are not a FEEL duration kind.
        return None;
    }
    Some(ParsedDuration::DaysTime(
        sign * (days * 86_400 * NANOS + nanos),
    ))
}

fn scaled(num: &str, unit: i128, frac_ok: bool) -> Option<i128> {
    let (int, frac) = match num.split_once('.') {
        Some((i, f)) if frac_ok => (i, f),
        Some(_) => return None,
        None => (num, ""),
    };
    if int.is_empty() || int.len() > 18 {
        return None;
    }
    let mut v: i128 = int.parse::<i128>().ok()? * unit;
    if !frac.is_empty() {
        let mut f = frac.to_string();
        f.truncate(9);
        while f.len() < 9 {
            f.push('0');
        }
        v += f.parse::<i128>().ok()?;
    }
    Some(v)
}

pub fn fmt_ym(months: i64) -> String {
    if months == 0 {
        return "P0M".into();
    }
    let sign = if months < 0 { "-" } else { "" };
    let a = months.unsigned_abs();
    let (y, m) = (a / 12, a % 12);
    let mut s = format!("{sign}P");
    if y > 0 {
        s.push_str(&format!("{y}Y"));
    }
    if m > 0 {
        s.push_str(&format!("{m}M"));
    }
    s
}

pub fn fmt_dt(nanos: i128) -> String {
    if nanos == 0 {
        return "PT0S".into();
    }
    let sign = if nanos < 0 { "-" } else { "" };
    let a = nanos.unsigned_abs();
    let total_secs = a / NANOS as u128;
    let frac = (a % NANOS as u128) as u32;
    let (d, h, m, s) = (
        total_secs / 86_400,
        (total_secs / 3600) % 24,
        (total_secs / 60) % 60,
        total_secs % 60,
    );
    let mut out = format!("{sign}P");
    if d > 0 {
        out.push_str(&format!("{d}D"));
    }
    if h > 0 || m > 0 || s > 0 || frac > 0 {
        out.push('T');
        if h > 0 {
            out.push_str(&format!("{h}H"));
        }
        if m > 0 {
            out.push_str(&format!("{m}M"));
        }
        if s > 0 || frac > 0 {
            out.push_str(&format!("{s}"));
            if frac > 0 {
                let f = format!("{frac:09}");
                out.push('.');
                out.push_str(f.trim_end_matches('0'));
            }
            out.push('S');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_round_trip() {
        for days in [-800_000i64, -1, 0, 1, 18_000, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }

    #[test]
    fn parses_durations() {
        assert!(matches!(
            parse_duration("P1Y2M"),
            Some(ParsedDuration::YearsMonths(14))
        ));
        assert!(
            matches!(parse_duration("-P1DT1H"), Some(ParsedDuration::DaysTime(n)) if n == -(25 * 3600 * NANOS))
        );
        assert!(parse_duration("P").is_none());
        assert_eq!(fmt_dt(90 * NANOS + 5), "PT1M30.000000005S");
        assert_eq!(fmt_ym(-14), "-P1Y2M");
    }

    #[test]
    fn parses_times_and_zones() {
        let t = Time::parse("10:30:00.5+02:00").expect("valid time");
        assert_eq!(t.to_string(), "10:30:00.5+02:00");
        assert!(Time::parse("25:00:00").is_none());
        let dt = DateTime::parse("2018-10-08T00:00:00@Europe/Paris").expect("valid");
        assert_eq!(dt.offset(), Some(7200));
    }
}
